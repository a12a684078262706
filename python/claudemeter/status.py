"""The status-line segment: a few characters, read from the store and nothing else.

It runs on tmux's redraw path (pushed by ``tmux-loop``, or in a ``#()`` job), so it
never fetches, never takes a lock and imports nothing heavy. It is honest about its
data: old readings carry their age, an expired login says ``login``, no data says
``setup``; it never prints a blank or a traceback.

A segment is a user format (``@claude_meter_format``) whose ``{tokens}`` are filled
from :func:`tokens`; adding a part to the segment is one more entry there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from . import dedupe, derived, pace, segment_cache
from .model import SOURCE_SHARED, Snapshot, Window, freshness_of, printable
from .options import Settings
from .render import CRIT, OK, WARN, account_name, duration, percent
from .render import tier as render_tier
from .sources import STATUS_ERROR
from .store import State
from .windows import short_label

UNTIL, SINCE = segment_cache.UNTIL, segment_cache.SINCE
#: How far ahead a cached segment is worked out (seconds), and the times after a render
#: at which it is compared with a later one, besides each moment a row, a bucket or a
#: pace can change (:func:`steady`).
HORIZON = 3600.0
_PROBES = (300.0, 1200.0, HORIZON)
#: The most renders :func:`steady` makes after the first (each is a few ms at 50 accounts).
MAX_PROBES = 12
#: Probes go this long after a foreseen change, and the last look before it this long before.
_STEP = 0.5

#: tmux placeholders (SPEC section 7) and the token each one shows.
PLACEHOLDERS = {
    "claude_meter": None,  # the whole segment
    "claude_meter_5h": "5h",
    "claude_meter_7d": "7d",
    "claude_meter_reset": "reset",
    "claude_meter_paused": "paused",
}

#: Several accounts and none configured: each one's initial and its two main buckets.
MULTI_FORMAT = "{name} {5h_pct}/{7d_pct} {status}"
#: Longest local part of an email the segment shows for an account.
NAME_MAX = 10

_TOKEN_RE = re.compile(r"\{(\w+)\}")
# Private-use marks stand for a filled token while the literal text is tidied.
_OPEN, _CLOSE = "\ue000", "\ue001"
_MARK_RE = re.compile(f"{_OPEN}(\\d+){_CLOSE}")


@dataclass(frozen=True)
class Piece:
    """One token's text and the tier that colours it (None: not coloured). A text that
    ends in a countdown or an age names its clock: ``(prefix, kind, epoch)``, the text
    being ``prefix`` plus the :func:`~claudemeter.clocktext.duration` until (kind
    :data:`UNTIL`) or since (:data:`SINCE`) ``epoch`` seconds; a cached segment leaves
    that part as a hole the clock fills (:mod:`claudemeter.segment_cache`)."""

    text: str
    tier: str | None = None
    clock: tuple[str, str, float] | None = None


@dataclass(frozen=True)
class Rendered:
    """The segment and each placeholder's value, tmux-formatted."""

    segment: str
    parts: dict[str, str]


def tier(value: float | None, settings: Settings) -> str:
    return render_tier(value, settings.warn, settings.crit)


def used(window: Window | None, now: datetime) -> float | None:
    return None if window is None else window.used(now)


def escape(text: str) -> str:
    """Text shown through ``#{E:…}`` is expanded as a format and through strftime; the
    segment cache's hole marks never come from it (:func:`segment_cache.unmarked`)."""
    return segment_cache.unmarked(text).replace("#", "##").replace("%", "%%")


def style(value: str) -> str:
    """``red`` → ``fg=red``; a full style (``fg=red,bold``) is kept as written."""
    value = value.strip()
    if not value:
        return ""
    return value if "=" in value else f"fg={value}"


def login_expired(state: State, row: Snapshot | None) -> bool:
    """A login behind this account was rejected (``State.login_problem``); for ``None``,
    any OAuth booking says ``login``."""
    if row is not None:
        return state.login_problem(row) is not None
    return state.any_login_rejected()


def _window_piece(label: str, window: Window | None, now: datetime, settings: Settings) -> Piece:
    if window is None:
        return Piece("")
    value = used(window, now)
    return Piece(f"{label} {percent(value)}".strip(), tier(value, settings))


