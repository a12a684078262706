"""``claude-meter install-statusline``: make ``claude-meter statusline`` Claude Code's
``statusLine`` command, and ``--uninstall`` put back exactly what was there.

``settings.json`` is the user's file, not ours: every other key is kept in order, the
old bytes are backed up (timestamped) before the first change, writes are atomic, and a
file we cannot parse is left untouched. What was replaced is recorded in our config dir
(keyed by the Claude Code config dir, since several logins may each have one), which is
also where ``claude-meter statusline`` finds the command it chains to.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from . import env
from .sources.statusline import record_path
from .store import ensure_private_dir, write_atomic, write_private

SETTINGS = "settings.json"
KEY = "statusLine"
BACKUP_INFIX = ".claudemeter-backup-"
#: A statusLine command that runs ours, however it was spelled.
_OURS = re.compile(r"(claude-meter|claudemeter)\b.*\bstatusline\b")
#: A settings.json that did not exist is created private; an existing one keeps its mode.
NEW_FILE_MODE = 0o600


class InstallError(Exception):
    """Nothing was changed; the message says why and what to do, in one line."""


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--uninstall",
        action="store_true",
        help="restore the statusLine (or its absence) that was there before",
    )
    parser.add_argument(
        "--chain",
        action="store_true",
        help="keep an existing statusLine command: it runs first and its output comes before ours",
    )
    parser.add_argument(
        "--command",
        metavar="CMD",
        dest="install_command",
        help="the statusLine command to install (default: this install's"
        " `claude-meter statusline`, by absolute path)",
    )


def default_command() -> str:
    """By absolute path: Claude Code's PATH need not contain this virtualenv."""
    script = Path(sys.executable).parent / "claude-meter"
    if script.is_file():
        return f"{shlex.quote(str(script))} statusline"
    return f"{shlex.quote(sys.executable)} -m claudemeter statusline"


def is_ours(status_line: Any) -> bool:
    return (
        isinstance(status_line, dict)
        and isinstance(status_line.get("command"), str)
        and bool(_OURS.search(status_line["command"]))
    )


def _installed(status_line: Any, record: dict[str, Any]) -> bool:
    """Ours by its command, or exactly what we installed (a custom ``--command``)."""
    return is_ours(status_line) or status_line == record.get("installed", object())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_settings(path: Path) -> tuple[bytes | None, dict[str, Any]]:
    """The file's bytes (None when absent) and its object; InstallError when unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, {}
    except OSError as exc:
        raise InstallError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not raw.strip():
        return raw, {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise InstallError(
            f"{path} is not valid JSON{where}; fix it (or move it away) and run this again;"
            " nothing was changed"
        ) from None
    if not isinstance(body, dict):
        raise InstallError(f"{path} does not hold a JSON object; nothing was changed")
    return raw, body


def _dump(settings: dict[str, Any]) -> bytes:
    return (json.dumps(settings, indent=2, ensure_ascii=False) + "\n").encode()


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return NEW_FILE_MODE


def _write(path: Path, data: bytes) -> None:
    """Atomic replace of the file a symlinked settings.json points at (dotfile managers
    link it), keeping its permissions."""
    target = path.resolve() if path.is_symlink() else path
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(target, data, _mode(target))
    except OSError as exc:
        raise InstallError(f"cannot write {target}: {exc.strerror or exc}") from None


def _backup(path: Path, raw: bytes) -> Path:
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    backup = path.with_name(f"{path.name}{BACKUP_INFIX}{stamp}")
    count = 1
    while backup.exists():
        count += 1
        backup = path.with_name(f"{path.name}{BACKUP_INFIX}{stamp}-{count}")
    try:
        write_atomic(backup, raw, _mode(path))
    except OSError as exc:
        raise InstallError(f"cannot back up {path}: {exc.strerror or exc}") from None
    return backup


def _chained(current: Any, path: Path) -> tuple[str, dict[str, Any]]:
    """The command to chain to, and the statusLine's other keys (``padding``) to keep."""
    if (
        not isinstance(current, dict)
        or current.get("type", "command") != "command"
        or not isinstance(current.get("command"), str)
        or not current["command"].strip()
    ):
        raise InstallError(
            f"the statusLine in {path} is not a command, so it cannot be chained;"
            " nothing was changed"
        )
    extras = {k: v for k, v in current.items() if k not in ("type", "command")}
    return str(current["command"]), extras


