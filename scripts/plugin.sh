#!/bin/sh
# Loads claudemeter into the tmux server that runs it (see claudemeter.tmux).
#
# Fast by design, because tmux waits for it while starting: a handful of tmux calls
# (two reads, then a few writes; the README counts them) and some sed. The slow parts
# run detached: the venv install or rebuild (scripts/install.sh), `claude-meter serve`
# (the bridge and pollers; one per state directory, a second one exits) and
# `claude-meter tmux-loop` (one per server; it pushes the rendered segment into
# @claude_meter* options, so a status redraw starts no process).
#
# Updates: the venv's ready mark holds the fingerprint of the source it was built from
# (the git commit, else a checksum of pyproject.toml and python/); when the source
# changes (TPM's update is a git pull) the venv is rebuilt in the background.
# @claude_meter_build notes the fingerprint the running loop was started under, and the
# loop publishes its pid in @claude_meter_loop_pid: when the fingerprint differs from the
# plugin's, the old loop is stopped and a new one started on the new code.
#
# tmux is always called with -u: under LC_ALL=C it would otherwise print "·" as "_"
# and we would write the mangled status line back.
set -u
plugin_dir=$1

# Every @claude_meter* option in one call; values with spaces come back quoted.
options=$(tmux -u show-options -g 2>/dev/null | LC_ALL=C grep '^@claude_meter') || options=''

# A DEFAULT below is python/claudemeter/defaults.py's (tests/test_defaults.py checks).
opt() {  # opt NAME DEFAULT: one option's value, unquoted, else DEFAULT
  value=$(printf '%s\n' "$options" | LC_ALL=C sed -n "s/^@claude_meter_$1 //p" |
    LC_ALL=C sed -e 's/^"\(.*\)"$/\1/' -e 's/\\\(.\)/\1/g' -e "s/^'\(.*\)'\$/\1/")
  if [ -n "$value" ]; then printf '%s' "$value"; else printf '%s' "$2"; fi
}

shell_quote() {  # 'text' for sh, with embedded single quotes kept
  printf "'%s'" "$(printf '%s' "$1" | LC_ALL=C sed "s/'/'\\\\''/g")"
}

no_format() {  # text tmux format-expands (run-shell): a # stays a #
  printf '%s' "$1" | LC_ALL=C sed 's/#/##/g'
}

tmux_quote() {  # "text" for tmux's command parser (the popup command is also a format)
  printf '"%s"' "$(printf '%s' "$1" | LC_ALL=C sed -e 's/[\\"$]/\\&/g' -e 's/#/##/g')"
}

interpolate() {  # SPEC section 7 placeholders -> what tmux-loop keeps current, or the
  # stalled marker once it misses its deadline: exactly python/claudemeter/placeholders.py
  s='#{E:@claude_meter_stalled}'
  printf '%s' "$1" | LC_ALL=C sed \
    -e "s/#{claude_meter}/#{?$s,$s,#{E:@claude_meter}}/g" \
    -e "s/#{claude_meter_5h}/#{?$s,$s,#{E:@claude_meter_5h}}/g" \
    -e "s/#{claude_meter_7d}/#{?$s,$s,#{E:@claude_meter_7d}}/g" \
    -e "s/#{claude_meter_reset}/#{?$s,,#{E:@claude_meter_reset}}/g" \
    -e "s/#{claude_meter_paused}/#{?$s,,#{E:@claude_meter_paused}}/g"
}

say() {  # a status-line message from the plugin: no loop deadline while it shows
  tmux -u set-option -gq @claude_meter "$1" \; set-option -gqu @claude_meter_until
}

fingerprint() {  # which source this is: its git commit, else a checksum of the code
  here=$(CDPATH='' cd -- "$plugin_dir" && pwd -P) || return 1
  if found=$(git -C "$here" rev-parse --show-toplevel HEAD 2>/dev/null) &&
    [ "$(printf '%s\n' "$found" | LC_ALL=C sed -n 1p)" = "$here" ]; then
    printf '%s\n' "$found" | LC_ALL=C sed -n 2p  # our own checkout, not a dotfiles repo
    return 0
  fi
  (cd "$here" && find pyproject.toml python -type f \( -name '*.py' -o -name '*.toml' \) 2>/dev/null |
    LC_ALL=C sort | xargs cat | cksum | LC_ALL=C sed 's/ /-/g')
}

