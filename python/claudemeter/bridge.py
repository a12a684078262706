"""The loopback bridge (SPEC section 6), and ``claude-meter pair`` for its token.

The browser extension cannot write files, so it posts what claude.ai said to this
small HTTP server, which stores it exactly as ``claude-meter ingest`` would. Anything on
the machine can reach a loopback port, a web page included, so every request must pass
four gates before it touches the store: a loopback ``Host`` (a DNS-rebinding page sends
its own name), an ``Origin`` that is absent (curl, scripts) or a browser extension's (a
web page's never is), a bearer token only ``claude-meter pair`` hands out, and a small
JSON body that validates. A refusal stores nothing.

The server is the standard library's threading HTTP server, with the limits it lacks.
A connection gets a thread only once its whole request head has arrived: until then one
selector thread holds it for at most :data:`HEAD_DEADLINE` seconds, and when too many
are waiting the oldest is dropped. So idle or half-sent connections, however many, cost
a file descriptor each and never stand between a token-bearing client and an answer
(SPEC 6). Threads are bounded, each read has a timeout and each connection a hard
deadline; connections are HTTP/1.0, one request each. ``claude-meter serve``
(:mod:`claudemeter.serve`) runs it beside the OAuth poller and the peer puller.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import io
import ipaddress
import json
import os
import re
import secrets
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import env
from .model import MAX_DEPTH, ValidationError, parse_many, redact, utcnow
from .private import StoreError, ensure_private_dir, read_private, write_private
from .store import Store

TOKEN_FILE = "bridge.token"  # noqa: S105 (a file name, not a secret)
INSTANCE_LOCK = "bridge.lock"
#: The running bridge's pid and start time (:mod:`claudemeter.pidfile`), for ``stop``.
PID_FILE = "bridge.pid"
MAX_BODY = 256 * 1024
#: A loopback client sends its request at once; a read idle this long is a stuck client.
READ_TIMEOUT = 5.0
#: No connection lives longer than this, however slowly it trickles bytes in.
CONNECTION_DEADLINE = 10.0
#: Requests being answered at once (their heads complete); one more is answered 503.
MAX_CONNECTIONS = 32
#: A client has this long to send its request line and headers; a loopback client sends
#: them in one write, so only an idle or hostile one ever meets this.
HEAD_DEADLINE = 3.0
#: Connections still sending their head; past this many the oldest is dropped.
MAX_PENDING = 512
#: The longest request head read (http.server's own line limit).
MAX_HEAD = 65536
#: On SIGTERM, requests already inside get this long to finish their store write.
DRAIN_SECONDS = 5.0
#: At most one refusal line per this many seconds, so a flood cannot flood the log.
REFUSAL_LOG_EVERY = 10.0

EXTENSION_SCHEMES = frozenset({"chrome-extension", "moz-extension", "safari-web-extension"})
ROUTES: dict[str, tuple[str, ...]] = {"/snapshots": ("GET", "POST"), "/healthz": ("GET",)}
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{20,200}$")


# --- the token -------------------------------------------------------------------------


def store_id(directory: Path) -> str:
    """Names the state dir a bridge writes to without showing its path, so ``doctor``
    can tell its own bridge from another user's or another setup's on the same port."""
    return hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:12]


def token_path(directory: Path | None = None) -> Path:
    return (directory or env.state_dir()) / TOKEN_FILE


def _read_token(path: Path) -> str | None:
    try:
        text = read_private(path, 4096).decode("ascii").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ""  # mangled: replaced below
    # Any other OSError (a transient EACCES, EIO) propagates: replacing the token over a
    # hiccup would silently unpair every browser.
    return text


def _tighten(path: Path) -> None:
    """A token another user can read is a token a web page's accomplice can use."""
    with contextlib.suppress(OSError):
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(0o600)


def new_token(directory: Path) -> str:
    """Replace the token (``pair --new``): every paired browser must be given the new one."""
    ensure_private_dir(directory)
    token = secrets.token_urlsafe(32)
    write_private(token_path(directory), (token + "\n").encode())
    return token


