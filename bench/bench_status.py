"""How much a status redraw costs: run by hand (``python bench/bench_status.py``), prints
figures, asserts nothing.

1. ``claude-meter status`` (the ``#()`` fallback: a whole process per redraw per client;
   answered from ``segment.cache`` while nothing shown has changed, and timed apart as the
   first call after a reading, which renders in full)
   against a bare ``python3 -c pass``, interleaved, same machine, same run: the ratio is
   the figure (goal: at most 1.5x).
2. Processes started per status redraw with the plugin's push design (goal: 0) against
   a ``#(claude-meter status)`` status line, with a real client attached and tmux
   redrawing every second: ``#()`` jobs counted by the job itself, and the loop's own
   tmux calls counted from the server's message log.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import Command, Figure

FIXTURE = common.FIXTURES / "snapshots_two_browsers_two_accounts.json"


def redraw_cost(
    env: dict[str, str], status_right: str, tmp: Path, tag: str, seconds: float
) -> tuple[int, int]:
    """Processes a status line starts over ``seconds`` with one attached client redrawing
    every second: ``#()`` jobs (each logs a line to ``jobs``) and tmux clients the
    loop starts (the server's message log records every client command)."""
    conf = tmp / f"{tag}.conf"
    conf.write_text(
        f"set -g status-right '{status_right}'\nset -g status-interval 1\n"
        "set -g message-limit 10000\nset -g @claude_meter_serve off\n"
        f"set -g @claude_meter_interval 5\nrun-shell '{common.ROOT / 'claudemeter.tmux'}'\n"
    )
    inner, outer = f"bench-in-{tag}", f"bench-out-{tag}"
    tmux = ["tmux", "-u"]
    common.attached_server(env, conf, inner, outer)
    jobs = tmp / "jobs"

    def counts() -> tuple[int, int]:
        log = subprocess.run(
            [*tmux, "-L", inner, "show-messages"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        clients = {line.split()[1] for line in log.splitlines() if " command: " in line}
        return (len(jobs.read_text().splitlines()) if jobs.exists() else 0), len(clients)

    try:
        time.sleep(3)  # let the loop start and settle
        before = counts()
        time.sleep(seconds)
        after = counts()
    finally:
        for name in (outer, inner):
            subprocess.run(
                [*tmux, "-L", name, "kill-server"], env=env, check=False, stderr=subprocess.DEVNULL
            )
    # the second count's own show-messages client is not the status line's
    return after[0] - before[0], after[1] - before[1] - 1


def measure(runs: int = 40, seconds: float = 10) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="cmbench") as name:
        tmp = Path(name)
        env = common.default_dirs_env(tmp)
        subprocess.run(
            [*common.meter(), "ingest", str(FIXTURE)], env=env, check=True, capture_output=True
        )
        # The segment cache (segment.cache) answers while nothing shown has changed; the
        # first call after a reading renders in full and rewrites it: timed apart.
        cache = Path(env["XDG_STATE_HOME"]) / "claudemeter" / "segment.cache"
        times = common.interleaved(
            {
                "bare": Command([sys.executable, "-c", "pass"]),
                "re": Command([sys.executable, "-c", "import re,sys"]),
                "status": Command([*common.meter(), "status"]),
                "full": Command(
                    [*common.meter(), "status"], before=lambda: cache.unlink(missing_ok=True)
                ),
            },
            env,
            runs,
        )
        status = common.median(times["status"]) * 1000
        full = common.median(times["full"]) * 1000
        figures = [
            Figure(
                f"status render (median of {runs})",
                status,
                "ms",
                "python3 -c pass",
                common.median(times["bare"]) * 1000,
            ),
            Figure(
                f"status render vs import re,sys (median of {runs})",
                status,
                "ms",
                "python3 -c 'import re,sys'",
                common.median(times["re"]) * 1000,
                "<= 1.5x",
            ),
            Figure(
                f"status render, first after a reading (median of {runs})",
                full,
                "ms",
                "python3 -c 'import re,sys'",
                common.median(times["re"]) * 1000,
            ),
        ]
        if not shutil.which("tmux"):
            return figures
        counted = f"#(echo >> {tmp / 'jobs'}; claude-meter status)"
        polled, _ = redraw_cost(env, f"{counted} | %H:%M:%S", tmp, "job", seconds)
        (tmp / "jobs").unlink(missing_ok=True)
        pushed, loop_calls = redraw_cost(env, "#{claude_meter} | %H:%M:%S", tmp, "push", seconds)
        # @claude_meter_interval 5: one round every 5 s, each a tmux process before
        # the loop kept a control-mode client
        figures.append(
            Figure(
                "processes tmux-loop starts per idle minute",
                loop_calls * 60 / seconds,
                "/min",
                "one tmux call per round",
                60 / 5,
                "<= 1",
            )
        )
        # status-interval 1: one redraw a second; a #() job is an sh plus a python
        figures.append(
            Figure(
                "processes per status redraw, #{claude_meter}",
                (pushed + loop_calls) / seconds,
                "",
                "#(claude-meter status)",
                2 * polled / seconds,
                "0 per redraw",
            )
        )
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="timed renders")
    parser.add_argument("--seconds", type=float, default=10, help="redraw window")
    args = parser.parse_args()
    print(common.machine())
    print(common.table(measure(args.runs, args.seconds)))


if __name__ == "__main__":
    main()
