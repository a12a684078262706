"""Who is filling the bucket: each session's share of a bucket's rise over a period.

The server counts one account's usage in one bucket and does not say who used it.
Sessions report their own cost. So a bucket's rise over a period is split across the
sessions active in it in proportion to their cost increase over the same span, except
the part of the rise during which no recorded session spent anything: that part is
named, not spread (claude.ai in a browser, an agent without our statusline whose
transcript we cannot see, another machine).

The rise is counted within the bucket's current window: across a reset it is the rise
after it (the usage before the reset no longer counts). When the window began inside
the period it started at 0 then; otherwise the rise starts from the reading at the
period's start, or from the first reading we have. Pure functions of the history, so
tests pin them with synthetic histories.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from . import windows
from .history import AccountHistory, HistoryPoint, Session
from .pace import Sample, current_segment, samples
from .windows import FIVE_HOUR

#: The rise of a slot this long with no session spending anything is unexplained.
SLOT_SECONDS = 300.0
#: Below these a rise (percent points) or a cost (USD) is rounding, not usage.
MIN_RISE = 1e-6
MIN_COST = 1e-9
#: The buckets ``top`` splits, in its column order.
BUCKETS = windows.MAIN


@dataclass(frozen=True)
class Rise:
    """How much a bucket rose (percent points) from ``start`` to ``end`` (epoch), and
    how many of those points no recorded session explains."""

    bucket: str
    start: float
    end: float
    rise: float
    unexplained: float

    @property
    def unexplained_share(self) -> float:
        """Percent of the rise (0-100) no recorded session explains."""
        return 100.0 * self.unexplained / self.rise if self.rise > 0 else 0.0


@dataclass(frozen=True)
class Share:
    """One session in the period: its cost and tokens over it, and per bucket the
    percent (0-100) of that bucket's rise it explains."""

    session: Session
    source: str  # "statusline" or "transcript"
    cost_usd: float
    input_tokens: int
    output_tokens: int
    shares: dict[str, float]

    def share(self, bucket: str) -> float:
        return self.shares.get(bucket, 0.0)


@dataclass(frozen=True)
class Attribution:
    """Every bucket's rise over ``[since, until]`` and the sessions sharing it, the
    largest share of the 5-hour rise first."""

    since: float
    until: float
    rises: dict[str, Rise]
    shares: list[Share]


