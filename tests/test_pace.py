"""Pace from synthetic histories; every expectation is computed here from the line the
history was generated from, not from the code under test."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from claudemeter import history, pace
from claudemeter.history import AccountHistory, HistoryPoint
from claudemeter.model import Snapshot, format_time
from claudemeter.store import Store
from claudemeter.times import local_time
from tests.helpers import LOGIN_ORG, ROW_KEYS, cli_rows, store_usage

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
T = NOW.timestamp()
HOUR = 3600.0


def climb(
    start: float,
    end: float,
    base: float,
    per_hour: float,
    resets: float | None,
    step: float = 60.0,
    bucket: str = "five_hour",
) -> list[HistoryPoint]:
    """Readings every ``step`` s from ``start`` to ``end`` (epoch) on a straight line."""
    points = []
    t = start
    while t <= end + 1e-9:
        used = base + per_hour * (t - start) / HOUR
        points.append(HistoryPoint(t, {bucket: used}, {bucket: resets} if resets else {}))
        t += step
    return points


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def close(a: datetime | None, b: datetime, seconds: float = 1.0) -> bool:
    return a is not None and abs((a - b).total_seconds()) <= seconds


def test_steady_climb() -> None:
    resets = T + 8 * HOUR
    points = climb(T - 40 * 60, T, base=20.0, per_hour=12.0, resets=resets)
    last = 20.0 + 12.0 * 40 / 60
    result = pace.compute(points, "five_hour", NOW, threshold=90.0)
    assert result is not None
    assert result.rate_per_hour == pytest.approx(12.0, abs=1e-6)
    assert result.used == pytest.approx(last)
    assert close(result.full_at, at(T + (100 - last) / 12.0 * HOUR))
    assert close(result.threshold_at, at(T + (90 - last) / 12.0 * HOUR))
    assert result.resets_at == at(resets)
    assert result.before_reset


def test_steady_climb_that_the_reset_outruns() -> None:
    points = climb(T - 40 * 60, T, base=50.0, per_hour=5.0, resets=T + 2 * HOUR)
    result = pace.compute(points, "five_hour", NOW)
    assert result is not None
    last = 50.0 + 5.0 * 40 / 60
    assert close(result.full_at, at(T + (100 - last) / 5.0 * HOUR))
    assert not result.before_reset
    assert pace.status_warning([result], NOW) is None
    assert pace.outlook(result, NOW).startswith("will last until the ")


@pytest.mark.parametrize("with_resets", [True, False], ids=["resets_at changes", "drop only"])
def test_reset_in_the_middle(with_resets: bool) -> None:
    """Before the reset it climbed fast (30 %/h); since, slowly (6 %/h)."""
    old = climb(
        T - 90 * 60,
        T - 31 * 60,
        base=50.0,
        per_hour=30.0,
        resets=T - 30 * 60 if with_resets else None,
    )
    new_resets = T + 4.5 * HOUR
    new = climb(T - 29 * 60, T, base=1.0, per_hour=6.0, resets=new_resets if with_resets else None)
    result = pace.compute(old + new, "five_hour", NOW)
    assert result is not None
    assert result.rate_per_hour == pytest.approx(6.0, abs=1e-6)
    last = 1.0 + 6.0 * 29 / 60
    assert close(result.full_at, at(T + (100 - last) / 6.0 * HOUR))
    assert result.before_reset is (not with_resets)  # no known reset: nothing outruns it


def test_flat() -> None:
    points = [
        HistoryPoint(t.t, {"five_hour": 50.0}, t.resets)
        for t in climb(T - 40 * 60, T, 0, 0, resets=T + HOUR)
    ]
    result = pace.compute(points, "five_hour", NOW)
    assert result is not None
    assert result.rate_per_hour == 0.0
    assert result.full_at is None and result.threshold_at is None
    assert not result.before_reset
    assert pace.status_warning([result], NOW) is None
    assert "will last until" in pace.outlook(result, NOW)


def test_noisy_readings() -> None:
    """Two sources a point or two apart, and a few odd readings: the rate holds."""
    rng = random.Random(7)
    resets = T + 5 * HOUR
    points = climb(T - 45 * 60, T, base=30.0, per_hour=10.0, resets=resets, step=45.0)
    noisy = []
    for index, point in enumerate(points):
        jitter = rng.uniform(-1.5, 1.5) + (5.0 if index % 17 == 5 else 0.0)
        noisy.append(
            HistoryPoint(point.t, {"five_hour": point.used["five_hour"] + jitter}, point.resets)
        )
    result = pace.compute(noisy, "five_hour", NOW)
    assert result is not None
    assert result.rate_per_hour == pytest.approx(10.0, abs=1.5)
    true_last = 30.0 + 10.0 * 45 / 60
    expected = T + (100 - true_last) / 10.0 * HOUR
    assert result.full_at is not None
    assert abs(result.full_at.timestamp() - expected) < 0.2 * (expected - T)


def test_too_little_history_gives_no_pace() -> None:
    resets = T + HOUR
    two = climb(T - 60, T, 10, 10, resets=resets)
    assert pace.compute(two, "five_hour", NOW) is None
    short = climb(T - 120, T, 10, 10, resets=resets, step=20)
    assert pace.compute(short, "five_hour", NOW) is None
    old = climb(T - 3 * HOUR, T - 2 * HOUR, 10, 10, resets=resets)
    assert pace.compute(old, "five_hour", NOW) is None
    assert pace.compute([], "five_hour", NOW) is None


def test_no_pace_once_the_window_has_reset() -> None:
    points = climb(T - 40 * 60, T - 60, 10, 10, resets=T - 30)
    assert pace.compute(points, "five_hour", NOW) is None


def test_already_over_the_threshold() -> None:
    points = climb(T - 30 * 60, T, base=92.0, per_hour=4.0, resets=T + 3 * HOUR)
    result = pace.compute(points, "five_hour", NOW, threshold=90.0)
    assert result is not None
    assert result.threshold_at == at(T)
    assert close(result.full_at, at(T + (100 - 94.0) / 4.0 * HOUR))


def test_status_warning_names_the_soonest_bucket() -> None:
    five = climb(T - 40 * 60, T, base=60.0, per_hour=30.0, resets=T + 3 * HOUR)
    seven = climb(
        T - 40 * 60, T, base=80.0, per_hour=20.0, resets=T + 2 * 86400, bucket="seven_day"
    )
    merged = [
        HistoryPoint(a.t, {**a.used, **b.used}, {**a.resets, **b.resets})
        for a, b in zip(five, seven, strict=True)
    ]
    found = pace.paces(merged, NOW)
    assert set(found) == {"five_hour", "seven_day"}
    seven_full = T + (100 - (80.0 + 20.0 * 40 / 60)) / 20.0 * HOUR
    assert pace.status_warning(found.values(), NOW) == (
        f"⚠ 7d 100% ~{local_time(at(seven_full), NOW)}"
    )
    five_full = T + (100 - (60.0 + 30.0 * 40 / 60)) / 30.0 * HOUR
    assert pace.status_warning([found["five_hour"]], NOW) == (
        f"⚠ 100% ~{local_time(at(five_full), NOW)}"
    )
    line = pace.outlook(found["five_hour"], NOW)
    assert line.startswith(f"reaches 100% ~{local_time(at(five_full), NOW)} (before the ")


def test_sparkline() -> None:
    points = climb(T - 2 * HOUR + 60, T, base=0.0, per_hour=50.0, resets=T + HOUR)
    spark = pace.sparkline(points, "five_hour", NOW, width=10, span=4 * HOUR)
    assert len(spark) == 10
    assert spark[:5] == "     "  # no readings in the first two hours of the span
    drawn = spark[5:]
    assert all(c in pace.SPARK for c in drawn)
    assert list(drawn) == sorted(drawn, key=pace.SPARK.index)
    assert drawn[-1] == pace.SPARK[-1]  # 100 %
    assert pace.sparkline([], "five_hour", NOW, width=4) == "    "


def test_json_rows_carry_pace(claude_dir: Path, state_dir: Path) -> None:
    """Through the real command: the optional field is there and nothing else moved."""
    now = datetime.now(timezone.utc)
    resets = now + timedelta(hours=4)
    readings = []
    for minute in range(40, -1, -2):
        when = now - timedelta(minutes=minute)
        used = 30.0 + 9.0 * (40 - minute) / 60
        readings.append(
            Snapshot(
                org_uuid=LOGIN_ORG,
                browser="statusline",
                account_email="ada@example.com",
                fetched_at=when,
                usage={"five_hour": {"utilization": used, "resets_at": format_time(resets)}},
            )
        )
    store = Store()
    for snapshot in readings:
        store.put([snapshot])
    [row] = cli_rows("--json", "--cached")
    assert set(row) == ROW_KEYS | {"provenance", "pace"}
    five = row["pace"]["five_hour"]
    assert five["rate_per_hour"] == pytest.approx(9.0, abs=0.05)
    assert five["threshold"] == 90.0
    last = 30.0 + 9.0 * 40 / 60
    full = datetime.fromisoformat(five["full_at"].replace("Z", "+00:00"))
    assert abs(full - (readings[-1].fetched_at + timedelta(hours=(100 - last) / 9.0))) < timedelta(
        seconds=60
    )
    assert five["before_reset"] is False
    assert five["resets_at"] == format_time(
        resets.replace(microsecond=resets.microsecond // 1000 * 1000)
    )


def test_json_rows_without_history_have_no_pace(claude_dir: Path, state_dir: Path) -> None:
    store_usage(
        {"five_hour": {"utilization": 5.0, "resets_at": None}}, org="o", email="a@example.com"
    )
    assert "pace" not in cli_rows("--json", "--cached")[0]


def test_history_of_a_folded_row_includes_readings_kept_under_its_email() -> None:
    """A browser whose org look-up failed filed its readings under the email."""
    by_org = climb(T - 40 * 60, T - 20 * 60, 10, 6, resets=T + HOUR)
    by_email = climb(T - 30 * 60 + 30, T, 12, 6, resets=T + HOUR)  # interleaved in time
    accounts = {
        "org-1": AccountHistory(points=by_org),
        "email:a@example.com": AccountHistory(points=by_email),
    }
    merged = history.of_account(accounts, "org-1", "A@example.com").points
    assert [p.t for p in merged] == sorted(p.t for p in by_org + by_email)


def test_a_steady_stream_of_readings_builds_a_history(state_dir: Path) -> None:
    """Agents' statuslines every 10 s: readings fold into points, and the points add up
    to a pace instead of one point sliding forward."""
    now = datetime.now(timezone.utc)
    resets = format_time(now + timedelta(hours=3))
    store = Store()
    with store.update() as state:
        for second in range(30 * 60, -1, -10):
            used = 20.0 + 8.0 * (30 * 60 - second) / HOUR
            state.put(
                Snapshot(
                    org_uuid="o",
                    browser="statusline",
                    account_email=None,
                    fetched_at=now - timedelta(seconds=second),
                    usage={"five_hour": {"utilization": used, "resets_at": resets}},
                )
            )
    points = history.recent(store.directory)["o"].points
    assert len(points) >= 30 * 60 / 20 - 1
    result = pace.compute(points, "five_hour", now)
    assert result is not None
    assert result.rate_per_hour == pytest.approx(8.0, rel=0.05)
