"""Parameter-free layers: ReLU, max pooling, global average pooling, Flatten."""

import torch
from jaxtyping import Float
from torch import Tensor, nn

from .. import _functional as RF
from .._pair import as_pair
from ._switch import using_reference_ops


class ReLU(nn.Module):
    """Rectified linear unit. Never in place, so every application is a visible graph node.

    Example:
        >>> import torch
        >>> ReLU()(torch.tensor([-2.0, 3.0])).tolist()
        [0.0, 3.0]
    """

    def forward(self, x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        """Return `max(x, 0)` as a new tensor.

        Example:
            >>> import torch
            >>> ReLU()(torch.tensor([-1.0])).tolist()
            [0.0]
        """
        if using_reference_ops():
            return RF.relu(x)
        return torch.relu(x)


class MaxPool2d(nn.Module):
    """2-D max pooling.

    Args:
        kernel_size: window size, an int or `(kh, kw)`.
        stride: step between windows; `None` means `kernel_size`, as in torch.nn.
        padding: implicit `-inf` on each side, at most half the kernel.

    Raises:
        ValueError: padding is more than half the kernel, or a size is not positive.

    Example:
        >>> import torch
        >>> MaxPool2d(3, stride=2, padding=1)(torch.randn(1, 8, 16, 16)).shape
        torch.Size([1, 8, 8, 8])
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", minimum=1)
        self.padding = as_pair(padding, "padding", minimum=0)
        if self.padding[0] > self.kernel_size[0] // 2 or self.padding[1] > self.kernel_size[1] // 2:
            raise ValueError(
                f"MaxPool2d padding {self.padding} must be at most half the kernel "
                f"{self.kernel_size}"
            )

    def forward(self, x: Float[Tensor, "b c h w"]) -> Float[Tensor, "b c h_out w_out"]:
        """Take the maximum of each window.

        Example:
            >>> import torch
            >>> MaxPool2d(2)(torch.randn(1, 1, 4, 4)).shape
            torch.Size([1, 1, 2, 2])
        """
        if using_reference_ops():
            return RF.max_pool2d(x, self.kernel_size, self.stride, self.padding)
        return torch.nn.functional.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class GlobalAvgPool2d(nn.Module):
    """Average over the spatial axes, `(b, c, h, w) -> (b, c)`.

    Equivalent to torch.nn.AdaptiveAvgPool2d(1) followed by Flatten(1), in one step.

    Example:
        >>> import torch
        >>> GlobalAvgPool2d()(torch.ones(2, 512, 7, 7)).shape
        torch.Size([2, 512])
    """

    def forward(self, x: Float[Tensor, "b c h w"]) -> Float[Tensor, "b c"]:
        """Return the spatial mean of every channel.

        Example:
            >>> import torch
            >>> GlobalAvgPool2d()(torch.ones(1, 3, 2, 2)).tolist()
            [[1.0, 1.0, 1.0]]
        """
        if using_reference_ops():
            return RF.global_avg_pool2d(x)
        return torch.mean(x, dim=(2, 3))


class Flatten(nn.Module):
    """Flatten the axes `start_dim..end_dim` into one, like torch.nn.Flatten.

    Args:
        start_dim: first axis to flatten (default 1, keeping the batch axis).
        end_dim: last axis to flatten (default -1).

    Example:
        >>> import torch
        >>> Flatten()(torch.ones(2, 3, 4, 5)).shape
        torch.Size([2, 60])
        >>> Flatten(0, 1)(torch.ones(2, 3, 4)).shape
        torch.Size([6, 4])
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        """Return `x` with the chosen axes merged.

        Raises:
            ValueError: the axes are out of range or in the wrong order.

        Example:
            >>> import torch
            >>> Flatten()(torch.ones(1, 2, 2)).shape
            torch.Size([1, 4])
        """
        rank = x.ndim
        start = self.start_dim + rank if self.start_dim < 0 else self.start_dim
        end = self.end_dim + rank if self.end_dim < 0 else self.end_dim
        if not 0 <= start <= end < rank:
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) does not fit an "
                f"input of rank {rank} and shape {tuple(x.shape)}"
            )
        return x.reshape(*x.shape[:start], -1, *x.shape[end + 1 :])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Sequential(nn.Module):
    """Modules applied in order; children are named `"0"`, `"1"`, ... as in torch.nn.Sequential.

    Args:
        *modules: the modules, first applied first.

    Example:
        >>> import torch
        >>> net = Sequential(Flatten(), ReLU())
        >>> net(torch.tensor([[[-1.0, 2.0]]])).tolist()
        [[0.0, 2.0]]
        >>> len(net), type(net[0]).__name__
        (2, 'Flatten')
    """

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__()
        for index, module in enumerate(modules):
            if not isinstance(module, nn.Module):
                raise TypeError(
                    f"Sequential takes nn.Module instances, got {type(module).__name__} "
                    f"at position {index}"
                )
            self.add_module(str(index), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index: int) -> nn.Module:
        modules = list(self._modules.values())
        if not -len(modules) <= index < len(modules):
            raise IndexError(f"Sequential of length {len(modules)} has no index {index}")
        return modules[index]

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        """Apply each module in turn.

        Example:
            >>> import torch
            >>> Sequential()(torch.ones(2)).tolist()
            [1.0, 1.0]
        """
        for module in self._modules.values():
            x = module(x)
        return x
