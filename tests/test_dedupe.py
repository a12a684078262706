"""dedupe_by_account, rule by rule (SPEC section 3), then as properties."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from claudemeter.dedupe import dedupe_by_account
from claudemeter.model import Snapshot, parse_many
from tests.upstream import fixture

NOW = datetime(2026, 11, 25, 12, 1, tzinfo=timezone.utc)


def row(
    org: str,
    browser: str,
    email: str | None,
    seconds_ago: float,
    five: float | None = 10.0,
    **extra: object,
) -> Snapshot:
    usage = None if five is None else {"five_hour": {"utilization": five, "resets_at": None}}
    snap = Snapshot(
        org_uuid=org,
        browser=browser,
        account_email=email,
        fetched_at=NOW - timedelta(seconds=seconds_ago),
        usage=usage,
    )
    for key, value in extra.items():
        setattr(snap, key, value)
    return snap


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
