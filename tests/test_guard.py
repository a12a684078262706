"""``cm-guard`` with real processes: ticking children really stopped (``/proc`` state T)
when the store crosses the threshold and really running again after ``resets_at`` +
grace, ten guards on one account together, exit codes, signals, ``--check``/``--wait``,
the recursion marker, the registry, and a curses program in a real tmux pane."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from libtmux import Server

from claudemeter import registry
from claudemeter.model import Snapshot, format_time, parse_time, utcnow
from claudemeter.store import Store
from tests.helpers import (
    FAST,
    FIXTURES,
    LOGIN_ORG,
    TICKER,
    child_of,
    cli_out,
    entry_of,
    fixture_body,
    grows,
    guard_bin,
    guard_run,
    ingest,
    is_running,
    is_stopped,
    proc_state,
    put,
    run_detached,
    start,
    ticks,
    wait_for,
)
from tests.upstream import FakeUpstream


def start_ticker(
    out: Path, guards: list[subprocess.Popen[str]]
) -> tuple[subprocess.Popen[str], int]:
    """A guard over a child that appends to ``out`` every 20 ms; the guard and the child."""
    guard = start(*FAST, sys.executable, "-c", TICKER, str(out))
    guards.append(guard)
    return guard, child_of(guard)


@pytest.fixture
def guards() -> list[subprocess.Popen[str]]:
    """Guards a test keeps a hand on (``reap_guards`` ends them all anyway)."""
    return []


def test_pauses_when_the_store_crosses_and_resumes_after_reset_plus_grace(
    tmp_path: Path, guards: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMUX_PANE", "%7")
    put(40)
    out = tmp_path / "ticks"
    guard, child = start_ticker(out, guards)
    wait_for(grows(out), "the child to tick")
    entry = entry_of(guard.pid)
    assert entry is not None
    assert (entry.state, entry.pane, entry.account) == ("running", "%7", "ada@example.com")

    resets_at = put(96, resets_in=2.0)
    assert resets_at is not None
    wait_for(lambda: is_stopped(child), "the child to be stopped")
    wait_for(
        lambda: (e := entry_of(guard.pid)) is not None and e.state == "paused",
        "the registry to say paused",
    )
    entry = entry_of(guard.pid)
    assert entry is not None
    # The resume time is the row's, not the guard's: resets_at + grace, exactly.
    assert entry.resume_at == pytest.approx((resets_at + timedelta(seconds=0.3)).timestamp())

    wait_for(lambda: is_running(child), "the child to run again after the reset")
    wait_for(grows(out), "the child to tick again")
    assert utcnow() >= resets_at + timedelta(seconds=0.3)
    wait_for(
        lambda: (e := entry_of(guard.pid)) is not None and e.state == "running",
        "the registry to say running",
    )

    guard.send_signal(signal.SIGTERM)
    _, err = guard.communicate(timeout=10)
    assert guard.returncode == 128 + signal.SIGTERM
    assert proc_state(child) is None  # terminated and reaped: no orphan, no zombie
    assert entry_of(guard.pid) is None
    assert list(registry.guards_dir().glob("*.json")) == []
    assert "paused" in err and "until" in err and "resumed" in err


def test_ten_guards_on_one_account_stop_and_resume_together(
    tmp_path: Path, guards: list[subprocess.Popen[str]]
) -> None:
    put(10)
    for index in range(10):
        guards.append(start(*FAST, sys.executable, "-c", TICKER, str(tmp_path / f"t{index}")))
    children = [child_of(g) for g in guards]
    wait_for(lambda: all(is_running(c) for c in children), "ten children running")

    put(99, resets_in=2.5)
    wait_for(lambda: all(is_stopped(c) for c in children), "all ten stopped")
    wait_for(
        lambda: all((e := entry_of(g.pid)) is not None and e.state == "paused" for g in guards),
        "all ten registered as paused",
    )
    entries = [entry_of(g.pid) for g in guards]
    # One row, one resume time: every guard computed the same moment.
    assert len({e.resume_at for e in entries if e is not None}) == 1

    wait_for(lambda: all(is_running(c) for c in children), "all ten resumed")
    wait_for(
        lambda: all((e := entry_of(g.pid)) is not None and e.state == "running" for g in guards),
        "all ten registered as running",
    )
    for guard in guards:
        guard.send_signal(signal.SIGTERM)
    for guard in guards:
        guard.communicate(timeout=10)
        assert guard.returncode == 143
    assert not any(proc_state(c) for c in children)


def test_holds_before_starting_until_reset_plus_grace(tmp_path: Path) -> None:
    resets_at = put(95, resets_in=1.5)
    assert resets_at is not None
    stamp = tmp_path / "started"
    code = f"import time; open({str(stamp)!r}, 'w').write(repr(time.time()))"
    guard = start(*FAST, sys.executable, "-c", code)
    wait_for(lambda: (e := entry_of(guard.pid)) is not None and e.state == "held", "held")
    assert not stamp.exists()
    out, err = guard.communicate(timeout=20)
    assert guard.returncode == 0 and out == ""
    assert "holding" in err and "until" in err
    assert all(len(line) <= 80 for line in err.splitlines()), err  # an 80-column pane
    assert float(stamp.read_text()) >= (resets_at + timedelta(seconds=0.3)).timestamp()


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["sh", "-c", "exit 0"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["sh", "-c", "kill -TERM $$"], 128 + signal.SIGTERM),
        (["no-such-command-here"], 127),
        ([str(FIXTURES / "oauth_usage_basic.json")], 126),
    ],
)
def test_exit_status_passes_through(command: list[str], status: int) -> None:
    put(10)
    done = guard_run(*FAST, *command)
    assert done.returncode == status, done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--threshold", "abc", "true"],
        ["--bogus", "true"],
        [],
        ["--check", "true"],
        ["--poll", "0", "true"],
    ],
)
def test_usage_errors_exit_125_with_one_line(args: list[str]) -> None:
    done = guard_run(*args)
    assert done.returncode == 125
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_stdout_is_the_commands_alone_and_missing_data_warns_on_stderr() -> None:
    done = guard_run("sh", "-c", "echo hello")
    assert done.returncode == 0
    assert done.stdout == "hello\n"
    assert "no usage data" in done.stderr and "--fail-closed" in done.stderr
    # one line a user reads in an 80-column pane (issue 12)
    assert max(len(line) for line in done.stderr.splitlines()) <= 80, done.stderr


def test_fail_closed_holds_on_missing_data_until_there_is_some(tmp_path: Path) -> None:
    guard = start("--fail-closed", *FAST, "sh", "-c", "echo ran")
    wait_for(lambda: (e := entry_of(guard.pid)) is not None and e.state == "held", "held")
    put(20)
    out, _ = guard.communicate(timeout=20)
    assert (guard.returncode, out) == (0, "ran\n")


def test_sigterm_reaches_the_command(tmp_path: Path, guards: list[subprocess.Popen[str]]) -> None:
    put(10)
    got = tmp_path / "got"
    code = (
        f"import signal, sys, time\n"
        f"def bye(n, f):\n    open({str(got)!r}, 'w').write(str(n)); sys.exit(7)\n"
        f"signal.signal(signal.SIGTERM, bye)\n"
        f"open({str(got)!r}, 'w').write('ready')\n"
        f"while True: time.sleep(0.05)\n"
    )
    guard = start(*FAST, sys.executable, "-c", code)
    guards.append(guard)
    wait_for(lambda: got.exists() and got.read_text() == "ready", "the command to be ready")
    guard.send_signal(signal.SIGTERM)
    guard.communicate(timeout=10)
    assert got.read_text() == str(int(signal.SIGTERM))
    assert guard.returncode == 7  # the command's own status, not the guard's


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_guard_killed_while_paused_continues_and_ends_the_command(
    sig: signal.Signals, tmp_path: Path, guards: list[subprocess.Popen[str]]
) -> None:
    put(10)
    got = tmp_path / "got"
    ready = tmp_path / "ready"
    # The handler can only run if the command was continued: a stopped process runs none.
    code = (
        f"import signal, sys, time\n"
        f"def bye(n, f):\n    open({str(got)!r}, 'w').write(str(n)); sys.exit(0)\n"
        f"signal.signal({int(sig)}, bye)\n"
        f"open({str(ready)!r}, 'w').close()\n"
        f"while True: time.sleep(0.05)\n"
    )
    guard = start(*FAST, sys.executable, "-c", code)
    guards.append(guard)
    child = child_of(guard)
    # Paused before its handler is set (a slow start under load), the signal's default
    # action would end it: that is the kernel, not the guard.
    wait_for(ready.exists, "the command to set its handler")
    put(97, resets_in=600)
    wait_for(lambda: is_stopped(child), "the command to be paused")
    guard.send_signal(sig)
    guard.communicate(timeout=10)
    assert got.read_text() == str(int(sig))
    assert proc_state(child) is None
    assert guard.returncode == 0


def test_default_signal_dispositions_even_when_the_guard_inherits_ignored_ones(
    tmp_path: Path,
) -> None:
    put(10)
    # SigIgn in /proc/<pid>/status: the command must start with nothing ignored that a
    # shell would reset (here the guard's parent ignored INT, QUIT, TSTP, TTIN and TTOU).
    ignore = "trap '' INT QUIT TSTP TTIN TTOU; exec \"$@\""
    done = run_detached(
        ["sh", "-c", ignore, "sh", guard_bin(), "grep", "SigIgn", "/proc/self/status"]
    )
    mask = int(done.stdout.split()[1], 16)
    for sig in (
        signal.SIGINT,
        signal.SIGQUIT,
        signal.SIGTSTP,
        signal.SIGTTIN,
        signal.SIGTTOU,
        signal.SIGPIPE,
    ):
        assert not mask & (1 << (sig - 1)), f"{sig.name} is ignored in the command"


def test_check_prints_the_rows_state_and_exits_75_over() -> None:
    resets_at = put(93, resets_in=1800)
    assert resets_at is not None
    done = guard_run("--check", "--grace", "10")
    assert done.returncode == 75
    state = json.loads(done.stdout)
    assert state["state"] == "over" and state["account"] == "ada@example.com"
    assert state["buckets"]["five_hour"] == {
        "utilization": 93.0,
        "resets_at": format_time(resets_at),
        "state": "over",
    }
    assert parse_time(state["resume_at"]) == resets_at + timedelta(seconds=10)

    assert guard_run("--check", "--threshold", "95").returncode == 0
    assert guard_run("--check", "--bucket", "seven_day").returncode == 0  # not watching five_hour


def test_check_unknown_utilization_is_not_zero() -> None:
    now = utcnow()
    unknown = {"utilization": None, "resets_at": format_time(now + timedelta(seconds=600))}
    known = {"utilization": 20.0, "resets_at": format_time(now + timedelta(days=3))}
    usage = {"five_hour": unknown, "seven_day": known}
    Store().put([Snapshot("org-a", "Chrome", "ada@example.com", now, usage=usage)])
    done = guard_run("--check", "--bucket", "five_hour")
    assert done.returncode == 0  # fail-open: warned, not held
    assert json.loads(done.stdout)["state"] == "unknown"
    assert "no utilization" in done.stderr
    assert guard_run("--check", "--bucket", "five_hour", "--fail-closed").returncode == 75


def test_check_a_reading_with_no_usable_window_is_an_error_not_unknown_numbers() -> None:
    """A body whose windows are all null is not a reading (SPEC section 3): the row
    records the error and keeps no numbers."""
    put(None, resets_in=600)
    done = guard_run("--check")
    assert done.returncode == 0  # unknown from the start: the documented fail-open
    assert json.loads(done.stdout)["state"] == "unknown"
    assert "no usage numbers" in done.stderr
    assert any("no usage window" in e for e in Store().accounts()[0].errors)
    assert guard_run("--check", "--fail-closed").returncode == 75


def test_check_old_under_reading_is_unknown_but_old_over_reading_still_holds() -> None:
    old = utcnow() - timedelta(hours=1)
    put(20, fetched_at=old)
    assert json.loads(guard_run("--check").stdout)["state"] == "unknown"
    put(95, resets_in=600, fetched_at=old + timedelta(minutes=1))
    assert guard_run("--check").returncode == 75


def test_a_passed_reset_counts_as_reset() -> None:
    put(99, resets_in=-5)  # the reading predates its window's reset
    done = guard_run("--check", "--grace", "0")
    assert done.returncode == 0
    assert json.loads(done.stdout)["buckets"]["five_hour"]["state"] == "reset"


def test_account_selection_login_then_only_then_highest(claude_dir: Path) -> None:
    put(20, email="ada@example.com", org=LOGIN_ORG)
    put(97, email="bob@example.com", org="org-b")
    done = guard_run("--check")  # the Claude Code login's account, although bob is higher
    assert (done.returncode, json.loads(done.stdout)["account"]) == (0, "ada@example.com")
    done = guard_run("--check", "--account", "BOB@example.com")
    assert (done.returncode, json.loads(done.stdout)["account"]) == (75, "bob@example.com")
    (claude_dir.parent / ".claude.json").unlink()
    assert json.loads(guard_run("--check").stdout)["account"] == "bob@example.com"  # highest


def test_check_refreshes_an_old_store_once_for_many_guards(
    claude_dir: Path, upstream: FakeUpstream
) -> None:
    checks = [
        subprocess.Popen(
            [guard_bin(), "--check"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for _ in range(5)
    ]
    outs = [json.loads(p.communicate(timeout=30)[0]) for p in checks]
    assert {o["state"] for o in outs} == {"under"}  # the fixture's five_hour is 61%
    assert {o["account"] for o in outs} == {"ada@example.com"}
    usage_calls = [r for r in upstream.requests if r.path == "/api/oauth/usage"]
    assert len(usage_calls) == 1


def test_expired_login_is_said_plainly(claude_dir: Path, upstream: FakeUpstream) -> None:
    creds = json.loads((claude_dir / ".credentials.json").read_text())
    creds["claudeAiOauth"]["expiresAt"] = 1_000_000_000_000
    (claude_dir / ".credentials.json").write_text(json.dumps(creds))
    done = guard_run("--check")
    assert "login expired" in done.stderr and "run `claude`" in done.stderr
    assert "login expired" in json.loads(done.stdout)["login"]
    assert "sk-ant" not in done.stderr + done.stdout


def test_wait_blocks_until_under_and_is_registered_as_held() -> None:
    put(95, resets_in=1.5)
    waiter = start("--wait", *FAST)
    wait_for(lambda: (e := entry_of(waiter.pid)) is not None and e.state == "held", "held")
    out, err = waiter.communicate(timeout=20)
    assert (waiter.returncode, out) == (0, "")
    assert "waiting" in err
    assert entry_of(waiter.pid) is None


def test_wait_ends_on_sigterm() -> None:
    put(95, resets_in=600)
    waiter = start("--wait")
    wait_for(lambda: entry_of(waiter.pid) is not None, "registered")
    waiter.send_signal(signal.SIGTERM)
    waiter.communicate(timeout=10)
    assert waiter.returncode == 143 and entry_of(waiter.pid) is None


def test_inner_guard_runs_the_command_directly() -> None:
    put(10)
    show = "echo $PPID $CM_GUARD_ACTIVE"
    outer = start(*FAST, guard_bin(), *FAST, "sh", "-c", show)
    out, _ = outer.communicate(timeout=20)
    # The inner cm-guard exec'd sh in place: sh's parent is the outer guard itself.
    assert out.split() == [str(outer.pid), str(outer.pid)]


def test_a_leaked_marker_does_not_disable_the_guard() -> None:
    put(10)
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        leaked = {**os.environ, "CM_GUARD_ACTIVE": str(stranger.pid)}
        guard = start(*FAST, "sh", "-c", "echo $PPID $CM_GUARD_ACTIVE", env=leaked)
        out, _ = guard.communicate(timeout=20)
        assert out.split() == [str(guard.pid), str(guard.pid)]
    finally:
        stranger.kill()
        stranger.wait()


def test_python_dash_m_runs_the_guard() -> None:
    put(10)
    assert guard_module("sh", "-c", "exit 4").returncode == 4


# -- typos: an --account or --bucket the store does not have is the guard failing ------


def guard_module(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m claudemeter.guard *args``, run as guard_run runs cm-guard."""
    return run_detached([sys.executable, "-m", "claudemeter.guard", *args])


