"""Claude Code's own login as a source: ``GET /api/oauth/usage`` with its OAuth token.

This is the source that works headless and over SSH. Three rules shape it:
- never refresh the token ourselves (that rotates Claude Code's refresh token and logs
  the user out of Claude Code); an expired, logged-out or rejected login is reported,
  not fixed, and a rejected one is not asked about again until the login changes;
- the endpoint answers 429 when polled hard, so every attempt is booked in the store
  (per account, not per token) and a back-off survives restarts;
- answers are read as Claude Code 2.1.332 reads them (FIELD-NOTES "How Claude Code
  itself reads the answers"): 401, or 403 with an Anthropic error body, is a rejected
  login; 429, or 403 without one, is a rate limit (``Retry-After`` when above 0, else a
  growing ladder of waits, never more than an hour).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from .. import __version__, env
from ..model import JSON, SOURCE_OAUTH, Snapshot, classify_usage, redact, utcnow
from . import STATUS_BACKOFF as STATUS_BACKOFF  # re-exported: refresh, doctor use them here
from . import STATUS_ERROR as STATUS_ERROR
from . import STATUS_LOGIN as STATUS_LOGIN
from . import STATUS_OK as STATUS_OK
from . import SourceBook, oauth_key
from .claude_account import Account, ClaudeJson, read_claude_json
from .claude_config import ClaudeConfig

if TYPE_CHECKING:
    import requests

USAGE_PATH = "/api/oauth/usage"
PROFILE_PATH = "/api/oauth/profile"
BETA_HEADER = "oauth-2025-04-20"
#: Who we are, honestly (never Claude Code's own agent string).
USER_AGENT = f"claudemeter/{__version__}"
TIMEOUT = (3.05, 10.0)  # connect, read
MAX_BODY = 1 << 20
#: Failures that are neither a login nor a rate limit (HTTP 5xx, no connection): back
#: off this long, doubling per consecutive failure, up to BACKOFF_MAX.
BACKOFF_BASE = 120.0
BACKOFF_MAX = 1800.0
#: Rate limited without a usable ``Retry-After`` (absent or 0): the n-th rate limit in
#: a row waits the n-th step (seconds; the last step repeats). The first good answer
#: starts the ladder over. Claude Code itself waits the first step, 5 minutes.
RATE_LIMIT_LADDER = (300.0, 600.0, 1200.0, 2400.0, 3600.0)
#: No wait is longer than this, whatever ``Retry-After`` says (Claude Code's own cap).
MAX_RETRY = 3600.0
#: The profile only confirms what .claude.json says; once a day is plenty.
PROFILE_EVERY = 24 * 3600.0
#: Keychain items past 4,032 characters continue in ``NAME-overflow-a``, ``-b``, …
OVERFLOW_PARTS = "abcdefghijklmnopqrstuvwxyz"


RELOGIN_HINT = "run `claude` once to refresh the login"
LOGGED_OUT = "logged out, run `claude` to log in"


class LoginError(Exception):
    """No usable login in a config dir; the message says what to do."""

    def __init__(self, message: str, status: str = STATUS_ERROR) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Login:
    """One Claude Code login. The token never leaves this object (not even in repr).

    ``fingerprint`` changes whenever Claude Code rewrites the credentials (a new token,
    a new expiry, a new login): a short hash, never the token."""

    config: ClaudeConfig
    access_token: str = field(repr=False)
    expires_at: datetime | None
    account: Account | None
    fingerprint: str = ""

    @property
    def key(self) -> str:
        """Bookkeeping key: the account when known (tokens rotate), else the dir."""
        return source_key(self.config, self.account)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def source_key(config: ClaudeConfig, account: Account | None) -> str:
    if account and account.org_uuid:
        return oauth_key(account.org_uuid)
    return oauth_key(config.label())


def keychain_service(config: ClaudeConfig) -> str:
    """The macOS keychain item Claude Code keeps this login in (see ``claude_config``)."""
    return config.keychain_service()


def _keychain_part(service: str) -> str | None:
    argv = ["security", "find-generic-password", "-w", "-s", service]
    user = env.user_name()
    if user:
        argv[2:2] = ["-a", user]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.strip()
    return value if done.returncode == 0 and value else None


def _unhex(value: str) -> str:
    """``security -w`` prints an item that is not plain text as hex: decode it."""
    if len(value) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in value):
        try:
            return bytes.fromhex(value).decode()
        except (ValueError, UnicodeDecodeError):
            return value
    return value


def read_keychain(config: ClaudeConfig) -> str | None:
    """The login's keychain item (macOS), joined with its overflow parts, decoded from
    hex; None when there is no item or no ``security`` tool."""
    service = config.keychain_service()
    first = _keychain_part(service)
    if first is None:
        return None
    value = _unhex(first)
    if _parses(value):
        return value
    parts = [first]
    for letter in OVERFLOW_PARTS:
        part = _keychain_part(f"{service}-overflow-{letter}")
        if part is None:
            break
        parts.append(part)
    return _unhex("".join(parts))


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def read_login(
    config: ClaudeConfig, keychain: bool | None = None, claude_json: ClaudeJson | None = None
) -> Login:
    """The login of one Claude Code config: the macOS keychain first (``keychain``
    defaults to "on macOS"), then ``.credentials.json``, as Claude Code reads them; the
    account from ``claude_json`` (read from disk when not given). Raises
    :class:`LoginError` saying why there is none and what to do."""
    use_keychain = sys.platform == "darwin" if keychain is None else keychain
    raw = read_keychain(config) if use_keychain else None
    where = f"keychain item {config.keychain_service()!r}"
    if raw is None:
        path = config.credentials
        where = str(path)
        try:
            raw = path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            raise LoginError(
                f"no Claude Code login in {config.label()}: run `claude` and log in"
                " (or install the browser extension for claude.ai)"
            ) from None
        except OSError as exc:
            raise LoginError(f"cannot read {path}: {exc.strerror}") from None
    account = (claude_json or read_claude_json(config)).account
    return _parse_login(config, raw, where, account)


def _parse_login(config: ClaudeConfig, raw: str, where: str, account: Account | None) -> Login:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise LoginError(f"{where} is not valid JSON: run `claude` and log in again") from None
    oauth = body.get("claudeAiOauth") if isinstance(body, dict) else None
    if not isinstance(oauth, dict):
        raise LoginError(f"{where} holds no claude.ai login (API-key users have no plan limits)")
    token = oauth.get("accessToken")
    ended = oauth.get("loginEnded")
    if ended or token == "":
        # Claude Code's own logged-out form: {accessToken: "", loginEnded: "time_limit"}.
        reason = f": {ended}" if isinstance(ended, str) and ended else ""
        raise LoginError(f"{LOGGED_OUT} (the login in {where} ended{reason})", STATUS_LOGIN)
    if not isinstance(token, str):
        raise LoginError(f"{where} holds no claude.ai login (API-key users have no plan limits)")
    expires = oauth.get("expiresAt")
    expires_at = None
    if isinstance(expires, (int, float)) and not isinstance(expires, bool):
        try:
            expires_at = datetime.fromtimestamp(expires / 1000, timezone.utc)
        except (OverflowError, OSError, ValueError):
            expires_at = None
    return Login(
        config,
        token,
        expires_at,
        account,
        hashlib.sha256(raw.encode()).hexdigest()[:16],
    )


@dataclass
class Outcome:
    """What one attempt produced: a snapshot (maybe without usage) and its booking."""

    snapshot: Snapshot | None
    book: SourceBook
    rate_limited: bool = False  # answered 429: a limit hit for the history


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


class _HttpProblem(Exception):
    def __init__(
        self, message: str, status: str, retry: float | None = None, code: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry = retry
        self.code = code


def _anthropic_error(body: bytes) -> bool:
    """An Anthropic API error body: ``{"type": "error", "error": {...}}``."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(parsed, dict)
        and parsed.get("type") == "error"
        and isinstance(parsed.get("error"), dict)
    )


