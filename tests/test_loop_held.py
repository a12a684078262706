"""The tmux loop's idle rounds (issue 16): while the store, the options and the paused
count stay the same, a round fills the clocks of the parts it last rendered instead of
reading the store and rendering every account again. What it pushes must be the full
render at every moment it is used, and it renders again at the first foreseen change
(a row or bucket going stale, a reset, a pace or top session running out)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from claudemeter.options import Settings
from claudemeter.status import HORIZON, render
from claudemeter.tmux_loop import hold
from tests.test_segment_cache import CASES, NOW


@pytest.mark.parametrize("paused", [0, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_held_parts_are_the_full_render_whenever_they_are_used(case: str, paused: int) -> None:
    state, settings = CASES[case], Settings()
    held = hold(state, NOW, settings, paused, ())
    start = NOW.timestamp()
    assert held.start == start
    assert start <= held.until <= start + HORIZON
    moments = [start + step for step in range(0, int(held.until - start), 7)]
    moments += [held.until - 0.01] if held.until > start else []
    for moment in moments:
        assert held.holds((), moment)
        when = datetime.fromtimestamp(moment, timezone.utc)
        assert held.fill(moment) == render(state, when, settings, paused).parts, moment
    assert not held.holds((), held.until)
    assert not held.holds(("another key",), start)


def test_the_held_parts_end_when_the_segment_changes() -> None:
    """The statusline row goes stale 5 s from now, the bucket resets in 95 s: the parts
    are held until the first, and at a second past it the render differs."""
    for case, ends_in in (("goes stale", 5.0), ("resets soon", 95.0)):
        state, settings = CASES[case], Settings()
        held = hold(state, NOW, settings, 0, ())
        assert NOW.timestamp() + ends_in - 1 <= held.until <= NOW.timestamp() + ends_in + 1
        after = held.until + 1.0
        when = datetime.fromtimestamp(after, timezone.utc)
        assert held.fill(after) != render(state, when, settings, 0).parts, case
