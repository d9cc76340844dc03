"""The zoo's public factories, generated from `resfx._zoo`'s specs, and `create_model`.

Each architecture is one `ArchSpec` in `resfx._zoo.ZOO`: its `ResNetConfig` fields,
its factory (keyword-only, torchvision's signature, a docstring written from the
spec) and its named weights come from there. Each architecture's named weights
are its own: `resnet18(weights="IMAGENET1K_V1")` fetches ResNet18's file, and a
name of another architecture is refused with the names that fit.
"""

import enum
import functools
import inspect
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, overload

import torch
from torch import Tensor

from .._weights._download import fetch_pretrained
from .._weights._load import REFERENCE_STATES, check_state_dict, read_checkpoint
from .._weights._registry import PRETRAINED
from .._zoo import ZOO, ArchSpec
from ._features_only import ResNetFeatures
from ._resnet import ResNet, ResNetConfig

Weights = str | os.PathLike[str] | enum.Enum | None
"""`None`, a weights name (`"IMAGENET1K_V2"`, `"DEFAULT"`, `"resnet50.tv2_in1k"`),
torchvision's enum member (`ResNet50_Weights.IMAGENET1K_V2`, an `enum.Enum`), or a
checkpoint path."""

ARCHITECTURES: dict[str, dict[str, Any]] = {
    name: {
        "layers": spec.layers,
        "block": spec.block,
        **({"groups": spec.groups} if spec.groups != 1 else {}),
        **({"width_per_group": spec.width_per_group} if spec.width_per_group != 64 else {}),
    }
    for name, spec in ZOO.items()
}
"""Each architecture's `ResNetConfig` fields, as torchvision builds it (from `resfx._zoo`)."""


