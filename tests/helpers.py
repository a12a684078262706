"""What many test modules share: the real-shaped bodies in ``tests/fixtures``; the
installed ``claude-meter``, its bridge (``serve``) and ``cm-guard`` run as a user or a
script runs them (child processes: tests/conftest.py puts this interpreter's scripts
first on ``PATH`` and points every path at the test's temporary home); readings written
to the store; and polling for what a child process does."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from claudemeter import registry
from claudemeter.model import JSON, Snapshot, format_time, parse_time, utcnow
from claudemeter.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
#: The org of the fixtures' login (tests/fixtures/claude_json_oauth_account.json)
LOGIN_ORG = "0f6c3b2a-0000-4000-8000-00000000b001"
#: The snapshot's fields (SPEC 3), which every ``--json`` row carries; other keys
#: (``provenance``, ``pace``) come when there is something to say. Written out from the
#: SPEC, not taken from claudemeter.model's parser: the tests hold the code to it.
ROW_KEYS = frozenset(
    {
        "org_uuid",
        "browser",
        "account_email",
        "fetched_at",
        "usage",
        "overage",
        "subscription",
        "errors",
        "stale",
    }
)
T = TypeVar("T")


# --- the fixtures ---------------------------------------------------------------------


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


def statusline_input(
    five: object = 57.0,
    seven: object = 33.0,
    five_resets: object = None,
    seven_resets: object = None,
) -> JSON:
    """Claude Code's statusLine input (the fixture) with ``rate_limits`` of ``five`` and
    ``seven`` percent, resetting at ``five_resets``/``seven_resets`` (epoch seconds; by
    default 2 hours and 3 days from now: the fixture's are long past). Any value goes,
    for hostile inputs."""
    body = fixture_body("claude_code_statusline_input.json")
    now = int(time.time())
    body["rate_limits"] = {
        "five_hour": {
            "used_percentage": five,
            "resets_at": now + 7200 if five_resets is None else five_resets,
        },
        "seven_day": {
            "used_percentage": seven,
            "resets_at": now + 3 * 86400 if seven_resets is None else seven_resets,
        },
    }
    return body


# --- claude-meter as a user or a script runs it ---------------------------------------


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


def cli_out(*args: str, stdin: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """What ``claude-meter *args`` prints on stdout; fails the test, showing stderr, on a
    non-zero exit."""
    done = cli(*args, stdin=stdin, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def cli_rows(*args: str, env: Mapping[str, str] | None = None) -> list[JSON]:
    """The JSON array of objects ``claude-meter *args`` prints (``--json --cached``,
    ``top --json``, ``history --json``); fails the test on a non-zero exit."""
    rows = json.loads(cli_out(*args, env=env))
    assert isinstance(rows, list) and all(isinstance(row, dict) for row in rows), rows
    return rows


def store_usage(
    usage: JSON,
    *,
    org: str = LOGIN_ORG,
    browser: str = "Chrome",
    email: str = "ada@example.com",
    fetched_at: datetime | None = None,
) -> None:
    """Store one reading of ``usage`` (a usage body: bucket name to utilization and
    resets_at) in this test's state dir, as a source writes it, fetched now or at
    ``fetched_at``."""
    reading = Snapshot(
        org_uuid=org,
        browser=browser,
        account_email=email,
        fetched_at=fetched_at or utcnow(),
        usage=usage,
    )
    Store().put([reading])


def ingest(body: object, env: Mapping[str, str] | None = None) -> None:
    """``claude-meter ingest -`` of ``body`` (one reading or a list of them, the bridge's
    JSON, SPEC 2), as the extension's bridge stores it; fails the test on a refusal."""
    cli_out("ingest", "-", stdin=json.dumps(body), env=env)


def guard_check(*args: str) -> subprocess.CompletedProcess[str]:
    """``cm-guard --check *args``: the gate's verdict, as a script asks for it."""
    return subprocess.run(
        ["cm-guard", "--check", *args], capture_output=True, text=True, timeout=60, check=False
    )


# --- the bridge: claude-meter serve ---------------------------------------------------


def stamp(offset: float = 0.0) -> str:
    """Now plus ``offset`` seconds as the extension writes it (RFC 3339, milliseconds, Z)."""
    moment = datetime.now(timezone.utc) + timedelta(seconds=offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def snapshot(
    browser: str = "Chrome", util: float = 62.0, offset: float = 0.0, **fields: object
) -> JSON:
    """A browser's POST body for the login's account (SPEC 2): ``util`` percent of the
    5-hour bucket, fetched ``offset`` seconds from now; ``fields`` replace any key."""
    body: JSON = {
        "org_uuid": LOGIN_ORG,
        "browser": browser,
        "account_email": "ada@example.com",
        "fetched_at": stamp(offset),
        "usage": {
            "five_hour": {"utilization": util, "resets_at": "2026-11-25T16:59:59.571404+00:00"}
        },
        "overage": None,
        "subscription": None,
        "errors": [],
    }
    body.update(fields)
    return body


def reading(util: float, browser: str = "Chrome") -> JSON:
    """``browser``'s POST body with ``util`` percent of the 5-hour bucket, now, and its
    reset two hours from now."""
    resets = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    return snapshot(browser, usage={"five_hour": {"utilization": util, "resets_at": resets}})


@dataclass
class BridgeReply:
    """The bridge's answer: status, parsed JSON body (None when empty), headers."""

    status: int
    body: Any  # parsed JSON of any shape, which the tests index into as they expect it
    headers: http.client.HTTPMessage


@dataclass
class Bridge:
    """A running ``claude-meter serve``: its process, port, output files and state dir."""

    proc: subprocess.Popen[bytes]
    port: int
    out: Path
    err: Path
    state_dir: Path

    @property
    def token(self) -> str:
        """The bearer token ``serve`` wrote for the extension."""
        return (self.state_dir / "bridge.token").read_text().strip()

    def output(self) -> str:
        """All it printed so far, stdout then stderr."""
        return self.out.read_text() + self.err.read_text()

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        token: str | None = "",
        host: str | None = "",
        length: bool = True,
        headers: dict[str, str] | None = None,
    ) -> BridgeReply:
        """One raw request. ``token=""`` sends the real token, None sends none; ``host=""``
        sends the loopback Host, None sends none."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            if host is not None:
                conn.putheader("Host", host or f"127.0.0.1:{self.port}")
            if token is not None:
                conn.putheader("Authorization", f"Bearer {token or self.token}")
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            if body is not None and length:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if length else None)
            response = conn.getresponse()
            data = response.read()
            return BridgeReply(
                response.status, json.loads(data) if data else None, response.headers
            )
        finally:
            conn.close()

    def post(
        self, body: object, *, token: str | None = "", headers: dict[str, str] | None = None
    ) -> BridgeReply:
        """``body`` as JSON to ``POST /snapshots``, with ``token`` as :meth:`call` sends it."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        return self.call("POST", "/snapshots", json.dumps(body).encode(), token=token, headers=sent)

    def rss_kib(self) -> int:
        """Its resident memory (KiB), from ``/proc``."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"VmRSS:\s+(\d+)", status)
        assert found is not None, status
        return int(found.group(1))

    def threads(self) -> int:
        """How many threads it runs, from ``/proc``."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"Threads:\s+(\d+)", status)
        assert found is not None, status
        return int(found.group(1))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` unless it has exited; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def start_bridge(
    tmp_path: Path, *args: str, name: str = "serve", env: dict[str, str] | None = None
) -> Bridge:
    """``serve`` on a free port, in this test's environment or ``env`` (another host's)."""
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    env = env or dict(os.environ)
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claudemeter", "serve", "--port", "0", *args],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=env,
        )

    def listening() -> int | None:
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", out.read_text())
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            pytest.fail(f"serve exited {proc.returncode}: {err.read_text()}")
        return None

    try:
        port = wait_for(listening, what="the bridge to listen")
    except BaseException:  # a bridge that came up too late must not outlive the test
        proc.kill()
        proc.wait()
        raise
    return Bridge(proc, port, out, err, Path(env["CLAUDEMETER_STATE_DIR"]))


# --- cm-guard -------------------------------------------------------------------------


#: cm-guard options that make a test quick: poll the store every 0.2 s, 0.3 s of grace
FAST = ["--poll", "0.2", "--grace", "0.3"]
#: A child for a guard: appends a dot to the file named by its argument every 20 ms.
TICKER = (
    "import sys, time\n"
    "while True:\n"
    "    with open(sys.argv[1], 'a') as f: f.write('.')\n"
    "    time.sleep(0.02)\n"
)


def guard_bin() -> str:
    """The ``cm-guard`` beside this interpreter (the code under test)."""
    found = shutil.which("cm-guard")
    assert found, "cm-guard is not installed beside the test interpreter"
    return found


def put(
    util: float | None,
    resets_in: float | None = 3600.0,
    *,
    bucket: str = "five_hour",
    email: str = "ada@example.com",
    org: str = "org-a",
    fetched_at: datetime | None = None,
) -> datetime | None:
    """Store one reading, as the bridge would; returns the bucket's resets_at."""
    now = utcnow()
    resets = now + timedelta(seconds=resets_in) if resets_in is not None else None
    body = {"utilization": util, "resets_at": format_time(resets) if resets else None}
    store_usage({bucket: body}, org=org, email=email, fetched_at=fetched_at or now)
    # format_time keeps milliseconds: the guard sees the stored value, so must we.
    return parse_time(format_time(resets)) if resets else None


def is_stopped(pid: int) -> bool:
    """The kernel has ``pid`` stopped (state T): a guard paused it."""
    return proc_state(pid) == "T"


def is_running(pid: int) -> bool:
    """``pid`` runs, sleeps or waits on the disk: not stopped, not gone."""
    return proc_state(pid) in ("R", "S", "D")


def entry_of(pid: int) -> registry.GuardEntry | None:
    """The registry's entry of the guard ``pid``, None while it has none."""
    return next((e for e in registry.active() if e.pid == pid), None)


def child_of(guard: subprocess.Popen[str]) -> int:
    """The pid of ``guard``'s child, once its registry entry names it."""
    wait_for(lambda: (e := entry_of(guard.pid)) is not None and e.child_pid, "the guard's child")
    entry = entry_of(guard.pid)
    assert entry is not None and entry.child_pid
    return entry.child_pid


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A guard in a session of its own, off any terminal (the pytest run may have one)."""
    proc = subprocess.Popen(
        [guard_bin(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    STARTED_GUARDS.append(proc)
    return proc


def guard_run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``cm-guard *args`` to its end, in a session of its own, off any terminal."""
    return run_detached([guard_bin(), *args], timeout)


def run_detached(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``argv`` to its end with no stdin, in a session of its own, off any terminal (the
    pytest run may have one, and a guard would take it)."""
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )


def ticks(path: Path) -> int:
    """How many dots a :data:`TICKER` child has written to ``path``."""
    return path.stat().st_size if path.exists() else 0


def grows(path: Path) -> Callable[[], bool]:
    """A check for :func:`wait_for`: the ticker at ``path`` wrote more than 2 dots since now."""
    before = ticks(path)
    return lambda: ticks(path) > before + 2


#: Every guard :func:`start` made, for :func:`reap_guards`.
STARTED_GUARDS: list[subprocess.Popen[str]] = []


def reap_guards() -> None:
    """End every guard :func:`start` made, and its child (tests/conftest.py calls this
    after each test, passed or failed: one left holding, ``--fail-closed`` with no data,
    would poll forever)."""
    while STARTED_GUARDS:
        proc = STARTED_GUARDS.pop()
        if proc.poll() is None:
            entry = entry_of(proc.pid)
            proc.kill()
            if entry and entry.child_pid:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(entry.child_pid, signal.SIGKILL)
        proc.communicate(timeout=10)


# --- polling and processes ------------------------------------------------------------


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
