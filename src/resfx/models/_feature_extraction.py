"""A pretrained ResNet (ResNet34 by default) with a frozen backbone and a new trainable head.

The one place `models` uses freezing: `resfx._freeze` sits below `models` (it needs
only `resfx.nn`, and reads a model's stages as data), so this factory can live with
the others.
"""

import warnings

from .._freeze import BNPolicy, freeze
from ._factory import Weights, create_model
from ._resnet import ResNet


def get_resnet_for_feature_extraction(
    num_classes: int | None = None,
    *,
    weights: Weights = None,
    arch: str = "resnet34",
    bn: BNPolicy = "eval",
    progress: bool = True,
    n_classes: int | None = None,
) -> ResNet:
    """A ResNet (`arch`, ResNet34 by default) with every backbone weight frozen and a new head.

    The backbone (everything but `fc`) is frozen with `resfx.freeze`, so its
    BatchNorms follow the policy `bn` even after `model.train()`: with the
    default `"eval"` they normalise with the backbone's running statistics and
    never update them, which plain `requires_grad_(False)` would not ensure. The
    1000-class ImageNet classifier is replaced by a fresh
    `resfx.nn.Linear(feature_dim, num_classes)` (512 for ResNet18/34, 2048 for the
    Bottleneck nets), the only trainable part;
    `model.config.num_classes` says `num_classes`. Train it with an optimizer over
    `resfx.parameter_groups(model, lr=...)`; `resfx.unfreeze(model.layer4,
    optimizer=...)` fine-tunes more later. The class count may be given by
    position, as the seed's `get_resnet_for_feature_extraction(10)` does; the
    rest is keyword-only, and offline by default like `resnet34`.

    Args:
        num_classes: outputs of the new head; 1 gives a single logit (binary
            classification with `BCEWithLogitsLoss`). Required.
        weights: `None` (a random backbone, as the factories' default), a weights name
            of `arch` (`"IMAGENET1K_V1"`, `"DEFAULT"`, `"resnet34.tv_in1k"`, ...:
            `resfx.models.available_weights(arch)`; downloaded once into the torch hub
            cache), or a path to a 1000-class checkpoint of `arch`.
        arch: the architecture, a name of `resfx.models.list_models()`.
        bn: the BatchNorm policy of the frozen backbone (see `resfx.freeze`).
        progress: show a download progress bar.
        n_classes: deprecated name of `num_classes` (kept for one release; warns).

    Returns:
        The model, on the CPU, in train mode (its frozen BatchNorms as `bn` says).

    Raises:
        TypeError: `num_classes` is missing or not an int, or given twice.
        ValueError: `num_classes < 1`, or unknown weights or policy.
        resfx.weights.CheckpointMismatchError: the checkpoint is not a 1000-class `arch`.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch, resfx
        >>> model = resfx.get_resnet_for_feature_extraction(10)
        >>> model.fc, model.bn1.training
        (Linear(in_features=512, out_features=10, bias=True), False)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
        >>> resfx.get_resnet_for_feature_extraction(num_classes=10, arch="resnet50").fc.in_features
        2048
    """
    if n_classes is not None:
        if num_classes is not None:
            raise TypeError(
                f"give num_classes only (n_classes={n_classes} is its deprecated name), "
                f"got both: num_classes={num_classes}"
            )
        warnings.warn(
            "get_resnet_for_feature_extraction(n_classes=...) is deprecated and will be removed "
            "in the next release; pass num_classes=...",
            DeprecationWarning,
            stacklevel=2,
        )
        num_classes = n_classes
    if num_classes is None:
        raise TypeError(
            "get_resnet_for_feature_extraction needs num_classes=..., the head's outputs"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(
            f"num_classes must be at least 1 (1 for a single logit), got {num_classes}"
        )
    model = freeze(create_model(arch, weights=weights, progress=progress), bn=bn)
    model.reset_classifier(num_classes)
    return model
