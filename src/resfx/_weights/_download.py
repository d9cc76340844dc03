"""Named weights onto the disk: the download, and the hash check of every file used."""

import contextlib
import hashlib
import json
import os
import urllib.error
from pathlib import Path

import torch

from ._errors import ChecksumError, WeightsUnavailableError
from ._registry import PRETRAINED, PretrainedWeights

_VERIFIED_SUFFIX = ".resfx-verified"
"""A sidecar next to a cached file: its size, mtime and SHA-256 when it last passed the check."""

_verified_here: set[tuple[str, int, int]] = set()
"""(path, size, mtime) of files checked by this process, for caches whose folder is read-only."""


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, as hex.

    Args:
        path: the file.

    Returns:
        64 lowercase hex digits.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"")
        >>> sha256_of(p)[:8]
        'e3b0c442'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file_hash(path: str | os.PathLike[str], hash_prefix: str) -> None:
    """Check that a file's SHA-256 starts with `hash_prefix` (torchvision's naming convention).

    Args:
        path: the file.
        hash_prefix: expected leading hex digits.

    Raises:
        ChecksumError: the hash differs; the message gives both and says what to do.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"")
        >>> verify_file_hash(p, "e3b0c442")
    """
    actual = sha256_of(path)
    if not actual.startswith(hash_prefix.lower()):
        raise ChecksumError(
            f"{path} has SHA-256 {actual[: len(hash_prefix)]}..., expected {hash_prefix}...: "
            f"the file is corrupt or not the published one; delete it and download it again"
        )


def _check_cached(spec: PretrainedWeights, path: Path) -> None:
    """Hash-check a cached file once: again only when its size or mtime change."""
    if spec.hash_prefix is None:
        return
    stat = path.stat()  # before hashing: a change while hashing shows at the next use
    if (str(path), stat.st_size, stat.st_mtime_ns) in _verified_here:
        return
    try:
        recorded = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded != _record(spec, stat):
        actual = sha256_of(path)
        if not actual.startswith(spec.hash_prefix):
            raise ChecksumError(
                f"the cached {path} has SHA-256 {actual[:8]}..., not the {spec.hash_prefix}... "
                f"its name promises, so it is not {spec.name}'s published file (damaged, or "
                f"saved there by hand); delete it (rm {path}) and resfx downloads it again "
                f"from {spec.url}"
            )
    _remember_verified(spec, path, stat)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + _VERIFIED_SUFFIX)


def _record(spec: PretrainedWeights, stat: os.stat_result) -> dict[str, object]:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "hash": spec.hash_prefix}


def _remember_verified(spec: PretrainedWeights, path: Path, stat: os.stat_result) -> None:
    _verified_here.add((str(path), stat.st_size, stat.st_mtime_ns))
    with contextlib.suppress(OSError):  # a read-only cache: remembered in this process only
        _sidecar(path).write_text(json.dumps(_record(spec, stat)))


def fetch_pretrained(name: str, *, progress: bool = True) -> Path:
    """Return the local path of named pretrained weights, downloading them if not cached.

    Downloads go to `$TORCH_HOME/hub/checkpoints/` (torchvision's cache) and are
    hash-checked against the prefix in the file name, as torchvision does. A
    cached file is checked too, once: its size and mtime are remembered in a
    `<file>.resfx-verified` sidecar, and it is hashed again only when they change.

    Args:
        name: a key of `PRETRAINED`, e.g. `"resnet34.IMAGENET1K_V1"`.
        progress: show a download progress bar.

    Returns:
        The checkpoint's path.

    Raises:
        ValueError: unknown name.
        WeightsUnavailableError: not cached and the download failed (offline);
            the message says which file to place where.
        ChecksumError: the downloaded or cached file fails the hash check.

    Example:
        >>> fetch_pretrained("resnet34.IMAGENET1K_V1").name  # doctest: +SKIP
        'resnet34-b627a593.pth'
    """
    if name not in PRETRAINED:
        raise ValueError(
            f"unknown weights {name!r}; expected one of {sorted(PRETRAINED)}, None, "
            f"or a path to a .pth or .safetensors file"
        )
    spec = PRETRAINED[name]
    target = spec.cache_path
    if target.is_file():
        _check_cached(spec, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(spec.url, str(target), spec.hash_prefix, progress=progress)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise WeightsUnavailableError(
            f"could not download {spec.name} weights ({spec.description}) from {spec.url}: "
            f"{error}. On a machine without internet, download that file elsewhere and place "
            f"it at {target} (set TORCH_HOME to move the cache), or pass weights=<path to the "
            f"file>"
        ) from error
    except RuntimeError as error:
        if "invalid hash value" in str(error):
            raise ChecksumError(
                f"the file downloaded from {spec.url} fails the hash check ({error}); "
                f"it was not kept. Try again, or download it by hand and pass its path"
            ) from error
        raise
    if spec.hash_prefix is not None:  # torch.hub checked it while downloading
        _remember_verified(spec, target, target.stat())
    return target
