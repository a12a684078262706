"""The state file: every source's latest snapshot per account and each source's
bookkeeping (last attempt, back-off), in one JSON file. The history lives apart
(:mod:`claudemeter.history`, under its own lock, written after the state), so this file
stays small however long claudemeter runs; what the redraw path shows from the history
(pace, the top session) is derived by the writers into ``derived.json`` beside it
(:mod:`claudemeter.derived`), which :meth:`Store.read` loads into ``State.derived``.

Writers serialise on a ``flock`` (:mod:`claudemeter.flock`) and replace the file atomically and
durably; readers never lock, because ``os.replace`` means they see the old file or the
new one, never half of either. That keeps the status line's read path lock-free.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from . import env
from .dedupe import dedupe_by_account
from .derived import file_history, read_derived
from .history import HistoryPoint, LimitHit, Pending, SessionSample
from .model import JSON, Snapshot, utcnow
from .private import StoreError, check_private_dir, private_lock, read_private, warn, write_private
from .sources import OAUTH_PREFIX, STATUS_LOGIN, STATUS_OK, SourceBook, book_from_json, oauth_key

TYPE_CHECKING = False  # typing is for mypy: importing it costs the hot paths milliseconds
if TYPE_CHECKING:
    from typing import Any

    from .flock import FileLock

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
#: The history's own lock: its files are written after the state's lock is released, so
#: history I/O never holds up the state (what the guards read).
HISTORY_LOCK_FILE = "history.lock"
FORMAT_VERSION = 1

#: How far ahead of our clock a reading may be before we call it a clock jump.
CLOCK_SKEW = timedelta(seconds=60)
#: The most sources (rows) one account keeps: its newest; our own few sources plus a
#: handful of browsers, however many browser names have posted over time.
MAX_ROWS_PER_ACCOUNT = 12
#: How long a writer waits for another writer before giving up with a clear error.
WRITE_LOCK_TIMEOUT = 10.0


#: Rows as parsed, by (org, source), with the JSON each was parsed from.
ParsedRows = dict[tuple[str, str], tuple[object, Snapshot]]


def _row_key(item: Any) -> tuple[str, str] | None:
    if not isinstance(item, dict):
        return None
    org, browser = item.get("org_uuid"), item.get("browser")
    email = item.get("account_email")
    if not isinstance(org, str) or not isinstance(browser, str):
        return None
    return (org or f"email:{email}", browser)


@dataclass
class State:
    """What the file holds: every source's latest row per account, and each source's
    bookkeeping (:class:`~claudemeter.sources.SourceBook`) by source key. A source
    writes its own book (``sources[key] = book``); readers ask the methods below, whose
    one rule (:meth:`books_of`) says which row a book concerns."""

    rows: list[Snapshot] = field(default_factory=list)
    sources: dict[str, SourceBook] = field(default_factory=dict)
    problem: str | None = None  # set when the file on disk could not be read
    #: Per account key, what :mod:`claudemeter.derived` derived from the history when
    #: a reading was written (``derived.json``; its JSON: only that module reads it).
    derived: dict[str, JSON] = field(default_factory=dict)
    #: What writers added in this update, for the history file (never written here).
    pending: Pending = field(default_factory=Pending)
    #: Rows of the file that no longer parse (a reader skips them, the next write drops
    #: them), and why the first one did not.
    skipped: int = 0
    skipped_why: str = ""
    #: The rows as :meth:`from_json` made them, with the JSON each came from: each of
    #: those reads back (the writer re-checks only the others), and a long-lived
    #: reader's next read parses only the rows that changed (:class:`Store`).
    parsed: ParsedRows = field(default_factory=dict, repr=False)

    def book(self, key: str) -> SourceBook:
        """The book of the source ``key`` (empty when it has booked nothing)."""
        return self.sources.get(key) or SourceBook()

    def books_of(self, row: Snapshot) -> dict[str, SourceBook]:
        """The books that concern ``row``'s account: its OAuth booking
        (``oauth:<org uuid>``, whatever its status) and every rejected login that may be
        its (:func:`login_books`). The one attribution rule: the popup lists these under
        the row, and a book with an error that no row claims is "without data"."""
        found = {k: b for k, b in self.sources.items() if k == oauth_key(row.org_uuid)}
        found.update(login_books(self.sources, row))
        return found

    def unclaimed(self, rows: Iterable[Snapshot]) -> list[SourceBook]:
        """Books with an error that concern none of ``rows`` (:meth:`books_of`)."""
        claimed = {key for row in rows for key in self.books_of(row)}
        return [b for k, b in self.sources.items() if b.get("error") and k not in claimed]

    def login_problem(self, row: Snapshot | None) -> str | None:
        """Why ``row``'s login was rejected, in the OAuth source's words (:func:`login_problem`)."""
        return login_problem(self.sources, row)

    def any_login_rejected(self) -> bool:
        """Some OAuth login, whatever its account, was rejected or expired: with no row
        to show, the segment says ``login`` rather than ``setup``."""
        return any(book.get("status") == STATUS_LOGIN for book in self.sources.values())

    def oauth_books(self) -> list[SourceBook]:
        """Every login's OAuth booking (when each last asked, how long it backs off)."""
        return [b for k, b in self.sources.items() if k.startswith(OAUTH_PREFIX)]

    def problems(self, failing: bool = False) -> list[str]:
        """Every book's error, in the sources' own words; with ``failing``, only of
        books whose status says the source is not working (not ok, not yet asked)."""
        return [
            error
            for book in self.sources.values()
            if (error := book.get("error"))
            and not (failing and book.get("status") in (None, STATUS_OK))
        ]

    def accounts(self, now: datetime | None = None) -> list[Snapshot]:
        """The deduped rows, one per account: what every reader shows."""
        return dedupe_by_account(self.rows, now)

    def record_limit_hit(self, account_key: str, hit: LimitHit) -> None:
        """Remember a limit hit in the history (filed when the update ends)."""
        self.pending.hits.append((account_key, hit))

    def record_session(self, sample: SessionSample) -> None:
        """Remember a session's totals in the history (filed when the update ends)."""
        self.pending.sessions.append(sample)

    def put(self, snapshot: Snapshot, measured: Snapshot | None = None) -> None:
        """Keep the newest reading per (account, source); a failed fetch keeps the last
        good numbers (they go stale on their own) and records what failed.

        A reading from the future (a clock that jumped, or a remote machine's) is
        moved to just before now: left alone it would win every fold and never go
        stale, and an honest reading taken now should win over it."""
        now = utcnow()
        if snapshot.fetched_at > now + CLOCK_SKEW:
            snapshot = replace(snapshot, fetched_at=now - CLOCK_SKEW)
        self.rows = [  # any written before the clock went back, likewise
            replace(old, fetched_at=now - CLOCK_SKEW) if old.fetched_at > now + CLOCK_SKEW else old
            for old in self.rows
        ]
        for index, old in enumerate(self.rows):
            if old.account_key == snapshot.account_key and old.browser == snapshot.browser:
                if snapshot.fetched_at < old.fetched_at and snapshot.usage is not None:
                    return  # an out-of-order delivery never overwrites newer data
                if snapshot.usage is None and old.usage is not None:
                    self.rows[index] = replace(
                        old,
                        errors=list(snapshot.errors),
                        account_email=snapshot.account_email or old.account_email,
                        overage=snapshot.overage or old.overage,
                        subscription=snapshot.subscription or old.subscription,
                    )
                else:
                    if snapshot.account_email is None:
                        snapshot = replace(snapshot, account_email=old.account_email)
                    self.rows[index] = snapshot
                break
        else:
            self.rows.append(snapshot)
        self.prune(snapshot)
        # History holds only what this source measured: buckets a row carries over from
        # another source would repeat that source's one reading and fake a flat pace.
        self._record_history(measured or snapshot)

    def prune(self, kept: Snapshot) -> None:
        """Bounded by design: a row whose source has been silent for
        ``CLAUDEMETER_FORGET_DAYS`` days while the store kept hearing from others is
        dropped (measured from the newest reading stored, so the last thing known is
        never dropped just because time passed: it shows as stale), and each account keeps
        its newest :data:`MAX_ROWS_PER_ACCOUNT` sources (500 browser names would otherwise
        be 500 rows and a 500-name ``browser``). ``kept``, the reading just put, stays."""
        days = env.forget_days()
        if days and self.rows:
            cutoff = max(r.fetched_at for r in self.rows) - timedelta(days=days)
            self.rows = [r for r in self.rows if r is kept or r.fetched_at >= cutoff]
        mine = [r for r in self.rows if r.account_key == kept.account_key]
        if len(mine) > MAX_ROWS_PER_ACCOUNT:
            newest = sorted(mine, key=lambda r: (r is kept, r.fetched_at), reverse=True)
            dropped = {id(r) for r in newest[MAX_ROWS_PER_ACCOUNT:]}
            self.rows = [r for r in self.rows if id(r) not in dropped]

    def _record_history(self, snapshot: Snapshot) -> None:
        windows = snapshot.windows().values()
        used = {w.name: w.utilization for w in windows if w.utilization is not None}
        if used:
            resets = {w.name: w.resets_at.timestamp() for w in windows if w.resets_at}
            point = HistoryPoint(snapshot.fetched_at.timestamp(), used, resets)
            self.pending.readings.append((snapshot.account_key, point))

    def to_json(self) -> JSON:
        return {
            "version": FORMAT_VERSION,
            "rows": [self._row_json(row) for row in self.rows],
            "sources": dict(self.sources),
        }

    def _row_json(self, row: Snapshot) -> Any:
        """The row's JSON: as it was read when the row is still what was read from it
        (a writer of one reading does not encode fifty accounts' rows again)."""
        seen = self.parsed.get((row.org_uuid or f"email:{row.account_email}", row.browser))
        if seen is not None and seen[1].__dict__ == row.__dict__:
            return seen[0]
        return row.to_json()

    @classmethod
    def from_json(cls, body: Any, known: ParsedRows | None = None) -> State:
        """The state in a parsed file. ``known``: rows an earlier read parsed, with
        their JSON; a row whose JSON equals the one it was parsed from is copied, not
        parsed again (the same JSON makes the same row)."""
        if not isinstance(body, dict) or not isinstance(body.get("rows", []), list):
            raise ValueError("not a claudemeter state file")
        rows = []
        parsed: ParsedRows = {}
        skipped, why = 0, ""
        for item in body.get("rows", []):
            key = _row_key(item)
            seen = known.get(key) if known is not None and key is not None else None
            if seen is not None and seen[0] == item:
                row = seen[1]  # frozen: the memo and the caller can share it
            else:
                try:
                    row, seen = Snapshot.from_json(item), None
                except Exception as exc:  # any bad row is skipped, never fatal
                    skipped, why = skipped + 1, why or _short(exc)
                    continue
            rows.append(row)
            if key is not None:
                parsed[key] = seen or (item, row)
        sources = body.get("sources")
        books = {}
        for key, raw in sources.items() if isinstance(sources, dict) else ():
            book = book_from_json(raw)
            if book is not None:
                books[key] = book
        state = cls(rows, books, skipped=skipped, skipped_why=why, parsed=parsed)
        # A state file from before the history had its own file: the next writer moves
        # its readings there (readers never look at them).
        legacy = body.get("history")
        if isinstance(legacy, dict):
            for key, raw_points in legacy.items():
                if isinstance(raw_points, list):
                    points = [HistoryPoint.from_json(p) for p in raw_points]
                    state.pending.legacy[key] = [p for p in points if p is not None]
        return state


