"""``claude-meter tmux-loop``: one process per tmux server that keeps the segment current.

The status line reads ``#{E:@claude_meter}`` (and the other placeholders' options), so
a redraw starts no process at all. This loop re-renders every ``@claude_meter_interval``
seconds, or as soon as the store or the guard registry changes, and pushes the result
only when it differs: ages and countdowns keep moving, so stale data still looks stale.
It also raises the threshold notices. It exits when its server is gone, or on SIGTERM:
it publishes its pid in ``@claude_meter_loop_pid`` so the plugin can replace it with a
loop running new code after an update.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType

from . import env, registry
from .model import Snapshot
from .options import Settings
from .render import CRIT, OK, WARN, account_name, label, percent, short_reset
from .status import escape, render, tier, used
from .store import STATE_FILE, Store, ensure_private_dir
from .tmux import Tmux, TmuxGone, socket_path

_RANK = {OK: 0, WARN: 1, CRIT: 2}
#: How often the loop looks (stat only) for a changed store between renders.
WAKE = 1.0
NOTICE_MS = "5000"


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Keep this tmux server's claude-meter options current (the plugin starts it with"
        " run-shell -b; one per server, it exits when the server does). Needs $TMUX."
    )


@dataclass
class Notices:
    """Which tier each bucket was last announced at, per reset: once per window."""

    seen: dict[tuple[str, str], tuple[datetime | None, str]] = field(default_factory=dict)

    def check(self, rows: list[Snapshot], now: datetime, settings: Settings) -> list[str]:
        messages = []
        for row in rows:
            for name, window in row.windows().items():
                level = tier(used(window, now), settings)
                key = (row.account_key, name)
                resets, told = self.seen.get(key, (window.resets_at, OK))
                if resets != window.resets_at:
                    told = OK  # a new window: re-armed
                if _RANK[level] > _RANK[told]:
                    bound = settings.crit if level == CRIT else settings.warn
                    who = f" · {account_name(row)}" if len(rows) > 1 else ""
                    messages.append(
                        f"claude-meter: {label(name)} at {percent(window.utilization)}"
                        f" (≥ {level} {percent(bound)}) · {short_reset(window, now)}{who}"
                    )
                    told = level
                self.seen[key] = (window.resets_at, told)
        return messages


def _lock(socket: str) -> int | None:
    """One loop per server: an ``flock`` on a file named for the socket, held for life."""
    directory = ensure_private_dir(env.state_dir())
    digest = hashlib.sha256(socket.encode()).hexdigest()[:16]
    fd = os.open(directory / f"tmux-loop-{digest}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket}\n".encode())
    return fd


def _stamp(paths: list[Path]) -> tuple[float, ...]:
    stamps = []
    for path in paths:
        try:
            stamps.append(path.stat().st_mtime)
        except OSError:
            stamps.append(0.0)
    return tuple(stamps)


class Loop:
    def __init__(self, tmux: Tmux) -> None:
        self.tmux = tmux
        self.store = Store()
        self.notices = Notices()
        self.pushed: dict[str, str] = {}
        self.stop = False
        self.watched = [self.store.directory / STATE_FILE, registry.guards_dir()]
        self.delay_flag = ["-d", NOTICE_MS] if tmux.supports("display-message", "-d") else []

    def once(self) -> Settings:
        """Render, push what changed, announce crossings. Raises TmuxGone."""
        settings = Settings.from_options(self.tmux.options())
        state = self.store.read()
        now = env.now()
        rendered = render(state, now, settings, registry.paused_count())
        changed = {k: v for k, v in rendered.parts.items() if self.pushed.get(k) != v}
        self.tmux.set_user_options(changed)
        self.pushed.update(changed)
        if settings.notify:
            for message in self.notices.check(state.accounts(now), now, settings):
                self.announce(message, settings)
        return settings

    def announce(self, message: str, settings: Settings) -> None:
        clients = self.tmux.clients()
        if clients:
            self.tmux.run(
                *(
                    ["display-message", "-c", client, *self.delay_flag, escape(message)]
                    for client in clients
                )
            )
        notify = shutil.which("notify-send") if settings.notify_desktop else None
        if notify:
            with contextlib.suppress(OSError):
                subprocess.Popen(
                    [notify, "claude-meter", message],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )

    def run(self) -> None:
        while not self.stop:
            try:
                settings = self.once()
            except TmuxGone:
                raise
            except Exception as exc:  # a bug must not leave a frozen, trusted-looking segment
                settings = self.fail(exc)
            stamp = _stamp(self.watched)
            deadline = time.monotonic() + settings.interval
            while not self.stop and time.monotonic() < deadline:
                time.sleep(min(WAKE, max(0.0, deadline - time.monotonic())))
                if _stamp(self.watched) != stamp:
                    break

    def fail(self, exc: Exception) -> Settings:
        """Say so in the status line, note it in the state dir, and try again next round."""
        log = self.store.directory / "tmux-loop.log"
        with contextlib.suppress(OSError):
            ensure_private_dir(self.store.directory)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(f"{env.now():%Y-%m-%dT%H:%M:%SZ} {type(exc).__name__}: {exc}\n")
        self.tmux.set_user_options({"claude_meter": escape(f"claude: error, see {log}")})
        self.pushed.clear()  # the next good round pushes everything again
        return Settings()

    def halt(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True


def cmd_tmux_loop(args: argparse.Namespace) -> int:
    socket = socket_path()
    if socket is None:
        print(
            "claude-meter tmux-loop: not inside tmux ($TMUX is unset); the plugin starts"
            " it with run-shell -b",
            file=sys.stderr,
        )
        return 1
    if _lock(socket) is None:
        return 0  # this server already has its loop
    loop = Loop(Tmux(socket))
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, loop.halt)
    with contextlib.suppress(TmuxGone):
        loop.tmux.set_user_options({"claude_meter_loop_pid": str(os.getpid())})
        loop.run()
    return 0