find_bin() {
  bin=$(opt bin '')
  if [ -n "$bin" ]; then
    [ -x "$bin" ] && return 0
    say "claude: @claude_meter_bin not executable"
    return 1
  fi
  bin=$(command -v claude-meter 2>/dev/null) && return 0
  bin=$plugin_dir/.plugin-venv/bin/claude-meter
  ready=$(cat "$plugin_dir/.plugin-venv/.claudemeter-ready" 2>/dev/null) || ready=''
  [ -x "$bin" ] && [ "$ready" = "$build" ] && return 0
  install_in_background  # never built, or built from older source: (re)build it
  return 1
}

install_in_background() {
  lock=$plugin_dir/.plugin-venv.installing
  if ! mkdir "$lock" 2>/dev/null; then
    pid=$(cat "$lock/pid" 2>/dev/null) || pid=''
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      say "claude: installing"
      return 0
    fi
    rm -rf "$lock"  # an install that died (reboot, kill): start again
    mkdir "$lock" 2>/dev/null || return 0
  fi
  say "claude: installing"
  nohup /bin/sh "$plugin_dir/scripts/install.sh" "$plugin_dir" "$build" \
    </dev/null >/dev/null 2>&1 &
  echo "$!" >"$lock/pid"
}

stop_old_loop() {  # the loop started under another build: stop it, print its pid
  pid=$(opt loop_pid '')
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  case "$(ps -ww -o args= -p "$pid" 2>/dev/null)" in
    *tmux-loop*) kill "$pid" 2>/dev/null && printf '%s' "$pid" ;;
  esac  # else it is gone, and the number may be someone else's by now
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

build=$(fingerprint) || build=''
old_loop=''
[ "$(opt build '')" = "$build" ] || old_loop=$(stop_old_loop)
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
  # Give the key back what it had before we took it (tmux's own M: select-pane -M).
  was=$(tmux -u show-options -gqv @claude_meter_key_was)
  tmux unbind-key "$old_key" 2>/dev/null
  [ -z "$was" ] || tmux -u if-shell -F 1 "$was" 2>/dev/null  # if-shell parses it
  tmux set-option -gqu @claude_meter_key_was \; set-option -gqu @claude_meter_bound_key
fi
case $bin in
  *'#'*)  # tmux versions differ on expanding a popup's command: keep the # out of it
    tmux set-option -g @claude_meter_popup_bin "$bin"
    # shellcheck disable=SC2016 # expanded by the popup's own shell when it opens, not here
    popup='exec "$(tmux show-options -gv @claude_meter_popup_bin)" show --watch' ;;
  *) popup="$run show --watch" ;;
esac
if [ "$key" != none ] && [ "$old_key" != "$key" ]; then
  # First time on this key: note its binding (list-keys prints it as a command).
  was=$(tmux -u list-keys -T prefix "$key" 2>/dev/null) || was=''
  tmux -u set-option -gq @claude_meter_key_was "$was"
fi
if [ "$key" = none ]; then
  :  # nothing bound; the old key got its binding back above
elif tmux list-commands display-popup >/dev/null 2>&1; then
  case "$width$height" in
    *[!0-9]*)  # percentages always fit
      tmux bind-key "$key" display-popup -E -w "$width" -h "$height" "$popup" \; \
        set-option -g @claude_meter_bound_key "$key" ;;
    *)  # tmux refuses a popup larger than the client: fill a smaller one instead
      quoted=$(tmux_quote "$popup")
      tmux bind-key "$key" if-shell -F \
        "#{||:#{e|<:#{client_width},$width},#{e|<:#{client_height},$height}}" \
        "display-popup -E -w 100% -h 100% $quoted" \
        "display-popup -E -w $width -h $height $quoted" \; \
        set-option -g @claude_meter_bound_key "$key" ;;
  esac
else  # tmux < 3.2: no popups, a split instead
  tmux bind-key "$key" split-window -v -l "$height" "$popup" \; \
    set-option -g @claude_meter_bound_key "$key"
fi

# One loop per server: a second one finds the first's lock and exits at once. A loop
# just stopped for a new build still holds that lock for a moment: wait it out.
loop="exec $run tmux-loop </dev/null >/dev/null 2>&1"
[ -z "$old_loop" ] || loop="while kill -0 $old_loop 2>/dev/null; do sleep 1; done; $loop"
tmux set-option -g @claude_meter_build "$build" \; run-shell -b "$(no_format "$loop")"
