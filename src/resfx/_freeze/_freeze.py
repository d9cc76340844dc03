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
import warnings
from typing import Any, TypeVar

import torch
from torch import nn

from ._optim import add_param_groups, check_new_group_settings
from ._policy import (
    BNPolicy,
    FrozenState,
    adopt_record,
    apply_policy,
    check_policy,
    clear_frozen_state,
    converted_behind_freeze,
    frozen_by,
    frozen_state,
    give_record,
    has_running_stats,
    is_batchnorm,
    note_frozen,
    note_thawed,
    release_policy,
    running_tensors,
    set_frozen_state,
    warn_converted,
)
from ._stages import StageSpec, stage_map

M = TypeVar("M", bound=nn.Module)


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
    note_thawed(module, [*module.parameters(recurse=False), *running_tensors(module)])
    return thawed


def _module_names(root: nn.Module) -> dict[int, str]:
    return {id(m): name or "<root>" for name, m in root.named_modules(remove_duplicate=False)}


def _other_owners(
    parameters: list[nn.Parameter], inside: nn.Module, root: nn.Module
) -> dict[str, list[str]]:
    """For each parameter also registered outside `inside`, its names there (in `root`)."""
    wanted = {id(p) for p in parameters}
    own = {id(p): name for name, p in inside.named_parameters(remove_duplicate=False)}
    prefixes = [name for name, m in root.named_modules(remove_duplicate=False) if m is inside]
    inside_names = {
        f"{prefix}.{name}" if prefix else name for prefix in prefixes for name in own.values()
    }
    names: dict[int, list[str]] = {}
    for name, parameter in root.named_parameters(remove_duplicate=False):
        if id(parameter) in wanted:
            names.setdefault(id(parameter), []).append(name)
    return {
        inside_name: others
        for p in parameters
        if (all_names := names.get(id(p), []))
        and (others := [n for n in all_names if n not in inside_names])
        and (inside_name := next((n for n in all_names if n in inside_names), own[id(p)]))
    }


def _warn_shared(action: str, shared: dict[str, list[str]], advice: str) -> None:
    listed = "; ".join(f"{name} is also {', '.join(others)}" for name, others in shared.items())
    warnings.warn(
        f"{action} parameters shared with modules outside the part: {listed}. {advice}",
        UserWarning,
        stacklevel=3,
    )


