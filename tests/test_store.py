"""The state file: private, atomic, tolerant of damage, and lossless under concurrency."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from claudemeter.model import Snapshot, parse_many, utcnow
from claudemeter.private import StoreError
from claudemeter.store import Store
from tests.helpers import FIXTURES, fixture, utilization


def snap(
    org: str,
    five: float | None,
    when: datetime | None = None,
    browser: str = "Chrome",
    errors: list[str] | None = None,
) -> Snapshot:
    return Snapshot(
        org_uuid=org,
        browser=browser,
        account_email=f"{org}@example.com",
        fetched_at=when or utcnow(),
        usage=None if five is None else {"five_hour": {"utilization": five, "resets_at": None}},
        errors=errors or [],
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_file_is_an_empty_state(state_dir: Path) -> None:
    state = Store(state_dir).read()
    assert state.rows == [] and state.problem is None


def test_directory_0700_files_0600(state_dir: Path) -> None:
    store = Store(state_dir)
    store.put([snap("o1", 10)])
    assert mode(state_dir) == 0o700
    assert mode(store.path) == 0o600
    assert mode(state_dir / "state.lock") == 0o600


def test_a_loose_existing_directory_is_tightened(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o755)
    state_dir.chmod(0o755)
    Store(state_dir).put([snap("o1", 10)])
    assert mode(state_dir) == 0o700


def test_put_then_read_round_trips_the_fixture(state_dir: Path) -> None:
    store = Store(state_dir)
    store.put(parse_many(fixture("snapshots_two_browsers_two_accounts.json")))
    rows = store.read().rows
    assert [r.browser for r in rows] == ["Chrome", "Arc", "Brave", "Chrome"]
    assert json.loads(store.path.read_text())["version"] == 1


def test_newest_reading_per_account_and_source_replaces_the_old(state_dir: Path) -> None:
    store = Store(state_dir)
    t0 = utcnow() - timedelta(minutes=2)
    store.put([snap("o1", 10, t0)])
    store.put([snap("o1", 20, t0 + timedelta(seconds=60))])
    rows = store.read().rows
    assert len(rows) == 1 and rows[0].usage == {"five_hour": {"utilization": 20, "resets_at": None}}


def test_out_of_order_delivery_is_ignored(state_dir: Path) -> None:
    store = Store(state_dir)
    t0 = utcnow()
    store.put([snap("o1", 20, t0)])
    store.put([snap("o1", 10, t0 - timedelta(seconds=30))])
    assert utilization(store.read().rows[0], "five_hour") == 20


def test_a_failed_fetch_keeps_the_last_good_numbers(state_dir: Path) -> None:
    store = Store(state_dir)
    good_at = utcnow() - timedelta(minutes=20)
    store.put([snap("o1", 55, good_at, browser="Claude Code")])
    store.put([snap("o1", None, browser="Claude Code", errors=["usage: HTTP 500"])])
    row = store.accounts()[0]
    assert utilization(row, "five_hour") == 55
    assert row.errors == ["usage: HTTP 500"]
    assert row.stale  # 20 minutes old: past the OAuth freshness limit
    assert abs((row.fetched_at - good_at).total_seconds()) < 0.01


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b'{"rows": "nope"}', b"[1, 2, 3]", b"\xff\xfe\x00garbage", b'{"rows": [{"x": 1}'],
    ids=["empty", "truncated", "wrong-type", "foreign-json", "binary", "cut-mid-row"],
)
def test_corrupt_state_is_moved_aside_and_the_next_write_starts_clean(
    state_dir: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir.mkdir(mode=0o700)
    (state_dir / "state.json").write_bytes(content)
    store = Store(state_dir)
    state = store.read()
    assert state.rows == [] and state.problem and "corrupt" in state.problem
    store.put([snap("o1", 10)])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "moved it aside" in err
    aside = list(state_dir.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content  # the evidence is kept
    assert len(store.read().rows) == 1


def test_rows_that_fail_validation_are_dropped_not_fatal(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    good = snap("o1", 10).to_json()
    (state_dir / "state.json").write_text(json.dumps({"version": 1, "rows": [good, {"x": 1}]}))
    assert len(Store(state_dir).read().rows) == 1


def test_a_write_failure_leaves_the_file_untouched(state_dir: Path) -> None:
    store = Store(state_dir)
    store.put([snap("o1", 10)])
    before = store.path.read_bytes()
    with pytest.raises(RuntimeError), store.update() as state:
        state.put(snap("o2", 99))
        raise RuntimeError("a bug in the middle of an update")
    assert store.path.read_bytes() == before


def test_a_read_only_state_dir_is_one_clear_line(state_dir: Path) -> None:
    """The disk read-only: as root (which ignores file modes) the state dir is remounted
    read-only in a private mount namespace; otherwise it is made 0500. Either way the
    writer says so in one line, exits 1, and the file stays as it was."""
    Store(state_dir).put([snap("o1", 10)])
    before = (state_dir / "state.json").read_bytes()
    ingest = [
        sys.executable,
        "-m",
        "claudemeter",
        "ingest",
        str(FIXTURES / "snapshots_two_browsers_two_accounts.json"),
    ]
    if os.geteuid() == 0:
        script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
        argv = ["unshare", "-m", "sh", "-c", script, "sh", str(state_dir), *ingest]
    else:
        state_dir.chmod(0o500)
        argv = ingest
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    finally:
        state_dir.chmod(0o700)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write the state" in lines[0], done.stderr
    assert (state_dir / "state.json").read_bytes() == before


def test_store_error_is_raised_for_a_file_where_the_dir_should_be(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot write the state"):
        Store(blocker / "state").put([snap("o1", 1)])


WRITER = """
import sys, itertools
from datetime import datetime, timezone
from claudemeter.model import Snapshot
from claudemeter.store import Store
store = Store()
big = {f"bucket_{i}": {"utilization": i, "resets_at": None} for i in range(400)}
for n in itertools.count():
    store.put([Snapshot(org_uuid=f"o{n % 7}", browser="Chrome", account_email=None,
                        fetched_at=datetime.now(timezone.utc), usage=big)])
    if n == 3:
        print("writing", flush=True)
