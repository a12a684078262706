"""The OAuth source against a fake api.anthropic.com on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from claudemeter.refresh import MIN_SPACING, refresh
from claudemeter.sources import oauth
from claudemeter.store import Store
from tests.helpers import LOGIN_ORG, cli, cli_rows, fixture, fixture_body, guard_check, utilization
from tests.upstream import FakeUpstream, Reply

TOKEN = "sk-ant-oat01-FAKE-TOKEN-FOR-TESTS-ONLY"
REFRESH_TOKEN = "sk-ant-ort01-FAKE-REFRESH-FOR-TESTS-ONLY"
USAGE = "/api/oauth/usage"
PERMISSION_ERROR = {
    "type": "error",
    "error": {"type": "permission_error", "message": "OAuth token lacks the scope"},
}


def everything_written(state_dir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in state_dir.rglob("*") if p.is_file())


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and REFRESH_TOKEN not in text
        assert "FAKE-TOKEN" not in text and "FAKE-REFRESH" not in text


def test_fetch_sends_the_token_and_the_beta_header(
    claude_dir: Path, upstream: FakeUpstream
) -> None:
    results = refresh(Store())
    assert [r.ok for r in results] == [True]
    (seen,) = upstream.hits(USAGE)
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["anthropic-beta"] == "oauth-2025-04-20"
    row = Store().accounts()[0]
    assert row.browser == "Claude Code"
    assert row.account_email == "ada@example.com"
    assert row.org_uuid == LOGIN_ORG
    assert row.usage == fixture("oauth_usage_basic.json")


def test_account_comes_from_claude_json_without_a_profile_when_known(
    claude_dir: Path, upstream: FakeUpstream
) -> None:
    upstream.routes["/api/oauth/profile"] = Reply(500, {"error": "down"})
    refresh(Store())
    row = Store().accounts()[0]
    assert row.account_email == "ada@example.com"  # from .claude.json; no request needed
    assert any("profile: HTTP 500" in e for e in row.errors)


def test_profile_fills_the_account_when_claude_json_is_missing(
    claude_dir: Path, isolated: Path, upstream: FakeUpstream
) -> None:
    (isolated / ".claude.json").unlink()
    refresh(Store())
    row = Store().accounts()[0]
    assert row.account_email == "ada@example.com"
    assert upstream.hits("/api/oauth/profile")


def test_no_token_reaches_the_store_output_or_errors(
    claude_dir: Path, upstream: FakeUpstream, state_dir: Path
) -> None:
    # The server echoes the Authorization header back in an error: it must not survive.
    upstream.routes[USAGE] = lambda seen: Reply(
        500, {"error": f"bad header {seen.headers.get('Authorization')}"}
    )
    done = cli("refresh")
    upstream.routes[USAGE] = Reply(200, fixture("oauth_usage_basic.json"))
    later = cli("--json")
    summary = cli("--cached")
    doctor = cli("doctor")
    assert_no_secret(
        done.stdout,
        done.stderr,
        later.stdout,
        later.stderr,
        summary.stdout,
        summary.stderr,
        doctor.stdout,
        everything_written(state_dir),
    )


@pytest.mark.parametrize(
    ("reply", "expected", "status"),
    [
        (Reply(401, fixture("error_401_oauth_not_supported.json")), "HTTP 401", oauth.STATUS_LOGIN),
        (Reply(403, PERMISSION_ERROR), "HTTP 403, login rejected", oauth.STATUS_LOGIN),
        (Reply(403, b""), "HTTP 403 rate limited", oauth.STATUS_BACKOFF),
        (Reply(403, b"<html>denied</html>"), "HTTP 403 rate limited", oauth.STATUS_BACKOFF),
        (
            Reply(429, fixture("error_429_rate_limited.json"), {"retry-after": "120"}),
            "HTTP 429",
            oauth.STATUS_BACKOFF,
        ),
        (Reply(500, b"<html>oops</html>"), "HTTP 500", oauth.STATUS_ERROR),
        (Reply(503, b""), "HTTP 503", oauth.STATUS_ERROR),
        (Reply(200, b"{not json"), "malformed", oauth.STATUS_ERROR),
        (Reply(200, b"[1, 2]"), "not an object", oauth.STATUS_ERROR),
        (Reply(200, b"x" * (10 << 20)), "larger than", oauth.STATUS_ERROR),
        (
            Reply(200, fixture("oauth_usage_in_band_error.json")),
            "rate_limit_error",
            oauth.STATUS_BACKOFF,
        ),
        (
            Reply(200, {"type": "error", "error": {"type": "api_error"}}),
            "usage:",
            oauth.STATUS_ERROR,
        ),
        (Reply(200, {}), "usage:", oauth.STATUS_ERROR),
    ],
    ids=[
        "401",
        "403-error-body",
        "403-no-body",
        "403-not-anthropic",
        "429",
        "500",
        "503",
        "garbage",
        "list",
        "10MB",
        "200-in-band-rate-limit",
        "200-in-band-error",
        "200-no-window",
    ],
)
def test_upstream_failures_are_recorded_and_keep_the_last_good_numbers(
    claude_dir: Path, upstream: FakeUpstream, reply: Reply, expected: str, status: str
) -> None:
    store = Store()
    refresh(store)
    good = store.accounts()[0].usage
    upstream.routes[USAGE] = reply
    results = refresh(store, min_age=0)
    assert results[0].ok is False and expected in results[0].message
    book = store.read().sources[results[0].key]
    assert book["status"] == status
    row = store.accounts()[0]
    assert row.usage == good  # the last good data stays
    assert any(expected in e for e in row.errors)


def test_expired_login_is_reported_not_refreshed(claude_dir: Path, upstream: FakeUpstream) -> None:
    creds = json.loads((claude_dir / ".credentials.json").read_text())
    creds["claudeAiOauth"]["expiresAt"] = int((time.time() - 3600) * 1000)
    (claude_dir / ".credentials.json").write_text(json.dumps(creds))
    before = (claude_dir / ".credentials.json").read_bytes()
    done = cli("refresh")
    assert done.returncode == 1
    assert "login expired" in done.stderr and "run `claude` once" in done.stderr
    assert upstream.requests == []  # nothing sent with an expired token
    assert (claude_dir / ".credentials.json").read_bytes() == before  # never rewritten
    summary = cli()
    assert summary.returncode == 1
    assert "login expired" in summary.stderr and "Traceback" not in summary.stderr
    again = cli("refresh")  # inside the spacing: the stored reason, not "fresh"
    assert again.returncode == 1 and "login expired" in again.stderr
    doctor = cli("doctor")
    assert "FAIL  oauth" in doctor.stdout and "login expired" in doctor.stdout
    assert "every reading is stale" not in doctor.stdout  # there are no readings


def test_a_renewed_login_is_fetched_at_once(claude_dir: Path, upstream: FakeUpstream) -> None:
    creds = json.loads((claude_dir / ".credentials.json").read_text())
    creds["claudeAiOauth"]["expiresAt"] = int((time.time() - 60) * 1000)
    (claude_dir / ".credentials.json").write_text(json.dumps(creds))
    refresh(Store())
    creds["claudeAiOauth"]["expiresAt"] = int((time.time() + 3600) * 1000)
    (claude_dir / ".credentials.json").write_text(json.dumps(creds))
    results = refresh(Store())  # well inside the interval, but the login changed
    assert results[0].ok and len(upstream.hits(USAGE)) == 1


@pytest.mark.parametrize("header", ["120", "http-date"])
def test_retry_after_is_honoured_and_survives_a_restart(
    claude_dir: Path, upstream: FakeUpstream, header: str
) -> None:
    value = "120" if header == "120" else formatdate(time.time() + 120, usegmt=True)
    upstream.routes[USAGE] = Reply(
        429, fixture("error_429_rate_limited.json"), {"retry-after": value}
    )
    first = cli("refresh")
    assert "HTTP 429" in first.stderr
    upstream.routes[USAGE] = Reply(200, fixture("oauth_usage_basic.json"))
    second = cli("refresh")  # a new process: the back-off is in the store
    assert "backing off" in second.stderr
    assert len(upstream.hits(USAGE)) == 1
    book = next(iter(Store().read().sources.values()))
    assert 100 < book["next_allowed"] - time.time() <= 121


def test_without_retry_after_other_failures_back_off_doubling(
    claude_dir: Path, upstream: FakeUpstream
) -> None:
    upstream.routes[USAGE] = Reply(503, b"")
    store = Store()
    waits = []
    for _ in range(3):
        refresh(store, min_age=0)
        book = next(iter(store.read().sources.values()))
        waits.append(book["next_allowed"] - book["last_attempt"])
        with store.update() as state:  # pretend the wait is over
            next(iter(state.sources.values()))["next_allowed"] = 0
    assert waits == [oauth.BACKOFF_BASE, 2 * oauth.BACKOFF_BASE, 4 * oauth.BACKOFF_BASE]


def test_a_hanging_upstream_times_out(
    claude_dir: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oauth, "TIMEOUT", (1.0, 0.5))
    upstream.routes[USAGE] = Reply(200, fixture("oauth_usage_basic.json"), delay=2.0)
    results = refresh(Store())
    assert not results[0].ok and "timed out" in results[0].message


def test_an_unreachable_upstream_is_one_line(claude_dir: Path) -> None:
    done = cli("refresh")  # the isolated base URL points at a closed loopback port
    assert done.returncode == 1 and "cannot reach" in done.stderr
    assert "Traceback" not in done.stderr


def test_refresh_within_the_spacing_fetches_nothing(
    claude_dir: Path, upstream: FakeUpstream
) -> None:
    refresh(Store(), min_age=MIN_SPACING)
    results = refresh(Store(), min_age=MIN_SPACING)
    assert results[0].ok and "fetched 0s ago" in results[0].message
    assert len(upstream.hits(USAGE)) == 1


def test_fifty_concurrent_refreshers_make_one_request(
    claude_dir: Path, upstream: FakeUpstream
) -> None:
    # A slow upstream widens the race: everyone arrives while the first fetch is in flight.
    upstream.routes[USAGE] = Reply(200, fixture("oauth_usage_basic.json"), delay=0.5)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "claudemeter", "refresh"], stderr=subprocess.PIPE, text=True
        )
        for _ in range(50)
    ]
    codes = [p.wait(timeout=120) for p in procs]
    for proc in procs:
        assert proc.stderr is not None
        proc.stderr.close()
    assert codes == [0] * 50
    assert len(upstream.hits(USAGE)) == 1


def test_several_logins_are_several_rows(
    isolated: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs, profiles = [], {}
    for name, org, email in (("a", "org-a", "a@example.com"), ("b", "org-b", "b@example.com")):
        directory = isolated / f".claude-{name}"
        directory.mkdir()
        token = f"sk-ant-oat01-FAKE-{name}"
        creds = {"claudeAiOauth": {"accessToken": token, "expiresAt": 4102444800000}}
        (directory / ".credentials.json").write_text(json.dumps(creds))
        account = {"oauthAccount": {"organizationUuid": org, "emailAddress": email}}
        (directory / ".claude.json").write_text(json.dumps(account))
        profiles[f"Bearer {token}"] = {"account": {"email": email}, "organization": {"uuid": org}}
        dirs.append(str(directory))
    upstream.routes["/api/oauth/profile"] = lambda seen: Reply(
        200, profiles[seen.headers["Authorization"]]
    )
    monkeypatch.setenv("CLAUDEMETER_CLAUDE_CONFIG_DIRS", ":".join(dirs))
    refresh(Store())
    rows = Store().accounts()
    assert [r.account_email for r in rows] == ["a@example.com", "b@example.com"]
    assert len(upstream.hits(USAGE)) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no Claude Code login"),
        ("{", "not valid JSON"),
        ('{"apiKey": "x"}', "no claude.ai login"),
    ],
    ids=["missing", "garbage", "api-key-user"],
)
def test_unusable_credentials_say_what_to_do(
    isolated: Path, content: str | None, message: str
) -> None:
    directory = isolated / ".claude"
    directory.mkdir()
    if content is not None:
        (directory / ".credentials.json").write_text(content)
    done = cli()
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_no_login_line_names_the_demo_as_the_user_can_run_it(isolated: Path) -> None:
    """The README's quick start runs ``.venv/bin/claude-meter``, not on PATH: the line
    must not send the user to a ``claude-meter demo`` their shell cannot find."""
    script = Path(sys.executable).parent / "claude-meter"
    top = script.parent.parent.parent
    typed = str(script.relative_to(top))
    done = subprocess.run(
        [typed],
        cwd=top,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"`{typed} demo` shows it working" in done.stderr, done.stderr
    assert "`claude-meter demo` shows it working" in cli().stderr  # on PATH: its name


def test_retry_after_parsing() -> None:
    now = time.time()
    assert oauth.retry_after_seconds("30", now) == 30
    assert oauth.retry_after_seconds(None, now) is None
    assert oauth.retry_after_seconds("soon", now) is None
    date = oauth.retry_after_seconds(formatdate(now + 90, usegmt=True), now)
    assert date is not None and 85 < date <= 90


def test_a_booking_from_the_future_does_not_block_refresh(
    claude_dir: Path, upstream: FakeUpstream
) -> None:
    store = Store()
    refresh(store)
    with store.update() as state:  # the clock went back by a day since that attempt
        book = next(iter(state.sources.values()))
        book["last_attempt"] = time.time() + 86400
        book["next_allowed"] = time.time() + 86400
    results = refresh(store)
    assert results[0].fetched and len(upstream.hits(USAGE)) == 2


def test_a_429_storm_under_fifty_refreshers_is_one_request(
    claude_dir: Path, upstream: FakeUpstream
) -> None:
    upstream.routes[USAGE] = Reply(
        429, fixture("error_429_rate_limited.json"), {"retry-after": "0"}, delay=0.3
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "claudemeter", "refresh"], stderr=subprocess.DEVNULL
        )
        for _ in range(50)
    ]
    assert all(p.wait(timeout=120) == 1 for p in procs)  # nobody got data: exit 1, said so
    again = cli("refresh")  # still inside the back-off
    assert "backing off" in again.stderr
    assert len(upstream.hits(USAGE)) == 1


def test_a_retry_after_of_hours_is_capped_not_read_as_a_clock_jump(
    claude_dir: Path, upstream: FakeUpstream
) -> None:
    upstream.routes[USAGE] = Reply(
        429, fixture("error_429_rate_limited.json"), {"retry-after": "10800"}
    )
    store = Store()
    refresh(store)
    results = refresh(store, min_age=0)
    assert "backing off for" in results[0].message
    assert len(upstream.hits(USAGE)) == 1
    book = next(iter(store.read().sources.values()))
    assert book["next_allowed"] - book["last_attempt"] == pytest.approx(oauth.MAX_RETRY)


def test_a_body_cut_short_is_one_line_not_a_traceback(
    claude_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 100\r\n\r\n{"five'
                )

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv(
        "CLAUDEMETER_ANTHROPIC_BASE", f"http://127.0.0.1:{listener.getsockname()[1]}"
    )
    try:
        done = cli("refresh")
    finally:
        listener.close()
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "usage: cannot reach" in done.stderr


def test_a_state_dir_that_is_a_file_is_one_line(
    claude_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("CLAUDEMETER_STATE_DIR", str(blocker / "state"))
    for args in (("refresh",), ("--json",), ()):
        done = cli(*args)
        assert done.returncode == 1 and "Traceback" not in done.stderr, args
        assert "cannot write the state" in done.stderr


def test_a_limits_only_body_is_a_reading(
    claude_dir: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10: a migrated account's numbers are only in limits[]: status, show and
    cm-guard --check read them (they said `?`, "no usage reading yet", unknown)."""
    monkeypatch.setenv("CLAUDEMETER_NOW", "2026-11-25T12:00:00.000Z")
    upstream.routes[USAGE] = Reply(200, fixture("oauth_usage_limits_only.json"))
    assert [r.ok for r in refresh(Store())] == [True]
    row = Store().accounts()[0]
    assert {n: w.utilization for n, w in row.windows().items()} == {
        "five_hour": 15,
        "seven_day": 36,
        "seven_day_opus": 71,
    }
    check = guard_check("--bucket", "seven_day_opus", "--threshold", "70")
    assert check.returncode == 75, check.stdout + check.stderr
    assert cli("status").stdout.find("15%") >= 0
    assert "no usage reading yet" not in cli("show").stdout