def freeze(module: M, *, bn: BNPolicy = "eval", model: nn.Module | None = None) -> M:
    """Freeze every parameter of `module` and fix how its BatchNorms behave, in place.

    Works on any `nn.Module`: a resfx model, a torchvision model, a part of
    either. Every parameter gets `requires_grad=False` and loses a stale
    `.grad` (so an optimizer step, momentum or weight decay cannot move it).
    Every BatchNorm inside (`resfx.nn.BatchNorm2d` and torch's), and every
    other norm with running statistics (`has_running_stats`: InstanceNorm
    with `track_running_stats=True`), gets the policy `bn`, which holds
    through later `model.train()` calls.

    Under `"eval"` a norm's `momentum` is also set to 0 (and restored by
    `unfreeze`): a wrapper that rebuilds the module from its settings and
    drops resfx's patched `train` (torch's
    `SyncBatchNorm.convert_sync_batchnorm`) copies the 0, so the copy, put in
    train mode by `model.train()`, normalises with batch statistics but leaves
    the running statistics as they were (for finite batches: `0 * nan` is nan).
    `resfx.convert_sync_batchnorm` keeps the policy itself; `freeze` and
    `unfreeze` find the record of such a copy through the statistics it shares.

    Why the default `"eval"` differs from plain `requires_grad_(False)`: that
    leaves BatchNorm in train mode, normalising with batch statistics and
    updating its running mean and variance at every forward, so the "frozen"
    part still changes; and calling `.eval()` on it does not last, because the
    `model.train()` that a training loop calls each epoch switches it back.

    What changed is recorded on each module (it survives `copy.deepcopy` and
    pickling, and is not part of the state dict), so `unfreeze` restores it.
    Freezing again, e.g. with another policy, keeps the first record.

    A parameter shared with a module outside `module` (tied weights) is
    frozen there too, since it is one tensor; with `model` given, that is
    warned about and the other owners are named.

    Args:
        module: the module to freeze.
        bn: the BatchNorm policy, see `BNPolicy`: `"eval"` (running statistics,
            never updated), `"batch"` (batch statistics, never updated) or
            `"train"` (as without freezing).
        model: the whole model `module` belongs to, to find shared parameters'
            other owners; `None` looks inside `module` only.

    Returns:
        `module`, for chaining.

    Raises:
        ValueError: `bn` is not a policy.

    Warns:
        UserWarning: a parameter is shared with a module of `model` outside
            `module`; or a SyncBatchNorm inside was converted from a frozen
            BatchNorm by torch's converter (it is frozen again with `bn`).

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
    names = _module_names(module)
    frozen_now: list[nn.Parameter] = []
    for sub in module.modules():
        own = dict(sub.named_parameters(recurse=False))
        is_norm = has_running_stats(sub)
        if not own and not is_norm:
            continue
        if converted_behind_freeze(sub):
            warn_converted(names[id(sub)])
            adopt_record(sub)
        # A shared parameter frozen through another owner first was trainable before it.
        before = {
            name: p.requires_grad or any(_holds_frozen(o, p) for o in frozen_by(p))
            for name, p in own.items()
        }
        state = frozen_state(sub)
        if state is None:
            state = FrozenState(
                requires_grad=before,
                track_running_stats=bool(sub.track_running_stats) if is_norm else None,
            )
            set_frozen_state(sub, state)
        else:
            for name, trainable in before.items():
                state.requires_grad.setdefault(name, trainable)
            if is_norm:
                release_policy(sub, state)
        frozen_now.extend(p for p in own.values() if p.requires_grad)
        for parameter in own.values():
            parameter.requires_grad_(False)
            parameter.grad = None
        note_frozen(sub, own.values())
        if is_norm:
            apply_policy(sub, state, bn)
    if model is not None and (shared := _other_owners(frozen_now, module, model)):
        _warn_shared("froze", shared, "They are frozen there too (one tensor).")
    return module


def _thaw_shared(module: nn.Module) -> list[tuple[nn.Module, nn.Parameter]]:
    """Thaw `module`'s parameters that a freeze record on another module holds frozen."""
    thawed = []
    for parameter in module.parameters():
        if parameter.requires_grad:
            continue
        for owner in frozen_by(parameter):
            state = frozen_state(owner)
            if state is None:
                continue
            for name, p in owner.named_parameters(recurse=False):
                if p is parameter and state.requires_grad.pop(name, False):
                    parameter.requires_grad_(True)
                    note_thawed(owner, [parameter])
                    thawed.append((owner, parameter))
    return thawed


