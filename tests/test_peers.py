"""Peers over SSH (SPEC section 5, ``CLAUDEMETER_PEERS``): two hosts on loopback, each a
real ``claude-meter serve`` with its own state dir. The "laptop" has the browser's
readings; the "box" has its own Claude Code login and its own fake upstream, and pulls
the laptop's bridge as an SSH tunnel would show it (``http://127.0.0.1:PORT``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from claudemeter import peers
from tests.helpers import (
    LOGIN_ORG,
    Bridge,
    child_of,
    cli,
    cli_rows,
    guard_bin,
    is_running,
    is_stopped,
    proc_state,
    reading,
    start_bridge,
    wait_for,
)
from tests.upstream import FakeUpstream

USAGE = "/api/oauth/usage"


def start_laptop(tmp_path: Path) -> Bridge:
    """The first host: its own state dir, no Claude Code login, fed by its browser."""
    env = {
        **os.environ,
        "CLAUDEMETER_STATE_DIR": str(tmp_path / "laptop-state"),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "laptop-claude"),
    }
    return start_bridge(tmp_path, name="laptop", env=env)


def point_at(laptop: Bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's environment becomes the box's: the laptop as its peer, the laptop's
    token in a 0600 file. Returns the provenance its rows get."""
    token_file = tmp_path / "peer.token"
    token_file.write_text(laptop.token + "\n")
    token_file.chmod(0o600)
    monkeypatch.setenv("CLAUDEMETER_PEERS", f"http://127.0.0.1:{laptop.port}")
    monkeypatch.setenv("CLAUDEMETER_PEER_TOKEN_FILE", str(token_file))
    return f"peer 127.0.0.1:{laptop.port}"


def test_the_box_shows_the_laptops_rows_pauses_on_them_and_polls_alone_when_it_goes(
    tmp_path: Path,
    claude_dir: Path,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    laptop = start_laptop(tmp_path)
    box: Bridge | None = None
    guard: subprocess.Popen[str] | None = None
    child = 0
    try:
        assert laptop.post([reading(50.0)]).status == 200
        source = point_at(laptop, tmp_path, monkeypatch)
        box = start_bridge(tmp_path, "--peer-every", "0.3", name="box")

        def laptop_row() -> list[dict[str, Any]]:
            return [
                r
                for r in cli_rows("--json", "--cached")
                if r["org_uuid"] == LOGIN_ORG and source in r["browser"]
            ]

        rows = wait_for(laptop_row, what="the laptop's row on the box")
        assert rows[0]["usage"]["five_hour"]["utilization"] == 50
        assert rows[0]["account_email"] == "ada@example.com"
        assert f"{source}: 1 account(s)" in box.output()

        # A guard on the box runs its command on the laptop's number, and pauses it when
        # the laptop's browser sees the account cross the threshold.
        guard = subprocess.Popen(
            [guard_bin(), "--poll", "0.2", "--", sys.executable, "-c", "input()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        child = child_of(guard)
        assert is_running(child)
        assert laptop.post([reading(95.0)]).status == 200
        wait_for(lambda: is_stopped(child), what="the box's guard to pause on the laptop's 95%")

        # All this time the box asked its own usage endpoint nothing: the peer was fresh.
        assert upstream.hits(USAGE) == []
        assert "no usage request" in box.output()

        # The laptop goes away (the SSH session ends): the box says so and polls itself.
        laptop.stop()
        wait_for(lambda: upstream.hits(USAGE), what="the box's own usage request")
        assert "polling on our own while it is away" in box.output()
        shown = cli("show").stdout  # the person looking sees which peer is away
        assert f"{source}: unreachable" in shown, shown
        wait_for(
            lambda: any("Claude Code" in r["browser"] for r in cli_rows("--json", "--cached")),
            what="the box's own reading",
        )
        assert len(upstream.hits(USAGE)) == 1
    finally:
        if guard is not None and guard.poll() is None:
            guard.kill()
            if child and proc_state(child) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child, signal.SIGKILL)
            guard.communicate(timeout=10)
        for bridge in (box, laptop):
            if bridge is not None:
                bridge.stop()


def test_doctor_checks_each_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeUpstream
) -> None:
    laptop = start_laptop(tmp_path)
    try:
        assert laptop.post([reading(40.0)]).status == 200
        point_at(laptop, tmp_path, monkeypatch)
        good = f"http://127.0.0.1:{laptop.port}"
        monkeypatch.setenv("CLAUDEMETER_PEERS", f"{good} http://127.0.0.1:9 http://192.0.2.1:63763")
        lines = [line for line in cli("doctor").stdout.splitlines() if " peer " in line]
        assert len(lines) == 3, lines
        assert lines[0].startswith("warn") and "192.0.2.1" in lines[0] and "SSH tunnel" in lines[0]
        assert lines[1].startswith("ok") and good in lines[1] and "1 account(s)" in lines[1]
        assert lines[2].startswith("warn") and "unreachable" in lines[2]
        assert "ssh -R" in lines[2]

        (tmp_path / "peer.token").write_text("not-the-laptops-token-at-all\n")
        monkeypatch.setenv("CLAUDEMETER_PEERS", good)
        done = cli("doctor")
        assert "refused the token" in done.stdout
        assert "not-the-laptops-token" not in done.stdout + done.stderr
    finally:
        laptop.stop()


def test_a_row_that_only_came_from_peers_is_not_taken_again(tmp_path: Path) -> None:
    laptop = start_laptop(tmp_path)
    try:
        relayed = reading(30.0, browser="peer 127.0.0.1:1")
        relayed["org_uuid"] = "9a8b7c6d-0000-4000-8000-00000000c002"
        assert laptop.post([reading(50.0), relayed]).status == 200
        pulled = peers.pull(peers.parse_peer(f"http://127.0.0.1:{laptop.port}"), laptop.token)
    finally:
        laptop.stop()
    assert pulled.ok, pulled.message
    assert [(r.org_uuid, r.browser) for r in pulled.rows] == [
        (LOGIN_ORG, f"peer 127.0.0.1:{laptop.port}")
    ]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("http://192.0.2.1:63763", "SSH tunnel"),
        ("http://box.example:63763", "SSH tunnel"),
        ("http://127.0.0.1:63763/snapshots", "only the scheme"),
        ("http://user:pw@127.0.0.1:63763", "only the scheme"),
        ("ftp://127.0.0.1:63763", "expected http"),
        ("127.0.0.1:63763", "expected http"),
        ("http://127.0.0.1", "expected http"),
        ("http://127.0.0.1:99999", "out of range"),
    ],
)
def test_peers_that_would_leak_the_token_or_are_not_bridges_are_refused(
    text: str, why: str
) -> None:
    with pytest.raises(peers.PeerError, match=why):
        peers.parse_peer(text)