def login_books(sources: Mapping[str, SourceBook], row: Snapshot | None) -> dict[str, SourceBook]:
    """The OAuth bookings (``oauth:<org>`` or ``oauth:<config dir>``) whose login was
    rejected (status ``login``) and that concern ``row``: the one keyed by its org, and
    any whose account is not known (keyed by its config dir, no ``account_key``): it may
    be this account's. The one attribution rule the segment, ``cm-guard`` and the popup
    ask, so they say the same thing."""
    own = oauth_key(row.org_uuid if row else "")
    return {
        key: book
        for key, book in sources.items()
        if key.startswith(OAUTH_PREFIX)
        and book.get("status") == STATUS_LOGIN
        and (key == own or book.get("account_key") in (None, own))
    }


def login_problem(sources: Mapping[str, SourceBook], row: Snapshot | None) -> str | None:
    """The OAuth source's own words when the login behind ``row``'s account was rejected
    (:func:`login_books`), or None."""
    for book in login_books(sources, row).values():
        return book.get("error") or "the Claude Code login was rejected"
    return None


class Store:
    """The state file in one directory. Cheap to construct; touches disk only when used."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or env.state_dir()
        self.path = self.directory / STATE_FILE
        #: The rows the last read parsed, with their JSON: the bridge and the tmux loop
        #: read the file again and again, and parse only the rows that changed.
        self._parsed: ParsedRows = {}

    def read(self) -> State:
        """Lock-free read. A missing file is an empty state; a bad one says why in
        ``problem`` (the next write moves it aside); so does a directory that is not
        private (nothing in it is trusted)."""
        try:
            check_private_dir(self.directory)
            raw = read_private(self.path)
        except StoreError as exc:
            return State(problem=str(exc))
        except FileNotFoundError:
            return State()
        except OSError as exc:
            return State(problem=f"cannot read {self.path}: {exc.strerror or exc}")
        try:
            state = State.from_json(json.loads(raw), self._parsed)
        except Exception as exc:  # any parse failure (RecursionError, MemoryError...): aside
            return State(problem=f"state file {self.path} is corrupt ({_short(exc)})")
        self._parsed = state.parsed
        if state.skipped:
            warn(
                f"skipped {state.skipped} unreadable row{'s' if state.skipped > 1 else ''}"
                f" in {self.path} ({state.skipped_why})"
            )
        state.derived = read_derived(self.directory)
        return state

    def repair(self) -> State:
        """Move a damaged state file aside now (not at the next write, which may be far
        off when no source works) and return the clean state. Only for interactive
        commands: it takes the writer lock briefly, which the status line never does."""
        try:
            with self.update():
                pass
        except StoreError as exc:
            warn(str(exc))
        return self.read()

    def lock(self, timeout: float = WRITE_LOCK_TIMEOUT) -> FileLock:
        return private_lock(self.directory / LOCK_FILE, timeout)

    @contextlib.contextmanager
    def update(self, timeout: float = WRITE_LOCK_TIMEOUT) -> Iterator[State]:
        """Read-modify-write under the writer lock; the file changes only if the block
        finishes without an exception. Keep network calls out of the block: the lock
        serialises every writer on the machine."""
        # Imported before the lock, not while every other writer waits for it.
        from .flock import LockTimeout

        try:
            lock = self.lock(timeout)
            lock.acquire()
        except LockTimeout:
            raise StoreError(
                f"another claudemeter process holds {self.directory / LOCK_FILE}; try again"
            ) from None
        except OSError as exc:
            raise self.write_error(exc) from None
        try:
            state = self.read()
            if state.problem:
                self._move_aside(state.problem)
                state = State()
            yield state
            self._cleanup_temp_files()
            try:
                data = _encode(state)
                write_private(self.path, data)
            except OSError as exc:
                raise self.write_error(exc) from None
        finally:
            lock.release()
        if state.pending:
            self._file_history(state, file_history)

    def _file_history(self, state: State, file: Callable[[Path, State, datetime], None]) -> None:
        """File what this update added into the history, under the history's lock, after
        the state is written: the history never delays the state, and a history that
        cannot be written costs one line on stderr, never the reading."""
        from .flock import LockTimeout

        try:
            with private_lock(self.directory / HISTORY_LOCK_FILE, WRITE_LOCK_TIMEOUT):
                file(self.directory, state, utcnow())
        except LockTimeout:
            warn(f"history not saved: another claudemeter process holds {HISTORY_LOCK_FILE}")
        except StoreError as exc:
            warn(f"history not saved: {exc}")
        except OSError as exc:
            warn(f"history not saved in {self.directory}: {exc.strerror or exc}")

    def write_error(self, exc: OSError) -> StoreError:
        hint = " (fix its owner/permissions or set CLAUDEMETER_STATE_DIR)"
        return StoreError(
            f"cannot write the state in {self.directory}: {exc.strerror or exc}{hint}"
        )

    def put(self, snapshots: Iterable[Snapshot]) -> int:
        """Store snapshots exactly as the bridge and ``ingest`` do; returns how many."""
        snapshots = list(snapshots)
        with self.update() as state:
            for snapshot in snapshots:
                state.put(snapshot)
        return len(snapshots)

    def record_limit_hit(self, account_key: str, hit: LimitHit) -> None:
        """Remember that the account ``account_key`` (its org uuid) hit a limit, for
        processes outside :meth:`update` (Claude Code's StopFailure hook: ``hit.source``
        ``history.HIT_STOP_FAILURE``, ``hit.bucket`` None). Takes the store's locks;
        raises :class:`~claudemeter.private.StoreError` (one line) when the state dir
        cannot be written."""
        with self.update() as state:
            state.record_limit_hit(account_key, hit)

    def accounts(self, now: datetime | None = None) -> list[Snapshot]:
        return self.read().accounts(now or utcnow())

    def _move_aside(self, problem: str) -> None:
        aside = self.path.with_name(f"{STATE_FILE}.corrupt-{int(time.time())}")
        try:
            self.path.replace(aside)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self.write_error(exc) from None
        warn(f"{problem}; moved it aside to {aside.name} and started clean")

    def _cleanup_temp_files(self) -> None:
        """Temp files of a writer killed mid-write; only old ones, never a live writer's."""
        cutoff = time.time() - 60
        for tmp in self.directory.glob(".*.tmp-*"):  # the history files too
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()


def _encode(state: State) -> bytes:
    """The file's bytes, checked by reading them back as every reader will: a state
    that would not read back whole is never written (the old file stays). Rows this
    update left as they were read are written as the JSON they were parsed from: only
    the others are read back (fifty accounts' rows are not all re-checked for one
    reading)."""
    try:
        body = state.to_json()
        # Compact: indenting forces json's pure-Python encoder, 3x slower.
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        as_read = {id(item) for item, _row in state.parsed.values()}
        fresh = [item for item in body["rows"] if id(item) not in as_read]
        again = State.from_json(json.loads(json.dumps({**body, "rows": fresh})))
    except (ValueError, RecursionError, OverflowError) as exc:
        raise StoreError(
            f"refusing to write a state that would not read back ({_short(exc)})"
        ) from None
    if again.skipped or len(again.rows) != len(fresh):
        raise StoreError(
            f"refusing to write a state that would not read back ({again.skipped_why})"
        )
    return data


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
