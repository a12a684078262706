"""Times in and out: the RFC 3339 form every JSON body and file carries, and the local
clock time people read.

No imports of our own: :mod:`claudemeter.env` (the pinned clock) and
:mod:`claudemeter.model` (the snapshot's times) both build on it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

#: Times every reader can print and compute with (local time, plus a grace, as epoch
#: seconds): a year the ``%Y`` format writes in four digits, far from datetime's ends.
MIN_YEAR, MAX_YEAR = 1970, 9000

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))$"
)


def parse_time(text: str) -> datetime:
    """RFC 3339 with ``Z`` or an offset, with no, milli-, micro- or nanosecond fractions."""
    match = _TIME_RE.match(text.strip())
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text[:40]!r}")
    year, month, day, hour, minute, second, frac, zulu, sign, oh, om = match.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if not zulu:
        offset = timedelta(hours=int(oh), minutes=int(om))
        if sign == "-":
            offset = -offset
    if not MIN_YEAR <= int(year) <= MAX_YEAR:
        raise ValueError(f"time out of range (years {MIN_YEAR}-{MAX_YEAR}): {text[:40]!r}")
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),
            micro,
            tzinfo=timezone(offset),
        )
    except ValueError as exc:  # offset of a day or more, February 30th
        raise ValueError(f"not an RFC 3339 time ({exc}): {text[:40]!r}") from None
    return value.astimezone(timezone.utc)


def format_time(value: datetime) -> str:
    """``2026-11-25T12:00:00.000Z``: the form ClaudeMeter wrote, milliseconds and ``Z``."""
    value = value.astimezone(timezone.utc)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
        f"{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}Z"
    )


def local_time(when: datetime, now: datetime) -> str:
    """``16:59`` today, ``Sat 09:59`` within a week, else the date."""
    here = when.astimezone()
    today = now.astimezone()
    if here.date() == today.date():
        return here.strftime("%H:%M")
    if abs((here - today).days) < 6:
        return here.strftime("%a %H:%M")
    return here.strftime("%Y-%m-%d %H:%M")
