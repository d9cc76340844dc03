"""The BatchNorm policies of frozen parts, and the record `freeze` keeps on each module it changes."""

import functools
import warnings
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm, _NormBase
from torch.utils.weak import WeakIdKeyDictionary

from ..nn import BatchNorm2d

BNPolicy = Literal["eval", "batch", "train"]
"""How a frozen BatchNorm (any module with running statistics, see `has_running_stats`) behaves in train mode.

- `"eval"`: normalise with the running statistics and never update them, even
  after `model.train()` (the module stays in eval mode; its `momentum` is 0 while
  frozen, so a copy that loses the mode, such as torch's SyncBatchNorm converter
  makes, still leaves the statistics as they are).
- `"batch"`: normalise with each batch's statistics, never update the running
  ones (`num_batches_tracked` stays); eval mode still uses the running statistics.
- `"train"`: unchanged, as with plain `requires_grad_(False)`: batch statistics
  in train mode, running statistics updated.
"""

_STATE = "_resfx_frozen"
_RUNNING = ("running_mean", "running_var", "num_batches_tracked")

_FROZEN_BY: Any = WeakIdKeyDictionary()
"""Tensor -> weak references to the modules whose `freeze` record froze it (parameters) or
fixed it by a policy (running statistics). A runtime index, not part of any copy: it lets
`unfreeze` find the other owners of a shared parameter and `bn_policy` a SyncBatchNorm that
`torch.nn.SyncBatchNorm.convert_sync_batchnorm` made behind `freeze`'s back."""


_RECORDS: Any = WeakIdKeyDictionary()
"""Running-statistics tensor -> the `FrozenState` of the norm that holds it under a policy. A copy
of the module that shares the tensors (what torch's SyncBatchNorm converter makes) but lost the
record finds it here, so `freeze` and `unfreeze` restore the original settings through it."""


@dataclass
class FrozenState:
    """What `freeze` changed on one module, kept on the module so copies and pickles keep it.

    `requires_grad` holds the flags of the module's own parameters before the
    first `freeze`; `track_running_stats` a BatchNorm's setting before it;
    `training` the mode the latest `train()`/`eval()` call asked of a
    BatchNorm held in eval mode by the `"eval"` policy; `momentum` (when
    `holds_momentum`) the norm's momentum before that policy set it to 0.
    """

    requires_grad: dict[str, bool]
    bn_policy: BNPolicy | None = None
    track_running_stats: bool | None = None
    training: bool | None = None
    momentum: float | None = None
    holds_momentum: bool = False


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


def has_running_stats(module: nn.Module) -> bool:
    """Whether the BatchNorm policies apply to `module`: a BatchNorm, or a norm with running statistics.

    That is every `is_batchnorm` module and every other subclass of torch's
    `_NormBase` holding running statistics (`InstanceNorm1d/2d/3d` with
    `track_running_stats=True`): in train mode all of them update their
    buffers at every forward.

    Args:
        module: any module.

    Returns:
        `True` when a policy applies.

    Example:
        >>> import torch, resfx
        >>> from resfx import has_running_stats
        >>> has_running_stats(torch.nn.InstanceNorm2d(3, track_running_stats=True))
        True
        >>> has_running_stats(torch.nn.InstanceNorm2d(3)), has_running_stats(torch.nn.LayerNorm(3))
        (False, False)
    """
    return is_batchnorm(module) or (
        isinstance(module, _NormBase) and getattr(module, "running_mean", None) is not None
    )


def note_frozen(module: nn.Module, tensors: Iterable[Tensor]) -> None:
    """Index `tensors` as frozen (or policy-held) by `module`."""
    for tensor in tensors:
        owners = _FROZEN_BY.setdefault(tensor, [])
        if not any(ref() is module for ref in owners):
            owners.append(weakref.ref(module))


def note_thawed(module: nn.Module, tensors: Iterable[Tensor]) -> None:
    """Drop `module` from the index entries of `tensors`."""
    for tensor in tensors:
        owners = [ref for ref in _FROZEN_BY.get(tensor, []) if ref() not in (None, module)]
        if owners:
            _FROZEN_BY[tensor] = owners
        elif tensor in _FROZEN_BY:
            del _FROZEN_BY[tensor]


