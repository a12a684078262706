"""Talking to one tmux server: its socket, its options, commands batched into one call.

Plain ``tmux`` client processes rather than libtmux: the loop and the popup need three
commands, and each batch costs one short-lived process either way.
"""

from __future__ import annotations

import errno
import os
import socket as sockets
import subprocess
from collections.abc import Mapping, Sequence
from typing import NoReturn

from .options import parse_show_options

TIMEOUT = 10.0


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


class Tmux:
    """One server, addressed by its socket path (``None``: tmux's own default)."""

    def __init__(self, socket: str | None) -> None:
        self.socket = socket
        self.base = ["tmux", "-u", "-S", socket] if socket else ["tmux", "-u"]

    def run(self, *commands: Sequence[str]) -> str:
        """Run commands in one client call and return stdout.

        Raises :class:`TmuxGone` when the server has exited, :class:`TmuxError` when the
        call failed or timed out while the server is still there."""
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
            line for line in self.run(["list-clients", "-F", "#{client_name}"]).splitlines() if line
        ]

    def supports(self, command: str, flag: str = "") -> bool:
        """Whether this tmux has ``command`` (and ``flag`` in its usage line)."""
        try:
            usage = self.run(["list-commands", command])
        except TmuxError:
            return False
        return flag in usage
