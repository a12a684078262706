"""The store-facing subcommands: no command (the summary, :mod:`claudemeter.summary`;
``--json``), ``status``, ``refresh`` and ``ingest``. Each returns its exit status."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping
from datetime import datetime

from . import defaults, segment_cache
from .model import JSON, MAX_DEPTH, Snapshot, ValidationError, parse_many, printable, utcnow
from .private import warn, write_private
from .store import State, Store

TYPE_CHECKING = False  # typing is for mypy: importing it costs the hot paths milliseconds
if TYPE_CHECKING:
    import argparse

    from .history import AccountHistory
    from .options import Settings

NO_DATA_HINT = (
    "no usage data yet: log in to Claude Code (run `claude`), or install the browser"
    " extension and run `claude-meter pair`; `claude-meter demo` shows it working"
)


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "status":
        parser.description = (
            "One tmux-formatted status segment from the store (no network, no lock).\n"
            "The tmux plugin pushes it into #{E:@claude_meter} instead; use this in #()\n"
            "or scripts. Options default to the @claude_meter_* defaults."
        )
        import argparse

        from .options import DEFAULTS
        from .status import TOKEN_HELP

        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = "format tokens:\n" + "\n".join(
            f"  {{{name}}}{' ' * (12 - len(name))}{text}" for name, text in TOKEN_HELP.items()
        )
        parser.add_argument(
            "--format",
            help="segment layout: text with the {tokens} below (default"
            f" '{DEFAULTS['format']}'); an unknown token stays as written",
        )
        parser.add_argument("--account", help="email (or its start) of the account to show")
        parser.add_argument(
            "--warn",
            type=_tier,
            metavar="PCT",
            help=f"warn tier, percent above 0 and below --crit (default {defaults.WARN:g})",
        )
        parser.add_argument(
            "--crit",
            type=_tier,
            metavar="PCT",
            help=f"crit tier, percent up to 100 (default {defaults.CRIT:g})",
        )
    if name == "ingest":
        parser.add_argument(
            "file",
            nargs="?",
            default="-",
            metavar="FILE|-",
            help="JSON file with one snapshot or a list (default: stdin)",
        )


def _tier(text: str) -> str:
    """argparse's check of a tier; the value stays text, as a tmux option would be."""
    import argparse

    from .options import percent

    if percent(text) is None:
        raise argparse.ArgumentTypeError(
            f"expected a percent above 0 and at most 100, not {text!r}"
        )
    return text


def _fresh_state(args: argparse.Namespace) -> State:
    """The store, refreshed first (single-flight) when no account has fresh data."""
    store = Store()
    state = store.read()
    if state.problem:
        state = store.repair()  # says what it moved aside, or why it could not
    if getattr(args, "cached", False):
        return state
    now = utcnow()
    rows = state.accounts(now)
    if not rows or all(row.stale or row.usage is None for row in rows):
        from .refresh import refresh

        refresh(store)
        state = store.read()
    return state


def cmd_default(args: argparse.Namespace) -> int:
    state = _fresh_state(args)
    now = utcnow()
    rows = state.accounts(now)
    if args.json:
        from . import history
        from .output import print_json

        recent = history.recent(Store().directory)
        print_json([json_row(recent, row, now) for row in rows])
        if not rows:
            warn(NO_DATA_HINT)
        return 0
    from .summary import summary

    if not any(row.usage is not None for row in rows):
        reasons = state.problems()
        reason = reasons[0] if reasons else _login_reason() or NO_DATA_HINT
        print(f"claude-meter: {printable(reason)}", file=sys.stderr)
        if rows:
            print(summary(rows, now))
        return 1
    print(summary(rows, now))
    for problem in state.problems(failing=True):
        warn(f"note: {problem}")  # e.g. the login expired while a browser works
    return 0


def json_row(recent: Mapping[str, AccountHistory], row: Snapshot, now: datetime) -> JSON:
    """A ClaudeMeter-shaped row, plus the optional ``pace`` field (README, "Pace") when
    the recent history gives any bucket a pace; consumers that do not know it ignore it."""
    from .history import of_account
    from .pace import paces, to_json

    body = row.to_public_json(now)
    body.pop("pace", None)  # one that came in through ingest is someone else's, and old
    found = paces(of_account(recent, row.org_uuid, row.account_email).points, now)
    if found:
        body["pace"] = to_json(found)
    return body


def _login_reason() -> str | None:
    from .refresh import configured_logins

    for _dir, login in configured_logins():
        if isinstance(login, Exception):
            return f"{login}; `{as_typed()} demo` shows it working without a login"
    return None


