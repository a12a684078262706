"""The snapshot: one source's reading of one account's buckets (SPEC section 3).

The server adds windows and fields over time, so ``usage``, ``overage`` and
``subscription`` stay the dicts we received; the typed view (:class:`Window`) is derived
on demand. Parsing is strict about types where a wrong type would mislead a reader
(a string percent, a bool) and lenient about everything it does not know.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from . import env
from .times import format_time as format_time  # the JSON's time codec, re-exported
from .times import parse_time as parse_time
from .windows import KNOWN_WINDOWS

TYPE_CHECKING = False  # typing is for mypy: importing it costs the hot paths milliseconds
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    JSON: TypeAlias = dict[str, Any]
else:
    JSON = dict  # at run time the alias only needs to exist

#: The ``usage`` keys ClaudeMeter printed: every row ``--json`` prints has them, null
#: when unknown, so a strict script's ``u["seven_day_opus"]`` never raises (SPEC 3).
CLAUDEMETER_USAGE_KEYS = (
    "five_hour",
    "seven_day",
    "seven_day_sonnet",
    "seven_day_opus",
    "seven_day_oauth_apps",
    "seven_day_omelette",
    "seven_day_cowork",
    "extra_usage",
)

#: ``browser`` names our own sources use; anything else is a browser via the bridge.
SOURCE_OAUTH = "Claude Code"
SOURCE_STATUSLINE = "statusline"
#: Claude Code's own cache of its last usage answer (``cachedUsageUtilization`` in
#: ``.claude.json``): the same body as ours, aged by Claude Code's ``fetchedAtMs``.
SOURCE_CLAUDE_CODE_CACHE = "Claude Code cache"
SOURCE_DEMO = "demo"
#: Not a reading's source: the book of the sync with the fleet's shared store (shared.py).
SOURCE_SHARED = "shared"

#: How old a reading may be before it is marked stale, by source. The OAuth poller
#: runs every 300 s and browsers every 60 s; a few missed rounds is the limit. Claude
#: Code's cache holds the same answer as our own request, so it lasts as long.
FRESHNESS_SECONDS = {
    SOURCE_OAUTH: 600.0,
    SOURCE_CLAUDE_CODE_CACHE: 600.0,
    SOURCE_STATUSLINE: 900.0,
    SOURCE_DEMO: 120.0,
}
BROWSER_FRESHNESS_SECONDS = 300.0

MAX_ERRORS = 20
MAX_ERROR_LEN = 300
MAX_BROWSER_LEN = 200
#: The highest utilization a reading may carry, percent: over 100 happens (overage),
#: a thousand means the source is broken. Every source bounds by this one number.
MAX_PERCENT = 1000.0
#: How deep the kept bodies (``usage``, ``overage``, ...) may nest; the server's are 4.
MAX_DEPTH = 16
#: Integers past this lose precision in JavaScript readers (and huge ones are slow to print).
MAX_INTEGER = 2**53
# Anything shaped like a credential is cut out of every message we keep or print.
_SECRET_RE = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]+|Bearer\s+\S+|sessionKey=[^;\s]+|"
    r"(?i:(?:access|refresh)_?token)[\"']?\s*[:=]\s*[\"']?[^\s\"',}]+)"
)


#: Unknown top-level keys are kept for forward compatibility, except any whose name says
#: it holds a credential: a client that sent its cookie along must not get it stored.
_SECRET_KEY_RE = re.compile(r"token|cookie|session|secret|passw|auth|api_?key", re.IGNORECASE)
#: The same inside the kept bodies, narrower: the server's own keys say ``oauth_apps``
#: and ``tokens`` (counts), which are not credentials.
_NESTED_SECRET_KEY_RE = re.compile(
    r"(?:access|refresh|id|bearer|session|api|oauth|auth)[_-]?(?:token|key)|^token$|"
    r"cookie|secret|passw|authorization|credential",
    re.IGNORECASE,
)


class ValidationError(ValueError):
    """A snapshot that does not fit SPEC section 3; ``field`` names the culprit. The
    message is one line whatever the input held: a line break or control character in a
    key it names (``usage.<bucket>``) is shown escaped (``\\n``, ``\\x1b``)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(_UNPRINTABLE_RE.sub(_escaped, f"{field_name}: {message}"))
        self.field = field_name


