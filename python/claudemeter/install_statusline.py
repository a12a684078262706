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
import json
import re
import sys
from pathlib import Path
from typing import Any

from .claude_settings import (
    SETTINGS,
    InstallError,
    backup,
    dump,
    load_settings,
    meter_command,
    sha,
    undo_untouched,
    write,
)
from .private import ensure_private_dir, write_private
from .sources import claude_config
from .sources.statusline import record_path

KEY = "statusLine"
#: A statusLine command that runs ours, however it was spelled.
_OURS = re.compile(r"(claude-meter|claudemeter)\b.*\bstatusline\b")


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
    return meter_command("statusline")


def is_ours(status_line: Any) -> bool:
    return (
        isinstance(status_line, dict)
        and isinstance(status_line.get("command"), str)
        and bool(_OURS.search(status_line["command"]))
    )


def _installed(status_line: Any, record: dict[str, Any]) -> bool:
    """Ours by its command, or exactly what we installed (a custom ``--command``)."""
    return is_ours(status_line) or status_line == record.get("installed", object())


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
    written = dump(settings)
    saved = backup(path, raw) if raw is not None else None
    record = {
        "settings": str(path),
        "had_file": raw is not None,
        "had_status_line": present,
        "previous": current,
        "chain": chain_command,
        "installed": settings[KEY],
        "backup": str(saved) if saved else None,
        "original_sha256": sha(raw) if raw is not None else None,
        "written_sha256": sha(written),
    }
    record_file = record_path(claude_dir)
    try:
        ensure_private_dir(record_file.parent)
        write_private(record_file, json.dumps(record, indent=1).encode())
    except OSError as exc:
        raise InstallError(f"cannot write {record_file}: {exc.strerror or exc}") from None
    try:
        write(path, written)
    except InstallError:
        with contextlib.suppress(OSError):
            record_file.unlink()
        raise
    done = f"installed `{command}` as Claude Code's statusLine in {path}"
    if chain_command:
        done += f", chained after `{chain_command}`"
    if saved:
        done += f"; backup: {saved.name}"
    return done


def _read_record(claude_dir: Path) -> dict[str, Any] | None:
    try:
        body = json.loads(record_path(claude_dir).read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


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
    done = undo_untouched(path, raw, record)
    if done is None:
        # Edited since (or installed by hand): undo only our key, keep everything else.
        if raw is not None:
            backup(path, raw)
        if record.get("had_status_line"):
            settings[KEY] = record.get("previous")
            done = f"restored the previous statusLine in {path}"
        else:
            del settings[KEY]
            done = f"removed claude-meter's statusLine from {path}"
        write(path, dump(settings))
    with contextlib.suppress(OSError):
        record_file.unlink()
    return done


def main(args: argparse.Namespace) -> int:
    claude_dir = claude_config.current().directory
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
