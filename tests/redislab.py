"""A real ``redis-server`` (Debian's package) on a free loopback port, with a password
and no persistence, for the shared-store tests and bench/bench_shared.py; and the
"hosts" of a fleet in those tests: each a state dir of its own, all on one Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from claudemeter.model import JSON
from tests.helpers import Bridge, cli, cli_rows, start_bridge
from tests.upstream import self_signed

PASSWORD = "fleet-redis-password-4711"


@dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int
    #: The CA (its own self-signed certificate) when it speaks TLS only.
    ca: Path | None = None

    @property
    def url(self) -> str:
        """With AUTH in the URL, as a user writes ``CLAUDEMETER_REDIS_URL``; for TLS,
        ``rediss://`` with the CA to verify the server against."""
        if self.ca is not None:
            return f"rediss://:{PASSWORD}@127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca}"
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_redis(
    directory: Path, port: int | None = None, seconds: float = 20.0, tls: bool = False
) -> RedisServer:
    """Start it (on ``port``, e.g. to bring one back where it was; with ``tls``, TLS only,
    a certificate for 127.0.0.1 made here with openssl) and wait for PING.

    Raises RuntimeError when redis-server is missing or does not come up."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: `apt-get install redis-server`")
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)]
    listen = ["--port", str(port)]
    ca = None
    if tls:
        ca, key = self_signed(directory, "IP:127.0.0.1")
        listen = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"]
        listen += ["--tls-cert-file", str(ca), "--tls-key-file", str(key)]
        listen += ["--tls-ca-cert-file", str(ca)]
    proc = subprocess.Popen(
        [binary, *listen, *options, "--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(proc, port, ca)
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited {proc.returncode} (port {port} taken?)")
        try:
            if server.client().ping():
                return server
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("redis-server did not answer")
        time.sleep(0.05)


def host_env(tmp_path: Path, name: str, url: str) -> dict[str, str]:
    """One host's environment: its own state dir, the shared login and Redis."""
    return {
        **os.environ,
        "CLAUDEMETER_STATE_DIR": str(tmp_path / f"{name}-state"),
        "CLAUDEMETER_REDIS_URL": url,
    }


def meter(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``claude-meter *args`` on the host whose environment is ``env``."""
    return cli(*args, stdin=stdin, env=env)


def rows_of(env: dict[str, str]) -> list[JSON]:
    """The host's rows, as ``claude-meter --json --cached`` prints them there."""
    return cli_rows("--json", "--cached", env=env)


def serve_hosts(
    tmp_path: Path, url: str, names: tuple[str, ...] = ("laptop", "box")
) -> tuple[list[dict[str, str]], list[Bridge]]:
    """One ``claude-meter serve`` per named host, each with its own state dir, all on
    the Redis at ``url``: the hosts' environments and their bridges (stop them)."""
    envs = [host_env(tmp_path, name, url) for name in names]
    bridges = [
        start_bridge(tmp_path, name=name, env=env) for name, env in zip(names, envs, strict=True)
    ]
    return envs, bridges