def unfreeze(
    module: M,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float | None = None,
    lr_scale: float = 1.0,
    weight_decay: float | None = None,
    model: nn.Module | None = None,
) -> M:
    """Undo `freeze` on every part of `module` it reached, and optionally train the thawed part.

    Restores each parameter's `requires_grad` and each BatchNorm's behaviour to
    what they were before it was first frozen. A BatchNorm held in eval mode
    by the `"eval"` policy takes the mode that the latest `model.train()` /
    `model.eval()` asked for, so it agrees with the rest of the model. Parameters
    frozen by other means (`requires_grad_(False)`) stay as they are. Unfreezing
    a part of a frozen model (say `model.layer4`) leaves the rest frozen.

    A parameter shared with another module (tied weights) trains from both
    once thawed: that is warned about, naming the other owners (in full with
    `model`). A part whose parameters were frozen only through another owner
    (`freeze(model.out)` with `out.weight` tied to `emb.weight`, then
    `unfreeze(model.emb)`) is thawed through that owner's record.

    With `optimizer`, the thawed parameters it does not hold yet are added as
    new groups that follow `parameter_groups`' split: weights with 2 or more
    axes get `weight_decay` (default: the largest weight decay among the
    optimizer's groups), biases and norm parameters 0. Their learning rate is
    `lr` if given, else `lr_scale` times the *current* learning rate
    (`group["lr"]` now, as a scheduler left it) of the reference group: with
    `model`, the group holding the first trainable parameter after the part
    in `model.named_parameters()` order (the next stage toward the head),
    else the last one before it; without `model`, the optimizer's common
    rate, which must be the same in every group. A scheduler made before does
    not know the new groups (torch's keep one base rate per group): that is
    warned about; use `resfx.Finetuner`, or build the scheduler again. To load
    an optimizer state saved before the unfreeze, use `load_optimizer_state`.

    Args:
        module: the module, or a part of a frozen module, to unfreeze.
        optimizer: the optimizer to extend, or `None`.
        lr: the new groups' learning rate; excludes `lr_scale`.
        lr_scale: factor on the reference group's current learning rate.
        weight_decay: the new decayed group's weight decay.
        model: the whole model: full parameter names for an optimizer that
            names its parameters, the reference group, shared parameters' owners.

    Returns:
        `module`, for chaining.

    Raises:
        ValueError: nothing in `module` was frozen by `freeze`; `lr`, `lr_scale`
            or `weight_decay` is not positive and finite (`>= 0` for the
            decay), or both `lr` and `lr_scale` are given; no reference rate
            (groups differ and no `model`); a named optimizer without `model`.

    Warns:
        UserWarning: shared parameters; a scheduler attached to `optimizer`.

    Example:
        >>> import torch, resfx
        >>> model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1)))
        >>> _ = resfx.freeze(model)
        >>> _ = resfx.unfreeze(model.fc)
        >>> opt = torch.optim.AdamW(resfx.parameter_groups(model, lr=1e-2, weight_decay=0.05))
        >>> _ = resfx.unfreeze(model.layer4, optimizer=opt, lr_scale=0.1, model=model)
        >>> [(g["lr"], g["weight_decay"]) for g in opt.param_groups[2:]]
        [(0.001, 0.05), (0.001, 0.0)]
    """
    check_new_group_settings(lr, lr_scale, weight_decay)
    for sub in module.modules():
        # a copy made behind freeze's back (torch's SyncBatchNorm converter) thaws by its record
        adopt_record(sub)
    states = [(sub, s) for sub in module.modules() if (s := frozen_state(sub)) is not None]
    shared_thawed = _thaw_shared(module) if not states else []
    if not states and not shared_thawed:
        raise ValueError(
            f"nothing in this {type(module).__name__} was frozen by resfx.freeze; to make "
            f"parameters trainable that were frozen otherwise, call module.requires_grad_(True)"
        )
    thawed: dict[int, nn.Parameter] = {id(p): p for _, p in shared_thawed}
    still_frozen: dict[str, list[str]] = {}
    for sub, state in states:
        for parameter in _thaw(sub, state):
            thawed[id(parameter)] = parameter
    for parameter in thawed.values():
        owners = [o for o in frozen_by(parameter) if _holds_frozen(o, parameter)]
        for owner in owners:
            still_frozen.setdefault(_parameter_name(module, parameter), []).append(
                type(owner).__name__
            )
    if model is not None:
        shared = _other_owners(list(thawed.values()), module, model)
    else:
        shared = still_frozen
    if shared:
        _warn_shared(
            "thawed",
            shared,
            "They train there too (one tensor), although the other owners' freeze records "
            "still list them; unfreeze those owners too, or untie the weights"
            + ("" if model is not None else "; pass model= to name the owners in full"),
        )
    if shared_thawed and not states:
        owner_types = sorted({type(owner).__name__ for owner, _ in shared_thawed})
        warnings.warn(
            f"this {type(module).__name__} was not frozen itself: its parameters were frozen "
            f"through another owner ({', '.join(owner_types)}), whose record now lists them as "
            "thawed",
            UserWarning,
            stacklevel=2,
        )
    if optimizer is not None:
        ordered = [p for p in module.parameters() if id(p) in thawed]
        add_param_groups(
            optimizer,
            ordered,
            lr=lr,
            lr_scale=lr_scale,
            weight_decay=weight_decay,
            model=model,
            part=module,
        )
    return module


