"""What many test modules share: the real-shaped bodies in ``tests/fixtures``, the
installed ``claude-meter`` and ``cm-guard`` run as a user or a script runs them (child
processes; tests/conftest.py puts this interpreter's scripts first on ``PATH`` and points
every path at the test's temporary home), and polling for what a child process does."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from claudemeter.model import JSON, Snapshot

FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")


def fixture_text(name: str) -> str:
    """The text of ``tests/fixtures/<name>``."""
    return (FIXTURES / name).read_text()


def fixture(name: str) -> object:
    """A fixture's JSON as parsed, whatever its shape (bodies sent on as they are)."""
    return json.loads(fixture_text(name))


def fixture_body(name: str) -> JSON:
    """A fixture holding one JSON object, parsed; a fresh copy on every call."""
    body = fixture(name)
    assert isinstance(body, dict), f"{name} is not a JSON object"
    return body


def fixture_bodies(name: str) -> list[JSON]:
    """A fixture holding a JSON array of objects (bridge POSTs), parsed."""
    bodies = fixture(name)
    assert isinstance(bodies, list), f"{name} is not a JSON array"
    assert all(isinstance(body, dict) for body in bodies), f"{name} holds a non-object"
    return bodies


def cli(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``claude-meter *args`` with ``stdin`` as its input; ``env`` is added to this
    process's environment. Never raises on the exit code: the caller checks it."""
    return subprocess.run(
        ["claude-meter", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env} if env is not None else None,
    )


def cli_rows(*args: str, env: Mapping[str, str] | None = None) -> list[JSON]:
    """The JSON array of objects ``claude-meter *args`` prints (``--json --cached``,
    ``top --json``, ``history --json``); fails the test on a non-zero exit."""
    done = cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert isinstance(rows, list) and all(isinstance(row, dict) for row in rows), rows
    return rows


def guard_check(*args: str) -> subprocess.CompletedProcess[str]:
    """``cm-guard --check *args``: the gate's verdict, as a script asks for it."""
    return subprocess.run(
        ["cm-guard", "--check", *args], capture_output=True, text=True, timeout=60, check=False
    )


def wait_for(
    check: Callable[[], T | None], what: str, seconds: float = 20, show: Callable[[], str] = str
) -> T:
    """Poll ``check`` every 20 ms until it returns something truthy, and return that; on
    time-out fail saying ``what`` never happened, with ``show()`` (a screen, a log)."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{show()}")
        time.sleep(0.02)


def proc_state(pid: int) -> str | None:
    """The kernel's state letter for ``pid`` (R, S, D, T, Z…) from ``/proc``; None once
    the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def alive(pid: int) -> bool:
    """``pid`` runs: it exists and is no zombie (one waiting for a parent that reaps
    slowly counts as gone)."""
    return proc_state(pid) not in (None, "Z")


def utilization(row: Snapshot, bucket: str) -> float | None:
    """``row``'s utilization (percent 0-100) of ``bucket``; None when the row has no
    such window or the window no number."""
    window = row.window(bucket)
    return window.utilization if window is not None else None
