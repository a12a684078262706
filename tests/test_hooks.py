"""``claude-meter hook gate`` / ``hook stop-failure`` as Claude Code runs them (a child
process, the hook's JSON on stdin), and ``install-hooks`` on a real settings.json."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from claudemeter import history, registry, stopped
from claudemeter.model import format_time, parse_time, utcnow
from tests.helpers import FIXTURES, LOGIN_ORG, cli, store_usage

PROMPT = (FIXTURES / "claude_code_hook_user_prompt_submit.json").read_bytes()
WALL = (FIXTURES / "claude_code_hook_stop_failure.json").read_bytes()
TOOL = json.dumps(
    {**json.loads(PROMPT), "hook_event_name": "PreToolUse", "tool_name": "Read"}
).encode()


def hook(
    *args: str, data: bytes = PROMPT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["claude-meter", "hook", *args],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def put(util: float, resets_in: float, bucket: str = "five_hour") -> float:
    """The login's account at ``util`` percent; returns resets_at (epoch seconds, as stored)."""
    now = utcnow()
    resets = format_time(now + timedelta(seconds=resets_in))
    store_usage(
        {bucket: {"utilization": util, "resets_at": resets}}, browser="statusline", fetched_at=now
    )
    return parse_time(resets).timestamp()


def test_under_the_threshold_the_gate_says_nothing(claude_dir: Path) -> None:
    put(42.0, 3600)
    done = hook("gate")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_over_the_threshold_the_gate_holds_until_the_reset_and_grace(
    claude_dir: Path,
) -> None:
    resets_at = put(95.0, 1.5)
    done = hook("gate", "--grace", "0.5", "--poll", "0.1", env={"TMUX_PANE": "%7"})
    finished = time.time()
    assert done.returncode == 0
    assert finished >= resets_at + 0.5
    assert b"5-hour at 95% (ada@example.com), waiting for the reset at" in done.stderr
    assert json.loads(done.stdout)["systemMessage"].startswith("claudemeter: held ")
    assert registry.active() == []  # the hold's entry is gone with it


def test_a_hold_shows_in_the_registry_with_its_pane(claude_dir: Path) -> None:
    resets_at = put(95.0, 30)
    child = subprocess.Popen(
        ["claude-meter", "hook", "gate", "--grace", "2", "--poll", "0.1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMUX_PANE": "%7"},
    )
    try:
        assert child.stdin is not None
        child.stdin.write(TOOL)
        child.stdin.close()
        deadline = time.monotonic() + 15
        while not registry.active() and time.monotonic() < deadline:
            time.sleep(0.05)
        [entry] = registry.active()
        assert (entry.pane, entry.state, entry.resume_at) == ("%7", "held", resets_at + 2)
        assert entry.account == "ada@example.com"
        # The store says the window was reset early: the hold lets go on its next poll.
        put(3.0, 5 * 3600)
        assert child.wait(15) == 0
    finally:
        child.kill()
        child.wait()
    assert registry.active() == []


def test_a_wait_longer_than_max_wait_stops_the_prompt_with_a_reason(claude_dir: Path) -> None:
    put(97.0, 3 * 86400, bucket="seven_day")
    done = hook("gate", "--max-wait", "600")
    assert done.returncode == 2  # Claude Code blocks the prompt and shows stderr
    assert b"7-day over 90% and resets" in done.stderr
    assert b"too long to hold here" in done.stderr
    record = stopped.load("5c485b4d-0000-4000-8000-0000000000a7")
    assert record is not None and record.detail == "held back by the gate: 7-day"


def test_a_tool_event_over_a_long_wait_is_stopped_by_json(claude_dir: Path) -> None:
    put(97.0, 3 * 86400, bucket="seven_day")
    done = hook("gate", data=TOOL)
    assert done.returncode == 0
    answer = json.loads(done.stdout)
    assert answer["continue"] is False
    assert "too long to hold here" in answer["stopReason"]


