"""claudemeter: one Claude account's server-side usage, shown in tmux and gated on."""
