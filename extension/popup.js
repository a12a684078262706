// The popup: shows the last cycle's numbers and error, takes the token and an optional
// browser name. It never talks to claude.ai itself; the service worker does.
import { bridgeUrl, BRIDGE_URL, detectBrowser } from "./lib/meter.js";

const $ = (id) => document.getElementById(id);

// Arc looks like Chrome from its user agent; it does paint its palette into pages.
function detectHere() {
  const arc = getComputedStyle(document.documentElement).getPropertyValue("--arc-palette-title");
  return arc.trim() ? "Arc" : detectBrowser(navigator);
}

// The newest cycle shown so far (ISO 8601 UTC, so text order is time order): the stored
// value read at start-up may arrive after a newer change event, and must not win.
let shownAt = "";

function show(last) {
  if (last?.at && last.at < shownAt) return;
  shownAt = last?.at ?? shownAt;
  const rows = $("rows");
  rows.replaceChildren();
  for (const row of last?.rows ?? []) {
    const tr = document.createElement("tr");
    for (const text of [row.who, row.fiveHour, row.sevenDay]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    rows.append(tr);
  }
  if (!rows.children.length) {
    const tr = document.createElement("tr");
    tr.innerHTML = '<td colspan="3" class="muted">no data yet</td>';
    rows.append(tr);
  }
  $("fetched").textContent = last?.at
    ? `fetched ${new Date(last.at).toLocaleTimeString()} in ${last.browser}`
    : "";
  $("error").textContent = last?.lastError ?? "";
}

async function main() {
  // Listen before reading: a cycle that ends between the read and the listener would
  // otherwise leave the popup showing the older numbers until it is opened again.
  chrome.storage.onChanged.addListener((changes) => {
    if (changes.last) show(changes.last.newValue);
  });
  const { token, browserName, last, bridgePort } = await chrome.storage.local.get([
    "token",
    "browserName",
    "last",
    "bridgePort",
  ]);
  $("token").value = token ?? "";
  $("port").value = bridgePort ?? "";
  $("browser").value = browserName ?? "";
  $("browser").placeholder = detectHere();
  if (!browserName && detectHere() === "Arc") await chrome.storage.local.set({ browserName: "Arc" });
  show(last);
  $("save").addEventListener("click", async () => {
    // A port that is not one is dropped (the default stays), not stored to fail later.
    const port = $("port").value.trim();
    const valid = bridgeUrl(port) !== BRIDGE_URL ? Number(port) : null;
    $("port").value = valid ?? "";
    await chrome.storage.local.set({
      token: $("token").value.trim(),
      browserName: $("browser").value.trim() || detectHere(),
      bridgePort: valid,
    });
  });
  $("refresh").addEventListener("click", async () => {
    show(await chrome.runtime.sendMessage({ type: "refresh" }));
  });
}

main();
