"""Real tmux servers for tests: isolated sockets (own TMUX_TMPDIR), no ~/.tmux.conf
(HOME is the test's temporary home and every server gets an explicit -f), and a reaper
that kills every server and waits for each server's ``tmux-loop`` to exit."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from libtmux.test.retry import retry_until

from tests.helpers import alive

REPO = Path(__file__).resolve().parent.parent
#: A status-right with every placeholder the plugin fills, then tmux's own clock.
PLACEHOLDERS = (
    "#{claude_meter} |#{claude_meter_5h}|#{claude_meter_7d}|"
    "#{claude_meter_reset}|#{claude_meter_paused}| %H:%M"
)


def plugin_config(entry: Path, *extra: str) -> str:
    """A tmux.conf showing :data:`PLACEHOLDERS`, the bridge off and a 1 s loop, then
    ``extra`` lines, then the plugin's ``entry`` run as TPM runs it."""
    lines = [
        "set -g status-left '[#{session_name}] '",
        f"set -g status-right '{PLACEHOLDERS}'",
        "set -g status-right-length 120",
        "set -g @claude_meter_serve off",
        "set -g @claude_meter_interval 1",
        *extra,
        f"run-shell '{entry}'",  # what TPM does: run the *.tmux file as an executable
    ]
    return "\n".join(lines) + "\n"


class TmuxServer:
    def __init__(self, name: str, config: Path) -> None:
        self.name = name
        self.config = config

    def cmd(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-u", "-L", self.name, "-f", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def option(self, name: str) -> str:
        return self.cmd("show-options", "-gqv", name).rstrip("\n")

    def capture(self, target: str) -> list[str]:
        return self.cmd("capture-pane", "-p", "-t", target).splitlines()

    def alive(self) -> bool:
        return (
            subprocess.run(
                ["tmux", "-L", self.name, "has-session"], capture_output=True, check=False
            ).returncode
            == 0
        )


class Lab:
    """Starts servers on sockets only this test can see, and cleans them all up."""

    def __init__(self, home: Path, state_dir: Path) -> None:
        self.home = home
        self.state_dir = state_dir
        self.servers: list[TmuxServer] = []

    def server(self, name: str, config: str = "") -> TmuxServer:
        path = self.home / f"{name}.conf"
        path.write_text(config)
        server = TmuxServer(name, path)
        self.servers.append(server)
        return server

    def reap(self) -> None:
        for server in self.servers:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                server.cmd("kill-server", check=False)
        for lock in self.state_dir.glob("tmux-loop-*.lock"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                _stop_loop(int(lock.read_text().split()[0]))


def _stop_loop(pid: int) -> None:
    """Give a loop whose server is gone 10 s to notice and quit, then kill it."""
    if not until(lambda: not alive(pid), 10):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(name="lab")
def lab_fixture(isolated: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (.ci/run installs it)")
    sockets = tempfile.mkdtemp(prefix="cmtmux")  # short: socket paths are limited to ~100
    monkeypatch.setenv("TMUX_TMPDIR", sockets)
    monkeypatch.setenv("TZ", "UTC")
    workshop = Lab(isolated, state_dir)
    try:
        yield workshop
    finally:
        workshop.reap()
        shutil.rmtree(sockets, ignore_errors=True)


def plugin_dir(home: Path) -> Path:
    """Where TPM would have cloned us: ~/.tmux/plugins/claudemeter (a link to the repo)."""
    link = home / ".tmux" / "plugins" / "claudemeter"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(REPO)
    return link


def until(check: Callable[[], bool], seconds: float = 10) -> bool:
    """Poll ``check`` until it holds or ``seconds`` pass; False on time-out."""
    return bool(retry_until(check, seconds, raises=False))


def attach(
    lab: Lab, inner: TmuxServer, session: str = "work", width: int = 120, height: int = 10
) -> TmuxServer:
    """A client attached to ``inner``'s ``session``, running in a pane of another private
    server, so ``inner`` really draws its status line (read it with :func:`status_line`)."""
    outer = lab.server(f"{inner.name}-out", "set -g status off\n")
    outer.cmd(
        "new-session",
        "-d",
        "-s",
        "screen",
        "-x",
        str(width),
        "-y",
        str(height),
        f"tmux -u -L {inner.name} -f '{inner.config}' attach -t {session}",
    )
    # Keys sent before the client is attached go to its terminal half-read (a `C-b M`
    # arrived as an `M` in the inner shell): wait for it. The loop's own control-mode
    # client does not count.
    attached = until(
        lambda: "0" in inner.cmd("list-clients", "-F", "#{client_control_mode}").split(), 15
    )
    assert attached, f"no client attached to {inner.name}"
    return outer


def status_line(outer: TmuxServer) -> str:
    """The bottom line of the attached client's screen: the inner server's status line."""
    screen = outer.capture("screen")
    return screen[-1] if screen else ""


def in_pane(server: TmuxServer, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``argv`` as run in one of ``server``'s panes ($TMUX names the server), with ``env``
    added to this test's environment."""
    where = server.cmd("display-message", "-p", "#{socket_path},#{pid},0").strip()
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env, "TMUX": where},
    )
