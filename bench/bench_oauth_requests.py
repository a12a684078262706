"""OAuth requests per hour with and without a fresh Claude Code usage cache.

Run by hand: ``python3 bench/bench_oauth_requests.py [--hours H]``. Simulates hours in
seconds: the clock is pinned (``CLAUDEMETER_NOW``) and stepped 30 s at a time, and at
each step the OAuth poller does what ``claude-meter serve``'s poller does every 30 s
(an automatic ``refresh``) against a fake api.anthropic.com on loopback, which counts
the requests. Scenarios, each in a fresh temporary home with the same login:

- no Claude Code running (the same-run baseline): our own poll is all there is;
- a Claude Code session writing ``cachedUsageUtilization`` into ``.claude.json`` every
  minute, as it does after each of its own usage look-ups (goal: 0 requests, since the
  cache is always younger than the interval);
- the same session writing it only every 10 minutes (the cache is fresh half the time);
- agents whose statusLine stores 5-hour and 7-day readings every minute, no cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import common
from common import Figure

sys.path.insert(0, str(common.ROOT / "python"))  # this checkout's claudemeter, in-process

from tests.helpers import fixture

from claudemeter.model import SOURCE_STATUSLINE, Snapshot
from claudemeter.poller import REFRESH_EVERY
from claudemeter.refresh import refresh
from claudemeter.store import Store

USAGE = "/api/oauth/usage"
#: ``serve``'s poller asks ``refresh`` this often.
POLL_EVERY = int(REFRESH_EVERY)
START = datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Scenario:
    name: str
    cache_every: int | None = None  # seconds between Claude Code's cache writes
    statusline_every: int | None = None  # seconds between statusLine readings


SCENARIOS = (
    Scenario("no Claude Code running"),
    Scenario("Claude Code writing its cache every minute", cache_every=60),
    Scenario("Claude Code writing its cache every 10 min", cache_every=600),
    Scenario("statusLine readings every minute, no cache", statusline_every=60),
)


def write_cache(claude_json: Path, body: dict[str, Any], now: datetime) -> None:
    """What Claude Code does after a usage look-up: rewrite .claude.json with the answer."""
    cache = dict(body["cachedUsageUtilization"])
    cache["fetchedAtMs"] = int(now.timestamp() * 1000)
    usage = fixture("oauth_usage_basic.json")
    assert isinstance(usage, dict)
    for window in ("five_hour", "seven_day"):  # resets ahead of the simulated clock
        usage[window]["resets_at"] = (now + timedelta(hours=2)).isoformat()
    cache["utilization"] = usage
    claude_json.write_text(json.dumps({**body, "cachedUsageUtilization": cache}))


def statusline_reading(now: datetime) -> Snapshot:
    """What one agent's ``claude-meter statusline`` call stores: 5-hour and 7-day."""
    account = json.loads((common.FIXTURES / "claude_json_oauth_account.json").read_text())
    later = (now + timedelta(hours=2)).isoformat()
    return Snapshot(
        org_uuid=account["oauthAccount"]["organizationUuid"],
        browser=SOURCE_STATUSLINE,
        account_email=account["oauthAccount"]["emailAddress"],
        fetched_at=now,
        usage={
            "five_hour": {"utilization": 40.0, "resets_at": later},
            "seven_day": {"utilization": 20.0, "resets_at": later},
        },
    )


def requests_per_hour(scenario: Scenario, hours: float) -> float:
    """Run one scenario for ``hours`` simulated hours; OAuth requests made per hour."""
    with (
        tempfile.TemporaryDirectory(prefix="cmbench") as tmp,
        common.oauth_login(Path(tmp)) as (env, upstream),
    ):
        claude_json = Path(env["HOME"]) / ".claude.json"
        body = json.loads((common.FIXTURES / "claude_json_cached_usage.json").read_text())
        if scenario.cache_every is None:
            del body["cachedUsageUtilization"]
        claude_json.write_text(json.dumps(body))
        with common.environ(env):
            store = Store()
            for second in range(0, int(hours * 3600), POLL_EVERY):
                now = START + timedelta(seconds=second)
                os.environ["CLAUDEMETER_NOW"] = now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
                if scenario.cache_every and second % scenario.cache_every == 0:
                    write_cache(claude_json, body, now)
                if scenario.statusline_every and second % scenario.statusline_every == 0:
                    store.put([statusline_reading(now)])
                refresh(store)
    return len(upstream.hits(USAGE)) / hours


def measure(hours: float = 6) -> list[Figure]:
    baseline_scenario, *others = SCENARIOS
    baseline = requests_per_hour(baseline_scenario, hours)
    goals = {SCENARIOS[1].name: "0 /h"}
    return [
        Figure(
            f"OAuth requests, {scenario.name}",
            requests_per_hour(scenario, hours),
            "/h",
            baseline_scenario.name,
            baseline,
            goals.get(scenario.name, ""),
        )
        for scenario in others
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=6.0, help="simulated hours per scenario")
    args = parser.parse_args()
    print(common.machine())
    print(common.table(measure(args.hours)))


if __name__ == "__main__":
    main()
