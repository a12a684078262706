"""``claude-meter status`` answered from ``segment.cache`` (``claudemeter.segment_cache``):
the cached segment is the full render at every moment it is used, and anything the
segment depends on (a new reading, a guard pausing or dying, a damaged cache) makes the
next call render in full again."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from claudemeter import derived, registry, segment_cache, store
from claudemeter.derived import Summary, TopSession
from claudemeter.model import JSON, SOURCE_STATUSLINE, Snapshot, format_time
from claudemeter.options import Settings
from claudemeter.pace import Pace
from claudemeter.procs import read_proc
from claudemeter.status import HORIZON, job_output, steady
from claudemeter.store import State
from tests.helpers import cli, cli_out, ingest, wait_for

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def reading(
    five: float = 42.0,
    *,
    org: str = "org-a",
    email: str = "ada@example.com",
    source: str = "Claude Code",
    age: float = 30.0,
    resets_in: float = 1800.0,
    now: datetime = NOW,
) -> Snapshot:
    return Snapshot(
        org_uuid=org,
        browser=source,
        account_email=email,
        fetched_at=now - timedelta(seconds=age),
        usage={
            "five_hour": {
                "utilization": five,
                "resets_at": format_time(now + timedelta(seconds=resets_in)),
            },
            "seven_day": {
                "utilization": 61.0,
                "resets_at": format_time(now + timedelta(days=3)),
            },
        },
    )


def ingest_fresh(five: float) -> None:
    """Store a reading taken just now, on the wall clock ``claude-meter status`` reads
    (not the module's ``NOW``: this test may run many minutes after collection)."""
    ingest(reading(five, age=0.0, now=datetime.now(timezone.utc)).to_json())


def heading_for_full(org: str) -> dict[str, JSON]:
    """``derived.json``'s entry for an account whose 5-hour bucket is on pace for 100 %
    before its reset, with a top session, from readings 40 minutes old: the pace runs
    out of the rate window five minutes from now."""
    at = NOW - timedelta(minutes=40)
    found = Pace(
        bucket="five_hour",
        used=80.0,
        at=at,
        rate_per_hour=60.0,
        threshold=90.0,
        resets_at=NOW + timedelta(hours=2),
        full_at=at + timedelta(minutes=20),
        threshold_at=at + timedelta(minutes=10),
        points=12,
    )
    top = TopSession("%3", "/src/app", 41.0, (NOW + timedelta(hours=2)).timestamp())
    return {org: Summary(at.timestamp(), {"five_hour": found}, top).to_json()}


#: Three accounts (the second read twice, its older reading stale already), each
#: changing at its own moments: the third's bucket resets in 40 s, the second's newer
#: reading goes stale in 100 s, the third's reading in 270 s.
SEVERAL = [
    reading(80.0, resets_in=2000.0),
    reading(70.0, org="org-b", email="bob@example.com", source=SOURCE_STATUSLINE, age=800.0),
    reading(65.0, org="org-b", email="bob@example.com", source="Chrome", age=850.0),
    reading(12.0, org="org-c", email="cyd@example.com", source="Chrome", resets_in=40.0),
]
SEVERAL_DERIVED = heading_for_full("org-a")

CASES = {
    "fresh": State(rows=[reading()]),
    "goes stale": State(rows=[reading(source=SOURCE_STATUSLINE, age=895.0)]),
    "stale already": State(rows=[reading(age=4000.0)]),
    "resets soon": State(rows=[reading(resets_in=95.0)]),
    "two sources, the newer goes stale first": State(
        rows=[
            reading(70.0, source=SOURCE_STATUSLINE, age=890.0),
            reading(65.0, source="Chrome", age=200.0),
        ]
    ),
    "two accounts": State(
        rows=[reading(), reading(12.0, org="org-b", email="bob@example.com", age=250.0)]
    ),
    "pace and top": State(rows=[reading(80.0)], derived=heading_for_full("org-a")),
    "three accounts, each changing at its own moment": State(rows=SEVERAL, derived=SEVERAL_DERIVED),
}


@pytest.mark.parametrize("paused", [0, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_the_cached_segment_is_the_full_render_whenever_it_is_used(case: str, paused: int) -> None:
    state, settings = CASES[case], Settings()
    template, until = steady(state, NOW, settings, paused)
    start = NOW.timestamp()
    assert start < until <= start + HORIZON
    moments = [start + step for step in range(0, int(until - start), 7)] + [until - 0.01]
    for moment in moments:
        when = datetime.fromtimestamp(moment, timezone.utc)
        assert segment_cache.fill(template, moment) == job_output(state, when, settings, paused)
    if until < start + HORIZON:  # it ends because the segment changes, within a second
        after = until + 1.01
        when = datetime.fromtimestamp(after, timezone.utc)
        assert segment_cache.fill(template, after) != job_output(state, when, settings, paused)


def test_a_change_at_the_render_itself_is_not_held_past_it() -> None:
    """A reading whose age is its freshness limit to the second: fresh at the render,
    stale just after. The cache must not keep the fresh segment (the probes looked only
    after the render, so it was kept for the whole span)."""
    one = [reading(source=SOURCE_STATUSLINE, age=900.0)]
    other = reading(12.0, org="org-b", email="bob@example.com", age=30.0)
    for rows in (one, [*one, other]):  # one account, and each account's own part
        state = State(rows=rows)
        template, until = steady(state, NOW, Settings())
        start = NOW.timestamp()
        assert until <= start + 1.0, rows
        after = datetime.fromtimestamp(start + 1.01, timezone.utc)
        assert job_output(state, after, Settings()) != segment_cache.fill(template, start + 1.01)


def test_a_segment_that_changes_holds_until_the_change() -> None:
    """The row goes stale 5 s from now (a statusline reading lasts 900 s), the bucket
    resets in 95 s: the cache ends at the first."""
    _, until = steady(CASES["goes stale"], NOW, Settings())
    assert NOW.timestamp() + 4 <= until <= NOW.timestamp() + 6
    _, until = steady(CASES["resets soon"], NOW, Settings())
    assert NOW.timestamp() + 94 <= until <= NOW.timestamp() + 96


def test_several_accounts_hold_until_the_first_of_their_changes() -> None:
    """Each account changes at its own moment: the cache ends at the earliest, whichever
    account's it is, and a cache made after it ends at the next account's change."""
    start = NOW.timestamp()
    _, until = steady(CASES["three accounts, each changing at its own moment"], NOW, Settings())
    assert start + 39 <= until <= start + 41  # the third account's reset
    later = NOW + timedelta(seconds=45)
    state = State(rows=SEVERAL, derived=SEVERAL_DERIVED)
    _, until = steady(state, later, Settings())
    assert start + 99 <= until <= start + 101  # the second account's reading goes stale
    later = NOW + timedelta(seconds=105)
    _, until = steady(state, later, Settings())
    assert start + 269 <= until <= start + 271  # the third account's reading goes stale


def status_of(segment: str) -> str:
    """``segment`` with its countdowns left out (they may tick between two calls)."""
    return re.sub("↻[0-9hdms]+", "↻", segment.strip())


def status() -> str:
    """The segment, its countdown left out."""
    return status_of(cli_out("status"))


def cache_file(state_dir: Path) -> Path:
    return state_dir / segment_cache.CACHE_FILE


def test_the_files_it_keys_on_are_the_stores() -> None:
    assert segment_cache.STATE_FILES == (store.STATE_FILE, derived.DERIVED_FILE)
    assert registry.GUARDS_DIR == segment_cache.GUARDS_DIR


def test_status_is_cached_and_follows_each_new_reading(state_dir: Path) -> None:
    ingest_fresh(42.0)
    assert "5h 42%" in status()
    written = cache_file(state_dir).read_bytes()
    assert cache_file(state_dir).stat().st_mode & 0o777 == 0o600
    assert "5h 42%" in status()  # from the cache: the same bytes are still there
    assert cache_file(state_dir).read_bytes() == written
    ingest_fresh(43.0)
    assert "5h 43%" in status()
    assert cache_file(state_dir).read_bytes() != written


def test_a_damaged_or_foreign_cache_is_rendered_over(state_dir: Path) -> None:
    ingest_fresh(42.0)
    full = status()
    lines = cache_file(state_dir).read_bytes().split(b"\n", 4)
    assert lines[0] == segment_cache.MAGIC.encode() and len(lines) == 5
    damaged = [b"", b"[", b"\xff\xfe", b"\n".join(lines[:4]), b"\n".join([b"x", *lines[1:]])]
    damaged.append(b"\n".join([*lines[:2], b"nan", *lines[3:]]))
    for damage in damaged:
        cache_file(state_dir).write_bytes(damage)
        assert status() == full
    # a cache whose key matches but says something else is only trusted for its span
    forged = [*lines[:3], repr(time.time() - 1).encode(), b"forged"]
    cache_file(state_dir).write_bytes(b"\n".join(forged))
    assert status() == full
    # and one from the future (a clock set back) is not trusted either
    forged = [*lines[:2], repr(time.time() + 60).encode(), lines[3], b"forged"]
    cache_file(state_dir).write_bytes(b"\n".join(forged))
    assert status() == full


def test_status_sees_a_guard_pause_and_its_end(state_dir: Path) -> None:
    ingest_fresh(42.0)
    assert "⏸" not in status()
    child = subprocess.Popen(["sleep", "60"])
    try:
        proc = read_proc(child.pid)
        assert proc is not None
        entry = registry.GuardEntry(
            pid=child.pid, command="claude", account=None, state=registry.PAUSED, start=proc.start
        )
        registry.register(entry)
        assert "⏸1" in status()
        assert "⏸1" in status()  # cached, still paused
    finally:
        child.kill()
        child.wait()
    assert "⏸" not in status()  # the guard is gone, though its entry was left behind


def test_a_pinned_clock_never_uses_the_cache(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_fresh(42.0)
    status()
    monkeypatch.setenv("CLAUDEMETER_NOW", format_time(NOW + timedelta(hours=5)))
    assert "stale" in status()


def test_another_hosts_guard_counts_until_its_heartbeat_lapses(state_dir: Path) -> None:
    """A fleet sync left another host's paused guard: the cached segment shows it, holds
    no longer than its heartbeat, and stops showing it when the heartbeat lapses although
    no file changed."""
    ingest_fresh(42.0)
    entry = registry.GuardEntry(pid=4242, command="claude", account=None, state=registry.PAUSED)
    lapse = time.time() + 60.0
    registry.keep_fleet([registry.FleetHost("box", lapse, [entry])])
    assert "⏸1" in status()
    assert "⏸1" in status()  # the second from the cache
    until = float(cache_file(state_dir).read_bytes().split(b"\n", 4)[3])
    assert until <= lapse
    registry.keep_fleet([registry.FleetHost("box", time.time() + 2.0, [entry])])
    status()  # renders (the fleet file changed) and caches, with or without the guard
    wait_for(lambda: "⏸" not in status(), "the lapsed guard to leave the segment", 15)


@pytest.mark.parametrize("forged", ["\ue002uX\ue003", "\ue002s1e9\ue003", "\ue002u1e400\ue003"])
def test_stored_text_cannot_forge_a_hole(forged: str) -> None:
    """An email is stored text that reaches the segment (``{name}`` with several
    accounts): the cache's hole marks in it must neither break the cached call nor
    change what it shows."""
    now = datetime.now(timezone.utc)
    ingest(reading(42.0, age=0.0, now=now).to_json())
    email = f"{forged}@example.com"
    ingest(reading(12.0, org="org-b", email=email, age=0.0, now=now).to_json())
    full = cli("status")
    cached = cli("status")
    assert (full.returncode, cached.returncode) == (0, 0), cached.stderr
    assert "Traceback" not in full.stderr + cached.stderr
    assert status_of(cached.stdout) == status_of(full.stdout)
    assert "\ue002" not in full.stdout and "\ue003" not in full.stdout


def test_a_damaged_hole_in_the_cache_is_rendered_over(state_dir: Path) -> None:
    ingest_fresh(42.0)
    full = status()
    lines = cache_file(state_dir).read_bytes().split(b"\n", 4)
    damaged = lines[4].replace(b"\xee\x80\x82u", b"\xee\x80\x82uX", 1)
    assert damaged != lines[4]
    cache_file(state_dir).write_bytes(b"\n".join([*lines[:4], damaged]))
    assert status() == full


def test_the_key_follows_the_zone_in_effect_not_only_the_tz_text(state_dir: Path) -> None:
    """Unset ``TZ`` (the system's zone) and empty ``TZ`` (UTC) are different zones, and so
    are two ``TZ`` values; the key is the zone as the C library resolved it."""

    def key_under(tz: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "TZ"}
        if tz is not None:
            env["TZ"] = tz
        code = "import sys; from claudemeter import segment_cache as c; print(c.key(sys.argv[1]))"
        return subprocess.run(
            [sys.executable, "-c", code, str(state_dir)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout

    keys = [key_under(tz) for tz in (None, "", "Asia/Tokyo", "America/New_York")]
    assert len(set(keys)) == len(keys), keys
