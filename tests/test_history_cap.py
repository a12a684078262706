"""The history's byte cap is a real one (issue 16 item 4): enforced on every write of the
recent file and the archive, at fifty accounts as at one, by thinning what matters least
(idle sessions, the oldest days down to a floor, then every account's points alike),
never by emptying every account at once; at thousands of accounts, the accounts read
longest ago go. Expectations come from the generated readings, not from the code."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from claudemeter import history, pace

END = 1_796_040_000.0
HOUR = 3600.0
FIVE = 5 * HOUR


def account(index: int) -> str:
    return f"0f6c3b2a-0000-4000-8000-{index:012x}"


def hour_of_readings(accounts: int, hour_end: float, step: float) -> history.Pending:
    """Each account read every ``step`` seconds over the hour before ``hour_end``, two
    agents' sessions spending, each account its own phase in its 5-hour window."""
    pending = history.Pending()
    t = hour_end - HOUR
    while t < hour_end:
        for i in range(accounts):
            shifted = t + i * 997.0
            began = shifted - shifted % FIVE
            five = round(min(100.0, 12.0 * (shifted - began) / HOUR), 1)
            used = {"five_hour": five, "seven_day": round(20.0 + t / 1e6 % 1, 2)}
            resets = {"five_hour": t + (began + FIVE - shifted)}
            pending.readings.append((account(i), history.HistoryPoint(t, used, resets)))
            for agent in range(2):
                point = history.SessionPoint(t, t / 1e6 * (agent + 1), 1000, 100)
                sample = history.SessionSample(
                    account(i), f"{i}-{agent}", f"%{agent}", "/src/app", "Opus", None, point
                )
                pending.sessions.append(sample)
        t += step
    return pending


def sizes(directory: Path) -> tuple[int, int]:
    recent = (directory / history.RECENT_FILE).stat().st_size
    archive_path = directory / history.ARCHIVE_FILE
    return recent, archive_path.stat().st_size if archive_path.exists() else 0


def test_fifty_accounts_stay_under_the_cap_on_every_write_and_keep_their_pace(
    tmp_path: Path,
) -> None:
    accounts, step, hours = 50, 30.0, 3
    newest: dict[str, float] = {}
    over = False
    for hour in range(hours):
        hour_end = END - (hours - 1 - hour) * HOUR
        pending = hour_of_readings(accounts, hour_end, step)
        # the same readings, uncapped, would not fit: the cap is what is tested here
        over = over or len(history.Files(_as_accounts(pending)).to_bytes()) > (
            history.MAX_RECENT_BYTES
        )
        for key, point in pending.readings:
            newest[key] = point.t
        recorded = history.record(tmp_path, pending, hour_end)
        recent, archive = sizes(tmp_path)
        assert recent <= history.MAX_RECENT_BYTES, (hour, recent)
        assert archive <= history.MAX_ARCHIVE_BYTES, (hour, archive)
    assert over
    # every account keeps its newest reading, and its pace is the one its whole last
    # hour of readings gives
    kept = history.recent(tmp_path)
    assert set(kept) == set(newest)
    now = datetime.fromtimestamp(END, timezone.utc)
    last_hour = _as_accounts(pending)
    with_pace = 0
    for key, account_history in kept.items():
        assert account_history.points[-1].t == newest[key]
        found = pace.paces(account_history.points, now).get("five_hour")
        expected = pace.paces(last_hour[key].points, now).get("five_hour")
        assert (found is None) == (expected is None), key
        if found is not None and expected is not None:
            with_pace += 1
            assert found.rate_per_hour == pytest.approx(expected.rate_per_hour, rel=0.05)
    assert with_pace > accounts // 2
    assert recorded.recent.keys() == kept.keys()
    # and the whole history still reaches back: the archive kept each account's last day
    whole = history.read(tmp_path)
    for key in newest:
        assert whole[key].points[0].t <= END - 2 * HOUR, key


def _as_accounts(pending: history.Pending) -> dict[str, history.AccountHistory]:
    found: dict[str, history.AccountHistory] = {}
    for key, point in pending.readings:
        found.setdefault(key, history.AccountHistory()).points.append(point)
    return found


def test_an_archive_over_its_cap_keeps_the_last_day_of_every_account(tmp_path: Path) -> None:
    accounts, days = 50, 5
    start = END - days * 86400.0
    archive = history.Files(compacted_at=END - 600.0)
    for i in range(accounts):
        kept = archive.accounts.setdefault(account(i), history.AccountHistory())
        t = start
        while t < END - HOUR:
            kept.points.append(history.HistoryPoint(t, {"five_hour": 30.0}, {"five_hour": t + 9e3}))
            t += history.SLOT_SECONDS
        kept.sessions[f"{i}"] = history.Session(
            f"{i}", "%1", "/src/app", "Opus", start, [history.SessionPoint(start, 1.0, 1, 1)]
        )
    assert len(archive.to_bytes()) > 2 * history.MAX_ARCHIVE_BYTES
    (tmp_path / history.ARCHIVE_FILE).write_bytes(archive.to_bytes())
    (tmp_path / history.RECENT_FILE).write_bytes(history.Files(compacted_at=END - 600.0).to_bytes())
    point = history.HistoryPoint(END, {"five_hour": 31.0}, {"five_hour": END + 9e3})
    pending = history.Pending(readings=[(account(0), point)])
    assert history.record(tmp_path, pending, END).compacted
    assert (tmp_path / history.ARCHIVE_FILE).stat().st_size <= history.MAX_ARCHIVE_BYTES
    whole = history.read(tmp_path)
    for i in range(accounts):
        points = whole[account(i)].points
        newest_archived = max(t for t in _times(start) if t < END - HOUR)
        assert newest_archived in [p.t for p in points], i
        assert points[0].t <= END - 86400.0 + history.SLOT_SECONDS, i  # a day at least
        assert len(points) > 86400.0 / history.SLOT_SECONDS / 2, i


def _times(start: float) -> list[float]:
    times, t = [], start
    while t < END:
        times.append(t)
        t += history.SLOT_SECONDS
    return times


def test_thousands_of_accounts_keep_the_cap_and_the_accounts_read_last(tmp_path: Path) -> None:
    accounts = 3000
    pending = history.Pending()
    for i in range(accounts):
        t = END - accounts + i  # account i read at END - 3000 + i: the last ones newest
        point = history.HistoryPoint(t, {"five_hour": 10.0, "seven_day": 5.0}, {})
        pending.readings.append((account(i), point))
    history.record(tmp_path, pending, END)
    recent, _archive = sizes(tmp_path)
    assert recent <= history.MAX_RECENT_BYTES
    kept = history.recent(tmp_path)
    assert 0 < len(kept) < accounts
    assert account(accounts - 1) in kept
    oldest_kept = min(int(key.rsplit("-", 1)[1], 16) for key in kept)
    assert set(kept) == {account(i) for i in range(oldest_kept, accounts)}
