"""Public factories: `resnet18()` and `resnet34()` with optional pretrained weights."""

import os

from .._weights import PRETRAINED, load_weights
from ._resnet import ResNet, ResNetConfig


def _build(
    layers: tuple[int, int, int, int],
    weights: str | os.PathLike[str] | None,
    num_classes: int,
    progress: bool,
) -> ResNet:
    if isinstance(weights, str) and weights in PRETRAINED:
        expected = PRETRAINED[weights].num_classes
        if num_classes != expected:
            raise ValueError(
                f"weights={weights!r} has {expected} classes but num_classes={num_classes}; "
                f"load with num_classes={expected} and replace model.fc, or use "
                f"resfx.get_resnet_for_feature_extraction(num_classes={num_classes})"
            )
    model = ResNet(ResNetConfig(layers=layers, num_classes=num_classes))
    if weights is not None:
        load_weights(model, weights, progress=progress)
    return model


def resnet34(
    *,
    weights: str | os.PathLike[str] | None = None,
    num_classes: int = 1000,
    progress: bool = True,
) -> ResNet:
    """ResNet34 (blocks 3-4-6-3) built from resfx modules, optionally with pretrained weights.

    Args:
        weights: `None` (random init, as torchvision's), `"IMAGENET1K_V1"`
            (torchvision's ImageNet file, downloaded and hash-checked into
            `$TORCH_HOME/hub/checkpoints`), `"resnet34.tv_in1k"` (timm's copy),
            or a path to a `.pth` or `.safetensors` checkpoint.
        num_classes: outputs of `fc`; must be 1000 for the named ImageNet weights.
        progress: show a download progress bar.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights name, or `num_classes` differs from the named weights'.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> model = resnet34(num_classes=10)
        >>> sum(p.numel() for p in model.parameters())
        21289802
    """
    return _build((3, 4, 6, 3), weights, num_classes, progress)


def resnet18(
    *,
    weights: str | os.PathLike[str] | None = None,
    num_classes: int = 1000,
    progress: bool = True,
) -> ResNet:
    """ResNet18 (blocks 2-2-2-2); the same constructor as `resnet34` with fewer blocks.

    Args:
        weights: `None` or a path to a ResNet18 `.pth` / `.safetensors` checkpoint.
        num_classes: outputs of `fc`.
        progress: unused without named weights; kept for the same signature.

    Returns:
        The model.

    Raises:
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ
            (the named weights are ResNet34's).

    Example:
        >>> sum(p.numel() for p in resnet18().parameters())
        11689512
    """
    return _build((2, 2, 2, 2), weights, num_classes, progress)
