"""Claude Code's ``statusLine`` JSON as a source: the server's numbers at no request.

Claude Code runs its ``statusLine`` command after its own API responses and pipes it a
JSON object; for subscribers that carries ``rate_limits.{five_hour,seven_day}`` with
``used_percentage`` (0–100) and ``resets_at`` (epoch seconds). ``claude-meter
statusline`` stores those readings as the logged-in account's row and prints a line for
Claude Code's bar.

It runs on every Claude Code refresh of every agent, so it must be cheap (no HTTP client
is imported, no request is made) and it must never disturb the agent: whatever arrives on
stdin, it prints a line and exits 0. Bad input stores nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

from .. import bar, env, statusline_memo
from ..bar import NEUTRAL
from ..history import SessionPoint, SessionSample
from ..model import (
    JSON,
    MAX_PERCENT,
    SOURCE_STATUSLINE,
    SPEND_LIMIT,
    Provenance,
    Snapshot,
    format_time,
    json_number,
    parse_time,
    utcnow,
)
from ..private import StoreError, ensure_private_dir, write_private
from ..render import spend_text
from ..store import State, Store
from ..windows import MAIN
from . import claude_code_cache, claude_config
from .claude_account import Account, read_claude_json
from .claude_config import ClaudeConfig

TYPE_CHECKING = False  # typing itself costs every call milliseconds
if TYPE_CHECKING:
    import argparse
    import subprocess  # run only for --chain: kept off the status line's import path
    from typing import Any

#: How long the chained (previous) statusLine command may take.
CHAIN_TIMEOUT = 3.0
#: ``resets_at`` outside these epoch seconds (2020 … 2100) is not seconds: not guessed.
EPOCH_RANGE = (1_577_836_800.0, 4_102_444_800.0)
#: Writers hold the store's lock for milliseconds; Claude Code's bar will not wait longer.
LOCK_TIMEOUT = 2.0
#: Two ``resets_at`` this close belong to the same window.
SAME_RESET = 120.0
MAX_WINDOWS = 16
_WINDOW_NAME = re.compile(r"^[a-z0-9_]{1,64}$")
#: The account per Claude Code config dir, remembered against .claude.json's size and time.
ACCOUNT_CACHE = "statusline-accounts.json"
#: Where install-statusline records what it replaced (the chain, the uninstall data).
RECORD_DIR = "statusline"


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chain",
        metavar="CMD",
        help="run this statusLine command first (same stdin) and print its output before"
        " ours; default: the one install-statusline --chain recorded",
    )
    parser.add_argument(
        "--no-chain",
        action="store_true",
        help="do not run the recorded previous statusLine command",
    )


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` in hex, from CPython's own implementation (``_sha2`` from 3.12,
    ``_sha256`` before) when it is there: ``hashlib`` loads OpenSSL first, 3 to 7 ms of
    every statusline call for one digest of a path. ``hashlib`` otherwise."""
    for name in ("_sha2", "_sha256"):
        try:
            builtin = __import__(name)
        except ImportError:
            continue
        return str(builtin.sha256(data).hexdigest())
    import hashlib

    return hashlib.sha256(data).hexdigest()


def record_path(claude_dir: Path | None = None, kind: str = RECORD_DIR) -> Path:
    """install-statusline's (or ``kind``'s: install-hooks') record for one Claude Code
    config dir (several logins can each have their own previous statusLine)."""
    directory = (claude_dir or claude_config.current().directory).expanduser().absolute()
    digest = sha256_hex(str(directory).encode())[:12]
    return env.config_dir() / kind / f"{digest}.json"


def recorded_chain(claude_dir: Path | None = None) -> str | None:
    """The previous statusLine command install-statusline --chain kept, if any."""
    try:
        body = json.loads(record_path(claude_dir).read_text())
    except (OSError, ValueError):
        return None
    chain = body.get("chain") if isinstance(body, dict) else None
    return chain if isinstance(chain, str) and chain.strip() else None


