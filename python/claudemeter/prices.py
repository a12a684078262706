"""The one price table: what a model's tokens cost, to price transcripts of sessions that
do not run our statusline (those that do report Claude Code's own ``total_cost_usd``).

Prices are US dollars per million tokens, list prices for the API from Anthropic's
pricing page (https://platform.claude.com/docs/en/about-claude/pricing, as read in
2026-11). They are APPROXIMATE on purpose: a subscription does not bill by token, and
the table only has to weigh one session against another the way the plan roughly
does. Cache writes are priced at 1.25x input for the 5-minute cache and 2x for the
1-hour cache (``usage.cache_creation.ephemeral_1h_input_tokens``), cache reads at the
model's own rate. A model the table does not know is priced as
a Sonnet: wrong in the absolute, still a fair weight.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .model import json_number


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float

    @property
    def cache_write(self) -> float:
        """The 5-minute cache; the 1-hour cache is :attr:`cache_write_1h`."""
        return self.input * 1.25

    @property
    def cache_write_1h(self) -> float:
        return self.input * 2.0


#: (family, lowest version, price): the first row whose family matches and whose
#: version is at least the lowest wins, so newer rows come first.
TABLE: tuple[tuple[str, float, Price], ...] = (
    ("fable", 5.1, Price(10.0, 50.0, 0.25)),
    ("fable", 0.0, Price(10.0, 50.0, 1.0)),
    ("mythos", 5.1, Price(10.0, 50.0, 0.25)),
    ("mythos", 0.0, Price(10.0, 50.0, 1.0)),
    ("opus", 5.5, Price(4.0, 20.0, 0.20)),
    ("opus", 4.5, Price(5.0, 25.0, 0.50)),
    ("opus", 0.0, Price(15.0, 75.0, 1.50)),
    ("sonnet", 5.5, Price(2.0, 10.0, 0.10)),
    ("sonnet", 5.0, Price(2.0, 10.0, 0.20)),
    ("sonnet", 0.0, Price(3.0, 15.0, 0.30)),
    ("haiku", 5.5, Price(0.10, 0.50, 0.01)),
    ("haiku", 4.0, Price(1.0, 5.0, 0.10)),
    ("haiku", 3.5, Price(0.80, 4.0, 0.08)),
    ("haiku", 0.0, Price(0.25, 1.25, 0.03)),
)
UNKNOWN = Price(3.0, 15.0, 0.30)

# claude-opus-4-5-20251101, claude-sonnet-5-5, claude-3-5-haiku-20241022
_NEW_RE = re.compile(r"(fable|mythos|opus|sonnet|haiku)-(\d+)(?:[-.](\d)(?!\d))?")
_OLD_RE = re.compile(r"claude-(\d+)(?:-(\d))?-(opus|sonnet|haiku)")


def price(model: str | None) -> Price | None:
    """The price of ``model`` (an API model id); None for a message no model made
    (Claude Code's ``<synthetic>``)."""
    if not model or model.startswith("<"):
        return None
    name = model.lower()
    family, version = None, 0.0
    if old := _OLD_RE.search(name):
        family, version = old.group(3), float(f"{old.group(1)}.{old.group(2) or 0}")
    elif new := _NEW_RE.search(name):
        family, version = new.group(1), float(f"{new.group(2)}.{new.group(3) or 0}")
    for row_family, lowest, found in TABLE:
        if row_family == family and version >= lowest:
            return found
    return UNKNOWN


def cost(model: str | None, usage: Mapping[str, Any]) -> float:
    """USD for one message's ``usage`` (``input_tokens``, ``output_tokens``,
    ``cache_creation_input_tokens``, ``cache_read_input_tokens``); 0 when unknown."""
    found = price(model)
    if found is None:
        return 0.0

    split = usage.get("cache_creation")
    hour = _tokens(split, "ephemeral_1h_input_tokens") if isinstance(split, Mapping) else 0.0
    writes = _tokens(usage, "cache_creation_input_tokens")
    return (
        _tokens(usage, "input_tokens") * found.input
        + _tokens(usage, "output_tokens") * found.output
        + max(writes - hour, 0.0) * found.cache_write
        + min(hour, writes) * found.cache_write_1h
        + _tokens(usage, "cache_read_input_tokens") * found.cache_read
    ) / 1e6


def _tokens(usage: Mapping[str, Any], key: str) -> float:
    value = json_number(usage.get(key))
    return value if value is not None and value > 0 else 0.0
