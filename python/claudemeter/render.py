"""How a reading is written for people: the words every view shares.

Durations, percents, account names, money, tiers, resets and guard commands, written
one way for the status segment, Claude Code's bar, the summary ``claude-meter`` prints
(:mod:`claudemeter.summary`) and the popup (:mod:`claudemeter.popup`). Pure functions
of their arguments: no I/O, so golden tests pin the output exactly.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath

from .bar import percent as percent  # every view's percent: the bar's own
from .clocktext import duration as duration
from .model import SPEND_LIMIT, Snapshot, Window
from .times import local_time


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


OK, WARN, CRIT = "ok", "warn", "crit"


def tier(value: float | None, warn: float, crit: float) -> str:
    """Which colour a percent gets: unknown is never alarming."""
    if value is None or value < warn:
        return OK
    return CRIT if value >= crit else WARN


def short_reset(window: Window, now: datetime) -> str:
    if window.resets_at is None:
        return "no reset scheduled (idle)"
    if window.has_reset(now):
        return f"reset {local_time(window.resets_at, now)}, old reading"
    left = duration((window.resets_at - now).total_seconds())
    return f"resets {local_time(window.resets_at, now)} (in {left})"


def short_command(command: str, room: int) -> str:
    """The command in ``room`` columns: ``python3 -m claudemeter.demo agent 1 …/work``.

    A full path (``/home/…/venv/bin/python3``) fills the line and reads the same for
    every guard; the arguments are what tell them apart. So the program becomes its name,
    then, if that is not enough, path arguments their last part, and last of all the
    text is cut from the left (its end is likelier to differ than its start)."""
    try:
        import shlex  # guard commands only: not on the redraw path

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
