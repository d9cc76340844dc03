"""Fully connected layer."""

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn

from .. import _functional as RF
from ._switch import _tracing, using_reference_ops


class Linear(nn.Module):
    """Affine layer `y = x W^T + b` with torch.nn.Linear's names, shapes and initialisation.

    Args:
        in_features: size of each input vector.
        out_features: size of each output vector.
        bias: learn an additive bias.
        device: where to create the parameters (`"meta"` allocates nothing).
        dtype: the parameters' dtype.

    Raises:
        ValueError: a size is not positive.

    Example:
        >>> import torch
        >>> Linear(512, 10)(torch.randn(4, 512)).shape
        torch.Size([4, 10])
    """

    # registered in __init__; declared so type checkers see a parameter or None
    bias: nn.Parameter | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Linear needs in_features >= 1 and out_features >= 1, "
                f"got {in_features} and {out_features}"
            )
        self.in_features = in_features
        self.out_features = out_features
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.register_parameter(
            "bias", nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as torch.nn.Linear does: kaiming-uniform weight (a=sqrt(5)), uniform bias.

        Example:
            >>> Linear(2, 2).reset_parameters()
        """
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_out"]:
        """Map each input vector.

        Raises:
            ValueError: the last axis of `input` is not `in_features`.

        Example:
            >>> import torch
            >>> Linear(3, 2)(torch.randn(5, 3)).shape
            torch.Size([5, 2])
        """
        if not _tracing(input):
            RF._check_linear_input(tuple(input.shape), self.in_features, "Linear")
        if using_reference_ops():
            return RF.linear(input, self.weight, self.bias)
        return torch.nn.functional.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
