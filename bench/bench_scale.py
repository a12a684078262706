"""What the number of accounts costs: run by hand (``python bench/bench_scale.py
[--accounts 10 --accounts 50] [--hours 24]``), prints figures, asserts nothing.

One store per size (1, 10 and 50 accounts by default), each filled with ``--hours`` of
readings the way real use writes them (:mod:`scale_store`: about one a minute per
account from four sources, agents' sessions, through the store's own API on a pinned
clock). Then, on a clock pinned at the end of those hours, every figure at 10 and 50
accounts stands beside the same figure at one account, measured in the same run (goal:
within 1.2x):

- ``claude-meter status`` between readings (answered from the segment cache), then
  ``claude-meter statusline`` (a 2.1.332 input) and ``status`` in turns (each status
  call the first after a reading): timed calls taking turns across the sizes, on the
  real clock (the stores end when the run began), as users run them;
- the bridge's valid ``POST /snapshots`` rate, one client, into each store;
- ``tmux-loop``'s CPU while idle (% of a core over ``--seconds``, from the kernel's
  scheduler statistics of the loop's threads) and the processes it starts per idle
  minute: one real tmux server per size on a private socket, the plugin loaded, a client
  attached, all over the same window;

and, from a store with an hour-old reading and no login, the refresh processes twenty
idle ``cm-guard`` start over ``--seconds`` beside one guard's (goal: one for all).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import bench_bridge
import bench_guard
import common
import scale_store
from common import Command, Figure, once
from scale_store import at

GOAL = "<= 1.2x"


def statusline_input() -> bytes:
    body = json.loads((common.FIXTURES / "claude_code_2_1_332_statusline_input.json").read_text())
    body["rate_limits"]["five_hour"]["resets_at"] = int(time.time() + 2 * 3600)
    body["rate_limits"]["seven_day"]["resets_at"] = int(time.time() + 3 * 86400)
    return json.dumps(body).encode()


def size_env(tmp: Path, accounts: int) -> dict[str, str]:
    """The environment of one size's store: claudemeter's default dirs (as users have
    them) under ``tmp/<n>``, Claude Code's login naming account 0, the real clock."""
    return common.default_dirs_env(
        tmp,
        XDG_STATE_HOME=str(tmp / f"{accounts}" / "state"),
        XDG_CONFIG_HOME=str(tmp / f"{accounts}" / "config"),
    )


def timed_calls(envs: dict[int, dict[str, str]], runs: int) -> dict[str, dict[int, float]]:
    """Median seconds per size, taking turns: ``status`` between readings (the segment
    cache answers it), then ``statusline`` and ``status`` in turns (each statusline
    call stores a reading, so each status call is the first redraw after one)."""
    status = Command([*common.meter(), "status"])
    statusline = Command([*common.meter(), "statusline", "--no-chain"], statusline_input())
    times: dict[tuple[str, int], list[float]] = {}
    for env in envs.values():
        once(status, env)  # the segment cache, as the last full render left it
    for _ in range(runs):
        for accounts, env in envs.items():
            times.setdefault(("status cached", accounts), []).append(once(status, env))
    for _ in range(runs):
        for accounts, env in envs.items():
            times.setdefault(("statusline", accounts), []).append(once(statusline, env))
            times.setdefault(("status", accounts), []).append(once(status, env))
    medians: dict[str, dict[int, float]] = {}
    for (name, accounts), samples in times.items():
        medians.setdefault(name, {})[accounts] = common.median(samples)
    return medians


