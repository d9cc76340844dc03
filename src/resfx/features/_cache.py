"""Frozen-backbone features, computed once in inference mode and reused while nothing changed.

Caches keyed by names (the dataset's, the model's) go stale silently when the
weights, the preprocessing or the subset change. This cache is keyed by
content: a hash of every backbone parameter and buffer, the preprocessing
description, the dataset, split, exact indices and the images' own bytes, the
compute dtype and the BatchNorm policy and modes. Any change gives a different key.
"""

import dataclasses
import hashlib
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor
from torch import nn as tnn

from .._atomic import atomic_torch_save, remove_stale_temporaries
from .._distributed import DistributedContext
from .._freeze import is_batchnorm
from .._frozen_step import frozen_features
from .._precision import PRECISION_DTYPES, check_precision
from .._typing import Features, Images
from ..data import ImageSplit, StreamedSplit, describe_preprocessing, iterate_batches
from ..models import ResNet

PRECISIONS: dict[str, torch.dtype] = PRECISION_DTYPES
"""Compute precisions by name: fp32, or bf16 autocast (`resfx.train.Precision`'s names)."""


def _update_with_tensor(digest: "hashlib._Hash", name: str, tensor: Tensor) -> None:
    flat = tensor.detach().reshape(-1).contiguous().cpu()
    digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(flat.view(torch.uint8).numpy().tobytes())


def tensor_checksum(tree: object) -> str:
    """SHA-256 over a nest of dicts, lists and tuples: every tensor's bytes and every plain value.

    What a file's readers verify to know that what they loaded is what was
    written (`torch.load` does not check the CRCs of its zip file). Lists and
    tuples hash alike (a loader may return either).

    Args:
        tree: tensors, plain values (numbers, strings, `None`) and containers of them.

    Returns:
        The hex digest.

    Example:
        >>> import torch
        >>> a = {"x": torch.zeros(2), "n": 3}
        >>> tensor_checksum(a) == tensor_checksum({"x": torch.zeros(2), "n": 3})
        True
        >>> tensor_checksum(a) == tensor_checksum({"x": torch.tensor([0.0, 1e-45]), "n": 3})
        False
    """
    digest = hashlib.sha256()

    def visit(path: str, value: object) -> None:
        if isinstance(value, Tensor):
            _update_with_tensor(digest, path, value)
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(f"{path}/{key!r}", item)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(f"{path}/{index}", item)
        else:
            digest.update(f"{path}={value!r};".encode())

    visit("", tree)
    return digest.hexdigest()


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


