"""2. ``cm-guard`` around the real Claude Code in a tmux pane: paused (state T) once the
store crosses the threshold, its pane still drawn and tmux still answering, resumed at
``resets_at`` + grace, and the next prompt works."""

from __future__ import annotations

import time

from claudemeter import registry
from tests.claude_code import Agents, Login, stored_utilization
from tests.fake_messages import FakeMessages
from tests.helpers import proc_state, wait_for

POLL = 0.2
GRACE = 1.0


def test_cm_guard_pauses_and_resumes_the_real_client(
    fake: FakeMessages, login: Login, agents: Agents
) -> None:
    login.install()  # the statusLine only: cm-guard reads what it stores
    agent = agents.start(
        "app", wrapper=["cm-guard", "--poll", f"{POLL:g}", "--grace", f"{GRACE:g}"]
    )
    agents.ready(agent)
    [guard] = registry.active()
    assert guard.pane == agent.pane and guard.child_pid is not None
    claude = guard.child_pid

    agent.type("before the limit")
    wait_for(lambda: stored_utilization() == 42.0, "the first reading", 30, agent.screen)
    assert proc_state(claude) in ("R", "S")

    fake.account.five_hour.fraction = 0.95
    fake.account.five_hour.resets_at = time.time() + 10
    resets_at = int(fake.account.five_hour.resets_at)
    agent.type("this answer crosses")
    wait_for(lambda: stored_utilization() == 95.0, "the store to cross", 30, agent.screen)
    wait_for(lambda: proc_state(claude) == "T", "claude stopped", 10, agent.screen)
    assert time.time() < resets_at  # paused well before the reset
    wait_for(lambda: "paused" in agent.screen(), "the guard's message in the pane", 5, agent.screen)
    assert "done: this answer crosses" in agent.screen()  # the TUI stays drawn
    assert agents.server.cmd("display-message", "-p", "#{session_name}").strip() == "agents"

    wait_for(lambda: proc_state(claude) in ("R", "S"), "claude running again", 30, agent.screen)
    assert time.time() >= resets_at + GRACE
    agent.type("after the reset")
    wait_for(lambda: "done: after the reset" in agent.screen(), "the next answer", 30, agent.screen)
    assert [t.status for t in fake.turns_with("after the reset")] == [200]
