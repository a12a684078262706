"""Pace: how fast each bucket is filling, and when it would hit the wall.

Everything here is a pure function of the store's history (every source's readings of
one account, oldest first) and ``now``, so readers on tmux's redraw path can afford it
and tests can pin it with synthetic histories.

Two things make a naive slope lie. A bucket drops to ~0 when it resets, so only the
readings since the last reset count (a new ``resets_at`` or a sharp fall marks it).
Readings from several sources interleave and disagree by a point or two, so the rate is
a Theil–Sen slope (the median of the pairwise slopes), which a few odd readings cannot
drag. The projection starts from the newest reading: it is the server's own latest count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from . import defaults
from .history import HistoryPoint
from .model import JSON, format_time
from .times import local_time
from .windows import FIVE_HOUR, KNOWN_WINDOWS, short_label

#: The rate is measured over this much recent history.
RATE_WINDOW = 45 * 60.0
#: Fewer readings, or a shorter stretch of time, give no rate at all.
MIN_POINTS = 3
MIN_SPAN = 5 * 60.0
#: Two ``resets_at`` this close are the same window (sources round them differently).
RESET_MATCH = 120.0
#: A fall of this many points between readings is a reset even without a ``resets_at``.
RESET_DROP = 10.0
#: Projections further out than this say nothing useful.
MAX_PROJECTION = 8 * 86400.0
#: Pairwise slopes grow quadratically; this many readings are plenty for a median.
MAX_FIT_POINTS = 60

SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Sample:
    """One reading of one bucket: epoch seconds, percent, its reset (epoch) if known."""

    t: float
    used: float
    resets: float | None


@dataclass(frozen=True)
class Pace:
    """Where one bucket is heading. ``full_at``/``threshold_at`` are None when it is not
    climbing (or would take longer than :data:`MAX_PROJECTION`); when the bucket is
    already there they are the time of the reading that showed it."""

    bucket: str
    used: float
    at: datetime
    rate_per_hour: float
    threshold: float
    resets_at: datetime | None
    full_at: datetime | None
    threshold_at: datetime | None
    points: int

    @property
    def before_reset(self) -> bool:
        """It reaches 100 % before the window resets (or no reset is known)."""
        if self.full_at is None:
            return False
        return self.resets_at is None or self.full_at < self.resets_at


def samples(points: Iterable[HistoryPoint], bucket: str) -> list[Sample]:
    """The bucket's readings in time order; points without it are skipped."""
    found = [Sample(p.t, p.used[bucket], p.resets.get(bucket)) for p in points if bucket in p.used]
    return sorted(found, key=lambda s: s.t)


def _same_window(older: Sample, newer: Sample) -> bool:
    if older.used - newer.used > RESET_DROP:
        return False
    if older.resets is None or newer.resets is None:
        return True  # a source without the reset time cannot tell us otherwise
    return abs(older.resets - newer.resets) <= RESET_MATCH


def current_segment(series: Sequence[Sample]) -> list[Sample]:
    """The readings since the bucket last reset, oldest first."""
    if not series:
        return []
    start = len(series) - 1
    while start > 0 and _same_window(series[start - 1], series[start]):
        start -= 1
    return list(series[start:])


def theil_sen(samples_: Sequence[Sample]) -> float:
    """Median of the pairwise slopes, in percent per second."""
    if len(samples_) > MAX_FIT_POINTS:
        step = (len(samples_) - 1) / (MAX_FIT_POINTS - 1)
        samples_ = [samples_[round(i * step)] for i in range(MAX_FIT_POINTS)]
    slopes = [
        (b.used - a.used) / (b.t - a.t)
        for i, a in enumerate(samples_)
        for b in samples_[i + 1 :]
        if b.t > a.t
    ]
    return _median(slopes) if slopes else 0.0


def _median(values: list[float]) -> float:
    """(``statistics`` costs the statusline a few ms of imports per call.)"""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def _eta(used: float, at: float, per_second: float, target: float) -> float | None:
    if used >= target:
        return at
    if per_second <= 0:
        return None
    seconds = (target - used) / per_second
    return at + seconds if seconds <= MAX_PROJECTION else None


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


