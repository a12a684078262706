"""``claude-meter statusline`` as Claude Code runs it: a real subprocess fed JSON on
stdin, with a temporary Claude Code config dir and state dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from libtmux.test.retry import retry_until

from claudemeter import history
from claudemeter.store import Store
from tests.helpers import (
    FIXTURES,
    LOGIN_ORG,
    alive,
    cli,
    cli_out,
    cli_rows,
    fixture_body,
    guard_check,
    statusline_input,
    store_usage,
)

FIXTURE_EMAIL = "ada@example.com"


def run(data: bytes, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["claude-meter", "statusline", *args],
        input=data,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def encode(body: object) -> bytes:
    return json.dumps(body).encode()


def stored_rows(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "state.json"
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = json.loads(path.read_text())["rows"]
    return rows


def test_readings_are_stored_as_the_logged_in_account(claude_dir: Path, state_dir: Path) -> None:
    body = statusline_input()
    done = run(encode(body))
    assert done.returncode == 0
    assert done.stderr == b""
    line = done.stdout.decode()
    assert line.endswith("\n") and line.count("\n") == 1
    assert "5h 57%" in line and "7d 33%" in line
    rows = stored_rows(state_dir)
    assert len(rows) == 1
    row = rows[0]
    assert row["browser"] == "statusline"
    assert row["org_uuid"] == LOGIN_ORG
    assert row["account_email"] == FIXTURE_EMAIL
    limits = body["rate_limits"]
    assert row["usage"] == {
        "five_hour": {"utilization": 57.0, "resets_at": rfc3339(limits["five_hour"]["resets_at"])},
        "seven_day": {"utilization": 33.0, "resets_at": rfc3339(limits["seven_day"]["resets_at"])},
    }
    fetched = datetime.fromisoformat(row["fetched_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - fetched).total_seconds()) < 60
    # The usual readers see it as that account's row.
    assert cli_rows("--json", "--cached")[0]["usage"]["five_hour"]["utilization"] == 57.0


def test_account_follows_the_claude_config_dir_in_effect(
    isolated: Path,
    state_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "claude-work"
    work.mkdir()
    claude_json = fixture_body("claude_json_oauth_account.json")
    claude_json["oauthAccount"].update(organizationUuid="org-work", emailAddress="w@example.com")
    (work / ".claude.json").write_text(json.dumps(claude_json))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(work))
    assert run(encode(statusline_input())).returncode == 0
    [row] = stored_rows(state_dir)
    assert (row["org_uuid"], row["account_email"]) == ("org-work", "w@example.com")


def test_a_new_login_is_noticed_and_an_unchanged_one_is_not_reparsed(
    claude_dir: Path,
    isolated: Path,
    state_dir: Path,
) -> None:
    claude_json = isolated / ".claude.json"
    assert run(encode(statusline_input())).returncode == 0
    # Same size and time, unreadable content: the remembered account is used.
    info = claude_json.stat()
    claude_json.write_bytes(b"x" * info.st_size)
    os.utime(claude_json, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert run(encode(statusline_input(five=58))).returncode == 0
    assert [r["usage"]["five_hour"]["utilization"] for r in stored_rows(state_dir)] == [58.0]
    # Logged in as someone else: a new file, a new row.
    body = fixture_body("claude_json_oauth_account.json")
    body["oauthAccount"].update(organizationUuid="org-new", emailAddress="new@example.com")
    claude_json.write_text(json.dumps(body))
    assert run(encode(statusline_input(five=9))).returncode == 0
    rows = {r["org_uuid"]: r for r in stored_rows(state_dir)}
    assert rows["org-new"]["account_email"] == "new@example.com"
    assert rows["org-new"]["usage"]["five_hour"]["utilization"] == 9.0


def test_percentages_are_never_rescaled(claude_dir: Path, state_dir: Path) -> None:
    """A fraction-looking value is stored as the percentage it claims to be."""
    assert run(encode(statusline_input(five=0.57, seven=1.0))).returncode == 0
    usage = stored_rows(state_dir)[0]["usage"]
    assert usage["five_hour"]["utilization"] == 0.57
    assert usage["seven_day"]["utilization"] == 1.0


def test_no_reset_time_is_an_idle_window(claude_dir: Path, state_dir: Path) -> None:
    body = statusline_input()
    body["rate_limits"]["five_hour"] = {"used_percentage": 0, "resets_at": None}
    assert run(encode(body)).returncode == 0
    assert stored_rows(state_dir)[0]["usage"]["five_hour"] == {
        "utilization": 0.0,
        "resets_at": None,
    }


def _huge() -> bytes:
    body = statusline_input()
    body["padding"] = "x" * (2 << 20)
    return encode(body)


def _with_limits(limits: object) -> bytes:
    body = statusline_input()
    body["rate_limits"] = limits
    return encode(body)


BAD_INPUTS = {
    "empty": b"",
    "whitespace": b"  \n",
    "garbage": b"\x00\xffnot json at all",
    "truncated": encode(statusline_input())[:-20],
    "json list": b"[1, 2, 3]",
    "json string": b'"rate_limits"',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "huge": _huge(),
    "no rate_limits (API key user)": (
        FIXTURES / "claude_code_statusline_input_api_key_user.json"
    ).read_bytes(),
    "rate_limits null": _with_limits(None),
    "rate_limits a list": _with_limits([{"used_percentage": 50}]),
    "percent as string": encode(statusline_input(five="57", seven="33")),
    "percent as bool": encode(statusline_input(five=True, seven=False)),
    "percent null": encode(statusline_input(five=None, seven=None)),
    "percent negative": encode(statusline_input(five=-5, seven=-1)),
    "reset as string": encode(
        statusline_input(five_resets="2099-01-01T00:00:00Z", seven_resets="soon")
    ),
    "reset in milliseconds": encode(
        statusline_input(
            five_resets=(time.time() + 7200) * 1000, seven_resets=(time.time() + 86400) * 1000
        )
    ),
    "resets already past (the fixture as is)": (
        FIXTURES / "claude_code_statusline_input.json"
    ).read_bytes(),
}


@pytest.mark.parametrize("data", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_prints_a_neutral_line_and_stores_nothing(
    claude_dir: Path,
    state_dir: Path,
    data: bytes,
) -> None:
    done = run(data)
    assert done.returncode == 0
    assert done.stdout.decode().strip() == "claude-meter: –"
    assert b"Traceback" not in done.stderr
    assert stored_rows(state_dir) == []


def test_one_bad_window_does_not_spoil_the_other(claude_dir: Path, state_dir: Path) -> None:
    assert run(encode(statusline_input(seven="33"))).returncode == 0
    usage = stored_rows(state_dir)[0]["usage"]
    assert set(usage) == {"five_hour"}


def test_unknown_account_shows_the_numbers_but_stores_nothing(
    isolated: Path,
    state_dir: Path,
) -> None:
    done = run(encode(statusline_input(five=41)))
    assert done.returncode == 0
    assert "5h 41%" in done.stdout.decode()
    assert stored_rows(state_dir) == []


def test_unwritable_store_still_prints_the_line(
    claude_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("CLAUDEMETER_STATE_DIR", str(blocker / "state"))
    done = run(encode(statusline_input(five=12)))
    assert done.returncode == 0
    out = done.stdout.decode()
    assert "5h 12%" in out and "not saved" in out
    assert b"Traceback" not in done.stderr


def test_held_store_lock_does_not_hold_up_the_agent(claude_dir: Path, state_dir: Path) -> None:
    lock = Store().lock()
    with lock:
        done = run(encode(statusline_input(five=13)))
    assert done.returncode == 0
    assert "5h 13%" in done.stdout.decode() and "not saved" in done.stdout.decode()
    assert stored_rows(state_dir) == []


def test_lower_reading_for_the_same_window_is_an_older_one(
    claude_dir: Path,
    state_dir: Path,
) -> None:
    """Two agents: one idle with a cached 40 %, one busy at 60 %; the count only climbs
    within a window, so the idle agent's later call does not pull the row down."""
    resets = int(time.time()) + 7200
    assert run(encode(statusline_input(five=60, five_resets=resets))).returncode == 0
    assert run(encode(statusline_input(five=40, five_resets=resets))).returncode == 0
    assert stored_rows(state_dir)[0]["usage"]["five_hour"]["utilization"] == 60.0
    # A new window (a later reset) starts low, and that is believed.
    assert run(encode(statusline_input(five=3, five_resets=resets + 5 * 3600))).returncode == 0
    assert stored_rows(state_dir)[0]["usage"]["five_hour"]["utilization"] == 3.0


