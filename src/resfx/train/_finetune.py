"""The `"full"` and `"partial"` modes: backbone stages train with the head, under autograd.

`"full"` trains every stage from the first step; `"partial"` the stages after
`freeze_to`, or those of `stages` from their epochs (see `resfx.Finetuner`).
"""

import warnings
from collections.abc import Iterator

import torch.nn.functional as F
from torch import Tensor

from .._precision import autocast
from .._typing import Images, Labels, Logits
from ..models import ResNet
from ._job import JobSetup, StepResult, TrainedModel, build_finetuner, distribute


class FullJob(TrainedModel):
    """The `"full"` mode: every parameter trains, BatchNorm included.

    Args:
        setup: what the shared loop hands the mode.
        model: the model from `build_model`, on the CPU.

    Example:
        >>> import torch
        >>> from resfx.data import iterate_batches, load_split
        >>> from resfx.train import DistributedContext, TrainingArgs, build_model
        >>> from resfx.train._job import SetupClock
        >>> args = TrainingArgs(weights=None, arch="resnet18", mode="full", batch_size=4,
        ...                     image_size=16)
        >>> split = load_split("synthetic", "test", 8)
        >>> setup = JobSetup(args, DistributedContext(0, 1, 0), torch.device("cpu"), split,
        ...                  split, iterate_batches, 8, SetupClock())
        >>> job = FullJob(setup, build_model(args))
        >>> images, labels = next(job.batches(epoch=0, skip=0))
        >>> job.step(images, labels).loss.requires_grad
        False
    """

    def __init__(self, setup: JobSetup, model: ResNet) -> None:
        super().__init__(setup, model)
        # The Finetuner first: it unfreezes the stages that train from the start, so DDP
        # sees every parameter that trains.
        self.tuner = build_finetuner(setup, self.model)
        self.trainable = distribute(self.model, setup)

    def prepare(self) -> None:
        """Nothing: every step reads its images as it comes."""

    def batches(self, epoch: int, skip: int) -> Iterator[tuple[Images, Labels]]:
        """The training images of `epoch`, resized on the device."""
        return self.setup.train_images(epoch, skip)

    def test_batches(self) -> Iterator[tuple[Images, Labels]]:
        """This process's share of the test images."""
        return self.setup.test_images()

    def step(self, inputs: Tensor, labels: Labels) -> StepResult:
        """Forward (in autocast), cross-entropy in float32, backward, one optimizer step."""
        setup = self.setup
        with autocast(setup.device, setup.args.precision):
            logits = self.trainable(inputs.contiguous(memory_format=setup.memory_format))
        loss = F.cross_entropy(logits.float(), labels)
        optimizer = self.tuner.optimizer
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self.tuner.step()
        return StepResult(loss.detach(), (logits.detach().argmax(dim=1) == labels).sum())

    def logits(self, inputs: Tensor) -> Logits:
        """The whole model's outputs, in autocast as it trains."""
        setup = self.setup
        with autocast(setup.device, setup.args.precision):
            return self.model(inputs.contiguous(memory_format=setup.memory_format))


class PartialJob(FullJob):
    """The `"partial"` mode: the stages after `freeze_to`, or those of `stages` from their epochs.

    Args:
        setup: what the shared loop hands the mode.
        model: the model from `build_model`, on the CPU, backbone frozen.

    Raises:
        ValueError: a staged run (a stage starting after epoch 0) under several processes:
            DistributedDataParallel cannot follow what trains changing mid-run.

    Warns:
        UserWarning: a stage starts at or after `epochs`, so it does not train in this run.
            A warning, not an error: `epochs` may grow when the run is resumed, and a run
            cut short on purpose (`epochs=1`, then `resume` with `epochs=6`) trains it then.

    Example:
        >>> import torch
        >>> from resfx.data import iterate_batches, load_split
        >>> from resfx.train import DistributedContext, TrainingArgs, build_model
        >>> from resfx.train._job import SetupClock
        >>> args = TrainingArgs(weights=None, arch="resnet18", mode="partial",
        ...                     stages="head:0,layer4:1", epochs=2)
        >>> split = load_split("synthetic", "test", 8)
        >>> setup = JobSetup(args, DistributedContext(0, 2, 0), torch.device("cpu"), split,
        ...                  split, iterate_batches, 8, SetupClock())
        >>> PartialJob(setup, build_model(args))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: a staged run (stages='head:0,layer4:1') changes what trains mid-run, ...
    """

    def __init__(self, setup: JobSetup, model: ResNet) -> None:
        args = setup.args
        staged = any(start > 0 for _, start in args.stage_schedule())
        if staged and setup.context.world_size > 1:
            raise ValueError(
                f"a staged run (stages={args.stages!r}) changes what trains mid-run, which "
                f"DistributedDataParallel cannot follow; run it in one process, or start every "
                f"stage at epoch 0"
            )
        late = [(stage, start) for stage, start in args.stage_schedule() if start >= args.epochs]
        if late:
            listed = ", ".join(f"{stage} (from epoch {start})" for stage, start in late)
            warnings.warn(
                f"stages={args.stages!r}: {listed} will not train in this run, whose epochs are "
                f"0 to {args.epochs - 1} (epochs={args.epochs}); pass epochs="
                f"{max(start for _, start in late) + 1} or more (also when resuming it), or "
                f"start them earlier",
                stacklevel=2,
            )
        super().__init__(setup, model)
