"""Claude Code's own login as a source: ``GET /api/oauth/usage`` with its OAuth token.

This is the source that works headless and over SSH. Two rules shape it:
- never refresh the token ourselves (that rotates Claude Code's refresh token and logs
  the user out of Claude Code); an expired token is reported, not fixed;
- the endpoint answers 429 when polled hard, so every attempt is booked in the store
  (per account, not per token) and a back-off survives restarts.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import env
from ..model import JSON, SOURCE_OAUTH, Snapshot, classify_usage, redact, utcnow
from .claude_account import Account as Account
from .claude_account import read_account as read_account

if TYPE_CHECKING:
    import requests

USAGE_PATH = "/api/oauth/usage"
PROFILE_PATH = "/api/oauth/profile"
BETA_HEADER = "oauth-2025-04-20"
TIMEOUT = (3.05, 10.0)  # connect, read
MAX_BODY = 1 << 20
#: Without Retry-After, back off this long, doubling per consecutive failure.
BACKOFF_BASE = 120.0
BACKOFF_MAX = 1800.0
#: The longest Retry-After we honour (refresh reads a longer booking as a clock jump).
MAX_RETRY = 3600.0
#: Even ``Retry-After: 0`` gets this much: one attempt per ~30 s across processes.
MIN_RETRY = 30.0
#: The profile only confirms what .claude.json says; once a day is plenty.
PROFILE_EVERY = 24 * 3600.0

STATUS_OK = "ok"
STATUS_LOGIN = "login"  # expired or rejected login: the user must run `claude`
STATUS_BACKOFF = "backoff"
STATUS_ERROR = "error"

RELOGIN_HINT = "run `claude` once to refresh the login"


class LoginError(Exception):
    """No usable login in a config dir; the message says what to do."""

    def __init__(self, message: str, status: str = STATUS_ERROR) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Login:
    """One Claude Code login. The token never leaves this object (not even in repr)."""

    config_dir: Path
    access_token: str = field(repr=False)
    expires_at: datetime | None
    subscription_type: str | None
    account: Account | None

    @property
    def key(self) -> str:
        """Bookkeeping key: the account when known (tokens rotate), else the dir."""
        return source_key(self.config_dir, self.account)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def source_key(config_dir: Path, account: Account | None) -> str:
    return f"oauth:{account.org_uuid}" if account and account.org_uuid else f"oauth:{config_dir}"


def keychain_service(config_dir: Path) -> str:
    """macOS keychain item name: a non-default dir gets a suffix from its path's hash."""
    if env.is_default_claude_dir(config_dir):
        return "Claude Code-credentials"
    digest = hashlib.sha256(str(config_dir).encode()).hexdigest()[:8]
    return f"Claude Code-credentials-{digest}"


