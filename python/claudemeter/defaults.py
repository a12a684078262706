"""Every default a user can change, in one table: the tmux options', the status
command's, cm-guard's and the hooks', the resumer's.

Each value is written here once. :mod:`claudemeter.options` (the ``@claude_meter_*``
options and their typed ``Settings``), the popup's colours and tiers, ``cm-guard``,
``claude-meter hook gate``, ``install-hooks``, ``resume``, ``status`` and pace's
projection take theirs from here; ``scripts/plugin.sh`` (POSIX sh, which must not start
Python) spells the few it needs, and a test holds it to :data:`TMUX_OPTIONS`.

Plain constants, no imports: the redraw and statusline paths load it.
"""

from __future__ import annotations

#: Percent at which a bucket turns the warn colour and notifies (``@claude_meter_warn``,
#: ``claude-meter status --warn``).
WARN = 70.0
#: Percent at which a bucket turns the crit colour and notifies (``@claude_meter_crit``,
#: ``claude-meter status --crit``).
CRIT = 90.0
#: Percent at or over which cm-guard pauses and holds, ``hook gate`` holds, ``resume``
#: holds back for a 7-day bucket and pace projects ``threshold_at`` (``--threshold``,
#: ``CLAUDEMETER_THRESHOLD``, ``@claude_meter_threshold``).
THRESHOLD = 90.0
#: The buckets cm-guard and ``hook gate`` watch (``cm-guard --bucket``; SPEC 4).
BUCKETS = ("five_hour", "seven_day", "seven_day_oauth_apps")
#: Seconds past a reset before cm-guard, ``hook gate`` and ``resume`` go on (``--grace``).
GRACE = 30.0
#: Seconds between two reads of the store by a running guard or a holding gate (``--poll``).
POLL = 5.0
#: Seconds between two re-renders of the segment by the tmux loop (``@claude_meter_interval``).
INTERVAL = 5.0
#: What ``resume`` types into a pane stopped on the limit (then Enter), and the seconds
#: between two panes (``@claude_meter_resume_text``/``_stagger``, ``resume --text``/``--stagger``).
RESUME_TEXT = "continue"
RESUME_STAGGER = 5.0


def _text(number: float) -> str:
    """A number as a tmux option holds it: ``70``, ``2.5``."""
    return f"{number:g}"


#: The ``@claude_meter_*`` options' defaults as tmux holds them (text), by name without
#: the ``@claude_meter_`` prefix, in the README's order.
TMUX_OPTIONS: dict[str, str] = {
    "key": "M",
    "interval": _text(INTERVAL),
    "warn": _text(WARN),
    "crit": _text(CRIT),
    "threshold": _text(THRESHOLD),
    "account": "",
    "format": "{5h} {reset} · {7d} {pace} {paused}",
    "colour_ok": "",
    "colour_warn": "fg=black,bg=yellow",
    "colour_crit": "fg=white,bg=red,bold",
    "colour_stale": "fg=black,bg=colour250",
    "notify": "on",
    "notify_desktop": "off",
    "popup_width": "82",
    "popup_height": "26",
    "bin": "",
    "serve": "on",
    "resume": "off",
    "resume_text": RESUME_TEXT,
    "resume_stagger": _text(RESUME_STAGGER),
}