"""


def test_killing_a_writer_mid_write_leaves_a_valid_state(state_dir: Path) -> None:
    for round_ in range(5):
        writer = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
        time.sleep(0.01 * round_)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        state = Store(state_dir).read()
        assert state.problem is None, state.problem
        assert state.rows, "the rows acknowledged before the kill are there"


def test_fifty_concurrent_writers_lose_nothing(state_dir: Path, tmp_path: Path) -> None:
    procs = []
    for n in range(50):
        body = snap(f"org-{n:02d}", float(n)).to_json()
        path = tmp_path / f"in-{n}.json"
        path.write_text(json.dumps(body))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "claudemeter", "ingest", str(path)],
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    rows = Store(state_dir).read().rows
    assert sorted(r.org_uuid for r in rows) == [f"org-{n:02d}" for n in range(50)]


def test_readers_never_see_a_torn_file(state_dir: Path) -> None:
    writer = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline()
        store = Store(state_dir)
        for _ in range(300):
            assert store.read().problem is None
    finally:
        writer.kill()
        writer.wait()


def test_timestamps_are_utc_on_disk(state_dir: Path) -> None:
    Store(state_dir).put(
        [snap("o1", 1, datetime(2026, 11, 25, 13, 0, tzinfo=timezone(timedelta(hours=1))))]
    )
    assert json.loads((state_dir / "state.json").read_text())["rows"][0]["fetched_at"] == (
        "2026-11-25T12:00:00.000Z"
    )


def test_a_reading_from_the_future_is_clamped(state_dir: Path) -> None:
    store = Store(state_dir)
    store.put([snap("o1", 10, utcnow() + timedelta(days=2), browser="Arc")])
    store.put([snap("o1", 30, utcnow(), browser="Chrome")])
    rows = store.read().rows
    assert all(r.fetched_at <= utcnow() + timedelta(seconds=1) for r in rows)
    # The honest, current reading wins the fold; the future one does not stay on top.
    folded = store.accounts()[0]
    assert utilization(folded, "five_hour") == 30


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand a file to another user")
def test_a_foreign_owned_state_file_is_replaced_by_our_own_private_one(state_dir: Path) -> None:
    """Someone else's (or a sudo run's) state.json, world-readable: the next write
    replaces it with a file that is ours and 0600, keeping its rows."""
    store = Store(state_dir)
    store.put([snap("o1", 10)])
    os.chown(store.path, 65534, 65534)
    store.path.chmod(0o644)
    store.put([snap("o2", 20)])
    info = store.path.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.getuid(), 0o600)
    assert sorted(r.org_uuid for r in store.read().rows) == ["o1", "o2"]
