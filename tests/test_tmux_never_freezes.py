"""The status line never freezes silently (SPEC section 7, issue 12): the loop survives a
stopped tmux server, a loop that died is started again by the next status redraw, a
stalled one is shown as stalled, and ``doctor`` says which it is."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from claudemeter import pidfile
from claudemeter.tmux_loop import LOG, SLACK
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

INTERVAL = 2
#: tmux re-evaluates the stalled marker's clock at every status redraw.
REDRAW = 1


def config(entry: Path, *extra: str) -> str:
    lines = [
        "set -g status-right '#{claude_meter} | %H:%M'",
        "set -g status-right-length 80",
        f"set -g status-interval {REDRAW}",
        "set -g @claude_meter_serve off",
        f"set -g @claude_meter_interval {INTERVAL}",
        *extra,
        f"run-shell '{entry}'",
    ]
    return "\n".join(lines) + "\n"


def loop_record(state_dir: Path) -> pidfile.Process | None:
    locks = list(state_dir.glob("tmux-loop-*.lock"))
    return pidfile.read(locks[0]) if len(locks) == 1 else None


def server_pid(server: TmuxServer) -> int:
    return int(server.cmd("display-message", "-p", "#{pid}").strip())


def doctor(server: TmuxServer) -> str:
    done = in_pane(server, "claude-meter", "doctor")
    return done.stdout + done.stderr


def running(
    lab: Lab, isolated: Path, state_dir: Path, name: str
) -> tuple[TmuxServer, TmuxServer, pidfile.Process]:
    """A server with the plugin, a client attached to it, and its loop's record once
    the segment shows."""
    inner = lab.server(name, config(plugin_dir(isolated) / "claudemeter.tmux"))
    inner.cmd("new-session", "-d", "-s", "work", "-x", "100", "-y", "10")
    outer = attach(lab, inner)
    assert until(lambda: "claude: setup" in status_line(outer), 15), status_line(outer)
    assert until(lambda: loop_record(state_dir) is not None, 10)
    loop = loop_record(state_dir)
    assert loop is not None and loop.running()
    return inner, outer, loop


#: From a loop's death to the bar being right again: its deadline (one interval plus
#: the slack), the next status redraw, and a new Python process starting.
COMES_BACK = INTERVAL + SLACK + REDRAW + 8


def test_a_killed_loop_is_started_again_by_the_next_redraw(
    lab: Lab, isolated: Path, state_dir: Path
) -> None:
    inner, outer, first = running(lab, isolated, state_dir, "cm-kill")

    os.kill(first.pid, signal.SIGKILL)  # no chance to say goodbye
    killed_at = time.monotonic()
    assert until(lambda: not first.running(), 5)
    # doctor tells the truth while it is gone (or the loop is already back)
    report = doctor(inner)
    assert "the status line's loop (pid" in report or "ok    tmux-loop" in report, report

    def back() -> bool:
        now = loop_record(state_dir)
        return now is not None and now != first and now.running()

    # Never older than its interval without saying so: by the deadline and one redraw,
    # the bar says stalled or a new loop is already there.
    honest = INTERVAL + SLACK + REDRAW + 1
    assert until(lambda: "claude: stalled" in status_line(outer) or back(), honest), status_line(
        outer
    )
    assert time.monotonic() - killed_at <= honest + 1
    assert until(back, COMES_BACK), (status_line(outer), report)
    assert until(lambda: "claude: setup" in status_line(outer), 10), status_line(outer)
    assert "ok    tmux-loop" in doctor(inner)
    log = (state_dir / LOG).read_text()
    assert log.count("started for the tmux server") == 2, log


def test_a_stopped_tmux_server_does_not_end_the_loop(
    lab: Lab, isolated: Path, state_dir: Path
) -> None:
    """kill -STOP the server for longer than a tmux call may take: the loop logs the
    failure, keeps trying, and carries on when the server does."""
    inner, outer, loop = running(lab, isolated, state_dir, "cm-stop")
    tmux = server_pid(inner)
    os.kill(tmux, signal.SIGSTOP)
    try:
        log = state_dir / LOG
        assert until(lambda: "a tmux call failed" in log.read_text(), 30), log.read_text()
    finally:
        os.kill(tmux, signal.SIGCONT)
    assert until(lambda: "tmux answers again" in log.read_text(), 30), log.read_text()
    assert loop.running()  # the same loop, never restarted
    assert until(lambda: "claude: setup" in status_line(outer), 15), status_line(outer)
    until_before = float(inner.option("@claude_meter_until"))
    assert until(lambda: float(inner.option("@claude_meter_until")) > until_before, 10)
    assert "stopping" not in log.read_text()


def test_a_stuck_loop_is_shown_as_stalled_and_doctor_says_so(
    lab: Lab, isolated: Path, state_dir: Path
) -> None:
    inner, outer, loop = running(lab, isolated, state_dir, "cm-stall")
    os.kill(loop.pid, signal.SIGSTOP)  # alive, holding its lock, doing nothing
    try:
        stopped_at = time.monotonic()
        assert until(lambda: "claude: stalled" in status_line(outer), COMES_BACK), status_line(
            outer
        )
        assert time.monotonic() - stopped_at >= INTERVAL  # not before its deadline
        report = doctor(inner)
        assert f"the loop (pid {loop.pid}) is" in report and "late" in report, report
        assert f"kill {loop.pid}" in report
    finally:
        os.kill(loop.pid, signal.SIGCONT)
    assert until(lambda: "claude: setup" in status_line(outer), 15), status_line(outer)
    assert loop.running()


def test_the_loop_ends_when_its_server_is_really_gone_and_says_why(
    lab: Lab, isolated: Path, state_dir: Path
) -> None:
    """kill -9 of the server leaves its socket file behind and signals no job: the loop
    finds nobody listening there, and ends."""
    server = lab.server("cm-why", config(plugin_dir(isolated) / "claudemeter.tmux"))
    server.cmd("new-session", "-d", "-s", "work")
    assert until(lambda: loop_record(state_dir) is not None, 10)
    loop = loop_record(state_dir)
    assert loop is not None
    os.kill(server_pid(server), signal.SIGKILL)
    assert until(lambda: not loop.running(), 15)
    log = (state_dir / LOG).read_text()
    assert "stopping: the tmux server at" in log and "is gone" in log, log
