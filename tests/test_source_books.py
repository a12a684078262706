"""The sources' bookkeeping (``State.sources``, typed as ``SourceBook``): a state file
written before it was typed reads back the same and is written back the same; a book
of the wrong shape loses only its wrong keys; and which row a book concerns is one rule
(``State.books_of``) that the popup's "sources without data" follows too."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from claudemeter.model import Snapshot, utcnow
from claudemeter.sources import SourceBook, book_from_json
from claudemeter.store import State, Store

#: A state file's ``sources`` as claudemeter wrote it before the books had a type: an
#: OAuth login that works, a peer that failed and the fleet's sync.
OLD_SOURCES: dict[str, Any] = {
    "oauth:org-ada": {
        "failures": 0,
        "rate_limited": 0,
        "profile_at": 1764000000.5,
        "last_ok": 1764000300.25,
        "last_attempt": 1764000300.25,
        "config_dir": "/home/ada/.claude",
        "login": "0123456789abcdef",
        "status": "ok",
        "error": None,
        "next_allowed": 1764000300.25,
        "account_key": "oauth:org-ada",
    },
    "peer 127.0.0.1:63763": {
        "status": "error",
        "last_attempt": 1764000200,
        "error": "peer 127.0.0.1:63763: connection refused",
    },
    "shared": {"status": "ok", "error": None, "last_attempt": 1764000100, "last_ok": 1764000100},
}


def reading(org: str, email: str) -> Snapshot:
    return Snapshot(
        org_uuid=org,
        browser="statusline",
        account_email=email,
        fetched_at=utcnow() - timedelta(minutes=1),
        usage={"five_hour": {"utilization": 40.0, "resets_at": None}},
    )


def test_an_old_state_file_reads_back_and_writes_back_the_same(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    path = state_dir / "state.json"
    path.write_text(json.dumps({"version": 1, "rows": [], "sources": OLD_SOURCES}))
    path.chmod(0o600)
    store = Store(state_dir)
    state = store.read()
    assert state.sources == OLD_SOURCES
    assert state.book("oauth:org-ada").get("last_ok") == 1764000300.25
    assert state.book("nobody") == {}
    with store.update():
        pass  # a write of something else keeps every book as it was
    assert json.loads(path.read_text())["sources"] == OLD_SOURCES


def test_a_book_keeps_only_what_has_the_right_type() -> None:
    damaged = {
        "status": 5,
        "error": ["not", "text"],
        "last_attempt": "1764000300",
        "next_allowed": float("nan"),
        "failures": True,
        "rate_limited": 2.0,
        "login": None,
        "config_dir": "/home/ada/.claude",
        "someone_elses": "key",
    }
    assert book_from_json(damaged) == SourceBook(rate_limited=2, config_dir="/home/ada/.claude")
    assert book_from_json(["a list"]) is None
    state = State.from_json({"rows": [], "sources": {"a": "text", "b": 3, "c": {}}})
    assert state.sources == {"c": {}}


def test_which_row_a_book_concerns_is_one_rule() -> None:
    ada, bob = reading("org-ada", "ada@example.com"), reading("org-bob", "bob@example.com")
    rejected = SourceBook(status="login", error="login rejected (401): run `claude`")
    state = State(
        rows=[ada, bob],
        sources={
            # the account of this login is not known yet: it may be either one's
            "oauth:/home/ada/.claude": rejected,
            # bob's own login: fails, and is bob's alone
            "oauth:org-bob": SourceBook(
                status="backoff", error="usage: HTTP 429 rate limited", account_key="oauth:org-bob"
            ),
            # a login whose account has no row here
            "oauth:org-cy": SourceBook(
                status="login", error="login expired", account_key="oauth:org-cy"
            ),
            "peer 127.0.0.1:63763": SourceBook(status="error", error="peer: connection refused"),
        },
    )
    assert set(state.books_of(ada)) == {"oauth:/home/ada/.claude"}
    assert set(state.books_of(bob)) == {"oauth:/home/ada/.claude", "oauth:org-bob"}
    assert state.login_problem(ada) == rejected["error"]
    assert state.login_problem(bob) == rejected["error"]
    unclaimed = [book.get("error") for book in state.unclaimed([ada, bob])]
    assert unclaimed == ["login expired", "peer: connection refused"]
    assert state.problems(failing=True) == state.problems()  # every book here is failing
    assert state.any_login_rejected()
    assert [b.get("status") for b in state.oauth_books()] == ["login", "backoff", "login"]
