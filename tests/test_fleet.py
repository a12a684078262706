"""The fleet's guards and push on write (SPEC section 5, ``CLAUDEMETER_REDIS_URL``: "the
store, the refresh booking and the guard registry live there"), against a real
``redis-server`` on loopback. Each "host" is a state dir of its own with its own
``claude-meter serve``; all share one Redis, as hosts of one account would."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from claudemeter import registry, shared
from claudemeter.model import Snapshot
from claudemeter.procs import read_proc
from claudemeter.store import Store
from tests.helpers import guard_bin, reading, wait_for
from tests.redislab import RedisServer, host_env, meter, rows_of, serve_hosts, start_redis


def paused_segment(env: dict[str, str]) -> str:
    """The ``⏸N`` piece of the host's status segment ('' when none)."""
    found = re.search(r"⏸\d+", meter(env, "status").stdout)
    return found.group(0) if found else ""


def guard_on(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A ``cm-guard`` over ``sleep 1000`` on the host ``env`` names, in a session of its
    own (kill its group)."""
    return subprocess.Popen(
        [guard_bin(), "--poll", "0.2", "--", "sleep", "1000"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def over_the_threshold(store: Store) -> None:
    """A browser's 95 % in this host's file, so its segment shows numbers (and ⏸)."""
    store.put([Snapshot.from_json(reading(95.0))])


def test_every_host_sees_every_hosts_guards_and_a_reading_reaches_them_at_once(
    tmp_path: Path, fleet_redis: RedisServer
) -> None:
    (laptop, box), bridges = serve_hosts(tmp_path, fleet_redis.url)
    guard: subprocess.Popen[bytes] | None = None
    try:
        # A browser post to the laptop's bridge reaches the box's file by itself, in
        # well under the 5 s the fleet used to sync at.
        assert bridges[0].post([reading(95.0)]).status == 200
        wait_for(
            lambda: [r for r in rows_of(box) if r["browser"] == "Chrome"],
            seconds=4,
            what="the laptop's browser reading in the box's file",
        )
        # A guard on the laptop holds on it: the box's segment and `show` count it.
        guard = guard_on(laptop)
        assert wait_for(lambda: paused_segment(box), what="⏸ on the box") == "⏸1"
        shown = meter(box, "show").stdout
        assert f"guard {socket.gethostname()}" in shown and "sleep 1000" in shown, shown
        # It is the laptop's guard, not the box's: the box never takes it as its own.
        assert registry.local(Path(box["CLAUDEMETER_STATE_DIR"])) == []
        assert paused_segment(laptop) == "⏸1"
        doctor = meter(box, "doctor").stdout
        assert "1 guard(s) on 1 other host(s)" in doctor, doctor

        # The guard ends: the box stops counting it at the laptop's next push, not
        # when its heartbeat lapses.
        guard.send_signal(signal.SIGTERM)
        guard.wait(timeout=20)
        wait_for(lambda: paused_segment(box) == "", seconds=4, what="the box's ⏸ to go")
    finally:
        if guard is not None and guard.poll() is None:
            os.killpg(guard.pid, signal.SIGKILL)
            guard.wait()
        for bridge in bridges:
            bridge.stop()


def test_a_dead_hosts_guards_vanish_and_foreign_pids_are_never_judged_here(
    tmp_path: Path, fleet_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lapse in seconds, not half a minute; long enough for a reader's start on a loaded
    # machine. The rule is the same.
    monkeypatch.setattr(shared, "GUARD_TTL", 6.0)
    fleet = shared.Shared(fleet_redis.url)
    laptop, box = (Store(tmp_path / f"{name}-state") for name in ("laptop", "box"))
    box_env = host_env(tmp_path, "box", fleet_redis.url)
    child = subprocess.Popen(["sleep", "60"])
    try:
        proc = read_proc(child.pid)
        assert proc is not None
        command = "deploy --header 'Authorization: Bearer sk-ant-oat01-fleet-secret'"
        entry = registry.GuardEntry(child.pid, command, None, registry.PAUSED, start=proc.start)
        registry.register(entry, laptop.directory)
        over_the_threshold(box)
        assert shared.sync(laptop, fleet, force=True) is None  # the laptop beats
        assert shared.sync(box, fleet, force=True) is None  # the box takes the fleet's
        seen = registry.active(box.directory)
        assert [(e.pid, e.host) for e in seen] == [(child.pid, socket.gethostname())]
        # A token on the guarded command line stays on its host.
        held = str(fleet_redis.client().hgetall(shared.GUARDS))
        assert "deploy" in held and "fleet-secret" not in held
        assert "fleet-secret" not in seen[0].command
        assert paused_segment(box_env) == "⏸1"

        # The pid means nothing on another machine: the box counts the entry while the
        # laptop's heartbeat does, whatever runs under that pid here.
        child.kill()
        child.wait()
        assert registry.paused_count(box.directory) == 1
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    # The laptop dies (no more beats): its guards lapse on the box by the box's own
    # clock, before any sync, and Redis drops them at the next one.
    wait_for(lambda: registry.active(box.directory) == [], seconds=15, what="the lapse")
    assert paused_segment(box_env) == ""
    assert shared.sync(box, fleet, force=True) is None
    assert fleet_redis.client().hlen(shared.GUARDS) == 0


def test_without_redis_the_segment_says_shared_and_counts_this_hosts_guards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared, "GUARD_TTL", 6.0)  # as above
    server = start_redis(tmp_path / "redis")
    box = Store(tmp_path / "box-state")
    box_env = host_env(tmp_path, "box", server.url)
    fleet = shared.Shared(server.url)
    for name in ("laptop", "box"):
        over_the_threshold(Store(tmp_path / f"{name}-state"))
    guards = [guard_on(host_env(tmp_path, name, server.url)) for name in ("laptop", "box")]
    try:
        # Over the threshold on both hosts: both guards hold and register as held.
        for name in ("laptop", "box"):
            directory = tmp_path / f"{name}-state"
            wait_for(partial(registry.local, directory), what=f"the {name}'s guard")
        assert shared.sync(Store(tmp_path / "laptop-state"), fleet, force=True) is None
        assert shared.sync(box, fleet, force=True) is None
        assert paused_segment(box_env) == "⏸2"

        server.stop()
        problem = shared.sync(box, fleet, force=True)
        assert problem is not None and "shared store 127.0.0.1" in problem
        segment = meter(box_env, "status").stdout
        assert "shared?" in segment
        # The laptop's guard lapses here; the box's own is still counted, from its file.
        wait_for(lambda: paused_segment(box_env) == "⏸1", seconds=15, what="the local count")
    finally:
        for guard in guards:
            if guard.poll() is None:
                os.killpg(guard.pid, signal.SIGKILL)
                guard.wait()
        server.stop()


def test_writes_made_while_redis_is_away_reach_the_fleet_when_it_returns(
    tmp_path: Path,
) -> None:
    """Real ``serve`` on two hosts, no command by hand: Redis stops, the laptop's browser
    posts, Redis comes back empty (no persistence) on the same port, and the box gets the
    post from the laptop's follower, which pushes everything when it reconnects."""
    server = start_redis(tmp_path / "r1")
    port = server.port
    (laptop, box), bridges = serve_hosts(tmp_path, server.url)
    try:
        assert bridges[0].post([reading(40.0)]).status == 200
        wait_for(lambda: rows_of(box), what="the first reading on the box")
        server.stop()
        wait_for(lambda: "shared?" in meter(laptop, "status").stdout, what="shared? on the laptop")
        assert bridges[0].post([reading(88.0, "Firefox")]).status == 200
        assert [r["browser"] for r in rows_of(box)] == ["Chrome"]  # nothing reached it

        server = start_redis(tmp_path / "r2", port)
        firefox = wait_for(
            lambda: [r for r in rows_of(box) if "Firefox" in r["browser"]],
            seconds=20,
            what="the post made while Redis was away, on the box",
        )
        assert firefox[0]["usage"]["five_hour"]["utilization"] == 88
        wait_for(lambda: "shared?" not in meter(box, "status").stdout, what="shared? gone")
        assert "in sync" in bridges[0].output()
    finally:
        for bridge in bridges:
            bridge.stop()
        server.stop()


def test_the_follower_keeps_nothing_of_another_host_as_its_own(
    tmp_path: Path, fleet_redis: RedisServer
) -> None:
    """Other hosts' guards sit in ``guards/fleet.json``, which the local registry never
    reads as a guard's file (so a host never beats for another's guards)."""
    box = Store(tmp_path / "box-state")
    hosts = [registry.FleetHost("laptop", 4e9, [registry.GuardEntry(4242, "x", None, "held")])]
    registry.keep_fleet(hosts, box.directory)
    assert registry.local(box.directory) == []
    assert [e.host for e in registry.active(box.directory)] == ["laptop"]
    assert shared.sync(box, shared.Shared(fleet_redis.url), force=True) is None
    assert fleet_redis.client().hlen(shared.GUARDS) == 0  # the box had nothing to beat for


def test_two_fleets_on_one_redis_are_apart_by_the_database_in_the_url(
    tmp_path: Path, fleet_redis: RedisServer
) -> None:
    """The key prefix is fixed (``claudemeter:v1:``); the URL's database keeps fleets
    apart, keys and news alike (channels are server-wide, so theirs names the database)."""
    other_url = fleet_redis.url.replace("/0", "/1")
    client = fleet_redis.client()
    # redis-py's pubsub() carries no annotations
    listener: Any = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    listener.subscribe(shared.NEWS + ":1")
    laptop, box, stranger = (Store(tmp_path / f"{name}-state") for name in ("a", "b", "c"))
    over_the_threshold(laptop)
    assert shared.sync(laptop, shared.Shared(fleet_redis.url), force=True) is None
    assert shared.sync(box, shared.Shared(fleet_redis.url), force=True) is None
    assert shared.sync(stranger, shared.Shared(other_url), force=True) is None
    assert [row.browser for row in box.read().rows] == ["Chrome"]
    assert stranger.read().rows == []
    assert listener.get_message(timeout=0.5) is None  # fleet 0's news is not fleet 1's
    keys = fleet_redis.client().keys("*")  # str: the client decodes replies
    assert keys and all(isinstance(key, str) and key.startswith("claudemeter:v1:") for key in keys)
    listener.close()


def test_without_the_redis_client_every_host_goes_on_alone_and_says_so(
    tmp_path: Path, fleet_redis: RedisServer
) -> None:
    """The variable set, the extra not installed: refresh, the status segment and
    doctor say so in one line, and the host reads and polls on its own."""
    env = host_env(tmp_path, "box", fleet_redis.url)
    over_the_threshold(Store(Path(env["CLAUDEMETER_STATE_DIR"])))
    without = "import sys\nsys.modules['redis'] = None  # as if never installed\n"

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", without + code],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    refreshed = run("from claudemeter.refresh import refresh\nprint(refresh())")
    assert refreshed.returncode == 0, refreshed.stderr
    assert "the redis client is missing: pip install 'claudemeter[redis]'" in refreshed.stdout
    assert "shared?" in meter(env, "status").stdout
    doctor = run("from claudemeter.cli import main\nsys.argv = ['claude-meter', 'doctor']\nmain()")
    line = next(line for line in doctor.stdout.splitlines() if " shared " in line)
    assert line.startswith("FAIL") and "pip install" in line, doctor.stdout


class PostDuringTheFirstSync(shared.Follower):
    """A follower whose first sync has a browser's post land in the state file just as
    it finishes (the worst moment: after the sync read the state, before the follower
    looks at the file again)."""

    posted = False

    def sync(self) -> None:
        super().sync()
        if not self.posted:
            self.posted = True
            self.store.put([Snapshot.from_json(reading(64.0, "Firefox"))])


def test_a_write_landing_during_a_sync_is_pushed_at_once_not_at_the_next_beat(
    tmp_path: Path, fleet_redis: RedisServer
) -> None:
    follower = PostDuringTheFirstSync(
        Store(tmp_path / "laptop-state"), shared.Shared(fleet_redis.url), print
    )
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    thread.start()
    try:
        client = fleet_redis.client()
        wait_for(
            lambda: any("Firefox" in field for field in client.hkeys(shared.ROWS)),
            seconds=shared.BEAT / 2,  # the beat would push it too, later
            what="the post in Redis",
        )
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_quiet_hosts_guards_are_not_rewritten_on_every_sync(state_dir: Path) -> None:
    """A host that stopped beating 17 s ago: each sync hands back the same expiry, so
    ``fleet.json`` (whose every write wakes the follower and the tmux loop) is written
    once, not at every sync; a fresh beat that extends it is written."""
    store = Store()
    entry = registry.GuardEntry(
        pid=4242, command="claude", account=None, state=registry.PAUSED, host="box"
    )
    fleet = registry.guards_dir(store.directory) / registry.FLEET_FILE
    quiet = [registry.FleetHost("box", time.time() + shared.GUARD_TTL - 17, [entry])]
    shared._keep_hosts(quiet, store)  # the rule itself, without a Redis
    written = fleet.stat().st_mtime_ns, fleet.stat().st_ino
    for _ in range(3):
        shared._keep_hosts(quiet, store)
        assert (fleet.stat().st_mtime_ns, fleet.stat().st_ino) == written
    beat = [registry.FleetHost("box", time.time() + shared.GUARD_TTL, [entry])]
    shared._keep_hosts(beat, store)
    assert registry.fleet_hosts(store.directory)[0].until == beat[0].until


def test_a_reading_from_a_fast_clock_is_stored_once_not_at_every_sync(
    tmp_path: Path, fleet_redis: RedisServer
) -> None:
    """A host whose clock runs 5 minutes fast pushed a reading: the box stores it
    back-dated to just before its own now (``State.put``), and later syncs, which find
    nothing else in it, neither store it again nor re-date it (it would never go
    stale, and each write wakes the follower into the next sync)."""
    fast = Snapshot.from_json(reading(95.0))
    fast = replace(fast, fetched_at=fast.fetched_at + timedelta(minutes=5))
    fleet = shared.Shared(fleet_redis.url)
    fleet.push([fast], "fast-host")
    box = Store(tmp_path / "box-state")
    assert shared.sync(box, fleet, force=True) is None
    [stored] = box.read().rows
    assert stored.fetched_at < fast.fetched_at
    written = box.path.stat().st_mtime_ns
    for _ in range(3):
        assert shared.sync(box, fleet, force=True) is None
    assert box.read().rows[0].fetched_at == stored.fetched_at
    assert box.path.stat().st_mtime_ns == written
