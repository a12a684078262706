"""How much a status redraw costs: run by hand (`python bench/bench_status.py`), prints
figures, asserts nothing.

1. `claude-meter status` (the `#()` fallback: a whole process per redraw per client)
   against a bare `python3 -c pass`, interleaved, same machine, same run: the ratio is
   the figure (goal: at most 1.5x).
2. Processes started per status redraw with the plugin's push design (goal: 0) against
   a `#(claude-meter status)` status line, with a real client attached and tmux
   redrawing every second: `#()` jobs counted by the job itself, and the loop's own
   tmux calls counted from the server's message log.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "snapshots_two_browsers_two_accounts.json"
RUNS = 40
SECONDS = 10


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def redraw_cost(env: dict[str, str], status_right: str, tmp: Path, tag: str) -> tuple[int, int]:
    """Processes a status line starts over SECONDS with one attached client redrawing
    every second: ``#()`` jobs (each logs a line to ``jobs``) and tmux clients the
    loop starts (the server's message log records every client command)."""
    conf = tmp / f"{tag}.conf"
    conf.write_text(
        f"set -g status-right '{status_right}'\nset -g status-interval 1\n"
        "set -g message-limit 10000\nset -g @claude_meter_serve off\n"
        f"set -g @claude_meter_interval 5\nrun-shell '{REPO / 'claudemeter.tmux'}'\n"
    )
    inner, outer = f"bench-in-{tag}", f"bench-out-{tag}"
    tmux = ["tmux", "-u"]
    subprocess.run([*tmux, "-L", inner, "-f", str(conf), "new-session", "-d", "-s", "w"],
                   env=env, check=True)
    subprocess.run([*tmux, "-L", outer, "-f", "/dev/null", "new-session", "-d", "-x", "100",
                    "-y", "30", f"tmux -u -L {inner} attach -t w"], env=env, check=True)
    time.sleep(3)  # let the loop start and settle
    jobs = tmp / "jobs"

    def counts() -> tuple[int, int]:
        log = subprocess.run([*tmux, "-L", inner, "show-messages"], env=env, check=True,
                             capture_output=True, text=True).stdout
        clients = {line.split()[1] for line in log.splitlines() if " command: " in line}
        return (len(jobs.read_text().splitlines()) if jobs.exists() else 0), len(clients)

    before = counts()
    time.sleep(SECONDS)
    after = counts()
    for name in (outer, inner):
        subprocess.run([*tmux, "-L", name, "kill-server"], env=env, check=False)
    # the second count's own show-messages client is not the status line's
    return after[0] - before[0], after[1] - before[1] - 1


def main() -> None:
    meter = shutil.which("claude-meter")
    if meter is None:
        sys.exit("claude-meter is not on PATH: pip install -e . first")
    with tempfile.TemporaryDirectory(prefix="cmbench") as name:
        tmp = Path(name)
        env = {**os.environ, "HOME": str(tmp), "CLAUDEMETER_STATE_DIR": str(tmp / "state"),
               "TMUX_TMPDIR": str(tmp)}
        env.pop("TMUX", None)
        snapshots = json.loads(FIXTURE.read_text())
        subprocess.run([meter, "ingest", "-"], input=json.dumps(snapshots), text=True,
                       env=env, check=True, capture_output=True)
        print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}")

        bare, status = [], []
        for _ in range(RUNS):
            bare.append(timed([sys.executable, "-c", "pass"], env))
            status.append(timed([meter, "status"], env))
        b, s = statistics.median(bare), statistics.median(status)
        print(f"\n1. one status render, median of {RUNS} (interleaved)")
        print(f"   python3 -c pass       {b * 1000:7.1f} ms   1.00x")
        print(f"   claude-meter status   {s * 1000:7.1f} ms   {s / b:.2f}x   (goal <= 1.5x)")

        if shutil.which("tmux"):
            print(f"\n2. processes started over {SECONDS} s, one attached client, status"
                  " redrawn every second")
            counted = f"#(echo >> {tmp / 'jobs'}; claude-meter status)"
            jobs, clients = redraw_cost(env, f"{counted} | %H:%M:%S", tmp, "job")
            print(f"   #(claude-meter status)  {jobs / SECONDS:5.2f} jobs per redraw"
                  f" (each: sh + python), loop tmux calls {clients}")
            (tmp / "jobs").unlink(missing_ok=True)
            jobs, clients = redraw_cost(env, "#{claude_meter} | %H:%M:%S", tmp, "push")
            print(f"   #{{claude_meter}} (push) {jobs / SECONDS:5.2f} jobs per redraw"
                  f" (goal 0); the loop's own tmux calls: {clients} in {SECONDS} s,"
                  " whatever the number of clients or redraws")

if __name__ == "__main__":
    main()
