"""What a Claude Code login's ``.claude.json`` says: the account, and Claude Code's own
cache of its last usage answer. No request is made.

Kept apart from the OAuth source because the statusline command needs the account on
every Claude Code refresh and must not pay for importing an HTTP client to learn it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from ..model import JSON, json_number
from .claude_config import ClaudeConfig

TYPE_CHECKING = False  # typing is for mypy: importing it costs the hot paths milliseconds
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Account:
    """``oauthAccount`` of ``.claude.json``: the org is the quota's identity."""

    org_uuid: str
    email: str | None
    org_name: str | None = None
    account_uuid: str | None = None

    @property
    def key(self) -> str:
        """The store's account key for this account (``Snapshot.account_key``)."""
        return self.org_uuid or f"email:{(self.email or '').lower()}"


@dataclass(frozen=True)
class CachedUsage:
    """``cachedUsageUtilization``: what Claude Code's own last ``/api/oauth/usage``
    answer was (``body``, as received), when (``fetched_at``, from ``fetchedAtMs``) and
    for which account (``account_uuid``, ``oauthAccount.accountUuid``'s form)."""

    fetched_at: datetime
    account_uuid: str
    body: JSON


@dataclass(frozen=True)
class ClaudeJson:
    """The parts of ``.claude.json`` claudemeter reads; either may be missing."""

    account: Account | None
    cached_usage: CachedUsage | None


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value else None


def _account(body: Any) -> Account | None:
    info = body.get("oauthAccount") if isinstance(body, dict) else None
    if not isinstance(info, dict):
        return None
    org = _text(info, "organizationUuid") or ""
    email = _text(info, "emailAddress")
    if not org and email is None:
        return None
    return Account(org, email, _text(info, "organizationName"), _text(info, "accountUuid"))


def _cached_usage(body: Any) -> CachedUsage | None:
    cache = body.get("cachedUsageUtilization") if isinstance(body, dict) else None
    if not isinstance(cache, dict):
        return None
    millis = json_number(cache.get("fetchedAtMs"))
    owner = _text(cache, "accountUuid")
    usage = cache.get("utilization")
    if millis is None or owner is None or not isinstance(usage, dict):
        return None
    try:
        fetched_at = datetime.fromtimestamp(millis / 1000, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return CachedUsage(fetched_at, owner, usage)


def read_claude_json(config: ClaudeConfig) -> ClaudeJson:
    """Parse the login's ``.claude.json`` (see :meth:`ClaudeConfig.claude_json`); a
    missing or unreadable file reads as empty, never an exception."""
    try:
        body = json.loads(config.claude_json().read_bytes())
    except (OSError, ValueError, RecursionError):
        return ClaudeJson(None, None)
    return ClaudeJson(_account(body), _cached_usage(body))


def read_account(config: ClaudeConfig) -> Account | None:
    """The account Claude Code is logged in as, from its ``.claude.json``; no request."""
    return read_claude_json(config).account
