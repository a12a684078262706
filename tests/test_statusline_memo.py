"""``claude-meter statusline`` answering from its session memo (``statusline_memo``):
a call carrying what the session last stored prints the same bar without writing the
store; a changed reading or cost, an old or damaged memo, anything in doubt stores."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from claudemeter.sources.statusline import record_path
from claudemeter.statusline_memo import MEMO_DIR, SPAN
from tests.helpers import statusline_input, store_usage

SESSION = "7f3c0d1e-0000-4000-8000-0000000000aa"  # the fixture's session_id


def run(body: object, env: dict[str, str] | None = None) -> str:
    """``claude-meter statusline`` as Claude Code runs it (no options): its line."""
    done = subprocess.run(
        ["claude-meter", "statusline"],
        input=json.dumps(body).encode(),
        capture_output=True,
        timeout=30,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return done.stdout.decode().strip()


def reading(five: float = 57.0, cost: float | None = None) -> dict[str, Any]:
    """The fixture's input; its 5-hour reset 2 h 0 m 40 s ahead, so its countdown reads
    ``2h00m`` for the 40 s a test takes."""
    body = statusline_input(five=five, five_resets=int(time.time()) + 7240)
    if cost is not None:
        body["cost"]["total_cost_usd"] = cost
    return body


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def stamp(path: Path) -> tuple[int, int, bytes]:
    """What changes when ``path`` is written: its inode, its mtime and its bytes."""
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, path.read_bytes()


def memo(state_dir: Path) -> Path:
    return state_dir / MEMO_DIR / f"{SESSION}.json"


def rows(state_dir: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads((state_dir / "state.json").read_text())["rows"]
    return found


def session_points(state_dir: Path) -> list[list[float]]:
    """The session's cost records in the recent history: [t, cost, in, out] each."""
    recent = json.loads((state_dir / "history-recent.json").read_text())
    (account,) = recent["accounts"].values()
    points: list[list[float]] = account["sessions"][SESSION]["p"]
    return points


def test_an_unchanged_reading_is_not_stored_again_and_prints_the_same_bar(
    claude_dir: Path, state_dir: Path
) -> None:
    body = reading()
    first = run(body)
    assert first.startswith("5h 57% ↻2h00m · 7d 33%"), first
    assert memo(state_dir).stat().st_mode & 0o777 == 0o600
    before = {name: stamp(state_dir / name) for name in ("state.json", "history-recent.json")}
    again = run(body)
    assert again == first
    after = {name: stamp(state_dir / name) for name in ("state.json", "history-recent.json")}
    assert after == before, "an unchanged reading was written again"
    # the full path (no memo) prints exactly what the memo's answer printed
    memo(state_dir).unlink()
    full = run(body)
    assert full == again
    assert stamp(state_dir / "state.json") != before["state.json"], "the full path stored"


def test_a_changed_reading_is_stored_at_once(claude_dir: Path, state_dir: Path) -> None:
    run(reading(57.0))
    assert run(reading(91.0)).startswith("5h 91%")
    (row,) = rows(state_dir)
    assert row["usage"]["five_hour"]["utilization"] == 91.0
    # and a guard sees it at once
    done = subprocess.run(
        ["cm-guard", "--check", "--threshold", "90"], capture_output=True, check=False
    )
    assert done.returncode != 0, done.stdout


def test_a_changed_cost_reaches_the_store_at_once(claude_dir: Path, state_dir: Path) -> None:
    body = reading(cost=1.25)
    run(body)
    assert [p[1] for p in session_points(state_dir)] == [1.25]
    run(body)  # unchanged: answered from the memo
    assert [p[1] for p in session_points(state_dir)] == [1.25]
    body["cost"]["total_cost_usd"] = 2.5  # the same reading, a new response's cost
    run(body)
    assert [p[1] for p in session_points(state_dir)] == [1.25, 2.5]


def test_the_memo_answers_for_span_seconds_at_most(claude_dir: Path, state_dir: Path) -> None:
    body = reading()
    run(body)
    held = json.loads(memo(state_dir).read_text())
    assert 0 < held["until"] - held["stored"] <= SPAN
    before = stamp(state_dir / "state.json")
    # the same memo, as if its store had been SPAN + 1 seconds ago
    for key in ("stored", "until"):
        held[key] -= SPAN + 1
    memo(state_dir).write_text(json.dumps(held))
    assert run(body).startswith("5h 57%")
    assert stamp(state_dir / "state.json") != before, "an old memo answered"
    fresh = json.loads(memo(state_dir).read_text())
    assert fresh["stored"] > held["stored"] + SPAN