def _read_keychain(config_dir: Path) -> str | None:
    try:
        done = subprocess.run(
            ["security", "find-generic-password", "-s", keychain_service(config_dir), "-w"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def read_login(config_dir: Path) -> Login:
    """The login in one Claude Code config dir; raises :class:`LoginError` saying why not."""
    path = config_dir / ".credentials.json"
    try:
        raw: str | None = path.read_text()
    except FileNotFoundError:
        raw = _read_keychain(config_dir) if sys.platform == "darwin" else None
        if raw is None:
            raise LoginError(
                f"no Claude Code login in {config_dir}: run `claude` and log in"
                " (or install the browser extension for claude.ai)"
            ) from None
    except OSError as exc:
        raise LoginError(f"cannot read {path}: {exc.strerror}") from None
    try:
        body = json.loads(raw or "")
    except ValueError:
        raise LoginError(f"{path} is not valid JSON: run `claude` and log in again") from None
    oauth = body.get("claudeAiOauth") if isinstance(body, dict) else None
    token = oauth.get("accessToken") if isinstance(oauth, dict) else None
    if not isinstance(oauth, dict) or not isinstance(token, str) or not token:
        raise LoginError(
            f"{path} holds no claude.ai login (API-key users have no plan limits to show)"
        )
    expires = oauth.get("expiresAt")
    expires_at = (
        datetime.fromtimestamp(expires / 1000, timezone.utc)
        if isinstance(expires, (int, float)) and not isinstance(expires, bool)
        else None
    )
    sub = oauth.get("subscriptionType")
    return Login(
        config_dir,
        token,
        expires_at,
        sub if isinstance(sub, str) else None,
        read_account(config_dir),
    )


def login_fingerprint(login: Login) -> float | None:
    """Changes when Claude Code renews the login; not a secret (an expiry time)."""
    return login.expires_at.timestamp() if login.expires_at else None


@dataclass
class Outcome:
    """What one attempt produced: a snapshot (maybe without usage) and its booking."""

    snapshot: Snapshot | None
    book: JSON


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
    def __init__(self, message: str, status: str, retry: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry = retry


def _get_json(session: requests.Session, url: str, token: str, what: str) -> Any:
    import requests  # here, not at the top: cm-guard reads accounts without loading it

    headers = {
        "Authorization": f"Bearer {token}",
        "anthropic-beta": BETA_HEADER,
        "Accept": "application/json",
        "User-Agent": "claudemeter",
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
    if code == 401:
        raise _HttpProblem(f"{what}: HTTP 401, login rejected: {RELOGIN_HINT}", STATUS_LOGIN)
    if code == 403:
        raise _HttpProblem(
            f"{what}: HTTP 403, this login may not read usage (no user:profile scope):"
            " log in again with `claude /login`",
            STATUS_LOGIN,
        )
    if code == 429:
        retry = retry_after_seconds(retry_header, time.time())
        raise _HttpProblem(f"{what}: HTTP 429 rate limited", STATUS_BACKOFF, retry)
    if code >= 400:
        raise _HttpProblem(f"{what}: HTTP {code} from the server", STATUS_ERROR)
    if len(body) > MAX_BODY:
        raise _HttpProblem(f"{what}: response larger than {MAX_BODY} bytes", STATUS_ERROR)
    try:
        return json.loads(body)
    except ValueError:
        raise _HttpProblem(f"{what}: malformed response (not JSON)", STATUS_ERROR) from None


def _backoff(book: JSON, retry: float | None) -> float:
    failures: int = int(book.get("failures", 0)) + 1
    book["failures"] = failures
    if retry is not None:  # honoured, within reason: a day-long wait is a server hiccup
        return min(max(retry, MIN_RETRY), MAX_RETRY)
    return float(min(BACKOFF_BASE * 2.0 ** (failures - 1), BACKOFF_MAX))


def fetch(
    login: Login, previous: JSON | None = None, session: requests.Session | None = None
) -> Outcome:
    """One attempt at the usage (and, now and then, the profile). Never raises for an
    upstream problem: it is recorded in the snapshot's ``errors`` and the booking."""
    now_dt = utcnow()
    now = now_dt.timestamp()
    book: JSON = {
        k: v for k, v in (previous or {}).items() if k in ("failures", "profile_at", "last_ok")
    }
    book.update(
        last_attempt=now, config_dir=str(login.config_dir), login_expires=login_fingerprint(login)
    )
    account = login.account
    errors: list[str] = []
    if login.expired(now_dt):
        message = f"login expired at {login.expires_at:%Y-%m-%d %H:%M} UTC: {RELOGIN_HINT}"
        book.update(status=STATUS_LOGIN, error=message, next_allowed=now)
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
        wait = _backoff(book, failed.retry) if failed.status != STATUS_LOGIN else 0.0
        if wait:
            message += f"; next try in {int(wait)}s"
        book.update(status=failed.status, error=message, next_allowed=now + wait)
        return Outcome(_snapshot(account, None, [message], now_dt), book)
    book.update(status=STATUS_OK, error=None, failures=0, last_ok=now, next_allowed=now)
    if account is None or now - float(book.get("profile_at", 0)) > PROFILE_EVERY:
        try:
            profile = _get_json(session, base + PROFILE_PATH, login.access_token, "profile")
            account = _account_from_profile(profile) or account
            book["profile_at"] = now
        except _HttpProblem as problem:
            errors.append(redact(str(problem)))
    if account is None:
        errors.append("account unknown: no oauthAccount in .claude.json and no profile")
        book.update(error=errors[-1])
        return Outcome(None, book)
    book["account_key"] = source_key(login.config_dir, account)
    return Outcome(_snapshot(account, usage, errors, now_dt), book)


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
    )
