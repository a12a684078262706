"""What the redraw path shows from the history, worked out when a reading is written.

The status segment's ``{pace}`` and ``{top}`` need the history, but ``claude-meter
status``, the tmux loop's render and ``claude-meter statusline`` must not parse it: its
size grows with the days it remembers. So the writer, which has just filed a reading in
the history, derives them and keeps the result per account in ``derived.json`` beside
the state file (loaded into ``State.derived``): a few hundred bytes, however long the
history.

- pace: from the recent history file (the last hour), on every write that touched the
  account: the segment's warning is as fresh as the newest reading.
- the top session of the current 5-hour window: from the whole history, when the recent
  file is compacted (every ``history.COMPACT_EVERY``, 5 minutes): splitting a rise takes
  the whole window, and who leads changes slowly.

Readers drop a pace whose window has reset or whose readings are older than pace's
rate window, and a top session whose window has reset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import history, pace
from .model import JSON, Snapshot, json_number
from .private import read_private, write_private
from .windows import FIVE_HOUR

TYPE_CHECKING = False  # typing is for mypy: importing it costs the hot paths milliseconds
if TYPE_CHECKING:
    from typing import Any

    from .store import State

DERIVED_FILE = "derived.json"


@dataclass(frozen=True)
class TopSession:
    """The session with the largest share of the current 5-hour window's rise."""

    pane: str | None
    project: str | None
    share_5h: float  # percent of the window's rise, 0-100
    window_end: float | None  # the window's resets_at (epoch): stale after it

    def label(self) -> str:
        """``%3 app 41%``: pane, project directory's name, share."""
        name = (self.project or "").rstrip("/").rsplit("/", 1)[-1]
        where = " ".join(part for part in (self.pane, name) if part) or "?"
        return f"{where} {self.share_5h:.0f}%"


@dataclass(frozen=True)
class Summary:
    """One account's derived facts, as of ``at`` (epoch)."""

    at: float
    paces: dict[str, pace.Pace]
    top: TopSession | None

    def to_json(self) -> JSON:
        return {
            "at": self.at,
            "pace": {name: _pace_json(p) for name, p in self.paces.items()},
            "top": None if self.top is None else self.top.__dict__,
        }

    @classmethod
    def from_json(cls, body: Any) -> Summary | None:
        if not isinstance(body, dict) or not isinstance(body.get("at"), (int, float)):
            return None
        raw = body.get("pace")
        paces = {}
        for name, item in raw.items() if isinstance(raw, dict) else ():
            found = _pace_from(str(name), item)
            if found is not None:
                paces[str(name)] = found
        return cls(float(body["at"]), paces, _top_from(body.get("top")))


def of(state: State, row: Snapshot) -> Summary | None:
    """The summary the writers left for a (folded) row's account."""
    return Summary.from_json(state.derived.get(row.account_key))


def current_paces(summary: Summary | None, now: datetime) -> list[pace.Pace]:
    """The stored paces that still say something about now."""
    if summary is None:
        return []
    return [
        p
        for p in summary.paces.values()
        if (p.resets_at is None or p.resets_at > now)
        and (now - p.at).total_seconds() <= pace.RATE_WINDOW
    ]


def current_top(summary: Summary | None, now: datetime) -> TopSession | None:
    if summary is None or summary.top is None:
        return None
    end = summary.top.window_end
    return summary.top if end is None or end > now.timestamp() else None


def moments(summary: Summary | None) -> list[float]:
    """Epoch seconds at which :func:`current_paces` or :func:`current_top` drop what
    ``summary`` holds (a window's reset, a pace's readings leaving the rate window), and
    each pace's projected times (its text says a local time)."""
    if summary is None:
        return []
    top = summary.top
    found = [] if top is None or top.window_end is None else [top.window_end]
    for p in summary.paces.values():
        found.append(p.at.timestamp() + pace.RATE_WINDOW)
        found += [t.timestamp() for t in (p.resets_at, p.full_at, p.threshold_at) if t]
    return found


def read_derived(directory: Path) -> dict[str, JSON]:
    """``derived.json`` in the state ``directory`` (a few hundred bytes per account);
    anything unreadable is empty: the next writer rewrites it."""
    try:
        body = json.loads(read_private(directory / DERIVED_FILE, 1 << 20))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if isinstance(v, dict)}