def test_buckets_only_oauth_sees_are_carried_into_the_row(
    claude_dir: Path,
    state_dir: Path,
) -> None:
    usage = fixture_body("oauth_usage_basic.json")
    store_usage(usage, browser="Claude Code", email=FIXTURE_EMAIL)
    assert run(encode(statusline_input(five=71))).returncode == 0
    [row] = cli_rows("--json", "--cached")
    assert row["usage"]["five_hour"]["utilization"] == 71.0
    carried = {k for k in usage if k not in ("five_hour", "seven_day")}
    assert carried and carried <= set(row["usage"])
    for name in carried:
        assert row["usage"][name] == usage[name]


def test_without_readings_the_line_comes_from_the_store(claude_dir: Path, state_dir: Path) -> None:
    assert run(encode(statusline_input(five=23))).returncode == 0
    api_key_style = (FIXTURES / "claude_code_statusline_input_api_key_user.json").read_bytes()
    done = run(api_key_style)
    assert done.returncode == 0
    assert "5h 23%" in done.stdout.decode()


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_chained_command_gets_the_same_input_and_prints_first(
    claude_dir: Path,
    state_dir: Path,
    tmp_path: Path,
) -> None:
    seen = tmp_path / "seen.json"
    script = write_script(tmp_path / "prev.sh", f'cat > "{seen}"\nprintf "PREVIOUS LINE\\n"\n')
    data = encode(statusline_input(five=44))
    done = run(data, "--chain", str(script))
    assert done.returncode == 0
    out = done.stdout.decode()
    assert out.index("PREVIOUS LINE") < out.index("5h 44%")
    assert seen.read_bytes() == data
    assert stored_rows(state_dir)[0]["usage"]["five_hour"]["utilization"] == 44.0


