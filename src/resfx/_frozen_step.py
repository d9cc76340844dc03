"""The frozen forward, defined once: what `resfx.train` runs, `resfx bench` times and the cache stores.

A frozen backbone runs in inference mode (no graph, no saved activations), under the
precision's autocast, and hands float32 features to the head, which runs outside
autocast, in float32, with autograd. With the `"eval"` BatchNorm policy the backbone
is a copy with BatchNorm folded into the convolutions (the same function, one kernel
less per layer); under bf16 on a GPU the copy keeps its weights in bf16, so autocast
has no weight to cast in every forward (the copy is never trained or saved).
"""

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn as tnn

from ._fold import fold_batchnorm
from ._precision import autocast, check_precision
from ._typing import Features, Images, Logits

M = TypeVar("M", bound=tnn.Module)


def fold_frozen_backbone(model: M, *, precision: str) -> M:
    """The copy of a frozen backbone the frozen forward runs on: BatchNorm folded, in eval mode.

    On a GPU with `"bf16"` the copy's floating-point weights are stored in bfloat16.
    The original is untouched.
    """
    check_precision(precision)
    folded = fold_batchnorm(model)
    parameter = next(folded.parameters(), None)
    if precision == "bf16" and parameter is not None and parameter.device.type == "cuda":
        folded = folded.to(torch.bfloat16)
    return folded


def frozen_features(
    backbone: Callable[[Images], Features], images: Images, *, precision: str
) -> Features:
    """The backbone's features in inference mode under `precision`'s autocast, as float32.

    The result is a copy made outside inference mode, so autograd may save it for the
    head's backward.
    """
    with torch.inference_mode(), autocast(images.device, precision):
        features = backbone(images)
    return features.to(torch.float32, copy=True)


def frozen_head_logits(
    backbone: Callable[[Images], Features],
    head: Callable[[Features], Logits],
    images: Images,
    *,
    precision: str,
) -> Logits:
    """One frozen forward: `frozen_features`, then the head in float32 with autograd."""
    return head(frozen_features(backbone, images, precision=precision))
