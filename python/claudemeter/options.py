"""The ``@claude_meter_*`` tmux options: one table of names and meanings, with the
defaults :mod:`claudemeter.defaults` owns.

The README's options table is checked against :data:`OPTIONS` by a test, so the docs
cannot drift from what the code reads. Values arrive as tmux prints them
(``show-options -g``), so everything here is parsed leniently: a bad number falls back
to its default rather than breaking the status line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from . import defaults


@dataclass(frozen=True)
class Option:
    name: str  # without the ``@claude_meter_`` prefix
    default: str
    help: str


def _option(name: str, help: str) -> Option:
    """An option with its default from :data:`claudemeter.defaults.TMUX_OPTIONS`."""
    return Option(name, defaults.TMUX_OPTIONS[name], help)


#: What the README documents, in this order.
OPTIONS: tuple[Option, ...] = (
    _option(
        "key",
        "popup key after the prefix (`M` replaces tmux's own `select-pane -M`,"
        " mark pane); `none` binds nothing",
    ),
    _option("interval", "seconds between re-renders of the segment (ages and countdowns)"),
    _option("warn", "percent at which a bucket turns the warn colour and notifies"),
    _option("crit", "percent at which a bucket turns the crit colour and notifies"),
    _option(
        "threshold",
        "cm-guard's default pause threshold (exported to new panes as `CLAUDEMETER_THRESHOLD`)",
    ),
    _option("account", "email (or its start) of the account to show; empty shows every account"),
    _option(
        "format",
        "segment layout; the tokens are listed under the table",
    ),
    _option("colour_ok", "style under warn (a colour like `green`, or `fg=green,bold`)"),
    _option(
        "colour_warn",
        "style at or over warn (a background reads on tmux's green bar and dark themes)",
    ),
    _option("colour_crit", "style at or over crit"),
    _option("colour_stale", "style of the stale / login marker"),
    _option("notify", "`display-message` on every client when a bucket crosses a tier"),
    _option("notify_desktop", "also `notify-send` (when installed)"),
    _option("popup_width", "popup width (cells or a percentage)"),
    _option("popup_height", "popup height (cells or a percentage)"),
    _option("bin", "the `claude-meter` to run; empty: PATH, else the plugin's own venv"),
    _option("serve", "start `claude-meter serve` (the bridge and pollers) if not running"),
    _option(
        "resume",
        "`on`: at the reset, type the resume text into agents that stopped on the limit"
        " (`claude-meter resume`; needs `claude-meter install-hooks`)",
    ),
    _option("resume_text", "what the resume types into such a pane, then Enter"),
    _option("resume_stagger", "seconds between two resumed panes"),
)

DEFAULTS: dict[str, str] = {option.name: option.default for option in OPTIONS}

_LINE_RE = re.compile(r"^@claude_meter_(\w+)\s+(.*)$")


def unquote(value: str) -> str:
    """Undo tmux's quoting of an option value in ``show-options`` output."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    # tmux escapes inside either quote and bare (`\~5`, `\#`), as plugin.sh's opt() undoes
    return re.sub(r"\\(.)", r"\1", value)


def parse_show_options(text: str) -> dict[str, str]:
    """``@claude_meter_*`` entries of ``tmux show-options -g`` output, by short name."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE_RE.match(line)
        if match:
            found[match.group(1)] = unquote(match.group(2))
    return found


def _flag(text: str) -> bool:
    return text.strip().lower() not in ("off", "no", "false", "0", "")


@dataclass(frozen=True)
class Settings:
    """The options the renderers and the loop use, typed, with defaults filled in."""

    warn: float = defaults.WARN
    crit: float = defaults.CRIT
    threshold: float = defaults.THRESHOLD
    account: str = DEFAULTS["account"]
    format: str = DEFAULTS["format"]
    colour_ok: str = DEFAULTS["colour_ok"]
    colour_warn: str = DEFAULTS["colour_warn"]
    colour_crit: str = DEFAULTS["colour_crit"]
    colour_stale: str = DEFAULTS["colour_stale"]
    interval: float = defaults.INTERVAL
    notify: bool = _flag(DEFAULTS["notify"])
    notify_desktop: bool = _flag(DEFAULTS["notify_desktop"])
    resume: bool = _flag(DEFAULTS["resume"])
    resume_text: str = defaults.RESUME_TEXT
    resume_stagger: float = defaults.RESUME_STAGGER

    @classmethod
    def from_options(cls, values: dict[str, str]) -> Settings:
        merged = {**DEFAULTS, **values}
        warn = percent(merged["warn"]) or defaults.WARN
        crit = percent(merged["crit"]) or defaults.CRIT
        if warn >= crit:  # tiers that cannot both be reached: the defaults, not a guess
            warn, crit = defaults.WARN, defaults.CRIT
        return cls(
            warn=warn,
            crit=crit,
            threshold=number(merged["threshold"], defaults.THRESHOLD),
            account=merged["account"].strip(),
            format=merged["format"] or DEFAULTS["format"],
            colour_ok=merged["colour_ok"],
            colour_warn=merged["colour_warn"],
            colour_crit=merged["colour_crit"],
            colour_stale=merged["colour_stale"],
            interval=max(1.0, number(merged["interval"], defaults.INTERVAL)),
            notify=_flag(merged["notify"]),
            notify_desktop=_flag(merged["notify_desktop"]),
            resume=_flag(merged["resume"]),
            resume_text=merged["resume_text"] or defaults.RESUME_TEXT,
            resume_stagger=min(
                3600.0, max(0.0, number(merged["resume_stagger"], defaults.RESUME_STAGGER))
            ),
        )


def percent(text: str) -> float | None:
    """A tier as a person writes it (``70``, ``70%``); None unless 0 < value <= 100.

    One rule for both doors: ``claude-meter status --warn`` refuses what this refuses,
    and a tmux option holding it falls back to its default."""
    value = number(text, math.nan)
    return value if 0 < value <= 100 else None


def number(text: str, default: float) -> float:
    """A number as a person writes it in an option (``85``, ``85%``); ``default`` if not."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        return default
    return value if math.isfinite(value) else default
