"""Sessions that do not run our statusline, from Claude Code's own transcripts.

Claude Code writes every session to ``$CLAUDE_CONFIG_DIR/projects/<project>/<session>
.jsonl``; each assistant message there carries its ``model``, its ``usage`` (input,
output, cache tokens) and a ``timestamp``. Priced with :mod:`claudemeter.prices`, that is
the session's cost over time, as a :class:`history.Session` like the ones the statusline
records. It has no tmux pane (the transcript does not say where the session ran).

Only ``top`` and the popup read these, never the status line; files not modified since
the period began are not opened, and a parsed file is remembered (by size and mtime)
for the life of the process, so the popup's redraws do not re-read them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .history import Session, SessionPoint
from .model import parse_time
from .prices import cost

#: Bigger transcripts are read up to here (a session this long is still counted).
MAX_BYTES = 64 * 1024 * 1024

_cache: dict[tuple[str, int, int], Session | None] = {}


def sessions(claude_dir: Path, since: float, skip: Iterable[str] = ()) -> list[Session]:
    """Sessions of one Claude Code config dir with a transcript written since ``since``
    (epoch), except those in ``skip`` (already recorded by the statusline)."""
    skipped = set(skip)
    found = []
    for path in sorted((claude_dir / "projects").glob("*/*.jsonl")):
        if path.stem in skipped:
            continue
        try:
            info = path.stat()
        except OSError:
            continue
        if info.st_mtime < since:
            continue
        key = (str(path), info.st_size, info.st_mtime_ns)
        if key not in _cache:
            _cache[key] = read(path)
        session = _cache[key]
        if session is not None and session.session_id not in skipped:
            found.append(session)
    return found


def read(path: Path) -> Session | None:
    """One transcript as a session: cumulative priced cost at each assistant message
    (a message written in several lines is counted once); None without any."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES)
    except OSError:
        return None
    seen: set[str] = set()
    cost_usd, tokens_in, tokens_out = 0.0, 0, 0
    session = Session(path.stem)
    for raw in data.splitlines():
        entry = _entry(raw)
        if entry is None:
            continue
        body, message, at = entry
        ident = message.get("id")
        if isinstance(ident, str):
            if ident in seen:
                continue
            seen.add(ident)
        usage = message.get("usage")
        model = message.get("model") if isinstance(message.get("model"), str) else None
        if not isinstance(usage, dict):
            continue
        cost_usd += cost(model, usage)
        tokens_in += _int(usage.get("input_tokens")) + _int(usage.get("cache_read_input_tokens"))
        tokens_in += _int(usage.get("cache_creation_input_tokens"))
        tokens_out += _int(usage.get("output_tokens"))
        session.points.append(SessionPoint(at, cost_usd, tokens_in, tokens_out))
        if model and not model.startswith("<"):
            session.model = model
        session.project = body.get("cwd") if isinstance(body.get("cwd"), str) else session.project
        if isinstance(body.get("sessionId"), str):
            session.session_id = body["sessionId"]
    if not session.points:
        return None
    session.points.sort(key=lambda p: p.t)
    session.started = session.points[0].t
    return session


def _entry(raw: bytes) -> tuple[dict[str, Any], dict[str, Any], float] | None:
    """An assistant line, its ``message`` and its time; None for anything else."""
    if b'"assistant"' not in raw:
        return None
    with contextlib.suppress(ValueError, RecursionError):
        body = json.loads(raw)
        if not isinstance(body, dict) or body.get("type") != "assistant":
            return None
        message = body.get("message")
        stamp = body.get("timestamp")
        if isinstance(message, dict) and isinstance(stamp, str):
            return body, message, parse_time(stamp).timestamp()
    return None


def _int(value: Any) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if ok else 0
