"""The popup: the full breakdown (:func:`breakdown`) and ``claude-meter show``, which
prints it or keeps it on screen.

The breakdown is a pure function of the state, the guards, the history and ``now``: one
block per account (every bucket with its bar, sparkline and pace, money, sources,
problems, guards, who is filling it), so golden tests pin it exactly. ``--watch`` is
what ``prefix+M`` runs inside ``display-popup -E``: a tiny pager that redraws every few
seconds (countdowns move), scrolls with j/k or the arrows, and closes on q or Esc.
Without a terminal it just prints, so it pipes and tests cleanly.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TextIO

from . import defaults, env, history, pace, registry
from .history import AccountHistory, HistoryPoint, of_account
from .model import Provenance, Snapshot, Window, printable
from .options import Settings
from .registry import GuardEntry
from .render import (
    account_name,
    duration,
    extra_usage_lines,
    percent,
    short_command,
    short_reset,
    tier,
)
from .sources import STATUS_LOGIN, SourceBook
from .store import State, Store
from .times import local_time
from .tmux import Tmux, TmuxError, socket_path
from .top import filling_lines, gather
from .windows import label

REDRAW_SECONDS = 5.0
WIDTH = 80
FOOTER = "q/Esc close · j/k scroll · r refresh"
_ANSI_RE = re.compile(r"\033\[[0-9;]*m")
_UP = {"k", "\x1b[A", "\x1bOA"}
_DOWN = {"j", " ", "\x1b[B", "\x1bOB"}
_CLOSE = {"q", "Q", "\x1b", "\x03"}


# --- the breakdown ----------------------------------------------------------------------
#
# Laid out for an 80x24 popup: 2 + 16 (label) + 2 + 18 (bar) + 2 + 6 (percent) + 2 + 32
# (reset) columns. Colour is optional and only ever doubles what the words say.

BAR_WIDTH = 16
LABEL_WIDTH = 16
SPARK_WIDTH = BAR_WIDTH + 2
SPARK_SPAN = 3600.0  # the last hour: what the pace is computed from
_ANSI = {"ok": "32", "warn": "33", "crit": "31", "dim": "2", "bold": "1"}


@dataclass(frozen=True)
class Look:
    """How to draw: the tiers' bounds and whether to emit ANSI colour."""

    warn: float = defaults.WARN
    crit: float = defaults.CRIT
    colour: bool = False
    threshold: float = defaults.THRESHOLD  # where a pace projection says the guards pause

    def paint(self, text: str, kind: str) -> str:
        return f"\033[{_ANSI[kind]}m{text}\033[0m" if self.colour and text else text

    def tier(self, value: float | None) -> str:
        return tier(value, self.warn, self.crit)


def bar(value: float | None, width: int = BAR_WIDTH) -> str:
    if value is None:
        return "[" + "·" * width + "]"
    full = round(min(max(value, 0.0), 100.0) / 100 * width)
    return "[" + "█" * full + "░" * (width - full) + "]"


def window_line(name: str, window: Window, now: datetime, look: Look) -> str:
    value = window.used(now)
    kind = look.tier(value)
    return (
        f"  {label(name)[:LABEL_WIDTH]:<{LABEL_WIDTH}}  {look.paint(bar(value), kind)}  "
        f"{look.paint(f'{percent(value):>6}', kind)}  {short_reset(window, now)}"
    )


def belongs(raw: Snapshot, row: Snapshot) -> bool:
    """Whether a stored reading is one of the folded row's sources."""
    if raw.org_uuid:
        return raw.org_uuid == row.org_uuid
    return (
        bool(raw.account_email)
        and (raw.account_email or "").lower() == (row.account_email or "").lower()
    )


def origins_line(row: Snapshot, now: datetime) -> str | None:
    """Where each bucket's value comes from (the fold takes each from the newest fresh
    reading that has it): ``from: statusline 12s ago: 5-hour, 7-day · Claude Code 4m
    ago: 7-day Opus``; None for a row without buckets."""
    groups: dict[Provenance, list[str]] = {}
    for name in row.windows():
        groups.setdefault(row.origin(name), []).append(label(name))
    parts = [
        f"{origin.source} {duration(origin.age(now))} ago"
        + (" (stale)" if origin.is_stale(now) else "")
        + f": {', '.join(names)}"
        for origin, names in groups.items()
    ]
    return "from: " + " · ".join(parts) if parts else None