def test_a_reset_ahead_ends_the_memo_before_it(claude_dir: Path, state_dir: Path) -> None:
    soon = int(time.time()) + 20
    body = statusline_input(five_resets=soon)
    run(body)
    held = json.loads(memo(state_dir).read_text())
    assert held["until"] <= soon


@pytest.mark.parametrize(
    "damage",
    ["garbage", "list", "bad bar", "huge", "world readable", "symlink", "fifo", "other session"],
)
def test_a_damaged_memo_takes_the_full_path(
    claude_dir: Path, state_dir: Path, tmp_path: Path, damage: str
) -> None:
    body = reading()
    first = run(body)
    path = memo(state_dir)
    held = json.loads(path.read_text())
    elsewhere = tmp_path / "elsewhere.json"
    if damage == "garbage":
        path.write_bytes(b"\x00\xff{not json")
    elif damage == "list":
        path.write_text("[1, 2]")
    elif damage == "bad bar":
        path.write_text(json.dumps({**held, "bar": [["five_hour", "57", None]]}))
    elif damage == "huge":
        path.write_text(json.dumps({**held, "pad": "x" * (1 << 17)}))
    elif damage == "world readable":
        path.chmod(0o644)
    elif damage == "symlink":
        elsewhere.write_text(json.dumps(held))
        path.unlink()
        path.symlink_to(elsewhere)
    elif damage == "fifo":
        path.unlink()
        os.mkfifo(path, 0o600)
    elif damage == "other session":
        path.write_text(json.dumps({**held, "session": "another"}))
    before = stamp(state_dir / "state.json")
    assert run(body) == first
    assert stamp(state_dir / "state.json") != before, "a damaged memo answered"
    assert path.is_file() and not path.is_symlink()
    assert json.loads(path.read_text())["session"] == SESSION
    if damage == "symlink":
        assert json.loads(elsewhere.read_text()) == held, "the write followed the link"


def test_a_changed_login_file_takes_the_full_path(claude_dir: Path, state_dir: Path) -> None:
    body = reading()
    run(body)
    before = stamp(state_dir / "state.json")
    claude_json = claude_dir.parent / ".claude.json"
    claude_json.write_text(claude_json.read_text() + "\n")
    run(body)
    assert stamp(state_dir / "state.json") != before


def test_a_pinned_clock_or_a_shared_state_dir_takes_the_full_path(
    claude_dir: Path, state_dir: Path
) -> None:
    body = reading()
    run(body)
    before = stamp(state_dir / "state.json")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run(body, {"CLAUDEMETER_NOW": now})
    after = stamp(state_dir / "state.json")
    assert after != before
    run(body)  # the memo the pinned call left is for the wall clock's next call
    after = stamp(state_dir / "state.json")
    state_dir.chmod(0o770)  # writable by the group: the memo is not trusted there
    run(body)
    assert stamp(state_dir / "state.json") != after


def test_the_pace_warning_is_the_same_from_the_memo(claude_dir: Path, state_dir: Path) -> None:
    """A bar with a pace warning (the 5-hour bucket climbing 2 points a minute, full long
    before its reset): the memo's answer is the full path's, warning included."""
    body = reading(five=72.0)
    resets = body["rate_limits"]["five_hour"]["resets_at"]
    start = datetime.now(timezone.utc)
    for minutes_ago, used in ((20, 32.0), (12, 48.0), (4, 64.0)):
        store_usage(
            {"five_hour": {"utilization": used, "resets_at": rfc3339(resets)}},
            fetched_at=start - timedelta(minutes=minutes_ago),
        )
    first = run(body)
    assert "⚠ 100% ~" in first, first
    before = stamp(state_dir / "state.json")
    assert run(body) == first
    assert stamp(state_dir / "state.json") == before, "the memo did not answer"
    memo(state_dir).unlink()
    assert run(body) == first


def test_a_recorded_chain_runs_on_every_call(claude_dir: Path, tmp_path: Path) -> None:
    """install-statusline --chain's record appearing after a memo was left: the chained
    command runs on that call and every later one (no memo is left while it is recorded)."""
    body = reading()
    assert "PREVIOUS" not in run(body)
    script = tmp_path / "prev.sh"
    script.write_text('#!/bin/sh\ncat > /dev/null\nprintf "PREVIOUS\\n"\n')
    script.chmod(0o755)
    record = record_path()
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"chain": str(script)}))
    for _ in range(3):
        assert run(body).startswith("PREVIOUS │ 5h 57%")