def account_for(config: ClaudeConfig) -> Account | None:
    """The login's account (``read_account``), remembered while ``.claude.json`` keeps
    its size and mtime: that file grows to megabytes of project history, too much to
    parse on every call."""
    return account_and_cache(config)[0]


def account_and_cache(config: ClaudeConfig) -> tuple[Account | None, Snapshot | None]:
    """:func:`account_for`, and, when ``.claude.json`` was parsed (it changed since the
    last call), Claude Code's own cached usage answer in it
    (``claude_code_cache.reading``); None for that when unchanged."""
    path = config.claude_json()
    try:
        info = path.stat()
    except OSError:
        return None, None
    stamp = [info.st_mtime_ns, info.st_size]
    cache_file = env.state_dir() / ACCOUNT_CACHE
    cache: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(cache_file.read_text())
        cache = loaded if isinstance(loaded, dict) else {}
    entry = cache.get(str(path))
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        with contextlib.suppress(TypeError):
            known = entry.get("account")
            return (Account(**known) if isinstance(known, dict) else None), None
    claude_json = read_claude_json(config)
    account = claude_json.account
    cache[str(path)] = {"stamp": stamp, "account": asdict(account) if account else None}
    with contextlib.suppress(OSError):
        ensure_private_dir(cache_file.parent)
        write_private(cache_file, json.dumps(cache).encode())
    return account, claude_code_cache.reading(claude_json)


def _window(entry: Any, now: datetime) -> JSON | None:
    """One ``rate_limits`` entry as a usage window, or None when it is not a reading we
    can trust: a wrong type, an out-of-range time (milliseconds are not guessed), or a
    reset already past (Claude Code's cached numbers from before it)."""
    if not isinstance(entry, dict):
        return None
    used = json_number(entry.get("used_percentage"))
    if used is None or not 0.0 <= used <= MAX_PERCENT:
        return None
    resets_raw = entry.get("resets_at")
    resets_at: str | None = None
    if resets_raw is not None:
        resets = json_number(resets_raw)
        if resets is None or not EPOCH_RANGE[0] <= resets <= EPOCH_RANGE[1]:
            return None
        when = datetime.fromtimestamp(resets, timezone.utc)
        if when <= now:
            return None
        resets_at = format_time(when)
    return {"utilization": used, "resets_at": resets_at}


def spend_limit(entry: Any) -> JSON | None:
    """A gateway's ``rate_limits.spend_limit``: ``used_usd`` (a number of dollars, not
    cents), ``limit_usd`` (number or null) and ``period`` (text or null), or None when
    ``used_usd`` is not a usable number."""
    if not isinstance(entry, dict):
        return None
    used = json_number(entry.get("used_usd"))
    if used is None or used < 0:
        return None
    limit = json_number(entry.get("limit_usd"))
    period = entry.get("period")
    return {
        "used_usd": used,
        "limit_usd": limit if limit is not None and limit >= 0 else None,
        "period": period[:40] if isinstance(period, str) else None,
    }


def usage_from(body: Any, now: datetime) -> JSON | None:
    """The usage windows in Claude Code's statusLine JSON, or None when it has none.

    ``used_percentage`` is already 0–100 and is stored as is; windows Claude Code adds
    later keep their own names. Behind a gateway, ``spend_limit`` is kept as
    :func:`spend_limit` reads it."""
    limits = body.get("rate_limits") if isinstance(body, dict) else None
    if not isinstance(limits, dict):
        return None
    usage: JSON = {}
    for name, entry in list(limits.items())[:MAX_WINDOWS]:
        if name == SPEND_LIMIT:
            spend = spend_limit(entry)
            if spend is not None:
                usage[name] = spend
        elif isinstance(name, str) and _WINDOW_NAME.match(name):
            window = _window(entry, now)
            if window is not None:
                usage[name] = window
    return usage or None


