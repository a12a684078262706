// The service worker: wires lib/meter.js to alarms, storage and the badge. A worker may
// be stopped between alarms, so everything it needs next time lives in storage.local.
import { bridgeUrl, detectBrowser, runCycle } from "./lib/meter.js";

const ALARM = "claudemeter";
let running = null;

async function ensureAlarm() {
  if (!(await chrome.alarms.get(ALARM))) {
    await chrome.alarms.create(ALARM, { periodInMinutes: 1, delayInMinutes: 1 });
  }
}

async function cycleOnce() {
  const { token, browserName, orgs, bridgePort } = await chrome.storage.local.get([
    "token",
    "browserName",
    "orgs",
    "bridgePort",
  ]);
  const result = await runCycle({
    fetch: (url, init) => fetch(url, init),
    bridge: bridgeUrl(bridgePort),
    token,
    browser: browserName || detectBrowser(navigator),
    knownOrgs: Array.isArray(orgs) ? orgs : [],
  });
  await chrome.storage.local.set({ last: result, orgs: result.orgs });
  await chrome.action.setBadgeText({ text: result.badge.text });
  await chrome.action.setBadgeBackgroundColor({ color: result.badge.color });
  const lines = result.rows.map((r) => `${r.who}: 5-hour ${r.fiveHour} · 7-day ${r.sevenDay}`);
  if (result.lastError) lines.push(result.lastError);
  await chrome.action.setTitle({ title: ["claudemeter", ...lines].join("\n") });
  return result;
}

// Single-flight: an alarm, a start-up and the popup's button may all ask at once.
function cycle() {
  running ??= cycleOnce().finally(() => {
    running = null;
  });
  return running;
}

// Every time the worker wakes, not only on install and start-up: an alarm lost to a
// browser update would otherwise stop the readings until the next restart.
ensureAlarm();

chrome.runtime.onInstalled.addListener(() => {
  cycle();
});
chrome.runtime.onStartup.addListener(() => {
  cycle();
});
chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === ALARM) cycle();
});
chrome.storage.onChanged.addListener((changes, area) => {
  if (area === "local" && (changes.token || changes.browserName || changes.bridgePort)) cycle();
});
chrome.runtime.onMessage.addListener((message, _sender, reply) => {
  if (message?.type !== "refresh") return false;
  cycle().then(reply, (error) => reply({ lastError: String(error) }));
  return true; // reply asynchronously
});
