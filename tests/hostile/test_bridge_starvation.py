"""Class 3, "the bridge can be starved without a token", against the real bridge: a
token-bearing client is answered while a hundred idle connections are open and
attackers reconnect as fast as they are cut (SPEC 6); every answer, even to a request
line that does not parse, starts with an HTTP status line; two framings at once
(Transfer-Encoding with Content-Length) are refused; a token in the URL is never
echoed in the answer or the log."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from claudemeter.bridge import HEAD_DEADLINE
from tests.helpers import Bridge, start_bridge
from tests.hostile.readers import assert_readers_work, good_snapshot, raw

IDLE = 100
ATTACKERS = 20


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    running = start_bridge(tmp_path)
    yield running
    running.stop()


def half_open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /snapshots HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
    return sock


def test_a_token_bearer_is_served_while_100_idle_and_reconnecting_attackers_wait(
    bridge: Bridge,
) -> None:
    idle = [half_open(bridge.port) for _ in range(IDLE)]
    stop = threading.Event()
    reconnects = [0]

    def attacker() -> None:
        """Holds a half-sent request; the moment it is cut, opens another."""
        while not stop.is_set():
            try:
                sock = half_open(bridge.port)
            except OSError:
                continue
            with contextlib.suppress(OSError):
                sock.settimeout(0.5)
                while not stop.is_set():
                    try:
                        if sock.recv(1) == b"":
                            break
                    except TimeoutError:
                        continue
            sock.close()
            reconnects[0] += 1

    threads = [threading.Thread(target=attacker, daemon=True) for _ in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    served, tried = 0, 0
    try:
        deadline = time.monotonic() + HEAD_DEADLINE * 2.5  # across at least two cuts
        while time.monotonic() < deadline:
            tried += 1
            reply = bridge.post(good_snapshot(util=float(30 + tried % 50)))
            served += reply.status == 200
            tried += 1
            served += bridge.call("GET", "/snapshots").status == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        for sock in idle:
            sock.close()
    print(f"served {served} of {tried}; attackers reconnected {reconnects[0]} times")
    assert served == tried, f"{served} of {tried} token-bearing requests answered 200"
    assert reconnects[0] >= ATTACKERS, "the attackers were never cut (no head deadline)"
    assert tried >= 10
    last = 30 + (tried - 1) % 50
    assert_readers_work(util=float(last), bridge=bridge)


def test_idle_connections_are_cut_at_the_head_deadline(bridge: Bridge) -> None:
    sock = half_open(bridge.port)
    started = time.monotonic()
    with contextlib.suppress(ConnectionResetError):
        assert sock.recv(1024) == b""
    assert time.monotonic() - started < HEAD_DEADLINE + 3.0
    sock.close()


@pytest.mark.parametrize(
    "line",
    [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x02\x00\r\n\r\n",
    ],
    ids=["one-word", "no-path", "bad-version", "tls-hello"],
)
def test_a_malformed_request_line_gets_a_real_status_line(bridge: Bridge, line: bytes) -> None:
    answer = raw(bridge.port, line)
    assert answer.startswith(b"HTTP/1.0 4") or answer.startswith(b"HTTP/1.0 5"), answer[:80]
    _head, _, body = answer.partition(b"\r\n\r\n")
    assert json.loads(body)["ok"] is False


def test_transfer_encoding_with_content_length_is_refused(bridge: Bridge) -> None:
    body = json.dumps(good_snapshot(util=55.0)).encode()
    for encoding, status in (("gzip", 400), ("identity", 400), ("chunked", 411), ("x", 400)):
        reply = bridge.call(
            "POST",
            "/snapshots",
            body,
            headers={"Content-Type": "application/json", "Transfer-Encoding": encoding},
        )
        assert reply.status == status, (encoding, reply.body)
    assert bridge.call("GET", "/snapshots").body == []


def test_a_token_in_the_path_is_never_echoed(bridge: Bridge) -> None:
    token = bridge.token
    for path in (f"/{token}", f"/snapshots/{token}", f"/x?{token}"):
        reply = bridge.call("GET", path, token=None)
        assert reply.status in (401, 404), (path, reply.status)
        assert token not in json.dumps(reply.body)
    answer = raw(bridge.port, f"GET /{token} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert token.encode() not in answer
    bridge.stop()
    assert token not in bridge.output()
