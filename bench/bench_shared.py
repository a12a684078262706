"""A fleet on one account: upstream requests per interval for K hosts x N readers.

Run by hand: ``python3 bench/bench_shared.py``. Each simulated host is a state dir of its
own; each has N reader processes asking for a refresh as fast as they can (as the
bridge's poller, guards and status lines would, only harder), all on one login against
one fake upstream. Measured twice in the same run: with ``CLAUDEMETER_REDIS_URL``
naming one real ``redis-server`` (goal: one request per interval for the whole fleet),
and without it (each host single-flights alone: K per interval), the baseline.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import Figure

sys.path.insert(0, str(common.ROOT))

from tests.redislab import start_redis
from tests.upstream import FakeUpstream, Reply, fixture

# Every reader first imports and waits for the common start, so slow start-ups on a
# loaded machine do not thin out the window that is counted.
WORKER = """
import sys, time
from claudemeter.refresh import refresh
start, deadline, interval = map(float, sys.argv[1:4])
time.sleep(max(0.0, start - time.time()))
while time.time() < deadline:
    refresh(min_age=interval)
"""


def requests_per_interval(
    hosts: int, readers: int, seconds: float, interval: float, shared: bool, warmup: float
) -> float:
    upstream = FakeUpstream()
    upstream.routes["/api/oauth/usage"] = Reply(200, fixture("oauth_usage_basic.json"))
    upstream.routes["/api/oauth/profile"] = Reply(200, fixture("oauth_profile.json"))
    upstream.start()
    with tempfile.TemporaryDirectory(prefix="cmbench") as tmp:
        root = Path(tmp)
        server = start_redis(root / "redis") if shared else None
        try:
            base = common.isolated_env(root, CLAUDEMETER_ANTHROPIC_BASE=upstream.url)
            home = Path(base["HOME"])
            shutil.copy(
                common.FIXTURES / "claude_code_credentials.json", home / ".claude/.credentials.json"
            )
            shutil.copy(common.FIXTURES / "claude_json_oauth_account.json", home / ".claude.json")
            start_wall, start = time.time() + warmup, time.monotonic() + warmup
            times = [str(start_wall), str(start_wall + seconds), str(interval)]
            procs = []
            for k in range(hosts):
                env = {**base, "CLAUDEMETER_STATE_DIR": str(root / f"host{k}")}
                if server is not None:
                    env["CLAUDEMETER_REDIS_URL"] = server.url
                argv = [sys.executable, "-c", WORKER, *times]
                procs += [subprocess.Popen(argv, env=env) for _ in range(readers)]
            for proc in procs:
                proc.wait()
        finally:
            if server is not None:
                server.stop()
            upstream.stop()
    counted = [s for s in upstream.hits("/api/oauth/usage") if start <= s.at < start + seconds]
    return len(counted) / (seconds / interval)


def measure(
    hosts: int = 5, readers: int = 10, seconds: float = 12, interval: float = 3, warmup: float = 10
) -> list[Figure]:
    alone = requests_per_interval(hosts, readers, seconds, interval, False, warmup)
    fleet = requests_per_interval(hosts, readers, seconds, interval, True, warmup)
    return [
        Figure(
            f"upstream requests per {interval:g}s interval, {hosts} hosts x {readers} readers,"
            " one Redis",
            fleet,
            "",
            "each host alone",
            alone,
            "1 per interval",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=5, help="simulated hosts (state dirs)")
    parser.add_argument("--readers", type=int, default=10, help="reader processes per host")
    parser.add_argument("--seconds", type=float, default=12.0, help="how long each round runs")
    parser.add_argument("--interval", type=float, default=3.0, help="refresh interval to use")
    parser.add_argument("--warmup", type=float, default=10.0, help="start-up time not counted")
    args = parser.parse_args()
    print(common.machine())
    figures = measure(args.hosts, args.readers, args.seconds, args.interval, args.warmup)
    print(common.table(figures))


if __name__ == "__main__":
    main()
