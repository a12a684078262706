"""The guard's decision as a pure function of rows and the clock: the boundaries that
decide whether five agents stop (threshold, grace, reset, unknown, old data)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from claudemeter.gate import (
    OVER,
    RESET,
    UNDER,
    UNKNOWN,
    ambiguity,
    decide,
    mismatch,
    select_row,
)
from claudemeter.model import Snapshot, format_time
from claudemeter.sources import SourceBook
from claudemeter.sources.claude_account import Account
from claudemeter.store import login_problem

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def row(
    usage: dict[str, Any] | None,
    *,
    org: str = "org-a",
    email: str = "a@example.com",
    age: float = 0.0,
) -> Snapshot:
    snap = Snapshot(
        org_uuid=org,
        browser="Chrome",
        account_email=email,
        fetched_at=NOW - timedelta(seconds=age),
        usage=usage,
    )
    return snap.with_staleness(NOW)


def bucket(util: float | None, resets_in: float | None) -> dict[str, Any]:
    resets = format_time(NOW + timedelta(seconds=resets_in)) if resets_in is not None else None
    return {"utilization": util, "resets_at": resets}


@pytest.mark.parametrize(
    ("util", "resets_in", "grace", "state"),
    [
        (89.9, 600, 30, UNDER),
        (90.0, 600, 30, OVER),  # "at or above"
        (150.0, 600, 30, OVER),  # may exceed 100
        (95.0, -10, 30, OVER),  # reset passed, but still inside the grace
        (95.0, -30, 30, RESET),  # resets_at + grace reached
        (40.0, -1, 30, RESET),
        (None, 600, 30, UNKNOWN),  # unknown is not 0
    ],
)
def test_bucket_states(util: float | None, resets_in: float, grace: float, state: str) -> None:
    verdict = decide(
        [row({"five_hour": bucket(util, resets_in)})], {}, NOW, threshold=90, grace=grace
    )
    assert verdict.buckets[0].state == state
    assert verdict.state == {RESET: UNDER}.get(state, state)


def test_resume_time_is_the_latest_over_bucket_plus_grace() -> None:
    usage = {
        "five_hour": bucket(95, 600),
        "seven_day": bucket(91, 7200),
        "seven_day_oauth_apps": bucket(10, 60),
    }
    verdict = decide([row(usage)], {}, NOW, threshold=90, grace=30)
    assert verdict.state == OVER
    assert verdict.resume_at == NOW + timedelta(seconds=7230)
    assert verdict.reason.startswith("five_hour at 95%")


def test_over_without_a_reset_time_holds_with_no_resume_time() -> None:
    verdict = decide([row({"five_hour": bucket(99, None)})], {}, NOW, threshold=90)
    assert (verdict.state, verdict.resume_at) == (OVER, None)


def test_old_data_under_is_unknown_old_data_over_still_holds() -> None:
    old_under = row({"five_hour": bucket(10, 600)}, age=3600)
    assert decide([old_under], {}, NOW, threshold=90).state == UNKNOWN
    old_over = row({"five_hour": bucket(95, 600)}, age=3600)
    assert decide([old_over], {}, NOW, threshold=90).state == OVER


def test_no_row_no_usage_and_unwatched_buckets_are_unknown() -> None:
    assert decide([], {}, NOW, threshold=90).state == UNKNOWN
    assert decide([row(None)], {}, NOW, threshold=90).state == UNKNOWN
    only_opus = row({"seven_day_opus": bucket(99, 600)})
    assert decide([only_opus], {}, NOW, threshold=90).state == UNKNOWN
    assert decide([only_opus], {}, NOW, threshold=90, buckets=("seven_day_opus",)).state == OVER


def test_holds_depends_on_fail_closed_only_for_unknown() -> None:
    unknown = decide([], {}, NOW, threshold=90)
    assert (unknown.holds(False), unknown.holds(True)) == (False, True)
    over = decide([row({"five_hour": bucket(95, 60)})], {}, NOW, threshold=90)
    assert (over.holds(False), over.holds(True)) == (True, True)


def test_select_row_order_of_preference() -> None:
    low = row({"five_hour": bucket(10, 600)}, org="org-login", email="me@example.com")
    high = row({"five_hour": bucket(80, 600)}, org="org-other", email="you@example.com")
    login = Account("org-login", "me@example.com")
    assert select_row([high, low], ("five_hour",), None, login) is low
    assert select_row([high, low], ("five_hour",), "YOU@example.com", login) is high
    assert select_row([high, low], ("five_hour",), "nobody@example.com", login) is None
    assert select_row([low], ("five_hour",), None, Account("org-x", None)) is low  # only one
    assert select_row([low, high], ("five_hour",), None, None) is high  # nearest its limit


def test_login_problem_is_the_sources_own_words() -> None:
    books: dict[str, SourceBook] = {
        "oauth:org-a": {
            "status": "login",
            "error": "login expired at 2026-11-24: run `claude` once to refresh the login",
        },
        "oauth:org-b": {"status": "login", "error": "someone else's"},
    }
    assert "login expired" in (login_problem(books, row({})) or "")
    assert login_problem({"oauth:org-a": {"status": "ok"}}, row({})) is None


def test_mismatch_names_what_the_store_has() -> None:
    ada = row(
        {
            "five_hour": bucket(10, 600),
            "seven_day_sonnet": bucket(3, 600),
            "seven_day_opus": None,
            "brand_new": None,
            "extra_usage": {"is_enabled": False, "utilization": None},
        }
    )
    bob = row({"five_hour": bucket(10, 600)}, org="org-b", email="bob@example.com")
    assert mismatch([ada], ("five_hour", "seven_day_opus", "brand_new"), None, None) is None
    assert mismatch([ada], ("seven_day",), None, None) is None  # known, just not sent
    assert mismatch([ada], ("nope",), None, None) == (
        'no bucket "nope" for a@example.com; known: five_hour, seven_day_sonnet'
    )
    assert "no bucket" in (mismatch([ada], ("extra_usage",), None, None) or "")
    assert mismatch([], ("five_hour",), "x@example.com", None) is None  # no data yet
    assert "no usage data yet" in (mismatch([], ("nope",), None, None) or "")
    assert mismatch([ada, bob], ("five_hour",), "nobody@x", None) == (
        'no account "nobody@x" in the store; accounts: a@example.com, bob@example.com'
    )
    assert mismatch([ada, bob], ("five_hour",), "ORG-B", None) is None


def test_select_row_by_org_uuid_tells_two_plans_of_one_email_apart() -> None:
    personal = row({"five_hour": bucket(10, 600)}, org="org-personal")
    team = row({"five_hour": bucket(80, 600)}, org="org-team")
    assert select_row([personal, team], ("five_hour",), "org-team", None) is team
    # one email in two orgs: refused before a command starts (ambiguity); should it
    # arise later, the fullest row is the safe one to read
    assert select_row([personal, team], ("five_hour",), "a@example.com", None) is team
    said = ambiguity([personal, team], "a@example.com")
    assert said is not None and "org-personal" in said and "org-team" in said
    assert ambiguity([personal, team], "org-team") is None
    assert select_row([personal], ("five_hour",), "", None) is None
