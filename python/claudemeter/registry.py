"""Running guards announce themselves here, so the status line can show ``⏸N`` and
the popup which panes are paused until when.

One small file per guard (``guards/<pid>.json``): a guard writes only its own file, so
no lock is needed, and a reader drops any entry whose process is gone (a guard killed
with -9 cannot clean up after itself).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from . import env
from .store import ensure_private_dir, write_private

GUARDS_DIR = "guards"

RUNNING = "running"
HELD = "held"  # over the threshold before the command started
PAUSED = "paused"  # the command is stopped until resume_at


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


def guards_dir(state_dir: Path | None = None) -> Path:
    return (state_dir or env.state_dir()) / GUARDS_DIR


def register(entry: GuardEntry, state_dir: Path | None = None) -> Path:
    """Write (or rewrite) this guard's entry; call again whenever its state changes."""
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


def active(state_dir: Path | None = None) -> list[GuardEntry]:
    """Entries of live guards, oldest first; entries of dead guards are removed."""
    directory = guards_dir(state_dir)
    entries = []
    try:
        paths = sorted(directory.glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            entry = GuardEntry(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # being written, or not ours; a stale one has a dead pid below
        if not isinstance(entry.pid, int) or isinstance(entry.pid, bool):
            continue  # not a guard's file
        if not alive(entry.pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        entries.append(entry)
    return sorted(entries, key=lambda e: e.started_at)


def paused_count(state_dir: Path | None = None) -> int:
    return sum(1 for entry in active(state_dir) if entry.state in (PAUSED, HELD))
