"""Claude Code's files and names, found exactly as Claude Code 2.1.332 finds them:
``.claude.json`` (and the legacy ``.config.json``), the keychain item (named from the
raw ``CLAUDE_CONFIG_DIR``), keychain first then the file, and a logged-out login."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from claudemeter.sources import claude_config, oauth
from claudemeter.sources.claude_account import read_account
from claudemeter.sources.claude_config import ClaudeConfig
from tests.helpers import LOGIN_ORG, cli, cli_rows, fixture_body, statusline_input
from tests.upstream import FakeUpstream

HOME = Path("/Users/you")
LOGGED_OUT = {
    "claudeAiOauth": {
        "accessToken": "",
        "refreshToken": "",
        "expiresAt": 0,
        "loginEnded": "time_limit",
    }
}


# The expected suffixes were computed apart from the code under test:
# printf %s "$CLAUDE_CONFIG_DIR" | sha256sum | cut -c1-8
@pytest.mark.parametrize(
    ("setting", "storage", "name"),
    [
        (None, None, "Claude Code-credentials"),
        ("/Users/you/.claude", None, "Claude Code-credentials-34f6278e"),  # explicit default
        ("/Users/you/.claude/", None, "Claude Code-credentials-a3b43677"),  # trailing slash
        ("//Users/you/.claude", None, "Claude Code-credentials-57b0cf7e"),  # a double slash
        ("/Users/you/caf\u00e9", None, "Claude Code-credentials-b20c5cc4"),  # composed é
        ("/Users/you/cafe\u0301", None, "Claude Code-credentials-b20c5cc4"),  # decomposed: NFC
        ("/elsewhere", "/Users/you/.claude", "Claude Code-credentials-34f6278e"),  # override
        (None, "/Users/you/.claude/", "Claude Code-credentials-a3b43677"),
    ],
    ids=[
        "unset",
        "explicit-default",
        "trailing-slash",
        "double-slash",
        "composed-e-acute",
        "decomposed-e-acute",
        "securestorage-overrides",
        "securestorage-alone",
    ],
)
def test_keychain_item_names(setting: str | None, storage: str | None, name: str) -> None:
    assert ClaudeConfig(setting, HOME, storage).keychain_service() == name


def test_keychain_name_comes_from_the_environment_as_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/Users/you/.claude/")
    assert claude_config.current().keychain_service() == "Claude Code-credentials-a3b43677"
    monkeypatch.setenv("CLAUDE_SECURESTORAGE_CONFIG_DIR", "//Users/you/.claude")
    assert claude_config.current().keychain_service() == "Claude Code-credentials-57b0cf7e"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "")  # empty is unset, as for Claude Code
    monkeypatch.setenv("CLAUDE_SECURESTORAGE_CONFIG_DIR", "")
    assert claude_config.current().keychain_service() == "Claude Code-credentials"


@pytest.mark.parametrize(
    ("setting", "files", "expected"),
    [
        (None, [".claude.json", ".claude/.claude.json"], ".claude.json"),  # leftover ignored
        (None, [".claude/.claude.json"], ".claude.json"),  # even when it is the only one
        ("{home}/.claude", [".claude.json", ".claude/.claude.json"], ".claude/.claude.json"),
        ("{home}/.claude/", [".claude.json"], ".claude/.claude.json"),
        ("{home}/work", [".claude.json", "work/.claude.json"], "work/.claude.json"),
        ("~/work", [".claude.json"], "work/.claude.json"),
        (None, [".claude.json", ".claude/.config.json"], ".claude/.config.json"),  # legacy wins
        ("{home}/work", ["work/.claude.json", "work/.config.json"], "work/.config.json"),
        (None, [".claude.json", ".claude/.config.json="], ".claude.json"),  # empty legacy: no
    ],
    ids=[
        "unset-leftover",
        "unset-only-leftover",
        "explicit-default",
        "explicit-default-slash",
        "other-dir",
        "tilde",
        "legacy-default",
        "legacy-other",
        "legacy-empty",
    ],
)
def test_where_claude_json_is(
    isolated: Path, setting: str | None, files: list[str], expected: str
) -> None:
    for name in files:
        path = isolated / name.rstrip("=")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("" if name.endswith("=") else "{}")
    config = ClaudeConfig(setting.format(home=isolated) if setting else None, isolated)
    assert config.claude_json() == isolated / expected


def test_several_config_dirs_each_resolve_as_claude_config_dir(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/ignored/when/listed")
    listed = f"{isolated}/.claude:{isolated}/w/::{isolated}/w/"  # repeats are read once
    monkeypatch.setenv("CLAUDEMETER_CLAUDE_CONFIG_DIRS", listed)
    configs = claude_config.configured()
    assert [c.claude_json() for c in configs] == [
        isolated / ".claude/.claude.json",
        isolated / "w/.claude.json",
        isolated / ".claude.json",  # the empty entry: the default login
    ]
    assert [c.keychain_service() for c in configs] == [
        ClaudeConfig(f"{isolated}/.claude", isolated).keychain_service(),
        ClaudeConfig(f"{isolated}/w/", isolated).keychain_service(),
        "Claude Code-credentials",
    ]
    assert configs[1].credentials == isolated / "w/.credentials.json"


# --- the keychain (macOS), through a stand-in `security` tool on PATH ------------------

FAKE_SECURITY = """#!{python}
import os, sys
args = sys.argv[1:]
service = args[args.index("-s") + 1]
account = args[args.index("-a") + 1] if "-a" in args else None
assert args[0] == "find-generic-password" and "-w" in args
item = os.path.join(os.environ["FAKE_KEYCHAIN"], account or "", service)
if not os.path.exists(item):
    print("security: The specified item could not be found in the keychain.", file=sys.stderr)
    sys.exit(44)