#: What would break a one-line message or act on a terminal: C0 (line breaks and tab
#: included), DEL, C1, the bidirectional overrides, and the Unicode line separators.
_UNPRINTABLE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]"
)


def _escaped(found: re.Match[str]) -> str:
    return found.group().encode("unicode_escape").decode("ascii")


def redact(text: str) -> str:
    """Remove anything that looks like a token; used on every error we store or print."""
    return _SECRET_RE.sub("[redacted]", text)


#: Terminal escape sequences, whole: CSI (``ESC [ … final``), the string ones (OSC
#: ``ESC ] … BEL/ST`` retitles a window; DCS, SOS, PM, APC) and two-byte escapes, in
#: their 7-bit and C1 forms.
_ESCAPE_RE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
#: What is left that a terminal acts on: C0 but tab and newline, DEL, C1, and the
#: bidirectional overrides that make text read other than it is stored.
_CONTROL_RE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
#: Our own colour (``Look.paint``): kept when the caller says it painted the text.
_SGR_RE = re.compile(r"(\x1b\[[0-9;]*m)")


def printable(text: str, colour: bool = False) -> str:
    """``text`` safe to print to a terminal: escape sequences and control characters
    from stored text (an error, an email, a browser name) removed, so it cannot retitle
    a window, clear a screen or reorder a line. With ``colour``, SGR colour codes (ours)
    are kept; every other sequence still goes."""
    parts = _SGR_RE.split(text) if colour else [text]
    return "".join(
        part if index % 2 else _CONTROL_RE.sub("", _ESCAPE_RE.sub("", part))
        for index, part in enumerate(parts)
    )


def utcnow() -> datetime:
    """Now in UTC; ``CLAUDEMETER_NOW`` pins it for tests (see :func:`env.now`)."""
    return env.now()


@dataclass(frozen=True)
class Window:
    """One bucket, typed: ``utilization`` None means unknown, never zero."""

    name: str
    utilization: float | None
    resets_at: datetime | None

    def has_reset(self, now: datetime) -> bool:
        """The server's reading predates the reset, so the number no longer holds."""
        return self.resets_at is not None and self.resets_at <= now

    def used(self, now: datetime) -> float | None:
        """The percent to show now: a window whose reset has passed counts as empty."""
        return 0.0 if self.has_reset(now) else self.utilization