class Totals:
    """A session's running totals as a function of time: straight lines between the
    points it reported (it reports after each response, so a flat stretch is idle
    time), its first point reached from 0 at its start when the start is known (that
    spend happened, we saw it late), flat after its last point."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.times = [p.t for p in session.points]

    def at(self, t: float) -> tuple[float, int, int]:
        """(cost, input tokens, output tokens) at ``t``."""
        points = self.session.points
        if not points:
            return 0.0, 0, 0
        index = bisect_right(self.times, t)
        if index == len(points):
            last = points[-1]
            return last.cost_usd, last.input_tokens, last.output_tokens
        after = points[index]
        if index:
            before = points[index - 1]
            t0, values = before.t, (before.cost_usd, before.input_tokens, before.output_tokens)
        elif self.session.started is not None:  # from 0 at its start (t is before `after`)
            t0, values = self.session.started, (0.0, 0, 0)
            if t <= t0:
                return values
        else:  # seen late, start unknown: what came before is not placed in time
            return after.cost_usd, after.input_tokens, after.output_tokens
        part = (t - t0) / (after.t - t0) if after.t > t0 else 1.0
        cost = values[0] + (after.cost_usd - values[0]) * part
        tokens_in = values[1] + int((after.input_tokens - values[1]) * part)
        return cost, tokens_in, values[2] + int((after.output_tokens - values[2]) * part)

    def cost(self, start: float, end: float) -> float:
        return max(0.0, self.at(end)[0] - self.at(start)[0])


def rise(
    points: Sequence[HistoryPoint], bucket: str, since: float, until: float
) -> tuple[float, float, list[Sample]] | None:
    """(start, baseline percent, readings after start) of the bucket's current window
    within the period; None when there is no reading of it."""
    series = [s for s in samples(points, bucket) if s.t <= until]
    if not series:
        return None
    segment = current_segment(series)
    last = segment[-1]
    if last.resets is not None and last.resets <= until:
        return max(last.resets, since), 0.0, []  # it reset after the last reading: empty
    seconds = windows.length(bucket)
    began = last.resets - seconds if last.resets is not None and seconds else None
    before = [s for s in segment if s.t <= since]
    if began is not None and began >= since:
        start, base = began, 0.0
    elif before:
        start, base = since, before[-1].used
    elif len(segment) < len(series):  # a reset we saw between two readings, in the period
        previous = series[len(series) - len(segment) - 1]
        first = segment[0]
        gone = previous.resets
        start = gone if gone is not None and previous.t <= gone <= first.t else first.t
        start, base = max(start, since), 0.0
    else:  # the history begins inside this window: count from the first reading
        start, base = segment[0].t, segment[0].used
    return start, base, [s for s in segment if s.t > start]


def _value(readings: list[Sample], times: list[float], base: float, t: float) -> float:
    index = bisect_right(times, t)
    return readings[index - 1].used if index else base


def split(
    points: Sequence[HistoryPoint],
    totals: Sequence[Totals],
    bucket: str,
    since: float,
    until: float,
) -> tuple[Rise, list[float]]:
    """The bucket's rise over the period and each session's part of it in points (in
    the order of ``totals``): the explained part of the rise in proportion to each
    session's cost over the same span. Parts are never negative and sum to the rise
    less its unexplained part."""
    found = rise(points, bucket, since, until)
    if found is None:
        return Rise(bucket, since, until, 0.0, 0.0), [0.0] * len(totals)
    start, base, readings = found
    times = [s.t for s in readings]
    total_rise = (readings[-1].used if readings else base) - base
    total_rise = total_rise if total_rise > MIN_RISE else 0.0
    unexplained = 0.0
    slot_start = start
    while slot_start < until and total_rise > 0:
        slot_end = min(slot_start + SLOT_SECONDS, until)
        gained = _value(readings, times, base, slot_end) - _value(readings, times, base, slot_start)
        if gained > 0 and not any(t.cost(slot_start, slot_end) > MIN_COST for t in totals):
            unexplained += gained
        slot_start = slot_end
    costs = [c if c > MIN_COST else 0.0 for c in (t.cost(start, until) for t in totals)]
    spent = sum(costs)
    unexplained = total_rise if spent <= 0 else min(unexplained, total_rise)
    explained = total_rise - unexplained
    parts = [explained * c / spent if spent > 0 else 0.0 for c in costs]
    return Rise(bucket, start, until, total_rise, unexplained), parts


def default_since(history: AccountHistory, until: float) -> float:
    """The current 5-hour window's start (its ``resets_at`` less 5 hours), or 5 hours
    ago when no window is known (idle, or no reading yet)."""
    for point in reversed(history.points):
        resets = point.resets.get("five_hour")
        if resets is not None:
            if resets > until:
                return resets - FIVE_HOUR
            break
    return until - FIVE_HOUR


def attribute(
    history: AccountHistory,
    sessions: Sequence[tuple[Session, str]],
    since: float,
    until: float,
    buckets: Sequence[str] = BUCKETS,
) -> Attribution:
    """Split each bucket's rise over ``[since, until]`` across ``sessions`` (each with
    where it came from: ``statusline`` or ``transcript``); sessions that spent nothing
    in the period are left out."""
    totals = [Totals(session) for session, _source in sessions]
    rises: dict[str, Rise] = {}
    parts: dict[str, list[float]] = {}
    for bucket in buckets:
        rises[bucket], parts[bucket] = split(history.points, totals, bucket, since, until)
    shares = []
    for index, (session, source) in enumerate(sessions):
        spent = totals[index].cost(since, until)
        if spent <= MIN_COST:
            continue
        begin, end = totals[index].at(since), totals[index].at(until)
        shares.append(
            Share(
                session,
                source,
                spent,
                max(0, end[1] - begin[1]),
                max(0, end[2] - begin[2]),
                {
                    b: 100.0 * parts[b][index] / rises[b].rise if rises[b].rise > 0 else 0.0
                    for b in buckets
                },
            )
        )
    shares.sort(key=lambda s: (-s.share("five_hour"), -s.cost_usd, s.session.session_id))
    return Attribution(since, until, rises, shares)
