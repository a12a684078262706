"""``claude-meter doctor``: one line per part, each with the fix when it is not right.

A check that finds something optional missing (no bridge, no tmux) warns; only what
leaves the user with no numbers at all fails, so exit 1 means "you will see nothing".
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import env
from .model import printable, utcnow
from .render import duration
from .sources import claude_config
from .store import State, Store

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Check:
    level: str
    part: str
    message: str

    def line(self) -> str:
        return printable(f"{self.level:<4}  {self.part:<10} {self.message}")


def check_store(store: Store, state: State) -> list[Check]:
    directory = store.directory
    if state.problem:
        return [Check(FAIL, "store", f"{state.problem}; the next refresh moves it aside")]
    if not store.path.exists():
        return [Check(WARN, "store", f"{store.path} not written yet (nothing fetched so far)")]
    mode = directory.stat().st_mode & 0o777
    file_mode = store.path.stat().st_mode & 0o777
    if mode & 0o077 or file_mode & 0o077:
        return [
            Check(
                FAIL,
                "store",
                f"{directory} is {mode:o} / state.json {file_mode:o}:"
                f" run `chmod 700 {directory}; chmod 600 {store.path}`",
            )
        ]
    age = duration(time.time() - store.path.stat().st_mtime)
    rows = state.accounts(utcnow())
    return [Check(OK, "store", f"{store.path}, {len(rows)} account(s), written {age} ago")]


def check_logins(state: State) -> list[Check]:
    from .refresh import configured_logins
    from .sources import oauth

    checks = []
    for config, login in configured_logins():
        if isinstance(login, oauth.LoginError):
            level = FAIL if login.status == oauth.STATUS_LOGIN else WARN  # logged out
            checks.append(Check(level, "oauth", str(login)))
            continue
        who = login.account.email if login.account and login.account.email else config.label()
        if login.expired(utcnow()):
            checks.append(Check(FAIL, "oauth", f"{who}: login expired: {oauth.RELOGIN_HINT}"))
            continue
        book = state.book(login.key)
        status = book.get("status")
        if status is None:
            checks.append(
                Check(
                    OK, "oauth", f"{who}: logged in; not fetched yet (run `claude-meter refresh`)"
                )
            )
        elif status == oauth.STATUS_OK:
            age = duration(time.time() - book.get("last_ok", 0.0))
            checks.append(Check(OK, "oauth", f"{who}: usage fetched {age} ago"))
        else:
            level = FAIL if status == oauth.STATUS_LOGIN else WARN
            checks.append(Check(level, "oauth", f"{who}: {book.get('error')}"))
    return checks


def check_claude_json() -> list[Check]:
    """Which ``.claude.json`` each login's account comes from, and whether Claude Code's
    own usage cache in it is used (it must be the same account's)."""
    from .sources.claude_account import read_claude_json
    from .sources.claude_config import configured

    checks = []
    for config in configured():
        path = config.claude_json()
        found = read_claude_json(config)
        if found.account is None:
            checks.append(
                Check(WARN, "account", f"{path}: no oauthAccount (run `claude` and log in)")
            )
            continue
        who = found.account.email or found.account.org_uuid
        checks.append(Check(OK, "account", f"{who}, from {path}"))
        leftover = config.directory / ".claude.json"
        if leftover != path and leftover.exists():
            checks.append(
                Check(OK, "account", f"{leftover} ignored: Claude Code does not read it here")
            )
        cache = found.cached_usage
        if cache is None:
            continue
        age = duration((utcnow() - cache.fetched_at).total_seconds())
        if cache.account_uuid != found.account.account_uuid:
            checks.append(
                Check(WARN, "cc-cache", f"{path}: Claude Code's usage cache is another account's")
            )
        else:
            checks.append(
                Check(OK, "cc-cache", f"Claude Code's own usage answer, {age} old (no request)")
            )
    return checks


def check_sources(state: State) -> list[Check]:
    rows = [row for row in state.accounts(utcnow()) if row.usage is not None]
    if any(not row.stale for row in rows):
        return []
    if rows:
        return [
            Check(
                WARN,
                "data",
                "every reading is stale: start `claude-meter serve`"
                " (the tmux plugin does) or run `claude-meter refresh`",
            )
        ]
    return [
        Check(
            FAIL,
            "data",
            "no usage data from any source: log in to Claude Code (`claude`)"
            " or install the browser extension; `claude-meter demo` shows it",
        )
    ]


def check_bridge() -> list[Check]:
    address = env.bridge_address()
    connection = http.client.HTTPConnection(address.host, address.port, timeout=1.0)
    try:
        connection.request("GET", "/healthz", headers={"Host": str(address)})
        response = connection.getresponse()
        health = json.loads(response.read() or b"{}") if response.status == 200 else {}
        ok = isinstance(health, dict) and health.get("ok") is True
    except (OSError, ValueError):
        return [
            Check(
                WARN,
                "bridge",
                f"not running on {address}: start `claude-meter serve`"
                " (the tmux plugin starts it) for the browser extension",
            )
        ]
    finally:
        connection.close()
    if not ok:
        return [
            Check(
                WARN,
                "bridge",
                f"something else answers on {address}: set CLAUDEMETER_BRIDGE to a free port",
            )
        ]
    from .bridge import store_id

    if health.get("store") != store_id(env.state_dir()):
        return [
            Check(
                WARN,
                "bridge",
                f"the bridge on {address} writes to another state dir"
                " (another user or setup): stop it, or set"
                " CLAUDEMETER_BRIDGE to a free port for yours",
            )
        ]
    return [Check(OK, "bridge", f"running on {address}")]


def check_peers() -> list[Check]:
    """One line per bridge in ``CLAUDEMETER_PEERS`` (none when it is unset): does it
    answer, with our token, and how old is its newest reading."""
    from . import peers

    configured, problems = peers.configured()
    checks = [Check(WARN, "peer", problem) for problem in problems]
    if not configured:
        return checks
    try:
        token = peers.read_token()
    except peers.PeerError as exc:
        return [*checks, *(Check(WARN, "peer", f"{p.url}: {exc}") for p in configured)]
    for peer in configured:
        pulled = peers.pull(peer, token, timeout=2.0)
        checks.append(Check(OK if pulled.ok else WARN, "peer", f"{peer.url}: {pulled.message}"))
    return checks


def check_shared() -> list[Check]:
    """The fleet's Redis (``CLAUDEMETER_REDIS_URL``), when one is named."""
    from . import shared

    fleet = shared.configured()
    if fleet is None:
        return []
    try:
        fleet.ping()
    except shared.ClientMissing as exc:
        return [Check(FAIL, "shared", str(exc))]
    except shared.SharedUnavailable as exc:
        return [Check(WARN, "shared", f"{exc}; this host reads and polls on its own meanwhile")]
    from . import registry

    now = time.time()
    others = [host for host in registry.fleet_hosts() if host.until > now]
    beating = sum(len(host.guards) for host in others)
    seen = f"; {beating} guard(s) on {len(others)} other host(s)" if others else ""
    return [Check(OK, "shared", f"{shared.where(fleet.url)} answers{seen}")]


def check_statusline() -> list[Check]:
    from .claude_settings import InstallError, load_settings
    from .install_statusline import is_ours

    settings = claude_config.current().directory / "settings.json"
    try:
        _raw, body = load_settings(settings)
    except InstallError as exc:
        return [Check(WARN, "statusline", str(exc))]
    if is_ours(body.get("statusLine")):
        return [Check(OK, "statusline", f"Claude Code's statusLine feeds claudemeter ({settings})")]
    return [
        Check(
            WARN,
            "statusline",
            "not installed: `claude-meter install-statusline` gives"
            " free updates from every running agent",
        )
    ]


def check_hooks() -> list[Check]:
    """claudemeter's Claude Code hooks (optional: cm-guard is the other way), and agents
    that stopped on the limit and still wait for a resume."""
    from . import stopped
    from .claude_settings import InstallError, load_settings
    from .install_hooks import GATE_EVENTS, WALL_EVENT, installed_events

    settings = claude_config.current().directory / "settings.json"
    try:
        _raw, body = load_settings(settings)
    except InstallError:
        return []  # check_statusline already says what is wrong with the file
    checks = []
    found = installed_events(body)
    if found:
        missing = [e for e in (*GATE_EVENTS, WALL_EVENT) if e not in found]
        if missing:
            checks.append(
                Check(
                    WARN,
                    "hooks",
                    f"no claudemeter hook on {', '.join(missing)}:"
                    " run `claude-meter install-hooks` again",
                )
            )
        else:
            checks.append(Check(OK, "hooks", f"the gate and the limit-hit record ({settings})"))
    waiting = [r for r in stopped.all_records() if r.waiting]
    if waiting:
        checks.append(
            Check(
                WARN,
                "resume",
                f"{len(waiting)} agent(s) stopped on the limit wait for"
                " `claude-meter resume` (or @claude_meter_resume on)",
            )
        )
    return checks


def check_tmux() -> list[Check]:
    if shutil.which("tmux") is None:
        return [Check(WARN, "tmux", "tmux not found: install it for the status line and popup")]
    try:
        version = subprocess.run(
            ["tmux", "-V"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return [Check(WARN, "tmux", "tmux -V did not answer")]
    number = version.split(" ")[-1] if version else "?"
    try:
        popup = float("".join(c for c in number if c.isdigit() or c == ".") or 0) >= 3.2
    except ValueError:
        popup = True  # "next-3.5" and friends: a development build, new enough
    note = "" if popup else " (popup needs 3.2+; prefix+M falls back to a split)"
    return [Check(OK, "tmux", f"{version}{note}")]


def check_tmux_loop() -> list[Check]:
    """The loop of the tmux server we are in (else the default server's), and any raw
    placeholder it has not rewritten."""
    from . import pidfile
    from .options import number
    from .tmux import Tmux, TmuxError, socket_path
    from .tmux_loop import LISTING, LOG, lock_path, read_listing

    tmux = Tmux(socket_path())
    try:
        where, _, text = tmux.run(["display-message", "-p", "#{socket_path}"], *LISTING).partition(
            "\n"
        )
    except TmuxError:
        if tmux.socket is None:
            return []  # no tmux server running here: nothing to keep current
        return [Check(WARN, "tmux-loop", f"the tmux server at {tmux.socket} did not answer")]
    listing = read_listing(text)
    raw = [name for _scope, name in listing.raw] + [n for _s, n, _v in listing.sessions]
    log = env.state_dir() / LOG
    start = "`tmux run-shell -b 'claude-meter tmux-loop'` (or reload the plugin)"
    checks = []
    loop = pidfile.read(lock_path(where))
    until = number(listing.options.get("until", ""), math.inf)  # unset: no deadline yet
    if "loop_pid" not in listing.options and loop is None:
        if raw:
            checks.append(
                Check(
                    FAIL,
                    "tmux-loop",
                    f"{', '.join(raw)} show #{{claude_meter…}} but the plugin never ran in"
                    f" this server: add its run-shell line to ~/.tmux.conf, or run {start}",
                )
            )
        return checks
    if loop is None or not loop.running():
        who = f" (pid {loop.pid})" if loop else ""
        checks.append(
            Check(
                FAIL,
                "tmux-loop",
                f"the status line's loop{who} is not running, so the segment is not"
                f" refreshed; the next status redraw restarts it; now: {start}; why it"
                f" stopped: {log}",
            )
        )
    elif until < time.time():
        late = duration(time.time() - until)
        checks.append(
            Check(
                FAIL,
                "tmux-loop",
                f"the loop (pid {loop.pid}) is {late} late refreshing the status line:"
                f" stopped or stuck (see {log}); restart it: `kill {loop.pid}`, then {start}",
            )
        )
    else:
        every = listing.options.get("interval") or "5"
        checks.append(Check(OK, "tmux-loop", f"pid {loop.pid}, refreshing every {every} s"))
    if raw:
        checks.append(
            Check(
                FAIL,
                "tmux-loop",
                f"raw #{{claude_meter…}} in {', '.join(raw)}: tmux shows it as nothing;"
                " a running loop rewrites it within one interval",
            )
        )
    return checks


def run_checks() -> list[Check]:
    store = Store()
    state = store.read()
    parts: list[Callable[[], list[Check]]] = [
        lambda: check_store(store, state),
        lambda: check_logins(state),
        check_claude_json,
        lambda: check_sources(state),
        check_bridge,
        check_peers,
        check_shared,
        check_statusline,
        check_hooks,
        check_tmux,
        check_tmux_loop,
    ]
    checks: list[Check] = []
    for part in parts:
        checks.extend(part())
    return checks


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check each source, the store, the bridge, each peer in CLAUDEMETER_PEERS, the"
        " shared store in CLAUDEMETER_REDIS_URL, Claude Code's statusLine, tmux, and"
        " (run in a tmux pane) that server's status-line loop and placeholders; one line"
        " each, with the fix. Exit 1 when something leaves you without numbers."
    )


def main(args: argparse.Namespace) -> int:
    checks = run_checks()
    for check in checks:
        print(check.line())
    return 1 if any(check.level == FAIL for check in checks) else 0
