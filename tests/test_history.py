"""The history kept apart from the state file: eight days, bounded, every limit hit and
reset; the redraw path never reads it; old state files migrate. Expectations come from
the generator's own numbers, never from the code under test."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from claudemeter import history
from claudemeter.history import HIT_OAUTH_429, HIT_READING, HIT_STOP_FAILURE
from claudemeter.model import Snapshot, format_time
from claudemeter.store import Store
from tests.helpers import LOGIN_ORG, cli, cli_rows
from tests.upstream import FakeUpstream, Reply

END = 1_796_040_000.0  # the pinned clock at the end of the generated days
DAY = 86400.0
HOUR = 3600.0
FIVE = 5 * HOUR
STEP = 120.0  # a reading every two minutes


def at(epoch: float) -> str:
    return format_time(datetime.fromtimestamp(epoch, timezone.utc))


def snapshot(t: float, usage: dict[str, object], browser: str = "Claude Code") -> Snapshot:
    return Snapshot(
        org_uuid=LOGIN_ORG,
        browser=browser,
        account_email="ada@example.com",
        fetched_at=datetime.fromtimestamp(t, timezone.utc),
        usage=usage,
    )


class Generated:
    """Eight days of readings: 5-hour windows back to back, every third one climbing
    25 %/h to the wall (a hit), the others 10 %/h; a 7-day bucket that resets once;
    three sessions spending; and a few limit hits from the poller and the hooks."""

    def __init__(self, days: float = 8.0) -> None:
        self.start = END - days * DAY
        self.seven_reset = self.start + 3 * DAY
        self.hits: list[tuple[float, str | None, str]] = []
        self.resets: list[tuple[float, str]] = []
        self.readings: list[tuple[float, dict[str, object]]] = []
        self.hit_windows: set[int] = set()
        t = self.start
        while t < END:
            window = int((t - self.start) // FIVE)
            began = self.start + window * FIVE
            rate = 25.0 if window % 3 == 0 else 10.0
            five = min(100.0, rate * (t - began) / HOUR)
            if five >= 100.0 and window not in self.hit_windows:
                self.hit_windows.add(window)
                self.hits.append((t, "five_hour", HIT_READING))
            seven_began = self.seven_reset - 7 * DAY if t < self.seven_reset else self.seven_reset
            seven = 2.0 * (t - seven_began) / DAY
            self.readings.append(
                (
                    t,
                    {
                        "five_hour": {"utilization": five, "resets_at": at(began + FIVE)},
                        "seven_day": {
                            "utilization": seven,
                            "resets_at": at(seven_began + 7 * DAY),
                        },
                    },
                )
            )
            t += STEP
        windows = int((END - self.start) // FIVE)
        first_reading = self.readings[0][0]
        self.resets = [
            (self.start + k * FIVE, "five_hour")
            for k in range(1, windows + 1)
            if first_reading < self.start + k * FIVE < self.readings[-1][0]
        ]
        self.resets.append((self.seven_reset, "seven_day"))
        self.polled_429 = [self.start + k * DAY + 1234.0 for k in range(int(days))]
        self.stopped = [self.start + k * DAY + 4321.0 for k in range(int(days))]
        self.hits += [(t, None, HIT_OAUTH_429) for t in self.polled_429]
        self.hits += [(t, None, HIT_STOP_FAILURE) for t in self.stopped]

    def write(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Through the store, an hour of the pinned clock at a time."""
        store = Store()
        hour_end = self.start + HOUR
        index = 0
        costs = [0.0, 0.0, 0.0]
        while index < len(self.readings):
            monkeypatch.setenv("CLAUDEMETER_NOW", at(hour_end))
            with store.update() as state:
                while index < len(self.readings) and self.readings[index][0] <= hour_end:
                    t, usage = self.readings[index]
                    state.put(snapshot(t, usage))
                    for n in range(3):
                        costs[n] += 0.01 * (n + 1)
                        state.record_session(
                            history.SessionSample(
                                LOGIN_ORG,
                                f"s{n}",
                                f"%{n}",
                                f"/src/p{n}",
                                "Sonnet",
                                self.start,
                                history.SessionPoint(t, costs[n], int(t) % 1000, 10),
                            )
                        )
                    index += 1
                for t in self.polled_429:
                    if hour_end - HOUR < t <= hour_end:
                        state.record_limit_hit(LOGIN_ORG, history.LimitHit(t, None, HIT_OAUTH_429))
            for t in self.stopped:
                if hour_end - HOUR < t <= hour_end:
                    store.record_limit_hit(LOGIN_ORG, history.LimitHit(t, None, HIT_STOP_FAILURE))
            hour_end += HOUR
        monkeypatch.setenv("CLAUDEMETER_NOW", at(END))


