"""Golden files of `claude-meter status` and `claude-meter show` for every state a user
meets: fresh, stale, login expired, no data, several accounts, paused guards.

Each state is built through the real entry points (`ingest`, `refresh` against an
expired login, the guard registry) and rendered by the real command with a pinned clock
(CLAUDEMETER_NOW) and TZ=UTC. Regenerate with UPDATE_GOLDEN=1 and read the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from claudemeter import registry
from claudemeter.procs import read_proc
from tests.helpers import (
    LOGIN_ORG,
    cli,
    fixture,
    fixture_bodies,
    fixture_body,
    fixture_text,
    ingest,
)

GOLDEN = Path(__file__).parent / "golden"
NOW = "2026-11-25T12:02:00.000Z"


def snapshot(fetched_at: str, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "org_uuid": LOGIN_ORG,
        "browser": "Claude Code",
        "account_email": "ada@example.com",
        "fetched_at": fetched_at,
        "usage": fixture("oauth_usage_basic.json"),
        "errors": [],
    }
    body.update(changes)
    return body


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every claude-meter call here, writers included, runs at NOW: the store drops
    history older than its horizon by its own clock, so a wall clock would age the
    fixtures out and the goldens would depend on the date."""
    monkeypatch.setenv("CLAUDEMETER_NOW", NOW)


def expire_login(home: Path) -> None:
    """Claude Code's login, expired: `refresh` books it as `login` without a request."""
    claude = home / ".claude"
    claude.mkdir(exist_ok=True)
    creds = fixture_body("claude_code_credentials.json")
    creds["claudeAiOauth"]["expiresAt"] = 1_700_000_000_000  # 2023-11-14
    (claude / ".credentials.json").write_text(json.dumps(creds))
    (home / ".claude.json").write_text(fixture_text("claude_json_oauth_account.json"))
    cli("refresh")


def fresh(home: Path, state: Path) -> None:
    ingest(snapshot("2026-11-25T12:01:30.000Z"))


def stale(home: Path, state: Path) -> None:
    ingest(snapshot("2026-11-25T11:17:00.000Z"))


def login_expired(home: Path, state: Path) -> None:
    ingest(snapshot("2026-11-25T10:40:00.000Z"))
    expire_login(home)


def no_data(home: Path, state: Path) -> None:
    """Nothing configured at all."""


def no_data_login_expired(home: Path, state: Path) -> None:
    expire_login(home)


def several_accounts(home: Path, state: Path) -> None:
    ingest(fixture_bodies("snapshots_two_browsers_two_accounts.json"))


def paused(home: Path, state: Path) -> None:
    ingest(
        snapshot(
            "2026-11-25T12:01:30.000Z",
            usage={
                **fixture_body("oauth_usage_basic.json"),
                "five_hour": {"utilization": 93.0, "resets_at": "2026-11-25T16:59:59.571404+00:00"},
            },
        )
    )
    resume = datetime(2026, 11, 25, 17, 0, 29, tzinfo=timezone.utc).timestamp()
    # Guarded scripts: a long venv path first, what tells the agents apart at the end.
    python = "/home/ada/src/claudemeter/.venv/bin/python3 -m claudemeter.demo agent"
    macos_tmp = "/var/folders/7x/k2c9vz4s1qg0lq8m5t7dk3w40000gn/T/claudemeter-demo-q8x2m0ab"
    # A guard is a live pid with its start time: two real processes stand in for two
    # of the guards (pid 1 or a parent would never count).
    helpers = [subprocess.Popen(["sleep", "600"]) for _ in range(2)]
    _HELPERS.extend(helpers)
    for pid, pane, command in (
        (os.getpid(), "%3", "claude -p 'fix the flaky test'"),
        (helpers[0].pid, "%5", f"{python} 1 /tmp/claudemeter-demo-q8x2m0ab 1"),
        (helpers[1].pid, "%7", f"{python} 2 {macos_tmp} 1"),
    ):
        found = read_proc(pid)
        assert found is not None
        registry.register(
            registry.GuardEntry(
                pid=pid,
                command=command,
                account="ada@example.com",
                state=registry.PAUSED,
                pane=pane,
                resume_at=resume,
                started_at=float(pane[1:]),
                start=found.start,
            ),
            state,
        )


_HELPERS: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _end_helpers() -> Iterator[None]:
    """The stand-in guards of :func:`paused` end with their test."""
    yield
    while _HELPERS:
        helper = _HELPERS.pop()
        helper.kill()
        helper.wait()


def on_pace_for_the_wall(home: Path, state: Path) -> None:
    """Readings every ten minutes, climbing ~48 %/h: 100 % comes long before the reset."""
    for minute, used in ((20, 40.0), (30, 48.0), (40, 56.0), (50, 64.0), (60, 72.0), (61, 73.0)):
        at = f"2026-11-25T{11 + minute // 60:02d}:{minute % 60:02d}:30.000Z"
        ingest(
            snapshot(
                at,
                usage={
                    **fixture_body("oauth_usage_basic.json"),
                    "five_hour": {
                        "utilization": used,
                        "resets_at": "2026-11-25T16:59:59.571404+00:00",
                    },
                },
            )
        )


STATES: dict[str, Callable[[Path, Path], None]] = {
    "fresh": fresh,
    "stale": stale,
    "login_expired": login_expired,
    "no_data": no_data,
    "no_data_login_expired": no_data_login_expired,
    "several_accounts": several_accounts,
    "paused": paused,
    "on_pace": on_pace_for_the_wall,
}


def run(*args: str) -> str:
    env = {**os.environ, "CLAUDEMETER_NOW": NOW, "TZ": "UTC"}
    env.pop("NO_COLOR", None)
    done = subprocess.run(
        ["claude-meter", *args], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.mark.parametrize("name", list(STATES))
def test_golden(name: str, isolated: Path, state_dir: Path) -> None:
    STATES[name](isolated, state_dir)
    for command in ("status", "show"):
        got = run(command)
        path = GOLDEN / f"{command}_{name}.txt"
        if os.environ.get("UPDATE_GOLDEN"):
            path.parent.mkdir(exist_ok=True)
            path.write_text(got)
        assert path.exists(), f"{path.name} missing: run with UPDATE_GOLDEN=1 and review it"
        assert got == path.read_text(), f"{command} output for {name} changed"


def test_show_fits_80_columns_and_has_no_colour_off_a_terminal(
    isolated: Path, state_dir: Path
) -> None:
    several_accounts(isolated, state_dir)
    paused(isolated, state_dir)
    out = run("show")
    assert "\033[" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
