"""Fixtures for the end-to-end tests with the real Claude Code (tests/claude_code.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.claude_code import Agents, Login, claude_binary
from tests.fake_messages import Account, FakeMessages
from tests.tmuxlab import Lab, lab_fixture

__all__ = ["lab_fixture"]  # the `lab` fixture, imported so pytest finds it


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMessages]:
    """The fake Messages API; claudemeter's own usage requests would land here too, so a
    test can see that none was made."""
    server = FakeMessages(Account.near()).start()
    monkeypatch.setenv("CLAUDEMETER_ANTHROPIC_BASE", server.url)
    yield server
    server.stop()


@pytest.fixture
def login(isolated: Path, fake: FakeMessages) -> Login:
    claude_binary()
    return Login(isolated, fake)


@pytest.fixture
def agents(lab: Lab, login: Login) -> Agents:
    return Agents(lab, login)
