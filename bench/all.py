#!/usr/bin/env python3
"""Run every benchmark and print one table: each figure beside a baseline measured in the
same run, on the machine named in the header.

Usage: ``bench/run [--quick | --full] [--only NAME ...]`` (``bench/run`` picks the
checkout's ``.venv`` interpreter). The default takes a few minutes on two cores;
``--quick`` about a minute with fewer samples; ``--full`` the scripts' own long settings.
Each ``bench/bench_*.py`` still runs alone with its own options.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bench_bridge
import bench_guard
import bench_history
import bench_hooks
import bench_oauth_requests
import bench_refresh
import bench_scale
import bench_shared
import bench_status
import bench_statusline
import common
from common import Figure


def figures_only(
    measure: Callable[..., list[Figure]],
) -> Callable[..., tuple[list[Figure], list[str]]]:
    """For benchmarks that have figures but no notes."""
    return lambda **settings: (measure(**settings), [])


@dataclass(frozen=True)
class Bench:
    run: Callable[..., tuple[list[Figure], list[str]]]
    quick: dict[str, Any]
    default: dict[str, Any]
    full: dict[str, Any]


BENCHES = {
    "statusline": Bench(bench_statusline.measure, {"runs": 15}, {"runs": 40}, {"runs": 100}),
    "history": Bench(bench_history.measure, {"runs": 10}, {"runs": 30}, {"runs": 80}),
    "status": Bench(
        figures_only(bench_status.measure),
        {"runs": 15, "seconds": 4},
        {"runs": 40, "seconds": 10},
        {"runs": 100, "seconds": 30},
    ),
    "refresh": Bench(
        figures_only(bench_refresh.measure),
        {"seconds": 4, "interval": 1, "runs": 10},
        {"seconds": 8, "interval": 2, "runs": 20},
        {"seconds": 20, "interval": 2, "runs": 50},
    ),
    "oauth-requests": Bench(
        figures_only(bench_oauth_requests.measure), {"hours": 2}, {"hours": 6}, {"hours": 24}
    ),
    "bridge": Bench(
        figures_only(bench_bridge.measure),
        {"posts": 300, "rejected": 2000},
        {"posts": 1000, "rejected": 10_000},
        {"posts": 5000, "rejected": 50_000},
    ),
    "shared": Bench(
        figures_only(bench_shared.measure),
        {"seconds": 6, "interval": 2, "warmup": 8},
        {"seconds": 12, "interval": 3, "warmup": 10},
        {"seconds": 30, "interval": 3, "warmup": 10},
    ),
    "hooks": Bench(
        bench_hooks.measure,
        {"runs": 15, "agents": 3},
        {"runs": 40, "agents": 5},
        {"runs": 100, "agents": 5},
    ),
    "scale": Bench(
        bench_scale.measure,
        {"runs": 5, "seconds": 8, "posts": 100, "hours": 6},
        {"runs": 15, "seconds": 20, "posts": 300, "hours": 24},
        {"runs": 40, "seconds": 60, "posts": 1000, "hours": 24, "batch": 5},
    ),
    "guard": Bench(
        figures_only(bench_guard.measure),
        {"guards": 10, "poll": 1, "grace": 0.5, "seconds": 5},
        {"guards": 20, "poll": 2, "grace": 1, "seconds": 20},
        {"guards": 20, "poll": 5, "grace": 1, "seconds": 60},
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="about a minute, fewer samples")
    mode.add_argument("--full", action="store_true", help="long runs, more samples")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHES),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHES)}",
    )
    args = parser.parse_args()
    level = "quick" if args.quick else "full" if args.full else "default"
    figures: list[Figure] = []
    notes: list[str] = []
    failed: list[str] = []
    started = time.monotonic()
    for name, bench in BENCHES.items():
        if args.only and name not in args.only:
            continue
        settings = getattr(bench, level)
        print(f"running {name} {settings} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            found, said = bench.run(**settings)
        except (Exception, SystemExit) as error:  # one broken bench must not hide the rest
            traceback.print_exc()
            failed.append(name)
            notes.append(f"{name} FAILED: {error}")
            continue
        print(f"  {name} done in {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
        figures += found
        notes += said
    print(f"machine: {common.machine()}")
    print(f"settings: {level}; whole run {time.monotonic() - started:.0f}s\n")
    print(common.table(figures))
    if notes:
        print("\n" + "\n".join(notes))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
