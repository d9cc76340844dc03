"""The model zoo as data: one spec per architecture, with its weights files and timm's copies.

Each `ArchSpec` is the one place an architecture is described: `resfx.models`
builds its `ResNetConfig`, its public factory and that factory's docstring from
it, and `resfx.weights` its entries of `PRETRAINED`. The torchvision metadata
(url, accuracy, parameter count, evaluation transform) is resfx's own copy,
checked against torchvision's weights enums by `tests/test_zoo.py`, so nothing
here imports torchvision. Plain data at the bottom of the layers: no resfx or
torch import.
"""

from dataclasses import dataclass
from typing import Literal

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet (RGB, [0, 1] scale), torchvision's `Normalize` for every file."""

IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet, as `IMAGENET_MEAN`."""

_TORCHVISION_URL = "https://download.pytorch.org/models/"
_PAPER_RECIPE = "https://github.com/pytorch/vision/tree/main/references/classification#resnet"
_RESNEXT_RECIPE = "https://github.com/pytorch/vision/tree/main/references/classification#resnext"
_WIDE_RECIPE = "https://github.com/pytorch/vision/pull/912#issue-445437439"
_NEW_RECIPE = "https://github.com/pytorch/vision/issues/3995#new-recipe"
_FIXRES_RECIPE = "https://github.com/pytorch/vision/issues/3995#new-recipe-with-fixres"


@dataclass(frozen=True)
class TorchvisionFile:
    """One of torchvision's ImageNet-1k weights files for an architecture, with its metadata.

    Args:
        tag: the enum member's name, `"IMAGENET1K_V1"`.
        file_name: the file's name, `<arch>-<first 8 hex digits of its SHA-256>.pth`.
        acc1: top-1 ImageNet-1k accuracy (%) torchvision reports.
        acc5: top-5 accuracy (%).
        resize_size: evaluation resize of the shorter side (256 for V1, 232 for V2).
        recipe: where the training recipe is described.
        crop_size: side of the evaluation centre crop.
        interpolation: the resize filter.

    Example:
        >>> ZOO["resnet50"].weights[-1].hash_prefix
        '11ad3fa6'
    """

    tag: str
    file_name: str
    acc1: float
    acc5: float
    resize_size: int
    recipe: str
    crop_size: int = 224
    interpolation: str = "bilinear"

    @property
    def url(self) -> str:
        """The download address."""
        return _TORCHVISION_URL + self.file_name

    @property
    def hash_prefix(self) -> str:
        """Leading hex digits of the file's SHA-256, from its name (torchvision's convention)."""
        return self.file_name.rsplit("-", 1)[1].split(".")[0]


@dataclass(frozen=True)
class TimmCopy:
    """timm's safetensors copy of one of torchvision's files, on the Hugging Face hub.

    Args:
        tag: timm's pretrained tag, `"tv_in1k"` or `"tv2_in1k"`.
        origin: the name of the torchvision file it copies (timm's `resnet.py`
            `default_cfgs`); the `tv_in1k` copies of ResNet18..152 are of
            torchvision's first releases, whose names differ from today's V1 files.
        recipe: the torchvision tag whose evaluation transform the copy expects.

    Example:
        >>> ZOO["resnet50"].timm[-1].origin
        'resnet50-11ad3fa6.pth'
    """

    tag: str
    origin: str
    recipe: str

    @property
    def origin_url(self) -> str:
        """The torchvision file it copies."""
        return _TORCHVISION_URL + self.origin


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its shape (torchvision's ResNet arguments) and its pretrained weights.

    Args:
        name: the factory's name, `"resnet50"`.
        summary: the factory docstring's first line.
        block: `"basic"` or `"bottleneck"`.
        layers: blocks in each of the four groups.
        num_params: parameters with the 1000-class head (checked by the factory's doctest).
        torchvision_enum: the name of torchvision's weights enum, `"ResNet50_Weights"`, or
            `None` for an architecture torchvision does not publish.
        weights: torchvision's files, oldest first; the last is `"DEFAULT"`. None for an
            architecture without published weights (random init or a checkpoint path).
        timm: timm's copies.
        groups: groups of every 3x3 convolution (ResNeXt).
        width_per_group: torchvision's `width_per_group` (wide ResNets 128).

    Example:
        >>> spec = ZOO["resnext50_32x4d"]
        >>> spec.layers, spec.groups, spec.default
        ((3, 4, 6, 3), 32, 'IMAGENET1K_V2')
    """

    name: str
    summary: str
    block: Literal["basic", "bottleneck"]
    layers: tuple[int, int, int, int]
    num_params: int
    torchvision_enum: str | None = None
    weights: tuple[TorchvisionFile, ...] = ()
    timm: tuple[TimmCopy, ...] = ()
    groups: int = 1
    width_per_group: int = 64

    @property
    def default(self) -> str | None:
        """The tag `"DEFAULT"` means: torchvision's newest file (`None` when there is none)."""
        return self.weights[-1].tag if self.weights else None


