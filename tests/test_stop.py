"""``claude-meter stop`` (SPEC section 4): this state dir's bridge and this tmux server's
loop, by the pid and start time each recorded, and nothing else called claude-meter."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from claudemeter import pidfile
from claudemeter.bridge import PID_FILE
from claudemeter.tmux_loop import SLACK, lock_path
from tests.tmuxlab import (
    Lab,
    TmuxServer,
    attach,
    in_pane,
    lab_fixture,
    plugin_dir,
    status_line,
    until,
)

__all__ = ["lab_fixture"]


def serve(state: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "claudemeter", "serve", "--port", "0"],
        env={**os.environ, "CLAUDEMETER_STATE_DIR": str(state)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert until(lambda: (state / PID_FILE).exists(), 15), f"no bridge for {state}"
    return proc


def socket_of(server: TmuxServer) -> str:
    return server.cmd("display-message", "-p", "#{socket_path}").strip()


def loop_of(server: TmuxServer, state: Path) -> pidfile.Process | None:
    return pidfile.read(lock_path(socket_of(server), state))


def stop(state: Path, server: TmuxServer) -> str:
    done = in_pane(server, "claude-meter", "stop", CLAUDEMETER_STATE_DIR=str(state))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_stop_ends_only_this_state_dirs_bridge_and_this_servers_loop(
    lab: Lab, isolated: Path, state_dir: Path, tmp_path: Path
) -> None:
    other_state = tmp_path / "other-state"
    mine, theirs = serve(state_dir), serve(other_state)
    try:
        conf = (
            "set -g status-right '#{claude_meter} |#{claude_meter_7d}|'\n"
            "set -g status-interval 1\n"
            "set -g @claude_meter_serve off\nset -g @claude_meter_interval 1\n"
            f"run-shell '{plugin_dir(isolated) / 'claudemeter.tmux'}'\n"
        )
        here, there = lab.server("cm-here", conf), lab.server("cm-there", conf)
        for server in (here, there):
            server.cmd("new-session", "-d", "-s", "work", "-x", "100", "-y", "10")
        outer = attach(lab, here)
        assert until(lambda: loop_of(here, state_dir) is not None, 10)
        assert until(lambda: loop_of(there, state_dir) is not None, 10)
        here_loop, there_loop = loop_of(here, state_dir), loop_of(there, state_dir)
        assert here_loop and there_loop and here_loop != there_loop

        said = stop(state_dir, here)

        assert f"stopped the bridge for {state_dir} (pid {mine.pid})" in said, said
        assert f"stopped the loop for {socket_of(here)} (pid {here_loop.pid})" in said, said
        assert mine.wait(10) == 0  # a clean exit on SIGTERM
        assert not (state_dir / PID_FILE).exists()
        assert theirs.poll() is None  # another state dir's bridge keeps running
        assert not here_loop.running()
        assert there_loop.running()  # another tmux server's loop keeps running
        # The bar says so, and stays so: no deadline, so no stalled marker, no new loop.
        stopped = "claude: stopped |claude: stopped|"  # no last numbers left frozen
        assert until(lambda: stopped in status_line(outer), 10), status_line(outer)
        time.sleep(1 + SLACK + 2)  # past any deadline: nothing restarts it
        assert stopped in status_line(outer)
        assert loop_of(here, state_dir) == here_loop  # nobody took its lock since

        again = stop(state_dir, here)
        assert "bridge: no bridge for" in again and "tmux-loop: no loop for" in again
    finally:
        for proc in (mine, theirs):
            proc.terminate()
            proc.wait(10)


def test_a_recycled_pid_is_not_signalled(tmp_path: Path) -> None:
    """A record whose pid now belongs to another process (another start time) is left
    alone: this test's own process stands in for it."""
    record = tmp_path / PID_FILE
    record.write_text(f"{os.getpid()} not-my-start-time\n")
    process = pidfile.read(record)
    assert process is not None and not process.running()
    assert process.terminate()  # "gone", without a signal: we are still here
    assert pidfile.this_process().running()