def _reset_piece(window: Window | None, now: datetime) -> Piece:
    if window is None or window.resets_at is None or window.has_reset(now):
        return Piece("")
    return Piece(
        f"↻{duration((window.resets_at - now).total_seconds())}",
        clock=("↻", UNTIL, window.resets_at.timestamp()),
    )


def _status_piece(row: Snapshot, state: State, now: datetime) -> Piece:
    if not row.stale:
        return Piece("")
    word = "login" if login_expired(state, row) else "stale"
    return Piece(
        f"{word} {duration(row.age(now))}", "stale", (f"{word} ", SINCE, row.fetched_at.timestamp())
    )


def _paused_piece(paused: int) -> Piece:
    return Piece(f"⏸{paused}" if paused else "", WARN)


def _pace_piece(row: Snapshot, state: State, now: datetime) -> Piece:
    """``⚠ 100% ~14:30`` when a bucket's pace reaches 100 % before its reset (the pace
    the last writer derived from the history: this path never reads the history)."""
    found = derived.current_paces(derived.of(state, row), now)
    return Piece(pace.status_warning(found, now) or "", CRIT)


def _top_piece(row: Snapshot, state: State, now: datetime) -> Piece:
    """``%3 app 41%``: the session with the largest share of this 5-hour window's rise
    (derived by a writer every few minutes; see ``claude-meter top``)."""
    top = derived.current_top(derived.of(state, row), now)
    return Piece(top.label() if top is not None else "")


#: What each ``{token}`` of :func:`tokens` shows, for ``status --help`` (a test keeps the
#: keys equal to the tokens').
TOKEN_HELP = {
    "5h": "the 5-hour bucket, in its tier colour (5h 42%)",
    "7d": "the 7-day bucket (7d 61%)",
    "5h_pct": "the 5-hour percent alone (42%)",
    "7d_pct": "the 7-day percent alone (61%)",
    "reset": "time until the 5-hour bucket resets (↻1h23m)",
    "7d_reset": "time until the 7-day bucket resets",
    "paused": "guards paused or holding (⏸2; empty when none)",
    "pace": "a bucket on pace to hit 100% before its reset (⚠ 100% ~14:30)",
    "top": "the session that took most of this 5-hour rise (%3 app 41%)",
    "status": "the stale / login marker (stale 45m, login 1h22m)",
    "age": "the reading's age",
    "account": "the account's email",
    "initial": "the email's first letter",
    "name": "the email's local part (ada); several accounts show theirs",
}


def tokens(
    row: Snapshot, state: State, now: datetime, settings: Settings, paused: int
) -> dict[str, Piece]:
    """Every ``{token}`` a format may use, for one account."""
    five, seven = row.window("five_hour"), row.window("seven_day")
    return {
        "5h": _window_piece(short_label("five_hour"), five, now, settings),
        "7d": _window_piece(short_label("seven_day"), seven, now, settings),
        "5h_pct": _window_piece("", five, now, settings),
        "7d_pct": _window_piece("", seven, now, settings),
        "reset": _reset_piece(five, now),
        "7d_reset": _reset_piece(seven, now),
        "paused": _paused_piece(paused),
        "pace": _pace_piece(row, state, now),
        "top": _top_piece(row, state, now),
        "status": _status_piece(row, state, now),
        "age": Piece(duration(row.age(now)), clock=("", SINCE, row.fetched_at.timestamp())),
        "account": Piece(account_name(row)),
        "initial": Piece(printable(account_name(row))[:1]),
        "name": Piece(short_names([row])[0]),
    }


def _styled(piece: Piece, settings: Settings, holes: bool = False) -> str:
    colour = {
        OK: settings.colour_ok,
        WARN: settings.colour_warn,
        CRIT: settings.colour_crit,
        "stale": settings.colour_stale,
    }.get(piece.tier or "", "")
    if holes and piece.clock is not None:
        prefix, kind, epoch = piece.clock
        text = escape(prefix) + segment_cache.hole(kind, epoch)
    else:
        text = escape(piece.text)
    return f"#[{style(colour)}]{text}#[default]" if style(colour) else text