def post_rate(env: dict[str, str], root: Path, posts: int) -> float:
    """Valid ``POST /snapshots`` per second, one client, into the store ``env`` names."""
    proc, port, token = bench_bridge.start(root, env)
    try:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

        def post(i: int) -> int:
            when = time.time()  # newer than any stored browser reading
            body = {
                "org_uuid": scale_store.FIRST_ORG,
                "browser": "Chrome",
                "account_email": "ada@example.com",
                "fetched_at": at(when),
                "usage": {
                    "five_hour": {"utilization": float(i % 100), "resets_at": at(when + 3600)}
                },
                "errors": [],
            }
            return bench_bridge.request(
                port, "POST", "/snapshots", json.dumps(body).encode(), headers
            )

        bench_bridge.timed(min(50, posts), 1, post, 200)  # warm up
        rate, _p99 = bench_bridge.timed(posts, 1, post, 200)
        return rate
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def schedstat_ns(pid: int) -> int:
    """CPU time of every thread of ``pid``, nanoseconds (0 once it is gone)."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


class Server:
    """A tmux server on a private socket with the plugin loaded and a client attached
    (from a second server's pane, as a terminal would), its loop reading ``env``'s store."""

    def __init__(self, env: dict[str, str], tmp: Path, tag: str) -> None:
        self.env, self.tag = env, tag
        conf = tmp / f"{tag}.conf"
        conf.write_text(
            "set -g message-limit 10000\nset -g @claude_meter_serve off\n"
            f"run-shell '{common.ROOT / 'claudemeter.tmux'}'\n"
        )
        self.inner, self.outer = f"scale-in-{tag}", f"scale-out-{tag}"
        common.attached_server(env, conf, self.inner, self.outer)

    def tmux(self, server: str, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-u", "-L", server, *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def loop_pid(self, wait: float = 30.0) -> int:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            found = self.tmux(self.inner, "show-options", "-gqv", "@claude_meter_loop_pid").strip()
            if found.isdigit():
                return int(found)
            time.sleep(0.2)
        raise SystemExit(f"tmux-loop did not start for {self.tag}")

    def clients_logged(self) -> int:
        """Distinct clients that ran a command, from the server's message log (this
        call's own ``show-messages`` among them)."""
        log = self.tmux(self.inner, "show-messages")
        return len({line.split()[1] for line in log.splitlines() if " command: " in line})

    def close(self) -> None:
        for name in (self.outer, self.inner):
            subprocess.run(
                ["tmux", "-L", name, "kill-server"],
                env=self.env,
                check=False,
                stderr=subprocess.DEVNULL,
            )


@contextmanager
def servers(envs: dict[int, dict[str, str]], tmp: Path) -> Iterator[dict[int, Server]]:
    started: dict[int, Server] = {}
    try:
        for accounts, env in envs.items():
            started[accounts] = Server(env, tmp, f"{accounts}")
        yield started
    finally:
        for server in started.values():
            server.close()


def loop_idle(
    envs: dict[int, dict[str, str]], tmp: Path, seconds: float
) -> tuple[dict[int, float], dict[int, float]]:
    """Per size, the loop's CPU (% of a core) and the processes it started per minute,
    every loop over one window."""
    with servers(envs, tmp) as running:
        pids = {accounts: server.loop_pid() for accounts, server in running.items()}
        time.sleep(3)  # its first rounds: pushing every option, rewriting placeholders
        clients = {accounts: server.clients_logged() for accounts, server in running.items()}
        cpu = {accounts: schedstat_ns(pid) for accounts, pid in pids.items()}
        started = time.monotonic()
        time.sleep(seconds)
        cpu = {accounts: schedstat_ns(pid) - cpu[accounts] for accounts, pid in pids.items()}
        window = time.monotonic() - started
        # the second count's own show-messages client is not the loop's
        clients = {
            accounts: server.clients_logged() - clients[accounts] - 1
            for accounts, server in running.items()
        }
    return (
        {accounts: 100 * ns / 1e9 / window for accounts, ns in cpu.items()},
        {accounts: n * 60 / window for accounts, n in clients.items()},
    )


def refreshes(guards: int, tmp: Path, seconds: float) -> int:
    """Refresh processes ``guards`` idle ``cm-guard`` start over ``seconds``, from a store
    whose reading is an hour old and no login: each guard's children that run Python
    code (``-c``), sampled every few milliseconds (a refresh lives far longer)."""
    root = tmp / f"guards-{guards}"
    env = common.isolated_env(root)
    with common.environ(env):
        from claudemeter.model import Snapshot, utcnow
        from claudemeter.store import Store

        old = utcnow() - timedelta(hours=1)
        usage = {
            "five_hour": {"utilization": 10.0, "resets_at": (old + timedelta(hours=3)).isoformat()}
        }
        Store().put([Snapshot("org-bench", "Chrome", "b@example.com", old, usage)])
    procs = [
        subprocess.Popen(
            [*bench_guard.guard_command(), "--poll", "1", "sleep", "100000"],
            env=env,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(guards)
    ]
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for guard in procs:
                try:
                    kids = Path(f"/proc/{guard.pid}/task/{guard.pid}/children").read_text().split()
                except OSError:
                    continue
                for kid in kids:
                    try:
                        argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
                    except OSError:
                        continue
                    if b"-c" in argv:
                        seen.add(int(kid))
            time.sleep(0.003)
    finally:
        for guard in procs:
            guard.terminate()
        for guard in procs:
            guard.wait(timeout=30)
    return len(seen)


def measure(
    runs: int = 20,
    seconds: float = 20,
    posts: int = 500,
    hours: float = 24,
    accounts: tuple[int, ...] = (10, 50),
    batch: int = 30,
) -> tuple[list[Figure], list[str]]:
    sizes = (1, *accounts)
    with tempfile.TemporaryDirectory(prefix="cmscale") as name:
        tmp = Path(name)
        envs = {n: size_env(tmp, n) for n in sizes}
        shutil.copy(
            common.FIXTURES / "claude_json_oauth_account.json", tmp / "home" / ".claude.json"
        )
        filled: dict[int, float] = {}
        end = time.time() // 60 * 60  # readers run on the real clock: the users' path
        for n, env in envs.items():
            t0 = time.monotonic()
            scale_store.fill(env, n, hours, end, batch)
            filled[n] = time.monotonic() - t0
        directories = {n: Path(env["XDG_STATE_HOME"]) / "claudemeter" for n, env in envs.items()}
        state_bytes = {n: (d / "state.json").stat().st_size for n, d in directories.items()}
        history_bytes = {
            n: sum((d / f).stat().st_size for f in ("history.json", "history-recent.json"))
            for n, d in directories.items()
        }
        shown = {
            n: subprocess.run(
                [*common.meter(), "status"], env=env, capture_output=True, text=True, check=True
            ).stdout.strip()
            for n, env in envs.items()
        }
        calls = timed_calls(envs, runs)
        cpu, spawned = loop_idle(envs, tmp, seconds)
        rates = {}
        for n, env in envs.items():
            shutil.copytree(directories[n], tmp / f"bridge-{n}" / "claudemeter")
            bridge_env = dict(env, XDG_STATE_HOME=str(tmp / f"bridge-{n}"))
            rates[n] = post_rate(bridge_env, tmp / f"bridge-{n}", posts)
        guard_runs = {g: refreshes(g, tmp, seconds) for g in (1, 20)}
    figures: list[Figure] = []
    for n in accounts:
        label = f"{n} accounts x {hours:g} h"
        figures += [
            Figure(
                f"status between readings, {label} (median of {runs})",
                calls["status cached"][n] * 1000,
                "ms",
                "1 account",
                calls["status cached"][1] * 1000,
                GOAL,
            ),
            Figure(
                f"status after a reading, {label} (median of {runs})",
                calls["status"][n] * 1000,
                "ms",
                "1 account",
                calls["status"][1] * 1000,
                GOAL,
            ),
            Figure(
                f"statusline, {label} (median of {runs})",
                calls["statusline"][n] * 1000,
                "ms",
                "1 account",
                calls["statusline"][1] * 1000,
                GOAL,
            ),
            Figure(
                f"bridge valid posts/s, {label}",
                rates[n],
                "/s",
                "1 account",
                rates[1],
                ">= 0.83x (1/1.2)",
            ),
            Figure(
                f"tmux-loop idle CPU over {seconds:g}s, {label}",
                cpu[n],
                "% core",
                "1 account",
                cpu[1],
                GOAL,
            ),
            Figure(
                f"processes tmux-loop starts per idle minute, {label}",
                spawned[n],
                "/min",
                "1 account",
                spawned[1],
                "<= 1",
            ),
        ]
    figures.append(
        Figure(
            f"refresh processes, 20 idle guards, old data, no login, {seconds:g}s",
            guard_runs[20],
            "",
            "1 guard",
            guard_runs[1],
            "<= 1x (one for all)",
        )
    )
    notes = [
        "stores: "
        + "; ".join(
            f"{n} account{'s' if n > 1 else ''}: state.json {state_bytes[n] / 1024:.0f} KiB,"
            f" history {history_bytes[n] / 1024:.0f} KiB, filled in {filled[n]:.0f}s"
            for n in sizes
        ),
        *(f"status prints at {n}: {_cut(shown[n])}" for n in sizes),
    ]
    return figures, notes


def _cut(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed calls per command and size")
    parser.add_argument("--seconds", type=float, default=20, help="idle windows (loop, guards)")
    parser.add_argument("--posts", type=int, default=500, help="timed bridge posts per size")
    parser.add_argument("--hours", type=float, default=24, help="hours of readings per store")
    parser.add_argument(
        "--accounts",
        type=int,
        action="append",
        help="a store size beside one account (repeatable; default 10 and 50)",
    )
    parser.add_argument(
        "--batch", type=int, default=30, help="simulated minutes per store write while filling"
    )
    args = parser.parse_args()
    figures, notes = measure(
        args.runs,
        args.seconds,
        args.posts,
        args.hours,
        tuple(args.accounts or (10, 50)),
        args.batch,
    )
    print(common.machine())
    print(common.table(figures))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
