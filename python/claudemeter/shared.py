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
- **guards**: each sync beats for this host's live guards (``claudemeter:v1:guards``,
  stamped by Redis's clock) and leaves every other host's in ``guards/fleet.json`` for
  the readers (:mod:`claudemeter.registry`), good for :data:`GUARD_TTL` after their
  host's last beat: another machine's pids cannot be checked here.
- **when**: ``serve``'s :class:`Follower` pushes a write on this host within
  :data:`WATCH` seconds and pulls at once when another host publishes on
  :data:`NEWS`; ``refresh`` syncs at most every :data:`SYNC_EVERY` seconds per host,
  and at once after a usage request of its own.
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

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import env, registry
from .model import SOURCE_SHARED, Snapshot, ValidationError, redact, utcnow
from .private import StoreError
from .sources import STATUS_ERROR, STATUS_OK, SourceBook
from .store import CLOCK_SKEW, Store

#: Every key (and the channel) starts with this. Fixed, with the layout's version in it:
#: several fleets on one server are told apart by the database in the URL (``/0``, ``/1``
#: …), and a later layout takes ``claudemeter:v2:`` beside this one (docs/remote.md).
PREFIX = "claudemeter:v1:"
ROWS = PREFIX + "rows"
ROW_TIMES = PREFIX + "rows:t"
BOOK = PREFIX + "book:"
#: Hash: host id -> that host's guards (JSON); ``guards:t`` the server's time of its beat.
GUARDS = PREFIX + "guards"
GUARD_TIMES = PREFIX + "guards:t"
#: Pub/sub channel, then ``:<database>`` (channels are server-wide, keys are per
#: database): ``{"from": host id, "rows": [field, …]}`` when a push kept a newer reading,
#: ``{"from": host id, "guards": true}`` when a host's guards changed.
NEWS = PREFIX + "news"
#: Connect and command timeout: a status line's refresh must not hang on a dead server.
TIMEOUT = 0.5
#: A reading nobody has refreshed for this long is dropped from Redis.
ROWS_TTL = 8 * 24 * 3600
#: A host syncs at most this often (a fetch of its own is pushed at once): every reader's
#: refresh may ask, and each sync writes the local file.
SYNC_EVERY = 5.0
#: ``serve``'s follower syncs at least this often: the heartbeat of this host's guards.
BEAT = 5.0
#: Another host's guards count this long after its last heartbeat (by Redis's clock):
#: a host that died, or lost Redis, has its guards gone from every other host by then.
GUARD_TTL = 30.0
#: How often the follower looks at the local files for a write to push.
WATCH = 0.2
#: At most this many of a host's guards go to Redis.
MAX_GUARDS = 200
#: ``State.sources`` key of the sync's own book (status ok or error, its error).
SOURCE = SOURCE_SHARED

# KEYS: rows, row times. ARGV: ttl ms, oldest kept (epoch s), channel, host id, then
# field, time, json… Publishes the fields it kept.
_PUSH = """
local kept = {}
for i = 5, #ARGV, 3 do
  local old = redis.call('HGET', KEYS[2], ARGV[i])
  if not old or tonumber(old) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    table.insert(kept, ARGV[i])
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
if #kept > 0 then
  redis.call('PUBLISH', ARGV[3], cjson.encode({from = ARGV[4], rows = kept}))
end
return #kept
"""

# KEYS: guards, guard times. ARGV: ttl ms, channel, host id, its guards' JSON ('' when it
# has none). Stamps the beat with the server's clock, drops lapsed hosts, publishes a
# change, and returns every other live host as id, JSON, milliseconds since its beat.
_GUARDS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local old = redis.call('HGET', KEYS[1], ARGV[3])
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[1], ARGV[3])
  redis.call('HDEL', KEYS[2], ARGV[3])
else
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
  redis.call('HSET', KEYS[2], ARGV[3], now)
end
if (old or '') ~= ARGV[4] then
  redis.call('PUBLISH', ARGV[2], cjson.encode({from = ARGV[3], guards = true}))
end
local others = {}
local times = redis.call('HGETALL', KEYS[2])
for i = 1, #times, 2 do
  local age = now - tonumber(times[i + 1])
  if age > tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], times[i])
    redis.call('HDEL', KEYS[2], times[i])
  elseif times[i] ~= ARGV[3] then
    table.insert(others, times[i])
    table.insert(others, redis.call('HGET', KEYS[1], times[i]) or '')
    table.insert(others, age)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return others
