"""`claude-meter top` end to end: sessions fed through the real `claude-meter
statusline` (three panes, climbing rate limits), and a session seen only in its
transcript. Expected shares are the cost proportions the inputs were built with."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from claudemeter.model import format_time
from tests.helpers import LOGIN_ORG, cli, cli_out, cli_rows, fixture_body, ingest

E = 1_796_040_000.0  # the pinned clock the agents start at
FIVE_RESETS = E + 4 * 3600  # the 5-hour window began an hour before E
SEVEN_RESETS = E + 3 * 86400
PER_DOLLAR = 10.0  # the fake account: each dollar of spend is 10 points of the 5-hour bucket


def at(epoch: float) -> str:
    return format_time(datetime.fromtimestamp(epoch, timezone.utc))


def statusline(body: dict[str, Any], now: float, pane: str) -> str:
    return cli_out(
        "statusline", stdin=json.dumps(body), env={"CLAUDEMETER_NOW": at(now), "TMUX_PANE": pane}
    )


def top(now: float, *args: str) -> list[dict[str, Any]]:
    return cli_rows("top", "--json", *args, env={"CLAUDEMETER_NOW": at(now)})


def turn_input(
    session: str, project: str, cost: float, started: float, now: float, five: float, seven: float
) -> dict[str, Any]:
    """A 2.1.332 statusLine input (the fixture's keys) for one session after a turn."""
    body = fixture_body("claude_code_2_1_332_statusline_input.json")
    body.update(session_id=session, cwd=project)
    body["workspace"] = {"current_dir": project, "project_dir": project}
    body["cost"]["total_cost_usd"] = cost
    body["cost"]["total_duration_ms"] = int((now - started) * 1000)
    body["context_window"]["total_input_tokens"] = int(cost * 100_000)
    body["context_window"]["total_output_tokens"] = int(cost * 10_000)
    body["rate_limits"] = {
        "five_hour": {"used_percentage": round(five, 1), "resets_at": int(FIVE_RESETS)},
        "seven_day": {"used_percentage": round(seven, 1), "resets_at": int(SEVEN_RESETS)},
    }
    return body


def ingest_poll(now: float, five: float, seven: float) -> None:
    """The OAuth poller's reading before the agents start."""
    body = {
        "org_uuid": LOGIN_ORG,
        "browser": "Claude Code",
        "account_email": "ada@example.com",
        "fetched_at": at(now),
        "usage": {
            "five_hour": {"utilization": five, "resets_at": at(FIVE_RESETS)},
            "seven_day": {"utilization": seven, "resets_at": at(SEVEN_RESETS)},
        },
    }
    ingest(body, env={"CLAUDEMETER_NOW": at(now)})


def test_three_panes_rank_by_their_cost(claude_dir: Path) -> None:
    per_turn = {"%0": 0.10, "%1": 0.20, "%2": 0.30}
    started = E - 30
    five, seven = 0.0, 17.0
    ingest_poll(E - 60, five, seven)
    costs = dict.fromkeys(per_turn, 0.0)
    now = E
    for _round in range(6):
        for pane, spend in per_turn.items():
            now += 15
            costs[pane] += spend
            five += spend * PER_DOLLAR
            seven += spend * PER_DOLLAR / 10
            body = turn_input(
                f"sess-{pane[1:]}", f"/src/app{pane[1:]}", costs[pane], started, now, five, seven
            )
            assert "5h" in statusline(body, now, pane)
    rows = top(now + 5)
    assert [r["pane"] for r in rows] == ["%2", "%1", "%0"]
    total = sum(costs.values())
    for row in rows:
        expected = 100.0 * costs[row["pane"]] / total
        assert abs(row["share_5h"] - expected) <= 5.0, row
        assert abs(row["share_7d"] - expected) <= 5.0, row
        assert row["cost_usd"] == pytest.approx(costs[row["pane"]], abs=0.01)
        assert row["project"] == f"/src/app{row['pane'][1:]}"
        assert row["session_id"] == f"sess-{row['pane'][1:]}"
        assert row["model"] == "Sonnet"
        assert row["source"] == "statusline"
        assert row["unexplained_5h"] <= 5.0
    assert sum(r["share_5h"] for r in rows) == pytest.approx(
        100.0 - rows[0]["unexplained_5h"], abs=0.2
    )
    # the human table says the same, largest first
    lines = cli_out("top", env={"CLAUDEMETER_NOW": at(now + 5)}).splitlines()
    assert lines[0].startswith("ada@example.com · since ")
    assert [line.split()[0] for line in lines[2:5]] == ["%2", "%1", "%0"]
    # the popup's section, and the segment's {top} (derived when the history compacted)
    later = {"CLAUDEMETER_NOW": at(now + 5)}
    shown = cli_out("show", env=later).splitlines()
    start = shown.index("  who is filling it (this 5-hour window; claude-meter top)")
    assert [line.split()[0] for line in shown[start + 2 : start + 5]] == ["%2", "%1", "%0"]
    segment = cli_out("status", "--format", "{5h} {top}", env=later).strip()
    # worked out at the last compaction, a few turns before the end: the leader, near 50 %
    found = re.search(r"%2 app2 (\d+)%$", segment)
    assert found is not None, segment
    assert abs(int(found.group(1)) - 50) <= 5


def write_transcript(
    claude_dir: Path, session: str, project: str, messages: list[tuple[float, dict[str, Any]]]
) -> None:
    folder = claude_dir / "projects" / project.replace("/", "-")
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for n, (t, usage) in enumerate(messages):
        for _part in range(2):  # Claude Code writes a message once per content block
            lines.append(
                json.dumps(
                    {
                        "type": "assistant",
                        "sessionId": session,
                        "cwd": project,
                        "timestamp": at(t),
                        "message": {
                            "id": f"msg_{session}_{n}",
                            "model": "claude-sonnet-5-5",
                            "usage": usage,
                        },
                    }
                )
            )
        lines.append(json.dumps({"type": "user", "timestamp": at(t), "message": {"content": "x"}}))
    path = folder / f"{session}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    last = messages[-1][0]
    os.utime(path, (last, last))  # written at the pinned clock's time, whatever the date


def test_a_session_without_our_statusline_is_read_from_its_transcript(claude_dir: Path) -> None:
    """One agent runs our statusline ($1.00), one does not: its transcript, priced from
    the table (Sonnet 5.5: $2 / $10 per million input / output tokens), says $0.40. The
    statusline session's own transcript is not counted twice."""
    ingest_poll(E - 60, 0.0, 10.0)
    usage = {"input_tokens": 50_000, "output_tokens": 10_000}  # 0.10 + 0.10 per message
    write_transcript(claude_dir, "quiet", "/src/quiet", [(E + 20, usage), (E + 50, usage)])
    write_transcript(claude_dir, "sess-0", "/src/app0", [(E + 30, usage)])
    five = 0.0
    for step, cost in enumerate((0.5, 1.0)):
        now = E + 30 * (step + 1)
        five += 0.5 * PER_DOLLAR + 0.2 * PER_DOLLAR  # ours and the quiet one's spend
        body = turn_input("sess-0", "/src/app0", cost, E - 10, now, five, 10.0)
        statusline(body, now, "%0")
    rows = top(E + 90)
    by_id = {r["session_id"]: r for r in rows}
    assert set(by_id) == {"sess-0", "quiet"}
    quiet = by_id["quiet"]
    assert quiet["source"] == "transcript"
    assert quiet["pane"] is None
    assert quiet["project"] == "/src/quiet"
    assert quiet["model"] == "claude-sonnet-5-5"
    assert quiet["cost_usd"] == pytest.approx(0.40, abs=1e-6)
    assert quiet["share_5h"] == pytest.approx(100 * 0.4 / 1.4, abs=1.0)
    assert by_id["sess-0"]["share_5h"] == pytest.approx(100 * 1.0 / 1.4, abs=1.0)


def test_since_must_be_a_duration(claude_dir: Path) -> None:
    done = cli("top", "--since", "yesterday")
    assert done.returncode == 2
    assert "expected a duration like 30m, 1h or 2d" in done.stderr
