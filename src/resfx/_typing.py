"""One vocabulary of axis names for every tensor annotation in resfx.

Axis names used throughout (and in einops patterns):

| name | meaning |
| --- | --- |
| `b` | batch |
| `n` | every row of a split, e.g. all processes' shares gathered |
| `c`, `c_in`, `c_out` | channels |
| `h`, `w` | spatial height and width of an input |
| `h_out`, `w_out` | spatial size after a strided op |
| `kh`, `kw` | kernel height and width |
| `d_in`, `d_out` | features of a linear layer |
| `d` | pooled feature width (512 for ResNet34) |
| `k` | classes |
| `g` | channel groups of a grouped convolution |
| `c_group` | input channels of one group, `c_in / g` |
"""

from collections.abc import Sequence
from numbers import Integral

from jaxtyping import Float, Int, Shaped, UInt8
from torch import Tensor

Images = Float[Tensor, "b 3 h w"]
"""A batch of normalised RGB images."""

ImagesUInt8 = UInt8[Tensor, "b 3 h w"]
"""A batch of raw 8-bit RGB images, channels first."""

Features = Float[Tensor, "b d"]
"""Pooled features of a backbone (one vector per image)."""

Logits = Float[Tensor, "b k"]
"""Unnormalised class scores."""

Labels = Int[Tensor, " b"]
"""Integer class labels."""

AnyTensor = Shaped[Tensor, "..."]
"""A tensor of any shape and dtype."""

Size2d = int | Integral | Sequence[int | Integral]
"""A size on the two spatial axes: one int for both, or `(h, w)`; a one-int sequence counts
for both, as in torch's 2-D ops (kernel sizes, strides, paddings, dilations). Any integer
type counts as an int (`numpy.int64(3)`, as torch takes it), but not `bool`."""

__all__ = [
    "AnyTensor",
    "Features",
    "Images",
    "ImagesUInt8",
    "Labels",
    "Logits",
    "Size2d",
]
