"""Class 5, "the guard registry is trusted": planted ``guards/<pid>.json`` files naming
an unrelated live pid, pid 1, 0 or -1, a reused pid, or fields of the wrong type never
count as a guard (``⏸N`` stays right) and never break ``status``, ``show`` or the popup;
a real running guard, identified by pid and start time, still counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from claudemeter import registry
from claudemeter.procs import read_proc
from tests.helpers import cli, entry_of, put, start, wait_for
from tests.hostile.readers import assert_readers_work, good_snapshot, ingest


def guards_dir() -> Path:
    directory = registry.guards_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def plant(name: str, body: object) -> None:
    (guards_dir() / name).write_text(body if isinstance(body, str) else json.dumps(body))


def entry(pid: Any, **fields: Any) -> dict[str, Any]:
    body = {
        "pid": pid,
        "command": "claude",
        "account": None,
        "state": "paused",
        "pane": "%3",
        "resume_at": 2_000_000_000.0,
        "started_at": 1.0,
        "child_pid": None,
        "start": None,
    }
    body.update(fields)
    return body


def test_planted_entries_never_count_nor_break_a_reader(tmp_path: Path) -> None:
    assert ingest(good_snapshot(util=41.0)).returncode == 0
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = read_proc(unrelated.pid)
        assert me is not None
        planted = {
            f"{unrelated.pid}.json": entry(unrelated.pid),  # live, but no start time
            f"{unrelated.pid + 0}.json.bak": entry(unrelated.pid),  # not a .json name
            "1.json": entry(1, start=init.start if (init := read_proc(1)) else 0),
            "0.json": entry(0),
            "-1.json": entry(-1),
            "99999999999.json": entry(99999999999),
            "7.json": entry(unrelated.pid, start=me.start),  # another pid than its name
            f"{os.getpid()}.json": entry(os.getpid(), start=me.start),  # start mismatch
            "12.json": entry(12, resume_at="soon"),
            "13.json": entry(13, command=5),
            "14.json": entry(14, state="exploded"),
            "15.json": entry(True),
            "16.json": "[" * 100_000,
            "17.json": "not json",
            "18.json": entry(18, pane="%3\u001b]0;x\u0007"),
            "19.json": entry(19, resume_at=float("inf")),
        }
        for name, body in planted.items():
            plant(name, body)
        assert registry.paused_count() == 0
        assert registry.active() == []
        status = cli("status")
        assert status.returncode == 0 and "⏸" not in status.stdout, status.stdout
        assert "error" not in status.stdout
        assert_readers_work(util=41.0)
    finally:
        unrelated.kill()
        unrelated.wait()


def test_a_real_guard_counts_once_by_pid_and_start_time(tmp_path: Path) -> None:
    put(95.0)
    guard = start("--poll", "0.2", "--", "true")  # held: over the threshold
    wait_for(lambda: entry_of(guard.pid) is not None, "the guard to register")
    found = entry_of(guard.pid)
    proc = read_proc(guard.pid)
    assert found is not None and proc is not None and found.start == proc.start
    plant("1.json", entry(1))
    assert registry.paused_count() == 1
    assert "⏸1" in cli("status").stdout
    guard.terminate()
    guard.communicate(timeout=10)
    wait_for(lambda: registry.paused_count() == 0, "the guard's entry to go")


def test_planted_fleet_files_never_break_a_reader_and_count_only_live_beats(
    tmp_path: Path,
) -> None:
    """``guards/fleet.json`` (other hosts' guards, from a fleet's Redis) is read as
    hostile as a guard's own file: anything but a host with a live beat and a well-formed
    entry is left out; a foreign entry's pid is never looked up here."""
    assert ingest(good_snapshot(util=41.0)).returncode == 0
    later = 4_000_000_000.0
    bodies: list[Any] = [
        "[" * 100_000,
        "not json",
        {"hosts": "box"},
        {"hosts": [{"host": "box", "until": "later", "guards": [entry(4242)]}]},
        {"hosts": [{"host": "box", "until": float("inf"), "guards": [entry(4242)]}]},
        {"hosts": [{"host": "box", "until": 1.0, "guards": [entry(4242)]}]},  # lapsed
        {"hosts": [{"host": "b\u001b]0;x\u0007", "until": later, "guards": [entry(4242)]}]},
        {"hosts": [{"host": "x" * 65, "until": later, "guards": [entry(4242)]}]},
        {"hosts": [{"host": "box", "until": later, "guards": [entry(0), entry(True)]}]},
        {"hosts": [{"host": "box", "until": later, "guards": [entry(7, state="exploded")]}]},
        {"hosts": [{"host": "box", "until": later, "guards": [entry(8, pane="%3\u001b[2J")]}]},
    ]
    for body in bodies:
        plant(registry.FLEET_FILE, body)
        assert registry.paused_count() == 0, body
        status = cli("status")
        assert status.returncode == 0 and "⏸" not in status.stdout, (body, status.stdout)
    assert_readers_work(util=41.0)

    # A well-formed entry with a live beat counts, whatever runs under its pid here, and
    # its command is shown without its control characters.
    command = "claude \u001b]0;owned\u0007-p task"
    plant(
        registry.FLEET_FILE,
        {"hosts": [{"host": "box", "until": later, "guards": [entry(4242, command=command)]}]},
    )
    assert registry.paused_count() == 1
    assert "⏸1" in cli("status").stdout
    assert_readers_work(util=41.0)
    assert "guard box %3" in cli("show").stdout
