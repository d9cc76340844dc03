"""What the shared loop hands a job mode, what every mode gives back, and the parts all modes share.

A mode (`HeadJob`, `CachedJob`, `PartialJob`, `FullJob`) owns the model on the
device, its optimizer (a `Finetuner`), how a batch is made and stepped, and how
the test split is scored. The shared loop (`_loop.py`) owns the rest: data,
checkpoints, resume, history, progress and the processes.
"""

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from torch import nn as tnn
from torch.nn.parallel import DistributedDataParallel

from .._device_sync import synchronize
from .._distributed import DistributedContext
from .._freeze import Finetuner
from .._typing import Images, Labels, Logits
from ..data import ImageSplit, StreamedSplit, epoch_order
from ..models import ResNet
from ._args import TrainingArgs
from ._checkpoint import restore_state, trainable_state

ImageBatches = Callable[..., Iterator[tuple[Images, Labels]]]
"""The image pipeline, called as `resfx.data.iterate_batches(split, order, batch_size, *,
image_size, skip_batches=0)`."""


class SetupClock:
    """Seconds of each set-up phase, in order: a `mark` ends the phase that ran since the last.

    Marking waits for the device first, so a phase's queued GPU work counts in it.

    Example:
        >>> clock = SetupClock()
        >>> clock.mark("data"); list(clock.phases)
        ['data']
    """

    def __init__(self) -> None:
        self.began = self.last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def mark(self, phase: str, device: torch.device | None = None) -> None:
        """End `phase` now (after the device's queued work, when `device` is given)."""
        if device is not None:
            synchronize(device)
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self.last
        self.last = now


@dataclass(frozen=True)
class JobSetup:
    """What the shared loop gives a mode: settings, processes, device, data and the set-up clock.

    Args:
        args: the run's settings, `n_classes` resolved from the data.
        context: this process's place in the run.
        device: where the run trains.
        train_split: the training images, on `device`.
        test_split: the test images, on `device`.
        image_batches: the image pipeline (see `ImageBatches`).
        eval_batch: images per batch when testing or computing features.
        clock: times the set-up phases.

    Example:
        >>> from resfx.data import iterate_batches, load_split
        >>> split = load_split("synthetic", "test", 10)
        >>> setup = JobSetup(TrainingArgs(batch_size=4), DistributedContext(0, 1, 0),
        ...                  torch.device("cpu"), split, split, iterate_batches, 8, SetupClock())
        >>> setup.steps_per_epoch()
        3
    """

    args: TrainingArgs
    context: DistributedContext
    device: torch.device
    train_split: ImageSplit | StreamedSplit
    test_split: ImageSplit | StreamedSplit
    image_batches: ImageBatches
    eval_batch: int
    clock: SetupClock

    @property
    def memory_format(self) -> torch.memory_format:
        """`channels_last` on a GPU (faster convolutions there), the default layout elsewhere."""
        return torch.channels_last if self.device.type == "cuda" else torch.contiguous_format

    def steps_per_epoch(self) -> int:
        """Optimizer steps of one epoch in this process (its share of the training split)."""
        share = math.ceil(len(self.train_split) / self.context.world_size)
        return math.ceil(share / self.args.batch_size)

    def epoch_order(self, epoch: int) -> Tensor:
        """This process's order of the training examples in `epoch` (replayed exactly on resume)."""
        context = self.context
        return epoch_order(
            len(self.train_split),
            epoch=epoch,
            seed=self.args.seed,
            rank=context.rank,
            world_size=context.world_size,
        )

    def test_share(self) -> Tensor:
        """The test examples this process scores: every `world_size`-th from its rank."""
        return torch.arange(self.context.rank, len(self.test_split), self.context.world_size)

    def train_images(self, epoch: int, skip: int) -> Iterator[tuple[Images, Labels]]:
        """The training images of `epoch` in batches, the first `skip` batches left out."""
        args = self.args
        return self.image_batches(
            self.train_split,
            self.epoch_order(epoch),
            args.batch_size,
            image_size=args.image_size,
            skip_batches=skip,
        )

    def test_images(self) -> Iterator[tuple[Images, Labels]]:
        """This process's share of the test images in batches of `eval_batch`."""
        return self.image_batches(
            self.test_split, self.test_share(), self.eval_batch, image_size=self.args.image_size
        )


class StepResult(NamedTuple):
    """One optimizer step's numbers, left on the device (reading them makes the host wait).

    Args:
        loss: the batch's mean training loss.
        correct: how many of the batch's predictions (the logits the step trained on)
            matched their labels.

    Example:
        >>> StepResult(torch.tensor(2.3), torch.tensor(3)).correct
        tensor(3)
    """

    loss: Float[Tensor, ""]
    correct: Int[Tensor, ""]


class Evaluation(NamedTuple):
    """How the model does on the test split, over every process's share.

    Args:
        accuracy: the share of test examples predicted right, in [0, 1].
        loss: the mean cross-entropy over the test examples.

    Example:
        >>> Evaluation(0.5, 1.2).accuracy
        0.5
    """

    accuracy: float
    loss: float


class Job(Protocol):
    """One training mode as the shared loop drives it.

    The loop calls `prepare` once after a resume, then per epoch `batches`
    and `step` for each batch, then `evaluate`; `state_dict` goes into every
    checkpoint and `load_state_dict` takes it back.
    """

    model: ResNet
    tuner: Finetuner
    feature_seconds: float
    """Seconds `prepare` spent computing cached features."""
    feature_images: int
    """Images this process ran through the frozen backbone for cached features."""

    def prepare(self) -> None:
        """Work left before the first step that a resume must not redo or undo."""
        ...

    def batches(self, epoch: int, skip: int) -> Iterator[tuple[Tensor, Labels]]:
        """The training inputs of `epoch`, the first `skip` batches left out."""
        ...

    def step(self, inputs: Tensor, labels: Labels) -> StepResult:
        """One optimizer step on a batch; returns its loss and correct predictions, on the device."""
        ...

    def evaluate(self) -> Evaluation:
        """Test accuracy and loss, over every process's share."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What training changed: `{"state": ..., "optimizer": ...}`."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back `state_dict`'s output (raises `ValueError` when it does not fit)."""
        ...


