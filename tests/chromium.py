"""A real headless Chromium for tests, and a small DevTools-protocol client to drive it.

Debian's ``chromium`` in the new headless mode, as root with ``--no-sandbox``, a fresh
profile, and nothing that reaches for the network on its own (the test machine has none).
The protocol goes over a WebSocket: ``websocket-client`` (a test extra) speaks it, because
a correct client — handshake, masking, fragmented and control frames — is more code than
this whole helper and would need tests of its own; that library is pure Python, has no
dependencies and has been maintained since 2010. Each target (the extension's service
worker, a tab) has its own socket, listed by ``GET /json/list``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.helpers import wait_for

#: Without these, Chromium's own traffic (updates, sync, QUIC probes) misbehaves offline.
QUIET_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
)


class CdpError(Exception):
    """The browser answered a command with an error, or a script threw."""


class Cdp:
    """One DevTools session: ``call`` sends a command and returns its result."""

    def __init__(self, ws_url: str) -> None:
        # DevTools refuses a WebSocket whose Origin it does not know; send none.
        self._ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self._next = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:  # events arrive in between; only our answer ends the wait
            message = json.loads(self._ws.recv())
            if message.get("id") != ident:
                continue
            if "error" in message:
                raise CdpError(f"{method}: {message['error']}")
            result: dict[str, Any] = message["result"]
            return result

    def evaluate(self, expression: str) -> Any:
        """Run JavaScript in the target (awaiting a promise) and return its JSON value."""
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"script threw: {text}")
        return result["result"].get("value")

    def close(self) -> None:
        self._ws.close()


@dataclass
class Chromium:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def targets(self) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/json/list"
        with urllib.request.urlopen(url, timeout=10) as answer:
            found: list[dict[str, Any]] = json.load(answer)
        return found

    def connect(self, target: dict[str, Any]) -> Cdp:
        return Cdp(str(target["webSocketDebuggerUrl"]))

    def browser(self) -> Cdp:
        url = f"http://127.0.0.1:{self.port}/json/version"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return Cdp(json.load(answer)["webSocketDebuggerUrl"])

    def open_tab(self, url: str) -> Cdp:
        """A new tab at ``url``; returns a session attached to it."""
        browser = self.browser()
        try:
            target_id = browser.call("Target.createTarget", url=url)["targetId"]
        finally:
            browser.close()
        target = wait_for(
            lambda: next((t for t in self.targets() if t["id"] == target_id), None),
            what=f"the tab for {url}",
        )
        return self.connect(target)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_chromium(profile: Path, *flags: str) -> Chromium:
    """Start Chromium with a fresh profile in ``profile`` and the DevTools port it picks."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: `apt-get install chromium` (.ci/run does)")
    profile.mkdir(parents=True)
    log = profile.parent / "chromium.log"
    env = {**os.environ, "HOME": str(profile)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                *QUIET_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                *flags,
                "about:blank",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its renderers and helpers go with it on stop()
        )
    port_file = profile / "DevToolsActivePort"

    def port() -> int | None:
        if proc.poll() is not None:
            pytest.fail(f"chromium exited {proc.returncode}: {log.read_text()[-2000:]}")
        text = port_file.read_text() if port_file.exists() else ""
        first = text.split("\n", 1)[0].strip()
        return int(first) if first.isdigit() else None

    chromium = Chromium(proc, 0, log)
    try:
        chromium.port = wait_for(port, "chromium's DevTools port", 60.0)
    except BaseException:  # a browser that came up too late must not outlive the test
        chromium.stop()
        raise
    return chromium
