"""Fold every snapshot of one account into one row (SPEC section 3, dedupe_by_account).

The organization is the quota's identity: two browsers on the same org are one bucket,
while one email in a personal and a team org is two. A row whose org look-up failed
(empty ``org_uuid``) can only be placed by its email.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .model import Snapshot, utcnow


def _browsers(rows: Iterable[Snapshot]) -> str:
    seen: list[str] = []
    for row in rows:
        for name in row.browser.split(","):
            name = name.strip()
            if name and name not in seen:
                seen.append(name)
    return ", ".join(seen)


def _newest_first(rows: list[Snapshot]) -> list[Snapshot]:
    # sorted() is stable, so equal times keep input order: the result never flips.
    return sorted(rows, key=lambda r: r.fetched_at, reverse=True)


def _fold(rows: list[Snapshot], now: datetime) -> Snapshot:
    marked = [row.with_staleness(now) for row in rows]
    newest = _newest_first(marked)
    with_usage = [r for r in newest if r.usage is not None]
    fresh_with_usage = [r for r in with_usage if not r.stale]
    winner = (fresh_with_usage or with_usage or newest)[0]
    folded = winner.with_staleness(now)
    folded.org_uuid = next((r.org_uuid for r in rows if r.org_uuid), "")
    folded.account_email = next((r.account_email for r in newest if r.account_email), None)
    folded.overage = next((r.overage for r in newest if r.overage is not None), None)
    folded.subscription = next((r.subscription for r in newest if r.subscription is not None), None)
    folded.browser = _browsers(rows)
    folded.errors = list(winner.errors)
    return folded


def dedupe_by_account(rows: Iterable[Snapshot], now: datetime | None = None) -> list[Snapshot]:
    """One row per account, in order of each account's first appearance."""
    now = now or utcnow()
    rows = list(rows)
    groups: dict[str, list[Snapshot]] = {}
    email_to_org: dict[str, str] = {}
    for row in rows:
        if row.org_uuid and row.account_email:
            email_to_org.setdefault(row.account_email.lower(), row.org_uuid)
    for row in rows:
        key = row.org_uuid
        if not key:
            email = (row.account_email or "").lower()
            key = email_to_org.get(email, f"email:{email}")
        groups.setdefault(key, []).append(row)
    return [_fold(group, now) for group in groups.values()]