def build_finetuner(setup: JobSetup, model: tnn.Module) -> Finetuner:
    """The optimizer, its groups and the learning-rate schedule of a run, in one object.

    Every mode goes through it: `"head"`/`"cached"` train the head alone,
    `"full"` every stage from the start, `"partial"` the stages after
    `freeze_to` or those of `stages` from their epochs (see `TrainingArgs.stage_schedule`).

    Example:
        >>> from resfx.data import iterate_batches, load_split
        >>> from resfx.train import build_model
        >>> split = load_split("synthetic", "test", 8)
        >>> args = TrainingArgs(weights=None, arch="resnet18")
        >>> setup = JobSetup(args, DistributedContext(0, 1, 0), torch.device("cpu"), split,
        ...                  split, iterate_batches, 8, SetupClock())
        >>> type(build_finetuner(setup, build_model(args)).optimizer).__name__
        'Adam'
    """
    args, on_gpu = setup.args, setup.device.type == "cuda"
    lr = args.learning_rate

    def build(groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        if args.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=0.9)
        kind = torch.optim.Adam if args.optimizer == "adam" else torch.optim.AdamW
        return kind(groups, lr=lr, fused=on_gpu)

    return Finetuner(
        model,
        args.stage_schedule(),
        epochs=args.epochs,
        steps_per_epoch=setup.steps_per_epoch(),
        lr=lr,
        lr_decay=args.lr_decay,
        weight_decay=args.weight_decay,
        optimizer=build,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        bn=args.bn,
    )


def distribute(module: tnn.Module, setup: JobSetup) -> tnn.Module:
    """`module` wrapped in `DistributedDataParallel` in a run of several processes, else itself.

    Only the module that trains is wrapped, so frozen parameters never reach DDP.

    Example:
        >>> from resfx.data import iterate_batches, load_split
        >>> split = load_split("synthetic", "test", 4)
        >>> setup = JobSetup(TrainingArgs(), DistributedContext(0, 1, 0), torch.device("cpu"),
        ...                  split, split, iterate_batches, 8, SetupClock())
        >>> head = torch.nn.Linear(2, 2)
        >>> distribute(head, setup) is head
        True
    """
    if setup.context.world_size == 1:
        return module
    device_ids = [setup.device.index] if setup.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


class TrainedModel(ABC):
    """What every mode shares: the model on the device, its `Finetuner`, testing and checkpoint state.

    A mode sets `tuner` in its `__init__` and defines `batches`, `step`, `test_batches`
    and `logits`.
    """

    tuner: Finetuner
    feature_seconds: float = 0.0
    feature_images: int = 0

    def __init__(self, setup: JobSetup, model: ResNet) -> None:
        self.setup = setup
        # torch's stubs lack the (device, memory_format) overload that `Module.to` accepts.
        self.model = model.to(setup.device, memory_format=setup.memory_format)  # type: ignore[call-overload]
        setup.clock.mark("model to device", setup.device)

    @abstractmethod
    def prepare(self) -> None:
        """Work left before the first step that a resume must not redo or undo."""

    @abstractmethod
    def batches(self, epoch: int, skip: int) -> Iterator[tuple[Tensor, Labels]]:
        """The training inputs of `epoch`, the first `skip` batches left out."""

    @abstractmethod
    def step(self, inputs: Tensor, labels: Labels) -> StepResult:
        """One optimizer step on a batch; returns its loss and correct predictions, on the device."""

    @abstractmethod
    def test_batches(self) -> Iterator[tuple[Tensor, Labels]]:
        """This process's share of the test inputs, batch by batch."""

    @abstractmethod
    def logits(self, inputs: Tensor) -> Logits:
        """The model's outputs for a test batch (in `no_grad`, the model in eval mode)."""

    def evaluate(self) -> Evaluation:
        """Test accuracy and mean cross-entropy; each process scores its share, the sums are
        summed over processes."""
        device = self.setup.device
        correct = torch.zeros((), dtype=torch.float64, device=device)
        loss = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        self.model.eval()
        # no_grad, not inference_mode: the images stay normal tensors, as the compiled frozen
        # forward saw them when it was compiled (inference tensors would compile it again).
        with torch.no_grad():
            for inputs, labels in self.test_batches():
                logits = self.logits(inputs).float()
                correct += (logits.argmax(dim=1) == labels).sum()
                loss += F.cross_entropy(logits, labels, reduction="sum")
                count += len(labels)
        self.model.train()
        sums = torch.stack([correct, loss, torch.tensor(count, dtype=torch.float64, device=device)])
        sums = self.setup.context.all_reduce_sum(sums.clone())
        return Evaluation(float(sums[0] / sums[2]), float(sums[1] / sums[2]))

    def state_dict(self) -> dict[str, Any]:
        """Trainable parameters, every buffer, and the optimizer with its schedule."""
        return {"state": trainable_state(self.model), "optimizer": self.tuner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The values first (only what trains at the start has its place), then the `Finetuner`,
        which starts the stages that had started and those due now."""
        restore_state(self.model, state["state"])
        self.tuner.load_state_dict(state["optimizer"])
