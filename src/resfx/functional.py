"""Reference ops in plain tensor maths, with the signatures of `torch.nn.functional`.

Example:
    >>> import torch
    >>> from resfx import functional as RF
    >>> RF.relu(torch.tensor([-1.0, 1.0])).tolist()
    [0.0, 1.0]
"""

from ._functional import adaptive_avg_pool2d as adaptive_avg_pool2d
from ._functional import avg_pool2d as avg_pool2d
from ._functional import batch_norm as batch_norm
from ._functional import conv2d as conv2d
from ._functional import global_avg_pool2d as global_avg_pool2d
from ._functional import linear as linear
from ._functional import max_pool2d as max_pool2d
from ._functional import pad as pad
from ._functional import relu as relu

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "global_avg_pool2d",
    "linear",
    "max_pool2d",
    "pad",
    "relu",
]
