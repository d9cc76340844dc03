"""ResNets built from resfx modules, with torchvision's parameter names.

Example:
    >>> import torch
    >>> from resfx.models import ResNet, ResNetConfig
    >>> ResNet(ResNetConfig(width=8, num_classes=10)).eval()(torch.randn(1, 3, 32, 32)).shape
    torch.Size([1, 10])
"""

from ._factory import resnet18 as resnet18
from ._factory import resnet34 as resnet34
from ._feature_extraction import (
    get_resnet_for_feature_extraction as get_resnet_for_feature_extraction,
)
from ._resnet import STAGES as STAGES
from ._resnet import BasicBlock as BasicBlock
from ._resnet import ResNet as ResNet
from ._resnet import ResNetConfig as ResNetConfig
from ._resnet import block_group as block_group
from ._resnet import conv1x1 as conv1x1
from ._resnet import conv3x3 as conv3x3

__all__ = [
    "STAGES",
    "BasicBlock",
    "ResNet",
    "ResNetConfig",
    "block_group",
    "conv1x1",
    "conv3x3",
    "get_resnet_for_feature_extraction",
    "resnet18",
    "resnet34",
]
