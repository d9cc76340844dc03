"""Atomic file writes: a crash mid-write never leaves a truncated file where a good one was."""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, else delete it.

    The temporary file is in the target's folder so that `os.replace` is a rename
    within one file system, which is atomic on POSIX and Windows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
        torch.save(obj, temporary)
    return path
