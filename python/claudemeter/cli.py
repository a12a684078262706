"""``claude-meter``: the command line (SPEC section 4).

Each subcommand lives in the module that owns its concern and is imported only when
run, so ``claude-meter status`` on tmux's redraw path never pays for ``requests``; the
two calls made on every redraw and every agent's refresh (``status``, ``statusline``)
are dispatched before ``argparse`` or the store is imported.
"""

from __future__ import annotations

import sys

from . import __version__

TYPE_CHECKING = False  # typing itself costs the redraw path milliseconds
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

# name -> (module, function, one-line help). The function takes the parsed args and
# returns the exit status; modules may add their own options via ``add_arguments``.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "status": ("claudemeter.commands", "cmd_status", "one tmux-formatted status segment"),
    "show": ("claudemeter.popup", "cmd_show", "the full breakdown (what prefix+M shows)"),
    "tmux-loop": (
        "claudemeter.tmux_loop",
        "cmd_tmux_loop",
        "keep this tmux server's status options current (the plugin starts it)",
    ),
    "refresh": (
        "claudemeter.commands",
        "cmd_refresh",
        "fetch now from every configured source (single-flight)",
    ),
    "ingest": (
        "claudemeter.commands",
        "cmd_ingest",
        "store snapshot JSON from FILE or stdin, as the bridge would",
    ),
    "doctor": ("claudemeter.doctor", "main", "check each source, the store, tmux, the bridge"),
    "serve": (
        "claudemeter.serve",
        "cmd_serve",
        "run the loopback bridge for the browser extension (and the OAuth poller)"
        " in the foreground",
    ),
    "pair": (
        "claudemeter.bridge",
        "cmd_pair",
        "print the bridge token to paste into the browser extension",
    ),
    "statusline": (
        "claudemeter.sources.statusline",
        "main",
        "Claude Code statusLine command: store its rate limits (no network), print a line",
    ),
    "install-statusline": (
        "claudemeter.install_statusline",
        "main",
        "make `claude-meter statusline` Claude Code's statusLine"
        " (--uninstall restores the previous one)",
    ),
    "install-hooks": (
        "claudemeter.install_hooks",
        "main",
        "add claudemeter's Claude Code hooks: the safe-point gate and the limit-hit record"
        " (--uninstall takes them out)",
    ),
    "hook": (
        "claudemeter.hooks",
        "main",
        "what those hooks run: `hook gate` waits while over the threshold,"
        " `hook stop-failure` records a session that hit the limit",
    ),
    "stop": (
        "claudemeter.stop",
        "cmd_stop",
        "stop this state dir's bridge and this tmux server's loop (by their recorded pids)",
    ),
    "top": (
        "claudemeter.top",
        "cmd_top",
        "which agent (tmux pane, session, project) took what share of each bucket's rise",
    ),
    "history": (
        "claudemeter.chart",
        "cmd_history",
        "each account's buckets over the last days, with every limit hit",
    ),
    "resume": (
        "claudemeter.resume",
        "main",
        "type the resume text into agents that stopped on the limit, in stages, at the"
        " reset (or --now), and confirm each one took",
    ),
    "demo": (
        "claudemeter.demo",
        "run",
        "a simulated account in its own tmux session: see everything work, no login",
    ),
}

DESCRIPTION = """\
Show the Claude account's own usage buckets (5-hour, 7-day, ...) as the server
counts them, folded into one row per account from every source.

With no command: a summary of every account (exit 1 when no source works).
"""

EPILOG = """\
cm-guard, installed beside this command, runs an agent only while the account
is under a threshold, and pauses it there: `cm-guard claude`, `cm-guard --help`.

Each command has its own --help (`claude-meter status --help`).

environment: CLAUDEMETER_STATE_DIR, CLAUDEMETER_CONFIG_DIR, CLAUDEMETER_BRIDGE,
CLAUDEMETER_ANTHROPIC_BASE, CLAUDEMETER_FORGET_DAYS, CLAUDE_CONFIG_DIR,
CLAUDEMETER_CLAUDE_CONFIG_DIRS. See docs/internals.md for
each.
"""


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``wanted``'s module is imported for its own options."""
    import argparse
    import importlib

    parser = argparse.ArgumentParser(
        prog="claude-meter",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the deduped snapshots as a JSON list, nothing else",
    )
    parser.add_argument(
        "--cached", action="store_true", help="never fetch: print what the store holds, however old"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="one of these (none: a summary of every account)"
    )
    for name, (module, _func, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            adder = getattr(importlib.import_module(module), "add_arguments", None)
            if adder is not None:
                adder(name, command)
    return parser


def _run(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The status line runs `claude-meter status` every redraw: skip argparse's imports,
    # and the store's too while the segment it last rendered still holds.
    if argv == ["status"]:
        from .segment_cache import cached_segment

        segment = cached_segment()
        if segment is not None:
            print(segment)
            return 0
        from .commands import cmd_status

        return cmd_status()
    # Claude Code runs `claude-meter statusline` on every refresh of every agent: likewise.
    # Most of its calls carry the reading it stored last: answered from its memo.
    if argv == ["statusline"]:
        return _statusline()
    # Claude Code runs the gate before every tool call of every agent: likewise. And a
    # hook must never exit 2 over a bad option (that would block every prompt).
    if argv[:1] == ["hook"]:
        from .hooks import cli

        return cli(argv[1:])
    wanted = next((arg for arg in argv if arg in COMMANDS), None)
    args = build_parser(wanted).parse_args(argv)
    _refuse_shared_dirs()
    if args.command is None:
        from .commands import cmd_default

        return cmd_default(args)
    import importlib

    module, func, _help = COMMANDS[args.command]
    handler: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), func)
    return handler(args)


def _statusline() -> int:
    """``claude-meter statusline`` as Claude Code runs it (no options): the bar from the
    session's memo when it holds (``statusline_memo``), else the full path (which stores)
    with the input already read."""
    if sys.stdin is None or sys.stdin.isatty():
        from .sources.statusline import main as full

        return full()
    from . import statusline_memo

    try:
        data = statusline_memo.read_input(sys.stdin.buffer)
    except OSError:
        data = None
    shown = None
    if data is not None:
        import time

        try:
            shown = statusline_memo.answer(data, time.time())
        except Exception:  # never fail the agent: the full path answers instead
            shown = None
    if shown is None:
        from .sources.statusline import respond

        return respond(None, data)
    statusline_memo.emit(shown)
    return 0


def _refuse_shared_dirs() -> None:
    """Raise StoreError when the state or config dir is another user's or writable by
    others: what it holds (a token, a state, a symlink) may be planted. ``status`` and
    ``statusline`` check too, but must print: their store read reports it instead."""
    from . import env
    from .private import check_private_dir

    check_private_dir(env.state_dir())
    check_private_dir(env.config_dir())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # The private-file helpers are imported only by the commands that raise their errors.
        private = sys.modules.get("claudemeter.private")
        if private is None or not isinstance(exc, private.StoreError):
            raise
        print(f"claude-meter: {exc}", file=sys.stderr)
        return 1
