"""One attribution rule for a rejected login (issue 16, ``State.login_problem``): with the
login keyed by its config dir (its account not known), the segment, ``cm-guard`` and
the popup all put it on the account's row. They used to disagree: the segment said
``stale 30m``, cm-guard blamed the login, and the popup listed it under "sources
without data"."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from claudemeter.model import Snapshot, format_time, parse_time
from claudemeter.store import Store

NOW = "2026-11-25T12:30:00Z"
REJECTED = "login rejected (401): run `claude`"


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def test_segment_guard_and_popup_agree_on_a_rejected_login(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMETER_NOW", NOW)
    now = parse_time(NOW)
    reading = Snapshot.from_json(
        {
            "org_uuid": "org-agree",
            "account_email": "ada@example.com",
            "browser": "statusline",
            "fetched_at": format_time(now - timedelta(minutes=30)),
            "usage": {
                "five_hour": {
                    "utilization": 40.0,
                    "resets_at": format_time(now + timedelta(hours=2)),
                }
            },
        }
    )
    with Store(state_dir).update() as state:
        state.put(reading)
        state.sources["oauth:~/.claude"] = {"status": "login", "error": REJECTED}
    assert Store(state_dir).read().login_problem(reading) == REJECTED

    segment = run("claude-meter", "status")
    assert "login 30m" in segment, segment
    verdict = json.loads(run("cm-guard", "--check"))
    assert verdict["login"] == REJECTED, verdict
    popup = run("claude-meter", "show")
    assert REJECTED in popup and "sources without data" not in popup, popup
    (block,) = [b for b in popup.split("\n\n") if "ada@example.com" in b]
    assert REJECTED in block, popup
