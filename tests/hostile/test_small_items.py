"""Class 7, the small items: ``refresh`` with an unopenable ``refresh.lock`` says one
line; a ``#`` in the plugin's or ``@claude_meter_bin``'s path neither stops the loop nor
the popup (tmux format-expands run-shell and display-popup commands), in a real tmux;
``install-statusline`` never writes through, nor deletes, a dangling settings.json
symlink; the loop's error path leaves no old number in any placeholder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from claudemeter.tmux import Tmux
from claudemeter.tmux_loop import Loop
from tests.helpers import cli
from tests.hostile.readers import assert_readers_work, good_snapshot, ingest
from tests.tmuxlab import REPO, Lab, attach, lab_fixture, until

__all__ = ["lab_fixture"]

NOW = "2026-11-25T12:05:00.000Z"  # the pinned clock: readings 30 s old


def test_refresh_says_one_line_when_its_lock_cannot_be_opened(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700, parents=True)
    (state_dir / "refresh.lock").mkdir()  # not a file: open() fails with EISDIR
    done = cli("refresh")
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "refresh.lock" in done.stderr or "cannot" in done.stderr


def store_at_pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """One reading of 61 %, 30 s old at the pinned clock the tmux servers inherit."""
    monkeypatch.setenv("CLAUDEMETER_NOW", NOW)
    row = good_snapshot(util=61.0)
    row["fetched_at"] = "2026-11-25T12:04:30.000Z"
    row["usage"]["five_hour"]["resets_at"] = "2026-11-25T16:59:59.000Z"
    assert ingest(row).returncode == 0


def hash_paths(home: Path) -> tuple[Path, Path]:
    """The plugin under ``…/a#b/`` and claude-meter under ``…/bin#x/``, both links."""
    plugin = home / "opt" / "a#b" / "claudemeter"
    plugin.parent.mkdir(parents=True)
    plugin.symlink_to(REPO)
    binary = home / "bin#x" / "claude-meter"
    binary.parent.mkdir()
    found = shutil.which("claude-meter")
    assert found
    binary.symlink_to(found)
    return plugin, binary


@pytest.mark.parametrize("size", [None, "90%"], ids=["default-size popup", "percent popup"])
def test_a_hash_in_the_paths_stops_neither_the_loop_nor_the_popup(
    lab: Lab, isolated: Path, monkeypatch: pytest.MonkeyPatch, size: str | None
) -> None:
    store_at_pinned_clock(monkeypatch)
    plugin, binary = hash_paths(isolated)
    entry = str(plugin / "claudemeter.tmux").replace("#", "##")  # the user's run-shell
    lines = [
        "set -g status-right '#{claude_meter}'",
        "set -g @claude_meter_serve off",
        "set -g @claude_meter_interval 1",
        f"set -g @claude_meter_bin '{binary}'",
        *(
            [
                f"set -g @claude_meter_popup_width '{size}'",
                "set -g @claude_meter_popup_height '90%'",
            ]
            if size
            else []
        ),
        f"run-shell '{entry}'",
    ]
    inner = lab.server("cm-hash", "\n".join(lines) + "\n")
    inner.cmd("new-session", "-d", "-s", "work", "-x", "100", "-y", "30")
    assert until(lambda: inner.option("@claude_meter").startswith("5h 61%"), 20), inner.option(
        "@claude_meter"
    )
    outer = attach(lab, inner, width=100, height=30)

    def popup() -> str:
        return "\n".join(outer.capture("screen"))

    def opens() -> bool:
        outer.cmd("send-keys", "-t", "screen", "C-b", "M")
        return until(lambda: "claude-meter · 12:05 local" in popup(), 2)

    assert until(opens, 20), popup()
    outer.cmd("send-keys", "-t", "screen", "q")


def test_install_statusline_leaves_a_dangling_settings_symlink_alone(isolated: Path) -> None:
    claude = isolated / ".claude"
    claude.mkdir(exist_ok=True)
    target = isolated / "dotfiles" / "claude-settings.json"  # not there (yet)
    link = claude / "settings.json"
    link.symlink_to(target)
    done = cli("install-statusline")
    assert done.returncode == 1 and "does not exist" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not target.exists() and link.is_symlink()
    undone = cli("install-statusline", "--uninstall")
    assert undone.returncode in (0, 1), undone.stderr
    assert link.is_symlink() and link.readlink() == target


def test_the_loops_error_path_blanks_every_number(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_at_pinned_clock(monkeypatch)
    server = lab.server("cm-fail", "")
    server.cmd("new-session", "-d", "-s", "work")
    socket = server.cmd("display-message", "-p", "#{socket_path}").strip()
    loop = Loop(Tmux(socket))
    loop.once()
    assert server.option("@claude_meter_5h").startswith("5h 61")
    loop.fail(RuntimeError("a bug"))
    assert "error" in server.option("@claude_meter")
    for name in ("@claude_meter_5h", "@claude_meter_7d", "@claude_meter_reset"):
        assert "61" not in server.option(name) and "%" not in server.option(name), name
    assert_readers_work(util=61.0)
