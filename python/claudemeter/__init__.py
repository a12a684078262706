"""claudemeter: one Claude account's server-side usage, shown in tmux and gated on."""

#: The one place the version is written: pyproject reads it, the OAuth source's
#: ``User-Agent`` and ``--version`` print it (no package-metadata look-up at run time).
__version__ = "0.1.0"
