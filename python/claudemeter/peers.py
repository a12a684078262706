"""Other machines' bridges as a source (SPEC section 5, ``CLAUDEMETER_PEERS``).

An SSH dev box runs agents on the same account as the laptop whose browser and Claude
Code login already keep a fresh reading. ``ssh -R 63763:127.0.0.1:63762 box`` makes the
laptop's bridge reachable on the box's loopback; the box's ``claude-meter serve``, given
``CLAUDEMETER_PEERS=http://127.0.0.1:63763`` and the laptop's bridge token in
``CLAUDEMETER_PEER_TOKEN_FILE``, pulls ``GET /snapshots`` from it on the peer's freshness
(just after its newest reading is due to be replaced, at least every minute) and stores
each row as a reading of its own source, ``browser = "peer 127.0.0.1:63763"``, which then
folds per bucket with the box's own readings. While such a reading of an account is fresh
(younger than its source's freshness limit, and the last pull worked) the box's poller
asks the usage endpoint nothing for that account (``refresh``); when the peer goes away
the box says so and polls on its own again.

Single-flight: one puller per state dir (it runs inside ``serve``, which holds the state
dir's instance lock), pulling its peers one after another. A row keeps the peer's
``fetched_at``, so a reading relayed through several hosts, or back and forth between two
that name each other, never looks younger than it is; a row that only ever came from
other peers is not taken again (it is secondhand).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from . import env
from .model import Snapshot, ValidationError, parse_many, redact, utcnow
from .private import StoreError
from .render import duration
from .sources import STATUS_ERROR, STATUS_OK, SourceBook
from .store import State, Store

#: The longest ``serve`` waits between two pulls of a peer: well inside a row's 300 s
#: freshness limit, so a live peer's reading never lapses between pulls.
PULL_EVERY = 60.0
#: The shortest, however often the peer's reading changes (its statusLine may write
#: every few seconds); also the first step of the back-off while it does not change.
PULL_FLOOR = 5.0
#: A new reading is looked for this long after it is due: the peer must have stored it.
DUE_SLACK = 1.0
#: Connect and read timeout per peer; a tunnel to a sleeping laptop must not stall us.
TIMEOUT = 5.0
#: A peer's answer is at most this big (its bridge takes 256 KiB per post).
MAX_BODY = 1024 * 1024
#: The ``browser`` of a pulled row starts with this, then the peer's host:port.
SOURCE_PREFIX = "peer "
TUNNEL_HINT = "is the SSH tunnel up? (ssh -R 63763:127.0.0.1:63762 THIS-BOX, on the laptop)"


class PeerError(ValueError):
    """A peer that cannot be used as configured; the message is one line a user can act on."""


def is_peer_source(browser: str) -> bool:
    """True for a row pulled from a peer (``"peer 127.0.0.1:63763"``)."""
    return browser.strip().startswith(SOURCE_PREFIX)


@dataclass(frozen=True)
class Peer:
    """One other bridge, e.g. ``http://127.0.0.1:63763`` (no path, no trailing slash)."""

    url: str

    @property
    def source(self) -> str:
        """The provenance its rows carry: ``peer 127.0.0.1:63763``."""
        return SOURCE_PREFIX + urlsplit(self.url).netloc


