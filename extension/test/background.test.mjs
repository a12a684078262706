// The service worker's wiring (alarms, storage, badge, the popup's message) with an
// in-memory `chrome`, its real `fetch` pointed at the fake claude.ai and the real bridge.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { BRIDGE_URL, CLAUDE_AI } from "../lib/meter.js";
import { EXTENSION_ORIGIN, ORG, startBridge, startFakeClaudeAi } from "./helpers.mjs";

function fakeChrome() {
  const listeners = {};
  const local = {};
  const alarms = {};
  const action = {};
  const event = (name) => ({ addListener: (fn) => (listeners[name] ??= []).push(fn) });
  const pick = (keys) => Object.fromEntries(keys.filter((k) => k in local).map((k) => [k, structuredClone(local[k])]));
  const chrome = {
    alarms: {
      get: async (name) => alarms[name],
      create: async (name, info) => {
        alarms[name] = info;
      },
      onAlarm: event("alarm"),
    },
    storage: {
      local: {
        get: async (keys) => pick(keys),
        set: async (items) => {
          const changes = Object.fromEntries(Object.entries(items).map(([k, v]) => [k, { oldValue: local[k], newValue: v }]));
          Object.assign(local, structuredClone(items));
          for (const fn of listeners.storage ?? []) fn(changes, "local");
        },
      },
      onChanged: event("storage"),
    },
    action: {
      setBadgeText: async ({ text }) => (action.text = text),
      setBadgeBackgroundColor: async ({ color }) => (action.color = color),
      setTitle: async ({ title }) => (action.title = title),
    },
    runtime: { onInstalled: event("installed"), onStartup: event("startup"), onMessage: event("message") },
  };
  return { chrome, listeners, local, alarms, action };
}

let claude;
let bridge;
const realFetch = globalThis.fetch;
before(async () => {
  claude = await startFakeClaudeAi();
  bridge = await startBridge();
  // The worker's own `fetch`, with the two fixed addresses moved to loopback test servers
  // and the Origin header Chrome adds to an extension's requests.
  globalThis.fetch = (url, init = {}) => {
    const moved = String(url).replace(CLAUDE_AI, claude.url).replace(BRIDGE_URL, bridge.url);
    return realFetch(moved, { ...init, headers: { ...(init.headers ?? {}), Origin: EXTENSION_ORIGIN } });
  };
});
after(async () => {
  globalThis.fetch = realFetch;
  await claude.close();
  await bridge.stop();
});

test("install schedules the alarm; a token and a refresh put the row in claude-meter", async () => {
  const fake = fakeChrome();
  globalThis.chrome = fake.chrome;
  Object.defineProperty(globalThis, "navigator", {
    configurable: true,
    value: { userAgent: "Mozilla/5.0 Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0" },
  });
  await import("../background.js");
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(fake.alarms.claudemeter, { periodInMinutes: 1, delayInMinutes: 1 },
    "a worker woken by anything re-creates a lost alarm");
  const ask = () => new Promise((reply) => {
    const handled = fake.listeners.message[0]({ type: "refresh" }, {}, reply);
    assert.equal(handled, true, "the reply comes asynchronously");
  });

  fake.listeners.installed[0]();
  const first = await ask(); // joins the install's cycle: no token yet
  assert.deepEqual(fake.alarms.claudemeter, { periodInMinutes: 1, delayInMinutes: 1 });
  assert.match(first.lastError, /claude-meter pair/);
  assert.equal(fake.action.text, "!");
  assert.deepEqual(await bridge.rows(), []);

  await fake.chrome.storage.local.set({ token: bridge.token });
  const second = await ask();
  assert.equal(second.lastError, null);
  assert.equal(second.accepted, 1);
  assert.equal(fake.action.text, "62%");
  assert.match(fake.action.title, /ada@example\.com: 5-hour 62% · 7-day 22%/);
  assert.deepEqual(fake.local.orgs, [ORG]);
  assert.equal(JSON.stringify(fake.local.last).includes(bridge.token), false, "the result never holds the token");
  const rows = await bridge.rows();
  assert.deepEqual(rows.map((r) => [r.org_uuid, r.browser]), [[ORG, "Edge"]]);

  assert.equal(fake.listeners.message[0]({ type: "something else" }, {}, () => {}), false);
});
