#!/bin/sh
# claudemeter's tmux plugin entry. TPM runs every *.tmux file at a plugin's root
# (synchronously, output discarded); by hand: run-shell /path/to/claudemeter.tmux.
# It only finds its own directory from $0 and hands over to scripts/plugin.sh, which
# never waits on anything slow.
plugin_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd) || exit 1
exec /bin/sh "$plugin_dir/scripts/plugin.sh" "$plugin_dir"
