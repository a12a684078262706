"""Running guards announce themselves here, so the status line can show ``⏸N`` and
the popup which panes are paused until when.

One small file per guard (``guards/<pid>.json``): a guard writes only its own file, so
no lock is needed, and a reader drops any entry whose process is gone (a guard killed
with -9 cannot clean up after itself).

Nothing in an entry is trusted: every field is checked for its type and range, and a
guard is its pid *and* its process start time (``/proc/<pid>/stat`` field 22), so an
entry naming pid 1, a pid that was reused, or any other live process never counts.

With a fleet's Redis (:mod:`claudemeter.shared`), other hosts' guards come too: each sync
leaves them in ``guards/fleet.json``, each host's entries with the time its heartbeat
lapses (``until``, this host's clock). Their pids are another machine's, so they are
never checked here: a foreign entry counts while its host's heartbeat does, and readers
still read only files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import env
from .private import ensure_private_dir, read_private, write_private
from .procs import read_proc

TYPE_CHECKING = False  # typing is for mypy: importing it costs the hot paths milliseconds
if TYPE_CHECKING:
    from typing import Any

GUARDS_DIR = "guards"
#: Other hosts' guards, as this host's last sync with the fleet's Redis found them.
FLEET_FILE = "fleet.json"
MAX_FLEET_BYTES = 1 << 20
#: A host name as a foreign entry shows it (``socket.gethostname()``, at most this long).
MAX_HOST = 64

RUNNING = "running"
HELD = "held"  # over the threshold before the command started
PAUSED = "paused"  # the command is stopped until resume_at
STATES = (RUNNING, HELD, PAUSED)

#: Linux's largest possible pid (``pid_max`` can be at most 2**22).
PID_MAX = 1 << 22
MAX_ENTRY_BYTES = 8192
_PANE_RE = re.compile(r"%\d{1,9}")


@dataclass
class GuardEntry:
    pid: int
    command: str
    account: str | None
    state: str
    pane: str | None = None  # $TMUX_PANE, e.g. "%3"
    resume_at: float | None = None  # epoch seconds
    started_at: float = 0.0
    child_pid: int | None = None
    #: The guard's process start time, clock ticks after boot (``/proc/<pid>/stat``
    #: field 22); None where there is no ``/proc``.
    start: int | None = None
    #: The host another fleet member runs it on; None for a guard of this host.
    host: str | None = None

    @classmethod
    def from_json(cls, body: Any, pid: int) -> GuardEntry | None:
        """The entry of file ``<pid>.json``, or None when any field is not what a guard
        writes (wrong type, out of range, another pid than the file's name)."""
        if not isinstance(body, dict):
            return None
        try:
            entry = cls(
                pid=_pid(body.get("pid")),
                command=_text(body.get("command"), 400),
                account=_optional(_text, body.get("account"), 320),
                state=_text(body.get("state"), 10),
                pane=_optional(_text, body.get("pane"), 12),
                resume_at=_optional(_number, body.get("resume_at")),
                started_at=_number(body.get("started_at", 0.0)),
                child_pid=_optional(_pid, body.get("child_pid")),
                start=_optional(_count, body.get("start")),
            )
        except (TypeError, ValueError):
            return None
        if entry.pid != pid or entry.state not in STATES:
            return None
        if entry.pane is not None and not _PANE_RE.fullmatch(entry.pane):
            return None
        return entry


def _pid(value: Any) -> int:
    number = _count(value)
    if not 1 < number <= PID_MAX:  # 0, -1 and 1 (init) are never a guard
        raise ValueError(f"not a pid: {value!r}")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"not a count: {value!r}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number < 1e11:  # epoch seconds, to year 5138
        raise ValueError(f"not a time: {value!r}")
    return number


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise TypeError(f"not a string of at most {limit}: {value!r}")
    return value


def _optional(parse: Any, value: Any, *args: Any) -> Any:
    return None if value is None else parse(value, *args)


def guards_dir(state_dir: Path | None = None) -> Path:
    return (state_dir or env.state_dir()) / GUARDS_DIR


def register(entry: GuardEntry, state_dir: Path | None = None) -> Path:
    """Write (or rewrite) this guard's entry; call again whenever its state changes.
    An entry of this process gets its start time here, so readers can tell it apart
    from whatever process gets its pid after it."""
    if entry.start is None and entry.pid == os.getpid():
        entry.start = own_start()
    directory = ensure_private_dir(guards_dir(state_dir))
    path = directory / f"{entry.pid}.json"
    write_private(path, json.dumps(asdict(entry)).encode())
    return path


def unregister(pid: int, state_dir: Path | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        (guards_dir(state_dir) / f"{pid}.json").unlink()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process with that pid: not ours to judge
    return True


def own_start() -> int | None:
    """This process's start time, for its registry entry."""
    proc = read_proc(os.getpid())
    return proc.start if proc else None


def is_live_guard(entry: GuardEntry) -> bool:
    """The entry's pid is running and is the same process that wrote it. With
    ``/proc``, the start times must match (a pid reused, or a forged entry, fails);
    without, a live pid is all there is to go by."""
    if not _HAS_PROC:
        return alive(entry.pid)
    proc = read_proc(entry.pid)
    return proc is not None and entry.start is not None and proc.start == entry.start


_HAS_PROC = Path("/proc/self/stat").exists()


def active(state_dir: Path | None = None) -> list[GuardEntry]:
    """Entries of live guards, this host's and (with a fleet's Redis) the others',
    oldest first."""
    return sorted(local(state_dir) + foreign(state_dir), key=lambda e: e.started_at)


def local(state_dir: Path | None = None) -> list[GuardEntry]:
    """Entries of this host's live guards, oldest first; entries of dead guards are
    removed."""
    directory = guards_dir(state_dir)
    entries = []
    try:
        paths = sorted(path for path in directory.glob("*.json") if path.stem.isdigit())
    except OSError:
        return []
    for path in paths:
        try:
            body = json.loads(read_private(path, MAX_ENTRY_BYTES))
            entry = GuardEntry.from_json(body, int(path.stem))
        except (OSError, ValueError, RecursionError):
            continue  # being written, or not a guard's file
        if entry is None:
            continue  # not what a guard writes: never counted
        if not is_live_guard(entry):
            with contextlib.suppress(OSError):
                path.unlink()  # its guard is gone (or it never named one)
            continue
        entries.append(entry)
    return sorted(entries, key=lambda e: e.started_at)


@dataclass
class FleetHost:
    """Another host's guards as its last heartbeat in the fleet's Redis gave them."""

    host: str
    #: Epoch seconds on this host's clock: past it, the host's entries no longer count.
    until: float
    guards: list[GuardEntry]

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "until": self.until,
            "guards": [asdict(entry) for entry in self.guards],
        }

    @classmethod
    def from_json(cls, body: Any) -> FleetHost | None:
        """None when it is not what a sync writes; entries that are not what a guard
        writes are left out."""
        if not isinstance(body, dict) or not isinstance(body.get("guards"), list):
            return None
        try:
            host = _text(body.get("host"), MAX_HOST)
            until = _number(body.get("until"))
        except (TypeError, ValueError):
            return None
        if not host.isprintable():
            return None
        guards = []
        for item in body["guards"]:
            pid = item.get("pid") if isinstance(item, dict) else None
            entry = GuardEntry.from_json(item, pid) if isinstance(pid, int) else None
            if entry is not None:
                entry.host = host
                guards.append(entry)
        return cls(host, until, guards)


def foreign(state_dir: Path | None = None, now: float | None = None) -> list[GuardEntry]:
    """Other hosts' guards whose heartbeat has not lapsed (``guards/fleet.json``)."""
    now = time.time() if now is None else now
    return [entry for host in fleet_hosts(state_dir) if host.until > now for entry in host.guards]


def fleet_hosts(state_dir: Path | None = None) -> list[FleetHost]:
    """What the last sync left in ``guards/fleet.json``, lapsed heartbeats included."""
    try:
        body = json.loads(read_private(guards_dir(state_dir) / FLEET_FILE, MAX_FLEET_BYTES))
    except (OSError, ValueError, RecursionError):
        return []  # no fleet, or not a file a sync wrote
    hosts = body.get("hosts") if isinstance(body, dict) else None
    if not isinstance(hosts, list):
        return []
    return [host for host in map(FleetHost.from_json, hosts) if host is not None]


def keep_fleet(hosts: list[FleetHost], state_dir: Path | None = None) -> None:
    """Leave other hosts' guards for this host's readers (called by a sync)."""
    directory = ensure_private_dir(guards_dir(state_dir))
    body = {"hosts": [host.to_json() for host in hosts]}
    write_private(directory / FLEET_FILE, json.dumps(body).encode(), durable=False)


def paused_count(state_dir: Path | None = None) -> int:
    return sum(1 for entry in active(state_dir) if entry.state in (PAUSED, HELD))