def test_the_gate_fails_open_on_its_own_trouble(claude_dir: Path, tmp_path: Path) -> None:
    put(95.0, 3600)
    done = hook("gate", "--threshold", "nonsense")  # a typo in settings.json
    assert (done.returncode, done.stdout) == (0, b"")
    assert done.stderr.count(b"\n") == 1 and b"--threshold" in done.stderr
    done = hook("gate", env={"CLAUDEMETER_THRESHOLD": "lots"})
    assert (done.returncode, done.stdout) == (0, b"")
    assert b"CLAUDEMETER_THRESHOLD" in done.stderr and b"letting the agent go on" in done.stderr
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    done = hook("gate", env={"CLAUDEMETER_STATE_DIR": str(not_a_dir)})  # no store to read
    assert (done.returncode, done.stdout) == (0, b"")


def test_bad_stdin_still_gets_a_decision(claude_dir: Path) -> None:
    put(42.0, 3600)
    for data in (b"", b"not json", b"[1,2]", b"\xff\xfe"):
        done = hook("gate", data=data)
        assert (done.returncode, done.stdout) == (0, b"")


def test_stop_failure_records_the_session_with_its_pane(claude_dir: Path, state_dir: Path) -> None:
    done = hook(
        "stop-failure", data=WALL, env={"TMUX_PANE": "%3", "TMUX": "/tmp/tmux-1/default,1,0"}
    )
    assert (done.returncode, done.stderr) == (0, b"")
    [record] = stopped.all_records()
    assert record.session_id == "5014f7f5-0000-4000-8000-0000000000e5"
    assert (record.pane, record.tmux, record.cwd) == (
        "%3",
        "/tmp/tmux-1/default",
        "/home/ada/src/app",
    )
    assert (record.org_uuid, record.email) == (LOGIN_ORG, "ada@example.com")
    assert abs(record.at - time.time()) < 60
    assert record.waiting
    directory = stopped.stopped_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(next(directory.iterdir()).stat().st_mode) == 0o600
    # and the account's history has the limit hit (claude-meter history)
    [hit] = history.read(state_dir)[LOGIN_ORG].hits
    assert (hit.bucket, hit.source) == (None, history.HIT_STOP_FAILURE)
    assert abs(hit.at - time.time()) < 60


def test_stop_failure_ignores_other_errors(claude_dir: Path) -> None:
    other = json.dumps({**json.loads(WALL), "error": "overloaded"}).encode()
    assert hook("stop-failure", data=other).returncode == 0
    assert stopped.all_records() == []


def test_the_sessions_next_hook_event_marks_it_going_again(claude_dir: Path) -> None:
    assert hook("stop-failure", data=WALL).returncode == 0
    put(10.0, 3600)
    same_session = json.dumps({**json.loads(PROMPT), "session_id": json.loads(WALL)["session_id"]})
    assert hook("gate", data=same_session.encode()).returncode == 0
    [record] = stopped.all_records()
    assert record.active_at is not None and not record.waiting
    assert record.outcome == stopped.BY_HAND  # nobody typed into it: the user went on


# -- install-hooks ----------------------------------------------------------------------

ORIGINAL = (
    b'{\n    "model": "opus",\n  "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks":'
    b' [{"type": "command", "command": "my-linter"}]}]},\n "env": {"FOO": "bar"}\n}'
)


