"""``claude-meter hook EVENT``: what claudemeter's Claude Code hooks run (SPEC 4).

``gate`` runs at Claude Code's safe points (``UserPromptSubmit`` before a prompt is
sent, ``PreToolUse`` before a tool call, ``PostToolUse`` before the tool's result goes
back to the model). It reads the hook's JSON on stdin, finds the session's account (the
login of the config dir Claude Code runs with, ``$CLAUDE_CONFIG_DIR``), and decides with
cm-guard's own rule (:func:`claudemeter.gate.decide`). Under the threshold it exits 0 at
once. At or over it, it waits until the row's ``resets_at`` + grace, re-reading the
store every ``--poll`` seconds (no request), then exits 0 and the agent goes on: no
request leaves this agent in between. A wait longer than ``--max-wait`` (a 7-day
window) is not held in a hook: the agent is stopped with a reason it shows (exit 2 for
a prompt, which Claude Code keeps in the input box; ``{"continue": false}`` for a tool
event) and the session is recorded for ``claude-meter resume``.

``stop-failure`` runs on ``StopFailure``: a turn that ended with ``error:
"rate_limit"`` is recorded (:mod:`claudemeter.stopped`) with its pane, for ``resume``.

Neither may break the agent: any failure of claudemeter itself is one line on stderr
and exit 0 (fail open); so is missing or unknown data (as cm-guard without
``--fail-closed``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from . import defaults, env, stopped
from .gate import OVER, Verdict, decide
from .model import utcnow
from .sources import claude_config
from .sources.claude_account import Account
from .sources.statusline import account_for
from .store import Store
from .windows import FIVE_HOUR, HOUR

#: Claude Code's hook input is a few KiB; anything past this is not it.
MAX_INPUT = 1 << 20
#: The longest hold: a whole 5-hour window plus the grace and some slack. A longer
#: wait is a 7-day window's, and days in a hook look like a hung agent.
DEFAULT_MAX_WAIT = FIVE_HOUR + 0.5 * HOUR
#: Exit status that blocks a prompt in Claude Code's hook protocol (stderr is shown).
EXIT_BLOCK = 2
PROMPT_EVENT = "UserPromptSubmit"
RATE_LIMIT = "rate_limit"


class HookError(Exception):
    """Bad options: one line, and the hook still lets the agent go on."""


@dataclass(frozen=True)
class GateOptions:
    threshold: float = defaults.THRESHOLD  # cm-guard's (SPEC 4: `hook gate` takes its options)
    grace: float = defaults.GRACE
    max_wait: float = DEFAULT_MAX_WAIT
    poll: float = defaults.POLL


def bounded(low: float, high: float) -> Callable[[str], float]:
    from .options import number

    def parse(text: str) -> float:
        value = number(text, math.nan)
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(
                f"expected a number from {low:g} to {high:g}, got {text!r}"
            )
        return value

    return parse


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "What claudemeter's Claude Code hooks run (install-hooks writes them): reads the"
        " hook's JSON on stdin. `gate` waits while the session's account is at or over"
        " the threshold, until resets_at + grace; `stop-failure` records a session whose"
        " turn ended on the rate limit, for `claude-meter resume`. Both exit 0 when"
        " claudemeter itself fails (one line on stderr): the agent is never broken."
    )
    parser.epilog = (
        "exit status: 0 go on; 2 (gate, UserPromptSubmit) the prompt is blocked, the"
        ' reason on stderr; a tool event is stopped with {"continue": false} on stdout.'
    )
    parser.add_argument("event", choices=("gate", "stop-failure"), help="which hook this is")
    parser.add_argument(
        "--threshold",
        type=bounded(0.0, 1000.0),
        metavar="PCT",
        help=f"hold at or above this utilization (default {defaults.THRESHOLD:g},"
        " or $CLAUDEMETER_THRESHOLD)",
    )
    parser.add_argument(
        "--grace",
        type=bounded(0.0, 86400.0),
        default=defaults.GRACE,
        metavar="SECONDS",
        help=f"go on this long after the reset (default {defaults.GRACE:g})",
    )
    parser.add_argument(
        "--max-wait",
        type=bounded(1.0, 30 * 86400.0),
        default=DEFAULT_MAX_WAIT,
        metavar="SECONDS",
        help="never hold longer than this: a longer wait (a 7-day window) stops the agent"
        " with a reason instead (default 19800, 5.5 hours; keep it under the hook's"
        " timeout, which install-hooks sets to this plus a minute)",
    )
    parser.add_argument(
        "--poll",
        type=bounded(0.05, 3600.0),
        default=defaults.POLL,
        metavar="SECONDS",
        help=f"how often a holding gate re-reads the store (default {defaults.POLL:g})",
    )


def options(args: argparse.Namespace) -> GateOptions:
    threshold = getattr(args, "threshold", None)
    if threshold is None:
        configured = env.guard_threshold()
        try:
            threshold = bounded(0.0, 1000.0)(configured) if configured else defaults.THRESHOLD
        except argparse.ArgumentTypeError as exc:
            raise HookError(f"CLAUDEMETER_THRESHOLD: {exc}") from None
    return GateOptions(
        threshold,
        getattr(args, "grace", defaults.GRACE),
        getattr(args, "max_wait", DEFAULT_MAX_WAIT),
        getattr(args, "poll", defaults.POLL),
    )


def say(message: str) -> None:
    """One line on stderr; a closed stderr is not worth dying for."""
    try:
        sys.stderr.write(f"claudemeter: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def read_hook_input() -> dict[str, Any]:
    """The hook's JSON object; ``{}`` for anything else (the gate then still decides)."""
    if sys.stdin is None or sys.stdin.isatty():
        return {}
    data = sys.stdin.buffer.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        return {}
    try:
        body = json.loads(data)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# -- the gate --------------------------------------------------------------------------


