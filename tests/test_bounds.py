"""Bounded by design (issue 16): however long claudemeter runs and however many browser
names post, an account keeps a bounded number of rows and a bounded ``browser`` list, and
a source silent for ``CLAUDEMETER_FORGET_DAYS`` while others go on is dropped."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from claudemeter.model import Snapshot, format_time, utcnow
from claudemeter.store import MAX_ROWS_PER_ACCOUNT, Store
from tests.helpers import cli, fixture_bodies

NOW = "2026-11-25T12:30:00Z"


def reading(browser: str, minutes_ago: float) -> dict[str, object]:
    body = fixture_bodies("snapshots_two_browsers_two_accounts.json")[0]
    fetched = utcnow() - timedelta(minutes=minutes_ago)
    return {**body, "browser": browser, "fetched_at": format_time(fetched)}


def test_500_browser_names_are_not_500_rows(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMETER_NOW", NOW)
    # 500 names, the newest last, as a long-running bridge would have seen them
    bodies = [reading(f"Chrome profile {n:03d}", 500 - n) for n in range(500)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(bodies))
    done = cli("ingest", str(path))
    assert done.returncode == 0, done.stderr
    state = Store(state_dir).read()
    assert len(state.rows) == MAX_ROWS_PER_ACCOUNT
    names = {row.browser for row in state.rows}
    assert names == {f"Chrome profile {n:03d}" for n in range(500 - MAX_ROWS_PER_ACCOUNT, 500)}
    (row,) = state.accounts()
    assert len(row.browser.split(", ")) == MAX_ROWS_PER_ACCOUNT
    assert len(row.browser) < 30 * MAX_ROWS_PER_ACCOUNT


@pytest.mark.parametrize(("days", "kept"), [(None, False), ("30", True), ("0", True)])
def test_a_source_silent_for_days_is_forgotten(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, days: str | None, kept: bool
) -> None:
    monkeypatch.setenv("CLAUDEMETER_NOW", NOW)
    if days is not None:
        monkeypatch.setenv("CLAUDEMETER_FORGET_DAYS", days)
    store = Store(state_dir)
    with store.update() as state:
        state.put(Snapshot.from_json(reading("Firefox", 8 * 24 * 60)))  # 8 days ago
    # alone, the last thing known stays (it shows as stale), whatever the date
    assert [r.browser for r in store.read().rows] == ["Firefox"]
    with store.update() as state:
        state.put(Snapshot.from_json(reading("Chrome", 1)))
    browsers = sorted(r.browser for r in store.read().rows)
    assert browsers == (["Chrome", "Firefox"] if kept else ["Chrome"])