def source_line(raws: list[Snapshot], now: datetime) -> str:
    seen = [
        f"{raw.browser} {duration(raw.age(now))} ago"
        + (" (stale)" if raw.is_stale(now) or raw.stale else "")
        for raw in sorted(raws, key=lambda r: r.fetched_at, reverse=True)
    ]
    return "sources: " + (" · ".join(seen) if seen else "none")


#: A guard line's room: the popup's 80 columns less the two-space indent of its block.
GUARD_WIDTH = 78


def guard_lines(entry: GuardEntry, now: datetime, width: int = GUARD_WIDTH) -> list[str]:
    """``guard %3 claude: paused until …``; a command too long for that goes on a line
    of its own below, cut from the left (its end is what differs between guards)."""
    where = " ".join(part for part in ("guard", entry.host, entry.pane) if part)
    status = entry.state
    if entry.resume_at is not None:
        when = datetime.fromtimestamp(entry.resume_at, timezone.utc)
        status += f" until {local_time(when, now)} (in {duration((when - now).total_seconds())})"
    line = f"{where} {short_command(entry.command, width)}: {status}"
    if len(line) <= width:
        return [line]
    return [f"{where}: {status}", f"  {short_command(entry.command, width - 2)}"]


def account_block(
    row: Snapshot,
    raws: list[Snapshot],
    bookings: Mapping[str, SourceBook],
    guards: list[GuardEntry],
    now: datetime,
    look: Look,
    points: list[HistoryPoint],
) -> list[str]:
    """One account: heading, every bucket, money, sources, problems, guards."""
    org = f"  (org {row.org_uuid[:8]})" if row.org_uuid and row.account_email else ""
    lines = [look.paint(account_name(row), "bold") + org]
    if row.stale:
        lines.append(look.paint(f"  STALE: newest reading is {duration(row.age(now))} old", "warn"))
    wins = row.windows()
    found = pace.paces(points, now, look.threshold)
    for name, window in wins.items():
        lines.append(window_line(name, window, now, look))
        if name in found:  # history, its sparkline, and whether it lasts until the reset
            spark = pace.sparkline(points, name, now, width=SPARK_WIDTH, span=SPARK_SPAN)
            lines.append(f"    {spark} {pace.outlook(found[name], now)}")
    if not wins:
        lines.append("  no usage reading yet")
    lines.extend(f"  {line}" for line in extra_usage_lines(row))
    origins = origins_line(row, now)
    if origins and len(raws) > 1:  # with one reading, the sources line says it all
        lines.append("  " + origins)
    lines.append("  " + source_line(raws, now))
    problems = list(row.errors)
    for book in bookings.values():
        error = book.get("error")
        if book.get("status") == STATUS_LOGIN and error is not None:
            lines.append(look.paint(f"  Claude Code: {error}", "crit"))
            problems = [p for p in problems if p != error]
        elif error and error not in problems:
            problems.append(error)
    lines.extend(f"  error: {problem}" for problem in problems[-3:])
    lines.extend(f"  {line}" for entry in guards for line in guard_lines(entry, now))
    return lines


def breakdown(
    state: State,
    now: datetime,
    guards: list[GuardEntry],
    look: Look,
    recorded: Mapping[str, AccountHistory] | None = None,
    filling: Mapping[str, list[str]] | None = None,
) -> str:
    """Everything the popup shows, as plain lines (ANSI colour only if ``look`` says).
    ``recorded`` is the history by account key (the sparklines and pace come from it);
    ``filling`` the "who is filling it" lines by account key."""
    rows = state.accounts(now)
    blocks: list[list[str]] = []
    placed: set[int] = set()
    for row in rows:
        raws = [raw for raw in state.rows if belongs(raw, row)]
        bookings = state.books_of(row)
        mine = [
            g
            for g in guards
            if g.account
            and g.account.lower() in ((row.account_email or "").lower(), row.org_uuid.lower())
        ]
        placed.update(id(g) for g in mine)
        points = of_account(recorded or {}, row.org_uuid, row.account_email).points
        block = account_block(row, raws, bookings, guards=mine, now=now, look=look, points=points)
        block.extend((filling or {}).get(row.account_key, []))
        blocks.append(block)
    unclaimed = [g for g in guards if id(g) not in placed]
    if unclaimed:
        blocks.append(
            ["guards (default account)"]
            + [f"  {line}" for entry in unclaimed for line in guard_lines(entry, now)]
        )
    orphans = state.unclaimed(rows)
    if orphans:
        blocks.append(["sources without data"] + [f"  error: {b['error']}" for b in orphans])
    return "\n\n".join("\n".join(block) for block in blocks)


# --- the command and its pager -------------------------------------------------------


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
