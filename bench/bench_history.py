"""What eight days of history cost the redraw path: run by hand (``python
bench/bench_history.py [--runs N]``), prints figures, asserts nothing.

Three state dirs are filled through the store, an hour of a pinned clock at a time, with
0, 1 and 8 days of generated readings (one every two minutes from an OAuth-like source,
a 5-hour bucket that hits the wall every third window) and three agents' session
records. Then, interleaved in one run on a clock pinned at the end of those days:

- ``claude-meter status`` (the format shows ``{pace}`` and ``{top}``) in each dir, beside
  the same command on the empty history (goal: 1.0x, flat) and a bare ``python3 -c pass``;
- ``claude-meter statusline`` fed a 2.1.332 input in the 0- and 8-day dirs (goal: flat),
  and in the 8-day dir with the clock moved past the compaction interval on every call
  (the call that pays for compacting into the archive, once per 5 minutes);
- the size of ``state.json`` and ``derived.json`` (what every redraw parses) and of the
  history files, beside the empty history's and the stated bound.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import common
from common import Command, Figure, once

END = 1_796_040_000.0  # the pinned clock: any date works, the data is generated for it
STEP = 120.0
HOUR = 3600.0
FIVE = 5 * HOUR
FORMAT = "{5h} {reset} · {7d} {pace} {top} {paused}"
ORG = "0f6c3b2a-0000-4000-8000-00000000b001"


def at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def fill(env: dict[str, str], days: float) -> None:
    """``days`` of readings and three sessions, through the store as the sources write."""
    from claudemeter import history
    from claudemeter.model import Snapshot
    from claudemeter.store import Store

    start = END - days * 86400.0
    with common.environ(env):
        store = Store()
        if not days:  # the empty history: one reading, the one the segment shows
            usage = {"five_hour": {"utilization": 40.0, "resets_at": at(END + 2 * HOUR)}}
            when = datetime.fromtimestamp(END - 60, timezone.utc)
            store.put([Snapshot(ORG, "Claude Code", "ada@example.com", when, usage)])
            return
        spent = [0.0, 0.0, 0.0]
        t = start
        while t < END:
            os.environ["CLAUDEMETER_NOW"] = at(min(t + HOUR, END))
            with store.update() as state:
                hour_end = min(t + HOUR, END)
                while t < hour_end:
                    window = int((t - start) // FIVE)
                    began = start + window * FIVE
                    rate = 25.0 if window % 3 == 0 else 10.0
                    usage = {
                        "five_hour": {
                            "utilization": min(100.0, rate * (t - began) / HOUR),
                            "resets_at": at(began + FIVE),
                        },
                        "seven_day": {
                            "utilization": 2.0 * (t - start) / 86400.0,
                            "resets_at": at(END + 86400.0),
                        },
                    }
                    when = datetime.fromtimestamp(t, timezone.utc)
                    state.put(Snapshot(ORG, "Claude Code", "ada@example.com", when, usage))
                    for n in range(3):
                        spent[n] += 0.01 * (n + 1)
                        point = history.SessionPoint(t, spent[n], 1000 * n, 100 * n)
                        state.record_session(
                            history.SessionSample(
                                ORG, f"s{n}", f"%{n}", f"/src/p{n}", "Sonnet", start, point
                            )
                        )
                    t += STEP


def statusline_input() -> bytes:
    body = json.loads((common.FIXTURES / "claude_code_2_1_332_statusline_input.json").read_text())
    body["rate_limits"]["five_hour"]["resets_at"] = int(END + 2 * HOUR)
    body["rate_limits"]["seven_day"]["resets_at"] = int(END + 3 * 86400)
    return json.dumps(body).encode()


def output(command: Command, env: dict[str, str]) -> str:
    done = subprocess.run(command.argv, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def sizes(state: Path) -> tuple[int, int]:
    """(bytes every redraw parses: state.json and derived.json; history files' bytes)."""
    hot = sum(
        (state / name).stat().st_size
        for name in ("state.json", "derived.json")
        if (state / name).exists()
    )
    kept = sum(
        (state / name).stat().st_size
        for name in ("history.json", "history-recent.json")
        if (state / name).exists()
    )
    return hot, kept


def measure(runs: int = 40) -> tuple[list[Figure], list[str]]:
    from claudemeter import history

    with tempfile.TemporaryDirectory(prefix="cmbench") as name:
        tmp = Path(name)
        envs = {}
        for days in (0, 1, 8):
            envs[days] = common.isolated_env(
                tmp, CLAUDEMETER_STATE_DIR=str(tmp / f"state-{days}d"), CLAUDEMETER_NOW=at(END)
            )
            fill(envs[days], days)
        shutil.copy(
            common.FIXTURES / "claude_json_oauth_account.json", tmp / "home" / ".claude.json"
        )
        before = {days: sizes(tmp / f"state-{days}d") for days in envs}
        status = Command([*common.meter(), "status", "--format", FORMAT])
        shown = {days: output(status, envs[days]) for days in (0, 8)}
        bare = Command([sys.executable, "-c", "pass"])
        statusline = Command([*common.meter(), "statusline", "--no-chain"], statusline_input())
        shutil.copytree(tmp / "state-8d", tmp / "state-8d-compacting")
        compacting = dict(envs[8], CLAUDEMETER_STATE_DIR=str(tmp / "state-8d-compacting"))
        times: dict[str, list[float]] = {}
        for run in range(runs):  # taking turns: a machine getting busier weighs on all alike
            moved = dict(compacting, CLAUDEMETER_NOW=at(END + (run + 1) * history.COMPACT_EVERY))
            for label, command, env in [
                ("bare", bare, envs[0]),
                ("status 0d", status, envs[0]),
                ("status 1d", status, envs[1]),
                ("status 8d", status, envs[8]),
                ("0d", statusline, envs[0]),
                ("8d", statusline, envs[8]),
                ("8d compacting", statusline, moved),
            ]:
                times.setdefault(label, []).append(once(command, env))
    ms = {k: common.median(v) * 1000 for k, v in times.items()}
    bound = history.MAX_ARCHIVE_BYTES + history.MAX_RECENT_BYTES
    figures = [
        Figure(
            f"status, {d} day(s) of history (median of {runs})",
            ms[f"status {d}d"],
            "ms",
            "status, no history",
            ms["status 0d"],
            "1.0x (flat)",
        )
        for d in (1, 8)
    ]
    figures.append(
        Figure(
            f"status, no history (median of {runs})",
            ms["status 0d"],
            "ms",
            "python3 -c pass",
            ms["bare"],
        )
    )
    figures += [
        Figure(
            f"statusline, 8 days of history (median of {runs})",
            ms["8d"],
            "ms",
            "statusline, no history",
            ms["0d"],
            "1.0x (flat)",
        ),
        Figure(
            f"statusline, 8 days, compacting every call (median of {runs})",
            ms["8d compacting"],
            "ms",
            "statusline, no history",
            ms["0d"],
            "once per 5 min",
        ),
    ]
    figures += [
        Figure(
            "state + derived, 1 day of history",
            before[1][0] / 1024,
            "KiB",
            "state + derived, no history",
            before[0][0] / 1024,
            "+ pace/top only",
        ),
        Figure(
            "state + derived, 8 days of history",
            before[8][0] / 1024,
            "KiB",
            "state + derived, 1 day",
            before[1][0] / 1024,
            "1.0x (flat)",
        ),
    ]
    figures += [
        Figure(
            f"history files, {d} day(s)",
            before[d][1] / 1024,
            "KiB",
            "stated bound",
            bound / 1024,
            "<= 1x",
        )
        for d in (1, 8)
    ]
    notes = [f"status prints, no history: {shown[0]}", f"status prints, 8 days:     {shown[8]}"]
    return figures, notes


def main() -> None:
    common.main_with_runs(__doc__ or "", measure)


if __name__ == "__main__":
    main()
