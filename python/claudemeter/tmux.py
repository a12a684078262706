"""Talking to one tmux server: its socket, its options, commands batched into one call.

Plain ``tmux`` client processes rather than libtmux: the popup needs three commands, and
each batch costs one short-lived process either way. The loop, which talks to its server
every few seconds for as long as the server runs, keeps one control-mode client open
instead (:class:`Control`), so an idle round starts no process at all.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import select
import socket as sockets
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import NoReturn

from .options import parse_show_options

TIMEOUT = 10.0
#: After a control-mode client could not start or ended, this long (seconds) on plain
#: ``tmux`` processes before the next try (a tmux older than 3.2 has no ``attach -f``).
CONTROL_RETRY = 60.0


class TmuxError(RuntimeError):
    """A tmux call failed or took longer than :data:`TIMEOUT`; the server may still be there
    (stopped, swamped, or refusing one command)."""


class TmuxGone(TmuxError):
    """The server is gone: its socket no longer exists or nothing listens on it."""


def server_gone(socket: str) -> bool:
    """Whether the server behind ``socket`` (a path) has exited.

    A connect() is answered by the kernel even while the server is stopped or busy, so a
    slow server is never mistaken for a gone one: only a missing socket or a refused
    connection counts."""
    probe = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    probe.settimeout(TIMEOUT)
    try:
        probe.connect(socket)
    except OSError as exc:
        return exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR)
    finally:
        probe.close()
    return False


def socket_path(environ: Mapping[str, str] | None = None) -> str | None:
    """The server socket from ``$TMUX`` (``path,pid,session``; the path may hold commas)."""
    value = (os.environ if environ is None else environ).get("TMUX", "")
    parts = value.rsplit(",", 2)
    return parts[0] if len(parts) == 3 and parts[0] else None


def _argument(text: str) -> str:
    """tmux splits commands at an argument ending in ``;``; ``\\;`` keeps it literal."""
    return text[:-1] + "\\;" if text.endswith(";") and not text.endswith("\\;") else text


class ControlEnded(Exception):
    """The control-mode client is gone (it never started, its session went, or the server
    did): the caller asks with a plain ``tmux`` process instead."""


def quote(argument: str) -> str:
    """One argument as tmux's command parser reads it inside double quotes."""
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


class Control:
    """A tmux control-mode client (``tmux -C attach-session -f ignore-size,no-output``,
    tmux 3.2+) kept open: each command goes down its stdin as one line, and its output
    comes back between ``%begin`` and ``%end`` (``%error`` when it failed), so a command
    costs no process. The client takes no part in window sizes, receives no pane output,
    and is left out of :meth:`Tmux.clients`; it exits when its stdin closes (our end)."""

    def __init__(self, base: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            [*base, "-C", "attach-session", "-f", "ignore-size,no-output"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.buffer = b""

    def run(self, commands: Sequence[Sequence[str]], timeout: float) -> str:
        """Each command's output, in order, joined as one ``tmux`` call would print it.
        Raises :class:`ControlEnded` on EOF, :class:`TmuxError` when a command failed
        (the others still ran) or the answers took longer than ``timeout`` seconds."""
        assert self.process.stdin is not None
        lines = "".join(" ".join(quote(arg) for arg in command) + "\n" for command in commands)
        try:
            self.process.stdin.write(lines.encode())
            self.process.stdin.flush()
        except OSError as exc:
            raise ControlEnded(str(exc)) from None
        deadline = time.monotonic() + timeout
        output: list[str] = []
        failed = ""
        for _ in commands:
            lines_of, error = self._block(deadline)
            output += lines_of
            if error and not failed:
                failed = "\n".join(lines_of) or "a tmux command failed"
        if failed:
            raise TmuxError(failed)
        return "".join(line + "\n" for line in output)

    def _block(self, deadline: float) -> tuple[list[str], bool]:
        """The next answer to one of our commands (``%begin`` with flags 1); lines outside
        a block (notifications, the attach's own answer) are skipped."""
        while True:
            line = self._line(deadline)
            if line.startswith("%begin ") and line.endswith(" 1"):
                number = line.split(" ")[2]
                body: list[str] = []
                while True:
                    line = self._line(deadline)
                    words = line.split(" ")
                    if words[0] in ("%end", "%error") and len(words) == 4 and words[2] == number:
                        return body, words[0] == "%error"
                    body.append(line)
            if line.startswith("%exit"):
                raise ControlEnded(line)

    def _line(self, deadline: float) -> str:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TmuxError(f"tmux did not answer within {TIMEOUT:g}s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise ControlEnded("the control-mode client ended")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def close(self) -> None:
        """Close our end (the client exits on EOF) and reap it."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Tmux:
    """One server, addressed by its socket path (``None``: tmux's own default). With
    ``control``, commands go through a :class:`Control` client while one works."""

    def __init__(self, socket: str | None, control: bool = False) -> None:
        self.socket = socket
        self.base = ["tmux", "-u", "-S", socket] if socket else ["tmux", "-u"]
        self.control: Control | None = None
        self.control_after = time.monotonic() if control else math.inf

    def run(self, *commands: Sequence[str]) -> str:
        """Run commands in one client call and return stdout.

        Raises :class:`TmuxGone` when the server has exited, :class:`TmuxError` when the
        call failed or timed out while the server is still there."""
        if self.control is None and time.monotonic() >= self.control_after:
            self.control = Control(self.base)
        if self.control is not None:
            try:
                return self.control.run(commands, TIMEOUT)
            except ControlEnded:
                self.close()
                self.control_after = time.monotonic() + CONTROL_RETRY
                if self.socket is not None and server_gone(self.socket):
                    raise TmuxGone(f"the tmux server at {self.socket} is gone") from None
            except TmuxError as exc:
                if "did not answer" in str(exc):  # out of step now: a new client next time
                    self.close()
                    self._failed(str(exc))
                raise
        argv = list(self.base)
        for index, command in enumerate(commands):
            if index:
                argv.append(";")
            argv.extend(_argument(arg) for arg in command)
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._failed(f"tmux did not answer: {exc}")
        if done.returncode != 0:
            self._failed(done.stderr.strip() or f"tmux exited {done.returncode}")
        return done.stdout

    def close(self) -> None:
        """End the control-mode client, if one is open (the next call opens another)."""
        if self.control is not None:
            self.control.close()
            self.control = None

    def _failed(self, why: str) -> NoReturn:
        if self.socket is not None and server_gone(self.socket):
            raise TmuxGone(f"the tmux server at {self.socket} is gone ({why})")
        raise TmuxError(why)

    def options(self) -> dict[str, str]:
        """Every global ``@claude_meter_*`` option, in one call."""
        return parse_show_options(self.run(["show-options", "-g"]))

    def set_user_options(self, values: Mapping[str, str]) -> None:
        """``@name`` for each entry, in one call (tmux redraws the status line itself)."""
        if values:
            self.run(
                *(["set-option", "-g", "--", f"@{name}", value] for name, value in values.items())
            )

    def clients(self) -> list[str]:
        return [
            line
            for line in self.run(
                ["list-clients", "-F", "#{?client_control_mode,,#{client_name}}"]
            ).splitlines()
            if line
        ]

    def supports(self, command: str, flag: str = "") -> bool:
        """Whether this tmux has ``command`` (and ``flag`` in its usage line)."""
        try:
            usage = self.run(["list-commands", command])
        except TmuxError:
            return False
        return flag in usage
