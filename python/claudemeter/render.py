"""Turning rows into text for people: the summary ``claude-meter`` prints.

Pure functions of (rows, now): no I/O, so golden tests pin the output exactly and the
same words appear wherever a reading is shown.
"""

from __future__ import annotations

from datetime import datetime

from .model import Snapshot, Window

#: Human names for the buckets we know; anything else shows its server name.
WINDOW_LABELS = {
    "five_hour": "5-hour",
    "seven_day": "7-day",
    "seven_day_oauth_apps": "7-day OAuth apps",
    "seven_day_opus": "7-day Opus",
    "seven_day_sonnet": "7-day Sonnet",
}


def label(name: str) -> str:
    return WINDOW_LABELS.get(name, name.replace("_", " "))


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


def local_time(when: datetime, now: datetime) -> str:
    """``16:59`` today, ``Sat 09:59`` within a week, else the date."""
    here = when.astimezone()
    today = now.astimezone()
    if here.date() == today.date():
        return here.strftime("%H:%M")
    if abs((here - today).days) < 6:
        return here.strftime("%a %H:%M")
    return here.strftime("%Y-%m-%d %H:%M")


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


def extra_usage_lines(row: Snapshot) -> list[str]:
    lines = []
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
                f"  {label(name):<{width}}  {percent(window.utilization):>6}  "
                f"{reset_text(window, now)}"
            )
        lines.extend(f"  {line}" for line in extra_usage_lines(row))
        lines.extend(f"  error: {err}" for err in row.errors)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
