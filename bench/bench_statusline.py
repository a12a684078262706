"""What one ``claude-meter statusline`` call costs Claude Code, against a bare interpreter.

Run by hand: ``python3 bench/bench_statusline.py [--runs N]``. Claude Code runs the
statusLine command after its responses in every agent, so this is the price of every
refresh. Measured in one run, in a temporary home and state dir: a bare
``python3 -c pass`` (the floor any Python command pays), then ``claude-meter statusline``
fed a reading (parse, store under the lock, pace), fed input without readings, and
chained to a trivial previous command. Prints the median per call and the ratio to the
floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def environment(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    (home / ".claude").mkdir(parents=True)
    shutil.copy(FIXTURES / "claude_json_oauth_account.json", home / ".claude.json")
    return {**os.environ, "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "CLAUDEMETER_STATE_DIR": str(tmp / "state"),
            "CLAUDEMETER_CONFIG_DIR": str(tmp / "config"),
            "CLAUDEMETER_ANTHROPIC_BASE": "http://127.0.0.1:9"}


def reading() -> bytes:
    body = json.loads((FIXTURES / "claude_code_statusline_input.json").read_text())
    now = int(time.time())
    body["rate_limits"]["five_hour"]["resets_at"] = now + 7200
    body["rate_limits"]["seven_day"]["resets_at"] = now + 3 * 86400
    return json.dumps(body).encode()


def per_call(argv: list[str], data: bytes, env: dict[str, str], runs: int) -> float:
    """Median wall time of one call, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, input=data, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    runs = parser.parse_args().runs
    script = Path(sys.executable).parent / "claude-meter"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "claudemeter"]
    no_readings = (FIXTURES / "claude_code_statusline_input_api_key_user.json").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp))
        floor = per_call([sys.executable, "-c", "pass"], b"", env, runs)
        cases = {
            "statusline, reading stored": ([*command, "statusline"], reading()),
            "statusline, no readings": ([*command, "statusline"], no_readings),
            "statusline --chain true": ([*command, "statusline", "--chain", "true"],
                                        reading()),
        }
        print(f"{'python3 -c pass':<30} {floor * 1000:7.1f} ms   1.00x  (floor)")
        for name, (argv, data) in cases.items():
            cost = per_call(argv, data, env, runs)
            print(f"{name:<30} {cost * 1000:7.1f} ms  {cost / floor:5.2f}x")
    print(f"({runs} runs each, median; {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
