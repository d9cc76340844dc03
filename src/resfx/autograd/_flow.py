"""Gradient-flow check: frozen parameters get nothing, trainable ones get a finite gradient."""

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .._typing import AnyTensor
from ._graph import trace_graph

_REENTRANT_CHECKPOINT = "CheckpointFunctionBackward"
"""The node `torch.utils.checkpoint(..., use_reentrant=True)` leaves: the parameters used
inside are not in the graph until backward reruns the function."""

_PROBLEMS: dict[str, str] = {
    "requires_grad_attribute": (
        "modules with an attribute `requires_grad` set (a no-op: it freezes nothing); "
        "use resfx.freeze(module) or module.requires_grad_(False)"
    ),
    "frozen_reachable": (
        "frozen parameters reachable from the loss (frozen after the forward pass?); "
        "freeze before computing the loss"
    ),
    "frozen_with_grad": (
        "frozen parameters holding a .grad that an optimizer step would apply; "
        "freeze with resfx.freeze (it clears .grad) or set p.grad = None"
    ),
    "dead": (
        "trainable parameters the loss does not reach (dead: they never train); "
        "freeze them or fix the forward pass"
    ),
    "missing_grad": (
        "trainable parameters without a .grad after backward (dead, or backward not run)"
    ),
    "non_finite_grad": "trainable parameters with a NaN or infinite gradient",
}


class GradientFlowError(RuntimeError):
    """Gradients do not flow as the freezing says; the message names every offending parameter.

    Args:
        problems: for each kind of problem (`"frozen_reachable"`,
            `"frozen_with_grad"`, `"dead"`, `"missing_grad"`, `"non_finite_grad"`,
            `"requires_grad_attribute"`), the parameter (or module) names.

    Example:
        >>> error = GradientFlowError({"dead": ("fc.bias",)})
        >>> error.problems["dead"], str(error).splitlines()[1]
        (('fc.bias',), "  - 'fc.bias'")
    """

    def __init__(self, problems: dict[str, tuple[str, ...]]) -> None:
        lines = []
        for kind, names in problems.items():
            lines.append(f"{_PROBLEMS[kind]}:")
            lines.extend(f"  - {name!r}" for name in names)
        super().__init__("\n".join(lines))
        self.problems = problems


@dataclass(frozen=True)
class GradientFlowReport:
    """What `check_gradient_flow` found when nothing was wrong.

    Args:
        trainable: names of the parameters that require gradients.
        frozen: names of the others.
        reachable: parameters the loss reaches, `None` when checked without a loss.
        with_grad: parameters holding a `.grad` when checked.
        unverified: trainable parameters the graph did not reach, not called dead
            because the loss passes through reentrant checkpointing (see
            `check_gradient_flow`).

    Example:
        >>> report = GradientFlowReport(("fc.weight",), ("conv1.weight",), ("fc.weight",), ())
        >>> print(report)
        1 trainable, 1 frozen parameters; 1 reached by the loss; 0 with a .grad
    """

    trainable: tuple[str, ...]
    frozen: tuple[str, ...]
    reachable: tuple[str, ...] | None
    with_grad: tuple[str, ...]
    unverified: tuple[str, ...] = ()

    def __str__(self) -> str:
        reached = "" if self.reachable is None else f"; {len(self.reachable)} reached by the loss"
        unverified = f"; {len(self.unverified)} unverified" if self.unverified else ""
        return (
            f"{len(self.trainable)} trainable, {len(self.frozen)} frozen parameters{reached}; "
            f"{len(self.with_grad)} with a .grad{unverified}"
        )


