"""The summary ``claude-meter`` prints when given no command: one block per account with
every bucket, its percent and reset, money, errors, the reading's source and age.

A pure function of (rows, now): no I/O, so golden tests pin the output exactly. The
words (durations, percents, money) are :mod:`claudemeter.render`'s, the buckets' labels
:mod:`claudemeter.windows`'.
"""

from __future__ import annotations

from datetime import datetime

from .clocktext import duration
from .model import Snapshot, Window, printable
from .render import account_name, extra_usage_lines, percent
from .times import local_time
from .windows import label


def reset_text(window: Window, now: datetime) -> str:
    if window.resets_at is None:
        return "no reset scheduled (idle window)"
    if window.has_reset(now):
        return f"reset at {local_time(window.resets_at, now)} (reading predates it)"
    left = (window.resets_at - now).total_seconds()
    return f"resets {local_time(window.resets_at, now)} (in {duration(left)})"


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
