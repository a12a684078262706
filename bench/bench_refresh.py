"""How many upstream requests N concurrent refreshers make, and what a cached read costs.

Run by hand: ``python3 bench/bench_refresh.py``. Starts a fake upstream on loopback and
N worker processes that each ask for a refresh as fast as they can for a few short
intervals; the goal is one upstream request per interval, whatever N. Then times
``claude-meter --json --cached`` against a bare ``python3 -c pass`` in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.upstream import FIXTURES, FakeUpstream, Reply, fixture  # noqa: E402

WORKER = """
import sys, time
from claudemeter.refresh import refresh
deadline = time.time() + float(sys.argv[1])
while time.time() < deadline:
    refresh(min_age=float(sys.argv[2]))
"""


def environment(tmp: Path, upstream: FakeUpstream) -> dict[str, str]:
    home = tmp / "home"
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "claude_code_credentials.json", home / ".claude/.credentials.json")
    shutil.copy(FIXTURES / "claude_json_oauth_account.json", home / ".claude.json")
    return {**os.environ, "HOME": str(home), "CLAUDEMETER_STATE_DIR": str(tmp / "state"),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "CLAUDEMETER_ANTHROPIC_BASE": upstream.url, "PYTHONPATH": str(ROOT / "python")}


def requests_for(n: int, seconds: float, interval: float) -> tuple[int, float]:
    """Upstream requests made, and the smallest gap between two of them (seconds)."""
    upstream = FakeUpstream()
    upstream.routes["/api/oauth/usage"] = Reply(200, fixture("oauth_usage_basic.json"))
    upstream.routes["/api/oauth/profile"] = Reply(200, fixture("oauth_profile.json"))
    upstream.start()
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp), upstream)
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(seconds), str(interval)],
                                  env=env) for _ in range(n)]
        for proc in procs:
            proc.wait()
    upstream.stop()
    times = [seen.at for seen in upstream.hits("/api/oauth/usage")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return len(times), min(gaps, default=float("nan"))


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="how long each round runs")
    parser.add_argument("--interval", type=float, default=2.0, help="refresh interval to use")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}")
    print(f"\nupstream usage requests, {args.seconds:.0f}s at a {args.interval:.0f}s interval")
    print("(goal: the smallest gap between two requests is at least one interval)")
    print(f"{'refreshers':>10} {'requests':>9} {'min gap':>8} {'gap/interval':>13}")
    for n in (1, 10, 50):
        hits, gap = requests_for(n, args.seconds, args.interval)
        print(f"{n:>10} {hits:>9} {gap:>7.2f}s {gap / args.interval:>13.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CLAUDEMETER_STATE_DIR": str(Path(tmp) / "state"),
               "PYTHONPATH": str(ROOT / "python")}
        subprocess.run([sys.executable, "-m", "claudemeter", "ingest",
                        str(FIXTURES / "snapshots_two_browsers_two_accounts.json")], env=env,
                       check=True, stderr=subprocess.DEVNULL)
        base = statistics.median(timed([sys.executable, "-c", "pass"], env, args.runs))
        read = statistics.median(timed([sys.executable, "-m", "claudemeter", "--json",
                                        "--cached"], env, args.runs))
    print("\nread latency (median of", args.runs, "runs)")
    print(f"  python3 -c pass                  {base * 1000:7.1f} ms  1.00x")
    print(f"  claude-meter --json --cached     {read * 1000:7.1f} ms  {read / base:.2f}x")


if __name__ == "__main__":
    main()
