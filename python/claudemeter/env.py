"""Every environment variable claudemeter reads, in one place.

Tests point each of these at temporary directories and loopback servers, so nothing
else in the package may read ``os.environ`` for a path or a URL: a stray default here
would let a test touch the user's real home.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import envlite
from .times import parse_time

APP = envlite.APP
DEFAULT_BRIDGE = "127.0.0.1:63762"
DEFAULT_ANTHROPIC_BASE = "https://api.anthropic.com"


def _get(name: str) -> str | None:
    return envlite.get(name)


def state_dir() -> Path:
    """Where the store, locks, the bridge token and guard registrations live."""
    found = envlite.state_dir()
    return Path(found) if found is not None else _platform_dir("user_state_dir")


def config_dir() -> Path:
    found = envlite.config_dir()
    return Path(found) if found is not None else _platform_dir("user_config_dir")


def _platform_dir(platformdirs_name: str) -> Path:
    """Off Linux (macOS, Windows, Android), ``platformdirs.<platformdirs_name>``; on
    Linux :func:`envlite.user_dir` answers what it would, without its imports
    (``tempfile`` -> ``shutil``, ``random``, ``lzma``...) on the status line's path."""
    import platformdirs  # only off Linux: keeps the status path light

    return Path(getattr(platformdirs, platformdirs_name)(APP))


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_hostport(text: str) -> HostPort:
    """``127.0.0.1:63762``, ``[::1]:63762`` or a bare port; raises ValueError otherwise."""
    text = text.strip()
    if text.isdigit():
        return HostPort("127.0.0.1", int(text))
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return HostPort(host, number)


def bridge_address() -> HostPort:
    return parse_hostport(_get("CLAUDEMETER_BRIDGE") or DEFAULT_BRIDGE)


def peers() -> list[str]:
    """``CLAUDEMETER_PEERS``: other bridges' URLs, space-separated, as written (SPEC §5);
    ``peers.configured`` checks them."""
    return (_get("CLAUDEMETER_PEERS") or "").split()


def peer_token_file() -> Path | None:
    """``CLAUDEMETER_PEER_TOKEN_FILE``: where the peers' bridge token is kept."""
    value = _get("CLAUDEMETER_PEER_TOKEN_FILE")
    return Path(value).expanduser() if value else None


def redis_url() -> str | None:
    """``CLAUDEMETER_REDIS_URL``: the fleet's shared store (``redis://[:PASSWORD@]HOST:PORT/DB``,
    ``rediss://`` for TLS), or None."""
    return _get("CLAUDEMETER_REDIS_URL")


def anthropic_base() -> str:
    return (_get("CLAUDEMETER_ANTHROPIC_BASE") or DEFAULT_ANTHROPIC_BASE).rstrip("/")


def home() -> Path:
    return Path(envlite.home())


def claude_config_dir_setting() -> str | None:
    """``CLAUDE_CONFIG_DIR`` exactly as set (None when unset or empty); see
    :func:`envlite.claude_config_dir_setting`."""
    return envlite.claude_config_dir_setting()


def claude_securestorage_setting() -> str | None:
    """``CLAUDE_SECURESTORAGE_CONFIG_DIR`` as set: names Claude Code's keychain item."""
    return _get("CLAUDE_SECURESTORAGE_CONFIG_DIR")


def claude_config_dir_list() -> list[str] | None:
    """``CLAUDEMETER_CLAUDE_CONFIG_DIRS`` split on ``:``, entries kept raw (an empty one
    stands for the default login); None when unset."""
    listed = _get("CLAUDEMETER_CLAUDE_CONFIG_DIRS")
    return None if listed is None else [entry.strip() for entry in listed.split(":")]


def user_name() -> str | None:
    """``$USER``: the account Claude Code files its keychain item under."""
    return _get("USER") or _get("LOGNAME")


#: Set for a statusLine command we chain to, so a chain that points back at us stops.
STATUSLINE_CHAINED = "CLAUDEMETER_STATUSLINE_CHAINED"


def statusline_chained() -> bool:
    """True inside a chained statusLine command: it must not chain again."""
    return _get(STATUSLINE_CHAINED) is not None


def guard_threshold() -> str | None:
    """``CLAUDEMETER_THRESHOLD``: cm-guard's default threshold, so the tmux option
    ``@claude_meter_threshold`` can reach every pane through tmux's environment."""
    return _get("CLAUDEMETER_THRESHOLD")


#: Set by cm-guard for its command (the guard's pid): an inner ``cm-guard CMD`` under
#: it (``alias claude='cm-guard claude'``) runs CMD directly instead of nesting.
GUARD_MARKER = "CM_GUARD_ACTIVE"


def guard_marker() -> str | None:
    return _get(GUARD_MARKER)


def tmux_pane() -> str | None:
    """The pane a process runs in (``%3``), for the guard registry."""
    return envlite.tmux_pane()


#: ``CLAUDEMETER_FORGET_DAYS``'s default: a source not heard from for a week is dropped.
DEFAULT_FORGET_DAYS = 7.0


def forget_days() -> float:
    """``CLAUDEMETER_FORGET_DAYS``: after how many days without a reading a source's row
    is dropped from the store (a number; ``0`` keeps rows forever). Not a number: the
    default, :data:`DEFAULT_FORGET_DAYS`."""
    try:
        days = float(_get("CLAUDEMETER_FORGET_DAYS") or DEFAULT_FORGET_DAYS)
    except ValueError:
        return DEFAULT_FORGET_DAYS
    return days if days >= 0 and days == days else DEFAULT_FORGET_DAYS


def now() -> datetime:
    """The readers' clock. ``CLAUDEMETER_NOW`` (RFC 3339) is for tests only: it pins the
    clock so golden files of ``status`` and ``show`` stay byte-identical."""
    override = _get("CLAUDEMETER_NOW")
    if override:
        try:
            return parse_time(override)
        except ValueError:
            pass
    return datetime.now(timezone.utc)
