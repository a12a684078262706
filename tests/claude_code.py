"""The real Claude Code in tests: the pinned client, a temporary login, agents in tmux.

The client is ``@anthropic-ai/claude-code`` at the version ``tests/npm/package.json``
pins (``.ci/run`` installs it with ``npm ci``; a test run without it installs it on
first use). It runs with a temporary HOME and config dir, no login and no internet,
against :class:`tests.fake_messages.FakeMessages` on loopback (FIELD-NOTES "Claude Code
itself, in tests"): ``CLAUDE_CODE_OAUTH_TOKEN`` puts it in subscriber mode, so its
statusLine carries the fake's rate limits, and its hooks fire as for a user.

:class:`Agents` starts interactive ``claude`` sessions, one per tmux window of a private
server (tests/tmuxlab.py), and types prompts into them as a person would.
"""

from __future__ import annotations

import fcntl
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from claudemeter.model import Window, utcnow
from claudemeter.store import Store
from tests.fake_messages import READ_ME, FakeMessages
from tests.helpers import wait_for
from tests.tmuxlab import Lab, TmuxServer

NPM_DIR = Path(__file__).resolve().parent / "npm"
#: The native executable, from the platform's optional dependency (FIELD-NOTES): it does
#: not depend on the wrapper package's postinstall having copied it into place.
CLAUDE = NPM_DIR / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64" / "claude"
#: The login every agent shares (what ``.claude.json``'s ``oauthAccount`` says).
ORG = "7b0e3c55-0000-4000-8000-00000000c0de"
EMAIL = "agents@example.com"
#: The TUI's input line once it is ready for a prompt.
PROMPT = "❯"


def stored_window(bucket: str = "five_hour") -> Window | None:
    """The agents' account's ``bucket`` as the store folds it now; None before a reading."""
    rows = [r for r in Store().accounts(utcnow()) if r.org_uuid == ORG]
    return rows[0].window(bucket) if rows else None


def stored_utilization(bucket: str = "five_hour") -> float | None:
    """The agents' account's ``bucket`` utilization (percent) in the store now, if any."""
    window = stored_window(bucket)
    return window.utilization if window else None


def version() -> str:
    body = json.loads((NPM_DIR / "package.json").read_text())
    return str(body["dependencies"]["@anthropic-ai/claude-code"])


