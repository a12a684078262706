"""A refresh asked for by many guards is single-flight at the spawn (issue 16): twenty
idle guards with old data and no login start one refresh process between them, not one
each; after ``REFRESH_AFTER`` the next one may start again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from claudemeter.guard import REFRESH_AFTER, Refresher
from claudemeter.store import Store

GUARD = """
import sys
from claudemeter.guard import Refresher
from claudemeter.model import utcnow
from claudemeter.store import State, Store
sys.stdin.read()  # all twenty wait here, then ask at once
refresher = Refresher(Store())
refresher.maybe_start(State(), None, utcnow())
print("started" if refresher._proc is not None else "left it", flush=True)
if refresher._proc is not None:
    refresher._proc.wait()
"""


def test_twenty_guards_start_one_refresh(state_dir: Path) -> None:
    guards = [
        subprocess.Popen(
            [sys.executable, "-c", GUARD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(20)
    ]
    for guard in guards:
        assert guard.stdin is not None
        guard.stdin.close()
    said = []
    for guard in guards:
        assert guard.stdout is not None
        said.append(guard.stdout.read().strip())
        guard.wait(timeout=120)
    assert sorted(said) == ["left it"] * 19 + ["started"], said


def test_the_next_refresh_may_start_after_the_interval(state_dir: Path) -> None:
    refresher = Refresher(Store(state_dir))
    assert refresher.claim(1_000_000.0)
    assert not Refresher(Store(state_dir)).claim(1_000_000.0 + REFRESH_AFTER / 2)
    assert Refresher(Store(state_dir)).claim(1_000_000.0 + REFRESH_AFTER + 1)