def as_typed() -> str:
    """How the user can run claude-meter again: ``claude-meter`` when PATH finds it,
    else the path this run came by (the README's quick start runs
    ``.venv/bin/claude-meter``, which is not on PATH)."""
    import os
    import shutil
    from pathlib import Path

    run_by = sys.argv[0]
    if Path(run_by).name != "claude-meter" or shutil.which("claude-meter"):
        return "claude-meter"
    relative = os.path.relpath(run_by)
    return relative if not relative.startswith("..") else run_by


def cmd_status(args: argparse.Namespace | None = None) -> int:
    """The full render (``segment_cache`` answers first while it holds): stdlib, the store
    and the registry only; never fails to print. ``args``: the parsed options (None: none)."""
    from . import env, registry
    from .options import DEFAULTS, Settings, percent
    from .status import job_output

    given = {name: getattr(args, name, None) for name in ("format", "account", "warn", "crit")}
    chosen = {k: v for k, v in given.items() if v is not None}
    settings = Settings.from_options(chosen)
    warn, crit = (chosen.get(name, DEFAULTS[name]) for name in ("warn", "crit"))
    if (percent(warn) or 0) >= (percent(crit) or 0):
        said = {name: "" if name in chosen else ", the default" for name in ("warn", "crit")}
        print(
            f"claude-meter status: error: --warn ({warn}{said['warn']}) must be below"
            f" --crit ({crit}{said['crit']})",
            file=sys.stderr,
        )
        return 2
    store = Store()
    cached = segment_cache.directory() if not chosen else None
    try:
        cache_key = segment_cache.key(cached) if cached is not None else None
    except OSError:
        cache_key = None
    state, now, paused = store.read(), env.now(), registry.paused_count()
    if cache_key is None or state.problem or state.skipped:
        print(job_output(state, now, settings, paused))
    else:  # the segment kept, its clocks filled for now: the full render, made once
        _keep_segment(store, cache_key, state, now, settings, paused)
    return 0


def _keep_segment(
    store: Store,
    cache_key: str,
    state: State,
    now: datetime,
    settings: Settings,
    paused: int,
) -> None:
    """Print the segment and leave it for the next ``claude-meter status``
    (:mod:`segment_cache`); ``cache_key`` was taken before the state was read, so a write
    in between makes it a miss, never a stale hit. Another host's guards count until
    their heartbeat lapses (``registry.foreign``): the segment holds no longer. A cache
    that cannot be written is only slower."""
    from .registry import fleet_hosts
    from .status import steady

    template, until = steady(state, now, settings, paused)
    print(segment_cache.fill(template, now.timestamp()))
    lapses = [h.until for h in fleet_hosts(store.directory) if h.until > now.timestamp()]
    until = min([until, *lapses])
    data = segment_cache.encode(cache_key, template, now.timestamp(), until)
    with contextlib.suppress(OSError):
        write_private(store.directory / segment_cache.CACHE_FILE, data, durable=False)


def cmd_refresh(args: argparse.Namespace) -> int:
    from .refresh import MIN_SPACING, refresh

    results = refresh(Store(), min_age=MIN_SPACING, explicit=True)
    for result in results:
        mark = "ok " if result.ok else "FAIL"
        print(f"{mark} {result.key}: {result.message}", file=sys.stderr)
    return 0 if any(r.ok for r in results) else 1


def read_input(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    with open(source, encoding="utf-8") as handle:
        return handle.read()


def cmd_ingest(args: argparse.Namespace) -> int:
    try:
        text = read_input(args.file)
    except OSError as exc:
        print(f"claude-meter ingest: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    except UnicodeDecodeError:
        print(f"claude-meter ingest: {args.file} is not UTF-8 text", file=sys.stderr)
        return 1
    if not text.strip():
        print("claude-meter ingest: no input (give a JSON snapshot or a list)", file=sys.stderr)
        return 1
    try:
        snapshots: list[Snapshot] = parse_many(json.loads(text))
    except json.JSONDecodeError as exc:
        print(
            f"claude-meter ingest: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            file=sys.stderr,
        )
        return 1
    except ValidationError as exc:
        print(f"claude-meter ingest: invalid snapshot: {exc}", file=sys.stderr)
        return 1
    except RecursionError:
        print(
            f"claude-meter ingest: invalid snapshot: nested deeper than {MAX_DEPTH} levels",
            file=sys.stderr,
        )
        return 1
    count = Store().put(snapshots)
    print(f"stored {count} snapshot{'s' if count != 1 else ''}", file=sys.stderr)
    return 0