def ingest_fixture_usage(email: str = "ada@example.com", org: str = "org-a") -> None:
    """The OAuth fixture's body (with a null ``seven_day_opus``, a null future window
    ``iguana_necktie`` and ``extra_usage``), stored through ``claude-meter ingest``."""
    usage = fixture_body("oauth_usage_basic.json")
    for window in usage.values():  # reset times in the future, whatever today is
        if isinstance(window, dict) and window.get("utilization") is not None:
            window["resets_at"] = format_time(utcnow() + timedelta(hours=2))
    snapshot = {
        "org_uuid": org,
        "browser": "Chrome",
        "account_email": email,
        "fetched_at": format_time(utcnow()),
        "usage": usage,
    }
    ingest(snapshot)


MODES = [["--check"], ["--wait"], ["sh", "-c", "echo ran"]]


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused guard says; nothing on stdout, the command never ran."""
    assert done.returncode == 125, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.parametrize("mode", MODES)
def test_a_misspelt_bucket_is_refused_naming_the_rows_buckets(mode: list[str]) -> None:
    ingest_fixture_usage()
    line = refused(guard_module("--bucket", "five_hour", "--bucket", "nope", *mode))
    assert line == (
        'cm-guard: no bucket "nope" for ada@example.com; known: five_hour,'
        " seven_day, seven_day_oauth_apps, seven_day_sonnet"
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_misspelt_bucket_is_refused_before_any_data(mode: list[str]) -> None:
    line = refused(guard_module("--bucket", "fivehour", *mode))
    assert '"fivehour"' in line and "no usage data yet" in line
    assert "five_hour, seven_day, seven_day_oauth_apps, seven_day_opus, seven_day_sonnet" in line


def test_a_known_bucket_without_data_keeps_the_missing_data_policy() -> None:
    done = guard_module("--bucket", "seven_day_opus", "--check")  # empty store
    assert done.returncode == 0 and json.loads(done.stdout)["state"] == "unknown"
    assert "going ahead" in done.stderr
    assert guard_module("--bucket", "seven_day_opus", "--check", "--fail-closed").returncode == 75
    ingest_fixture_usage()  # now the row has it as null: still known, still no number
    done = guard_module("--bucket", "seven_day_opus", "--check")
    state = json.loads(done.stdout)
    assert (done.returncode, state["state"]) == (0, "unknown")
    assert state["buckets"]["seven_day_opus"]["state"] == "absent"
    assert guard_module("--bucket", "seven_day_opus", "--check", "--fail-closed").returncode == 75


def test_a_window_the_server_sends_under_a_new_name_is_accepted() -> None:
    ingest_fixture_usage()
    done = guard_module("--bucket", "iguana_necktie", "--check")  # sent, as null
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "unknown"
    put(95, bucket="seven_day_gizmo", email="ada@example.com", org="org-a")
    done = guard_module("--bucket", "seven_day_gizmo", "--check")  # sent, with a number
    assert done.returncode == 75, done.stderr
    # extra_usage is not a bucket, although its body has a utilization key
    assert "no bucket" in refused(guard_module("--bucket", "extra_usage", "--check"))


@pytest.mark.parametrize("mode", MODES)
def test_an_account_not_in_the_store_is_refused_naming_the_accounts(mode: list[str]) -> None:
    put(10, email="ada@example.com", org="org-a")
    put(10, email="bob@example.com", org="org-b")
    line = refused(guard_module("--account", "nobody@x", *mode))
    assert line.startswith('cm-guard: no account "nobody@x" in the store; accounts: ')
    assert set(line.split("accounts: ")[1].split(", ")) == {"ada@example.com", "bob@example.com"}


def test_account_by_org_uuid_and_an_emailless_row_is_named_by_its_org() -> None:
    put(10, email="ada@example.com", org="org-a")
    put(96, email="", org="org-b")
    done = guard_module("--account", "ORG-B", "--check")
    state = json.loads(done.stdout)
    assert (done.returncode, state["org_uuid"]) == (75, "org-b")
    assert refused(guard_module("--account", "org-c", "--check")).endswith(
        "accounts: ada@example.com, org-b"
    )


def test_an_account_with_no_data_yet_waits_for_it_by_name() -> None:
    done = guard_module("--account", "nobody@x", "--check")  # empty store: no verdict yet
    assert done.returncode == 0 and json.loads(done.stdout)["state"] == "unknown"
    assert "nobody@x" in done.stderr and "going ahead" in done.stderr
    done = guard_module("--account", "nobody@x", "--check", "--fail-closed")
    assert done.returncode == 75 and "nobody@x" in done.stderr


def test_a_held_guard_refuses_once_the_store_shows_other_accounts_only() -> None:
    guard = start("--account", "nobody@x", "--fail-closed", *FAST, "sh", "-c", "echo ran")
    wait_for(lambda: (e := entry_of(guard.pid)) is not None and e.state == "held", "held")
    put(10, email="ada@example.com")
    out, err = guard.communicate(timeout=20)
    assert (guard.returncode, out) == (125, "")
    assert 'no account "nobody@x" in the store; accounts: ada@example.com' in err
    assert entry_of(guard.pid) is None


def test_a_held_guard_starts_once_its_account_shows_up() -> None:
    waiter = start("--account", "Nobody@X", "--fail-closed", "--wait", *FAST)
    wait_for(lambda: (e := entry_of(waiter.pid)) is not None and e.state == "held", "held")
    put(10, email="nobody@x")
    _, err = waiter.communicate(timeout=20)
    assert waiter.returncode == 0, err


TUI = """\
import curses, os, signal, sys
log = open(sys.argv[1], "a", buffering=1)
signal.signal(signal.SIGINT, lambda *_: sys.exit(5))
signal.signal(signal.SIGHUP, lambda *_: sys.exit(6))  # handled: runs only once continued
log.write(f"pid {os.getpid()}\\n")
def main(screen):
    screen.timeout(100)  # an event loop: Python runs its SIGINT handler between reads
    keys = ""
    while True:
        screen.erase()
        screen.addstr(0, 0, "TUI READY")
        screen.addstr(1, 0, "keys: " + keys)
        screen.refresh()
        key = screen.getch()
        if key == ord("q"):
            return
        if 0 <= key < 256:
            keys += chr(key)
            log.write(f"key {chr(key)}\\n")
