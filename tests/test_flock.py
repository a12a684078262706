"""The store's writer lock (:mod:`claudemeter.flock`) against real processes: another
process holding it makes ``acquire`` wait, then time out; its end frees it; the lock
file is private and never followed through a symlink; python-filelock on the same file
excludes us and we exclude it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock as PythonFileLock
from filelock import Timeout

from claudemeter.flock import FileLock, LockTimeout

HOLD = """
import sys, time
from claudemeter.flock import FileLock
lock = FileLock(__import__("pathlib").Path(sys.argv[1]), 5)
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def holder(path: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def test_held_elsewhere_waits_then_times_out_and_is_free_once_the_holder_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.lock"
    child = holder(path)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            FileLock(path, 0.3).acquire()
        assert time.monotonic() - started >= 0.3
    finally:
        child.communicate("")
    with FileLock(path, 0) as lock:
        assert lock.path == path
    assert path.stat().st_mode & 0o777 == 0o600


def test_released_lock_is_taken_by_the_waiting_process(tmp_path: Path) -> None:
    path = tmp_path / "state.lock"
    child = holder(path)
    try:
        lock = FileLock(path, 10)
        assert child.stdin is not None
        child.stdin.close()  # the holder ends while we wait
        lock.acquire()
        lock.release()
    finally:
        child.wait()


def test_excludes_python_filelock_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "state.lock"
    child = holder(path)
    try:
        with pytest.raises(Timeout):
            PythonFileLock(str(path), timeout=0.1).acquire()
    finally:
        child.communicate("")


def test_a_symlinked_lock_file_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "state.lock").symlink_to(target)
    with pytest.raises(OSError):
        FileLock(tmp_path / "state.lock", 0).acquire()
    assert not target.exists()
