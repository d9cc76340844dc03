"""Frozen-backbone features, computed once in inference mode and reused while nothing changed.

Caches keyed by names (the dataset's, the model's) go stale silently when the
weights, the preprocessing or the subset change. This cache is keyed by
content: a hash of every backbone parameter and buffer, the preprocessing
description, the dataset, split, exact indices and the images' own bytes, the
compute dtype and the BatchNorm policy and modes. Any change gives a different key.
"""

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch import nn as tnn

from .._atomic import atomic_torch_save
from .._freeze import is_batchnorm
from .._frozen_step import frozen_features
from .._precision import PRECISION_DTYPES, check_precision
from .._typing import Features
from ..data import ImageSplit, describe_preprocessing, iterate_batches
from ..models import ResNet

PRECISIONS: dict[str, torch.dtype] = PRECISION_DTYPES
"""Compute precisions by name: fp32, or bf16 autocast (`resfx.train.Precision`'s names)."""


def _update_with_tensor(digest: "hashlib._Hash", name: str, tensor: Tensor) -> None:
    flat = tensor.detach().reshape(-1).contiguous().cpu()
    digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(flat.view(torch.uint8).numpy().tobytes())


def fingerprint_module(module: tnn.Module, *, exclude_prefix: str | None = None) -> str:
    """SHA-256 of a module's class, every parameter and buffer (names, dtypes, shapes, bytes).

    Args:
        module: e.g. a ResNet.
        exclude_prefix: leave out state whose name starts with it, e.g. `"fc."`
            for the backbone of a ResNet without its head.

    Returns:
        The hex digest.

    Example:
        >>> import torch
        >>> a = torch.nn.Linear(2, 2)
        >>> before = fingerprint_module(a)
        >>> with torch.no_grad():
        ...     _ = a.weight.add_(1)
        >>> before == fingerprint_module(a)
        False
    """
    digest = hashlib.sha256(type(module).__qualname__.encode())
    for name, tensor in module.state_dict(keep_vars=False).items():
        if exclude_prefix is None or not name.startswith(exclude_prefix):
            _update_with_tensor(digest, name, tensor)
    return digest.hexdigest()


def _batchnorm_modes(model: tnn.Module) -> str:
    """Which normalisation layers are in training mode (they then use batch statistics)."""
    return "".join(
        "T" if module.training else "E" for module in model.modules() if is_batchnorm(module)
    )


@dataclass(frozen=True)
class FeatureKey:
    """Everything frozen features depend on; two keys are equal only if the features would be.

    Args:
        backbone: [`fingerprint_module`][resfx.features.fingerprint_module] of the model
            without its head.
        preprocessing: how images were turned into inputs.
        dataset: the dataset's name (`"cifar10"`, `"synthetic"`).
        split: `"train"` or `"test"`.
        content: SHA-256 of the example indices, the images' bytes and the labels, in
            order (the same name and indices with other pixels, e.g. another
            synthetic seed or another copy of CIFAR-10, give another key).
        count: number of examples.
        precision: `"fp32"` or `"bf16"`.
        bn: the BatchNorm policy name and each BatchNorm layer's mode.

    Example:
        >>> fp32 = FeatureKey("ab", "none", "synthetic", "test", "cd", 3, "fp32", "eval")
        >>> bf16 = FeatureKey("ab", "none", "synthetic", "test", "cd", 3, "bf16", "eval")
        >>> fp32.digest() == bf16.digest()
        False
    """

    backbone: str
    preprocessing: str
    dataset: str
    split: str
    content: str
    count: int
    precision: str
    bn: str

    def digest(self) -> str:
        """SHA-256 over all fields: the cache file's name.

        Example:
            >>> len(FeatureKey("a", "b", "c", "d", "e", 1, "fp32", "eval").digest())
            64
        """
        text = "\n".join(f"{field}={value}" for field, value in asdict(self).items())
        return hashlib.sha256(text.encode()).hexdigest()


def feature_key(
    model: ResNet, split: ImageSplit, *, image_size: int, precision: str, bn: str
) -> FeatureKey:
    """The content key of `model.forward_features` over `split`.

    Args:
        model: the ResNet; its head `fc` is left out of the fingerprint.
        split: the images, with their dataset, split and indices.
        image_size: side of the resized inputs.
        precision: `"fp32"` or `"bf16"`.
        bn: the BatchNorm policy the backbone was frozen with.

    Returns:
        The key.

    Raises:
        ValueError: unknown precision.

    Example:
        >>> from resfx.models import ResNet, ResNetConfig
        >>> from resfx.data import load_split
        >>> model, split = ResNet(ResNetConfig(width=4)), load_split("synthetic", "test", 4)
        >>> feature_key(model, split, image_size=32, precision="fp32", bn="eval").split
        'test'
    """
    check_precision(precision)
    content = hashlib.sha256()
    for name in ("indices", "images", "labels"):
        _update_with_tensor(content, name, getattr(split, name))
    return FeatureKey(
        backbone=fingerprint_module(model, exclude_prefix="fc."),
        preprocessing=describe_preprocessing(image_size),
        dataset=split.dataset,
        split=split.split,
        content=content.hexdigest(),
        count=len(split),
        precision=precision,
        bn=f"{bn}:{_batchnorm_modes(model)}",
    )


