"""2-D convolution module."""

import math
from numbers import Integral
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from .. import _functional as RF
from .._pair import as_int, as_pair
from .._typing import Size2d
from ._switch import _tracing, using_reference_ops

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class Conv2d(nn.Module):
    """2-D convolution with torch.nn.Conv2d's arguments, parameter names, shapes and initialisation.

    Sizes, channels and groups take any integer type (`numpy.int64(3)` too, as in torch).

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output (number of filters).
        kernel_size: an int or `(kh, kw)`.
        stride: an int or `(sh, sw)`.
        padding: added on each side, an int or `(ph, pw)`; or `"valid"` (none) or
            `"same"` (output as large as the input, stride 1 only; an odd total
            goes on the right / bottom, as in torch).
        dilation: spacing between kernel taps, an int or `(dh, dw)`.
        groups: independent channel groups; `in_channels` and `out_channels` must
            both be divisible by it (`groups=in_channels` is a depthwise convolution).
        bias: learn one bias per output channel.
        padding_mode: what the padding holds: `"zeros"`, `"reflect"`,
            `"replicate"` or `"circular"`.
        device: where to create the parameters (`"meta"` allocates nothing).
        dtype: the parameters' dtype.

    Raises:
        TypeError: a size, channel count or `groups` is not an integer (or a pair).
        ValueError: a size is not positive, a padding is negative or an unknown
            string, `"same"` is combined with a stride, the channels are not
            divisible by `groups`, or `padding_mode` is unknown.

    Example:
        >>> import torch
        >>> conv = Conv2d(4, 8, kernel_size=3, stride=2, padding=2, dilation=2, groups=2)
        >>> conv(torch.randn(2, 4, 32, 32)).shape
        torch.Size([2, 8, 16, 16])
        >>> Conv2d(3, 3, 3, padding="same", padding_mode="reflect")(torch.randn(3, 5, 5)).shape
        torch.Size([3, 5, 5])
    """

    # registered in __init__; declared so type checkers see a parameter or None
    bias: nn.Parameter | None

    def __init__(
        self,
        in_channels: int | Integral,
        out_channels: int | Integral,
        kernel_size: Size2d,
        stride: Size2d = 1,
        padding: str | Size2d = 0,
        dilation: Size2d = 1,
        groups: int | Integral = 1,
        bias: bool = True,
        padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        in_channels = as_int(in_channels, "in_channels")
        out_channels = as_int(out_channels, "out_channels")
        groups = as_int(groups, "groups")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"Conv2d needs in_channels >= 1 and out_channels >= 1, "
                f"got {in_channels} and {out_channels}"
            )
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d groups must be a positive divisor of in_channels and out_channels, "
                f"got groups={groups} for {in_channels} and {out_channels} channels"
            )
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"Conv2d padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
        self.stride = as_pair(stride, "stride", minimum=1)
        self.dilation = as_pair(dilation, "dilation", minimum=1)
        self.groups = groups
        self.padding_mode = padding_mode
        # (left, right, top, bottom): what "same" or the numbers pad, in F.pad's order
        self._reversed_padding_repeated_twice = RF._conv2d_padding(
            padding, self.kernel_size, self.stride, self.dilation
        )
        self.padding = (
            padding if isinstance(padding, str) else as_pair(padding, "padding", minimum=0)
        )
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size, **factory)
        )
        self.register_parameter(
            "bias", nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as torch.nn.Conv2d does: kaiming-uniform weight (a=sqrt(5)), uniform bias.

        Example:
            >>> Conv2d(1, 1, 1).reset_parameters()
        """
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Float[Tensor, "*b c_in h w"]) -> Float[Tensor, "*b c_out h_out w_out"]:
        """Convolve `input`, batched `(b, c_in, h, w)` or one `(c_in, h, w)`, with the filters.

        Raises:
            ValueError: `input` is not `(b, in_channels, h, w)` or `(in_channels, h, w)`,
                or (padded) smaller than the dilated kernel, or too small for
                `"reflect"` / `"circular"` padding.

        Example:
            >>> import torch
            >>> Conv2d(2, 4, 1)(torch.randn(1, 2, 5, 5)).shape
            torch.Size([1, 4, 5, 5])
        """
        pads = self._reversed_padding_repeated_twice
        if not _tracing(input):
            RF._check_conv2d_input(
                tuple(input.shape),
                tuple(self.weight.shape),
                pads,
                self.dilation,
                self.groups,
                "Conv2d",
            )
        reference = using_reference_ops()
        conv = RF.conv2d if reference else torch.nn.functional.conv2d
        if self.padding_mode == "zeros":
            return conv(
                input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
            )
        pad = RF.pad if reference else torch.nn.functional.pad
        if not _tracing(input):
            RF._check_pad(tuple(input.shape), pads, self.padding_mode, None)
        padded = pad(input, pads, mode=self.padding_mode)
        return conv(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text
