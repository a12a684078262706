"""The history: each account's bucket readings for eight days, every limit hit and reset,
and each agent session's cost over time, kept apart from the hot state file.

The status line parses ``state.json`` on every redraw, so nothing that grows with time
lives there. The history is two files in the same state dir, written under their own
lock (``history.lock``; :meth:`Store.update` calls :func:`record` once the state is
written), replaced atomically, read lock-free:

- ``history-recent.json``: the last hour at full resolution (readings at least
  :data:`MIN_SPACING` apart, session points :data:`SESSION_SPACING` apart), the last
  reading of every bucket, and what has not been compacted yet. Every write that adds
  something rewrites it; its size depends on how many agents ran in the last hour, not
  on how long claudemeter has run (at most :data:`MAX_RECENT_BYTES`).
- ``history.json``: everything older, up to :data:`KEEP_SECONDS` (8 days): readings at
  full resolution for :data:`FULL_SECONDS`, then one per :data:`SLOT_SECONDS` per
  bucket (plus the last one before each reset); session points likewise; every limit
  hit and reset. Rewritten only when the recent file is compacted into it, at most
  every :data:`COMPACT_EVERY`; never more than :data:`MAX_ARCHIVE_BYTES`.

Both bounds hold at any number of accounts, checked on the encoded bytes of every write
(:func:`_bounded`): sessions idle past a 5-hour window go first, then the archive's
oldest days down to :data:`ARCHIVE_FLOOR_SECONDS`, then every account's readings are
thinned alike (pace still has its last hour, coarser), and only a store of thousands of
accounts loses the accounts read longest ago.

Writers that are not inside ``Store.update`` (a hook process) call
``Store.record_limit_hit``. Times are epoch seconds, percents 0-100, costs US dollars.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .model import json_number
from .private import read_private, warn, write_private
from .windows import FIVE_HOUR

TYPE_CHECKING = False  # typing is for mypy: importing it costs the hot paths milliseconds
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _Event = TypeVar("_Event")

RECENT_FILE = "history-recent.json"
ARCHIVE_FILE = "history.json"
FORMAT_VERSION = 1

#: The history remembers this long.
KEEP_SECONDS = 8 * 86400.0
#: The recent file keeps this much at full resolution (pace needs 45 minutes, the
#: popup's sparkline an hour).
RECENT_SECONDS = 3600.0
#: How often the recent file's older part moves into the archive (and the ``{top}``
#: summary is recomputed).
COMPACT_EVERY = 300.0
#: The archive keeps full resolution this long, then one point per slot.
FULL_SECONDS = 3 * 3600.0
SLOT_SECONDS = 600.0
#: Readings within this long after a point are folded into it (five agents' statuslines).
MIN_SPACING = 20.0
#: A session's cost points this close are folded into one (its newest totals win).
SESSION_SPACING = 60.0
#: Two ``resets_at`` this close are the same window (sources round them differently).
RESET_MATCH = 120.0
#: A fall of this many points between readings is a reset even without a ``resets_at``.
RESET_DROP = 10.0
#: How far ahead of our clock a point may be before we call it a clock jump.
CLOCK_SKEW = 60.0
#: The stated bounds (bytes of compact JSON on disk), whatever the number of accounts:
#: enforced on every write (:func:`_bounded`).
MAX_RECENT_BYTES = 256 * 1024
MAX_ARCHIVE_BYTES = 1024 * 1024
#: Over its bound, the archive drops its oldest days down to this much before it
#: thins what is left (fifty busy accounts: about a day at full detail).
ARCHIVE_FLOOR_SECONDS = 86400.0
#: Limit hits and resets kept per account (far more than 8 days produce).
MAX_EVENTS = 2000
#: Where a limit hit came from (``LimitHit.source``).
HIT_READING = "reading"  # a reading showed the bucket at 100 %
HIT_OAUTH_429 = "oauth_429"  # our own OAuth poller was answered 429
HIT_STOP_FAILURE = "stop_failure"  # Claude Code's StopFailure hook, error rate_limit


@dataclass
class HistoryPoint:
    """One reading of an account: epoch seconds, percent per bucket, reset per bucket."""

    t: float
    used: dict[str, float]
    resets: dict[str, float]

    def to_json(self) -> Any:
        return {"t": self.t, "u": self.used, "r": self.resets}

    @classmethod
    def from_json(cls, body: Any) -> HistoryPoint | None:
        if not isinstance(body, dict) or json_number(body.get("t")) is None:
            return None
        return cls(float(body["t"]), _numbers(body.get("u")), _numbers(body.get("r")))


@dataclass(frozen=True)
class LimitHit:
    """The account hit a limit at ``at``: ``bucket`` when known (None for a 429 or a
    StopFailure, which do not say which), ``source`` one of the ``HIT_*`` names."""

    at: float
    bucket: str | None
    source: str

    def to_json(self) -> Any:
        return {"at": self.at, "bucket": self.bucket, "source": self.source}

    @classmethod
    def from_json(cls, body: Any) -> LimitHit | None:
        if not isinstance(body, dict) or json_number(body.get("at")) is None:
            return None
        bucket, source = body.get("bucket"), body.get("source")
        return cls(
            float(body["at"]),
            bucket if isinstance(bucket, str) else None,
            source if isinstance(source, str) else "unknown",
        )


@dataclass(frozen=True)
class Reset:
    """A bucket started a new window at ``at`` (its old ``resets_at``, or the reading
    that first showed the fall)."""

    at: float
    bucket: str

    def to_json(self) -> Any:
        return {"at": self.at, "bucket": self.bucket}

    @classmethod
    def from_json(cls, body: Any) -> Reset | None:
        if not isinstance(body, dict) or json_number(body.get("at")) is None:
            return None
        bucket = body.get("bucket")
        return cls(float(body["at"]), bucket) if isinstance(bucket, str) else None


@dataclass(frozen=True)
class SessionPoint:
    """A session's running totals at ``t``: what Claude Code reports as
    ``cost.total_cost_usd`` and its input/output token totals."""

    t: float
    cost_usd: float
    input_tokens: int
    output_tokens: int

    def to_json(self) -> Any:
        return [self.t, self.cost_usd, self.input_tokens, self.output_tokens]

    @classmethod
    def from_json(cls, body: Any) -> SessionPoint | None:
        if not isinstance(body, list) or len(body) != 4:
            return None
        values = [json_number(v) for v in body]
        if any(v is None for v in values):
            return None
        t, cost, tokens_in, tokens_out = (v or 0.0 for v in values)
        return cls(t, cost, int(tokens_in), int(tokens_out))


@dataclass
class Session:
    """One agent session (Claude Code's ``session_id``): where it runs, and its totals
    over time, oldest first. ``started`` (epoch) is when Claude Code says it began."""

    session_id: str
    pane: str | None = None
    project: str | None = None
    model: str | None = None
    started: float | None = None
    points: list[SessionPoint] = field(default_factory=list)

    def to_json(self) -> Any:
        return {
            "pane": self.pane,
            "project": self.project,
            "model": self.model,
            "started": self.started,
            "p": [p.to_json() for p in self.points],
        }

    @classmethod
    def from_json(cls, session_id: str, body: Any) -> Session | None:
        if not isinstance(body, dict):
            return None
        points = _parsed(body.get("p"), SessionPoint.from_json)
        return cls(
            session_id,
            _text(body.get("pane")),
            _text(body.get("project")),
            _text(body.get("model")),
            json_number(body.get("started")),
            points,
        )

    def merge(self, other: Session) -> None:
        """Fold a later copy of the same session in: newer facts win, points interleave."""
        self.pane = other.pane or self.pane
        self.project = other.project or self.project
        self.model = other.model or self.model
        if other.started is not None:
            earlier = other.started if self.started is None else self.started
            self.started = min(earlier, other.started)
        known = {p.t for p in self.points}
        self.points = sorted(
            [*self.points, *(p for p in other.points if p.t not in known)], key=lambda p: p.t
        )


@dataclass(frozen=True)
class SessionSample:
    """What one statusline call says about its session (recorded by :func:`record`)."""

    account: str
    session_id: str
    pane: str | None
    project: str | None
    model: str | None
    started: float | None
    point: SessionPoint


@dataclass
class Mark:
    """The last reading of one bucket, to tell a reset and a new limit hit."""

    t: float
    used: float
    resets: float | None
    hit_window: float | None = None  # the window (its resets_at, or 0) already hit

    def to_json(self) -> Any:
        return [self.t, self.used, self.resets, self.hit_window]

    @classmethod
    def from_json(cls, body: Any) -> Mark | None:
        if not isinstance(body, list) or len(body) != 4:
            return None
        t, used = json_number(body[0]), json_number(body[1])
        if t is None or used is None:
            return None
        return cls(t, used, json_number(body[2]), json_number(body[3]))


@dataclass
class AccountHistory:
    """Everything remembered about one account (its store key: org uuid, or email)."""

    points: list[HistoryPoint] = field(default_factory=list)
    hits: list[LimitHit] = field(default_factory=list)
    resets: list[Reset] = field(default_factory=list)
    sessions: dict[str, Session] = field(default_factory=dict)
    marks: dict[str, Mark] = field(default_factory=dict)

    def to_json(self) -> Any:
        body: dict[str, Any] = {
            "points": [p.to_json() for p in self.points],
            "hits": [h.to_json() for h in self.hits],
            "resets": [r.to_json() for r in self.resets],
            "sessions": {k: s.to_json() for k, s in self.sessions.items()},
        }
        if self.marks:
            body["marks"] = {k: m.to_json() for k, m in self.marks.items()}
        return body

    @classmethod
    def from_json(cls, body: Any) -> AccountHistory:
        if not isinstance(body, dict):
            return cls()
        sessions = {}
        raw_sessions = body.get("sessions")
        for key, value in raw_sessions.items() if isinstance(raw_sessions, dict) else []:
            session = Session.from_json(str(key), value)
            if session is not None:
                sessions[str(key)] = session
        raw_marks = body.get("marks")
        marks = {}
        for key, value in raw_marks.items() if isinstance(raw_marks, dict) else []:
            mark = Mark.from_json(value)
            if mark is not None:
                marks[str(key)] = mark
        return cls(
            _parsed(body.get("points"), HistoryPoint.from_json),
            _parsed(body.get("hits"), LimitHit.from_json),
            _parsed(body.get("resets"), Reset.from_json),
            sessions,
            marks,
        )

    def extend(self, later: AccountHistory) -> None:
        """Append a later stretch (the recent file after the archive)."""
        last = self.points[-1].t if self.points else float("-inf")
        self.points.extend(p for p in later.points if p.t > last)
        self.hits.extend(later.hits)
        self.resets.extend(later.resets)
        for key, session in later.sessions.items():
            if key in self.sessions:
                self.sessions[key].merge(session)
            else:
                self.sessions[key] = Session(**{**session.__dict__, "points": list(session.points)})
        self.marks.update(later.marks)


@dataclass
class Files:
    """One history file: its accounts and when the recent one was last compacted.

    A writer adding one account's reading parses only that account: the others stay
    in ``unread`` (their JSON as the file holds it, parsed or as text) and are written
    back as they were, so a write costs the same at fifty accounts as at one, bar the
    bytes. ``texts``: each account's JSON text as :meth:`to_bytes` last wrote it."""

    accounts: dict[str, AccountHistory] = field(default_factory=dict)
    compacted_at: float = 0.0
    unread: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, bytes] = field(default_factory=dict, repr=False)

    def account(self, key: str) -> AccountHistory:
        """One account's history, parsed now if it was not yet; a new one if none."""
        if key not in self.accounts:
            raw = self.unread.pop(key, None)
            if isinstance(raw, bytes):
                raw = json.loads(raw)
            self.accounts[key] = AccountHistory() if raw is None else AccountHistory.from_json(raw)
        return self.accounts[key]

    def read_all(self) -> dict[str, AccountHistory]:
        """Every account, parsed."""
        for key in list(self.unread):
            self.account(key)
        return self.accounts

    def to_bytes(self) -> bytes:
        """The file's compact JSON; an account still unread as text is copied as is."""
        self.texts = {k: _text_of(v) for k, v in self.unread.items()}
        self.texts.update((k, _text_of(a.to_json())) for k, a in self.accounts.items())
        head = {"version": FORMAT_VERSION, "compacted_at": self.compacted_at}
        accounts = b",".join(json.dumps(k).encode() + b":" + v for k, v in self.texts.items())
        return _text_of(head)[:-1] + b',"accounts":{' + accounts + b"}}"

    @classmethod
    def from_bytes(cls, data: bytes, lazy: bool = False) -> Files:
        """Raises ValueError for anything that is not a history file. ``lazy``: each
        account is parsed when :meth:`account` first asks for it."""
        body = json.loads(data)
        if not isinstance(body, dict) or not isinstance(body.get("accounts", {}), dict):
            raise ValueError("not a claudemeter history file")
        raw = {str(k): v for k, v in body.get("accounts", {}).items()}
        files = cls(compacted_at=json_number(body.get("compacted_at")) or 0.0, unread=raw)
        if not lazy:
            files.read_all()
        return files


