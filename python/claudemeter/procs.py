"""Processes as ``/proc`` shows them: who started whom, in which session and group,
and since when. ``cm-guard`` pauses a command's whole tree with it, and the guard
registry tells a live guard from an unrelated process that got its pid.

Linux only; elsewhere every function here finds nothing (callers fall back to the
process group, and to "is the pid alive").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    """One process as ``/proc/<pid>/stat`` gives it (fields 4, 5, 6 and 22)."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    start: int  # clock ticks after boot: with the pid, names one process for good


def read_proc(pid: int) -> Proc | None:
    """The process ``pid`` now, or None when it is gone or there is no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
        fields = stat.rpartition(")")[2].split()
        return Proc(pid, int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))
    except (OSError, ValueError, IndexError):
        return None


def _all_procs() -> list[Proc]:
    try:
        names = [entry.name for entry in Path("/proc").iterdir()]
    except OSError:
        return []
    found = (read_proc(int(name)) for name in names if name.isdigit())
    return [proc for proc in found if proc is not None]


def process_tree(root: int) -> list[Proc]:
    """``root`` and every process it started: descendants by parent, and any process
    in a session or group that one of them created (never the caller's own), parents
    before children. Empty without ``/proc``."""
    procs = _all_procs()
    children: dict[int, list[Proc]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    own_sid, own_pgid, me = os.getsid(0), os.getpgrp(), os.getpid()
    tree: dict[int, Proc] = {}
    todo = [p for p in procs if p.pid == root]
    while todo:
        proc = todo.pop(0)
        if proc.pid in tree or proc.pid == me:
            continue
        tree[proc.pid] = proc
        todo.extend(children.get(proc.pid, []))
    sessions = {p.sid for p in tree.values()} - {own_sid}
    groups = {p.pgid for p in tree.values()} - {own_pgid}
    for proc in procs:
        if (
            proc.pid not in tree
            and proc.pid != me
            and (proc.sid in sessions or proc.pgid in groups)
        ):
            tree[proc.pid] = proc
    return list(tree.values())


def signal_procs(procs: Iterable[Proc], sig: int) -> None:
    """Signal each process that is still the one we found (same pid, same start)."""
    for proc in procs:
        now = read_proc(proc.pid)
        if now is not None and now.start == proc.start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, sig)
