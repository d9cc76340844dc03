"""Atomic file writes: a crash mid-write never leaves a truncated file where a good one was.

A write goes to `.<name>.<host>-<pid>.<random>.tmp` beside its target and is
renamed into place when complete. A process killed mid-write leaves that
temporary file behind; the host and pid in its name let a later run tell it from
the file of a writer that is still running (`remove_stale_temporaries`).
"""

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")

# torch.save reports a failed write (a full disk, a file system that refuses it) through
# these messages of its zip writer, not through an OSError.
_TORCH_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter failed")


def host_tag() -> str:
    """This machine's host name as it appears in temporary-file names and run locks.

    Example:
        >>> bool(re.fullmatch(r"[A-Za-z0-9_-]+", host_tag()))
        True
    """
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def process_is_running(pid: int) -> bool:
    """Whether a process with this id runs on this machine.

    Example:
        >>> process_is_running(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def remove_stale_temporaries(
    folder: str | os.PathLike[str], *, owned: Sequence[str] = ()
) -> list[Path]:
    """Delete the temporary files that killed writes left in `folder`.

    A temporary file is stale when the process named in it (on this host) is
    gone. Files of writers on other hosts are left alone, and so are those of
    older resfx versions (no pid in the name) unless they belong to a file
    named in `owned`: the caller holds those alone (a claimed run folder), so
    nothing else can be writing them.

    Args:
        folder: the folder to clean; a missing folder has nothing to clean.
        owned: names of files in `folder` that the caller alone writes.

    Returns:
        The files removed.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / f".a.pt.{host_tag()}-{os.getpid()}.x1.tmp").write_bytes(b"")  # running
        >>> _ = (d / ".b.pt.x2.tmp").write_bytes(b"")  # an older resfx's, no pid
        >>> remove_stale_temporaries(d), [p.name for p in remove_stale_temporaries(d, owned=["b.pt"])]
        ([], ['.b.pt.x2.tmp'])
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    here = host_tag()
    removed = []
    for candidate in sorted(folder.glob(".*.tmp")):
        found = _TEMPORARY.match(candidate.name)
        if found is None:
            stale = any(candidate.name.startswith(f".{name}.") for name in owned)
        else:
            stale = found["host"] == here and not process_is_running(int(found["pid"]))
        if stale and candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, else delete it.

    The temporary file is in the target's folder so that `os.replace` is a rename
    within one file system, which is atomic on POSIX and Windows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{host_tag()}-{os.getpid()}.", suffix=".tmp"
    )
    os.close(handle)
    try:
        yield Path(temporary)
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        # On disk before the rename, so that a power loss cannot leave a renamed but
        # empty file in place of the good one.
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically: readers see the old file or the new one, never half.

    Args:
        path: the destination; its folder is created if missing.
        data: the bytes.

    Returns:
        The destination path.

    Example:
        >>> import tempfile
        >>> atomic_write_bytes(tempfile.mkdtemp() + "/a.json", b"{}").read_bytes()
        b'{}'
    """
    path = Path(path)
    with _replacing(path) as temporary:
        temporary.write_bytes(data)
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """`torch.save` to a temporary file in the target's folder, then `os.replace` it into place.

    A failure (a full disk, an interrupt) leaves the previous file intact and
    no temporary file behind.

    Args:
        obj: what to save (tensors, dicts of them, plain Python values).
        path: the destination; its folder is created if missing.

    Returns:
        The destination path.

    Example:
        >>> import tempfile, torch
        >>> p = atomic_torch_save({"x": torch.ones(2)}, tempfile.mkdtemp() + "/a/state.pt")
        >>> torch.load(p)["x"].tolist()
        [1.0, 1.0]
    """
    path = Path(path)
    with _replacing(path) as temporary:
        try:
            torch.save(obj, temporary)
        except RuntimeError as error:
            if not any(failure in str(error) for failure in _TORCH_WRITE_FAILURES):
                raise
            free = shutil.disk_usage(path.parent).free
            raise OSError(
                errno.ENOSPC,
                f"writing {path} failed: no space left on the device ({free / 2**20:.1f} MiB "
                f"free; torch: {str(error).splitlines()[0]}); free some space or write elsewhere",
            ) from error
    return path


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(file)` on a temporary file beside `path`, then rename it into place.

    For writers that stream (`numpy.save`, a large JSON document) rather than
    hand over one `bytes` object. A failure leaves the previous file intact and
    no temporary file behind.

    Args:
        path: the destination; its folder is created if missing.
        write: writes the content to the open binary file it is given.

    Returns:
        The destination path.

    Example:
        >>> import tempfile
        >>> atomic_write_with(tempfile.mkdtemp() + "/a.bin", lambda f: f.write(b"ab")).read_bytes()
        b'ab'
    """
    path = Path(path)
    with _replacing(path) as temporary, open(temporary, "wb") as file:
        write(file)
    return path
