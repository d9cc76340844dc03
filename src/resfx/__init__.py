"""resfx: feature extraction on ResNets, with typed from-scratch modules and provable freezing.

Example:
    >>> import torch, resfx
    >>> model = resfx.resnet34(num_classes=10)
    >>> model(torch.randn(2, 3, 64, 64)).shape
    torch.Size([2, 10])
"""

from . import functional as functional
from . import models as models
from . import nn as nn
from . import weights as weights
from .models import ResNet as ResNet
from .models import ResNetConfig as ResNetConfig
from .models import resnet18 as resnet18
from .models import resnet34 as resnet34

__version__ = "0.1.0"

__all__ = [
    "ResNet",
    "ResNetConfig",
    "functional",
    "models",
    "nn",
    "resnet18",
    "resnet34",
    "weights",
]