def _refuse_train_mode(model: tnn.Module) -> None:
    if "T" in _batchnorm_modes(model):
        raise ValueError(
            "the model has BatchNorm layers in training mode, so its features would depend "
            "on the batch they are computed in (and could update running statistics): "
            "freeze the backbone with bn='eval' or call model.eval() before caching"
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
        feature_shape: the shape of one example's features (`(512,)` for ResNet34);
            `None` leaves it unchecked.
        dtype: the features' dtype name (resfx computes `float32` features).
        stage: which output: `"pooled"` (`forward_features`), or a stage of
            `resfx.models.FEATURE_STAGES` whose feature map is average-pooled.

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
    feature_shape: tuple[int, ...] | None = None
    dtype: str = "float32"
    stage: str = "pooled"

    def digest(self) -> str:
        """SHA-256 over all fields: the cache file's name.

        Example:
            >>> len(FeatureKey("a", "b", "c", "d", "e", 1, "fp32", "eval").digest())
            64
        """
        text = "\n".join(f"{field}={value}" for field, value in asdict(self).items())
        return hashlib.sha256(text.encode()).hexdigest()


def feature_key(
    model: ResNet, split: ImageSplit | StreamedSplit, *, image_size: int, precision: str, bn: str
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
    return FeatureKey(
        backbone=fingerprint_module(model, exclude_prefix="fc."),
        preprocessing=describe_preprocessing(image_size),
        dataset=split.dataset,
        split=split.split,
        content=split.content_digest(),
        count=len(split),
        precision=precision,
        bn=f"{bn}:{_batchnorm_modes(model)}",
        feature_shape=(model.fc.in_features,),
    )


def compute_features(
    model: ResNet,
    split: ImageSplit | StreamedSplit,
    *,
    image_size: int,
    batch_size: int = 256,
    precision: str = "fp32",
    context: DistributedContext | None = None,
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
        context: the processes of a `torchrun` launch that share the pass (see
            `compute_stage_features`); `None`: this process computes every image.

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
    return compute_stage_features(
        model,
        split,
        ["pooled"],
        image_size=image_size,
        batch_size=batch_size,
        precision=precision,
        context=context,
    )["pooled"]


def compute_stage_features(
    model: ResNet,
    split: ImageSplit | StreamedSplit,
    stages: Sequence[str],
    *,
    image_size: int,
    batch_size: int = 256,
    precision: str = "fp32",
    context: DistributedContext | None = None,
) -> dict[str, Float[Tensor, "b _"]]:
    """Average-pooled features of several stages from one inference pass over `split`.

    Each stage's feature map `(b, c, h, w)` is averaged over `h, w`; `"pooled"`
    is `forward_features` (the same as `"layer4"` pooled). Under `torchrun`,
    with `context`, each process runs only its share of the batches
    (`context.share(len(split), block=batch_size)`: whole batches, in order)
    and an all-gather gives every process all the features: the same batches
    as one process would run, so the same bits, row for row.

    Args:
        model: the ResNet (on the split's device), BatchNorm in eval mode.
        split: the images.
        stages: names of `model.feature_stages` (the same on every process).
        image_size: side of the resized inputs.
        batch_size: images per forward pass.
        precision: `"fp32"` or `"bf16"`.
        context: the processes that share the pass; `None`: this process computes
            every image. Every process of `context` must call this together.

    Returns:
        float32 features `(len(split), channels)` per stage, on the split's device.

    Raises:
        ValueError: unknown precision or stage.

    Example:
        >>> from resfx.models import ResNet, ResNetConfig
        >>> from resfx.data import load_split
        >>> model = ResNet(ResNetConfig(width=4)).eval()
        >>> out = compute_stage_features(model, load_split("synthetic", "test", 3), ["stem", "layer2"],
        ...                              image_size=32)
        >>> {k: tuple(v.shape) for k, v in out.items()}
        {'stem': (3, 4), 'layer2': (3, 8)}
    """
    check_precision(precision)
    device = split.device
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    chunks: dict[str, list[Tensor]] = {stage: [] for stage in stages}
    share = _share_of(context, len(split), batch_size)
    order = torch.arange(share.start, share.stop)
    widths: dict[str, int] = {}

    def pooled_stages(images: Images) -> Features:
        # One frozen forward for every stage: their pooled features side by side.
        pooled = {
            stage: output if output.ndim == 2 else output.mean(dim=(2, 3))
            for stage, output in model.forward_stages(images, stages).items()
        }
        widths.update((stage, part.shape[1]) for stage, part in pooled.items())
        return torch.cat(list(pooled.values()), dim=1)

    for images, _ in iterate_batches(split, order, batch_size, image_size=image_size):
        inputs = images.contiguous(memory_format=memory_format)
        features = frozen_features(pooled_stages, inputs, precision=precision)
        for stage, part in zip(widths, features.split(list(widths.values()), dim=1), strict=True):
            chunks[stage].append(part)
    channels = model.config.stage_channels
    local = {
        stage: torch.cat(parts) if parts else torch.empty(0, channels[stage], device=device)
        for stage, parts in chunks.items()
    }
    if context is None:
        return local
    return {
        stage: context.all_gather_rows(part, total=len(split), block=batch_size)
        for stage, part in local.items()
    }


def _share_of(context: DistributedContext | None, total: int, batch_size: int) -> range:
    """The rows this process computes: its share under `context`, else all of them."""
    return range(total) if context is None else context.share(total, block=batch_size)


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
        _refuse_train_mode(model)
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
            self.computed_images += len(_share_of(self.context, len(split), batch_size))
            for stage in missing:
                if found[stage] is None:
                    found[stage] = self._store(keys[stage], computed[stage])
        return {stage: found[stage].to(split.device) for stage in stages}
