"""Every reader of the store, run as users run them, for "and everything still reads".

Each check runs the real command line (or the real bridge) and fails naming the reader
that broke, so a hostile test can end with one call: :func:`assert_readers_work`.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.helpers import LOGIN_ORG, Bridge, cli, stamp

GOOD_EMAIL = "ada@example.com"
#: Terminal control: anything that moves the cursor, retitles or clears a screen.
CONTROL = [chr(c) for c in range(0x20) if chr(c) not in "\n"] + ["\x7f", "\x9b", "\u202e"]


def good_snapshot(util: float = 41.0, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "org_uuid": LOGIN_ORG,
        "browser": "Chrome",
        "account_email": GOOD_EMAIL,
        "fetched_at": stamp(),
        "usage": {"five_hour": {"utilization": util, "resets_at": stamp(3600)}},
        "errors": [],
    }
    body.update(fields)
    return body


def ingest(body: object) -> subprocess.CompletedProcess[str]:
    """``claude-meter ingest -`` of ``body`` (text as it is, anything else as JSON)."""
    text = body if isinstance(body, str) else json.dumps(body)
    return cli("ingest", "-", stdin=text)


def assert_refused(done: subprocess.CompletedProcess[str], naming: str, why: str = "") -> None:
    """Exit 1, one line on stderr naming the field, no traceback, nothing on stdout;
    a failure says ``why`` (which hostile input it was)."""
    assert done.returncode == 1, (why, done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, (why, done.stderr)
    assert naming in lines[0], (why, lines[0])
    assert "Traceback" not in done.stderr, why
    assert done.stdout == "", why


def assert_clean(text: str, reader: str) -> None:
    bad = sorted({c for c in text if c in CONTROL})
    assert not bad, f"{reader} printed control characters {bad!r}: {text!r}"


def assert_readers_work(util: float | None = None, bridge: Bridge | None = None) -> None:
    """Summary, --json, status, show (and GET /snapshots when a bridge runs) all answer,
    without a traceback or a control character; with ``util``, each shows that number."""
    summary = cli("--cached")
    assert "Traceback" not in summary.stderr, summary.stderr
    assert summary.returncode in (0, 1), summary.stderr
    assert_clean(summary.stdout, "the summary")
    listed = cli("--json", "--cached")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    status = cli("status")
    assert status.returncode == 0 and status.stdout.strip(), status.stderr
    assert "error" not in status.stdout, status.stdout
    shown = cli("show")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert_clean(shown.stdout, "show")
    if util is not None:
        mine = [r for r in rows if r["org_uuid"] == LOGIN_ORG]
        assert mine and mine[0]["usage"]["five_hour"]["utilization"] == util, rows
        assert f"{util:.0f}%" in summary.stdout, summary.stdout
        assert f"{util:.0f}%" in status.stdout, status.stdout
        assert f"{util:.0f}%" in shown.stdout, shown.stdout
    if bridge is not None:
        reply = bridge.call("GET", "/snapshots")
        assert reply.status == 200, reply
        if util is not None:
            assert reply.body[0]["usage"]["five_hour"]["utilization"] == util, reply.body


def raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes as they are (a malformed request line, a control character in the
    path) and return the whole answer."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