def reading(body: Any, account: Account, now: datetime) -> Snapshot | None:
    usage = usage_from(body, now)
    if usage is None:
        return None
    return Snapshot(
        org_uuid=account.org_uuid,
        browser=SOURCE_STATUSLINE,
        account_email=account.email,
        fetched_at=now,
        usage=usage,
        org_name=account.org_name,
    )


def _resets(window: Any) -> float | None:
    if not isinstance(window, dict) or not isinstance(window.get("resets_at"), str):
        return None
    try:
        return parse_time(window["resets_at"]).timestamp()
    except ValueError:
        return None


def merge(state: State, snapshot: Snapshot, now: datetime) -> Snapshot:
    """The reading as it is stored, given what the store already holds for the account.

    - Within one window the server's count only climbs, so a lower reading for the same
      reset than a fresh one already stored is an idle agent's cached number: the higher
      one is kept.
    - A bucket this input lacks (an idle session whose window's reset has passed, a
      release that sends only ``five_hour``) keeps the value the previous statusline
      input gave, with that input's time in ``provenance``: it goes stale on its own
      clock, and every agent's statusLine shares the one stored row. Buckets Claude
      Code never passes on (per model, OAuth apps) come from the other sources' rows
      through the per-bucket fold.
    """
    usage = dict(snapshot.usage or {})
    provenance: dict[str, Provenance] = {}
    mine = [
        row
        for row in state.rows
        if row.account_key == snapshot.account_key and row.usage is not None
    ]
    others = sorted(
        (row for row in mine if not row.with_staleness(now).stale),
        key=lambda row: row.fetched_at,
        reverse=True,
    )
    for name, window in list(usage.items()):
        resets = _resets(window)
        if resets is None:
            continue
        same_window = [
            json_number(theirs.get("utilization"))
            for row in others
            if isinstance(theirs := (row.usage or {}).get(name), dict)
            and (theirs_resets := _resets(theirs)) is not None
            and abs(theirs_resets - resets) <= SAME_RESET
        ]
        highest = max([window["utilization"], *(u for u in same_window if u is not None)])
        usage[name] = {**window, "utilization": highest}
    previous = next((row for row in mine if row.browser == SOURCE_STATUSLINE), None)
    if previous is not None:
        for name, window in previous.windows().items():
            origin = previous.origin(name)
            keep = (
                name not in usage
                and window.utilization is not None
                and not window.has_reset(now)
                and not origin.is_stale(now)
            )
            if keep:
                usage[name] = (previous.usage or {})[name]
                provenance[name] = origin
    return replace(snapshot, usage=usage, provenance=provenance)


def bar_of(usage: JSON | None) -> tuple[list[bar.Entry], str | None]:
    """What the bar shows of a usage: the main buckets' entries and the spend text."""
    entries: list[bar.Entry] = []
    for name in MAIN:
        window = (usage or {}).get(name)
        if isinstance(window, dict):
            entries.append((name, json_number(window.get("utilization")), _resets(window)))
    return entries, spend_text((usage or {}).get(SPEND_LIMIT))


def line(usage: JSON | None, now: datetime, warning: str | None = None) -> str:
    """``5h 57% ↻1h23m · 7d 33%`` for Claude Code's bar, plus a pace warning."""
    entries, spend = bar_of(usage)
    return bar.line(entries, spend, now.timestamp(), warning)


def _warning(state: State, account: Account, now: datetime) -> str | None:
    """The pace warning, from what the writer derived (the history is not read here)."""
    from .. import derived, pace

    found = derived.current_paces(derived.Summary.from_json(state.derived.get(account.key)), now)
    return pace.status_warning(found, now)