curses.wrapper(main)
"""


def test_curses_program_in_a_tmux_pane_survives_pause_resume_ctrl_z_and_ctrl_c(
    server: Server, tmp_path: Path
) -> None:
    put(30)
    program, log = tmp_path / "tui.py", tmp_path / "tui.log"
    program.write_text(TUI)
    session = server.new_session(
        session_name="guard", x=90, y=24, window_command="bash --norc --noprofile -i"
    )
    pane = session.active_window.active_pane
    assert pane is not None

    def screen() -> str:
        return "\n".join(pane.capture_pane() or [])

    wait_for(lambda: "$" in screen() or "#" in screen(), "the shell prompt")
    pane.send_keys(f"{guard_bin()} {' '.join(FAST)} {sys.executable} {program} {log}")
    wait_for(lambda: "TUI READY" in screen(), "the program's screen")
    pane.send_keys("ab", enter=False)
    wait_for(lambda: "keys: ab" in screen(), "keys typed before the pause")
    pid = int(log.read_text().split()[1])

    put(98, resets_in=2.5)
    wait_for(lambda: is_stopped(pid), "the program to be stopped")
    # SIGTSTP let curses leave its screen: the pane shows the shell and the guard's note.
    wait_for(lambda: "paused" in screen() and "TUI READY" not in screen(), "the restored terminal")

    wait_for(lambda: is_running(pid), "the program to resume")
    wait_for(lambda: "TUI READY" in screen() and "keys: ab" in screen(), "the redrawn screen")
    pane.send_keys("c", enter=False)
    wait_for(lambda: "keys: abc" in screen(), "keys after the resume")

    pane.send_keys("C-z", enter=False)  # the user's own Ctrl-Z: the shell sees the job stop
    wait_for(lambda: "Stopped" in screen() and is_stopped(pid), "the job stopped in the shell")
    pane.send_keys("fg")
    wait_for(lambda: is_running(pid) and "TUI READY" in screen(), "fg brings it back")
    pane.send_keys("d", enter=False)
    wait_for(lambda: "keys: abcd" in screen(), "keys after fg")

    put(99, resets_in=600)
    wait_for(lambda: is_stopped(pid) and screen().count("paused") == 2, "paused again")
    pane.send_keys("C-c", enter=False)  # the guard holds the terminal while paused
    wait_for(
        lambda: proc_state(pid) is None, "the program to end on the Ctrl-C passed on", show=screen
    )
    pane.send_keys("echo status=$?")
    wait_for(lambda: "status=5" in screen(), "the program's own exit status")
    assert log.read_text().split()[2:] == ["key", "a", "key", "b", "key", "c", "key", "d"]
    assert registry.active() == []


def test_guard_killed_with_sigkill_leaves_no_stopped_command(
    tmp_path: Path, guards: list[subprocess.Popen[str]]
) -> None:
    put(10)
    guard, child = start_ticker(tmp_path / "ticks", guards)
    put(97, resets_in=600)
    wait_for(lambda: is_stopped(child), "the command to be paused")
    guard.kill()  # no chance to clean up: the kernel's orphaned-group rule must
    guard.communicate(timeout=10)
    # SIGHUP + SIGCONT to the orphaned, stopped group: the ticker ends (reaped by
    # whoever adopted it; a container's init may leave a zombie, which is not stopped).
    wait_for(lambda: proc_state(child) in (None, "Z"), "the orphaned command to end")
    assert entry_of(guard.pid) is None  # the dead guard's entry is dropped by readers


def test_closing_the_pane_while_paused_ends_the_command(server: Server, tmp_path: Path) -> None:
    put(30)
    program, log = tmp_path / "tui.py", tmp_path / "tui.log"
    program.write_text(TUI)
    session = server.new_session(
        session_name="close", x=80, y=24, window_command="bash --norc --noprofile -i"
    )
    session.new_window(window_name="keeps-the-server", attach=False, window_shell="sleep 600")
    pane = session.windows[0].active_pane
    assert pane is not None
    wait_for(
        lambda: (
            "#" in "".join(pane.capture_pane() or []) or "$" in "".join(pane.capture_pane() or [])
        ),
        "the shell prompt",
    )
    pane.send_keys(f"{guard_bin()} {' '.join(FAST)} {sys.executable} {program} {log}")
    wait_for(lambda: log.exists() and log.read_text().startswith("pid"), "the program")
    pid = int(log.read_text().split()[1])
    put(98, resets_in=600)
    wait_for(lambda: is_stopped(pid), "the program to be paused")
    pane.kill()  # SIGHUP all round, as when a user closes the pane
    wait_for(lambda: proc_state(pid) is None, "the paused program to be continued and ended")
    wait_for(lambda: registry.active() == [], "the guard to unregister")


RAW = """\
import os, signal, sys, time, tty
signal.signal(signal.SIGTSTP, signal.SIG_IGN)  # a program that will not stop politely
tty.setraw(0)
open(sys.argv[1], "w").write(str(os.getpid()))
while True:
    time.sleep(0.05)
