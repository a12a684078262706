#!/bin/sh
# First load without claude-meter on PATH, or the plugin's source changed since the
# last build (a TPM update): build the plugin's own virtualenv in the background (TPM
# only clones and pulls; it never runs pip), then load the plugin again. Started
# detached by plugin.sh, which holds .plugin-venv.installing/ as the lock and passes the
# source's fingerprint; the ready mark records it, so the next load knows what it has.
set -u
plugin_dir=$1
build=${2:-}
venv=$plugin_dir/.plugin-venv  # never ./.venv: a developer's clone may be the plugin
log=$plugin_dir/install.log
python=${CLAUDEMETER_PYTHON:-python3}

rm -f "$venv/.claudemeter-ready"
# pip (>= 20.3) always reinstalls a local directory, so a rebuild takes the new code.
{
  "$python" -m venv "$venv" &&
    "$venv/bin/python" -m pip install --disable-pip-version-check "$plugin_dir" &&
    printf '%s\n' "$build" >"$venv/.claudemeter-ready"
} >"$log" 2>&1
status=$?
rm -rf "$plugin_dir/.plugin-venv.installing"
if [ "$status" -eq 0 ]; then
  exec "$plugin_dir/claudemeter.tmux"
fi
tmux -u set-option -g @claude_meter "claude: install failed, see $log" \; \
  set-option -gqu @claude_meter_until
