"""The extension in a real browser: Debian's Chromium, headless, with the unpacked
``extension/`` loaded, claude.ai mapped to a loopback HTTPS fake, posting to the real
bridge subprocess. What the node tests cannot show is shown here: the browser's own
fetch, cookies, Origin and CORS, the popup page as a person uses it.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.chromium import Cdp, Chromium, start_chromium
from tests.helpers import LOGIN_ORG, Bridge, cli_rows, fixture, fixture_body, start_bridge, wait_for
from tests.upstream import FakeUpstream, Reply, self_signed

EXTENSION = Path(__file__).resolve().parent.parent / "extension"
#: The browser's own claude.ai cookie; the fake checks the extension sends it.
SESSION_COOKIE = "sessionKey=sk-ant-sid01-browser-test"
#: Set to a path to keep the popup's screenshot (docs/extension-popup.png is made so).
SCREENSHOT_ENV = "CLAUDEMETER_TEST_SCREENSHOT"


def _rfc3339(offset: timedelta) -> str:
    return (datetime.now(timezone.utc) + offset).isoformat()


def _usage_now() -> dict[str, Any]:
    """The fixture's usage body with resets in the future, so it reads as current."""
    usage = fixture_body("claude_ai_usage.json")
    usage["five_hour"]["resets_at"] = _rfc3339(timedelta(hours=2))
    usage["seven_day"]["resets_at"] = _rfc3339(timedelta(days=3))
    return usage


