"""A store the way real use fills it: ``accounts`` accounts, each read about once a
minute from several sources for ``hours`` hours, written through the store's own API on
a pinned clock (``CLAUDEMETER_NOW``), history, derived pace and top session included.

Per account and minute: Claude Code's usage cache (``Claude Code cache``) and the agents'
``statusline`` (three agents, each recording its session's totals; a session lasts three
hours), a browser posting through the bridge (``Chrome``) every two minutes, and the
OAuth poller (``Claude Code``) every five. The five-hour bucket climbs and resets every
five hours (one window in three hits 100 %), the weekly one climbs slowly.

Readers then run on the real clock when ``end`` is now (the status line's segment cache
is only used then), or on ``CLAUDEMETER_NOW`` pinned at ``end``.

Writes are batched: one ``Store.update`` per ``batch`` simulated minutes holds every
reading of those minutes (each with its own ``fetched_at``), with the clock pinned at
the batch's end, so a day at fifty accounts fills in about a minute; the history files
come out as per-minute writes leave them (they fold readings 20 s apart and compact
every five minutes, a batch at most).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import common

MINUTE = 60.0
HOUR = 3600.0
FIVE = 5 * HOUR
#: The account Claude Code's login (the fixture ``~/.claude.json``) names: the one the
#: status line shows.
FIRST_ORG = "0f6c3b2a-0000-4000-8000-00000000b001"
AGENTS = 3
SESSION_HOURS = 3


def at(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds, as the sources write it."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def org(index: int) -> str:
    return FIRST_ORG if index == 0 else f"0f6c3b2a-0000-4000-8000-{index:012x}"


def email(index: int) -> str:
    return "ada@example.com" if index == 0 else f"user{index}@example.com"


@dataclass(frozen=True)
class Reading:
    """One source's reading of one account at ``t`` (epoch seconds)."""

    account: int
    source: str
    t: float


def readings(accounts: int, start: float, end: float) -> Iterator[Reading]:
    """Every reading in ``[start, end)``, in time order: per account and minute the
    cache at +0 s, the statusline at +20 s, the browser at +40 s every other minute,
    the OAuth poller at +50 s every fifth; accounts a little apart in the minute."""
    minute = int(start // MINUTE)
    while minute * MINUTE < end:
        found = []
        for index in range(accounts):
            base = minute * MINUTE + (index % 10) * 0.5
            found += [
                Reading(index, "Claude Code cache", base),
                Reading(index, "statusline", base + 20),
            ]
            if minute % 2 == 0:
                found.append(Reading(index, "Chrome", base + 40))
            if minute % 5 == 0:
                found.append(Reading(index, "Claude Code", base + 50))
        yield from sorted((r for r in found if start <= r.t < end), key=lambda r: r.t)
        minute += 1


def usage(index: int, t: float, start: float, end: float) -> dict[str, object]:
    """The buckets as the server would report them at ``t`` (each account its own
    phase, so the windows do not all reset together)."""
    shifted = t - start + index * 1234.0
    window = int(shifted // FIVE)
    began = t - (shifted - window * FIVE)
    rate = 25.0 if window % 3 == 0 else 9.0 + index % 5
    return {
        "five_hour": {
            "utilization": round(min(100.0, rate * (t - began) / HOUR), 1),
            "resets_at": at(began + FIVE),
        },
        "seven_day": {
            "utilization": round(min(100.0, 10.0 + 3.0 * (t - start) / 86400.0), 1),
            "resets_at": at(end + 3 * 86400.0 + index * 60.0),
        },
    }


def fill(env: dict[str, str], accounts: int, hours: float, end: float, batch: int = 5) -> Path:
    """Fill the store ``env`` names with the ``hours`` before ``end`` (epoch seconds: any
    time works, the data is generated for it); returns its directory."""
    from claudemeter import history
    from claudemeter.model import Snapshot
    from claudemeter.store import Store

    start = end - hours * HOUR
    spent: dict[tuple[int, int], float] = {}
    with common.environ(env):
        store = Store()
        directory: Path = store.directory
        t = start
        while t < end:
            until = min(t + batch * MINUTE, end)
            os.environ["CLAUDEMETER_NOW"] = at(until)
            with store.update() as state:
                for reading in readings(accounts, t, until):
                    i = reading.account
                    when = datetime.fromtimestamp(reading.t, timezone.utc)
                    state.put(
                        Snapshot(
                            org(i), reading.source, email(i), when, usage(i, reading.t, start, end)
                        )
                    )
                    if reading.source != "statusline":
                        continue
                    for agent in range(AGENTS):
                        key = (i, agent)
                        spent[key] = spent.get(key, 0.0) + 0.002 * (agent + 1)
                        session = int((reading.t - start) // (SESSION_HOURS * HOUR))
                        point = history.SessionPoint(
                            reading.t, spent[key], 40_000 * (agent + 1), 900 * (agent + 1)
                        )
                        state.record_session(
                            history.SessionSample(
                                org(i),
                                f"{i}-{agent}-{session}",
                                f"%{i * AGENTS + agent}",
                                f"/home/ada/src/project{agent}",
                                "Opus",
                                start + session * SESSION_HOURS * HOUR,
                                point,
                            )
                        )
            t = until
        return directory