def file_history(directory: Path, state: State, now: datetime) -> None:
    """File what an update added into the history (``history.record``) and refresh the
    derived facts (``derived.json``, and ``state.derived``) of the accounts it touched.
    Called by ``Store.update`` with the history's lock held, after the state is written;
    raises OSError when a file cannot be written."""
    from .dedupe import dedupe_by_account

    pending = state.pending
    touched = {key for key, _ in pending.readings} | {key for key, _ in pending.hits}
    touched |= {s.account for s in pending.sessions} | set(pending.legacy)
    recorded = history.record(directory, pending, now.timestamp())
    state.pending = history.Pending()
    whole = history.read(directory) if recorded.compacted else None
    derived = read_derived(directory)  # as the last writer left it
    rows = dedupe_by_account(state.rows if whole else _rows_of(state.rows, touched), now)
    for row in rows:
        keys = {row.account_key, f"email:{(row.account_email or '').lower()}"}
        if not keys & touched and whole is None:
            continue
        recent = history.of_account(recorded.recent, row.org_uuid, row.account_email)
        before = Summary.from_json(derived.get(row.account_key))
        top = before.top if before is not None else None
        if whole is not None:
            top = _top(history.of_account(whole, row.org_uuid, row.account_email), now)
        summary = Summary(now.timestamp(), pace.paces(recent.points, now), top)
        derived[row.account_key] = summary.to_json()
    known = {row.account_key for row in state.rows}  # each folded row's key among them
    state.derived = {k: v for k, v in derived.items() if k in known}
    data = json.dumps(state.derived, separators=(",", ":")).encode()
    # Not fsynced: rewritten by every write; lost, it is derived again by the next one.
    write_private(directory / DERIVED_FILE, data, durable=False)


def _rows_of(rows: list[Snapshot], touched: set[str]) -> list[Snapshot]:
    """The rows of the accounts ``touched`` names (by account key, or ``email:``), and
    any row sharing an org or an email with them: every row their fold needs, so one
    reading does not fold every account in the store."""

    def email(row: Snapshot) -> str:
        return (row.account_email or "").lower()

    mine = [r for r in rows if r.account_key in touched or f"email:{email(r)}" in touched]
    orgs = {r.org_uuid for r in mine if r.org_uuid}
    emails = {email(r) for r in mine if r.account_email}
    return [r for r in rows if r.org_uuid in orgs or email(r) in emails]


def _top(account: history.AccountHistory, now: datetime) -> TopSession | None:
    from .attribution import attribute, default_since

    until = now.timestamp()
    since = default_since(account, until)
    found = attribute(account, [(s, "statusline") for s in account.sessions.values()], since, until)
    if not found.shares or found.shares[0].share("five_hour") <= 0:
        return None
    best = found.shares[0]
    end = since + FIVE_HOUR if since + FIVE_HOUR > until else None  # None: no window known
    return TopSession(best.session.pane, best.session.project, best.share("five_hour"), end)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _utc(value: Any) -> datetime | None:
    epoch = json_number(value)
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


def _pace_json(found: pace.Pace) -> JSON:
    return {
        "used": found.used,
        "at": found.at.timestamp(),
        "rate_per_hour": found.rate_per_hour,
        "threshold": found.threshold,
        "resets_at": _epoch(found.resets_at),
        "full_at": _epoch(found.full_at),
        "threshold_at": _epoch(found.threshold_at),
        "points": found.points,
    }


def _pace_from(bucket: str, body: Any) -> pace.Pace | None:
    if not isinstance(body, dict):
        return None
    at = _utc(body.get("at"))
    numbers = [json_number(body.get(k)) for k in ("used", "rate_per_hour", "threshold", "points")]
    if at is None or None in numbers:
        return None
    used, rate, threshold, points = (n or 0.0 for n in numbers)
    return pace.Pace(
        bucket=bucket,
        used=used,
        at=at,
        rate_per_hour=rate,
        threshold=threshold,
        resets_at=_utc(body.get("resets_at")),
        full_at=_utc(body.get("full_at")),
        threshold_at=_utc(body.get("threshold_at")),
        points=int(points),
    )


def _top_from(body: Any) -> TopSession | None:
    if not isinstance(body, dict):
        return None
    share, end = json_number(body.get("share_5h")), json_number(body.get("window_end"))
    if share is None:
        return None
    pane, project = body.get("pane"), body.get("project")
    return TopSession(
        pane if isinstance(pane, str) else None,
        project if isinstance(project, str) else None,
        share,
        end,
    )
