"""Freezing that holds: which parameters train, and how frozen BatchNorm behaves.

Plain `module.requires_grad_(False)` stops gradients but not BatchNorm: in
train mode a BatchNorm still normalises with batch statistics and keeps
updating its running mean and variance, so a "frozen" backbone changes every
step; and setting `.eval()` on it is undone by the `model.train()` that
training loops call each epoch. `freeze` also fixes BatchNorm's behaviour by a
named policy that survives `model.train()`, clears stale gradients, and records
what it changed so that `unfreeze` and `frozen` restore it exactly.
"""

import dataclasses
import math
from typing import Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from .._resnet_layout import RESNET_STAGES
from ._optim import add_param_group
from ._policy import (
    BNPolicy,
    FrozenState,
    apply_policy,
    check_policy,
    clear_frozen_state,
    frozen_state,
    is_batchnorm,
    release_policy,
    set_frozen_state,
)

M = TypeVar("M", bound=nn.Module)


@runtime_checkable
class StagedModel(Protocol):
    """A model that names its own stages, input to output, for `freeze_to`.

    `resfx.models.ResNet` is one; a model of another family (or a wrapper of a
    foreign one) becomes one by having these two members. A model without them
    is read with torchvision's ResNet module names.

    Example:
        >>> import torch, resfx
        >>> class Tiny(torch.nn.Module):
        ...     stage_names = ("body", "head")
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.body, self.head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
        ...     def stage(self, name):
        ...         return [getattr(self, name)]
        >>> model = resfx.freeze_to(Tiny(), "body")
        >>> isinstance(model, resfx.StagedModel), [n for n, _ in resfx.trainable_parameters(model)]
        (True, ['head.weight', 'head.bias'])
    """

    stage_names: tuple[str, ...]
    """The stage names, input to output."""

    def stage(self, name: str) -> list[nn.Module]:
        """The modules that make up the stage `name`, in forward order."""
        ...


def _thaw(module: nn.Module, state: FrozenState) -> list[nn.Parameter]:
    """Undo `freeze` on one module; return the parameters this made trainable."""
    thawed = []
    for name, parameter in module.named_parameters(recurse=False):
        if state.requires_grad.get(name, False) and not parameter.requires_grad:
            parameter.requires_grad_(True)
            thawed.append(parameter)
    if state.bn_policy is not None:
        release_policy(module, state)
    clear_frozen_state(module)
    return thawed


def freeze(module: M, *, bn: BNPolicy = "eval") -> M:
    """Freeze every parameter of `module` and fix how its BatchNorms behave, in place.

    Works on any `nn.Module`: a resfx model, a torchvision model, a part of
    either. Every parameter gets `requires_grad=False` and loses a stale
    `.grad` (so an optimizer step, momentum or weight decay cannot move it).
    Every BatchNorm inside (`resfx.nn.BatchNorm2d` and torch's) gets the policy
    `bn`, which holds through later `model.train()` calls.

    Why the default `"eval"` differs from plain `requires_grad_(False)`: that
    leaves BatchNorm in train mode, normalising with batch statistics and
    updating its running mean and variance at every forward, so the "frozen"
    part still changes; and calling `.eval()` on it does not last, because the
    `model.train()` that a training loop calls each epoch switches it back.

    What changed is recorded on each module (it survives `copy.deepcopy` and
    pickling, and is not part of the state dict), so `unfreeze` restores it.
    Freezing again, e.g. with another policy, keeps the first record.

    Args:
        module: the module to freeze.
        bn: the BatchNorm policy, see `BNPolicy`: `"eval"` (running statistics,
            never updated), `"batch"` (batch statistics, never updated) or
            `"train"` (as without freezing).

    Returns:
        `module`, for chaining.

    Raises:
        ValueError: `bn` is not a policy.

    Example:
        >>> import torch, torchvision, resfx
        >>> model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1)))
        >>> _ = resfx.freeze(model.layer1).train()
        >>> model.layer1[0].bn1.training, model.layer2[0].bn1.training
        (False, True)
        >>> tv = resfx.freeze(torchvision.models.resnet18(), bn="batch")
        >>> any(p.requires_grad for p in tv.parameters()), tv.bn1.track_running_stats
        (False, False)
    """
    check_policy(bn)
    for sub in module.modules():
        own = dict(sub.named_parameters(recurse=False))
        is_bn = is_batchnorm(sub)
        if not own and not is_bn:
            continue
        state = frozen_state(sub)
        if state is None:
            state = FrozenState(
                requires_grad={name: p.requires_grad for name, p in own.items()},
                track_running_stats=bool(sub.track_running_stats) if is_bn else None,
            )
            set_frozen_state(sub, state)
        else:
            for name, parameter in own.items():
                state.requires_grad.setdefault(name, parameter.requires_grad)
            if is_bn:
                release_policy(sub, state)
        for parameter in own.values():
            parameter.requires_grad_(False)
            parameter.grad = None
        if is_bn:
            apply_policy(sub, state, bn)
    return module


def unfreeze(
    module: M, *, optimizer: torch.optim.Optimizer | None = None, lr_scale: float = 1.0
) -> M:
    """Undo `freeze` on every part of `module` it reached, and optionally train the thawed part.

    Restores each parameter's `requires_grad` and each BatchNorm's behaviour to
    what they were before it was first frozen. A BatchNorm held in eval mode
    by the `"eval"` policy takes the mode that the latest `model.train()` /
    `model.eval()` asked for, so it agrees with the rest of the model. Parameters
    frozen by other means (`requires_grad_(False)`) stay as they are. Unfreezing
    a part of a frozen model (say `model.layer4`) leaves the rest frozen.

    Args:
        module: the module, or a part of a frozen module, to unfreeze.
        optimizer: if given, the parameters made trainable here that it does
            not hold yet are added to it as one new parameter group.
        lr_scale: the new group's learning rate is the optimizer's constructor
            learning rate (`optimizer.defaults["lr"]`) times this. A learning-rate
            scheduler made before does not know the new group.

    Returns:
        `module`, for chaining.

    Raises:
        ValueError: nothing in `module` was frozen by `freeze`, `lr_scale` is not
            positive and finite, or the optimizer has no default `lr`.

    Example:
        >>> import torch, resfx
        >>> model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1)))
        >>> _ = resfx.freeze(model)
        >>> opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
        >>> _ = resfx.unfreeze(model.layer4, optimizer=opt, lr_scale=0.5)
        >>> len(opt.param_groups), opt.param_groups[1]["lr"]
        (2, 0.05)
    """
    if not (lr_scale > 0 and math.isfinite(lr_scale)):
        raise ValueError(f"lr_scale must be positive and finite, got {lr_scale}")
    if optimizer is not None and "lr" not in optimizer.defaults:
        raise ValueError(
            f"{type(optimizer).__name__} has no default lr to scale; add the parameters with "
            f"optimizer.add_param_group yourself"
        )
    states = [(sub, s) for sub in module.modules() if (s := frozen_state(sub)) is not None]
    if not states:
        raise ValueError(
            f"nothing in this {type(module).__name__} was frozen by resfx.freeze; to make "
            f"parameters trainable that were frozen otherwise, call module.requires_grad_(True)"
        )
    thawed: dict[int, nn.Parameter] = {}
    for sub, state in states:
        thawed.update((id(p), p) for p in _thaw(sub, state))
    if optimizer is not None:
        add_param_group(optimizer, module, thawed.values(), lr_scale)
    return module


def _stage_names(model: nn.Module) -> tuple[str, ...]:
    """The model's own stage names, or torchvision's ResNet layout's."""
    return tuple(model.stage_names) if isinstance(model, StagedModel) else tuple(RESNET_STAGES)


def _stage_modules(model: nn.Module, stage: str) -> list[nn.Module]:
    """The modules of one stage: the model's own `stage(name)`, or torchvision's module names."""
    if isinstance(model, StagedModel):
        return list(model.stage(stage))
    names = RESNET_STAGES[stage]
    missing = [name for name in names if not isinstance(getattr(model, name, None), nn.Module)]
    if missing:
        raise TypeError(
            f"freeze_to needs a model that names its stages (resfx.StagedModel) or a ResNet with "
            f"torchvision's module names (torchvision.models.ResNet); this "
            f"{type(model).__name__} has neither (no {missing})"
        )
    return [getattr(model, name) for name in names]


