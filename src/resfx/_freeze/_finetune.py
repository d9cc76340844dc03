"""Staged fine-tuning: one object owns the freezing, the optimizer groups and the learning rates.

Where Lightning's `BackboneFinetuning` adds one backbone group at one epoch
and ramps its rate by a callback, and timm's `param_groups_layer_decay`
scales rates by depth but unfreezes nothing, `Finetuner` does both over any
number of stages, and keeps the three things that break after the first
unfreeze correct by construction:

- every optimizer group exists from the start (empty until its stage
  starts), so the optimizer's state dict has one shape through the run and a
  checkpoint taken at any step loads;
- the learning rates are a closed formula of the step (below), set on every
  group at every step, so there is no scheduler to rebuild or extend when a
  stage starts, and resuming is exact;
- the stages' parameters follow `parameter_groups`' weight-decay split.

The learning rate of stage `i` (its position in `stages`, the first listed
usually the head) at optimizer step `t` (0-based, over the whole run) is

    lr_i(t) = lr * lr_decay**i * f(t) * min(1, (t - s_i + 1) / W)   for t >= s_i, else 0

where `s_i = start_epoch_i * steps_per_epoch` is the step the stage starts,
`W = round(warmup_epochs * steps_per_epoch)` (no warm-up when 0: the last
factor is 1), `T = epochs * steps_per_epoch`, and `f` the schedule:
`"constant"`: 1; `"cosine"`: `(1 + cos(pi * t / T)) / 2` (torch's
`CosineAnnealingLR` with `T_max=T`, `eta_min=0`); `"onecycle"`: torch's
`OneCycleLR` with `total_steps=T` and its defaults (`pct_start=0.3`,
`div_factor=25`, `final_div_factor=1e4`, cosine annealing), divided by its
peak, learning rate only (momentum is not cycled).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import nn

from .._schedule import Schedule, schedule_factor
from ._freeze import _thaw, freeze
from ._optim import decay_split
from ._policy import BNPolicy, check_policy, frozen_state
from ._stages import StageSpec, stage_map

OptimizerName = Literal["adam", "adamw", "sgd"]
"""The optimizers `Finetuner` builds by name: torch's `Adam`, `AdamW` and `SGD` (momentum 0.9)."""

OptimizerFactory = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]
"""Builds an optimizer from parameter groups, e.g. `lambda groups: torch.optim.RAdam(groups)`."""

_FORMAT = "resfx-finetuner-1"


@dataclass(frozen=True)
class Stage:
    """One stage of a `Finetuner`: what starts training, when, at which depth.

    Args:
        name: the stage's name (as in `stage_map`).
        start_epoch: the epoch at whose first step it starts training.
        modules: the names of its modules in the model.
        depth: its position in the stage list; its rate is scaled by `lr_decay**depth`.

    Example:
        >>> Stage("layer4", 2, ("layer4",), 1).depth
        1
    """

    name: str
    start_epoch: int
    modules: tuple[str, ...]
    depth: int


def _build_optimizer(
    optimizer: OptimizerName | OptimizerFactory, groups: list[dict[str, Any]], lr: float
) -> torch.optim.Optimizer:
    if callable(optimizer):
        return optimizer(groups)
    if optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    raise ValueError(
        f"unknown optimizer {optimizer!r}; expected one of {get_args(OptimizerName)} or a "
        f"function from parameter groups to an optimizer"
    )