"""


class SharedUnavailable(Exception):
    """Redis did not answer or refused; the message names the server, never the password."""


class ClientMissing(SharedUnavailable):
    """``CLAUDEMETER_REDIS_URL`` is set but the ``redis`` package is not installed: the
    host goes on alone, as with a Redis that does not answer."""


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
        try:
            import redis  # the optional extra; only hosts that name a Redis load it
        except ImportError:
            raise ClientMissing(
                f"shared store {where(self.url)}: the redis client is missing:"
                " pip install 'claudemeter[redis]'"
            ) from None
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

    def push(self, rows: list[Snapshot], host: str) -> int:
        """Offer our readings; Redis keeps each one only if it is newer, and tells the
        fleet which it kept (:data:`NEWS`). Returns how many it kept."""
        argv: list[Any] = [host]
        for row in rows:
            argv += [field_of(row), row.fetched_at.timestamp(), json.dumps(row.to_json())]
        ttl, oldest = ROWS_TTL * 1000, int(time.time()) - ROWS_TTL
        kept = self._call(
            "push", lambda r: r.eval(_PUSH, 2, ROWS, ROW_TIMES, ttl, oldest, channel(r), *argv)
        )
        return int(kept)

    def guards(self, host: str, entries: list[registry.GuardEntry]) -> list[registry.FleetHost]:
        """Beat for this host's live guards (``host`` is its id; a command line goes
        with anything shaped like a token cut out) and get every other host's whose
        beat is younger than :data:`GUARD_TTL`, each good until then on this host's
        clock (ages come from Redis's clock, so hosts' clocks may differ)."""
        guards = [{**asdict(entry), "command": redact(entry.command)} for entry in entries]
        body = {"host": host_label(), "guards": guards}
        text = json.dumps(body) if entries else ""
        ttl = int(GUARD_TTL * 1000)
        found = self._call(
            "guards",
            lambda r: r.eval(_GUARDS, 2, GUARDS, GUARD_TIMES, ttl, channel(r), host, text),
        )
        now = time.time()
        hosts = []
        for index in range(0, len(found) - 2, 3):
            try:
                sent = json.loads(found[index + 1])
                sent["until"] = now + GUARD_TTL - int(found[index + 2]) / 1000
            except (ValueError, TypeError, RecursionError):
                continue  # another version's or a broken writer's field: not ours to fail on
            fleet_host = registry.FleetHost.from_json(sent)
            if fleet_host is not None:
                hosts.append(fleet_host)
        return hosts

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

    def subscribe(self) -> Any:
        """A subscription to :data:`NEWS` (a ``redis.client.PubSub``)."""

        def subscribed(r: Any) -> Any:
            subscription = r.pubsub(ignore_subscribe_messages=True)
            subscription.subscribe(channel(r))
            return subscription

        return self._call("subscribe", subscribed)

    def news(self, subscription: Any, host: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for news; True when another host than ``host``
        pushed a reading or changed its guards (every message waiting is read)."""
        other = False
        wait = timeout
        while True:
            message = self._call("news", lambda _r, w=wait: subscription.get_message(timeout=w))
            if message is None:
                return other
            try:
                other = other or json.loads(message["data"]).get("from") != host
            except (ValueError, TypeError, AttributeError, KeyError):
                other = True  # unreadable news is still a reason to look
            wait = 0.0


def channel(client: Any) -> str:
    """:data:`NEWS` for the database the URL names (``/0`` when it names none)."""
    return f"{NEWS}:{client.connection_pool.connection_kwargs.get('db', 0)}"


def field_of(row: Snapshot) -> str:
    return f"{row.account_key} {row.browser}"


def host_label() -> str:
    """This host as other hosts show its guards: its name."""
    return socket.gethostname()[: registry.MAX_HOST] or "?"


def host_id(directory: Path) -> str:
    """This host in the fleet: its name and its state dir's id (two state dirs on one
    machine are two hosts; the path itself is not shown)."""
    from .bridge import store_id  # here: every refresh imports this module, Redis or not

    return f"{host_label()}/{store_id(directory)}"


def configured() -> Shared | None:
    """The fleet's Redis when ``CLAUDEMETER_REDIS_URL`` names one."""
    url = env.redis_url()
    return Shared(url) if url else None


def sync(store: Store, shared: Shared, force: bool = False) -> str | None:
    """Push this host's readings and guards, pull the fleet's into the local files, book
    how it went; at most every :data:`SYNC_EVERY` seconds unless ``force``d. The state
    file is written only when a newer reading came, the outcome changed, or the book is
    older than :data:`SYNC_EVERY`. Returns None, or the one-line problem (the local
    files go on either way: other hosts' guards lapse there on their own)."""
    problem = None
    remote: list[Snapshot] = []
    state = store.read()
    book = state.book(SOURCE)
    last = book.get("last_attempt")
    recent = last is not None and 0 <= time.time() - last < SYNC_EVERY
    if not force and recent:
        error = book.get("error")
        return error if book.get("status") == STATUS_ERROR and error else None
    me = host_id(store.directory)
    try:
        shared.push(state.rows, me)
        others = shared.guards(me, registry.local(store.directory)[:MAX_GUARDS])
        remote = shared.pull()
    except SharedUnavailable as exc:
        problem = str(exc)
    else:
        _keep_hosts(others, store)
    held = {field_of(row): row for row in state.rows}
    newer = [row for row in remote if _newer(row, held.get(field_of(row)))]
    status = STATUS_ERROR if problem else STATUS_OK
    if not newer and recent and book.get("status") == status and book.get("error") == problem:
        return problem
    try:
        with store.update() as state:
            for row in newer:
                state.put(row)
            book = state.book(SOURCE).copy()
            book.update(SourceBook(status=status, error=problem))
            book["last_attempt"] = time.time()
            if not problem:
                book["last_ok"] = time.time()
            state.sources[SOURCE] = book
    except StoreError as exc:
        return problem or str(exc)
    return problem