def freeze_to(model: M, stage: str, *, bn: BNPolicy = "eval") -> M:
    """Freeze a model from its first stage up to and including `stage`, in place.

    The stages are the model's own when it names them (`resfx.StagedModel`:
    `model.stage_names` and `model.stage(name)`, as `resfx.models.ResNet` does);
    otherwise torchvision's ResNet layout: `"stem"` (`conv1`, `bn1`, `relu`,
    `maxpool`), `"layer1"` ... `"layer4"`, `"head"` (`fc`; freezing it freezes
    everything). So it works on `resfx.ResNet` and on torchvision's ResNets.
    Later stages are left as they are (this never unfreezes).

    Args:
        model: the model.
        stage: the last stage to freeze, one of the model's stage names
            (`resfx.models.STAGES` for a ResNet).
        bn: the BatchNorm policy of the frozen stages (see `freeze`).

    Returns:
        `model`, for chaining.

    Raises:
        ValueError: `stage` or `bn` is unknown.
        TypeError: `model` names no stages and lacks torchvision's ResNet module names.

    Example:
        >>> import resfx
        >>> model = resfx.freeze_to(resfx.resnet18(num_classes=10), "layer3")
        >>> [name for name, _ in resfx.trainable_parameters(model)][:2]
        ['layer4.0.conv1.weight', 'layer4.0.bn1.weight']
    """
    names = _stage_names(model)
    if stage not in names:
        raise ValueError(f"unknown stage {stage!r}; expected one of {names}")
    check_policy(bn)
    parts = [m for name in names[: names.index(stage) + 1] for m in _stage_modules(model, name)]
    for part in parts:
        freeze(part, bn=bn)
    return model


class frozen:
    """Context manager: freeze `module` inside the block, then restore its previous state exactly.

    On exit every parameter flag, BatchNorm policy and freeze record inside
    `module` is what it was on entry (parts frozen before stay frozen, with
    their policy). BatchNorm modes follow the latest `train()`/`eval()` call, so
    a `model.eval()` inside the block is kept. Gradients cleared on entry stay
    cleared.

    Args:
        module: the module to freeze.
        bn: the BatchNorm policy inside the block (see `freeze`).

    Raises:
        ValueError: `bn` is not a policy.
        RuntimeError: the same `frozen` object is entered twice.

    Example:
        >>> import torch, resfx
        >>> model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1)))
        >>> with resfx.frozen(model.layer1):
        ...     print(len(resfx.trainable_parameters(model)))
        32
        >>> len(resfx.trainable_parameters(model))
        38
    """

    def __init__(self, module: nn.Module, *, bn: BNPolicy = "eval") -> None:
        check_policy(bn)
        self.module = module
        self.bn = bn
        self._saved: list[tuple[nn.Module, FrozenState | None, dict[str, bool]]] | None = None

    def __enter__(self) -> nn.Module:
        if self._saved is not None:
            raise RuntimeError("a resfx.frozen context cannot be entered twice; make a new one")
        self._saved = []
        for sub in self.module.modules():
            state = frozen_state(sub)
            copied = (
                None
                if state is None
                else dataclasses.replace(state, requires_grad=dict(state.requires_grad))
            )
            flags = {name: p.requires_grad for name, p in sub.named_parameters(recurse=False)}
            self._saved.append((sub, copied, flags))
        return freeze(self.module, bn=self.bn)

    def __exit__(self, *exc_info: object) -> None:
        for sub, saved, flags in self._saved or []:
            current = frozen_state(sub)
            if current is not None:
                _thaw(sub, current)
            for name, parameter in sub.named_parameters(recurse=False):
                if name in flags:
                    parameter.requires_grad_(flags[name])
            if saved is not None:
                set_frozen_state(sub, saved)
                if saved.bn_policy is not None:
                    apply_policy(sub, saved, saved.bn_policy)
