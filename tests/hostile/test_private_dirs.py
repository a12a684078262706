"""Class 6, "a state dir that is not private is used silently": a state or config dir
owned by another user, or writable by others, is refused with one line (exit 1) by every
command, and read as "not trusted" by the status line and the guard (a forged 99% row
pauses nothing); inside our own dir, a planted symlink in place of a lock, the log, the
token or the state is never followed (its target is neither truncated, appended to nor
shown). Tests run as root, which ignores modes: ownership is tested by chown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import FAST, TICKER, cli, grows, start, wait_for
from tests.hostile.readers import assert_readers_work, good_snapshot, ingest

OTHER_UID = 54321
SECRET = "their-token-abcdefghijklmnopqrstuvwxyz0123"


def forge(directory: Path) -> None:
    """What a hostile neighbour leaves: their token, and a row at 99%."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bridge.token").write_text(SECRET + "\n")
    forged = good_snapshot(util=99.0)
    (directory / "state.json").write_text(json.dumps({"version": 1, "rows": [forged]}))


def other_users(directory: Path) -> None:
    os.chown(directory, OTHER_UID, OTHER_UID)
    directory.chmod(0o755)


def world_writable(directory: Path) -> None:
    directory.chmod(0o777)


MAKE_UNSAFE: dict[str, Callable[[Path], None]] = {
    "owned by another user": other_users,
    "mode 0777": world_writable,
}


def assert_one_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("unsafe", list(MAKE_UNSAFE.values()), ids=list(MAKE_UNSAFE))
def test_an_unsafe_state_dir_is_refused_by_every_command(
    state_dir: Path, tmp_path: Path, unsafe: Callable[[Path], None]
) -> None:
    forge(state_dir)
    unsafe(state_dir)
    for args in (["pair"], ["--json"], [], ["show"], ["refresh"], ["doctor"], ["serve"]):
        done = cli(*args)
        assert_one_line(done, "refusing to use it")
        assert SECRET not in done.stdout + done.stderr
    assert_one_line(ingest(good_snapshot(util=5.0)), "refusing")
    status = cli("status")
    assert status.returncode == 0 and "99%" not in status.stdout, status.stdout
    # A guard does not take the forged 99% for the truth: its command runs.
    out = tmp_path / "ticks"
    guard = start(*FAST, sys.executable, "-c", TICKER, str(out))
    wait_for(grows(out), "the guarded command to run")
    wait_for(grows(out), "the guarded command to keep running (not paused)")
    assert guard.poll() is None
    assert (state_dir / "bridge.token").read_text().strip() == SECRET  # untouched


def test_an_unsafe_config_dir_is_refused(tmp_path: Path) -> None:
    config = Path(os.environ["CLAUDEMETER_CONFIG_DIR"])
    config.mkdir(parents=True)
    other_users(config)
    assert_one_line(cli("--json"), "refusing to use it", str(config))


def test_a_private_dir_of_ours_is_used_and_tightened(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    state_dir.chmod(0o775)  # ours, writable by our own group (umask 002): tightened
    assert ingest(good_snapshot(util=41.0)).returncode == 0
    assert state_dir.stat().st_mode & 0o777 == 0o700
    assert_readers_work(util=41.0)


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A file of the user's that a planted symlink points at."""
    path = tmp_path / "precious"
    path.write_text("keep me\n")
    return path


def plant(state_dir: Path, name: str, target: Path) -> None:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    link = state_dir / name
    link.parent.mkdir(mode=0o700, exist_ok=True)
    link.symlink_to(target)


@pytest.mark.parametrize("name", ["state.lock", "refresh.lock", "bridge.lock"])
def test_a_symlinked_lock_is_refused_and_its_target_untouched(
    state_dir: Path, target: Path, name: str
) -> None:
    plant(state_dir, name, target)
    command = {"state.lock": ["ingest", "-"], "refresh.lock": ["refresh"], "bridge.lock": ["serve"]}
    done = cli(*command[name], stdin=json.dumps(good_snapshot()))
    assert_one_line(done, "symlink")
    assert target.read_text() == "keep me\n"


def test_a_symlinked_token_is_never_printed(state_dir: Path, target: Path) -> None:
    target.write_text(SECRET + "\n")
    plant(state_dir, "bridge.token", target)
    done = cli("pair")
    assert done.returncode == 1 and SECRET not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_symlinked_state_file_is_not_read(state_dir: Path, target: Path) -> None:
    target.write_text(json.dumps({"version": 1, "rows": [good_snapshot(util=99.0)]}))
    plant(state_dir, "state.json", target)
    assert "99%" not in cli("status").stdout
    assert "99%" not in cli("--json", "--cached").stdout
    assert ingest(good_snapshot(util=41.0)).returncode == 0  # the link is moved aside
    assert json.loads(target.read_text())["rows"][0]["usage"]["five_hour"]["utilization"] == 99
    assert_readers_work(util=41.0)


def test_the_tmux_loop_lock_and_log_never_follow_a_symlink(
    state_dir: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from claudemeter import tmux_loop

    socket = "/tmp/tmux-0/hostile"
    digest = hashlib.sha256(socket.encode()).hexdigest()[:16]
    plant(state_dir, f"tmux-loop-{digest}.lock", target)
    with pytest.raises(OSError):
        tmux_loop._lock(socket)
    assert target.read_text() == "keep me\n"
    monkeypatch.setenv("TMUX", f"{socket},1,0")
    done = cli("tmux-loop")
    assert_one_line(done, "lock")
    assert target.read_text() == "keep me\n"


@pytest.mark.parametrize("name", ["history-recent.json", "history.json"])
def test_a_symlinked_history_file_is_not_read_nor_written_through(
    state_dir: Path, target: Path, name: str
) -> None:
    plant(state_dir, name, target)
    assert ingest(good_snapshot(util=41.0)).returncode == 0
    shown = cli("history", "--json")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "keep me" not in shown.stdout
    assert target.read_text() == "keep me\n"
    assert_readers_work(util=41.0)


def test_a_symlinked_loop_log_is_never_appended_to(state_dir: Path, target: Path) -> None:
    from claudemeter import tmux_loop

    plant(state_dir, tmux_loop.LOG, target)
    tmux_loop.log("a line that must not reach the target")
    assert target.read_text() == "keep me\n"
