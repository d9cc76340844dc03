"""Reference ops in plain tensor maths.

Each op has the signature of its `torch.nn.functional` twin and is written from
elementary tensor operations (strided views, `einsum`, means and variances), so
it can be read as the definition of the op. The modules in `resfx.nn` run
PyTorch's fused kernels by default and these ops under
[`resfx.nn.reference_ops`][resfx.nn.reference_ops]; the test suite proves the
two agree in value and gradient.
"""

import torch
from einops import einsum, rearrange, reduce
from jaxtyping import Float
from torch import Tensor

from ._pair import as_pair


def _windows(
    x: Float[Tensor, "b c h w"],
    kernel: tuple[int, int],
    stride: tuple[int, int],
) -> Float[Tensor, "b c h_out w_out kh kw"]:
    """Every kernel-sized window of `x` at the given stride, as a strided view (no copy)."""
    x = x.contiguous()
    kh, kw = kernel
    sh, sw = stride
    h_out = (x.shape[2] - kh) // sh + 1
    w_out = (x.shape[3] - kw) // sw + 1
    sb, sc, sy, sx = x.stride()
    return x.as_strided(
        (x.shape[0], x.shape[1], h_out, w_out, kh, kw),
        (sb, sc, sy * sh, sx * sw, sy, sx),
    )


def _pad(x: Float[Tensor, "b c h w"], padding: tuple[int, int], value: float) -> Tensor:
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return torch.nn.functional.pad(x, (pw, pw, ph, ph), mode="constant", value=value)


def conv2d(
    input: Float[Tensor, "b c_in h w"],
    weight: Float[Tensor, "c_out c_in kh kw"],
    bias: Float[Tensor, " c_out"] | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> Float[Tensor, "b c_out h_out w_out"]:
    """2-D convolution (cross-correlation) by strided windows and `einsum`.

    Zero-pads `input`, takes every `kh x kw` window at the given stride as a
    strided view, and contracts it with `weight` over channels and kernel axes.

    Args:
        input: images or feature maps.
        weight: the filters.
        bias: one value per output channel, or `None`.
        stride: step between windows, an int or `(sh, sw)`.
        padding: zeros added on each side, an int or `(ph, pw)`.

    Returns:
        The convolved feature map, `h_out = (h + 2 ph - kh) // sh + 1`.

    Raises:
        ValueError: channels of `input` and `weight` differ, or the padded input
            is smaller than the kernel.

    Example:
        >>> x = torch.ones(1, 1, 3, 3)
        >>> conv2d(x, torch.ones(1, 1, 2, 2)).squeeze().tolist()
        [[4.0, 4.0], [4.0, 4.0]]
    """
    stride_hw = as_pair(stride, "stride", minimum=1)
    padding_hw = as_pair(padding, "padding", minimum=0)
    if input.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv2d: input has {input.shape[1]} channels but weight {tuple(weight.shape)} "
            f"expects {weight.shape[1]}; pass an input of shape (b, {weight.shape[1]}, h, w)"
        )
    padded = _pad(input, padding_hw, 0.0)
    kernel = (weight.shape[2], weight.shape[3])
    if padded.shape[2] < kernel[0] or padded.shape[3] < kernel[1]:
        raise ValueError(
            f"conv2d: padded input {tuple(padded.shape[2:])} is smaller than the kernel {kernel}"
        )
    windows = _windows(padded, kernel, stride_hw)
    out = einsum(
        windows, weight, "b c_in h_out w_out kh kw, c_out c_in kh kw -> b c_out h_out w_out"
    )
    if bias is not None:
        out = out + rearrange(bias, "c_out -> 1 c_out 1 1")
    return out


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
    padded = _pad(input, padding_hw, float("-inf"))
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
