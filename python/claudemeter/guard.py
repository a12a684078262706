"""``cm-guard``: run a command only while the account is under the threshold (SPEC 4).

Before the command starts, the guard holds while the watched buckets are at or over
the threshold. While it runs, the guard re-reads the store every ``--poll`` seconds (no
network on that path) and, when a bucket crosses the threshold, pauses the command with
a job-control stop and resumes it at the row's ``resets_at`` plus ``--grace``. Every
guard on the account reads the same row and so reaches the same resume time.

Messages go to stderr only: ``cm-guard claude -p … | jq`` must stay clean.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import defaults, env, registry
from .flock import LockTimeout
from .gate import OVER, UNKNOWN, Verdict, decide, mismatch
from .job import (
    CONTINUED,
    JOB_CONTROL_STOPS,
    STOPPED,
    Job,
    SignalPipe,
    controlling_terminal,
    exec_failure_status,
    has_job_control_parent,
)
from .model import Snapshot, printable, utcnow
from .options import number
from .private import StoreError, private_lock
from .render import duration, short_command
from .sources import claude_config
from .sources.claude_account import Account, read_account
from .store import State, Store
from .windows import KNOWN_WINDOWS

PROG = "cm-guard"
EXIT_OVER = 75
EXIT_FAILED = 125
#: How long a full-screen program gets to restore the terminal before SIGSTOP.
STOP_GRACE = 1.0
#: The OAuth source's interval (refresh.OAUTH_INTERVAL, not imported: it brings the OAuth
#: client; tests/test_defaults.py holds the two equal). A guard asks for a refresh
#: only when its row is older than this and nobody has tried for as long; the refresh
#: itself is single-flight and interval-limited, so twenty guards cost one request.
REFRESH_AFTER = 300.0
#: A guard about to decide on missing data first waits this long for a refresh in flight.
REFRESH_WAIT = 15.0
#: Signals that end the guard: each is passed on to the command (continued first).
TERMINATING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)
#: Runs in a child process so that a slow upstream never stalls the poll loop, and no
#: thread shares the guard with the fork that starts the command.
REFRESH_CODE = "from claudemeter.refresh import refresh; refresh()"
#: The machine's book of refresh starts: one guard starts one per REFRESH_AFTER for all.
REFRESH_SPAWN_BOOK = "refresh-spawn.lock"

DESCRIPTION = """\
Run CMD only while the Claude account is under the threshold: hold before starting
while a watched bucket is at or over it, pause CMD (a job-control stop, so a TUI
restores the terminal) when a bucket crosses it, and resume CMD at the bucket's reset
time plus the grace. Every guard on the account pauses and resumes together.
"""

EPILOG = f"""\
exit status: CMD's own (128+N when it died of signal N); 125 cm-guard failed
(including an --account or --bucket the store does not have); 126 CMD not
executable; 127 CMD not found; 75 over the threshold (--check).

