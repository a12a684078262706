#!/bin/sh
# Loads claudemeter into the tmux server that runs it (see claudemeter.tmux).
#
# Fast by design, because tmux waits for it while starting: three tmux calls and some
# sed. The slow parts run detached: the first-load venv install (scripts/install.sh),
# `claude-meter serve` (the bridge and pollers, which refuses to run twice per machine)
# and `claude-meter tmux-loop` (one per server; it pushes the rendered segment into
# @claude_meter* options, so a status redraw starts no process).
#
# tmux is always called with -u: under LC_ALL=C it would otherwise print "·" as "_"
# and we would write the mangled status line back.
set -u
plugin_dir=$1

# Every @claude_meter* option in one call; values with spaces come back quoted.
options=$(tmux -u show-options -g 2>/dev/null | LC_ALL=C grep '^@claude_meter') || options=''

opt() {  # opt NAME DEFAULT: one option's value, unquoted, else DEFAULT
  value=$(printf '%s\n' "$options" | LC_ALL=C sed -n "s/^@claude_meter_$1 //p" |
    LC_ALL=C sed -e 's/^"\(.*\)"$/\1/' -e 's/\\\(.\)/\1/g' -e "s/^'\(.*\)'\$/\1/")
  if [ -n "$value" ]; then printf '%s' "$value"; else printf '%s' "$2"; fi
}

shell_quote() {  # 'text' for sh, with embedded single quotes kept
  printf "'%s'" "$(printf '%s' "$1" | LC_ALL=C sed "s/'/'\\\\''/g")"
}

tmux_quote() {  # "text" for tmux's command parser (the popup command is also a format)
  printf '"%s"' "$(printf '%s' "$1" | LC_ALL=C sed -e 's/[\\"$]/\\&/g' -e 's/#/##/g')"
}

interpolate() {  # SPEC section 7 placeholders -> the options tmux-loop keeps current
  printf '%s' "$1" | LC_ALL=C sed \
    -e 's/#{claude_meter}/#{E:@claude_meter}/g' \
    -e 's/#{claude_meter_5h}/#{E:@claude_meter_5h}/g' \
    -e 's/#{claude_meter_7d}/#{E:@claude_meter_7d}/g' \
    -e 's/#{claude_meter_reset}/#{E:@claude_meter_reset}/g' \
    -e 's/#{claude_meter_paused}/#{E:@claude_meter_paused}/g'
}

find_bin() {
  bin=$(opt bin '')
  if [ -n "$bin" ]; then
    [ -x "$bin" ] && return 0
    tmux -u set-option -gq @claude_meter "claude: @claude_meter_bin not executable"
    return 1
  fi
  bin=$(command -v claude-meter 2>/dev/null) && return 0
  bin=$plugin_dir/.venv/bin/claude-meter
  [ -x "$bin" ] && [ -f "$plugin_dir/.venv/.claudemeter-ready" ] && return 0
  install_in_background
  return 1
}

install_in_background() {
  lock=$plugin_dir/.venv.installing
  if ! mkdir "$lock" 2>/dev/null; then
    pid=$(cat "$lock/pid" 2>/dev/null) || pid=''
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      tmux -u set-option -gq @claude_meter "claude: installing"
      return 0
    fi
    rm -rf "$lock"  # an install that died (reboot, kill): start again
    mkdir "$lock" 2>/dev/null || return 0
  fi
  tmux -u set-option -gq @claude_meter "claude: installing"
  nohup /bin/sh "$plugin_dir/scripts/install.sh" "$plugin_dir" </dev/null >/dev/null 2>&1 &
  echo "$!" >"$lock/pid"
}

# Placeholders first: even while installing, the status line says what is going on.
lines=$(tmux -u show-options -gv status-left \; show-options -gv status-right 2>/dev/null)
left=$(printf '%s\n' "$lines" | LC_ALL=C sed -n 1p)
right=$(printf '%s\n' "$lines" | LC_ALL=C sed -n 2p)
new_left=$(interpolate "$left")
new_right=$(interpolate "$right")
[ "$new_left" = "$left" ] || tmux -u set-option -g status-left "$new_left"
[ "$new_right" = "$right" ] || tmux -u set-option -g status-right "$new_right"
printf '%s\n' "$options" | LC_ALL=C grep -q '^@claude_meter ' ||
  tmux -u set-option -gq @claude_meter "claude: starting"

# cm-guard reads its default threshold from the environment: new panes inherit it.
threshold=$(opt threshold '')
[ -z "$threshold" ] || tmux set-environment -g CLAUDEMETER_THRESHOLD "$threshold"

find_bin || exit 0
run=$(shell_quote "$bin")

if [ "$(opt serve on)" = on ]; then
  if command -v setsid >/dev/null 2>&1; then detach=setsid; else detach=''; fi
  # shellcheck disable=SC2086 # $detach is empty or one word
  (nohup $detach "$bin" serve </dev/null >/dev/null 2>&1 &)
fi

key=$(opt key M)
old_key=$(opt bound_key '')
width=$(opt popup_width 82)
height=$(opt popup_height 26)
if [ -n "$old_key" ] && [ "$old_key" != "$key" ]; then
  tmux unbind-key "$old_key" 2>/dev/null
fi
popup="$run show --watch"
if [ "$key" = none ]; then
  tmux set-option -gqu @claude_meter_bound_key
elif tmux list-commands display-popup >/dev/null 2>&1; then
  case "$width$height" in
    *[!0-9]*)  # percentages always fit
      tmux bind-key "$key" display-popup -E -w "$width" -h "$height" "$popup" ;;
    *)  # tmux refuses a popup larger than the client: fill a smaller one instead
      quoted=$(tmux_quote "$popup")
      tmux bind-key "$key" if-shell -F \
        "#{||:#{e|<:#{client_width},$width},#{e|<:#{client_height},$height}}" \
        "display-popup -E -w 100% -h 100% $quoted" \
        "display-popup -E -w $width -h $height $quoted" ;;
  esac
  tmux set-option -g @claude_meter_bound_key "$key"
else  # tmux < 3.2: no popups, a split instead
  tmux bind-key "$key" split-window -v -l "$height" "$popup" \; \
    set-option -g @claude_meter_bound_key "$key"
fi

# One loop per server: a second one finds the first's lock and exits at once.
tmux run-shell -b "exec $run tmux-loop </dev/null >/dev/null 2>&1"
