"""Optimizer hygiene: groups that hold only trainable parameters, and a check of what an optimizer holds."""

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def trainable_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters of `module` that require gradients, with their names, in module order.

    Args:
        module: any module.

    Returns:
        `(name, parameter)` pairs; a parameter shared by two modules appears once.

    Example:
        >>> import resfx
        >>> model = resfx.get_resnet_for_feature_extraction(num_classes=10)
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
        >>> model = resfx.get_resnet_for_feature_extraction(num_classes=10)
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
    return [
        {"params": params, "lr": lr, "weight_decay": decay}
        for decay, params in decay_split(trainable, weight_decay)
    ]


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
        super().__init__("\n".join(report.describe()))
        self.report = report
        self.problems = report.problems
        """For each kind of problem, the parameter names (as `GradientFlowError.problems`)."""


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
        >>> report.ok, report.problems
        (True, {})
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

    @property
    def problems(self) -> dict[str, tuple[str, ...]]:
        """For each kind of problem found, the parameter names, as `GradientFlowError.problems`.

        The kinds: `"frozen_with_grad"`, `"frozen_held"`, `"trainable_missing"`;
        empty when `ok`.

        Example:
            >>> OptimizerReport((), (), (), ("fc.bias",), 0).problems
            {'trainable_missing': ('fc.bias',)}
        """
        found = {
            "frozen_with_grad": self.frozen_with_grad,
            "frozen_held": self.frozen_held,
            "trainable_missing": self.trainable_missing,
        }
        return {kind: names for kind, names in found.items() if names}

    def describe(self) -> list[str]:
        """One sentence per kind of problem, naming the parameters and what to do.

        Returns:
            The sentences; empty when `ok`.

        Example:
            >>> OptimizerReport((), (), (), ("fc.bias",), 0).describe()[0][:44]
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
        >>> model = resfx.get_resnet_for_feature_extraction(num_classes=10)
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


def decay_split(
    parameters: list[nn.Parameter], weight_decay: float
) -> list[tuple[float, list[nn.Parameter]]]:
    """`(weight decay, parameters)` pairs: 2+ axes decay, biases and norm parameters not; empty left out."""
    if weight_decay == 0:
        return [(0.0, parameters)] if parameters else []
    splits = [
        (weight_decay, [p for p in parameters if p.ndim >= 2]),
        (0.0, [p for p in parameters if p.ndim < 2]),
    ]
    return [(decay, params) for decay, params in splits if params]


def check_new_group_settings(lr: float | None, lr_scale: float, weight_decay: float | None) -> None:
    """Raise `ValueError` for the learning-rate settings of `unfreeze` that cannot be used."""
    if not (lr_scale > 0 and math.isfinite(lr_scale)):
        raise ValueError(f"lr_scale must be positive and finite, got {lr_scale}")
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be positive and finite, got {lr}")
    if lr is not None and lr_scale != 1.0:
        raise ValueError(
            f"pass lr (the new groups' rate) or lr_scale (a factor on the neighbours' current "
            f"rate), not both; got lr={lr}, lr_scale={lr_scale}"
        )
    if weight_decay is not None and not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay must be finite and >= 0, got {weight_decay}")


def _reference_lr(
    optimizer: torch.optim.Optimizer, new: list[nn.Parameter], model: nn.Module | None
) -> float:
    """The current rate of the group the new parameters' trainable neighbours are in."""
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    if model is not None:
        order = [p for _, p in model.named_parameters()]
        new_ids = {id(p) for p in new}
        positions = [i for i, p in enumerate(order) if id(p) in new_ids]
        if positions:
            after = [p for p in order[max(positions) + 1 :] if id(p) in group_of]
            before = [p for p in order[: min(positions)] if id(p) in group_of]
            neighbour = after[0] if after else (before[-1] if before else None)
            if neighbour is not None:
                return float(group_of[id(neighbour)]["lr"])
    rates = sorted({float(g["lr"]) for g in optimizer.param_groups if g["params"]})
    if len(rates) != 1:
        raise ValueError(
            f"the optimizer's groups have different learning rates {rates}: pass model= (the "
            f"rate of the part's trainable neighbours is used) or lr= (the new groups' rate)"
        )
    return rates[0]


