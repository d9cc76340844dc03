"""2-D batch normalisation module."""

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from .. import _functional as RF
from ._switch import _tracing, using_reference_ops


class BatchNorm2d(nn.Module):
    """Batch normalisation over `(b, h, w)` per channel, with torch.nn.BatchNorm2d's semantics.

    In train mode it normalises with the batch mean and biased variance and
    updates `running_mean` / `running_var` with the unbiased variance; with
    `momentum=None` the update is the cumulative average over
    `num_batches_tracked` batches. In eval mode it normalises with the running
    statistics. Parameter and buffer names match torch.nn, so torch state
    dicts load strictly; a checkpoint without `num_batches_tracked` (as
    torchvision's 2017 ImageNet files are) loads with the counter at 0, as in torch.

    Args:
        num_features: channels `c`.
        eps: added to the variance before the square root.
        momentum: weight of each batch in the running update, or `None` for
            the cumulative average.
        affine: learn a per-channel scale `weight` and shift `bias`.
        track_running_stats: keep running statistics; without them eval mode
            also uses batch statistics.
        device: where to create the parameters and buffers (`"meta"` allocates nothing).
        dtype: the parameters' and running statistics' dtype.
        bias: (keyword only, as in torch 2.14) learn the shift `bias` when `affine`.

    Raises:
        ValueError: `num_features` is not positive or `momentum` is outside [0, 1].

    Example:
        >>> import torch
        >>> bn = BatchNorm2d(4)
        >>> y = bn(torch.randn(8, 4, 5, 5))
        >>> int(bn.num_batches_tracked)
        1
    """

    # registered in __init__; declared (as torch.nn's norms do) so type checkers see tensors
    weight: nn.Parameter | None
    bias: nn.Parameter | None
    running_mean: Tensor | None
    running_var: Tensor | None
    num_batches_tracked: Tensor | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"BatchNorm2d needs num_features >= 1, got {num_features}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm2d momentum must be in [0, 1] or None, got {momentum}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        factory = {"device": device, "dtype": dtype}
        self.register_parameter(
            "weight", nn.Parameter(torch.empty(num_features, **factory)) if affine else None
        )
        self.register_parameter(
            "bias", nn.Parameter(torch.empty(num_features, **factory)) if affine and bias else None
        )
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Set the running mean to 0, the running variance to 1 and the counter to 0.

        Example:
            >>> BatchNorm2d(2).reset_running_stats()
        """
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics, and the scale to 1 and shift to 0.

        Example:
            >>> BatchNorm2d(2).reset_parameters()
        """
        self.reset_running_stats()
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: Float[Tensor, "b c h w"]) -> Float[Tensor, "b c h w"]:
        """Normalise `input` (and, in train mode with tracking, update the running statistics).

        Raises:
            ValueError: `input` is not 4-D with `num_features` channels, or in train
                mode holds one value per channel.

        Example:
            >>> import torch
            >>> BatchNorm2d(3).eval()(torch.zeros(1, 3, 2, 2)).abs().max().item()
            0.0
        """
        if not _tracing(input) and (input.ndim != 4 or input.shape[1] != self.num_features):
            hint = "; add a batch axis with input.unsqueeze(0)" if input.ndim == 3 else ""
            raise ValueError(
                f"BatchNorm2d expected 4-D input of shape (b, {self.num_features}, h, w), "
                f"got {tuple(input.shape)}{hint}"
            )
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep_buffers = not self.training or self.track_running_stats
        op = RF.batch_norm if using_reference_ops() else torch.nn.functional.batch_norm
        return op(
            input,
            self.running_mean if keep_buffers else None,
            self.running_var if keep_buffers else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Checkpoints from before PyTorch 0.4.1 (torchvision's ImageNet files among them)
        # have no counter; torch.nn fills it with 0 and so do we.
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and key not in state_dict:
            state_dict[key] = torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )
