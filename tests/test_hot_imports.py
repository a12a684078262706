"""The two commands run on every redraw (``claude-meter status``, tmux's ``#()`` fallback)
and on every refresh of every agent (``claude-meter statusline``, Claude Code's
statusLine) load only the modules they need: each run here in a fresh interpreter, as
tmux and Claude Code run them, with claudemeter's directories where users have them (no
``CLAUDEMETER_STATE_DIR``), and the set of modules it ended with checked.

A module in ``NEVER`` is network, packaging metadata, process or archive machinery the
two paths do not use; a claudemeter module outside the path's allowed set means the path
grew: if it must, add it here on purpose (and measure it in ``bench/``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, statusline_input

# Runs the console script's entry point as `claude-meter ARGS...` and writes the names
# of every module loaded by the end to the file named last.
PROBE = """
import sys
out = sys.argv.pop()
sys.argv = ["claude-meter", *sys.argv[1:]]
from claudemeter.cli import main
try:
    status = main()
finally:
    modules = sorted(sys.modules)  # before json, which the probe needs and the path may not
    import json
    with open(out, "w") as handle:
        json.dump(modules, handle)
sys.exit(status)
"""

#: Never on either path. ``importlib.metadata`` looked the version up on every parse
#: (tens of ms); ``platformdirs`` pulls ``tempfile`` -> ``shutil`` -> ``lzma``/``bz2``/
#: ``random``; the rest is network, HTTP, process, locking or tmux machinery.
NEVER = {
    "importlib.metadata",
    "platformdirs",
    "tempfile",
    "shutil",
    "random",
    "lzma",
    "bz2",
    "socket",
    "ssl",
    "http",
    "http.client",
    "urllib.request",
    "email",
    "requests",
    "urllib3",
    "libtmux",
    "asyncio",
    "logging",
    "concurrent",
    "subprocess",
    # The parser and the type checker's module: both calls are dispatched before the
    # parser, and typing is imported only under TYPE_CHECKING (milliseconds each).
    "argparse",
    "gettext",
    "typing",
    "shlex",
    # OpenSSL, loaded for one digest of a path (statusline.sha256_hex uses CPython's own)
    "hashlib",
    "_hashlib",
}

#: ``status`` reads the store and the registry: no lock, no hashing, no threads.
NEVER_ON_STATUS = NEVER | {"filelock", "threading", "hmac", "secrets"}

#: ``status`` while the segment it last rendered holds (``segment_cache``): the
#: standard library's ``os``, ``stat``, ``time``, ``zlib`` and these of ours.
STATUS_CACHED_MODULES = {
    "claudemeter",
    "claudemeter.cli",
    "claudemeter.clocktext",
    "claudemeter.envlite",
    "claudemeter.segment_cache",
}

#: Never on the cached ``status`` path: the model's machinery, the path, time and JSON
#: modules (milliseconds each on every redraw).
NEVER_ON_CACHED_STATUS = NEVER_ON_STATUS | {"dataclasses", "datetime", "inspect", "json", "pathlib"}

#: ``status`` rendering in full (no cache yet, or the data changed): it rewrites the cache.
STATUS_MODULES = STATUS_CACHED_MODULES | {
    "claudemeter.bar",  # percent: the bar's own, every view's
    "claudemeter.commands",
    "claudemeter.dedupe",
    "claudemeter.defaults",  # the user-changeable defaults: constants only
    "claudemeter.env",
    "claudemeter.history",
    "claudemeter.model",
    "claudemeter.options",
    "claudemeter.pace",
    "claudemeter.private",  # the private-file helpers the store reads with (were in store)
    "claudemeter.procs",  # the registry tells a live guard by its /proc start time
    "claudemeter.registry",
    "claudemeter.render",
    "claudemeter.status",
    "claudemeter.store",
    "claudemeter.derived",
    "claudemeter.sources",  # the OAuth source's status words, nothing else
    "claudemeter.times",  # RFC 3339 and local times: env's pinned clock and model share it
    "claudemeter.windows",  # the bucket names, labels and lengths: constants only
}

#: ``statusline`` carrying what its session last stored (``statusline_memo``): the
#: standard library's ``json``, ``os``, ``sys``, ``time`` and these of ours.
STATUSLINE_MEMO_MODULES = {
    "claudemeter",
    "claudemeter.bar",
    "claudemeter.cli",
    "claudemeter.clocktext",
    "claudemeter.envlite",
    "claudemeter.statusline_memo",
    "claudemeter.windows",  # the bucket names and short labels: constants only
}

#: Never on the memo's path: the store's model and its machinery.
NEVER_ON_STATUSLINE_MEMO = NEVER_ON_STATUS | {"dataclasses", "datetime", "inspect", "pathlib"}

STATUSLINE_MODULES = STATUSLINE_MEMO_MODULES | {
    "claudemeter.dedupe",
    "claudemeter.defaults",
    "claudemeter.env",
    "claudemeter.flock",
    "claudemeter.history",
    "claudemeter.model",
    "claudemeter.pace",
    "claudemeter.private",
    "claudemeter.procs",  # the registry tells a live guard by its /proc start time
    "claudemeter.registry",
    "claudemeter.render",
    "claudemeter.store",
    "claudemeter.derived",
    "claudemeter.sources",
    "claudemeter.sources.claude_account",
    "claudemeter.sources.claude_code_cache",
    "claudemeter.sources.claude_config",
    "claudemeter.sources.statusline",
    "claudemeter.times",
    "claudemeter.windows",
    "claudemeter.clocktext",
    "claudemeter.envlite",
}


def loaded(args: list[str], tmp_path: Path, stdin: bytes = b"") -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDEMETER_")}
    env.update(CLAUDEMETER_ANTHROPIC_BASE="http://127.0.0.1:9", CLAUDEMETER_BRIDGE="127.0.0.1:9")
    out = tmp_path / f"modules-{len(list(tmp_path.iterdir()))}.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args, str(out)],
        input=stdin,
        env=env,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.strip(), "the command printed nothing"
    return set(json.loads(out.read_text()))


def ours(modules: set[str]) -> set[str]:
    return {name for name in modules if name.split(".")[0] == "claudemeter"}


def test_status_loads_only_its_modules(tmp_path: Path, isolated: Path, claude_dir: Path) -> None:
    # a reading stored first (through the statusline), so status renders a real segment
    loaded(["statusline"], tmp_path, json.dumps(statusline_input()).encode())
    assert (isolated / ".local/state/claudemeter").is_dir()
    modules = loaded(["status"], tmp_path)
    assert not modules & NEVER_ON_STATUS, sorted(modules & NEVER_ON_STATUS)
    assert ours(modules) <= STATUS_MODULES, ours(modules) - STATUS_MODULES
    # the next redraw finds the segment that render left, and imports almost nothing
    modules = loaded(["status"], tmp_path)
    assert not modules & NEVER_ON_CACHED_STATUS, sorted(modules & NEVER_ON_CACHED_STATUS)
    assert ours(modules) <= STATUS_CACHED_MODULES, ours(modules) - STATUS_CACHED_MODULES


@pytest.mark.parametrize("reading", [True, False], ids=["reading", "no-readings"])
def test_statusline_loads_only_its_modules(tmp_path: Path, claude_dir: Path, reading: bool) -> None:
    stdin = (
        json.dumps(statusline_input()).encode()
        if reading
        else (FIXTURES / "claude_code_statusline_input_api_key_user.json").read_bytes()
    )
    modules = loaded(["statusline"], tmp_path, stdin)
    assert not modules & NEVER, sorted(modules & NEVER)
    assert ours(modules) <= STATUSLINE_MODULES, ours(modules) - STATUSLINE_MODULES


def test_statusline_with_an_unchanged_reading_loads_only_the_memo(
    tmp_path: Path, claude_dir: Path
) -> None:
    stdin = json.dumps(statusline_input()).encode()
    assert "claudemeter.store" in loaded(["statusline"], tmp_path, stdin)  # stored
    modules = loaded(["statusline"], tmp_path, stdin)  # the same reading again
    assert not modules & NEVER_ON_STATUSLINE_MEMO, sorted(modules & NEVER_ON_STATUSLINE_MEMO)
    assert ours(modules) <= STATUSLINE_MEMO_MODULES, ours(modules) - STATUSLINE_MEMO_MODULES


def test_the_probe_sees_what_a_command_imports(tmp_path: Path) -> None:
    """The check can fail: ``--chain`` loads ``subprocess``, which the plain calls must not."""
    assert "platformdirs" not in loaded(["--version"], tmp_path)
    assert loaded(
        ["statusline", "--chain", "true"], tmp_path, json.dumps(statusline_input()).encode()
    ) >= {"subprocess"}


@pytest.mark.parametrize("xdg", ["set", "unset", "blank"])
def test_default_dirs_are_platformdirs_own(monkeypatch: pytest.MonkeyPatch, xdg: str) -> None:
    """On Linux the state and config dirs are computed without platformdirs, and are the
    ones it answers: a user's existing state stays where it was."""
    import platformdirs

    from claudemeter import env

    monkeypatch.delenv("CLAUDEMETER_STATE_DIR")
    monkeypatch.delenv("CLAUDEMETER_CONFIG_DIR")
    for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        if xdg == "unset":
            monkeypatch.delenv(name)
        elif xdg == "blank":
            monkeypatch.setenv(name, " ")
    assert sys.platform.startswith("linux")
    assert env.state_dir() == Path(platformdirs.user_state_dir("claudemeter"))
    assert env.config_dir() == Path(platformdirs.user_config_dir("claudemeter"))


@pytest.mark.parametrize("data", [b"", b"/home/ada/.claude", "/home/zoë/.claude".encode() * 50])
def test_the_statusline_digest_is_sha256(data: bytes) -> None:
    """Without hashlib, the record names are still SHA-256: install-statusline's records
    (written by other releases too) are found under the same names."""
    import hashlib

    from claudemeter.sources.statusline import sha256_hex

    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
