"""The few environment facts the redraw path needs before it imports anything heavy.

``claude-meter status`` answers from :mod:`claudemeter.segment_cache` with ``json``,
``os``, ``sys``, ``time`` and ``zlib`` alone; :mod:`claudemeter.env` imports ``pathlib``
and ``dataclasses`` (tens of milliseconds on that path). So the variables it reads are
read here, as text, and :mod:`claudemeter.env` builds its ``Path``s on these: one owner
per variable still.
"""

# os.path, not pathlib: importing pathlib costs this path ~5 ms.
# ruff: noqa: PTH111, PTH116, PTH118

from __future__ import annotations

import os
import sys
import time

APP = "claudemeter"


def get(name: str) -> str | None:
    """``$name``, None when unset or empty."""
    value = os.environ.get(name)
    return value if value else None


def user_dir(variable: str, fallback: str) -> str | None:
    """On Linux, the XDG base directory ``$variable`` (``fallback`` when unset or blank)
    plus ``claudemeter``: exactly what ``platformdirs`` answers there, without its
    imports. None elsewhere (macOS, Windows, Android): ask ``platformdirs``."""
    if not sys.platform.startswith("linux") or os.environ.get("ANDROID_DATA"):
        return None
    base = os.environ.get(variable, "")
    return os.path.join(base if base.strip() else os.path.expanduser(fallback), APP)


def state_dir() -> str | None:
    """``CLAUDEMETER_STATE_DIR``, else :func:`user_dir` of ``XDG_STATE_HOME``."""
    return get("CLAUDEMETER_STATE_DIR") or user_dir("XDG_STATE_HOME", "~/.local/state")


def config_dir() -> str | None:
    """``CLAUDEMETER_CONFIG_DIR``, else :func:`user_dir` of ``XDG_CONFIG_HOME``."""
    return get("CLAUDEMETER_CONFIG_DIR") or user_dir("XDG_CONFIG_HOME", "~/.config")


def private_state_dir() -> str | None:
    """The state directory when a hot path may answer from a file it left there: not
    with a pinned clock (``CLAUDEMETER_NOW``: the golden tests take the full path) nor
    the shared store, and only for a directory that is the user's own and not writable
    by others (the full path says what is wrong with one that is not)."""
    if clock_pinned() or shared_store():
        return None
    found = state_dir()
    if found is None:
        return None
    try:
        info = os.stat(found)
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None
    return found


def home() -> str:
    """``$HOME`` (``~`` expanded)."""
    return os.path.expanduser("~")


def claude_config_dir_setting() -> str | None:
    """``CLAUDE_CONFIG_DIR`` exactly as set (None when unset or empty): Claude Code's
    rules hash the raw string, so it is not resolved here (see ``sources.claude_config``)."""
    return get("CLAUDE_CONFIG_DIR")


def tmux_pane() -> str | None:
    """The pane a process runs in (``%3``), for the guard registry."""
    return get("TMUX_PANE")


def clock_pinned() -> bool:
    """``CLAUDEMETER_NOW`` is set (tests' golden files pin the readers' clock with it)."""
    return get("CLAUDEMETER_NOW") is not None


def shared_store() -> bool:
    """``CLAUDEMETER_REDIS_URL`` is set: the store and the registry live in Redis."""
    return get("CLAUDEMETER_REDIS_URL") is not None


def time_zone() -> str:
    """The local time zone in effect, as a key: ``TZ`` as set (unset apart from empty,
    which is UTC) and the zone the C library resolved from it or from /etc/localtime
    (names and offsets), so a system zone changed under an unset ``TZ`` changes it too."""
    tz = os.environ.get("TZ")
    return f"{'-' if tz is None else 'TZ=' + tz} {time.tzname} {time.timezone} {time.altzone}"