def _text_of(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body, separators=(",", ":")).encode()


#: Per path, the bytes this process last wrote there and each account's text in them:
#: a long-lived writer (the bridge) whose file is still what it wrote neither parses
#: nor encodes again the accounts it does not touch.
_WRITTEN: dict[Path, tuple[bytes, float, dict[str, bytes]]] = {}


class Parsing(Mapping[str, AccountHistory]):
    """A file's accounts as a mapping, each parsed when first looked up."""

    def __init__(self, files: Files) -> None:
        self.files = files

    def __getitem__(self, key: str) -> AccountHistory:
        if key not in self.files.accounts and key not in self.files.unread:
            raise KeyError(key)
        return self.files.account(key)

    def __iter__(self) -> Iterator[str]:
        return iter([*self.files.accounts, *self.files.unread])

    def __len__(self) -> int:
        return len(self.files.accounts) + len(self.files.unread)


@dataclass
class Pending:
    """What writers added during one ``Store.update``; :func:`record` files it."""

    readings: list[tuple[str, HistoryPoint]] = field(default_factory=list)
    hits: list[tuple[str, LimitHit]] = field(default_factory=list)
    sessions: list[SessionSample] = field(default_factory=list)
    legacy: dict[str, list[HistoryPoint]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.readings or self.hits or self.sessions or self.legacy)


