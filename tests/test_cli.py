"""``claude-meter`` as a user and a script see it: exit codes, stdout kept clean for
``--json``, golden summaries, and ``ingest`` refusing bad input without touching the store."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from claudemeter import summary
from claudemeter.cli import COMMANDS, build_parser
from claudemeter.dedupe import dedupe_by_account
from claudemeter.model import JSON, parse_many, utcnow
from claudemeter.options import DEFAULTS, Settings
from claudemeter.status import TOKEN_HELP, tokens
from claudemeter.store import Store
from tests.helpers import FIXTURES, ROW_KEYS, cli, cli_rows, fixture, fixture_bodies, guard_check
from tests.upstream import FakeUpstream

GOLDEN = Path(__file__).parent / "golden"
BRIDGE_FIXTURE = FIXTURES / "snapshots_two_browsers_two_accounts.json"


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    assert text == path.read_text(), f"golden {name} differs; got:\n{text}"


def test_summary_golden(utc: None) -> None:
    now = datetime(2026, 11, 25, 12, 1, tzinfo=timezone.utc)
    rows = dedupe_by_account(parse_many(fixture("snapshots_two_browsers_two_accounts.json")), now)
    check_golden("summary_two_accounts.txt", summary.summary(rows, now) + "\n")


def test_summary_golden_oauth_shapes(utc: None) -> None:
    now = datetime(2026, 11, 25, 12, 1, tzinfo=timezone.utc)
    rows = []
    for name in ("oauth_usage_basic.json", "oauth_usage_idle.json", "oauth_usage_2026_shape.json"):
        rows.extend(
            parse_many(
                {
                    "org_uuid": name,
                    "browser": "Claude Code",
                    "account_email": name.removesuffix(".json") + "@example.com",
                    "fetched_at": "2026-11-25T12:00:00Z",
                    "usage": fixture(name),
                }
            )
        )
    check_golden("summary_oauth_shapes.txt", summary.summary(rows, now) + "\n")


def test_json_is_only_json_and_jq_shaped() -> None:
    assert cli("ingest", str(BRIDGE_FIXTURE)).returncode == 0
    done = cli("--json", "--cached")
    assert done.returncode == 0
    rows = json.loads(done.stdout)  # stdout is exactly the JSON document
    assert [r["browser"] for r in rows] == ["Chrome, Arc, Brave", "Chrome"]
    assert rows[0]["usage"]["five_hour"]["utilization"] == 63.0
    for row in rows:
        assert set(row) >= ROW_KEYS
        assert row["fetched_at"].endswith("Z")


def test_json_with_no_data_is_an_empty_list_and_a_hint() -> None:
    done = cli("--json")
    assert done.returncode == 0
    assert json.loads(done.stdout) == []
    assert "claude-meter demo" in done.stderr


def test_json_refreshes_through_the_oauth_source(claude_dir: Path, upstream: FakeUpstream) -> None:
    done = cli("--json")
    rows = json.loads(done.stdout)
    assert rows[0]["browser"] == "Claude Code" and rows[0]["stale"] is False
    assert cli("--json").stdout == done.stdout or len(upstream.hits("/api/oauth/usage")) == 1


def test_no_source_is_exit_1_with_one_line() -> None:
    done = cli()
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "log in" in done.stderr and "claude-meter demo" in done.stderr


def test_summary_shows_stored_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDEMETER_NOW", "2026-11-25T12:30:00.000Z")
    cli("ingest", str(BRIDGE_FIXTURE))
    done = cli("--cached")
    assert done.returncode == 0
    assert "ada@example.com  (Chrome, Arc, Brave" in done.stdout
    assert "STALE" in done.stdout  # half an hour after the fixture's readings


def test_ingest_from_stdin() -> None:
    body = json.dumps(fixture_bodies("snapshots_two_browsers_two_accounts.json")[0])
    done = cli("ingest", "-", stdin=body)
    assert done.returncode == 0 and "stored 1 snapshot" in done.stderr
    assert len(Store().read().rows) == 1


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("", "no input"),
        ("{oops", "not JSON"),
        ('{"org_uuid": "o", "browser": "Chrome", "fetched_at": "later"}', "fetched_at"),
        (
            '[{"org_uuid": "o", "browser": "Chrome", "account_email": null,'
            ' "fetched_at": "2026-11-25T12:00:00Z"}, {"org_uuid": 1}]',
            "[1].org_uuid",
        ),
        ('"just a string"', "expected a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 16 levels"),
    ],
    ids=["empty", "garbage", "bad-time", "bad-second-item", "string", "deep"],
)
def test_ingest_refuses_bad_input_and_stores_nothing(
    stdin: str, message: str, state_dir: Path
) -> None:
    cli("ingest", str(BRIDGE_FIXTURE))
    before = (state_dir / "state.json").read_bytes()
    done = cli("ingest", "-", stdin=stdin)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert (state_dir / "state.json").read_bytes() == before


def test_ingest_missing_file() -> None:
    done = cli("ingest", "/nonexistent/snapshots.json")
    assert done.returncode == 1 and "cannot read" in done.stderr


def test_corrupt_state_is_a_warning_not_a_crash(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    (state_dir / "state.json").write_text('{"rows": [')
    done = cli("--json", "--cached")
    assert done.returncode == 0 and json.loads(done.stdout) == []
    assert "corrupt" in done.stderr and "Traceback" not in done.stderr
    assert "moved it aside" in done.stderr  # at once, not at some later write
    assert len(list(state_dir.glob("state.json.corrupt-*"))) == 1
    assert cli("ingest", str(BRIDGE_FIXTURE)).returncode == 0
    assert len(cli_rows("--json", "--cached")) == 2


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_command_has_help(command: str) -> None:
    done = cli(*([command] if command else []), "--help")
    assert done.returncode == 0 and "usage: claude-meter" in done.stdout
    assert all(len(line) <= 80 for line in done.stdout.splitlines()), done.stdout
    parser = build_parser(command or None)
    if command:
        [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = commands.choices[command]
    silent = [a.dest for a in parser._actions if not a.help]
    assert not silent, f"options without help: {silent}"  # each says what it takes


def test_the_top_level_help_names_cm_guard() -> None:
    assert "cm-guard" in cli("--help").stdout


def test_status_help_lists_every_format_token() -> None:
    assert cli("ingest", str(BRIDGE_FIXTURE)).returncode == 0
    state = Store().read()
    now = utcnow()
    [row, *_] = state.accounts(now)
    every = tokens(row, state, now, Settings(), 0)
    assert set(TOKEN_HELP) == set(every)  # a new token needs its line of help
    shown = cli("status", "--help").stdout
    for name in TOKEN_HELP:
        assert f"{{{name}}}" in shown


def test_doctor_fails_with_no_source_and_names_the_fix() -> None:
    done = cli("doctor")
    assert done.returncode == 1
    assert "FAIL  data" in done.stdout and "claude-meter demo" in done.stdout


def test_doctor_passes_with_a_working_login(claude_dir: Path, upstream: FakeUpstream) -> None:
    assert cli("refresh").returncode == 0
    done = cli("doctor")
    assert done.returncode == 0, done.stdout
    assert "ok    oauth      ada@example.com: usage fetched" in done.stdout


def test_doctor_sees_the_installed_statusline(isolated: Path) -> None:
    assert "statusline not installed" in cli("doctor").stdout
    assert cli("install-statusline").returncode == 0
    assert "ok    statusline Claude Code's statusLine feeds claudemeter" in cli("doctor").stdout


@pytest.mark.parametrize(
    "args, complaint",
    [
        (
            ["--warn", "abc"],
            "argument --warn: expected a percent above 0 and at most 100, not 'abc'",
        ),
        (["--crit", "0"], "argument --crit: expected a percent above 0 and at most 100, not '0'"),
        (["--warn", "nan"], "argument --warn: expected a percent"),
        (["--warn", "95", "--crit", "80"], "--warn (95) must be below --crit (80)"),
        (["--crit", "50"], "--warn (70, the default) must be below --crit (50)"),
    ],
)
def test_status_refuses_tiers_it_cannot_use(args: list[str], complaint: str) -> None:
    done = cli("status", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert complaint in done.stderr and "Traceback" not in done.stderr


def test_status_tiers_colour_the_segment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fixture's 5-hour window resets at 16:59 on its own day: read it before that.
    monkeypatch.setenv("CLAUDEMETER_NOW", "2026-11-25T12:02:00.000Z")
    cli("ingest", str(BRIDGE_FIXTURE))
    plain = cli("status", "--account", "ada", "--warn", "95", "--crit", "99")
    coloured = cli("status", "--account", "ada", "--warn", "1%", "--crit", "2")
    assert plain.returncode == coloured.returncode == 0
    warn, crit = DEFAULTS["colour_warn"], DEFAULTS["colour_crit"]
    assert f"#[{crit}]" not in plain.stdout and f"#[{warn}]" not in plain.stdout
    assert f"#[{crit}]5h 63%" in coloured.stdout


def test_a_malformed_guard_file_never_breaks_the_status_line(state_dir: Path) -> None:
    guards = state_dir / "guards"
    guards.mkdir(parents=True)
    (guards / "1.json").write_text(
        '{"pid": "1", "command": "x", "account": null, "state": "paused"}'
    )
    (guards / "2.json").write_text('{"sources": "not a guard"}')
    done = cli("status")
    assert done.returncode == 0 and done.stdout.strip() and "Traceback" not in done.stderr


def test_a_passed_reset_reads_the_same_in_every_view(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10: the summary printed the old 63 % while the popup said 0 %."""
    monkeypatch.setenv("CLAUDEMETER_NOW", "2026-11-25T12:02:00.000Z")
    monkeypatch.setenv("TZ", "UTC")
    reading = {
        "org_uuid": "org-1",
        "browser": "Chrome",
        "account_email": "ada@example.com",
        "fetched_at": "2026-11-25T12:00:00.000Z",
        "usage": {
            "five_hour": {"utilization": 63.0, "resets_at": "2026-11-25T12:00:30.000Z"},
            "seven_day": {"utilization": 20.0, "resets_at": "2026-11-28T00:00:00.000Z"},
        },
    }
    assert cli("ingest", "-", stdin=json.dumps(reading)).returncode == 0
    summary = cli("--cached").stdout
    assert "5-hour      0%  reset at 12:00 (reading predates it)" in summary, summary
    show = cli("show", "--no-colour").stdout
    assert "5-hour" in show and "0%  reset 12:00, old reading" in show, show
    assert "63" not in summary + show
    assert "5h 0%" in cli("status").stdout
    check = guard_check("--threshold", "50")
    assert check.returncode == 0, check.stderr
    five = json.loads(check.stdout)["buckets"]["five_hour"]
    assert five == {"utilization": 0.0, "resets_at": "2026-11-25T12:00:30.000Z", "state": "reset"}


