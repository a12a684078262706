"""Every default a user can change has one owner (claudemeter/defaults.py): the plugin
script, the tmux options, the status command, cm-guard, the hooks, the resumer, the
popup and pace agree with it."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from claudemeter import defaults, pace
from claudemeter.guard import REFRESH_AFTER, parse_options
from claudemeter.history import HistoryPoint
from claudemeter.hooks import GateOptions
from claudemeter.options import DEFAULTS, OPTIONS, Settings
from claudemeter.popup import Look
from claudemeter.refresh import OAUTH_INTERVAL
from claudemeter.resume import ResumeOptions

PLUGIN = Path(__file__).resolve().parents[1] / "scripts" / "plugin.sh"
#: The plugin's own bookkeeping options (not the user's): read with an empty default.
PLUGIN_STATE = {"build", "loop_pid", "bound_key"}
#: Options the plugin acts on only when the user set one (cm-guard applies its own default).
ONLY_WHEN_SET = {"threshold"}


def plugin_reads() -> list[tuple[str, str]]:
    """Every ``opt NAME DEFAULT`` call in scripts/plugin.sh, its quotes undone."""
    found = re.findall(r"\$\(opt (\w+) ('[^']*'|\S+?)\)", PLUGIN.read_text())
    assert found, "no opt calls found: the pattern no longer matches plugin.sh"
    return [(name, default.strip("'")) for name, default in found]


def test_the_plugin_script_reads_the_tables_defaults() -> None:
    reads = plugin_reads()
    for name, default in reads:
        if name in PLUGIN_STATE or name in ONLY_WHEN_SET:
            assert default == "", (name, default)
        else:
            assert name in defaults.TMUX_OPTIONS, f"plugin.sh reads an unknown option {name}"
            assert default == defaults.TMUX_OPTIONS[name], (name, default)
    # the ones whose default the plugin itself applies are all checked above
    assert {"key", "popup_width", "popup_height", "serve"} <= {name for name, _ in reads}


def test_the_tmux_options_and_settings_take_the_tables_defaults() -> None:
    assert DEFAULTS == defaults.TMUX_OPTIONS
    assert [option.name for option in OPTIONS] == list(defaults.TMUX_OPTIONS)
    unset = Settings()
    assert unset == Settings.from_options({})
    assert (unset.warn, unset.crit, unset.threshold) == (
        defaults.WARN,
        defaults.CRIT,
        defaults.THRESHOLD,
    )
    assert (unset.interval, unset.resume_text, unset.resume_stagger) == (
        defaults.INTERVAL,
        defaults.RESUME_TEXT,
        defaults.RESUME_STAGGER,
    )
    assert (unset.notify, unset.notify_desktop, unset.resume) == (True, False, False)
    look = Look()
    assert (look.warn, look.crit, look.threshold) == (unset.warn, unset.crit, unset.threshold)


def test_guard_gate_and_resume_share_threshold_grace_and_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SPEC 4: ``hook gate`` takes ``--threshold``/``--grace`` like cm-guard, same defaults."""
    monkeypatch.delenv("CLAUDEMETER_THRESHOLD", raising=False)
    guard = parse_options(["--check"])
    gate, resume = GateOptions(), ResumeOptions()
    assert guard.threshold == gate.threshold == resume.threshold == defaults.THRESHOLD
    assert guard.grace == gate.grace == resume.grace == defaults.GRACE
    assert guard.poll == gate.poll == defaults.POLL
    assert guard.buckets == defaults.BUCKETS
    assert (resume.text, resume.stagger) == (defaults.RESUME_TEXT, defaults.RESUME_STAGGER)


def test_pace_projects_to_the_guards_default_threshold() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    points = [
        HistoryPoint(t=now.timestamp() - 600 + 60 * i, used={"five_hour": 40.0 + i}, resets={})
        for i in range(10)
    ]
    found = pace.compute(points, "five_hour", now)
    assert found is not None and found.threshold == defaults.THRESHOLD


def test_a_guard_asks_for_a_refresh_at_the_pollers_interval() -> None:
    """cm-guard keeps refresh's imports (the OAuth client) out of its process, so it
    spells the interval; it must be the OAuth source's."""
    assert REFRESH_AFTER == OAUTH_INTERVAL
