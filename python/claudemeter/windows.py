"""The usage windows (the server's buckets) claudemeter knows by name: one table.

Each known bucket's server name (the key in ``/api/oauth/usage`` and the statusLine's
``rate_limits``), the label the summary, the popup and notices print, the short label of
the status segment, the statusline bar and pace's warning, and the window's length in
seconds (how far back its current window began). A bucket not in the table is still
kept and shown, under its server name with spaces for underscores.

Plain constants and tuples, no imports: the redraw and statusline paths load it.
"""

from __future__ import annotations

HOUR = 3600.0
DAY = 86400.0
#: The windows' lengths in seconds (not their names: those are ``"five_hour"`` ...).
FIVE_HOUR = 5 * HOUR
SEVEN_DAY = 7 * DAY

#: (name, label, short label, length in seconds), in the order every view lists them.
WINDOWS: tuple[tuple[str, str, str, float], ...] = (
    ("five_hour", "5-hour", "5h", FIVE_HOUR),
    ("seven_day", "7-day", "7d", SEVEN_DAY),
    ("seven_day_oauth_apps", "7-day OAuth apps", "7d apps", SEVEN_DAY),
    ("seven_day_opus", "7-day Opus", "7d opus", SEVEN_DAY),
    ("seven_day_sonnet", "7-day Sonnet", "7d sonnet", SEVEN_DAY),
)

#: The known names; the status line and the guard know these by name, and any other
#: window the server sends is still kept and shown in the breakdown.
KNOWN_WINDOWS = tuple(name for name, _, _, _ in WINDOWS)
#: The two every short view shows: the statusline bar, ``top``'s columns, the segment.
MAIN = ("five_hour", "seven_day")

_LABELS = {name: text for name, text, _, _ in WINDOWS}
_SHORT = {name: short for name, _, short, _ in WINDOWS}
_LENGTHS = {name: seconds for name, _, _, seconds in WINDOWS}


def label(name: str) -> str:
    """``5-hour``, ``7-day Opus``; an unknown bucket's name with spaces."""
    return _LABELS.get(name) or name.replace("_", " ")


def short_label(name: str) -> str:
    """``5h``, ``7d opus``; an unknown bucket's name with spaces."""
    return _SHORT.get(name) or name.replace("_", " ")


def length(name: str) -> float | None:
    """The window's length in seconds: a known bucket's, 7 days for any other
    ``seven_day_*`` (the server's per-model weekly buckets), else None."""
    if name in _LENGTHS:
        return _LENGTHS[name]
    return SEVEN_DAY if name.startswith("seven_day") else None