class Finetuner:
    """Staged unfreezing with layer-wise learning rates and a schedule, resumable bit for bit.

    At construction the whole model is frozen (BatchNorm policy `bn`) and one
    or two optimizer groups per stage are made (weights with 2 or more axes
    decay, biases and norm parameters do not), all empty; the stages starting
    at epoch 0 then unfreeze. Call `step()` after every `optimizer.step()`: it
    starts the stages that are due (their parameters join their groups,
    their BatchNorms return to how they were before freezing) and sets every
    group's learning rate by the formula in this module's documentation.
    Parts of the model in no stage stay frozen. Save `state_dict()` with the
    model's state; to resume, build the same model and `Finetuner`, load the
    model's state, then the Finetuner's (it starts the stages that had started).

    Args:
        model: the model; its stages are named as in `stage_map`.
        stages: `(stage name, start epoch)` pairs, head first (the position
            sets the depth for `lr_decay`); at least one starts at epoch 0.
        epochs: epochs of the whole run.
        steps_per_epoch: optimizer steps per epoch.
        lr: the peak learning rate of the first stage.
        lr_decay: each further stage's rate is this times the previous one's (timm's layer decay).
        weight_decay: weight decay of weights with 2 or more axes (0 for the others).
        optimizer: `"adam"`, `"adamw"`, `"sgd"` or a function from groups to an optimizer.
        schedule: `"constant"`, `"cosine"` or `"onecycle"`.
        warmup_epochs: each stage's linear warm-up, from when it starts, in epochs.
        bn: the BatchNorm policy of stages not started yet (see `freeze`).
        stage_names: an explicit stage list for models `stage_map` cannot name.

    Raises:
        ValueError: a value is out of range, a stage is unknown or listed
            twice, or no stage starts at epoch 0.
        TypeError: the model's stages cannot be told (pass `stage_names`).

    Example:
        >>> import torch, resfx
        >>> model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1)))
        >>> tuner = resfx.Finetuner(model, [("head", 0), ("layer4", 1)], epochs=2,
        ...                         steps_per_epoch=2, lr=0.1, lr_decay=0.5)
        >>> for step in range(4):
        ...     loss = model(torch.randn(2, 3, 32, 32)).square().mean()
        ...     loss.backward(); tuner.optimizer.step(); tuner.optimizer.zero_grad()
        ...     print(tuner.step(), tuner.learning_rates())
        [] [0.1, 0.0]
        ['layer4'] [0.1, 0.05]
        [] [0.1, 0.05]
        [] [0.1, 0.05]
    """

    def __init__(
        self,
        model: nn.Module,
        stages: Sequence[tuple[str, int]],
        *,
        epochs: int,
        steps_per_epoch: int,
        lr: float,
        lr_decay: float = 1.0,
        weight_decay: float = 0.0,
        optimizer: OptimizerName | OptimizerFactory = "adamw",
        schedule: Schedule = "constant",
        warmup_epochs: float = 0.0,
        bn: BNPolicy = "eval",
        stage_names: StageSpec | None = None,
    ) -> None:
        check_policy(bn)
        for name, value, low in (
            ("epochs", epochs, 1),
            ("steps_per_epoch", steps_per_epoch, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int of at least {low}, got {value!r}")
        for name, number in (
            ("lr", lr),
            ("lr_decay", lr_decay),
            ("weight_decay", weight_decay),
            ("warmup_epochs", warmup_epochs),
        ):
            if not (math.isfinite(number) and number >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {number}")
        if lr <= 0 or lr_decay <= 0:
            raise ValueError(f"lr and lr_decay must be positive, got lr={lr}, lr_decay={lr_decay}")
        if schedule not in get_args(Schedule):
            raise ValueError(f"unknown schedule {schedule!r}; expected one of {get_args(Schedule)}")
        self.model = model
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.total_steps = epochs * steps_per_epoch
        self.lr, self.lr_decay, self.weight_decay = lr, lr_decay, weight_decay
        self.schedule: Schedule = schedule
        self.warmup_steps = round(warmup_epochs * steps_per_epoch)
        self.stages = self._resolve(stages, stage_names)
        freeze(model, bn=bn)
        self._members = self._split()
        groups = [
            {"params": [], "lr": 0.0, "weight_decay": decay, "stage": stage.name}
            for stage, decay, _ in self._members
        ]
        self.optimizer = _build_optimizer(optimizer, groups, lr)
        self._step = 0
        self.started: list[str] = []
        self._start_due()
        self._set_learning_rates()

    def _resolve(
        self, stages: Sequence[tuple[str, int]], stage_names: StageSpec | None
    ) -> tuple[Stage, ...]:
        mapping = stage_map(self.model, stage_names)
        resolved, seen = [], set()
        for depth, item in enumerate(stages):
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"a stage is a (stage name, start epoch) pair, got {item!r}")
            name, start = item
            if name not in mapping:
                raise ValueError(f"unknown stage {name!r}; this model's stages are {list(mapping)}")
            if name in seen:
                raise ValueError(f"stage {name!r} is listed twice in {list(stages)}")
            if isinstance(start, bool) or not isinstance(start, int) or start < 0:
                raise ValueError(f"stage {name!r} starts at {start!r}; expected an epoch >= 0")
            seen.add(name)
            resolved.append(Stage(name, start, mapping[name], depth))
        if not resolved or min(stage.start_epoch for stage in resolved) != 0:
            raise ValueError(
                f"no stage starts at epoch 0 in {list(stages)}: nothing would train at first; "
                f"start the head at 0, e.g. [('head', 0), ('layer4', 2)]"
            )
        return tuple(resolved)

    def _split(self) -> list[tuple[Stage, float, list[nn.Parameter]]]:
        """Each stage's parameters, split by weight decay; a shared parameter goes to its first stage."""
        modules = dict(self.model.named_modules())
        claimed: set[int] = set()
        members: list[tuple[Stage, float, list[nn.Parameter]]] = []
        for stage in self.stages:
            own = []
            for module_name in stage.modules:
                for parameter in modules[module_name].parameters():
                    if id(parameter) not in claimed:
                        claimed.add(id(parameter))
                        own.append(parameter)
            members.extend(
                (stage, decay, params) for decay, params in decay_split(own, self.weight_decay)
            )
        return members

    def _start_due(self) -> list[str]:
        # Past the last step nothing new starts: a stage due at epoch `epochs` never trains.
        epoch = min(self._step, self.total_steps - 1) // self.steps_per_epoch
        return self._start([s.name for s in self.stages if s.start_epoch <= epoch])

    def _start(self, names: list[str]) -> list[str]:
        due = [s for s in self.stages if s.name in names and s.name not in self.started]
        modules = dict(self.model.named_modules())
        for stage in due:
            for module_name in stage.modules:
                for sub in modules[module_name].modules():
                    state = frozen_state(sub)
                    if state is not None:
                        _thaw(sub, state)
            self.started.append(stage.name)
        started = {s.name for s in due}
        groups = self.optimizer.param_groups
        for (stage, _, members), group in zip(self._members, groups, strict=True):
            if stage.name in started:
                group["params"].extend(p for p in members if p.requires_grad)
        return [s.name for s in due]

    def learning_rate(self, stage: Stage, step: int) -> float:
        """The learning rate of `stage` at optimizer step `step`, by the formula above.

        Args:
            stage: one of `self.stages`.
            step: the optimizer step, 0-based.

        Returns:
            The rate (0 before the stage starts).

        Example:
            >>> import torchvision, resfx
            >>> tuner = resfx.Finetuner(torchvision.models.resnet18(), [("head", 0), ("layer4", 1)],
            ...                         epochs=2, steps_per_epoch=10, lr=1.0, lr_decay=0.1,
            ...                         warmup_epochs=0.5)
            >>> [round(tuner.learning_rate(tuner.stages[1], t), 6) for t in (9, 10, 14, 15)]
            [0.0, 0.02, 0.1, 0.1]
        """
        start = stage.start_epoch * self.steps_per_epoch
        if step < start:
            return 0.0
        warmup = 1.0 if self.warmup_steps == 0 else min(1.0, (step - start + 1) / self.warmup_steps)
        factor = schedule_factor(self.schedule, min(step, self.total_steps - 1), self.total_steps)
        return self.lr * self.lr_decay**stage.depth * factor * warmup

    def _set_learning_rates(self) -> None:
        for (stage, _, _), group in zip(self._members, self.optimizer.param_groups, strict=True):
            group["lr"] = self.learning_rate(stage, self._step)

    def learning_rates(self) -> list[float]:
        """The learning rate of every optimizer group now, in group order.

        Example:
            >>> import torchvision, resfx
            >>> resfx.Finetuner(torchvision.models.resnet18(), [("head", 0)], epochs=1,
            ...                 steps_per_epoch=1, lr=0.5).learning_rates()
            [0.5]
        """
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    @property
    def step_count(self) -> int:
        """Optimizer steps done (the step the next `optimizer.step()` is)."""
        return self._step

    @property
    def epoch(self) -> int:
        """The epoch in progress (the number done at an epoch boundary)."""
        return self._step // self.steps_per_epoch

    def step(self) -> list[str]:
        """Call after each `optimizer.step()`: start due stages, set the next step's rates.

        Returns:
            The names of the stages that started (usually none).

        Raises:
            ValueError: the run's `epochs * steps_per_epoch` steps are all done.

        Example:
            >>> import torchvision, resfx
            >>> tuner = resfx.Finetuner(torchvision.models.resnet18(), [("head", 0), ("layer4", 1)],
            ...                         epochs=2, steps_per_epoch=1, lr=0.1)
            >>> tuner.step()
            ['layer4']
        """
        if self._step >= self.total_steps:
            raise ValueError(
                f"all {self.total_steps} steps ({self.epochs} epochs of {self.steps_per_epoch}) "
                f"are done; build the Finetuner with more epochs to train on"
            )
        self._step += 1
        started = self._start_due()
        if self._step < self.total_steps:
            self._set_learning_rates()
        return started

    def epoch_end(self) -> int:
        """Call at the end of each epoch: checks that `step()` ran `steps_per_epoch` times in it.

        Returns:
            The number of epochs done.

        Raises:
            ValueError: the step count is not at an epoch boundary (a `step()`
                call missing or extra, or `steps_per_epoch` not the loader's length).

        Example:
            >>> import torchvision, resfx
            >>> tuner = resfx.Finetuner(torchvision.models.resnet18(), [("head", 0)], epochs=2,
            ...                         steps_per_epoch=1, lr=0.1)
            >>> _ = tuner.step(); tuner.epoch_end()
            1
        """
        if self._step % self.steps_per_epoch:
            raise ValueError(
                f"epoch_end at step {self._step}, which is not a multiple of steps_per_epoch="
                f"{self.steps_per_epoch}: call step() once after every optimizer step and pass "
                f"the loader's length as steps_per_epoch"
            )
        return self._step // self.steps_per_epoch

    def _config(self) -> dict[str, Any]:
        return {
            "stages": [(s.name, s.start_epoch, list(s.modules)) for s in self.stages],
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "lr": self.lr,
            "lr_decay": self.lr_decay,
            "weight_decay": self.weight_decay,
            "schedule": self.schedule,
            "warmup_steps": self.warmup_steps,
            "optimizer": type(self.optimizer).__name__,
        }

    def state_dict(self) -> dict[str, Any]:
        """The position, the settings (checked on load) and the optimizer's state.

        Example:
            >>> import torchvision, resfx
            >>> tuner = resfx.Finetuner(torchvision.models.resnet18(), [("head", 0)], epochs=1,
            ...                         steps_per_epoch=1, lr=0.1)
            >>> sorted(tuner.state_dict())
            ['config', 'format', 'optimizer', 'started', 'step']
        """
        return {
            "format": _FORMAT,
            "step": self._step,
            "started": list(self.started),
            "config": self._config(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`'s output: start the stages that had started, load the optimizer.

        Call it on a new `Finetuner` over a freshly built model, after loading
        the model's saved values (every stage is frozen but the first, so
        `load_state_dict(..., strict=False)` puts each saved tensor in place). Every
        setting must be the saving run's, except `epochs` under the constant
        schedule (the others depend on the run's length), so a run can be extended.

        Raises:
            ValueError: `state` is not a Finetuner state, was made with other
                settings (named), or is behind this Finetuner's position.

        Example:
            >>> import torchvision, resfx
            >>> make = lambda: resfx.Finetuner(torchvision.models.resnet18(), [("head", 0), ("layer4", 1)],
            ...                                epochs=2, steps_per_epoch=1, lr=0.1)
            >>> tuner = make(); _ = tuner.step()
            >>> again = make(); again.load_state_dict(tuner.state_dict()); again.started
            ['head', 'layer4']
        """
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"not a Finetuner state ({_FORMAT}): {type(state).__name__}")
        config = self._config()
        saved = state["config"]
        # A constant schedule does not depend on the run's length: a run may be extended.
        extendable = {"epochs"} if self.schedule == "constant" else set()
        differing = [
            f"{key}={saved.get(key)!r} (now {value!r})"
            for key, value in config.items()
            if key not in extendable and _tuples_as_lists(saved.get(key)) != _tuples_as_lists(value)
        ]
        if differing:
            raise ValueError(
                f"the Finetuner state was made with other settings: {', '.join(differing)}; "
                f"build the Finetuner as the run that saved it did"
            )
        if state["step"] < self._step:
            raise ValueError(
                f"the state is at step {state['step']}, behind this Finetuner's {self._step}; "
                f"load it into a new Finetuner"
            )
        self._step = int(state["step"])
        self._start(list(state["started"]))  # the groups as saved, then what is due now
        self.optimizer.load_state_dict(state["optimizer"])
        self._start_due()
        if self._step < self.total_steps:
            self._set_learning_rates()


def _tuples_as_lists(value: Any) -> Any:
    """Lists and tuples compared alike (a state that went through a checkpoint has lists)."""
    if isinstance(value, (list, tuple)):
        return [_tuples_as_lists(v) for v in value]
    return value
