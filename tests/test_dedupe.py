"""dedupe_by_account, rule by rule (SPEC section 3), then as properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claudemeter.dedupe import dedupe_by_account
from claudemeter.model import Snapshot, format_time, parse_many
from tests.helpers import fixture

NOW = datetime(2026, 11, 25, 12, 1, tzinfo=timezone.utc)


def row(
    org: str,
    browser: str,
    email: str | None,
    seconds_ago: float,
    five: float | None = 10.0,
    **extra: Any,  # Snapshot fields, set by dataclasses.replace
) -> Snapshot:
    usage = None if five is None else {"five_hour": {"utilization": five, "resets_at": None}}
    snap = Snapshot(
        org_uuid=org,
        browser=browser,
        account_email=email,
        fetched_at=NOW - timedelta(seconds=seconds_ago),
        usage=usage,
    )
    return replace(snap, **extra)


def five(snap: Snapshot) -> float | None:
    window = snap.window("five_hour")
    return window.utilization if window else None


def test_the_bridge_fixture_folds_to_two_accounts() -> None:
    rows = dedupe_by_account(parse_many(fixture("snapshots_two_browsers_two_accounts.json")), NOW)
    assert [r.account_email for r in rows] == ["ada@example.com", "work@example.org"]
    ada = rows[0]
    assert ada.browser == "Chrome, Arc, Brave"
    assert five(ada) == 63.0  # Arc's reading is the newest
    assert ada.fetched_at.isoformat().startswith("2026-11-25T12:00:20")
    assert ada.overage is not None and ada.overage["monthly_credit_limit"] == 5000  # from Chrome
    assert ada.subscription is not None and ada.subscription["status"] == "active"
    assert ada.errors == []  # the winner's errors, not Brave's
    assert rows[1].browser == "Chrome"


def test_two_browsers_one_account() -> None:
    rows = dedupe_by_account(
        [row("o1", "Chrome", "a@x", 30, 40), row("o1", "Arc", "a@x", 10, 41)], NOW
    )
    assert len(rows) == 1
    assert rows[0].browser == "Chrome, Arc"
    assert five(rows[0]) == 41


def test_failed_email_lookup_folds_by_org() -> None:
    rows = dedupe_by_account([row("o1", "Chrome", "a@x", 30), row("o1", "Brave", None, 5, 50)], NOW)
    assert len(rows) == 1
    assert rows[0].account_email == "a@x"
    assert five(rows[0]) == 50


def test_empty_org_folds_by_email_into_the_org_row() -> None:
    rows = dedupe_by_account([row("o1", "Chrome", "A@x", 30), row("", "Edge", "a@x", 5, 70)], NOW)
    assert len(rows) == 1
    assert rows[0].org_uuid == "o1"
    assert rows[0].browser == "Chrome, Edge"


def test_empty_org_rows_fold_among_themselves() -> None:
    rows = dedupe_by_account([row("", "Chrome", "a@x", 30), row("", "Edge", "a@x", 5)], NOW)
    assert len(rows) == 1 and rows[0].org_uuid == ""


def test_two_accounts_stay_two_in_first_seen_order() -> None:
    rows = dedupe_by_account(
        [row("o2", "Chrome", "b@x", 1), row("o1", "Chrome", "a@x", 2), row("o2", "Arc", "b@x", 3)],
        NOW,
    )
    assert [r.org_uuid for r in rows] == ["o2", "o1"]


def test_one_email_in_two_orgs_is_two_rows() -> None:
    rows = dedupe_by_account(
        [row("personal", "Chrome", "a@x", 1, 10), row("team", "Chrome", "a@x", 1, 90)], NOW
    )
    assert [(r.org_uuid, five(r)) for r in rows] == [("personal", 10), ("team", 90)]


def test_fresh_row_beats_a_newer_stale_one() -> None:
    stale_newer = row("o1", "Arc", "a@x", 5, 99, stale=True)
    fresh_older = row("o1", "Chrome", "a@x", 60, 42)
    folded = dedupe_by_account([fresh_older, stale_newer], NOW)[0]
    assert five(folded) == 42 and folded.stale is False


def test_age_makes_a_row_stale() -> None:
    old = row("o1", "Chrome", "a@x", 3600, 42)
    folded = dedupe_by_account([old], NOW)[0]
    assert folded.stale is True
    assert five(folded) == 42  # the last good numbers stay, marked


def test_all_stale_takes_the_newest_with_usage() -> None:
    rows = [
        row("o1", "Chrome", "a@x", 4000, 10),
        row("o1", "Arc", "a@x", 3000, 20),
        row("o1", "Brave", "a@x", 1000, None),
    ]
    folded = dedupe_by_account(rows, NOW)[0]
    assert five(folded) == 20 and folded.stale


def test_row_without_usage_never_wins_over_one_with() -> None:
    failed = row("o1", "Claude Code", "a@x", 1, None, errors=["usage: HTTP 500"])
    folded = dedupe_by_account([row("o1", "Chrome", "a@x", 30, 33), failed], NOW)[0]
    assert five(folded) == 33 and folded.errors == []


def test_errors_of_the_winner_are_kept() -> None:
    rows = [row("o1", "Chrome", "a@x", 30, 10, errors=["overage: HTTP 503"])]
    assert dedupe_by_account(rows, NOW)[0].errors == ["overage: HTTP 503"]


def test_merge_of_merged_rows_is_stable() -> None:
    first = dedupe_by_account([row("o1", "Chrome", "a@x", 30), row("o1", "Arc", "a@x", 20)], NOW)
    again = dedupe_by_account(
        [*first, row("o1", "Arc", "a@x", 5), row("o1", "Edge", "a@x", 1)], NOW
    )
    assert again[0].browser == "Chrome, Arc, Edge"


# ---- properties --------------------------------------------------------------------

rows_strategy = st.lists(
    st.builds(
        row,
        org=st.sampled_from(["o1", "o2", ""]),
        browser=st.sampled_from(["Chrome", "Arc", "Brave", "Claude Code", "statusline"]),
        email=st.sampled_from(["a@x", "b@x", None]),
        seconds_ago=st.floats(min_value=0, max_value=2000),
        five=st.one_of(st.none(), st.floats(min_value=0, max_value=120)),
    ).filter(lambda s: bool(s.org_uuid or s.account_email)),
    max_size=12,
)


def _view(rows: list[Snapshot]) -> list[object]:
    return [(r.org_uuid, r.account_email, r.browser, r.fetched_at, r.usage, r.stale) for r in rows]


@settings(max_examples=200, deadline=None)
@given(rows_strategy)
def test_folding_is_idempotent(rows: list[Snapshot]) -> None:
    once = dedupe_by_account(rows, NOW)
    assert _view(dedupe_by_account(once, NOW)) == _view(once)


@settings(max_examples=200, deadline=None)
@given(rows_strategy)
def test_one_row_per_org(rows: list[Snapshot]) -> None:
    folded = dedupe_by_account(rows, NOW)
    orgs = [r.org_uuid for r in folded if r.org_uuid]
    assert len(orgs) == len(set(orgs))
    for r in folded:  # no browser name is repeated inside a row
        names = r.browser.split(", ")
        assert len(names) == len(set(names))


@settings(max_examples=200, deadline=None)
@given(rows_strategy)
def test_nothing_with_usage_is_lost(rows: list[Snapshot]) -> None:
    folded = dedupe_by_account(rows, NOW)
    for org in {r.org_uuid for r in rows if r.org_uuid and r.usage is not None}:
        assert any(f.org_uuid == org and f.usage is not None for f in folded)


# ---- per bucket (SPEC section 3: each window from the newest fresh usable reading) --

SOON = NOW + timedelta(hours=2)
NEXT_WEEK = NOW + timedelta(days=3)
LONG_AGO = NOW - timedelta(days=20)


def reading(browser: str, seconds_ago: float, **buckets: object) -> Snapshot:
    """One reading of account o1; each bucket ``(utilization, resets_at)`` or None."""
    usage: dict[str, object] = {}
    for name, value in buckets.items():
        if isinstance(value, tuple):
            util, resets = value
            usage[name] = {"utilization": util, "resets_at": format_time(resets)}
        else:
            usage[name] = value
    return Snapshot("o1", browser, "a@x", NOW - timedelta(seconds=seconds_ago), usage=usage)


def values(snap: Snapshot) -> dict[str, float | None]:
    return {n: w.used(NOW) for n, w in snap.windows().items()}


def sources(snap: Snapshot) -> dict[str, str]:
    return {n: snap.origin(n).source for n in snap.windows()}


@pytest.mark.parametrize(
    ("readings", "expected", "from_"),
    [
        pytest.param(
            [
                reading("statusline", 20, five_hour=(95.0, SOON), seven_day=(75.0, NEXT_WEEK)),
                # an idle session re-sends 100 % of a window whose reset passed weeks ago
                reading("Chrome", 5, five_hour=(100.0, LONG_AGO), seven_day=(75.0, NEXT_WEEK)),
            ],
            {"five_hour": 95.0, "seven_day": 75.0},
            {"five_hour": "statusline", "seven_day": "Chrome"},
            id="expired-100-never-erases-a-fresh-95",
        ),
        pytest.param(
            [
                reading("Claude Code", 60, five_hour=(40.0, SOON), seven_day=(93.0, NEXT_WEEK)),
                reading("statusline", 1, five_hour=(41.0, SOON)),  # only five_hour
            ],
            {"five_hour": 41.0, "seven_day": 93.0},
            {"five_hour": "statusline", "seven_day": "Claude Code"},
            id="a-reading-lacking-a-bucket-keeps-the-others",
        ),
        pytest.param(
            [
                reading("Chrome", 30, five_hour=(50.0, SOON), seven_day=(93.0, NEXT_WEEK)),
                reading("Arc", 5, five_hour=(51.0, SOON), seven_day=None),
            ],
            {"five_hour": 51.0, "seven_day": 93.0},
            {"five_hour": "Arc", "seven_day": "Chrome"},
            id="arc-null-seven-day-after-chromes-93",
        ),
        pytest.param(
            [
                reading("Chrome", 30, five_hour=(50.0, SOON)),
                reading("Arc", 5, five_hour={"utilization": None, "resets_at": None}),
            ],
            {"five_hour": 50.0},
            {"five_hour": "Chrome"},
            id="hollow-never-erases",
        ),
        pytest.param(
            [
                reading("Chrome", 250, five_hour=(50.0, SOON)),
                reading("Arc", 3000, five_hour=(70.0, SOON), seven_day=(20.0, NEXT_WEEK)),
            ],
            {"five_hour": 50.0, "seven_day": 20.0},
            {"five_hour": "Chrome", "seven_day": "Arc"},
            id="fresh-wins-a-stale-value-stays-for-what-only-it-has",
        ),
        pytest.param(
            [reading("Chrome", 30, five_hour=(63.0, LONG_AGO))],
            {"five_hour": 0.0},
            {"five_hour": "Chrome"},
            id="only-an-expired-value-reads-as-reset",
        ),
    ],
)
def test_each_bucket_from_the_newest_fresh_usable_reading(
    readings: list[Snapshot], expected: dict[str, float], from_: dict[str, str]
) -> None:
    (folded,) = dedupe_by_account(readings, NOW)
    assert values(folded) == expected
    assert sources(folded) == from_


def test_provenance_is_in_the_json_with_age_and_the_row_times_are_the_newest() -> None:
    (folded,) = dedupe_by_account(
        [
            reading("Claude Code", 60, five_hour=(40.0, SOON), seven_day=(93.0, NEXT_WEEK)),
            reading("statusline", 1, five_hour=(41.0, SOON)),
        ],
        NOW,
    )
    body = folded.to_json(NOW)
    assert body["provenance"]["seven_day"] == {
        "source": "Claude Code",
        "fetched_at": format_time(NOW - timedelta(seconds=60)),
        "age_seconds": 60,
        "stale": False,
    }
    assert body["provenance"]["five_hour"]["source"] == "statusline"
    assert body["fetched_at"] == format_time(NOW - timedelta(seconds=1))
    assert body["browser"] == "Claude Code, statusline"
    assert folded.stale is False


def test_errors_of_every_contributing_reading_are_kept() -> None:
    first = replace(
        reading("Claude Code", 60, seven_day=(93.0, NEXT_WEEK)), errors=["profile: HTTP 500"]
    )
    second = replace(reading("Chrome", 1, five_hour=(41.0, SOON)), errors=["overage: HTTP 503"])
    # contributes nothing: not its errors
    idle = replace(reading("Arc", 2, five_hour=(40.0, SOON)), errors=["account: HTTP 503"])
    (folded,) = dedupe_by_account([first, second, idle], NOW)
    assert folded.errors == ["overage: HTTP 503", "profile: HTTP 500"]


# Readings of one account (the org and the email-only form of it) from every source.
bucket_value = st.one_of(
    st.none(),
    st.just({"utilization": None, "resets_at": None}),
    st.tuples(
        st.floats(min_value=0, max_value=120),
        st.sampled_from([SOON, NEXT_WEEK, LONG_AGO, NOW - timedelta(seconds=1)]),
    ),
)
one_account_reading = st.builds(
    lambda browser, ago, org, stale, buckets: _reading_of(browser, ago, org, stale, buckets),
    st.sampled_from(["Chrome", "Arc", "Claude Code", "statusline"]),
    st.floats(min_value=-30, max_value=2000),
    st.sampled_from(["o1", ""]),
    st.booleans(),
    st.dictionaries(
        st.sampled_from(["five_hour", "seven_day", "seven_day_opus"]), bucket_value, max_size=3
    ),
)


def _reading_of(
    browser: str, ago: float, org: str, stale: bool, buckets: dict[str, object]
) -> Snapshot:
    return replace(reading(browser, ago, **buckets), org_uuid=org, stale=stale)


def fresh_values(rows: list[Snapshot]) -> dict[str, float]:
    folded = dedupe_by_account(rows, NOW)
    found: dict[str, float] = {}
    for row in folded:
        for name, window in row.windows().items():
            if window.utilization is None or window.has_reset(NOW):
                continue
            if not row.origin(name).is_stale(NOW):
                found[name] = window.utilization
    return found


@settings(max_examples=300, deadline=None)
@given(st.lists(one_account_reading, max_size=8), one_account_reading)
def test_adding_a_reading_never_removes_a_fresh_bucket_value(
    rows: list[Snapshot], added: Snapshot
) -> None:
    before = fresh_values(rows)
    after = fresh_values([*rows, added])
    assert set(before) <= set(after), (before, after)


@settings(max_examples=200, deadline=None)
@given(st.lists(one_account_reading, max_size=8))
def test_the_per_bucket_fold_is_idempotent_with_its_provenance(rows: list[Snapshot]) -> None:
    once = dedupe_by_account(rows, NOW)
    again = dedupe_by_account(once, NOW)
    assert [r.to_json(NOW) for r in again] == [r.to_json(NOW) for r in once]