def json_number(value: Any) -> float | None:
    """A JSON number as a float; None for null, a string, a bool (JSON ``true`` is not 1)
    or a non-finite value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _window_from(name: str, body: Any) -> Window | None:
    if not isinstance(body, Mapping):
        return None
    utilization = json_number(body.get("utilization"))
    if utilization is not None and not 0 <= utilization <= MAX_PERCENT:
        utilization = None  # a broken source's number is no number
    resets = body.get("resets_at")
    resets_at: datetime | None = None
    if isinstance(resets, str):
        try:
            resets_at = parse_time(resets)
        except ValueError:
            resets_at = None
    if utilization is None and resets_at is None:
        return None
    return Window(name, utilization, resets_at)


def windows(usage: Mapping[str, Any] | None) -> dict[str, Window]:
    """Every bucket-shaped entry of a usage body, known names first, then server order.

    A window the flat keys leave null, missing or hollow is taken from ``limits[]``
    (see :func:`limits_windows`), so a body stored before :func:`classify_usage` filled
    it reads the same as one stored after."""
    if not usage:
        return {}
    found: dict[str, Window] = {}
    names = [n for n in KNOWN_WINDOWS if n in usage] + [
        n for n in usage if n not in KNOWN_WINDOWS and n not in _NOT_WINDOWS
    ]
    for name in names:
        window = _window_from(name, usage.get(name))
        if window is not None:
            found[name] = window
    for name, window in limits_windows(usage.get("limits")).items():
        if found.get(name) is None or found[name].utilization is None:
            found[name] = window
    return found


#: A gateway's money limit in Claude Code's statusLine input, kept in ``usage`` as
#: ``{"used_usd": dollars, "limit_usd": dollars or null, "period": text or null}``.
SPEND_LIMIT = "spend_limit"

#: Keys of a usage body that are not buckets although they may carry ``utilization``.
_NOT_WINDOWS = ("extra_usage", "limits", "spend", SPEND_LIMIT)

#: ``limits[].kind`` -> the flat window it stands for; ``weekly_scoped`` is per model.
LIMIT_KINDS = {"session": "five_hour", "weekly_all": "seven_day"}
#: Model families whose weekly window has a flat name (``seven_day_opus``).
_MODEL_FAMILIES = ("opus", "sonnet", "haiku")


def _scoped_window_name(scope: Any) -> str | None:
    """``seven_day_<family>`` for a ``weekly_scoped`` row's ``scope.model``: the family
    named in its display name or id (``Opus 4`` -> ``seven_day_opus``), else its
    display name made a key; None when the row names no model."""
    model = scope.get("model") if isinstance(scope, Mapping) else None
    if not isinstance(model, Mapping):
        return None
    labels = [v for v in (model.get("display_name"), model.get("id")) if isinstance(v, str)]
    for label in labels:
        words = re.findall(r"[a-z0-9]+", label.lower())
        family = next((w for w in words if w in _MODEL_FAMILIES), None)
        if family:
            return f"seven_day_{family}"
    words = re.findall(r"[a-z0-9]+", labels[0].lower()) if labels else []
    return "seven_day_" + "_".join(words)[:48] if words else None


def limits_windows(limits: Any) -> dict[str, Window]:
    """The windows a ``limits[]`` list carries, under the flat names, classified by
    ``kind`` (never by label): ``session`` -> ``five_hour``, ``weekly_all`` ->
    ``seven_day``, ``weekly_scoped`` with ``scope.model`` -> that model's weekly window
    (``seven_day_opus``). ``percent`` is 0-100 like ``utilization``; ``resets_at`` is
    RFC 3339. Rows of other kinds, or without a number or a time, are skipped; the
    first row for a name wins."""
    found: dict[str, Window] = {}
    for item in limits if isinstance(limits, list) else []:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("kind")
        name = (
            _scoped_window_name(item.get("scope"))
            if kind == "weekly_scoped"
            else LIMIT_KINDS.get(kind)
            if isinstance(kind, str)
            else None
        )
        if name is None or name in found:
            continue
        percent = json_number(item.get("percent"))
        window = _window_from(
            name,
            {
                "utilization": percent if percent is not None and percent >= 0 else None,
                "resets_at": item.get("resets_at"),
            },
        )
        if window is not None and window.utilization is not None:
            found[name] = window
    return found


@dataclass(frozen=True)
class UsageVerdict:
    """What :func:`classify_usage` made of one usage body: either ``usage`` (a copy of
    the body with the flat windows filled from ``limits[]``) or ``error`` (one line,
    redacted) with ``rate_limited`` true when the body was a ``rate_limit_error``."""

    usage: JSON | None
    error: str | None = None
    rate_limited: bool = False


def classify_usage(body: Any) -> UsageVerdict:
    """The one rule every source applies to a usage body (``/api/oauth/usage``,
    claude.ai's ``/usage`` via the bridge or ``ingest``, Claude Code's cached copy).

    - A flat window (``five_hour``, ``seven_day``, ``seven_day_opus``, ...) that is
      null, missing or hollow (no numeric ``utilization``) is filled from ``limits[]``
      by :func:`limits_windows` as ``{"utilization": percent, "resets_at": ...}``; a
      hollow entry keeps its other keys. Everything else stays as received.
    - A body with no usable window (no bucket with a numeric utilization, and no
      gateway ``spend_limit`` with a numeric ``used_usd``), such as
      the in-band error ``{"type": "error", "error": {"type": "rate_limit_error", ...}}``
      a ``200`` may carry, is not a reading: the verdict is an error, never a reading
      of "unknown", and the caller keeps the last good reading (SPEC section 3,
      "Shapes every source must read")."""
    if not isinstance(body, Mapping):
        return UsageVerdict(None, "usage: malformed response (not an object)")
    usage: JSON = dict(body)
    for name, window in limits_windows(body.get("limits")).items():
        current = _window_from(name, usage.get(name))
        if current is None or current.utilization is None:
            hollow = usage.get(name)
            usage[name] = {
                **(hollow if isinstance(hollow, Mapping) else {}),
                "utilization": window.utilization,
                "resets_at": format_time(window.resets_at) if window.resets_at else None,
            }
    spend = usage.get(SPEND_LIMIT)
    spend_known = isinstance(spend, Mapping) and json_number(spend.get("used_usd")) is not None
    if spend_known or any(w.utilization is not None for w in windows(usage).values()):
        return UsageVerdict(usage)
    error = body.get("error")
    kind = error.get("type") if isinstance(error, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else error
    if body.get("type") == "error" or error is not None:
        said = ": ".join(str(part) for part in (kind, message) if isinstance(part, str) and part)
        text = f"usage: the server answered with an error, not usage ({said or 'no detail'})"
    else:
        text = "usage: the answer carries no usage window"
    return UsageVerdict(None, redact(text)[:MAX_ERROR_LEN], kind == "rate_limit_error")


def freshness_of(source: str) -> float:
    """Seconds a reading from ``source`` (a ``browser`` name) stays fresh."""
    return FRESHNESS_SECONDS.get(source.strip(), BROWSER_FRESHNESS_SECONDS)


@dataclass(frozen=True)
class Provenance:
    """Where one bucket's value came from: the reading's source (its ``browser`` name,
    ``"Chrome"``, ``"statusline"``, ``"Claude Code"``), when that reading was taken, and
    whether it was already stale then (its source marked it, or it had aged out)."""

    source: str
    fetched_at: datetime
    stale: bool = False

    def age(self, now: datetime) -> float:
        """Seconds since the reading (negative for one from the future)."""
        return (now - self.fetched_at).total_seconds()

    def is_stale(self, now: datetime) -> bool:
        return self.stale or self.age(now) > freshness_of(self.source)

    def to_json(self, now: datetime) -> JSON:
        """``{"source", "fetched_at" (RFC 3339), "age_seconds", "stale"}`` at ``now``."""
        return {
            "source": self.source,
            "fetched_at": format_time(self.fetched_at),
            "age_seconds": round(self.age(now)),
            "stale": self.is_stale(now),
        }

    @classmethod
    def from_json(cls, body: Any) -> Provenance | None:
        """The stored form; None for anything that is not one (it is only a hint)."""
        if not isinstance(body, Mapping):
            return None
        source, fetched = body.get("source"), body.get("fetched_at")
        if not isinstance(source, str) or not source.strip() or len(source) > MAX_BROWSER_LEN:
            return None
        stale = body.get("stale") is True
        try:
            when = parse_time(fetched) if isinstance(fetched, str) else None
        except ValueError:
            return None
        return cls(source.strip(), when, stale) if when else None


@dataclass(frozen=True)
class Snapshot:
    """One reading. ``extra`` keeps top-level keys we do not know, so they round-trip.

    ``provenance`` names, per bucket, the reading a value came from when that is not
    this one (a folded row, or a statusline row carrying a bucket its latest input
    lacked); :meth:`origin` gives every bucket's."""

    org_uuid: str
    browser: str
    account_email: str | None
    fetched_at: datetime
    usage: JSON | None = None
    overage: JSON | None = None
    subscription: JSON | None = None
    errors: list[str] = field(default_factory=list)
    stale: bool = False
    extra: JSON = field(default_factory=dict)
    provenance: dict[str, Provenance] = field(default_factory=dict)
    org_name: str | None = None  # the organization's name, when a source knows it

    @property
    def label(self) -> str:
        """How messages name the account: ``email (org name or first 8 of the uuid)``,
        which tells one email's personal and team rows apart; ``org 0f6c3b2a`` for a
        row without an email."""
        org = self.org_name or self.org_uuid[:8]
        if not self.account_email:
            return f"org {org}" if org else "unknown account"
        return f"{self.account_email} ({org})" if org else self.account_email

    @property
    def account_key(self) -> str:
        """What identifies the quota: the org, else (a failed look-up) the email."""
        return self.org_uuid or f"email:{(self.account_email or '').lower()}"

    def windows(self) -> dict[str, Window]:
        return windows(self.usage)

    def window(self, name: str) -> Window | None:
        return self.windows().get(name)

    def origin(self, name: str) -> Provenance:
        """Where bucket ``name`` came from: its recorded provenance, else this reading."""
        recorded = self.provenance.get(name)
        if recorded is None or recorded.fetched_at > self.fetched_at:  # never newer than us
            return Provenance(self.browser, self.fetched_at)
        return recorded

    def freshness_limit(self) -> float:
        """A merged row (``"Chrome, Claude Code"``) lasts as long as its most lenient
        source would, so folding a folded row again does not change its staleness."""
        return max(freshness_of(name) for name in self.browser.split(","))

    def age(self, now: datetime | None = None) -> float:
        return ((now or utcnow()) - self.fetched_at).total_seconds()

    def is_stale(self, now: datetime | None = None) -> bool:
        return self.age(now) > self.freshness_limit()

    def with_staleness(self, now: datetime | None = None) -> Snapshot:
        """A copy whose ``stale`` reflects its age now (a stale row never turns fresh)."""
        return replace(self, stale=self.stale or self.is_stale(now))

    def to_json(self, now: datetime | None = None) -> JSON:
        """SPEC section 3's keys, the unknown ones kept, and ``provenance`` (per bucket:
        source, fetched_at, age and staleness at ``now``) when the row has any."""
        body: JSON = dict(self.extra)
        body.update(
            {
                "org_uuid": self.org_uuid,
                "browser": self.browser,
                "account_email": self.account_email,
                "fetched_at": format_time(self.fetched_at),
                "usage": self.usage,
                "overage": self.overage,
                "subscription": self.subscription,
                "errors": list(self.errors),
                "stale": self.stale,
            }
        )
        if self.org_name:
            body["org_name"] = self.org_name
        if self.provenance:
            at = now or utcnow()
            body["provenance"] = {k: v.to_json(at) for k, v in self.provenance.items()}
        return body

    def to_public_json(self, now: datetime | None = None) -> JSON:
        """:meth:`to_json` as ``--json`` and the bridge's ``GET /snapshots`` print it:
        ``usage`` always an object with :data:`CLAUDEMETER_USAGE_KEYS` (null when
        unknown) besides every key that was received."""
        body = self.to_json(now)
        body["usage"] = {**dict.fromkeys(CLAUDEMETER_USAGE_KEYS), **(self.usage or {})}
        return body

    @classmethod
    def from_json(cls, body: Any) -> Snapshot:
        """Validate and parse one snapshot; raises :class:`ValidationError` naming the field.

        ``usage`` goes through :func:`classify_usage`: windows only in ``limits[]`` are
        filled in, and a body with no usable window (an in-band error) becomes
        ``usage: null`` with the reason first in ``errors``, so storing it keeps the
        account's last good reading.

        Every part kept is checked for what would break a reader (text that is not
        UTF-8, nesting, numbers out of range); :func:`parse_many`, the way in from
        outside, also checks the whole round trip (:func:`readable`)."""
        snapshot = cls._parse(body)
        _check_tree(snapshot.to_json(), "", 0)
        return snapshot

    @classmethod
    def _parse(cls, body: Any) -> Snapshot:
        if not isinstance(body, Mapping):
            raise ValidationError("snapshot", "expected a JSON object")
        org = body.get("org_uuid", "")
        if org is None:
            org = ""
        if not isinstance(org, str) or len(org) > 100:
            raise ValidationError("org_uuid", "expected a string")
        email = body.get("account_email")
        if email is not None and (not isinstance(email, str) or len(email) > 320):
            raise ValidationError("account_email", "expected a string or null")
        if not org and not email:
            raise ValidationError("org_uuid", "empty, and no account_email to fold by")
        browser = body.get("browser")
        if not isinstance(browser, str) or not browser.strip() or len(browser) > MAX_BROWSER_LEN:
            raise ValidationError("browser", "expected a non-empty string")
        fetched = body.get("fetched_at")
        if not isinstance(fetched, str):
            raise ValidationError("fetched_at", "expected an RFC 3339 string")
        try:
            fetched_at = parse_time(fetched)
        except ValueError as exc:
            raise ValidationError("fetched_at", str(exc)) from None
        usage = _optional_object(body, "usage")
        in_band: list[str] = []
        if usage is not None:
            _check_usage(usage)
            verdict = classify_usage(usage)
            usage = verdict.usage
            in_band = [verdict.error] if verdict.error else []
        overage = _optional_object(body, "overage")
        subscription = _optional_object(body, "subscription")
        errors_raw = body.get("errors", [])
        if errors_raw is None:
            errors_raw = []
        if not isinstance(errors_raw, list) or not all(isinstance(e, str) for e in errors_raw):
            raise ValidationError("errors", "expected a list of strings")
        stale = body.get("stale", False)
        if not isinstance(stale, bool):
            raise ValidationError("stale", "expected true or false")
        known = {
            "org_uuid",
            "browser",
            "account_email",
            "fetched_at",
            "usage",
            "overage",
            "subscription",
            "errors",
            "stale",
            "provenance",
            "org_name",
        }
        org_name = body.get("org_name")
        provenance_raw = body.get("provenance")
        provenance = {
            name: origin
            for name, item in (provenance_raw if isinstance(provenance_raw, dict) else {}).items()
            if isinstance(name, str) and (origin := Provenance.from_json(item)) is not None
        }
        return cls(
            org_uuid=org,
            browser=browser.strip(),
            account_email=email,
            fetched_at=fetched_at,
            usage=usage,
            overage=overage,
            subscription=subscription,
            errors=[*in_band, *(redact(e)[:MAX_ERROR_LEN] for e in errors_raw)][:MAX_ERRORS],
            stale=stale,
            extra={
                k: v
                for k, v in body.items()
                if k not in known and not _SECRET_KEY_RE.search(str(k))
            },
            provenance=provenance,
            org_name=org_name[:200] if isinstance(org_name, str) and org_name.strip() else None,
        )