def install(claude_dir: Path, command: str, chain: bool) -> str:
    path = claude_dir / SETTINGS
    raw, settings = load_settings(path)
    present = KEY in settings
    current = settings.get(KEY)
    if present and _installed(current, _read_record(claude_dir) or {}):
        return f"already installed in {path}"
    chain_command = None
    extras: dict[str, Any] = {}
    if present:
        if not chain:
            shown = current.get("command") if isinstance(current, dict) else current
            raise InstallError(
                f"{path} already has a statusLine ({json.dumps(shown)[:80]}); rerun with"
                " --chain to keep it (its output first, ours after); nothing was changed"
            )
        chain_command, extras = _chained(current, path)
    settings[KEY] = {"type": "command", "command": command, **extras}
    written = _dump(settings)
    backup = _backup(path, raw) if raw is not None else None
    record = {
        "settings": str(path),
        "had_file": raw is not None,
        "had_status_line": present,
        "previous": current,
        "chain": chain_command,
        "installed": settings[KEY],
        "backup": str(backup) if backup else None,
        "original_sha256": _sha(raw) if raw is not None else None,
        "written_sha256": _sha(written),
    }
    record_file = record_path(claude_dir)
    try:
        ensure_private_dir(record_file.parent)
        write_private(record_file, json.dumps(record, indent=1).encode())
    except OSError as exc:
        raise InstallError(f"cannot write {record_file}: {exc.strerror or exc}") from None
    try:
        _write(path, written)
    except InstallError:
        with contextlib.suppress(OSError):
            record_file.unlink()
        raise
    done = f"installed `{command}` as Claude Code's statusLine in {path}"
    if chain_command:
        done += f", chained after `{chain_command}`"
    if backup:
        done += f"; backup: {backup.name}"
    return done


def _read_record(claude_dir: Path) -> dict[str, Any] | None:
    try:
        body = json.loads(record_path(claude_dir).read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _original_bytes(record: dict[str, Any]) -> bytes | None:
    """The backup, if it is still exactly what was there before the install."""
    backup = record.get("backup")
    if not isinstance(backup, str):
        return None
    try:
        data = Path(backup).read_bytes()
    except OSError:
        return None
    return data if _sha(data) == record.get("original_sha256") else None


def uninstall(claude_dir: Path) -> str:
    path = claude_dir / SETTINGS
    raw, settings = load_settings(path)
    record = _read_record(claude_dir) or {}
    record_file = record_path(claude_dir)
    current = settings.get(KEY)
    if KEY not in settings or not _installed(current, record):
        with contextlib.suppress(OSError):
            record_file.unlink()
        return f"claude-meter's statusLine is not installed in {path}; nothing to do"
    untouched = raw is not None and _sha(raw) == record.get("written_sha256")
    original = _original_bytes(record) if untouched else None
    if untouched and not record.get("had_file"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        done = f"removed {path}, which the install had created"
    elif original is not None:
        _write(path, original)
        done = f"restored {path} exactly as it was before the install"
    else:
        # Edited since (or installed by hand): undo only our key, keep everything else.
        if raw is not None:
            _backup(path, raw)
        if record.get("had_status_line"):
            settings[KEY] = record.get("previous")
            done = f"restored the previous statusLine in {path}"
        else:
            del settings[KEY]
            done = f"removed claude-meter's statusLine from {path}"
        _write(path, _dump(settings))
    with contextlib.suppress(OSError):
        record_file.unlink()
    return done


def main(args: argparse.Namespace) -> int:
    claude_dir = env.default_claude_config_dir()
    try:
        if args.uninstall:
            message = uninstall(claude_dir)
        else:
            message = install(claude_dir, args.install_command or default_command(), args.chain)
    except InstallError as exc:
        print(f"claude-meter install-statusline: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0
