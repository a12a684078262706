"""``claude-meter tmux-loop``: one process per tmux server that keeps the segment current.

The status line reads ``#{E:@claude_meter}`` (and the other placeholders' options), so
a redraw starts no process at all. This loop re-renders every ``@claude_meter_interval``
seconds, or as soon as the store or the guard registry changes, and pushes the result
only when it differs: ages and countdowns keep moving, so stale data still looks stale.
It also raises the threshold notices, and rewrites any raw ``#{claude_meter…}`` it finds
in an option (a theme's, ``status-format[]``, a ``status-right`` set after the plugin).

It never freezes silently. Every round it sets ``@claude_meter_until``, its deadline;
a status redraw past it shows ``claude: stalled`` and runs ``tmux-loop --detach``,
which starts a new loop (:mod:`claudemeter.placeholders`). A tmux call that fails or
times out (a stopped or swamped server) is logged and retried; the loop ends only when
its server is gone, or on SIGTERM, and says why in ``tmux-loop.log`` in the state dir.
It publishes its pid in ``@claude_meter_loop_pid`` so the plugin can replace it with a
loop running new code after an update, and records its pid and start time in its lock
file for ``claude-meter stop``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType

from . import env, pidfile, placeholders, registry, segment_cache
from .derived import DERIVED_FILE
from .model import Snapshot
from .options import Settings, parse_show_options, unquote
from .private import StoreError, ensure_private_dir, open_private, read_private, write_private
from .render import CRIT, OK, WARN, account_name, percent, short_reset
from .status import HORIZON, PLACEHOLDERS, escape, foreseen_changes, render, style, tier, used
from .store import STATE_FILE, State, Store
from .tmux import Tmux, TmuxError, TmuxGone, socket_path
from .windows import label

_RANK = {OK: 0, WARN: 1, CRIT: 2}
#: How often the loop looks (stat only) for a changed store between renders.
WAKE = 1.0
NOTICE_MS = "5000"
#: How long before the loop starts another resumer for the same waiting agents.
RESUME_RETRY = 300.0
#: Seconds a round may run late before the status line calls the loop stalled.
SLACK = 2.0
LOG = "tmux-loop.log"
#: Kept under this size: the older half is dropped.
LOG_BYTES = 64 * 1024
_WINDOW_MARK = "=== claude-meter: window options ==="
_SESSION_MARK = "=== claude-meter: sessions ==="
_SESSION_FORMAT = "#{session_id}\t#{status-left}\t#{status-right}"
#: The tmux commands whose output :func:`read_listing` parses (the loop and doctor).
LISTING: tuple[tuple[str, ...], ...] = (
    ("show-options", "-g"),
    ("display-message", "-p", _WINDOW_MARK),
    ("show-options", "-gw"),
    ("display-message", "-p", _SESSION_MARK),
    ("list-sessions", "-F", _SESSION_FORMAT),
)


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Keep this tmux server's claude-meter options current (the plugin starts it with"
        " run-shell -b; one per server, it exits when the server does). Needs $TMUX."
        " It logs why it stops to tmux-loop.log in the state dir."
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help="start the loop in the background and return at once (what the status line"
        " runs when the loop has stalled; a loop already running keeps going)",
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


def lock_path(socket: str, state_dir: Path | None = None) -> Path:
    """The loop's lock file for the server at ``socket``: ``tmux-loop-<hash>.lock``."""
    digest = hashlib.sha256(socket.encode()).hexdigest()[:16]
    return (state_dir or env.state_dir()) / f"tmux-loop-{digest}.lock"


