"""Freezing that holds: which parameters train, how frozen BatchNorm behaves, optimizer hygiene.

Plain `module.requires_grad_(False)` stops gradients but not BatchNorm: in
train mode a BatchNorm still normalises with batch statistics and keeps
updating its running mean and variance, so a "frozen" backbone changes every
step; and setting `.eval()` on it is undone by the `model.train()` that
training loops call each epoch. `freeze` also fixes BatchNorm's behaviour by a
named policy that survives `model.train()`, clears stale gradients, and records
what it changed so that `unfreeze` and `frozen` restore it exactly.
"""

import dataclasses
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .models import STAGES
from .nn import BatchNorm2d

BNPolicy = Literal["eval", "batch", "train"]
"""How a frozen BatchNorm behaves in train mode.

- `"eval"`: normalise with the running statistics and never update them, even
  after `model.train()` (the module stays in eval mode).
- `"batch"`: normalise with each batch's statistics, never update the running
  ones (`num_batches_tracked` stays); eval mode still uses the running statistics.
- `"train"`: unchanged, as with plain `requires_grad_(False)`: batch statistics
  in train mode, running statistics updated.
"""

_POLICIES: tuple[str, ...] = get_args(BNPolicy)
_STATE = "_resfx_frozen"
_STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "stem": ("conv1", "bn1", "relu", "maxpool"),
    "head": ("fc",),
}

M = TypeVar("M", bound=nn.Module)


@dataclass
class _FrozenState:
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


def _is_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, (BatchNorm2d, _BatchNorm))


def _check_policy(bn: str) -> None:
    if bn not in _POLICIES:
        raise ValueError(f"bn must be one of {_POLICIES}, got {bn!r}")


def _frozen_state(module: nn.Module) -> _FrozenState | None:
    return module.__dict__.get(_STATE)


def _train_frozen_batchnorm(module: nn.Module, mode: bool = True) -> nn.Module:
    """`train` of a BatchNorm under the `"eval"` policy: remember the mode asked for, stay in eval."""
    if not isinstance(mode, bool):
        raise ValueError(f"training mode is expected to be a bool, got {mode!r}")
    module.__dict__[_STATE].training = mode
    module.training = False
    for child in module.children():
        child.train(mode)
    return module


def _apply_policy(module: nn.Module, state: _FrozenState, bn: BNPolicy) -> None:
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


def _release_policy(module: nn.Module, state: _FrozenState) -> None:
    if state.bn_policy == "eval":
        del module.train
        module.training = bool(state.training)
        state.training = None
    elif state.bn_policy == "batch":
        module.track_running_stats = bool(state.track_running_stats)


def _thaw(module: nn.Module, state: _FrozenState) -> list[nn.Parameter]:
    """Undo `freeze` on one module; return the parameters this made trainable."""
    thawed = []
    for name, parameter in module.named_parameters(recurse=False):
        if state.requires_grad.get(name, False) and not parameter.requires_grad:
            parameter.requires_grad_(True)
            thawed.append(parameter)
    if state.bn_policy is not None:
        _release_policy(module, state)
    del module.__dict__[_STATE]
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
    _check_policy(bn)
    for sub in module.modules():
        own = dict(sub.named_parameters(recurse=False))
        is_batchnorm = _is_batchnorm(sub)
        if not own and not is_batchnorm:
            continue
        state = _frozen_state(sub)
        if state is None:
            state = _FrozenState(
                requires_grad={name: p.requires_grad for name, p in own.items()},
                track_running_stats=bool(sub.track_running_stats) if is_batchnorm else None,
            )
            setattr(sub, _STATE, state)
        else:
            for name, parameter in own.items():
                state.requires_grad.setdefault(name, parameter.requires_grad)
            if is_batchnorm:
                _release_policy(sub, state)
        for parameter in own.values():
            parameter.requires_grad_(False)
            parameter.grad = None
        if is_batchnorm:
            _apply_policy(sub, state, bn)
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
    states = [(sub, s) for sub in module.modules() if (s := _frozen_state(sub)) is not None]
    if not states:
        raise ValueError(
            f"nothing in this {type(module).__name__} was frozen by resfx.freeze; to make "
            f"parameters trainable that were frozen otherwise, call module.requires_grad_(True)"
        )
    thawed: dict[int, nn.Parameter] = {}
    for sub, state in states:
        thawed.update((id(p), p) for p in _thaw(sub, state))
    if optimizer is not None:
        _add_param_group(optimizer, module, thawed.values(), lr_scale)
    return module


