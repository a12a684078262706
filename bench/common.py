"""What every benchmark shares: the figure it reports, the machine it ran on, a sealed-off
environment, and timing a command many times.

A figure is only worth printing beside a baseline measured in the same run on the same
machine, so ``Figure`` carries both and the ratio is what a reader compares across
machines.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT))  # tests.upstream: the fake upstream the benchmarks serve
# Not a real address: anything that escapes the sealed environment fails at once.
NOWHERE = "127.0.0.1:9"


@dataclass(frozen=True)
class Figure:
    """One measured value beside the baseline it should be read against."""

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    goal: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else math.nan


@dataclass(frozen=True)
class Command:
    argv: Sequence[str]
    stdin: bytes = b""
    #: Run before each timed call, untimed (e.g. drop a cache the call would use).
    before: Callable[[], object] | None = None


def amount(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    digits = 0 if abs(value) >= 100 or float(value).is_integer() else 2
    return f"{value:.{digits}f} {unit}".rstrip()


def table(figures: Sequence[Figure]) -> str:
    """A plain-text table that pastes into Markdown as-is (fixed width, ``|`` columns)."""
    rows = [("figure", "value", "baseline", "ratio", "goal")]
    for f in figures:
        ratio = "n/a" if math.isnan(f.ratio) else f"{f.ratio:.3g}x"
        rows.append(
            (
                f.name,
                amount(f.value, f.unit),
                f"{f.baseline_name}: {amount(f.baseline, f.unit)}",
                ratio,
                f.goal,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> str:
    """Platform, CPU model and count, Python and tmux versions: what the ratios ran on."""
    model = "unknown CPU"
    try:
        found = re.search(
            r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE
        )
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    tmux = "tmux not installed"
    if shutil.which("tmux"):
        tmux = subprocess.run(
            ["tmux", "-V"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return (
        f"{platform.platform()}; {os.cpu_count()} x {model}; "
        f"Python {platform.python_version()}; {tmux}"
    )


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def p99(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else samples[0]


def meter() -> list[str]:
    """``claude-meter`` from this interpreter's environment (the checkout under test)."""
    script = Path(sys.executable).parent / "claude-meter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "claudemeter"]


def isolated_env(root: Path, **extra: str) -> dict[str, str]:
    """An environment whose HOME, state, config and upstreams all live under ``root`` (or
    nowhere), so a benchmark never reads or writes the user's real files or the network.
    Claude Code's login is the default one (``CLAUDE_CONFIG_DIR`` unset: ``~/.claude``
    with ``~/.claude.json``). This checkout's package and scripts come first."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLAUDEMETER_", "CM_GUARD_"))
        and k
        not in (
            "TMUX",
            "CLAUDE_CONFIG_DIR",
            "CLAUDE_SECURESTORAGE_CONFIG_DIR",
            "PYTHONDONTWRITEBYTECODE",
        )
    }
    home = root / "home"
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CONFIG_HOME=str(home / ".config"),
        CLAUDEMETER_STATE_DIR=str(root / "state"),
        CLAUDEMETER_CONFIG_DIR=str(root / "config"),
        CLAUDEMETER_ANTHROPIC_BASE=f"http://{NOWHERE}",
        CLAUDEMETER_CLAUDE_AI_BASE=f"http://{NOWHERE}",
        CLAUDEMETER_BRIDGE=NOWHERE,
        TMUX_TMPDIR=str(root),
        PYTHONPATH=str(ROOT / "python"),
        # Compiled once, as an installed package is: a timed call pays what a user's does,
        # not a compile of every module (PYTHONDONTWRITEBYTECODE in the caller's shell).
        PYTHONPYCACHEPREFIX=str(root / "pycache"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    env.update(extra)
    return env


def default_dirs_env(root: Path, **extra: str) -> dict[str, str]:
    """:func:`isolated_env` with claudemeter's own directories where users have them
    (``$XDG_STATE_HOME/claudemeter``, ``$XDG_CONFIG_HOME/claudemeter``, both under
    ``root``): no ``CLAUDEMETER_STATE_DIR``, so a timed call pays what a user's does."""
    env = isolated_env(root, **extra)
    del env["CLAUDEMETER_STATE_DIR"], env["CLAUDEMETER_CONFIG_DIR"]
    return env


@contextmanager
def oauth_login(root: Path) -> Iterator[tuple[dict[str, str], FakeUpstream]]:
    """:func:`isolated_env` with Claude Code's default login (the fixture credentials,
    ``~/.claude.json`` with its account) and a fake api.anthropic.com on loopback that
    answers the usage and the profile; yields the environment and the upstream."""
    from tests.helpers import fixture
    from tests.upstream import FakeUpstream, Reply

    upstream = FakeUpstream()
    upstream.routes["/api/oauth/usage"] = Reply(200, fixture("oauth_usage_basic.json"))
    upstream.routes["/api/oauth/profile"] = Reply(200, fixture("oauth_profile.json"))
    upstream.start()
    try:
        env = isolated_env(root, CLAUDEMETER_ANTHROPIC_BASE=upstream.url)
        home = Path(env["HOME"])
        shutil.copy(FIXTURES / "claude_code_credentials.json", home / ".claude/.credentials.json")
        shutil.copy(FIXTURES / "claude_json_oauth_account.json", home / ".claude.json")
        yield env, upstream
    finally:
        upstream.stop()


@contextmanager
def environ(env: Mapping[str, str]) -> Iterator[None]:
    """This process's environment replaced for a block (for benchmarks that use the store
    in-process), and restored after, so the next benchmark starts clean."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def interleaved(
    commands: Mapping[str, Command], env: Mapping[str, str], runs: int
) -> dict[str, list[float]]:
    """Wall time of each command, ``runs`` times, taking turns so that a machine getting
    busier or quieter during the run weighs on every command alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            if command.before is not None:
                command.before()
            times[name].append(once(command, env))
    return times


def once(command: Command, env: Mapping[str, str]) -> float:
    """Wall time of one run of ``command`` (its ``before`` not included: the caller's)."""
    start = time.perf_counter()
    subprocess.run(
        command.argv,
        input=command.stdin,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - start


def attached_server(env: Mapping[str, str], conf: Path, inner: str, outer: str) -> None:
    """A tmux server ``inner`` on its own socket, started with ``conf`` (which loads the
    plugin), and a client attached to it from a second server ``outer`` (100x30), as a
    user's terminal would be: the status line is drawn, so the plugin's work is real."""
    tmux = ["tmux", "-u"]
    subprocess.run(
        [*tmux, "-L", inner, "-f", str(conf), "new-session", "-d", "-s", "w"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *tmux,
            "-L",
            outer,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "30",
            f"tmux -u -L {inner} attach -t w",
        ],
        env=env,
        check=True,
        capture_output=True,
    )


def main_with_runs(doc: str, measure: Callable[[int], tuple[list[Figure], list[str]]]) -> None:
    """A benchmark script's ``main``: ``--runs N``, then the machine, the table and the
    notes."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed calls per command")
    figures, notes = measure(parser.parse_args().runs)
    print(machine())
    print(table(figures))
    print("\n".join(notes))
