"""Class 4, "a pause that pauses only part of the work": real ``cm-guard`` children that
leave the command's process group (``setsid``, a job-control shell's background job, a
daemon that double-forked inside its new session). Pause must stop every one of them
(state T in ``/proc``, and the file they write stops growing), resume must continue them
all, and the guard's SIGTERM must end them all."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claudemeter.procs import process_tree, read_proc
from tests.helpers import FAST, STARTED_GUARDS, child_of, proc_state, put, start, ticks, wait_for

WRITER = "while :; do date >> {out}; sleep .05; done"
COMMANDS = {
    "setsid -w": ["setsid", "-w", "sh", "-c", WRITER],
    "job-control shell, background job": ["bash", "-c", "set -m; ( " + WRITER + " ) & wait"],
    "double fork inside a new session": [
        "setsid",
        "-w",
        "sh",
        "-c",
        "( sh -c '" + WRITER + "' & ) ; exec sleep 600",
    ],
}
#: How long a file must stay the same size to count as not written (the writer writes
#: every 50 ms).
STILL = 1.0


def writers(out: Path) -> list[int]:
    """Live processes whose command line names ``out``: the command and the loops doing
    the work (not the guards, whose arguments name it too)."""
    found = []
    guards = {proc.pid for proc in STARTED_GUARDS}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in guards:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(out).encode() in cmdline and proc_state(int(entry.name)) not in (None, "Z"):
            found.append(int(entry.name))
    return found


def growing(out: Path) -> bool:
    before = ticks(out)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if ticks(out) > before:
            return True
        time.sleep(0.02)
    return False


def still(out: Path) -> bool:
    before = ticks(out)
    time.sleep(STILL)  # an absence needs a window: the writer writes every 50 ms
    return ticks(out) == before


@pytest.mark.parametrize("argv", list(COMMANDS.values()), ids=list(COMMANDS))
def test_pause_resume_and_term_reach_every_process_the_command_started(
    tmp_path: Path, argv: list[str]
) -> None:
    out = tmp_path / "work.log"
    put(10.0)
    command = [part.replace("{out}", str(out)) for part in argv]
    guard = start(*FAST, "--", *command)
    try:
        paused_resumed_and_ended(guard, out)
    finally:  # a failed step must not leave the writer looping for the rest of the run
        for pid in writers(out):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def paused_resumed_and_ended(guard: subprocess.Popen[str], out: Path) -> None:
    child = child_of(guard)
    wait_for(lambda: writers(out), "the writer to start")
    assert growing(out)
    loops = writers(out)
    outside = [pid for pid in loops if os.getpgid(pid) != child]
    assert outside, "the test's writer never left the command's group"

    put(95.0, resets_in=5.0)  # over: paused until the reset (5 s: room to watch) + grace
    wait_for(
        lambda: all(proc_state(pid) == "T" for pid in writers(out)),
        "every writer to be stopped",
        show=lambda: str({pid: proc_state(pid) for pid in writers(out)}),
    )
    assert still(out), "paused, yet the work went on"
    wait_for(lambda: growing(out), "the work to resume after the reset", seconds=20)
    assert all(proc_state(pid) != "T" for pid in writers(out))

    guard.send_signal(signal.SIGTERM)
    guard.communicate(timeout=20)
    wait_for(lambda: not writers(out), "every writer to end with the guard", seconds=10)
    assert still(out)


def test_the_tree_is_found_by_parent_session_and_group_never_our_own() -> None:

    proc = subprocess.Popen(
        ["setsid", "-w", "sh", "-c", "( sleep 60 & ) ; sleep 60"], start_new_session=True
    )
    try:
        wait_for(lambda: len(process_tree(proc.pid)) >= 4, "the tree to form")
        tree = process_tree(proc.pid)
        pids = {p.pid for p in tree}
        assert proc.pid in pids and os.getpid() not in pids
        assert all(p.sid != os.getsid(0) for p in tree)
        me = read_proc(os.getpid())
        assert me is not None and me.pid == os.getpid() and me.start > 0
    finally:
        for p in process_tree(proc.pid):
            os.kill(p.pid, signal.SIGKILL)
        proc.wait()
    assert sys.platform.startswith("linux")
