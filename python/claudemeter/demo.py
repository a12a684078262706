"""``claude-meter demo``: everything working on a simulated account, no login needed.

The demo is the real product pointed at a private world: a temporary state dir, its
own tmux socket, a bridge port of its own and no Claude Code login, so it can never
touch the user's tmux server, state or account. Inside it:

- a *simulated server* (pane 0) plays api.anthropic.com: it owns a 5-hour bucket that
  fills as the agents work and empties at its ``resets_at``, and writes what it would
  answer into the store each second, through the same ``Store.put`` the bridge uses;
- three *stand-in agents* run under the real ``cm-guard``, so they hold, pause and
  resume exactly as a guarded ``claude`` would;
- the tmux plugin is loaded from the package's own copy (``claudemeter/plugin/``,
  package data: links to the checkout's ``claudemeter.tmux`` and ``scripts/`` in an
  editable install, real files in a wheel, pipx or the plugin's venv), so the status
  line and ``prefix+M`` show what they show for a real account.

Work is measured, not scripted: each agent step appends a byte to a shared file, the
server turns bytes into percent, so a paused agent really stops the bucket climbing.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import registry
from .model import SOURCE_DEMO, Snapshot, format_time
from .store import Store

DEMO_ORG = "00000000-0000-4000-8000-00000000de70"
DEMO_EMAIL = "demo@claudemeter.invalid"
AGENTS = 3
#: Seconds of a full cycle at speed 1: the bucket climbs past the threshold in ~55 s,
#: the guards hold it there, and it resets at 75 s.
PERIOD = 75.0
STEP = 0.5  # seconds between an agent's steps at speed 1
PER_STEP = 0.185  # percent of the 5-hour bucket one agent step costs
START = 35.0  # percent at the first start
AFTER_RESET = 30.0  # percent right after a reset (other work keeps arriving)
THRESHOLD = 90.0
GRACE = 3.0

#: The plugin's entry, shipped as package data (pyproject.toml) so every install has it.
PLUGIN_ENTRY = Path(__file__).resolve().parent / "plugin" / "claudemeter.tmux"
STYLE_RE = re.compile(r"#\[[^\]]*\]")

TASKS = (
    "reading src/payments/ledger.py",
    "running the test suite",
    "editing the migration",
    "asking for a review of the diff",
    "refactoring the retry loop",
    "writing docs for the new flag",
)


@dataclass
class Bucket:
    """The simulated 5-hour bucket: percent from work done since the last reset."""

    base: float
    steps_at_reset: int
    resets_at: float

    def utilization(self, steps: int) -> float:
        return min(100.0, self.base + (steps - self.steps_at_reset) * PER_STEP)


def work_steps(work_file: Path) -> int:
    try:
        return work_file.stat().st_size
    except FileNotFoundError:
        return 0


def snapshot(five: float, resets_at: float, seven: float, now: float) -> Snapshot:
    week_reset = datetime.fromtimestamp(now, timezone.utc) + timedelta(days=3, hours=7)
    return Snapshot(
        org_uuid=DEMO_ORG,
        browser=SOURCE_DEMO,
        account_email=DEMO_EMAIL,
        fetched_at=datetime.fromtimestamp(now, timezone.utc),
        usage={
            "five_hour": {
                "utilization": round(five, 1),
                "resets_at": format_time(datetime.fromtimestamp(resets_at, timezone.utc)),
            },
            "seven_day": {"utilization": round(seven, 1), "resets_at": format_time(week_reset)},
            "seven_day_oauth_apps": {"utilization": 12.0, "resets_at": format_time(week_reset)},
        },
        subscription={"status": "active (simulated)"},
    )


INTRO = f"""\
 claudemeter demo: this pane plays the server's 5-hour bucket.
 The other panes run stand-in agents as `cm-guard -- claude N`;
 their work fills the bucket. At {THRESHOLD:.0f}% every guard pauses its
 agent; all resume together after the reset.

 Watch the status line (bottom right).
 Ctrl-b M: the breakdown (q closes it).
 Ctrl-b d or Ctrl-c: end the demo, removing all it made."""


def simulate(workdir: Path, speed: float) -> None:
    """The simulated server: publish the bucket every second until killed."""
    store = Store()
    work_file = workdir / "work"
    period = PERIOD / speed
    bucket = Bucket(START, 0, time.time() + period)
    resets = 0
    while True:
        now = time.time()
        steps = work_steps(work_file)
        if now >= bucket.resets_at:
            bucket = Bucket(AFTER_RESET, steps, now + period)
            resets += 1
        five = bucket.utilization(steps)
        store.put([snapshot(five, bucket.resets_at, 41.0 + steps // 100, now)])
        left = int(bucket.resets_at - now)
        bar = "#" * int(five / 5)
        # Redrawn in place, so the explanation stays on screen.
        print(
            f"\033[H\033[2J{INTRO}\n\n"
            f" 5-hour {five:5.1f}% [{bar:<20}] resets in {left:3d}s"
            f" · resets so far: {resets}",
            end="",
            flush=True,
        )
        time.sleep(max(0.25, 1.0 / speed))


def agent(number: int, workdir: Path, speed: float) -> None:
    """A stand-in for ``claude``: works in steps, each step costing quota."""
    fd = os.open(workdir / "work", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    step = 0
    while True:
        step += 1
        os.write(fd, b".")
        task = TASKS[(step + number) % len(TASKS)]
        print(f"agent {number} step {step:3d}: {task}", flush=True)
        time.sleep(STEP / speed)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_environment(workdir: Path) -> dict[str, str]:
    """A private world: nothing here can reach the user's state, login or bridge."""
    claude_dir = workdir / "no-claude-login"
    claude_dir.mkdir(exist_ok=True)
    return {
        **os.environ,
        "CLAUDEMETER_STATE_DIR": str(workdir / "state"),
        "CLAUDEMETER_CONFIG_DIR": str(workdir / "config"),
        "CLAUDE_CONFIG_DIR": str(claude_dir),
        "CLAUDEMETER_CLAUDE_CONFIG_DIRS": str(claude_dir),
        "CLAUDEMETER_BRIDGE": f"127.0.0.1:{free_port()}",
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    }


