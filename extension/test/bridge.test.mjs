// The extension's cycle end to end: fake claude.ai → lib/meter.js → the real bridge
// (`python -m claudemeter serve`) → `claude-meter --json`.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { runCycle } from "../lib/meter.js";
import { ORG, browserFetch, fixture, startBridge, startFakeClaudeAi } from "./helpers.mjs";

describe("extension → real bridge → claude-meter --json", () => {
  let claude;
  let bridge;
  before(async () => {
    claude = await startFakeClaudeAi();
    bridge = await startBridge();
  });
  after(async () => {
    await claude.close();
    const status = await bridge.stop();
    assert.deepEqual(status, { code: 0, signal: null }, "SIGTERM is a clean exit");
  });

  const cycle = (browser, options = {}) =>
    runCycle({ fetch: browserFetch(options.origin).fetch, base: claude.url, bridge: bridge.url, token: bridge.token, browser, ...options });

  test("a wrong token is refused with the bridge's reason and stores nothing", async () => {
    const result = await cycle("Chrome", { token: "not-the-token-at-all-000000" });
    assert.equal(result.accepted, 0);
    assert.match(result.lastError, /^bridge: HTTP 401: wrong token/);
    assert.equal(result.badge.text, "!");
    assert.deepEqual(await bridge.rows(), []);
  });

  test("a web page's Origin is refused", async () => {
    const result = await cycle("Chrome", { origin: "https://evil.example" });
    assert.match(result.lastError, /^bridge: HTTP 403: Origin/);
    assert.deepEqual(await bridge.rows(), []);
  });

  test("one cycle lands as the account's row", async () => {
    const result = await cycle("Chrome");
    assert.equal(result.lastError, null);
    assert.equal(result.accepted, 1);
    assert.equal(result.badge.text, "62%");
    const rows = await bridge.rows();
    assert.equal(rows.length, 1);
    const [row] = rows;
    assert.equal(row.org_uuid, ORG);
    assert.equal(row.browser, "Chrome");
    assert.equal(row.account_email, "ada@example.com");
    // What the browser sent, plus every window ClaudeMeter's scripts index (SPEC 3), null
    // when unknown: GET /snapshots prints what `claude-meter --json` prints.
    const compat = ["five_hour", "seven_day", "seven_day_sonnet", "seven_day_opus",
      "seven_day_oauth_apps", "seven_day_omelette", "seven_day_cowork", "extra_usage"];
    const expected = Object.fromEntries(compat.map((name) => [name, null]));
    assert.deepEqual(row.usage, { ...expected, ...fixture("claude_ai_usage.json") });
    assert.equal(row.overage.out_of_credits, false);
    assert.equal(row.subscription.status, "active");
    assert.deepEqual(row.errors, []);
    assert.equal(row.stale, false);
  });

  test("a second browser, even one whose account look-up failed, folds into the same row", async () => {
    claude.routes.set("/api/account", { status: 503, body: {} });
    try {
      const result = await cycle("Arc");
      assert.equal(result.accepted, 1);
      assert.equal(result.snapshots[0].account_email, null);
    } finally {
      claude.routes.set("/api/account", { status: 200, body: fixture("claude_ai_account.json") });
    }
    const rows = await bridge.rows();
    assert.equal(rows.length, 1);
    assert.equal(rows[0].browser, "Chrome, Arc");
    assert.equal(rows[0].account_email, "ada@example.com");
    assert.deepEqual(rows[0].errors, ["account: HTTP 503 from /api/account"], "the newest reading's errors");
    const shown = await bridge.claudeMeter("--cached");
    assert.match(shown, /ada@example\.com/);
  });

  test("the bridge never echoes the token", () => {
    assert.ok(bridge.token.length >= 20);
    assert.equal(bridge.output().includes(bridge.token), false);
  });
});

test("a bridge that is not running is named in the error", async () => {
  const claude = await startFakeClaudeAi();
  try {
    const result = await runCycle({ fetch: browserFetch().fetch, base: claude.url, bridge: "http://127.0.0.1:9", token: "x".repeat(43), browser: "Edge" });
    assert.match(result.lastError, /claude-meter serve/);
    assert.equal(result.badge.text, "!");
  } finally {
    await claude.close();
  }
});
