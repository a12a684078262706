"""``claude-meter install-hooks``: add claudemeter's Claude Code hooks to ``settings.json``,
and ``--uninstall`` take them out again, byte-exact when nothing else changed since.

The hooks (every command runs ``claude-meter hook``):

- the gate, ``hook gate``, at the safe points: ``UserPromptSubmit`` (before a prompt is
  sent), ``PreToolUse`` (before a tool runs) and ``PostToolUse`` (before a tool's result
  is sent back: the one request a tool call makes without a prompt). Its ``timeout`` is
  the gate's ``--max-wait`` plus a minute, so Claude Code never kills a hold it meant;
- the wall record, ``hook stop-failure``, on ``StopFailure``.

Same care as ``install-statusline`` (:mod:`claudemeter.claude_settings`): the user's
other hooks and keys are kept in order, a backup is written before the first change,
writes are atomic, and a file (or a ``hooks`` value) we cannot parse is left untouched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from . import defaults
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
from .hooks import DEFAULT_MAX_WAIT, bounded
from .private import ensure_private_dir, write_private
from .sources import claude_config
from .sources.statusline import record_path

KEY = "hooks"
RECORD_DIR = "hooks"
GATE_EVENTS = ("UserPromptSubmit", "PreToolUse", "PostToolUse")
WALL_EVENT = "StopFailure"
#: The spinner text Claude Code shows while the gate runs (it cannot change during a
#: hold; the tmux notice and the popup say until when).
STATUS_MESSAGE = "claudemeter: checking the usage limit"
WALL_TIMEOUT = 30
#: A hook command that runs ours, however it was spelled.
_OURS = re.compile(r"(claude-meter|claudemeter)\b.*\bhook\b")


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Add claudemeter's hooks to Claude Code's settings.json ($CLAUDE_CONFIG_DIR or"
        " ~/.claude): the gate (`claude-meter hook gate`) on UserPromptSubmit, PreToolUse"
        " and PostToolUse, and the limit-hit record (`claude-meter hook stop-failure`) on"
        " StopFailure. Every other hook and key is kept; a backup is written first."
    )
    parser.add_argument(
        "--uninstall",
        action="store_true",
        help="take claudemeter's hooks out again (the file's old bytes when nothing else"
        " changed since)",
    )
    parser.add_argument(
        "--threshold",
        metavar="PCT",
        type=bounded(0.0, 1000.0),
        help="the gate's --threshold (default: cm-guard's, 90 or $CLAUDEMETER_THRESHOLD)",
    )
    parser.add_argument(
        "--grace",
        metavar="SECONDS",
        type=bounded(0.0, 86400.0),
        help=f"the gate's --grace (default {defaults.GRACE:g})",
    )
    parser.add_argument(
        "--max-wait",
        metavar="SECONDS",
        type=bounded(1.0, 30 * 86400.0),
        default=DEFAULT_MAX_WAIT,
        help="the gate's --max-wait (default 19800); the hook's timeout is this plus 60",
    )
    parser.add_argument(
        "--poll",
        metavar="SECONDS",
        type=bounded(0.05, 3600.0),
        help=f"the gate's --poll while holding (default {defaults.POLL:g})",
    )


def is_ours(hook: Any) -> bool:
    return (
        isinstance(hook, dict)
        and isinstance(hook.get("command"), str)
        and bool(_OURS.search(hook["command"]))
    )


def installed_events(settings: dict[str, Any]) -> set[str]:
    """The events that run one of our hooks in a parsed settings.json (doctor asks)."""
    hooks = settings.get(KEY)
    if not isinstance(hooks, dict):
        return set()
    return {
        event
        for event, groups in hooks.items()
        if isinstance(groups, list) and any(is_ours(h) for h in _all_hooks({event: groups}))
    }


def wanted(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """The matcher groups install-hooks adds, per event."""
    max_wait = float(args.max_wait)
    gate_args = ["hook", "gate"]
    for flag in ("threshold", "grace", "poll"):
        value = getattr(args, flag, None)
        if value is not None:
            gate_args += [f"--{flag}", f"{value:g}"]
    if max_wait != DEFAULT_MAX_WAIT:
        gate_args += ["--max-wait", f"{max_wait:g}"]
    gate = {
        "type": "command",
        "command": meter_command(*gate_args),
        "timeout": int(max_wait) + 60,
        "statusMessage": STATUS_MESSAGE,
    }
    wall = {
        "type": "command",
        "command": meter_command("hook", "stop-failure"),
        "timeout": WALL_TIMEOUT,
    }
    groups = {event: [{"hooks": [gate]}] for event in GATE_EVENTS}
    groups[WALL_EVENT] = [{"hooks": [wall]}]
    return groups


def _hooks_of(settings: dict[str, Any], path: Path) -> dict[str, Any]:
    hooks = settings.get(KEY, {})
    if not isinstance(hooks, dict) or not all(isinstance(v, list) for v in hooks.values()):
        raise InstallError(
            f'the "hooks" in {path} is not an object of lists, as Claude Code expects;'
            " nothing was changed"
        )
    return hooks


def without_ours(hooks: dict[str, Any]) -> dict[str, Any]:
    """``hooks`` with every hook of ours removed (and groups or events left empty by
    that), everything else as it was."""
    kept: dict[str, Any] = {}
    for event, groups in hooks.items():
        new_groups = []
        for group in groups:
            inner = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(inner, list) or not any(is_ours(h) for h in inner):
                new_groups.append(group)
                continue
            rest = [h for h in inner if not is_ours(h)]
            if rest:
                new_groups.append({**group, "hooks": rest})
        if new_groups or not groups:
            kept[event] = new_groups
    return kept


def install(claude_dir: Path, groups: dict[str, list[dict[str, Any]]]) -> str:
    path = claude_dir / SETTINGS
    raw, settings = load_settings(path)
    hooks = _hooks_of(settings, path)
    merged = without_ours(hooks)
    for event, ours in groups.items():
        merged[event] = [*merged.get(event, []), *ours]
    if merged == hooks:
        return f"already installed in {path}"
    record_file = record_path(claude_dir, RECORD_DIR)
    old_record = _read_record(record_file)
    had_ours = any(is_ours(h) for h in _all_hooks(hooks))
    had_key = KEY in settings
    settings[KEY] = merged
    written = dump(settings)
    saved = backup(path, raw) if raw is not None else None
    # An update of our own hooks keeps the first install's record: that one holds the
    # bytes from before claudemeter, which --uninstall restores.
    if had_ours and old_record is not None:
        record = {**old_record, "written_sha256": sha(written)}
    else:
        record = {
            "settings": str(path),
            "had_file": raw is not None,
            "had_key": had_key,
            "backup": str(saved) if saved else None,
            "original_sha256": sha(raw) if raw is not None else None,
            "written_sha256": sha(written),
        }
    try:
        ensure_private_dir(record_file.parent)
        write_private(record_file, json.dumps(record, indent=1).encode())
    except OSError as exc:
        raise InstallError(f"cannot write {record_file}: {exc.strerror or exc}") from None
    write(path, written)
    done = f"installed claudemeter's hooks ({', '.join(groups)}) in {path}"
    return done + (f"; backup: {saved.name}" if saved else "")


def _all_hooks(hooks: dict[str, Any]) -> list[Any]:
    return [
        h
        for groups in hooks.values()
        for group in groups
        if isinstance(group, dict) and isinstance(group.get("hooks"), list)
        for h in group["hooks"]
    ]


def _read_record(record_file: Path) -> dict[str, Any] | None:
    try:
        body = json.loads(record_file.read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def uninstall(claude_dir: Path) -> str:
    path = claude_dir / SETTINGS
    raw, settings = load_settings(path)
    record_file = record_path(claude_dir, RECORD_DIR)
    record = _read_record(record_file) or {}
    hooks = _hooks_of(settings, path)
    if not any(is_ours(h) for h in _all_hooks(hooks)):
        with contextlib.suppress(OSError):
            record_file.unlink()
        return f"claudemeter's hooks are not installed in {path}; nothing to do"
    done = undo_untouched(path, raw, record)
    if done is None:
        # Edited since (or installed by hand): take out only our hooks.
        if raw is not None:
            backup(path, raw)
        kept = without_ours(hooks)
        if kept or record.get("had_key"):
            settings[KEY] = kept
        else:
            del settings[KEY]
        write(path, dump(settings))
        done = f"removed claudemeter's hooks from {path}"
    with contextlib.suppress(OSError):
        record_file.unlink()
    return done


def main(args: argparse.Namespace) -> int:
    claude_dir = claude_config.current().directory
    try:
        message = uninstall(claude_dir) if args.uninstall else install(claude_dir, wanted(args))
    except InstallError as exc:
        print(f"claude-meter install-hooks: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0
