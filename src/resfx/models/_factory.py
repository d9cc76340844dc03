"""Public factories with torchvision's signatures, the model registry and `create_model`.

Each architecture's named weights are its own: `resnet18(weights="IMAGENET1K_V1")`
fetches ResNet18's file, and a name of another architecture is refused with the
names that fit.
"""

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from .. import nn
from .._weights import (
    PRETRAINED,
    TORCHVISION_WEIGHTS,
    check_state_dict,
    fetch_pretrained,
    read_checkpoint,
)
from ._resnet import ResNet, ResNetConfig

Weights = str | os.PathLike[str] | Any | None
"""`None`, a weights name (`"IMAGENET1K_V2"`, `"DEFAULT"`, `"resnet50.tv2_in1k"`),
torchvision's enum member (`ResNet50_Weights.IMAGENET1K_V2`), or a checkpoint path."""

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "resnet18": {"layers": (2, 2, 2, 2), "block": "basic"},
    "resnet34": {"layers": (3, 4, 6, 3), "block": "basic"},
    "resnet50": {"layers": (3, 4, 6, 3), "block": "bottleneck"},
    "resnet101": {"layers": (3, 4, 23, 3), "block": "bottleneck"},
    "resnet152": {"layers": (3, 8, 36, 3), "block": "bottleneck"},
    "wide_resnet50_2": {"layers": (3, 4, 6, 3), "block": "bottleneck", "width_per_group": 128},
    "wide_resnet101_2": {"layers": (3, 4, 23, 3), "block": "bottleneck", "width_per_group": 128},
    "resnext50_32x4d": {
        "layers": (3, 4, 6, 3),
        "block": "bottleneck",
        "groups": 32,
        "width_per_group": 4,
    },
    "resnext101_32x8d": {
        "layers": (3, 4, 23, 3),
        "block": "bottleneck",
        "groups": 32,
        "width_per_group": 8,
    },
    "resnext101_64x4d": {
        "layers": (3, 4, 23, 3),
        "block": "bottleneck",
        "groups": 64,
        "width_per_group": 4,
    },
}
"""Each architecture's `ResNetConfig` fields, as torchvision builds it."""


def list_models() -> list[str]:
    """Names of every architecture `create_model` builds, in size order within each family.

    Example:
        >>> list_models()[:3]
        ['resnet18', 'resnet34', 'resnet50']
    """
    return list(ARCHITECTURES)


def available_weights(arch: str) -> list[str]:
    """The weights names one architecture's factory accepts (torchvision's tags, then timm's).

    Args:
        arch: a name from `list_models()`.

    Returns:
        Tags such as `"IMAGENET1K_V2"` and timm names such as `"resnet50.tv2_in1k"`.

    Raises:
        ValueError: unknown architecture.

    Example:
        >>> available_weights("resnet50")
        ['IMAGENET1K_V1', 'IMAGENET1K_V2', 'resnet50.tv_in1k', 'resnet50.tv2_in1k']
    """
    _check_arch(arch)
    specs = [spec for spec in PRETRAINED.values() if spec.arch == arch]
    return [spec.tag if spec.tag.startswith("IMAGENET") else spec.name for spec in specs]


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {list_models()}")


def _default_tag(arch: str) -> str:
    from torchvision import models

    return getattr(models, TORCHVISION_WEIGHTS[arch]).DEFAULT.name


def resolve_weights(arch: str, weights: Weights) -> str | Path | None:
    """The `PRETRAINED` key or checkpoint path that `weights` means for `arch`.

    Args:
        arch: a name from `list_models()`.
        weights: see `Weights`.

    Returns:
        `None`, a key of `resfx.weights.PRETRAINED` for `arch`, or a file path.

    Raises:
        ValueError: a name of another architecture, an enum of another
            architecture, or neither a known name nor an existing file.

    Example:
        >>> resolve_weights("resnet18", "IMAGENET1K_V1")
        'resnet18.IMAGENET1K_V1'
        >>> resolve_weights("resnet50", "DEFAULT")
        'resnet50.IMAGENET1K_V2'
    """
    _check_arch(arch)
    if weights is None:
        return None
    enum_class = type(weights).__name__
    if enum_class.endswith("_Weights"):
        if enum_class != TORCHVISION_WEIGHTS[arch]:
            raise ValueError(
                f"{enum_class}.{weights.name} are weights for another architecture; {arch} "
                f"takes {TORCHVISION_WEIGHTS[arch]} or one of {available_weights(arch)}"
            )
        weights = weights.name
    if isinstance(weights, str):
        tag = _default_tag(arch) if weights == "DEFAULT" else weights
        for key in (f"{arch}.{tag}", tag):
            if key in PRETRAINED and PRETRAINED[key].arch == arch:
                return key
        if tag in PRETRAINED:
            other = PRETRAINED[tag].arch
            raise ValueError(
                f"weights {tag!r} are {other}'s, not {arch}'s; use create_model({other!r}, "
                f"weights={tag!r}) or one of {available_weights(arch)}"
            )
    path = Path(weights)
    if not path.is_file():
        raise ValueError(
            f"weights={str(weights)!r} is neither a known name for {arch} "
            f"({available_weights(arch)}, or 'DEFAULT') nor an existing .pth/.safetensors file"
        )
    return path


