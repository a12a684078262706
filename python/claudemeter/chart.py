"""``claude-meter history``: each account's buckets over the last days, every limit hit.

A line per bucket per local day: 24 cells, one per hour, each the highest reading of
that hour on a fixed 0-100 scale (blank: no reading), ``!`` where the account hit a
limit that hour; then the day's peak and the times of its hits. ``--json`` gives the
readings themselves (SPEC section 4).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import datetime, timedelta

from . import env, history
from .history import AccountHistory, LimitHit
from .model import JSON
from .output import print_json
from .pace import SPARK
from .render import percent
from .store import Store
from .windows import KNOWN_WINDOWS, label

HOURS = 24
HIT_MARK = "!"
HIT_SOURCES = {
    history.HIT_READING: "at 100%",
    history.HIT_OAUTH_429: "poll 429",
    history.HIT_STOP_FAILURE: "agent stopped",
}


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Each account's buckets over the last days (kept 8 days, apart from the state"
        " file): a line per bucket per day, one cell per hour, ! where a limit was hit"
        " (a bucket at 100%, a 429 of our own poll, an agent stopped on the limit)."
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one object per account: org_uuid, buckets {name: [[epoch_seconds, percent],"
        " ...]}, limit_hits [{at, bucket, source}], resets [{at, bucket}]",
    )
    parser.add_argument(
        "--days", type=_days, default=8, metavar="N", help="the last N days, 1-8 (default 8)"
    )


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= 8:
        raise argparse.ArgumentTypeError(f"expected a number of days from 1 to 8, not {text!r}")
    return days


def series(account: AccountHistory, since: float) -> dict[str, list[tuple[float, float]]]:
    """Every bucket's readings since ``since``: (epoch seconds, percent), oldest first;
    known buckets first."""
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in KNOWN_WINDOWS}
    for point in account.points:
        if point.t >= since:
            for bucket, used in point.used.items():
                found.setdefault(bucket, []).append((point.t, used))
    return {name: values for name, values in found.items() if values}


def accounts_shown(
    recorded: Mapping[str, AccountHistory], emails: Mapping[str, str | None]
) -> list[tuple[str, str | None, AccountHistory]]:
    """(org uuid, email, history) for every account: those the store knows (their
    email readings folded in), then any the history alone remembers."""
    shown = []
    covered: set[str] = set()
    for key, email in emails.items():
        org = "" if key.startswith("email:") else key
        shown.append((org, email, history.of_account(recorded, org, email)))
        covered |= {key, f"email:{(email or '').lower()}"}
    for key, account in recorded.items():
        if key not in covered:
            org, email = ("", key[6:]) if key.startswith("email:") else (key, None)
            shown.append((org, email, account))
    return shown


def json_rows(shown: list[tuple[str, str | None, AccountHistory]], since: float) -> list[JSON]:
    """``history --json`` (SPEC section 4)."""
    return [
        {
            "org_uuid": org,
            "account_email": email,
            "buckets": {
                name: [[t, used] for t, used in values]
                for name, values in series(account, since).items()
            },
            "limit_hits": [h.to_json() for h in account.hits if h.at >= since],
            "resets": [r.to_json() for r in account.resets if r.at >= since],
        }
        for org, email, account in shown
    ]


def day_line(
    values: list[tuple[float, float]], hits: list[LimitHit], start: datetime
) -> str | None:
    """One local day of a bucket; None when it has no reading that day."""
    begin = start.timestamp()
    end = (start + timedelta(days=1)).timestamp()
    cells: list[float | None] = [None] * HOURS
    for t, used in values:
        if begin <= t < end:
            hour = min(int((t - begin) // 3600), HOURS - 1)
            cells[hour] = max(used, cells[hour] or 0.0)
    day_hits = [h for h in hits if begin <= h.at < end]
    if all(c is None for c in cells) and not day_hits:
        return None
    marked = {min(int((h.at - begin) // 3600), HOURS - 1) for h in day_hits}
    drawn = "".join(
        HIT_MARK
        if hour in marked
        else " "
        if value is None
        else SPARK[min(int(max(0.0, min(value, 100.0)) / 100.0 * len(SPARK)), len(SPARK) - 1)]
        for hour, value in enumerate(cells)
    )
    peak = max((c for c in cells if c is not None), default=None)
    text = f"{start:%a %m-%d} {drawn} max {percent(peak):>4}"
    if day_hits:
        times = ", ".join(
            f"{datetime.fromtimestamp(h.at, start.tzinfo):%H:%M}"
            f" {HIT_SOURCES.get(h.source, h.source)}"
            for h in day_hits[:4]
        )
        more = f" +{len(day_hits) - 4}" if len(day_hits) > 4 else ""
        text += f"  {HIT_MARK} {times}{more}"
    return text


def chart(shown: list[tuple[str, str | None, AccountHistory]], now: datetime, days: int) -> str:
    """The terminal chart: per account, per bucket, a line per day with readings."""
    local_now = now.astimezone()
    today = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    since = starts[0].timestamp()
    blocks = []
    for org, email, account in shown:
        lines = [email or org or "?"]
        hours = " " * 10 + "".join(f"{h:02d}····" for h in range(0, HOURS, 6))
        for bucket, values in series(account, since).items():
            hits = [h for h in account.hits if h.bucket in (bucket, None)]
            day_lines = [day_line(values, hits, start) for start in starts]
            drawn = [f"  {line}" for line in day_lines if line is not None]
            if drawn:
                lines += [f" {label(bucket)}", f"  {hours}", *drawn]
        if len(lines) == 1:
            lines.append(f"  no readings in the last {days} days")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def cmd_history(args: argparse.Namespace) -> int:
    store = Store()
    now = env.now()
    emails = {row.account_key: row.account_email for row in store.read().accounts(now)}
    shown = accounts_shown(history.read(store.directory), emails)
    if args.json:
        print_json(json_rows(shown, now.timestamp() - args.days * 86400.0))
        return 0
    if not shown:
        print("no history yet: it starts with the first reading claudemeter stores")
        return 0
    print(chart(shown, now, args.days))
    return 0
