// The extension's cycle against a fake claude.ai on loopback: what it asks, what it builds.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";

import { BRIDGE_URL, badgeFor, bridgeUrl, detectBrowser, fetchSnapshots, runCycle, summarize } from "../lib/meter.js";
import { ORG, browserFetch, fixture, startFakeClaudeAi } from "./helpers.mjs";

describe("detectBrowser", () => {
  const chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
  const brands = (...names) => ({ brands: names.map((brand) => ({ brand, version: "131" })) });
  const cases = [
    [{ userAgent: chromeUA, userAgentData: brands("Google Chrome", "Chromium", "Not_A Brand") }, "Chrome"],
    [{ userAgent: chromeUA, userAgentData: brands("Chromium", "Not_A Brand") }, "Chromium"],
    [{ userAgent: `${chromeUA} Edg/131.0.0.0`, userAgentData: brands("Microsoft Edge", "Chromium") }, "Edge"],
    [{ userAgent: `${chromeUA} Edg/131.0.0.0` }, "Edge"],
    [{ userAgent: `${chromeUA} OPR/115.0.0.0` }, "Opera"],
    [{ userAgent: chromeUA, userAgentData: brands("Chromium"), brave: { isBrave: async () => true } }, "Brave"],
    [{ userAgent: chromeUA, userAgentData: brands("Brave", "Chromium") }, "Brave"],
    [{ userAgent: chromeUA }, "Chrome"],
  ];
  for (const [nav, name] of cases) {
    test(`${name} from ${JSON.stringify(nav.userAgentData?.brands?.map((b) => b.brand) ?? nav.userAgent.slice(-20))}`, () => {
      assert.equal(detectBrowser(nav), name);
    });
  }
});

describe("badgeFor", () => {
  const at = (pct) => [{ usage: { five_hour: { utilization: pct } } }];
  test("tiers follow warn 70 / crit 90", () => {
    assert.deepEqual([badgeFor(at(62), false).text, badgeFor(at(75), false).text, badgeFor(at(95), false).text], ["62%", "75%", "95%"]);
    const colours = new Set([62, 75, 95].map((p) => badgeFor(at(p), false).color));
    assert.equal(colours.size, 3);
  });
  test("over 100 still fits", () => assert.equal(badgeFor(at(104.4), false).text, "104"));
  test("the highest org wins", () => assert.equal(badgeFor([...at(10), ...at(80)], false).text, "80%"));
  test("? without a number, ! on failure", () => {
    assert.equal(badgeFor([{ usage: { five_hour: { utilization: null } } }], false).text, "?");
    assert.equal(badgeFor([], false).text, "?");
    assert.equal(badgeFor(at(50), true).text, "!");
  });
});

