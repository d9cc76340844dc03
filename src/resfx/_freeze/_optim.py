"""Optimizer hygiene: groups that hold only trainable parameters, and a check of what an optimizer holds."""

import math
from collections.abc import Iterable
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


def add_param_group(
    optimizer: torch.optim.Optimizer,
    module: nn.Module,
    parameters: Iterable[nn.Parameter],
    lr_scale: float,
) -> None:
    """Add the `parameters` the optimizer does not hold yet as one group at `lr_scale` times its lr."""
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