# --- reading ---------------------------------------------------------------------------


def _load(path: Path, lazy: bool = False) -> Files:
    """A history file; missing is empty. Raises ValueError (corrupt) or OSError
    (a symlink planted in its place is not followed). ``lazy``: see
    :meth:`Files.from_bytes`; and a file still holding what this process last wrote
    there is not parsed again."""
    try:
        data = read_private(path)
    except FileNotFoundError:
        return Files()
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EINVAL):  # a symlink, a FIFO: never ours
            raise ValueError(f"history file {path} is not a regular file") from None
        raise
    written = _WRITTEN.get(path)
    if lazy and written is not None and written[0] == data:
        return Files(compacted_at=written[1], unread=dict(written[2]))
    try:
        return Files.from_bytes(data, lazy)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"history file {path} is corrupt ({str(exc)[:80]})") from None


def _load_quietly(path: Path) -> Files:
    """For readers: what can be read, never an exception."""
    with contextlib.suppress(OSError, ValueError):
        return _load(path)
    return Files()


def recent(directory: Path) -> dict[str, AccountHistory]:
    """The last hour (plus what is not compacted yet), per account: what pace and the
    popup's sparkline need; one small file."""
    return _load_quietly(directory / RECENT_FILE).accounts


def read(directory: Path) -> dict[str, AccountHistory]:
    """Everything remembered, per account, oldest first: the archive, then the recent
    file. For ``top``, ``history`` and the popup, never for the status line."""
    merged = _load_quietly(directory / ARCHIVE_FILE).accounts
    for key, later in recent(directory).items():
        merged.setdefault(key, AccountHistory()).extend(later)
    return merged