def list_models() -> list[str]:
    """Names of every architecture `create_model` builds, in size order within each family.

    Example:
        >>> list_models()[0], "wide_resnet50_2" in list_models()
        ('resnet18', True)
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
    specs = [entry for entry in PRETRAINED.values() if entry.arch == arch]
    return [spec.tag if spec.tag.startswith("IMAGENET") else spec.name for spec in specs]


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {list_models()}")


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
    if isinstance(weights, enum.Enum):
        enum_class = type(weights).__name__
        if enum_class != ZOO[arch].torchvision_enum:
            raise ValueError(
                f"{enum_class}.{weights.name} are weights for another architecture; {arch} "
                f"takes {ZOO[arch].torchvision_enum} or one of {available_weights(arch)}"
            )
        weights = weights.name
    if isinstance(weights, str):
        tag = ZOO[arch].default if weights == "DEFAULT" else weights
        if tag is None:
            raise ValueError(
                f"{arch} has no published weights, so weights='DEFAULT' means nothing; pass "
                f"weights=None (random init) or the path of a checkpoint"
            )
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
    shape = ResNetConfig(**fields)
    return ResNet(shape) if resolved is None else _pretrained(shape, resolved, progress)


def _pretrained(config: ResNetConfig, weights: str | Path, progress: bool) -> ResNet:
    """Build on the meta device and take the checkpoint's tensors as the parameters.

    No random initialisation that the checkpoint replaces, and no copy (`assign=True`). For a
    pretrained ResNet34 on a 2-core CPU: 0.28 s instead of 1.65 s for random init and a copying
    load.
    """
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


def _split_name(name: str) -> tuple[str, str | None]:
    """`"resnet18.tv_in1k"` -> `("resnet18", "resnet18.tv_in1k")`, the arch and its weights key."""
    arch, dot, tag = name.partition(".")
    _check_arch(arch)
    if not dot:
        return arch, None
    known = [entry.tag for entry in PRETRAINED.values() if entry.arch == arch]
    if tag not in known:
        raise ValueError(f"unknown weights tag {tag!r} in {name!r}; {arch} has tags {known}")
    return arch, name


@overload
def create_model(
    name: str,
    pretrained: bool = False,
    *,
    weights: Weights = None,
    num_classes: int | None = None,
    progress: bool = True,
    features_only: Literal[False] = False,
    out_indices: None = None,
) -> ResNet: ...


@overload
def create_model(
    name: str,
    pretrained: bool = False,
    *,
    weights: Weights = None,
    num_classes: int | None = None,
    progress: bool = True,
    features_only: Literal[True],
    out_indices: int | Sequence[int] = (0, 1, 2, 3, 4),
) -> ResNetFeatures: ...


@overload
def create_model(
    name: str,
    pretrained: bool = False,
    *,
    weights: Weights = None,
    num_classes: int | None = None,
    progress: bool = True,
    features_only: bool,
    out_indices: int | Sequence[int] | None = None,
) -> ResNet | ResNetFeatures: ...


def create_model(
    name: str,
    pretrained: bool = False,
    *,
    weights: Weights = None,
    num_classes: int | None = None,
    progress: bool = True,
    features_only: bool = False,
    out_indices: int | Sequence[int] | None = None,
) -> ResNet | ResNetFeatures:
    """Build any architecture of `list_models()` by name, optionally pretrained, as timm's.

    `name` is an architecture (`"resnet50"`) or, as in timm, an architecture and
    a weights tag (`"resnet50.tv2_in1k"`, `"resnet50.IMAGENET1K_V2"`): the tag
    says which weights `pretrained=True` loads; without `pretrained` the model
    is randomly initialised, as timm's. `pretrained=True` without a tag loads
    the architecture's `"DEFAULT"` weights (torchvision's newest). With
    weights and a `num_classes` other than theirs, the backbone is loaded and
    `fc` replaced (`ResNet.reset_classifier`), as timm's; `num_classes=0` leaves
    no classifier. `features_only=True` returns the trunk as a
    `ResNetFeatures`, whose forward gives the maps at `out_indices` (timm's
    indices: 0 is `relu`'s output, timm's `act1`, and 1..4 `layer1..layer4`'s).

    Args:
        name: the architecture, optionally with a weights tag after a dot.
        pretrained: load the weights the tag names (or `"DEFAULT"`).
        weights: instead of `pretrained`: `None`, a weights name for this
            architecture (`available_weights(name)`, or `"DEFAULT"`), torchvision's
            enum member, or a checkpoint path.
        num_classes: outputs of `fc`; 0 for none; `None` keeps the weights' (1000) or 1000.
        progress: show a download progress bar.
        features_only: return a `ResNetFeatures` (the maps at `out_indices`).
        out_indices: with `features_only`, increasing indices in 0..4 or an int n
            for the last n (all five by default).

    Returns:
        The model (a `ResNet`, or a `ResNetFeatures` with `features_only`), in train
            mode, on the CPU (or on the device of a surrounding `with torch.device(...)` block).

    Raises:
        ValueError: unknown architecture, tag or weights; a tag or `pretrained`
            together with `weights`; `num_classes < 0`; `out_indices` without
            `features_only`, or out of range.
        resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.
        resfx.weights.WeightsUnavailableError: named weights not cached and offline.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = create_model("resnext50_32x4d.tv2_in1k", num_classes=10)
        >>> model.fc.out_features, model.config.groups
        (10, 32)
        >>> features = create_model("resnet18", features_only=True, out_indices=(2, 4))
        >>> features.feature_info.channels(), features.feature_info.reduction()
        ([128, 512], [8, 32])
    """
    arch, tagged = _split_name(name)
    if (pretrained or tagged is not None) and weights is not None:
        raise ValueError(
            f"create_model({name!r}, pretrained={pretrained}, weights={weights!r}): give the "
            f"weights either as weights= or as pretrained=True (with an optional tag in the "
            f"name), not both"
        )
    if pretrained:
        weights = tagged or "DEFAULT"
    if num_classes is not None and num_classes < 0:
        raise ValueError(f"num_classes must be 0 (no classifier) or more, got {num_classes}")
    if out_indices is not None and not features_only:
        raise ValueError(
            f"out_indices={out_indices} selects the maps of features_only=True; pass "
            f"features_only=True, or use model.forward_intermediates(x, indices=...)"
        )
    resolved = resolve_weights(arch, weights)
    pretrained_classes = PRETRAINED[resolved].num_classes if isinstance(resolved, str) else None
    build_classes = pretrained_classes or (1000 if num_classes is None else num_classes)
    model = _build(arch, resolved, progress, build_classes)
    if num_classes is not None and num_classes != build_classes:
        model.reset_classifier(num_classes)
    if features_only:
        return ResNetFeatures(model, (0, 1, 2, 3, 4) if out_indices is None else out_indices)
    return model


class BasicFactory(Protocol):
    """The signature of a factory of basic-block ResNets (`resnet18`, `resnet34`)."""

    def __call__(
        self,
        *,
        weights: Weights = None,
        progress: bool = True,
        num_classes: int = 1000,
        zero_init_residual: bool = False,
    ) -> ResNet: ...


class VariantFactory(Protocol):
    """The signature of a factory of a bottleneck variant whose width and groups are fixed."""

    def __call__(
        self,
        *,
        weights: Weights = None,
        progress: bool = True,
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] | None = None,
    ) -> ResNet: ...


class BottleneckFactory(Protocol):
    """The signature of `resnet50`, `resnet101`, `resnet152`: groups and width are keywords."""

    def __call__(
        self,
        *,
        weights: Weights = None,
        progress: bool = True,
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] | None = None,
    ) -> ResNet: ...


_ARGUMENTS = {
    "progress": "show a download progress bar.",
    "num_classes": "outputs of `fc`; must be 1000 for named ImageNet weights (`create_model` "
    "replaces the head instead).",
    "zero_init_residual": "start each block's last BatchNorm scale at zero.",
    "groups": "groups of each 3x3 convolution (torchvision's keyword).",
    "width_per_group": "width per group (torchvision's keyword).",
    "replace_stride_with_dilation": "dilate instead of striding in layer2..layer4 (e.g. "
    "`(False, True, True)` for output stride 8, as in segmentation).",
}


def _weights_argument(spec: ArchSpec) -> str:
    if not spec.weights and not spec.timm:
        return "`None` (random init; no weights are published for it) or a checkpoint path."
    tags = ", ".join(
        f'`"{file.tag}"` (= `"DEFAULT"`, resize {file.resize_size})'
        if file.tag == spec.default
        else f'`"{file.tag}"` (resize {file.resize_size})'
        for file in spec.weights
    )
    copies = ", ".join(f'`"{spec.name}.{copy.tag}"`' for copy in spec.timm)
    return (
        f"`None` (random init, as torchvision's); torchvision's ImageNet files {tags}, "
        f"downloaded into `$TORCH_HOME/hub/checkpoints` and hash-checked; timm's copies "
        f"{copies}; `torchvision.models.{spec.torchvision_enum}` members; or a checkpoint path."
    )


def _docstring(spec: ArchSpec, signature: inspect.Signature) -> str:
    """The factory's docstring, written from its spec and signature."""
    arguments = {"weights": _weights_argument(spec), **_ARGUMENTS}
    lines = [spec.summary, "", "Args:"]
    lines += [
        textwrap.fill(
            f"{name}: {arguments[name]}", 88, initial_indent=" " * 4, subsequent_indent=" " * 8
        )
        for name in signature.parameters
    ]
    lines += [
        "",
        "Returns:",
        "    The model, in train mode, on the CPU (or a surrounding `torch.device`'s).",
        "",
        "Raises:",
        "    ValueError: unknown weights, weights of another architecture, or a",
        "        `num_classes` that differs from the named weights'.",
        "    resfx.weights.CheckpointMismatchError: a checkpoint's keys or shapes differ.",
        "    resfx.weights.WeightsUnavailableError: named weights not cached and offline.",
        "    resfx.weights.ChecksumError: a downloaded or cached file fails its hash check.",
        "",
        "Example:",
        "    >>> import torch",
        '    >>> with torch.device("meta"):',
        f"    ...     print(sum(p.numel() for p in {spec.name}().parameters()))",
        f"    {spec.num_params}",
    ]
    return "\n".join(lines)


def _factory(name: str, kind: type[Any]) -> Any:
    """The public factory of `ZOO[name]`, with `kind`'s signature and a written docstring."""
    spec = ZOO[name]
    call = inspect.signature(kind.__call__)
    signature = call.replace(parameters=list(call.parameters.values())[1:])  # without self

    def factory(*args: Any, **kwargs: Any) -> ResNet:
        arguments = signature.bind(*args, **kwargs)  # refuses what a def would refuse
        arguments.apply_defaults()
        return _build(spec.name, **arguments.arguments)

    factory.__name__ = factory.__qualname__ = spec.name
    factory.__doc__ = _docstring(spec, signature)
    factory.__signature__ = signature  # type: ignore[attr-defined]
    return factory


resnet18: BasicFactory = _factory("resnet18", BasicFactory)
resnet34: BasicFactory = _factory("resnet34", BasicFactory)
resnet50: BottleneckFactory = _factory("resnet50", BottleneckFactory)
resnet101: BottleneckFactory = _factory("resnet101", BottleneckFactory)
resnet152: BottleneckFactory = _factory("resnet152", BottleneckFactory)
wide_resnet50_2: VariantFactory = _factory("wide_resnet50_2", VariantFactory)
wide_resnet101_2: VariantFactory = _factory("wide_resnet101_2", VariantFactory)
resnext50_32x4d: VariantFactory = _factory("resnext50_32x4d", VariantFactory)
resnext101_32x8d: VariantFactory = _factory("resnext101_32x8d", VariantFactory)
resnext101_64x4d: VariantFactory = _factory("resnext101_64x4d", VariantFactory)


def _meta_state(name: str) -> Mapping[str, Tensor]:
    with torch.device("meta"):
        return ResNet(ResNetConfig(**ARCHITECTURES[name])).state_dict()


# lets a mismatch message name the architecture a file is for (`resfx.weights` sits below)
REFERENCE_STATES.update(
    {name: functools.cache(functools.partial(_meta_state, name)) for name in ZOO}
)