def _get_json(session: requests.Session, url: str, token: str, what: str) -> Any:
    import requests  # here, not at the top: cm-guard reads accounts without loading it

    headers = {
        "Authorization": f"Bearer {token}",
        "anthropic-beta": BETA_HEADER,
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    try:
        with session.get(url, headers=headers, timeout=TIMEOUT, stream=True) as response:
            # iter_content, not raw.read: requests turns a broken body (a connection cut
            # mid-read, bad gzip) into a RequestException we report, not a traceback.
            body = b""
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > MAX_BODY:
                    break
            code = response.status_code
            retry_header = response.headers.get("retry-after")
    except requests.Timeout:
        raise _HttpProblem(f"{what}: timed out after {TIMEOUT[1]:.0f}s", STATUS_ERROR) from None
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise _HttpProblem(
            f"{what}: cannot reach {url.split('/api/')[0]} ({reason})", STATUS_ERROR
        ) from None
    if code == 401 or (code == 403 and _anthropic_error(body)):
        raise _HttpProblem(
            f"{what}: HTTP {code}, login rejected: {RELOGIN_HINT}"
            " (not asked again until the login changes)",
            STATUS_LOGIN,
        )
    if code in (403, 429):
        retry = retry_after_seconds(retry_header, utcnow().timestamp())
        raise _HttpProblem(f"{what}: HTTP {code} rate limited", STATUS_BACKOFF, retry, code)
    if code >= 400:
        raise _HttpProblem(f"{what}: HTTP {code} from the server", STATUS_ERROR)
    if len(body) > MAX_BODY:
        raise _HttpProblem(f"{what}: response larger than {MAX_BODY} bytes", STATUS_ERROR)
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise _HttpProblem(f"{what}: malformed response (not JSON)", STATUS_ERROR) from None


def wait_after(book: SourceBook, status: str, retry: float | None) -> float:
    """Seconds to wait after a failed attempt, counting it in ``book``: a rate limit
    waits ``retry`` (``Retry-After``) when above 0, else the next step of
    :data:`RATE_LIMIT_LADDER`; any other failure doubles from :data:`BACKOFF_BASE`.
    Never more than :data:`MAX_RETRY`. A rejected login waits 0: it is not asked
    about again until it changes (``refresh`` checks the fingerprint)."""
    if status == STATUS_LOGIN:
        return 0.0
    if status == STATUS_BACKOFF:
        limited = book.get("rate_limited", 0) + 1
        book["rate_limited"] = limited
        if retry is not None and retry > 0:
            return min(retry, MAX_RETRY)
        return RATE_LIMIT_LADDER[min(limited, len(RATE_LIMIT_LADDER)) - 1]
    failures = book.get("failures", 0) + 1
    book["failures"] = failures
    return float(min(BACKOFF_BASE * 2.0 ** (failures - 1), BACKOFF_MAX, MAX_RETRY))


def fetch(
    login: Login, previous: SourceBook | None = None, session: requests.Session | None = None
) -> Outcome:
    """One attempt at the usage (and, now and then, the profile). Never raises for an
    upstream problem: it is recorded in the snapshot's ``errors`` and the booking
    (``status``, ``error``, ``next_allowed`` epoch seconds, ``login`` fingerprint)."""
    now_dt = utcnow()
    now = now_dt.timestamp()
    book = _carried(previous or SourceBook())
    book.update(
        SourceBook(last_attempt=now, config_dir=login.config.label(), login=login.fingerprint)
    )
    account = login.account
    errors: list[str] = []
    if login.expired(now_dt):
        message = f"login expired at {login.expires_at:%Y-%m-%d %H:%M} UTC: {RELOGIN_HINT}"
        book.update(SourceBook(status=STATUS_LOGIN, error=message, next_allowed=now))
        return Outcome(_snapshot(account, None, [message], now_dt), book)
    if session is None:
        import requests

        session = requests.Session()
    base = env.anthropic_base()
    usage: JSON | None = None
    failed: _HttpProblem | None = None
    try:
        verdict = classify_usage(_get_json(session, base + USAGE_PATH, login.access_token, "usage"))
        if verdict.error is not None:  # an in-band error: the last good reading stays
            status = STATUS_BACKOFF if verdict.rate_limited else STATUS_ERROR
            raise _HttpProblem(verdict.error, status)
        usage = verdict.usage
    except _HttpProblem as problem:
        failed = problem
    # Booked when the answer is in, not when the request left: the next attempt then
    # reaches the server a full interval after this one did, however slow this one was.
    now_dt = utcnow()
    now = now_dt.timestamp()
    book["last_attempt"] = now
    if failed is not None:
        message = redact(str(failed))
        wait = wait_after(book, failed.status, failed.retry)
        if wait:
            message += f"; next try in {int(wait)}s"
        book.update(SourceBook(status=failed.status, error=message, next_allowed=now + wait))
        snapshot = _snapshot(account, None, [message], now_dt)
        return Outcome(snapshot, book, rate_limited=failed.code == 429)
    book.update(
        SourceBook(
            status=STATUS_OK, error=None, failures=0, rate_limited=0, last_ok=now, next_allowed=now
        )
    )
    if account is None or now - book.get("profile_at", 0.0) > PROFILE_EVERY:
        try:
            profile = _get_json(session, base + PROFILE_PATH, login.access_token, "profile")
            account = _account_from_profile(profile) or account
            book["profile_at"] = now
        except _HttpProblem as problem:
            errors.append(redact(str(problem)))
    if account is None:
        errors.append("account unknown: no oauthAccount in .claude.json and no profile")
        book["error"] = errors[-1]
        return Outcome(None, book)
    book["account_key"] = source_key(login.config, account)
    return Outcome(_snapshot(account, usage, errors, now_dt), book)


def _carried(previous: SourceBook) -> SourceBook:
    """What a new attempt's booking keeps of the last one: the failure and rate-limit
    counts (the back-off grows), when the profile was fetched and the last good fetch."""
    book = SourceBook()
    if "failures" in previous:
        book["failures"] = previous["failures"]
    if "rate_limited" in previous:
        book["rate_limited"] = previous["rate_limited"]
    if "profile_at" in previous:
        book["profile_at"] = previous["profile_at"]
    if "last_ok" in previous:
        book["last_ok"] = previous["last_ok"]
    return book


def _account_from_profile(profile: Any) -> Account | None:
    if not isinstance(profile, dict):
        return None
    org = _strings(profile.get("organization"))
    acct = _strings(profile.get("account"))
    if not org.get("uuid") and not acct.get("email"):
        return None
    return Account(org.get("uuid", ""), acct.get("email"), org.get("name"))


def _strings(body: Any) -> dict[str, str]:
    """The string-valued keys of a JSON object (anything else is not ours to trust)."""
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if isinstance(v, str)}


def _snapshot(
    account: Account | None, usage: JSON | None, errors: list[str], now: datetime
) -> Snapshot | None:
    if account is None:
        return None
    return Snapshot(
        org_uuid=account.org_uuid,
        browser=SOURCE_OAUTH,
        account_email=account.email,
        fetched_at=now,
        usage=usage,
        errors=errors,
        org_name=account.org_name,
    )
