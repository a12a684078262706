"""How many upstream requests N concurrent refreshers make, and what a cached read costs.

Run by hand: ``python3 bench/bench_refresh.py``. Starts a fake upstream on loopback and
N worker processes that each ask for a refresh as fast as they can for a few short
intervals; the goal is as many upstream requests with 50 readers as with one (one per
interval, whatever N). Then times ``claude-meter --json --cached`` against a bare
``python3 -c pass`` in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import common
from common import Command, Figure

WORKER = """
import sys, time
from claudemeter.refresh import refresh
deadline = float(sys.argv[1])
while time.time() < deadline:
    refresh(min_age=float(sys.argv[2]))
"""


def requests_for(n: int, seconds: float, interval: float) -> tuple[int, float]:
    """Upstream requests made, and the smallest gap between two of them (seconds)."""
    with (
        tempfile.TemporaryDirectory(prefix="cmbench") as tmp,
        common.oauth_login(Path(tmp)) as (env, upstream),
    ):
        # one deadline for all: readers that start late do not stretch the window
        deadline = str(time.time() + seconds)
        procs = [
            subprocess.Popen([sys.executable, "-c", WORKER, deadline, str(interval)], env=env)
            for _ in range(n)
        ]
        for proc in procs:
            proc.wait()
    times = [seen.at for seen in upstream.hits("/api/oauth/usage")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return len(times), min(gaps, default=math.nan)


def measure(
    seconds: float = 8, interval: float = 2, runs: int = 20, readers: Sequence[int] = (1, 10, 50)
) -> list[Figure]:
    figures = []
    one, _ = requests_for(1, seconds, interval)
    for n in readers[1:]:
        hits, gap = requests_for(n, seconds, interval)
        figures += [
            Figure(
                f"upstream requests, {n} readers, {seconds:g}s", hits, "", "1 reader", one, "1.00x"
            ),
            Figure(
                f"smallest gap between requests, {n} readers",
                gap,
                "s",
                "refresh interval",
                interval,
                ">= 1x",
            ),
        ]
    with tempfile.TemporaryDirectory(prefix="cmbench") as tmp:
        env = common.isolated_env(Path(tmp))
        subprocess.run(
            [
                *common.meter(),
                "ingest",
                str(common.FIXTURES / "snapshots_two_browsers_two_accounts.json"),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        times = common.interleaved(
            {
                "bare": Command([sys.executable, "-c", "pass"]),
                "read": Command([*common.meter(), "--json", "--cached"]),
            },
            env,
            runs,
        )
    figures.append(
        Figure(
            f"claude-meter --json --cached (median of {runs})",
            common.median(times["read"]) * 1000,
            "ms",
            "python3 -c pass",
            common.median(times["bare"]) * 1000,
        )
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="how long each round runs")
    parser.add_argument("--interval", type=float, default=2.0, help="refresh interval to use")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command")
    args = parser.parse_args()
    print(common.machine())
    print(common.table(measure(args.seconds, args.interval, args.runs)))


if __name__ == "__main__":
    main()
