"""Single-flight refresh: at most one upstream request per interval per machine.

Every pane's status line, every guard and every ``claude-meter refresh`` may ask at
once. One process takes ``refresh.lock`` and fetches; the others wait for it and then
find the attempt already booked in the store, so they fetch nothing. The booking (last
attempt, back-off) lives in the store, so it holds across processes and restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from . import peers, shared
from .flock import LockTimeout
from .history import HIT_OAUTH_429, LimitHit
from .model import SOURCE_CLAUDE_CODE_CACHE, SOURCE_STATUSLINE, utcnow
from .private import private_lock
from .sources import claude_code_cache, oauth
from .sources.claude_account import ClaudeJson, read_claude_json
from .sources.claude_config import ClaudeConfig, configured
from .store import State, Store

REFRESH_LOCK = "refresh.lock"
#: Automatic readers (the bridge's poller, a guard) refresh OAuth this often. Five
#: minutes, not three: with Claude Code running, its cache and its statusLine keep the
#: account fresh at no request, so our own request is the fallback for when it is not
#: running, and 12 requests an hour at most stays well clear of the endpoint's 429s.
#: The OAuth row's 600 s freshness still covers one missed round.
OAUTH_INTERVAL = 300.0
#: An explicit ``claude-meter refresh`` still never asks more often than this.
MIN_SPACING = 30.0
#: No back-off is longer than this; a booking further ahead is a clock jump.
MAX_WAIT = 2 * 3600.0
CLOCK_SLACK = 60.0
#: How long a second asker waits for the first one's result.
WAIT_FOR_PEER = 20.0
#: While Claude Code's statusLine keeps an account's 5-hour and 7-day readings younger
#: than OAUTH_INTERVAL, automatic OAuth fetches for it wait this long instead: the
#: statusline costs no request, and this stays under the OAuth row's 600 s freshness so
#: the buckets only OAuth sees (7-day OAuth apps, per model, extra usage) never go stale.
#: (Claude Code's cache carries every bucket: while it is fresh, no fetch at all.)
OAUTH_INTERVAL_WITH_STATUSLINE = 540.0


@dataclass
class Result:
    """One line per configured login: what happened to it this time."""

    key: str
    ok: bool
    message: str
    fetched: bool = False


def configured_logins(
    claude_jsons: dict[ClaudeConfig, ClaudeJson] | None = None,
) -> list[tuple[ClaudeConfig, oauth.Login | oauth.LoginError]]:
    """Every configured Claude Code login (``claude_config.configured``), or why not."""
    logins: list[tuple[ClaudeConfig, oauth.Login | oauth.LoginError]] = []
    for config in configured():
        try:
            given = (claude_jsons or {}).get(config)
            logins.append((config, oauth.read_login(config, claude_json=given)))
        except oauth.LoginError as exc:
            logins.append((config, exc))
    return logins


def refresh(
    store: Store | None = None,
    min_age: float = OAUTH_INTERVAL,
    wait: float = WAIT_FOR_PEER,
    explicit: bool = False,
) -> list[Result]:
    """Store Claude Code's cached usage of every login, then fetch every login whose
    last attempt is older than ``min_age`` (and not backing off, and not rejected with
    the same credentials), holding the machine-wide refresh lock so concurrent callers
    fetch once.

    No request is made while the account's Claude Code cache is younger than
    ``min_age``. Automatic callers also leave alone an account that fresh statusline
    readings cover (see :data:`OAUTH_INTERVAL_WITH_STATUSLINE`); an ``explicit``
    refresh is the user asking for the server's answer now, so it is held back only by
    ``min_age``."""
    store = store or Store()
    try:
        lock = private_lock(store.directory / REFRESH_LOCK, wait)
        lock.acquire()
    except LockTimeout:
        return [Result("refresh", True, "another process is refreshing; using the cached data")]
    except OSError as exc:  # a read-only mount, a directory in its place: one line
        raise store.write_error(exc) from None
    try:
        return _refresh_locked(store, min_age, explicit)
    finally:
        lock.release()


def _store_caches(store: Store) -> dict[ClaudeConfig, ClaudeJson]:
    """Read every login's ``.claude.json`` once, storing Claude Code's cached usage
    when it is newer than what the store has (no write while it is unchanged)."""
    found = {config: read_claude_json(config) for config in configured()}
    cached = [r for r in map(claude_code_cache.reading, found.values()) if r is not None]
    stored = {(row.account_key, row.browser): row.fetched_at for row in store.read().rows}
    newer = [r for r in cached if r.fetched_at > stored.get((r.account_key, r.browser), _NEVER)]
    if newer:
        with store.update() as state:
            for snapshot in newer:
                state.put(snapshot)
    return found


_NEVER = datetime.min.replace(tzinfo=timezone.utc)


def _refresh_locked(store: Store, min_age: float, explicit: bool) -> list[Result]:
    results: list[Result] = []
    fleet = shared.configured()
    if fleet is not None:
        problem = shared.sync(store, fleet, force=explicit)  # asked by hand: the fleet's now
        if problem:
            results.append(Result(shared.SOURCE, False, f"{problem}; using this host's file"))
    for _config, login in configured_logins(_store_caches(store)):
        if isinstance(login, oauth.LoginError):
            results.append(Result("oauth", False, str(login)))  # the message names the dir
            continue
        state = store.read()
        book = state.book(login.key)
        now = utcnow().timestamp()
        last = book.get("last_attempt", 0.0)
        next_allowed = book.get("next_allowed", 0.0)
        if last > now + CLOCK_SLACK or next_allowed > now + MAX_WAIT:
            last = next_allowed = 0.0  # booked in the future: the clock went back
        status = book.get("status")
        renewed = status == oauth.STATUS_LOGIN and book.get("login") != login.fingerprint
        if status == oauth.STATUS_LOGIN and not renewed:
            results.append(Result(login.key, False, str(book.get("error"))))
            continue  # rejected or expired: asked again only once Claude Code renews it
        cache = _youngest(state, login, SOURCE_CLAUDE_CODE_CACHE, min_age)
        if cache is not None:
            message = f"Claude Code's own usage cache is {int(cache)}s old: no request needed"
            results.append(Result(login.key, True, message))
            continue
        if now < next_allowed and not renewed:
            wait = int(next_allowed - now)
            results.append(
                Result(
                    login.key,
                    status == oauth.STATUS_OK,
                    f"backing off for {wait}s after: {book.get('error')}",
                )
            )
            continue
        if now - last < min_age and not renewed:
            ok = status == oauth.STATUS_OK
            said = "fetched" if ok else f"{book.get('error')}; last tried"
            results.append(Result(login.key, ok, f"{said} {int(now - last)}s ago"))
            continue
        peer_row = (
            None if explicit or login.account is None else peers.covering(state, login.account.key)
        )
        if peer_row is not None:
            results.append(
                Result(
                    login.key,
                    True,
                    f"{peer_row.browser}'s reading is {int(peer_row.age())}s old:"
                    " no request needed",
                )
            )
            continue
        covered = _youngest(state, login, SOURCE_STATUSLINE, OAUTH_INTERVAL)
        if not explicit and covered is not None and now - last < OAUTH_INTERVAL_WITH_STATUSLINE:
            results.append(
                Result(
                    login.key,
                    True,
                    f"statusline readings are {int(covered)}s old: no request needed",
                )
            )
            continue
        if fleet is not None and not _fleet_allows(fleet, login, min_age, results):
            continue
        outcome = oauth.fetch(login, book)
        with store.update() as state:
            if outcome.snapshot is not None:
                state.put(outcome.snapshot)
                if outcome.rate_limited:
                    hit = LimitHit(utcnow().timestamp(), None, HIT_OAUTH_429)
                    state.record_limit_hit(outcome.snapshot.account_key, hit)
            state.sources[login.key] = outcome.book
        ok = outcome.book.get("status") == oauth.STATUS_OK
        results.append(Result(login.key, ok, str(outcome.book.get("error") or "updated"), True))
    if fleet is not None and any(result.fetched for result in results):
        shared.sync(store, fleet, force=True)  # the fleet sees it now, not at our next sync
    return results


def _fleet_allows(
    fleet: shared.Shared, login: oauth.Login, min_age: float, results: list[Result]
) -> bool:
    """Take the fleet's booking for this account's request. Another host holding it
    means no request here (its reading comes through the shared store); an unreachable
    Redis means this host asks on its own, as it would without one."""
    account = login.account.key if login.account is not None else login.key
    try:
        if fleet.book(account, min_age):
            return True
    except shared.SharedUnavailable:
        return True
    results.append(
        Result(login.key, True, "another host of the fleet asks this interval: no request here")
    )
    return False


def _youngest(state: State, login: oauth.Login, source: str, younger: float) -> float | None:
    """Age in seconds of the account's newest reading from ``source`` with usage, when
    it is younger than ``younger``; else None."""
    if login.account is None:
        return None
    ages = [
        row.age()
        for row in state.rows
        if row.browser == source and row.account_key == login.account.key and row.usage is not None
    ]
    youngest = min(ages, default=None)
    return youngest if youngest is not None and youngest < younger else None
