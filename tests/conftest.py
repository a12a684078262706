"""Every test runs in a temporary HOME with every claudemeter path and URL pointed at
temporary or loopback places: nothing here may touch the user's real files, tmux
server or the internet."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, reap_guards
from tests.redislab import RedisServer, start_redis
from tests.upstream import FakeUpstream


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home: state, config and Claude Code dirs all inside ``tmp_path``."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local/state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("CLAUDEMETER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLAUDEMETER_CONFIG_DIR", str(tmp_path / "config"))
    # Claude Code's default login (~/.claude, ~/.claude.json): CLAUDE_CONFIG_DIR unset,
    # as most users run it (setting it, even to ~/.claude, moves .claude.json).
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("CLAUDE_SECURESTORAGE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("CLAUDEMETER_CLAUDE_CONFIG_DIRS", raising=False)
    # Nothing listens here: a test that forgets its fake upstream fails fast, offline.
    monkeypatch.setenv("CLAUDEMETER_ANTHROPIC_BASE", "http://127.0.0.1:9")
    monkeypatch.setenv("CLAUDEMETER_CLAUDE_AI_BASE", "http://127.0.0.1:9")
    monkeypatch.setenv("CLAUDEMETER_BRIDGE", "127.0.0.1:9")
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.delenv("TMUX_PANE", raising=False)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    # Subprocesses must run the code under test: the scripts beside this interpreter.
    bindir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ.get("PATH", ""))
    return home


@pytest.fixture(autouse=True)
def guards_reaped(isolated: Path) -> Iterator[None]:
    """Every cm-guard a test started with ``tests.helpers.start`` is gone after it,
    passed or failed (and before the isolated environment is undone)."""
    yield
    reap_guards()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def claude_dir(isolated: Path) -> Path:
    """A Claude Code config dir logged in as the fixture account."""
    directory = isolated / ".claude"
    directory.mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "claude_code_credentials.json", directory / ".credentials.json")
    shutil.copy(FIXTURES / "claude_json_oauth_account.json", isolated / ".claude.json")
    return directory


@pytest.fixture
def fleet_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on loopback for the fleet's shared store (tests/redislab.py)."""
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    """A fake api.anthropic.com and claude.ai on loopback, serving the fixtures."""
    from tests.helpers import fixture
    from tests.upstream import Reply

    server = FakeUpstream()
    server.routes["/api/oauth/usage"] = Reply(200, fixture("oauth_usage_basic.json"))
    server.routes["/api/oauth/profile"] = Reply(200, fixture("oauth_profile.json"))
    server.start()
    monkeypatch.setenv("CLAUDEMETER_ANTHROPIC_BASE", server.url)
    monkeypatch.setenv("CLAUDEMETER_CLAUDE_AI_BASE", server.url)
    yield server
    server.stop()