def _build(
    arch: str,
    weights: Weights,
    progress: bool,
    num_classes: int,
    **config: Any,
) -> ResNet:
    resolved = resolve_weights(arch, weights)
    if isinstance(resolved, str):
        expected = PRETRAINED[resolved].num_classes
        if num_classes != expected:
            raise ValueError(
                f"weights={resolved!r} has {expected} classes but num_classes={num_classes}; "
                f"load with num_classes={expected} and replace model.fc, or use "
                f"resfx.create_model({arch!r}, weights=..., num_classes={num_classes})"
            )
    dilation = config.pop("replace_stride_with_dilation", None)
    fields = {**ARCHITECTURES[arch], **config, "num_classes": num_classes}
    if dilation is not None:
        fields["replace_stride_with_dilation"] = tuple(dilation)
    config = ResNetConfig(**fields)
    return ResNet(config) if resolved is None else _pretrained(config, resolved, progress)


def _pretrained(config: ResNetConfig, weights: str | Path, progress: bool) -> ResNet:
    """Build on the meta device, skipping the random initialisation the checkpoint replaces, and
    take the checkpoint's tensors as the parameters (`assign=True`, no copy). For a pretrained
    ResNet34 on a 2-core CPU: 0.28 s instead of 1.65 s for random init and a copying load."""
    path = fetch_pretrained(weights, progress=progress) if isinstance(weights, str) else weights
    with torch.device("meta"):
        model = ResNet(config)
    state_dict = read_checkpoint(path)
    check_state_dict(model, state_dict)
    # a copying load casts to the parameters' dtype; assigning must do the same
    dtypes = {name: tensor.dtype for name, tensor in model.state_dict().items()}
    state_dict = {name: tensor.to(dtypes[name]) for name, tensor in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model


def create_model(
    name: str,
    *,
    weights: Weights = None,
    num_classes: int | None = None,
    progress: bool = True,
) -> ResNet:
    """Build any architecture of `list_models()` by name, optionally pretrained, any head size.

    With named weights and a `num_classes` other than theirs, the backbone is
    loaded and `fc` replaced by a fresh `resfx.nn.Linear(feature_dim,
    num_classes)` (as timm's `create_model(..., pretrained=True, num_classes=...)`);
    `model.config.num_classes` says the new size.

    Args:
        name: the architecture, e.g. `"resnet50"`.
        weights: `None` (random init), a weights name for this architecture
            (`available_weights(name)`, or `"DEFAULT"`), torchvision's enum
            member, or a checkpoint path.
        num_classes: outputs of `fc`; `None` keeps the weights' (1000) or 1000.
        progress: show a download progress bar.

    Returns:
        The model, in train mode, on the CPU (or on the device of a surrounding
        `with torch.device(...)` block).

    Raises:
        ValueError: unknown architecture or weights, or `num_classes < 1`.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = create_model("resnext50_32x4d", num_classes=10)
        >>> model.fc.out_features, model.config.groups
        (10, 32)
    """
    _check_arch(name)
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    resolved = resolve_weights(name, weights)
    pretrained_classes = PRETRAINED[resolved].num_classes if isinstance(resolved, str) else None
    build_classes = pretrained_classes or num_classes or 1000
    model = _build(name, resolved, progress, build_classes)
    if num_classes is not None and num_classes != build_classes:
        model.fc = nn.Linear(model.config.feature_dim, num_classes)
        model.config = dataclasses.replace(model.config, num_classes=num_classes)
    return model


def resnet18(
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet18 (basic blocks 2-2-2-2), torchvision's signature, optionally pretrained.

    Args:
        weights: `None` (random init, as torchvision's), `"IMAGENET1K_V1"` /
            `"DEFAULT"` (torchvision's ImageNet file, downloaded and hash-checked
            into `$TORCH_HOME/hub/checkpoints`), `"resnet18.tv_in1k"` (timm's
            copy), `ResNet18_Weights.IMAGENET1K_V1`, or a checkpoint path.
        progress: show a download progress bar.
        num_classes: outputs of `fc`; must be 1000 for named ImageNet weights
            (`create_model` replaces the head instead).
        zero_init_residual: start each block's last BatchNorm scale at zero.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights, weights of another architecture, or
            `num_classes` differs from the named weights'.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> sum(p.numel() for p in resnet18().parameters())
        11689512
    """
    return _build("resnet18", weights, progress, num_classes, zero_init_residual=zero_init_residual)


def resnet34(
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet34 (basic blocks 3-4-6-3); the same arguments as `resnet18`.

    Args:
        weights: `None`, `"IMAGENET1K_V1"` / `"DEFAULT"`, `"resnet34.tv_in1k"`,
            `ResNet34_Weights.IMAGENET1K_V1`, or a checkpoint path.
        progress: show a download progress bar.
        num_classes: outputs of `fc`; 1000 for named weights.
        zero_init_residual: start each block's last BatchNorm scale at zero.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights or a class count that differs from theirs.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> model = resnet34(num_classes=10)
        >>> sum(p.numel() for p in model.parameters())
        21289802
    """
    return _build("resnet34", weights, progress, num_classes, zero_init_residual=zero_init_residual)


def resnet50(
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
    groups: int = 1,
    width_per_group: int = 64,
    replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] | None = None,
) -> ResNet:
    """ResNet50 (bottlenecks 3-4-6-3, torchvision's v1.5: stride on the 3x3 convolution).

    Args:
        weights: `None`, `"IMAGENET1K_V1"`, `"IMAGENET1K_V2"` (= `"DEFAULT"`,
            trained for a 232 resize), `"resnet50.tv_in1k"`, `"resnet50.tv2_in1k"`,
            `ResNet50_Weights.*`, or a checkpoint path.
        progress: show a download progress bar.
        num_classes: outputs of `fc`; 1000 for named weights.
        zero_init_residual: start each block's last BatchNorm scale at zero.
        groups: groups of each 3x3 convolution (torchvision's keyword).
        width_per_group: width per group (torchvision's keyword).
        replace_stride_with_dilation: dilate instead of striding in layer2..layer4
            (e.g. `(False, True, True)` for output stride 8, as in segmentation).

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights or a class count that differs from theirs.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> sum(p.numel() for p in resnet50().parameters())
        25557032
    """
    return _build(
        "resnet50",
        weights,
        progress,
        num_classes,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
        groups=groups,
        width_per_group=width_per_group,
    )


def resnet101(
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
    groups: int = 1,
    width_per_group: int = 64,
    replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] | None = None,
) -> ResNet:
    """ResNet101 (bottlenecks 3-4-23-3); the same arguments as `resnet50`.

    Args:
        weights: `None`, `"IMAGENET1K_V1"`, `"IMAGENET1K_V2"` (= `"DEFAULT"`),
            `"resnet101.tv_in1k"`, `"resnet101.tv2_in1k"`, an enum member or a path.
        progress: show a download progress bar.
        num_classes: outputs of `fc`; 1000 for named weights.
        zero_init_residual: start each block's last BatchNorm scale at zero.
        groups: groups of each 3x3 convolution.
        width_per_group: width per group.
        replace_stride_with_dilation: dilate instead of striding in layer2..layer4.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights or a class count that differs from theirs.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     print(sum(p.numel() for p in resnet101().parameters()))
        44549160
    """
    return _build(
        "resnet101",
        weights,
        progress,
        num_classes,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
        groups=groups,
        width_per_group=width_per_group,
    )


def resnet152(
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
    groups: int = 1,
    width_per_group: int = 64,
    replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] | None = None,
) -> ResNet:
    """ResNet152 (bottlenecks 3-8-36-3); the same arguments as `resnet50`.

    Args:
        weights: `None`, `"IMAGENET1K_V1"`, `"IMAGENET1K_V2"` (= `"DEFAULT"`),
            `"resnet152.tv_in1k"`, `"resnet152.tv2_in1k"`, an enum member or a path.
        progress: show a download progress bar.
        num_classes: outputs of `fc`; 1000 for named weights.
        zero_init_residual: start each block's last BatchNorm scale at zero.
        groups: groups of each 3x3 convolution.
        width_per_group: width per group.
        replace_stride_with_dilation: dilate instead of striding in layer2..layer4.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights or a class count that differs from theirs.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     print(sum(p.numel() for p in resnet152().parameters()))
        60192808
    """
    return _build(
        "resnet152",
        weights,
        progress,
        num_classes,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
        groups=groups,
        width_per_group=width_per_group,
    )


