"""A process named by its pid and its start time, so a recycled pid is never taken for it.

``claude-meter serve`` and each ``tmux-loop`` record themselves this way in the state
dir (``bridge.pid``; the loop's lock file); ``claude-meter stop`` signals a recorded
process only while the kernel still shows that pid with that start time. Never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def start_time(pid: int) -> str | None:
    """When ``pid`` started, as the kernel tells it; None when there is no such process.

    On Linux, field 22 of ``/proc/<pid>/stat`` (clock ticks after boot); elsewhere
    ``ps -o lstart=``. Only compared for equality, never read as a time."""
    if pid <= 0:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # a /proc system without that pid: gone
    except OSError:
        return None
    else:
        fields = stat.rsplit(")", 1)[-1].split()
        return fields[19] if len(fields) > 19 and fields[0] != "Z" else None
    try:
        done = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return "-".join(done.stdout.split()) or None


@dataclass(frozen=True)
class Process:
    pid: int
    started: str

    def line(self) -> str:
        """``<pid> <start time>``, as written to a record."""
        return f"{self.pid} {self.started}"

    def running(self) -> bool:
        """Whether this very process (same pid, same start time) is still there."""
        return start_time(self.pid) == self.started

    def terminate(self, wait: float = 5.0) -> bool:
        """SIGTERM it (only while :meth:`running`), and wait up to ``wait`` seconds for
        it to exit. True once it is gone; False if it is still there."""
        if not self.running():
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not self.running():
                return True
            time.sleep(0.05)
        return not self.running()


def this_process() -> Process:
    return Process(os.getpid(), start_time(os.getpid()) or "?")


def parse(text: str) -> Process | None:
    """The record at the start of ``text`` (``<pid> <start time> …``); None if unreadable."""
    fields = text.split()
    if len(fields) < 2 or not fields[0].isdigit():
        return None
    return Process(int(fields[0]), fields[1])


def read(path: Path) -> Process | None:
    """The record in ``path``; None when there is none or it is unreadable."""
    try:
        return parse(path.read_text())
    except (OSError, UnicodeDecodeError):
        return None
