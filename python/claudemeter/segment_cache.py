"""``claude-meter status`` (tmux's ``#()`` fallback) answered from a small cache.

Rendering the segment takes the store's model, the fold, the options and the registry:
tens of milliseconds of imports on every redraw of every client. But between two
readings the segment changes only by its clocks (``↻1h23m``, ``stale 4m``) and at
moments known in advance (a bucket resets, a row goes stale, a pace runs out). So the
full render (:func:`claudemeter.status.steady`) also leaves ``segment.cache`` in the
state directory: the segment with its clocks as holes, until when it holds, and the
key of what it was rendered from, a field a line (not JSON: the cached call does not
import ``json``). The next ``claude-meter status`` with no options checks the key,
fills the holes from the clock and prints, importing ``os``, ``stat``, ``time`` and
``zlib`` (this module, :mod:`claudemeter.envlite` and :mod:`claudemeter.clocktext`,
nothing else of the package).

The key is what the segment depends on besides the clock: the bytes of ``state.json``
and ``derived.json`` (length and CRC-32), each guard registry entry's bytes with the
start time of its pid (a guard that dies or whose pid is reused changes it), ``TZ``,
claudemeter's version (an upgrade may render differently) and this module's format.
Anything else (a pinned clock, the shared store, a directory that is not private, a key
or a time outside the cached span, a cache that does not parse) means the full render,
which prints and rewrites the cache. The cache is never trusted for more than the
state: it lives in the same private directory, is written 0600 through a temp file and
an atomic rename, and is only ever read back by this module; deleting it costs one full
render.
"""

# os.path, not pathlib: importing pathlib costs this path ~5 ms.
# ruff: noqa: PTH118, PTH208

from __future__ import annotations

import os
import re
import stat
import time
import zlib

from . import __version__, envlite
from .clocktext import duration

CACHE_FILE = "segment.cache"
#: What the key and the template mean; a cache of another format is a miss.
FORMAT = 1
#: The file's first line: what it is and its format; any other is a miss.
MAGIC = f"claudemeter segment cache {FORMAT}"
#: The files the segment is rendered from (``store.STATE_FILE``, ``derived.DERIVED_FILE``)
#: and the guard registry's directory (``registry.GUARDS_DIR``); a test keeps them equal.
STATE_FILES = ("state.json", "derived.json")
GUARDS_DIR = "guards"
#: Hole kinds: a countdown until, or an age since, an epoch.
UNTIL, SINCE = "u", "s"
_OPEN, _CLOSE = "\ue002", "\ue003"
_HOLE_RE = re.compile(f"{_OPEN}([{UNTIL}{SINCE}])([^{_CLOSE}]*){_CLOSE}")
#: A state file bigger than this is not digested on the redraw path (never, in use).
MAX_DIGEST = 16 << 20


def hole(kind: str, epoch: float) -> str:
    """The mark a template holds for a countdown until (:data:`UNTIL`) or an age since
    (:data:`SINCE`) ``epoch``."""
    return f"{_OPEN}{kind}{epoch!r}{_CLOSE}"


def unmarked(text: str) -> str:
    """``text`` (stored: an email, an org or browser name) without the hole marks, so
    what a reading says can never pass for a hole in a template."""
    return text.replace(_OPEN, "").replace(_CLOSE, "")


def fill(template: str, now: float) -> str:
    """The template with each hole replaced by its duration at ``now`` (epoch). Raises
    ValueError or OverflowError for a hole that is not one of ours (a damaged file)."""

    def clock(match: re.Match[str]) -> str:
        epoch = float(match.group(2))
        return duration(epoch - now if match.group(1) == UNTIL else now - epoch)

    return _HOLE_RE.sub(clock, template)


def directory() -> str | None:
    """The state directory when the cache may be used (:func:`envlite.private_state_dir`:
    not with a pinned clock, the shared store, or a directory that is not private)."""
    return envlite.private_state_dir()


def _read(path: str) -> bytes | None:
    """A regular file's bytes, never through a symlink; None when missing. Raises
    OSError for anything else (no cache is used then)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        chunks = []
        size = 0
        while size <= MAX_DIGEST:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _digest(path: str) -> str:
    data = _read(path)
    return "-" if data is None else f"{len(data)}:{zlib.crc32(data)}"


def _started(pid: str) -> int | None:
    """The start time of process ``pid`` (``/proc/PID/stat`` field 22), None if none."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as handle:
            return int(handle.read().rpartition(b")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def key(state_dir: str) -> str:
    """What the segment in ``state_dir`` depends on besides the clock, as one line of
    text. Raises OSError when a file cannot be read."""
    parts = [str(FORMAT), __version__, repr(envlite.time_zone())]
    parts += [_digest(os.path.join(state_dir, name)) for name in STATE_FILES]
    guards = os.path.join(state_dir, GUARDS_DIR)
    try:
        names = sorted(os.listdir(guards))
    except FileNotFoundError:
        names = []
    for name in names:
        if name.endswith(".json"):
            pid = name[: -len(".json")]
            entry = _digest(os.path.join(guards, name))
            parts.append(f"{name!r}:{entry}:{_started(pid)}")
    return " ".join(parts)


def encode(cache_key: str, template: str, start: float, until: float) -> bytes:
    """The cache file's bytes: a template valid from ``start`` until ``until`` (epoch),
    one field a line (the template last: it is the rest of the file)."""
    return "\n".join([MAGIC, cache_key, repr(start), repr(until), template]).encode()


def cached_segment() -> str | None:
    """The ``#()`` segment from the cache, or None when it cannot be used (the caller
    renders in full, which rewrites it)."""
    found = directory()
    if found is None:
        return None
    try:
        raw = _read(os.path.join(found, CACHE_FILE))
        if raw is None:
            return None
        fields = raw.decode().split("\n", 4)
        if len(fields) != 5 or fields[0] != MAGIC or fields[1] != key(found):
            return None
        start, until, template = float(fields[2]), float(fields[3]), fields[4]
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    now = time.time()
    if not start <= now < until:
        return None
    try:
        return fill(template, now)
    except (ValueError, OverflowError):
        return None