def wide_resnet50_2(
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
    replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] | None = None,
) -> ResNet:
    """Wide ResNet-50-2: ResNet50 with bottlenecks twice as wide inside (`width_per_group=128`).

    Args:
        weights: `None`, `"IMAGENET1K_V1"`, `"IMAGENET1K_V2"` (= `"DEFAULT"`),
            `"wide_resnet50_2.tv_in1k"`, `"wide_resnet50_2.tv2_in1k"`, an enum
            member or a path.
        progress: show a download progress bar.
        num_classes: outputs of `fc`; 1000 for named weights.
        zero_init_residual: start each block's last BatchNorm scale at zero.
        replace_stride_with_dilation: dilate instead of striding in layer2..layer4.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights or a class count that differs from theirs.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     print(sum(p.numel() for p in wide_resnet50_2().parameters()))
        68883240
    """
    return _build(
        "wide_resnet50_2",
        weights,
        progress,
        num_classes,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


def wide_resnet101_2(
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
    replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] | None = None,
) -> ResNet:
    """Wide ResNet-101-2: ResNet101 with bottlenecks twice as wide inside.

    Args:
        weights: `None`, `"IMAGENET1K_V1"`, `"IMAGENET1K_V2"` (= `"DEFAULT"`),
            `"wide_resnet101_2.tv_in1k"`, `"wide_resnet101_2.tv2_in1k"`, an enum
            member or a path.
        progress: show a download progress bar.
        num_classes: outputs of `fc`; 1000 for named weights.
        zero_init_residual: start each block's last BatchNorm scale at zero.
        replace_stride_with_dilation: dilate instead of striding in layer2..layer4.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights or a class count that differs from theirs.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     print(sum(p.numel() for p in wide_resnet101_2().parameters()))
        126886696
    """
    return _build(
        "wide_resnet101_2",
        weights,
        progress,
        num_classes,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


def resnext50_32x4d(
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
    replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] | None = None,
) -> ResNet:
    """ResNeXt-50 32x4d: ResNet50's layout with 32 groups of width 4 in every 3x3 convolution.

    Args:
        weights: `None`, `"IMAGENET1K_V1"`, `"IMAGENET1K_V2"` (= `"DEFAULT"`),
            `"resnext50_32x4d.tv_in1k"`, `"resnext50_32x4d.tv2_in1k"`, an enum
            member or a path.
        progress: show a download progress bar.
        num_classes: outputs of `fc`; 1000 for named weights.
        zero_init_residual: start each block's last BatchNorm scale at zero.
        replace_stride_with_dilation: dilate instead of striding in layer2..layer4.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights or a class count that differs from theirs.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     print(sum(p.numel() for p in resnext50_32x4d().parameters()))
        25028904
    """
    return _build(
        "resnext50_32x4d",
        weights,
        progress,
        num_classes,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


def resnext101_32x8d(
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
    replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] | None = None,
) -> ResNet:
    """ResNeXt-101 32x8d: ResNet101's layout with 32 groups of width 8.

    Args:
        weights: `None`, `"IMAGENET1K_V1"`, `"IMAGENET1K_V2"` (= `"DEFAULT"`),
            `"resnext101_32x8d.tv_in1k"`, `"resnext101_32x8d.tv2_in1k"`, an enum
            member or a path.
        progress: show a download progress bar.
        num_classes: outputs of `fc`; 1000 for named weights.
        zero_init_residual: start each block's last BatchNorm scale at zero.
        replace_stride_with_dilation: dilate instead of striding in layer2..layer4.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights or a class count that differs from theirs.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     print(sum(p.numel() for p in resnext101_32x8d().parameters()))
        88791336
    """
    return _build(
        "resnext101_32x8d",
        weights,
        progress,
        num_classes,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


def resnext101_64x4d(
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
    replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] | None = None,
) -> ResNet:
    """ResNeXt-101 64x4d: ResNet101's layout with 64 groups of width 4.

    Args:
        weights: `None`, `"IMAGENET1K_V1"` (= `"DEFAULT"`, trained for a 232
            resize), `"resnext101_64x4d.tv_in1k"`, an enum member or a path.
        progress: show a download progress bar.
        num_classes: outputs of `fc`; 1000 for named weights.
        zero_init_residual: start each block's last BatchNorm scale at zero.
        replace_stride_with_dilation: dilate instead of striding in layer2..layer4.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown weights or a class count that differs from theirs.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     print(sum(p.numel() for p in resnext101_64x4d().parameters()))
        83455272
    """
    return _build(
        "resnext101_64x4d",
        weights,
        progress,
        num_classes,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )
