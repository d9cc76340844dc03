"""Frozen-backbone features, computed once in inference mode and reused while nothing changed.

Entries are found by their content key (`FeatureKey`, see `_key`), in memory and
optionally on disk, and computed by one frozen pass (`_pass`) when missing.
"""

import dataclasses
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from .._atomic import atomic_torch_save, remove_stale_temporaries
from .._distributed import DistributedContext
from .._typing import Features
from ..data import ImageSplit, StreamedSplit
from ..models import ResNet
from ._key import FeatureKey, feature_key, refuse_train_mode, tensor_checksum
from ._pass import compute_stage_features, share_of

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _misfit(key: FeatureKey, features: object) -> str | None:
    """How `features` contradict `key` (type, dtype, rank, shape), or `None` if they fit."""
    if not isinstance(features, Tensor):
        return f"hold a {type(features).__name__}, not a tensor"
    if str(features.dtype) != f"torch.{key.dtype}":
        return f"are {features.dtype}, the key says {key.dtype}"
    trailing = key.feature_shape
    expected = (
        f"({key.count}, {', '.join(map(str, trailing))})" if trailing else f"({key.count}, ...)"
    )
    rank_fits = features.ndim >= 2 if trailing is None else features.ndim == 1 + len(trailing)
    if (
        not rank_fits
        or features.shape[0] != key.count
        or (trailing is not None and tuple(features.shape[1:]) != tuple(trailing))
    ):
        return f"have shape {tuple(features.shape)}, the key says {expected}"
    return None