def add_param_groups(
    optimizer: torch.optim.Optimizer,
    parameters: list[nn.Parameter],
    *,
    lr: float | None,
    lr_scale: float,
    weight_decay: float | None,
    model: nn.Module | None,
    part: nn.Module,
) -> None:
    """Add the `parameters` the optimizer does not hold yet, as `unfreeze` documents."""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    new = [p for p in parameters if id(p) not in held]
    if not new:
        return
    named = any("param_names" in g for g in optimizer.param_groups)
    if named and model is None:
        raise ValueError(
            f"{type(optimizer).__name__} names its parameters: pass model= (the whole model) so "
            f"the new ones get their full names, not names relative to the "
            f"{type(part).__name__} unfrozen"
        )
    if any("initial_lr" in g for g in optimizer.param_groups):
        warnings.warn(
            "this optimizer has a learning-rate scheduler ('initial_lr' in its groups), which "
            "does not know the new groups: torch's schedulers keep one base rate per group from "
            "their construction (OneCycleLR and LambdaLR then raise, the others leave the new "
            "groups unscheduled); build the scheduler again after unfreezing, or let "
            "resfx.Finetuner own groups and schedule",
            UserWarning,
            stacklevel=3,
        )
    rate = lr if lr is not None else lr_scale * _reference_lr(optimizer, new, model)
    if weight_decay is None:
        weight_decay = max(
            [float(g.get("weight_decay", 0.0)) for g in optimizer.param_groups], default=0.0
        )
    names = {} if model is None else {id(p): n for n, p in model.named_parameters()}
    for decay, params in decay_split(new, weight_decay):
        group: dict[str, Any] = {"params": params, "lr": rate, "weight_decay": decay}
        if named:
            # torch requires all groups or none to carry names.
            group["params"] = [(names[id(p)], p) for p in params]
        optimizer.add_param_group(group)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load an optimizer state saved before `unfreeze` added groups (torch's own load refuses it).

    The saved groups must be the first groups of `optimizer`, with the same
    number of parameters each (as they are when `unfreeze` only appended
    groups since); they get the saved hyperparameters and state, and the
    groups added since keep theirs with no state. A state with as many groups
    loads as with `optimizer.load_state_dict`.

    Args:
        optimizer: the optimizer, extended since the state was saved.
        state: `optimizer.state_dict()` from before.

    Raises:
        ValueError: the saved groups are not a prefix of the optimizer's (more
            groups, or a group of another size); the message says which.

    Example:
        >>> import torch, resfx
        >>> model = resfx.freeze(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)))
        >>> _ = resfx.unfreeze(model[1])
        >>> opt = torch.optim.Adam(resfx.parameter_groups(model, lr=0.1))
        >>> saved = opt.state_dict()
        >>> _ = resfx.unfreeze(model[0], optimizer=opt)
        >>> resfx.load_optimizer_state(opt, saved)
        >>> len(opt.param_groups)
        2
    """
    current = optimizer.state_dict()
    saved_groups, groups = state["param_groups"], current["param_groups"]
    sizes = [len(g["params"]) for g in saved_groups]
    now = [len(g["params"]) for g in groups]
    if len(sizes) > len(now) or now[: len(sizes)] != sizes:
        raise ValueError(
            f"the saved optimizer state has groups of {sizes} parameters, which are not the first "
            f"groups of this optimizer ({now}); load it into the optimizer it was saved from, "
            f"after unfreezing the same parts in the same order"
        )
    optimizer.load_state_dict(
        {"state": state["state"], "param_groups": [*saved_groups, *groups[len(sizes) :]]}
    )
