"""The plugin in real tmux servers: loaded as TPM loads it, seen as a person sees it.

Each test gets its own sockets (TMUX_TMPDIR) and a temporary HOME; the reaper in
tests/tmuxlab.py kills every server and waits for its tmux-loop to exit.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from claudemeter.model import format_time, utcnow
from claudemeter.options import DEFAULTS
from claudemeter.placeholders import interpolate
from tests.helpers import LOGIN_ORG, alive, cli, fixture_body, ingest
from tests.tmuxlab import (
    PLACEHOLDERS,
    REPO,
    Lab,
    TmuxServer,
    attach,
    lab_fixture,
    plugin_config,
    plugin_dir,
    status_line,
    until,
)

__all__ = ["lab_fixture"]  # the `lab` fixture, imported so pytest finds it

NOW = "2026-11-25T12:05:00.000Z"

EXPECTED_RIGHT = interpolate(PLACEHOLDERS)


def snapshot(fetched_at: str, five: float = 61.0, resets: str | None = None) -> dict[str, object]:
    usage = fixture_body("oauth_usage_basic.json")
    usage["five_hour"]["utilization"] = five
    if resets:
        usage["five_hour"]["resets_at"] = resets
    return {
        "org_uuid": LOGIN_ORG,
        "browser": "Claude Code",
        "account_email": "ada@example.com",
        "fetched_at": fetched_at,
        "usage": usage,
    }


def loop_pid(state_dir: Path) -> int | None:
    locks = list(state_dir.glob("tmux-loop-*.lock"))
    if len(locks) != 1 or not locks[0].read_text().strip():
        return None
    return int(locks[0].read_text().split()[0])


def loops_running() -> int:
    """tmux-loop processes of this test (their environment has our TMUX_TMPDIR)."""
    mine = os.environ["TMUX_TMPDIR"].encode()
    count = 0
    for proc in Path("/proc").iterdir():
        try:
            if (
                b"tmux-loop" in (proc / "cmdline").read_bytes()
                and mine in (proc / "environ").read_bytes()
                and (proc / "stat").read_text().split()[2] != "Z"
            ):
                count += 1
        except OSError:
            continue
    return count


def prefix_bindings(server: TmuxServer) -> list[str]:
    return [
        line
        for line in server.cmd("list-keys", "-T", "prefix").splitlines()
        if "claude-meter" in line
    ]


def test_entry_rewrites_placeholders_binds_the_key_and_reloads_cleanly(
    lab: Lab, isolated: Path, state_dir: Path
) -> None:
    entry = plugin_dir(isolated) / "claudemeter.tmux"
    server = lab.server("cm-a", plugin_config(entry))
    server.cmd("new-session", "-d", "-s", "work", "-x", "100", "-y", "30")

    assert server.option("status-right") == EXPECTED_RIGHT
    assert server.option("status-left") == "[#{session_name}] "
    [binding] = prefix_bindings(server)
    assert " M " in binding and "display-popup -E" in binding
    assert f"'{shutil.which('claude-meter')}' show --watch" in binding
    assert until(lambda: server.option("@claude_meter") == "claude: setup", 10)
    first_loop = loop_pid(state_dir)
    assert first_loop is not None

    server.cmd("run-shell", str(entry))  # a reload: prefix+I, or source-file
    assert server.option("status-right") == EXPECTED_RIGHT
    assert len(prefix_bindings(server)) == 1
    assert until(lambda: loops_running() == 1, 10)
    assert loop_pid(state_dir) == first_loop

    assert "CLAUDEMETER_THRESHOLD" not in server.cmd("show-environment", "-g")
    server.cmd("set-option", "-g", "@claude_meter_threshold", "85")
    server.cmd("set-option", "-g", "@claude_meter_key", "none")
    server.cmd("run-shell", str(entry))
    assert prefix_bindings(server) == []
    assert "select-pane -M" in server.cmd("list-keys", "-T", "prefix", "M")  # tmux's own
    assert server.option("status-right") == EXPECTED_RIGHT
    # cm-guard in a new pane reads it from the environment tmux gives that pane
    assert "CLAUDEMETER_THRESHOLD=85\n" in server.cmd("show-environment", "-g")


def test_a_person_sees_the_segment_the_notice_and_the_popup(
    lab: Lab, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMETER_NOW", NOW)  # the servers inherit a pinned clock
    ingest(snapshot("2026-11-25T12:04:30.000Z"))
    inner = lab.server("cm-in", plugin_config(plugin_dir(isolated) / "claudemeter.tmux"))
    inner.cmd("new-session", "-d", "-s", "work", "-x", "100", "-y", "30")
    outer = attach(lab, inner, width=100, height=30)

    expected = "5h 61% ↻4h54m · 7d 22% |5h 61%|7d 22%|↻4h54m|| "  # then tmux's own %H:%M
    assert until(lambda: expected in status_line(outer), 15), status_line(outer)

    ingest(snapshot("2026-11-25T12:04:50.000Z", five=75.0))
    notice = "claude-meter: 5-hour at 75% (≥ warn 70%) · resets 16:59 (in 4h54m)"
    assert until(lambda: notice in status_line(outer), 15), status_line(outer)

    outer.cmd("send-keys", "-t", "screen", "C-b", "M")

    def popup() -> str:
        return "\n".join(outer.capture("screen"))

    assert until(lambda: "claude-meter · 12:05 local" in popup(), 15), popup()
    screen = popup()
    assert "ada@example.com" in screen
    assert "5-hour            [████████████░░░░]     75%  resets 16:59 (in 4h54m)" in screen
    assert "q/Esc close" in screen
    outer.cmd("send-keys", "-t", "screen", "q")
    assert until(lambda: "claude-meter ·" not in popup(), 10), popup()
    # tmux drops a key that arrives while the closed popup is still being torn down,
    # so the second opening presses again until it shows.
    assert until(lambda: reopen(outer, popup), 15), popup()
    outer.cmd("send-keys", "-t", "screen", "Escape")
    assert until(lambda: "claude-meter ·" not in popup(), 10), popup()


def reopen(outer: TmuxServer, popup: Callable[[], str]) -> bool:
    outer.cmd("send-keys", "-t", "screen", "C-b", "M")
    return until(lambda: "claude-meter ·" in popup(), 2)


def test_old_data_turns_stale_without_a_new_reading(lab: Lab, isolated: Path) -> None:
    """The loop re-renders on its own: the age moves even when nothing is written."""
    now = utcnow()
    ingest(
        snapshot(
            format_time(now - timedelta(seconds=597)), resets=format_time(now + timedelta(hours=2))
        )
    )
    server = lab.server("cm-s", plugin_config(plugin_dir(isolated) / "claudemeter.tmux"))
    server.cmd("new-session", "-d", "-s", "work")
    assert until(lambda: server.option("@claude_meter").startswith("5h 61%%"), 10)
    assert "stale" not in server.option("@claude_meter")
    assert until(lambda: "stale 10m" in server.option("@claude_meter"), 15), server.option(
        "@claude_meter"
    )


def test_the_loop_exits_with_its_server(lab: Lab, isolated: Path, state_dir: Path) -> None:
    server = lab.server("cm-x", plugin_config(plugin_dir(isolated) / "claudemeter.tmux"))
    server.cmd("new-session", "-d", "-s", "work")
    assert until(lambda: loop_pid(state_dir) is not None, 10)
    assert loops_running() == 1
    server.cmd("kill-server")
    assert until(lambda: loops_running() == 0, 15)


def test_explicit_bin_and_serve_started_detached(lab: Lab, isolated: Path, tmp_path: Path) -> None:
    """`serve` runs for as long as it likes; the plugin (and tmux's start) never waits."""
    calls = tmp_path / "calls"
    real = shutil.which("claude-meter")
    wrapper = tmp_path / "bin with space" / "claude-meter"
    wrapper.parent.mkdir()
    # `serve` belongs to another part of claudemeter; this stand-in only has to stay up.
    wrapper.write_text(
        "#!/bin/sh\n"
        f"echo \"$$ $*\" >> '{calls}'\n"
        'if [ "$1" = serve ]; then exec sleep 60; fi\n'
        f"exec '{real}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    entry = plugin_dir(isolated) / "claudemeter.tmux"
    server = lab.server(
        "cm-b",
        plugin_config(
            entry, f"set -g @claude_meter_bin '{wrapper}'", "set -g @claude_meter_serve on"
        ),
    )
    server.cmd("new-session", "-d", "-s", "work")
    assert until(lambda: calls.exists() and "serve" in calls.read_text(), 10)
    serve_pid = int(
        next(line for line in calls.read_text().splitlines() if line.endswith("serve")).split()[0]
    )
    try:
        os.kill(serve_pid, 0)  # still running: started detached, not waited for
        assert f"'{wrapper}' show --watch" in prefix_bindings(server)[0]
        assert until(lambda: "tmux-loop" in calls.read_text(), 10)
    finally:
        os.kill(serve_pid, 15)


def test_first_load_without_a_backend_installs_in_the_background(
    lab: Lab, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = tmp_path / "plugins" / "claudemeter"  # what TPM's git clone leaves
    clone.mkdir(parents=True)
    for name in ("claudemeter.tmux", "scripts", "python", "pyproject.toml", "README.md"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, clone / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(source, clone / name)
    # A developer's quick-start venv in the same clone: the plugin never touches it.
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / ".venv" / "bin" / "python").write_text("the developer's own\n")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no claude-meter anywhere
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # offline: the install must fail, and say so
    server = lab.server("cm-i", plugin_config(clone / "claudemeter.tmux"))
    server.cmd("new-session", "-d", "-s", "work")

    assert server.option("status-right") == EXPECTED_RIGHT
    assert server.option("@claude_meter") == "claude: installing"  # set before tmux goes on
    assert until(lambda: "install failed" in server.option("@claude_meter"), 90), server.option(
        "@claude_meter"
    )
    assert (clone / "install.log").exists()
    assert not (clone / ".plugin-venv.installing").exists()

    # With a working install the next load builds, stamps and uses the venv; after an
    # update of the source it rebuilds, and the loop restarts on the new code.
    gate = tmp_path / "pip-may-finish"
    installs = tmp_path / "installs"
    stand_in_python(tmp_path / "python3", gate, installs)
    server.cmd("set-environment", "-g", "CLAUDEMETER_PYTHON", str(tmp_path / "python3"))
    gate.touch()
    server.cmd("run-shell", str(clone / "claudemeter.tmux"))
    venv_bin = clone / ".plugin-venv" / "bin"
    assert until(lambda: server.option("@claude_meter") == "claude: setup", 20), server.option(
        "@claude_meter"
    )
    assert f"'{venv_bin / 'claude-meter'}' show --watch" in prefix_bindings(server)[0]
    first_build = (clone / ".plugin-venv" / ".claudemeter-ready").read_text().strip()
    assert first_build and server.option("@claude_meter_build") == first_build
    assert until(lambda: server.option("@claude_meter_loop_pid") != "", 10)
    first_loop = int(server.option("@claude_meter_loop_pid"))

    gate.unlink()  # the rebuild waits here, so its "installing" can be seen
    with (clone / "python" / "claudemeter" / "__init__.py").open("a") as init:
        init.write("# a newer version\n")  # what a TPM update (git pull) does
    server.cmd("run-shell", str(clone / "claudemeter.tmux"))
    assert server.option("@claude_meter") == "claude: installing"
    assert until(lambda: not alive(first_loop), 10)  # old code stops at once
    gate.touch()
    assert until(lambda: server.option("@claude_meter") == "claude: setup", 20), server.option(
        "@claude_meter"
    )
    second_build = (clone / ".plugin-venv" / ".claudemeter-ready").read_text().strip()
    assert second_build not in ("", first_build)
    assert server.option("@claude_meter_build") == second_build
    assert until(lambda: server.option("@claude_meter_loop_pid") not in ("", str(first_loop)), 10)
    assert alive(int(server.option("@claude_meter_loop_pid")))
    assert installs.read_text().count("install") == 2
    assert loops_running() == 1

    server.cmd("run-shell", str(clone / "claudemeter.tmux"))  # same source: nothing rebuilt
    assert installs.read_text().count("install") == 2
    assert sorted(p.name for p in (clone / ".venv").rglob("*")) == ["bin", "python"]
    assert (clone / ".venv" / "bin" / "python").read_text() == "the developer's own\n"


def stand_in_python(path: Path, gate: Path, installs: Path) -> None:
    """PyPI is out of reach here: this stands in for ``python3 -m venv`` and the venv's
    ``pip install``, whose result is a claude-meter that is this test run's own."""
    real = Path(sys.executable).parent / "claude-meter"
    path.write_text(
        "#!/bin/sh\n"
        # rm first: a real venv's bin/python is a symlink to the system python, and cp
        # would write through it
        'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && rm -f "$3/bin/python" &&'
        ' cp "$0" "$3/bin/python"; exit; fi\n'
        '[ "$1 $2 $3" = "-m pip install" ] || exit 1\n'
        "n=0\n"  # waits for the test's go-ahead, at most a minute if the test is gone
        f"while [ ! -e '{gate}' ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done\n"
        f"echo install >> '{installs}'\n"
        f'ln -sf \'{real}\' "$(dirname "$0")/claude-meter"\n'
    )
    path.chmod(0o755)


def test_a_loop_from_another_build_is_replaced_on_reload(
    lab: Lab, isolated: Path, state_dir: Path
) -> None:
    entry = plugin_dir(isolated) / "claudemeter.tmux"
    server = lab.server("cm-r", plugin_config(entry))
    server.cmd("new-session", "-d", "-s", "work")
    assert until(lambda: server.option("@claude_meter_loop_pid") != "", 10)
    first = int(server.option("@claude_meter_loop_pid"))
    build = server.option("@claude_meter_build")
    assert build

    server.cmd("set-option", "-g", "@claude_meter_build", "an older checkout")
    server.cmd("run-shell", str(entry))
    assert until(lambda: not alive(first), 10)
    assert until(lambda: server.option("@claude_meter_loop_pid") not in ("", str(first)), 15)
    assert alive(int(server.option("@claude_meter_loop_pid")))
    assert server.option("@claude_meter_build") == build
    assert until(lambda: loops_running() == 1, 10)


def test_the_key_gives_back_what_tmux_had_bound_there(lab: Lab, isolated: Path) -> None:
    entry = plugin_dir(isolated) / "claudemeter.tmux"
    server = lab.server("cm-k", plugin_config(entry))
    server.cmd("new-session", "-d", "-s", "work")

    def binding(key: str) -> str:
        return " ".join(server.cmd("list-keys", "-T", "prefix", key, check=False).split())

    assert "claude-meter" in binding("M")  # the default key takes tmux's "mark pane"
    server.cmd("set-option", "-g", "@claude_meter_key", "F5")
    server.cmd("run-shell", str(entry))
    assert binding("M") == "bind-key -T prefix M select-pane -M"
    assert "claude-meter" in binding("F5")

    server.cmd("bind-key", "F6", "display-message", "mine")
    server.cmd("set-option", "-g", "@claude_meter_key", "F6")
    server.cmd("run-shell", str(entry))
    assert binding("F5") == ""  # it had nothing before us
    assert "claude-meter" in binding("F6")
    server.cmd("set-option", "-g", "@claude_meter_key", "none")
    server.cmd("run-shell", str(entry))
    assert binding("F6") == "bind-key -T prefix F6 display-message mine"
    assert prefix_bindings(server) == []


def test_tmux_loop_outside_tmux_says_what_it_needs() -> None:
    done = cli("tmux-loop")
    assert done.returncode == 1
    assert "not inside tmux ($TMUX is unset)" in done.stderr
    assert "Traceback" not in done.stderr


def test_desktop_notice_goes_to_notify_send_and_notify_off_silences_it(
    lab: Lab, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "desktop"
    bindir.mkdir()
    sent = tmp_path / "sent"
    # notify-send needs a desktop session; this stand-in records what it was asked to show.
    (bindir / "notify-send").write_text(f"#!/bin/sh\nprintf '%s|' \"$@\" >> '{sent}'\n")
    (bindir / "notify-send").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CLAUDEMETER_NOW", NOW)
    ingest(snapshot("2026-11-25T12:04:30.000Z", five=93.0))
    entry = plugin_dir(isolated) / "claudemeter.tmux"
    loud = lab.server("cm-n", plugin_config(entry, "set -g @claude_meter_notify_desktop on"))
    loud.cmd("new-session", "-d", "-s", "work")
    assert until(lambda: sent.exists() and "crit 90%" in sent.read_text(), 10)
    assert sent.read_text().startswith("claude-meter|claude-meter: 5-hour at 93%")
    loud.cmd("kill-server")

    sent.unlink()
    quiet = lab.server(
        "cm-q",
        plugin_config(
            entry, "set -g @claude_meter_notify_desktop on", "set -g @claude_meter_notify off"
        ),
    )
    quiet.cmd("new-session", "-d", "-s", "work")
    crit = DEFAULTS["colour_crit"]
    assert until(lambda: quiet.option("@claude_meter").startswith(f"#[{crit}]5h 93%%"), 10)
    # The next reading's render proves the first round, notices included, is over.
    ingest(snapshot("2026-11-25T12:04:40.000Z", five=94.0))
    assert until(lambda: quiet.option("@claude_meter_5h") == f"#[{crit}]5h 94%%#[default]", 10)
    assert not sent.exists()
