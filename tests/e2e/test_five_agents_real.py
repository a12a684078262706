"""5. Five real agents in five panes share one account whose numbers climb with every
answer: once the store crosses the threshold each agent is held at its next safe point
(a hook), nothing reaches the server until the reset, and all five go on afterwards.

"The crossing" is the moment the store first holds the over-threshold reading: what a
gate can know. A request a gate let go just before it may still arrive after it (one
per agent at most); so every gate call is logged (pane, start, end), and no gate that
started after the crossing may let its agent go before the reset + grace.
bench/bench_hooks.py prints the same figures."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from claudemeter import registry
from tests.claude_code import Agents, Login, stored_utilization
from tests.fake_messages import WORK, FakeMessages
from tests.helpers import wait_for

POLL = 0.2
GRACE = 1.0
NAMES = ("api", "web", "docs", "cli", "infra")


def gate_calls(log: Path) -> list[tuple[str, float, float]]:
    calls = []
    for line in log.read_text().splitlines() if log.exists() else []:
        pane, start, end = line.split()
        calls.append((pane, float(start), float(end)))
    return calls


def test_five_agents_are_held_together_and_go_on_after_the_reset(
    fake: FakeMessages, login: Login, agents: Agents, tmp_path: Path
) -> None:
    login.install("--grace", f"{GRACE:g}", "--poll", f"{POLL:g}")
    log = tmp_path / "gate-calls.log"
    login.log_gate_calls(log)
    team = [agents.start(name) for name in NAMES]
    for agent in team:
        agents.ready(agent)
    panes = {a.pane for a in team}

    account = fake.account
    account.five_hour.fraction, account.step, account.tool_turns = 0.80, 0.01, 10**6
    account.five_hour.resets_at = time.time() + 30
    resets_at = int(account.five_hour.resets_at)
    for agent in team:
        agent.type(f"{WORK} in {agent.name}")

    deadline = time.monotonic() + 30
    while (stored_utilization() or 0.0) < 90.0:
        assert time.monotonic() < deadline, f"no crossing; turns: {len(fake.turns)}"
        time.sleep(0.02)
    crossing = time.time()
    assert crossing < resets_at, "the crossing came too late to see a hold"

    wait_for(
        lambda: {e.pane for e in registry.active()} >= panes,
        "all five held",
        20,
        lambda: "\n".join(a.screen() for a in team),
    )
    held = {e.pane: e for e in registry.active() if e.pane in panes}
    assert all(e.state == registry.HELD and e.resume_at == resets_at + GRACE for e in held.values())
    latency = max(e.started_at for e in held.values()) - crossing
    assert latency < 5.0, latency  # each at its next safe point, not a window later

    wait_for(lambda: time.time() >= resets_at + GRACE + 0.5, "the reset", 40)
    let_go = [c for c in gate_calls(log) if c[1] >= crossing and c[2] < resets_at + GRACE]
    assert let_go == []  # no gate that knew of the crossing let its agent go
    in_flight = Counter(t.prompt for t in fake.turns if crossing <= t.at < resets_at + GRACE)
    assert all(n == 1 for n in in_flight.values()), in_flight  # passed its gate before

    def resumed() -> set[str]:
        return {t.prompt for t in fake.since(resets_at + GRACE)}

    wait_for(lambda: len(resumed()) == 5, "all five working again", 30, lambda: f"{resumed()}")
    assert resumed() == {f"{WORK} in {name}" for name in NAMES}
    wait_for(lambda: not (panes & {e.pane for e in registry.active()}), "holds released", 10)
