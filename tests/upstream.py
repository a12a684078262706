"""A fake upstream HTTP server on loopback: serves canned responses per path and
records every request, so tests check what we sent (headers included)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate and key for ``name`` (``DNS:claude.ai``, ``IP:127.0.0.1``), made
    here with openssl, valid two days; returns (certificate, key) in ``directory``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subject = name.split(":", 1)[1]
    command = f"openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN={subject}"
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [*command.split(), "-addext", f"subjectAltName={name}", *files],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | object = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering (a hang, for timeouts)
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class FakeUpstream:
    """``routes`` maps a path to a Reply or a callable returning one; unknown paths 404."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply | Callable[[Seen], Reply]] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    self.rfile.read(length) if length else b"",
                )
                with upstream._lock:
                    upstream.requests.append(seen)
                route = upstream.routes.get(self.path.split("?")[0])
                reply = route(seen) if callable(route) else route
                if reply is None:
                    reply = Reply(404, {"type": "error", "error": {"type": "not_found_error"}})
                if reply.delay:
                    time.sleep(reply.delay)
                data = reply.payload()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _serve
            do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def hits(self, path: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    def start(self) -> FakeUpstream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
