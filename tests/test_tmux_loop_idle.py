"""``tmux-loop`` idles (issue 16): with a client attached and the segment's inputs
unchanged, its rounds (deadline renewed, options read, parts pushed) go through one
control-mode client, so it starts no tmux process per round; a changed store still shows
at once, and a user option set meanwhile is taken up by the next round."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.helpers import fixture_body
from tests.tmuxlab import Lab, TmuxServer, attach, lab_fixture, plugin_dir, status_line, until

__all__ = ["lab_fixture"]

INTERVAL = 1


def clients_seen(server: TmuxServer) -> set[str]:
    """Every client that ran a command, from the server's message log (tmux logs each
    client command as ``<time> <client> command: ...``): one client per process."""
    log = server.cmd("show-messages")
    return {
        line.split(" command: ")[0].rsplit(" ", 1)[-1]
        for line in log.splitlines()
        if " command: " in line
    }


def store_reading(percent: float) -> None:
    """A reading stored the way Claude Code's statusLine stores it."""
    body = fixture_body("claude_code_statusline_input.json")
    now = int(time.time())
    body["rate_limits"]["five_hour"].update(used_percentage=percent, resets_at=now + 7200)
    body["rate_limits"]["seven_day"]["resets_at"] = now + 3 * 86400
    done = subprocess.run(
        ["claude-meter", "statusline"], input=json.dumps(body).encode(), capture_output=True
    )
    assert done.returncode == 0, done.stderr


def test_an_idle_loop_starts_no_tmux_process_per_round(
    lab: Lab, isolated: Path, claude_dir: Path
) -> None:
    entry = plugin_dir(isolated) / "claudemeter.tmux"
    inner = lab.server(
        "cm-idle",
        "\n".join(
            [
                "set -g status-right '#{claude_meter} | %H:%M'",
                "set -g status-interval 1",
                "set -g message-limit 100000",
                "set -g @claude_meter_serve off",
                f"set -g @claude_meter_interval {INTERVAL}",
                f"run-shell '{entry}'",
            ]
        )
        + "\n",
    )
    inner.cmd("new-session", "-d", "-s", "work", "-x", "100", "-y", "10")
    outer = attach(lab, inner)
    assert until(lambda: "claude: setup" in status_line(outer), 20), status_line(outer)
    time.sleep(3 * INTERVAL)  # the loop settles: its control client is open
    before = clients_seen(inner)
    first_until = float(inner.option("@claude_meter_until"))
    time.sleep(8 * INTERVAL)
    # rounds went on (the deadline moved) without a new client, but for our own calls
    assert float(inner.option("@claude_meter_until")) >= first_until + 4 * INTERVAL
    started = clients_seen(inner) - before
    ours = 3  # the show-messages and show-options calls of this test
    assert len(started) <= ours, sorted(started)
    # and a changed store still shows by the next round
    store_reading(42.0)
    assert until(lambda: "42%" in status_line(outer), 10), status_line(outer)
    inner.cmd("set", "-g", "@claude_meter_format", "{5h}!")
    assert until(lambda: "42%!" in status_line(outer), 10), status_line(outer)