def fill(fmt: str, values: dict[str, Piece], settings: Settings, holes: bool = False) -> str:
    """Fill a format's tokens; empty tokens and the separators they leave are dropped.

    The user's literal text passes through untouched (it may hold ``#[…]`` styles);
    unknown tokens stay as written so a typo is visible rather than silently blank.
    ``holes``: countdowns and ages left as :func:`segment_cache.hole` marks.
    """
    kept: list[Piece] = []

    def mark(match: re.Match[str]) -> str:
        piece = values.get(match.group(1))
        if piece is None:
            return match.group(0)
        if not piece.text:
            return ""
        kept.append(piece)
        return f"{_OPEN}{len(kept) - 1}{_CLOSE}"

    text = _TOKEN_RE.sub(mark, fmt)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"([·|/])(\s*[·|/])+", r"\1", text)  # a separator left between two gaps
    text = re.sub(r"^\s*[·|/]\s*|\s*[·|/]\s*$", "", text).strip()
    return _MARK_RE.sub(lambda m: _styled(kept[int(m.group(1))], settings, holes), text)


def matching(rows: list[Snapshot], wanted: str) -> list[Snapshot]:
    """The rows an account option names: its exact email (one email may be two orgs),
    else those whose email or org uuid starts with it."""
    wanted = wanted.lower()
    exact = [r for r in rows if (r.account_email or "").lower() == wanted]
    return exact or [
        r
        for r in rows
        if (r.account_email or "").lower().startswith(wanted)
        or r.org_uuid.lower().startswith(wanted)
    ]


def pick(rows: list[Snapshot], settings: Settings, now: datetime) -> Snapshot | None:
    """The configured account when it names exactly one row; else the fullest."""
    if settings.account:
        found = matching(rows, settings.account)
        return found[0] if len(found) == 1 else None
    with_usage = [r for r in rows if r.usage is not None]

    def fullest(row: Snapshot) -> float:
        value = used(row.window("five_hour"), now)
        return value if value is not None else -1.0

    return max(with_usage, key=fullest) if with_usage else None


def short_names(rows: list[Snapshot]) -> list[str]:
    """What tells several accounts apart in the segment: each email's local part
    (``ada``, ``bob``; at most :data:`NAME_MAX` characters), with as much of the rest as
    it takes when two start alike (``ada@pers``, ``ada@work``); ``org 0f6c3b2a`` for an
    account without an email. One email in several orgs adds the shortest distinct
    start of each org's name, else its uuid (``lee/a``, ``lee/1``)."""
    full = [printable(account_name(r)) for r in rows]  # stored text: no escapes
    local = [name.split("@", 1)[0][:NAME_MAX] if "@" in name else name for name in full]
    found = []
    for name, short in zip(full, local, strict=True):
        if any(alike == short and other != name for other, alike in zip(full, local, strict=True)):
            size = len(short) + 1
            while size < len(name) and any(
                other != name and other[:size] == name[:size] for other in full
            ):
                size += 1
            short = name[:size]
        found.append(short)
    for name in set(full):
        same = [i for i, other in enumerate(full) if other == name]
        if len(same) > 1:
            orgs = [(rows[i].org_name or rows[i].org_uuid).lower() for i in same]
            for index, org in zip(same, _distinct_starts(orgs), strict=True):
                found[index] += f"/{org}"
    return found


def _distinct_starts(names: list[str]) -> list[str]:
    """The shortest start of each name that no other name shares."""
    found = []
    for name in names:
        size = 1
        while size < len(name) and any(
            other != name and other[:size] == name[:size] for other in names
        ):
            size += 1
        found.append(name[:size])
    return found


def _message(text: str) -> Rendered:
    line = f"claude: {text}"
    return Rendered(
        escape(line), {name: "" for name in PLACEHOLDERS} | {"claude_meter": escape(line)}
    )


