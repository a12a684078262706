"""Class 2, "stored text reaches the terminal raw": an escape sequence stored in any
text field (errors, email, org, browser, currency, subscription, a guard's command)
never reaches a terminal from the summary, ``show``, the popup in a real tmux client,
``doctor`` or a guard's messages. The tmux segment's own escaping stays as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from claudemeter.model import printable
from tests.helpers import cli, guard_run, start, start_bridge, wait_for
from tests.hostile.readers import (
    CONTROL,
    assert_clean,
    assert_readers_work,
    good_snapshot,
    ingest,
    raw,
)
from tests.tmuxlab import Lab, attach, lab_fixture, plugin_config, plugin_dir
from tests.tmuxlab import until as tmux_until

__all__ = ["lab_fixture"]

NOW = "2026-11-25T12:05:00.000Z"  # the pinned clock: readings 30 s old
#: Retitles the pane and clears the screen: the issue's payload.
ESC = "\u001b]0;ERR-TITLE\u0007\u001b[2J"
#: More of the kind: 8-bit CSI, a bidi override, a cursor move, DCS, a bare BEL and CR.
MORE = ["\x9b2J", "\u202eevil", "\x1b[10;1H", "\x1bPq#\x1b\\", "\x07", "over\rwrite"]


def hostile_rows() -> list[dict[str, Any]]:
    usage: dict[str, Any] = {
        "five_hour": {"utilization": 41.0, "resets_at": None},
        "extra_usage": {
            "is_enabled": True,
            "used_credits": 120,
            "monthly_limit": 5000,
            "currency": "USD" + ESC,
        },
    }
    first = good_snapshot(
        util=41.0,
        account_email="ada" + ESC + "@example.com",
        browser="Chrome" + ESC,
        errors=[ESC, *MORE],
        subscription={"status": "active" + ESC, "next_charge_date": "soon\x9b2J"},
        overage={"is_enabled": True, "used_credits": 1, "currency": "EUR" + ESC},
    )
    first["usage"].update({k: v for k, v in usage.items() if k != "five_hour"})
    nameless = good_snapshot(util=12.0, org_uuid="org" + ESC + "x", account_email=None)
    nameless["browser"] = "Arc\u202e"
    return [first, nameless]


def test_printable_removes_whole_sequences_and_keeps_text() -> None:
    assert printable("a" + ESC + "b") == "ab"
    assert printable("5h 41%\n\ttab") == "5h 41%\n\ttab"
    assert printable("ünï ✓ 中文") == "ünï ✓ 中文"
    assert printable("\x1b[31mred\x1b[0m", colour=True) == "\x1b[31mred\x1b[0m"
    assert printable("\x1b[31mred" + ESC, colour=True) == "\x1b[31mred"
    for bad in MORE:
        assert not set(printable(bad)) & set(CONTROL), bad


def test_no_reader_prints_a_stored_escape(state_dir: Path) -> None:
    done = ingest(hostile_rows())
    assert done.returncode == 0, done.stderr
    summary = cli("--cached")
    assert_clean(summary.stdout + summary.stderr, "the summary")
    assert "ERR-TITLE" not in summary.stdout and "ada@example.com" in summary.stdout
    assert "subscription: active" in summary.stdout
    shown = cli("show")
    assert_clean(shown.stdout + shown.stderr, "show")
    assert "error: ERR" not in shown.stdout
    doctor = cli("doctor")
    assert_clean(doctor.stdout + doctor.stderr, "doctor")
    # --json stays JSON: the text is there, escaped by the encoder, never raw.
    listed = cli("--json", "--cached")
    assert "\\u001b" in listed.stdout and "\x1b" not in listed.stdout
    assert_readers_work()
    # status: tmux's own escaping of the segment is unchanged (## and %%).
    status = cli("status")
    assert_clean(status.stdout, "status")


def test_a_guards_messages_and_its_popup_line_are_clean(tmp_path: Path) -> None:
    assert ingest(good_snapshot(util=41.0)).returncode == 0
    refused = guard_run("--account", "nobody" + ESC, "--", "true")
    assert refused.returncode == 125, refused.stderr
    assert_clean(refused.stderr, "cm-guard")
    assert "nobody" in refused.stderr
    guard = start("--poll", "0.2", "--", "sh", "-c", "sleep 30 # " + ESC)
    wait_for(lambda: "sleep 30" in cli("show").stdout, "the guard's line in show")
    shown = cli("show")
    assert_clean(shown.stdout, "show's guard line")
    guard.terminate()  # the guard passes it on: the command ends with it
    guard.communicate(timeout=10)


def test_the_popup_in_a_real_tmux_client_keeps_its_title_and_every_line(
    lab: Lab, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMETER_NOW", NOW)
    rows = hostile_rows()
    for row in rows:
        row["fetched_at"] = "2026-11-25T12:04:30.000Z"
    assert ingest(rows).returncode == 0
    inner = lab.server("cm-in", plugin_config(plugin_dir(isolated) / "claudemeter.tmux"))
    inner.cmd("new-session", "-d", "-s", "work", "-x", "100", "-y", "40")
    outer = attach(lab, inner, width=100, height=40)
    title = outer.cmd("display-message", "-p", "-t", "screen", "#{pane_title}")
    outer.cmd("send-keys", "-t", "screen", "C-b", "M")

    def popup() -> str:
        return "\n".join(outer.capture("screen"))

    assert tmux_until(lambda: "claude-meter · 12:05 local" in popup(), 15), popup()
    screen = popup()
    assert "ada@example.com" in screen  # the heading survived: nothing cleared it
    assert "q/Esc close" in screen
    assert "ERR-TITLE" not in screen
    assert outer.cmd("display-message", "-p", "-t", "screen", "#{pane_title}") == title
    outer.cmd("send-keys", "-t", "screen", "q")


def test_the_bridge_log_is_one_clean_line_per_event(tmp_path: Path) -> None:

    bridge = start_bridge(tmp_path)
    try:
        for row in hostile_rows():
            assert bridge.post(row).status == 200
        raw(bridge.port, b"GET /x\x1b[2J HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        bridge.call("GET", "/healthz", token=None, host="evil" + ESC)
    finally:
        bridge.stop()
    assert_clean(bridge.output(), "the bridge log")


def test_json_of_the_hostile_rows_round_trips() -> None:
    rows = hostile_rows()
    assert ingest(rows).returncode == 0
    listed = json.loads(cli("--json", "--cached").stdout)
    assert {r["browser"] for r in listed} == {"Chrome" + ESC, "Arc\u202e"}  # stored as sent
