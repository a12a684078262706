"""4. Wall hit and recovery with the real Claude Code: the server answers 429, the
``StopFailure`` hook records each session with its pane, and at the (near) reset
``claude-meter resume`` types ``continue`` into the three panes, staggered as asked, and
confirms each one (its next request reaches the server)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

from claudemeter import stopped
from tests.claude_code import ORG, Agents, Login, stored_window
from tests.fake_messages import FakeMessages
from tests.helpers import wait_for

GRACE = 1.0
STAGGER = 3.0


def five_hour_reset() -> float | None:
    window = stored_window()
    return window.resets_at.timestamp() if window and window.resets_at else None


def test_three_agents_hit_the_wall_and_are_resumed_in_stages(
    fake: FakeMessages, login: Login, agents: Agents
) -> None:
    login.install("--grace", f"{GRACE:g}", "--poll", "0.2")
    team = [agents.start(name) for name in ("api", "web", "docs")]
    for agent in team:
        agents.ready(agent)

    # The account's window resets soon; one answer tells the store so.
    resets_at = time.time() + 30
    fake.account.five_hour.resets_at = resets_at
    fake.account.five_hour.fraction = 0.6
    team[0].type("what is the time")
    wait_for(lambda: five_hour_reset() == int(resets_at), "the near reset in the store", 15)

    # Then the wall: every request is refused until the reset.
    fake.account.five_hour.fraction = 1.0
    fake.account.reject_until = resets_at
    # All three meet the wall: without this, the first 429's headers reach the store
    # (100 %) through its statusLine and the hooks gate rightly holds a later prompt
    # until the reset, so that agent never hits the wall (seen: 'work in docs' got a 200).
    fake.account.reject_together = len(team)
    for agent in team:
        agent.type(f"work in {agent.name}")
    wait_for(lambda: len(stopped.all_records()) == 3, "three StopFailure records", 40,
             lambda: "\n".join(a.screen() for a in team))  # fmt: skip
    records = {r.pane: r for r in stopped.all_records()}
    assert set(records) == {a.pane for a in team}
    for agent in team:
        record = records[agent.pane]
        assert record.cwd == str(agent.cwd)
        assert record.org_uuid == ORG
        assert record.agent_pid == agent.pid()  # the claude in that pane, nothing else
    assert all(t.status == 429 for t in fake.turns_with("work in"))

    meter = str(Path(sys.executable).parent / "claude-meter")
    done = subprocess.run(
        [meter, "resume", "--grace", f"{GRACE:g}", "--stagger", f"{STAGGER:g}", "--confirm", "20"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("resumed, confirmed") == 3, done.stdout
    # confirmed = its UserPromptSubmit hook ran; the request itself follows it
    wait_for(lambda: len(fake.turns_with("continue")) == 3, "three resumed requests", 15)
    resumed = sorted(t.at for t in fake.turns_with("continue"))
    assert all(t.status == 200 for t in fake.turns_with("continue"))
    assert resumed[0] >= int(resets_at) + GRACE
    gaps = [b - a for a, b in itertools.pairwise(resumed)]
    assert min(gaps) >= STAGGER - 1.0, gaps  # typed STAGGER apart; the client adds jitter
    assert [t for t in fake.turns if int(resets_at) <= t.at < int(resets_at) + GRACE] == []
    assert stopped.all_records() == []  # confirmed ones are done with
