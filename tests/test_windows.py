"""The window vocabulary (claudemeter/windows.py) is the one table of bucket names,
labels, short labels and lengths, and every view speaks it."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

import claudemeter
from claudemeter import pace, windows
from claudemeter.history import HistoryPoint
from claudemeter.model import Snapshot
from claudemeter.sources.statusline import line

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
PACKAGE = Path(claudemeter.__file__).parent


@pytest.mark.parametrize(
    ("name", "label", "short", "seconds"),
    [
        ("five_hour", "5-hour", "5h", 5 * 3600.0),
        ("seven_day", "7-day", "7d", 7 * 86400.0),
        ("seven_day_oauth_apps", "7-day OAuth apps", "7d apps", 7 * 86400.0),
        ("seven_day_opus", "7-day Opus", "7d opus", 7 * 86400.0),
        ("seven_day_sonnet", "7-day Sonnet", "7d sonnet", 7 * 86400.0),
        ("seven_day_cowork", "seven day cowork", "seven day cowork", 7 * 86400.0),
        ("hourly_thing", "hourly thing", "hourly thing", None),
    ],
)
def test_each_bucket_has_one_label_short_label_and_length(
    name: str, label: str, short: str, seconds: float | None
) -> None:
    assert windows.label(name) == label
    assert windows.short_label(name) == short
    assert windows.length(name) == seconds


def test_the_views_use_the_table() -> None:
    """The statusline bar and pace's warning say the table's short labels; the known
    buckets come first in the order the table lists them."""
    usage = {
        "seven_day": {"utilization": 61.0, "resets_at": "2026-11-28T12:00:00Z"},
        "five_hour": {"utilization": 42.0, "resets_at": "2026-11-25T13:00:00Z"},
    }
    assert line(usage, NOW) == "5h 42% ↻1h00m · 7d 61%"
    row = Snapshot.from_json(
        {
            "org_uuid": "0f6c3b2a-0000-4000-8000-000000000000",
            "fetched_at": "2026-11-25T12:00:00Z",
            "browser": "statusline",
            "usage": {**usage, "weird_one": {"utilization": 1.0}, "seven_day_opus": None},
        }
    )
    assert list(row.windows())[:2] == ["five_hour", "seven_day"]
    start = NOW.timestamp() - 1800
    points = [
        HistoryPoint(
            t=start + 60 * i,
            used={"seven_day_opus": 60.0 + 0.5 * i},
            resets={"seven_day_opus": NOW.timestamp() + 86400},
        )
        for i in range(30)
    ]
    found = pace.paces(points, NOW)
    warning = pace.status_warning(found.values(), NOW)
    assert warning is not None and warning.startswith("⚠ 7d opus 100% ~"), warning


def test_no_module_restates_the_labels() -> None:
    """A second copy of the table is how two views came to disagree: no module but
    windows.py spells a label or a short label of a non-main bucket."""
    spelled = re.compile(r"\"(7-day (?:OAuth apps|Opus|Sonnet)|7d (?:apps|opus|sonnet))\"")
    found = [
        f"{path.relative_to(PACKAGE)}: {match.group(0)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "windows.py"
        for match in spelled.finditer(path.read_text())
    ]
    assert not found, found
