"""Talking to one tmux server: its socket, its options, commands batched into one call.

Plain ``tmux`` client processes rather than libtmux: the loop and the popup need three
commands, and each batch costs one short-lived process either way.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from .options import parse_show_options

TIMEOUT = 10.0


class TmuxGone(RuntimeError):
    """The server does not answer (it exited, or the socket is gone)."""


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
        self.base = ["tmux", "-u", "-S", socket] if socket else ["tmux", "-u"]

    def run(self, *commands: Sequence[str]) -> str:
        """Run commands in one client call; stdout, or :class:`TmuxGone` on failure."""
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
            raise TmuxGone(f"tmux did not answer: {exc}") from None
        if done.returncode != 0:
            raise TmuxGone(done.stderr.strip() or f"tmux exited {done.returncode}")
        return done.stdout

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
        except TmuxGone:
            return False
        return flag in usage
