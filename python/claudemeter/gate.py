"""The guard's decision: is this account over the threshold, and until when?

Pure functions of the store's state and the clock, so every guard on one account
reaches the same answer from the same row: the resume time is the row's ``resets_at``
plus the grace, never "when this guard noticed", which is what keeps five panes
pausing and resuming together.

Two facts shape the rules. Utilization only grows within a window, so an old reading
that says "over" still holds until its ``resets_at``; an old reading that says "under"
proves nothing. And a bucket whose utilization is unknown is unknown, not 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import defaults
from .model import JSON, Snapshot, format_time
from .render import duration
from .sources import SourceBook
from .sources.claude_account import Account
from .store import login_problem
from .windows import KNOWN_WINDOWS

UNDER = "under"
OVER = "over"
UNKNOWN = "unknown"
#: Bucket states beyond the three verdicts: past its resets_at (+ grace), or not sent.
RESET = "reset"
ABSENT = "absent"


@dataclass(frozen=True)
class Bucket:
    name: str
    utilization: float | None
    resets_at: datetime | None
    state: str

    def to_json(self) -> JSON:
        return {
            "utilization": self.utilization,
            "resets_at": format_time(self.resets_at) if self.resets_at else None,
            "state": self.state,
        }


@dataclass(frozen=True)
class Verdict:
    """What a guard does now: run (under), hold (over) or decide by policy (unknown)."""

    state: str
    threshold: float
    reason: str
    row: Snapshot | None = None
    buckets: tuple[Bucket, ...] = ()
    resume_at: datetime | None = None  # set when over and a reset time is known
    login_problem: str | None = None

    @property
    def account(self) -> str | None:
        return (who(self.row) or None) if self.row else None

    @property
    def label(self) -> str | None:
        """The row as messages name it (:attr:`Snapshot.label`)."""
        return self.row.label if self.row else None

    def holds(self, fail_closed: bool) -> bool:
        return self.state == OVER or (self.state == UNKNOWN and fail_closed)

    def to_json(self) -> JSON:
        """What ``cm-guard --check`` prints: enough for a script to decide and to say why."""
        row = self.row
        return {
            "state": self.state,
            "account": row.account_email if row else None,
            "org_uuid": row.org_uuid if row else None,
            "threshold": self.threshold,
            "resume_at": format_time(self.resume_at) if self.resume_at else None,
            "reason": self.reason,
            "buckets": {b.name: b.to_json() for b in self.buckets},
            "fetched_at": format_time(row.fetched_at) if row else None,
            "stale": row.stale if row else None,
            "login": self.login_problem,
        }


def _peak(row: Snapshot, buckets: Sequence[str]) -> float:
    levels = [
        w.utilization
        for name, w in row.windows().items()
        if name in buckets and w.utilization is not None
    ]
    return max(levels, default=-1.0)


def who(row: Snapshot) -> str:
    """The row's name as ``--account`` takes it: the email, else the org uuid."""
    return row.account_email or row.org_uuid


def is_account(row: Snapshot, wanted: str) -> bool:
    """``--account``: the row's email or its org uuid (the only name a row whose email
    look-up failed has, and what tells a personal plan from a team one), either case."""
    wanted = wanted.lower()
    return bool(wanted) and wanted in ((row.account_email or "").lower(), row.org_uuid.lower())


def select_row(
    rows: Sequence[Snapshot], buckets: Sequence[str], email: str | None, login: Account | None
) -> Snapshot | None:
    """``--account`` if given (and nothing else), else the Claude Code login's account,
    else the only account, else the one closest to its limit (the safe guess)."""
    if email is not None:
        # Several rows (one email in two orgs) are refused before a command starts
        # (see ambiguity); should one appear later, the fullest is the safe one to read.
        matches = [r for r in rows if is_account(r, email)]
        return max(matches, key=lambda r: _peak(r, buckets), default=None)
    if login is not None:
        for row in rows:
            if login.org_uuid and row.org_uuid == login.org_uuid:
                return row
        if login.email:
            same = [r for r in rows if (r.account_email or "").lower() == login.email.lower()]
            if len(same) == 1:
                return same[0]
    if len(rows) == 1:
        return rows[0]
    return max(rows, key=lambda r: _peak(r, buckets), default=None)


