"""How a span of time is written in the segment, the popup and Claude Code's bar.

Apart from :mod:`claudemeter.render` so that the redraw path's cached segment
(:mod:`claudemeter.segment_cache`) writes its countdowns and ages with the same rule,
importing nothing.
"""

from __future__ import annotations


def duration(seconds: float) -> str:
    """Compact countdown/age: ``45s``, ``12m``, ``1h23m``, ``2d4h`` (negative: ``0s``)."""
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
