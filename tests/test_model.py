"""The snapshot model: every fixture parses, odd-but-valid input is tolerated, and
invalid input is refused naming the field."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from claudemeter.model import (
    Snapshot,
    ValidationError,
    classify_usage,
    format_time,
    parse_many,
    parse_time,
    redact,
    windows,
)
from tests.helpers import FIXTURES, ROW_KEYS, fixture, fixture_bodies, fixture_body

USAGE_FIXTURES = ("oauth_usage_basic.json", "oauth_usage_idle.json", "oauth_usage_2026_shape.json")


def snapshot_with(usage: object, /, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "org_uuid": "org-1",
        "browser": "Chrome",
        "account_email": "a@example.com",
        "fetched_at": "2026-11-25T12:00:00.000Z",
        "usage": usage,
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_every_fixture_is_valid_json(name: str) -> None:
    json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("name", USAGE_FIXTURES)
def test_usage_fixtures_parse_into_windows(name: str) -> None:
    snap = Snapshot.from_json(snapshot_with(fixture(name)))
    assert snap.windows(), name
    received = fixture_body(name)
    stored = snap.to_json()["usage"]
    assert set(stored) == set(received)  # every key kept, none added
    filled = {k for k in received if received[k] is None and stored[k] is not None}
    # kept exactly as received, except a null flat window limits[] gives a number for
    assert {k: v for k, v in stored.items() if k not in filled} == {
        k: v for k, v in received.items() if k not in filled
    }


def test_basic_usage_windows() -> None:
    wins = windows(fixture_body("oauth_usage_basic.json"))
    assert list(wins) == ["five_hour", "seven_day", "seven_day_oauth_apps", "seven_day_sonnet"]
    assert wins["five_hour"].utilization == 61.0
    assert wins["five_hour"].resets_at == datetime(
        2026, 11, 25, 16, 59, 59, 571404, tzinfo=timezone.utc
    )


def test_idle_window_has_no_reset_but_a_value() -> None:
    wins = windows(fixture_body("oauth_usage_idle.json"))
    assert wins["five_hour"].utilization == 0.0
    assert wins["five_hour"].resets_at is None
    assert wins["seven_day"].utilization == 100.0


def test_new_shape_keeps_unknown_keys_and_skips_null_codenames() -> None:
    body = fixture("oauth_usage_2026_shape.json")
    snap = Snapshot.from_json(snapshot_with(body))
    wins = snap.windows()
    assert set(wins) == {"five_hour", "seven_day", "seven_day_opus"}
    assert wins["seven_day_opus"].utilization == 32  # only in limits[]: shown all the same
    out = snap.to_json()["usage"]
    assert out["limits"][2]["scope"]["model"]["display_name"] == "Opus"
    assert out["spend"]["limit"]["amount_minor"] == 4000
    assert "nimbus_quill" in out and out["nimbus_quill"] is None


def test_null_utilization_is_unknown_not_zero_and_breaks_nothing() -> None:
    usage = {
        "five_hour": {"utilization": None, "resets_at": "2026-11-25T16:00:00Z"},
        "seven_day": {"utilization": 40, "resets_at": None},
        "brand_new_window": {"utilization": 7.5, "resets_at": None},
    }
    wins = Snapshot.from_json(snapshot_with(usage)).windows()
    assert wins["five_hour"].utilization is None
    assert wins["seven_day"].utilization == 40.0
    assert wins["brand_new_window"].utilization == 7.5


def test_utilization_above_100_is_kept() -> None:
    wins = Snapshot.from_json(snapshot_with({"five_hour": {"utilization": 104.2}})).windows()
    assert wins["five_hour"].utilization == 104.2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T12:00:00Z", datetime(2026, 11, 25, 12, tzinfo=timezone.utc)),
        ("2026-11-25T12:00:00.000Z", datetime(2026, 11, 25, 12, tzinfo=timezone.utc)),
        (
            "2026-11-25T12:00:00.123456+00:00",
            datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=timezone.utc),
        ),
        (
            "2026-11-25T12:00:00.123456789Z",
            datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=timezone.utc),
        ),
        ("2026-11-25T13:30:00+01:30", datetime(2026, 11, 25, 12, tzinfo=timezone.utc)),
        ("2026-11-25T07:00:00-05:00", datetime(2026, 11, 25, 12, tzinfo=timezone.utc)),
    ],
)
def test_parse_time_variants(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-11-25", "2026-11-25T12:00:00", "2026-13-45T12:00:00Z"]
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_format_time_is_milliseconds_and_z() -> None:
    value = datetime(2026, 11, 25, 12, 0, 0, 987654, tzinfo=timezone.utc)
    assert format_time(value) == "2026-11-25T12:00:00.987Z"
    assert parse_time(format_time(value)) == value.replace(microsecond=987000)


def test_round_trip_of_the_bridge_fixture() -> None:
    raw = fixture_bodies("snapshots_two_browsers_two_accounts.json")
    parsed = parse_many(raw)
    assert len(parsed) == 4
    for original, snap in zip(raw, parsed, strict=True):
        out = snap.to_json()
        for key in sorted(ROW_KEYS - {"stale"}):  # "stale" is ours, not the browser's
            assert out[key] == original[key], key
        assert out["stale"] is False


def test_unknown_top_level_keys_round_trip() -> None:
    snap = Snapshot.from_json(snapshot_with(None, pace={"five_hour": {"rate_per_hour": 3}}))
    assert snap.to_json()["pace"] == {"five_hour": {"rate_per_hour": 3}}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"org_uuid": 5}, "org_uuid"),
        ({"org_uuid": "", "account_email": None}, "org_uuid"),
        ({"browser": ""}, "browser"),
        ({"browser": None}, "browser"),
        ({"fetched_at": "soon"}, "fetched_at"),
        ({"fetched_at": 1764072000}, "fetched_at"),
        ({"account_email": 7}, "account_email"),
        ({"usage": [1, 2]}, "usage"),
        ({"usage": {"five_hour": {"utilization": "61"}}}, "usage.five_hour.utilization"),
        ({"usage": {"five_hour": {"utilization": True}}}, "usage.five_hour.utilization"),
        ({"usage": {"five_hour": {"utilization": -3}}}, "usage.five_hour.utilization"),
        (
            {"usage": {"five_hour": {"utilization": 5, "resets_at": 17}}},
            "usage.five_hour.resets_at",
        ),
        ({"overage": "lots"}, "overage"),
        ({"errors": "boom"}, "errors"),
        ({"errors": [1]}, "errors"),
        ({"stale": "no"}, "stale"),
    ],
)
def test_validation_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Snapshot.from_json(snapshot_with(None, **overrides))
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ": ")


def test_validation_in_a_list_names_the_index() -> None:
    good = snapshot_with(None)
    with pytest.raises(ValidationError) as caught:
        parse_many([good, snapshot_with(None, browser="")])
    assert caught.value.field == "[1].browser"


def test_not_an_object() -> None:
    with pytest.raises(ValidationError):
        parse_many([42])


def test_empty_org_with_email_is_valid() -> None:
    snap = Snapshot.from_json(snapshot_with(None, org_uuid="", account_email="x@example.com"))
    assert snap.account_key == "email:x@example.com"


def test_secrets_are_redacted_from_errors() -> None:
    snap = Snapshot.from_json(
        snapshot_with(
            None,
            errors=[
                "usage: HTTP 401 with Bearer sk-ant-oat01-SECRET",
                "cookie sessionKey=abc123; x",
            ],
        )
    )
    joined = " ".join(snap.errors)
    assert "SECRET" not in joined and "abc123" not in joined
    assert redact("access_token: abc") == "[redacted]"


def test_unknown_keys_that_name_a_credential_are_dropped() -> None:
    snap = Snapshot.from_json(
        snapshot_with(
            None, sessionKey="sk-ant-sid01-x", pace={}, access_token="t", Cookie="c", apiKey="k"
        )
    )
    assert set(snap.to_json()) - ROW_KEYS == {"pace"}


def test_limits_only_body_gives_its_numbers_by_kind() -> None:
    verdict = classify_usage(fixture("oauth_usage_limits_only.json"))
    assert verdict.error is None and verdict.usage is not None
    wins = windows(verdict.usage)
    assert {n: w.utilization for n, w in wins.items()} == {
        "five_hour": 15,
        "seven_day": 36,
        "seven_day_opus": 71,
    }
    assert wins["five_hour"].resets_at == datetime(2026, 11, 25, 16, 20, tzinfo=timezone.utc)
    # the flat keys a strict script reads now carry the number, in the flat shape
    assert verdict.usage["seven_day_opus"] == {
        "utilization": 71,
        "resets_at": "2026-11-29T07:00:00.000Z",
    }
    assert verdict.usage["limits"] == fixture_body("oauth_usage_limits_only.json")["limits"]


def test_flat_windows_win_over_limits_and_limits_fill_the_rest() -> None:
    body = fixture_body("oauth_usage_2026_shape.json")
    usage = classify_usage(body).usage
    assert usage is not None
    assert usage["five_hour"] == body["five_hour"]  # flat: as received
    assert usage["seven_day_opus"]["utilization"] == 32


@pytest.mark.parametrize(
    ("hollow", "kept"),
    [
        (None, {}),
        ({"utilization": None, "resets_at": None}, {}),
        ({"resets_at": "2026-11-25T16:20:00Z", "locked_reason": None}, {"locked_reason": None}),
        ("missing", {}),
    ],
    ids=["null", "hollow", "no-utilization", "missing"],
)
def test_a_null_missing_or_hollow_window_is_filled_from_limits(
    hollow: object, kept: dict[str, object]
) -> None:
    body = fixture_body("oauth_usage_limits_only.json")
    if hollow == "missing":
        del body["five_hour"]
    else:
        body["five_hour"] = hollow
    usage = classify_usage(body).usage
    assert usage is not None
    assert usage["five_hour"] == {
        **kept,
        "utilization": 15,
        "resets_at": "2026-11-25T16:20:00.000Z",
    }


@pytest.mark.parametrize(
    ("row", "name"),
    [
        ({"kind": "session"}, "five_hour"),
        ({"kind": "weekly_all"}, "seven_day"),
        (
            {"kind": "weekly_scoped", "scope": {"model": {"display_name": "Sonnet 5"}}},
            "seven_day_sonnet",
        ),
        ({"kind": "weekly_scoped", "scope": {"model": {"id": "claude-opus-x"}}}, "seven_day_opus"),
        (
            {"kind": "weekly_scoped", "scope": {"model": {"display_name": "Nimbus"}}},
            "seven_day_nimbus",
        ),
        ({"kind": "weekly_scoped", "scope": None}, None),
        ({"kind": "session_but_new", "group": "session"}, None),  # by kind, never by label
        ({"kind": "weekly_all", "percent": "50"}, None),  # a string is not a percent
    ],
)
def test_limits_rows_are_classified_by_kind(row: dict[str, object], name: str | None) -> None:
    item = {"percent": 50, "resets_at": "2026-11-29T07:00:00+00:00", **row}
    usage = classify_usage(
        {"five_hour": None, "tangelo": {"utilization": 1}, "limits": [item]}
    ).usage
    assert usage is not None
    found = {n for n, w in windows(usage).items() if w.utilization == 50}
    assert found == ({name} if name else set())


def test_in_band_error_is_an_error_not_a_reading() -> None:
    verdict = classify_usage(fixture("oauth_usage_in_band_error.json"))
    assert verdict.usage is None
    assert verdict.rate_limited is True
    assert verdict.error is not None and "rate_limit_error" in verdict.error
    assert "Rate limited" in verdict.error


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"type": "error", "error": {"type": "overloaded_error", "message": "x"}},
        {"error": "Bearer sk-ant-oat01-SECRET"},
        {"five_hour": None, "seven_day": {"utilization": None, "resets_at": None}, "limits": []},
        {"extra_usage": {"utilization": 40.0}},  # money, not a bucket
        [],
    ],
    ids=["empty", "overloaded", "secret", "all-null", "extra-only", "list"],
)
def test_a_body_without_a_usable_window_is_an_error(body: object) -> None:
    verdict = classify_usage(body)
    assert verdict.usage is None and verdict.error
    assert verdict.rate_limited is False
    assert "SECRET" not in verdict.error


def test_an_ingested_in_band_error_keeps_usage_null_and_says_why() -> None:
    snap = Snapshot.from_json(snapshot_with(fixture("oauth_usage_in_band_error.json")))
    assert snap.usage is None
    assert snap.errors and "rate_limit_error" in snap.errors[0]
    again = Snapshot.from_json(snap.to_json())  # read back from the store: the same
    assert again.usage is None and again.errors == snap.errors