def _lock(socket: str) -> int | None:
    """One loop per server: an ``flock`` on a file named for the socket, held for life.
    It holds ``<pid> <start time> <socket>`` (:mod:`claudemeter.pidfile`)."""
    ensure_private_dir(env.state_dir())
    fd = open_private(lock_path(socket), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{pidfile.this_process().line()} {socket}\n".encode())
    return fd


def log(message: str) -> None:
    """One line in the state dir's ``tmux-loop.log``; never raises."""
    path = env.state_dir() / LOG
    with contextlib.suppress(OSError):
        if path.lstat().st_size > LOG_BYTES and not path.is_symlink():
            kept = read_private(path)[-LOG_BYTES // 2 :]
            write_private(path, kept[kept.find(b"\n") + 1 :])
    with contextlib.suppress(OSError, StoreError):
        ensure_private_dir(path.parent)
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        with os.fdopen(fd, "a") as handle:
            handle.write(f"{env.now():%Y-%m-%dT%H:%M:%SZ} [{os.getpid()}] {message}\n")


def respawn_command() -> str:
    """The shell command the status line runs when the loop has stalled."""
    return shlex.join([sys.executable, "-m", "claudemeter", "tmux-loop", "--detach"])


def stalled_option(settings: Settings) -> str:
    """``@claude_meter_stalled``'s value for these settings (the stale colour)."""
    colour = style(settings.colour_stale).replace(",", "#,")
    marker = placeholders.branch("claude: stalled")
    if colour:
        marker = f"#[{colour}]{marker}#[default]"
    return placeholders.stalled_format(marker, f"#({placeholders.branch(respawn_command())})")


@dataclass
class Listing:
    """What one ``show-options`` round trip tells the loop about its server."""

    options: dict[str, str]  # the @claude_meter_* options, by short name
    raw: list[tuple[str, str]]  # (scope flag, option name) holding a raw placeholder
    sessions: list[tuple[str, str, str]]  # (session id, option, value) set locally, with one


def read_listing(text: str) -> Listing:
    """Parse the output of the :data:`LISTING` commands."""
    options_text, _, rest = text.partition(_WINDOW_MARK + "\n")
    window_text, _, session_text = rest.partition(_SESSION_MARK + "\n")
    raw = [
        (scope, line.split(" ", 1)[0])
        for scope, block in (("-g", options_text), ("-gw", window_text))
        for line in block.splitlines()
        if placeholders.has_raw(line)
    ]
    global_values = {name: value for name, value in _plain(options_text)}
    sessions = []
    for line in session_text.splitlines():
        session, *values = line.split("\t")
        for name, value in zip(("status-left", "status-right"), values, strict=False):
            if placeholders.has_raw(value) and value != global_values.get(name):
                sessions.append((session, name, value))
    return Listing(parse_show_options(options_text), raw, sessions)


def _plain(text: str) -> list[tuple[str, str]]:
    """(name, value) of ``show-options`` lines, tmux's quoting undone."""
    pairs = (line.partition(" ") for line in text.splitlines())
    return [(name, unquote(value)) for name, _, value in pairs]


@dataclass(frozen=True)
class Held:
    """The parts as last rendered, with their countdowns and ages as holes
    (:mod:`claudemeter.segment_cache`): until ``until`` (epoch seconds, exclusive; the
    next moment the parts may change other than by their clocks) and while ``key``
    (the store's files, the options, the paused count) stays the same, a round fills
    the holes instead of reading the store and rendering every account again."""

    key: tuple[object, ...]
    parts: dict[str, str]
    start: float
    until: float

    def holds(self, key: tuple[object, ...], now: float) -> bool:
        return key == self.key and self.start <= now < self.until

    def fill(self, now: float) -> dict[str, str]:
        return {name: segment_cache.fill(part, now) for name, part in self.parts.items()}


def hold(
    state: State, now: datetime, settings: Settings, paused: int, key: tuple[object, ...]
) -> Held:
    """Render every part with holes, held until the first foreseen change at or after
    ``now`` (:func:`claudemeter.status.foreseen_changes`), an hour at most."""
    start = now.timestamp()
    parts = dict(render(state, now, settings, paused, holes=True).parts)
    ahead = [moment for moment in foreseen_changes(state, now) if moment >= start]
    return Held(key, parts, start, min([start + HORIZON, *ahead]))


def _signature(paths: list[Path]) -> tuple[tuple[int, int, int], ...]:
    """What tells a replaced or changed file (inode, size, mtime in ns); zeros when
    missing."""
    found = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            found.append((0, 0, 0))
            continue
        found.append((info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(found)


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
        self.settings = Settings()
        self.stop = ""
        self.trouble = ""  # the last tmux failure logged, so a long one is logged once
        self.watched = [
            self.store.directory / STATE_FILE,
            self.store.directory / DERIVED_FILE,  # the pace a writer derived just after
            registry.guards_dir(),
        ]
        self.resumer: tuple[frozenset[str], float] = (frozenset(), -math.inf)
        self.held: Held | None = None
        self.delay_flag = ["-d", NOTICE_MS] if tmux.supports("display-message", "-d") else []

    def round_trip(self) -> Listing:
        """One tmux call: renew the deadline and read every option the round needs."""
        return read_listing(
            self.tmux.run(
                ["set-option", "-g", f"@{placeholders.UNTIL}", self.deadline(self.settings)],
                *LISTING,
            )
        )

    @staticmethod
    def deadline(settings: Settings) -> str:
        return str(math.ceil(time.time() + settings.interval + SLACK))

    def once(self) -> Settings:
        """Render, push what changed, announce crossings. Raises TmuxError/TmuxGone."""
        listing = self.round_trip()
        settings = Settings.from_options(listing.options)
        self.rewrite(listing)
        now = env.now()
        paused = registry.paused_count()
        key = (_signature(self.watched), settings, paused)  # before the read: never newer
        held, messages = self.held, []
        if held is None or not held.holds(key, now.timestamp()):
            state = self.store.read()
            held = self.held = hold(state, now, settings, paused, key)
            if settings.notify:  # a tier changes with the store or at a reset: here only
                messages = self.notices.check(state.accounts(now), now, settings)
        wanted = held.fill(now.timestamp())
        wanted[placeholders.STALLED] = stalled_option(settings)
        changed = {k: v for k, v in wanted.items() if self.pushed.get(k) != v}
        if settings.interval != self.settings.interval:
            changed[placeholders.UNTIL] = self.deadline(settings)
        self.tmux.set_user_options(changed)
        self.pushed.update(changed)
        self.settings = settings
        for message in messages:
            self.announce(message, settings)
        if settings.resume:
            self.start_resume(settings)
        return settings

    def start_resume(self, settings: Settings) -> None:
        """``@claude_meter_resume on``: a background ``claude-meter resume`` while some
        agent waits for a reset and none is running (it holds a lock while it works)."""
        from . import resume, stopped

        waiting = frozenset(r.session_id for r in stopped.all_records() if r.waiting)
        if not waiting or resume.running():
            return
        # A resumer that found nothing it may do (a 7-day window) is not restarted every
        # round for the same agents: again when they change, or after RESUME_RETRY.
        last, at = self.resumer
        if waiting == last and time.monotonic() - at < RESUME_RETRY:
            return
        self.resumer = (waiting, time.monotonic())
        argv = [sys.executable, "-m", "claudemeter", "resume", "--background"]
        argv += ["--text", settings.resume_text, "--stagger", f"{settings.resume_stagger:g}"]
        with contextlib.suppress(OSError):
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

    def rewrite(self, listing: Listing) -> None:
        """Every raw placeholder becomes what the plugin writes (SPEC section 7)."""
        commands = []
        for scope, name in listing.raw:
            value = self.tmux.run(["show-options", f"{scope}v", "--", name]).rstrip("\n")
            commands.append(["set-option", scope, "--", name, placeholders.interpolate(value)])
        for session, name, value in listing.sessions:
            commands.append(["set-option", "-t", session, name, placeholders.interpolate(value)])
        if commands:
            self.tmux.run(*commands)
            log("rewrote #{claude_meter…} in " + ", ".join(c[-2] for c in commands))

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

    def run(self) -> str:
        """Keep going until the server is gone or a signal asks; return why it stopped."""
        while not self.stop:
            try:
                settings = self.once()
                if self.trouble:
                    log(f"tmux answers again after: {self.trouble}")
                    self.trouble = ""
            except TmuxGone as exc:
                return str(exc)
            except TmuxError as exc:  # slow or failing, not gone: the next round tries again
                if not self.trouble:
                    log(f"a tmux call failed, retrying every round: {exc}")
                self.trouble = str(exc)
                settings = self.settings
            except Exception as exc:  # a bug must not leave a frozen, trusted-looking segment
                settings = self.fail(exc)
            stamp = _stamp(self.watched)
            deadline = time.monotonic() + settings.interval
            while not self.stop and time.monotonic() < deadline:
                time.sleep(min(WAKE, max(0.0, deadline - time.monotonic())))
                if _stamp(self.watched) != stamp:
                    break
        return self.stop

    def fail(self, exc: Exception) -> Settings:
        """Say so in the status line, note it in the log, and try again next round."""
        log(f"{type(exc).__name__}: {exc}")
        path = self.store.directory / LOG
        # Every placeholder says so: a #{claude_meter_5h} left alone would show the
        # last numbers as if they were current.
        failed = {name: "?" for name in PLACEHOLDERS if name != "claude_meter"}
        failed["claude_meter_paused"] = ""
        failed["claude_meter"] = escape(f"claude: error, see {path}")
        with contextlib.suppress(TmuxError):
            self.tmux.set_user_options(failed)
        self.pushed.clear()  # the next good round pushes everything again
        return Settings()

    def halt(self, signum: int, frame: FrameType | None) -> None:
        self.stop = f"{signal.Signals(signum).name} received"


def detach() -> int:
    """Start ``tmux-loop`` in its own session, not waiting for it (tmux's ``#()`` jobs
    are killed when tmux tidies them up; the loop must outlive its job)."""
    with contextlib.suppress(OSError):
        subprocess.Popen(
            [sys.executable, "-m", "claudemeter", "tmux-loop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    return 0


def cmd_tmux_loop(args: argparse.Namespace) -> int:
    socket = socket_path()
    if socket is None:
        print(
            "claude-meter tmux-loop: not inside tmux ($TMUX is unset); the plugin starts"
            " it with run-shell -b",
            file=sys.stderr,
        )
        return 1
    if args.detach:
        return detach()
    try:
        if _lock(socket) is None:
            return 0  # this server already has its loop
    except (OSError, StoreError) as exc:  # a symlink planted in its place, a shared dir
        print(f"claude-meter tmux-loop: cannot take its lock: {exc}", file=sys.stderr)
        return 1
    # One control-mode client for the loop's life: an idle round starts no process.
    loop = Loop(Tmux(socket, control=True))
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, loop.halt)
    log(f"started for the tmux server at {socket}")
    try:
        loop.tmux.set_user_options({"claude_meter_loop_pid": str(os.getpid())})
        why = loop.run()
    except TmuxGone as exc:
        why = str(exc)
    except TmuxError as exc:  # the first call: the next status redraw starts another
        why = f"tmux did not answer at start: {exc}"
    loop.tmux.close()
    log(f"stopping: {why}")
    return 0