def frozen_by(tensor: Tensor) -> list[nn.Module]:
    """The live modules whose `freeze` record holds `tensor` frozen, in the order they froze it."""
    return [module for ref in _FROZEN_BY.get(tensor, []) if (module := ref()) is not None]


def running_tensors(module: nn.Module) -> list[Tensor]:
    """A norm module's own parameters and running-statistics buffers."""
    own = list(module.parameters(recurse=False))
    return own + [b for name, b in module.named_buffers(recurse=False) if name in _RUNNING]


def converted_behind_freeze(module: nn.Module) -> bool:
    """Whether `module` is a SyncBatchNorm made from a frozen BatchNorm by torch's converter.

    `torch.nn.SyncBatchNorm.convert_sync_batchnorm` builds new modules around the
    same parameter and buffer tensors, without `freeze`'s record or policy.
    """
    return (
        isinstance(module, nn.SyncBatchNorm)
        and frozen_state(module) is None
        # The BatchNorm it replaced may be gone already: a dead reference counts too.
        and any(
            ref() is not module for t in running_tensors(module) for ref in _FROZEN_BY.get(t, [])
        )
    )


def warn_converted(name: str) -> None:
    """Warn that the SyncBatchNorm `name` lost its policy to torch's converter."""
    warnings.warn(
        f"{name or 'the module'} is a SyncBatchNorm made by torch.nn.SyncBatchNorm."
        f"convert_sync_batchnorm from a BatchNorm frozen by resfx.freeze: the conversion dropped "
        f"its policy, so in train mode it normalises with batch statistics (its running "
        f"statistics stay, held by the momentum 0 or track_running_stats=False it copied, but "
        f"num_batches_tracked counts); convert with resfx.convert_sync_batchnorm, which keeps the "
        f"policies, or call resfx.freeze on the converted model again",
        UserWarning,
        stacklevel=3,
    )


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
    state = module.__dict__.pop(_STATE)
    for tensor in _statistics(module):
        if _RECORDS.get(tensor) is state:
            del _RECORDS[tensor]


def _statistics(module: nn.Module) -> list[Tensor]:
    return [b for name, b in module.named_buffers(recurse=False) if name in _RUNNING]


def _record_of(module: nn.Module) -> FrozenState | None:
    """The record of the norm whose running statistics `module` shares, `None` if none."""
    return next((r for t in _statistics(module) if (r := _RECORDS.get(t)) is not None), None)


def adopt_record(module: nn.Module) -> bool:
    """Give a norm that lost `freeze`'s record (a copy sharing its statistics) the original's.

    The copy gets its own copy of the record and its policy again; the record's
    saved settings (momentum, `track_running_stats`, flags) stay the original
    module's, whatever the copy was built with.

    Returns:
        Whether a record was found and adopted.
    """
    if frozen_state(module) is not None:
        return False
    record = _record_of(module)
    if record is None:
        return False
    give_record(module, replace(record, requires_grad=dict(record.requires_grad)))
    return True


def give_record(module: nn.Module, state: FrozenState) -> None:
    """Make `state` the record of the norm `module` (a copy of the one it was made on) and
    apply its policy, keeping the mode the latest `train()`/`eval()` asked for."""
    asked = state.training
    set_frozen_state(module, state)
    note_frozen(module, module.parameters(recurse=False))
    if state.bn_policy is not None:
        apply_policy(module, state, state.bn_policy)
        if asked is not None:
            state.training = asked


def _train_frozen_batchnorm(module: nn.Module, mode: bool = True) -> nn.Module:
    """`train` of a BatchNorm under the `"eval"` policy: remember the mode asked for, stay in eval."""
    if not isinstance(mode, bool):
        raise ValueError(f"training mode is expected to be a bool, got {mode!r}")
    module.__dict__[_STATE].training = mode
    module.training = False
    for child in module.children():
        child.train(mode)
    return module