def test_arc_null_seven_day_keeps_chromes_93_with_provenance_in_json_and_popup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 10: a newer Arc post with seven_day: null hid Chrome's fresh 93 %."""
    monkeypatch.setenv("CLAUDEMETER_NOW", "2026-11-25T12:02:00.000Z")
    base = {"org_uuid": "org-1", "account_email": "ada@example.com"}
    five = {"utilization": 40.0, "resets_at": "2026-11-25T16:00:00.000Z"}
    chrome = {
        **base,
        "browser": "Chrome",
        "fetched_at": "2026-11-25T12:01:00.000Z",
        "usage": {
            "five_hour": five,
            "seven_day": {"utilization": 93.0, "resets_at": "2026-11-28T00:00:00.000Z"},
        },
    }
    arc = {
        **base,
        "browser": "Arc",
        "fetched_at": "2026-11-25T12:01:30.000Z",
        "usage": {"five_hour": {**five, "utilization": 41.0}, "seven_day": None},
    }
    assert cli("ingest", "-", stdin=json.dumps([chrome, arc])).returncode == 0
    [row] = cli_rows("--json", "--cached")
    assert row["usage"]["seven_day"]["utilization"] == 93.0
    assert row["usage"]["five_hour"]["utilization"] == 41.0
    assert row["provenance"]["seven_day"] == {
        "source": "Chrome",
        "fetched_at": "2026-11-25T12:01:00.000Z",
        "age_seconds": 60,
        "stale": False,
    }
    assert row["provenance"]["five_hour"]["source"] == "Arc"
    show = cli("show", "--no-colour").stdout
    assert "from: Arc 30s ago: 5-hour · Chrome 1m ago: 7-day" in show, show
    check = guard_check("--bucket", "seven_day")
    assert check.returncode == 75, check.stdout + check.stderr


