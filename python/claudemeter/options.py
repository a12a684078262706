"""The ``@claude_meter_*`` tmux options: one table of names, defaults and meanings.

The README's options table is checked against :data:`OPTIONS` by a test, so the docs
cannot drift from what the code reads. Values arrive as tmux prints them
(``show-options -g``), so everything here is parsed leniently: a bad number falls back
to its default rather than breaking the status line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    name: str  # without the ``@claude_meter_`` prefix
    default: str
    help: str


#: What the README documents, in this order.
OPTIONS: tuple[Option, ...] = (
    Option(
        "key",
        "M",
        "popup key after the prefix (`M` replaces tmux's own `select-pane -M`,"
        " mark pane); `none` binds nothing",
    ),
    Option("interval", "5", "seconds between re-renders of the segment (ages and countdowns)"),
    Option("warn", "70", "percent at which a bucket turns the warn colour and notifies"),
    Option("crit", "90", "percent at which a bucket turns the crit colour and notifies"),
    Option(
        "threshold",
        "90",
        "cm-guard's default pause threshold (exported to new panes as `CLAUDEMETER_THRESHOLD`)",
    ),
    Option("account", "", "email (or its start) of the account to show; empty shows every account"),
    Option(
        "format",
        "{5h} {reset} · {7d} {pace} {paused}",
        "segment layout; the tokens are listed under the table",
    ),
    Option("colour_ok", "", "style under warn (a colour like `green`, or `fg=green,bold`)"),
    Option(
        "colour_warn",
        "fg=black,bg=yellow",
        "style at or over warn (a background reads on tmux's green bar and dark themes)",
    ),
    Option("colour_crit", "fg=white,bg=red,bold", "style at or over crit"),
    Option("colour_stale", "fg=black,bg=colour250", "style of the stale / login marker"),
    Option("notify", "on", "`display-message` on every client when a bucket crosses a tier"),
    Option("notify_desktop", "off", "also `notify-send` (when installed)"),
    Option("popup_width", "82", "popup width (cells or a percentage)"),
    Option("popup_height", "26", "popup height (cells or a percentage)"),
    Option("bin", "", "the `claude-meter` to run; empty: PATH, else the plugin's own venv"),
    Option("serve", "on", "start `claude-meter serve` (the bridge and pollers) if not running"),
    Option(
        "resume",
        "off",
        "`on`: at the reset, type the resume text into agents that stopped on the limit"
        " (`claude-meter resume`; needs `claude-meter install-hooks`)",
    ),
    Option("resume_text", "continue", "what the resume types into such a pane, then Enter"),
    Option("resume_stagger", "5", "seconds between two resumed panes"),
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


@dataclass(frozen=True)
class Settings:
    """The options the renderers and the loop use, typed, with defaults filled in."""

    warn: float = 70.0
    crit: float = 90.0
    threshold: float = 90.0
    account: str = ""
    format: str = DEFAULTS["format"]
    colour_ok: str = ""
    colour_warn: str = DEFAULTS["colour_warn"]
    colour_crit: str = DEFAULTS["colour_crit"]
    colour_stale: str = DEFAULTS["colour_stale"]
    interval: float = 5.0
    notify: bool = True
    notify_desktop: bool = False
    resume: bool = False
    resume_text: str = "continue"
    resume_stagger: float = 5.0

    @classmethod
    def from_options(cls, values: dict[str, str]) -> Settings:
        merged = {**DEFAULTS, **values}
        warn, crit = percent(merged["warn"]) or 70.0, percent(merged["crit"]) or 90.0
        if warn >= crit:  # tiers that cannot both be reached: the defaults, not a guess
            warn, crit = 70.0, 90.0
        return cls(
            warn=warn,
            crit=crit,
            threshold=number(merged["threshold"], 90.0),
            account=merged["account"].strip(),
            format=merged["format"] or DEFAULTS["format"],
            colour_ok=merged["colour_ok"],
            colour_warn=merged["colour_warn"],
            colour_crit=merged["colour_crit"],
            colour_stale=merged["colour_stale"],
            interval=max(1.0, number(merged["interval"], 5.0)),
            notify=_flag(merged["notify"]),
            notify_desktop=_flag(merged["notify_desktop"]),
            resume=_flag(merged["resume"]),
            resume_text=merged["resume_text"] or "continue",
            resume_stagger=min(3600.0, max(0.0, number(merged["resume_stagger"], 5.0))),
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


def _flag(text: str) -> bool:
    return text.strip().lower() not in ("off", "no", "false", "0", "")