def of_account(
    accounts: Mapping[str, AccountHistory], org_uuid: str, email: str | None
) -> AccountHistory:
    """One account's history, including what a source whose org look-up failed kept
    under the email."""
    keys = [org_uuid or f"email:{(email or '').lower()}"]
    if email:
        keys.append(f"email:{email.lower()}")
    found = AccountHistory()
    for key in dict.fromkeys(keys):
        if key in accounts:
            points = found.points + accounts[key].points  # interleaved, not appended
            found.extend(accounts[key])
            found.points = points
    found.points.sort(key=lambda p: p.t)
    found.hits.sort(key=lambda h: h.at)
    found.resets.sort(key=lambda r: r.at)
    return found


# --- writing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What :func:`record` left: the recent file's accounts (what pace is derived
    from; each parsed when first looked up), and whether it compacted into the archive
    this time."""

    recent: Mapping[str, AccountHistory]
    compacted: bool


def record(directory: Path, pending: Pending, now: float) -> Recorded:
    """File ``pending`` into the recent file, compacting into the archive when due.
    Call with the history's lock held (``Store.update`` does). Raises OSError when a
    file cannot be written; a corrupt file is moved aside with one line on stderr and
    history starts clean."""
    recent_path = directory / RECENT_FILE
    files = _load_or_move_aside(recent_path, lazy=True)
    if not files.compacted_at:
        files.compacted_at = now  # a fresh file: the first compaction is one interval away
    for key, points in pending.legacy.items():
        account = files.account(key)
        for point in points:
            _add_reading(account, point, now)
    for key, point in pending.readings:
        _add_reading(files.account(key), point, now)
    for key, hit in pending.hits:
        files.account(key).hits.append(hit)
    for sample in pending.sessions:
        _add_session(files.account(sample.account), sample)
    due = now - files.compacted_at >= COMPACT_EVERY or now < files.compacted_at - CLOCK_SKEW
    if due or pending.legacy:
        _compact(directory, files, now)
    # Not fsynced: rewritten on every write, a power cut loses at most its last hour.
    data = _bounded(files, MAX_RECENT_BYTES, now, KEEP_SECONDS)
    write_private(recent_path, data, durable=False)
    _WRITTEN[recent_path] = (data, files.compacted_at, files.texts)
    return Recorded(Parsing(files), compacted=due or bool(pending.legacy))


def _load_or_move_aside(path: Path, lazy: bool = False) -> Files:
    try:
        return _load(path, lazy)
    except ValueError as exc:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        with contextlib.suppress(OSError):
            path.replace(aside)
        warn(f"{exc}; moved it aside to {aside.name} and started clean")
        return Files()


def _add_reading(account: AccountHistory, point: HistoryPoint, now: float) -> None:
    """Append one reading (folding it into the last point when close), noting resets
    and limit hits from the change against each bucket's last reading."""
    for bucket, used in point.used.items():
        _note_events(account, bucket, point.t, used, point.resets.get(bucket))
    points = [p for p in account.points if p.t <= now + CLOCK_SKEW]  # the clock went back
    if points and points[-1].t > point.t:
        account.points = points
        return  # append-only in time: a late reading adds nothing to a rate
    if points and point.t - points[-1].t < MIN_SPACING:
        # The point keeps its time: moving it to each newer reading would let a steady
        # stream (a statusline every few seconds) slide one point forever.
        last = points[-1]
        points[-1] = HistoryPoint(
            last.t, {**last.used, **point.used}, {**last.resets, **point.resets}
        )
    else:
        points.append(point)
    account.points = points


