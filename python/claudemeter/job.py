"""The guarded command, run the way a job-control shell runs a foreground job.

The command gets its own process group and, when the guard owns the terminal, that
group becomes the terminal's foreground group: Ctrl-C, Ctrl-Z and window resizes go
straight to it and it may read the terminal, as if the guard were not there. It starts
with default signal dispositions, because a program installs its own SIGTSTP handler
(the one that restores the terminal before stopping) only when it finds SIGTSTP at its
default. Pausing is a job-control stop of the whole group; see :meth:`Job.stop`.

A command may leave its group: ``setsid`` starts a session of its own, a job-control
shell puts each background job in a group of its own. So pausing, resuming and ending
also reach every process the command started, found in ``/proc`` (:func:`process_tree`):
its descendants, and anything in a session or group one of them created (a daemon that
double-forked away from its parent stays in its session). Without ``/proc`` (macOS) it
is the group alone. A cgroup would hold even processes that leave their session, but
needs a delegated, writable cgroup tree, which a tmux pane rarely has.

Signals reach the guard as bytes on a pipe (``signal.set_wakeup_fd``), so one
``select`` waits for a signal, a change in the child, or the next poll.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import subprocess
import termios
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .procs import Proc, process_tree, signal_procs

#: What a shell resets for a job it starts; SIGHUP is left alone so ``nohup`` still works.
DEFAULT_IN_CHILD = (
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGPIPE,
    signal.SIGCHLD,
    signal.SIGWINCH,
    signal.SIGXFSZ,
)
#: Stops that come from the terminal (or a background read); anything else that stops
#: the command (SIGSTOP from some other tool) is left to whoever sent it.
JOB_CONTROL_STOPS = (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)

STOPPED = "stopped"
CONTINUED = "continued"
EXITED = "exited"


def controlling_terminal() -> int | None:
    """The first of stdin/stdout/stderr that is our controlling terminal, if any."""
    for fd in (0, 1, 2):
        if os.isatty(fd):
            try:
                os.tcgetpgrp(fd)
            except OSError:
                continue  # a terminal, but not ours: no job control through it
            return fd
    return None


def foreground_group(tty: int | None) -> int | None:
    if tty is None:
        return None
    try:
        return os.tcgetpgrp(tty)
    except OSError:
        return None  # the terminal is gone (pane closed)


def set_foreground(tty: int | None, pgid: int) -> None:
    """Hand the terminal to ``pgid``; the caller ignores SIGTTOU (see guard.main)."""
    if tty is not None:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(tty, pgid)


def has_job_control_parent() -> bool:
    """Is there a job-control shell above us, one that put us in a group of our own and
    will see us stop and offer ``fg``? (Else stopping ourselves would hang the pane.)"""
    parent = os.getppid()
    try:
        return os.getpgid(parent) != os.getpgrp() and os.getsid(parent) == os.getsid(0)
    except OSError:
        return False


def exit_status(wait_status: int) -> int:
    """The shell's view: the exit code, or 128+N for death by signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def exec_failure_status(exc: OSError) -> int:
    """126 found but not runnable, 127 not found (coreutils ``env``/``timeout``)."""
    if exc.errno == errno.ENOENT:
        return 127
    if exc.errno in (
        errno.EACCES,
        errno.ENOEXEC,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ELOOP,
        errno.EPERM,
        errno.ENAMETOOLONG,
    ):
        return 126
    return 125


def _prepare_child(tty: int | None) -> None:
    """Runs in the child between fork and exec: own group, terminal, default signals."""
    os.setpgid(0, 0)
    if tty is not None:
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            os.tcsetpgrp(tty, os.getpgrp())
    for sig in DEFAULT_IN_CHILD:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _modes(tty: int | None) -> list[Any] | None:
    if tty is None:
        return None
    try:
        return termios.tcgetattr(tty)
    except termios.error:
        return None


def _set_modes(tty: int | None, modes: list[Any] | None) -> None:
    if tty is not None and modes is not None:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(tty, termios.TCSADRAIN, modes)


class SignalPipe:
    """Turns the given signals into bytes on a pipe; :meth:`wait` is the only place the
    guard blocks, so a signal, a child exiting or stopping, and the poll all wake it."""

    def __init__(self, signals: Iterable[int]) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for sig in signals:
            signal.signal(sig, _noted)

    def wait(self, timeout: float) -> list[int]:
        """Signals that arrived, after waiting at most ``timeout`` seconds for one."""
        select.select([self._read], [], [], max(0.0, timeout))
        data = b""
        while True:
            try:
                chunk = os.read(self._read, 256)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        return list(data)


def _noted(signum: int, frame: object) -> None:
    """The byte on the wakeup pipe is the message; the handler only replaces the
    default action (and keeps Python from raising KeyboardInterrupt)."""


