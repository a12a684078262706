"""Class 1, "accepted, then unreadable": whatever is stored reads back through every
reader. Each hostile snapshot is refused at every way in (in-process parse, the real
``claude-meter ingest``, the real bridge) naming its field; rows planted in the file
behind our back are skipped with one warning; a state file that does not parse at all
(any exception) is moved aside; a running guard never exits over any of it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from claudemeter.model import ValidationError, parse_many
from claudemeter.store import Store
from tests.helpers import (
    FAST,
    LOGIN_ORG,
    TICKER,
    child_of,
    cli,
    grows,
    is_stopped,
    put,
    start,
    start_bridge,
    wait_for,
)
from tests.hostile.readers import assert_readers_work, assert_refused, good_snapshot, ingest

DEEP = 985
#: Stands for a DEEP-level object in a body; :func:`raw_json` writes it out as text
#: (building it as a dict would break json.dumps in this process first).
DEEP_MARK = "@deep@"


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def usage(**windows: Any) -> dict[str, Any]:
    """A usage body with one good window beside the hostile part (a body with no usable
    window is stored as an in-band error, with usage null: nothing of it is kept)."""
    return {"usage": {"seven_day": {"utilization": 3.0, "resets_at": None}, **windows}}


#: (why, fields replacing a good snapshot's, the field the refusal must name)
HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("lone surrogate", {"subscription": {"status": "active \ud83d"}}, "subscription.status"),
    ("lone surrogate in a key", {"overage": {"\udc00x": 1}}, "overage"),
    ("lone surrogate in errors", {"errors": ["bad \udfff"]}, "errors[0]"),
    ("lone surrogate in the email", {"account_email": "a\ud800@b.c"}, "account_email"),
    ("year 9999 and a -23:59 offset", {"fetched_at": "9999-12-31T23:59:59-23:59"}, "fetched_at"),
    (
        "year 1 and a +23:59 offset",
        usage(five_hour={"utilization": 5, "resets_at": "0001-01-01T00:00:00+23:59"}),
        "usage.five_hour.resets_at",
    ),
    ("year 1 (strftime writes 1-01-01)", {"fetched_at": "0001-01-01T00:00:00Z"}, "fetched_at"),
    ("February 30th", {"fetched_at": "2026-02-30T00:00:00Z"}, "fetched_at"),
    ("a 24-hour offset", {"fetched_at": "2026-02-03T00:00:00+24:00"}, "fetched_at"),
    ("985-deep usage", usage(x=DEEP_MARK), "nested deeper"),
    ("17-deep overage", {"overage": {"x": json.loads(deep(16))}}, "nested deeper"),
    ("utilization 1e300", usage(five_hour={"utilization": 1e300}), "usage.five_hour.utilization"),
    ("limits[] percent 1e300", usage(limits=[{"kind": "session", "percent": 1e300}]), "percent"),
    ("a huge integer", {"overage": {"used_credits": 10**30}}, "overage.used_credits"),
    ("usage.access_token", usage(access_token="sk-ant-oat01-x"), "usage: key 'access_token'"),
    ("a nested cookie", {"subscription": {"meta": {"Cookie": "sessionKey=x"}}}, "Cookie"),
    (
        "a line break in a bucket's name",
        usage(**{"five\nhour": {"utilization": 5, "resets_at": "noon"}}),
        "usage.five\\nhour.resets_at",
    ),
    (
        "an escape and a line separator in a bucket's name",
        usage(**{"\x1b[2J\u2028x": {"utilization": 5, "resets_at": "noon"}}),
        "usage.\\x1b[2J\\u2028x.resets_at",
    ),
]
#: Refused at ingest only: Python's json reads these, a browser's JSON.stringify never sends them.
HOSTILE_TEXT: list[tuple[str, str, str]] = [
    ("NaN", '"usage": {"five_hour": {"utilization": NaN}}', "utilization"),
    ("Infinity inside overage", '"overage": {"used_credits": Infinity}', "used_credits"),
]


def hostile_body(fields: dict[str, Any]) -> dict[str, Any]:
    body = good_snapshot(util=77.0)
    body.update(fields)
    return body


def raw_json(body: dict[str, Any], levels: int = DEEP) -> str:
    """Lone surrogates survive json.dumps as escapes, exactly as an attacker sends them."""
    return json.dumps(body).replace(json.dumps(DEEP_MARK), deep(levels))


@pytest.mark.parametrize(("why", "fields", "naming"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_parse_refuses_naming_the_field(why: str, fields: dict[str, Any], naming: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_many(json.loads(raw_json(hostile_body(fields), levels=200)))
    assert naming in str(caught.value)


def test_ingest_refuses_each_with_one_line_and_every_reader_still_works() -> None:
    assert ingest(good_snapshot(util=41.0)).returncode == 0
    before = Store().path.read_bytes()
    for why, fields, naming in HOSTILE:
        assert_refused(ingest(raw_json(hostile_body(fields))), naming, why)
        assert Store().path.read_bytes() == before, why
    for why, text, naming in HOSTILE_TEXT:
        good = json.dumps(good_snapshot(util=77.0))
        assert_refused(ingest(good[:-1] + ", " + text + "}"), naming, why)
    assert Store().path.read_bytes() == before
    assert_readers_work(util=41.0)


def test_the_bridge_answers_422_naming_the_field_and_keeps_serving(tmp_path: Path) -> None:
    bridge = start_bridge(tmp_path)
    try:
        assert bridge.post(good_snapshot(util=41.0)).status == 200
        for why, fields, naming in HOSTILE:
            reply = bridge.call(
                "POST",
                "/snapshots",
                raw_json(hostile_body(fields)).encode(),
                headers={"Content-Type": "application/json"},
            )
            assert reply.status == 422, (why, reply.status, reply.body)
            assert naming in reply.body["error"], (why, reply.body)
        assert "internal error" not in bridge.output()
        assert_readers_work(util=41.0, bridge=bridge)
    finally:
        bridge.stop()


def plant(rows: list[str]) -> None:
    """Write the state file behind the store's back (another version, a bad disk)."""
    path = Store().path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text('{"version":1,"rows":[' + ",".join(rows) + "]}")


