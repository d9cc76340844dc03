"""What frozen features depend on, as content: model fingerprints, tensor checksums, the cache key.

Caches keyed by names (the dataset's, the model's) go stale silently when the
weights, the preprocessing or the subset change. These keys are made of
content: a hash of every backbone parameter and buffer, the preprocessing
description, the dataset, split, exact indices and the images' own bytes, the
compute dtype and the BatchNorm policy and modes. Any change gives a different key.
"""

import hashlib
from dataclasses import asdict, dataclass

import torch
from torch import Tensor
from torch import nn as tnn

from .._freeze import is_batchnorm
from .._precision import check_precision
from ..data import ImageSplit, StreamedSplit, describe_preprocessing
from ..models import ResNet


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


def batchnorm_modes(model: tnn.Module) -> str:
    """Each normalisation layer's mode, `T` (training: batch statistics) or `E` (eval), in order."""
    return "".join(
        "T" if module.training else "E" for module in model.modules() if is_batchnorm(module)
    )


def refuse_train_mode(model: tnn.Module) -> None:
    """Raise `ValueError` if a BatchNorm of `model` is in training mode (features would vary)."""
    if "T" in batchnorm_modes(model):
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
        stage: which output: `"pooled"` (`forward_pooled`), or a stage of
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
    """The content key of `model.forward_pooled` over `split`.

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
        bn=f"{bn}:{batchnorm_modes(model)}",
        feature_shape=(model.config.feature_dim,),
    )