class DemoSession:
    """The demo's own tmux server, torn down (with everything it started) on exit."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.workdir = Path(tempfile.mkdtemp(prefix="claudemeter-demo-"))
        self.workdir.chmod(0o700)
        self.socket = f"claudemeter-demo-{os.getpid()}"
        self.socket_path: str | None = None  # known once the server runs
        self.env = demo_environment(self.workdir)
        # through sh: a package manager may not keep the entry's executable bit
        self.load_plugin = shlex.join(["/bin/sh", str(PLUGIN_ENTRY)])

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=30,
        )

    def python(self, *args: str) -> str:
        return shlex.join([sys.executable, "-m", "claudemeter.demo", *args])

    def start(self) -> None:
        conf = self.workdir / "tmux.conf"
        conf.write_text(
            "set -g status-right-length 80\n"
            "set -g status-interval 1\n"
            'set -g status-right "#{claude_meter} | %H:%M:%S"\n'
            f"set -g @claude_meter_bin {shlex.quote(str(Path(sys.executable).parent))}"
            "/claude-meter\n"
            "set -g @claude_meter_interval 1\n"
            "set -g @claude_meter_serve off\n"  # no browser here: no bridge to start
            "bind -n C-c kill-server\n"
            f"run-shell {shlex.quote(self.load_plugin)}\n"
        )
        speed = f"{self.speed:g}"
        self.tmux(
            "-f",
            str(conf),
            "new-session",
            "-d",
            "-s",
            "demo",
            "-x",
            "160",
            "-y",
            "45",
            "-n",
            "claudemeter-demo",
            self.python("simulate", str(self.workdir), speed),
        )
        # Asked now: once Ctrl-c (kill-server) has run, nobody is left to answer.
        found = self.tmux("display-message", "-p", "#{socket_path}", check=False)
        self.socket_path = found.stdout.strip() or None
        guard = shlex.join(
            [
                sys.executable,
                "-m",
                "claudemeter.guard",
                "--threshold",
                f"{THRESHOLD:.0f}",
                "--grace",
                f"{GRACE / self.speed:g}",
                "--poll",
                f"{min(1.0, 2 / self.speed):g}",
                "--",
            ]
        )
        # The stand-in is called `claude`, so the guards and the popup name it as a
        # guarded `claude` would be named.
        bindir = self.workdir / "bin"
        bindir.mkdir()
        stand_in = bindir / "claude"
        stand_in.write_text(
            f'#!/bin/sh\nexec {self.python("agent")} "$1" '
            f"{shlex.quote(str(self.workdir))} {speed}\n"
        )
        stand_in.chmod(0o700)
        for number in range(1, AGENTS + 1):
            command = f'PATH={shlex.quote(str(bindir))}:"$PATH" {guard} claude {number}'
            self.tmux("split-window", "-t", "demo", "-v", command)
        self.tmux("select-layout", "-t", "demo", "tiled")
        # The plugin re-reads options on load; run it again now the session exists.
        self.tmux("run-shell", self.load_plugin, check=False)

    def status_line(self) -> str:
        """The segment as ``claude-meter status`` renders the demo's store now, without
        its colour codes: read at the same moment as the guards beside it (the tmux
        option the plugin pushes trails it by up to its interval, several simulated
        seconds at a high ``--speed``)."""
        done = subprocess.run(
            [sys.executable, "-m", "claudemeter", "status"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return STYLE_RE.sub("", done.stdout).strip()

    def guard_states(self) -> list[str]:
        return [entry.state for entry in registry.active(self.workdir / "state")]

    def stop(self) -> None:
        """Kill the server, let everything it ran finish writing, then remove the world."""
        guards = [entry.pid for entry in registry.active(self.workdir / "state")]
        self.tmux("kill-server", check=False)
        if self.socket_path:
            with contextlib.suppress(OSError):  # tmux 3.3 leaves it behind
                Path(self.socket_path).unlink()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            any(registry.alive(pid) for pid in guards) or self._loop_running()
        ):
            time.sleep(0.1)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _loop_running(self) -> bool:
        """The plugin's tmux-loop holds an flock for life; free means it has exited."""
        for lock in (self.workdir / "state").glob("tmux-loop-*.lock"):
            with open(lock, "rb") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
        return False