def session_sample(body: Any, account: Account, now: datetime) -> SessionSample | None:
    """The session's running totals in a statusLine input (``session_id``, ``cost.
    total_cost_usd`` in USD, ``context_window.total_input_tokens``/``total_output_tokens``,
    ``cost.total_duration_ms`` for its start), with its pane (``TMUX_PANE``), project
    (``workspace.project_dir``, else ``cwd``) and model (its display name); None
    without a session id or a cost."""
    if not isinstance(body, dict):
        return None
    session_id = body.get("session_id")
    cost = _object(body, "cost")
    spent = json_number(cost.get("total_cost_usd"))
    if not isinstance(session_id, str) or not session_id or len(session_id) > 200:
        return None
    if spent is None or spent < 0:
        return None
    window, workspace = _object(body, "context_window"), _object(body, "workspace")
    model = _object(body, "model")
    project = workspace.get("project_dir") or body.get("cwd")
    name = model.get("display_name") or model.get("id")
    ran = json_number(cost.get("total_duration_ms"))
    t = now.timestamp()
    return SessionSample(
        account=account.key,
        session_id=session_id,
        pane=env.tmux_pane(),
        project=project if isinstance(project, str) else None,
        model=name if isinstance(name, str) else None,
        started=t - ran / 1000.0 if ran is not None and ran >= 0 else None,
        point=SessionPoint(
            t,
            spent,
            int(json_number(window.get("total_input_tokens")) or 0),
            int(json_number(window.get("total_output_tokens")) or 0),
        ),
    )


def _object(body: JSON, key: str) -> JSON:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def _from_store(account: Account, now: datetime) -> str:
    """No reading in the input (before the session's first response): the account's
    row as the store has it, if it is fresh."""
    return _line_from(Store().read(), account, now)


def _line_from(state: State, account: Account, now: datetime) -> str:
    for row in state.accounts(now):
        if row.account_key == account.key and not row.stale and row.usage is not None:
            return line(row.usage, now, _warning(state, account, now))
    return NEUTRAL


def ours(data: bytes, now: datetime) -> str:
    """Parse, store and describe one statusLine input; never raises for bad input."""
    try:
        body = json.loads(data)
    except ValueError:
        return NEUTRAL
    config = claude_config.current()
    files = login_files(config)  # before the account is read: a later change is a miss
    account, cached = account_and_cache(config)
    if account is None:
        # API-key users and logins we cannot place: show the numbers, store nothing.
        return line(usage_from(body, now), now)
    snapshot = reading(body, account, now)
    sample = session_sample(body, account, now)
    if snapshot is None and cached is None and sample is None:
        return _from_store(account, now)
    try:
        with Store().update(LOCK_TIMEOUT) as state:
            if cached is not None:
                state.put(cached)
            if sample is not None:
                state.record_session(sample)
            if snapshot is not None:
                stored = merge(state, snapshot, now)
                own = replace(  # history: its own buckets, as stored
                    stored,
                    usage={
                        k: v for k, v in (stored.usage or {}).items() if k in (snapshot.usage or {})
                    },
                )
                state.put(stored, measured=own)
    except Exception:  # a full disk, a held lock or a bad state dir must not break the agent
        shown = snapshot.usage if snapshot is not None else None
        return line(shown, now) + " (not saved: run claude-meter doctor)"
    if snapshot is None:  # the line comes after the update: its pace is the new one
        return _line_from(state, account, now)
    entries, spend = bar_of(stored.usage)
    warning = _warning(state, account, now)
    if sample is not None and isinstance(body, dict):
        until = _memo_until(state, stored, account, now)
        with contextlib.suppress(OSError, StoreError):  # the next call stores again
            remember(body, files, (entries, spend, warning), now.timestamp(), until)
    return bar.line(entries, spend, now.timestamp(), warning)


def login_files(config: ClaudeConfig) -> dict[str, list[int] | None]:
    """The files the account and the chain are found in, each with its ``stat``
    (``statusline_memo.stamp``): the legacy ``.config.json``, ``.claude.json`` and
    install-statusline's record."""
    paths = [
        config.directory / claude_config.LEGACY_CONFIG_JSON,
        config.claude_json(),
        record_path(config.directory),
    ]
    return {str(path): statusline_memo.stamp(str(path)) for path in paths}