def _optional_object(body: Mapping[str, Any], name: str) -> JSON | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(name, "expected an object or null")
    return value


def _check_usage(usage: JSON) -> None:
    """Bucket entries must carry a numeric percent and a time, or null; others pass as is."""
    limits = usage.get("limits")
    for index, item in enumerate(limits if isinstance(limits, list) else []):
        percent = item.get("percent") if isinstance(item, dict) else None
        number = json_number(percent)
        if percent is not None and (number is None or not 0 <= number <= MAX_PERCENT):
            raise ValidationError(
                f"usage.limits[{index}].percent", f"expected a number from 0 to {MAX_PERCENT:g}"
            )
    for name, body in usage.items():
        if not isinstance(body, dict) or "utilization" not in body:
            continue
        util = body["utilization"]
        number = json_number(util)
        if util is not None and (number is None or not 0 <= number <= MAX_PERCENT):
            raise ValidationError(
                f"usage.{name}.utilization",
                f"expected a percentage (a number from 0 to {MAX_PERCENT:g}) or null",
            )
        resets = body.get("resets_at")
        if resets is not None:
            if not isinstance(resets, str):
                raise ValidationError(f"usage.{name}.resets_at", "expected an RFC 3339 string")
            try:
                parse_time(resets)
            except ValueError as exc:
                raise ValidationError(f"usage.{name}.resets_at", str(exc)) from None