missing or old data from the start: a warning, and CMD runs anyway (--fail-closed
holds instead, and --check exits 75). A guard already holding or pausing CMD on known
numbers keeps that hold when they turn unknown (a source error, everything stale, the
store lost), until the reset it last knew plus the grace, and says why (--fail-open
lets CMD go on at once instead). A --bucket must be a known window or one the account's
usage has; known windows: {", ".join(KNOWN_WINDOWS)}.
environment: CLAUDEMETER_THRESHOLD sets the default threshold (the tmux option
@claude_meter_threshold); CM_GUARD_ACTIVE marks a guarded command, so an inner
`cm-guard CMD` (alias claude='cm-guard claude') runs CMD directly.
"""


class UsageError(Exception):
    """Bad options: exit 125 (not argparse's 2, which CMD itself might return)."""


class Refused(Exception):
    """Options that name an account or bucket the store does not have: exit 125, since
    guarding on a typo would never pause."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # raises, never returns
        raise UsageError(message)


@dataclass(frozen=True)
class Options:
    threshold: float
    buckets: tuple[str, ...]
    account: str | None
    grace: float
    poll: float
    check: bool
    wait: bool
    fail_closed: bool
    command: list[str]
    fail_open: bool = False


def _number(low: float, high: float) -> Callable[[str], float]:
    """The tmux options' rule (``85%`` is fine), so a value the status line accepts in
    ``@claude_meter_threshold`` never stops a guard from starting."""

    def parse(text: str) -> float:
        value = number(text, math.nan)
        if not low <= value <= high:  # also refuses nan: not a number at all
            raise argparse.ArgumentTypeError(
                f"expected a number from {low:g} to {high:g}, got {text!r}"
            )
        return value

    return parse


_threshold = _number(0.0, 1000.0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        usage="%(prog)s [options] [--] CMD [ARGS...] | --check | --wait",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--threshold",
        type=_threshold,
        metavar="PCT",
        help=f"pause/hold at or above this utilization (default {defaults.THRESHOLD:g},"
        " or $CLAUDEMETER_THRESHOLD)",
    )
    parser.add_argument(
        "--bucket",
        action="append",
        metavar="NAME",
        help="bucket to watch; repeatable (default: " + ", ".join(defaults.BUCKETS) + ")",
    )
    parser.add_argument(
        "--account",
        metavar="EMAIL",
        help="which account's row to read, by email or org uuid (default:"
        " the Claude Code login, else the only account, else the one"
        " nearest its limit)",
    )
    parser.add_argument(
        "--grace",
        type=_number(0.0, 86400.0),
        default=defaults.GRACE,
        metavar="SECONDS",
        help=f"wait this long past the reset before resuming (default {defaults.GRACE:g})",
    )
    parser.add_argument(
        "--poll",
        type=_number(0.05, 3600.0),
        default=defaults.POLL,
        metavar="SECONDS",
        help=f"how often a running guard re-reads the store (default {defaults.POLL:g})",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="no command: print the account's state as JSON; exit 0 under the"
        " threshold, 75 over it",
    )
    mode.add_argument(
        "--wait",
        action="store_true",
        help="no command: block until under the threshold, then exit 0",
    )
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument(
        "--fail-closed",
        action="store_true",
        help="hold (and --check exits 75) when the data is missing or old,"
        " instead of warning and letting work go on",
    )
    policy.add_argument(
        "--fail-open",
        action="store_true",
        help="when the numbers a hold or pause rests on turn unknown, go on at once"
        " (default: keep holding until the last known reset plus the grace)",
    )
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="CMD [ARGS...]", help="the command to guard"
    )
    return parser


def parse_options(argv: Sequence[str]) -> Options:
    args = build_parser().parse_args(list(argv))
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if (args.check or args.wait) and command:
        raise UsageError("--check and --wait take no command")
    if not (args.check or args.wait or command):
        raise UsageError("give a command to guard, or --check / --wait")
    if args.account is not None and not args.account.strip():
        raise UsageError("--account needs an email or an org uuid")
    threshold = args.threshold
    if threshold is None:
        configured = env.guard_threshold()
        try:
            threshold = _threshold(configured) if configured else defaults.THRESHOLD
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"CLAUDEMETER_THRESHOLD: {exc}") from None
    buckets = tuple(dict.fromkeys(args.bucket or defaults.BUCKETS))
    return Options(
        threshold,
        buckets,
        args.account,
        args.grace,
        args.poll,
        args.check,
        args.wait,
        args.fail_closed,
        command,
        args.fail_open,
    )


#: Columns of an 80-column pane: what a pause or hold line fits in.
SAY_WIDTH = 80
#: A command shortened below this would say nothing: the line leaves it out instead.
MIN_COMMAND_ROOM = 16


def say(message: str) -> None:
    """One line on stderr; a closed stderr is not worth dying for."""
    try:
        sys.stderr.write(f"{PROG}: {printable(message)}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def when(moment: datetime, now: datetime) -> str:
    """``14:05:30 (in 1h02m)`` in local time, with the date when it is not today."""
    local = moment.astimezone()
    text = local.strftime(
        "%H:%M:%S" if local.date() == now.astimezone().date() else "%a %d %b %H:%M:%S"
    )
    return f"{text} (in {duration((moment - now).total_seconds())})"


class StateReader:
    """Re-parses the state file only when it changed: an idle guard's poll is a stat."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._key: tuple[int, int, int] | None = None
        self._state = State()

    def read(self) -> State:
        try:
            info = self.store.path.stat()
            key: tuple[int, int, int] | None = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError:
            key = None
        if key is None or key != self._key:
            self._state = self.store.read()
            self._key = key
        return self._state


class Refresher:
    """Asks for fresh numbers, in a child process, when the guard's row is old."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._proc: subprocess.Popen[bytes] | None = None
        self._last = -math.inf
        #: Until when (monotonic) a refresh another guard started may still be landing.
        self._elsewhere_until = -math.inf

    @property
    def running(self) -> bool:
        """A refresh is under way: this guard's own, or one another guard started less
        than :data:`REFRESH_WAIT` seconds ago (it serves this guard too)."""
        if self._proc is not None and self._proc.poll() is None:
            return True
        return time.monotonic() < self._elsewhere_until

    def maybe_start(self, state: State, row: Snapshot | None, now: datetime) -> None:
        if self.running or (row is not None and row.age(now) < REFRESH_AFTER):
            return
        clock = now.timestamp()
        if clock - self._last < REFRESH_AFTER:
            return
        for book in state.oauth_books():
            last = book.get("last_attempt", 0.0)
            if clock - last < REFRESH_AFTER or clock < book.get("next_allowed", 0.0):
                return  # someone asked lately, or the source is backing off
        self._last = clock
        if not self.claim(clock):
            return  # another guard started one lately: it serves every guard
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", REFRESH_CODE],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            say(f"cannot start a refresh: {exc.strerror or exc}")

    def claim(self, clock: float) -> bool:
        """Single-flight at the spawn: whether this guard may start the refresh, i.e. no
        guard on the machine started one in the last :data:`REFRESH_AFTER` seconds. The
        book is a lock file whose mtime is the last start (``clock``: epoch seconds),
        read and written under its ``flock``; an empty file has never been claimed."""
        try:
            lock = private_lock(self.store.directory / REFRESH_SPAWN_BOOK, 1.0)
            lock.acquire()
        except (LockTimeout, OSError, StoreError):
            return False  # cannot tell: the next poll asks again
        try:
            book = os.fstat(lock.fd)
            if book.st_size and abs(clock - book.st_mtime) < REFRESH_AFTER:
                landing = REFRESH_WAIT - abs(clock - book.st_mtime)
                self._elsewhere_until = time.monotonic() + max(0.0, landing)
                return False
            os.ftruncate(lock.fd, 0)
            os.write(lock.fd, b"started\n")
            os.utime(lock.fd, (clock, clock))
            return True
        except OSError:
            return False
        finally:
            lock.release()


class Guard:
    """One guard: its options, its view of the store, its registry entry, its job."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.reader = StateReader(Store())
        self.refresher = Refresher(self.reader.store)
        self.login: Account | None = (
            read_account(claude_config.current()) if opts.account is None else None
        )
        label = " ".join(
            (shlex.join(opts.command) if opts.command else "(cm-guard --wait)").split()
        )
        self.label = label if len(label) <= 200 else label[:199] + "…"
        self.entry = registry.GuardEntry(
            pid=os.getpid(),
            command=self.label,
            account=opts.account,
            state=registry.HELD,
            pane=env.tmux_pane(),
            started_at=time.time(),
        )
        self.registered = False
        self.signals: SignalPipe | None = None
        self.pending: list[int] = []  # terminating signals not yet acted on
        self.events: list[str] = []  # changes in the command not yet acted on
        self.terminating: int | None = None
        self.job: Job | None = None
        self.paused = False  # the guard stopped the command and owes it a resume
        self.told: tuple[str, ...] = ()  # the last hold/pause announcement, said once
        self.last_over: Verdict | None = None  # the known numbers a hold/pause rests on
        self.account_label = ""  # the account the last hold/pause named
        self.keeping = False  # the verdict is a hold kept on numbers now unknown
        self.several = False  # the store has several accounts: messages name theirs
        self.shared_emails: set[str] = set()  # emails in several orgs: rows go by org uuid

    # -- reading -----------------------------------------------------------------------

    def verdict(self) -> Verdict:
        """The decision now. Data that cannot be read is unknown data, never an exit: a
        guard that died on a bad row would leave its command running unguarded."""
        try:
            found = self._verdict()
        except Exception as exc:  # any bad data: decided by policy, like a missing row
            reason = f"cannot read the store ({type(exc).__name__}: {str(exc)[:80]})"
            found = Verdict(UNKNOWN, self.opts.threshold, reason)
        return self.keep_hold(found, utcnow())

    def _verdict(self) -> Verdict:
        state = self.reader.read()
        now = utcnow()
        rows = state.accounts(now)
        self.several = len(rows) > 1
        emails = [(r.account_email or "").lower() for r in rows]
        self.shared_emails = {e for e in emails if e and emails.count(e) > 1}
        found = decide(
            rows,
            state.sources,
            now,
            threshold=self.opts.threshold,
            buckets=self.opts.buckets,
            email=self.opts.account,
            login=self.login,
            grace=self.opts.grace,
        )
        self.refresher.maybe_start(state, found.row, now)
        if state.problem and found.state == UNKNOWN:
            found = Verdict(UNKNOWN, found.threshold, state.problem, found.row, found.buckets)
        return found

    def keep_hold(self, found: Verdict, now: datetime) -> Verdict:
        """An over verdict is remembered; when the numbers then turn unknown (a source
        error, everything stale, the store lost), the guard keeps holding on the last
        known ones until their ``resets_at`` + grace, so a hold never ends on missing
        data. ``--fail-open`` skips this; a guard that never saw numbers keeps the
        unknown policy (warn and go ahead, or ``--fail-closed``)."""
        self.keeping = False
        if found.state != UNKNOWN:
            self.last_over = found if found.state == OVER else None
            return found
        last = self.last_over
        if last is None or self.opts.fail_open:
            return found
        if last.resume_at is not None and last.resume_at <= now:
            self.last_over = None
            return found
        self.keeping = True
        reason = f"numbers unknown now ({found.reason}); last known: {last.reason}"
        return Verdict(
            OVER,
            last.threshold,
            reason,
            last.row,
            last.buckets,
            last.resume_at,
            found.login_problem or last.login_problem,
        )

    def settled_verdict(self) -> Verdict:
        """The verdict, after letting a refresh that is already under way land first."""
        deadline = time.monotonic() + REFRESH_WAIT
        found = self.verdict()
        while (
            found.state == UNKNOWN
            and self.refresher.running
            and time.monotonic() < deadline
            and not self.pending
        ):
            self.wait(0.1)
            found = self.verdict()
        self.refuse_typos()
        return found

    def refuse_typos(self) -> None:
        """Before the command starts: an account or bucket the store does not have ends
        the guard (exit 125). Once the command runs, the guard never kills it for that."""
        state = self.reader.read()
        wrong = mismatch(state.accounts(utcnow()), self.opts.buckets, self.opts.account, self.login)
        if wrong:
            raise Refused(wrong)

    def warn_unknown(self, found: Verdict) -> None:
        key = ("unknown", found.reason, found.login_problem or "")
        if key == self.told:
            return
        self.told = key
        if found.login_problem:
            say(found.login_problem)
        action = "holding" if self.opts.fail_closed else "going ahead (--fail-closed holds)"
        say(f"{self.named(found)}{found.reason}; {action}")

    # -- waiting and the registry ------------------------------------------------------

    def wait(self, timeout: float) -> None:
        """Block until a signal, a change in the command, or ``timeout``."""
        if self.signals is None:
            time.sleep(timeout)
            return
        for sig in self.signals.wait(timeout):
            if sig in TERMINATING:
                self.pending.append(sig)
        if self.job is not None:
            self.events += self.job.reap()

    def wait_until(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    def update(self, state: str, found: Verdict | None = None) -> None:
        """Rewrite the registry entry when something a reader shows has changed."""
        entry = self.entry
        resume = found.resume_at.timestamp() if found and found.resume_at else None
        account = found.account if found and found.account else entry.account
        row = found.row if found else None
        if row and row.org_uuid and (row.account_email or "").lower() in self.shared_emails:
            account = row.org_uuid  # the email names two orgs' rows; the popup places by uuid
        child = self.job.pid if self.job else None
        fields = (state, resume, account, child)
        if self.registered and fields == (
            entry.state,
            entry.resume_at,
            entry.account,
            entry.child_pid,
        ):
            return
        entry.state, entry.resume_at, entry.account, entry.child_pid = fields
        try:
            registry.register(entry)
            self.registered = True
        except (OSError, StoreError) as exc:
            if not self.registered:
                reason = exc.strerror if isinstance(exc, OSError) else None
                say(f"cannot register in {registry.guards_dir()}: {reason or exc}")
            self.registered = True  # said once; the guard works without the registry

    def timeout(self, found: Verdict) -> float:
        """The next poll, or the resume time if that comes first."""
        if found.resume_at is None:
            return self.opts.poll
        left = (found.resume_at - utcnow()).total_seconds() + 0.01
        return max(0.0, min(self.opts.poll, left))

    # -- holding before the start (and --wait) -----------------------------------------

    def hold(self, doing: str, named: bool = True) -> int | None:
        """Block while over the threshold. None when clear to go; an exit status when a
        signal ended the wait."""
        found = self.settled_verdict()
        while not self.pending:
            if not found.holds(self.opts.fail_closed):
                if found.state == UNKNOWN:
                    self.warn_unknown(found)
                return None
            if found.state == UNKNOWN:
                self.warn_unknown(found)
            else:
                self.announce(found, doing, named)
            self.update(registry.HELD, found)
            self.wait(self.timeout(found))
            found = self.verdict()
            self.refuse_typos()
        return 128 + self.pending[0]

    def announce(self, found: Verdict, doing: str, named: bool = True) -> None:
        """``<reason>: <doing> `<command>` until <time>``, once per reason and time, in
        :data:`SAY_WIDTH` columns: the command is shortened to the room left."""
        until = (
            f"until {when(found.resume_at, utcnow())}"
            if found.resume_at
            else "until the data shows a reset"
        )
        key = (doing, found.reason, until.split(" (")[0])
        if key != self.told:
            self.told = key
            prefix = self.named(found)
            room = SAY_WIDTH - len(f"{PROG}: {prefix}{found.reason}: {doing} `` {until}")
            if named and room >= MIN_COMMAND_ROOM:  # else the pane it runs in names it
                doing = f"{doing} `{short_command(self.label, room)}`"
            say(f"{prefix}{found.reason}: {doing} {until}")

    def named(self, found: Verdict) -> str:
        """``ada@example.com (Team): `` for a message about that account's row, when
        the store has several accounts (with one, the line keeps to its 80 columns)."""
        if not (found.label and self.several):
            return ""
        self.account_label = found.label
        return f"{found.label}: "

    # -- running the command -----------------------------------------------------------

    def run(self, tty: int | None) -> int:
        held = self.hold("holding")
        if held is not None:
            return held
        child_env = dict(os.environ)
        child_env[env.GUARD_MARKER] = str(os.getpid())
        self.job = job = Job(self.opts.command, child_env, tty)
        try:
            job.start()
        except OSError as exc:
            say(f"{self.opts.command[0]}: {exc.strerror or exc}")
            return exec_failure_status(exc)
        self.told = ()
        self.update(registry.RUNNING, self.verdict())
        try:
            return self.supervise(job)
        finally:
            if job.running:  # leaving early (an unexpected error): never strand it stopped
                job.resume()
            else:
                job.take_terminal()

    def supervise(self, job: Job) -> int:
        timeout = 0.0
        while True:
            self.wait(timeout)
            # Changes first, in the order they happened: a stop that our own pause caused
            # must be seen as ours before a signal below continues the command.
            events, self.events = self.events, []
            for event in events:
                self.react(job, event)
            while self.pending:
                self.terminate(self.pending.pop(0))
            if job.status is not None:
                return job.status
            timeout = self.opts.poll
            if self.terminating is not None:
                continue  # no more gating: only wait for the command to finish
            found = self.verdict()
            holds = found.holds(self.opts.fail_closed)
            if holds and not self.paused and not job.stopped:
                self.pause(job, found)
            elif holds and self.paused:
                if self.keeping:  # the numbers went missing: say why the pause goes on
                    self.announce(found, "paused")
                self.update(registry.PAUSED, found)
            elif self.paused and not holds:
                self.resume(job)
            timeout = self.timeout(found) if self.paused else self.opts.poll

    def react(self, job: Job, event: str) -> None:
        if event == STOPPED and job.stopped and not self.paused:
            self.stopped_by_user(job)
        elif event == CONTINUED and self.paused and not job.stopped:
            # Someone continued it behind our back; the next poll pauses it again.
            self.paused = False
            self.update(registry.RUNNING)

    def pause(self, job: Job, found: Verdict) -> None:
        self.paused = True
        job.stop(self.wait_until, STOP_GRACE)
        if job.status is None:
            self.announce(found, "paused")
            self.update(registry.PAUSED, found)

    def resume(self, job: Job) -> None:
        self.paused = False
        prefix = f"{self.account_label}: " if self.account_label else ""
        room = max(MIN_COMMAND_ROOM, SAY_WIDTH - len(f"{PROG}: {prefix}resumed ``"))
        say(f"{prefix}resumed `{short_command(self.label, room)}`")
        self.told = ()
        job.resume()
        self.update(registry.RUNNING)

    def stopped_by_user(self, job: Job) -> None:
        """The command stopped itself (Ctrl-Z, or a read from the terminal while in the
        background). Like a shell: stop the guard's own job too, so the shell above sees
        it stopped and offers ``fg``; continue the command when we are continued. With
        no job-control shell above (the guard is the pane's command), nobody could ever
        continue us, so the command is continued at once."""
        if job.stop_signal not in JOB_CONTROL_STOPS:
            return  # stopped by hand (SIGSTOP): it stays so until someone continues it
        job.take_terminal()
        if has_job_control_parent():
            os.killpg(os.getpgrp(), signal.SIGTSTP)
            # ...and here we are, continued by `fg` or `bg`.
        else:
            say("no job-control shell above cm-guard to return to; continuing the command")
        found = self.verdict()
        if self.terminating is None and found.holds(self.opts.fail_closed):
            self.paused = True
            self.announce(found, "paused")
            self.update(registry.PAUSED, found)
            return
        job.resume()

    def terminate(self, sig: int) -> None:
        """The guard was told to end (pane closed, kill, Ctrl-C while paused): the
        command is continued and gets the same signal, then the guard waits for it."""
        if self.terminating is None:
            self.terminating = sig
        job = self.job
        if job is None or not job.running:
            return
        if job.stopped:
            job.give_terminal()
        job.end(sig)  # the whole tree: a worker in a session of its own goes too
        self.paused = False
        self.update(registry.RUNNING)


def _inside_guard(marker: str) -> bool:
    """True when the guard named by the marker is one of our ancestors (a marker that
    leaked, say into a tmux server started under a guard, must not disable guards)."""
    try:
        guard_pid = int(marker)
    except ValueError:
        return False
    pid = os.getppid()
    for _ in range(64):
        if pid == guard_pid:
            return True
        if pid <= 1:
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break  # no /proc (macOS): settle for "that guard is still alive"
        pid = int(stat.rpartition(")")[2].split()[1])
    else:
        return False
    try:
        os.kill(guard_pid, 0)
    except OSError:
        return False
    return True


def _exec_directly(command: list[str]) -> int:
    try:
        os.execvp(command[0], command)  # noqa: S606  (replacing ourselves is the point)
    except OSError as exc:
        say(f"{command[0]}: {exc.strerror or exc}")
        return exec_failure_status(exc)
    return EXIT_FAILED  # not reached: exec replaced us


def _check(guard: Guard) -> int:
    found = guard.settled_verdict()
    if found.state == UNKNOWN:
        guard.warn_unknown(found)
    sys.stdout.write(json.dumps(found.to_json()) + "\n")
    sys.stdout.flush()
    return EXIT_OVER if found.holds(guard.opts.fail_closed) else 0


def _setup_signals(tty: int | None) -> SignalPipe:
    # The guard hands the terminal around (tcsetpgrp) and writes to it from the
    # background while paused; either would stop it with SIGTTOU.
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    if tty is not None:
        # Stopping the guard's own job must work (see Guard.stopped_by_user).
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        signal.signal(signal.SIGTTIN, signal.SIG_DFL)
    return SignalPipe((*TERMINATING, signal.SIGCHLD))


def run(argv: Sequence[str]) -> int:
    opts = parse_options(argv)
    marker = env.guard_marker()
    if opts.command and marker and _inside_guard(marker):
        return _exec_directly(opts.command)
    guard = Guard(opts)
    if opts.check:
        return _check(guard)
    tty = controlling_terminal()
    guard.signals = _setup_signals(tty)
    try:
        if opts.wait:
            code = guard.hold("waiting", named=False)
            return 0 if code is None else code
        return guard.run(tty)
    finally:
        registry.unregister(os.getpid())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        say(f"{exc} (see {PROG} --help)")
        return EXIT_FAILED
    except Refused as exc:
        say(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        say(f"failed: {exc.strerror or exc}")
        return EXIT_FAILED
    except Exception as exc:  # a bug of ours must still exit 125, never look like CMD's status
        say(f"internal error ({type(exc).__name__}: {exc}); the command was left running")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