def verdict(opts: GateOptions, login: Account | None) -> Verdict:
    """cm-guard's decision for the login's account, from the store alone."""
    state = Store().read()
    now = utcnow()
    return decide(
        state.accounts(now),
        state.sources,
        now,
        threshold=opts.threshold,
        login=login,
        grace=opts.grace,
    )


def holding_text(found: Verdict, now: datetime) -> str:
    """``5-hour at 93%, waiting for the reset at 14:20`` (local time)."""
    from .render import percent
    from .times import local_time
    from .windows import label

    over = [b for b in found.buckets if b.state == OVER]
    worst = max(over, key=lambda b: b.utilization or 0.0) if over else None
    what = f"{label(worst.name)} at {percent(worst.utilization)}" if worst else found.reason
    if found.account:
        what += f" ({found.account})"
    if found.resume_at is None:
        return f"{what}, no reset time known"
    return f"{what}, waiting for the reset at {local_time(found.resume_at, now)}"


def _too_long(found: Verdict, opts: GateOptions) -> bool:
    if found.resume_at is None:
        return True
    return (found.resume_at - utcnow()).total_seconds() > opts.max_wait


def block(hook: dict[str, Any], found: Verdict, login: Account | None) -> int:
    """Stop the agent here with a reason it shows, and record it for ``resume``."""
    from .render import duration
    from .times import local_time

    now = utcnow()
    if found.resume_at is not None:
        left = duration((found.resume_at - now).total_seconds())
        when = f"resets {local_time(found.resume_at, now)} (in {left})"
    else:
        when = "no reset time is known"
    over = [b.name for b in found.buckets if b.state == OVER]
    from .windows import label

    what = ", ".join(label(name) for name in over) or "the limit"
    reason = (
        f"claudemeter: {what} over {found.threshold:g}% and {when}: too long to hold here,"
        " so this agent stops. Go on by hand, or `claude-meter resume` at the reset"
        " (7-day: --seven-day)."
    )
    record(hook, login, detail=f"held back by the gate: {what}")
    if hook.get("hook_event_name") == PROMPT_EVENT:
        print(reason, file=sys.stderr)
        return EXIT_BLOCK
    print(json.dumps({"continue": False, "stopReason": reason}))
    return 0


def _notify(text: str) -> None:
    """A tmux notice for the pane's clients; the hook has no terminal of its own."""
    from .tmux import Tmux, TmuxGone, socket_path

    socket, pane = socket_path(), env.tmux_pane()
    if socket and pane:
        with contextlib.suppress(TmuxGone):
            Tmux(socket).run(["display-message", "-t", pane, "-d", "8000", text])


