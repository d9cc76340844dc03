"""2-D convolution module."""

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn

from .. import _functional as RF
from .._pair import as_pair
from ._switch import using_reference_ops


class Conv2d(nn.Module):
    """2-D convolution with torch.nn.Conv2d's parameter names, shapes and initialisation.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output (number of filters).
        kernel_size: an int or `(kh, kw)`.
        stride: an int or `(sh, sw)`.
        padding: zeros on each side, an int or `(ph, pw)`.
        bias: learn one bias per output channel.

    Raises:
        ValueError: a size is not positive or a padding is negative.

    Example:
        >>> import torch
        >>> conv = Conv2d(3, 8, kernel_size=3, stride=2, padding=1, bias=False)
        >>> conv(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 8, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"Conv2d needs in_channels >= 1 and out_channels >= 1, "
                f"got {in_channels} and {out_channels}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
        self.stride = as_pair(stride, "stride", minimum=1)
        self.padding = as_pair(padding, "padding", minimum=0)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as torch.nn.Conv2d does: kaiming-uniform weight (a=sqrt(5)), uniform bias.

        Example:
            >>> Conv2d(1, 1, 1).reset_parameters()
        """
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Float[Tensor, "b c_in h w"]) -> Float[Tensor, "b c_out h_out w_out"]:
        """Convolve `x` with the filters.

        Raises:
            ValueError: `x` does not have `in_channels` channels.

        Example:
            >>> import torch
            >>> Conv2d(2, 4, 1)(torch.randn(1, 2, 5, 5)).shape
            torch.Size([1, 4, 5, 5])
        """
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d expected input of shape (b, {self.in_channels}, h, w), "
                f"got {tuple(x.shape)}"
            )
        if using_reference_ops():
            return RF.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )
