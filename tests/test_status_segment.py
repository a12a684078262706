"""The segment's rules, one at a time, on in-memory states (pure functions, no tmux)."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from claudemeter.model import Snapshot
from claudemeter.options import DEFAULTS, OPTIONS, Settings, parse_show_options
from claudemeter.popup import GUARD_WIDTH, guard_lines
from claudemeter.registry import GuardEntry
from claudemeter.render import short_command
from claudemeter.sources import SourceBook
from claudemeter.status import Piece, fill, job_output, render, short_names
from claudemeter.store import State
from claudemeter.tmux import socket_path
from claudemeter.tmux_loop import Notices

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
README = Path(__file__).resolve().parent.parent / "README.md"


WARN, CRIT, STALE = (DEFAULTS[f"colour_{tier}"] for tier in ("warn", "crit", "stale"))


def row(
    five: float | None = 42.0,
    seven: float | None = 61.0,
    email: str | None = "ada@example.com",
    org: str = "org-a",
    age: float = 30.0,
    resets: datetime | None = None,
) -> Snapshot:
    usage: dict[str, object] = {}
    if five is not None:
        at = resets or NOW + timedelta(hours=1, minutes=23)
        usage["five_hour"] = {"utilization": five, "resets_at": at.isoformat()}
    if seven is not None:
        usage["seven_day"] = {"utilization": seven, "resets_at": "2026-11-30T09:59:59Z"}
    return Snapshot(
        org_uuid=org,
        browser="Claude Code",
        account_email=email,
        fetched_at=NOW - timedelta(seconds=age),
        usage=usage,
    )


def segment(
    *rows: Snapshot,
    settings: Settings | None = None,
    paused: int = 0,
    sources: dict[str, SourceBook] | None = None,
) -> str:
    state = State(rows=list(rows), sources=dict(sources or {}))
    return render(state, NOW, settings or Settings(), paused).segment


def test_default_segment_is_the_one_in_the_issue() -> None:
    assert segment(row()) == "5h 42%% ↻1h23m · 7d 61%%"
    assert job_output(State(rows=[row()]), NOW) == "5h 42% ↻1h23m · 7d 61%"


def test_tiers_colour_each_bucket_at_warn_and_crit() -> None:
    assert segment(row(five=70, seven=90)) == (
        f"#[{WARN}]5h 70%%#[default] ↻1h23m · #[{CRIT}]7d 90%%#[default]"
    )
    custom = Settings.from_options(
        {"warn": "40", "colour_warn": "fg=blue,bold", "colour_ok": "green"}
    )
    assert segment(row(five=42, seven=10), settings=custom) == (
        "#[fg=blue,bold]5h 42%%#[default] ↻1h23m · #[fg=green]7d 10%%#[default]"
    )


def test_a_window_past_its_reset_counts_as_reset() -> None:
    gone = row(five=97, resets=NOW - timedelta(minutes=1))
    assert segment(gone) == "5h 0%% · 7d 61%%"


def test_old_data_always_says_so_even_with_a_format_that_forgets() -> None:
    old = row(age=45 * 60)
    assert segment(old) == f"5h 42%% ↻1h23m · 7d 61%% #[{STALE}]stale 45m#[default]"
    bare = Settings.from_options({"format": "{5h_pct}"})
    assert segment(old, settings=bare) == f"42%% #[{STALE}]stale 45m#[default]"


def test_expired_login_and_no_data() -> None:
    login: dict[str, SourceBook] = {"oauth:org-a": {"status": "login", "error": "login expired"}}
    assert segment(row(age=3600), sources=login).endswith("login 1h00m#[default]")
    assert segment(row(), sources=login) == "5h 42%% ↻1h23m · 7d 61%%"  # fresh data: fine
    assert segment(sources=login) == "claude: login"
    assert segment() == "claude: setup"
    assert render(State(problem="corrupt"), NOW, Settings()).segment == "claude: store?"


def test_several_accounts_say_which_is_which_or_show_the_configured_one() -> None:
    ada, bob = row(email="ada@example.com"), row(five=80, email="bob@x.org", org="org-b")
    assert segment(ada, bob) == f"ada 42%%/61%% · bob #[{WARN}]80%%#[default]/61%%"
    assert segment(ada, bob, settings=Settings.from_options({"account": "bob"})).startswith(
        f"#[{WARN}]5h 80%%"
    )
    assert segment(ada, bob, settings=Settings.from_options({"account": "eve"})) == (
        "claude: no eve"
    )
    work = row(email="ada@work.example", org="o3")
    nameless = row(email=None, org="0f6c3b2a-1111")
    long = row(email="alexandria.ocasio@x.org", org="o4")
    assert short_names([ada, work, bob, nameless, long]) == [
        "ada@e",
        "ada@w",
        "bob",
        "org 0f6c3b2a",
        "alexandria",
    ]


def test_paused_guards_show_as_a_count() -> None:
    assert segment(row(), paused=2) == f"5h 42%% ↻1h23m · 7d 61%% #[{WARN}]⏸2#[default]"


def test_user_format_tokens_separators_and_escaping() -> None:
    values = {"a": Piece("x"), "b": Piece(""), "c": Piece("50% #1")}
    settings = Settings()
    assert fill("{a} · {b} · {c}", values, settings) == "x · 50%% ##1"
    assert fill("{b} | {a}", values, settings) == "x"
    assert fill("#[bold]{a}{nope}", values, settings) == "#[bold]x{nope}"  # typos stay visible
    mine = Settings.from_options({"format": "{account}: {5h_pct} ({reset})"})
    assert segment(row(), settings=mine) == "ada@example.com: 42%% (↻1h23m)"


def test_notices_fire_once_per_tier_per_window_and_rearm_on_reset() -> None:
    notices, settings = Notices(), Settings()
    assert notices.check([row(five=50, seven=10)], NOW, settings) == []
    [warn] = notices.check([row(five=72, seven=10)], NOW, settings)
    assert warn.startswith("claude-meter: 5-hour at 72% (≥ warn 70%)")
    assert notices.check([row(five=75, seven=10)], NOW, settings) == []
    [crit] = notices.check([row(five=91, seven=10)], NOW, settings)
    assert "(≥ crit 90%)" in crit
    assert notices.check([row(five=95, seven=10)], NOW, settings) == []
    later = NOW + timedelta(hours=5)
    assert notices.check([row(five=71, seven=10, resets=later)], NOW, settings) != []


def test_options_parse_tmux_output_and_fall_back_on_nonsense() -> None:
    text = (
        '@claude_meter_warn 50\n@claude_meter_format "{5h} \\"x\\""\n'
        "@claude_meter_interval soon\nstatus-right foo\n"
    )
    values = parse_show_options(text)
    assert values == {"warn": "50", "format": '{5h} "x"', "interval": "soon"}
    settings = Settings.from_options(values)
    assert settings.warn == 50.0 and settings.interval == 5.0 and settings.crit == 90.0


def test_options_with_unusable_tiers_fall_back_to_the_defaults() -> None:
    def tiers(**values: str) -> tuple[float, float]:
        settings = Settings.from_options(values)
        return settings.warn, settings.crit

    assert tiers(warn="60%", crit="80") == (60.0, 80.0)
    assert tiers(warn="abc") == (70.0, 90.0)
    assert tiers(warn="-5", crit="101") == (70.0, 90.0)
    assert tiers(warn="nan", crit="inf") == (70.0, 90.0)
    assert tiers(warn="95", crit="80") == (70.0, 90.0)  # crossed: neither can be trusted
    assert tiers(crit="50") == (70.0, 90.0)
    assert Settings.from_options({"interval": "inf"}).interval == 5.0


def test_readme_options_table_matches_the_code() -> None:
    found = re.findall(
        r"^\| `@claude_meter_(\w+)` \| (?:`([^`]*)`|_empty_) \|", README.read_text(), re.M
    )
    assert found == [(option.name, option.default) for option in OPTIONS]
    assert set(DEFAULTS) == {name for name, _ in found}


def test_socket_path_from_tmux_environment() -> None:
    assert socket_path({"TMUX": "/tmp/tmux-0/my,sock,123,0"}) == "/tmp/tmux-0/my,sock"
    assert socket_path({}) is None


def test_guard_lines_tell_long_commands_apart_within_the_popup_width() -> None:
    venv = "/home/ada/src/claudemeter/.venv/bin/python3"
    work = "/var/folders/7x/k2c9vz4s1qg0lq8m5t7dk3w40000gn/T/claudemeter-demo-q8x2m0ab"
    seen = []
    for number in (1, 2):
        entry = GuardEntry(
            pid=1,
            command=f"{venv} -m claudemeter.demo agent {number} {work} 1",
            account=None,
            state="paused",
            pane=f"%{number}",
        )
        lines = guard_lines(entry, NOW)
        assert all(len(line) <= GUARD_WIDTH for line in lines)
        shown = f"python3 -m claudemeter.demo agent {number} …/claudemeter-demo-q8x2m0ab 1"
        assert lines == [f"guard %{number}: paused", f"  {shown}"]
        seen.append(lines[1])
    assert seen[0] != seen[1]
    assert guard_lines(GuardEntry(pid=1, command="claude", account=None, state="held"), NOW) == [
        "guard claude: held"
    ]
    assert short_command("'/opt/my tools/claude' -p hi", 40) == "claude -p hi"
    # nothing left to shorten: the end stays, the start goes
    assert short_command("claude -p '" + "x" * 50 + " the end'", 20) == "…xxxxxxxxxx the end'"
    assert short_command("claude -p 'cut by cm-guard at 200 charact…", 80).startswith("claude -p")


def test_options_read_back_exactly_what_real_tmux_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tmux escapes some values in ``show-options`` (``\\~5``, ``\\#``, quotes and
    backslashes): the reader must undo exactly that, as plugin.sh's opt() does."""
    monkeypatch.setenv("TMUX_TMPDIR", str(tmp_path))
    values = {"warn": "~5", "key": "#", "format": "{5h} \"x\" 'y' \\z", "account": "a b"}
    base = ["tmux", "-L", "opts", "-f", "/dev/null"]
    subprocess.run([*base, "new-session", "-d"], check=True)
    try:
        for key, value in values.items():
            subprocess.run([*base, "set", "-g", f"@claude_meter_{key}", value], check=True)
        shown = subprocess.run(
            [*base, "show-options", "-g"], capture_output=True, text=True, check=True
        ).stdout
    finally:
        subprocess.run([*base, "kill-server"], check=False)
    assert {k: v for k, v in parse_show_options(shown).items() if k in values} == values
