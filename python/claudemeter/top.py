"""``claude-meter top``: which agent (tmux pane, session, project) took what share of each
bucket's rise, and the popup's "who is filling it" lines.

Sessions come from the history (what ``claude-meter statusline`` recorded: pane,
project, model, Claude Code's own cost) and, for sessions that do not run our
statusline, from Claude Code's transcripts priced with :mod:`claudemeter.prices`. The
split itself is :mod:`claudemeter.attribution`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from . import env, history, transcripts
from .attribution import BUCKETS, Attribution, attribute, default_since
from .history import AccountHistory, Session
from .model import JSON, Snapshot
from .output import print_json
from .render import account_name
from .store import Store
from .times import local_time
from .windows import short_label

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Which agent session (tmux pane, project, model) took what share of the 5-hour"
        " and 7-day buckets' rise over a period, in proportion to each session's cost;"
        " the part no recorded session explains (claude.ai in a browser, another"
        " machine) is named apart. Reads the history, never the network."
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per session: session_id, pane, project, model, share_5h,"
        " share_7d (percent of that bucket's rise), cost_usd, ...",
    )
    parser.add_argument(
        "--since",
        type=duration,
        metavar="DURATION",
        help="the period: the last DURATION (30m, 1h, 2d, 1h30m; at most 8d);"
        " default: the current 5-hour window",
    )


def duration(text: str) -> float:
    """``1h30m`` → 5400.0 seconds; argparse's check of ``--since``."""
    text = text.strip().lower()
    parts = _DURATION_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"expected a duration like 30m, 1h or 2d, not {text!r}")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not 0 < seconds <= history.KEEP_SECONDS:
        raise argparse.ArgumentTypeError("a duration above 0 and at most 8d (the history kept)")
    return seconds


@dataclass(frozen=True)
class AccountTop:
    """One account's split over its period."""

    row: Snapshot
    attribution: Attribution
    window: bool  # the period is the current 5-hour window (no --since)


def sessions_of(account: AccountHistory, keys: set[str], since: float) -> list[tuple[Session, str]]:
    """The account's recorded sessions, then transcripts of its Claude Code logins for
    sessions the statusline never recorded."""
    found: list[tuple[Session, str]] = [(s, "statusline") for s in account.sessions.values()]
    known = set(account.sessions)
    from .sources.claude_account import read_account
    from .sources.claude_config import configured

    for config in configured():
        login = read_account(config)
        if login is None or login.key not in keys:
            continue
        found += [(s, "transcript") for s in transcripts.sessions(config.directory, since, known)]
    return found


def gather(
    rows: list[Snapshot],
    accounts: Mapping[str, AccountHistory],
    now: datetime,
    since_seconds: float | None = None,
) -> list[AccountTop]:
    """Each account's split: over the last ``since_seconds``, or its current 5-hour
    window."""
    until = now.timestamp()
    found = []
    for row in rows:
        account = history.of_account(accounts, row.org_uuid, row.account_email)
        since = until - since_seconds if since_seconds else default_since(account, until)
        keys = {row.account_key, f"email:{(row.account_email or '').lower()}"}
        split = attribute(account, sessions_of(account, keys, since), since, until)
        found.append(AccountTop(row, split, since_seconds is None))
    return found


def _share(value: float) -> float:
    return round(value, 1)


def json_rows(tops: list[AccountTop]) -> list[JSON]:
    """``top --json`` (SPEC section 4): one object per session, largest 5-hour share
    first within each account."""
    rows = []
    for top in tops:
        split = top.attribution
        for share in split.shares:
            session = share.session
            body: JSON = {
                "session_id": session.session_id,
                "pane": session.pane,
                "project": session.project,
                "model": session.model,
                "share_5h": _share(share.share("five_hour")),
                "share_7d": _share(share.share("seven_day")),
                "cost_usd": round(share.cost_usd, 4),
                "input_tokens": share.input_tokens,
                "output_tokens": share.output_tokens,
                "source": share.source,
                "org_uuid": top.row.org_uuid,
                "account_email": top.row.account_email,
                "since": split.since,
            }
            for bucket, short in zip(BUCKETS, ("5h", "7d"), strict=True):  # SPEC's field names
                rise = split.rises[bucket]
                body[f"rise_{short}"] = round(rise.rise, 2)
                body[f"unexplained_{short}"] = _share(rise.unexplained_share)
            rows.append(body)
    return rows


def _name(session: Session) -> str:
    return (session.project or "").rstrip("/").rsplit("/", 1)[-1] or session.session_id[:8]


def _cell(text: str | None, width: int) -> str:
    text = text or "–"
    return text if len(text) <= width else text[: width - 1] + "…"


def period_line(top: AccountTop, now: datetime) -> str:
    split = top.attribution
    since = datetime.fromtimestamp(split.since, now.tzinfo)
    what = "the current 5-hour window" if top.window else "the period"
    rises = " · ".join(f"{short_label(b)} +{split.rises[b].rise:.1f} pts" for b in BUCKETS)
    return f"since {local_time(since, now)} ({what}) · {rises}"


def table_lines(top: AccountTop, limit: int | None = None) -> list[str]:
    """The table's lines for one account: pane, project, model, shares, cost; the
    unexplained part last."""
    split = top.attribution
    first, second = (short_label(b) for b in BUCKETS)
    lines = [f"{'pane':<5} {'project':<18} {'model':<12} {first:>5} {second:>5} {'cost':>8}"]
    shown = split.shares[:limit] if limit else split.shares
    for share in shown:
        s = share.session
        lines.append(
            f"{_cell(s.pane, 5):<5} {_cell(_name(s), 18):<18} {_cell(s.model, 12):<12}"
            f" {share.share('five_hour'):>4.0f}% {share.share('seven_day'):>4.0f}%"
            f" {'$' + format(share.cost_usd, '.2f'):>8}"
        )
    if limit and len(split.shares) > limit:
        lines.append(f"… {len(split.shares) - limit} more (claude-meter top)")
    five, seven = (split.rises[b].unexplained_share for b in BUCKETS)
    if five > 0 or seven > 0:
        lines.append(f"{'–':<5} {'(no recorded session)':<31} {five:>4.0f}% {seven:>4.0f}%")
    return lines


def filling_lines(top: AccountTop) -> list[str]:
    """The popup's "who is filling it" section for one account; none until a session
    spent something in the window (without one, the whole rise is simply unexplained)."""
    split = top.attribution
    if not split.shares:
        return []
    lines = ["  who is filling it (this 5-hour window; claude-meter top)"]
    lines += [f"    {line}" for line in table_lines(top, limit=5)]
    return lines


def cmd_top(args: argparse.Namespace) -> int:
    store = Store()
    state = store.read()
    now = env.now()
    rows = [r for r in state.accounts(now) if r.usage is not None]
    tops = gather(rows, history.read(store.directory), now, args.since)
    if args.json:
        print_json(json_rows(tops))
        return 0
    if not tops:
        print("claude-meter top: no account has readings yet", file=sys.stderr)
        return 0
    blocks = []
    for top in tops:
        lines = [f"{account_name(top.row)} · {period_line(top, now)}"]
        if top.attribution.shares or top.attribution.rises["five_hour"].rise > 0:
            lines += [f"  {line}" for line in table_lines(top)]
        else:
            lines.append("  no session spent anything in this period")
        blocks.append("\n".join(lines))
    print("\n\n".join(blocks))
    return 0
