#!/bin/sh
# First load without claude-meter on PATH: build the plugin's own virtualenv in the
# background (TPM only clones; it never runs pip), then load the plugin again.
# Started detached by plugin.sh, which holds .venv.installing/ as the lock.
set -u
plugin_dir=$1
venv=$plugin_dir/.venv
log=$plugin_dir/install.log
python=${CLAUDEMETER_PYTHON:-python3}

{
  "$python" -m venv "$venv" &&
    "$venv/bin/python" -m pip install --disable-pip-version-check "$plugin_dir" &&
    : >"$venv/.claudemeter-ready"
} >"$log" 2>&1
status=$?
rm -rf "$plugin_dir/.venv.installing"
if [ "$status" -eq 0 ]; then
  exec "$plugin_dir/claudemeter.tmux"
fi
tmux -u set-option -g @claude_meter "claude: install failed, see $log"
