// The extension's whole job, free of `chrome.*`: read claude.ai with the browser's own
// session, build SPEC section 3 snapshots, post them to the loopback bridge, and say
// what the badge shows. background.js and popup.js only wire this to the browser, so
// node's test runner can drive it against a fake claude.ai and the real bridge.

export const CLAUDE_AI = "https://claude.ai";
// The bridge's default address; `bridgeUrl` moves only its port (CLAUDEMETER_BRIDGE or
// `serve --port`), never its host: the manifest grants 127.0.0.1 and nothing else.
export const BRIDGE_URL = "http://127.0.0.1:63762";
export const WARN = 70;
export const CRIT = 90;
export const TIMEOUT_MS = 15000;

const COLOURS = { ok: "#2e7d32", warn: "#b7791f", crit: "#c62828", none: "#6b7280", error: "#9b1c1c" };
const SIGNIN_HINT = "is this browser signed in to claude.ai?";

/** The browser's name for `browser`: what the user would call it, not its engine. */
export function detectBrowser(nav = globalThis.navigator ?? {}) {
  if (nav.brave && typeof nav.brave.isBrave === "function") return "Brave";
  const brands = (nav.userAgentData?.brands ?? []).map((b) => String(b.brand));
  const ua = String(nav.userAgent ?? "");
  const has = (name) => brands.some((b) => b.includes(name));
  if (has("Brave")) return "Brave";
  if (has("Microsoft Edge") || /\bEdg\//.test(ua)) return "Edge";
  if (has("Opera") || /\bOPR\//.test(ua)) return "Opera";
  if (has("Arc") || /\bArc\//.test(ua)) return "Arc";
  if (has("Google Chrome")) return "Chrome";
  if (brands.length && has("Chromium")) return "Chromium";
  if (/\bFirefox\//.test(ua)) return "Firefox";
  return "Chrome";
}

/** The bridge URL for a port the user typed in the popup: a whole number 1–65535
 * (a string of digits is accepted), anything else leaves the default. */
export function bridgeUrl(port) {
  const text = String(port ?? "").trim();
  const value = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  return value >= 1 && value <= 65535 ? `http://127.0.0.1:${value}` : BRIDGE_URL;
}

function describeFailure(what, path, error) {
  if (error?.name === "TimeoutError" || error?.name === "AbortError") {
    return `${what}: no answer from ${path} in ${TIMEOUT_MS / 1000}s`;
  }
  return `${what}: cannot reach ${path} (${error?.name ?? "network error"})`;
}

/** GET a claude.ai JSON endpoint with the browser's cookies (never read, only sent). */
async function getJSON(fetchImpl, base, path, what) {
  let response;
  try {
    response = await fetchImpl(base + path, {
      method: "GET",
      credentials: "include",
      cache: "no-store",
      headers: { Accept: "application/json" },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    return { error: describeFailure(what, path, error) };
  }
  if (!response.ok) {
    const hint = response.status === 401 || response.status === 403 ? `: ${SIGNIN_HINT}` : "";
    return { error: `${what}: HTTP ${response.status} from ${path}${hint}` };
  }
  try {
    return { body: await response.json() };
  } catch {
    return { error: `${what}: ${path} did not answer JSON (${SIGNIN_HINT})` };
  }
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/** Chat orgs only: an API-console org has no usage buckets to read. */
function chatOrgs(orgs) {
  return orgs
    .filter((org) => isObject(org) && typeof org.uuid === "string" && org.uuid)
    .filter((org) => !Array.isArray(org.capabilities) || org.capabilities.includes("chat"))
    .map((org) => org.uuid);
}

async function lookUpAccount(fetchImpl, base, knownOrgs) {
  const errors = [];
  const account = await getJSON(fetchImpl, base, "/api/account", "account");
  if (account.body !== undefined) {
    const body = account.body;
    const email = isObject(body) && typeof body.email_address === "string" ? body.email_address : null;
    const memberships = isObject(body) && Array.isArray(body.memberships) ? body.memberships : [];
    const orgs = chatOrgs(memberships.map((m) => (isObject(m) ? m.organization : null)));
    if (orgs.length) return { email, orgs, errors };
    errors.push("account: no claude.ai organization in /api/account");
  } else {
    errors.push(account.error);
  }
  // Without the account we still know the orgs, so the bridge can fold by org_uuid.
  const listed = await getJSON(fetchImpl, base, "/api/organizations", "organizations");
  const orgs = Array.isArray(listed.body) ? chatOrgs(listed.body) : [];
  if (!orgs.length && listed.error) errors.push(listed.error);
  return { email: null, orgs: orgs.length ? orgs : [...knownOrgs], errors };
}

/** One reading per organization; a failed call is an entry in `errors`, never a throw. */
export async function fetchSnapshots({ fetch: fetchImpl, base = CLAUDE_AI, browser, knownOrgs = [], now = () => new Date() }) {
  const account = await lookUpAccount(fetchImpl, base, knownOrgs);
  const snapshots = await Promise.all(
    account.orgs.map(async (org) => {
      const prefix = `/api/organizations/${encodeURIComponent(org)}`;
      const [usage, overage, subscription] = await Promise.all([
        getJSON(fetchImpl, base, `${prefix}/usage`, "usage"),
        getJSON(fetchImpl, base, `${prefix}/overage_spend_limit`, "overage"),
        getJSON(fetchImpl, base, `${prefix}/subscription_details`, "subscription"),
      ]);
      const errors = [...account.errors];
      const part = (result, what) => {
        if (result.error) errors.push(result.error);
        else if (!isObject(result.body)) errors.push(`${what}: not a JSON object`);
        else return result.body;
        return null;
      };
      return {
        org_uuid: org,
        browser,
        account_email: account.email,
        fetched_at: now().toISOString(),
        usage: part(usage, "usage"), // utilization stays 0–100, exactly as the server sent it
        overage: part(overage, "overage"),
        subscription: part(subscription, "subscription"),
        errors,
      };
    }),
  );
  const problem = snapshots.length ? null : account.errors.join("; ") || "no claude.ai organization found";
  return { snapshots, orgs: account.orgs, problem };
}

/** POST to the bridge; the answer's own error text is what the user needs to see. */
export async function postSnapshots({ fetch: fetchImpl, bridge = BRIDGE_URL, token, snapshots }) {
  if (!token) return { ok: false, error: "bridge: no token yet: run `claude-meter pair` and paste it here" };
  if (!snapshots.length) return { ok: false, error: "bridge: nothing to send" };
  let response;
  try {
    response = await fetchImpl(`${bridge}/snapshots`, {
      method: "POST",
      credentials: "omit",
      cache: "no-store",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify(snapshots),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch {
    return { ok: false, error: "bridge: not running? start `claude-meter serve`" };
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.ok && body?.ok) return { ok: true, accepted: body.accepted };
  const said = typeof body?.error === "string" ? body.error : "no explanation";
  return { ok: false, error: `bridge: HTTP ${response.status}: ${said}` };
}

function percentOf(window) {
  const value = window?.utilization;
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** The badge: the highest 5-hour percent over the orgs, `?` with no number, `!` when
 * the numbers are not getting through (no usage at all, or the bridge refused). */
export function badgeFor(snapshots, failed) {
  const fiveHours = snapshots.map((s) => percentOf(s.usage?.five_hour)).filter((v) => v !== null);
  if (failed) return { text: "!", color: COLOURS.error };
  if (!fiveHours.length) return { text: "?", color: COLOURS.none };
  const top = Math.max(...fiveHours);
  const shown = Math.round(top);
  const color = top >= CRIT ? COLOURS.crit : top >= WARN ? COLOURS.warn : COLOURS.ok;
  return { text: shown >= 100 ? String(shown) : `${shown}%`, color };
}

/** Human lines for the popup and the badge's tooltip. */
export function summarize(snapshots) {
  return snapshots.map((s) => {
    const five = percentOf(s.usage?.five_hour);
    const seven = percentOf(s.usage?.seven_day);
    const fmt = (v) => (v === null ? "?" : `${Math.round(v * 10) / 10}%`);
    return {
      who: s.account_email ?? `org ${s.org_uuid.slice(0, 8)}`,
      fiveHour: fmt(five),
      sevenDay: fmt(seven),
      resetsAt: s.usage?.five_hour?.resets_at ?? null,
      outOfCredits: s.overage?.out_of_credits === true,
    };
  });
}

/** One alarm's work. Returns what the popup shows; never throws, never holds the token. */
export async function runCycle({ fetch: fetchImpl, base = CLAUDE_AI, bridge = BRIDGE_URL, token, browser, knownOrgs = [], now = () => new Date() }) {
  const fetched = await fetchSnapshots({ fetch: fetchImpl, base, browser, knownOrgs, now });
  const post = fetched.snapshots.length
    ? await postSnapshots({ fetch: fetchImpl, bridge, token, snapshots: fetched.snapshots })
    : { ok: false, error: null };
  const usageFailed = !fetched.snapshots.some((s) => s.usage !== null);
  const errors = [fetched.problem, ...fetched.snapshots.flatMap((s) => s.errors), post.error].filter(Boolean);
  const lastError = errors.length ? errors[errors.length - 1] : null;
  const failed = usageFailed || !post.ok;
  return {
    at: now().toISOString(),
    browser,
    orgs: fetched.orgs,
    snapshots: fetched.snapshots,
    accepted: post.ok ? post.accepted : 0,
    lastError,
    badge: badgeFor(fetched.snapshots, failed),
    rows: summarize(fetched.snapshots),
  };
}
