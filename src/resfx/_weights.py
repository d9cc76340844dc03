"""Checkpoints in, strictly: torchvision `.pth`, timm `.safetensors`, hashes, offline errors."""

import hashlib
import os
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch import nn as tnn


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model; the message names every one.

    Example:
        >>> import torch
        >>> try:
        ...     check_state_dict(torch.nn.Linear(1, 1), {})
        ... except CheckpointMismatchError as error:
        ...     print(error)
        checkpoint does not match Linear: missing keys ['weight', 'bias']
    """


class ChecksumError(RuntimeError):
    """A downloaded or cached weights file does not have the SHA-256 its name promises.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"")
        >>> try:
        ...     verify_file_hash(p, "ffff")
        ... except ChecksumError:
        ...     print("refused")
        refused
    """


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (typically: offline).

    The message names the URL, the cache path to place the file at, and the
    `weights=<path>` alternative.

    Example:
        >>> issubclass(WeightsUnavailableError, RuntimeError)
        True
    """


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a named set of pretrained ResNet34 weights comes from.

    Args:
        name: the name users pass as `weights=`.
        url: the download address.
        file_name: the name of the file in the cache (`$TORCH_HOME/hub/checkpoints/`).
        hash_prefix: leading hex digits of the file's SHA-256, or `None` when the
            publisher gives none.
        num_classes: classes of the checkpoint's classifier.
        description: where the weights were trained, for messages and docs.

    Example:
        >>> PRETRAINED["IMAGENET1K_V1"].file_name
        'resnet34-b627a593.pth'
    """

    name: str
    url: str
    file_name: str
    hash_prefix: str | None
    num_classes: int
    description: str

    @property
    def cache_path(self) -> Path:
        """Where the file lives in torch's hub cache (honours `TORCH_HOME`)."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name


def _torchvision_imagenet1k_v1() -> PretrainedWeights:
    from torchvision.models import ResNet34_Weights

    entry = ResNet34_Weights.IMAGENET1K_V1
    file_name = entry.url.rsplit("/", 1)[-1]
    return PretrainedWeights(
        name="IMAGENET1K_V1",
        url=entry.url,
        file_name=file_name,
        hash_prefix=file_name.rsplit("-", 1)[-1].split(".")[0],
        num_classes=len(entry.meta["categories"]),
        description="torchvision ResNet34, ImageNet-1k (acc@1 73.314)",
    )


PRETRAINED: dict[str, PretrainedWeights] = {
    "IMAGENET1K_V1": _torchvision_imagenet1k_v1(),
    "resnet34.tv_in1k": PretrainedWeights(
        name="resnet34.tv_in1k",
        url="https://huggingface.co/timm/resnet34.tv_in1k/resolve/main/model.safetensors",
        file_name="timm-resnet34.tv_in1k.safetensors",
        hash_prefix=None,
        num_classes=1000,
        description="timm's copy of torchvision's ResNet34 ImageNet-1k weights",
    ),
}
"""Named pretrained weights that `resnet34(weights=...)` accepts."""


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, as hex.

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


