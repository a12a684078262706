"""Claude Code's bar: ``5h 57% ↻1h23m · 7d 33%``, from plain numbers.

One implementation for both ways ``claude-meter statusline`` answers: the full path
(:mod:`claudemeter.sources.statusline`, which stores the reading first) and the memo's
(:mod:`claudemeter.statusline_memo`, for a reading already stored). Imports only the
constants modules, so the memo's path stays a few milliseconds.
"""

from __future__ import annotations

from .clocktext import duration
from .windows import short_label

TYPE_CHECKING = False  # typing itself costs every call milliseconds
if TYPE_CHECKING:
    from collections.abc import Sequence

#: What Claude Code's bar shows when there is nothing to say.
NEUTRAL = "claude-meter: –"

#: One bucket on the bar: its server name, utilization (percent 0-100, None when the
#: number is not usable) and reset (epoch seconds, None when not known).
Entry = tuple[str, "float | None", "float | None"]


def percent(value: float | None) -> str:
    """``57%``, ``57.5%``; ``?`` for None."""
    if value is None:
        return "?"
    return f"{value:.0f}%" if abs(value - round(value)) < 0.05 else f"{value:.1f}%"


def line(entries: Sequence[Entry], spend: str | None, now: float, warning: str | None) -> str:
    """The bar at ``now`` (epoch seconds): each entry in order (a window whose reset has
    passed shows 0 %; the 5-hour one its countdown), the gateway's spend text, then the
    pace warning; :data:`NEUTRAL` when there is nothing to show."""
    parts = []
    for name, value, resets in entries:
        over = resets is not None and resets <= now  # a stored row's old window
        text = f"{short_label(name)} {percent(0.0 if over else value)}"
        if name == "five_hour" and resets is not None and not over:
            text += f" ↻{duration(resets - now)}"
        parts.append(text)
    if spend:
        parts.append(spend)
    if not parts:
        return NEUTRAL
    if warning:
        parts.append(warning)
    return " · ".join(parts)
