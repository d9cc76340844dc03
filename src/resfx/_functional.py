"""Reference ops in plain tensor maths.

Each op has the signature of its `torch.nn.functional` twin and is written from
elementary tensor operations (strided views, `einsum`, means and variances), so
it can be read as the definition of the op. The modules in `resfx.nn` run
PyTorch's fused kernels by default and these ops under
[`resfx.nn.reference_ops`][resfx.nn.reference_ops]; the test suite proves the
two agree in value and gradient.
"""

from collections.abc import Sequence
from typing import Literal

import torch
from einops import einsum, rearrange, reduce
from jaxtyping import Float, Shaped
from torch import Tensor

from ._pair import as_pair

_PAD_MODES: tuple[str, ...] = ("constant", "reflect", "replicate", "circular")


def _windows(
    x: Float[Tensor, "b c h w"],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> Float[Tensor, "b c h_out w_out kh kw"]:
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
    padding: str | int | tuple[int, int],
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
    stride: int | tuple[int, int] = 1,
    padding: str | int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
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
        out = out + rearrange(bias, "c_out -> 1 c_out 1 1")
    return out if input.ndim == 4 else out.squeeze(0)


def max_pool2d(
    input: Float[Tensor, "b c h w"],
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
) -> Float[Tensor, "b c h_out w_out"]:
    """Max pooling by strided windows: pad with `-inf`, take the maximum of each window.

    Where a window holds several equal maxima, the gradient is shared among them
    (PyTorch's kernel sends it to one); values drawn at random never tie.

    Args:
        input: feature maps.
        kernel_size: window size, an int or `(kh, kw)`.
        stride: step between windows; `None` means `kernel_size`.
        padding: `-inf` added on each side, at most half the kernel.

    Returns:
        The pooled feature maps.

    Raises:
        ValueError: padding is more than half the kernel.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> max_pool2d(x, 2).squeeze().tolist()
        [[5.0, 7.0], [13.0, 15.0]]
    """
    kernel = as_pair(kernel_size, "kernel_size", minimum=1)
    stride_hw = kernel if stride is None else as_pair(stride, "stride", minimum=1)
    padding_hw = as_pair(padding, "padding", minimum=0)
    if padding_hw[0] > kernel[0] // 2 or padding_hw[1] > kernel[1] // 2:
        raise ValueError(
            f"max_pool2d: padding {padding_hw} must be at most half the kernel {kernel}"
        )
    padded = pad(
        input, (padding_hw[1], padding_hw[1], padding_hw[0], padding_hw[0]), value=float("-inf")
    )
    windows = _windows(padded, kernel, stride_hw)
    return reduce(windows, "b c h_out w_out kh kw -> b c h_out w_out", "max")


def batch_norm(
    input: Float[Tensor, "b c h w"],
    running_mean: Float[Tensor, " c"] | None,
    running_var: Float[Tensor, " c"] | None,
    weight: Float[Tensor, " c"] | None = None,
    bias: Float[Tensor, " c"] | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Float[Tensor, "b c h w"]:
    """Batch normalisation by explicit means and variances.

    In training, normalises with the batch mean and the biased batch variance,
    and (when running buffers are given) updates them in place with
    `new = (1 - momentum) * old + momentum * batch`, using the unbiased variance,
    as `torch.nn.functional.batch_norm` does. Otherwise normalises with the
    running statistics.

    Args:
        input: feature maps.
        running_mean: per-channel running mean, updated in training, or `None`.
        running_var: per-channel running variance, updated in training, or `None`.
        weight: per-channel scale (gamma), or `None` for 1.
        bias: per-channel shift (beta), or `None` for 0.
        training: use batch statistics (and update the running ones).
        momentum: weight of the batch statistics in the running update.
        eps: added to the variance before the square root.

    Returns:
        The normalised feature maps.

    Raises:
        ValueError: training with one value per channel, or not training
            without running statistics.

    Example:
        >>> x = torch.tensor([[[[1.0]], [[2.0]]], [[[3.0]], [[6.0]]]])
        >>> batch_norm(x, None, None, training=True, eps=0.0).flatten().tolist()
        [-1.0, -1.0, 1.0, 1.0]
    """
    if training:
        count = input.shape[0] * input.shape[2] * input.shape[3]
        if count < 2:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, "
                f"got input of shape {tuple(input.shape)}; use a batch of 2 or more, "
                f"or eval mode"
            )
        mean = reduce(input, "b c h w -> c", "mean")
        centred = input - rearrange(mean, "c -> 1 c 1 1")
        var = reduce(centred * centred, "b c h w -> c", "mean")
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                unbiased = var * (count / (count - 1))
                running_mean.mul_(1 - momentum).add_(momentum * mean)
                running_var.mul_(1 - momentum).add_(momentum * unbiased)
    else:
        if running_mean is None or running_var is None:
            raise ValueError(
                "batch_norm: running_mean and running_var are required when training=False"
            )
        mean, var = running_mean, running_var
        centred = input - rearrange(mean, "c -> 1 c 1 1")
    out = centred * rearrange(torch.rsqrt(var + eps), "c -> 1 c 1 1")
    if weight is not None:
        out = out * rearrange(weight, "c -> 1 c 1 1")
    if bias is not None:
        out = out + rearrange(bias, "c -> 1 c 1 1")
    return out


def linear(
    input: Float[Tensor, "*batch d_in"],
    weight: Float[Tensor, "d_out d_in"],
    bias: Float[Tensor, " d_out"] | None = None,
) -> Float[Tensor, "*batch d_out"]:
    """Affine map `input @ weight.T + bias` written as an `einsum`.

    Args:
        input: vectors, with any leading batch axes.
        weight: the matrix, one row per output feature.
        bias: one value per output feature, or `None`.

    Returns:
        The mapped vectors.

    Example:
        >>> linear(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]])).tolist()
        [[11.0]]
    """
    out = einsum(input, weight, "... d_in, d_out d_in -> ... d_out")
    if bias is not None:
        out = out + bias
    return out


def relu(input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """Rectified linear unit, `max(x, 0)`, with gradient 0 at 0 as in PyTorch.

    Args:
        input: any tensor.

    Returns:
        A new tensor (never in place).

    Example:
        >>> relu(torch.tensor([-1.0, 0.0, 2.0])).tolist()
        [0.0, 0.0, 2.0]
    """
    return torch.where(input > 0, input, torch.zeros_like(input))


def global_avg_pool2d(input: Float[Tensor, "b c h w"]) -> Float[Tensor, "b c"]:
    """Mean over the spatial axes: one value per image and channel.

    Args:
        input: feature maps.

    Returns:
        The pooled features.

    Example:
        >>> global_avg_pool2d(torch.arange(4.0).reshape(1, 1, 2, 2)).tolist()
        [[1.5]]
    """
    return reduce(input, "b c h w -> b c", "mean")
