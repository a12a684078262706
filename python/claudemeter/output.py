"""What ``--json`` prints (``claude-meter --json``, ``history --json``, ``top --json``):
one JSON value, indented two spaces, non-ASCII kept as UTF-8, a newline after it."""

from __future__ import annotations

import json
import sys


def print_json(value: object) -> None:
    """Write ``value`` to stdout as the ``--json`` flags print it."""
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