def _holds_frozen(owner: nn.Module, parameter: nn.Parameter) -> bool:
    state = frozen_state(owner)
    return state is not None and any(
        p is parameter and state.requires_grad.get(name, False)
        for name, p in owner.named_parameters(recurse=False)
    )


def _parameter_name(module: nn.Module, parameter: nn.Parameter) -> str:
    return next(
        name for name, p in module.named_parameters(remove_duplicate=False) if p is parameter
    )


def convert_sync_batchnorm(module: nn.Module, process_group: Any = None) -> nn.Module:
    """`torch.nn.SyncBatchNorm.convert_sync_batchnorm`, keeping `freeze`'s records and policies.

    torch's converter builds new SyncBatchNorm modules around the same
    parameters and buffers, without the record `freeze` keeps on each module:
    a frozen BatchNorm would come back in train mode, updating its running
    statistics. This converts, then gives every new module its old record
    and policy, so `bn_policy`, `unfreeze` and `frozen` work on the result.

    Args:
        module: the model (or part) to convert.
        process_group: passed to torch's converter.

    Returns:
        The converted module (a new one when `module` itself is a BatchNorm).

    Example:
        >>> import torch, resfx
        >>> model = resfx.freeze(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)))
        >>> synced = resfx.convert_sync_batchnorm(model)
        >>> type(synced[1]).__name__, resfx.bn_policy(synced[1]), synced.train()[1].training
        ('SyncBatchNorm', 'eval', False)
    """
    records = {
        name: (sub, state)
        for name, sub in module.named_modules()
        if is_batchnorm(sub) and (state := frozen_state(sub)) is not None
    }
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
    for name, sub in converted.named_modules():
        old, state = records.get(name, (None, None))
        if old is None or state is None or old is sub or frozen_state(sub) is not None:
            continue
        note_thawed(old, running_tensors(old))  # the replaced module no longer owns them
        give_record(sub, state)
    return converted


def freeze_to(model: M, stage: str, *, bn: BNPolicy = "eval", stages: StageSpec | None = None) -> M:
    """Freeze a model from its first stage up to and including `stage`, in place.

    The stages are those of `stage_map`: an explicit list (`stages=`, for any
    model), the model's own when it names them (`resfx.StagedModel`, as
    `resfx.models.ResNet` does), or the ResNet layout of torchvision and timm:
    `"stem"` (`conv1`, `bn1`, `relu` or timm's `act1`, `maxpool`), `"layer1"`
    ... `"layer4"`, `"head"` (`fc`; freezing it freezes everything). Later
    stages are left as they are (this never unfreezes).

    Args:
        model: the model.
        stage: the last stage to freeze, one of the model's stage names.
        bn: the BatchNorm policy of the frozen stages (see `freeze`).
        stages: an explicit ordered stage list (see `StageSpec`), or `None`.

    Returns:
        `model`, for chaining.

    Raises:
        ValueError: `stage` or `bn` is unknown.
        TypeError: the model's stages cannot be told and `stages` is not given.

    Example:
        >>> import resfx
        >>> model = resfx.freeze_to(resfx.resnet18(num_classes=10), "layer3")
        >>> [name for name, _ in resfx.trainable_parameters(model)][:2]
        ['layer4.0.conv1.weight', 'layer4.0.bn1.weight']
    """
    check_policy(bn)
    mapping = stage_map(model, stages)
    names = list(mapping)
    if stage not in mapping:
        raise ValueError(f"unknown stage {stage!r}; this model's stages are {names}")
    modules = dict(model.named_modules())
    for name in names[: names.index(stage) + 1]:
        for part in mapping[name]:
            freeze(modules[part], bn=bn)
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
                note_frozen(sub, sub.parameters(recurse=False))
                if saved.bn_policy is not None:
                    apply_policy(sub, saved, saved.bn_policy)