def _note_events(
    account: AccountHistory, bucket: str, t: float, used: float, resets: float | None
) -> None:
    mark = account.marks.get(bucket)
    if mark is not None:
        if t < mark.t:
            return  # an older reading delivered late: it says nothing new
        if resets is not None and mark.resets is not None and mark.resets - resets > RESET_MATCH:
            return  # a source still showing the previous window
        moved = mark.resets is not None and (resets is None or resets - mark.resets > RESET_MATCH)
        if moved and mark.resets is not None and mark.resets <= t + RESET_MATCH:
            account.resets.append(Reset(min(mark.resets, t), bucket))
        elif mark.used - used > RESET_DROP:
            account.resets.append(Reset(t, bucket))
    window = resets if resets is not None else 0.0
    hit_window = mark.hit_window if mark is not None else None
    if used >= 100.0 and (hit_window is None or abs(hit_window - window) > RESET_MATCH):
        account.hits.append(LimitHit(t, bucket, HIT_READING))  # once per window
        hit_window = window
    account.marks[bucket] = Mark(t, used, resets, hit_window)


def _add_session(account: AccountHistory, sample: SessionSample) -> None:
    session = account.sessions.get(sample.session_id)
    if session is None:
        session = account.sessions[sample.session_id] = Session(sample.session_id)
    session.pane = sample.pane or session.pane
    session.project = sample.project or session.project
    session.model = sample.model or session.model
    if sample.started is not None and (session.started is None or sample.started < session.started):
        session.started = sample.started
    point = sample.point
    if session.points and point.t < session.points[-1].t:
        return
    close = session.points and point.t - session.points[-1].t < SESSION_SPACING
    if close and len(session.points) > 1:  # the first point stays: it anchors the start
        # the newest totals win, at the time of the point they fold into
        kept = session.points[-1]
        session.points[-1] = SessionPoint(
            kept.t, point.cost_usd, point.input_tokens, point.output_tokens
        )
    else:
        session.points.append(point)