def hold(hook: dict[str, Any], opts: GateOptions, login: Account | None, found: Verdict) -> int:
    """Wait while over the threshold; 0 to go on, or :func:`block`'s answer."""
    from . import registry

    if _too_long(found, opts):
        return block(hook, found, login)
    started = time.monotonic()
    text = holding_text(found, utcnow())
    say(text)
    _notify(f"claudemeter: {text}")
    agent = stopped.agent_process()
    cwd = hook.get("cwd") if isinstance(hook.get("cwd"), str) else None
    entry = registry.GuardEntry(
        pid=os.getpid(),
        command=f"claude (hook gate{', ' + Path(cwd).name if cwd else ''})",
        account=found.account,
        state=registry.HELD,
        pane=env.tmux_pane(),
        resume_at=found.resume_at.timestamp() if found.resume_at else None,
        started_at=time.time(),
        child_pid=agent.pid if agent else None,
    )

    def ended(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # Claude Code's timeout or Esc: leave the registry

    signal.signal(signal.SIGTERM, ended)
    signal.signal(signal.SIGHUP, ended)
    try:
        with contextlib.suppress(OSError):  # the hold works without the registry
            registry.register(entry)
        while found.state == OVER:
            if _too_long(found, opts):
                return block(hook, found, login)
            assert found.resume_at is not None  # _too_long says so
            left = (found.resume_at - utcnow()).total_seconds()
            time.sleep(max(0.01, min(opts.poll, left + 0.01)))
            found = verdict(opts, login)
            resume = found.resume_at.timestamp() if found.resume_at else None
            if found.state == OVER and resume != entry.resume_at:
                entry.resume_at = resume
                with contextlib.suppress(OSError):
                    registry.register(entry)
    finally:
        registry.unregister(os.getpid())
    from .render import duration

    held = duration(time.monotonic() - started)
    print(json.dumps({"systemMessage": f"claudemeter: held {held} for the reset"}))
    return 0


def gate(hook: dict[str, Any], opts: GateOptions) -> int:
    stopped.note_activity(hook.get("session_id"))
    login = account_for(claude_config.current())
    found = verdict(opts, login)
    if found.state != OVER:
        return 0  # under, reset, or unknown: the agent goes on (fail open)
    return hold(hook, opts, login, found)


# -- stop-failure -----------------------------------------------------------------------


def record(hook: dict[str, Any], login: Account | None, detail: str = "") -> bool:
    """Write the session's :class:`~claudemeter.stopped.StoppedSession`; False when the
    input names no session."""
    from .tmux import socket_path

    session_id = hook.get("session_id")
    if not stopped.valid_session_id(session_id):
        return False
    assert isinstance(session_id, str)
    cwd = hook.get("cwd")
    agent = stopped.agent_process()
    resets = stopped.five_hour_reset_after(Store().read(), login, utcnow())
    entry = stopped.StoppedSession(
        session_id=session_id,
        cwd=cwd if isinstance(cwd, str) else "",
        at=time.time(),
        pane=env.tmux_pane(),
        tmux=socket_path(),
        org_uuid=login.org_uuid if login else "",
        email=login.email if login else None,
        resets_at=resets.timestamp() if resets else None,
        agent_pid=agent.pid if agent else None,
        agent_start=agent.start if agent else None,
        detail=detail,
    )
    stopped.save(entry)
    return True


def stop_failure(hook: dict[str, Any]) -> int:
    if hook.get("error") != RATE_LIMIT:
        return 0  # other failures (overloaded, billing, ...) are not ours to resume
    login = account_for(claude_config.current())
    if not record(hook, login, detail="hit the rate limit"):
        say("stop-failure: the hook input names no session; nothing recorded")
    if login is not None:  # the history's limit hits (claude-meter history)
        from . import history

        hit = history.LimitHit(utcnow().timestamp(), None, history.HIT_STOP_FAILURE)
        Store().record_limit_hit(login.key, hit)
    return 0


def run(event: str, args: argparse.Namespace) -> int:
    """The hook, failing open: whatever goes wrong in claudemeter, the agent goes on."""
    try:
        hook = read_hook_input()
        if event == "gate":
            return gate(hook, options(args))
        return stop_failure(hook)
    except HookError as exc:
        say(f"hook {event}: {exc}; letting the agent go on")
    except Exception as exc:  # fail open: claudemeter's own trouble never stops an agent
        say(f"hook {event} failed ({type(exc).__name__}: {exc}); letting the agent go on")
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # raises, never returns
        raise HookError(message)


def cli(argv: list[str]) -> int:
    """``claude-meter hook ARGS``: parsed here, not by the main parser, so that a bad
    option fails open (exit 0, one line) instead of argparse's exit 2."""
    if argv in (["gate"], ["stop-failure"]):  # what install-hooks writes: no argparse
        return run(argv[0], argparse.Namespace())
    parser = _Parser(prog="claude-meter hook")
    add_arguments("hook", parser)
    try:
        args = parser.parse_args(argv)
    except HookError as exc:
        say(f"hook: {exc} (see claude-meter hook --help); letting the agent go on")
        return 0
    return run(args.event, args)


def main(args: argparse.Namespace) -> int:
    return run(args.event, args)