def _add_param_group(
    optimizer: torch.optim.Optimizer,
    module: nn.Module,
    parameters: Iterable[nn.Parameter],
    lr_scale: float,
) -> None:
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    new = [p for p in parameters if id(p) not in held]
    if not new:
        return
    group: dict[str, Any] = {"params": new, "lr": optimizer.defaults["lr"] * lr_scale}
    if any("param_names" in g for g in optimizer.param_groups):
        # torch requires all groups or none to carry names; these are relative to `module`.
        names = {id(p): name for name, p in module.named_parameters()}
        group["params"] = [(names[id(p)], p) for p in new]
    optimizer.add_param_group(group)


def _stage_modules(model: nn.Module, stage: str) -> list[nn.Module]:
    names = _STAGE_MODULES.get(stage, (stage,))
    missing = [name for name in names if not isinstance(getattr(model, name, None), nn.Module)]
    if missing:
        raise TypeError(
            f"freeze_to needs a ResNet with torchvision's module names (resfx.ResNet or "
            f"torchvision.models.ResNet); this {type(model).__name__} has no {missing}"
        )
    return [getattr(model, name) for name in names]


def freeze_to(model: M, stage: str, *, bn: BNPolicy = "eval") -> M:
    """Freeze a ResNet from the stem up to and including `stage`, in place.

    Stages, input to output: `"stem"` (`conv1`, `bn1`, `relu`, `maxpool`),
    `"layer1"` ... `"layer4"`, `"head"` (`fc`; freezing it freezes everything).
    Works on `resfx.ResNet` and on torchvision's ResNets (same module names).
    Later stages are left as they are (this never unfreezes).

    Args:
        model: the ResNet.
        stage: the last stage to freeze, one of `resfx.models.STAGES`.
        bn: the BatchNorm policy of the frozen stages (see `freeze`).

    Returns:
        `model`, for chaining.

    Raises:
        ValueError: `stage` or `bn` is unknown.
        TypeError: `model` lacks torchvision's ResNet module names.

    Example:
        >>> import resfx
        >>> model = resfx.freeze_to(resfx.resnet18(num_classes=10), "layer3")
        >>> [name for name, _ in resfx.trainable_parameters(model)][:2]
        ['layer4.0.conv1.weight', 'layer4.0.bn1.weight']
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    _check_policy(bn)
    parts = [m for name in STAGES[: STAGES.index(stage) + 1] for m in _stage_modules(model, name)]
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
        _check_policy(bn)
        self.module = module
        self.bn = bn
        self._saved: list[tuple[nn.Module, _FrozenState | None, dict[str, bool]]] | None = None

    def __enter__(self) -> nn.Module:
        if self._saved is not None:
            raise RuntimeError("a resfx.frozen context cannot be entered twice; make a new one")
        self._saved = []
        for sub in self.module.modules():
            state = _frozen_state(sub)
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
            current = _frozen_state(sub)
            if current is not None:
                _thaw(sub, current)
            for name, parameter in sub.named_parameters(recurse=False):
                if name in flags:
                    parameter.requires_grad_(flags[name])
            if saved is not None:
                setattr(sub, _STATE, saved)
                if saved.bn_policy is not None:
                    _apply_policy(sub, saved, saved.bn_policy)


def bn_policy(module: nn.Module) -> BNPolicy | None:
    """How a BatchNorm behaves now: its `freeze` policy, `"train"` if not frozen by `freeze`.

    A BatchNorm frozen by plain `requires_grad_(False)` reports `"train"`: its
    running statistics still update in train mode.

    Args:
        module: any module.

    Returns:
        The policy for a BatchNorm (`resfx.nn.BatchNorm2d` or torch's), `None`
        for other modules.

    Example:
        >>> import torch, resfx
        >>> bn = torch.nn.BatchNorm2d(3)
        >>> resfx.bn_policy(bn), resfx.bn_policy(resfx.freeze(bn)), resfx.bn_policy(torch.nn.ReLU())
        ('train', 'eval', None)
    """
    if not _is_batchnorm(module):
        return None
    state = _frozen_state(module)
    if state is None or state.bn_policy is None:
        return "train"
    return state.bn_policy


def trainable_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters of `module` that require gradients, with their names, in module order.

    Args:
        module: any module.

    Returns:
        `(name, parameter)` pairs; a parameter shared by two modules appears once.

    Example:
        >>> import resfx
        >>> model = resfx.get_resnet_for_feature_extraction(10, weights=None)
        >>> [name for name, _ in resfx.trainable_parameters(model)]
        ['fc.weight', 'fc.bias']
    """
    return [(name, p) for name, p in module.named_parameters() if p.requires_grad]


def parameter_groups(
    module: nn.Module, *, lr: float, weight_decay: float = 0.0
) -> list[dict[str, Any]]:
    """Optimizer parameter groups holding only the trainable parameters of `module`.

    Pass the result to any `torch.optim` optimizer instead of
    `model.parameters()`, so frozen parameters are never held (no state kept
    for them, nothing a stale gradient or weight decay could apply). With
    `weight_decay > 0` there are two groups: matrices and kernels (2 or more
    axes) decay, biases and BatchNorm scales and shifts do not.

    Args:
        module: the model.
        lr: learning rate of every group.
        weight_decay: weight decay of the decayed group.

    Returns:
        A list of dicts with `params` (parameters, by identity), `lr` and
        `weight_decay`; empty groups are left out.

    Raises:
        ValueError: `lr` or `weight_decay` is negative or not finite, or no
            parameter of `module` is trainable.

    Example:
        >>> import torch, resfx
        >>> model = resfx.get_resnet_for_feature_extraction(10, weights=None)
        >>> groups = resfx.parameter_groups(model, lr=0.1, weight_decay=1e-4)
        >>> [(len(g["params"]), g["weight_decay"]) for g in groups]
        [(1, 0.0001), (1, 0.0)]
        >>> opt = torch.optim.SGD(groups, momentum=0.9)
    """
    if not (lr >= 0 and math.isfinite(lr)) or not (
        weight_decay >= 0 and math.isfinite(weight_decay)
    ):
        raise ValueError(
            f"lr and weight_decay must be finite and >= 0, got lr={lr}, weight_decay={weight_decay}"
        )
    trainable = [p for _, p in trainable_parameters(module)]
    if not trainable:
        raise ValueError(
            f"every parameter of this {type(module).__name__} is frozen: nothing to optimise; "
            f"unfreeze a part (resfx.unfreeze) or replace the head"
        )
    if weight_decay == 0:
        return [{"params": trainable, "lr": lr, "weight_decay": 0.0}]
    groups = [
        {"params": [p for p in trainable if p.ndim >= 2], "lr": lr, "weight_decay": weight_decay},
        {"params": [p for p in trainable if p.ndim < 2], "lr": lr, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


class OptimizerCheckError(ValueError):
    """An optimizer holds frozen parameters or misses trainable ones; the message names each.

    Example:
        >>> import torch, resfx
        >>> model = resfx.freeze(torch.nn.Linear(2, 2))
        >>> try:
        ...     resfx.check_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model, strict=True)
        ... except resfx.OptimizerCheckError as error:
        ...     print(error.report.frozen_held)
        ('weight', 'bias')
    """

    def __init__(self, report: "OptimizerReport") -> None:
        super().__init__("\n".join(report.problems()))
        self.report = report


@dataclass(frozen=True)
class OptimizerReport:
    """What an optimizer holds of a module, as seen by `check_optimizer`.

    Torch's optimizers skip a parameter whose `.grad` is `None`, so a frozen
    parameter held by an optimizer is moved only once it has a gradient (a
    stale one, from before it was frozen by hand) — then momentum, Adam's
    moments and weight decay all apply. Held frozen parameters also keep their
    old state into a later unfreeze.

    Args:
        frozen_held: names of frozen parameters the optimizer holds.
        frozen_with_state: of those, the ones it keeps state for (momentum, moments).
        frozen_with_grad: of those, the ones that have a `.grad`: the next step moves them.
        trainable_missing: trainable parameters no group holds: they never train.
        foreign: how many held tensors are not parameters of the module.

    Example:
        >>> import torch, resfx
        >>> model = torch.nn.Linear(2, 2)
        >>> report = resfx.check_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model)
        >>> report.ok, report.problems()
        (True, [])
    """

    frozen_held: tuple[str, ...]
    frozen_with_state: tuple[str, ...]
    frozen_with_grad: tuple[str, ...]
    trainable_missing: tuple[str, ...]
    foreign: int

    @property
    def ok(self) -> bool:
        """No frozen parameter held and no trainable one missing."""
        return not (self.frozen_held or self.trainable_missing)

    def problems(self) -> list[str]:
        """One sentence per kind of problem, naming the parameters and what to do.

        Returns:
            The sentences; empty when `ok`.

        Example:
            >>> OptimizerReport((), (), (), ("fc.bias",), 0).problems()[0][:44]
            'trainable parameters no optimizer group hold'
        """
        found = []
        if self.frozen_with_grad:
            found.append(
                f"frozen parameters with a .grad that the next step applies: "
                f"{list(self.frozen_with_grad)}; call resfx.freeze (it clears .grad) or set "
                f"p.grad = None"
            )
        if self.frozen_held:
            found.append(
                f"frozen parameters held by the optimizer: {list(self.frozen_held)} (with state "
                f"for {list(self.frozen_with_state)}); build it from "
                f"resfx.parameter_groups(model, lr=...) instead of model.parameters()"
            )
        if self.trainable_missing:
            found.append(
                f"trainable parameters no optimizer group holds (they never train): "
                f"{list(self.trainable_missing)}; add them with resfx.unfreeze(part, "
                f"optimizer=opt) or optimizer.add_param_group"
            )
        return found


def check_optimizer(
    optimizer: torch.optim.Optimizer, module: nn.Module, *, strict: bool = False
) -> OptimizerReport:
    """Report frozen parameters an optimizer holds (and its state for them) and trainable ones it misses.

    Args:
        optimizer: the optimizer to inspect.
        module: the model it trains.
        strict: raise instead of returning a report that is not `ok`.

    Returns:
        The report, matched by parameter identity.

    Raises:
        OptimizerCheckError: `strict` and the report is not `ok`.

    Example:
        >>> import torch, resfx
        >>> model = resfx.get_resnet_for_feature_extraction(10, weights=None)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> report = resfx.check_optimizer(opt, model)
        >>> report.ok, len(report.frozen_held)
        (False, 108)
    """
    named = list(module.named_parameters())
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen_held = [(name, p) for name, p in named if not p.requires_grad and id(p) in held]
    report = OptimizerReport(
        frozen_held=tuple(name for name, _ in frozen_held),
        frozen_with_state=tuple(name for name, p in frozen_held if optimizer.state.get(p)),
        frozen_with_grad=tuple(name for name, p in frozen_held if p.grad is not None),
        trainable_missing=tuple(name for name, p in named if p.requires_grad and id(p) not in held),
        foreign=len(held - {id(p) for _, p in named}),
    )
    if strict and not report.ok:
        raise OptimizerCheckError(report)
    return report


@dataclass(frozen=True)
class ParameterRow:
    """One parameter in a `ParameterSummary`.

    Args:
        name: the parameter's name in the model.
        shape: its shape.
        count: its number of elements.
        trainable: whether it requires gradients.
        bn_policy: the policy of its BatchNorm (see `bn_policy`), `None` outside BatchNorms.

    Example:
        >>> ParameterRow("fc.bias", (10,), 10, True, None).count
        10
    """

    name: str
    shape: tuple[int, ...]
    count: int
    trainable: bool
    bn_policy: BNPolicy | None


@dataclass(frozen=True)
class ParameterSummary:
    """Every parameter of a model: shape, size, trainable or frozen, BatchNorm policy; totals.

    Args:
        rows: one row per parameter, in module order.

    Example:
        >>> import resfx
        >>> summary = resfx.parameter_summary(resfx.get_resnet_for_feature_extraction(10, weights=None))
        >>> summary.trainable, summary.frozen, summary.total
        (5130, 21284672, 21289802)
    """

    rows: tuple[ParameterRow, ...]

    @property
    def trainable(self) -> int:
        """Elements in trainable parameters."""
        return sum(row.count for row in self.rows if row.trainable)

    @property
    def frozen(self) -> int:
        """Elements in frozen parameters."""
        return sum(row.count for row in self.rows if not row.trainable)

    @property
    def total(self) -> int:
        """Elements in all parameters."""
        return sum(row.count for row in self.rows)

    def table(self) -> str:
        """The rows and totals as a fixed-width text table, for printing.

        Returns:
            The table, one line per parameter plus a header and the totals.

        Example:
            >>> import torch, resfx
            >>> print(resfx.parameter_summary(resfx.freeze(torch.nn.BatchNorm1d(2))).table())
            parameter  shape  count  status  bn
            weight     (2,)   2      frozen  eval
            bias       (2,)   2      frozen  eval
            total: 4 parameters, 0 trainable, 4 frozen
        """
        header = ("parameter", "shape", "count", "status", "bn")
        lines = [
            (
                row.name,
                str(row.shape),
                str(row.count),
                "train" if row.trainable else "frozen",
                row.bn_policy or "",
            )
            for row in self.rows
        ]
        widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
        text = [
            "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
            for cells in [header, *lines]
        ]
        text.append(
            f"total: {self.total} parameters, {self.trainable} trainable, {self.frozen} frozen"
        )
        return "\n".join(text)


def parameter_summary(module: nn.Module) -> ParameterSummary:
    """Summarise the parameters of `module`: names, shapes, counts, trainable or frozen, BN policy.

    Args:
        module: any module.

    Returns:
        The summary; `print(summary.table())` shows it.

    Example:
        >>> import resfx
        >>> model = resfx.freeze_to(resfx.resnet18(num_classes=10), "layer4")
        >>> summary = resfx.parameter_summary(model)
        >>> summary.rows[1].name, summary.rows[1].trainable, summary.rows[1].bn_policy
        ('bn1.weight', False, 'eval')
        >>> summary.trainable
        5130
    """
    rows = []
    seen: set[int] = set()
    for module_name, sub in module.named_modules():
        policy = bn_policy(sub)
        for name, parameter in sub.named_parameters(prefix=module_name, recurse=False):
            if id(parameter) in seen:
                continue
            seen.add(id(parameter))
            rows.append(
                ParameterRow(
                    name=name,
                    shape=tuple(parameter.shape),
                    count=parameter.numel(),
                    trainable=parameter.requires_grad,
                    bn_policy=policy,
                )
            )
    return ParameterSummary(tuple(rows))