# --- compaction ------------------------------------------------------------------------


def _compact(directory: Path, files: Files, now: float) -> None:
    """Move what is older than :data:`RECENT_SECONDS` into the archive, downsample and
    bound it, and write it."""
    archive_path = directory / ARCHIVE_FILE
    archive = _load_or_move_aside(archive_path)
    cut = now - RECENT_SECONDS
    for key, account in files.read_all().items():
        old = AccountHistory(
            points=[p for p in account.points if p.t < cut],
            hits=list(account.hits),
            resets=list(account.resets),
            sessions={
                k: Session(**{**s.__dict__, "points": [p for p in s.points if p.t < cut]})
                for k, s in account.sessions.items()
                if any(p.t < cut for p in s.points)
            },
        )
        archive.accounts.setdefault(key, AccountHistory()).extend(old)
        account.points = [p for p in account.points if p.t >= cut]
        account.hits, account.resets = [], []
        for session in account.sessions.values():
            session.points = [p for p in session.points if p.t >= cut]
        account.sessions = {k: s for k, s in account.sessions.items() if s.points}
    for account in archive.accounts.values():
        _downsample(account, now)
    archive.compacted_at = now
    files.compacted_at = now
    write_private(archive_path, _bounded(archive, MAX_ARCHIVE_BYTES, now, ARCHIVE_FLOOR_SECONDS))


def _downsample(account: AccountHistory, now: float) -> None:
    horizon = now - KEEP_SECONDS
    full = now - FULL_SECONDS
    account.points = _thin([p for p in account.points if horizon <= p.t <= now + CLOCK_SKEW], full)
    for key, session in list(account.sessions.items()):
        session.points = _thin_session([p for p in session.points if horizon <= p.t], full)
        if not session.points:
            del account.sessions[key]
    account.hits = [h for h in account.hits if h.at >= horizon][-MAX_EVENTS:]
    account.resets = [r for r in account.resets if r.at >= horizon][-MAX_EVENTS:]


