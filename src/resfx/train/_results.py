"""What a run leaves behind: its history (JSON-ready) and the trained model."""

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from torch import nn as tnn

from .._atomic import atomic_write_bytes


@dataclass
class TrainHistory:
    """The record of one run: per-step losses, per-epoch accuracies and timings, and what ran.

    Args:
        mode: `"head"`, `"full"`, `"cached"`, or `"seed"` for the seed's reference loop.
        dataset: `"cifar10"` or `"synthetic"` (the label plots and summaries show).
        device: where it ran, e.g. `"cuda:0"`.
        args: the run's `TrainingArgs` as a dict.
        loss_list: training loss of every optimizer step (averaged over processes).
        examples_seen: training examples seen after each step (all processes together).
        accuracy_list: test accuracy after each epoch, in [0, 1].
        epoch_examples: examples seen at the end of each epoch.
        epoch_times: wall seconds of each epoch's training and testing (a resumed
            epoch counts from the resume).
        setup_seconds: seconds before the first epoch: data, model, features.
        feature_seconds: of those, seconds spent computing cached features.
        trainable_parameters: parameters the optimizer updates.
        frozen_parameters: parameters that stay fixed.
        world_size: processes that trained together.
        setup_phases: `setup_seconds` phase by phase, in the order they ran (the
            device and weights name, the data, moving it, building the model, ...,
            the feature pass); empty in histories written before it existed.
        feature_images: images this process ran through the frozen backbone for
            cached features (its share under `torchrun`; 0 when the cache had them).
        lr_list: the learning rate of every optimizer step, as the step used it: the
            first optimizer group's (the first stage of `stages`, usually the head; the
            others are it times `lr_decay` per stage, while they train).
        train_correct_list: training predictions of every step that matched their labels
            (all processes together; the step's examples are the difference of `examples_seen`).
        train_accuracy_list: per epoch, the share of training examples predicted right by
            the steps that trained on them (as the model was at each step), in [0, 1].
        test_loss_list: per epoch, the mean cross-entropy on the test split.

    The last four are empty in histories written before they existed; a run resumed from
    such a history has them for its new steps and epochs only.

    Example:
        >>> h = TrainHistory("head", "synthetic", "cpu", loss_list=[2.3], examples_seen=[64])
        >>> h.mode, h.loss_list
        ('head', [2.3])
    """

    mode: str
    dataset: str
    device: str
    args: dict[str, Any] = field(default_factory=dict)
    loss_list: list[float] = field(default_factory=list)
    examples_seen: list[int] = field(default_factory=list)
    accuracy_list: list[float] = field(default_factory=list)
    epoch_examples: list[int] = field(default_factory=list)
    epoch_times: list[float] = field(default_factory=list)
    setup_seconds: float = 0.0
    feature_seconds: float = 0.0
    trainable_parameters: int = 0
    frozen_parameters: int = 0
    world_size: int = 1
    setup_phases: dict[str, float] = field(default_factory=dict)
    feature_images: int = 0
    lr_list: list[float] = field(default_factory=list)
    train_correct_list: list[int] = field(default_factory=list)
    train_accuracy_list: list[float] = field(default_factory=list)
    test_loss_list: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The history as plain values.

        Example:
            >>> TrainHistory("head", "synthetic", "cpu").to_dict()["dataset"]
            'synthetic'
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainHistory":
        """A history from `to_dict`'s output.

        Raises:
            ValueError: keys missing or unknown.

        Example:
            >>> TrainHistory.from_dict(TrainHistory("full", "cifar10", "cpu").to_dict()).mode
            'full'
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        missing = sorted({"mode", "dataset", "device"} - set(values))
        if unknown or missing:
            raise ValueError(f"not a TrainHistory: unknown keys {unknown}, missing keys {missing}")
        return cls(**values)

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the history as indented JSON, atomically.

        Example:
            >>> import tempfile
            >>> history = TrainHistory("head", "synthetic", "cpu")
            >>> p = history.save_json(tempfile.mkdtemp() + "/h.json")
            >>> TrainHistory.load_json(p).dataset
            'synthetic'
        """
        return atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())

    @classmethod
    def load_json(cls, path: str | os.PathLike[str]) -> "TrainHistory":
        """Read a history written by `save_json`.

        Raises:
            ValueError: the file is not a history.

        Example:
            >>> import tempfile
            >>> p = TrainHistory("head", "cifar10", "cpu").save_json(tempfile.mkdtemp() + "/h.json")
            >>> TrainHistory.load_json(p).mode
            'head'
        """
        return cls.from_dict(json.loads(Path(path).read_text()))


def format_setup_phases(phases: Mapping[str, float], *, top: int | None = None) -> str:
    """Set-up phases as one line, `"data 0.120 s, model 0.810 s, ..."`.

    Args:
        phases: seconds by phase, e.g. `TrainHistory.setup_phases`.
        top: keep only the `top` longest phases, longest first; `None` keeps all, in order.

    Returns:
        The line (empty for no phases).

    Example:
        >>> format_setup_phases({"data": 0.12, "model": 0.81, "fold": 0.05}, top=2)
        'model 0.810 s, data 0.120 s'
    """
    chosen = list(phases.items())
    if top is not None:
        chosen = sorted(chosen, key=lambda item: item[1], reverse=True)[:top]
    return ", ".join(f"{name} {seconds:.3f} s" for name, seconds in chosen)


@dataclass
class TrainResult:
    """A finished run, its history and model; unpacks as `loss_list, accuracy_list, model`.

    Args:
        history: losses, accuracies, timings and settings.
        model: the trained model (the whole ResNet, head included), on its training device.

    Example:
        >>> import torch
        >>> result = TrainResult(TrainHistory("head", "synthetic", "cpu", loss_list=[1.0]),
        ...                      torch.nn.Linear(1, 1))
        >>> loss_list, accuracy_list, model = result
        >>> loss_list, accuracy_list
        ([1.0], [])
    """

    history: TrainHistory
    model: tnn.Module

    @property
    def loss_list(self) -> list[float]:
        """Training loss of every optimizer step."""
        return self.history.loss_list

    @property
    def accuracy_list(self) -> list[float]:
        """Test accuracy after each epoch, in [0, 1]."""
        return self.history.accuracy_list

    @property
    def epoch_times(self) -> list[float]:
        """Wall seconds of each epoch."""
        return self.history.epoch_times

    @property
    def examples_seen(self) -> list[int]:
        """Training examples seen after each step."""
        return self.history.examples_seen

    def __iter__(self) -> Iterator[Any]:
        return iter((self.loss_list, self.accuracy_list, self.model))
