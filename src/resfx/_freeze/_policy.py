"""The BatchNorm policies of frozen parts, and the record `freeze` keeps on each module it changes."""

import functools
from dataclasses import dataclass
from typing import Literal, get_args

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..nn import BatchNorm2d

BNPolicy = Literal["eval", "batch", "train"]
"""How a frozen BatchNorm behaves in train mode.

- `"eval"`: normalise with the running statistics and never update them, even
  after `model.train()` (the module stays in eval mode).
- `"batch"`: normalise with each batch's statistics, never update the running
  ones (`num_batches_tracked` stays); eval mode still uses the running statistics.
- `"train"`: unchanged, as with plain `requires_grad_(False)`: batch statistics
  in train mode, running statistics updated.
"""

_STATE = "_resfx_frozen"


@dataclass
class FrozenState:
    """What `freeze` changed on one module, kept on the module so copies and pickles keep it.

    `requires_grad` holds the flags of the module's own parameters before the
    first `freeze`; `track_running_stats` a BatchNorm's setting before it;
    `training` the mode the latest `train()`/`eval()` call asked of a
    BatchNorm held in eval mode by the `"eval"` policy.
    """

    requires_grad: dict[str, bool]
    bn_policy: BNPolicy | None = None
    track_running_stats: bool | None = None
    training: bool | None = None


def is_batchnorm(module: nn.Module) -> bool:
    """Whether `module` is a batch normalisation: `resfx.nn.BatchNorm2d` or any of torch's.

    torch's are the subclasses of its `_BatchNorm`: BatchNorm1d/2d/3d, their lazy
    forms and SyncBatchNorm (not InstanceNorm, which shares only the base class).

    Args:
        module: any module.

    Returns:
        `True` for a batch normalisation module.

    Example:
        >>> import torch, resfx
        >>> resfx.is_batchnorm(resfx.nn.BatchNorm2d(3)), resfx.is_batchnorm(torch.nn.BatchNorm1d(3))
        (True, True)
        >>> resfx.is_batchnorm(torch.nn.InstanceNorm2d(3)), resfx.is_batchnorm(torch.nn.LayerNorm(3))
        (False, False)
    """
    return isinstance(module, (BatchNorm2d, _BatchNorm))


def check_policy(bn: str) -> None:
    """Raise `ValueError` unless `bn` is one of the `BNPolicy` names."""
    policies = get_args(BNPolicy)
    if bn not in policies:
        raise ValueError(f"bn must be one of {policies}, got {bn!r}")


def frozen_state(module: nn.Module) -> FrozenState | None:
    """The record `freeze` left on this module itself (not its children), `None` if none."""
    return module.__dict__.get(_STATE)


def set_frozen_state(module: nn.Module, state: FrozenState) -> None:
    """Keep `state` on `module` (an instance attribute: deepcopy and pickle carry it)."""
    setattr(module, _STATE, state)


def clear_frozen_state(module: nn.Module) -> None:
    """Drop the record `freeze` left on `module`."""
    del module.__dict__[_STATE]


def _train_frozen_batchnorm(module: nn.Module, mode: bool = True) -> nn.Module:
    """`train` of a BatchNorm under the `"eval"` policy: remember the mode asked for, stay in eval."""
    if not isinstance(mode, bool):
        raise ValueError(f"training mode is expected to be a bool, got {mode!r}")
    module.__dict__[_STATE].training = mode
    module.training = False
    for child in module.children():
        child.train(mode)
    return module


def apply_policy(module: nn.Module, state: FrozenState, bn: BNPolicy) -> None:
    """Make the BatchNorm `module` behave as `bn` says, recording it in `state`."""
    state.bn_policy = bn
    if bn == "eval":
        # An instance attribute shadows nn.Module.train for this module only; a partial of a
        # module-level function survives deepcopy and pickle (torch.save of the whole model).
        state.training = module.training
        module.train = functools.partial(_train_frozen_batchnorm, module)
        module.training = False
    elif bn == "batch":
        # torch's and resfx's BatchNorm forward: training with track_running_stats=False uses
        # batch statistics and passes no buffers to update; eval mode still uses the buffers.
        module.track_running_stats = False


def release_policy(module: nn.Module, state: FrozenState) -> None:
    """Undo `apply_policy` on the BatchNorm `module`."""
    if state.bn_policy == "eval":
        del module.train
        module.training = bool(state.training)
        state.training = None
    elif state.bn_policy == "batch":
        module.track_running_stats = bool(state.track_running_stats)


def bn_policy(module: nn.Module) -> BNPolicy | None:
    """How a BatchNorm behaves now: its `freeze` policy, `"train"` if not frozen by `freeze`.

    A BatchNorm frozen by plain `requires_grad_(False)` reports `"train"`: its
    running statistics still update in train mode.

    Args:
        module: any module.

    Returns:
        The policy for a BatchNorm (see `is_batchnorm`), `None` for other modules.

    Example:
        >>> import torch, resfx
        >>> bn = torch.nn.BatchNorm2d(3)
        >>> resfx.bn_policy(bn), resfx.bn_policy(resfx.freeze(bn)), resfx.bn_policy(torch.nn.ReLU())
        ('train', 'eval', None)
    """
    if not is_batchnorm(module):
        return None
    state = frozen_state(module)
    if state is None or state.bn_policy is None:
        return "train"
    return state.bn_policy
