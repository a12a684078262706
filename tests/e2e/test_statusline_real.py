"""1. ``claude-meter statusline`` as the real Claude Code's statusLine: after one prompt
the store holds the fake server's 5-hour and 7-day numbers for the login's account, and
no request went to the usage endpoint."""

from __future__ import annotations

from claudemeter.model import utcnow
from claudemeter.store import Store
from tests.claude_code import ORG, Agents, Login, meter_command
from tests.fake_messages import FakeMessages
from tests.helpers import wait_for


def test_one_prompt_stores_the_servers_numbers(
    fake: FakeMessages, login: Login, agents: Agents
) -> None:
    fake.account.five_hour.fraction = 0.42
    fake.account.seven_day.fraction = 0.17
    login.settings({"statusLine": {"type": "command", "command": meter_command("statusline")}})
    agent = agents.start("app")
    agents.ready(agent)
    agent.type("hello from the test")

    def stored() -> dict[str, float | None]:
        rows = [r for r in Store().accounts(utcnow()) if r.org_uuid == ORG]
        if not rows:
            return {}
        return {name: w.utilization for name, w in rows[0].windows().items()}

    wait_for(
        lambda: stored().get("seven_day") is not None,
        "the statusline's reading",
        30,
        lambda: agent.screen() + f"\nstore: {stored()}",
    )
    assert stored()["five_hour"] == 42.0
    assert stored()["seven_day"] == 17.0
    row = next(r for r in Store().accounts(utcnow()) if r.org_uuid == ORG)
    assert row.account_email == "agents@example.com"
    five_hour = row.window("five_hour")
    assert five_hour is not None and five_hour.resets_at is not None
    assert five_hour.resets_at.timestamp() == int(fake.account.five_hour.resets_at)
    assert len(fake.turns_with("hello from the test")) == 1
    assert [r.path for r in fake.other_requests()] == []  # no usage request, by anyone
    # our line, in Claude Code's own bar (redrawn a moment after the store was written)
    wait_for(lambda: "5h 42%" in agent.screen(), "our line in the bar", 10, agent.screen)
