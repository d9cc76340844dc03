"""The residual block, the block group and the ResNet, built only from `resfx.nn` modules.

Module and parameter names are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`,
`layer1.0.downsample.0`, ..., `fc`), so its checkpoints load without any mapping.
"""

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor
from torch import nn as tnn

from .. import nn
from .._resnet_layout import RESNET_STAGES
from .._typing import Features, Images, Logits

STAGES: tuple[str, ...] = tuple(RESNET_STAGES)
"""Names of a ResNet's stages, input to output; `freeze_to` takes them."""


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """A 3x3 convolution with padding 1 and no bias (BatchNorm follows it).

    Example:
        >>> conv3x3(64, 128, stride=2).stride
        (2, 2)
    """
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """A 1x1 convolution with no bias, used to match shapes on a residual shortcut.

    Example:
        >>> conv1x1(64, 128, stride=2).kernel_size
        (1, 1)
    """
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(tnn.Module):
    """Two 3x3 convolutions with BatchNorm and a residual shortcut (ResNet18/34's block).

    The shortcut is a strided 1x1 convolution and BatchNorm (`downsample`) when
    the shape changes, the identity otherwise. The sum is out of place.

    Args:
        in_channels: channels entering the block.
        out_channels: channels leaving it.
        stride: stride of the first convolution (2 halves the resolution).

    Example:
        >>> import torch
        >>> BasicBlock(8, 16, stride=2)(torch.randn(2, 8, 8, 8)).shape
        torch.Size([2, 16, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = (
            nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
            if stride != 1 or in_channels != out_channels
            else None
        )

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


def block_group(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    """`blocks` residual blocks; the first changes channels and stride, the rest keep them.

    Args:
        in_channels: channels entering the group.
        out_channels: channels of every block's output.
        blocks: number of blocks, at least 1.
        stride: stride of the first block.

    Raises:
        ValueError: `blocks` is less than 1.

    Example:
        >>> len(block_group(64, 128, blocks=4, stride=2))
        4
    """
    if blocks < 1:
        raise ValueError(f"a block group needs at least 1 block, got {blocks}")
    return nn.Sequential(
        BasicBlock(in_channels, out_channels, stride),
        *(BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)),
    )


@dataclass(frozen=True)
class ResNetConfig:
    """Shape of a ResNet built from basic blocks.

    Args:
        layers: blocks in each of the four groups; `(3, 4, 6, 3)` is ResNet34,
            `(2, 2, 2, 2)` ResNet18.
        num_classes: outputs of the final linear layer.
        width: channels of the stem and first group (64 in the paper); the
            groups have `width * (1, 2, 4, 8)` channels. Tests use a small width.

    Example:
        >>> ResNetConfig(layers=(2, 2, 2, 2), width=8).feature_dim
        64
    """

    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    num_classes: int = 1000
    width: int = 64

    def __post_init__(self) -> None:
        if len(self.layers) != 4 or any(n < 1 for n in self.layers):
            raise ValueError(f"layers must be 4 positive block counts, got {self.layers}")
        if self.num_classes < 1 or self.width < 1:
            raise ValueError(
                f"num_classes and width must be positive, got {self.num_classes} and {self.width}"
            )

    @property
    def feature_dim(self) -> int:
        """Width of the pooled features, `8 * width` (512 for ResNet34)."""
        return 8 * self.width


def _check_images(module: "ResNet", args: tuple[Any, ...]) -> None:
    """Forward pre-hook: explain a wrong input before any layer sees it."""
    x = args[0] if args else None
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


class ResNet(tnn.Module):
    """A ResNet of basic blocks (ResNet18/34) with torchvision's module names.

    `stem` is `conv1, bn1, relu, maxpool`; `layer1..layer4` are the block groups;
    `avgpool` pools to one vector per image; `fc` is the classifier (the head).

    Args:
        config: the block counts, classes and widths.

    Raises:
        TypeError: (on call) the input is not a floating-point tensor.
        ValueError: (on call) the input is not `(b, 3, h, w)`.

    Example:
        >>> import torch
        >>> model = ResNet(ResNetConfig(width=8, num_classes=10))
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    stage_names: ClassVar[tuple[str, ...]] = STAGES
    """The stages `stage` and `resfx.freeze_to` take, input to output."""

    def __init__(self, config: ResNetConfig = ResNetConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = block_group(w, w, config.layers[0], stride=1)
        self.layer2 = block_group(w, 2 * w, config.layers[1], stride=2)
        self.layer3 = block_group(2 * w, 4 * w, config.layers[2], stride=2)
        self.layer4 = block_group(4 * w, 8 * w, config.layers[3], stride=2)
        self.avgpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(8 * w, config.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                tnn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        self.register_forward_pre_hook(_check_images)

    def stage(self, name: str) -> list[tnn.Module]:
        """The modules that make up one stage, by name (see `STAGES`).

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

    def forward_features(self, x: Images) -> Features:
        """Pooled features before the classifier: `(b, 3, h, w) -> (b, 8 * width)`.

        Example:
            >>> import torch
            >>> ResNet(ResNetConfig(width=8)).forward_features(torch.randn(2, 3, 32, 32)).shape
            torch.Size([2, 64])
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)

    def forward(self, x: Images) -> Logits:
        """Class logits for a batch of normalised images.

        Example:
            >>> import torch
            >>> ResNet(ResNetConfig(width=8, num_classes=3)).eval()(torch.randn(1, 3, 32, 32)).shape
            torch.Size([1, 3])
        """
        return self.fc(self.forward_features(x))
