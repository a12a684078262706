"""Placeholders work wherever tmux expands formats, whenever they were set (SPEC section
7): a theme's own option read through ``#{E:…}`` (catppuccin's and dracula's option
names), ``status-format[]``, a ``status-right`` set after the plugin or by
``source-file``, a session's own ``status-right``; ``doctor`` flags any left raw."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from claudemeter.placeholders import has_raw
from tests.tmuxlab import (
    Lab,
    TmuxServer,
    attach,
    in_pane,
    lab_fixture,
    plugin_dir,
    status_line,
    until,
)

__all__ = ["lab_fixture"]


def config(entry: Path, before: str = "", after: str = "") -> str:
    return (
        "set -g status-right-length 100\n"
        "set -g status-interval 1\n"
        "set -g @claude_meter_serve off\n"
        "set -g @claude_meter_interval 1\n"
        f"{before}run-shell '{entry}'\n{after}"
    )


def shown(lab: Lab, isolated: Path, name: str, before: str = "", after: str = "") -> TmuxServer:
    inner = lab.server(name, config(plugin_dir(isolated) / "claudemeter.tmux", before, after))
    inner.cmd("new-session", "-d", "-s", "work", "-x", "120", "-y", "10")
    return attach(lab, inner)


def test_a_catppuccin_custom_module(lab: Lab, isolated: Path) -> None:
    """catppuccin v2 builds ``@catppuccin_status_<module>`` around
    ``#{E:@catppuccin_<module>_text}``, appended unexpanded; the user puts the module in
    status-right after the theme (and our plugin) loaded."""
    after = (
        "set -g @catppuccin_claude_icon 'C '\n"
        "set -g @catppuccin_claude_text ' #{claude_meter}'\n"
        "set -g @catppuccin_status_claude '#[fg=#11111b,bg=#cba6f7]#{@catppuccin_claude_icon}'\n"
        "set -ag @catppuccin_status_claude '#[fg=#cdd6f4,bg=#313244]'\n"
        "set -ag @catppuccin_status_claude '#{E:@catppuccin_claude_text}'\n"
        "set -g status-right '#{E:@catppuccin_status_claude} <'\n"
    )
    outer = shown(lab, isolated, "cm-ctp", after=after)
    assert until(lambda: "C  claude: setup <" in status_line(outer), 15), status_line(outer)


def test_a_dracula_status_right_appended_after_the_theme(lab: Lab, isolated: Path) -> None:
    """dracula writes status-right itself when it loads (``@dracula-plugins``); a module
    appended after TPM's run line, in dracula's colours, is rewritten by the loop."""
    before = "set -g @dracula-plugins 'time'\nset -g status-right '#[bg=#6272a4] 12:00 '\n"
    after = "set -ag status-right '#[fg=#282a36,bg=#8be9fd] #{claude_meter} <'\n"
    outer = shown(lab, isolated, "cm-drac", before=before, after=after)
    assert until(lambda: "12:00  claude: setup <" in status_line(outer), 15), status_line(outer)


def test_a_dracula_custom_plugin_script(lab: Lab, isolated: Path, tmp_path: Path) -> None:
    """``@dracula-plugins "custom:claude-meter.sh"`` puts ``#(<dracula>/scripts/
    claude-meter.sh)`` in status-right, coloured by ``@dracula-custom-plugin-colors``:
    the script is ``exec claude-meter status``."""
    script = tmp_path / "dracula" / "scripts" / "claude-meter.sh"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\nexec claude-meter status\n")
    script.chmod(0o755)
    after = f"set -g status-right '#[fg=#282a36,bg=#8be9fd] #({script}) <'\n"
    outer = shown(lab, isolated, "cm-dracs", after=after)
    assert until(lambda: "claude: setup <" in status_line(outer), 15), status_line(outer)


def test_status_format_and_a_status_right_set_later(lab: Lab, isolated: Path) -> None:
    after = "set -g 'status-format[0]' '#[align=left]F0 #{claude_meter_5h}#{claude_meter} F0'\n"
    outer = shown(lab, isolated, "cm-fmt", after=after)
    assert until(lambda: "F0 claude: setup F0" in status_line(outer), 15), status_line(outer)


def test_source_file_and_a_session_status_right(lab: Lab, isolated: Path, tmp_path: Path) -> None:
    outer = shown(lab, isolated, "cm-src", after="set -g status-right 'nothing yet'\n")
    inner = lab.servers[0]
    assert until(lambda: "nothing yet" in status_line(outer), 15), status_line(outer)
    later = tmp_path / "later.conf"
    later.write_text("set -g status-right 'R #{claude_meter} R'\n")
    inner.cmd("source-file", str(later))
    assert until(lambda: "R claude: setup R" in status_line(outer), 15), status_line(outer)
    # `tmux set status-right …` in a shell sets the session's own option, not the global
    inner.cmd("set-option", "-t", "work", "status-right", "S #{claude_meter} S")
    assert until(lambda: "S claude: setup S" in status_line(outer), 15), status_line(outer)
    assert not has_raw(inner.cmd("show-options", "-t", "work", "status-right"))


def doctor(server: TmuxServer) -> subprocess.CompletedProcess[str]:
    return in_pane(server, "claude-meter", "doctor")


def test_doctor_flags_raw_placeholders(lab: Lab, isolated: Path, state_dir: Path) -> None:
    bare = lab.server("cm-bare", "set -g @mytheme_claude_text ' #{claude_meter} '\n")
    bare.cmd("new-session", "-d", "-s", "work")
    report = doctor(bare)
    assert report.returncode == 1
    assert "@mytheme_claude_text show #{claude_meter…} but the plugin never ran" in report.stdout

    server = lab.server("cm-doc", config(plugin_dir(isolated) / "claudemeter.tmux"))
    server.cmd("new-session", "-d", "-s", "work")
    assert until(lambda: server.option("@claude_meter_loop_pid") != "", 10)
    assert "ok    tmux-loop" in doctor(server).stdout
    loop = int(server.option("@claude_meter_loop_pid"))
    os.kill(loop, signal.SIGSTOP)  # so nothing rewrites what follows
    try:
        server.cmd("set-option", "-g", "status-format[1]", "#{claude_meter_7d}")
        report = doctor(server)
        assert "raw #{claude_meter…} in status-format[1]" in report.stdout, report.stdout
        assert report.returncode == 1
    finally:
        os.kill(loop, signal.SIGCONT)
    assert until(lambda: not has_raw(server.option("status-format[1]")), 10)
    assert "raw #{claude_meter" not in doctor(server).stdout
