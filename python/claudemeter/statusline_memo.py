"""``claude-meter statusline`` for a reading already stored: the bar without the store.

Claude Code re-runs its statusLine command on every change of its session (a keystroke,
a mode change, a message), and most of those calls carry the ``rate_limits`` and the
cost the call before stored: only a new API response changes them. Storing them again
(:mod:`claudemeter.sources.statusline`) costs the store's model and a locked, fsynced
write. So each call that stores leaves a memo for its Claude Code session in
``statusline-memo/<session id>.json`` in the state directory: what it stored, when, the
files that told it the account (``.claude.json``, the legacy ``.config.json``) and that
there is no chained command (install-statusline's record), each with its ``stat``, and
the bar it printed (:mod:`claudemeter.bar`'s entries, spend text and pace warning).

The next call with the same session answers from the memo, importing ``json``, ``os``,
``sys``, ``time`` and the constants modules only, when all of this holds:

- the ``rate_limits`` object is the same (compared as canonical JSON), and so are the
  session's cost, tokens, model, project and pane (:func:`sample_key`): a changed
  reading or cost reaches the store at once (guards gate on the reading; ``top``
  splits each 5-minute slot's rise by the cost recorded in it);
- the login (``CLAUDE_CONFIG_DIR``, ``HOME``, ``TZ``) and each recorded file's ``stat``
  are the same (a changed ``.claude.json`` may hold another account or Claude Code's own
  cached usage; a recorded chain must run);
- the memo is younger than :data:`SPAN` (60 s; a statusline reading goes stale at 900 s,
  so the stored row is re-dated well inside that) and the first moment its bar changes
  other than by the countdown (a bucket's reset, a pace running out) is still ahead;
- no pinned clock (``CLAUDEMETER_NOW``), no shared store, a private state directory, and
  a memo that is a regular file of ours, mode 0600, of this format, for this session.

Anything else takes the full path, which stores and rewrites the memo. The memo is never
trusted for more than the bar: it is written 0600 through a temp file and an atomic
rename in the private state directory, read without following symlinks, and a damaged
one is a miss. Deleting it costs one full call.
"""

# os.path, not pathlib: importing pathlib costs this path ~5 ms.
# ruff: noqa: PTH116, PTH118

from __future__ import annotations

import json
import os
import sys

from . import bar, envlite

TYPE_CHECKING = False  # typing itself costs every call milliseconds
if TYPE_CHECKING:
    from typing import IO, Any

#: Claude Code's JSON is a few KiB; anything past this is not it.
MAX_INPUT = 1 << 20
#: The memo's directory in the state directory, and the newest format it may hold.
MEMO_DIR = "statusline-memo"
FORMAT = 1
#: How long a memo answers after the store it records (seconds): the stored statusline
#: row is re-dated at least this often (it goes stale at 900 s).
SPAN = 60.0
#: A memo is a few hundred bytes; a bigger file is not one.
MAX_MEMO = 1 << 16
#: Memos of sessions not heard from for this long are removed by the full path.
KEEP = 86400.0
#: What a Claude Code session id may look like to name a file (its ids are UUIDs).
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def read_input(stream: IO[bytes]) -> bytes | None:
    """Up to :data:`MAX_INPUT` bytes; None when there is more (the rest is drained, so
    Claude Code never writes into a closed pipe)."""
    data = stream.read(MAX_INPUT + 1)
    if len(data) <= MAX_INPUT:
        return data
    while stream.read(1 << 16):
        pass
    return None


def emit(text: str) -> None:
    """Print the bar; when Claude Code stopped listening, keep the exit-time flush from
    failing too."""
    try:
        print(text, flush=True)
    except OSError:
        try:  # noqa: SIM105 (contextlib is one more import on this path)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass


def session_id(body: Any) -> str | None:
    """The input's ``session_id`` when it can name a memo file, else None."""
    found = body.get("session_id") if isinstance(body, dict) else None
    if isinstance(found, str) and 0 < len(found) <= 100 and _ID_CHARS.issuperset(found):
        return found
    return None


def _field(body: dict[str, Any], key: str, name: str) -> object:
    value = body.get(key)
    return value.get(name) if isinstance(value, dict) else None


