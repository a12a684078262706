"""Fold every snapshot of one account into one row (SPEC section 3, dedupe_by_account).

The organization is the quota's identity: two browsers on the same org are one bucket,
while one email in a personal and a team org is two. A row whose org look-up failed
(empty ``org_uuid``) can only be placed by its email.

The fold is per bucket: each window comes from the newest fresh reading that has a
usable value for it (a number whose ``resets_at`` has not passed), so a reading that
lacks a bucket, has it null or has it expired never erases another reading's value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from .model import JSON, MAX_ERRORS, Provenance, Snapshot, Window, format_time, utcnow

TYPE_CHECKING = False  # typing is for mypy: importing it costs the hot paths milliseconds
if TYPE_CHECKING:
    from typing import Any


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


@dataclass(frozen=True)
class _Offer:
    """One reading's value of one bucket, ranked by :func:`_rank`."""

    row: Snapshot
    window: Window
    origin: Provenance
    fresh: bool
    usable: bool

    def entry(self) -> Any:
        """The bucket as the reading's usage body has it (a ``limits[]``-only one is
        written in the flat shape)."""
        raw = (self.row.usage or {}).get(self.window.name)
        if isinstance(raw, dict) and raw.get("utilization") is not None:
            return raw
        if self.window.utilization is None and raw is None:
            return None
        resets = self.window.resets_at
        return {
            **(raw if isinstance(raw, dict) else {}),
            "utilization": self.window.utilization,
            "resets_at": format_time(resets) if resets else None,
        }


def _rank(offer: _Offer) -> tuple[int, float]:
    """Fresh and usable first, then usable (stale), then the rest; newest first within."""
    tier = 0 if offer.fresh and offer.usable else 1 if offer.usable else 2
    return (tier, -offer.origin.fetched_at.timestamp())


def _offers(rows: list[Snapshot], now: datetime) -> dict[str, list[_Offer]]:
    offers: dict[str, list[_Offer]] = {}
    for row in rows:
        for name, window in row.windows().items():
            origin = row.origin(name)
            fresh = not row.stale and not origin.is_stale(now)
            usable = window.utilization is not None and not window.has_reset(now)
            offers.setdefault(name, []).append(_Offer(row, window, origin, fresh, usable))
    for found in offers.values():
        found.sort(key=_rank)  # stable: equal ranks keep the newest-first input order
    return offers


def _first(values: Iterable[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _fold(rows: list[Snapshot], now: datetime) -> Snapshot:
    newest = _newest_first([row.with_staleness(now) for row in rows])
    chosen = {name: found[0] for name, found in _offers(newest, now).items()}
    contributing = _contributors(chosen, newest)
    with_usage = [r for r in newest if r.usage is not None]
    by_freshness = [r for r in with_usage if not r.stale] + [r for r in with_usage if r.stale]
    usage: JSON | None = None
    if with_usage:
        usage = {}
        for row in by_freshness:  # keys that are not buckets: the freshest reading's
            for key, value in (row.usage or {}).items():
                if key not in chosen and (usage.get(key) is None):
                    usage[key] = value
        for name, offer in chosen.items():
            usage[name] = offer.entry()
    base = (contributing or newest)[0]
    errors = [e for r in (contributing or newest[:1]) for e in r.errors]
    return replace(
        base,
        usage=usage,
        provenance={
            name: Provenance(o.origin.source, o.origin.fetched_at, not o.fresh)
            for name, o in chosen.items()
        },
        fetched_at=(
            max(o.origin.fetched_at for o in chosen.values()) if chosen else base.fetched_at
        ),
        stale=not any(o.fresh for o in chosen.values()) if chosen else base.stale,
        org_uuid=next((r.org_uuid for r in rows if r.org_uuid), ""),
        account_email=_first(r.account_email for r in newest),
        org_name=_first(r.org_name for r in newest),
        overage=_first(r.overage for r in newest),
        subscription=_first(r.subscription for r in newest),
        browser=_browsers(rows),
        errors=list(dict.fromkeys(errors))[:MAX_ERRORS],
    )


def _contributors(chosen: dict[str, _Offer], newest: list[Snapshot]) -> list[Snapshot]:
    """The readings some bucket comes from, newest first."""
    used = {id(o.row) for o in chosen.values()}
    return [r for r in newest if id(r) in used]


def dedupe_by_account(rows: Iterable[Snapshot], now: datetime | None = None) -> list[Snapshot]:
    """One row per account, in order of each account's first appearance; each bucket
    from the newest fresh reading with a usable value for it, its source and time in
    the row's ``provenance``."""
    now = now or utcnow()
    return [_fold(group, now) for group in account_groups(rows)]


def account_groups(rows: Iterable[Snapshot]) -> list[list[Snapshot]]:
    """The readings of each account, in order of its first appearance: what
    :func:`dedupe_by_account` folds into one row each (a reading without an org goes
    with the org another reading names for its email)."""
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
    return list(groups.values())
