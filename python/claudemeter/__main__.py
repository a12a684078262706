"""``python -m claudemeter``: the same as ``claude-meter``."""

import sys

from .cli import main

sys.exit(main())