def fetch_pretrained(name: str, *, progress: bool = True) -> Path:
    """Return the local path of named pretrained weights, downloading them if not cached.

    Downloads go to `$TORCH_HOME/hub/checkpoints/` (torchvision's cache) and are
    hash-checked against the prefix in the file name, as torchvision does; a
    cached file is used as it is (call `verify_file_hash` to check it).

    Args:
        name: a key of `PRETRAINED`, e.g. `"IMAGENET1K_V1"`.
        progress: show a download progress bar.

    Returns:
        The checkpoint's path.

    Raises:
        ValueError: unknown name.
        WeightsUnavailableError: not cached and the download failed (offline);
            the message says which file to place where.
        ChecksumError: the downloaded file fails the hash check.

    Example:
        >>> fetch_pretrained("IMAGENET1K_V1").name  # doctest: +SKIP
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
    return target


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a state dict from a `.pth`/`.pt`/`.bin` (torch) or `.safetensors` (timm) file.

    A torch file holding `{"state_dict": ...}` or `{"model": ...}` is unwrapped.
    Torch files are read with `weights_only=True`: no code in them runs.

    Args:
        path: the checkpoint file.

    Returns:
        Parameter and buffer names to tensors, on the CPU.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be read (truncated, corrupt) or holds no state dict.

    Example:
        >>> import tempfile, torch
        >>> p = tempfile.mkdtemp() + "/w.pth"; torch.save({"fc.bias": torch.zeros(2)}, p)
        >>> list(read_checkpoint(p))
        ['fc.bias']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many kinds for a damaged file
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(
            f"{path} could not be read as a checkpoint ({type(error).__name__}: {first_line}); it is "
            f"probably truncated or corrupt: delete it and download or copy it again"
        ) from error
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, Mapping) and set(loaded) == {wrapper}:
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors (got {type(loaded)})")
    return dict(loaded)


def check_state_dict(model: tnn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Check every key and shape of a checkpoint against a model, before loading it.

    `num_batches_tracked` may be absent (old torchvision files lack it; it loads as 0).

    Args:
        model: the model the checkpoint is for.
        state_dict: the checkpoint's tensors.

    Raises:
        CheckpointMismatchError: missing, unexpected or wrongly shaped keys, each named
            with the shapes and a hint what to do.

    Example:
        >>> import torch
        >>> check_state_dict(torch.nn.Linear(2, 3), {"weight": torch.zeros(3, 2)})
        Traceback (most recent call last):
        ...
        resfx._weights.CheckpointMismatchError: ... missing keys ['bias']
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"missing keys {missing}")
    if unexpected:
        parts.append(f"unexpected keys {unexpected}")
    if wrong:
        parts.append(f"wrong shapes [{'; '.join(wrong)}]")
    hints = []
    if unexpected and all(k.startswith("module.") for k in unexpected):
        hints.append("the keys start with 'module.' (saved from DataParallel): strip that prefix")
    if any(k.startswith("fc.") for k in wrong):
        hints.append(
            "the classifier differs: load with the checkpoint's num_classes and replace the "
            "head, or use resfx.get_resnet_for_feature_extraction(num_classes=n)"
        )
    message = f"checkpoint does not match {type(model).__name__}: " + "; ".join(parts)
    if hints:
        message += ". Hint: " + "; ".join(hints)
    raise CheckpointMismatchError(message)


def load_weights(
    model: tnn.Module, weights: str | os.PathLike[str], *, progress: bool = True
) -> tnn.Module:
    """Load named pretrained weights or a checkpoint file into `model`, strictly.

    Args:
        model: the model to fill (in place).
        weights: a key of `PRETRAINED` (`"IMAGENET1K_V1"`, `"resnet34.tv_in1k"`)
            or a path to a `.pth` / `.safetensors` file.
        progress: show a download progress bar.

    Returns:
        `model`, for chaining.

    Raises:
        ValueError: an unknown name that is not a file either.
        CheckpointMismatchError: keys or shapes differ.
        WeightsUnavailableError: named weights not cached and not downloadable.
        ChecksumError: a downloaded file fails its hash check.

    Example:
        >>> import tempfile, torch, resfx
        >>> p = tempfile.mkdtemp() + "/w.pth"
        >>> torch.save(resfx.nn.Linear(2, 3).state_dict(), p)
        >>> _ = load_weights(resfx.nn.Linear(2, 3), p)
    """
    is_name = isinstance(weights, str) and weights in PRETRAINED
    if is_name:
        path = fetch_pretrained(weights, progress=progress)
    else:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(
                f"weights={str(weights)!r} is neither a known name ({sorted(PRETRAINED)}) "
                f"nor an existing .pth/.safetensors file"
            )
    state_dict = read_checkpoint(path)
    check_state_dict(model, state_dict)
    model.load_state_dict(state_dict, strict=True)
    return model