def _memo_until(state: State, stored: Snapshot, account: Account, now: datetime) -> float:
    """Epoch seconds of the first moment the bar may change other than by its countdown:
    a stored bucket's reset, a pace running out or its projected time (``derived.moments``);
    :data:`statusline_memo.SPAN` after ``now`` at the latest."""
    from .. import derived

    t = now.timestamp()
    ahead = [_resets(window) for window in (stored.usage or {}).values()]
    ahead += derived.moments(derived.Summary.from_json(state.derived.get(account.key)))
    return min([t + statusline_memo.SPAN, *(m for m in ahead if m is not None and m > t)])


def remember(
    body: JSON,
    files: dict[str, list[int] | None],
    shown: tuple[list[bar.Entry], str | None, str | None],
    stored: float,
    until: float,
) -> None:
    """Leave this session's memo (``statusline_memo``) after a store at ``stored``
    (epoch); none when a chained command is recorded (it must run every call). Old
    sessions' memos are removed. Raises OSError or StoreError when it cannot be written."""
    session = statusline_memo.session_id(body)
    if session is None or recorded_chain() is not None:
        return
    directory = ensure_private_dir(env.state_dir() / statusline_memo.MEMO_DIR)
    for old in directory.iterdir():
        with contextlib.suppress(OSError):
            if old.lstat().st_mtime < stored - statusline_memo.KEEP:
                old.unlink()
    path = Path(statusline_memo.memo_path(str(env.state_dir()), session))
    write_private(path, statusline_memo.encode(body, files, shown, stored, until), durable=False)


def _start_chain(command: str) -> subprocess.Popen[bytes] | None:
    import subprocess

    child_env = dict(os.environ, **{env.STATUSLINE_CHAINED: "1"})
    try:
        # The user's own statusLine command line, run through the shell as Claude Code does.
        return subprocess.Popen(  # noqa: S602
            command,
            shell=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=child_env,
        )
    except OSError:
        return None


def _finish_chain(child: subprocess.Popen[bytes], data: bytes) -> str:
    """The chained command's output; on timeout its whole process group is ended."""
    import signal
    import subprocess

    try:
        out, _ = child.communicate(data, timeout=CHAIN_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(child.pid, signal.SIGKILL)
        try:
            out, _ = child.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:  # something escaped the group and holds the pipe
            out = b""
    return out.decode("utf-8", "replace").rstrip("\n")


def combine(theirs: str, mine: str) -> str:
    """Their output first, ours after on the same (last) line."""
    return f"{theirs} │ {mine}" if theirs.strip() else mine


def main(args: argparse.Namespace | None = None) -> int:
    """``claude-meter statusline``: always prints a line, always exits 0. ``args`` are
    the parsed options; None (the call Claude Code makes) is none given."""
    if sys.stdin is None or sys.stdin.isatty():
        print(
            "claude-meter statusline reads Claude Code's statusLine JSON on stdin;"
            " run `claude-meter install-statusline` to set it up",
            file=sys.stderr,
        )
        print(NEUTRAL)
        return 0
    try:
        data = statusline_memo.read_input(sys.stdin.buffer)
    except OSError:
        data = None
    return respond(args, data)


def respond(args: argparse.Namespace | None, data: bytes | None) -> int:
    """:func:`main` once the input is read (``data``: None when it was too big or
    unreadable): store, run the chain, print; exits 0."""
    chain = None
    if data is not None and not getattr(args, "no_chain", False) and not env.statusline_chained():
        chain = getattr(args, "chain", None) or recorded_chain()
    child = _start_chain(chain) if chain else None
    try:
        mine = NEUTRAL if data is None else ours(data, utcnow())
    except Exception:  # never fail the agent, not even over our own bug
        mine = NEUTRAL
    theirs = _finish_chain(child, data or b"") if child is not None else ""
    statusline_memo.emit(combine(theirs, mine))
    return 0
