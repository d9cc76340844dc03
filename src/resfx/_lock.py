"""A folder claimed by one process at a time: a lock file holding its pid, `flock`ed while it lives.

The kernel drops an `flock` when its process dies, however it dies, so a lock
file left by a killed process is recognised as stale and taken over; its record
(pid, host, start time) lets the new holder name the dead one. The lock file is
opened with `O_NOFOLLOW` and must be a regular file: a symbolic link planted at
its path is refused, never followed (its target would be overwritten).
"""

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from ._atomic import host_tag


class LockError(OSError):
    """A lock file cannot be used: it is a symbolic link, not a regular file, or cannot be opened.

    Example:
        >>> issubclass(LockHeldError, LockError)
        True
    """


class LockHeldError(LockError):
    """Another live process holds the lock; `holder` describes it (pid, host, start time).

    Args:
        holder: who holds it, in words.
        what: what the lock guards, for the message (e.g. `"output_dir 'runs/a'"`).
        remedy: what else the user can do than wait.

    Example:
        >>> print(LockHeldError("pid 7 on host h, started t", "store s", "pass another folder"))
        store s is in use by another resfx run (pid 7 on host h, started t); wait for it to
        finish or pass another folder
    """

    def __init__(self, holder: str, what: str, remedy: str) -> None:
        super().__init__(
            f"{what} is in use by another resfx run ({holder}); wait for it to finish or {remedy}"
        )
        self.holder = holder


def describe_holder(record: str) -> str:
    """A lock file's record in words: `"pid 12 on host h, started 2026-12-05T10:00:00Z"`.

    Example:
        >>> describe_holder('{"pid": 12, "host": "h", "started": "then"}')
        'pid 12 on host h, started then'
        >>> describe_holder("garbage")
        'a process whose lock file is unreadable'
    """
    try:
        holder = json.loads(record)
        return f"pid {holder['pid']} on host {holder['host']}, started {holder['started']}"
    except (ValueError, KeyError, TypeError):
        return "a process whose lock file is unreadable"


def _open_lock_file(lock: Path) -> int:
    """Open (creating) `lock` without following a symbolic link; refuse anything but a file."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        handle = os.open(lock, flags, 0o644)
    except OSError as error:
        if os.path.islink(lock):
            raise LockError(
                f"lock file {lock} is a symbolic link; resfx does not follow it (its target "
                f"would be overwritten): remove the link and run again"
            ) from error
        raise LockError(
            f"lock file {lock} cannot be opened ({error.strerror or error}); remove whatever "
            f"is at that path or use another folder"
        ) from error
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise LockError(
            f"lock file {lock} is not a regular file; remove whatever is at that path or use "
            f"another folder"
        )
    return handle


def _acquire(lock: Path, what: str, remedy: str) -> int:
    """Open and `flock` the lock file, retrying if its holder removed it meanwhile."""
    while True:
        handle = _open_lock_file(lock)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(os.read(handle, 4096).decode(errors="replace"))
            os.close(handle)
            raise LockHeldError(holder, what, remedy) from None
        try:
            same = os.fstat(handle).st_ino == os.lstat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        os.close(handle)  # the holder released and removed it between our open and flock


@contextlib.contextmanager
def hold_lock(
    lock: str | os.PathLike[str], *, what: str | None = None, remedy: str = "use another folder"
) -> Iterator[str | None]:
    """Hold the lock file `lock` for the duration of the block; it is removed on exit.

    Args:
        lock: the lock file's path (its folder must exist).
        what: what the lock guards, named in the error when another process holds it
            (default: the lock's folder).
        remedy: what the error suggests besides waiting.

    Yields:
        The previous holder, in words, when a dead process left its record (the
        caller may warn about it); `None` for a fresh lock.

    Raises:
        LockHeldError: a live process holds it (`holder` names it).
        LockError: the path is a symbolic link or not a regular file, or cannot be opened.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / ".lock"
        >>> with hold_lock(path) as previous:
        ...     str(os.getpid()) in path.read_text(), previous
        (True, None)
        >>> path.exists()
        False
    """
    path = Path(lock)
    handle = _acquire(path, what or str(path.parent), remedy)
    try:
        previous = os.read(handle, 4096).decode(errors="replace")
        record = {"pid": os.getpid(), "host": host_tag(), "started": time.strftime("%FT%TZ")}
        os.ftruncate(handle, 0)
        os.pwrite(handle, json.dumps(record).encode(), 0)
        yield describe_holder(previous) if previous else None
    finally:
        path.unlink(missing_ok=True)
        os.close(handle)
