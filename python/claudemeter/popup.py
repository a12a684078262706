"""``claude-meter show``: the full breakdown, printed, or kept on screen in the popup.

``--watch`` is what ``prefix+M`` runs inside ``display-popup -E``: a tiny pager that
redraws every few seconds (countdowns move), scrolls with j/k or the arrows, and closes
on q or Esc. Without a terminal it just prints, so it pipes and tests cleanly.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import sys
import termios
import textwrap
import tty
from collections.abc import Callable
from typing import TextIO

from . import env, history, registry
from .model import printable
from .options import Settings
from .render import Look, breakdown
from .store import Store
from .times import local_time
from .tmux import Tmux, TmuxError, socket_path
from .top import filling_lines, gather

REDRAW_SECONDS = 5.0
WIDTH = 80
FOOTER = "q/Esc close · j/k scroll · r refresh"
_ANSI_RE = re.compile(r"\033\[[0-9;]*m")
_UP = {"k", "\x1b[A", "\x1bOA"}
_DOWN = {"j", " ", "\x1b[B", "\x1bOB"}
_CLOSE = {"q", "Q", "\x1b", "\x03"}


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--watch",
        action="store_true",
        help="stay on screen and redraw every few seconds; q or Esc closes"
        " (what the prefix+M popup runs)",
    )
    parser.add_argument(
        "--no-colour",
        "--no-color",
        dest="colour",
        action="store_false",
        help="no ANSI colour (also: NO_COLOR set, or not a terminal)",
    )


def wants_colour(stream: TextIO, asked: bool = True) -> bool:
    return (
        asked
        and stream.isatty()
        and "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
    )


def tmux_settings() -> Settings:
    """The warn/crit tiers from the tmux options when inside tmux; else the defaults."""
    socket = socket_path()
    if socket is None:
        return Settings()
    try:
        return Settings.from_options(Tmux(socket).options())
    except TmuxError:
        return Settings()


def text(look: Look) -> str:
    from .commands import NO_DATA_HINT

    store = Store()
    state = store.read()
    now = env.now()
    heading = f"claude-meter · {local_time(now, now)} local"
    recorded = history.read(store.directory)
    rows = [row for row in state.accounts(now) if row.usage is not None]
    filling = {t.row.account_key: filling_lines(t) for t in gather(rows, recorded, now)}
    body = breakdown(state, now, registry.active(), look, recorded, filling)
    from .resume import waiting_lines

    stopped_agents = waiting_lines(now)
    if stopped_agents:
        body = f"{body}\n\n" + "\n".join(stopped_agents)
    if not state.accounts(now):
        body = "\n\n".join(part for part in (NO_DATA_HINT, body) if part)
    if state.problem:
        body = f"store: {state.problem}\n\n{body}"
    body = printable(f"{look.paint(heading, 'bold')}\n\n{body}", look.colour)
    return "\n".join(wrap(line) for line in body.split("\n"))


def wrap(line: str, width: int = WIDTH) -> str:
    """Long plain lines (errors, hints) wrap under their own indent; bars never do."""
    if len(line) <= width or _ANSI_RE.search(line):
        return line
    indent = line[: len(line) - len(line.lstrip())]
    return "\n".join(textwrap.wrap(line, width, subsequent_indent=indent + "  "))


def clip(line: str, width: int) -> str:
    """Cut a line to ``width`` visible cells, keeping (and closing) its colour codes."""
    out, shown, pos = [], 0, 0
    for match in _ANSI_RE.finditer(line + "\033[m"):
        chunk = line[pos : match.start()]
        room = width - shown
        out.append(chunk[:room])
        shown += min(len(chunk), room)
        out.append(match.group(0))
        pos = match.end()
    return "".join(out)


def _key(fd: int) -> str:
    data = os.read(fd, 1).decode(errors="replace")
    if data == "\x1b":
        while select.select([fd], [], [], 0.05)[0]:
            data += os.read(fd, 8).decode(errors="replace")
    return data


def watch(produce: Callable[[], str], fd: int, out: TextIO) -> int:
    """Redraw ``produce()`` on the alternate screen until q/Esc; scroll with j/k."""
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    out.write("\033[?1049h\033[?25l")
    top, lines, size = 0, produce().splitlines(), (0, 0)
    try:
        while True:
            cols, rows = shutil.get_terminal_size()
            height = max(1, rows - 1)
            top = max(0, min(top, len(lines) - height))
            shown = [clip(line, cols) for line in lines[top : top + height]]
            out.write("\033[H\033[2J" + "\r\n".join(shown))
            out.write(f"\033[{rows};1H\033[2m{FOOTER[:cols]}\033[0m")
            out.flush()
            size = (cols, rows)
            waited = 0.0
            key = ""
            while not key and waited < REDRAW_SECONDS and shutil.get_terminal_size() == size:
                if select.select([fd], [], [], 1.0)[0]:
                    key = _key(fd)
                waited += 1.0
            if key in _CLOSE:
                return 0
            if key in _UP:
                top -= 1
            elif key in _DOWN:
                top += 1
            if not key or key in ("r", "R"):
                lines = produce().splitlines()
    finally:
        out.write("\033[?25h\033[?1049l")
        out.flush()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def cmd_show(args: argparse.Namespace) -> int:
    settings = tmux_settings()
    look = Look(
        settings.warn, settings.crit, wants_colour(sys.stdout, args.colour), settings.threshold
    )
    if args.watch and sys.stdin.isatty() and sys.stdout.isatty():
        return watch(lambda: text(look), sys.stdin.fileno(), sys.stdout)
    print(text(look))
    return 0