@pytest.fixture(scope="module")
def eight_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated 8-day state dir, shared by the tests that only read it."""
    directory = tmp_path_factory.mktemp("eight-days") / "state"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAUDEMETER_STATE_DIR", str(directory))
        generated = Generated()
        generated.write(patch)
    return directory


def test_eight_days_stay_under_the_bound_and_show_every_limit_hit(
    eight_days: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = Generated()
    monkeypatch.setenv("CLAUDEMETER_STATE_DIR", str(eight_days))
    monkeypatch.setenv("CLAUDEMETER_NOW", at(END))
    archive = (eight_days / history.ARCHIVE_FILE).stat().st_size
    recent = (eight_days / history.RECENT_FILE).stat().st_size
    assert archive <= history.MAX_ARCHIVE_BYTES
    assert recent <= history.MAX_RECENT_BYTES
    assert (eight_days / "state.json").stat().st_size < 4096  # no history in the hot file
    [account] = cli_rows("history", "--json")
    assert account["org_uuid"] == LOGIN_ORG
    hits = {(round(h["at"]), h["bucket"], h["source"]) for h in account["limit_hits"]}
    expected = {(round(t), bucket, source) for t, bucket, source in generated.hits}
    assert len(generated.hit_windows) >= 10
    assert expected <= hits
    assert len(account["limit_hits"]) == len(expected)  # each hit once, not per reading
    resets = {(round(r["at"]), r["bucket"]) for r in account["resets"]}
    assert {(round(t), bucket) for t, bucket in generated.resets} <= resets
    five = account["buckets"]["five_hour"]
    assert five[0][0] <= generated.start + HOUR  # the oldest day is still there
    assert five[-1][0] == pytest.approx(generated.readings[-1][0])
    assert all(a[0] < b[0] for a, b in itertools.pairwise(five))
    # downsampled beyond the last hours: far fewer points than readings, peaks kept
    assert len(five) < len(generated.readings) / 2
    assert max(value for _t, value in five) == 100.0
    # --days narrows it
    [recent_days] = cli_rows("history", "--json", "--days", "1")
    assert all(t >= END - DAY for t, _ in recent_days["buckets"]["five_hour"])
    assert {h["at"] for h in recent_days["limit_hits"]} == {
        t for t, _b, _s in generated.hits if t >= END - DAY
    }


def test_the_chart_marks_hits_per_day(eight_days: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDEMETER_STATE_DIR", str(eight_days))
    monkeypatch.setenv("CLAUDEMETER_NOW", at(END))
    done = cli("history", "--days", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "ada@example.com"
    assert " 5-hour" in lines and " 7-day" in lines
    day_lines = [line for line in lines if line.startswith("  ") and " max " in line]
    assert 3 <= len(day_lines) <= 2 * 4  # two buckets, three days (a fourth partial one)
    assert any("!" in line and "at 100%" in line for line in day_lines)
    assert any("agent stopped" in line for line in day_lines)


def test_the_redraw_path_does_not_read_the_history(
    eight_days: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`status` shows the pace warning and the top session the writers derived; with
    the history files gone (or garbage) it prints exactly the same."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(eight_days, copy)
    monkeypatch.setenv("CLAUDEMETER_STATE_DIR", str(copy))
    monkeypatch.setenv("CLAUDEMETER_NOW", at(END))
    fmt = "{5h} {pace} {top}"

    def status() -> str:
        done = cli("status", "--format", fmt)
        assert done.returncode == 0, done.stderr
        return done.stdout

    before = status()
    assert "%2 p2 50%" in before  # the costliest of three (1:2:3 of the spend)
    for name in (history.ARCHIVE_FILE, history.RECENT_FILE):
        (copy / name).write_text("not json")
    assert status() == before


def test_a_state_file_with_the_old_history_migrates_on_the_first_write(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = END
    monkeypatch.setenv("CLAUDEMETER_NOW", at(now))
    points = [
        {"t": now - 1800 + 60 * k, "u": {"five_hour": 20.0 + k}, "r": {"five_hour": now + HOUR}}
        for k in range(30)
    ]
    row = snapshot(now - 60, {"five_hour": {"utilization": 49.0, "resets_at": at(now + HOUR)}})
    state_dir.mkdir(mode=0o700)
    (state_dir / "state.json").write_text(
        json.dumps({"version": 1, "rows": [row.to_json()], "history": {LOGIN_ORG: points}})
    )
    Store().put([snapshot(now, {"five_hour": {"utilization": 50.0, "resets_at": at(now + HOUR)}})])
    body = json.loads((state_dir / "state.json").read_text())
    assert "history" not in body
    kept = history.recent(state_dir)[LOGIN_ORG].points
    assert [p.t for p in kept] == [p["t"] for p in points] + [now]
    [row_json] = cli_rows("--json", "--cached")
    assert row_json["pace"]["five_hour"]["rate_per_hour"] == pytest.approx(60.0, rel=0.05)


def test_a_corrupt_history_file_is_moved_aside_and_writes_go_on(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store()
    now = datetime.now(timezone.utc)
    store.put([snapshot(now.timestamp(), {"five_hour": {"utilization": 5.0, "resets_at": None}})])
    (state_dir / history.RECENT_FILE).write_bytes(b"\xff{")
    store.put([snapshot(now.timestamp() + 30, {"five_hour": {"utilization": 6.0}})])
    assert "moved it aside" in capsys.readouterr().err
    assert list(state_dir.glob(f"{history.RECENT_FILE}.corrupt-*"))
    assert [p.used["five_hour"] for p in history.recent(state_dir)[LOGIN_ORG].points] == [6.0]


def test_a_429_from_our_own_poll_is_a_limit_hit(
    claude_dir: Path, upstream: FakeUpstream, state_dir: Path
) -> None:
    upstream.routes["/api/oauth/usage"] = Reply(
        429, {"type": "error", "error": {"type": "rate_limit_error"}}, {"retry-after": "60"}
    )
    cli("refresh")
    [account] = cli_rows("history", "--json")
    assert [(h["bucket"], h["source"]) for h in account["limit_hits"]] == [(None, HIT_OAUTH_429)]


def test_a_bucket_hit_is_recorded_once_per_window(state_dir: Path) -> None:
    store = Store()
    now = datetime.now(timezone.utc)
    resets = at((now + timedelta(hours=1)).timestamp())
    for minutes, used in [(0, 99.0), (1, 100.0), (2, 100.0), (3, 100.0)]:
        when = now.timestamp() - 300 + 60 * minutes
        store.put([snapshot(when, {"five_hour": {"utilization": used, "resets_at": resets}})])
    hits = history.recent(state_dir)[LOGIN_ORG].hits
    assert [(h.bucket, h.source) for h in hits] == [("five_hour", HIT_READING)]
    assert hits[0].at == pytest.approx(now.timestamp() - 240, abs=0.01)
