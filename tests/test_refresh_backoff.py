"""The OAuth poll backs off while Claude Code's statusLine keeps the account fresh,
counted in requests to a fake upstream on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from claudemeter import refresh as refresh_module
from claudemeter.model import Snapshot
from claudemeter.refresh import OAUTH_INTERVAL, OAUTH_INTERVAL_WITH_STATUSLINE, refresh
from claudemeter.store import Store
from tests.helpers import LOGIN_ORG, cli
from tests.upstream import FakeUpstream

USAGE = "/api/oauth/usage"


def statusline_reading(age: float) -> Snapshot:
    when = datetime.now(timezone.utc) - timedelta(seconds=age)
    usage = {
        "five_hour": {"utilization": 40.0, "resets_at": (when + timedelta(hours=2)).isoformat()}
    }
    return Snapshot(
        org_uuid=LOGIN_ORG,
        browser="statusline",
        account_email="ada@example.com",
        fetched_at=when,
        usage=usage,
    )


def last_oauth_attempt(store: Store, seconds_ago: float) -> None:
    """Pretend the booked OAuth attempt happened that long ago."""
    with store.update() as state:
        for book in state.sources.values():
            book["last_attempt"] = time.time() - seconds_ago


def test_fresh_statusline_readings_hold_back_automatic_fetches(
    claude_dir: Path,
    upstream: FakeUpstream,
) -> None:
    store = Store()
    refresh(store)
    assert len(upstream.hits(USAGE)) == 1
    last_oauth_attempt(store, OAUTH_INTERVAL + 20)
    store.put([statusline_reading(age=5)])
    results = refresh(store)
    assert len(upstream.hits(USAGE)) == 1
    assert results[0].ok and "statusline" in results[0].message


def other_account(age: float) -> Snapshot:
    return replace(statusline_reading(age), org_uuid="some-other-org")


# Readings are made when the test runs (lambdas), so their ages are what they say.
@pytest.mark.parametrize(
    ("reading", "oauth_age"),
    [
        (lambda: None, OAUTH_INTERVAL + 20),
        (lambda: statusline_reading(age=OAUTH_INTERVAL + 30), OAUTH_INTERVAL + 20),
        (lambda: other_account(age=1), OAUTH_INTERVAL + 20),
        # The buckets only OAuth sees must not go stale behind busy agents.
        (lambda: statusline_reading(age=1), OAUTH_INTERVAL_WITH_STATUSLINE + 5),
    ],
    ids=["no statusline", "old statusline", "another account's", "oauth row nearly stale"],
)
def test_automatic_fetch_goes_ahead(
    claude_dir: Path,
    upstream: FakeUpstream,
    reading: Callable[[], Snapshot | None],
    oauth_age: float,
) -> None:
    store = Store()
    refresh(store)
    last_oauth_attempt(store, oauth_age)
    made = reading()
    if made is not None:
        store.put([made])
    refresh(store)
    assert len(upstream.hits(USAGE)) == 2
    [oauth_row] = [r for r in store.read().rows if r.browser == "Claude Code"]
    assert not oauth_row.is_stale()


def test_explicit_refresh_asks_anyway(claude_dir: Path, upstream: FakeUpstream) -> None:
    store = Store()
    refresh(store)
    last_oauth_attempt(store, refresh_module.MIN_SPACING + 5)
    store.put([statusline_reading(age=1)])
    done = cli("refresh")
    assert done.returncode == 0, done.stderr
    assert len(upstream.hits(USAGE)) == 2
