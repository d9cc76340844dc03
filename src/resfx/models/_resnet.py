"""The residual blocks, the block group and the ResNet, built only from `resfx.nn` modules.

Module and parameter names are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`,
`layer1.0.downsample.0`, ..., `fc`), so its checkpoints load without any mapping.
One `ResNet` class covers the whole torchvision family: basic blocks (ResNet18/34),
bottlenecks (ResNet50/101/152), wide bottlenecks (`width_per_group=128`), grouped
bottlenecks (ResNeXt) and dilated last stages (`replace_stride_with_dilation`),
and has timm's model methods (`forward_features`, `forward_head`,
`forward_intermediates`, `feature_info`, `reset_classifier`) with timm's feature indices.
"""

import dataclasses
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypedDict, overload

import torch
from jaxtyping import Float
from torch import Tensor
from torch import nn as tnn

from .. import nn
from .._resnet_layout import RESNET_STAGES
from .._typing import Features, Images, Logits
from ..nn._switch import _tracing

STAGES: tuple[str, ...] = tuple(RESNET_STAGES)
"""Names of a ResNet's stages, input to output; `freeze_to` takes them."""

FEATURE_STAGES: tuple[str, ...] = (*STAGES[:-1], "pooled")
"""Outputs `ResNet.forward_stages` can return: each stage's feature map, then the pooled vector."""

TIMM_TAPS: tuple[str, ...] = ("relu", "layer1", "layer2", "layer3", "layer4")
"""The module whose output is each of timm's feature indices 0..4 (timm calls index 0 `act1`).

| timm index | timm module | resfx module | resfx stage (`FEATURE_STAGES`) | reduction |
| --- | --- | --- | --- | --- |
| 0 | `act1` | `relu` | none: inside `"stem"`, before its maxpool | 2 |
| none | `maxpool` | `maxpool` | `"stem"` | 4 |
| 1..4 | `layer1..layer4` | `layer1..layer4` | `"layer1"..."layer4"` | 4, 8, 16, 32 |
| none | `global_pool` | `avgpool` | `"pooled"` | none |
"""

_TRUNK: tuple[str, ...] = (
    "conv1",
    "bn1",
    "relu",
    "maxpool",
    "layer1",
    "layer2",
    "layer3",
    "layer4",
)
"""The modules before the pooling, in forward order."""

BlockKind = Literal["basic", "bottleneck"]
"""`"basic"`: two 3x3 convolutions (ResNet18/34); `"bottleneck"`: 1x1, 3x3, 1x1 (ResNet50+)."""


