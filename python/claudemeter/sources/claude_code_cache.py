"""Claude Code's own usage cache as a source: zero requests.

After each of its own ``/api/oauth/usage`` fetches (at most once a minute while it
runs) Claude Code writes ``cachedUsageUtilization: {fetchedAtMs, accountUuid,
utilization}`` into ``.claude.json``, ``utilization`` being the whole answer. That is as
good as our own request and costs nothing, so it is read wherever ``.claude.json`` is
read (the statusline command, every refresh) and stored as the logged-in account's
``"Claude Code cache"`` row, dated by ``fetchedAtMs``. A cache written for another
account (``accountUuid`` is not the ``oauthAccount``'s) is ignored.
"""

from __future__ import annotations

from ..model import SOURCE_CLAUDE_CODE_CACHE, Snapshot, classify_usage
from .claude_account import ClaudeJson


def reading(claude_json: ClaudeJson) -> Snapshot | None:
    """The cache as a reading of the account ``.claude.json`` is logged in as; None
    when there is no cache or it is another account's. A cached body that is not a
    reading (an in-band error) gives a row with no usage and the error, so the last
    good reading stays; ``limits[]``-only bodies are read by kind, as every source's
    (``model.classify_usage``)."""
    cache, account = claude_json.cached_usage, claude_json.account
    if cache is None or account is None or account.account_uuid != cache.account_uuid:
        return None
    verdict = classify_usage(cache.body)
    return Snapshot(
        org_uuid=account.org_uuid,
        browser=SOURCE_CLAUDE_CODE_CACHE,
        account_email=account.email,
        org_name=account.org_name,
        fetched_at=cache.fetched_at,
        usage=verdict.usage,
        errors=[f"Claude Code's cache: {verdict.error}"] if verdict.error else [],
    )