def ambiguity(rows: Sequence[Snapshot], wanted: str) -> str | None:
    """Why an account name (``--account``, ``@claude_meter_account``) that matches
    several rows cannot be used, listing their labels and org uuids; None when it
    names one row or none."""
    matches = [r for r in rows if is_account(r, wanted)]
    if len(matches) < 2:
        return None
    listed = "; ".join(f"{r.label}: {r.org_uuid or '(no org uuid)'}" for r in matches)
    return f'"{wanted}" matches {len(matches)} accounts ({listed}); name one by its org uuid'


def mismatch(
    rows: Sequence[Snapshot], buckets: Sequence[str], email: str | None, login: Account | None
) -> str | None:
    """Why the options name an account or a bucket the store does not have; None if
    they do not. A typo must not read as "no data yet": a guard that went ahead on it
    would never pause. An account is judged only once the store has rows; a bucket
    passes when it is a known window (the server leaves out a bucket it has no number
    for) or the chosen row's usage carries it."""
    if email is not None and rows and not any(is_account(r, email) for r in rows):
        present = ", ".join(dict.fromkeys(who(r) for r in rows))
        return f'no account "{email}" in the store; accounts: {present}'
    if email is not None and (ambiguous := ambiguity(rows, email)):
        return ambiguous
    row = select_row(rows, buckets, email, login)
    usage = (row.usage if row else None) or {}
    shown = list(row.windows()) if row else []
    sent = {
        name
        for name, body in usage.items()
        if name != "extra_usage" and (body is None or isinstance(body, Mapping))
    }
    for name in buckets:
        if name in KNOWN_WINDOWS or name in shown or name in sent:
            continue
        if row is None:
            return f'no bucket "{name}" (no usage data yet); known: {", ".join(KNOWN_WINDOWS)}'
        return f'no bucket "{name}" for {who(row)}; known: {", ".join(shown or KNOWN_WINDOWS)}'
    return None


def _bucket(name: str, row: Snapshot, threshold: float, grace: float, now: datetime) -> Bucket:
    window = row.window(name)
    if window is None:
        return Bucket(name, None, None, ABSENT)
    until = window.resets_at + timedelta(seconds=grace) if window.resets_at else None
    if window.utilization is None:
        state = RESET if window.has_reset(now) else UNKNOWN
    elif window.utilization >= threshold:
        state = RESET if until is not None and until <= now else OVER
    else:
        state = RESET if window.has_reset(now) else UNDER
    # A passed reset reads as every view shows it (Window.used): empty, not the old number.
    shown = window.used(now) if state == RESET else window.utilization
    return Bucket(name, shown, window.resets_at, state)


def _pct(value: float) -> str:
    return f"{value:.0f}%"


def decide(
    rows: Sequence[Snapshot],
    sources: Mapping[str, SourceBook],
    now: datetime,
    *,
    threshold: float,
    buckets: Sequence[str] = defaults.BUCKETS,
    email: str | None = None,
    login: Account | None = None,
    grace: float = defaults.GRACE,
) -> Verdict:
    """The verdict for the selected account's row at ``now``."""
    row = select_row(rows, buckets, email, login)
    if row is None:
        return Verdict(
            UNKNOWN,
            threshold,
            f"no usage data for {email or 'any account'}",
            login_problem=login_problem(sources, None),
        )
    states = tuple(_bucket(name, row, threshold, grace, now) for name in buckets)
    problem = login_problem(sources, row)
    over = [b for b in states if b.state == OVER]
    if over:
        worst = max(over, key=lambda b: b.utilization or 0.0)
        ends = [b.resets_at for b in over]
        resume_at = (
            max(e for e in ends if e is not None) + timedelta(seconds=grace)
            if all(e is not None for e in ends)
            else None
        )
        reason = f"{worst.name} at {_pct(worst.utilization or 0.0)} (threshold {_pct(threshold)})"
        return Verdict(OVER, threshold, reason, row, states, resume_at, problem)
    if row.usage is None:
        return Verdict(
            UNKNOWN,
            threshold,
            "no usage numbers for the account",
            row,
            states,
            None,
            problem,
        )
    if row.stale:
        old = duration(row.age(now))
        return Verdict(UNKNOWN, threshold, f"usage data is {old} old", row, states, None, problem)
    if not any(b.state in (UNDER, RESET) for b in states):
        names = ", ".join(buckets)
        return Verdict(
            UNKNOWN,
            threshold,
            f"server reports no utilization for {names}",
            row,
            states,
            None,
            problem,
        )
    return Verdict(UNDER, threshold, "under the threshold", row, states, None, problem)
