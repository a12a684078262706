"""Single-flight refresh: at most one upstream request per interval per machine.

Every pane's status line, every guard and every ``claude-meter refresh`` may ask at
once. One process takes ``refresh.lock`` and fetches; the others wait for it and then
find the attempt already booked in the store, so they fetch nothing. The booking (last
attempt, back-off) lives in the store, so it holds across processes and restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from . import env
from .model import SOURCE_STATUSLINE
from .sources import oauth
from .store import State, Store, ensure_private_dir

REFRESH_LOCK = "refresh.lock"
#: Automatic readers (the bridge's poller, a guard) refresh OAuth this often.
OAUTH_INTERVAL = 180.0
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
OAUTH_INTERVAL_WITH_STATUSLINE = 540.0


@dataclass
class Result:
    """One line per configured login: what happened to it this time."""

    key: str
    ok: bool
    message: str
    fetched: bool = False


def configured_logins() -> list[tuple[Path, oauth.Login | oauth.LoginError]]:
    logins: list[tuple[Path, oauth.Login | oauth.LoginError]] = []
    for config_dir in env.claude_config_dirs():
        try:
            logins.append((config_dir, oauth.read_login(config_dir)))
        except oauth.LoginError as exc:
            logins.append((config_dir, exc))
    return logins


def refresh(
    store: Store | None = None,
    min_age: float = OAUTH_INTERVAL,
    wait: float = WAIT_FOR_PEER,
    explicit: bool = False,
) -> list[Result]:
    """Fetch every login whose last attempt is older than ``min_age`` (and not backing
    off), holding the machine-wide refresh lock so concurrent callers fetch once.

    Automatic callers also leave alone an account that fresh statusline readings cover
    (see :data:`OAUTH_INTERVAL_WITH_STATUSLINE`); an ``explicit`` refresh is the user
    asking for the server's answer now, so it is held back only by ``min_age``."""
    store = store or Store()
    try:
        ensure_private_dir(store.directory)
        lock = FileLock(str(store.directory / REFRESH_LOCK), timeout=wait, mode=0o600)
    except OSError as exc:
        raise store.write_error(exc) from None
    try:
        with lock:
            return _refresh_locked(store, min_age, explicit)
    except Timeout:
        return [Result("refresh", True, "another process is refreshing; using the cached data")]


def _refresh_locked(store: Store, min_age: float, explicit: bool) -> list[Result]:
    results: list[Result] = []
    for _config_dir, login in configured_logins():
        if isinstance(login, oauth.LoginError):
            results.append(Result("oauth", False, str(login)))  # the message names the dir
            continue
        state = store.read()
        book = state.sources.get(login.key, {})
        now = time.time()
        last = float(book.get("last_attempt", 0))
        next_allowed = float(book.get("next_allowed", 0))
        if last > now + CLOCK_SLACK or next_allowed > now + MAX_WAIT:
            last = next_allowed = 0.0  # booked in the future: the clock went back
        if now < next_allowed:
            wait = int(next_allowed - now)
            results.append(
                Result(
                    login.key,
                    book.get("status") == oauth.STATUS_OK,
                    f"backing off for {wait}s after: {book.get('error')}",
                )
            )
            continue
        if now - last < min_age and not _login_changed(login, book):
            ok = book.get("status") == oauth.STATUS_OK
            said = "fetched" if ok else f"{book.get('error')}; last tried"
            results.append(Result(login.key, ok, f"{said} {int(now - last)}s ago"))
            continue
        covered = _statusline_age(state, login)
        if not explicit and covered is not None and now - last < OAUTH_INTERVAL_WITH_STATUSLINE:
            results.append(
                Result(
                    login.key,
                    True,
                    f"statusline readings are {int(covered)}s old: no request needed",
                )
            )
            continue
        outcome = oauth.fetch(login, book)
        with store.update() as state:
            if outcome.snapshot is not None:
                state.put(outcome.snapshot)
            state.sources[login.key] = outcome.book
        ok = outcome.book.get("status") == oauth.STATUS_OK
        results.append(Result(login.key, ok, str(outcome.book.get("error") or "updated"), True))
    return results


def _statusline_age(state: State, login: oauth.Login) -> float | None:
    """Age of the account's statusline reading, when it is younger than the interval."""
    if login.account is None:
        return None
    ages = [
        row.age()
        for row in state.rows
        if row.browser == SOURCE_STATUSLINE
        and row.account_key == login.account.key
        and row.usage is not None
    ]
    youngest = min(ages, default=None)
    return youngest if youngest is not None and youngest < OAUTH_INTERVAL else None


def _login_changed(login: oauth.Login, book: dict[str, object]) -> bool:
    """A rejected login that the user has since renewed (``claude`` rewrote the token's
    expiry) is worth asking about at once instead of after the interval."""
    return book.get("status") == oauth.STATUS_LOGIN and book.get(
        "login_expires"
    ) != oauth.login_fingerprint(login)
