"""``claude-meter resume``: bring back the agents that stopped on the rate limit.

``hook stop-failure`` recorded each such session with its tmux pane
(:mod:`claudemeter.stopped`). At the account's reset (the 5-hour window's ``resets_at``
from the store, plus the grace) this types the resume text into each pane, one pane
every ``--stagger`` seconds so the agents do not all re-send their whole context in the
same second, and confirms that each one took: the session's next hook event arrives
(the gate notes it). A pane that shows no sign within ``--confirm`` seconds is typed
into once more, then reported (the popup, a tmux notice, exit 1).

Only a pane still running that very Claude Code process, in the foreground, is typed
into; anything else is skipped and reported. A 7-day window is never waited for unless
``--seven-day`` says so: days later, the work is usually better restarted by hand.

The tmux loop runs this in the background (``--background``) when
``@claude_meter_resume`` is ``on``; one resumer at a time (a lock in the state dir).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import defaults, env, stopped
from .gate import OVER, decide
from .hooks import bounded
from .model import utcnow
from .private import ensure_private_dir
from .render import duration
from .sources.claude_account import Account
from .store import State, Store
from .times import local_time
from .tmux import Tmux, TmuxGone
from .windows import label

DEFAULT_CONFIRM = 30.0
#: Tries per pane: the first, and one retry.
TRIES = 2
LOCK_FILE = "resume.lock"
#: Between the text and Enter: Claude Code's input takes fast text as a paste, and an
#: Enter inside a paste is a newline, not a submit.
KEY_PAUSE = 0.3
#: How often a waiting resumer looks again (new stops, a store that moved the reset).
WAKE = 5.0


@dataclass(frozen=True)
class ResumeOptions:
    now: bool = False
    pane: str | None = None
    text: str = defaults.RESUME_TEXT
    stagger: float = defaults.RESUME_STAGGER
    grace: float = defaults.GRACE
    threshold: float = defaults.THRESHOLD
    confirm: float = DEFAULT_CONFIRM
    seven_day: bool = False
    background: bool = False


@dataclass(frozen=True)
class Plan:
    """When a stopped session gets its resume text; ``at`` None: not by us (``why``)."""

    record: stopped.StoppedSession
    at: datetime | None
    why: str


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Agents whose turn ended on the rate limit (recorded by `claude-meter hook"
        " stop-failure`, see install-hooks): at the account's 5-hour reset plus the grace,"
        " type the resume text into each one's tmux pane, one pane every --stagger"
        " seconds, and confirm each one took (its next hook event arrives; one retry)."
        " Only panes still running that Claude Code session are typed into."
    )
    parser.epilog = (
        "exit status: 0 every agent resumed and confirmed (or none waiting); 1 some were"
        " skipped, not confirmed, or cannot be resumed by us (a 7-day window without"
        " --seven-day, no reset time known). The tmux option @claude_meter_resume on"
        " makes the plugin's loop do this by itself."
    )
    parser.add_argument(
        "--now", action="store_true", help="do not wait for the reset: resume them now"
    )
    parser.add_argument("--pane", metavar="%N", help="only the agent in this tmux pane")
    parser.add_argument(
        "--text",
        default=defaults.RESUME_TEXT,
        help=f"what to type (then Enter); default `{defaults.RESUME_TEXT}`"
        " (@claude_meter_resume_text)",
    )
    parser.add_argument(
        "--stagger",
        type=bounded(0.0, 3600.0),
        default=defaults.RESUME_STAGGER,
        metavar="SECONDS",
        help=f"seconds between two panes (default {defaults.RESUME_STAGGER:g};"
        " @claude_meter_resume_stagger)",
    )
    parser.add_argument(
        "--grace",
        type=bounded(0.0, 86400.0),
        default=defaults.GRACE,
        metavar="SECONDS",
        help=f"wait this long past the reset (default {defaults.GRACE:g}, as cm-guard)",
    )
    parser.add_argument(
        "--threshold",
        type=bounded(0.0, 1000.0),
        default=defaults.THRESHOLD,
        metavar="PCT",
        help=f"a 7-day bucket at or over this holds the agents back"
        f" (default {defaults.THRESHOLD:g})",
    )
    parser.add_argument(
        "--confirm",
        type=bounded(1.0, 3600.0),
        default=DEFAULT_CONFIRM,
        metavar="SECONDS",
        help="how long a pane has to show its next hook event before the retry (default 30)",
    )
    parser.add_argument(
        "--seven-day",
        action="store_true",
        help="also wait for (and resume at) a 7-day window's reset",
    )
    parser.add_argument(
        "--background",
        action="store_true",
        help="as the tmux loop runs it: quiet unless something fails, one resumer at a time",
    )


def plan(record: stopped.StoppedSession, state: State, now: datetime, opts: ResumeOptions) -> Plan:
    """When to type into this session's pane, from the store's row for its account."""
    if opts.now:
        return Plan(record, now, "now")
    login = Account(record.org_uuid, record.email) if record.org_uuid or record.email else None
    found = decide(
        state.accounts(now),
        state.sources,
        now,
        threshold=opts.threshold,
        login=login,
        grace=opts.grace,
    )
    weekly = [b for b in found.buckets if b.state == OVER and b.name != "five_hour"]
    if weekly:
        names = ", ".join(label(b.name) for b in weekly)
        if not opts.seven_day:
            return Plan(record, None, f"{names} over the threshold: not resumed unless --seven-day")
        if found.resume_at is None:
            return Plan(record, None, f"{names} over the threshold, no reset time known")
        return Plan(record, found.resume_at, f"at the {names} reset")
    resets = (
        datetime.fromtimestamp(record.resets_at, timezone.utc)
        if record.resets_at is not None
        else stopped.five_hour_reset_after(
            state, login, datetime.fromtimestamp(record.at, now.tzinfo)
        )
    )
    if resets is None:
        if found.state == OVER and found.resume_at is not None:
            return Plan(record, found.resume_at, "at the reset")
        return Plan(record, None, "no 5-hour reset time known; resume --now to go anyway")
    return Plan(record, resets + timedelta(seconds=opts.grace), "at the 5-hour reset")


def pane_problem(record: stopped.StoppedSession) -> str | None:
    """Why this record's pane must not be typed into; None when it still runs the very
    Claude Code process that stopped, in the foreground."""
    if not record.pane or not record.tmux:
        return "it did not run in tmux"
    if record.agent_pid is None:
        return "its Claude Code process is unknown"
    agent = stopped.Process.read(record.agent_pid)
    if agent is None or agent.start != record.agent_start:
        return "its Claude Code session has ended"
    if not agent.in_foreground:
        return "Claude Code is no longer the pane's foreground program"
    try:
        tty = Tmux(record.tmux).run(["display-message", "-p", "-t", record.pane, "#{pane_tty}"])
        same = Path(tty.strip()).stat().st_rdev == agent.tty
    except (TmuxGone, OSError):
        return f"pane {record.pane} is gone"
    return None if same else f"pane {record.pane} runs something else now"


def type_into(record: stopped.StoppedSession, text: str) -> None:
    """The text, then Enter as its own key, as a person types it. Raises TmuxGone."""
    assert record.tmux is not None and record.pane is not None
    tmux = Tmux(record.tmux)
    tmux.run(["send-keys", "-t", record.pane, "-l", text])
    time.sleep(KEY_PAUSE)
    tmux.run(["send-keys", "-t", record.pane, "Enter"])


def notify(record: stopped.StoppedSession, message: str) -> None:
    if record.tmux:
        with contextlib.suppress(TmuxGone):
            Tmux(record.tmux).run(["display-message", "-d", "10000", message])


def where(record: stopped.StoppedSession) -> str:
    name = Path(record.cwd).name or record.cwd or "?"
    return f"{record.pane or 'no pane'} ({name})"


class Resumer:
    """Types into due panes in stages and follows each one until it is confirmed."""

    def __init__(self, opts: ResumeOptions) -> None:
        self.opts = opts
        self.last_typed = -float("inf")  # monotonic
        self.pending: dict[str, float] = {}  # session id -> monotonic deadline
        self.failed = False
        self.told: set[tuple[str, str]] = set()

    def say(self, message: str, *, problem: bool = False) -> None:
        if problem:
            self.failed = True
        if problem or not self.opts.background:
            print(f"claude-meter resume: {message}", flush=True)

    def records(self) -> list[stopped.StoppedSession]:
        found = stopped.all_records()
        return [r for r in found if self.opts.pane is None or r.pane == self.opts.pane]

    def step(self) -> float:
        """One round: follow typed panes, type the next due one. Returns how long to
        sleep, or a negative number when there is nothing left to do."""
        now = utcnow()
        state = Store().read()
        records = self.records()
        self.follow([r for r in records if r.session_id in self.pending])
        waiting = [r for r in records if r.waiting and r.session_id not in self.pending]
        plans = [plan(r, state, now, self.opts) for r in waiting]
        for p in plans:
            if p.at is None and (p.record.session_id, p.why) not in self.told:
                self.told.add((p.record.session_id, p.why))
                self.say(f"{where(p.record)}: {p.why}", problem=True)
        due = sorted((p for p in plans if p.at is not None), key=lambda p: (p.at, p.record.at))
        if not due and not self.pending:
            return -1.0
        wait = WAKE
        if due:
            first = due[0]
            assert first.at is not None
            until_due = (first.at - now).total_seconds()
            until_turn = self.last_typed + self.opts.stagger - time.monotonic()
            if until_due <= 0 and until_turn <= 0:
                self.start(first.record)
                wait = self.opts.stagger if len(due) > 1 else wait
            else:
                key = (first.record.session_id, "planned")
                if key not in self.told and until_due > 0:
                    self.told.add(key)
                    self.say(
                        f"{where(first.record)}: resuming at"
                        f" {local_time(first.at, now)} (in {duration(until_due)}), {first.why}"
                    )
                wait = max(until_due, until_turn)
        if self.pending:
            wait = min(wait, 0.2)
        return max(0.05, min(wait, WAKE))

    def start(self, record: stopped.StoppedSession) -> None:
        """Type into the pane (first try), or skip it with the reason."""
        problem = pane_problem(record)
        if problem:
            record.outcome, record.detail = stopped.SKIPPED, problem
            with contextlib.suppress(OSError):
                stopped.save(record)
            self.say(f"{where(record)}: skipped, {problem}", problem=True)
            notify(record, f"claudemeter: not resuming {where(record)}: {problem}")
            return
        self.type(record)

    def type(self, record: stopped.StoppedSession) -> None:
        try:
            type_into(record, self.opts.text)
        except TmuxGone as exc:
            record.outcome, record.detail = stopped.SKIPPED, f"tmux: {exc}"
            with contextlib.suppress(OSError):
                stopped.save(record)
            self.say(f"{where(record)}: skipped, tmux: {exc}", problem=True)
            return
        record.typed_at = time.time()
        record.tries += 1
        stopped.save(record)
        self.last_typed = time.monotonic()
        self.pending[record.session_id] = time.monotonic() + self.opts.confirm
        self.say(f"{where(record)}: typed {self.opts.text!r} (try {record.tries})")

    def follow(self, records: Sequence[stopped.StoppedSession]) -> None:
        for record in records:
            sid = record.session_id
            if record.typed_at is None or record.at > record.typed_at:
                del self.pending[sid]  # it stopped on the limit again: planned anew
                self.say(f"{where(record)}: stopped on the limit again", problem=True)
            elif record.active_at is not None and record.active_at >= record.typed_at:
                del self.pending[sid]
                self.say(f"{where(record)}: resumed, confirmed")
                stopped.forget(sid)
            elif time.monotonic() >= self.pending[sid]:
                if record.tries < TRIES and pane_problem(record) is None:
                    self.type(record)
                    continue
                del self.pending[sid]
                record.outcome = stopped.UNCONFIRMED
                record.detail = f"no sign of it after {record.tries} tries"
                with contextlib.suppress(OSError):
                    stopped.save(record)
                message = f"claudemeter: {where(record)} did not resume after {record.tries} tries"
                notify(record, message)
                self.say(f"{where(record)}: not confirmed after {record.tries} tries", problem=True)
        # records deleted meanwhile (resumed by hand and forgotten) are no longer pending
        alive = {r.session_id for r in records}
        for sid in [s for s in self.pending if s not in alive]:
            if stopped.load(sid) is None:
                del self.pending[sid]

    def run(self) -> int:
        while True:
            wait = self.step()
            if wait < 0:
                return 1 if self.failed else 0
            time.sleep(wait)


def lock_path() -> str:
    return str(ensure_private_dir(env.state_dir()) / LOCK_FILE)


def running() -> bool:
    """Whether a resumer holds the lock (the tmux loop asks before starting one)."""
    try:
        fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def waiting_lines(now: datetime, opts: ResumeOptions | None = None) -> list[str]:
    """The popup's section: each stopped agent and when it will be resumed (or why not)."""
    records = stopped.all_records()
    if not records:
        return []
    opts = opts or ResumeOptions()
    state = Store().read()
    lines = ["agents stopped on the limit"]
    for record in records:
        stopped_at = local_time(datetime.fromtimestamp(record.at, now.tzinfo), now)
        head = f"  {where(record)} stopped {stopped_at}"
        if record.outcome in (stopped.UNCONFIRMED, stopped.SKIPPED):
            lines.append(f"{head}: {record.outcome}, {record.detail}")
        elif record.typed_at is not None and record.active_at is None:
            lines.append(f"{head}: resume typed, waiting for a sign")
        elif record.waiting:
            p = plan(record, state, now, opts)
            if p.at is None:
                lines.append(f"{head}: {p.why}")
            else:
                left = duration((p.at - now).total_seconds())
                lines.append(f"{head}: resumes {local_time(p.at, now)} (in {left})")
    return lines if len(lines) > 1 else []


def main(args: argparse.Namespace) -> int:
    opts = ResumeOptions(
        now=args.now,
        pane=args.pane,
        text=args.text,
        stagger=args.stagger,
        grace=args.grace,
        threshold=args.threshold,
        confirm=args.confirm,
        seven_day=args.seven_day,
        background=args.background,
    )
    if not opts.text.strip():
        print("claude-meter resume: --text must not be empty", file=sys.stderr)
        return 1
    resumer = Resumer(opts)
    if not opts.background:
        # By hand: no lock, so `resume --now` is never stuck behind the loop's resumer,
        # which leaves alone every session someone else has typed into.
        if not any(r.waiting for r in resumer.records()):
            print("claude-meter resume: no agent is waiting for a reset")
            return 0
        return resumer.run()
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return 0  # the loop's resumer is already at work
    try:
        return resumer.run()
    finally:
        os.close(fd)
