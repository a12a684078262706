"""What one ``claude-meter statusline`` call costs Claude Code, beside ccstatusline.

Run by hand: ``python3 bench/bench_statusline.py [--runs N]``. Claude Code runs the
statusLine command after its responses in every agent, so this is the price of every
refresh. Measured in one run, interleaved, in a temporary home and state dir: a bare
``python3 -c pass`` (the floor any Python command pays), ``claude-meter statusline`` fed
a reading (parse, store under the lock, pace), fed input without readings, and chained to
a trivial previous command; then ccstatusline, the status line users would otherwise put
there, fed the same JSON, against a bare ``node -e 0`` and against ``claude-meter
statusline``.

ccstatusline is installed on first use into ``bench/.npm`` (ignored by git) with npm; it
gets a HOME of its own holding a settings file whose widgets show the same facts as ours
(model, 5-hour and weekly usage and resets, all read from the input, so it makes no
request). Without npm or the registry it is skipped with a note.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import common
from claudemeter.statusline_memo import MEMO_DIR
from common import Command, Figure

CCSTATUSLINE = "ccstatusline@2.2.30"
NPM_PREFIX = Path(__file__).resolve().parent / ".npm"
CCSTATUSLINE_BIN = NPM_PREFIX / "node_modules" / ".bin" / "ccstatusline"
# Widget types from ccstatusline's settings format (version 4): the same facts as our line.
CCSTATUSLINE_WIDGETS = [
    "model",
    "session-usage",
    "reset-timer",
    "weekly-usage",
    "weekly-reset-timer",
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def reading(session: str | None = None) -> bytes:
    """The fixture's statusLine input with its resets moved into the future (and its
    ``session_id`` set to ``session``, when given)."""
    body = json.loads((common.FIXTURES / "claude_code_statusline_input.json").read_text())
    now = int(time.time())
    body["rate_limits"]["five_hour"]["resets_at"] = now + 7200
    body["rate_limits"]["seven_day"]["resets_at"] = now + 3 * 86400
    if session is not None:
        body["session_id"] = session
    return json.dumps(body).encode()


#: The sessions of the two statusline rows: one stores every call (its memo is removed
#: before each), the other carries the reading it stored (answered from its memo).
STORED, UNCHANGED = "bench-stored", "bench-unchanged"


def forget(state_dir: Path, session: str) -> Callable[[], None]:
    """Before each call: remove ``session``'s statusline memo, so the call stores."""

    def remove() -> None:
        (state_dir / MEMO_DIR / f"{session}.json").unlink(missing_ok=True)

    return remove


def ccstatusline() -> tuple[Path | None, str]:
    """The ccstatusline executable (installed on first use), or None and why not."""
    if CCSTATUSLINE_BIN.exists():
        return CCSTATUSLINE_BIN, ""
    if not (shutil.which("npm") and shutil.which("node")):
        return None, "ccstatusline skipped: node/npm not installed"
    done = subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(NPM_PREFIX),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            CCSTATUSLINE,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode or not CCSTATUSLINE_BIN.exists():
        said = "; ".join(done.stderr.strip().splitlines()[:2]) or "no output"
        return None, f"ccstatusline skipped: npm install {CCSTATUSLINE} failed ({said})"
    return CCSTATUSLINE_BIN, ""


def ccstatusline_settings(home: Path) -> None:
    items: list[dict[str, str]] = []
    for n, widget in enumerate(CCSTATUSLINE_WIDGETS):
        if items:
            items.append({"id": f"s{n}", "type": "separator"})
        items.append({"id": str(n), "type": widget})
    config = home / ".config" / "ccstatusline"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.json").write_text(json.dumps({"version": 4, "lines": [items]}))


def line(command: Command, env: dict[str, str]) -> str:
    """What the command prints for Claude Code's bar, colours stripped."""
    out = subprocess.run(
        command.argv, input=command.stdin, env=env, capture_output=True, check=True
    ).stdout.decode()
    return ANSI.sub("", out).strip()


def measure(runs: int = 40) -> tuple[list[Figure], list[str]]:
    """The figures, and notes: each tool's output line, or why ccstatusline is missing."""
    no_readings = common.FIXTURES / "claude_code_statusline_input_api_key_user.json"
    statusline = [*common.meter(), "statusline"]
    tool, why = ccstatusline()
    with tempfile.TemporaryDirectory(prefix="cmbench") as tmp:
        env = common.default_dirs_env(Path(tmp), COLUMNS="200")
        state_dir = Path(env["XDG_STATE_HOME"]) / "claudemeter"
        commands = {
            "python3 -c pass": Command([sys.executable, "-c", "pass"]),
            "statusline, reading stored": Command(
                statusline, reading(STORED), forget(state_dir, STORED)
            ),
            "statusline, no readings": Command(statusline, no_readings.read_bytes()),
            "statusline --chain true": Command([*statusline, "--chain", "true"], reading()),
            "statusline, reading unchanged": Command(statusline, reading(UNCHANGED)),
        }
        ours = commands["statusline, reading stored"]
        if tool:
            commands["node -e 0"] = Command(["node", "-e", "0"])
            commands["ccstatusline"] = Command([str(tool)], reading())
        shutil.copy(
            common.FIXTURES / "claude_json_oauth_account.json", Path(env["HOME"]) / ".claude.json"
        )
        ccstatusline_settings(Path(env["HOME"]))
        notes = [f"claude-meter statusline prints: {line(ours, env)}"]
        if tool:
            notes.append(f"ccstatusline prints:            {line(commands['ccstatusline'], env)}")
        else:
            notes.append(why)
        times = {
            name: common.median(t) * 1000
            for name, t in common.interleaved(commands, env, runs).items()
        }
    floor = times["python3 -c pass"]
    figures = [
        Figure(
            f"{name} (median of {runs})",
            times[name],
            "ms",
            "python3 -c pass",
            floor,
            "<= 2.5x" if name.startswith("statusline, reading") else "",
        )
        for name in list(commands)[1:5]
    ]
    if tool:
        figures += [
            Figure(
                f"ccstatusline (median of {runs})",
                times["ccstatusline"],
                "ms",
                "node -e 0",
                times["node -e 0"],
            ),
            Figure(
                "ccstatusline vs ours, same input",
                times["ccstatusline"],
                "ms",
                "claude-meter statusline",
                times["statusline, reading stored"],
            ),
        ]
    return figures, notes


def main() -> None:
    common.main_with_runs(__doc__ or "", measure)


if __name__ == "__main__":
    main()
