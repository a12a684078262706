// Shared by the extension's tests: a fake claude.ai on loopback serving the repository's
// fixtures, and the real bridge (`python -m claudemeter serve`) in a temporary home.
import { spawn, execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "../..");
export const FIXTURES = join(REPO, "tests/fixtures");
export const ORG = "0f6c3b2a-0000-4000-8000-00000000b001";
export const EXTENSION_ORIGIN = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";

export const fixture = (name) => JSON.parse(readFileSync(join(FIXTURES, name), "utf8"));

/** A claude.ai stand-in: `routes` maps a path to {status, body}; every request is kept. */
export async function startFakeClaudeAi() {
  const routes = new Map([
    ["/api/account", { status: 200, body: fixture("claude_ai_account.json") }],
    ["/api/organizations", { status: 200, body: fixture("claude_ai_organizations.json") }],
    [`/api/organizations/${ORG}/usage`, { status: 200, body: fixture("claude_ai_usage.json") }],
    [`/api/organizations/${ORG}/overage_spend_limit`, { status: 200, body: fixture("claude_ai_overage_spend_limit.json") }],
    [`/api/organizations/${ORG}/subscription_details`, { status: 200, body: fixture("claude_ai_subscription_details.json") }],
  ]);
  const requests = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method, path: req.url, headers: req.headers });
    const route = routes.get(req.url.split("?")[0]) ?? { status: 404, body: { type: "error", error: { type: "not_found_error" } } };
    const text = typeof route.body === "string" ? route.body : JSON.stringify(route.body);
    res.writeHead(route.status, { "Content-Type": typeof route.body === "string" ? "text/html" : "application/json" });
    res.end(text);
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    routes,
    requests,
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/** `fetch` as the browser's service worker does it: an extension Origin on every request,
 * and the init each call was given, so a test can check `credentials`. */
export function browserFetch(origin = EXTENSION_ORIGIN) {
  const calls = [];
  const impl = (url, init = {}) => {
    calls.push({ url, init });
    return fetch(url, { ...init, headers: { ...(init.headers ?? {}), Origin: origin } });
  };
  return { fetch: impl, calls };
}

function bridgeEnv(root) {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith("CLAUDEMETER_") || name === "TMUX" || name === "TMUX_PANE") delete env[name];
  }
  const home = join(root, "home");
  Object.assign(env, {
    HOME: home,
    XDG_STATE_HOME: join(home, ".local/state"),
    XDG_CONFIG_HOME: join(home, ".config"),
    CLAUDEMETER_STATE_DIR: join(root, "state"),
    CLAUDEMETER_CONFIG_DIR: join(root, "config"),
    CLAUDE_CONFIG_DIR: join(home, ".claude"),
    // Nothing listens on port 9: the bridge's OAuth poller finds no login and no network.
    CLAUDEMETER_ANTHROPIC_BASE: "http://127.0.0.1:9",
    CLAUDEMETER_CLAUDE_AI_BASE: "http://127.0.0.1:9",
    CLAUDEMETER_BRIDGE: "127.0.0.1:9",
    // This checkout's package, whatever else is installed.
    PYTHONPATH: [join(REPO, "python"), process.env.PYTHONPATH].filter(Boolean).join(":"),
    LC_ALL: "C.UTF-8",
  });
  return env;
}

const PYTHON = process.env.CLAUDEMETER_TEST_PYTHON || "python3";
const run = promisify(execFile);

/** The real bridge on a free loopback port; `stop()` sends SIGTERM and waits. */
export async function startBridge() {
  const root = await mkdtemp(join(tmpdir(), "claudemeter-ext-"));
  const env = bridgeEnv(root);
  const claudeMeter = async (...args) => (await run(PYTHON, ["-m", "claudemeter", ...args], { env })).stdout;
  const child = spawn(PYTHON, ["-m", "claudemeter", "serve", "--port", "0"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`bridge did not start: ${stderr}`)), 20000);
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        ok(match[1]);
      }
    });
    child.on("exit", (code) => fail(new Error(`bridge exited ${code}: ${stderr}`)));
  });
  const exited = new Promise((ok) => child.on("exit", (code, signal) => ok({ code, signal })));
  const token = (await claudeMeter("pair")).trim();
  return {
    url,
    token,
    claudeMeter,
    rows: async () => JSON.parse(await claudeMeter("--json", "--cached")),
    output: () => stdout + stderr,
    async stop() {
      child.kill("SIGTERM");
      const status = await exited;
      await rm(root, { recursive: true, force: true });
      return status;
    },
  };
}
