"""4. The default login with the real Claude Code: started without ``CLAUDE_CONFIG_DIR``,
it keeps its ``.claude.json`` in the home dir, and a leftover ``~/.claude/.claude.json``
of another account captures none of the statusLine's readings (the issue's input)."""

from __future__ import annotations

import json
from pathlib import Path

from claudemeter.model import utcnow
from claudemeter.store import Store
from tests.claude_code import ORG, Agents, Login, claude_binary, meter_command
from tests.fake_messages import FakeMessages
from tests.helpers import wait_for
from tests.tmuxlab import Lab

LEFTOVER = {"oauthAccount": {"organizationUuid": "org-left-over", "emailAddress": "old@x.org"}}


def test_a_leftover_claude_json_of_another_account_captures_nothing(
    isolated: Path,
    fake: FakeMessages,
    lab: Lab,
) -> None:
    claude_binary()
    login = Login(isolated, fake, set_config_dir=False)
    leftover = login.config_dir / ".claude.json"
    leftover.write_text(json.dumps(LEFTOVER))
    login.settings({"statusLine": {"type": "command", "command": meter_command("statusline")}})
    fake.account.five_hour.fraction = 0.37
    agents = Agents(lab, login)
    agent = agents.start("app")
    # It got past onboarding and the trust dialog: it read ~/.claude.json, not the leftover.
    agents.ready(agent)
    agent.type("hello from the default login")

    def rows() -> list[tuple[str, float | None]]:
        return [
            (r.org_uuid, five_hour.utilization if (five_hour := r.window("five_hour")) else None)
            for r in Store().accounts(utcnow())
        ]

    wait_for(lambda: bool(rows()), "the statusline's reading", 30, agent.screen)
    assert rows() == [(ORG, 37.0)]  # one row, the login's account
    assert json.loads(leftover.read_text()) == LEFTOVER  # Claude Code never touched it
    assert "projects" in json.loads((isolated / ".claude.json").read_text())
