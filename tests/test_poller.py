"""The polite OAuth poller against a fake api.anthropic.com on loopback, on a pinned
clock (``CLAUDEMETER_NOW``) so hours of back-off pass in no time: a rejected login is
not asked about again until it changes, rate limits climb a ladder of waits, Claude
Code's own usage cache makes our request unnecessary, and we say who we are."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path

import pytest

import claudemeter
from claudemeter.model import JSON, SOURCE_CLAUDE_CODE_CACHE, SOURCE_OAUTH, format_time
from claudemeter.refresh import OAUTH_INTERVAL, refresh
from claudemeter.sources import SourceBook, oauth
from claudemeter.store import Store
from tests.helpers import cli, cli_rows, fixture, fixture_body, utilization
from tests.upstream import FakeUpstream, Reply

USAGE = "/api/oauth/usage"
#: The fixture cache's fetchedAtMs (2026-11-29T06:00:00Z): the clock starts here.
CACHED_AT = datetime.fromtimestamp(1795932000, timezone.utc)
RATE_LIMITED = Reply(429, fixture("error_429_rate_limited.json"), {"retry-after": "0"})
PERMISSION_ERROR = {
    "type": "error",
    "error": {"type": "permission_error", "message": "OAuth token lacks the scope"},
}

Clock = Callable[[float], None]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """``clock(s)`` pins every reader's and writer's now to CACHED_AT + s seconds."""

    def move(seconds: float) -> None:
        monkeypatch.setenv("CLAUDEMETER_NOW", format_time(CACHED_AT + timedelta(seconds=seconds)))

    move(0)
    return move


def book() -> SourceBook:
    return next(iter(Store().read().sources.values()))


def booked_wait() -> float:
    """Seconds from the source's last attempt to its next allowed one, as booked."""
    booked = book()
    last, next_allowed = booked["last_attempt"], booked["next_allowed"]
    assert isinstance(last, (int, float)) and isinstance(next_allowed, (int, float)), booked
    return next_allowed - last


def test_user_agent_is_ours_and_honest(claude_dir: Path, upstream: FakeUpstream) -> None:
    refresh(Store())
    (seen,) = upstream.hits(USAGE)
    assert seen.headers["User-Agent"] == f"claudemeter/{claudemeter.__version__}"
    assert claudemeter.__version__ == version("claudemeter")  # one version, everywhere
    assert "claude-cli" not in seen.headers["User-Agent"]


@pytest.mark.parametrize(
    "reply",
    [Reply(401, fixture("error_401_oauth_not_supported.json")), Reply(403, PERMISSION_ERROR)],
    ids=["401", "403-anthropic-error"],
)
def test_a_rejected_login_is_not_asked_again_until_it_changes(
    claude_dir: Path, upstream: FakeUpstream, clock: Clock, reply: Reply
) -> None:
    upstream.routes[USAGE] = reply
    first = refresh(Store())
    assert not first[0].ok and "login rejected" in first[0].message
    upstream.routes[USAGE] = Reply(200, fixture("oauth_usage_basic.json"))
    for hours in (1, 6, 48):  # however long, automatic or asked for
        clock(hours * 3600)
        assert "login rejected" in refresh(Store())[0].message
        assert "login rejected" in refresh(Store(), min_age=0, explicit=True)[0].message
    assert len(upstream.hits(USAGE)) == 1
    # Claude Code logs in again: a new token in the credentials file.
    creds = json.loads((claude_dir / ".credentials.json").read_text())
    creds["claudeAiOauth"]["accessToken"] = "sk-ant-oat01-FAKE-RENEWED"
    (claude_dir / ".credentials.json").write_text(json.dumps(creds))
    renewed = refresh(Store())
    assert renewed[0].ok and renewed[0].fetched
    assert upstream.hits(USAGE)[-1].headers["Authorization"] == "Bearer sk-ant-oat01-FAKE-RENEWED"


def test_a_403_without_an_anthropic_body_is_a_rate_limit(
    claude_dir: Path, upstream: FakeUpstream, clock: Clock
) -> None:
    upstream.routes[USAGE] = Reply(403, b"")
    refresh(Store())
    assert book()["status"] == oauth.STATUS_BACKOFF
    clock(oauth.RATE_LIMIT_LADDER[0] + 1)
    upstream.routes[USAGE] = Reply(200, fixture("oauth_usage_basic.json"))
    assert refresh(Store())[0].ok  # not a login problem: asked again after the wait
    assert len(upstream.hits(USAGE)) == 2


def test_retry_after_zero_repeated_climbs_the_ladder_and_a_good_answer_resets_it(
    claude_dir: Path, upstream: FakeUpstream, clock: Clock
) -> None:
    upstream.routes[USAGE] = RATE_LIMITED
    waits, at = [], 0.0
    for _ in range(7):
        results = refresh(Store())
        assert results[0].fetched
        waits.append(booked_wait())
        # Just before the wait is over nothing is sent; just after, the next try is.
        clock(at + waits[-1] - 1)
        assert "backing off" in refresh(Store())[0].message
        at += waits[-1] + 1
        clock(at)
    assert waits == [300, 600, 1200, 2400, 3600, 3600, 3600]
    assert len(upstream.hits(USAGE)) == 7
    upstream.routes[USAGE] = Reply(200, fixture("oauth_usage_basic.json"))
    assert refresh(Store())[0].ok
    upstream.routes[USAGE] = RATE_LIMITED
    clock(at + OAUTH_INTERVAL + 1)
    refresh(Store())
    assert booked_wait() == 300