def test_failing_chained_command_leaves_our_line(claude_dir: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "broken.sh", "exit 3\n")
    done = run(encode(statusline_input(five=44)), "--chain", str(script))
    assert done.returncode == 0
    assert done.stdout.decode().strip().startswith("5h 44%")
    missing = run(encode(statusline_input(five=45)), "--chain", str(tmp_path / "nope"))
    assert missing.returncode == 0
    assert missing.stdout.decode().strip().startswith("5h 45%")


def test_hanging_chained_command_is_ended(claude_dir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = write_script(
        tmp_path / "hang.sh", f'echo $$ > "{pidfile}"\nprintf "partial "\nexec sleep 600\n'
    )
    done = run(encode(statusline_input(five=46)), "--chain", str(script))
    assert done.returncode == 0
    assert done.stdout.decode().startswith("partial")
    assert "5h 46%" in done.stdout.decode()
    pid = int(pidfile.read_text())
    assert retry_until(lambda: not alive(pid), seconds=10, raises=False)


def test_chain_back_to_ourselves_does_not_loop(claude_dir: Path) -> None:
    done = run(encode(statusline_input(five=47)), "--chain", "claude-meter statusline")
    assert done.returncode == 0
    assert done.stdout.decode().count("5h 47%") == 2


def test_help() -> None:
    done = cli("statusline", "--help")
    assert done.returncode == 0 and "--chain" in done.stdout


def test_no_http_client_is_imported(claude_dir: Path) -> None:
    """Every agent's every refresh runs this: it must not pay for ``requests``."""
    probe = (
        "import sys; sys.argv = ['claude-meter', 'statusline']\n"
        "from claudemeter.cli import _run; _run(None)\n"
        "print('requests' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        input=encode(statusline_input()),
        capture_output=True,
        check=True,
    )
    assert done.stderr.decode().strip() == "False"


def test_run_by_hand_in_a_terminal_it_explains_instead_of_waiting() -> None:
    primary, secondary = os.openpty()
    try:
        done = subprocess.run(
            ["claude-meter", "statusline"],
            stdin=secondary,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(primary)
        os.close(secondary)
    assert done.returncode == 0
    assert done.stdout.strip() == "claude-meter: –"
    assert "install-statusline" in done.stderr


def test_carried_over_buckets_do_not_enter_the_history(claude_dir: Path) -> None:
    """The statusline row borrows 7-day OAuth apps from the OAuth row so the fold shows
    it; the history must not record that one OAuth reading again on every call."""
    from claudemeter.model import format_time, utcnow

    start = utcnow()
    store_usage(fixture_body("oauth_usage_basic.json"), browser="Claude Code", fetched_at=start)
    body = fixture_body("claude_code_statusline_input.json")
    body["rate_limits"]["five_hour"]["resets_at"] = int(time.time()) + 3600
    body["rate_limits"]["seven_day"]["resets_at"] = int(time.time()) + 86400
    for later in (30, 60, 90):  # further apart than readings that merge into one point
        at = format_time(start + timedelta(seconds=later))
        cli_out("statusline", stdin=json.dumps(body), env={"CLAUDEMETER_NOW": at})
    state = Store().read()
    row = next(r for r in state.rows if r.browser == "statusline")
    assert "seven_day_oauth_apps" not in (row.usage or {})  # the fold brings it, per bucket
    (folded,) = state.accounts(start + timedelta(seconds=90))
    assert folded.origin("seven_day_oauth_apps").source == "Claude Code"
    points = next(iter(history.recent(Store().directory).values())).points
    assert len(points) == 4
    assert sum("seven_day_oauth_apps" in p.used for p in points) == 1  # the OAuth reading only


def test_an_idle_session_resending_an_expired_100_keeps_the_live_95(claude_dir: Path) -> None:
    """Issue 10: an idle Claude Code re-sends five_hour 100 % whose reset passed weeks
    ago right after a live session's 95 %: the row lost five_hour and cm-guard --check
    went from 75 to 0."""
    now = int(time.time())
    live = statusline_input(five=95, seven=75)
    assert run(encode(live)).returncode == 0
    assert guard_check().returncode == 75
    idle = statusline_input(five=100, seven=75, five_resets=now - 20 * 86400)
    assert run(encode(idle)).returncode == 0
    check = guard_check()
    assert check.returncode == 75, check.stdout + check.stderr
    state = json.loads(check.stdout)
    assert state["buckets"]["five_hour"]["utilization"] == 95.0
    assert state["buckets"]["seven_day"]["utilization"] == 75.0


def test_an_input_with_only_five_hour_keeps_seven_day(claude_dir: Path) -> None:
    """Issue 10: a statusline input with only five_hour erased seven_day 93."""
    assert run(encode(statusline_input(five=40, seven=93))).returncode == 0
    only_five = statusline_input(five=41)
    del only_five["rate_limits"]["seven_day"]
    assert run(encode(only_five)).returncode == 0
    [row] = cli_rows("--json", "--cached")
    assert row["usage"]["five_hour"]["utilization"] == 41.0
    assert row["usage"]["seven_day"]["utilization"] == 93.0
    assert row["provenance"]["seven_day"]["source"] == "statusline"
    assert row["provenance"]["seven_day"]["age_seconds"] >= 0
    assert guard_check("--bucket", "seven_day").returncode == 75


def test_a_gateway_spend_limit_is_kept_and_shown_as_money(claude_dir: Path) -> None:
    """Issue 10: `rate_limits.spend_limit` behind a gateway was dropped."""
    body = statusline_input(five=12)
    body["rate_limits"]["spend_limit"] = {"used_usd": 12.345, "limit_usd": 50, "period": "month"}
    done = run(encode(body))
    assert "$12.35 of $50.00 (month)" in done.stdout.decode()
    [row] = cli_rows("--json", "--cached")
    assert row["usage"]["spend_limit"] == {"used_usd": 12.345, "limit_usd": 50.0, "period": "month"}
    summary = cli_out("--cached")
    assert "spend limit: $12.35 of $50.00 (month)" in summary


def test_a_gateway_input_with_only_a_spend_limit_is_a_reading(claude_dir: Path) -> None:
    body = statusline_input()
    body["rate_limits"] = {"spend_limit": {"used_usd": 3, "limit_usd": None, "period": None}}
    assert "$3.00" in run(encode(body)).stdout.decode()
    [row] = cli_rows("--json", "--cached")
    assert row["usage"]["spend_limit"]["used_usd"] == 3.0 and row["errors"] == []