def readable(snapshot: Snapshot) -> None:
    """Raise :class:`ValidationError` unless ``snapshot`` survives the trip every reader
    makes: a parse of its strict UTF-8 JSON that gives back the same snapshot. Takes a
    snapshot from :meth:`Snapshot.from_json`, which has already named any unreadable
    part (lone surrogate, nesting, numbers, credential-named keys)."""
    body = snapshot.to_json()
    try:
        data = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        again = Snapshot._parse(json.loads(data))
        again.windows()  # every reader derives the buckets
        same = again.to_json() == body
    except (ValueError, RecursionError, OverflowError) as exc:
        raise ValidationError("snapshot", f"would not read back: {exc}") from None
    if not same:
        raise ValidationError("snapshot", "would not read back as sent")


def _check_tree(value: Any, where: str, depth: int) -> None:
    """Raise :class:`ValidationError` naming the first unreadable part of a JSON value.
    Readers run this on every row they load, so the common case (nothing wrong) is one
    quick walk, and the slow walk that builds names runs only to name a fault."""
    if not _tree_ok(value, depth):
        _name_fault(value, where, depth)
        raise ValidationError(where or "snapshot", "not readable back")  # not reached


def _tree_ok(value: Any, depth: int) -> bool:
    if isinstance(value, str):
        return value.isascii() or _utf8(value)
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_INTEGER <= value <= MAX_INTEGER
    if isinstance(value, float):
        return math.isfinite(value)
    if depth >= MAX_DEPTH:
        return False
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not (key.isascii() or _utf8(key)):
                return False
            if depth >= 1 and not _safe_key(key):
                return False
            if not _tree_ok(item, depth + 1):
                return False
        return True
    if isinstance(value, list):
        return all(_tree_ok(item, depth + 1) for item in value)
    return False


