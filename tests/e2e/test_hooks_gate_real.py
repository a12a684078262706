"""3. The hooks gate in the real Claude Code: with the account over the threshold, a
prompt typed into ``claude`` reaches the server only after the reset (nothing reaches it
in between); under the threshold the prompt goes straight through."""

from __future__ import annotations

import time

from claudemeter import registry
from tests.claude_code import Agents, Login, stored_utilization
from tests.fake_messages import FakeMessages
from tests.helpers import wait_for

GRACE = 1.0


def test_a_prompt_waits_at_the_gate_for_the_reset(
    fake: FakeMessages, login: Login, agents: Agents
) -> None:
    login.install("--grace", f"{GRACE:g}", "--poll", "0.2")
    agent = agents.start("app")
    agents.ready(agent)

    # Under the threshold: straight through, and the gate never held.
    agent.type("under the threshold")
    wait_for(lambda: fake.turns_with("under the threshold"), "the first request", 30, agent.screen)
    wait_for(lambda: stored_utilization() == 42.0, "the statusline's reading", 15, agent.screen)
    assert registry.active() == []

    # This answer takes the account over the threshold, with a reset seconds away.
    fake.account.five_hour.fraction = 0.95
    fake.account.five_hour.resets_at = time.time() + 10
    agent.type("this one crosses")
    wait_for(lambda: stored_utilization() == 95.0, "the store to cross", 15, agent.screen)
    crossed = time.time()
    resets_at = int(fake.account.five_hour.resets_at)

    agent.type("held until the reset")
    wait_for(
        lambda: [e for e in registry.active() if e.pane == agent.pane],
        "the gate to hold",
        10,
        agent.screen,
    )
    held = next(e for e in registry.active() if e.pane == agent.pane)
    assert held.state == registry.HELD
    assert held.resume_at == resets_at + GRACE
    wait_for(lambda: fake.turns_with("held until"), "the held prompt", 30, agent.screen)
    sent = fake.turns_with("held until")[0].at
    assert sent >= resets_at + GRACE
    assert [t.prompt for t in fake.since(crossed) if t.at < resets_at + GRACE] == []
    wait_for(lambda: "done: held until the reset" in agent.screen(), "the answer", 15, agent.screen)
    assert registry.active() == []