def limits_key(body: dict[str, Any]) -> str:
    """The input's ``rate_limits`` as canonical JSON: what the stored reading came from."""
    return json.dumps(body.get("rate_limits"), sort_keys=True)


def sample_key(body: dict[str, Any]) -> str:
    """What the session's cost record is made of (``statusline.session_sample``): the
    cost, the tokens, the model, the project and the pane, as canonical JSON."""
    return json.dumps(
        [
            _field(body, "cost", "total_cost_usd"),
            _field(body, "context_window", "total_input_tokens"),
            _field(body, "context_window", "total_output_tokens"),
            _field(body, "model", "display_name"),
            _field(body, "model", "id"),
            _field(body, "workspace", "project_dir"),
            body.get("cwd"),
            envlite.tmux_pane(),
        ],
        sort_keys=True,
    )


def login_key() -> list[str | None]:
    """The environment the account and the bar were resolved in."""
    return [envlite.claude_config_dir_setting(), envlite.home(), envlite.time_zone()]


def stamp(path: str) -> list[int] | None:
    """``path``'s inode, size and mtime (ns) as ``stat`` gives them; None when missing."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def memo_path(state_dir: str, session: str) -> str:
    return os.path.join(state_dir, MEMO_DIR, f"{session}.json")


def _read(path: str) -> bytes | None:
    """A regular file of ours, mode 0600 or stricter, never through a symlink; None
    otherwise (missing, foreign, too big)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        regular = info.st_mode & 0o170000 == 0o100000
        if not regular or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
        data = os.read(fd, MAX_MEMO + 1)
        return data if len(data) <= MAX_MEMO else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _entries(value: object) -> list[bar.Entry] | None:
    """The memo's bar entries, None when any is not ``[name, number|null, number|null]``."""
    if not isinstance(value, list):
        return None
    entries: list[bar.Entry] = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
            return None
        name, used, resets = item
        if (used is not None and _number(used) is None) or (
            resets is not None and _number(resets) is None
        ):
            return None
        entries.append((name, _number(used), _number(resets)))
    return entries


def answer(data: bytes, now: float) -> str | None:
    """The bar for this input from its session's memo, or None when the full path must
    run (see the module's rules)."""
    state_dir = envlite.private_state_dir()
    if state_dir is None:
        return None
    try:
        body = json.loads(data)
    except ValueError:
        return None
    session = session_id(body)
    if session is None:
        return None
    raw = _read(memo_path(state_dir, session))
    if raw is None:
        return None
    try:
        memo = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(memo, dict) or memo.get("format") != FORMAT:
        return None
    stored, until = _number(memo.get("stored")), _number(memo.get("until"))
    if stored is None or until is None or not stored <= now < min(until, stored + SPAN):
        return None
    if memo.get("session") != session or memo.get("login") != login_key():
        return None
    if memo.get("limits") != limits_key(body) or memo.get("sample") != sample_key(body):
        return None
    files = memo.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(path, str) and stamp(path) == known for path, known in files.items()
    ):
        return None
    entries = _entries(memo.get("bar"))
    spend, warning = memo.get("spend"), memo.get("warning")
    if entries is None or not isinstance(spend, (str, type(None))):
        return None
    if not isinstance(warning, (str, type(None))):
        return None
    return bar.line(entries, spend, now, warning)


def encode(
    body: dict[str, Any],
    files: dict[str, list[int] | None],
    shown: tuple[list[bar.Entry], str | None, str | None],
    stored: float,
    until: float,
) -> bytes:
    """The memo of a call that stored ``body``'s reading and cost at ``stored`` (epoch),
    after checking ``files`` (path: :func:`stamp` taken before the account was read), and
    printed ``shown`` (the bar's entries, spend text, warning), good until ``until``."""
    entries, spend, warning = shown
    return json.dumps(
        {
            "format": FORMAT,
            "session": session_id(body),
            "stored": stored,
            "until": until,
            "login": login_key(),
            "limits": limits_key(body),
            "sample": sample_key(body),
            "files": files,
            "bar": [list(entry) for entry in entries],
            "spend": spend,
            "warning": warning,
        }
    ).encode()
