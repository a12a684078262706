"""A long-lived reader (the bridge, the tmux loop, a guard) keeps one ``Store`` and reads
the file again and again; it parses only the rows whose JSON changed since its last
read (issue 16: fifty accounts' rows are not all parsed for one new reading). What it
reads must still be exactly what the file holds: a row changed by another writer, a row
damaged by hand, a row the caller changed in place."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace
from datetime import timedelta
from pathlib import Path

import pytest

from claudemeter.model import Snapshot, utcnow
from claudemeter.private import StoreError
from claudemeter.store import Store


def reading(org: int, used: float, minutes_ago: float = 1.0) -> Snapshot:
    return Snapshot(
        org_uuid=f"0f6c3b2a-0000-4000-8000-{org:012x}",
        browser="Chrome",
        account_email=f"user{org}@example.com",
        fetched_at=utcnow() - timedelta(minutes=minutes_ago),
        usage={"five_hour": {"utilization": used, "resets_at": None}},
    )


def used(store: Store) -> dict[str, float | None]:
    return {row.org_uuid: row.windows()["five_hour"].utilization for row in store.read().rows}


def test_a_reader_sees_what_another_writer_changed(state_dir: Path) -> None:
    Store(state_dir).put([reading(n, 10.0 + n) for n in range(5)])
    reader = Store(state_dir)
    before = used(reader)
    Store(state_dir).put([reading(3, 77.0, minutes_ago=0.5)])
    after = used(reader)
    assert after == {**before, reading(3, 0).org_uuid: 77.0}


def test_a_row_damaged_by_hand_is_skipped_not_served_from_memory(state_dir: Path) -> None:
    Store(state_dir).put([reading(n, 10.0 + n) for n in range(3)])
    reader = Store(state_dir)
    assert len(reader.read().rows) == 3
    path = state_dir / "state.json"
    body = json.loads(path.read_text())
    body["rows"][1]["usage"]["five_hour"]["utilization"] = "lots"
    body["rows"][2]["fetched_at"] = "yesterday"
    path.write_text(json.dumps(body))
    state = reader.read()
    assert [r.org_uuid for r in state.rows] == [reading(0, 0).org_uuid]
    assert state.skipped == 2
    assert state.rows[0].windows()["five_hour"].utilization == 10.0


def test_a_row_changed_in_place_by_a_caller_does_not_leak_into_the_next_read(
    state_dir: Path,
) -> None:
    Store(state_dir).put([reading(n, 10.0 + n) for n in range(3)])
    reader = Store(state_dir)
    first = reader.read()
    kept = first.rows[0].fetched_at
    with pytest.raises(FrozenInstanceError):  # a row read is never changed in place ...
        first.rows[0].fetched_at = kept - timedelta(days=3)  # type: ignore[misc]  # frozen
    first.rows[0] = replace(  # ... a caller changes its own copy
        first.rows[0],
        fetched_at=kept - timedelta(days=3),
        usage={"five_hour": {"utilization": 99.0, "resets_at": None}},
    )
    again = reader.read().rows[0]
    assert again.fetched_at == kept
    assert again.windows()["five_hour"].utilization == 10.0


def test_a_writer_that_leaves_rows_alone_writes_them_back_the_same(state_dir: Path) -> None:
    Store(state_dir).put([reading(n, 10.0 + n) for n in range(4)])
    before = json.loads((state_dir / "state.json").read_text())["rows"]
    Store(state_dir).put([reading(9, 50.0)])
    after = json.loads((state_dir / "state.json").read_text())["rows"]
    assert after[:4] == before
    assert len(after) == 5


def test_a_row_that_would_not_read_back_is_never_written_beside_rows_read_before(
    state_dir: Path,
) -> None:
    Store(state_dir).put([reading(n, 10.0 + n) for n in range(3)])
    before = (state_dir / "state.json").read_bytes()
    store = Store(state_dir)
    store.read()  # the rows read before are not re-checked; the new one is
    with pytest.raises(StoreError, match="would not read back"):
        store.put([reading(7, 5000.0)])  # no percentage: Snapshot.from_json refuses it
    assert (state_dir / "state.json").read_bytes() == before
