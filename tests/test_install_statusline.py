"""``claude-meter install-statusline`` on a real settings.json in a temporary
CLAUDE_CONFIG_DIR: the round trip restores the file byte for byte."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FIXTURES, cli

# Claude Code's own formatting is not ours to normalise: odd spacing on purpose.
ORIGINAL = (
    b'{\n    "model": "opus",\n  "permissions": {"allow": ["Bash(ls:*)"]},'
    b'\n "env": {"FOO": "bar"}\n}'
)


def like_claude_code(command: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    """Claude Code runs the statusLine command line through the shell, so do we."""
    return subprocess.run(  # noqa: S602 - Claude Code runs it through the shell, as we must
        command,
        shell=True,
        input=data,
        capture_output=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def claude_config(isolated: Path) -> Path:
    directory = isolated / ".claude"
    directory.mkdir(exist_ok=True)
    return directory


def settings(claude_config: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((claude_config / "settings.json").read_text())
    return body


def backups(claude_config: Path) -> list[Path]:
    return sorted(claude_config.glob("settings.json.claudemeter-backup-*"))


def test_round_trip_restores_the_file_byte_for_byte(claude_config: Path) -> None:
    path = claude_config / "settings.json"
    path.write_bytes(ORIGINAL)
    path.chmod(0o640)
    done = cli("install-statusline")
    assert done.returncode == 0, done.stderr
    body = settings(claude_config)
    assert list(body) == ["model", "permissions", "env", "statusLine"]
    assert body["model"] == "opus" and body["env"] == {"FOO": "bar"}
    assert body["statusLine"]["type"] == "command"
    assert body["statusLine"]["command"].endswith("statusline")
    assert path.stat().st_mode & 0o777 == 0o640
    [backup] = backups(claude_config)
    assert backup.read_bytes() == ORIGINAL
    done = cli("install-statusline", "--uninstall")
    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == ORIGINAL
    assert path.stat().st_mode & 0o777 == 0o640


def test_installed_command_runs_this_claude_meter(claude_dir: Path) -> None:
    assert cli("install-statusline").returncode == 0
    command = settings(claude_dir)["statusLine"]["command"]
    data = (FIXTURES / "claude_code_statusline_input_api_key_user.json").read_bytes()
    done = like_claude_code(command, data)
    assert done.returncode == 0
    assert done.stdout.decode().strip() == "claude-meter: –"


def test_no_settings_file_before_means_none_after(claude_config: Path) -> None:
    path = claude_config / "settings.json"
    assert cli("install-statusline").returncode == 0
    assert set(settings(claude_config)) == {"statusLine"}
    assert backups(claude_config) == []
    assert cli("install-statusline", "--uninstall").returncode == 0
    assert not path.exists()


def test_a_different_statusline_is_refused_unless_chained(claude_config: Path) -> None:
    path = claude_config / "settings.json"
    original = json.dumps(
        {
            "statusLine": {"type": "command", "command": "~/bin/mine.sh", "padding": 0},
            "theme": "dark",
        }
    ).encode()
    path.write_bytes(original)
    done = cli("install-statusline")
    assert done.returncode == 1
    assert "--chain" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == original
    assert backups(claude_config) == []

    assert cli("install-statusline", "--chain").returncode == 0
    line = settings(claude_config)["statusLine"]
    assert line["command"].endswith("statusline") and line["padding"] == 0
    assert cli("install-statusline", "--uninstall").returncode == 0
    assert path.read_bytes() == original


def test_chained_install_runs_the_previous_command_first(
    claude_dir: Path,
    tmp_path: Path,
) -> None:
    script = tmp_path / "mine.sh"
    script.write_text("#!/bin/sh\ncat >/dev/null\nprintf 'MINE\\n'\n")
    script.chmod(0o755)
    path = claude_dir / "settings.json"
    path.write_text(json.dumps({"statusLine": {"type": "command", "command": str(script)}}))
    assert cli("install-statusline", "--chain").returncode == 0
    now = int(time.time())
    data = json.dumps(
        {"rate_limits": {"five_hour": {"used_percentage": 12, "resets_at": now + 3600}}}
    ).encode()
    command = settings(claude_dir)["statusLine"]["command"]
    done = like_claude_code(command, data)
    out = done.stdout.decode()
    assert done.returncode == 0
    assert out.index("MINE") < out.index("5h 12%")


def test_uninstall_after_other_edits_keeps_them(claude_config: Path) -> None:
    path = claude_config / "settings.json"
    previous = {"type": "command", "command": "echo old"}
    path.write_text(json.dumps({"statusLine": previous, "a": 1}))
    assert cli("install-statusline", "--chain").returncode == 0
    body = settings(claude_config)
    body["b"] = 2  # Claude Code (or the user) changed something since
    path.write_text(json.dumps(body))
    assert cli("install-statusline", "--uninstall").returncode == 0
    assert settings(claude_config) == {"statusLine": previous, "a": 1, "b": 2}


def test_uninstall_after_edits_removes_a_key_that_was_not_there(claude_config: Path) -> None:
    path = claude_config / "settings.json"
    path.write_text('{"a": 1}')
    assert cli("install-statusline").returncode == 0
    body = settings(claude_config)
    body["b"] = 2
    path.write_text(json.dumps(body))
    assert cli("install-statusline", "--uninstall").returncode == 0
    assert settings(claude_config) == {"a": 1, "b": 2}


def test_second_install_changes_nothing(claude_config: Path) -> None:
    path = claude_config / "settings.json"
    path.write_bytes(ORIGINAL)
    assert cli("install-statusline").returncode == 0
    installed = path.read_bytes()
    done = cli("install-statusline")
    assert done.returncode == 0 and "already installed" in done.stdout
    assert path.read_bytes() == installed
    assert len(backups(claude_config)) == 1


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"a": 1,}'])
def test_invalid_settings_is_left_alone(claude_config: Path, content: bytes) -> None:
    path = claude_config / "settings.json"
    path.write_bytes(content)
    for args in (("install-statusline",), ("install-statusline", "--uninstall")):
        done = cli(*args)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert str(path) in done.stderr
        assert path.read_bytes() == content
    assert backups(claude_config) == []


def test_non_command_statusline_cannot_be_chained(claude_config: Path) -> None:
    path = claude_config / "settings.json"
    original = b'{"statusLine": "plain text"}'
    path.write_bytes(original)
    done = cli("install-statusline", "--chain")
    assert done.returncode == 1 and "cannot be chained" in done.stderr
    assert path.read_bytes() == original


def test_symlinked_settings_stays_a_symlink(claude_config: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "claude-settings.json"
    target.write_bytes(ORIGINAL)
    link = claude_config / "settings.json"
    link.symlink_to(target)
    assert cli("install-statusline").returncode == 0
    assert link.is_symlink()
    assert "statusLine" in json.loads(target.read_text())
    assert cli("install-statusline", "--uninstall").returncode == 0
    assert link.is_symlink() and target.read_bytes() == ORIGINAL


def test_uninstall_when_not_installed(claude_config: Path) -> None:
    path = claude_config / "settings.json"
    path.write_bytes(ORIGINAL)
    done = cli("install-statusline", "--uninstall")
    assert done.returncode == 0 and "not installed" in done.stdout
    assert path.read_bytes() == ORIGINAL


def test_help() -> None:
    done = cli("install-statusline", "--help")
    assert done.returncode == 0 and "--uninstall" in done.stdout and "--chain" in done.stdout
