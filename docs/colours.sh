#!/usr/bin/env bash
# Renders docs/colours.png: the real plugin's segment (warn, crit, stale; one account and
# two) on tmux's default green bar and on a dark theme, in Debian's xterm under Xvfb.
# Needs: xvfb xterm x11-apps imagemagick fonts-dejavu-core, tmux, and claude-meter on PATH.
# Everything runs in a temporary HOME, state dirs and tmux sockets of its own.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/docs/colours.png}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
export HOME=$work TMUX_TMPDIR=$work CLAUDEMETER_NOW=2026-11-25T12:45:00.000Z TZ=UTC
display=:$((90 + RANDOM % 100))
Xvfb "$display" -screen 0 1000x170x24 >/dev/null 2>&1 &
sleep 1
reading() {  # EMAIL FIVE SEVEN FETCHED_AT
  printf '{"org_uuid":"%s","browser":"Claude Code","account_email":"%s","fetched_at":"%s",
  "usage":{"five_hour":{"utilization":%s,"resets_at":"2026-11-25T16:59:59Z"},
  "seven_day":{"utilization":%s,"resets_at":"2026-11-30T09:59:59Z"}}}' \
    "$(printf '%s' "$1" | cksum | cut -c1-8)-0000-4000-8000-000000000001" "$1" "$4" "$2" "$3"
}
CLAUDEMETER_STATE_DIR=$work/one claude-meter ingest - <<<"$(reading ada@example.com 75 93 2026-11-25T12:00:00.000Z)"
CLAUDEMETER_STATE_DIR=$work/two claude-meter ingest - <<<"[$(reading ada@example.com 42 61 2026-11-25T12:44:30.000Z),$(reading work@example.org 92 70 2026-11-25T12:44:40.000Z)]"
row=0
for state in one two; do
  for theme in default dark; do
    conf=$work/$state-$theme.conf
    {
      echo "set -g status-left '[$theme] '"
      echo "set -g status-right '#{claude_meter} | 12:45'"
      echo "set -g status-right-length 90"
      echo "set -g @claude_meter_serve off"
      echo "set -g @claude_meter_notify off"
      [ "$theme" = dark ] && echo "set -g status-style bg=colour235,fg=colour250"
      echo "run-shell '$here/claudemeter.tmux'"
    } >"$conf"
    CLAUDEMETER_STATE_DIR=$work/$state tmux -L "$state-$theme" -f "$conf" new -d -s s -x 110 -y 1
    DISPLAY=$display xterm -geometry 110x2+0+$((row * 42)) -fa 'DejaVu Sans Mono' -fs 10 \
      -bg black -fg white -e tmux -L "$state-$theme" attach -t s 2>/dev/null &
    row=$((row + 1))
  done
done
sleep 4
xwd -root -silent -display "$display" | /usr/bin/convert xwd:- -crop 940x165+0+0 "$out"
for state in one two; do for theme in default dark; do tmux -L "$state-$theme" kill-server; done; done
echo "wrote $out"
