"""The bridge as users and attackers meet it: the real ``claude-meter serve`` process on a
loopback port, spoken to with raw http.client requests (so a test can send a bad Host,
a web page's Origin or no length at all)."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claudemeter.bridge import MAX_BODY, MAX_CONNECTIONS
from tests.helpers import (
    LOGIN_ORG,
    Bridge,
    cli,
    cli_rows,
    fixture,
    fixture_bodies,
    snapshot,
    stamp,
    start_bridge,
    wait_for,
)
from tests.upstream import FakeUpstream


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    running = start_bridge(tmp_path)
    yield running
    if running.proc.poll() is None:
        running.proc.kill()
        running.proc.wait()


# --- the API ---------------------------------------------------------------------------


def test_health_needs_no_token_and_a_post_lands(bridge: Bridge) -> None:
    health = bridge.call("GET", "/healthz", token=None).body
    assert health["ok"] is True and len(health["store"]) == 12
    assert str(bridge.state_dir) not in json.dumps(health)  # names the store, shows no path
    posted = fixture_bodies("snapshots_two_browsers_two_accounts.json")
    for item in posted:
        item["fetched_at"] = stamp()
    reply = bridge.post(posted)
    assert (reply.status, reply.body) == (200, {"ok": True, "accepted": 4})
    assert reply.headers["Content-Type"].startswith("application/json")
    rows = cli_rows("--json", "--cached")
    assert [(r["org_uuid"], r["browser"]) for r in rows] == [
        (LOGIN_ORG, "Chrome, Arc, Brave"),
        ("9a8b7c6d-0000-4000-8000-00000000c002", "Chrome"),
    ]
    served = bridge.call("GET", "/snapshots")
    assert served.status == 200
    assert [(r["org_uuid"], r["browser"], r["usage"]) for r in served.body] == [
        (r["org_uuid"], r["browser"], r["usage"]) for r in rows
    ]


def test_one_snapshot_object_is_accepted_too(bridge: Bridge) -> None:
    reply = bridge.post(snapshot(util=12.5))
    assert reply.body == {"ok": True, "accepted": 1}
    assert cli_rows("--json", "--cached")[0]["usage"]["five_hour"]["utilization"] == 12.5


def test_an_in_band_error_posted_after_a_good_reading_keeps_it(bridge: Bridge) -> None:
    """Issue 10: a browser that posts claude.ai's 200-with-an-error body as its usage
    records an error; the good 95 % stays (it was replaced, and the status said `?`)."""
    good = snapshot(util=95.0)
    good["usage"]["five_hour"]["resets_at"] = stamp(3600)
    assert bridge.post(good).body == {"ok": True, "accepted": 1}
    failed = snapshot(offset=1.0, usage=fixture("oauth_usage_in_band_error.json"))
    assert bridge.post(failed).body == {"ok": True, "accepted": 1}
    (row,) = cli_rows("--json", "--cached")
    assert row["usage"]["five_hour"]["utilization"] == 95.0
    assert any("rate_limit_error" in e for e in row["errors"])


JSON_CT = {"Content-Type": "application/json"}
GOOD = json.dumps(snapshot()).encode()

# (name, method, path, body, call options, status, words the error must contain)
REFUSALS: list[tuple[str, str, str, bytes | None, dict[str, Any], int, str]] = [
    (
        "truncated JSON",
        "POST",
        "/snapshots",
        b'{"org_uuid": ',
        {"headers": JSON_CT},
        400,
        "bad JSON",
    ),
    ("not UTF-8", "POST", "/snapshots", b"\xff\xfe{}", {"headers": JSON_CT}, 400, "UTF-8"),
    ("NaN", "POST", "/snapshots", b"NaN", {"headers": JSON_CT}, 400, "bad JSON"),
    (
        "nested too deep",
        "POST",
        "/snapshots",
        b"[" * 200_000,
        {"headers": JSON_CT},
        422,  # SPEC 6: nesting too deep to read back is a 422, named
        "nested deeper",
    ),
    (
        "bad Content-Length",
        "POST",
        "/snapshots",
        None,
        {"headers": {**JSON_CT, "Content-Length": "-5"}},
        400,
        "Content-Length",
    ),
    (
        "non-ASCII digit length",
        "POST",
        "/snapshots",
        None,
        {"headers": {**JSON_CT, "Content-Length": "\u00b2"}},
        400,
        "Content-Length",
    ),
    (
        "no token",
        "POST",
        "/snapshots",
        GOOD,
        {"headers": JSON_CT, "token": None},
        401,
        "missing bearer token",
    ),
    (
        "wrong token",
        "POST",
        "/snapshots",
        GOOD,
        {"headers": JSON_CT, "token": "x" * 43},
        401,
        "wrong token",
    ),
    (
        "basic auth",
        "POST",
        "/snapshots",
        GOOD,
        {"headers": {**JSON_CT, "Authorization": "Basic eDp5"}, "token": None},
        401,
        "missing bearer token",
    ),
    ("read without token", "GET", "/snapshots", None, {"token": None}, 401, "pair"),
    (
        "rebinding Host",
        "POST",
        "/snapshots",
        GOOD,
        {"headers": JSON_CT, "host": "evil.example:63762"},
        403,
        "loopback",
    ),
    (
        "look-alike Host",
        "GET",
        "/healthz",
        None,
        {"host": "127.0.0.1.evil.example"},
        403,
        "loopback",
    ),
    ("no Host", "POST", "/snapshots", GOOD, {"headers": JSON_CT, "host": None}, 403, "loopback"),
    (
        "web page Origin",
        "POST",
        "/snapshots",
        GOOD,
        {"headers": {**JSON_CT, "Origin": "https://claude.ai"}},
        403,
        "not a browser extension",
    ),
    (
        "null Origin",
        "POST",
        "/snapshots",
        GOOD,
        {"headers": {**JSON_CT, "Origin": "null"}},
        403,
        "not a browser extension",
    ),
    ("unknown path", "GET", "/nope", None, {}, 404, "/snapshots"),
    ("path below", "POST", "/snapshots/1", GOOD, {"headers": JSON_CT}, 404, "no such"),
    ("PUT", "PUT", "/snapshots", GOOD, {"headers": JSON_CT}, 405, "GET, POST"),
    ("DELETE", "DELETE", "/snapshots", None, {}, 405, "not allowed"),
    ("POST health", "POST", "/healthz", GOOD, {"headers": JSON_CT}, 405, "GET"),
    ("unknown method", "BREW", "/snapshots", None, {}, 405, "not allowed"),
    (
        "no length",
        "POST",
        "/snapshots",
        GOOD,
        {"headers": JSON_CT, "length": False},
        411,
        "Content-Length",
    ),
    (
        "chunked",
        "POST",
        "/snapshots",
        None,
        {"headers": {**JSON_CT, "Transfer-Encoding": "chunked"}},
        411,
        "Content-Length",
    ),
    (
        "too big",
        "POST",
        "/snapshots",
        None,
        {"headers": {**JSON_CT, "Content-Length": str(MAX_BODY + 1)}},
        413,
        "256 KiB",
    ),
    (
        "text/plain",
        "POST",
        "/snapshots",
        GOOD,
        {"headers": {"Content-Type": "text/plain"}},
        415,
        "application/json",
    ),
    ("no Content-Type", "POST", "/snapshots", GOOD, {}, 415, "application/json"),
    (
        "string percent",
        "POST",
        "/snapshots",
        json.dumps(snapshot(usage={"five_hour": {"utilization": "62"}})).encode(),
        {"headers": JSON_CT},
        422,
        "usage.five_hour.utilization",
    ),
    (
        "second item without browser",
        "POST",
        "/snapshots",
        json.dumps([snapshot(), {**snapshot(), "browser": ""}]).encode(),
        {"headers": JSON_CT},
        422,
        "[1].browser",
    ),
    (
        "bad time",
        "POST",
        "/snapshots",
        json.dumps(snapshot(fetched_at="noon")).encode(),
        {"headers": JSON_CT},
        422,
        "fetched_at",
    ),
    ("empty list", "POST", "/snapshots", b"[]", {"headers": JSON_CT}, 422, "snapshots"),
]


def test_every_refusal_is_json_and_stores_nothing(bridge: Bridge) -> None:
    for name, method, path, body, options, status, words in REFUSALS:
        reply = bridge.call(method, path, body, **options)
        assert reply.status == status, f"{name}: got {reply.status} {reply.body}"
        assert reply.headers["Content-Type"].startswith("application/json"), name
        assert reply.body["ok"] is False, name
        assert words in reply.body["error"], f"{name}: {reply.body['error']!r}"
    assert not (bridge.state_dir / "state.json").exists(), "a refusal wrote the store"
    assert cli_rows("--json", "--cached") == []
    assert bridge.proc.poll() is None


def test_extension_origins_and_plain_clients_are_allowed(bridge: Bridge) -> None:
    for origin, browser in [
        ("chrome-extension://abcdefghijklmnop", "Chrome"),
        ("moz-extension://0b1c2d3e-aaaa", "Firefox"),
    ]:
        reply = bridge.post(snapshot(browser), headers={"Origin": origin})
        assert reply.status == 200, reply.body
    assert bridge.call("GET", "/healthz", token=None, host="localhost").status == 200
    assert cli_rows("--json", "--cached")[0]["browser"] == "Chrome, Firefox"


def test_two_browsers_posting_at_once_fold_into_one_row(bridge: Bridge) -> None:
    assert bridge.post(snapshot("Chrome", util=1.0, offset=-60)).status == 200
    statuses: list[int] = []
    rounds = 15

    def browse(name: str, start: float) -> None:
        for i in range(rounds):
            util = start + i
            reply = bridge.post(snapshot(name, util=util, offset=-30 + util / 10))
            statuses.append(reply.status)

    workers = [
        threading.Thread(target=browse, args=("Chrome", 10.0)),
        threading.Thread(target=browse, args=("Arc", 50.0)),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert statuses == [200] * (2 * rounds)
    rows = cli_rows("--json", "--cached")
    assert len(rows) == 1
    assert rows[0]["browser"] == "Chrome, Arc"
    # The newest reading wins: Arc's last one (50 + 14), nothing lost to a race.
    assert rows[0]["usage"]["five_hour"]["utilization"] == 64.0
    state = json.loads((bridge.state_dir / "state.json").read_text())
    by_browser = {row["browser"]: row["usage"]["five_hour"]["utilization"] for row in state["rows"]}
    assert by_browser == {"Chrome": 24.0, "Arc": 64.0}


# --- floods and slow clients -----------------------------------------------------------


def test_a_flood_of_bad_requests_then_a_good_post_lands(bridge: Bridge) -> None:
    assert bridge.call("GET", "/healthz", token=None).status == 200
    rss_before = bridge.rss_kib()
    bad = [
        lambda: bridge.post(snapshot(), token="y" * 43),
        lambda: bridge.call("POST", "/snapshots", b"{nope", headers=JSON_CT),
        lambda: bridge.call("GET", "/healthz", host="attacker.example"),
        lambda: bridge.call(
            "POST", "/snapshots", None, headers={**JSON_CT, "Content-Length": str(10 * MAX_BODY)}
        ),
        lambda: bridge.call("GET", "/nothing-here"),
    ]
    seen: list[int] = []

    def flood(offset: int) -> None:
        for i in range(250):
            seen.append(bad[(i + offset) % len(bad)]().status)

    workers = [threading.Thread(target=flood, args=(n,)) for n in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(seen) == 2000
    assert set(seen) <= {401, 400, 403, 413, 404, 503}, set(seen)
    assert bridge.post(snapshot(util=33.0)).status == 200
    assert cli_rows("--json", "--cached")[0]["usage"]["five_hour"]["utilization"] == 33.0
    assert bridge.rss_kib() - rss_before < 32 * 1024, "memory grew with rejected requests"
    assert bridge.threads() <= MAX_CONNECTIONS + 8
    refusal_lines = [line for line in bridge.output().splitlines() if "refused" in line]
    assert 1 <= len(refusal_lines) <= 10, "refusals are logged, but not one line each"


def test_slow_clients_cannot_pin_it(bridge: Bridge) -> None:
    """Idle and half-sent connections never lock anyone out (SPEC 6): they wait for
    their head in the selector, not in a thread, and are cut at the head deadline."""
    idle = []
    for _ in range(MAX_CONNECTIONS + 8):
        sock = socket.create_connection(("127.0.0.1", bridge.port), timeout=60)
        sock.sendall(b"POST /snapshots HTTP/1.1\r\n")  # ...and nothing more
        idle.append(sock)
    assert bridge.call("GET", "/healthz", token=None).status == 200
    assert bridge.post(snapshot(util=43.0)).status == 200
    closed = threading.Event()

    def trickle() -> None:
        """A byte a second keeps every read alive; only a deadline ends it."""
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 120:
                trickler.sendall(bytes([byte]))
                time.sleep(1.0)
        except OSError:
            closed.set()

    trickler = socket.create_connection(("127.0.0.1", bridge.port), timeout=60)
    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    # Stuck clients are cut at the head deadline, never answered.
    for sock in idle:
        with contextlib.suppress(ConnectionResetError):  # cut: as good as a close
            assert sock.recv(1024) == b"", "a stuck client got an answer instead of a close"
        sock.close()
    assert bridge.post(snapshot(util=44.0)).status == 200
    thread.join(timeout=60)
    assert closed.is_set(), "a trickling client outlived the head deadline"
    trickler.close()
    assert cli_rows("--json", "--cached")[0]["usage"]["five_hour"]["utilization"] == 44.0


# --- the process -----------------------------------------------------------------------


def test_a_second_bridge_on_the_same_state_dir_says_so(bridge: Bridge) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "claudemeter", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "already running" in done.stderr
    assert bridge.call("GET", "/healthz", token=None).status == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_it_cleanly(bridge: Bridge, tmp_path: Path, sig: int) -> None:
    assert bridge.stop(sig) == 0
    assert "stopped" in bridge.out.read_text()
    assert "Traceback" not in bridge.output()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", bridge.port), timeout=5).close()
    again = start_bridge(tmp_path, name="again")  # the instance lock went with it
    assert again.stop() == 0


def test_kill_9_after_an_acknowledged_post_loses_nothing(bridge: Bridge, tmp_path: Path) -> None:
    assert bridge.post(snapshot("Edge", util=71.5)).body == {"ok": True, "accepted": 1}
    bridge.proc.kill()
    bridge.proc.wait()
    rows = cli_rows("--json", "--cached")
    assert (rows[0]["browser"], rows[0]["usage"]["five_hour"]["utilization"]) == ("Edge", 71.5)
    again = start_bridge(tmp_path, name="again")
    try:
        assert again.call("GET", "/snapshots").body[0]["browser"] == "Edge"
    finally:
        assert again.stop() == 0


def test_non_loopback_and_bad_ports_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for address in ("0.0.0.0:0", "192.168.1.10:63762", "example.com:63762"):
        monkeypatch.setenv("CLAUDEMETER_BRIDGE", address)
        done = cli("serve")
        assert done.returncode == 1, address
        assert "loopback only" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    monkeypatch.setenv("CLAUDEMETER_BRIDGE", "127.0.0.1:63762")
    done = cli("serve", "--port", "70000")
    assert done.returncode == 1 and "out of range" in done.stderr


def test_claudemeter_bridge_moves_it_and_a_taken_port_is_explained(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("CLAUDEMETER_BRIDGE", f"127.0.0.1:{port}")
        done = cli("serve")
        assert done.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    out = tmp_path / "moved.out"
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(["claude-meter", "serve"], stdout=stdout, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: f"127.0.0.1:{port}" in out.read_text(), what="the moved bridge")
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


# --- the token -------------------------------------------------------------------------


def test_the_token_is_private_stable_and_never_echoed(bridge: Bridge) -> None:
    path = bridge.state_dir / "bridge.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(bridge.state_dir.stat().st_mode) == 0o700
    first = cli("pair")
    assert first.returncode == 0
    assert first.stdout.strip() == bridge.token
    assert cli("pair").stdout == first.stdout
    old = bridge.token
    leaky = snapshot(errors=[f"usage: HTTP 401 Authorization: Bearer {old}"])
    assert bridge.post(leaky).status == 200
    assert bridge.post(snapshot(), token="z" * 43).status == 401
    renewed = cli("pair", "--new")
    assert renewed.returncode == 0 and renewed.stdout.strip() != old
    assert "no longer works" in renewed.stderr
    assert bridge.post(snapshot(), token=old).status == 401
    assert bridge.post(snapshot(), token=renewed.stdout.strip()).status == 200
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for secret in (old, renewed.stdout.strip(), "z" * 43):
        assert secret not in bridge.output()
        assert secret not in (bridge.state_dir / "state.json").read_text()
        assert secret not in cli("--json", "--cached").stdout


def test_pair_before_serve_creates_the_token_once(state_dir: Path) -> None:
    tokens = {cli("pair").stdout for _ in range(3)}
    assert len(tokens) == 1
    assert re.fullmatch(r"[A-Za-z0-9_\-]{40,}\n", tokens.pop())
    assert stat.S_IMODE((state_dir / "bridge.token").stat().st_mode) == 0o600


def test_help_for_both_commands() -> None:
    for command in ("serve", "pair"):
        done = cli(command, "--help")
        assert done.returncode == 0 and "usage: claude-meter " + command in done.stdout


# --- the poller ------------------------------------------------------------------------


def test_while_it_runs_the_oauth_source_stays_fresh(
    upstream: FakeUpstream, claude_dir: Path, tmp_path: Path
) -> None:
    running = start_bridge(tmp_path)
    try:
        rows = wait_for(
            lambda: [r for r in cli_rows("--json", "--cached") if r["browser"] == "Claude Code"],
            what="the bridge's poller to fetch the OAuth usage",
        )
        assert rows[0]["usage"]["five_hour"]["utilization"] == 61.0
        assert len(upstream.hits("/api/oauth/usage")) == 1
    finally:
        assert running.stop() == 0


def test_a_remote_box_ingests_what_get_snapshots_serves(
    bridge: Bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's tunnel recipe: ``curl …/snapshots | claude-meter ingest -``."""
    assert (
        bridge.post([snapshot("Chrome", util=40.0), snapshot("Arc", util=41.0, offset=1)]).status
        == 200
    )
    served = bridge.call("GET", "/snapshots")
    monkeypatch.setenv("CLAUDEMETER_STATE_DIR", str(tmp_path / "remote-state"))
    done = cli("ingest", "-", stdin=json.dumps(served.body))
    assert done.returncode == 0, done.stderr
    rows = cli_rows("--json", "--cached")
    assert [
        (r["browser"], r["account_email"], r["usage"]["five_hour"]["utilization"]) for r in rows
    ] == [("Chrome, Arc", "ada@example.com", 41.0)]


def test_doctor_tells_its_own_bridge_from_another_setups(
    bridge: Bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMETER_BRIDGE", f"127.0.0.1:{bridge.port}")
    assert f"ok    bridge     running on 127.0.0.1:{bridge.port}" in cli("doctor").stdout
    monkeypatch.setenv("CLAUDEMETER_STATE_DIR", str(tmp_path / "another-setup"))
    theirs = cli("doctor").stdout
    assert "writes to another state dir" in theirs and "warn  bridge" in theirs
