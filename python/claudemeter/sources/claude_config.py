"""Where one Claude Code login keeps its files, exactly as Claude Code 2.1.332 finds them.

Claude Code's rules (checked against its bundled code, FIELD-NOTES "Where .claude.json
is" and "macOS keychain"):

- the config dir is ``$CLAUDE_CONFIG_DIR`` when that is set and non-empty, else
  ``~/.claude``; ``.credentials.json`` and ``settings.json`` live there;
- ``.claude.json`` (the account, Claude Code's usage cache) is
  ``$CLAUDE_CONFIG_DIR/.claude.json`` when the variable is set, even to the default
  path, else ``~/.claude.json`` — never ``~/.claude/.claude.json`` for the default dir;
  a non-empty legacy ``<config dir>/.config.json`` wins over either;
- the macOS keychain item is ``Claude Code-credentials``, plus ``-`` and the first 8 hex
  of the SHA-256 of the *raw* ``CLAUDE_CONFIG_DIR`` string (NFC-normalised, never
  resolved: a trailing slash or ``//`` gives another name) whenever that variable is set
  and non-empty; ``CLAUDE_SECURESTORAGE_CONFIG_DIR`` replaces the string hashed.

The environment is read in :mod:`claudemeter.env`; this module only applies the rules
to the strings it is given, so every rule has a table test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import env

KEYCHAIN_SERVICE = "Claude Code-credentials"
CLAUDE_JSON = ".claude.json"
LEGACY_CONFIG_JSON = ".config.json"
CREDENTIALS = ".credentials.json"


@dataclass(frozen=True)
class ClaudeConfig:
    """One Claude Code login's place, from the settings it was started with.

    ``setting`` is ``CLAUDE_CONFIG_DIR`` exactly as set (None when unset or empty: the
    default login), ``storage_setting`` is ``CLAUDE_SECURESTORAGE_CONFIG_DIR`` (None when
    unset or empty), ``home`` is ``$HOME``.
    """

    setting: str | None
    home: Path
    storage_setting: str | None = None

    @property
    def directory(self) -> Path:
        """The config dir: ``.credentials.json``, ``settings.json``, the legacy
        ``.config.json``. A leading ``~`` is expanded as the shell would have."""
        if self.setting is None:
            return self.home / ".claude"
        if self.setting == "~" or self.setting.startswith("~/"):
            return self.home / self.setting[2:]
        return Path(self.setting)

    @property
    def credentials(self) -> Path:
        return self.directory / CREDENTIALS

    def claude_json(self) -> Path:
        """The ``.claude.json`` Claude Code reads: a non-empty legacy ``.config.json`` in
        the config dir first, else ``.claude.json`` in the config dir when
        ``CLAUDE_CONFIG_DIR`` is set, else in the home dir. Looks at the disk (one
        ``stat``) for the legacy file only."""
        legacy = self.directory / LEGACY_CONFIG_JSON
        try:
            if legacy.stat().st_size > 0:
                return legacy
        except OSError:
            pass
        base = self.directory if self.setting is not None else self.home
        return base / CLAUDE_JSON

    def keychain_service(self) -> str:
        """The macOS keychain item name (``security -s NAME``); no lookup is made."""
        named_by = self.storage_setting or self.setting
        if named_by is None:
            return KEYCHAIN_SERVICE
        import hashlib  # here, not on the statusline's path
        import unicodedata

        raw = unicodedata.normalize("NFC", named_by).encode()
        return f"{KEYCHAIN_SERVICE}-{hashlib.sha256(raw).hexdigest()[:8]}"

    def label(self) -> str:
        """How messages name this login: its config dir."""
        return str(self.directory)


def current() -> ClaudeConfig:
    """The login Claude Code uses in this environment (``CLAUDE_CONFIG_DIR``)."""
    return ClaudeConfig(
        env.claude_config_dir_setting(), env.home(), env.claude_securestorage_setting()
    )


def configured() -> list[ClaudeConfig]:
    """Every login to read: each entry of ``CLAUDEMETER_CLAUDE_CONFIG_DIRS`` resolved as
    if it were ``CLAUDE_CONFIG_DIR`` (an empty entry is the default login, started with
    no ``CLAUDE_CONFIG_DIR``); without that list, :func:`current`."""
    listed = env.claude_config_dir_list()
    if listed is None:
        return [current()]
    return list(dict.fromkeys(ClaudeConfig(entry or None, env.home()) for entry in listed))
