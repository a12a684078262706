"""Arbitrary JSON thrown at ingest: each input is refused with one line naming what is
wrong, or stored and then read back by every reader (the state file parses with no row
skipped, the summary, ``show``, the status segment and ``--json`` all render). In-process
for hundreds of inputs (parse + the real store), and a few through the real
``claude-meter ingest`` and its readers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from claudemeter import env, registry
from claudemeter.model import ValidationError, parse_many
from claudemeter.options import Settings
from claudemeter.popup import Look, text
from claudemeter.status import job_output
from claudemeter.store import Store
from claudemeter.summary import summary
from tests.helpers import cli
from tests.hostile.readers import assert_readers_work, good_snapshot, ingest

#: Text with the characters that broke readers: lone surrogates, controls, escapes.
TEXT = st.one_of(
    st.text(
        st.characters(codec=None) | st.sampled_from("\ud83d\udfff\x9b\u202e\x00\x1b"), max_size=12
    ),
    st.sampled_from(["\x1b]0;T\x07", "\x9b2J", "active \ud83d"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e300, -1.0, 0, 100, 1000.0, 1000.5, 2**53 + 1]),
)
TIMES = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "0001-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-25T12:00:00.123456789Z",
            "2026-11-25T12:00:00+24:00",
            "1969-12-31T23:59:59Z",
        ]
    ),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT, TIMES)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            TEXT | st.sampled_from(["utilization", "resets_at", "access_token"]), inner, max_size=4
        )
    ),
    max_leaves=20,
)
WINDOW = st.fixed_dictionaries(
    {},
    optional={"utilization": NUMBERS | st.none() | TEXT, "resets_at": TIMES | st.none() | NUMBERS},
)
USAGE = st.dictionaries(
    st.sampled_from(["five_hour", "seven_day", "extra_usage", "limits", "x", "access_token"])
    | TEXT,
    WINDOW | JSON_VALUES,
    max_size=4,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "org_uuid": TEXT | JSON_VALUES,
        "browser": TEXT | JSON_VALUES,
        "account_email": TEXT | st.none(),
        "fetched_at": TIMES | JSON_VALUES,
        "usage": USAGE | st.none() | JSON_VALUES,
        "overage": JSON_VALUES,
        "subscription": JSON_VALUES,
        "errors": st.lists(TEXT, max_size=3) | JSON_VALUES,
        "stale": JSON_VALUES,
        "cookie": TEXT,
    },
)
#: A good snapshot with some fields replaced, or any JSON at all, or a list of them.
BODIES = st.one_of(
    FIELDS.map(lambda f: {**good_snapshot(), **f}),
    JSON_VALUES,
    st.lists(FIELDS.map(lambda f: {**good_snapshot(), **f}), min_size=1, max_size=3),
)


def every_reader_reads(store: Store) -> None:
    state = store.read()
    assert state.problem is None and state.skipped == 0, (state.problem, state.skipped_why)
    now = env.now()
    rows = state.accounts(now)
    summary(rows, now).encode("utf-8")
    text(Look()).encode("utf-8")
    job_output(state, now, Settings(), registry.paused_count()).encode("utf-8")
    json.dumps([row.to_json() for row in rows], ensure_ascii=False, allow_nan=False).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES)
def test_refused_with_one_line_or_stored_and_readable_in_process(body: object) -> None:
    store = Store(Path(os.environ["CLAUDEMETER_STATE_DIR"]))
    try:
        data = json.loads(json.dumps(body))  # as a client's JSON arrives
        snapshots = parse_many(data)
    except ValidationError as exc:
        assert "\n" not in str(exc) and str(exc).split(":")[0], str(exc)
        event("refused")
        return
    store.put(snapshots)
    event("stored")
    every_reader_reads(store)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES)
def test_the_real_ingest_refuses_with_one_line_or_every_reader_works(body: object) -> None:
    assert ingest(good_snapshot(util=41.0)).returncode == 0
    done = ingest(json.dumps(body))
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.returncode in (0, 1), done.stderr
    assert_readers_work()
    status = cli("status")
    assert status.returncode == 0 and status.stdout.strip()
