"""Where readings come from: each module turns one upstream into snapshots.

The OAuth source's booking statuses live here, not in ``sources.oauth``: the status
segment and every gate read them on their hot paths and must not import an HTTP
client's module to learn four words.
"""

STATUS_OK = "ok"
STATUS_LOGIN = "login"  # expired, logged out or rejected login: the user must run `claude`
STATUS_BACKOFF = "backoff"  # rate limited
STATUS_ERROR = "error"