def _slot(t: float, slot: float = SLOT_SECONDS) -> int:
    return int(t // slot)


def _thin(
    points: list[HistoryPoint], full: float, slot: float = SLOT_SECONDS
) -> list[HistoryPoint]:
    """Points before ``full``: the last per ``slot`` seconds, and the last before each
    reset."""
    kept = []
    for i, point in enumerate(points):
        following = points[i + 1] if i + 1 < len(points) else None
        if (
            point.t >= full
            or following is None
            or _slot(following.t, slot) != _slot(point.t, slot)
            or _resets_between(point, following)
        ):
            kept.append(point)
    return kept


def _thin_session(
    points: list[SessionPoint], full: float, slot: float = SLOT_SECONDS, anchored: bool = False
) -> list[SessionPoint]:
    """A session's points before ``full``: the last per ``slot`` seconds, and the first
    when ``anchored`` (it tells when the session started spending)."""
    return [
        p
        for i, p in enumerate(points)
        if p.t >= full
        or (anchored and i == 0)
        or i + 1 == len(points)
        or _slot(points[i + 1].t, slot) != _slot(p.t, slot)
    ]


def _resets_between(older: HistoryPoint, newer: HistoryPoint) -> bool:
    for bucket, used in older.used.items():
        later = newer.used.get(bucket)
        if later is not None and used - later > RESET_DROP:
            return True
        a, b = older.resets.get(bucket), newer.resets.get(bucket)
        if a is not None and b is not None and abs(a - b) > RESET_MATCH:
            return True
    return False


def _bounded(files: Files, limit: int, now: float, keep: float) -> bytes:
    """The file's bytes, at most ``limit`` however many accounts it holds: a real cap,
    checked on the encoded bytes, each step cutting what matters least until they fit.

    1. Sessions idle for longer than a 5-hour window (no ``{top}`` asks for them),
       the longest idle first, half of them at a time.
    2. The oldest readings and session points, down to the last ``keep`` seconds.
    3. Every account's readings and session points thinned alike to one per slot (the
       newest, the first of a session, and the last before a reset stay), the slot
       growing with how far over the bytes are.
    4. Limit hits and resets, the oldest half at a time; then sessions still active.
    5. The accounts read longest ago, half at a time (a store of thousands of
       accounts: what is left fits)."""
    data = files.to_bytes()
    slot = MIN_SPACING
    if len(data) > limit:
        files.read_all()
    while len(data) > limit:
        over = len(data) / limit
        accounts = files.accounts.values()
        # a session idle a whole 5-hour window no longer counts for any window's {top}
        idle = _sessions_by_last_point(files, before=now - FIVE_HOUR)
        oldest = _oldest(files, now)
        if idle:
            for _t, key, _session, account in idle[: max(1, len(idle) // 2)]:
                del account.sessions[key]
        elif oldest < now - keep:
            horizon = min(now - keep, oldest + max(6 * 3600.0, (now - oldest) * (1 - 1 / over)))
            for account in accounts:
                _forget_before(account, horizon)
        elif slot < KEEP_SECONDS and any(len(a.points) > 2 for a in accounts):
            slot = max(2 * slot, _mean_gap(files) * over)
            for account in accounts:
                _thin_account(account, slot)
        elif any(a.hits or a.resets for a in accounts):
            for account in accounts:
                account.hits = _newer_half(account.hits)
                account.resets = _newer_half(account.resets)
        elif any(a.sessions for a in accounts):
            active = _sessions_by_last_point(files)
            for _t, key, _session, account in active[: max(1, len(active) // 2)]:
                del account.sessions[key]
        else:
            by_age = sorted(files.accounts, key=lambda k: _last_read(files.accounts[k]))
            for key in by_age[: max(1, len(by_age) // 2)]:
                del files.accounts[key]
        data = files.to_bytes()
    return data


def _sessions_by_last_point(
    files: Files, before: float = math.inf
) -> list[tuple[float, str, Session, AccountHistory]]:
    """Every session last active before ``before``, the longest idle first."""
    found = [
        (session.points[-1].t if session.points else 0.0, key, session, account)
        for account in files.accounts.values()
        for key, session in account.sessions.items()
    ]
    return sorted((f for f in found if f[0] < before), key=lambda f: (f[0], f[1]))


def _forget_before(account: AccountHistory, horizon: float) -> None:
    account.points = [p for p in account.points if p.t >= horizon]
    for key, session in list(account.sessions.items()):
        session.points = [p for p in session.points if p.t >= horizon]
        if not session.points:
            del account.sessions[key]


def _thin_account(account: AccountHistory, slot: float) -> None:
    """Readings and session points to one per ``slot`` seconds (see :func:`_thin`)."""
    account.points = _thin(account.points, math.inf, slot)
    for session in account.sessions.values():
        session.points = _thin_session(session.points, math.inf, slot, anchored=True)


def _oldest(files: Files, now: float) -> float:
    """The time of the oldest reading or session point (``now`` when there is none)."""
    return min(
        [
            *(a.points[0].t for a in files.accounts.values() if a.points),
            *(
                s.points[0].t
                for a in files.accounts.values()
                for s in a.sessions.values()
                if s.points
            ),
            now,
        ]
    )


def _newer_half(events: list[_Event]) -> list[_Event]:
    return events[(len(events) + 1) // 2 :]


def _mean_gap(files: Files) -> float:
    """The mean time between an account's readings, over every account."""
    gaps = [
        (a.points[-1].t - a.points[0].t) / (len(a.points) - 1)
        for a in files.accounts.values()
        if len(a.points) > 1
    ]
    return sum(gaps) / len(gaps) if gaps else MIN_SPACING


def _last_read(account: AccountHistory) -> float:
    return max([p.t for p in account.points[-1:]] + [m.t for m in account.marks.values()] or [0.0])


# --- small helpers ---------------------------------------------------------------------


def _numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    found = {}
    for key, item in value.items():
        number = json_number(item)
        if number is not None:
            found[str(key)] = number
    return found


def _text(value: Any) -> str | None:
    return value[:500] if isinstance(value, str) and value else None


def _parsed(raw: Any, parse: Any) -> list[Any]:
    items: Iterable[Any] = raw if isinstance(raw, list) else []
    return [x for x in (parse(item) for item in items) if x is not None]