def settings_of(claude_dir: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((claude_dir / "settings.json").read_text())
    return body


def test_install_keeps_everything_else_and_uninstall_restores_the_bytes(
    claude_dir: Path,
) -> None:
    path = claude_dir / "settings.json"
    path.write_bytes(ORIGINAL)
    path.chmod(0o640)
    done = cli("install-hooks", "--grace", "10")
    assert done.returncode == 0, done.stderr
    body = settings_of(claude_dir)
    assert body["model"] == "opus" and body["env"] == {"FOO": "bar"}
    assert list(body) == ["model", "hooks", "env"]
    pre = body["hooks"]["PreToolUse"]
    assert pre[0] == {"matcher": "Bash", "hooks": [{"type": "command", "command": "my-linter"}]}
    gate = pre[1]["hooks"][0]
    assert gate["command"].endswith("claude-meter hook gate --grace 10")
    assert gate["timeout"] == 19800 + 60
    assert gate["statusMessage"]
    for event in ("UserPromptSubmit", "PostToolUse"):
        assert body["hooks"][event] == [{"hooks": [gate]}]
    wall = body["hooks"]["StopFailure"][0]["hooks"][0]
    assert wall["command"].endswith("claude-meter hook stop-failure")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert len(list(claude_dir.glob("settings.json.claudemeter-backup-*"))) == 1
    assert "already installed" in cli("install-hooks", "--grace", "10").stdout

    done = cli("install-hooks", "--uninstall")
    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == ORIGINAL


def test_uninstall_after_an_edit_takes_out_only_ours(claude_dir: Path) -> None:
    path = claude_dir / "settings.json"
    path.write_bytes(ORIGINAL)
    assert cli("install-hooks").returncode == 0
    body = settings_of(claude_dir)
    body["theme"] = "light"
    path.write_text(json.dumps(body))
    assert cli("install-hooks", "--uninstall").returncode == 0
    after = settings_of(claude_dir)
    assert after["theme"] == "light"
    assert after["hooks"] == json.loads(ORIGINAL)["hooks"]


def test_install_into_no_file_and_back(claude_dir: Path) -> None:
    path = claude_dir / "settings.json"
    assert cli("install-hooks", "--max-wait", "3600").returncode == 0
    gate = settings_of(claude_dir)["hooks"]["UserPromptSubmit"][0]["hooks"][0]
    assert gate["timeout"] == 3660 and "--max-wait 3600" in gate["command"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli("install-hooks", "--uninstall").returncode == 0
    assert not path.exists()


@pytest.mark.parametrize(
    "content",
    [b'{"hooks": ', b"[1, 2]", b'{"hooks": {"PreToolUse": {"not": "a list"}}}'],
)
def test_install_refuses_what_it_cannot_parse(claude_dir: Path, content: bytes) -> None:
    path = claude_dir / "settings.json"
    path.write_bytes(content)
    done = cli("install-hooks")
    assert done.returncode == 1
    assert "nothing was changed" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == content
    assert list(claude_dir.glob("settings.json.claudemeter-backup-*")) == []


def test_doctor_says_whether_the_hooks_are_installed(claude_dir: Path) -> None:
    assert not re.search(r"^\S+\s+hooks\s", cli("doctor").stdout, re.MULTILINE)  # optional
    assert cli("install-hooks").returncode == 0
    assert "ok    hooks" in cli("doctor").stdout
    body = settings_of(claude_dir)
    del body["hooks"]["PostToolUse"]
    (claude_dir / "settings.json").write_text(json.dumps(body))
    shown = cli("doctor").stdout
    assert "no claudemeter hook on PostToolUse" in shown
    assert hook("stop-failure", data=WALL).returncode == 0
    assert "1 agent(s) stopped on the limit wait for" in cli("doctor").stdout


def test_installing_again_with_other_options_replaces_ours_and_uninstall_still_restores(
    claude_dir: Path,
) -> None:
    path = claude_dir / "settings.json"
    path.write_bytes(ORIGINAL)
    assert cli("install-hooks").returncode == 0
    assert cli("install-hooks", "--threshold", "80").returncode == 0
    hooks = settings_of(claude_dir)["hooks"]
    gates = [h for g in hooks["PreToolUse"] for h in g["hooks"] if "hook gate" in h["command"]]
    assert len(gates) == 1 and gates[0]["command"].endswith("hook gate --threshold 80")
    assert hooks["PreToolUse"][0]["hooks"][0]["command"] == "my-linter"
    assert cli("install-hooks", "--uninstall").returncode == 0
    assert path.read_bytes() == ORIGINAL  # the bytes from before the first install
