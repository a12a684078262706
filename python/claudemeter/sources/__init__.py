"""Where readings come from: each module turns one upstream into snapshots.

The sources' bookkeeping record (:class:`SourceBook`) and the OAuth source's booking
statuses live here, not in ``sources.oauth``: the status segment and every gate read
them on their hot paths and must not import an HTTP client's module to learn four words.
"""

from __future__ import annotations

import math

TYPE_CHECKING = False  # typing is for mypy: importing it costs the hot paths milliseconds

STATUS_OK = "ok"
STATUS_LOGIN = "login"  # expired, logged out or rejected login: the user must run `claude`
STATUS_BACKOFF = "backoff"  # rate limited
STATUS_ERROR = "error"

#: ``State.sources`` keys of the OAuth source: ``oauth:<org uuid>`` once the login's
#: account is known, ``oauth:<config dir>`` until then (``sources.oauth.source_key``).
OAUTH_PREFIX = "oauth:"


def oauth_key(org_uuid: str) -> str:
    """The OAuth source's ``State.sources`` key for an account (by its org uuid)."""
    return OAUTH_PREFIX + org_uuid


if TYPE_CHECKING:
    from typing import Any, TypedDict

    class SourceBook(TypedDict, total=False):
        """One source's bookkeeping, ``State.sources[key]`` (the state file's ``sources``).

        Keyed by the source: ``oauth:<org uuid>`` / ``oauth:<config dir>`` (the OAuth
        source, one per login: every key below), ``peer HOST:PORT`` (a peer bridge's pull)
        and ``shared`` (the fleet's Redis sync): those two book ``status``, ``error``,
        ``last_attempt`` and ``last_ok``. Every key is optional: a source books what it
        knows. A dict on disk, the same shape as before it was typed, so old and new state
        files read both ways; :func:`book_from_json` keeps what has the right type.
        Which row a book concerns is one rule, in :mod:`claudemeter.store` (``State.books_of``).
        """

        #: :data:`STATUS_OK`, :data:`STATUS_LOGIN`, :data:`STATUS_BACKOFF` or :data:`STATUS_ERROR`
        #: (peers and the fleet's sync: ok or error).
        status: str
        #: The last attempt's problem in the source's own words (None after a good one).
        error: str | None
        #: Epoch seconds: the last attempt (when its answer came in), the last good one,
        #: and the earliest the next may be made (a back-off).
        last_attempt: float
        last_ok: float
        next_allowed: float
        #: Failures in a row (doubling back-off) and rate limits in a row (the ladder).
        failures: int
        rate_limited: int
        #: Epoch seconds of the last profile fetch (the OAuth source asks once a day).
        profile_at: float
        #: The login's config dir, as messages name it.
        config_dir: str
        #: A short hash of the login's credentials, never the token: a rejected login is
        #: asked about again only once it changes.
        login: str
        #: The account the login turned out to be (``oauth:<org uuid>``), once known.
        account_key: str

else:
    SourceBook = dict  # what a TypedDict is at run time, without importing typing


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def book_from_json(body: Any) -> SourceBook | None:
    """A book as the state file holds it; None for anything but an object. Keys of the
    wrong type (a string time, a bool count) and unknown keys are dropped, so every
    reader gets the types :class:`SourceBook` promises."""
    if not isinstance(body, dict):
        return None
    book = SourceBook()
    status = body.get("status")
    if isinstance(status, str):
        book["status"] = status
    error = body.get("error")
    if "error" in body and (error is None or isinstance(error, str)):
        book["error"] = error
    if (seconds := _number(body.get("last_attempt"))) is not None:
        book["last_attempt"] = seconds
    if (seconds := _number(body.get("last_ok"))) is not None:
        book["last_ok"] = seconds
    if (seconds := _number(body.get("next_allowed"))) is not None:
        book["next_allowed"] = seconds
    if (seconds := _number(body.get("profile_at"))) is not None:
        book["profile_at"] = seconds
    if (count := _number(body.get("failures"))) is not None:
        book["failures"] = int(count)
    if (count := _number(body.get("rate_limited"))) is not None:
        book["rate_limited"] = int(count)
    if isinstance(text := body.get("config_dir"), str):
        book["config_dir"] = text
    if isinstance(text := body.get("login"), str):
        book["login"] = text
    if isinstance(text := body.get("account_key"), str):
        book["account_key"] = text
    return book