"""


def test_sigstop_fallback_and_the_terminal_modes_in_a_tmux_pane(
    server: Server, tmp_path: Path
) -> None:
    put(30)
    program, pid_file = tmp_path / "raw.py", tmp_path / "pid"
    program.write_text(RAW)
    command = f"{guard_bin()} {' '.join(FAST)} {sys.executable} {program} {pid_file}"
    session = server.new_session(session_name="raw", x=80, y=24, window_command=command)
    pane = session.active_window.active_pane
    assert pane is not None and pane.pane_tty
    wait_for(pid_file.exists, "the program to start")
    pid = int(pid_file.read_text())

    def canonical() -> bool:
        with open(pane.pane_tty or "", "rb") as tty:
            return bool(termios.tcgetattr(tty.fileno())[3] & termios.ICANON)

    wait_for(lambda: not canonical(), "the program's raw mode")
    put(97, resets_in=3)
    wait_for(lambda: is_stopped(pid), "SIGSTOP after SIGTSTP was ignored")
    wait_for(canonical, "the pane's own modes back while paused")
    wait_for(lambda: is_running(pid), "the resume")
    wait_for(lambda: not canonical(), "the program's raw mode restored for it")


def test_a_stop_with_no_job_control_shell_above_is_undone(
    tmp_path: Path, guards: list[subprocess.Popen[str]]
) -> None:
    put(10)
    out = tmp_path / "ticks"
    guard, child = start_ticker(out, guards)
    wait_for(grows(out), "ticking")
    os.kill(child, signal.SIGTSTP)  # as Ctrl-Z would, but nobody above could say `fg`
    wait_for(grows(out), "ticking again")
    entry = entry_of(guard.pid)
    assert entry is not None and entry.state == "running"
    guard.send_signal(signal.SIGTERM)
    _, err = guard.communicate(timeout=10)
    assert "no job-control shell" in err


def test_a_threshold_written_with_a_percent_sign_works_from_tmux() -> None:
    """``@claude_meter_threshold 85%`` reaches guards as CLAUDEMETER_THRESHOLD=85%."""
    put(50)
    env = {**os.environ, "CLAUDEMETER_THRESHOLD": "85%"}
    done = subprocess.run(
        [guard_bin(), "--check"], capture_output=True, text=True, env=env, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["threshold"] == 85


# ---- a hold never ends on missing data (issue 10) -------------------------------------


def lose_the_numbers(how: str, state_dir: Path) -> None:
    """The store stops giving numbers: the rows gone, or a file no reader can parse."""
    if how == "rows-gone":
        with Store().update() as state:
            state.rows.clear()
    else:
        (state_dir / "state.json").write_text("{not json")


def stays(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["rows-gone", "corrupt"])
def test_a_paused_guard_keeps_its_hold_when_the_numbers_turn_unknown(
    how: str, tmp_path: Path, state_dir: Path, guards: list[subprocess.Popen[str]]
) -> None:
    put(10, email="bob@example.com", org="org-b")  # several accounts: lines name theirs
    put(40)
    out = tmp_path / "ticks"
    guard = start("--account", "ada@example.com", *FAST, sys.executable, "-c", TICKER, str(out))
    guards.append(guard)
    child = child_of(guard)
    wait_for(grows(out), "the child to tick")
    resets_at = put(96, resets_in=8.0)
    assert resets_at is not None
    wait_for(lambda: is_stopped(child), "the child to be stopped")
    lose_the_numbers(how, state_dir)
    # It re-reads the store every 0.2 s: for as long as the reset is ahead, it holds.
    left = (resets_at - utcnow()).total_seconds() - 1.0
    assert left > 1.0, "the machine is too slow for this test's 8 s window"
    stays(lambda: is_stopped(child), min(left, 3.0), "the child stays stopped")
    wait_for(lambda: is_running(child), "the child to run after the reset + grace", seconds=20)
    assert utcnow() >= resets_at + timedelta(seconds=0.3)
    guard.send_signal(signal.SIGTERM)
    _, err = guard.communicate(timeout=10)
    assert "numbers unknown now" in err and "last known: five_hour at 96%" in err, err
    assert "ada@example.com (org-a)" in err  # every hold line names its account
    assert "ada@example.com (org-a): resumed" in err


def test_fail_open_lets_a_paused_command_go_when_the_numbers_turn_unknown(
    tmp_path: Path, state_dir: Path, guards: list[subprocess.Popen[str]]
) -> None:
    put(40)
    out = tmp_path / "ticks"
    guard = start("--fail-open", *FAST, sys.executable, "-c", TICKER, str(out))
    guards.append(guard)
    child = child_of(guard)
    wait_for(grows(out), "the child to tick")
    resets_at = put(96, resets_in=30.0)
    assert resets_at is not None
    wait_for(lambda: is_stopped(child), "the child to be stopped")
    lose_the_numbers("rows-gone", state_dir)
    wait_for(lambda: is_running(child), "the child to run again at once")
    assert utcnow() < resets_at  # the old behaviour: unknown lets it go


def test_a_holding_guard_keeps_holding_when_the_numbers_turn_unknown(
    tmp_path: Path, state_dir: Path, guards: list[subprocess.Popen[str]]
) -> None:
    resets_at = put(95, resets_in=8.0)
    assert resets_at is not None
    out = tmp_path / "ticks"
    guard = start(*FAST, sys.executable, "-c", TICKER, str(out))
    guards.append(guard)
    wait_for(
        lambda: (e := entry_of(guard.pid)) is not None and e.state == "held", "the guard to hold"
    )
    lose_the_numbers("rows-gone", state_dir)
    left = (resets_at - utcnow()).total_seconds() - 1.0
    assert left > 1.0, "the machine is too slow for this test's 8 s window"
    stays(lambda: ticks(out) == 0, min(left, 3.0), "the command has not started")
    wait_for(grows(out), "the command to start after the reset + grace", seconds=20)
    assert utcnow() >= resets_at + timedelta(seconds=0.3)
    guard.send_signal(signal.SIGTERM)
    _, err = guard.communicate(timeout=10)
    assert "numbers unknown now" in err and "holding" in err, err


# ---- one email in two orgs (issue 10) -------------------------------------------------

PERSONAL = "11111111-aaaa-4000-8000-000000000001"
TEAM = "22222222-bbbb-4000-8000-000000000002"


def two_orgs_of_one_email() -> None:
    now = utcnow()
    resets = format_time(now + timedelta(hours=2))
    Store().put(
        [
            Snapshot(
                PERSONAL,
                "Chrome",
                "lee@example.net",
                now,
                usage={"five_hour": {"utilization": 15.0, "resets_at": resets}},
            ),
            Snapshot(
                TEAM,
                "Claude Code",
                "lee@example.net",
                now,
                usage={"five_hour": {"utilization": 95.0, "resets_at": resets}},
                org_name="Acme Team",
            ),
        ]
    )


def test_an_account_in_two_orgs_is_refused_listing_both() -> None:
    """Issue 10: `--check --account lee@example.net` read the personal 15 % and exited 0
    while the team seat was at 95 %."""
    two_orgs_of_one_email()
    done = guard_run("--check", "--account", "lee@example.net")
    assert done.returncode == 125, done.stdout + done.stderr
    assert PERSONAL in done.stderr and TEAM in done.stderr
    assert "lee@example.net (Acme Team)" in done.stderr
    assert "lee@example.net (11111111)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    team = guard_run("--check", "--account", TEAM)
    assert team.returncode == 75 and json.loads(team.stdout)["org_uuid"] == TEAM
    assert guard_run("--check", "--account", PERSONAL).returncode == 0
    held = guard_run("--account", "lee@example.net", "--", "true")
    assert held.returncode == 125  # a command is never started on an ambiguous account


def test_hold_lines_name_the_account_of_two_orgs(tmp_path: Path) -> None:
    two_orgs_of_one_email()
    guard = start("--account", TEAM, *FAST, "true")
    wait_for(
        lambda: (e := entry_of(guard.pid)) is not None and e.state == "held", "the guard to hold"
    )
    entry = entry_of(guard.pid)
    assert entry is not None and entry.account == TEAM  # not the email both rows share
    show = cli_out("show", "--no-colour")
    blocks = show.split("\n\n")
    team = [b for b in blocks if b.startswith("lee@example.net  (org 22222222)")]
    personal = [b for b in blocks if b.startswith("lee@example.net  (org 11111111)")]
    assert len(team) == len(personal) == 1, show
    assert "guard" in team[0] and "guard" not in personal[0], show
    guard.send_signal(signal.SIGTERM)
    _, err = guard.communicate(timeout=10)
    assert "lee@example.net (Acme Team): five_hour at 95%" in err and "holding" in err, err


def test_the_segment_tells_two_orgs_of_one_email_apart() -> None:
    two_orgs_of_one_email()
    segment = cli_out("status")
    assert "lee/1" in segment and "lee/a" in segment, segment  # org uuid start, org name
    ambiguous = cli_out("status", "--account", "lee@example.net")
    assert "lee@example.net? 2 accounts" in ambiguous
    team = cli_out("status", "--account", TEAM[:8])
    assert "95%" in team