def check_gradient_flow(model: nn.Module, loss: AnyTensor | None = None) -> GradientFlowReport:
    """Prove that gradients flow where the freezing says, before or after `backward()`.

    With a `loss` (before `backward()`, or after it) the autograd graph says
    which parameters will get a gradient: every trainable one must, no frozen
    one may. Without a loss (after `backward()`) the `.grad` fields say it:
    every trainable parameter must have one. Always: no frozen parameter may
    hold a `.grad`, every gradient present must be finite, and no module may
    carry an attribute `requires_grad` (`module.requires_grad = False` is a
    silent no-op in PyTorch; `requires_grad_(False)` is the method).

    Reentrant checkpointing (`torch.utils.checkpoint(..., use_reentrant=True)`)
    hides the parameters used inside it from the graph until backward runs
    the function again, so a loss cannot tell them from dead ones: the
    trainable parameters it does not reach are then reported as `unverified`
    (with a warning), not as dead. Check after `backward()` without a loss
    (the `.grad` fields), or use `use_reentrant=False`, which the graph sees through.

    Args:
        model: the model to check.
        loss: the loss (or any output) to trace, or `None` to check `.grad` after backward.

    Returns:
        The report, when nothing is wrong.

    Raises:
        GradientFlowError: something is wrong; it names every offending parameter.

    Warns:
        UserWarning: the loss passes through reentrant checkpointing (see above).

    Example:
        >>> import torch, resfx
        >>> model = resfx.get_resnet_for_feature_extraction(num_classes=10)
        >>> loss = model(torch.randn(2, 3, 32, 32)).logsumexp(1).mean()
        >>> print(resfx.check_gradient_flow(model, loss))
        2 trainable, 108 frozen parameters; 2 reached by the loss; 0 with a .grad
        >>> loss.backward()
        >>> print(resfx.check_gradient_flow(model))
        2 trainable, 108 frozen parameters; 2 with a .grad
        >>> model.layer4.requires_grad = False
        >>> resfx.check_gradient_flow(model)
        Traceback (most recent call last):
        ...
        resfx.autograd._flow.GradientFlowError: modules with an attribute `requires_grad` ...
          - 'layer4'
    """
    named = list(model.named_parameters())
    trainable = tuple(name for name, p in named if p.requires_grad)
    frozen = tuple(name for name, p in named if not p.requires_grad)
    with_grad = tuple(name for name, p in named if p.grad is not None)
    graph = None if loss is None else trace_graph(loss, model)
    reachable = None
    if graph is not None:
        reached_names = set(graph.parameters)
        reachable = tuple(name for name, _ in named if name in reached_names)
    found: dict[str, tuple[str, ...]] = {
        "requires_grad_attribute": tuple(
            name or "<root>"
            for name, sub in model.named_modules()
            if "requires_grad" in sub.__dict__
        ),
        "frozen_with_grad": tuple(
            name for name, p in named if not p.requires_grad and p.grad is not None
        ),
        "non_finite_grad": tuple(
            name
            for name, p in named
            if p.requires_grad and p.grad is not None and not bool(torch.isfinite(p.grad).all())
        ),
    }
    if reachable is None:
        found["missing_grad"] = tuple(
            name for name, p in named if p.requires_grad and p.grad is None
        )
    unverified: tuple[str, ...] = ()
    if graph is not None and reachable is not None:
        reached = set(reachable)
        found["frozen_reachable"] = tuple(name for name in frozen if name in reached)
        unreached = tuple(name for name in trainable if name not in reached)
        if any(node.name == _REENTRANT_CHECKPOINT for node in graph.nodes):
            unverified = unreached
        else:
            found["dead"] = unreached
    problems = {kind: names for kind, names in found.items() if names}
    if problems:
        raise GradientFlowError(problems)
    if unverified:
        warnings.warn(
            f"the loss passes through torch.utils.checkpoint(..., use_reentrant=True), which "
            f"hides the parameters used inside it until backward: {len(unverified)} trainable "
            f"parameters the graph does not reach could not be verified ({list(unverified)[:4]}"
            f"{' ...' if len(unverified) > 4 else ''}); check after loss.backward() with "
            f"check_gradient_flow(model), or checkpoint with use_reentrant=False",
            UserWarning,
            stacklevel=2,
        )
    return GradientFlowReport(trainable, frozen, reachable, with_grad, unverified)