describe("the cycle against a fake claude.ai", () => {
  let claude;
  before(async () => (claude = await startFakeClaudeAi()));
  after(() => claude.close());
  beforeEach(() => {
    claude.requests.length = 0;
  });

  test("one snapshot per chat org, bodies as the server sent them, cookies left to the browser", async () => {
    const spy = browserFetch();
    const now = () => new Date("2026-11-25T12:00:00.123Z");
    const { snapshots, orgs, problem } = await fetchSnapshots({ fetch: spy.fetch, base: claude.url, browser: "Chrome", now });
    assert.equal(problem, null);
    assert.deepEqual(orgs, [ORG]);
    assert.deepEqual(snapshots, [
      {
        org_uuid: ORG,
        browser: "Chrome",
        account_email: "ada@example.com",
        fetched_at: "2026-11-25T12:00:00.123Z",
        usage: fixture("claude_ai_usage.json"),
        overage: fixture("claude_ai_overage_spend_limit.json"),
        subscription: fixture("claude_ai_subscription_details.json"),
        errors: [],
      },
    ]);
    assert.deepEqual(
      claude.requests.map((r) => r.path).sort(),
      ["/api/account", ...["overage_spend_limit", "subscription_details", "usage"].map((p) => `/api/organizations/${ORG}/${p}`)],
    );
    for (const call of spy.calls) {
      assert.equal(call.init.credentials, "include");
      assert.equal(call.init.headers.Authorization, undefined);
      assert.equal(call.init.headers.Cookie, undefined);
    }
  });

  test("a failed account look-up still posts the org, email null, error recorded", async () => {
    claude.routes.set("/api/account", { status: 503, body: { error: "overloaded" } });
    try {
      const { snapshots } = await fetchSnapshots({ fetch: browserFetch().fetch, base: claude.url, browser: "Brave" });
      assert.equal(snapshots.length, 1, "the API-only org is not a chat org");
      assert.equal(snapshots[0].org_uuid, ORG);
      assert.equal(snapshots[0].account_email, null);
      assert.deepEqual(snapshots[0].errors, ["account: HTTP 503 from /api/account"]);
      assert.deepEqual(snapshots[0].usage, fixture("claude_ai_usage.json"));
    } finally {
      claude.routes.set("/api/account", { status: 200, body: fixture("claude_ai_account.json") });
    }
  });

  test("with no way to list orgs, the last known ones are used", async () => {
    claude.routes.set("/api/account", { status: 403, body: { error: "forbidden" } });
    claude.routes.set("/api/organizations", { status: 403, body: { error: "forbidden" } });
    try {
      const known = await fetchSnapshots({ fetch: browserFetch().fetch, base: claude.url, browser: "Chrome", knownOrgs: [ORG] });
      assert.equal(known.snapshots[0].org_uuid, ORG);
      assert.equal(known.snapshots[0].errors.length, 2);
      assert.match(known.snapshots[0].errors[0], /account: HTTP 403 .*signed in/);
      const none = await runCycle({ fetch: browserFetch().fetch, base: claude.url, bridge: "http://127.0.0.1:9", token: "t", browser: "Chrome" });
      assert.deepEqual(none.snapshots, []);
      assert.match(none.lastError, /HTTP 403/);
      assert.equal(none.badge.text, "!");
    } finally {
      claude.routes.set("/api/account", { status: 200, body: fixture("claude_ai_account.json") });
      claude.routes.set("/api/organizations", { status: 200, body: fixture("claude_ai_organizations.json") });
    }
  });

  test("each failed call lands in errors and the rest is kept", async () => {
    const usagePath = `/api/organizations/${ORG}/usage`;
    const overagePath = `/api/organizations/${ORG}/overage_spend_limit`;
    claude.routes.set(usagePath, { status: 200, body: "<html>Just a moment...</html>" });
    claude.routes.set(overagePath, { status: 500, body: { error: "boom" } });
    try {
      const { snapshots } = await fetchSnapshots({ fetch: browserFetch().fetch, base: claude.url, browser: "Chrome" });
      const [snap] = snapshots;
      assert.equal(snap.usage, null);
      assert.equal(snap.overage, null);
      assert.deepEqual(snap.subscription, fixture("claude_ai_subscription_details.json"));
      assert.equal(snap.errors.length, 2);
      assert.match(snap.errors.find((e) => e.startsWith("usage")), /did not answer JSON/);
      assert.match(snap.errors.find((e) => e.startsWith("overage")), /HTTP 500/);
    } finally {
      claude.routes.set(usagePath, { status: 200, body: fixture("claude_ai_usage.json") });
      claude.routes.set(overagePath, { status: 200, body: fixture("claude_ai_overage_spend_limit.json") });
    }
  });

  test("utilization is never rescaled", async () => {
    const usagePath = `/api/organizations/${ORG}/usage`;
    const body = { five_hour: { utilization: 0.5, resets_at: null }, seven_day: { utilization: 140.25, resets_at: null }, new_window: { utilization: 1 } };
    claude.routes.set(usagePath, { status: 200, body });
    try {
      const { snapshots } = await fetchSnapshots({ fetch: browserFetch().fetch, base: claude.url, browser: "Chrome" });
      assert.deepEqual(snapshots[0].usage, body);
      assert.deepEqual(summarize(snapshots).map((r) => [r.fiveHour, r.sevenDay]), [["0.5%", "140.3%"]]);
    } finally {
      claude.routes.set(usagePath, { status: 200, body: fixture("claude_ai_usage.json") });
    }
  });

  test("no token: the numbers show, the badge says something is wrong", async () => {
    const result = await runCycle({ fetch: browserFetch().fetch, base: claude.url, bridge: "http://127.0.0.1:9", token: "", browser: "Chrome" });
    assert.equal(result.rows[0].fiveHour, "62%");
    assert.match(result.lastError, /claude-meter pair/);
    assert.equal(result.badge.text, "!");
  });
});

test("bridgeUrl moves only the port, and only to a real one", () => {
  assert.equal(bridgeUrl(undefined), BRIDGE_URL);
  assert.equal(bridgeUrl(""), BRIDGE_URL);
  assert.equal(bridgeUrl(40123), "http://127.0.0.1:40123");
  assert.equal(bridgeUrl(" 40123 "), "http://127.0.0.1:40123");
  for (const bad of [0, 65536, -1, 1.5, "12ab", "evil.example:80", "1e3", null, "063762x"]) {
    assert.equal(bridgeUrl(bad), BRIDGE_URL, `${bad} keeps the default`);
  }
});
