"""``claude-meter serve``: the loopback bridge, the OAuth poller and the peer puller in
one foreground process, one per state directory.

The bridge (:mod:`claudemeter.bridge`) answers the browser extension; the poller
(:mod:`claudemeter.poller`) keeps the Claude Code login's reading fresh; the puller
(:mod:`claudemeter.peers`) copies the rows of the bridges in ``CLAUDEMETER_PEERS``. A
second ``serve`` for the same state directory finds the first's lock and exits 1.
SIGTERM or SIGINT stops all three, letting requests already inside finish their write.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from . import env, peers, pidfile
from .bridge import (
    DRAIN_SECONDS,
    INSTANCE_LOCK,
    PID_FILE,
    Bridge,
    BridgeServer,
    RefusalLog,
    TokenFile,
    is_loopback_host,
)
from .flock import LockTimeout
from .model import printable
from .poller import keep_fresh
from .private import private_lock, write_private
from .store import Store


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help="listen on this port instead of CLAUDEMETER_BRIDGE's (default 63762);"
        " 0 picks a free one and prints it",
    )
    parser.add_argument(
        "--peer-every",
        type=float,
        default=peers.PULL_EVERY,
        metavar="SECONDS",
        help="pull each bridge in CLAUDEMETER_PEERS at least this often"
        f" (default {peers.PULL_EVERY:.0f}); sooner when its newest reading is due"
        " to be replaced",
    )


def _say(message: str, stream: Any = None) -> None:
    print(f"claude-meter serve: {printable(message)}", file=stream or sys.stderr, flush=True)


def _log(message: str) -> None:
    _say(f"{time.strftime('%H:%M:%S')} {message}")


def _address(args: argparse.Namespace) -> env.HostPort:
    address = env.bridge_address()
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port {args.port} is out of range")
        address = env.HostPort(address.host, args.port)
    if not is_loopback_host(address.host):
        raise ValueError(
            f"refusing to listen on {address.host}: the bridge is loopback only"
            " (reach it from another machine through an SSH tunnel, see the README)"
        )
    if address.host.lower() == "localhost":
        address = env.HostPort("127.0.0.1", address.port)
    return address


def cmd_serve(args: argparse.Namespace) -> int:
    if not args.peer_every > 0:
        _say(f"--peer-every {args.peer_every}: give a number of seconds above 0")
        return 1
    try:
        address = _address(args)
    except ValueError as exc:
        _say(f"bad CLAUDEMETER_BRIDGE/--port: {exc}")
        return 1
    directory = env.state_dir()
    try:
        lock = private_lock(directory / INSTANCE_LOCK, 0)
        lock.acquire()
    except LockTimeout:
        _say(f"a bridge is already running for {directory}")
        return 1
    except OSError as exc:
        _say(f"cannot use the state dir {directory}: {exc.strerror or exc}")
        return 1
    record = directory / PID_FILE
    try:
        with contextlib.suppress(OSError):  # without it, only `stop` cannot find us
            write_private(record, f"{pidfile.this_process().line()}\n".encode())
        return _serve(address, directory, args.peer_every)
    finally:
        with contextlib.suppress(OSError):
            record.unlink()
        lock.release()


def _serve(address: env.HostPort, directory: Path, peer_every: float) -> int:
    token = TokenFile(directory)
    try:
        token.current()
    except OSError as exc:
        _say(f"cannot create the token in {directory}: {exc.strerror or exc}")
        return 1
    store = Store(directory)
    bridge = Bridge(store, token, _log, RefusalLog(_log))
    try:
        server = BridgeServer(address, bridge)
    except OSError as exc:
        _say(
            f"cannot listen on {address}: {exc.strerror or exc}"
            " (is another program using it? try --port or CLAUDEMETER_BRIDGE)"
        )
        return 1
    stop = threading.Event()
    wake = threading.Event()  # the poller's: set to refresh now (a stop, a peer round)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        wake.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    serving = threading.Thread(target=server.serve_forever, name="bridge", daemon=True)
    poller = threading.Thread(
        target=keep_fresh, args=(store, stop, wake, _log), name="poller", daemon=True
    )
    peer_list, problems = peers.configured()
    puller = peers.Puller(store, peer_list, _log, peer_every)
    try:
        serving.start()
        _say(f"listening on {server.url} (state in {directory}); Ctrl-C to stop", sys.stdout)
        for problem in problems:
            _log(problem)
        if peer_list:
            puller.round()  # before the first refresh: a fresh peer spares that request
            threading.Thread(
                target=puller.run, args=(stop, wake.set), name="peers", daemon=True
            ).start()
        poller.start()
        follow(store, stop)
        while not stop.wait(1.0):
            pass
    finally:
        server.shutdown()
        server.drain(DRAIN_SECONDS)
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _say("stopped", sys.stdout)
    return 0


def follow(store: Store, stop: threading.Event) -> None:
    """With a fleet's Redis: push this host's writes and pull the others' at once."""
    from . import shared

    fleet = shared.configured()
    if fleet is not None:
        follower = shared.Follower(store, fleet, _log)
        threading.Thread(target=follower.run, args=(stop,), name="fleet", daemon=True).start()