def render(
    state: State, now: datetime, settings: Settings, paused: int = 0, holes: bool = False
) -> Rendered:
    """The whole segment plus each placeholder, for the account(s) the options select.
    ``holes``: countdowns and ages left as marks for :mod:`claudemeter.segment_cache`."""
    if state.problem:
        return _message("store?")
    rows = [r for r in state.accounts(now) if r.usage is not None]
    if not rows:
        return _message("login" if login_expired(state, None) else "setup")
    row = pick(rows, settings, now)
    if row is None:
        several = len(matching(rows, settings.account))
        return _message(
            f"{settings.account}? {several} accounts" if several else f"no {settings.account}"
        )
    values = tokens(row, state, now, settings, paused)
    parts = {
        name: _styled(values[token], settings, holes) if token and values[token].text else ""
        for name, token in PLACEHOLDERS.items()
    }
    fmt = settings.format
    if "{status}" not in fmt:
        fmt += " {status}"  # old data is never shown without saying so
    if len(rows) > 1 and not settings.account:
        segment = " · ".join(
            _account_part(r, name, state, now, settings, holes)
            for name, r in zip(short_names(rows), rows, strict=True)
        ) + _several_tail(state, settings, paused)
    else:
        segment = fill(fmt, values, settings, holes) + _shared_mark(state, settings)
    parts["claude_meter"] = segment or escape("claude: ?")
    return Rendered(parts["claude_meter"], parts)


def _shared_mark(state: State, settings: Settings) -> str:
    """`` shared?`` when this host's shared file could not be read, else nothing."""
    if state.book(SOURCE_SHARED).get("status") == STATUS_ERROR:
        return " " + _styled(Piece("shared?", "stale"), settings)
    return ""


def _several_tail(state: State, settings: Settings, paused: int) -> str:
    """What the several-accounts segment shows after the accounts' parts."""
    found = _paused_piece(paused)
    return (" " + _styled(found, settings) if found.text else "") + _shared_mark(state, settings)


def _account_part(
    row: Snapshot, name: str, state: State, now: datetime, settings: Settings, holes: bool
) -> str:
    """One account's part of the several-accounts segment (:data:`MULTI_FORMAT`)."""
    return fill(
        MULTI_FORMAT, {**tokens(row, state, now, settings, 0), "name": Piece(name)}, settings, holes
    )


def job_output(
    state: State, now: datetime, settings: Settings | None = None, paused: int = 0
) -> str:
    """The segment as a ``#()`` job prints it: tmux does not strftime job output, so
    ``%%`` goes back to ``%`` (``##`` and ``#[…]`` are still read by tmux)."""
    return render(state, now, settings or Settings(), paused).segment.replace("%%", "%")


def steady(state: State, now: datetime, settings: Settings, paused: int = 0) -> tuple[str, float]:
    """The ``#()`` segment with its countdowns and ages left as holes, and until when
    (epoch seconds, at most :data:`HORIZON` ahead) that stays the segment: what
    :mod:`claudemeter.segment_cache` keeps for the next ``claude-meter status``.

    Besides the clocks, the segment changes with time only when a row or a bucket goes
    stale, a bucket resets, a stored pace or top session runs out, or a local time
    moves to another day (:func:`_changes`). The segment is rendered just after each
    of those moments within the horizon, and at a few later times, in order, at most
    :data:`MAX_PROBES` times; at the first that differs it is kept until just before
    that moment (narrowed to a second when it changed earlier), and when the probes run
    out first, until the last moment known to be the same."""

    start = now.timestamp()
    accounts = _Accounts.of(state, now, settings, paused)

    def shape(at: float) -> str:
        segment = None if accounts is None else accounts.segment(at)
        if segment is None:
            when = datetime.fromtimestamp(at, timezone.utc)
            segment = render(state, when, settings, paused, holes=True).segment
        return segment.replace("%%", "%")

    first = shape(start)
    moments = {start + after for after in _PROBES}
    changes = _changes(state, now) if accounts is None else accounts.foreseen()
    moments |= {m + _STEP for m in changes if start <= m < start + HORIZON}  # at start too
    same = start
    for moment in sorted(moments)[:MAX_PROBES]:
        if shape(moment) == first:
            same = moment
            continue
        changed = moment
        if changed - 2 * _STEP > same and shape(changed - 2 * _STEP) == first:
            return first, changed - 2 * _STEP  # it changed at the moment foreseen
        while changed - same > 1.0:
            middle = (same + changed) / 2
            if shape(middle) == first:
                same = middle
            else:
                changed = middle
        return first, same
    return first, same