print(open(item).read())
"""


@pytest.fixture
def keychain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A keychain for user ``ada``: a file per item under ``keychain/ada/NAME``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "security"
    tool.write_text(FAKE_SECURITY.format(python=sys.executable))
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    items = tmp_path / "keychain"
    (items / "ada").mkdir(parents=True)
    monkeypatch.setenv("FAKE_KEYCHAIN", str(items))
    monkeypatch.setenv("USER", "ada")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return items / "ada"


def creds(token: str) -> str:
    return json.dumps({"claudeAiOauth": {"accessToken": token, "expiresAt": 4102444800000}})


def test_keychain_is_read_first_then_the_file(claude_dir: Path, keychain: Path) -> None:
    config = claude_config.current()
    assert oauth.read_login(config, keychain=True).access_token.endswith(
        "FAKE-TOKEN-FOR-TESTS-ONLY"
    )
    (keychain / "Claude Code-credentials").write_text(creds("sk-ant-oat01-FROM-KEYCHAIN"))
    assert oauth.read_login(config, keychain=True).access_token == "sk-ant-oat01-FROM-KEYCHAIN"
    assert oauth.read_login(config, keychain=False).access_token.endswith("FOR-TESTS-ONLY")


def test_keychain_item_named_from_the_raw_setting(
    isolated: Path, keychain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = isolated / "work"
    work.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{work}/")
    config = claude_config.current()
    (keychain / config.keychain_service()).write_text(creds("sk-ant-oat01-SLASHED"))
    (keychain / ClaudeConfig(str(work), isolated).keychain_service()).write_text(creds("nope"))
    assert oauth.read_login(config, keychain=True).access_token == "sk-ant-oat01-SLASHED"


def test_hex_encoded_and_overflowing_keychain_items(isolated: Path, keychain: Path) -> None:
    config = claude_config.current()
    value = creds("sk-ant-oat01-HEX" + "x" * 5000)
    (keychain / "Claude Code-credentials").write_text(value.encode().hex())
    assert oauth.read_login(config, keychain=True).access_token.startswith("sk-ant-oat01-HEX")
    encoded = value.encode().hex()
    parts = [encoded[:4032], encoded[4032:8064], encoded[8064:]]
    (keychain / "Claude Code-credentials").write_text(parts[0])
    (keychain / "Claude Code-credentials-overflow-a").write_text(parts[1])
    (keychain / "Claude Code-credentials-overflow-b").write_text(parts[2])
    login = oauth.read_login(config, keychain=True)
    assert login.access_token == "sk-ant-oat01-HEX" + "x" * 5000


def test_keychain_is_asked_for_the_users_item(
    claude_dir: Path, keychain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (keychain / "Claude Code-credentials").write_text(creds("sk-ant-oat01-ADAS"))
    monkeypatch.setenv("USER", "bob")  # bob has no item: the file is read
    login = oauth.read_login(claude_config.current(), keychain=True)
    assert login.access_token.endswith("FOR-TESTS-ONLY")


# --- a logged-out login ---------------------------------------------------------------


def test_a_logged_out_login_says_so(
    claude_dir: Path, upstream: FakeUpstream, state_dir: Path
) -> None:
    (claude_dir / ".credentials.json").write_text(json.dumps(LOGGED_OUT))
    summary = cli()
    assert summary.returncode == 1
    assert "logged out, run `claude` to log in" in summary.stderr
    assert "API-key" not in summary.stderr and "Traceback" not in summary.stderr
    refreshed = cli("refresh")
    assert refreshed.returncode == 1 and "logged out" in refreshed.stderr
    doctor = cli("doctor")
    assert "FAIL  oauth" in doctor.stdout and "logged out, run `claude`" in doctor.stdout
    assert "API-key" not in doctor.stdout
    assert upstream.requests == []  # an empty token is never sent


def test_an_api_key_user_is_still_told_apart(claude_dir: Path) -> None:
    (claude_dir / ".credentials.json").write_text('{"apiKey": "x"}')
    assert "API-key users" in cli().stderr


# --- the input: a leftover ~/.claude/.claude.json of another account ----------


def turn(five: float, now: float) -> str:
    """A statusLine input at ``five`` % of the 5-hour bucket (resets in an hour) and 41 %
    of the 7-day one (in four days)."""
    return json.dumps(statusline_input(five, 41.0, int(now + 3600), int(now + 4 * 86400)))


def test_a_leftover_claude_json_in_the_default_dir_captures_nothing(
    claude_dir: Path, isolated: Path, state_dir: Path, upstream: FakeUpstream
) -> None:
    leftover = fixture_body("claude_json_oauth_account.json")
    leftover["oauthAccount"].update(
        organizationUuid="org-stale", emailAddress="old@example.com", accountUuid="acct-old"
    )
    (claude_dir / ".claude.json").write_text(json.dumps(leftover))
    now = time.time()
    assert "5h 57%" in cli("statusline", stdin=turn(57.0, now)).stdout
    assert "5h 61%" in cli("statusline", stdin=turn(61.0, now)).stdout
    assert cli("refresh").returncode == 0  # the OAuth source agrees on the account
    rows = cli_rows("--json", "--cached")
    assert [(r["org_uuid"], r["account_email"]) for r in rows] == [(LOGIN_ORG, "ada@example.com")]
    stored = json.loads((state_dir / "state.json").read_text())["rows"]
    assert {r["org_uuid"] for r in stored} == {LOGIN_ORG}
    assert read_account(claude_config.current()) == read_account(ClaudeConfig(None, isolated))
    assert "old@example.com" not in (state_dir / "state.json").read_text()
    doctor = cli("doctor").stdout
    assert f"ada@example.com, from {isolated / '.claude.json'}" in doctor
    assert f"{claude_dir / '.claude.json'} ignored" in doctor


def test_the_leftover_file_is_what_claude_config_dir_set_to_the_default_reads(
    claude_dir: Path, isolated: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the same rule: CLAUDE_CONFIG_DIR=~/.claude moves .claude.json."""
    inside = fixture_body("claude_json_oauth_account.json")
    inside["oauthAccount"].update(organizationUuid="org-inside", emailAddress="in@example.com")
    (claude_dir / ".claude.json").write_text(json.dumps(inside))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(claude_dir))
    now = time.time()
    assert cli("statusline", stdin=turn(12.0, now)).returncode == 0
    rows = json.loads((state_dir / "state.json").read_text())["rows"]
    assert [r["org_uuid"] for r in rows] == ["org-inside"]
