"""A fleet on one account: upstream requests per interval for K hosts x N readers.

Run by hand: ``python3 bench/bench_shared.py``. Each simulated host is a state dir of its
own; each has N reader processes asking for a refresh as fast as they can (as the
bridge's poller, guards and status lines would, only harder), all on one login against
one fake upstream. Measured twice in the same run: with ``CLAUDEMETER_REDIS_URL``
naming one real ``redis-server`` (goal: one request per interval for the whole fleet),
and without it (each host single-flights alone: K per interval), the baseline.

Then how soon a browser's post to one host's bridge is in every host's file, and the
pause spread: K hosts, each running ``claude-meter serve`` (whose follower
pushes a write on its host to Redis at once, and pulls on the fleet's news) and one
``cm-guard`` over a ``sleep``; a reading over the threshold is written into host 0's
file, and the seconds from the first guarded command stopped to the last (goal: within
one ``--poll``), and from the reading to the last, are printed, at ``--poll`` and at 1 s.
The guards start ``poll / K`` apart, so their polls are spread over the poll.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import common
from bench_guard import children_of, guard_command, put, until_all
from common import Figure

sys.path.insert(0, str(common.ROOT))

from tests.redislab import start_redis

from claudemeter.bridge import token_path
from claudemeter.model import Snapshot, utcnow
from claudemeter.shared import SYNC_EVERY
from claudemeter.store import Store

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
    with (
        tempfile.TemporaryDirectory(prefix="cmbench") as tmp,
        common.oauth_login(Path(tmp)) as (base, upstream),
    ):
        root = Path(tmp)
        server = start_redis(root / "redis") if shared else None
        try:
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
        hits = upstream.hits("/api/oauth/usage")
    counted = [seen for seen in hits if start <= seen.at < start + seconds]
    return len(counted) / (seconds / interval)


def serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """One host's ``claude-meter serve`` on a free port (its follower syncs the fleet),
    and that port."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*common.meter(), "serve", "--port", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.time() + 30
    while not (found := re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())):
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"serve did not start: {log.read_text()}")
        time.sleep(0.05)
    return proc, int(found.group(1))


def post(port: int, directory: Path, util: float) -> None:
    """A browser's reading, posted to the bridge as the extension does."""
    now = utcnow()
    resets = now + timedelta(hours=1)
    body = json.dumps(
        Snapshot(
            org_uuid="org-bench",
            browser="Chrome",
            account_email="b@example.com",
            fetched_at=now,
            usage={"five_hour": {"utilization": util, "resets_at": resets.isoformat()}},
        ).to_json()
    ).encode()
    token = token_path(directory).read_text().strip()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST",
            "/snapshots",
            body,
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        if conn.getresponse().status != 200:
            raise SystemExit("the bridge refused the post")
    finally:
        conn.close()


def pause_spread(hosts: int, poll: float) -> tuple[float, float, float]:
    """K hosts, each with ``serve`` and one guard on one Redis. First a browser's post
    to host 0's bridge: seconds until it is in every host's file. Then a reading over
    the threshold lands in host 0's file; seconds from the first guard paused to the
    last, and from the reading to the last."""
    with tempfile.TemporaryDirectory(prefix="cmbench") as tmp:
        root = Path(tmp)
        server = start_redis(root / "redis")
        procs: list[subprocess.Popen[bytes]] = []
        try:
            base = common.isolated_env(root, CLAUDEMETER_REDIS_URL=server.url)
            envs = [{**base, "CLAUDEMETER_STATE_DIR": str(root / f"host{k}")} for k in range(hosts)]
            stores = [Store(Path(env["CLAUDEMETER_STATE_DIR"])) for env in envs]
            served = [serve(env, root / f"serve{k}.log") for k, env in enumerate(envs)]
            procs += [proc for proc, _port in served]
            posted = time.time()
            post(served[0][1], stores[0].directory, 40)
            deadline = posted + 60
            while not all(store.accounts() for store in stores):
                if time.time() > deadline:
                    raise SystemExit("the reading did not reach every host")
                time.sleep(0.01)
            reach = time.time() - posted
            guards = []
            for k, env in enumerate(envs):
                if k:
                    time.sleep(poll / hosts)
                guards.append(
                    subprocess.Popen(
                        [*guard_command(), "--poll", str(poll), "--", "sleep", "1000"],
                        env=env,
                        stderr=subprocess.DEVNULL,  # their "paused until" lines
                        start_new_session=True,
                    )
                )
            procs += guards
            children = children_of(guards)
            landed = put(stores[0], 96, 3600)
            stopped = until_all(children, {"T"}, 120)
        finally:
            for proc in reversed(procs):
                proc.kill()
                proc.wait()
            server.stop()
    times = sorted(stopped.values())
    return times[-1] - times[0], times[-1] - landed, reach


def measure(
    hosts: int = 5,
    readers: int = 10,
    seconds: float = 12,
    interval: float = 3,
    warmup: float = 10,
    poll: float = 5,
) -> list[Figure]:
    figures = []
    if readers:
        alone = requests_per_interval(hosts, readers, seconds, interval, False, warmup)
        fleet = requests_per_interval(hosts, readers, seconds, interval, True, warmup)
        figures.append(
            Figure(
                f"upstream requests per {interval:g}s interval, {hosts} hosts x {readers}"
                " readers, one Redis",
                fleet,
                "",
                "each host alone",
                alone,
                "1 per interval",
            )
        )
    reaches = []
    for each in sorted({poll, 1.0}, reverse=True):
        spread, last, reach = pause_spread(hosts, each)
        reaches.append(reach)
        figures += [
            Figure(
                f"guard pause spread, first to last of {hosts} hosts, --poll {each:g}",
                spread,
                "s",
                "--poll",
                each,
                "<= 1x",
            ),
            Figure(
                f"reading on one host to the last of {hosts} hosts' guards paused, --poll {each:g}",
                last,
                "s",
                "--poll",
                each,
            ),
        ]
    figures.append(
        Figure(
            f"browser post on one host's bridge to the last of {hosts} hosts' files,"
            f" worst of {len(reaches)}",
            max(reaches),
            "s",
            "the sync period before push",
            SYNC_EVERY,
        )
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=5, help="simulated hosts (state dirs)")
    parser.add_argument(
        "--readers",
        type=int,
        default=10,
        help="reader processes per host (0: only the guards' pause spread)",
    )
    parser.add_argument("--seconds", type=float, default=12.0, help="how long each round runs")
    parser.add_argument("--interval", type=float, default=3.0, help="refresh interval to use")
    parser.add_argument("--warmup", type=float, default=10.0, help="start-up time not counted")
    parser.add_argument("--poll", type=float, default=5.0, help="the guards' --poll")
    args = parser.parse_args()
    print(common.machine())
    figures = measure(args.hosts, args.readers, args.seconds, args.interval, args.warmup, args.poll)
    print(common.table(figures))


if __name__ == "__main__":
    main()