@dataclass(frozen=True)
class _Accounts:
    """The several-accounts segment at later moments, for :func:`steady`: each account's
    part depends only on its own readings and derived summary, so only the accounts with
    a foreseen change (:func:`_row_changes`) since the first render are rendered again; the
    others keep their part. A moment after a change of no one account's (the next
    midnight, a summary of no account shown) or one of the :data:`_PROBES` is rendered
    in full (``segment`` gives None), as is one where an account's name or the accounts
    shown would change."""

    state: State
    settings: Settings
    groups: list[list[Snapshot]]
    rows: list[Snapshot]
    names: list[str]
    parts: list[str]
    changes: list[list[float]]
    shared: list[float]
    tail: str

    @classmethod
    def of(cls, state: State, now: datetime, settings: Settings, paused: int) -> _Accounts | None:
        """None unless ``now``'s segment is the several-accounts one."""
        if state.problem or settings.account:
            return None
        groups = dedupe.account_groups(state.rows)
        folded = [dedupe.dedupe_by_account(group, now)[0] for group in groups]
        kept = [i for i, row in enumerate(folded) if row.usage is not None]
        if len(kept) < 2:
            return None
        rows = [folded[i] for i in kept]
        names = short_names(rows)
        parts = [
            _account_part(r, name, state, now, settings, True)
            for name, r in zip(names, rows, strict=True)
        ]
        start = now.timestamp()
        keys = {row.account_key for row in rows}
        changes = []
        for i in kept:
            found = set().union(*(_row_changes(row) for row in groups[i]))
            found.update(derived.moments(derived.of(state, folded[i])))
            changes.append(sorted(m for m in found if m >= start))  # one at the render too
        shared = [start + after for after in _PROBES] + [_midnight(now)]
        for i, group in enumerate(groups):
            if i not in kept:  # one more account shown would change every name
                shared += [m for row in group for m in _row_changes(row)]
        for key, body in state.derived.items():
            if key not in keys:
                shared += derived.moments(derived.Summary.from_json(body))
        return cls(
            state,
            settings,
            [groups[i] for i in kept],
            rows,
            names,
            parts,
            changes,
            sorted(m for m in shared if m > start),
            _several_tail(state, settings, paused),
        )

    def foreseen(self) -> set[float]:
        """:func:`_changes` after the first render, and the :data:`_PROBES` moments."""
        return set(self.shared).union(*self.changes)

    def segment(self, at: float) -> str | None:
        """The segment at epoch ``at`` (after the first render's), or None: render it in
        full."""
        if self.shared and self.shared[0] <= at:
            return None
        when = datetime.fromtimestamp(at, timezone.utc)
        parts = list(self.parts)
        for i, moments in enumerate(self.changes):
            if not moments or moments[0] > at:
                continue  # no change of its own yet: its part is as at the start
            row = dedupe.dedupe_by_account(self.groups[i], when)[0]
            was = self.rows[i]
            if row.usage is None or (account_name(row), row.org_name, row.org_uuid) != (
                account_name(was),
                was.org_name,
                was.org_uuid,
            ):
                return None
            parts[i] = _account_part(row, self.names[i], self.state, when, self.settings, True)
        return " · ".join(parts) + self.tail


def foreseen_changes(state: State, now: datetime) -> set[float]:
    """The moments (epoch seconds) the segment and its parts may change other than by
    their clocks: :func:`_changes`, which :func:`steady` probes; the tmux loop holds
    its parts until the first of them."""
    return _changes(state, now)


def _changes(state: State, now: datetime) -> set[float]:
    """Epoch seconds at which the segment may change other than by its clocks: each
    reading's and each bucket's end of freshness, each reset, each stored pace's and
    top session's end, the next local midnight (a local time gains its weekday)."""
    found = {_midnight(now)}
    for row in state.rows:
        found |= _row_changes(row)
    for body in state.derived.values():
        found.update(derived.moments(derived.Summary.from_json(body)))
    return found


def _row_changes(row: Snapshot) -> set[float]:
    """Epoch seconds at which one reading goes stale, a bucket's goes stale or resets."""
    found = {row.fetched_at.timestamp() + row.freshness_limit()}
    for name, window in row.windows().items():
        origin = row.origin(name)
        found.add(origin.fetched_at.timestamp() + freshness_of(origin.source))
        if window.resets_at is not None:
            found.add(window.resets_at.timestamp())
    return found


def _midnight(now: datetime) -> float:
    """The next local midnight after ``now`` (epoch seconds): a local time gains its weekday."""
    local = now.astimezone()
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return midnight.timestamp()
