// The popup: shows the last cycle's numbers and error, takes the token and an optional
// browser name. It never talks to claude.ai itself; the service worker does.
import { detectBrowser } from "./lib/meter.js";

const $ = (id) => document.getElementById(id);

// Arc looks like Chrome from its user agent; it does paint its palette into pages.
function detectHere() {
  const arc = getComputedStyle(document.documentElement).getPropertyValue("--arc-palette-title");
  return arc.trim() ? "Arc" : detectBrowser(navigator);
}

function show(last) {
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
  const { token, browserName, last } = await chrome.storage.local.get(["token", "browserName", "last"]);
  $("token").value = token ?? "";
  $("browser").value = browserName ?? "";
  $("browser").placeholder = detectHere();
  if (!browserName && detectHere() === "Arc") await chrome.storage.local.set({ browserName: "Arc" });
  show(last);
  $("save").addEventListener("click", async () => {
    await chrome.storage.local.set({
      token: $("token").value.trim(),
      browserName: $("browser").value.trim() || detectHere(),
    });
  });
  $("refresh").addEventListener("click", async () => {
    show(await chrome.runtime.sendMessage({ type: "refresh" }));
  });
  chrome.storage.onChanged.addListener((changes) => {
    if (changes.last) show(changes.last.newValue);
  });
}

main();
