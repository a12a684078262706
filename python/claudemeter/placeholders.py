"""SPEC section 7's placeholders and what they become in tmux options.

``#{claude_meter}`` is not a tmux format variable: on its own it expands to nothing.
The plugin (``scripts/plugin.sh``, for ``status-left``/``status-right`` at load) and the
loop (every option, every round) rewrite each one into a format that shows the option
``tmux-loop`` keeps current, ``@claude_meter…`` — or, once the loop has missed its
deadline, the stalled marker ``@claude_meter_stalled`` holds (see :func:`stalled_format`).
A test checks that ``plugin.sh`` writes exactly what :func:`interpolate` writes.
"""

from __future__ import annotations

import re

from .status import PLACEHOLDERS

#: The ones that say "stalled" themselves; the others go blank beside them.
SAY_STALLED = frozenset({"claude_meter", "claude_meter_5h", "claude_meter_7d"})
#: The loop's deadline, epoch seconds: past it, the segment is not current.
UNTIL = "claude_meter_until"
STALLED = "claude_meter_stalled"

_RAW_RE = re.compile("#\\{(" + "|".join(sorted(PLACEHOLDERS, key=len, reverse=True)) + ")\\}")


def expansion(name: str) -> str:
    """What ``#{NAME}`` becomes: the pushed text, unless the loop is stalled."""
    stalled = f"#{{E:@{STALLED}}}"
    shown = stalled if name in SAY_STALLED else ""
    return f"#{{?{stalled},{shown},#{{E:@{name}}}}}"


def interpolate(text: str) -> str:
    """``text`` with every raw placeholder rewritten; unchanged when there is none."""
    return _RAW_RE.sub(lambda match: expansion(match.group(1)), text)


def has_raw(text: str) -> bool:
    """Whether ``text`` holds a placeholder tmux would show as nothing."""
    return _RAW_RE.search(text) is not None


def stalled_format(marker: str, respawn: str) -> str:
    """The value of ``@claude_meter_stalled``: empty while ``@claude_meter_until`` (set by
    the loop every round) is in the future or unset; past it, ``marker`` and ``respawn``.

    tmux evaluates it at every status redraw: ``%s`` is the current epoch second (the
    status line goes through strftime), and ``respawn`` is a ``#()`` job, run only when
    this branch is shown, that starts a new loop for the server (a live one keeps its
    lock, so the new one exits at once). ``marker`` and ``respawn`` must already be
    escaped for a conditional's branch (see :func:`branch`)."""
    until = f"#{{@{UNTIL}}}"
    # "now >= until" picks the marker: a tmux without #{e|…} (< 3.2) reads it as empty,
    # false, so it shows the segment rather than a stalled marker that never goes away.
    return f"#{{?{until},#{{?#{{e|>=:%s,{until}}},{marker}{respawn},}},}}"


def branch(text: str) -> str:
    """``text`` as literal text inside a ``#{?…,…,…}`` branch."""
    return text.replace("#", "##").replace(",", "#,").replace("}", "#}").replace("%", "%%")
