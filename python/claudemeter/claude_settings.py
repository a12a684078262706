"""Claude Code's ``settings.json``, edited with care: the user's file, not ours.

What ``install-statusline`` and ``install-hooks`` share: every other key is kept in
order, the old bytes are backed up (timestamped) before the first change, writes are
atomic and keep the file's permissions (through a dotfile manager's symlink), and a
file we cannot parse is left untouched with one line saying why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from .private import write_atomic

SETTINGS = "settings.json"
BACKUP_INFIX = ".claudemeter-backup-"
#: A settings.json that did not exist is created private; an existing one keeps its mode.
NEW_FILE_MODE = 0o600


class InstallError(Exception):
    """Nothing was changed; the message says why and what to do, in one line."""


def meter_command(*args: str) -> str:
    """``claude-meter ARGS`` by absolute path: Claude Code's PATH need not contain this
    virtualenv."""
    script = Path(sys.executable).parent / "claude-meter"
    if script.is_file():
        return shlex.join([str(script), *args])
    return shlex.join([sys.executable, "-m", "claudemeter", *args])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_settings(path: Path) -> tuple[bytes | None, dict[str, Any]]:
    """The file's bytes (None when absent) and its object; InstallError when unusable,
    including a symlink to nothing: writing it would create a file wherever it points,
    and undoing that would delete the user's link."""
    if path.is_symlink() and not path.exists():
        raise InstallError(
            f"{path} is a symlink to {path.readlink()}, which does not exist; create that"
            " file (or remove the link) and run this again; nothing was changed"
        )
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


def dump(settings: dict[str, Any]) -> bytes:
    return (json.dumps(settings, indent=2, ensure_ascii=False) + "\n").encode()


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return NEW_FILE_MODE


def write(path: Path, data: bytes) -> None:
    """Atomic replace of the file a symlinked settings.json points at (dotfile managers
    link it), keeping its permissions."""
    target = path.resolve() if path.is_symlink() else path
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(target, data, _mode(target))
    except OSError as exc:
        raise InstallError(f"cannot write {target}: {exc.strerror or exc}") from None


def backup(path: Path, raw: bytes) -> Path:
    """``settings.json.claudemeter-backup-<local time>`` beside it, same mode."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}{BACKUP_INFIX}{stamp}")
    count = 1
    while target.exists():
        count += 1
        target = path.with_name(f"{path.name}{BACKUP_INFIX}{stamp}-{count}")
    try:
        write_atomic(target, raw, _mode(path))
    except OSError as exc:
        raise InstallError(f"cannot back up {path}: {exc.strerror or exc}") from None
    return target


def original_bytes(record: dict[str, Any]) -> bytes | None:
    """An install record's backup, if it is still exactly what was there before."""
    saved = record.get("backup")
    if not isinstance(saved, str):
        return None
    try:
        data = Path(saved).read_bytes()
    except OSError:
        return None
    return data if sha(data) == record.get("original_sha256") else None


def undo_untouched(path: Path, raw: bytes | None, record: dict[str, Any]) -> str | None:
    """Undo an install byte for byte when the file is still what it wrote: remove the
    file the install created (never a symlink of the user's), or put back the bytes it
    replaced. Returns what was done, or None when the file was edited since (or the
    backup is gone): the caller then takes out only its own part."""
    if raw is None or sha(raw) != record.get("written_sha256"):
        return None
    if not record.get("had_file") and not path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return f"removed {path}, which the install had created"
    original = original_bytes(record)
    if original is None:
        return None
    write(path, original)
    return f"restored {path} exactly as it was before the install"
