"""A store shared by a fleet through Redis or Valkey (SPEC section 5, ``CLAUDEMETER_REDIS_URL``).

Every host keeps its own state file, and every reader (the status line included) still
reads only that file, lock-free, without importing a Redis client. ``refresh`` (which the
bridge's poller, guards and readers with old data call) syncs that file with Redis first:

- **rows**: the hash ``claudemeter:v1:rows`` holds, per field ``"<account> <source>"``,
  the newest reading any host has of it (a snapshot's JSON); the hash
  ``claudemeter:v1:rows:t`` its ``fetched_at``. One script writes both, so a host never
  replaces a newer reading with an older one. Pulled readings go through ``State.put``
  like any other, so each host's history and fold see them. Both keys expire
  :data:`ROWS_TTL` after the last write, and fields older than that are dropped on write:
  nothing grows forever.
- **when**: ``refresh`` syncs at most every :data:`SYNC_EVERY` seconds per host, and at
  once after a usage request of its own.
- **the booking**: before a usage request, ``SET claudemeter:v1:book:<account> <host> NX
  PX <interval>``: one host of the fleet asks per interval; the others skip and pull its
  reading at their next sync.

When Redis cannot be reached (:data:`TIMEOUT` per command), the host goes on with its own
file and its own requests, books the problem as the source ``shared`` (the status segment
then says ``shared?``), and pushes every row it wrote meanwhile at the next sync that works
(newest wins, so nothing newer is lost). Nothing secret goes to Redis: rows are snapshots,
which never hold one; the URL's password (``redis://:PASSWORD@host``, ``rediss://`` for
TLS) is used to connect and never printed.

The ``redis`` client is the optional extra ``claudemeter[redis]``, imported only here and
only when the variable is set.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import env
from .model import SOURCE_SHARED, Snapshot, ValidationError, redact
from .store import Store, StoreError

PREFIX = "claudemeter:v1:"
ROWS = PREFIX + "rows"
ROW_TIMES = PREFIX + "rows:t"
BOOK = PREFIX + "book:"
#: Connect and command timeout: a status line's refresh must not hang on a dead server.
TIMEOUT = 0.5
#: A reading nobody has refreshed for this long is dropped from Redis.
ROWS_TTL = 8 * 24 * 3600
#: A host syncs at most this often (a fetch of its own is pushed at once): every reader's
#: refresh may ask, and each sync writes the local file.
SYNC_EVERY = 5.0
#: ``State.sources`` key of the sync's own book: ``{"status": "ok"|"error", …}``.
SOURCE = SOURCE_SHARED
STATUS_OK = "ok"
STATUS_ERROR = "error"

# KEYS: rows, row times. ARGV: ttl ms, oldest kept (epoch s), then field, time, json…
_PUSH = """
local kept = 0
for i = 3, #ARGV, 3 do
  local old = redis.call('HGET', KEYS[2], ARGV[i])
  if not old or tonumber(old) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    kept = kept + 1
  end
end
local times = redis.call('HGETALL', KEYS[2])
for i = 1, #times, 2 do
  if tonumber(times[i + 1]) < tonumber(ARGV[2]) then
    redis.call('HDEL', KEYS[1], times[i])
    redis.call('HDEL', KEYS[2], times[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return kept
"""


class SharedUnavailable(Exception):
    """Redis did not answer or refused; the message names the server, never the password."""


def where(url: str) -> str:
    """``redis://:pw@host:6379/0`` → ``host:6379``: what messages may show."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or '?'}:{parts.port or 6379}"
    except ValueError:
        return "the Redis in CLAUDEMETER_REDIS_URL"


@dataclass
class Shared:
    """One connection (pool) to the fleet's Redis; every method may raise SharedUnavailable."""

    url: str
    _client: Any = field(default=None, repr=False)

    def _call(self, what: str, work: Any) -> Any:
        import redis  # the optional extra; only hosts that name a Redis load it

        try:
            if self._client is None:
                self._client = redis.Redis.from_url(
                    self.url,
                    socket_timeout=TIMEOUT,
                    socket_connect_timeout=TIMEOUT,
                    decode_responses=True,
                )
            return work(self._client)
        except (redis.RedisError, OSError, ValueError) as exc:
            reason = redact(str(exc).replace(self.url, where(self.url)))[:160]
            raise SharedUnavailable(
                f"shared store {where(self.url)}: {what} failed ({type(exc).__name__}:"
                f" {reason or 'no detail'})"
            ) from None

    def push(self, rows: list[Snapshot]) -> int:
        """Offer our readings; Redis keeps each one only if it is newer. Returns how many
        it kept."""
        argv: list[Any] = [ROWS_TTL * 1000, int(time.time()) - ROWS_TTL]
        for row in rows:
            argv += [field_of(row), row.fetched_at.timestamp(), json.dumps(row.to_json())]
        kept = self._call("push", lambda r: r.eval(_PUSH, 2, ROWS, ROW_TIMES, *argv))
        return int(kept)

    def pull(self) -> list[Snapshot]:
        """Every reading the fleet has; a field that does not parse is skipped."""
        found: dict[str, str] = self._call("pull", lambda r: r.hgetall(ROWS))
        rows = []
        for text in found.values():
            try:
                rows.append(Snapshot.from_json(json.loads(text)))
            except (ValueError, ValidationError, RecursionError):
                continue  # another version's or a broken writer's field: not ours to fail on
        return rows

    def book(self, account_key: str, seconds: float) -> bool:
        """Take the fleet's one usage request for this account for ``seconds``; False
        when another host holds it."""
        taken = self._call(
            "booking",
            lambda r: r.set(
                BOOK + account_key, socket.gethostname(), nx=True, px=max(1, int(seconds * 1000))
            ),
        )
        return bool(taken)

    def ping(self) -> None:
        self._call("ping", lambda r: r.ping())


def field_of(row: Snapshot) -> str:
    return f"{row.account_key} {row.browser}"


def configured() -> Shared | None:
    """The fleet's Redis when ``CLAUDEMETER_REDIS_URL`` names one."""
    url = env.redis_url()
    return Shared(url) if url else None


def sync(store: Store, shared: Shared, force: bool = False) -> str | None:
    """Push this host's readings, pull the fleet's into the local file, book how it went;
    at most every :data:`SYNC_EVERY` seconds unless ``force``d. Returns None, or the
    one-line problem (the local file goes on either way)."""
    problem = None
    remote: list[Snapshot] = []
    state = store.read()
    book = state.sources.get(SOURCE, {})
    last = book.get("last_attempt")
    if not force and isinstance(last, (int, float)) and 0 <= time.time() - last < SYNC_EVERY:
        error = book.get("error")
        return str(error) if book.get("status") == STATUS_ERROR and error else None
    try:
        shared.push(state.rows)
        remote = shared.pull()
    except SharedUnavailable as exc:
        problem = str(exc)
    try:
        with store.update() as state:
            for row in remote:
                state.put(row)
            book = dict(state.sources.get(SOURCE, {}))
            book.update(status=STATUS_ERROR if problem else STATUS_OK, error=problem)
            book["last_attempt"] = time.time()
            if not problem:
                book["last_ok"] = time.time()
            state.sources[SOURCE] = book
    except StoreError as exc:
        return problem or str(exc)
    return problem