STRICT_CONSUMER = """
import json, subprocess, sys
rows = json.loads(subprocess.check_output(["claude-meter", "--json", "--cached"]))
for r in rows:
    u = r["usage"]
    for k in ("five_hour", "seven_day", "seven_day_sonnet", "seven_day_opus",
              "seven_day_oauth_apps", "seven_day_omelette", "seven_day_cowork"):
        w = u[k]
        print(r["org_uuid"], k, "-" if w is None else w["utilization"])
    print(r["org_uuid"], "extra", u["extra_usage"] is not None)
"""


def test_a_strict_claudemeter_script_runs_on_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10: `u["seven_day_opus"]` raised KeyError on rows without that window (and
    on a row whose usage is null); SPEC 3's fixed key set is always there."""
    monkeypatch.setenv("CLAUDEMETER_NOW", "2026-11-25T12:02:00.000Z")
    base = {"browser": "Chrome", "fetched_at": "2026-11-25T12:00:00.000Z"}
    rows: list[JSON] = [
        {**base, "org_uuid": "limits", "account_email": "a@x"},
        {**base, "org_uuid": "idle", "account_email": "b@x"},
        {**base, "org_uuid": "failed", "account_email": "c@x", "errors": ["usage: HTTP 500"]},
    ]
    rows[0]["usage"] = fixture("oauth_usage_limits_only.json")
    rows[1]["usage"] = fixture("oauth_usage_idle.json")
    assert cli("ingest", "-", stdin=json.dumps(rows)).returncode == 0
    done = subprocess.run(
        [sys.executable, "-c", STRICT_CONSUMER], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "limits seven_day_opus 71.0" in lines and "limits five_hour 15.0" in lines
    assert "idle seven_day_cowork -" in lines and "idle extra True" in lines
    assert "failed five_hour -" in lines and "failed extra False" in lines
    [row] = [r for r in cli_rows("--json", "--cached") if r["org_uuid"] == "limits"]
    assert row["usage"]["limits"][0]["kind"] == "session"  # what was received stays too
