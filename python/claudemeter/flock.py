"""An exclusive ``flock(2)`` on a lock file: what the store's writers serialise on.

Standard library only, because the statusline takes it on every call Claude Code makes:
python-filelock 4 costs tens of milliseconds of imports (``decimal``, ``logging``,
``inspect``...) before the lock is even asked for. The same kernel lock as filelock's
``UnixFileLock``, so processes of either kind exclude each other on one file.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

#: The longest sleep between two tries while another process holds the lock (seconds);
#: python-filelock polls every 0.05 s.
MAX_POLL = 0.02


class LockTimeout(Exception):
    """The lock was still held by another process when ``timeout`` ran out."""


class FileLock:
    """``with FileLock(path, timeout):``: held from ``acquire`` until ``release`` (or the
    process's end: the kernel drops it with the descriptor). The file is created 0600 and
    never followed through a symlink; ``timeout`` is in seconds (0: one try)."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises :class:`LockTimeout`, or ``OSError`` when the file cannot be opened."""
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o600)
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.close(fd)
                    raise LockTimeout(f"{self.path} is held by another process") from None
                time.sleep(min(pause, left))
                pause = min(pause * 2, MAX_POLL)
            except BaseException:
                os.close(fd)
                raise
            else:
                self._fd = fd
                return

    @property
    def fd(self) -> int:
        """The lock file's descriptor while held (read and write through it)."""
        if self._fd is None:
            raise ValueError(f"{self.path} is not held")
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
