"""``claude-meter resume`` and the loop's ``@claude_meter_resume`` without the real
client (tests/e2e/test_wall_and_resume_real.py has it): when each stopped agent is due,
what is never typed into, what the popup lists, and the loop starting a resumer that
types into a real tmux pane."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from claudemeter import stopped
from claudemeter.model import format_time, utcnow
from claudemeter.resume import ResumeOptions, pane_problem, plan, waiting_lines
from claudemeter.store import Store
from tests.helpers import LOGIN_ORG, cli, cli_out, store_usage
from tests.tmuxlab import Lab, lab_fixture, plugin_dir, until

__all__ = ["lab_fixture"]  # the `lab` fixture, imported so pytest finds it


def put(**buckets: tuple[float, float]) -> None:
    now = utcnow()
    usage = {
        name: {"utilization": util, "resets_at": format_time(now + timedelta(seconds=left))}
        for name, (util, left) in buckets.items()
    }
    store_usage(usage, browser="statusline", fetched_at=now)


def record(session: str = "s1", **kw: Any) -> stopped.StoppedSession:
    """A saved stopped session; ``kw`` sets more of its fields (str, int and float ones)."""
    entry = stopped.StoppedSession(
        session_id=session, cwd="/home/ada/src/app", at=time.time(), org_uuid=LOGIN_ORG, **kw
    )
    stopped.save(entry)
    return entry


def test_due_at_the_recorded_reset_plus_grace() -> None:
    put(five_hour=(100.0, 600))
    resets = time.time() + 600
    entry = record(resets_at=resets)
    found = plan(entry, Store().read(), utcnow(), ResumeOptions(grace=30))
    assert found.at is not None and abs(found.at.timestamp() - (resets + 30)) < 0.01
    now = plan(entry, Store().read(), utcnow(), ResumeOptions(now=True))
    assert now.at is not None and now.why == "now"


def test_a_passed_reset_is_due_at_once_even_when_the_store_dropped_the_window() -> None:
    put(five_hour=(12.0, 3600))  # the next window's reading
    entry = record(resets_at=time.time() - 120)
    found = plan(entry, Store().read(), utcnow(), ResumeOptions(grace=30))
    assert found.at is not None and found.at <= utcnow()


def test_a_seven_day_window_is_not_waited_for_unless_asked() -> None:
    put(five_hour=(40.0, 600), seven_day=(97.0, 3 * 86400))
    entry = record(resets_at=time.time() + 600)
    found = plan(entry, Store().read(), utcnow(), ResumeOptions())
    assert found.at is None and "7-day" in found.why and "--seven-day" in found.why
    asked = plan(entry, Store().read(), utcnow(), ResumeOptions(seven_day=True))
    assert asked.at is not None and asked.at > utcnow() + timedelta(days=2)


def test_never_typed_into_a_pane_that_no_longer_runs_that_session() -> None:
    assert pane_problem(record()) == "it did not run in tmux"
    gone = record("s2", pane="%1", tmux="/nonexistent", agent_pid=2**22 + 7, agent_start=1)
    assert pane_problem(gone) == "its Claude Code session has ended"
    me = stopped.Process.read(os.getpid())
    assert me is not None
    reused = record(
        "s3", pane="%1", tmux="/nonexistent", agent_pid=me.pid, agent_start=me.start + 1
    )
    assert pane_problem(reused) == "its Claude Code session has ended"  # a pid reused


def test_resume_now_skips_and_reports_what_it_cannot_type_into() -> None:
    put(five_hour=(100.0, 600))
    record(pane="%4", tmux="/nonexistent", agent_pid=2**22 + 7, agent_start=1)
    done = cli("resume", "--now")
    assert done.returncode == 1
    assert "%4 (app): skipped, its Claude Code session has ended" in done.stdout
    [entry] = stopped.all_records()
    assert entry.outcome == stopped.SKIPPED
    shown = cli_out("show")
    assert "agents stopped on the limit" in shown
    assert "%4 (app) stopped" in shown and "skipped, its Claude Code session has ended" in shown


def test_nothing_waiting_is_said_and_is_success() -> None:
    done = cli("resume")
    assert (done.returncode, done.stdout.strip()) == (
        0,
        "claude-meter resume: no agent is waiting for a reset",
    )


def test_the_popup_says_when_each_agent_will_be_resumed() -> None:
    put(five_hour=(100.0, 3600), seven_day=(50.0, 86400))
    record("s1", pane="%2", resets_at=time.time() + 3600)
    lines = waiting_lines(utcnow())
    assert lines[0] == "agents stopped on the limit"
    assert "%2 (app) stopped" in lines[1] and "resumes" in lines[1] and "(in 1h00m)" in lines[1]


def test_the_loop_resumes_a_stopped_pane_when_the_option_is_on(lab: Lab, isolated: Path) -> None:
    entry = plugin_dir(isolated) / "claudemeter.tmux"
    server = lab.server(
        "resume",
        "set -g @claude_meter_serve off\nset -g @claude_meter_interval 1\n"
        "set -g @claude_meter_resume on\nset -g @claude_meter_resume_text 'go on please'\n"
        f"run-shell '{entry}'\n",
    )
    server.cmd("new-session", "-d", "-s", "w", "-x", "80", "-y", "10", "cat")
    pane = server.cmd("display-message", "-p", "-t", "w", "#{pane_id}").strip()
    pid = int(server.cmd("display-message", "-p", "-t", "w", "#{pane_pid}"))
    agent = stopped.Process.read(pid)
    assert agent is not None and agent.in_foreground
    socket = server.cmd("display-message", "-p", "#{socket_path}").strip()
    put(five_hour=(3.0, 5 * 3600))
    record(
        pane=pane, tmux=socket, agent_pid=pid, agent_start=agent.start, resets_at=time.time() - 60
    )
    assert until(lambda: "go on please" in "\n".join(server.capture(pane)), 20)
    assert until(lambda: stopped.all_records()[0].typed_at is not None, 10)
    assert stopped.all_records()[0].tries >= 1
