"""Parameter-free layers: ReLU, max, average and adaptive pooling, global average pooling, Flatten."""

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from numbers import Integral

import torch
from jaxtyping import Float, Int, Int64
from torch import Tensor, nn

from .. import _functional as RF
from .._pair import as_int
from .._typing import Size2d
from ._switch import _tracing, using_reference_ops


class ReLU(nn.Module):
    """Rectified linear unit, like torch.nn.ReLU; NaN passes through.

    Args:
        inplace: overwrite the input (as torch allows). The default, `False`,
            keeps every application a visible graph node, which the freezing
            proofs rely on; resfx's own models never set it.

    Example:
        >>> import torch
        >>> ReLU()(torch.tensor([-2.0, 3.0])).tolist()
        [0.0, 3.0]
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        """Return `max(input, 0)`, as a new tensor unless `inplace`.

        Example:
            >>> import torch
            >>> ReLU()(torch.tensor([-1.0])).tolist()
            [0.0]
        """
        if using_reference_ops():
            return RF.relu(input, self.inplace)
        return torch.nn.functional.relu(input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class MaxPool2d(nn.Module):
    """2-D max pooling with torch.nn.MaxPool2d's arguments.

    Args:
        kernel_size: window size, an int or `(kh, kw)`.
        stride: step between windows; `None` means `kernel_size`, as in torch.nn.
        padding: implicit `-inf` on each side, at most half the kernel.
        dilation: spacing between a window's taps.
        return_indices: also return the position of each maximum in the flattened
            `h * w` plane of the input (what torch.nn.MaxUnpool2d takes).
        ceil_mode: round the output size up, adding a last, partial window.

    Raises:
        ValueError: padding is more than half the kernel, or a size is not positive.

    Example:
        >>> import torch
        >>> MaxPool2d(3, stride=2, padding=1)(torch.randn(1, 8, 16, 16)).shape
        torch.Size([1, 8, 8, 8])
        >>> MaxPool2d(2, ceil_mode=True)(torch.randn(8, 5, 5)).shape
        torch.Size([8, 3, 3])
    """

    def __init__(
        self,
        kernel_size: Size2d,
        stride: Size2d | None = None,
        padding: Size2d = 0,
        dilation: Size2d = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = RF._pool_arguments(
            kernel_size, stride, padding, dilation
        )
        RF._check_pool_padding(self.kernel_size, self.padding, "MaxPool2d")
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(
        self, input: Float[Tensor, "*b c h w"]
    ) -> (
        Float[Tensor, "*b c h_out w_out"]
        | tuple[Float[Tensor, "*b c h_out w_out"], Int[Tensor, "*b c h_out w_out"]]
    ):
        """Take the maximum of each window (and, with `return_indices`, where it is).

        Raises:
            ValueError: `input` is not `(b, c, h, w)` or `(c, h, w)` with non-empty
                `c, h, w`, or the output would be empty.

        Example:
            >>> import torch
            >>> MaxPool2d(2)(torch.randn(1, 1, 4, 4)).shape
            torch.Size([1, 1, 2, 2])
        """
        geometry = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        if not _tracing(input):
            RF._check_pool2d_input(tuple(input.shape), *geometry, "MaxPool2d")
        op = RF.max_pool2d if using_reference_ops() else torch.nn.functional.max_pool2d
        return op(input, *geometry, self.return_indices)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(nn.Module):
    """2-D average pooling with torch.nn.AvgPool2d's arguments.

    Args:
        kernel_size: window size, an int or `(kh, kw)`.
        stride: step between windows; `None` means `kernel_size`.
        padding: zeros on each side, at most half the kernel.
        ceil_mode: round the output size up, adding a last, partial window.
        count_include_pad: count the padding's zeros in each average.
        divisor_override: divide every window sum by this instead of its count.

    Raises:
        ValueError: padding is more than half the kernel, a size is not
            positive, or `divisor_override` is 0.

    Example:
        >>> import torch
        >>> AvgPool2d(2)(torch.ones(1, 3, 4, 4)).shape
        torch.Size([1, 3, 2, 2])
    """

    def __init__(
        self,
        kernel_size: Size2d,
        stride: Size2d | None = None,
        padding: Size2d = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | Integral | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, _ = RF._pool_arguments(
            kernel_size, stride, padding
        )
        RF._check_pool_padding(self.kernel_size, self.padding, "AvgPool2d")
        if divisor_override is not None:
            divisor_override = as_int(divisor_override, "divisor_override")
        if divisor_override == 0:
            raise ValueError("AvgPool2d divisor_override must not be 0 (None divides by the count)")
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(
        self, input: Float[Tensor, "*b c h w"] | Int64[Tensor, "*b c h w"]
    ) -> Float[Tensor, "*b c h_out w_out"] | Int64[Tensor, "*b c h_out w_out"]:
        """Average each window (an int64 input gives int64 averages rounded toward zero, as torch).

        Raises:
            ValueError: `input` is not `(b, c, h, w)` or `(c, h, w)` with non-empty
                `c, h, w`, or the output would be empty.

        Example:
            >>> import torch
            >>> AvgPool2d(2)(torch.arange(4.0).reshape(1, 2, 2)).tolist()
            [[[1.5]]]
        """
        if not _tracing(input):
            RF._check_avg_pool_dtype(input.dtype, "AvgPool2d")
            RF._check_pool2d_input(
                tuple(input.shape),
                self.kernel_size,
                self.stride,
                self.padding,
                (1, 1),
                self.ceil_mode,
                "AvgPool2d",
            )
        op = RF.avg_pool2d if using_reference_ops() else torch.nn.functional.avg_pool2d
        return op(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(nn.Module):
    """Average pooling to a fixed output size, whatever the input size (torch.nn.AdaptiveAvgPool2d).

    Args:
        output_size: `(h_out, w_out)`, one int for both, and `None` (for either)
            to keep that axis of the input.

    Raises:
        ValueError: an output size is negative or not an int or `None`.

    Example:
        >>> import torch
        >>> AdaptiveAvgPool2d((2, None))(torch.randn(1, 8, 7, 5)).shape
        torch.Size([1, 8, 2, 5])
    """

    def __init__(
        self, output_size: int | Integral | Sequence[int | Integral | None] | None
    ) -> None:
        super().__init__()
        sizes = RF._adaptive_sizes(output_size, "AdaptiveAvgPool2d")
        # as Python ints: torch's functional refuses a numpy integer given alone
        self.output_size = (
            sizes
            if isinstance(output_size, (tuple, list))
            else output_size
            if output_size is None
            else sizes[0]
        )

    def forward(self, input: Float[Tensor, "*b c h w"]) -> Float[Tensor, "*b c h_out w_out"]:
        """Average adaptive windows of `input`.

        Raises:
            ValueError: `input` is not `(b, c, h, w)` or `(c, h, w)` with non-empty `c, h, w`.

        Example:
            >>> import torch
            >>> AdaptiveAvgPool2d(1)(torch.ones(2, 3, 4, 4)).shape
            torch.Size([2, 3, 1, 1])
        """
        if not _tracing(input):
            RF._check_feature_maps(tuple(input.shape), "AdaptiveAvgPool2d")
        op = (
            RF.adaptive_avg_pool2d
            if using_reference_ops()
            else torch.nn.functional.adaptive_avg_pool2d
        )
        return op(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(nn.Module):
    """Average over the spatial axes, `(b, c, h, w) -> (b, c)`.

    Equivalent to torch.nn.AdaptiveAvgPool2d(1) followed by Flatten(1), in one step, for
    batches: it refuses other ranks (where that pair would return `(c, 1)` for one
    `(c, h, w)` map, and `torch.mean` over axes 2 and 3 of a 5-D input a 3-D tensor).

    Raises:
        ValueError: (on call) the input is not `(b, c, h, w)` with non-empty `c, h, w`.

    Example:
        >>> import torch
        >>> GlobalAvgPool2d()(torch.ones(2, 512, 7, 7)).shape
        torch.Size([2, 512])
    """

    def forward(self, input: Float[Tensor, "b c h w"]) -> Float[Tensor, "b c"]:
        """Return the spatial mean of every channel.

        Raises:
            ValueError: `input` is not `(b, c, h, w)` with non-empty `c, h, w`.

        Example:
            >>> import torch
            >>> GlobalAvgPool2d()(torch.ones(1, 3, 2, 2)).tolist()
            [[1.0, 1.0, 1.0]]
        """
        if not _tracing(input):
            RF._check_global_pool_input(tuple(input.shape), "GlobalAvgPool2d")
        if using_reference_ops():
            return RF.global_avg_pool2d(input)
        return torch.mean(input, dim=(2, 3))


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

    def forward(self, input: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        """Return `input` with the chosen axes merged.

        Raises:
            ValueError: the axes are out of range or in the wrong order.

        Example:
            >>> import torch
            >>> Flatten()(torch.ones(1, 2, 2)).shape
            torch.Size([1, 4])
        """
        rank = input.ndim
        start = self.start_dim + rank if self.start_dim < 0 else self.start_dim
        end = self.end_dim + rank if self.end_dim < 0 else self.end_dim
        if not 0 <= start <= end < rank:
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) does not fit an "
                f"input of rank {rank} and shape {tuple(input.shape)}"
            )
        return input.reshape(*input.shape[:start], -1, *input.shape[end + 1 :])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Sequential(nn.Module):
    """Modules applied in order; children are named `"0"`, `"1"`, ... as in torch.nn.Sequential.

    It is edited as torch.nn.Sequential is: `seq[i] = module` replaces a child,
    `seq[a:b]` is a new Sequential of the same children (keeping their names),
    `del seq[i]` / `del seq[a:b]` removes and renumbers, and `append`, `insert`,
    `extend` and `pop` do what torch's do, so the seed's `model.fc[-1] = Linear(...)` works.

    Args:
        *modules: the modules, first applied first; or one `OrderedDict` of
            name -> module, as torch takes it.

    Raises:
        TypeError: an entry is not an `nn.Module`.

    Example:
        >>> import torch
        >>> net = Sequential(Flatten(), ReLU())
        >>> net(torch.tensor([[[-1.0, 2.0]]])).tolist()
        [[0.0, 2.0]]
        >>> len(net), type(net[0]).__name__
        (2, 'Flatten')
        >>> net[-1] = Flatten(0)
        >>> net.append(ReLU()).insert(0, ReLU())[1:]
        Sequential(
          (1): Flatten(start_dim=1, end_dim=-1)
          (2): Flatten(start_dim=0, end_dim=-1)
          (3): ReLU()
        )
    """

    def __init__(self, *modules: nn.Module | OrderedDict[str, nn.Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            named = list(modules[0].items())
        else:
            named = [(str(index), module) for index, module in enumerate(modules)]
        for position, (name, module) in enumerate(named):
            self.add_module(name, _module(module, f"position {position}"))

    def _key(self, index: int) -> str:
        """The name of the child at `index` (negative counts from the end), as torch finds it."""
        size = len(self)
        index = operator.index(index)
        if not -size <= index < size:
            raise IndexError(f"Sequential of length {size} has no index {index}")
        return list(self._modules)[index % size]

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index: int | slice) -> nn.Module:
        """The child at `index`, or for a slice a new Sequential of those children (same names)."""
        if isinstance(index, slice):
            return type(self)(OrderedDict(list(self._modules.items())[index]))
        return self._modules[self._key(index)]

    def __setitem__(self, index: int, module: nn.Module) -> None:
        """Replace the child at `index`, keeping its name."""
        setattr(self, self._key(index), _module(module, f"index {index}"))

    def __delitem__(self, index: int | slice) -> None:
        """Remove the child at `index` (or a slice), then renumber the rest `"0"`, `"1"`, ..."""
        keys = list(self._modules)[index] if isinstance(index, slice) else [self._key(index)]
        for key in keys:
            delattr(self, key)
        self._modules = OrderedDict(
            (str(position), module) for position, module in enumerate(self._modules.values())
        )

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules.values())

    def append(self, module: nn.Module) -> "Sequential":
        """Add `module` at the end (named by the new length, as torch does); return `self`.

        Raises:
            TypeError: `module` is not an `nn.Module`.

        Example:
            >>> len(Sequential().append(ReLU()))
            1
        """
        self.add_module(str(len(self)), _module(module, "append"))
        return self

    def insert(self, index: int, module: nn.Module) -> "Sequential":
        """Insert `module` before position `index` (`-len <= index <= len`); return `self`.

        Raises:
            TypeError: `module` is not an `nn.Module`.
            IndexError: `index` is out of range.

        Example:
            >>> type(Sequential(ReLU()).insert(0, Flatten())[0]).__name__
            'Flatten'
        """
        _module(module, "insert")
        size = len(self)
        index = operator.index(index)
        if not -size <= index <= size:
            raise IndexError(f"Sequential of length {size} cannot insert at index {index}")
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules = OrderedDict((str(i), m) for i, m in enumerate(modules))
        return self

    def extend(self, modules: Iterable[nn.Module]) -> "Sequential":
        """Append each of `modules` in turn; return `self`.

        Raises:
            TypeError: an entry is not an `nn.Module`.

        Example:
            >>> len(Sequential(ReLU()).extend(Sequential(ReLU(), Flatten())))
            3
        """
        for module in modules:
            self.append(module)
        return self

    def pop(self, index: int | slice) -> nn.Module:
        """Remove the child at `index` (or a slice) and return it (a Sequential for a slice).

        Example:
            >>> net = Sequential(ReLU(), Flatten())
            >>> type(net.pop(0)).__name__, len(net)
            ('ReLU', 1)
        """
        popped = self[index]
        del self[index]
        return popped

    def forward(self, input: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        """Apply each module in turn.

        Example:
            >>> import torch
            >>> Sequential()(torch.ones(2)).tolist()
            [1.0, 1.0]
        """
        for module in self._modules.values():
            input = module(input)
        return input


def _module(module: object, where: str) -> nn.Module:
    """`module`, after checking that it is an `nn.Module` (torch would store `None` silently)."""
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"Sequential takes nn.Module instances, got {type(module).__name__} at {where}"
        )
    return module
