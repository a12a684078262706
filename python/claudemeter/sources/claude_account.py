"""Which account a Claude Code login belongs to, read from its ``.claude.json``.

Kept apart from the OAuth source because the statusline command needs the account on
every Claude Code refresh and must not pay for importing an HTTP client to learn it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .. import env


@dataclass(frozen=True)
class Account:
    org_uuid: str
    email: str | None
    org_name: str | None = None

    @property
    def key(self) -> str:
        """The store's account key for this account (``Snapshot.account_key``)."""
        return self.org_uuid or f"email:{(self.email or '').lower()}"


def read_account(config_dir: Path) -> Account | None:
    """The account Claude Code is logged in as, from its ``.claude.json``; no request."""
    try:
        body = json.loads(env.claude_json_path(config_dir).read_text())
    except (OSError, ValueError):
        return None
    info = body.get("oauthAccount") if isinstance(body, dict) else None
    if not isinstance(info, dict):
        return None
    org = info.get("organizationUuid")
    email = info.get("emailAddress")
    if not isinstance(org, str) or not org:
        org = ""
    if not org and not isinstance(email, str):
        return None
    return Account(
        org,
        email if isinstance(email, str) else None,
        info.get("organizationName") if isinstance(info.get("organizationName"), str) else None,
    )