def parse_peer(text: str) -> Peer:
    """``http://HOST:PORT`` with a loopback HOST (a tunnel's end), or ``https://…``.

    Raises PeerError for anything else: plain http to another machine would carry the
    bridge token across the network in the clear."""
    from .bridge import is_loopback_host  # here: refresh imports this module, not http.server

    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise PeerError(f"peer {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise PeerError(f"peer {text!r}: expected http://127.0.0.1:PORT (an SSH tunnel's end)")
    if parts.username or parts.password or parts.path.strip("/") or parts.query:
        raise PeerError(f"peer {text!r}: give only the scheme, host and port")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise PeerError(
            f"peer {text!r}: plain http would send the token across the network;"
            " reach it through an SSH tunnel on 127.0.0.1 (or use https)"
        )
    return Peer(f"{parts.scheme}://{parts.netloc}")


def configured() -> tuple[list[Peer], list[str]]:
    """The peers in ``CLAUDEMETER_PEERS``, and one problem line per unusable entry."""
    peers: list[Peer] = []
    problems: list[str] = []
    for text in env.peers():
        try:
            peer = parse_peer(text)
        except PeerError as exc:
            problems.append(str(exc))
            continue
        if peer not in peers:
            peers.append(peer)
    return peers, problems


def read_token(path: Path | None = None) -> str:
    """The peers' bridge token from ``CLAUDEMETER_PEER_TOKEN_FILE``.

    Raises PeerError naming the file (never its content) when it is unset or unusable."""
    path = path or env.peer_token_file()
    if path is None:
        raise PeerError(
            "CLAUDEMETER_PEER_TOKEN_FILE is not set: put the peer's `claude-meter pair`"
            " token in a 0600 file and name it there"
        )
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise PeerError(f"cannot read the peer token file {path}: {reason}") from None
    if not token or any(c.isspace() for c in token):
        raise PeerError(f"the peer token file {path} does not hold one token")
    return token


@dataclass
class Pull:
    """One peer's answer this round: its rows relabelled as ours, or why there are none."""

    peer: Peer
    ok: bool
    message: str
    rows: list[Snapshot] = field(default_factory=list)


def pull(peer: Peer, token: str, timeout: float = TIMEOUT) -> Pull:
    """``GET /snapshots`` from one peer. Never raises for the peer's faults."""
    import requests  # here: readers that only look at peer rows never load it

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    headers["User-Agent"] = "claudemeter"
    try:
        with requests.get(
            peer.url + "/snapshots",
            headers=headers,
            timeout=timeout,
            stream=True,
            allow_redirects=False,
        ) as response:
            body = b""
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > MAX_BODY:
                    return Pull(peer, False, f"answered more than {MAX_BODY // 1024} KiB")
            status = response.status_code
    except requests.Timeout:
        return Pull(peer, False, f"no answer in {timeout:.0f}s; {TUNNEL_HINT}")
    except requests.RequestException as exc:
        return Pull(peer, False, f"unreachable ({type(exc).__name__}); {TUNNEL_HINT}")
    if status == 401:
        return Pull(
            peer,
            False,
            "refused the token in CLAUDEMETER_PEER_TOKEN_FILE: put that machine's"
            " `claude-meter pair` token there",
        )
    if status != 200:
        return Pull(peer, False, f"answered HTTP {status}: {_said(body)}")
    try:
        rows = parse_many(json.loads(body.decode("utf-8")) or [])
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # ValidationError is a ValueError; its message names the field, never a secret.
        what = str(exc) if isinstance(exc, ValidationError) else "not JSON"
        return Pull(peer, False, f"sent rows we cannot read: {redact(what)[:160]}")
    firsthand = [relabel(row, peer) for row in rows if not _secondhand(row)]
    said = f"{len(firsthand)} account(s)"
    if firsthand:
        said += f", newest reading {duration(min(row.age() for row in firsthand))} old"
    return Pull(peer, True, said, firsthand)


def _said(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    return redact(str(error))[:160] if error else "no explanation"


def _secondhand(row: Snapshot) -> bool:
    return all(is_peer_source(name) for name in row.browser.split(",") if name.strip())


def relabel(row: Snapshot, peer: Peer) -> Snapshot:
    """The peer's folded row as a reading of the source ``peer HOST:PORT``; its time,
    numbers and errors stay as the peer had them."""
    # stale: recomputed from its age and our freshness limit on every read
    return replace(row, browser=peer.source, stale=False, errors=list(row.errors))


def covering(state: State, account_key: str) -> Snapshot | None:
    """A fresh peer reading of this account whose peer answered the last pull, if any:
    while there is one, this host need not ask the usage endpoint about the account."""
    now = utcnow()
    for row in state.rows:
        if (
            is_peer_source(row.browser)
            and row.account_key == account_key
            and row.usage is not None
            and not row.is_stale(now)
            and state.book(row.browser).get("status") == STATUS_OK
        ):
            return row
    return None


@dataclass
class Pace:
    """When to pull one peer next: keyed to its freshness, not to a fixed period.

    The peer's newest reading (``fetched_at``, epoch seconds) and the gap between its last
    two say when the next one is due; the pull comes :data:`DUE_SLACK` after that. While
    the gap is not known yet, or the due reading is late, or the peer does not answer,
    pulls back off from :data:`PULL_FLOOR` doubling. Never more than ``every`` seconds
    apart, never less than the floor (or ``every``, when that is smaller)."""

    every: float
    newest: float | None = None
    gap: float | None = None
    retry: float = PULL_FLOOR

    def seen(self, newest: float | None, now: float) -> float:
        """Book a pull made at ``now`` that found ``newest`` (None: no reading, or no
        answer); returns when to pull next (epoch seconds)."""
        floor = min(PULL_FLOOR, self.every)
        if newest is not None and (self.newest is None or newest > self.newest):
            if self.newest is not None:
                self.gap = newest - self.newest
            self.newest = newest
            self.retry = floor
        due = None if self.newest is None or self.gap is None else self.newest + self.gap
        if due is not None and due + DUE_SLACK > now:
            wait = due + DUE_SLACK - now
        else:  # still learning its pace, or the reading is late: back off
            wait = self.retry
            self.retry = min(self.retry * 2, self.every)
        return now + min(self.every, max(floor, wait))


class Puller:
    """Pulls every peer into the store, each when its pace says, and says what changed;
    books each peer under its source name (``peer HOST:PORT``) in ``State.sources``."""

    def __init__(
        self,
        store: Store,
        peers: list[Peer],
        say: Callable[[str], None],
        every: float = PULL_EVERY,
    ) -> None:
        self.store = store
        self.peers = peers
        self.say = say
        self.every = every
        self._said: dict[str, str] = {}
        self.paces = {peer: Pace(every) for peer in peers}
        #: When each peer is pulled next (epoch seconds).
        self.due = {peer: 0.0 for peer in peers}

    def round(self, peers: list[Peer] | None = None) -> list[Pull]:
        """Pull each peer (of ``peers``, default all) once; store what came; book each
        peer's status and when to pull it next."""
        peers = self.peers if peers is None else peers
        try:
            token = read_token()
        except PeerError as exc:
            pulls = [Pull(peer, False, str(exc)) for peer in peers]
        else:
            pulls = [pull(peer, token) for peer in peers]
        now = time.time()
        for result in pulls:
            newest = max((row.fetched_at.timestamp() for row in result.rows), default=None)
            self.due[result.peer] = self.paces[result.peer].seen(newest, now)
        try:
            with self.store.update() as state:
                for result in pulls:
                    for row in result.rows:
                        state.put(row)
                    book = state.book(result.peer.source).copy()
                    book.update(
                        SourceBook(
                            status=STATUS_OK if result.ok else STATUS_ERROR,
                            last_attempt=time.time(),
                            # `show` and `claude-meter` list book errors: say whose
                            error=None if result.ok else f"{result.peer.source}: {result.message}",
                        )
                    )
                    if result.ok:
                        book["last_ok"] = time.time()
                    state.sources[result.peer.source] = book
        except StoreError as exc:
            self.say(f"peers: {exc}")
        for result in pulls:
            self._report(result)
        return pulls

    def _report(self, result: Pull) -> None:
        """One line when a peer starts working, stops, or fails differently."""
        name = result.peer.source
        before = self._said.get(name)
        if result.ok:
            if before != STATUS_OK:
                self.say(f"{name}: {result.message}; no usage request while it is fresh")
            self._said[name] = STATUS_OK
            return
        if before != result.message:
            fallback = "; polling on our own while it is away" if before == STATUS_OK else ""
            self.say(f"{name}: {result.message}{fallback}")
        self._said[name] = result.message

    def run(self, stop: threading.Event, after_round: Callable[[], None]) -> None:
        """Pull each peer when it is due (:class:`Pace`; one puller, one peer after
        another: single-flight) until ``stop``; ``after_round`` (the poller's wake-up)
        lets the refresh see at once what the round changed."""
        while not stop.wait(max(0.0, min(self.due.values()) - time.time())):
            now = time.time()
            due = [peer for peer in self.peers if self.due[peer] <= now]
            try:
                self.round(due)
            except Exception as exc:  # a puller that dies silently freezes the peer rows
                self.say(f"peers: pull failed: {redact(str(exc))[:200]}")
                for peer in due:
                    self.due[peer] = now + self.every
            after_round()
