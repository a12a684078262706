"""How fast twenty guards on one account stop together, how closely they resume, and
what twenty idle guards cost.

Run by hand: ``python3 bench/bench_guard.py [--guards 20] [--poll 5] [--seconds 60]``.
Everything lives in a temporary state dir and HOME; nothing touches the network.

1. Stop latency: from the moment the store says "over" to the moment the kernel shows
   every guarded command stopped (``/proc/<pid>/stat`` state T). The baseline is the
   poll interval: a guard notices within one poll, so the ratio should stay near or
   under 1.
2. Resume skew: the spread between the first and the last command running again after
   ``resets_at + grace``, and how late the last one was; both against the poll interval
   (the skew a guard that resumed "on its next poll" would have).
3. Idle cost: CPU and resident memory of the idle guards over ``--seconds``, against a
   bare ``python3`` sleeping for the same time in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import common
from common import Figure

sys.path.insert(0, str(common.ROOT / "python"))

from claudemeter.model import Snapshot, utcnow
from claudemeter.store import Store

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def guard_command() -> list[str]:
    found = shutil.which("cm-guard", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "claudemeter.guard"]


def put(store: Store, util: float, resets_in: float) -> float:
    """Store a reading; returns the wall-clock time it became visible."""
    now = utcnow()
    resets = now + timedelta(seconds=resets_in)
    body = {"utilization": util, "resets_at": resets.isoformat()}
    store.put(
        [
            Snapshot(
                org_uuid="org-bench",
                browser="Chrome",
                account_email="b@example.com",
                fetched_at=now,
                usage={"five_hour": body},
            )
        ]
    )
    return time.time()


def proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def state(pid: int) -> str:
    fields = proc_stat(pid)
    return fields[0] if fields else "gone"


def cpu_seconds(pid: int) -> float:
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def rss_mib(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except OSError:
        return 0.0


def pss_mib(pid: int) -> float:
    """Proportional set size: shared pages (libpython, libcrypto) split among users."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def until_all(pids: list[int], wanted: set[str], limit: float) -> dict[int, float]:
    """When each pid first showed one of the wanted states (polled every millisecond)."""
    seen: dict[int, float] = {}
    deadline = time.time() + limit
    while len(seen) < len(pids):
        if time.time() > deadline:
            raise SystemExit(f"timed out: {len(seen)}/{len(pids)} reached {sorted(wanted)}")
        now = time.time()
        for pid in pids:
            if pid not in seen and state(pid) in wanted:
                seen[pid] = now
        time.sleep(0.001)
    return seen


def children_of(guards: list[subprocess.Popen[bytes]]) -> list[int]:
    """The guarded commands: each guard's only child that is not a refresh."""
    found: list[int] = []
    deadline = time.time() + 30
    while len(found) < len(guards):
        if time.time() > deadline:
            raise SystemExit("the guards did not start their commands")
        found = []
        for guard in guards:
            kids = Path(f"/proc/{guard.pid}/task/{guard.pid}/children").read_text().split()
            sleepers = [int(k) for k in kids if "sleep" in Path(f"/proc/{k}/comm").read_text()]
            found += sleepers[:1]
        time.sleep(0.05)
    return found


def measure(
    guards: int = 20, poll: float = 5, grace: float = 1, seconds: float = 60
) -> list[Figure]:
    with (
        tempfile.TemporaryDirectory(prefix="cmbench") as tmp,
        common.environ(common.isolated_env(Path(tmp))),
    ):
        store = Store()
        put(store, 10, 3600)
        flags = ["--poll", str(poll), "--grace", str(grace)]
        procs = [
            subprocess.Popen(
                [*guard_command(), *flags, "sleep", "100000"],
                stdin=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for _ in range(guards)
        ]
        try:
            children = children_of(procs)
            until_all(children, {"S", "R"}, 30)
            figures = idle_cost(procs, seconds)

            resets_in = poll + 3.0
            crossed = put(store, 97, resets_in)
            stopped = until_all(children, {"T"}, poll * 3 + 10)
            delays = sorted(t - crossed for t in stopped.values())
            resume_at = crossed + resets_in + grace
            resumed = until_all(children, {"S", "R"}, resets_in + grace + poll + 10)
            times = sorted(resumed.values())
        finally:
            for guard in procs:
                guard.send_signal(signal.SIGTERM)
            for guard in procs:
                guard.wait(timeout=20)
    return [
        Figure(
            f"guard stop latency, last of {guards}",
            delays[-1] * 1000,
            "ms",
            "--poll",
            poll * 1000,
            "<= 1x",
        ),
        Figure(
            f"guard resume skew, first to last of {guards}",
            (times[-1] - times[0]) * 1000,
            "ms",
            "--poll",
            poll * 1000,
            "<< 1x",
        ),
        Figure(
            "guard resume, last one after resets_at+grace",
            (times[-1] - resume_at) * 1000,
            "ms",
            "--poll",
            poll * 1000,
            "<= 1x",
        ),
        *figures,
    ]


def idle_cost(guards: list[subprocess.Popen[bytes]], seconds: float) -> list[Figure]:
    """CPU and memory of guards with nothing to do, beside a bare sleeping python."""
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1e6)"])
    try:
        time.sleep(0.5)
        cpu0 = {g.pid: cpu_seconds(g.pid) for g in guards}
        bare0 = cpu_seconds(bare.pid)
        started = time.time()
        time.sleep(seconds)
        window = time.time() - started
        cpu = sum(cpu_seconds(g.pid) - cpu0[g.pid] for g in guards) / len(guards)
        bare_cpu = cpu_seconds(bare.pid) - bare0
        rss = statistics.mean(rss_mib(g.pid) for g in guards)
        pss = statistics.mean(pss_mib(g.pid) for g in guards)
        bare_rss, bare_pss = rss_mib(bare.pid), pss_mib(bare.pid)
    finally:
        bare.kill()
        bare.wait()
    return [
        Figure(
            f"idle guard CPU over {window:.0f}s, each",
            100 * cpu / window,
            "% core",
            "sleeping python",
            100 * bare_cpu / window,
        ),
        Figure("idle guard RSS, each", rss, "MiB", "sleeping python", bare_rss),
        Figure(
            "idle guard PSS (shared pages split), each", pss, "MiB", "sleeping python", bare_pss
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guards", type=int, default=20)
    parser.add_argument("--poll", type=float, default=5.0, help="the guards' --poll")
    parser.add_argument("--grace", type=float, default=1.0, help="the guards' --grace")
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window")
    args = parser.parse_args()
    print(common.machine())
    print(common.table(measure(args.guards, args.poll, args.grace, args.seconds)))


if __name__ == "__main__":
    main()