def claude_binary() -> Path:
    """The pinned ``claude``; installed from the npm registry on first use (as
    ``.ci/run`` does), never skipped: a missing client is a failed test."""
    if not CLAUDE.exists():
        with open(NPM_DIR / ".install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not CLAUDE.exists():
                done = subprocess.run(
                    ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                    cwd=NPM_DIR,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                if done.returncode != 0 or not CLAUDE.exists():
                    pytest.fail(f"cannot install Claude Code {version()}: {done.stderr[-500:]}")
    return CLAUDE


def meter_command(*args: str) -> str:
    """``claude-meter ARGS`` by absolute path, as install-statusline/install-hooks write it."""
    script = Path(sys.executable).parent / "claude-meter"
    return shlex.join([str(script), *args])


@dataclass
class Login:
    """A temporary Claude Code login: its config dir, ``.claude.json`` and settings."""

    home: Path
    fake: FakeMessages
    #: False: the default login, started without CLAUDE_CONFIG_DIR (~/.claude.json).
    set_config_dir: bool = True
    config_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config_dir = self.home / ".claude"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self._write_claude_json(lambda body: None)

    @property
    def claude_json(self) -> Path:
        # With CLAUDE_CONFIG_DIR set (env() below) Claude Code keeps it inside that dir;
        # without it, in the home dir (never ~/.claude/.claude.json).
        return (self.config_dir if self.set_config_dir else self.home) / ".claude.json"

    def _write_claude_json(self, change: Callable[[dict[str, Any]], None]) -> None:
        try:
            body = json.loads(self.claude_json.read_text())
        except FileNotFoundError:
            body = {
                "hasCompletedOnboarding": True,
                "projects": {},
                "oauthAccount": {
                    "accountUuid": "1d2c3b4a-0000-4000-8000-00000000acc7",
                    "emailAddress": EMAIL,
                    "organizationUuid": ORG,
                    "displayName": "Agents",
                },
            }
        change(body)
        self.claude_json.write_text(json.dumps(body, indent=2))

    def project(self, name: str) -> Path:
        """A working directory the client trusts, with a file its tool calls read."""
        cwd = self.home / "src" / name
        cwd.mkdir(parents=True, exist_ok=True)
        (cwd / READ_ME).write_text(f"notes of {name}\n")

        def trust(body: dict[str, Any]) -> None:
            body.setdefault("projects", {})[str(cwd)] = {"hasTrustDialogAccepted": True}

        self._write_claude_json(trust)
        return cwd

    def install(self, *hook_options: str) -> None:
        """What a user runs: ``install-statusline``, and ``install-hooks`` with these
        gate options (none: no hooks)."""
        meter = str(Path(sys.executable).parent / "claude-meter")
        commands = [[meter, "install-statusline"]]
        if hook_options:
            commands.append([meter, "install-hooks", *hook_options])
        for argv in commands:
            subprocess.run(argv, check=True, capture_output=True, timeout=30)

    def log_gate_calls(self, log: Path) -> None:
        """Wrap each installed ``hook gate`` command so that every call appends
        ``PANE START END`` (epoch seconds) to ``log``: when a gate decided and when it let
        the agent go. The gate itself runs unchanged."""
        path = self.config_dir / "settings.json"
        body = json.loads(path.read_text())
        for groups in body["hooks"].values():
            for group in groups:
                for hook in group["hooks"]:
                    if " hook gate" in hook["command"]:
                        hook["command"] = (
                            f"start=$(date +%s.%N); {hook['command']}; rc=$?;"
                            f' echo "$TMUX_PANE $start $(date +%s.%N)" >> {shlex.quote(str(log))};'
                            " exit $rc"
                        )
        path.write_text(json.dumps(body, indent=2))

    def settings(self, body: dict[str, Any]) -> Path:
        path = self.config_dir / "settings.json"
        path.write_text(json.dumps(body, indent=2))
        return path

    def env(self) -> dict[str, str]:
        """What the client needs besides the test's environment (conftest's HOME,
        CLAUDE_CONFIG_DIR and CLAUDEMETER_* already point at temporary places)."""
        return {
            "ANTHROPIC_BASE_URL": self.fake.url,
            "CLAUDE_CODE_OAUTH_TOKEN": "fake-token-for-loopback",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            **({"CLAUDE_CONFIG_DIR": str(self.config_dir)} if self.set_config_dir else {}),
        }


@dataclass
class Agent:
    """One interactive ``claude`` in its own tmux window."""

    server: TmuxServer
    name: str
    pane: str  # "%3"
    cwd: Path

    def screen(self) -> str:
        return "\n".join(self.server.capture(self.pane))

    def at_prompt(self) -> bool:
        """The TUI draws its input line (``❯``) once it takes prompts."""
        return any(line.startswith(PROMPT) for line in self.server.capture(self.pane))

    def type(self, text: str) -> None:
        """Type a prompt and press Enter, as separate keys (as a person does)."""
        self.server.cmd("send-keys", "-t", self.pane, "-l", text)
        time.sleep(0.3)  # the TUI debounces pasted text; Enter must come after it
        self.server.cmd("send-keys", "-t", self.pane, "Enter")

    def pid(self) -> int:
        return int(self.server.cmd("display-message", "-p", "-t", self.pane, "#{pane_pid}"))


class Agents:
    """Interactive Claude Code sessions in one private tmux server."""

    def __init__(self, lab: Lab, login: Login, config: str = "") -> None:
        self.login = login
        self.server = lab.server("agents", config)
        self.started: list[Agent] = []

    def start(self, name: str, wrapper: list[str] | None = None) -> Agent:
        cwd = self.login.project(name)
        argv = [*(wrapper or []), str(claude_binary())]
        env_flags = [f"-e{key}={value}" for key, value in self.login.env().items()]
        verb = "new-window" if self.started else "new-session"
        target = ["-t", "agents"] if self.started else ["-s", "agents", "-x", "160", "-y", "40"]
        pane = self.server.cmd(
            verb,
            "-d",
            *target,
            "-n",
            name,
            "-c",
            str(cwd),
            "-P",
            "-F",
            "#{pane_id}",
            *env_flags,
            shlex.join(argv),
        ).strip()
        self.server.cmd("set-option", "-w", "-t", pane, "remain-on-exit", "on")
        agent = Agent(self.server, name, pane, cwd)
        self.started.append(agent)
        return agent

    def ready(self, agent: Agent, seconds: float = 60) -> None:
        wait_for(agent.at_prompt, f"{agent.name} ready", seconds, agent.screen)

    def __iter__(self) -> Iterator[Agent]:
        return iter(self.started)
