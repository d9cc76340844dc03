"""A pretrained ResNet34 with a frozen backbone and a new trainable head."""

import dataclasses
import os

from . import nn
from ._freeze import BNPolicy, freeze
from .models import ResNet, resnet34


def get_resnet_for_feature_extraction(
    n_classes: int,
    weights: str | os.PathLike[str] | None = "IMAGENET1K_V1",
    *,
    bn: BNPolicy = "eval",
) -> ResNet:
    """ResNet34 with pretrained weights, every backbone weight frozen, and a new `n_classes` head.

    The backbone (everything but `fc`) is frozen with `resfx.freeze`, so its
    BatchNorms follow the policy `bn` even after `model.train()`: with the
    default `"eval"` they normalise with the pretrained running statistics and
    never update them, which plain `requires_grad_(False)` would not ensure. The
    1000-class ImageNet classifier is replaced by a fresh
    `resfx.nn.Linear(512, n_classes)`, the only trainable part;
    `model.config.num_classes` says `n_classes`. Train it with an optimizer over
    `resfx.parameter_groups(model, lr=...)`; `resfx.unfreeze(model.layer4,
    optimizer=...)` fine-tunes more later.

    Args:
        n_classes: outputs of the new head; 1 gives a single logit (binary
            classification with `BCEWithLogitsLoss`).
        weights: `"IMAGENET1K_V1"` (torchvision's ImageNet weights, downloaded
            once into the torch hub cache), `"resnet34.tv_in1k"`, a path to a
            1000-class ResNet34 checkpoint, or `None` for a random backbone (tests).
        bn: the BatchNorm policy of the frozen backbone (see `resfx.freeze`).

    Returns:
        The model, on the CPU, in train mode (its frozen BatchNorms as `bn` says).

    Raises:
        TypeError: `n_classes` is not an int.
        ValueError: `n_classes < 1`, or unknown weights or policy.
        resfx.weights.CheckpointMismatchError: the checkpoint is not a 1000-class ResNet34.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch, resfx
        >>> model = resfx.get_resnet_for_feature_extraction(10, weights=None)
        >>> model.fc, model.bn1.training
        (Linear(in_features=512, out_features=10, bias=True), False)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int):
        raise TypeError(f"n_classes must be an int, got {n_classes!r}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1 (1 for a single logit), got {n_classes}")
    model = freeze(resnet34(weights=weights), bn=bn)
    model.fc = nn.Linear(model.config.feature_dim, n_classes)
    model.config = dataclasses.replace(model.config, num_classes=n_classes)
    return model
