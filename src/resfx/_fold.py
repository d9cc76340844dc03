"""Folding eval-mode BatchNorm into the preceding convolution, for frozen inference."""

import copy
from typing import TypeVar

import torch
from torch import nn as tnn

from . import nn

M = TypeVar("M", bound=tnn.Module)

_CONVS = (nn.Conv2d, tnn.Conv2d)
_NORMS = (nn.BatchNorm2d, tnn.BatchNorm2d)


def _fold_pair(conv: tnn.Module, norm: tnn.Module) -> None:
    """Scale `conv`'s filters and set its bias so that `conv` alone computes `norm(conv(x))`."""
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError(
            f"cannot fold {type(norm).__name__} without running statistics into a convolution; "
            f"fold only BatchNorms built with track_running_stats=True"
        )
    with torch.no_grad():
        var = norm.running_var.double()
        scale = torch.rsqrt(var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.double()
        shift = -norm.running_mean.double() * scale
        if norm.bias is not None:
            shift = shift + norm.bias.double()
        old_bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(shift)
        weight = conv.weight.double() * scale.view(-1, 1, 1, 1)
        conv.weight.copy_(weight.to(conv.weight.dtype))
        bias = (old_bias * scale + shift).to(conv.weight.dtype)
    conv.bias = tnn.Parameter(bias, requires_grad=False)


def fold_batchnorm(module: M) -> M:
    """A copy of `module` for inference with every BatchNorm folded into the convolution before it.

    A convolution followed by eval-mode BatchNorm is one affine map per channel:
    `w' = w * gamma / sqrt(var + eps)`, `b' = beta + (b - mean) * gamma / sqrt(var + eps)`.
    The copy computes what `module.eval()` computes with one kernel less per pair
    (and no BatchNorm kernel at all), which is the fast path for a frozen backbone
    whose BatchNorm follows the `"eval"` policy. Pairs are found by name: children
    `convN` / `bnN` of one module, and a `Conv2d` directly followed by a
    `BatchNorm2d` inside a Sequential (ResNet's `downsample`); both resfx and
    torch.nn modules are folded, so torchvision ResNets work too. The folding is
    done in float64. The copy is in eval mode and its parameters are frozen; the
    original is untouched.

    The pairing reads names and registration order, not the data flow: `bnN` is
    folded into `convN` only when `convN` is registered first, as in ResNet-style
    modules where `bnN` normalises the output of `convN` (resfx's and
    torchvision's ResNets, whose outputs the tests compare). A module that
    registers `bnN` before `convN`, as a pre-activation block does, is refused
    rather than folded wrongly; for other layouts, check the outputs against the
    unfolded model.

    Args:
        module: a model or backbone.

    Returns:
        The folded copy.

    Raises:
        ValueError: a BatchNorm without running statistics follows a convolution, or a
            module registers `bnN` before `convN` (a pre-activation layout).

    Example:
        >>> import torch, resfx
        >>> model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1))).eval()
        >>> folded = fold_batchnorm(model)
        >>> x = torch.randn(2, 3, 32, 32)
        >>> torch.allclose(folded(x), model(x), atol=1e-5)
        True
    """
    folded = copy.deepcopy(module).eval()
    for parent in list(folded.modules()):
        children = dict(parent.named_children())
        for name, child in children.items():
            if not isinstance(child, _NORMS):
                continue
            conv_name = "conv" + name[2:] if name.startswith("bn") else None
            names = list(children)
            previous = names[names.index(name) - 1] if names.index(name) > 0 else None
            if conv_name in children and isinstance(children[conv_name], _CONVS):
                if names.index(conv_name) > names.index(name):
                    raise ValueError(
                        f"{type(parent).__name__} registers {name} before {conv_name}, as a "
                        f"pre-activation block does (BatchNorm before the convolution); folding "
                        f"{name} into {conv_name} would be wrong, so fold_batchnorm refuses: "
                        f"run the model unfolded"
                    )
                _fold_pair(children[conv_name], child)
            elif isinstance(parent, (nn.Sequential, tnn.Sequential)) and isinstance(
                children.get(previous), _CONVS
            ):
                _fold_pair(children[previous], child)
            else:
                continue
            setattr(parent, name, tnn.Identity())
    folded.requires_grad_(False)
    return folded
