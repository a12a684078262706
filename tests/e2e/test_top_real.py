"""5. Who is filling it, with the real Claude Code: three agents in three tmux panes share
one account; the fake server bills each session's answers at a different number of input
tokens (1 : 2 : 3) and climbs the 5-hour bucket with every answer. Each agent's
statusLine is ``claude-meter statusline``; ``claude-meter top --json`` ranks the panes by
what they spent, each share within 5 points of the 1 : 2 : 3 the tokens were set to."""

from __future__ import annotations

from functools import partial

from claudemeter import history
from claudemeter.store import Store
from tests.claude_code import ORG, Agent, Agents, Login, meter_command
from tests.fake_messages import FakeMessages
from tests.helpers import cli_rows, wait_for

#: input tokens per answer, by project: the sessions' costs stand 1 : 2 : 3
TOKENS = {"alpha": 100_000, "beta": 200_000, "gamma": 300_000}
ROUNDS = 2


def recorded_cost(agent: Agent) -> float:
    """What the statusline has recorded of this pane's session so far (USD)."""
    account = history.recent(Store().directory).get(ORG)
    sessions = [s for s in (account.sessions.values() if account else []) if s.pane == agent.pane]
    return max((s.points[-1].cost_usd for s in sessions if s.points), default=0.0)


def spent_more(agent: Agent, before: float) -> bool:
    """The statusline has recorded more of this pane's spend than ``before`` (USD)."""
    return recorded_cost(agent) > before


def test_top_ranks_three_panes_by_their_cost(
    fake: FakeMessages, login: Login, agents: Agents
) -> None:
    fake.account.five_hour.fraction = 0.10
    fake.account.step = 0.02  # the bucket climbs with every answer
    fake.account.input_tokens.update(TOKENS)
    login.settings({"statusLine": {"type": "command", "command": meter_command("statusline")}})
    started = [agents.start(name) for name in TOKENS]
    for agent in started:
        agents.ready(agent)
    for round_ in range(ROUNDS):
        for agent in started:
            before = recorded_cost(agent)
            prompt = f"round {round_} for {agent.name}"
            agent.type(prompt)
            wait_for(partial(fake.turns_with, prompt), f"{prompt} sent", 60, agent.screen)
            wait_for(
                partial(spent_more, agent, before),
                f"{prompt}: the statusline's record",
                60,
                agent.screen,
            )
    rows = cli_rows("top", "--json")
    panes = {agent.pane: agent.name for agent in started}
    mine = [row for row in rows if row["pane"] in panes]
    assert [panes[row["pane"]] for row in mine] == ["gamma", "beta", "alpha"], rows
    total = sum(TOKENS.values())
    for row in mine:
        name = panes[row["pane"]]
        expected = 100.0 * TOKENS[name] / total
        assert abs(row["share_5h"] - expected) <= 5.0, (name, row)
        assert row["project"].endswith(f"/src/{name}")
        assert row["source"] == "statusline"
        assert row["cost_usd"] > 0
    assert mine[0]["rise_5h"] > 0