@functools.lru_cache(maxsize=4096)
def _safe_key(key: str) -> bool:
    """A key inside a kept body that is not credential-named (keys repeat: remembered)."""
    return not _NESTED_SECRET_KEY_RE.search(key)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _name_fault(value: Any, where: str, depth: int) -> None:
    """The slow walk of :func:`_check_tree`: raise for the first fault, by its path."""
    name = where or "snapshot"
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        raise ValidationError(name, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value, name)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > MAX_INTEGER:
            raise ValidationError(name, "integer out of range (over 2**53 in size)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(name, "not a finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(name, "object keys must be strings")
            _check_text(key, f"{name}.{key[:40]!r}")
            path = f"{where}.{key}" if where else key
            if depth >= 1 and _NESTED_SECRET_KEY_RE.search(key):
                message = f"key {key[:40]!r} looks like a credential, never stored"
                raise ValidationError(name, message)
            _name_fault(item, path, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _name_fault(item, f"{name}[{index}]", depth + 1)
    else:
        raise ValidationError(name, f"not a JSON value ({type(value).__name__})")


def _check_text(text: str, name: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(name, "text that is not valid UTF-8 (a lone surrogate)") from None


def parse_many(body: Any) -> list[Snapshot]:
    """One snapshot or a list of them, as ``ingest`` and the bridge accept: each one
    must read back as sent (:func:`readable`). Raises :class:`ValidationError`."""
    items = body if isinstance(body, list) else [body]
    snapshots = []
    for index, item in enumerate(items):
        try:
            snapshot = Snapshot.from_json(item)
            readable(snapshot)
            snapshots.append(snapshot)
        except ValidationError as exc:
            if isinstance(body, list):
                detail = str(exc).split(": ", 1)[1]
                raise ValidationError(f"[{index}].{exc.field}", detail) from None
            raise
    return snapshots