class FeatureCache:
    """Frozen-backbone features by content key, in memory and optionally on disk.

    On disk each entry is `<directory>/<key digest>.pt` holding the features,
    the full key and the SHA-256 of the features, written atomically. An entry
    is used only when its stored key equals the requested one and its features
    have the key's row count, shape, rank and dtype and match their checksum;
    anything else (a damaged, truncated or foreign file) is recomputed with a
    warning, never reused. When the directory cannot take an entry (not a
    folder, read-only, full: checked before computing) the cache warns once and
    keeps features in memory only. `hits` and `misses` count entries found and
    computed; `computed_images` counts the images this process ran through a
    backbone (its share only, under a `context`).

    Args:
        directory: where to keep features across runs; `None` keeps them in memory only.
        write: save newly computed features to `directory` (off on all but one
            process of a distributed run).
        context: the processes of a `torchrun` launch that share each frozen pass:
            they first agree whether any of them misses an entry (then all compute,
            none waits on the others), each computes its share and an all-gather
            assembles the features (see `compute_stage_features`). `None`: one process.

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
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        write: bool = True,
        context: DistributedContext | None = None,
    ) -> None:
        self.directory = None if directory is None else Path(directory)
        self.write = write
        self.context = context
        self.hits = 0
        self.misses = 0
        self.computed_images = 0
        self._memory: dict[str, Features] = {}
        self._probed = False

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
        except Exception as error:
            # Any unreadable entry (truncated, foreign, another version's format; torch's
            # safe unpickler raises several kinds) is a miss: recompute and overwrite it.
            warnings.warn(
                f"feature cache entry {path} cannot be read ({type(error).__name__}); "
                f"recomputing it",
                stacklevel=4,
            )
            return None
        if not isinstance(stored, dict) or stored.get("key") != asdict(key):
            return None  # another version's entry under the same name
        features = stored.get("features")
        problem = _misfit(key, features)
        if problem is None and stored.get("checksum") != tensor_checksum(features):
            problem = "does not match its checksum (damaged on disk?)"
        if problem is not None:
            warnings.warn(f"feature cache entry {path} {problem}; recomputing it", stacklevel=4)
            return None
        return features

    def _fall_back_to_memory(self, reason: str) -> None:
        if self.write:
            warnings.warn(
                f"feature cache {self.directory}: {reason}; this run keeps its features in "
                f"memory only",
                stacklevel=4,
            )
        self.write = False

    def _check_room(self, key: FeatureKey) -> None:
        """Before computing: can the directory take this entry? If not, fall back to memory."""
        if self.directory is None or not self.write:
            return
        directory = self.directory
        try:
            if not self._probed:
                directory.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryFile(dir=directory):
                    pass
                remove_stale_temporaries(directory)
                self._probed = True
            free = shutil.disk_usage(directory).free
        except OSError as error:
            self._fall_back_to_memory(f"cannot be written ({error.strerror or error})")
            return
        dims = math.prod(key.feature_shape) if key.feature_shape is not None else 0
        needed = key.count * dims * torch.empty((), dtype=_DTYPES[key.dtype]).element_size()
        if free < needed + 2**20:
            self._fall_back_to_memory(
                f"no space left ({free / 2**20:.1f} MiB free, an entry needs about "
                f"{needed / 2**20:.1f} MiB)"
            )

    def _lookup(self, key: FeatureKey) -> Features | None:
        """The features under `key` from memory or disk (counted as a hit), or `None`."""
        digest = key.digest()
        found = self._memory.get(digest)
        if found is None:
            found = self._load(key)
        if found is not None:
            self.hits += 1
            self._memory[digest] = found
        return found

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
        found = self._lookup(key)
        if found is not None:
            return found
        self._check_room(key)
        return self._store(key, compute())

    def _store(self, key: FeatureKey, features: Features) -> Features:
        """Keep newly computed features under `key`, in memory and (when writing) on disk."""
        self.misses += 1
        problem = _misfit(key, features)
        if problem is not None:
            raise ValueError(f"the computed features do not fit their key: they {problem}")
        self._memory[key.digest()] = features
        path = self.path_for(key)
        if path is not None and self.write:
            on_cpu = features.cpu()
            entry = {"key": asdict(key), "features": on_cpu, "checksum": tensor_checksum(on_cpu)}
            try:
                atomic_torch_save(entry, path)
            except OSError as error:
                self._fall_back_to_memory(
                    f"{path.name} could not be written ({error.strerror or error})"
                )
        return features

    def features(
        self,
        model: ResNet,
        split: ImageSplit | StreamedSplit,
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
        return self.stage_features(
            model,
            split,
            ["pooled"],
            image_size=image_size,
            batch_size=batch_size,
            precision=precision,
            bn=bn,
        )["pooled"]

    def stage_features(
        self,
        model: ResNet,
        split: ImageSplit | StreamedSplit,
        stages: Sequence[str],
        *,
        image_size: int,
        batch_size: int = 256,
        precision: str = "fp32",
        bn: str = "eval",
    ) -> dict[str, Float[Tensor, "b _"]]:
        """Pooled features of each stage, one cache entry per stage, one frozen pass for all.

        Stages found in the cache are reused; the missing ones are computed
        together in a single pass (`compute_stage_features`, shared by the
        cache's `context`) and stored. Under a `context` a stage missing on any
        process is computed by all of them.

        Args:
            model: the ResNet, frozen, on the split's device.
            split: the images.
            stages: names of `model.feature_stages`.
            image_size: side of the resized inputs.
            batch_size: images per forward pass when computing.
            precision: `"fp32"` or `"bf16"`.
            bn: the BatchNorm policy the backbone was frozen with (part of the key).

        Returns:
            float32 features per stage, on the split's device.

        Raises:
            ValueError: a BatchNorm of `model` is in training mode.

        Example:
            >>> from resfx.models import ResNet, ResNetConfig
            >>> from resfx.data import load_split
            >>> model, cache = ResNet(ResNetConfig(width=4)).eval(), FeatureCache()
            >>> split = load_split("synthetic", "test", 2)
            >>> _ = cache.stage_features(model, split, ["stem", "layer4"], image_size=32)
            >>> _ = cache.stage_features(model, split, ["layer4"], image_size=32); cache.hits
            1
        """
        refuse_train_mode(model)
        base = feature_key(model, split, image_size=image_size, precision=precision, bn=bn)
        channels = model.config.stage_channels
        keys = {
            stage: dataclasses.replace(base, stage=stage, feature_shape=(channels[stage],))
            for stage in stages
        }
        found = {stage: self._lookup(key) for stage, key in keys.items()}
        misses = [value is None for value in found.values()]
        if self.context is not None:
            misses = self.context.any_of(misses, split.device)
        missing = [stage for stage, miss in zip(keys, misses, strict=True) if miss]
        if missing:
            for stage in missing:
                self._check_room(keys[stage])
            computed = compute_stage_features(
                model,
                split,
                missing,
                image_size=image_size,
                batch_size=batch_size,
                precision=precision,
                context=self.context,
            )
            self.computed_images += len(share_of(self.context, len(split), batch_size))
            for stage in missing:
                if found[stage] is None:
                    found[stage] = self._store(keys[stage], computed[stage])
        # every stage was found or, missed here, computed and stored above
        ready = {stage: value for stage, value in found.items() if value is not None}
        return {stage: ready[stage].to(split.device) for stage in stages}