def compute(
    points: Iterable[HistoryPoint],
    bucket: str,
    now: datetime,
    threshold: float = defaults.THRESHOLD,
    window: float = RATE_WINDOW,
) -> Pace | None:
    """The bucket's pace from the readings since its last reset within ``window``
    seconds of ``now``; None when there are too few, or the window has since reset."""
    segment = current_segment(samples(points, bucket))
    if not segment:
        return None
    last = segment[-1]
    now_ts = now.timestamp()
    if last.resets is not None and last.resets <= now_ts:
        return None  # the readings predate the reset: they say nothing about now
    recent = [s for s in segment if s.t >= now_ts - window]
    if len(recent) < MIN_POINTS or recent[-1].t - recent[0].t < MIN_SPAN:
        return None
    per_second = theil_sen(recent)
    return Pace(
        bucket=bucket,
        used=last.used,
        at=datetime.fromtimestamp(last.t, timezone.utc),
        rate_per_hour=per_second * 3600.0,
        threshold=threshold,
        resets_at=_utc(last.resets),
        full_at=_utc(_eta(last.used, last.t, per_second, 100.0)),
        threshold_at=_utc(_eta(last.used, last.t, per_second, threshold)),
        points=len(recent),
    )


def paces(
    points: Sequence[HistoryPoint], now: datetime, threshold: float = defaults.THRESHOLD
) -> dict[str, Pace]:
    """Every bucket in the history that has a pace, known buckets first."""
    names = dict.fromkeys(KNOWN_WINDOWS)
    for point in points:
        names.update(dict.fromkeys(point.used))
    found = {}
    for name in names:
        pace = compute(points, name, now, threshold)
        if pace is not None:
            found[name] = pace
    return found


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def to_json(found: dict[str, Pace]) -> JSON:
    """The optional ``pace`` field of a ``--json`` row (README, "Pace")."""
    return {
        name: {
            "rate_per_hour": round(p.rate_per_hour, 2),
            "used": p.used,
            "at": format_time(p.at),
            "resets_at": _time(p.resets_at),
            "full_at": _time(p.full_at),
            "threshold": p.threshold,
            "threshold_at": _time(p.threshold_at),
            "before_reset": p.before_reset,
        }
        for name, p in found.items()
    }


def status_warning(found: Iterable[Pace], now: datetime) -> str | None:
    """``⚠ 100% ~14:30`` (``⚠ 7d 100% ~Sat 09:10`` for another bucket): the soonest bucket
    heading for 100 % before its reset; None when none is, or one is already there."""
    ahead = [p for p in found if p.before_reset and p.used < 100.0 and p.full_at is not None]
    if not ahead:
        return None
    soonest = min(ahead, key=lambda p: p.full_at or now)
    assert soonest.full_at is not None
    label = "" if soonest.bucket == "five_hour" else f"{short_label(soonest.bucket)} "
    return f"⚠ {label}100% ~{local_time(soonest.full_at, now)}"


def sparkline(
    points: Iterable[HistoryPoint],
    bucket: str,
    now: datetime,
    width: int = 24,
    span: float = FIVE_HOUR,
) -> str:
    """The bucket over the last ``span`` seconds in ``width`` cells, on a fixed 0–100
    scale (so a flat 50 % sits mid-height); blank before the first reading."""
    series = [s for s in samples(points, bucket) if s.t >= now.timestamp() - span]
    if width <= 0:
        return ""
    start = now.timestamp() - span
    cells = []
    index = 0
    current: float | None = None
    for cell in range(width):
        end = start + span * (cell + 1) / width
        while index < len(series) and series[index].t <= end:
            current = series[index].used
            index += 1
        if current is None:
            cells.append(" ")
        else:
            level = int(max(0.0, min(current, 100.0)) / 100.0 * len(SPARK))
            cells.append(SPARK[min(level, len(SPARK) - 1)])
    return "".join(cells)


def outlook(pace: Pace | None, now: datetime) -> str:
    """The popup's line under a bucket: does it last until the reset?"""
    if pace is None:
        return "no pace yet (needs a few readings over 5 minutes)"
    rate = f"{pace.rate_per_hour:+.1f}%/h"
    reset = f"the {local_time(pace.resets_at, now)} reset" if pace.resets_at else "the reset"
    if pace.used >= 100.0:
        return f"at 100% until {reset}"
    if pace.before_reset and pace.full_at is not None:
        before = f" (before {reset})" if pace.resets_at else ""
        return f"reaches 100% ~{local_time(pace.full_at, now)}{before}, {rate}"
    return f"will last until {reset}, {rate}"