def test_loopback_and_https_peers_are_taken() -> None:
    assert peers.parse_peer("http://127.0.0.1:63763/").source == "peer 127.0.0.1:63763"
    assert peers.parse_peer("http://[::1]:63763").source == "peer [::1]:63763"
    assert peers.parse_peer("https://meter.example:443").url == "https://meter.example:443"


def test_the_pace_pulls_just_after_the_peers_next_reading_is_due() -> None:
    """A pinned clock (epoch seconds given, not read): the pulls follow the peer's
    readings, not a fixed period."""
    pace = peers.Pace(every=60.0)
    # Learning: one reading seen, its gap not known yet: back off from the floor.
    assert pace.seen(1000.0, now=1001.0) == 1006.0
    assert pace.seen(1000.0, now=1006.0) == 1016.0
    assert pace.seen(1000.0, now=1016.0) == 1036.0
    assert pace.seen(1000.0, now=1036.0) == 1076.0
    # The peer's browser posts every 60 s: the next pull comes 1 s after each is due.
    assert pace.seen(1060.0, now=1076.0) == 1121.0
    assert pace.seen(1120.0, now=1121.0) == 1181.0
    # A reading that is late: back off from the floor again, up to `every`.
    assert pace.seen(1120.0, now=1181.0) == 1186.0
    assert pace.seen(1120.0, now=1186.0) == 1196.0
    assert pace.seen(1120.0, now=1196.0) == 1216.0
    assert pace.seen(1120.0, now=1216.0) == 1256.0
    assert pace.seen(1120.0, now=1256.0) == 1316.0  # never more than `every` apart
    # It posts again, at 1300 and 1360: the gap of 180 (a missed post) is capped at
    # `every`, the next one sets the pace again.
    assert pace.seen(1300.0, now=1316.0) == 1376.0
    assert pace.seen(1360.0, now=1376.0) == 1421.0
    # A chatty peer (a statusLine every 2 s) is still pulled at most every 5 s.
    chatty = peers.Pace(every=60.0, newest=2000.0, gap=2.0)
    assert chatty.seen(2002.0, now=2003.0) == 2008.0
    # A peer whose reading changes every 5 minutes (OAuth): still every minute.
    slow = peers.Pace(every=60.0, newest=1000.0, gap=300.0)
    assert slow.seen(1000.0, now=1010.0) == 1070.0
    # A peer that does not answer backs off like a late one; `every` below the floor
    # (`serve --peer-every 0.3`) is the period.
    assert peers.Pace(every=60.0).seen(None, now=50.0) == 55.0
    assert peers.Pace(every=0.3).seen(None, now=50.0) == 50.3


def test_the_box_pulls_on_the_laptops_freshness_not_once_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real bridges: the laptop's browser posts every 2 s; the box (pulling at least
    every 60 s, the default) has each burst's last reading within 9 s of its post, twice:
    it pulls when the laptop's reading is due to change, not on a fixed minute."""
    laptop = start_laptop(tmp_path)
    box: Bridge | None = None
    try:
        source = point_at(laptop, tmp_path, monkeypatch)

        def on_the_box() -> float | None:
            rows = [r for r in cli_rows("--json", "--cached") if source in r["browser"]]
            return rows[0]["usage"]["five_hour"]["utilization"] if rows else None

        for burst, start in enumerate((10.0, 30.0)):
            for step in range(4):
                assert laptop.post([reading(start + step)]).status == 200
                if box is None:
                    box = start_bridge(tmp_path, name="box")
                time.sleep(2.0)  # the browser's cadence in this test
            last = start + 3
            wait_for(
                partial(lambda value: on_the_box() == value, last),
                seconds=9,
                what=f"burst {burst}'s last reading on the box",
            )
    finally:
        for bridge in (box, laptop):
            if bridge is not None:
                bridge.stop()