def _tls_for_claude_ai(directory: Path) -> ssl.SSLContext:
    """A certificate for claude.ai; the browser is told to accept it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed(directory, "DNS:claude.ai"))
    return context


@dataclass
class Browser:
    chromium: Chromium
    claude_ai: FakeUpstream
    extension_id: str

    def worker(self) -> Cdp:
        target = next(t for t in self.chromium.targets() if t["type"] == "service_worker")
        return self.chromium.connect(target)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    root = tmp_path_factory.mktemp("browser")
    claude_ai = FakeUpstream()
    claude_ai.routes["/api/account"] = Reply(200, fixture("claude_ai_account.json"))
    org = f"/api/organizations/{LOGIN_ORG}"
    claude_ai.routes[f"{org}/usage"] = lambda seen: Reply(200, _usage_now())
    claude_ai.routes[f"{org}/overage_spend_limit"] = Reply(
        200, fixture("claude_ai_overage_spend_limit.json")
    )
    claude_ai.routes[f"{org}/subscription_details"] = Reply(
        200, fixture("claude_ai_subscription_details.json")
    )
    tls = _tls_for_claude_ai(root)
    # The handshake happens in the request's own thread, not in the accept loop.
    claude_ai.server.socket = tls.wrap_socket(
        claude_ai.server.socket, server_side=True, do_handshake_on_connect=False
    )
    claude_ai.start()
    port = claude_ai.server.server_address[1]
    chromium = start_chromium(
        root / "profile",
        f"--load-extension={EXTENSION}",
        f"--disable-extensions-except={EXTENSION}",
        f"--host-resolver-rules=MAP claude.ai 127.0.0.1:{port}",
        "--ignore-certificate-errors",
    )
    try:
        worker = wait_for(
            lambda: next((t for t in chromium.targets() if t["type"] == "service_worker"), None),
            what="the extension's service worker in the DevTools list",
        )
        assert worker["url"].endswith("/background.js")
        extension_id = worker["url"].split("/")[2]
        session = chromium.browser()
        try:  # the browser's own claude.ai login, as a person's browser has one
            name, value = SESSION_COOKIE.split("=", 1)
            session.call(
                "Storage.setCookies",
                cookies=[
                    {
                        "name": name,
                        "value": value,
                        "domain": "claude.ai",
                        "path": "/",
                        "secure": True,
                        "httpOnly": True,
                        "sameSite": "Lax",
                    }
                ],
            )
        finally:
            session.close()
        yield Browser(chromium, claude_ai, extension_id)
    finally:
        chromium.stop()
        claude_ai.stop()


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    running = start_bridge(tmp_path)
    yield running
    running.stop()


def _pair_in_popup(popup: Cdp, token: str, port: int) -> None:
    """What a person does: paste the token (and the port of a non-default bridge), Save."""
    popup.evaluate(
        f"""(async () => {{
            const set = (id, text) => {{
                const input = document.getElementById(id);
                input.focus();
                input.value = text;
                input.dispatchEvent(new Event("input", {{ bubbles: true }}));
            }};
            set("token", {json.dumps(token)});
            set("port", {json.dumps(str(port))});
            document.getElementById("save").click();
        }})()"""
    )


def test_pairing_in_the_popup_puts_this_browsers_row_in_claude_meter(
    browser: Browser, bridge: Bridge, tmp_path: Path
) -> None:
    popup = browser.chromium.open_tab(f"chrome-extension://{browser.extension_id}/popup.html")
    try:
        wait_for(
            # A new tab is about:blank for a moment before the popup page loads.
            lambda: popup.evaluate("document.getElementById('browser')?.placeholder"),
            what="the popup to load",
        )
        name = popup.evaluate("document.getElementById('browser').placeholder")
        assert name in {"Chromium", "Chrome"}, name  # what detectBrowser calls this browser
        # Installed but not paired: it read claude.ai, and says what the person must do.
        wait_for(
            lambda: (
                "claude-meter pair"
                in popup.evaluate("document.getElementById('error').textContent")
            ),
            what="the popup to ask for the token",
        )
        assert cli_rows("--json", "--cached") == []

        _pair_in_popup(popup, bridge.token, bridge.port)

        def landed() -> list[dict[str, Any]]:
            return [r for r in cli_rows("--json", "--cached") if r["org_uuid"] == LOGIN_ORG]

        rows = wait_for(landed, what="the extension's row in claude-meter --json")
        assert [(r["browser"], r["account_email"]) for r in rows] == [(name, "ada@example.com")]
        usage = rows[0]["usage"]
        assert (usage["five_hour"]["utilization"], usage["seven_day"]["utilization"]) == (62, 22)
        assert rows[0]["overage"] is not None and rows[0]["subscription"] is not None
        assert f"stored 1 snapshot from {name}" in bridge.output()

        # The browser's own session went to claude.ai with the extension's reads.
        account = browser.claude_ai.hits("/api/account")
        assert account and SESSION_COOKIE in account[-1].headers.get("Cookie", "")

        # The popup shows what the worker fetched, as the person sees it.
        def rows_shown() -> str:
            text: str = popup.evaluate("document.getElementById('rows').innerText")
            return text if "ada@example.com" in text else ""

        shown = wait_for(rows_shown, what="the popup to show the account")
        assert "62%" in shown and "22%" in shown, shown
        assert popup.evaluate("document.getElementById('error').textContent") == ""
        assert f"in {name}" in popup.evaluate("document.getElementById('fetched').textContent")
        assert popup.evaluate("document.getElementById('port').value") == str(bridge.port)
        picture = _screenshot(popup)
        assert picture.startswith(b"\x89PNG\r\n\x1a\n")
        (tmp_path / "popup.png").write_bytes(picture)
        if os.environ.get(SCREENSHOT_ENV):
            Path(os.environ[SCREENSHOT_ENV]).write_bytes(picture)
    finally:
        popup.close()

    # The service worker itself: its alarm is set, its last cycle was accepted, and a
    # change it hears about (a new browser name) is posted at once.
    worker = browser.worker()
    try:
        assert worker.evaluate("chrome.alarms.get('claudemeter').then(a => a.periodInMinutes)") == 1
        last = worker.evaluate(
            "chrome.storage.local.get('last').then(({last}) => [last.accepted, last.lastError])"
        )
        assert last == [1, None]
        worker.evaluate("chrome.storage.local.set({browserName: 'Work Chromium'})")
    finally:
        worker.close()
    wait_for(
        lambda: (
            [r["browser"] for r in cli_rows("--json", "--cached")] == [f"{name}, Work Chromium"]
        ),
        what="the renamed browser's reading folded into the row",
    )


def _screenshot(page: Cdp) -> bytes:
    """The popup at the size a browser gives it (its body is 300 px wide)."""
    height = page.evaluate("Math.ceil(document.documentElement.getBoundingClientRect().height)")
    page.call(
        "Emulation.setDeviceMetricsOverride",
        width=322,
        height=int(height),
        deviceScaleFactor=1,
        mobile=False,
    )
    data = page.call("Page.captureScreenshot", format="png")["data"]
    return base64.b64decode(data)


#: What a hostile page on loopback tries, each with the REAL token (the worst case: the
#: token leaked). Every attempt must fail in the page, and the bridge must store nothing.
ATTACKS = """(async (bridge, token) => {
  const snapshot = JSON.stringify([{org_uuid: "evil-org", browser: "a web page",
    account_email: null, fetched_at: new Date().toISOString(), usage: null,
    overage: null, subscription: null, errors: []}]);
  const auth = {Authorization: `Bearer ${token}`};
  const tries = {
    "POST json with token": () => fetch(`${bridge}/snapshots`, {method: "POST",
      headers: {"Content-Type": "application/json", ...auth}, body: snapshot}),
    "POST text/plain (no preflight)": () => fetch(`${bridge}/snapshots`, {method: "POST",
      headers: {"Content-Type": "text/plain"}, body: snapshot}),
    "GET snapshots with token": () => fetch(`${bridge}/snapshots`, {headers: auth}),
    "GET snapshots": () => fetch(`${bridge}/snapshots`),
    "GET healthz": () => fetch(`${bridge}/healthz`),
  };
  const out = {};
  for (const [what, go] of Object.entries(tries)) {
    try {
      const response = await go();
      out[what] = `read HTTP ${response.status}: ${await response.text()}`;
    } catch (error) {
      out[what] = `failed: ${error.name}`;
    }
  }
  // A no-cors request reaches the server but its answer stays opaque to the page.
  const blind = await fetch(`${bridge}/snapshots`, {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "text/plain"}, body: snapshot});
  out["no-cors POST"] = `${blind.type} ${blind.status} ${JSON.stringify(await blind.text())}`;
  return out;
})"""


def test_a_web_page_on_loopback_can_neither_post_to_nor_read_the_bridge(
    browser: Browser, bridge: Bridge
) -> None:
    page_server = FakeUpstream()
    page_server.routes["/"] = Reply(200, {"page": "any web page on this machine"})
    page_server.start()
    page = browser.chromium.open_tab(page_server.url + "/")
    try:
        wait_for(lambda: page.evaluate("location.origin") == page_server.url, what="the page")
        before = cli_rows("--json", "--cached")
        outcome = page.evaluate(
            f"{ATTACKS}({json.dumps(f'http://127.0.0.1:{bridge.port}')},"
            f" {json.dumps(bridge.token)})"
        )
    finally:
        page.close()
        page_server.stop()
    assert outcome == {
        "POST json with token": "failed: TypeError",  # the preflight was refused
        "POST text/plain (no preflight)": "failed: TypeError",  # sent, refused, unreadable
        "GET snapshots with token": "failed: TypeError",
        "GET snapshots": "failed: TypeError",
        "GET healthz": "failed: TypeError",
        "no-cors POST": 'opaque 0 ""',
    }, outcome
    # The browser sent the page's Origin, and our check (not only CORS) refused it.
    assert f"refused 403: Origin '{page_server.url}' is not a browser extension" in (
        bridge.output()
    )
    assert "stored" not in bridge.output()
    assert cli_rows("--json", "--cached") == before
    assert all(r["org_uuid"] != "evil-org" for r in cli_rows("--json", "--cached"))
