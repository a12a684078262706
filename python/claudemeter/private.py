"""Our own files: private directories (0700, ours), files written 0600 atomically and
durably, read and opened never through a symlink, and lock files in them; the one-line
error they raise (:class:`StoreError`) and the one-line warning on stderr (:func:`warn`).

The store (:mod:`claudemeter.store`), the history, ``derived.json``, the registry, the
bridge's token and every other file claudemeter keeps go through these; this module
imports nothing of claudemeter's but :mod:`claudemeter.model` (for :func:`warn`'s
escaping), so all of them can.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from pathlib import Path

from .model import printable

TYPE_CHECKING = False  # typing is for mypy: importing it costs the hot paths milliseconds
if TYPE_CHECKING:
    from .flock import FileLock


class StoreError(RuntimeError):
    """A state file we cannot write: the message is one line a user can act on."""


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` 0700 (tightening it if we own it and others may only read it);
    raises :class:`StoreError` for a directory that is not private (see
    :func:`check_private_dir`)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private_dir(path)
    info = path.stat()
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def check_private_dir(path: Path) -> None:
    """Raise :class:`StoreError` (one line) when ``path`` is owned by another user or
    writable by others: anyone who can write there can plant a forged state, a token
    of theirs, or a symlink that turns our next write into theirs. A missing directory
    passes (it is created private). The user's own dir that only their group may write
    passes (umask 002 with a group per user makes those) and is tightened to 0700 when
    we next write."""
    try:
        info = path.stat()
    except OSError:
        return
    if info.st_uid != os.getuid():
        raise StoreError(
            f"{path} belongs to another user (uid {info.st_uid}); refusing to use it"
            " (set CLAUDEMETER_STATE_DIR / CLAUDEMETER_CONFIG_DIR to a private directory)"
        )
    if info.st_mode & 0o002:
        raise StoreError(
            f"{path} is writable by every user (mode {info.st_mode & 0o777:o});"
            f" refusing to use it (chmod 700 {path} after checking what is in it)"
        )


def read_private(path: Path, limit: int = 16 << 20) -> bytes:
    """The bytes of one of our files, never through a symlink (``O_NOFOLLOW``) nor from
    anything but a regular file (a planted FIFO would block); at most ``limit`` bytes.
    Raises FileNotFoundError when it is missing, OSError otherwise."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit)
    finally:
        os.close(fd)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` of one of our files (lock, log), created 0600, never through a
    symlink: a planted link must not make us truncate or append to its target."""
    return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)


def write_private(path: Path, data: bytes, durable: bool = True) -> None:
    """Atomic, durable replace of one of our own files, readable by the user alone."""
    write_atomic(path, data, 0o600, durable)


def write_atomic(path: Path, data: bytes, mode: int, durable: bool = True) -> None:
    """Atomic, durable replace: temp file beside it, fsync, rename, fsync the directory.
    ``mode`` lets a file that is not ours (Claude Code's settings) keep its permissions.
    ``durable=False`` skips both fsyncs (still atomic for readers): for a file rewritten
    on every write whose loss in a power cut costs little (the recent history)."""
    # os.urandom, not secrets: secrets imports base64, hmac and random on every write
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # exactly this mode, whatever the umask
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def private_lock(path: Path, timeout: float) -> FileLock:
    """A :class:`~claudemeter.flock.FileLock` on one of our lock files, in a private
    directory, refusing a planted symlink with a line that says so (the lock's own
    ``O_NOFOLLOW`` would only fail). ``acquire`` raises ``flock.LockTimeout``."""
    # Imported here: lock-free readers (the status line on every redraw) never lock.
    from .flock import FileLock

    ensure_private_dir(path.parent)
    if path.is_symlink():
        raise StoreError(f"{path} is a symlink; refusing to use it (remove it)")
    return FileLock(path, timeout)


def warn(message: str) -> None:
    print(f"claudemeter: {printable(message)}", file=sys.stderr)