def conv3x3(
    in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, dilation: int = 1
) -> nn.Conv2d:
    """A 3x3 convolution with padding `dilation` and no bias (BatchNorm follows it).

    Example:
        >>> conv3x3(64, 128, stride=2).stride
        (2, 2)
    """
    return nn.Conv2d(
        in_channels,
        out_channels,
        3,
        stride=stride,
        padding=dilation,
        dilation=dilation,
        groups=groups,
        bias=False,
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """A 1x1 convolution with no bias, used to match shapes on a residual shortcut.

    Example:
        >>> conv1x1(64, 128, stride=2).kernel_size
        (1, 1)
    """
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """torchvision's `downsample`: a strided 1x1 convolution and BatchNorm when the shape changes."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(tnn.Module):
    """Two 3x3 convolutions with BatchNorm and a residual shortcut (ResNet18/34's block).

    The shortcut is a strided 1x1 convolution and BatchNorm (`downsample`) when
    the shape changes, the identity otherwise. The sum is out of place.

    Args:
        in_channels: channels entering the block.
        planes: channels leaving it (`planes * expansion`, with `expansion = 1`).
        stride: stride of the first convolution (2 halves the resolution).
        groups: must be 1 (as in torchvision).
        base_width: must be 64 (as in torchvision).
        dilation: must be 1 (as in torchvision).

    Raises:
        ValueError: `groups`, `base_width` or `dilation` is not the default.

    Example:
        >>> import torch
        >>> BasicBlock(8, 16, stride=2)(torch.randn(2, 8, 8, 8)).shape
        torch.Size([2, 16, 4, 4])
    """

    expansion: ClassVar[int] = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64 or dilation != 1:
            raise ValueError(
                f"BasicBlock supports only groups=1, base_width=64 and dilation=1 (as "
                f"torchvision's), got {groups}, {base_width} and {dilation}; use "
                f"block='bottleneck' for wide, grouped or dilated ResNets"
            )
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(in_channels, planes, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm before the sum (`zero_init_residual` zeroes its scale).

        Example:
            >>> b = BasicBlock(4, 4); b.last_bn is b.bn2
            True
        """
        return self.bn2

    def forward(self, x: Float[Tensor, "b c_in h w"]) -> Float[Tensor, "b c_out h_out w_out"]:
        """Return `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.

        Example:
            >>> import torch
            >>> BasicBlock(4, 4)(torch.randn(1, 4, 6, 6)).shape
            torch.Size([1, 4, 6, 6])
        """
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(tnn.Module):
    """1x1 reduce, 3x3 (grouped, dilated), 1x1 expand, with BatchNorm and a shortcut.

    torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3
    convolution. Its inner width is `int(planes * base_width / 64) * groups`
    (wide ResNets double `base_width`, ResNeXt sets `groups`); the output has
    `planes * 4` channels.

    Args:
        in_channels: channels entering the block.
        planes: the block's base width; the output has `4 * planes` channels.
        stride: stride of the 3x3 convolution.
        groups: groups of the 3x3 convolution (ResNeXt's cardinality).
        base_width: width per group relative to 64.
        dilation: dilation (and padding) of the 3x3 convolution.

    Raises:
        ValueError: the inner width would be below 1.

    Example:
        >>> import torch
        >>> Bottleneck(16, 4, stride=2)(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 4, 4])
    """

    expansion: ClassVar[int] = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        if width < 1:
            raise ValueError(
                f"Bottleneck inner width int({planes} * {base_width} / 64) * {groups} is "
                f"{width}; raise planes or base_width"
            )
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = _shortcut(in_channels, planes * self.expansion, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm before the sum (`zero_init_residual` zeroes its scale).

        Example:
            >>> b = Bottleneck(16, 4); b.last_bn is b.bn3
            True
        """
        return self.bn3

    def forward(self, x: Float[Tensor, "b c_in h w"]) -> Float[Tensor, "b c_out h_out w_out"]:
        """Return `relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))`.

        Example:
            >>> import torch
            >>> Bottleneck(16, 4)(torch.randn(1, 16, 6, 6)).shape
            torch.Size([1, 16, 6, 6])
        """
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}
"""Block classes by `ResNetConfig.block` name."""


def block_group(
    block: type[BasicBlock] | type[Bottleneck],
    in_channels: int,
    planes: int,
    blocks: int,
    *,
    stride: int = 1,
    groups: int = 1,
    base_width: int = 64,
    first_dilation: int = 1,
    dilation: int = 1,
) -> nn.Sequential:
    """`blocks` residual blocks; the first changes channels and stride, the rest keep them.

    As torchvision's `_make_layer`: the first block gets `stride` and the
    dilation before the group (`first_dilation`), the others `dilation`.

    Args:
        block: `BasicBlock` or `Bottleneck`.
        in_channels: channels entering the group.
        planes: the blocks' base width (output channels are `planes * block.expansion`).
        blocks: number of blocks, at least 1.
        stride: stride of the first block.
        groups: groups of each 3x3 convolution.
        base_width: width per group.
        first_dilation: dilation of the first block.
        dilation: dilation of the other blocks.

    Raises:
        ValueError: `blocks` is less than 1.

    Example:
        >>> len(block_group(BasicBlock, 64, 128, blocks=4, stride=2))
        4
    """
    if blocks < 1:
        raise ValueError(f"a block group needs at least 1 block, got {blocks}")
    shared = {"groups": groups, "base_width": base_width}
    out_channels = planes * block.expansion
    return nn.Sequential(
        block(in_channels, planes, stride, dilation=first_dilation, **shared),
        *(block(out_channels, planes, dilation=dilation, **shared) for _ in range(blocks - 1)),
    )


class StageInfo(TypedDict):
    """One entry of `ResNet.feature_info`: timm's keys, resfx's module names.

    Attributes:
        num_chs: channels of the feature map.
        reduction: how many input pixels one map pixel steps over (the output stride).
        module: the resfx module whose output the map is (see `TIMM_TAPS`).

    Example:
        >>> StageInfo(num_chs=64, reduction=2, module="relu")["reduction"]
        2
    """

    num_chs: int
    reduction: int
    module: str


def _take_indices(indices: int | Sequence[int] | None, count: int = len(TIMM_TAPS)) -> list[int]:
    """Absolute feature indices by timm's rule: `None` all, an int the last n, or the indices.

    Negative indices count from the end, as in timm's `feature_take_indices`.
    """
    if indices is None:
        return list(range(count))
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise ValueError(
                f"indices={indices} asks for the last {indices} of {count} feature maps; give "
                f"1..{count}, or a list of indices"
            )
        return list(range(count - indices, count))
    taken = []
    for index in indices:
        if not -count <= index < count:
            raise ValueError(
                f"feature index {index} is out of range: a ResNet has {count} feature maps, "
                f"indices 0..{count - 1} (or {-count}..-1 from the end), got {list(indices)}"
            )
        taken.append(index % count)
    if not taken:
        raise ValueError("indices is empty; give None (all maps), an int (the last n) or indices")
    return taken


@dataclass(frozen=True)
class ResNetConfig:
    """Shape of a ResNet: blocks, counts, widths, groups, dilation (torchvision's arguments).

    Args:
        layers: blocks in each of the four groups; `(3, 4, 6, 3)` is ResNet34
            (basic) or ResNet50 (bottleneck), `(2, 2, 2, 2)` ResNet18.
        num_classes: outputs of the final linear layer; 0 for none (`fc` is the
            identity and the model returns the pooled features, as timm's `num_classes=0`).
        width: channels of the stem and the first group's `planes` (64 in the
            paper); the groups have `width * (1, 2, 4, 8)` planes. Tests use a
            small width.
        block: `"basic"` or `"bottleneck"`.
        groups: groups of every 3x3 convolution (ResNeXt: 32 or 64).
        width_per_group: torchvision's `width_per_group` (64; wide ResNets 128,
            ResNeXt 4 or 8).
        replace_stride_with_dilation: for layer2..layer4, keep the resolution
            and dilate instead of striding (bottleneck only, as in torchvision).
        zero_init_residual: start each block's last BatchNorm scale at zero,
            so every block starts as the identity.

    Raises:
        ValueError: a count or width is not positive, or an option the block
            does not support is set.

    Example:
        >>> ResNetConfig(layers=(2, 2, 2, 2), width=8).feature_dim
        64
        >>> ResNetConfig(block="bottleneck").feature_dim
        2048
    """

    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    num_classes: int = 1000
    width: int = 64
    block: BlockKind = "basic"
    groups: int = 1
    width_per_group: int = 64
    replace_stride_with_dilation: tuple[bool, bool, bool] = (False, False, False)
    zero_init_residual: bool = False

    def __post_init__(self) -> None:
        if len(self.layers) != 4 or any(n < 1 for n in self.layers):
            raise ValueError(f"layers must be 4 positive block counts, got {self.layers}")
        if self.num_classes < 0 or self.width < 1:
            raise ValueError(
                f"num_classes must be 0 (no classifier) or more and width positive, got "
                f"{self.num_classes} and {self.width}"
            )
        if self.block not in BLOCKS:
            raise ValueError(f"unknown block {self.block!r}; expected one of {sorted(BLOCKS)}")
        if self.groups < 1 or self.width_per_group < 1:
            raise ValueError(
                f"groups and width_per_group must be positive, got {self.groups} and "
                f"{self.width_per_group}"
            )
        if len(self.replace_stride_with_dilation) != 3:
            raise ValueError(
                f"replace_stride_with_dilation should be None or a 3-element tuple, got "
                f"{self.replace_stride_with_dilation}"
            )
        if self.block == "basic" and (
            self.groups != 1 or self.width_per_group != 64 or any(self.replace_stride_with_dilation)
        ):
            raise ValueError(
                f"basic blocks support only groups=1, width_per_group=64 and no dilation (as "
                f"torchvision's), got groups={self.groups}, width_per_group="
                f"{self.width_per_group}, replace_stride_with_dilation="
                f"{self.replace_stride_with_dilation}; use block='bottleneck'"
            )

    @property
    def expansion(self) -> int:
        """Output channels per `planes` of a block: 1 (basic) or 4 (bottleneck)."""
        return BLOCKS[self.block].expansion

    @property
    def stage_channels(self) -> dict[str, int]:
        """Channels of each of `FEATURE_STAGES`' outputs (`pooled` is `feature_dim`).

        Example:
            >>> ResNetConfig(width=8).stage_channels["layer2"]
            16
        """
        channels = {"stem": self.width}
        for index in range(4):
            channels[f"layer{index + 1}"] = self.width * 2**index * self.expansion
        channels["pooled"] = channels["layer4"]
        return channels

    @property
    def feature_dim(self) -> int:
        """Width of the pooled features, `8 * width * expansion` (512 for ResNet34, 2048 for 50)."""
        return 8 * self.width * self.expansion

    @property
    def feature_info(self) -> list[StageInfo]:
        """Channels, output stride and module of each of timm's feature maps 0..4.

        Example:
            >>> [s["reduction"] for s in ResNetConfig(block="bottleneck",
            ...     replace_stride_with_dilation=(False, True, True)).feature_info]
            [2, 4, 8, 8, 8]
        """
        channels = self.stage_channels
        info = [StageInfo(num_chs=channels["stem"], reduction=2, module=TIMM_TAPS[0])]
        reduction = 4
        for index, module in enumerate(TIMM_TAPS[1:]):
            if index > 0 and not self.replace_stride_with_dilation[index - 1]:
                reduction *= 2
            info.append(StageInfo(num_chs=channels[module], reduction=reduction, module=module))
        return info


def _check_images(module: tnn.Module, args: tuple[Any, ...]) -> None:
    """Forward pre-hook: explain a wrong input before any layer sees it.

    Skipped while torch.fx or torch.compile traces the model: a proxy has no
    concrete shape to check, and the checks would only add guards to a graph.
    """
    x = args[0] if args else None
    if _tracing(x):
        return
    expected = "(batch, 3, height, width)"
    if not isinstance(x, Tensor):
        raise TypeError(f"ResNet expected a tensor of shape {expected}, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(
            f"ResNet expected floating-point images, got dtype {x.dtype} with shape "
            f"{tuple(x.shape)}; convert uint8 images with x.float() / 255 and normalise them "
            f"(resfx.data does this)"
        )
    if x.ndim != 4:
        hint = "; add a batch axis with x.unsqueeze(0)" if x.ndim == 3 else ""
        raise ValueError(f"ResNet expected input of shape {expected}, got {tuple(x.shape)}{hint}")
    if x.shape[1] != 3:
        hint = "; repeat a grey channel with x.expand(-1, 3, -1, -1)" if x.shape[1] == 1 else ""
        raise ValueError(
            f"ResNet expected RGB input of shape {expected}, got {tuple(x.shape)}{hint}"
        )
    weight = module.get_parameter("conv1.weight")
    if x.dtype == weight.dtype:
        return
    device = x.device.type
    if torch.is_autocast_enabled(device):
        # autocast casts float32 and its own dtype to its own dtype in every convolution
        cast = {torch.float32, torch.get_autocast_dtype(device)}
        if x.dtype in cast and weight.dtype in cast:
            return
    mixed = (
        f", or run the model under torch.autocast({device!r}, dtype={x.dtype}) for mixed precision"
        if x.dtype in (torch.float16, torch.bfloat16)
        else ""
    )
    raise TypeError(
        f"ResNet's parameters are {weight.dtype} but the images are {x.dtype} (shape "
        f"{tuple(x.shape)}); convert them with images.to({weight.dtype}){mixed}"
    )


FeatureMaps = list[Float[Tensor, "b _c _h _w"]]
"""Feature maps of one batch, input to output; each has its own channels and size."""


def _classifier(config: "ResNetConfig") -> "nn.Linear | tnn.Identity":
    """`fc`: a linear layer on the pooled features, or the identity for `num_classes=0`."""
    if config.num_classes == 0:
        return tnn.Identity()
    return nn.Linear(config.feature_dim, config.num_classes)


def _run_taps(
    modules: Iterable[tuple[str, Callable[[Tensor], Tensor]]], x: Tensor, taps: Collection[str]
) -> tuple[Tensor, list[Tensor]]:
    """Run `modules` in order on `x`; keep the output of each one named in `taps`.

    Args:
        modules: `(name, module)` pairs in forward order.
        x: the first module's input.
        taps: names whose outputs to keep.

    Returns:
        The last output, and the kept outputs in forward order.

    Example:
        >>> import torch
        >>> out, kept = _run_taps([("double", lambda t: 2 * t), ("inc", lambda t: t + 1)],
        ...                      torch.ones(1), {"double"})
        >>> out.item(), [t.item() for t in kept]
        (3.0, [2.0])
    """
    maps = []
    for name, module in modules:
        x = module(x)
        if name in taps:
            maps.append(x)
    return x, maps


class ResNet(tnn.Module):
    """A ResNet of basic or bottleneck blocks with torchvision's module names and timm's methods.

    `stem` is `conv1, bn1, relu, maxpool`; `layer1..layer4` are the block groups;
    `avgpool` pools each map to `(b, c, 1, 1)` and a `torch.flatten` makes it one
    vector per image, as in torchvision; `fc` is the classifier (the head).
    The stage names are data on the model: `stage_names` (what `freeze_to`
    walks) and `feature_stages` (what `forward_stages` returns).

    timm's model interface is here too: `forward_features` (the unpooled last
    map), `forward_head`, `forward_intermediates`, `feature_info`,
    `num_features`, `get_classifier` and `reset_classifier`. Its feature indices
    0..4 are the outputs of `relu` (timm's `act1`, before the maxpool, output
    stride 2) and `layer1..layer4`; resfx's `"stem"` stage is the maxpool's
    output, which timm does not index (`TIMM_TAPS` has the table).

    Args:
        config: the blocks, counts, classes, widths, groups and dilation.

    Raises:
        TypeError: (on call) the input is not a floating-point tensor, or its dtype
            differs from the parameters' (outside autocast, which casts it).
        ValueError: (on call) the input is not `(b, 3, h, w)`.

    Example:
        >>> import torch
        >>> model = ResNet(ResNetConfig(width=8, num_classes=10))
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    stage_names: ClassVar[tuple[str, ...]] = STAGES
    """The stages `stage` and `resfx.freeze_to` take, input to output."""
    feature_stages: ClassVar[tuple[str, ...]] = FEATURE_STAGES
    # the stages, in forward order (the block groups are added by name in `__init__`):
    # declared so that type checkers see each one's class, not `Tensor | Module`
    conv1: nn.Conv2d
    bn1: nn.BatchNorm2d
    relu: nn.ReLU
    maxpool: nn.MaxPool2d
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential
    avgpool: nn.AdaptiveAvgPool2d
    fc: nn.Linear | tnn.Identity
    """The classifier; `tnn.Identity` when the model has none (`num_classes=0`)."""

    def __init__(self, config: ResNetConfig = ResNetConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        block = BLOCKS[config.block]
        self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels, dilation = w, 1
        for index, blocks in enumerate(config.layers):
            stride = 1 if index == 0 else 2
            first_dilation = dilation
            if index > 0 and config.replace_stride_with_dilation[index - 1]:
                dilation, stride = dilation * stride, 1
            planes = w * 2**index
            group = block_group(
                block,
                in_channels,
                planes,
                blocks,
                stride=stride,
                groups=config.groups,
                base_width=config.width_per_group,
                first_dilation=first_dilation,
                dilation=dilation,
            )
            self.add_module(f"layer{index + 1}", group)
            in_channels = planes * block.expansion
        # AdaptiveAvgPool2d(1) then torch.flatten, as torchvision: fx graphs get its node names
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = _classifier(config)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                tnn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if config.zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    # resfx.nn.BatchNorm2d registers its affine parameters, declares none
                    tnn.init.zeros_(module.last_bn.weight)  # type: ignore[arg-type]
        self.register_forward_pre_hook(_check_images)

    @property
    def num_features(self) -> int:
        """Channels of the last feature map, the width of the pooled features (timm's name).

        Example:
            >>> ResNet(ResNetConfig(width=8)).num_features
            64
        """
        return self.config.feature_dim

    @property
    def feature_info(self) -> list[StageInfo]:
        """timm's `feature_info`: channels, output stride and module of feature maps 0..4.

        Index 0 is the output of `relu` (timm's `act1`), 1..4 of `layer1..layer4`
        (see `TIMM_TAPS`). A fresh list on every read.

        Example:
            >>> ResNet(ResNetConfig(width=8)).feature_info[:2]
            [{'num_chs': 8, 'reduction': 2, 'module': 'relu'}, {'num_chs': 8, 'reduction': 4, \
'module': 'layer1'}]
        """
        return self.config.feature_info

    def get_classifier(self) -> nn.Linear | tnn.Identity:
        """The classifier, `fc` (timm's name); `tnn.Identity` when there is none.

        Example:
            >>> ResNet(ResNetConfig(width=8, num_classes=3)).get_classifier()
            Linear(in_features=64, out_features=3, bias=True)
        """
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace `fc` by a fresh classifier with `num_classes` outputs, as timm's method.

        `num_classes=0` removes it: `fc` becomes the identity and the model returns
        the pooled features, `(b, num_features)`. The new layer is on the device and
        of the dtype of the model's parameters; `config.num_classes` says the new size.

        Args:
            num_classes: outputs of the new classifier, 0 for none.

        Raises:
            ValueError: `num_classes` is negative.

        Example:
            >>> import torch
            >>> model = ResNet(ResNetConfig(width=8))
            >>> model.reset_classifier(0)
            >>> model(torch.randn(2, 3, 32, 32)).shape, model.config.num_classes
            (torch.Size([2, 64]), 0)
        """
        config = dataclasses.replace(self.config, num_classes=num_classes)
        weight = self.conv1.weight
        self.fc = _classifier(config).to(device=weight.device, dtype=weight.dtype)
        self.config = config

    def stage(self, name: str) -> list[tnn.Module]:
        """The modules that make up one stage, by name (see `stage_names`).

        Args:
            name: `"stem"`, `"layer1"` ... `"layer4"` or `"head"`.

        Returns:
            The stage's modules, in forward order.

        Raises:
            ValueError: `name` is not a stage.

        Example:
            >>> [type(m).__name__ for m in ResNet(ResNetConfig(width=8)).stage("stem")]
            ['Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d']
        """
        if name not in RESNET_STAGES:
            raise ValueError(f"unknown stage {name!r}; expected one of {STAGES}")
        return [getattr(self, attribute) for attribute in RESNET_STAGES[name]]

    def forward_stages(
        self, x: Images, stages: Sequence[str] = FEATURE_STAGES
    ) -> dict[str, Float[Tensor, "b ..."]]:
        """Chosen intermediate outputs of one forward pass, stopping after the deepest one.

        `"stem"` ... `"layer4"` are feature maps `(b, c, h, w)` (channels in
        `config.stage_channels`); `"pooled"` is `forward_pooled(x)`. Works on
        frozen models and on `resfx.fold_batchnorm` copies (it calls the same
        modules as `forward`). For timm's feature indices, see `forward_intermediates`.

        Args:
            x: normalised images.
            stages: names from `feature_stages`, any order, no repeats.

        Returns:
            The outputs by name, in `feature_stages` order.

        Raises:
            ValueError: an unknown or repeated name, or none at all.

        Example:
            >>> import torch
            >>> model = ResNet(ResNetConfig(width=8)).eval()
            >>> out = model.forward_stages(torch.randn(2, 3, 64, 64), ["layer1", "pooled"])
            >>> {k: tuple(v.shape) for k, v in out.items()}
            {'layer1': (2, 8, 16, 16), 'pooled': (2, 64)}
        """
        _check_images(self, (x,))
        wanted = set(stages)
        unknown = sorted(wanted - set(self.feature_stages))
        if unknown or not wanted or len(wanted) != len(stages):
            raise ValueError(
                f"stages must be distinct names from {self.feature_stages}, got {list(stages)}"
            )
        last = max(self.feature_stages.index(name) for name in wanted)
        outputs: dict[str, Tensor] = {}
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.feature_stages[: last + 1]:
            if name == "pooled":
                x = torch.flatten(self.avgpool(x), 1)
            elif name != "stem":
                x = getattr(self, name)(x)
            if name in wanted:
                outputs[name] = x
        return outputs

    @overload
    def forward_intermediates(
        self,
        x: Images,
        indices: int | Sequence[int] | None = None,
        *,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: Literal[True],
    ) -> FeatureMaps: ...

    @overload
    def forward_intermediates(
        self,
        x: Images,
        indices: int | Sequence[int] | None = None,
        *,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: Literal[False] = False,
    ) -> tuple[Float[Tensor, "b c h_out w_out"], FeatureMaps]: ...

    def forward_intermediates(
        self,
        x: Images,
        indices: int | Sequence[int] | None = None,
        *,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> FeatureMaps | tuple[Float[Tensor, "b c h_out w_out"], FeatureMaps]:
        """timm's `forward_intermediates`: the last map and chosen feature maps 0..4.

        The indices are timm's (see `TIMM_TAPS`): 0 is the output of `relu`
        (timm's `act1`, before the maxpool), 1..4 of `layer1..layer4`. The maps
        come in forward order whatever the order of `indices`, as timm's.

        Args:
            x: normalised images.
            indices: `None` for all five maps, an int n for the last n, or a
                sequence of indices (negative ones count from the end).
            stop_early: stop after the deepest map asked for; the first returned
                tensor is then the last one computed (after the maxpool at least),
                as in timm.
            output_fmt: `"NCHW"`, the only layout (as timm's ResNet).
            intermediates_only: return only the maps.

        Returns:
            `(last, maps)`, where `last` is `forward_features(x)` (unless
                `stop_early`); or `maps` alone with `intermediates_only=True`.

        Raises:
            ValueError: an index out of range, none at all, or another `output_fmt`.

        Example:
            >>> import torch
            >>> model = ResNet(ResNetConfig(width=8)).eval()
            >>> last, maps = model.forward_intermediates(torch.randn(1, 3, 64, 64), [0, 2])
            >>> tuple(last.shape), [tuple(m.shape) for m in maps]
            ((1, 64, 2, 2), [(1, 8, 32, 32), (1, 16, 8, 8)])
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW' (as timm's ResNet), got {output_fmt!r}")
        _check_images(self, (x,))
        take = _take_indices(indices)
        names = _TRUNK
        if stop_early:  # timm's layers[:max_index] after the stem's maxpool
            names = _TRUNK[: max(_TRUNK.index("maxpool"), _TRUNK.index(TIMM_TAPS[max(take)])) + 1]
        modules = ((name, self.get_submodule(name)) for name in names)
        last, maps = _run_taps(modules, x, {TIMM_TAPS[index] for index in take})
        return maps if intermediates_only else (last, maps)

    def _trunk(self, x: Images) -> Float[Tensor, "b c h_out w_out"]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_features(self, x: Images) -> Float[Tensor, "b c h_out w_out"]:
        """The last feature map, unpooled, as timm's: `(b, 3, h, w) -> (b, num_features, h', w')`.

        `h'` and `w'` are `h / 32` and `w / 32` rounded up (less stride with
        `replace_stride_with_dilation`). In resfx 0.1.0 this returned the pooled
        vector, which is now `forward_pooled`.

        Example:
            >>> import torch
            >>> ResNet(ResNetConfig(width=8)).forward_features(torch.randn(2, 3, 64, 64)).shape
            torch.Size([2, 64, 2, 2])
        """
        _check_images(self, (x,))
        return self._trunk(x)

    def forward_head(
        self, x: Float[Tensor, "b c h w"], pre_logits: bool = False
    ) -> Float[Tensor, "b d_out"]:
        """Pool a last feature map and classify it, as timm's.

        Args:
            x: the output of `forward_features`.
            pre_logits: return the pooled features `(b, num_features)`, skipping `fc`.

        Returns:
            The logits `(b, num_classes)`, or the pooled features with `pre_logits`
                or without a classifier (`num_classes=0`).

        Example:
            >>> import torch
            >>> model = ResNet(ResNetConfig(width=8, num_classes=3))
            >>> maps = model.forward_features(torch.randn(2, 3, 32, 32))
            >>> model.forward_head(maps).shape, model.forward_head(maps, pre_logits=True).shape
            (torch.Size([2, 3]), torch.Size([2, 64]))
        """
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward_pooled(self, x: Images) -> Features:
        """Pooled features before the classifier: `(b, 3, h, w) -> (b, feature_dim)`.

        The same as `forward_head(forward_features(x), pre_logits=True)`; it was
        called `forward_features` in resfx 0.1.0.

        Example:
            >>> import torch
            >>> ResNet(ResNetConfig(width=8)).forward_pooled(torch.randn(2, 3, 32, 32)).shape
            torch.Size([2, 64])
        """
        return self.forward_head(self.forward_features(x), pre_logits=True)

    def forward(self, x: Images) -> Logits:
        """Class logits for a batch of normalised images (the pooled features if `num_classes=0`).

        Example:
            >>> import torch
            >>> ResNet(ResNetConfig(width=8, num_classes=3)).eval()(torch.randn(1, 3, 32, 32)).shape
            torch.Size([1, 3])
        """
        return self.forward_head(self._trunk(x))
