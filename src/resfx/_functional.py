"""Reference ops in plain tensor maths.

Each op has the signature of its `torch.nn.functional` twin and is written from
elementary tensor operations (strided views, `einsum`, means and variances), so
it can be read as the definition of the op. The modules in `resfx.nn` run
PyTorch's fused kernels by default and these ops under
[`resfx.nn.reference_ops`][resfx.nn.reference_ops]; the test suite proves the
two agree in value and gradient.
"""

from collections.abc import Sequence
from numbers import Integral
from typing import Literal

import torch
from einops import einsum, rearrange, reduce
from jaxtyping import Float, Int, Int64, Shaped
from torch import Tensor

from ._pair import as_int, as_pair, is_int
from ._typing import Size2d

_PAD_MODES: tuple[str, ...] = ("constant", "reflect", "replicate", "circular")


def _windows(
    x: Shaped[Tensor, "b c h w"],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> Shaped[Tensor, "b c h_out w_out kh kw"]:
    """Every (dilated) kernel window of `x` at the given stride, as a strided view (no copy)."""
    x = x.contiguous()
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    h_out = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    w_out = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    sb, sc, sy, sx = x.stride()
    return x.as_strided(
        (x.shape[0], x.shape[1], h_out, w_out, kh, kw),
        (sb, sc, sy * sh, sx * sw, sy * dh, sx * dw),
    )


def _check_pad(shape: tuple[int, ...], pad: Sequence[int], mode: str, value: float | None) -> None:
    """Raise as torch.nn.functional.pad refuses: odd or too long `pad`, a mode's size limits."""
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {_PAD_MODES}, got {mode!r}")
    if len(pad) % 2 or len(pad) // 2 > len(shape):
        raise ValueError(
            f"pad: expected an even number of pads, two per padded axis and at most "
            f"{2 * len(shape)} for an input of shape {shape}, got {tuple(pad)}"
        )
    if mode == "constant":
        return
    if value is not None and value != 0:
        raise ValueError(f"pad: mode {mode!r} takes no fill value, got value={value}")
    axes = len(pad) // 2
    if axes > 3 or len(shape) not in (axes + 1, axes + 2):
        raise ValueError(
            f"pad: mode {mode!r} with {len(pad)} pads needs an input of rank {axes + 1} "
            f"(unbatched) or {axes + 2} (batched), got shape {shape}"
        )
    for axis in range(axes):
        size, before, after = shape[-1 - axis], pad[2 * axis], pad[2 * axis + 1]
        if size == 0:
            raise ValueError(f"pad: mode {mode!r} cannot pad an empty axis, got shape {shape}")
        # torch's replication pads and its 1-d reflection pad need an output of at least 1
        if (mode == "replicate" or (mode, axes) == ("reflect", 1)) and size + before + after < 1:
            raise ValueError(
                f"pad: mode {mode!r} cannot crop axis {len(shape) - 1 - axis} of shape {shape} "
                f"to nothing (pads {(before, after)} leave {size + before + after}); torch "
                f"refuses it too: crop with mode 'constant' or keep at least one element"
            )
        if (
            mode == "circular"
            and size + min(before, 0) + min(after, 0) < 1 <= size + before + after
        ):
            raise ValueError(
                f"pad: mode 'circular' cannot wrap around axis {len(shape) - 1 - axis} of shape "
                f"{shape} after its negative pads crop it to nothing, got {(before, after)}"
            )
        limit = size - 1 if mode == "reflect" else size
        if mode != "replicate" and max(before, after) > limit:
            raise ValueError(
                f"pad: mode {mode!r} pads axis {len(shape) - 1 - axis} of shape {shape} by at "
                f"most {limit} on each side, got {(before, after)}"
            )


def _source_index(size: int, before: int, after: int, mode: str, device: torch.device) -> Tensor:
    """For each position of a padded axis, the position of `input` whose value it takes."""
    if mode == "circular":
        # torch crops negative pads first and wraps around what is left
        low, high = max(0, -before), size - max(0, -after)
        wrapped = torch.arange(-max(before, 0), high - low + max(after, 0), device=device)
        return low + wrapped.remainder(high - low)
    index = torch.arange(-before, size + after, device=device)
    if mode == "replicate":
        return index.clamp(0, size - 1)
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def pad(
    input: Shaped[Tensor, "*shape"],
    pad: Sequence[int],
    mode: Literal["constant", "reflect", "replicate", "circular"] = "constant",
    value: float | None = None,
) -> Shaped[Tensor, "*shape_out"]:
    """Pad (or, with negative pads, crop) the last axes, by concatenation and index gathers.

    `pad` names the last axis first, as in `torch.nn.functional.pad`:
    `(left, right, top, bottom, ...)`. `"constant"` fills with `value` (0 by
    default); `"reflect"` mirrors without repeating the edge; `"replicate"`
    repeats the edge; `"circular"` wraps around.

    Args:
        input: any tensor; the non-constant modes pad 1-3 trailing axes of an
            input with one or two leading axes, as torch does.
        pad: two sizes per padded axis, last axis first.
        mode: `"constant"`, `"reflect"`, `"replicate"` or `"circular"`.
        value: fill value of `"constant"`.

    Returns:
        The padded tensor.

    Raises:
        ValueError: an odd number of pads, an unknown mode, or pads a mode cannot
            make (`"reflect"` pads less than the axis, `"circular"` at most the axis).

    Example:
        >>> pad(torch.tensor([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect").tolist()
        [[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]
    """
    _check_pad(tuple(input.shape), pad, mode, value)
    out = input
    for axis in range(len(pad) // 2):
        dim, before, after = input.ndim - 1 - axis, pad[2 * axis], pad[2 * axis + 1]
        if mode != "constant":
            index = _source_index(out.shape[dim], before, after, mode, out.device)
            out = out.index_select(dim, index)
            continue
        out = out.narrow(dim, max(0, -before), out.shape[dim] - max(0, -before) - max(0, -after))
        blocks = []
        for size in (max(before, 0), max(after, 0)):
            block_shape = list(out.shape)
            block_shape[dim] = size
            blocks.append(out.new_full(block_shape, 0.0 if value is None else value))
        out = torch.cat([blocks[0], out, blocks[1]], dim)
    return out


def _conv2d_padding(
    padding: str | Size2d,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Pads `(left, right, top, bottom)` that a convolution's `padding` argument stands for.

    `"valid"` is no padding; `"same"` pads `dilation * (kernel - 1)` in total
    per axis, the odd one on the right / bottom (as torch does); an int or pair
    pads both sides alike.

    Raises:
        ValueError: an unknown padding string, `"same"` with a stride other than 1,
            or a negative padding.

    Example:
        >>> _conv2d_padding("same", (4, 3), (1, 1), (1, 2))
        (2, 2, 1, 2)
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(
                f"padding must be 'same', 'valid', an int or a pair of ints, got {padding!r}"
            )
        if stride != (1, 1):
            raise ValueError(
                f"padding='same' needs stride 1 (as in torch), got stride {stride}; give the "
                f"padding as numbers instead"
            )
        total_h = dilation[0] * (kernel_size[0] - 1)
        total_w = dilation[1] * (kernel_size[1] - 1)
        return (total_w // 2, total_w - total_w // 2, total_h // 2, total_h - total_h // 2)
    ph, pw = as_pair(padding, "padding", minimum=0)
    return (pw, pw, ph, ph)


def _check_conv2d_input(
    shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    pads: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
    name: str = "conv2d",
) -> None:
    """Raise, as torch refuses, for an input a convolution cannot take; the message names why.

    Args:
        shape: the input's shape, `(c_in, h, w)` or `(b, c_in, h, w)`.
        weight_shape: `(c_out, c_in / groups, kh, kw)`.
        pads: `(left, right, top, bottom)`.
        dilation: spacing of the kernel taps.
        groups: channel groups.
        name: the op or module quoted in the message.

    Raises:
        ValueError: wrong rank, wrong channel count, output channels not divisible
            by `groups`, or the padded input smaller than the dilated kernel.

    Example:
        >>> _check_conv2d_input((2, 4, 5, 5), (6, 2, 3, 3), (0, 0, 0, 0), (1, 1), groups=2)
    """
    c_in = weight_shape[1] * groups
    if groups < 1 or weight_shape[0] % groups:
        raise ValueError(
            f"{name}: groups must be a positive divisor of the {weight_shape[0]} output channels "
            f"of the weight {tuple(weight_shape)}, got groups={groups}"
        )
    if len(shape) not in (3, 4) or shape[-3] != c_in:
        raise ValueError(
            f"{name} expected input of shape ({c_in}, h, w) or (b, {c_in}, h, w), "
            f"got {tuple(shape)}"
        )
    padded = (shape[-2] + pads[2] + pads[3], shape[-1] + pads[0] + pads[1])
    extent = tuple(d * (k - 1) + 1 for d, k in zip(dilation, weight_shape[2:], strict=True))
    if padded[0] < extent[0] or padded[1] < extent[1]:
        raise ValueError(
            f"{name}: the padded input {padded} of input {tuple(shape)} is smaller than the "
            f"kernel {tuple(weight_shape[2:])} with dilation {dilation} (which spans {extent}); "
            f"use a larger input, more padding or a smaller kernel"
        )


def conv2d(
    input: Float[Tensor, "*b c_in h w"],
    weight: Float[Tensor, "c_out c_group kh kw"],
    bias: Float[Tensor, " c_out"] | None = None,
    stride: Size2d = 1,
    padding: str | Size2d = 0,
    dilation: Size2d = 1,
    groups: int | Integral = 1,
) -> Float[Tensor, "*b c_out h_out w_out"]:
    """2-D convolution (cross-correlation) by strided windows and `einsum`.

    Zero-pads `input`, takes every `kh x kw` window (its taps `dilation` apart)
    at the given stride as a strided view, splits the channels into `groups`
    and contracts each group's windows with its filters over channels and
    kernel axes.

    Args:
        input: images or feature maps, batched `(b, c_in, h, w)` or one `(c_in, h, w)`.
        weight: the filters, `c_group = c_in / groups` input channels each.
        bias: one value per output channel, or `None`.
        stride: step between windows, an int or `(sh, sw)`.
        padding: zeros added on each side, an int or `(ph, pw)`, or `"valid"`
            (none) or `"same"` (output as large as the input; stride 1 only).
        dilation: spacing between kernel taps, an int or `(dh, dw)`.
        groups: split input and output channels into this many independent groups.

    Returns:
        The convolved feature map, `h_out = (h + 2 ph - dh (kh - 1) - 1) // sh + 1`.

    Raises:
        ValueError: the input's rank or channels do not fit `weight` and `groups`,
            or the padded input is smaller than the dilated kernel.

    Example:
        >>> x = torch.ones(1, 1, 3, 3)
        >>> conv2d(x, torch.ones(1, 1, 2, 2)).squeeze().tolist()
        [[4.0, 4.0], [4.0, 4.0]]
    """
    stride_hw = as_pair(stride, "stride", minimum=1)
    dilation_hw = as_pair(dilation, "dilation", minimum=1)
    groups = as_int(groups, "groups")
    kernel = (weight.shape[2], weight.shape[3])
    pads = _conv2d_padding(padding, kernel, stride_hw, dilation_hw)
    _check_conv2d_input(tuple(input.shape), tuple(weight.shape), pads, dilation_hw, groups)
    batched = input if input.ndim == 4 else input.unsqueeze(0)
    windows = _windows(pad(batched, pads), kernel, stride_hw, dilation_hw)
    out = einsum(
        rearrange(windows, "b (g c_group) h w kh kw -> b g c_group h w kh kw", g=groups),
        rearrange(weight, "(g c_out) c_group kh kw -> g c_out c_group kh kw", g=groups),
        "b g c_group h w kh kw, g c_out c_group kh kw -> b g c_out h w",
    )
    out = rearrange(out, "b g c_out h w -> b (g c_out) h w")
    if bias is not None:
        # under autocast torch casts the bias with the product, so the sum keeps its dtype
        out = out + rearrange(bias.to(out.dtype), "c_out -> 1 c_out 1 1")
    return out if input.ndim == 4 else out.squeeze(0)


def _pool_size(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """Output length of a pooling window sliding over one axis, as torch computes it."""
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * padding - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    # in ceil mode the last window must start inside the input or its left padding
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _check_feature_maps(shape: tuple[int, ...], name: str) -> None:
    """Raise unless `shape` is `(c, h, w)` or `(b, c, h, w)` with non-empty `c, h, w`."""
    if len(shape) not in (3, 4) or 0 in shape[-3:]:
        raise ValueError(
            f"{name} expected input of shape (c, h, w) or (b, c, h, w) with c, h, w > 0, "
            f"got {tuple(shape)}"
        )


def _check_pool_padding(kernel: tuple[int, int], padding: tuple[int, int], name: str) -> None:
    """Raise, as torch does, for padding more than half the kernel on an axis (dilated or not)."""
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel {kernel}")


def _check_pool2d_input(
    shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool,
    name: str,
) -> tuple[int, int]:
    """Raise as torch refuses a pooling input; return the output size `(h_out, w_out)`."""
    _check_feature_maps(shape, name)
    _check_pool_padding(kernel, padding, name)
    out = tuple(
        _pool_size(*args, ceil_mode)
        for args in zip(shape[-2:], kernel, stride, padding, dilation, strict=True)
    )
    if min(out) < 1:
        raise ValueError(
            f"{name}: input {tuple(shape)} gives an empty output {out} for kernel {kernel}, "
            f"stride {stride}, padding {padding}, dilation {dilation}; use a larger input "
            f"or a smaller kernel"
        )
    return out


def _pool_windows(
    input: Shaped[Tensor, "b c h w"],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    out: tuple[int, int],
    fill: tuple[float, float],
) -> Shaped[Tensor, "b c h_out w_out kh kw"]:
    """The pooling windows of `input` padded with `fill[0]`, then with `fill[1]` past the padding
    where ceil mode needs a last, partial window."""
    extra = [
        max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p))
        for o, s, d, k, n, p in zip(
            out, stride, dilation, kernel, input.shape[2:], padding, strict=True
        )
    ]
    padded = pad(input, (padding[1], padding[1], padding[0], padding[0]), value=fill[0])
    padded = pad(padded, (0, extra[1], 0, extra[0]), value=fill[1])
    return _windows(padded, kernel, stride, dilation)[:, :, : out[0], : out[1]]


def _pool_arguments(
    kernel_size: Size2d,
    stride: Size2d | None,
    padding: Size2d,
    dilation: Size2d = 1,
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Kernel, stride (the kernel when `None` or empty, as in torch), padding and dilation pairs."""
    kernel = as_pair(kernel_size, "kernel_size", minimum=1)
    # not `stride == ()`, which compares a numpy integer elementwise
    if stride is None or (isinstance(stride, (tuple, list)) and not stride):
        stride_hw = kernel
    else:
        stride_hw = as_pair(stride, "stride", minimum=1)
    return (
        kernel,
        stride_hw,
        as_pair(padding, "padding", minimum=0),
        as_pair(dilation, "dilation", minimum=1),
    )


def max_pool2d(
    input: Float[Tensor, "*b c h w"],
    kernel_size: Size2d,
    stride: Size2d | None = None,
    padding: Size2d = 0,
    dilation: Size2d = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> (
    Float[Tensor, "*b c h_out w_out"]
    | tuple[Float[Tensor, "*b c h_out w_out"], Int[Tensor, "*b c h_out w_out"]]
):
    """Max pooling by strided windows: pad with `-inf`, take the first maximum of each window.

    The gradient goes to the first maximum of a window, as in PyTorch's kernel;
    a NaN in a window is its maximum.

    Args:
        input: feature maps, batched `(b, c, h, w)` or one `(c, h, w)`.
        kernel_size: window size, an int or `(kh, kw)`.
        stride: step between windows; `None` means `kernel_size`.
        padding: `-inf` added on each side, at most half the kernel.
        dilation: spacing between a window's taps.
        ceil_mode: round the output size up, adding a last, partial window
            where it starts inside the input.
        return_indices: also return where each maximum is, as an index into
            the flattened `h * w` plane of `input`.

    Returns:
        The pooled feature maps, and with `return_indices` their positions.

    Raises:
        ValueError: the input is not 3-D or 4-D with non-empty `c, h, w`, the
            padding is more than half the kernel, or the output would be empty.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> max_pool2d(x, 2).squeeze().tolist()
        [[5.0, 7.0], [13.0, 15.0]]
        >>> max_pool2d(x[0], 3, stride=2, ceil_mode=True, return_indices=True)[1].tolist()
        [[[10, 11], [14, 15]]]
    """
    kernel, stride_hw, padding_hw, dilation_hw = _pool_arguments(
        kernel_size, stride, padding, dilation
    )
    out_hw = _check_pool2d_input(
        tuple(input.shape), kernel, stride_hw, padding_hw, dilation_hw, ceil_mode, "max_pool2d"
    )
    batched = input if input.ndim == 4 else input.unsqueeze(0)
    windows = _pool_windows(
        batched, kernel, stride_hw, padding_hw, dilation_hw, out_hw, (float("-inf"),) * 2
    )
    values, tap = rearrange(windows, "b c h w kh kw -> b c h w (kh kw)").max(dim=-1)
    if input.ndim == 3:
        values, tap = values.squeeze(0), tap.squeeze(0)
    if not return_indices:
        return values
    rows = torch.arange(out_hw[0], device=input.device)[:, None] * stride_hw[0] - padding_hw[0]
    cols = torch.arange(out_hw[1], device=input.device) * stride_hw[1] - padding_hw[1]
    rows = rows + (tap // kernel[1]) * dilation_hw[0]
    cols = cols + (tap % kernel[1]) * dilation_hw[1]
    return values, rows * input.shape[-1] + cols


def avg_pool2d(
    input: Float[Tensor, "*b c h w"] | Int64[Tensor, "*b c h w"],
    kernel_size: Size2d,
    stride: Size2d | None = None,
    padding: Size2d = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | Integral | None = None,
) -> Float[Tensor, "*b c h_out w_out"] | Int64[Tensor, "*b c h_out w_out"]:
    """Average pooling by strided windows: window sums over a count of the cells averaged.

    The count is `divisor_override` when given; otherwise the window's cells
    inside the input and, with `count_include_pad`, inside the zero padding
    (never the cells a ceil-mode window reaches past the padding), as in torch.
    An int64 input gives int64 averages, rounded toward zero, as torch's CPU and
    CUDA kernels do; torch has no kernel for the other integer dtypes or bool.

    Args:
        input: feature maps, batched `(b, c, h, w)` or one `(c, h, w)`.
        kernel_size: window size, an int or `(kh, kw)`.
        stride: step between windows; `None` means `kernel_size`.
        padding: zeros added on each side, at most half the kernel.
        ceil_mode: round the output size up (see `max_pool2d`).
        count_include_pad: count the padding's zeros in the average.
        divisor_override: divide every window sum by this instead.

    Returns:
        The pooled feature maps.

    Raises:
        TypeError: the input is neither floating-point nor int64 (as in torch).
        ValueError: the input is not 3-D or 4-D with non-empty `c, h, w`, the
            padding is more than half the kernel, the output would be empty, or
            `divisor_override` is 0.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> avg_pool2d(x, 2).squeeze().tolist()
        [[2.5, 4.5], [10.5, 12.5]]
        >>> avg_pool2d(x, 2, padding=1, count_include_pad=False).squeeze()[0].tolist()
        [0.0, 1.5, 3.0]
        >>> avg_pool2d(torch.tensor([[[-7, 0], [0, 0]]]), 2).tolist()
        [[[-1]]]
    """
    _check_avg_pool_dtype(input.dtype, "avg_pool2d")
    if divisor_override == 0:
        raise ValueError("avg_pool2d: divisor_override must not be 0 (None divides by the count)")
    kernel, stride_hw, padding_hw, dilation = _pool_arguments(kernel_size, stride, padding)
    out_hw = _check_pool2d_input(
        tuple(input.shape), kernel, stride_hw, padding_hw, dilation, ceil_mode, "avg_pool2d"
    )
    batched = input if input.ndim == 4 else input.unsqueeze(0)
    geometry = (kernel, stride_hw, padding_hw, dilation, out_hw)
    sums = reduce(_pool_windows(batched, *geometry, (0.0, 0.0)), "b c h w kh kw -> b c h w", "sum")
    if divisor_override is not None:
        count: Tensor | int = int(divisor_override)
    else:
        cells = batched.new_ones((1, 1, *batched.shape[2:]))
        counted = _pool_windows(cells, *geometry, (1.0 if count_include_pad else 0.0, 0.0))
        count = reduce(counted, "b c h w kh kw -> b c h w", "sum")
    # torch's kernels divide an int64 sum by the count in C++ integer division: toward zero
    out = torch.div(sums, count, rounding_mode="trunc" if input.dtype == torch.int64 else None)
    return out if input.ndim == 4 else out.squeeze(0)


def _check_avg_pool_dtype(dtype: torch.dtype, name: str) -> None:
    """Raise, as torch does, for an integer or bool input other than int64."""
    if not (dtype.is_floating_point or dtype == torch.int64):
        raise TypeError(
            f"{name}: torch has no average pooling for {dtype} (only real floating-point "
            f"and int64 inputs); convert the input, e.g. input.float()"
        )


def _adaptive_sizes(
    output_size: int | Integral | Sequence[int | Integral | None] | None, name: str
) -> tuple[int | None, int | None]:
    """`output_size` as a pair; raise unless each entry is a non-negative integer or `None`."""
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    valid = (o is None or (is_int(o) and o >= 0) for o in sizes)
    if len(sizes) != 2 or not all(valid):
        raise ValueError(
            f"{name}: output_size must be an int >= 0, None, or a pair of them, got {output_size!r}"
        )
    return (
        None if sizes[0] is None else int(sizes[0]),
        None if sizes[1] is None else int(sizes[1]),
    )


def _adaptive_window_sums(input: Tensor, dim: int, out: int) -> tuple[Tensor, Tensor]:
    """Sums over the `out` adaptive windows along axis `dim`, and each window's length.

    Window `i` over an axis of length `n` covers cells `floor(i * n / out)` to
    `ceil((i + 1) * n / out)` (exclusive), as in torch; each is summed on its own,
    so a NaN or infinity reaches only the windows that hold it.
    """
    n = input.shape[dim]
    bounds = [((i * n) // out, -(-((i + 1) * n) // out)) for i in range(out)]
    lengths = torch.tensor([end - start for start, end in bounds], device=input.device)
    if not bounds:
        return input.narrow(dim, 0, 0), lengths
    sums = [input.narrow(dim, start, end - start).sum(dim) for start, end in bounds]
    return torch.stack(sums, dim), lengths


def adaptive_avg_pool2d(
    input: Float[Tensor, "*b c h w"],
    output_size: int | Integral | Sequence[int | Integral | None] | None,
) -> Float[Tensor, "*b c h_out w_out"]:
    """Average over adaptive windows, so that the output has `output_size`, by window sums.

    Output cell `i` of an axis of length `n` averages input cells
    `floor(i * n / out)` to `ceil((i + 1) * n / out)` (exclusive), as in torch:
    each window is summed over the rows, then over the columns, and divided by
    its size. A NaN or infinity reaches only the windows that hold it, as in
    torch. An output size of 1 is the global mean.

    Args:
        input: feature maps, batched `(b, c, h, w)` or one `(c, h, w)`.
        output_size: `(h_out, w_out)`, an int for both, and `None` (for either)
            to keep the input's size on that axis.

    Returns:
        The pooled feature maps.

    Raises:
        ValueError: the input is not 3-D or 4-D with non-empty `c, h, w`, or an
            output size is negative.

    Example:
        >>> x = torch.arange(5.0).reshape(1, 1, 1, 5)
        >>> adaptive_avg_pool2d(x, (1, 2)).flatten().tolist()
        [1.0, 3.0]
        >>> adaptive_avg_pool2d(torch.tensor([[[1.0, float("nan"), 2.0, 4.0]]]), (1, 2)).tolist()
        [[[nan, 3.0]]]
    """
    sizes = _adaptive_sizes(output_size, "adaptive_avg_pool2d")
    _check_feature_maps(tuple(input.shape), "adaptive_avg_pool2d")
    if sizes == (1, 1):  # one window: the mean, 10x faster than the sums on a CPU
        return input.mean(dim=(-2, -1), keepdim=True)
    h, w = input.shape[-2:]
    rows, heights = _adaptive_window_sums(input, -2, h if sizes[0] is None else sizes[0])
    sums, widths = _adaptive_window_sums(rows, -1, w if sizes[1] is None else sizes[1])
    return sums / (heights[:, None] * widths).to(sums.dtype)


def batch_norm(
    input: Float[Tensor, "b c *spatial"] | Float[Tensor, " 0"],
    running_mean: Float[Tensor, " c"] | None,
    running_var: Float[Tensor, " c"] | None,
    weight: Float[Tensor, " c"] | None = None,
    bias: Float[Tensor, " c"] | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Float[Tensor, "b c *spatial"] | Float[Tensor, " 0"]:
    """Batch normalisation by explicit means and variances over every axis but the channels.

    In training, normalises with the batch mean and the biased batch variance,
    and (when running buffers are given) updates them in place with
    `new = (1 - momentum) * old + momentum * batch`, using the unbiased variance,
    as `torch.nn.functional.batch_norm` does; an empty batch is returned as it
    is and leaves them unchanged. Otherwise normalises with the running
    statistics. Half and bfloat16 inputs are normalised in float32 and returned
    in their own dtype, as PyTorch's kernels do.

    Args:
        input: `(b, c)`, `(b, c, l)`, `(b, c, h, w)` or `(b, c, d, h, w)` (or, as
            torch allows, an empty 1-D tensor).
        running_mean: per-channel running mean, updated in training, or `None`.
        running_var: per-channel running variance, updated in training, or `None`.
        weight: per-channel scale (gamma), or `None` for 1.
        bias: per-channel shift (beta), or `None` for 0.
        training: use batch statistics (and update the running ones).
        momentum: weight of the batch statistics in the running update.
        eps: added to the variance before the square root.

    Returns:
        The normalised input, in its dtype.

    Raises:
        ValueError: training with one value per channel, not training without
            running statistics, a non-empty input of rank below 2, or statistics,
            weight or bias without one value per channel.

    Example:
        >>> x = torch.tensor([[[[1.0]], [[2.0]]], [[[3.0]], [[6.0]]]])
        >>> batch_norm(x, None, None, training=True, eps=0.0).flatten().tolist()
        [-1.0, -1.0, 1.0, 1.0]
    """
    if input.ndim < 2 and input.numel():
        raise ValueError(
            f"batch_norm expected input of shape (b, c, ...), got {tuple(input.shape)}"
        )
    stats = (running_mean, running_var, weight, bias)
    channels = input.shape[1] if input.ndim > 1 else 0  # torch takes an empty 1-D input
    if not training and (running_mean is None or running_var is None):
        raise ValueError(
            "batch_norm: running_mean and running_var are required when training=False"
        )
    for name, t in zip(("running_mean", "running_var", "weight", "bias"), stats, strict=True):
        if t is not None and t.shape != (channels,):
            raise ValueError(
                f"batch_norm: {name} should hold one value for each of the {channels} "
                f"channels of input {tuple(input.shape)}, got shape {tuple(t.shape)}"
            )
    axes = [0, *range(2, input.ndim)]
    count = input.numel() // channels if channels else 0
    if training and count == 1:
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, "
            f"got input of shape {tuple(input.shape)}; use a batch of 2 or more, or eval mode"
        )
    if input.numel() == 0:
        return input.clone()
    compute = torch.promote_types(input.dtype, torch.float32)
    x = input.to(compute)

    def per_channel(t: Tensor) -> Tensor:
        return t.to(compute).reshape(1, -1, *([1] * (input.ndim - 2)))

    if training:
        mean = x.mean(dim=axes)
        centred = x - per_channel(mean)
        var = (centred * centred).mean(dim=axes)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                unbiased = var * (count / (count - 1))
                running_mean.mul_(1 - momentum).add_(momentum * mean.to(running_mean.dtype))
                running_var.mul_(1 - momentum).add_(momentum * unbiased.to(running_var.dtype))
    else:
        var = running_var
        centred = x - per_channel(running_mean)
    out = centred * per_channel(torch.rsqrt(var.to(compute) + eps))
    if weight is not None:
        out = out * per_channel(weight)
    if bias is not None:
        out = out + per_channel(bias)
    return out.to(input.dtype)


def linear(
    input: Float[Tensor, "*batch d_in"],
    weight: Float[Tensor, "d_out d_in"],
    bias: Float[Tensor, " d_out"] | None = None,
) -> Float[Tensor, "*batch d_out"]:
    """Affine map `input @ weight.T + bias` written as an `einsum`.

    Args:
        input: vectors, with any leading batch axes (none for one vector).
        weight: the matrix, one row per output feature.
        bias: one value per output feature, or `None`.

    Returns:
        The mapped vectors.

    Raises:
        ValueError: `input` is a scalar or its last axis is not `d_in`.

    Example:
        >>> linear(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]])).tolist()
        [[11.0]]
    """
    _check_linear_input(tuple(input.shape), weight.shape[1], "linear")
    out = einsum(input, weight, "... d_in, d_out d_in -> ... d_out")
    if bias is not None:
        # under autocast torch casts the bias with the product, so the sum keeps its dtype
        out = out + bias.to(out.dtype)
    return out


def _check_linear_input(shape: tuple[int, ...], in_features: int, name: str) -> None:
    if len(shape) == 0 or shape[-1] != in_features:
        raise ValueError(f"{name} expected input of shape (..., {in_features}), got {tuple(shape)}")


def relu(input: Float[Tensor, "*shape"], inplace: bool = False) -> Float[Tensor, "*shape"]:
    """Rectified linear unit, `max(x, 0)`, with gradient 0 at 0 and NaN kept, as in PyTorch.

    Args:
        input: any tensor.
        inplace: write the result into `input` (and return it), as
            `torch.nn.functional.relu(..., inplace=True)` does.

    Returns:
        A new tensor, or `input` itself when `inplace`.

    Example:
        >>> relu(torch.tensor([-1.0, 0.0, 2.0, float("nan")])).tolist()
        [0.0, 0.0, 2.0, nan]
    """
    # `x <= 0` is False for NaN, so NaN passes through like torch.relu
    out = torch.where(input <= 0, torch.zeros((), dtype=input.dtype, device=input.device), input)
    return input.copy_(out) if inplace else out


def global_avg_pool2d(input: Float[Tensor, "b c h w"]) -> Float[Tensor, "b c"]:
    """Mean over the spatial axes: one value per image and channel.

    Args:
        input: feature maps, `(b, c, h, w)` with non-empty `c, h, w`.

    Returns:
        The pooled features.

    Raises:
        ValueError: the input is not 4-D with non-empty `c, h, w`.

    Example:
        >>> global_avg_pool2d(torch.arange(4.0).reshape(1, 1, 2, 2)).tolist()
        [[1.5]]
    """
    _check_global_pool_input(tuple(input.shape), "global_avg_pool2d")
    return reduce(input, "b c h w -> b c", "mean")


def _check_global_pool_input(shape: tuple[int, ...], name: str) -> None:
    """Raise unless `shape` is `(b, c, h, w)` with non-empty `c, h, w`.

    torch has no global pooling module: its analogue, `AdaptiveAvgPool2d(1)` then
    `Flatten()`, takes `(c, h, w)` too but flattens it to `(c, 1)`, not one vector,
    so only batches are taken; empty feature maps have no mean (torch refuses them).
    """
    if len(shape) != 4 or 0 in shape[1:]:
        hint = "; add a batch axis with input.unsqueeze(0)" if len(shape) == 3 else ""
        raise ValueError(
            f"{name} expected input of shape (b, c, h, w) with c, h, w > 0, got "
            f"{tuple(shape)}{hint}"
        )
