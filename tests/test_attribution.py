"""Splitting a bucket's rise across sessions, on synthetic histories whose shares are
worked out here from the numbers they were built from."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claudemeter.attribution import SLOT_SECONDS, Totals, attribute, split
from claudemeter.history import AccountHistory, HistoryPoint, Session, SessionPoint
from claudemeter.windows import FIVE_HOUR

T0 = 1_796_000_000.0  # a window's start, on a slot boundary for readability
RESETS = T0 + FIVE_HOUR


def reading(t: float, used: float, resets: float = RESETS) -> HistoryPoint:
    return HistoryPoint(t, {"five_hour": used}, {"five_hour": resets})


def session(name: str, costs: list[tuple[float, float]], started: float | None = None) -> Session:
    """A session whose running cost is ``costs`` [(t, cumulative usd)]."""
    return Session(
        name,
        pane=f"%{name}",
        project=f"/src/{name}",
        model="Sonnet",
        started=started,
        points=[SessionPoint(t, cost, int(cost * 1000), int(cost * 100)) for t, cost in costs],
    )


def test_three_sessions_split_the_rise_by_their_cost() -> None:
    """Costs 1, 2 and 3 dollars over a window whose bucket rose 30 points: 1/6, 2/6 and
    3/6 of it; the period's start is the window's start, where the bucket was 0."""
    until = T0 + 3600
    points = [reading(T0 + 600 * k, 5.0 * k) for k in range(1, 7)]
    sessions = [
        session("a", [(T0 + 300, 0.0), (T0 + 1800, 0.5), (until, 1.0)], started=T0 + 300),
        session("b", [(T0 + 300, 0.0), (T0 + 1800, 1.0), (until, 2.0)], started=T0 + 300),
        session("c", [(T0 + 300, 0.0), (T0 + 1800, 1.5), (until, 3.0)], started=T0 + 300),
    ]
    found = attribute(
        AccountHistory(points=points), [(s, "statusline") for s in sessions], T0, until
    )
    rise = found.rises["five_hour"]
    assert rise.rise == pytest.approx(30.0)
    assert rise.unexplained == pytest.approx(0.0)
    shares = {s.session.session_id: s.share("five_hour") for s in found.shares}
    assert shares == pytest.approx({"a": 100 / 6, "b": 200 / 6, "c": 300 / 6})
    assert [s.session.session_id for s in found.shares] == ["c", "b", "a"]
    assert {s.session.session_id: s.cost_usd for s in found.shares} == pytest.approx(
        {"a": 1.0, "b": 2.0, "c": 3.0}
    )


def test_a_rise_while_no_session_spends_is_named_not_spread() -> None:
    """30 points while two sessions spend (1 and 3 dollars), then 10 more in a slot
    where neither spends (a browser): 25 % of the rise is unexplained, the sessions
    share the other 75 % as 1:3."""
    until = T0 + 2 * 3600
    spend_end = T0 + 3600
    points = [reading(T0 + 600 * k, 5.0 * k) for k in range(1, 7)]
    points += [reading(spend_end + SLOT_SECONDS + 60, 40.0)]
    sessions = [
        session("a", [(T0, 0.0), (spend_end, 1.0)], started=T0),
        session("b", [(T0, 0.0), (spend_end, 3.0)], started=T0),
    ]
    found = attribute(
        AccountHistory(points=points), [(s, "statusline") for s in sessions], T0, until
    )
    rise = found.rises["five_hour"]
    assert rise.rise == pytest.approx(40.0)
    assert rise.unexplained_share == pytest.approx(25.0)
    shares = {s.session.session_id: s.share("five_hour") for s in found.shares}
    assert shares == pytest.approx({"a": 75.0 / 4, "b": 75.0 * 3 / 4})


def test_a_rise_across_a_reset_is_the_rise_after_it() -> None:
    """The period holds the end of one window (bucket at 90, session a spent 9 dollars)
    and the start of the next (bucket from 0 to 20; a spent 1, b spent 3): only the
    new window counts."""
    since = T0 - 3 * 3600
    old_resets, new_resets = T0, T0 + FIVE_HOUR
    points = [reading(since + 600 * k, 10.0 * k, old_resets) for k in range(1, 10)]
    points += [reading(T0 + 600, 10.0, new_resets), reading(T0 + 1800, 20.0, new_resets)]
    until = T0 + 1800
    sessions = [
        session("a", [(since, 0.0), (T0, 9.0), (until, 10.0)], started=since),
        session("b", [(T0 + 60, 0.0), (until, 3.0)], started=T0 + 60),
    ]
    found = attribute(
        AccountHistory(points=points), [(s, "statusline") for s in sessions], since, until
    )
    rise = found.rises["five_hour"]
    assert rise.start == pytest.approx(T0)
    assert rise.rise == pytest.approx(20.0)
    shares = {s.session.session_id: s.share("five_hour") for s in found.shares}
    assert shares == pytest.approx({"a": 25.0, "b": 75.0})
    # the cost column is the whole period's, reset or not
    assert {s.session.session_id: s.cost_usd for s in found.shares} == pytest.approx(
        {"a": 10.0, "b": 3.0}
    )


def test_a_session_seen_late_counts_what_it_spent_since_it_started() -> None:
    """First seen at 2 dollars, 20 minutes after it started (Claude Code's duration):
    before the period began it had spent a proportional part of that."""
    started = T0 - 1200
    late = session("a", [(T0 + 1200, 2.0)], started=started)
    totals = Totals(late)
    assert totals.at(started)[0] == 0.0
    assert totals.at(T0)[0] == pytest.approx(1.0)
    assert totals.cost(T0, T0 + 1200) == pytest.approx(1.0)
    unknown = Totals(session("b", [(T0 + 1200, 2.0)]))
    assert unknown.cost(T0, T0 + 1200) == 0.0  # no start known: what came before is not placed


# --- properties -------------------------------------------------------------------------

# none or a real amount: a rise of a millionth of a point is rounding (MIN_RISE), not use
gains = st.one_of(st.just(0.0), st.floats(min_value=0.01, max_value=8.0))
spends = st.one_of(st.just(0.0), st.floats(min_value=0.001, max_value=2.0))
steps = st.lists(
    st.tuples(
        gains,  # the bucket's rise in a step
        st.lists(spends, min_size=3, max_size=3),
        st.booleans(),  # a reset before this step
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(steps=steps, since_step=st.integers(min_value=0, max_value=39))
def test_shares_sum_to_the_explained_part_and_none_is_negative(
    steps: list[tuple[float, list[float], bool]], since_step: int
) -> None:
    """Any history of readings (with resets) and three sessions' spending: the parts
    are never negative and add up to the rise less its unexplained part, which lies
    within the rise; after a reset the rise is what the bucket shows since it."""
    step = 400.0
    t, used, resets = T0, 0.0, T0 + FIVE_HOUR
    points, costs = [], [[(T0 - 1, 0.0)] for _ in range(3)]
    last_reset_at, value_at_last_reset = None, 0.0
    for k, (gain, spent, reset) in enumerate(steps):
        t = T0 + step * (k + 1)
        if reset:
            last_reset_at, value_at_last_reset = t - step / 2, 0.0
            resets = t + FIVE_HOUR - step / 2
            used = 0.0
            points.append(reading(t - step / 2, 0.0, resets))
        used = min(used + gain, 100.0)
        points.append(reading(t, used, resets))
        for index, amount in enumerate(spent):
            costs[index].append((t, costs[index][-1][1] + amount))
    until = t
    since = T0 + step * min(since_step, len(steps))
    sessions = [Totals(session(str(i), c, started=T0 - 1)) for i, c in enumerate(costs)]
    rise, parts = split(points, sessions, "five_hour", since, until)
    assert all(part >= 0 for part in parts)
    assert 0.0 <= rise.unexplained <= rise.rise + 1e-9
    assert sum(parts) == pytest.approx(rise.rise - rise.unexplained, abs=1e-6)
    if last_reset_at is not None and last_reset_at >= since:
        assert rise.start == pytest.approx(last_reset_at)
        assert rise.rise == pytest.approx(used - value_at_last_reset)
    found = attribute(
        AccountHistory(points=points), [(s.session, "statusline") for s in sessions], since, until
    )
    total = sum(s.share("five_hour") for s in found.shares)
    if rise.rise > 0:
        assert total == pytest.approx(100.0 - rise.unexplained_share, abs=1e-6)