def ensure_token(directory: Path) -> str:
    """The token, created 0600 on first use. Creation links a finished temp file into
    place, so two first runs racing agree on one token and nobody reads half of it."""
    ensure_private_dir(directory)
    path = token_path(directory)
    current = _read_token(path)
    if current and _TOKEN_RE.match(current):
        _tighten(path)
        return current
    if current is not None:
        return new_token(directory)  # unreadable or mangled: a fresh one beats none
    tmp = path.with_name(f".{TOKEN_FILE}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink()
    return ensure_token(directory)


class TokenFile:
    """The token as the running bridge sees it: re-read when the file changes, so
    ``pair --new`` takes effect without a restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._value = ""

    def current(self) -> str:
        path = token_path(self.directory)
        with self._lock:
            try:
                info = path.stat()
                key: tuple[int, int] | None = (info.st_ino, info.st_mtime_ns)
            except OSError:
                key = None
            if key is None or key != self._key:
                self._value = ensure_token(self.directory)
                info = path.stat()
                self._key = (info.st_ino, info.st_mtime_ns)
            return self._value

    def matches(self, offered: str) -> bool:
        return hmac.compare_digest(
            offered.encode("utf-8", "surrogateescape"), self.current().encode("ascii")
        )


# --- addresses -------------------------------------------------------------------------


def is_loopback_host(name: str) -> bool:
    name = name.strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """``Host`` without its port: ``127.0.0.1:63762`` → ``127.0.0.1``, ``[::1]:1`` → ``::1``."""
    header = header.strip()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


# --- the HTTP side ---------------------------------------------------------------------


class Refusal(Exception):
    """A request we answer with ``{"ok": false, "error": …}`` and store nothing for."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass
class RefusalLog:
    """Counts refusals and says so at most once per ``REFUSAL_LOG_EVERY`` seconds."""

    say: Callable[[str], None]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _suppressed: int = 0
    _last: float = 0.0

    def note(self, status: int, message: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < REFUSAL_LOG_EVERY:
                self._suppressed += 1
                return
            extra = f" (and {self._suppressed} more since)" if self._suppressed else ""
            self._last, self._suppressed = now, 0
        self.say(f"refused {status}: {message}{extra}")


@dataclass
class Bridge:
    """What every request handler shares: the store, the token, the log."""

    store: Store
    token: TokenFile
    say: Callable[[str], None]
    refusals: RefusalLog
    #: Handler threads queue here instead of polling the store's file lock.
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    def store_snapshots(self, body: Any) -> int:
        if isinstance(body, list) and not body:
            raise Refusal(422, "snapshots: expected a snapshot or a non-empty list")
        try:
            snapshots = parse_many(body)
        except ValidationError as exc:
            raise Refusal(422, f"invalid snapshot: {exc}") from None
        try:
            with self.write_lock:
                count = self.store.put(snapshots)
        except StoreError as exc:
            raise Refusal(503, str(exc)) from None
        # A browser name is the client's text: keep it to one printable log line.
        browsers = "".join(
            c if c.isprintable() else "?" for c in ", ".join(sorted({s.browser for s in snapshots}))
        )[:200]
        self.say(f"stored {count} snapshot{'s' if count != 1 else ''} from {browsers}")
        return count

    def snapshots(self) -> list[Any]:
        now = utcnow()
        return [row.to_public_json(now) for row in self.store.read().accounts(now)]


class Handler(BaseHTTPRequestHandler):
    """One request per connection (HTTP/1.0): nothing lingers between requests."""

    server: BridgeServer
    timeout = READ_TIMEOUT
    server_version = "claudemeter-bridge"
    sys_version = ""

    def setup(self) -> None:
        """Read the head the selector already took off the socket, then the socket."""
        super().setup()
        self.rfile.close()  # the socket stays open; only this reader of it goes
        head = self.server.take_head(self.request)
        rest = self.request.makefile("rb", buffering=0)
        self.rfile = io.BufferedReader(_Prefixed(head, rest))

    def _dispatch(self) -> None:
        try:
            self._handle()
        except Refusal as refusal:
            self._refuse(refusal.status, str(refusal), refusal.headers)
        except OSError:
            self.close_connection = True  # the client went away or stalled mid-body
        except Exception as exc:  # a bug of ours: say so in one line, answer 500, keep serving
            self.server.bridge.say(
                f"internal error: {type(exc).__name__}: {redact(str(exc))[:200]}"
            )
            self._refuse(500, "internal error in the bridge; see its log")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def _handle(self) -> None:
        self._check_host()
        self._check_origin()
        path = urlsplit(self.path).path
        methods = ROUTES.get(path)
        if methods is None:
            # The path is not echoed: a client that put its token there must not see it
            # come back in the answer or the log.
            raise Refusal(404, "no such endpoint: use /snapshots or /healthz")
        if self.command not in methods:
            allowed = ", ".join(methods)
            raise Refusal(
                405, f"{self.command} is not allowed on {path}; use {allowed}", {"Allow": allowed}
            )
        if path == "/healthz":
            self._reply(200, {"ok": True, "store": store_id(self.server.bridge.store.directory)})
            return
        self._check_token()
        if self.command == "GET":
            self._reply(200, self.server.bridge.snapshots())
            return
        count = self.server.bridge.store_snapshots(self._read_json())
        self._reply(200, {"ok": True, "accepted": count})

    def _check_host(self) -> None:
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or not is_loopback_host(_host_name(hosts[0])):
            shown = hosts[0][:80] if hosts else "none"
            raise Refusal(
                403, f"Host {shown!r} is not the loopback address (use http://127.0.0.1:PORT)"
            )

    def _check_origin(self) -> None:
        origin = self.headers.get("Origin")
        if origin is None:
            return
        scheme = origin.split("://", 1)[0].lower() if "://" in origin else ""
        if scheme not in EXTENSION_SCHEMES:
            raise Refusal(
                403,
                f"Origin {origin[:80]!r} is not a browser extension;"
                " web pages may not use the bridge",
            )

    def _check_token(self) -> None:
        scheme, _, offered = (self.headers.get("Authorization") or "").partition(" ")
        offered = offered.strip()
        hint = "run `claude-meter pair` and paste its token into the extension"
        if scheme.lower() != "bearer" or not offered:
            raise Refusal(
                401,
                f"missing bearer token: {hint}",
                {"WWW-Authenticate": 'Bearer realm="claudemeter"'},
            )
        if not self.server.bridge.token.matches(offered):
            raise Refusal(
                401,
                f"wrong token: {hint}",
                {"WWW-Authenticate": 'Bearer realm="claudemeter", error="invalid_token"'},
            )

    def _read_json(self) -> Any:
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise Refusal(415, f"Content-Type {ctype or 'missing'}: send application/json")
        encodings = self.headers.get_all("Transfer-Encoding") or []
        if any("chunked" in value.lower() for value in encodings):
            raise Refusal(411, "chunked bodies are not accepted: send a Content-Length")
        if encodings:  # with a Content-Length too: the two framings disagree (smuggling)
            raise Refusal(400, "Transfer-Encoding is not accepted: send a plain body")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise Refusal(411, "missing Content-Length")
        if len(set(lengths)) != 1 or not _is_number(lengths[0]):
            raise Refusal(400, "bad Content-Length")
        length = int(lengths[0])
        if length > MAX_BODY:
            raise Refusal(413, f"body of {length} bytes is over the {MAX_BODY // 1024} KiB cap")
        data = self.rfile.read(length)
        if len(data) < length:
            raise Refusal(400, "body shorter than its Content-Length")
        try:
            return json.loads(data.decode("utf-8"), parse_constant=_no_constants)
        except UnicodeDecodeError:
            raise Refusal(400, "bad JSON: the body is not UTF-8") from None
        except json.JSONDecodeError as exc:
            raise Refusal(
                400, f"bad JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        except RecursionError:
            raise Refusal(422, f"invalid snapshot: nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:
            raise Refusal(400, f"bad JSON: {str(exc)[:80]}") from None

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        # http.server takes an unparsable request line for HTTP/0.9 and would answer with
        # a bare body; every answer here starts with a status line.
        self.request_version = self.protocol_version
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Connection", "close")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _refuse(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.close_connection = True
        message = redact(message)
        self.server.bridge.refusals.note(status, message)
        with contextlib.suppress(OSError):
            self._reply(status, {"ok": False, "error": message}, headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, oversized headers, unknown
        method) speak the same JSON as ours; a method we have never heard of is as
        not-allowed as one we know."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, message = 405, f"{self.command} is not allowed; use GET or POST"
        self._refuse(code, message or HTTPStatus(code).phrase)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines are noise, and a careless client may put a secret in one."""


class _Prefixed(io.RawIOBase):
    """A socket's stream with the bytes already read from it put back in front."""

    def __init__(self, head: bytes, rest: Any) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        return int(self._rest.readinto(buffer) or 0)

    def close(self) -> None:
        self._rest.close()
        super().close()


def _is_number(text: str) -> bool:
    text = text.strip()
    return text.isascii() and text.isdigit()


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass
class _Pending:
    """A connection whose request head is still arriving."""

    address: Any
    deadline: float
    head: bytes = b""


class BridgeServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose threads serve complete request heads only: connections
    wait for theirs in one selector (:meth:`_collect`), with a deadline and a cap that
    drops the oldest; threads are capped too, and each connection has a deadline."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: env.HostPort, bridge: Bridge) -> None:
        self.bridge = bridge
        self.address_family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._live: dict[socket.socket, float] = {}
        self._live_lock = threading.Lock()
        self._closing = threading.Event()
        self._pending: dict[socket.socket, _Pending] = {}
        self._heads: dict[socket.socket, bytes] = {}
        self._arrivals: list[tuple[socket.socket, Any]] = []
        self._arrivals_lock = threading.Lock()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._collector = threading.Thread(target=self._collect, name="heads", daemon=True)
        super().__init__((address.host, address.port), Handler)  # a failed bind closes
        self._reaper = threading.Thread(target=self._reap, name="reaper", daemon=True)
        self._reaper.start()
        self._collector.start()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        """Accepted: to the selector, which hands it on once its head is complete."""
        with self._arrivals_lock:
            self._arrivals.append((request, client_address))
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")

    def take_head(self, request: socket.socket) -> bytes:
        with self._live_lock:
            return self._heads.pop(request, b"")

    def _collect(self) -> None:
        """The selector thread: read request heads without a thread per connection. It
        must outlive anything one connection does: a fault is logged, never fatal."""
        while not self._closing.is_set():
            try:
                self._collect_once()
            except Exception as exc:  # a bug of ours: say so, keep serving
                self.bridge.say(f"internal error in the head reader: {type(exc).__name__}")
        for sock in list(self._pending):
            self._drop(sock)

    def _collect_once(self) -> None:
        for key, _events in self._selector.select(timeout=0.25):
            if key.fileobj is self._wake_read:
                with contextlib.suppress(OSError):
                    self._wake_read.recv(4096)
                self._admit()
            elif key.fileobj in self._pending:
                self._read_head(key.fileobj)
        now = time.monotonic()
        for sock in [s for s, p in self._pending.items() if p.deadline < now]:
            self._drop(sock)

    def _admit(self) -> None:
        with self._arrivals_lock:
            arrivals, self._arrivals = self._arrivals, []
        for sock, address in arrivals:
            while len(self._pending) >= MAX_PENDING:
                self._drop(next(iter(self._pending)))  # the oldest waiter makes room
            self._pending[sock] = _Pending(address, time.monotonic() + HEAD_DEADLINE)
            try:
                sock.setblocking(False)
                self._selector.register(sock, selectors.EVENT_READ)
            except (OSError, ValueError):  # gone already (a closed descriptor)
                self._drop(sock)

    def _read_head(self, sock: socket.socket) -> None:
        pending = self._pending[sock]
        try:
            data = sock.recv(MAX_HEAD)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)  # gone before it asked anything
            return
        pending.head += data
        head = pending.head
        if b"\r\n\r\n" in head or b"\n\n" in head or len(head) >= MAX_HEAD:
            self._selector.unregister(sock)
            del self._pending[sock]
            self._start(sock, pending)

    def _drop(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        self._pending.pop(sock, None)
        self.shutdown_request(sock)

    def _start(self, sock: socket.socket, pending: _Pending) -> None:
        """A complete head: a thread answers it, or a 503 when all are busy."""
        sock.setblocking(True)
        if not self._slots.acquire(blocking=False):
            _busy(sock)
            self.shutdown_request(sock)
            return
        with self._live_lock:
            self._live[sock] = time.monotonic() + CONNECTION_DEADLINE
            self._heads[sock] = pending.head
        try:
            super().process_request(sock, pending.address)
        except Exception:
            self._forget(sock)
            self.shutdown_request(sock)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request: socket.socket) -> None:
        with self._live_lock:
            self._heads.pop(request, None)
            if self._live.pop(request, None) is not None:
                self._slots.release()

    def _reap(self) -> None:
        """Cut connections past their deadline: the handler's read fails and it ends."""
        while not self._closing.wait(1.0):
            now = time.monotonic()
            with self._live_lock:
                late = [sock for sock, deadline in self._live.items() if deadline < now]
            for sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        self._closing.set()
        if self._collector.is_alive():
            self._collector.join(timeout=5.0)
        super().server_close()
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()

    def drain(self, seconds: float) -> None:
        """Give requests already inside (a store write, say) a moment to finish."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with self._live_lock:
                if not self._live:
                    break
            time.sleep(0.05)
        self._closing.set()


def _busy(request: socket.socket) -> None:
    body = json.dumps({"ok": False, "error": "the bridge is busy; try again"}).encode()
    head = (
        f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):
        request.settimeout(1.0)
        request.sendall(head + body)


# --- the commands ----------------------------------------------------------------------


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--new",
        action="store_true",
        help="replace the token (every paired browser then needs the new one)",
    )


def cmd_pair(args: argparse.Namespace) -> int:
    directory = env.state_dir()
    try:
        token = new_token(directory) if args.new else ensure_token(directory)
    except OSError as exc:
        print(
            f"claude-meter pair: cannot keep the token in {directory}: {exc.strerror or exc}"
            " (fix its permissions or set CLAUDEMETER_STATE_DIR)",
            file=sys.stderr,
        )
        return 1
    print(token, flush=True)
    if sys.stderr.isatty() or args.new:
        note = "the old token no longer works; " if args.new else ""
        print(
            f"{note}paste this into the claudemeter extension's popup"
            f" (kept 0600 in {token_path(directory)})",
            file=sys.stderr,
        )
    return 0
