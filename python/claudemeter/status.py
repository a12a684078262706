"""The status-line segment: a few characters, read from the store and nothing else.

tmux re-runs this for every attached client on every redraw, so it never fetches,
never takes a lock and imports nothing heavy.
"""

from __future__ import annotations

from datetime import datetime

from .model import Snapshot
from .render import duration, percent
from .store import State


def _pick(rows: list[Snapshot]) -> Snapshot | None:
    with_usage = [r for r in rows if r.usage is not None]
    if not with_usage:
        return None
    def worst(row: Snapshot) -> float:
        w = row.window("five_hour")
        return w.utilization if w and w.utilization is not None else -1.0
    return max(with_usage, key=worst)


def segment(state: State, now: datetime) -> str:
    """``5h 42% ↻1h23m · 7d 61%``; ``setup`` with no data; stale data shows its age."""
    row = _pick(state.accounts(now))
    if row is None:
        return "claude: setup"
    parts = []
    five = row.window("five_hour")
    if five is not None:
        text = f"5h {percent(0.0 if five.has_reset(now) else five.utilization)}"
        if five.resets_at is not None and not five.has_reset(now):
            text += f" ↻{duration((five.resets_at - now).total_seconds())}"
        parts.append(text)
    seven = row.window("seven_day")
    if seven is not None:
        parts.append(f"7d {percent(0.0 if seven.has_reset(now) else seven.utilization)}")
    text = " · ".join(parts) or "claude: ?"
    if row.stale:
        text += f" (stale {duration(row.age(now))})"
    return text
