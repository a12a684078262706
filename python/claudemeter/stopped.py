"""Agents that hit the wall: Claude Code sessions whose turn ended on a rate limit.

``claude-meter hook stop-failure`` (Claude Code's ``StopFailure`` hook, ``error:
"rate_limit"``) writes one :class:`StoppedSession` per session, ``resume`` brings them
back at the reset, the gate notes every later hook event of the session (that is how a
resume is confirmed), and the popup lists the ones still waiting.

One small private file per session (``stopped/<session_id>.json``, 0600 in a 0700
directory): a writer touches only its own session's file, so no lock is needed, and a
file that does not parse is ignored, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import env
from .private import ensure_private_dir, write_private
from .sources.claude_account import Account
from .store import State

STOPPED_DIR = "stopped"
#: Records older than this are dropped on read: the session is long gone.
MAX_AGE = 8 * 86400
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: ``outcome`` values, besides None (still waiting).
UNCONFIRMED = "not confirmed"
SKIPPED = "skipped"
BY_HAND = "resumed by hand"


@dataclass
class StoppedSession:
    """One session stopped by a rate limit, and what ``resume`` has done about it.

    Times are epoch seconds. ``agent_pid``/``agent_start`` (clock ticks since boot, from
    ``/proc``) name the Claude Code process that ran the hook, so a resume types only
    into a pane still running that same process."""

    session_id: str
    cwd: str
    at: float
    pane: str | None = None  # $TMUX_PANE, "%3"
    tmux: str | None = None  # the tmux server's socket path, from $TMUX
    org_uuid: str = ""  # the login's account (its config dir's .claude.json)
    email: str | None = None
    resets_at: float | None = None  # the 5-hour window's reset when it stopped
    agent_pid: int | None = None
    agent_start: int | None = None
    typed_at: float | None = None  # when resume last typed the text
    tries: int = 0
    active_at: float | None = None  # the session's last hook event after ``at``
    outcome: str | None = None
    detail: str = ""

    @property
    def waiting(self) -> bool:
        """Still to be resumed: nobody typed into it, no later activity, nothing decided."""
        return self.outcome is None and self.active_at is None and self.typed_at is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: Any) -> StoppedSession | None:
        """The record, or None when the body is not one (a stray or damaged file)."""
        if not isinstance(body, dict):
            return None
        known = {f.name for f in fields(cls)}
        try:
            record = cls(**{k: v for k, v in body.items() if k in known})
        except TypeError:
            return None
        if not valid_session_id(record.session_id) or not isinstance(record.at, (int, float)):
            return None
        return record


def valid_session_id(value: object) -> bool:
    return isinstance(value, str) and bool(_SESSION_ID.match(value))


def stopped_dir(state_dir: Path | None = None) -> Path:
    return (state_dir or env.state_dir()) / STOPPED_DIR


def _path(session_id: str, state_dir: Path | None = None) -> Path:
    return stopped_dir(state_dir) / f"{session_id}.json"


def save(record: StoppedSession, state_dir: Path | None = None) -> Path:
    directory = ensure_private_dir(stopped_dir(state_dir))
    path = directory / f"{record.session_id}.json"
    write_private(path, json.dumps(record.to_json()).encode())
    return path


def load(session_id: str, state_dir: Path | None = None) -> StoppedSession | None:
    try:
        body = json.loads(_path(session_id, state_dir).read_text())
    except (OSError, ValueError):
        return None
    return StoppedSession.from_json(body)


def forget(session_id: str, state_dir: Path | None = None) -> None:
    with contextlib.suppress(OSError):
        _path(session_id, state_dir).unlink()


def all_records(state_dir: Path | None = None) -> list[StoppedSession]:
    """Every record, oldest stop first; records past :data:`MAX_AGE` are removed."""
    try:
        paths = sorted(stopped_dir(state_dir).glob("*.json"))
    except OSError:
        return []
    records = []
    horizon = time.time() - MAX_AGE
    for path in paths:
        try:
            record = StoppedSession.from_json(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
        if record is None:
            continue
        if record.at < horizon:
            forget(record.session_id, state_dir)
            continue
        records.append(record)
    return sorted(records, key=lambda r: r.at)


def note_activity(session_id: object, state_dir: Path | None = None) -> None:
    """A hook event of this session: if it had stopped on the limit, it is going again
    (a resume took, or the user went on by hand). Costs one failed ``open`` otherwise,
    since the gate calls it before every tool call."""
    if not valid_session_id(session_id):
        return
    assert isinstance(session_id, str)
    record = load(session_id, state_dir)
    if record is None or record.active_at is not None:
        return
    record.active_at = time.time()
    if record.typed_at is None:
        record.outcome = BY_HAND
    with contextlib.suppress(OSError):
        save(record, state_dir)


@dataclass(frozen=True)
class Process:
    """A process as ``/proc`` shows it: enough to recognise it again later."""

    pid: int
    start: int  # clock ticks since boot: with the pid, unique for the machine's uptime
    pgrp: int
    tty: int  # device number of its controlling terminal, 0 for none
    tpgid: int  # the terminal's foreground process group

    @classmethod
    def read(cls, pid: int) -> Process | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # Fields after the command name, which may hold spaces and parentheses.
        rest = stat.rpartition(")")[2].split()
        try:
            return cls(pid, int(rest[19]), int(rest[2]), int(rest[4]), int(rest[5]))
        except (IndexError, ValueError):
            return None

    def parent(self) -> int | None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            return int(stat.rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            return None

    @property
    def in_foreground(self) -> bool:
        """Its process group owns its terminal: what the user sees and types into."""
        return self.tty != 0 and self.pgrp == self.tpgid


def agent_process(start: int | None = None) -> Process | None:
    """The Claude Code process that runs this hook: the nearest ancestor with a
    controlling terminal (Claude Code starts hooks in a session of their own, through
    ``/bin/sh -c``)."""
    pid: int | None = os.getppid() if start is None else start
    for _ in range(6):
        if pid is None or pid <= 1:
            return None
        proc = Process.read(pid)
        if proc is None:
            return None
        if proc.tty != 0:
            return proc
        pid = proc.parent()
    return None


def five_hour_reset_after(state: State, login: Account | None, moment: datetime) -> datetime | None:
    """The reset of the 5-hour window that held ``moment``: the first ``resets_at``
    after it that the account's readings carry, else its history (once the reset has
    passed, the fold drops the window and Claude Code's statusLine leaves it out, but the
    agents that stopped in that window are due exactly then)."""
    keys = {r.account_key for r in state.rows} if login is None else {login.key}
    if len(keys) != 1:
        return None  # which account's reset is unknowable: not guessed
    times = [
        w.resets_at
        for row in state.rows
        if row.account_key in keys
        and (w := row.window("five_hour")) is not None
        and w.resets_at is not None
    ]
    found = min((t for t in times if t > moment), default=None)
    if found is not None:
        return found
    from . import history

    [key] = keys
    past = history.read(env.state_dir()).get(key, history.AccountHistory())
    stamps = [p.resets["five_hour"] for p in past.points if "five_hour" in p.resets]
    stamps += [r.at for r in past.resets if r.bucket == "five_hour"]
    after = [t for t in stamps if t > moment.timestamp()]
    return datetime.fromtimestamp(min(after), timezone.utc) if after else None
