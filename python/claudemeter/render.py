"""Turning rows into text for people: the summary ``claude-meter`` prints.

Pure functions of (rows, now): no I/O, so golden tests pin the output exactly and the
same words appear wherever a reading is shown.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath

from . import pace
from .history import AccountHistory, HistoryPoint, of_account
from .model import JSON, SPEND_LIMIT, Provenance, Snapshot, Window, printable
from .registry import GuardEntry
from .store import State, login_books
from .times import local_time
from .windows import label


def duration(seconds: float) -> str:
    """Compact countdown/age: ``45s``, ``12m``, ``1h23m``, ``2d4h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def percent(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.0f}%" if abs(value - round(value)) < 0.05 else f"{value:.1f}%"


def reset_text(window: Window, now: datetime) -> str:
    if window.resets_at is None:
        return "no reset scheduled (idle window)"
    if window.has_reset(now):
        return f"reset at {local_time(window.resets_at, now)} (reading predates it)"
    left = (window.resets_at - now).total_seconds()
    return f"resets {local_time(window.resets_at, now)} (in {duration(left)})"


def account_name(row: Snapshot) -> str:
    return row.account_email or f"org {row.org_uuid[:8]}"


def _money(minor: object, currency: object) -> str:
    if not isinstance(minor, (int, float)) or isinstance(minor, bool):
        return "?"
    code = currency if isinstance(currency, str) else ""
    return f"{minor / 100:.2f} {code}".strip()


def spend_text(spend: object) -> str | None:
    """A gateway's ``spend_limit`` as money: ``$12.34 of $50.00 (monthly)``."""
    if not isinstance(spend, dict):
        return None
    used, limit, period = spend.get("used_usd"), spend.get("limit_usd"), spend.get("period")
    if not isinstance(used, (int, float)) or isinstance(used, bool):
        return None
    text = f"${used:,.2f}"
    if isinstance(limit, (int, float)) and not isinstance(limit, bool):
        text += f" of ${limit:,.2f}"
    return text + (f" ({period})" if isinstance(period, str) and period else "")


def extra_usage_lines(row: Snapshot) -> list[str]:
    lines = []
    spend = spend_text((row.usage or {}).get(SPEND_LIMIT))
    if spend:
        lines.append(f"spend limit: {spend}")
    extra = (row.usage or {}).get("extra_usage")
    if isinstance(extra, dict) and extra.get("is_enabled"):
        used = _money(extra.get("used_credits"), extra.get("currency"))
        limit = _money(extra.get("monthly_limit"), extra.get("currency"))
        lines.append(f"extra usage: {used} of {limit} this month")
    overage = row.overage
    if isinstance(overage, dict):
        if overage.get("out_of_credits"):
            lines.append("overage: OUT OF CREDITS")
        elif overage.get("is_enabled"):
            used = _money(overage.get("used_credits"), overage.get("currency"))
            limit = _money(overage.get("monthly_credit_limit"), overage.get("currency"))
            lines.append(f"overage: {used} of {limit} spend limit")
    sub = row.subscription
    if isinstance(sub, dict) and sub.get("status"):
        nxt = f", next charge {sub['next_charge_date']}" if sub.get("next_charge_date") else ""
        lines.append(f"subscription: {sub['status']}{nxt}")
    return lines


def summary(rows: list[Snapshot], now: datetime) -> str:
    """One block per account: every bucket, reset, extras, source and age."""
    blocks = []
    for row in rows:
        age = duration(row.age(now))
        stale = ", STALE" if row.stale else ""
        lines = [f"{account_name(row)}  ({row.browser}, {age} ago{stale})"]
        wins = row.windows()
        if not wins:
            lines.append("  no usage reading yet")
        width = max((len(label(n)) for n in wins), default=0)
        for name, window in wins.items():
            lines.append(
                f"  {label(name):<{width}}  {percent(window.used(now)):>6}  "
                f"{reset_text(window, now)}"
            )
        lines.extend(f"  {line}" for line in extra_usage_lines(row))
        lines.extend(f"  error: {err}" for err in row.errors)
        blocks.append("\n".join(lines))
    return printable("\n\n".join(blocks))


# --- the full breakdown (``claude-meter show``, the prefix+M popup) -------------------
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

    warn: float = 70.0
    crit: float = 90.0
    colour: bool = False
    threshold: float = 90.0  # where a pace projection says the guards will pause

    def paint(self, text: str, kind: str) -> str:
        return f"\033[{_ANSI[kind]}m{text}\033[0m" if self.colour and text else text

    def tier(self, value: float | None) -> str:
        return tier(value, self.warn, self.crit)


OK, WARN, CRIT = "ok", "warn", "crit"


def tier(value: float | None, warn: float, crit: float) -> str:
    """Which colour a percent gets: unknown is never alarming."""
    if value is None or value < warn:
        return OK
    return CRIT if value >= crit else WARN


def bar(value: float | None, width: int = BAR_WIDTH) -> str:
    if value is None:
        return "[" + "·" * width + "]"
    full = round(min(max(value, 0.0), 100.0) / 100 * width)
    return "[" + "█" * full + "░" * (width - full) + "]"


def short_reset(window: Window, now: datetime) -> str:
    if window.resets_at is None:
        return "no reset scheduled (idle)"
    if window.has_reset(now):
        return f"reset {local_time(window.resets_at, now)}, old reading"
    left = duration((window.resets_at - now).total_seconds())
    return f"resets {local_time(window.resets_at, now)} (in {left})"


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


def short_command(command: str, room: int) -> str:
    """The command in ``room`` columns: ``python3 -m claudemeter.demo agent 1 …/work``.

    A full path (``/home/…/venv/bin/python3``) fills the line and reads the same for
    every guard; the arguments are what tell them apart. So the program becomes its name,
    then, if that is not enough, path arguments their last part, and last of all the
    text is cut from the left (its end is likelier to differ than its start)."""
    try:
        words = shlex.split(command)
    except ValueError:  # cm-guard cuts long labels at 200 characters, maybe inside quotes
        words = command.split()
    text = command
    for written in (shlex.quote(words[0]), words[0]) if words else ():
        if command.startswith(written):
            text = (PurePosixPath(words[0]).name or words[0]) + command[len(written) :]
            break
    for word in words[1:]:
        path = PurePosixPath(word)
        if len(text) > room and path.is_absolute() and len(path.parts) > 2:
            text = text.replace(word, f"…/{path.name}")
    return text if len(text) <= room else "…" + text[len(text) - room + 1 :]


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
    bookings: dict[str, JSON],
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
        if book.get("status") == "login" and isinstance(error, str):
            lines.append(look.paint(f"  Claude Code: {error}", "crit"))
            problems = [p for p in problems if p != error]
        elif isinstance(error, str) and error and error not in problems:
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
        bookings = {
            key: book
            for key, book in state.sources.items()
            if isinstance(book, dict) and key == f"oauth:{row.org_uuid}"
        }
        bookings.update(login_books(state.sources, row))
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
    orphans = [
        book
        for key, book in state.sources.items()
        if isinstance(book, dict)
        and book.get("error")
        and not any(
            key == f"oauth:{row.org_uuid}" or key in login_books(state.sources, row) for row in rows
        )
    ]
    if orphans:
        blocks.append(["sources without data"] + [f"  error: {b['error']}" for b in orphans])
    return "\n\n".join("\n".join(block) for block in blocks)