def run_headless(session: DemoSession, seconds: float) -> int:
    """No terminal to attach: narrate the status line and the guards for a while."""
    start = time.time()
    last = ""
    while time.time() - start < seconds:
        states = session.guard_states()
        line = f"{session.status_line():<40} guards: " + (", ".join(states) or "starting")
        if line != last:
            print(f"t={time.time() - start:5.1f}s  {line}", flush=True)
            last = line
        time.sleep(0.5)
    return 0


def run(args: argparse.Namespace) -> int:
    if shutil.which("tmux") is None:
        print(
            "claude-meter demo: tmux is not installed (apt install tmux / brew install tmux)",
            file=sys.stderr,
        )
        return 1
    if not PLUGIN_ENTRY.is_file():
        print(
            f"claude-meter demo: the tmux plugin is missing from this install ({PLUGIN_ENTRY});"
            " reinstall claudemeter",
            file=sys.stderr,
        )
        return 1
    session = DemoSession(args.speed)
    for signum in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal cleans up too
        signal.signal(signum, lambda *_: sys.exit(0))
    try:
        session.start()
        if args.no_attach or not sys.stdin.isatty():
            return run_headless(session, args.seconds)
        if os.environ.get("TMUX"):
            print(
                "claude-meter demo: inside tmux, Ctrl-b goes to your own tmux first: press it"
                " twice for the demo's (Ctrl-b Ctrl-b M, Ctrl-b Ctrl-b d), or Ctrl-c to end",
                file=sys.stderr,
            )
            time.sleep(3)
        subprocess.run(
            ["tmux", "-L", session.socket, "attach", "-t", "demo"], env=session.env, check=False
        )
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"claude-meter demo: tmux failed: {(exc.stderr or '').strip()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        session.stop()


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 100:  # also false for nan
        raise argparse.ArgumentTypeError(f"expected a number from 0.1 to 100, got {text!r}")
    return value


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Open a tmux session on its own socket with a simulated account: three guarded "
        "stand-in agents fill the 5-hour bucket, the status line climbs through its tiers, "
        "the guards pause at the threshold and resume together after the simulated reset. "
        "Nothing touches your tmux server, your state or your Claude login. Ctrl-b d or "
        "Ctrl-c ends it and cleans everything up."
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="run the simulation this many times faster (default 1)",
    )
    parser.add_argument(
        "--no-attach",
        action="store_true",
        help="do not attach; print the status line and guards as they change",
    )
    parser.add_argument(
        "--seconds", type=float, default=90.0, help="with --no-attach: how long to run (default 90)"
    )


def main(argv: list[str] | None = None) -> int:
    """Internal roles the demo session runs in its panes."""
    argv = sys.argv[1:] if argv is None else argv
    role, rest = argv[0], argv[1:]
    with contextlib.suppress(KeyboardInterrupt):
        if role == "simulate":
            simulate(Path(rest[0]), float(rest[1]))
        elif role == "agent":
            agent(int(rest[0]), Path(rest[1]), float(rest[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
