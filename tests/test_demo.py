"""``claude-meter demo``: the real plugin, store and guards on a simulated account, in a
world of its own that it tears down."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli
from tests.tmuxlab import REPO, Lab, lab_fixture, until

__all__ = ["lab_fixture"]


@pytest.fixture
def tmux_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmux sockets land here, so the test can see the demo's server come and go."""
    directory = tmp_path / "tmux"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("TMUX_TMPDIR", str(directory))
    return directory


def test_demo_pauses_every_guard_at_the_threshold_and_resumes_them_together(
    tmux_tmpdir: Path, state_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "claudemeter",
            "demo",
            "--no-attach",
            "--speed",
            "8",
            "--seconds",
            "18",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    all_paused = [
        i
        for i, line in enumerate(lines)
        if "guards: paused, paused, paused" in line and "⏸3" in line
    ]
    assert all_paused, done.stdout
    resumed = [
        i
        for i, line in enumerate(lines)
        if i > all_paused[0] and "guards: running, running, running" in line
    ]
    assert resumed, done.stdout
    # The segment climbed past the threshold before the pause.
    percents = [
        float(m.group(1))
        for line in lines[: all_paused[0] + 1]
        if (m := re.search(r"5h (\d+(?:\.\d+)?)%", line))
    ]
    assert percents and max(percents) >= 85, done.stdout
    # Its own world: the user's state dir is never written, and nothing is left behind.
    assert not state_dir.exists()
    assert not list(tmp_path.glob("claudemeter-demo-*"))
    leftovers = subprocess.run(
        ["pgrep", "-f", "claudemeter.demo|tmux-loop"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert str(os.getpid()) not in leftovers
    assert not list(tmux_tmpdir.rglob("claudemeter-demo-*"))  # not even a dead socket


def test_demo_without_tmux_says_so(tmp_path: Path) -> None:
    done = cli("demo", "--no-attach", env={"PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 1
    assert "tmux is not installed" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("speed", ["0", "-2", "nan", "fast"])
def test_a_speed_that_makes_no_sense_is_refused(speed: str) -> None:
    done = cli("demo", "--no-attach", "--speed", speed)
    assert done.returncode == 2
    assert "expected a number from 0.1 to 100" in done.stderr and "Traceback" not in done.stderr


def test_the_demo_from_a_wheel_install_shows_its_status_line_and_popup(
    lab: Lab, tmp_path: Path
) -> None:
    """What `pipx install .` gives: a wheel in a fresh venv, nothing of the checkout."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    [wheel] = wheels.glob("claudemeter-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    # The dependencies come from the test venv (offline); claudemeter only from the wheel.
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "test-deps.pth").write_text(
        "\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n"
    )
    entry = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import claudemeter.demo as d; print(d.PLUGIN_ENTRY)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert entry.startswith(str(site)) and not Path(entry).is_symlink(), entry

    demo = subprocess.Popen(
        [
            str(venv / "bin" / "claude-meter"),
            "demo",
            "--no-attach",
            "--speed",
            "4",
            "--seconds",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path), "PATH": f"{venv / 'bin'}:/usr/bin:/bin"},
        cwd=tmp_path,
    )
    try:
        socket = f"claudemeter-demo-{demo.pid}"
        outer = lab.server("cm-demo-out", "set -g status off\n")
        attached = f"tmux -u -L {socket} attach -t demo"

        def screen() -> str:
            return "\n".join(outer.capture("screen"))

        def status() -> str:
            return outer.capture("screen")[-1] if outer.capture("screen") else ""

        def demo_up() -> bool:
            probe = ["tmux", "-L", socket, "has-session", "-t", "demo"]
            return subprocess.run(probe, capture_output=True, check=False).returncode == 0

        assert until(demo_up, 40), demo.stderr
        outer.cmd("new-session", "-d", "-s", "screen", "-x", "160", "-y", "45", attached)
        assert until(lambda: re.search(r"5h \d+(\.\d+)?%", status()) is not None, 30), screen()
        outer.cmd("send-keys", "-t", "screen", "C-b", "M")
        assert until(lambda: "claude-meter ·" in screen(), 15), screen()
        assert "demo@claudemeter.invalid" in screen() and "q/Esc close" in screen()
    finally:
        demo.terminate()
        _, err = demo.communicate(timeout=60)
    assert "Traceback" not in err, err


def test_ctrl_c_in_the_attached_demo_ends_it_and_leaves_no_socket(lab: Lab, tmp_path: Path) -> None:
    """README: `Ctrl-c` ends the demo and removes everything it made. The demo binds it to
    kill-server, so its socket must be known before (tmux 3.3 leaves the file behind).
    Run from a pane of another tmux, as users often do: the nesting note is printed."""
    sockets = Path(os.environ["TMUX_TMPDIR"])
    outer = lab.server("cm-demo-host", "set -g status off\n")
    command = shlex.join([sys.executable, "-m", "claudemeter", "demo", "--speed", "4"])
    outer.cmd("new-session", "-d", "-s", "host", "-x", "160", "-y", "45", command)

    def demo_sockets() -> list[Path]:
        return list(sockets.rglob("claudemeter-demo-*"))

    def screen() -> str:
        return "\n".join(outer.capture("host"))

    assert until(lambda: demo_sockets() != [], 40), screen()
    assert until(lambda: re.search(r"5h \d+(\.\d+)?%", screen()) is not None, 40), screen()
    outer.cmd("send-keys", "-t", "host", "C-c")
    assert until(lambda: demo_sockets() == [], 30), demo_sockets()