def test_a_planted_bad_row_is_skipped_with_one_warning_and_the_rest_shows() -> None:
    good = json.dumps(good_snapshot(util=41.0))
    other = good_snapshot(util=12.0, org_uuid="org-other", account_email="bo@example.com")
    bad = [
        json.dumps(dict(other, subscription={"status": "active \ud83d"})),
        json.dumps(dict(other, fetched_at="0001-01-01T00:00:00+23:59")),
        json.dumps(dict(other, usage={"five_hour": {"utilization": 1e300}})),
        raw_json(dict(other, **usage(x=DEEP_MARK))),
        json.dumps(dict(other, **usage(access_token="x"))),
    ]
    for row in bad:
        plant([row, good])
        done = cli("--json", "--cached")
        assert done.returncode == 0, done.stderr
        assert [r["org_uuid"] for r in json.loads(done.stdout)] == [LOGIN_ORG]
        warning = [line for line in done.stderr.splitlines() if "skipped" in line]
        assert len(warning) == 1 and "unreadable row" in warning[0], done.stderr
        assert_readers_work(util=41.0)
    # The next write keeps the good row and drops the bad one: the file reads clean.
    assert ingest(good_snapshot(util=43.0)).returncode == 0
    assert "skipped" not in cli("--json", "--cached").stderr
    assert_readers_work(util=43.0)


BROKEN_FILES = {
    "200000 brackets (RecursionError)": "[" * 200_000,
    "a 5000-digit number (ValueError)": '{"rows": [], "version": ' + "9" * 5000 + "}",
    "1e999 in history (OverflowError once used)": '{"rows": [], "history": {"k": [{"t": 1e999}]}}',
    "not UTF-8": b"\xff\xfe{}".decode("latin-1"),
    "a list": "[]",
    "rows not a list": '{"rows": {"a": 1}}',
}


@pytest.mark.parametrize("content", list(BROKEN_FILES.values()), ids=list(BROKEN_FILES))
def test_any_broken_state_file_reads_as_a_problem_and_is_moved_aside(content: str) -> None:
    path = Store().path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(content.encode("latin-1"))
    status = cli("status")
    assert status.returncode == 0 and status.stdout.strip() and "Traceback" not in status.stderr
    assert ingest(good_snapshot(util=41.0)).returncode == 0
    assert_readers_work(util=41.0)
    if content.startswith('{"rows": [], "history"'):
        return  # a readable file with one bad point: the point is dropped, not the file
    assert list(path.parent.glob("state.json.corrupt-*")), "the broken file was not kept aside"


def test_a_running_guard_neither_exits_nor_lets_go_on_a_bad_row(tmp_path: Path) -> None:
    out = tmp_path / "ticks"
    put(10.0)
    guard = start(*FAST, sys.executable, "-c", TICKER, str(out))
    child = child_of(guard)
    wait_for(grows(out), "the command to run")
    good = json.dumps(good_snapshot(util=41.0, org_uuid="org-a"))
    for row in (
        raw_json(good_snapshot(org_uuid="org-a", **usage(x=DEEP_MARK))),
        json.dumps(good_snapshot(org_uuid="org-a", subscription={"s": "\ud83d"})),
    ):
        plant([row, good])
        wait_for(grows(out), "the command to keep running")
        assert guard.poll() is None, guard.communicate()
    Path(Store().path).write_text("[" * 200_000)
    wait_for(grows(out), "the command to keep running on a broken file")
    assert guard.poll() is None
    put(95.0)  # and it still guards: over the threshold, it pauses the command
    wait_for(lambda: is_stopped(child), "the command to be paused", show=lambda: str(guard.poll()))
    assert guard.poll() is None