def _forward_without_running_stats(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """`forward` of a norm under the `"batch"` policy that has no `track_running_stats` switch.

    torch's InstanceNorm uses and updates its buffers in train mode whatever
    `track_running_stats` says; with the buffers hidden for the call it uses
    each input's statistics and updates nothing. Eval mode uses the buffers.
    """
    if not module.training:
        return type(module).forward(module, *args, **kwargs)
    hidden = {name: module._buffers[name] for name in _RUNNING if name in module._buffers}
    module._buffers.update(dict.fromkeys(hidden))
    try:
        return type(module).forward(module, *args, **kwargs)
    finally:
        module._buffers.update(hidden)


def apply_policy(module: nn.Module, state: FrozenState, bn: BNPolicy) -> None:
    """Make the norm `module` (see `has_running_stats`) behave as `bn` says, recording it in `state`."""
    state.bn_policy = bn
    note_frozen(module, running_tensors(module))
    for tensor in _statistics(module):
        _RECORDS[tensor] = state
    if bn == "eval":
        # An instance attribute shadows nn.Module.train for this module only; a partial of a
        # module-level function survives deepcopy and pickle (torch.save of the whole model).
        state.training = module.training
        module.train = functools.partial(_train_frozen_batchnorm, module)
        module.training = False
        # The patched `train` is lost by any wrapper that rebuilds the module from its
        # settings (torch's SyncBatchNorm converter): momentum 0 goes with the settings, so a
        # rebuilt copy put in train mode cannot move the statistics either.
        if not state.holds_momentum:
            state.momentum, state.holds_momentum = module.momentum, True
        module.momentum = 0.0
    elif bn == "batch" and is_batchnorm(module):
        # torch's and resfx's BatchNorm forward: training with track_running_stats=False uses
        # batch statistics and passes no buffers to update; eval mode still uses the buffers.
        module.track_running_stats = False
    elif bn == "batch":
        module.forward = functools.partial(_forward_without_running_stats, module)


def release_policy(module: nn.Module, state: FrozenState) -> None:
    """Undo `apply_policy` on the norm `module`."""
    if state.bn_policy == "eval":
        del module.train
        module.training = bool(state.training)
        state.training = None
        module.momentum = state.momentum
        state.momentum, state.holds_momentum = None, False
    elif state.bn_policy == "batch" and is_batchnorm(module):
        module.track_running_stats = bool(state.track_running_stats)
    elif state.bn_policy == "batch":
        del module.forward


def bn_policy(module: nn.Module) -> BNPolicy | None:
    """How a BatchNorm behaves now: its `freeze` policy, `"train"` if not frozen by `freeze`.

    A BatchNorm frozen by plain `requires_grad_(False)` reports `"train"`: its
    running statistics still update in train mode. A SyncBatchNorm that
    `torch.nn.SyncBatchNorm.convert_sync_batchnorm` made from a BatchNorm frozen
    with `"eval"` or `"batch"` reports `"batch"`, with a warning: it lost the
    policy, and in train mode normalises with batch statistics, but the
    settings it copied hold its running statistics (`resfx.convert_sync_batchnorm`
    keeps policies).

    Args:
        module: any module.

    Returns:
        The policy for a module with running statistics (see `has_running_stats`),
            `None` for other modules.

    Warns:
        UserWarning: `module` is a SyncBatchNorm converted behind `freeze`'s back.

    Example:
        >>> import torch, resfx
        >>> bn = torch.nn.BatchNorm2d(3)
        >>> resfx.bn_policy(bn), resfx.bn_policy(resfx.freeze(bn)), resfx.bn_policy(torch.nn.ReLU())
        ('train', 'eval', None)
    """
    if not has_running_stats(module):
        return None
    if converted_behind_freeze(module):
        warn_converted(type(module).__name__)
        # what the copy does: the settings it copied hold the statistics unless it was "train"
        record = _record_of(module)
        return "train" if record is None or record.bn_policy == "train" else "batch"
    state = frozen_state(module)
    if state is None or state.bn_policy is None:
        return "train"
    return state.bn_policy