def test_an_in_band_error_after_a_good_reading_keeps_it(
    claude_dir: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10: a 200 whose body is an error was stored as the reading (95 % lost,
    `claude: ?`, a holding guard let its command go)."""
    monkeypatch.setenv("CLAUDEMETER_NOW", "2026-11-25T12:00:00.000Z")
    good = fixture_body("oauth_usage_basic.json")
    good["five_hour"]["utilization"] = 95.0
    upstream.routes[USAGE] = Reply(200, good)
    refresh(Store())
    upstream.routes[USAGE] = Reply(200, fixture("oauth_usage_in_band_error.json"))
    (result,) = refresh(Store(), min_age=0)
    assert result.ok is False and "rate_limit_error" in result.message
    book = Store().read().sources[result.key]
    assert book["status"] == oauth.STATUS_BACKOFF  # a rate limit: back off, do not hammer
    assert book["next_allowed"] > book["last_attempt"]
    row = Store().accounts()[0]
    assert row.usage == good and utilization(row, "five_hour") == 95.0
    assert any("rate_limit_error" in e for e in row.errors)
    printed = cli_rows("--json")
    assert printed[0]["usage"]["five_hour"]["utilization"] == 95.0
    check = guard_check()
    assert check.returncode == 75, check.stdout + check.stderr
