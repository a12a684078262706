"""The OAuth poller ``claude-meter serve`` runs beside the bridge: it keeps the Claude
Code login's reading fresh, so the status line and the guards never have to fetch.

It only asks :func:`claudemeter.refresh.refresh` often: that is single-flight and books
its own interval (:data:`claudemeter.refresh.OAUTH_INTERVAL`), so asking costs nothing
and a fetch happens only when one is due. Each login's outcome is logged when it fetched
or its failure changed, never its token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .model import redact
from .store import Store

#: How often the poller asks ``refresh``; it decides itself whether a fetch is due.
REFRESH_EVERY = 30.0


def keep_fresh(
    store: Store, stop: threading.Event, wake: threading.Event, log: Callable[[str], None]
) -> None:
    """Ask ``refresh`` every :data:`REFRESH_EVERY` seconds until ``stop`` is set;
    ``wake`` asks before the interval is up (the peers' round may have changed what is
    fresh). Never raises: a round that fails is logged as one line and the next round
    comes as usual."""
    from .refresh import refresh

    said: dict[str, str] = {}
    while True:
        try:
            results = refresh(store)
        except Exception as exc:  # a poller that dies silently is worse than one that says why
            log(f"refresh failed: {redact(str(exc))[:200]}")
        else:
            for result in results:
                if result.fetched or (not result.ok and said.get(result.key) != result.message):
                    log(f"{'ok' if result.ok else 'FAIL'} {result.key}: {result.message}")
                said[result.key] = result.message
        wake.wait(REFRESH_EVERY)
        wake.clear()
        if stop.is_set():
            return
