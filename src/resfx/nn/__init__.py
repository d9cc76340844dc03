"""Typed modules written from scratch, with torch.nn-compatible parameter and buffer names.

Each module runs PyTorch's fused kernel by default and the reference op of
`resfx.functional` inside [`reference_ops`][resfx.nn.reference_ops].

Example:
    >>> import torch
    >>> from resfx import nn as rnn
    >>> block = rnn.Sequential(rnn.Conv2d(3, 8, 3, padding=1), rnn.BatchNorm2d(8), rnn.ReLU())
    >>> block(torch.randn(2, 3, 8, 8)).shape
    torch.Size([2, 8, 8, 8])
"""

from ._batchnorm import BatchNorm2d as BatchNorm2d
from ._conv import Conv2d as Conv2d
from ._layers import AdaptiveAvgPool2d as AdaptiveAvgPool2d
from ._layers import AvgPool2d as AvgPool2d
from ._layers import Flatten as Flatten
from ._layers import GlobalAvgPool2d as GlobalAvgPool2d
from ._layers import MaxPool2d as MaxPool2d
from ._layers import ReLU as ReLU
from ._layers import Sequential as Sequential
from ._linear import Linear as Linear
from ._switch import reference_ops as reference_ops
from ._switch import set_reference_ops as set_reference_ops
from ._switch import using_reference_ops as using_reference_ops

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "Flatten",
    "GlobalAvgPool2d",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "Sequential",
    "reference_ops",
    "set_reference_ops",
    "using_reference_ops",
]