def _newer(pulled: Snapshot, held: Snapshot | None) -> bool:
    """Whether a reading pulled from the fleet is news for this host's file. One dated
    past this host's clock (a host whose clock runs fast) is stored back-dated to just
    before now (``State.put``), so by its date it would be news at every sync, stored
    again and re-dated each time, never going stale: past the clock, only a reading
    that says something else is news."""
    if held is None:
        return True
    if pulled.fetched_at > utcnow() + CLOCK_SKEW:
        return (pulled.usage, pulled.errors) != (held.usage, held.errors)
    return pulled.fetched_at > held.fetched_at


def _keep_hosts(hosts: list[registry.FleetHost], store: Store) -> None:
    """Rewrite ``guards/fleet.json`` when the other hosts' guards changed, or a newer
    beat extends a host's entries there that would lapse within half their TTL (not on
    every sync: the tmux loop redraws, and the follower syncs, on every write in that
    directory; a host that stopped beating extends nothing, so its entries just lapse)."""
    kept = registry.fleet_hosts(store.directory)

    def entries(hosts: list[registry.FleetHost]) -> list[Any]:
        return [(host.host, [asdict(entry) for entry in host.guards]) for host in hosts]

    soon = time.time() + GUARD_TTL / 2
    until = {host.host: host.until for host in kept}
    extended = any(
        until.get(host.host, 0.0) < soon and host.until > until.get(host.host, 0.0) + 1.0
        for host in hosts
    )
    if entries(kept) == entries(hosts) and not extended:
        return
    with contextlib.suppress(OSError):  # a readonly dir: readers see this host's guards
        registry.keep_fleet(hosts, store.directory)


class Follower:
    """``serve``'s link to the fleet: a reading or a guard written on this host is pushed
    within :data:`WATCH` seconds (it watches the state file and the guards directory, so
    every writer counts: the bridge's posts, ``ingest``, the statusLine, guards), and news
    from another host is pulled at once (pub/sub on :data:`NEWS`), so every host's file,
    and so its guards' next poll, has a reading a fraction of a second after any host
    stored it. At least every :data:`BEAT` seconds it syncs anyway (the guards'
    heartbeat; a Redis that came back gets what was written meanwhile)."""

    def __init__(self, store: Store, shared: Shared, say: Callable[[str], None]) -> None:
        self.store = store
        self.shared = shared
        self.say = say
        self.me = host_id(store.directory)
        self._said: str | None = None

    def stamps(self) -> tuple[int, int]:
        """When the state file and the guards directory last changed."""
        found = []
        for path in (self.store.path, registry.guards_dir(self.store.directory)):
            try:
                found.append(path.stat().st_mtime_ns)
            except OSError:
                found.append(0)
        return found[0], found[1]

    def run(self, stop: threading.Event) -> None:
        subscription: Any = None
        seen: tuple[int, int] | None = None
        due = 0.0
        while not stop.is_set():
            news = False
            if subscription is None and time.monotonic() >= due:
                with contextlib.suppress(SharedUnavailable):  # the sync says why
                    subscription = self.shared.subscribe()
                    news = True  # (re)connected: anything may have happened meanwhile
            if subscription is not None:
                try:
                    news = self.shared.news(subscription, self.me, WATCH) or news
                except SharedUnavailable:
                    with contextlib.suppress(Exception):
                        subscription.close()
                    subscription = None
            else:
                stop.wait(WATCH)
            stamps = self.stamps()
            if news or stamps != seen or time.monotonic() >= due:
                # Taken before the sync: a write during it (a post landing while the
                # state was being pushed) is looked at again. So is the sync's own, once:
                # that second sync writes nothing, so it comes to rest.
                seen = stamps
                self.sync()
                due = time.monotonic() + BEAT

    def sync(self) -> None:
        try:
            problem = sync(self.store, self.shared, force=True)
        except Exception as exc:  # a follower that dies silently freezes the fleet's rows
            problem = f"shared store: sync failed: {redact(str(exc))[:200]}"
        if problem != self._said:
            self.say(problem or f"shared store {where(self.shared.url)}: in sync")
        self._said = problem
