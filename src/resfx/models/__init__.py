"""The torchvision ResNet family built from resfx modules, with torchvision's parameter names.

Example:
    >>> import torch
    >>> from resfx.models import ResNet, ResNetConfig
    >>> ResNet(ResNetConfig(width=8, num_classes=10)).eval()(torch.randn(1, 3, 32, 32)).shape
    torch.Size([1, 10])
    >>> "resnext101_64x4d" in list_models()
    True
"""

from ._factory import ARCHITECTURES as ARCHITECTURES
from ._factory import Weights as Weights
from ._factory import available_weights as available_weights
from ._factory import create_model as create_model
from ._factory import list_models as list_models
from ._factory import resnet18 as resnet18
from ._factory import resnet34 as resnet34
from ._factory import resnet50 as resnet50
from ._factory import resnet101 as resnet101
from ._factory import resnet152 as resnet152
from ._factory import resnext50_32x4d as resnext50_32x4d
from ._factory import resnext101_32x8d as resnext101_32x8d
from ._factory import resnext101_64x4d as resnext101_64x4d
from ._factory import resolve_weights as resolve_weights
from ._factory import wide_resnet50_2 as wide_resnet50_2
from ._factory import wide_resnet101_2 as wide_resnet101_2
from ._feature_extraction import (
    get_resnet_for_feature_extraction as get_resnet_for_feature_extraction,
)
from ._features_only import FeatureInfo as FeatureInfo
from ._features_only import ResNetFeatures as ResNetFeatures
from ._resnet import BLOCKS as BLOCKS
from ._resnet import FEATURE_STAGES as FEATURE_STAGES
from ._resnet import STAGES as STAGES
from ._resnet import TIMM_TAPS as TIMM_TAPS
from ._resnet import BasicBlock as BasicBlock
from ._resnet import BlockKind as BlockKind
from ._resnet import Bottleneck as Bottleneck
from ._resnet import ResNet as ResNet
from ._resnet import ResNetConfig as ResNetConfig
from ._resnet import StageInfo as StageInfo
from ._resnet import block_group as block_group
from ._resnet import conv1x1 as conv1x1
from ._resnet import conv3x3 as conv3x3

__all__ = [
    "ARCHITECTURES",
    "BLOCKS",
    "FEATURE_STAGES",
    "STAGES",
    "TIMM_TAPS",
    "BasicBlock",
    "BlockKind",
    "Bottleneck",
    "FeatureInfo",
    "ResNet",
    "ResNetConfig",
    "ResNetFeatures",
    "StageInfo",
    "Weights",
    "available_weights",
    "block_group",
    "conv1x1",
    "conv3x3",
    "create_model",
    "get_resnet_for_feature_extraction",
    "list_models",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "resolve_weights",
    "wide_resnet50_2",
    "wide_resnet101_2",
]