@dataclass
class Job:
    """One child process and its process group (the group id is the child's pid)."""

    argv: list[str]
    env: Mapping[str, str]
    tty: int | None
    pid: int = 0
    stopped: bool = False
    stop_signal: int = 0
    status: int | None = None  # set once it has exited, in shell terms
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # Terminal modes, as a shell keeps them: the guard's own from the start, and the
    # command's from when it last lost the terminal (raw, if SIGSTOP caught a TUI).
    _our_modes: list[Any] | None = field(default=None, repr=False)
    _its_modes: list[Any] | None = field(default=None, repr=False)
    #: Processes outside the group that the last pause stopped, continued on resume.
    _held: list[Proc] = field(default_factory=list, repr=False)

    def start(self) -> None:
        """Fork and exec; raises OSError when the command cannot be run."""
        foreground = foreground_group(self.tty) == os.getpgrp()
        tty = self.tty if foreground else None
        self._our_modes = _modes(self.tty)  # readable from the background too
        self._proc = subprocess.Popen(
            self.argv,
            env=dict(self.env),
            preexec_fn=lambda: _prepare_child(tty),
        )
        self.pid = self._proc.pid
        # The child did the same before exec; doing it here too closes the race in which
        # the guard signals the group before the child got round to creating it.
        with contextlib.suppress(OSError):
            os.setpgid(self.pid, self.pid)
        if foreground:
            set_foreground(self.tty, self.pid)

    def reap(self) -> list[str]:
        """Collect every change the kernel reports, without blocking."""
        events: list[str] = []
        while self.status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG | os.WUNTRACED | os.WCONTINUED)
            except ChildProcessError:
                self.status = 125  # someone else reaped it; nothing more to learn
                events.append(EXITED)
                break
            if pid == 0:
                break
            if os.WIFSTOPPED(status):
                self.stopped, self.stop_signal = True, os.WSTOPSIG(status)
                events.append(STOPPED)
            elif os.WIFCONTINUED(status):
                self.stopped = False
                events.append(CONTINUED)
            else:
                self.status = exit_status(status)
                self.stopped = False
                if self._proc is not None:
                    self._proc.returncode = self.status  # reaped here, not by Popen
                events.append(EXITED)
        return events

    @property
    def running(self) -> bool:
        return self.pid != 0 and self.status is None

    def kill(self, sig: int) -> None:
        """Signal the whole group: helpers the command started stop and go with it."""
        if self.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def tree(self) -> list[Proc]:
        """Every process the command started, its own group included (see module doc)."""
        return process_tree(self.pid) if self.running else []

    def end(self, sig: int) -> None:
        """Pass a terminating signal to the group and to everything else the command
        started (found before any of it dies and is reparented), then continue them
        all, so a stopped process sees it too."""
        rest = [p for p in self.tree() if p.pgid != self.pid]  # the group gets it once
        self.kill(sig)
        signal_procs(rest, sig)
        self.kill(signal.SIGCONT)
        signal_procs(rest, signal.SIGCONT)
        self._held = []

    def _stop_the_rest(self) -> None:
        """SIGSTOP everything the command started outside its group (another session,
        a background job's group): parents first, then again until nothing new turned
        up, so a loop cannot start one more worker between our look and our stop."""
        held: dict[int, Proc] = {p.pid: p for p in self._held}
        for _ in range(5):
            fresh = [p for p in self.tree() if p.pid not in held and p.pgid != self.pid]
            if not fresh:
                break
            signal_procs(fresh, signal.SIGSTOP)
            held.update((p.pid, p) for p in fresh)
        self._held = list(held.values())

    def own_session(self) -> bool:
        """A command that made itself a session leader is an orphaned group: the kernel
        drops SIGTSTP sent to it, so only SIGSTOP can pause it."""
        try:
            return os.getsid(self.pid) != os.getsid(0)
        except OSError:
            return False

    def has_terminal(self) -> bool:
        return self.tty is not None and foreground_group(self.tty) == self.pid

    def take_terminal(self) -> None:
        """Give the terminal back to the guard's group (as a shell does when a job stops),
        so a paused pane still answers Ctrl-C and Ctrl-Z, with the modes it had before the
        command started (a TUI stopped by SIGSTOP leaves the terminal raw)."""
        if self.has_terminal():
            self._its_modes = _modes(self.tty)
            _set_modes(self.tty, self._our_modes)
            set_foreground(self.tty, os.getpgrp())

    def give_terminal(self) -> None:
        """Hand the terminal, and its modes, back to the command, but only if the guard
        has it: a guard sent to the background (``bg``) must not steal it from the shell."""
        if foreground_group(self.tty) in (os.getpgrp(), self.pid):
            _set_modes(self.tty, self._its_modes)
            set_foreground(self.tty, self.pid)

    def stop(self, wait: Callable[[Callable[[], bool], float], None], grace: float) -> None:
        """SIGTSTP to the group, so a full-screen program restores the terminal before it
        stops; SIGSTOP (which cannot be caught, and leaves the terminal raw) only when the
        command has not stopped within ``grace`` seconds or cannot get SIGTSTP at all."""
        if not self.own_session():
            self.kill(signal.SIGTSTP)
            wait(lambda: self.stopped or not self.running, grace)
        if self.running and not self.stopped:
            self.kill(signal.SIGSTOP)
            wait(lambda: self.stopped or not self.running, grace)
        if self.running:
            self._stop_the_rest()
        self.take_terminal()

    def resume(self) -> None:
        """Terminal back to the command, continue it (and all it started), and nudge it
        to redraw."""
        self.give_terminal()
        held, self._held = self._held, []
        signal_procs(reversed(held), signal.SIGCONT)  # children first: parents then see them run
        self.kill(signal.SIGCONT)
        self.kill(signal.SIGWINCH)