def test_an_in_band_rate_limit_climbs_the_same_ladder(
    claude_dir: Path, upstream: FakeUpstream, clock: Clock
) -> None:
    upstream.routes[USAGE] = Reply(200, fixture("oauth_usage_in_band_error.json"))
    refresh(Store())
    clock(301)
    refresh(Store())
    assert book()["rate_limited"] == 2 and book()["status"] == oauth.STATUS_BACKOFF
    assert booked_wait() == 600
    assert [r.usage for r in Store().read().rows] == [None]  # an error is not a reading


@pytest.mark.parametrize(("header", "wait"), [("90", 90), ("7200", 3600)])
def test_a_positive_retry_after_is_honoured_up_to_an_hour(
    claude_dir: Path, upstream: FakeUpstream, clock: Clock, header: str, wait: float
) -> None:
    upstream.routes[USAGE] = Reply(
        429, fixture("error_429_rate_limited.json"), {"retry-after": header}
    )
    refresh(Store(), min_age=0)
    assert booked_wait() == wait


# --- Claude Code's own cache ----------------------------------------------------------


def cached_claude_json(isolated: Path, *, age: float = 0.0, **changes: object) -> JSON:
    """Write the fixture ``.claude.json`` with its cache ``age`` seconds before the
    pinned clock's start; ``changes`` replace keys of ``cachedUsageUtilization``."""
    body = fixture_body("claude_json_cached_usage.json")
    cache = body["cachedUsageUtilization"]
    cache["fetchedAtMs"] = int((CACHED_AT.timestamp() - age) * 1000)
    cache.update(changes)
    (isolated / ".claude.json").write_text(json.dumps(body))
    return body


def test_a_fresh_claude_code_cache_means_no_request(
    claude_dir: Path, isolated: Path, upstream: FakeUpstream, clock: Clock
) -> None:
    body = cached_claude_json(isolated)
    clock(60)
    results = refresh(Store())
    assert results[0].ok and "cache is 60s old: no request" in results[0].message
    assert upstream.requests == []
    [row] = Store().read().rows
    assert row.browser == SOURCE_CLAUDE_CODE_CACHE
    assert row.usage == body["cachedUsageUtilization"]["utilization"]
    assert row.fetched_at == CACHED_AT  # aged by Claude Code's fetchedAtMs, not by us
    assert (row.account_email, utilization(row, "five_hour")) == ("ada@example.com", 48.0)
    [printed] = cli_rows("--json")
    assert printed["usage"]["seven_day_oauth_apps"]["utilization"] == 31.0
    assert "Claude Code cache" in printed["browser"]
    # Claude Code stops: once its cache is older than the interval, we ask ourselves.
    clock(OAUTH_INTERVAL + 1)
    assert refresh(Store())[0].fetched and len(upstream.hits(USAGE)) == 1


@pytest.mark.parametrize(
    "changes",
    [{"accountUuid": "5c1d4a1e-0000-4000-8000-00000000ffff"}, {"accountUuid": None}],
    ids=["another-account", "no-account"],
)
def test_a_cache_of_another_account_is_not_used(
    claude_dir: Path,
    isolated: Path,
    upstream: FakeUpstream,
    clock: Clock,
    changes: dict[str, object],
) -> None:
    cached_claude_json(isolated, age=0.0, **changes)  # age named: **changes sets no age
    clock(60)
    assert refresh(Store())[0].fetched
    assert [r.browser for r in Store().read().rows] == [SOURCE_OAUTH]


def test_a_cache_older_than_the_interval_does_not_hold_back_a_request(
    claude_dir: Path, isolated: Path, upstream: FakeUpstream, clock: Clock
) -> None:
    cached_claude_json(isolated, age=OAUTH_INTERVAL + 5)
    assert refresh(Store())[0].fetched
    browsers = {r.browser for r in Store().read().rows}
    assert browsers == {SOURCE_OAUTH, SOURCE_CLAUDE_CODE_CACHE}  # stored all the same


def test_a_cached_in_band_error_keeps_the_last_good_reading(
    claude_dir: Path, isolated: Path, upstream: FakeUpstream, clock: Clock
) -> None:
    cached_claude_json(isolated)
    clock(30)
    refresh(Store())
    cached_claude_json(isolated, age=-20, utilization=fixture("oauth_usage_in_band_error.json"))
    clock(40)
    refresh(Store())
    [row] = Store().read().rows
    assert utilization(row, "five_hour") == 48.0
    assert any("in-band" in e or "rate_limit_error" in e for e in row.errors)


def test_the_statusline_command_stores_the_cache_too(
    claude_dir: Path, isolated: Path, state_dir: Path, clock: Clock
) -> None:
    """No OAuth login needed: Claude Code's statusLine run reads .claude.json anyway."""
    (claude_dir / ".credentials.json").unlink()
    cached_claude_json(isolated)
    clock(10)
    done = cli("statusline", stdin=json.dumps({"session_id": "s"}))
    assert done.returncode == 0 and "5h 48%" in done.stdout
    [row] = json.loads((state_dir / "state.json").read_text())["rows"]
    assert row["browser"] == SOURCE_CLAUDE_CODE_CACHE
    assert row["usage"]["seven_day"]["utilization"] == 27.0


def test_an_unchanged_cache_is_not_written_again(
    claude_dir: Path, isolated: Path, state_dir: Path, upstream: FakeUpstream, clock: Clock
) -> None:
    """The bridge's poller calls refresh every 30 s: an unchanged cache costs no write."""
    cached_claude_json(isolated)
    clock(30)
    refresh(Store())
    written = (state_dir / "state.json").stat().st_ino
    clock(60)
    assert "no request" in refresh(Store())[0].message
    assert (state_dir / "state.json").stat().st_ino == written  # replaced files get a new inode
    cached_claude_json(isolated, age=-50)  # Claude Code looked again
    refresh(Store())
    assert (state_dir / "state.json").stat().st_ino != written
    assert upstream.requests == []