def _v1(file_name: str, acc1: float, acc5: float, recipe: str = _PAPER_RECIPE) -> TorchvisionFile:
    return TorchvisionFile("IMAGENET1K_V1", file_name, acc1, acc5, 256, recipe)


def _v2(file_name: str, acc1: float, acc5: float, recipe: str = _NEW_RECIPE) -> TorchvisionFile:
    return TorchvisionFile("IMAGENET1K_V2", file_name, acc1, acc5, 232, recipe)


def _timm(tv_in1k: str, tv2_in1k: str | None = None) -> tuple[TimmCopy, ...]:
    copies = [TimmCopy("tv_in1k", tv_in1k, "IMAGENET1K_V1")]
    if tv2_in1k is not None:
        copies.append(TimmCopy("tv2_in1k", tv2_in1k, "IMAGENET1K_V2"))
    return tuple(copies)


_SPECS = (
    ArchSpec(
        name="resnet18",
        summary="ResNet18 (basic blocks 2-2-2-2), torchvision's signature, optionally pretrained.",
        block="basic",
        layers=(2, 2, 2, 2),
        num_params=11_689_512,
        torchvision_enum="ResNet18_Weights",
        weights=(_v1("resnet18-f37072fd.pth", 69.758, 89.078),),
        timm=_timm("resnet18-5c106cde.pth"),
    ),
    ArchSpec(
        name="resnet34",
        summary="ResNet34 (basic blocks 3-4-6-3), torchvision's signature, optionally pretrained.",
        block="basic",
        layers=(3, 4, 6, 3),
        num_params=21_797_672,
        torchvision_enum="ResNet34_Weights",
        weights=(_v1("resnet34-b627a593.pth", 73.314, 91.42),),
        timm=_timm("resnet34-333f7ec4.pth"),
    ),
    ArchSpec(
        name="resnet50",
        summary="ResNet50 (bottlenecks 3-4-6-3, torchvision's v1.5: stride on the 3x3 convolution).",
        block="bottleneck",
        layers=(3, 4, 6, 3),
        num_params=25_557_032,
        torchvision_enum="ResNet50_Weights",
        weights=(
            _v1("resnet50-0676ba61.pth", 76.13, 92.862),
            _v2(
                "resnet50-11ad3fa6.pth",
                80.858,
                95.434,
                "https://github.com/pytorch/vision/issues/3995#issuecomment-1013906621",
            ),
        ),
        timm=_timm("resnet50-19c8e357.pth", "resnet50-11ad3fa6.pth"),
    ),
    ArchSpec(
        name="resnet101",
        summary="ResNet101 (bottlenecks 3-4-23-3); the same arguments as `resnet50`.",
        block="bottleneck",
        layers=(3, 4, 23, 3),
        num_params=44_549_160,
        torchvision_enum="ResNet101_Weights",
        weights=(
            _v1("resnet101-63fe2227.pth", 77.374, 93.546),
            _v2("resnet101-cd907fc2.pth", 81.886, 95.78),
        ),
        timm=_timm("resnet101-5d3b4d8f.pth", "resnet101-cd907fc2.pth"),
    ),
    ArchSpec(
        name="resnet152",
        summary="ResNet152 (bottlenecks 3-8-36-3); the same arguments as `resnet50`.",
        block="bottleneck",
        layers=(3, 8, 36, 3),
        num_params=60_192_808,
        torchvision_enum="ResNet152_Weights",
        weights=(
            _v1("resnet152-394f9c45.pth", 78.312, 94.046),
            _v2("resnet152-f82ba261.pth", 82.284, 96.002),
        ),
        timm=_timm("resnet152-b121ed2d.pth", "resnet152-f82ba261.pth"),
    ),
    ArchSpec(
        name="wide_resnet50_2",
        summary="Wide ResNet-50-2: ResNet50 with bottlenecks twice as wide inside.",
        block="bottleneck",
        layers=(3, 4, 6, 3),
        width_per_group=128,
        num_params=68_883_240,
        torchvision_enum="Wide_ResNet50_2_Weights",
        weights=(
            _v1("wide_resnet50_2-95faca4d.pth", 78.468, 94.086, _WIDE_RECIPE),
            _v2("wide_resnet50_2-9ba9bcbe.pth", 81.602, 95.758, _FIXRES_RECIPE),
        ),
        timm=_timm("wide_resnet50_2-95faca4d.pth", "wide_resnet50_2-9ba9bcbe.pth"),
    ),
    ArchSpec(
        name="wide_resnet101_2",
        summary="Wide ResNet-101-2: ResNet101 with bottlenecks twice as wide inside.",
        block="bottleneck",
        layers=(3, 4, 23, 3),
        width_per_group=128,
        num_params=126_886_696,
        torchvision_enum="Wide_ResNet101_2_Weights",
        weights=(
            _v1("wide_resnet101_2-32ee1156.pth", 78.848, 94.284, _WIDE_RECIPE),
            _v2("wide_resnet101_2-d733dc28.pth", 82.51, 96.02),
        ),
        timm=_timm("wide_resnet101_2-32ee1156.pth", "wide_resnet101_2-d733dc28.pth"),
    ),
    ArchSpec(
        name="resnext50_32x4d",
        summary="ResNeXt-50 32x4d: ResNet50's layout, 32 groups of width 4 in every 3x3 convolution.",
        block="bottleneck",
        layers=(3, 4, 6, 3),
        groups=32,
        width_per_group=4,
        num_params=25_028_904,
        torchvision_enum="ResNeXt50_32X4D_Weights",
        weights=(
            _v1("resnext50_32x4d-7cdf4587.pth", 77.618, 93.698, _RESNEXT_RECIPE),
            _v2("resnext50_32x4d-1a0047aa.pth", 81.198, 95.34),
        ),
        timm=_timm("resnext50_32x4d-7cdf4587.pth", "resnext50_32x4d-1a0047aa.pth"),
    ),
    ArchSpec(
        name="resnext101_32x8d",
        summary="ResNeXt-101 32x8d: ResNet101's layout with 32 groups of width 8.",
        block="bottleneck",
        layers=(3, 4, 23, 3),
        groups=32,
        width_per_group=8,
        num_params=88_791_336,
        torchvision_enum="ResNeXt101_32X8D_Weights",
        weights=(
            _v1("resnext101_32x8d-8ba56ff5.pth", 79.312, 94.526, _RESNEXT_RECIPE),
            _v2("resnext101_32x8d-110c445d.pth", 82.834, 96.228, _FIXRES_RECIPE),
        ),
        timm=_timm("resnext101_32x8d-8ba56ff5.pth", "resnext101_32x8d-110c445d.pth"),
    ),
    ArchSpec(
        name="resnext101_64x4d",
        summary="ResNeXt-101 64x4d: ResNet101's layout with 64 groups of width 4.",
        block="bottleneck",
        layers=(3, 4, 23, 3),
        groups=64,
        width_per_group=4,
        num_params=83_455_272,
        torchvision_enum="ResNeXt101_64X4D_Weights",
        # trained with the new recipe from the start: its one file is "V1" with V2's transform
        weights=(
            TorchvisionFile(
                "IMAGENET1K_V1",
                "resnext101_64x4d-173b62eb.pth",
                83.246,
                96.454,
                232,
                "https://github.com/pytorch/vision/pull/5935",
            ),
        ),
        timm=_timm("resnext101_64x4d-173b62eb.pth"),
    ),
)

ZOO: dict[str, ArchSpec] = {spec.name: spec for spec in _SPECS}
"""Every architecture resfx builds, by factory name, in size order within each family."""