def compute_features(
    model: ResNet,
    split: ImageSplit,
    *,
    image_size: int,
    batch_size: int = 256,
    precision: str = "fp32",
) -> Features:
    """`model.forward_features` over every image of `split`, in order, in inference mode.

    The model's modes are used as they are (freeze it with eval-mode BatchNorm
    first, so that features do not depend on the batch). Runs on the device
    the split's images are on, in `channels_last` memory format on a GPU.

    Args:
        model: the ResNet (on the split's device).
        split: the images.
        image_size: side of the resized inputs.
        batch_size: images per forward pass.
        precision: `"fp32"`, or `"bf16"` for bfloat16 autocast.

    Returns:
        float32 features `(len(split), d)` on the split's device.

    Raises:
        ValueError: unknown precision.

    Example:
        >>> from resfx.models import ResNet, ResNetConfig
        >>> from resfx.data import load_split
        >>> model = ResNet(ResNetConfig(width=4)).eval()
        >>> compute_features(model, load_split("synthetic", "test", 3), image_size=32).shape
        torch.Size([3, 32])
    """
    check_precision(precision)
    device = split.images.device
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    chunks = []
    order = torch.arange(len(split))
    for images, _ in iterate_batches(split, order, batch_size, image_size=image_size):
        inputs = images.contiguous(memory_format=memory_format)
        chunks.append(frozen_features(model.forward_features, inputs, precision=precision))
    return torch.cat(chunks)


class FeatureCache:
    """Frozen-backbone features by content key, in memory and optionally on disk.

    On disk each entry is `<directory>/<key digest>.pt` holding the features
    and the full key, written atomically; a file whose stored key differs from
    the requested one is recomputed, never reused.

    Args:
        directory: where to keep features across runs; `None` keeps them in memory only.
        write: save newly computed features to `directory` (off on all but one
            process of a distributed run).

    Example:
        >>> import torch
        >>> cache = FeatureCache()
        >>> key = FeatureKey("a", "b", "synthetic", "test", "c", 2, "fp32", "eval")
        >>> cache.get_or_compute(key, lambda: torch.zeros(2, 4)).shape
        torch.Size([2, 4])
        >>> _ = cache.get_or_compute(key, lambda: torch.ones(2, 4)); (cache.hits, cache.misses)
        (1, 1)
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, write: bool = True
    ) -> None:
        self.directory = None if directory is None else Path(directory)
        self.write = write
        self.hits = 0
        self.misses = 0
        self._memory: dict[str, Features] = {}

    def path_for(self, key: FeatureKey) -> Path | None:
        """Where `key`'s features live on disk, or `None` for a memory-only cache.

        Example:
            >>> key = FeatureKey("a", "b", "c", "d", "e", 1, "fp32", "eval")
            >>> FeatureCache("cache").path_for(key).suffix
            '.pt'
        """
        return None if self.directory is None else self.directory / f"{key.digest()}.pt"

    def _load(self, key: FeatureKey) -> Features | None:
        path = self.path_for(key)
        if path is None or not path.is_file():
            return None
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            # Any unreadable entry (truncated, foreign, another version's format; torch's
            # safe unpickler raises several kinds) is a miss: recompute and overwrite it.
            return None
        if (
            not isinstance(stored, dict)
            or stored.get("key") != asdict(key)
            or not isinstance(stored.get("features"), Tensor)
            or stored["features"].shape[0] != key.count
        ):
            return None
        return stored["features"]

    def get_or_compute(self, key: FeatureKey, compute: Callable[[], Features]) -> Features:
        """Return the features stored under `key`, calling `compute()` only when there are none.

        Args:
            key: the content key.
            compute: produces the features on a miss.

        Returns:
            The features (from memory on the device they were computed on; from
            disk on the CPU).

        Example:
            >>> import torch
            >>> key = FeatureKey("a", "b", "synthetic", "test", "c", 1, "fp32", "eval")
            >>> FeatureCache().get_or_compute(key, lambda: torch.ones(1, 2)).tolist()
            [[1.0, 1.0]]
        """
        digest = key.digest()
        found = self._memory.get(digest)
        if found is None:
            found = self._load(key)
        if found is not None:
            self.hits += 1
            self._memory[digest] = found
            return found
        self.misses += 1
        features = compute()
        self._memory[digest] = features
        path = self.path_for(key)
        if path is not None and self.write:
            atomic_torch_save({"key": asdict(key), "features": features.cpu()}, path)
        return features

    def features(
        self,
        model: ResNet,
        split: ImageSplit,
        *,
        image_size: int,
        batch_size: int = 256,
        precision: str = "fp32",
        bn: str = "eval",
    ) -> Features:
        """The features of `split` through `model`'s backbone: cached if the content is unchanged.

        Args:
            model: the ResNet, frozen, on the split's device.
            split: the images.
            image_size: side of the resized inputs.
            batch_size: images per forward pass when computing.
            precision: `"fp32"` or `"bf16"`.
            bn: the BatchNorm policy the backbone was frozen with (part of the key).

        Returns:
            float32 features `(len(split), d)` on the split's device.

        Raises:
            ValueError: a BatchNorm of `model` is in training mode.

        Example:
            >>> from resfx.models import ResNet, ResNetConfig
            >>> from resfx.data import load_split
            >>> model = ResNet(ResNetConfig(width=4)).eval()
            >>> split = load_split("synthetic", "test", 2)
            >>> cache = FeatureCache()
            >>> _ = cache.features(model, split, image_size=32)
            >>> _ = cache.features(model, split, image_size=32); cache.hits
            1
        """
        if "T" in _batchnorm_modes(model):
            raise ValueError(
                "the model has BatchNorm layers in training mode, so its features would depend "
                "on the batch they are computed in (and could update running statistics): "
                "freeze the backbone with bn='eval' or call model.eval() before caching"
            )
        key = feature_key(model, split, image_size=image_size, precision=precision, bn=bn)
        found = self.get_or_compute(
            key,
            lambda: compute_features(
                model, split, image_size=image_size, batch_size=batch_size, precision=precision
            ),
        )
        return found.to(split.images.device)
