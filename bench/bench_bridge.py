"""Bridge throughput, latency and memory, on loopback, in a throw-away state dir.

Run by hand: ``python bench/bench_bridge.py [--posts N]``. Figures are printed next to a
baseline measured in the same run against the same process (``GET /healthz``: the HTTP
server without the store), so the ratios say what validation and a durable store write
cost, whatever the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import common
from common import Figure

ORG = "0f6c3b2a-0000-4000-8000-00000000b001"


def start(
    root: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int, str]:
    """``claude-meter serve`` on a free loopback port (its output in ``root``) with
    ``env`` (default: :func:`common.isolated_env` of ``root``); (process, port, token)."""
    env = env or common.isolated_env(root)
    root.mkdir(parents=True, exist_ok=True)
    out = root / "serve.out"
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(
            [*common.meter(), "serve", "--port", "0"],
            env=env,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    for _ in range(1000):
        found = re.search(r"127\.0\.0\.1:(\d+)", out.read_text())
        if found:
            break
        time.sleep(0.01)
    else:
        proc.kill()
        raise SystemExit("the bridge did not start")
    token = subprocess.run(
        [*common.meter(), "pair"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    return proc, int(found.group(1)), token


def request(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def timed(n: int, clients: int, one: Callable[[int], int], expect: int) -> tuple[float, float]:
    """(requests per second, p99 seconds) for ``n`` calls spread over ``clients`` threads."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        mine = []
        for i in range(offset, n, clients):
            t0 = time.perf_counter()
            status = one(i)
            mine.append(time.perf_counter() - t0)
            if status != expect:
                raise SystemExit(f"unexpected HTTP {status}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    return n / elapsed, common.p99(latencies)


#: Idle connections held open while a token-bearing client is timed (SPEC 6).
IDLE = 100


def half_open(port: int) -> socket.socket:
    """A connection that sent half a request line and then nothing (it is cut after the
    bridge's head deadline, 3 s: the timed run must be shorter, or it reconnects)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /snapshots HTTP/1.1\r\n")
    return sock


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)", status)
    return int(found.group(1)) if found else 0


def snapshot_body(i: int, browser: str) -> bytes:
    now = datetime.now(timezone.utc)
    return json.dumps(
        {
            "org_uuid": ORG,
            "browser": browser,
            "account_email": "ada@example.com",
            "fetched_at": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "usage": {"five_hour": {"utilization": float(i % 100), "resets_at": None}},
            "errors": [],
        }
    ).encode()


def measure(posts: int = 1000, rejected: int = 10_000) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="cmbench") as tmp:
        proc, port, token = start(Path(tmp))
        try:
            auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

            def health(_i: int) -> int:
                return request(port, "GET", "/healthz", None, {})

            def post(i: int) -> int:
                return request(port, "POST", "/snapshots", snapshot_body(i, f"B{i % 4}"), auth)

            bad_body = snapshot_body(0, "Chrome")
            bad_auth = {**auth, "Authorization": "Bearer " + "x" * 43}

            def reject(i: int) -> int:
                if i % 2:
                    return request(port, "POST", "/snapshots", bad_body, bad_auth)
                return request(port, "POST", "/snapshots", b"{not json", auth)

            health(0)
            post(0)
            base_rate, base_p99 = timed(posts, 1, health, 200)
            rate1, p99_1 = timed(posts, 1, post, 200)
            rate4, p99_4 = timed(posts, 4, post, 200)
            rss_start = rss_kib(proc.pid)
            t0 = time.perf_counter()
            for i in range(rejected):
                status = reject(i)
                if status not in (400, 401):
                    raise SystemExit(f"unexpected HTTP {status} for a bad post")
            reject_rate = rejected / (time.perf_counter() - t0)
            rss_end = rss_kib(proc.pid)

            def get(_i: int) -> int:
                return request(port, "GET", "/snapshots", None, auth)

            # SPEC 6: a token-bearing client is answered while 100 idle connections are
            # open (each sent half a request line and waits): same GET, with and without.
            quiet_rate, quiet_p99 = timed(posts, 1, get, 200)
            idle = [half_open(port) for _ in range(IDLE)]
            try:
                busy_rate, busy_p99 = timed(posts, 1, get, 200)
            finally:
                for sock in idle:
                    sock.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    healthz = "GET /healthz, 1 client"
    return [
        Figure("bridge valid posts/s, 1 client", rate1, "/s", healthz, base_rate),
        Figure("bridge valid post p99, 1 client", p99_1 * 1000, "ms", healthz, base_p99 * 1000),
        Figure("bridge valid posts/s, 4 clients", rate4, "/s", healthz, base_rate),
        Figure("bridge valid post p99, 4 clients", p99_4 * 1000, "ms", healthz, base_p99 * 1000),
        Figure("bridge rejected posts/s (400/401)", reject_rate, "/s", healthz, base_rate),
        Figure(
            f"bridge GET /snapshots p99, {IDLE} idle conns open",
            busy_p99 * 1000,
            "ms",
            "same, none open",
            quiet_p99 * 1000,
            "~1x",
        ),
        Figure(
            f"bridge GET /snapshots/s, {IDLE} idle conns open",
            busy_rate,
            "/s",
            "same, none open",
            quiet_rate,
            "~1x",
        ),
        Figure(
            f"bridge RSS after {rejected} rejected posts",
            rss_end / 1024,
            "MiB",
            f"after {posts * 2 + 2} valid",
            rss_start / 1024,
            "~1x",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1000, help="valid posts per run")
    parser.add_argument("--rejected", type=int, default=10_000, help="rejected posts")
    args = parser.parse_args()
    print(common.machine())
    print(common.table(measure(args.posts, args.rejected)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
