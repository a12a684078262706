"""What the hooks gate costs, and how it holds real Claude Code agents together.

Run by hand: ``python3 bench/bench_hooks.py [--runs 40] [--agents 5]``. Everything lives
in a temporary HOME, state dir and tmux server; the agents talk to a fake Messages API on
loopback (tests/fake_messages.py), never to the network.

1. The gate's cost: ``claude-meter hook gate`` runs before every tool call of every
   agent, so its price under the threshold is what matters. Median wall time, fed a
   ``PreToolUse`` input, beside the console-script floor (the interpreter plus importing
   ``claudemeter.cli``, what every ``claude-meter`` subcommand pays before doing
   anything), itself beside ``python3 -c pass``, all in the same run: the ratios are
   what to compare across machines.
2. Real agents (``--agents``, 0 skips it; needs the pinned Claude Code, tests/npm): N
   interactive ``claude`` sessions in one tmux server keep calling tools while the fake
   account's 5-hour number climbs by one point per answer. Figures: hold latency (from
   the store crossing the threshold to the last agent held at a hook), beside one
   agent's median turn (the time to its next safe point); requests the server saw while
   the agents were held, beside the requests of the same span before the crossing (what
   would have gone out without the gate); and the resume spread (first to last agent's
   request after ``resets_at`` + grace), beside one agent's turn.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common
from common import Command, Figure

sys.path.insert(0, str(common.ROOT))
sys.path.insert(0, str(common.ROOT / "python"))

POLL = 0.2
GRACE = 1.0
#: What every ``claude-meter`` subcommand pays before doing anything: the interpreter
#: and the console script's entry point (``claudemeter.cli`` and what it imports).
CONSOLE_FLOOR = "console-script floor"


def tool_input() -> bytes:
    import json

    body = json.loads((common.FIXTURES / "claude_code_hook_user_prompt_submit.json").read_text())
    body.update(hook_event_name="PreToolUse", tool_name="Read", tool_input={"file_path": "x"})
    return json.dumps(body).encode()


def gate_cost(runs: int) -> list[Figure]:
    """The gate under the threshold, interleaved with the two floors in one environment."""
    from claudemeter.model import Snapshot, utcnow
    from claudemeter.store import Store

    gate = [*common.meter(), "hook", "gate"]
    commands = {
        "python3 -c pass": Command([sys.executable, "-c", "pass"]),
        CONSOLE_FLOOR: Command([sys.executable, "-c", "from claudemeter.cli import main"]),
        "hook gate, under the threshold": Command(gate, tool_input()),
    }
    with tempfile.TemporaryDirectory(prefix="cmbench") as tmp:
        env = common.isolated_env(Path(tmp))
        (Path(env["HOME"]) / ".claude.json").write_bytes(
            (common.FIXTURES / "claude_json_oauth_account.json").read_bytes()
        )
        with common.environ(env):
            Store().put(
                [
                    Snapshot(
                        org_uuid="0f6c3b2a-0000-4000-8000-00000000b001",
                        browser="statusline",
                        account_email="ada@example.com",
                        fetched_at=utcnow(),
                        usage={"five_hour": {"utilization": 42.0, "resets_at": None}},
                    )
                ]
            )
        times = {
            name: common.median(t) * 1000
            for name, t in common.interleaved(commands, env, runs).items()
        }
    floor, console = times["python3 -c pass"], times[CONSOLE_FLOOR]
    name = "hook gate, under the threshold"
    return [
        Figure(f"{CONSOLE_FLOOR} (median of {runs})", console, "ms", "python3 -c pass", floor),
        Figure(f"{name} (median of {runs})", times[name], "ms", CONSOLE_FLOOR, console),
    ]


def agents_hold(count: int) -> tuple[list[Figure], list[str]]:
    """N real agents held together at their hooks; see the module doc."""
    from tests.claude_code import ORG, Agents, Login, claude_binary, version
    from tests.fake_messages import WORK, Account, FakeMessages
    from tests.helpers import wait_for
    from tests.tmuxlab import Lab

    from claudemeter import registry
    from claudemeter.model import utcnow
    from claudemeter.store import Store

    names = [f"agent{i}" for i in range(count)]
    # Claude Code may still be writing its session files while tmux takes it down.
    with tempfile.TemporaryDirectory(prefix="cmbench", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        fake = FakeMessages(Account.near()).start()
        env = common.isolated_env(
            root,
            CLAUDEMETER_ANTHROPIC_BASE=fake.url,
            CLAUDE_CONFIG_DIR=str(root / "home" / ".claude"),
            TMUX_TMPDIR=str(root),
            TZ="UTC",
        )
        with common.environ(env):
            claude_binary()
            lab = Lab(Path(env["HOME"]), root / "state")
            try:
                login = Login(Path(env["HOME"]), fake)
                login.install("--grace", f"{GRACE:g}", "--poll", f"{POLL:g}")
                team = Agents(lab, login)
                started = [team.start(name) for name in names]
                for agent in started:
                    team.ready(agent)
                panes = {a.pane for a in started}

                def five_hour() -> float:
                    rows = [r for r in Store().accounts(utcnow()) if r.org_uuid == ORG]
                    window = rows[0].window("five_hour") if rows else None
                    return window.utilization if window and window.utilization else 0.0

                account = fake.account
                account.five_hour.fraction, account.step = 0.80, 0.01
                account.tool_turns = 10**6
                account.five_hour.resets_at = time.time() + 20 + 2 * count
                resets_at = int(account.five_hour.resets_at)
                begun = time.time()
                for agent in started:
                    agent.type(f"{WORK} in {agent.name}")
                while five_hour() < 90.0:
                    if time.time() > resets_at:
                        raise RuntimeError("the store never crossed the threshold")
                    time.sleep(0.02)
                crossing = time.time()
                wait_for(lambda: {e.pane for e in registry.active()} >= panes, "all held", 30)
                held = [e.started_at for e in registry.active() if e.pane in panes]
                latency = max(held) - crossing
                release = resets_at + GRACE
                wait_for(lambda: time.time() > release + 0.5, "the reset", 60)
                during = [t for t in fake.turns if crossing <= t.at < release]
                span = release - crossing
                before = [t for t in fake.turns if crossing - span <= t.at < crossing]
                if crossing - span < begun:  # a shorter run-up: scale it to the span
                    rate = len([t for t in fake.turns if t.at < crossing]) / (crossing - begun)
                    before_count = rate * span
                else:
                    before_count = float(len(before))
                wait_for(
                    lambda: len({t.prompt for t in fake.since(release)}) == count,
                    "all going again",
                    30,
                )
                firsts: dict[str, float] = {}
                for t in fake.since(release):
                    firsts.setdefault(t.prompt, t.at)
                spread = max(firsts.values()) - min(firsts.values())
                per_agent = [
                    [t.at for t in fake.turns_with(f"in {name}") if t.at < crossing]
                    for name in names
                ]
                gaps = [b - a for ats in per_agent for a, b in itertools.pairwise(ats)]
                turn = statistics.median(gaps) if gaps else float("nan")
            finally:
                lab.reap()
                fake.stop()
    figures = [
        Figure(
            f"hold latency, {count} agents",
            latency * 1000,
            "ms",
            "one agent's turn",
            turn * 1000,
            "≤ 1x: held at the next safe point",
        ),
        Figure(
            f"requests while held ({span:.0f} s)",
            float(len(during)),
            "requests",
            "same span before",
            before_count,
            f"≤ {count} (in flight at the crossing)",
        ),
        Figure(
            f"resume spread, {count} agents", spread * 1000, "ms", "gate --poll", POLL * 1000, "~1x"
        ),
    ]
    notes = [
        f"hooks: {count} real Claude Code {version()} agents against a fake Messages API,"
        f" threshold 90%, grace {GRACE:g} s, gate poll {POLL:g} s"
    ]
    return figures, notes


def measure(runs: int = 40, agents: int = 5) -> tuple[list[Figure], list[str]]:
    figures = gate_cost(runs)
    notes: list[str] = []
    if agents > 0:
        found, notes = agents_hold(agents)
        figures += found
    return figures, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed gate calls per command")
    parser.add_argument(
        "--agents", type=int, default=5, help="real Claude Code agents to hold (0: skip)"
    )
    args = parser.parse_args()
    figures, notes = measure(args.runs, args.agents)
    print(common.machine())
    print(common.table(figures))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
