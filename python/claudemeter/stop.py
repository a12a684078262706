"""``claude-meter stop``: stop this state dir's bridge and this tmux server's loop.

Each is found by the pid and start time it recorded when it started (``bridge.pid``,
the loop's lock file; :mod:`claudemeter.pidfile`) and signalled only while the kernel
still shows that very process: never by name, so another user's, another state dir's or
another tmux server's claude-meter is never touched. The loop's server is told first
that it stopped on purpose, so every placeholder says so (or goes blank) instead of
showing the last numbers for ever or starting a new loop.
"""

from __future__ import annotations

import argparse

from . import env, pidfile, placeholders
from .bridge import PID_FILE
from .placeholders import SAY_STALLED
from .status import PLACEHOLDERS
from .tmux import Tmux, TmuxError, socket_path
from .tmux_loop import lock_path

STOPPED = "claude: stopped"


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Stop the bridge (`claude-meter serve`) of this state dir (CLAUDEMETER_STATE_DIR)"
        " and the tmux-loop of this tmux server ($TMUX, else tmux's default server), by"
        " the pid and start time each recorded; never by name. The status line then says"
        f" '{STOPPED}'. Reloading the plugin starts them again. To uninstall: run this,"
        " then remove the plugin's line from ~/.tmux.conf."
    )


def _stop(what: str, record: pidfile.Process | None) -> str:
    if record is None or not record.running():
        return f"no {what} running"
    if record.terminate():
        return f"stopped the {what} (pid {record.pid})"
    return f"the {what} (pid {record.pid}) did not stop within 5 s; `kill -9 {record.pid}`"


def _server_socket(tmux: Tmux) -> str | None:
    """This server's socket path (``$TMUX``, else ask tmux's default server)."""
    if tmux.socket is not None:
        return tmux.socket
    try:
        return tmux.run(["display-message", "-p", "#{socket_path}"]).strip() or None
    except TmuxError:
        return None  # no tmux server here


def cmd_stop(args: argparse.Namespace) -> int:
    directory = env.state_dir()
    print(f"bridge: {_stop(f'bridge for {directory}', pidfile.read(directory / PID_FILE))}")
    tmux = Tmux(socket_path())
    socket = _server_socket(tmux)
    if socket is None:
        print("tmux-loop: no tmux server running")
        return 0
    said = _stop(f"loop for {socket}", pidfile.read(lock_path(socket, directory)))
    try:  # no deadline: nothing calls it stalled, nothing starts another loop
        Tmux(socket).run(
            ["set-option", "-gqu", f"@{placeholders.UNTIL}"],
            *(
                ["set-option", "-gq", f"@{name}", STOPPED if name in SAY_STALLED else ""]
                for name in PLACEHOLDERS
            ),
        )
    except TmuxError as exc:
        said += f" (its status line could not be told: {exc})"
    print(f"tmux-loop: {said}")
    return 0
