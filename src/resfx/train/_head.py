"""The `"head"` mode: a new head trains on a frozen backbone that runs on every batch (the seed's job).

The frozen backbone runs in inference mode (no autograd graph, no saved
activations) with its eval-mode BatchNorms folded into the convolutions, and
only the head runs forward and backward; with `compile` the folded backbone is
compiled for the batch shape and, on a GPU, the head's step is replayed from a
CUDA graph.
"""

from collections.abc import Iterator

import torch
from torch import Tensor

from .._frozen_step import FrozenForward, HeadStep, fold_frozen_backbone
from .._typing import Features, Images, Labels, Logits
from ..models import ResNet
from ._job import JobSetup, TrainedModel, build_finetuner, distribute


class FrozenBackboneJob(TrainedModel):
    """What the `"head"` and `"cached"` modes share: a frozen backbone, folded, and a head's step.

    Args:
        setup: what the shared loop hands the mode.
        model: the model from `build_model`, on the CPU, backbone frozen.
    """

    def __init__(self, setup: JobSetup, model: ResNet) -> None:
        super().__init__(setup, model)
        args = setup.args
        # Running statistics never change under the "eval" policy, so the frozen forward may
        # run on a folded copy (folded on the device: the copy and its float64 arithmetic are
        # fast there); other policies need live BatchNorms.
        self.backbone = (
            fold_frozen_backbone(self.model, precision=args.precision)
            if args.bn == "eval"
            else self.model
        )
        setup.clock.mark("fold", setup.device)
        self.tuner = build_finetuner(setup, self.model)
        # The head's step, replayed from a CUDA graph when compiling on a GPU; the rate
        # a graph replays must not change, and DDP's all-reduce is not captured.
        self.head_step = HeadStep(
            distribute(self.model.fc, setup),
            self.tuner.optimizer,
            graph=args.compile != "off" and setup.context.world_size == 1,
            constant_lr=args.schedule == "constant" and args.warmup_epochs == 0,
        )

    def step(self, inputs: Tensor, labels: Labels) -> Tensor:
        """One step of the head on the features of a batch."""
        loss = self.head_step(self.features(inputs), labels)
        self.tuner.step()
        return loss

    def logits(self, inputs: Tensor) -> Logits:
        """The head's outputs, scored as it trains: on float32 features, outside autocast."""
        return self.model.fc(self.features(inputs))

    def features(self, inputs: Tensor) -> Features:
        """The head's inputs for a batch of the mode's inputs."""
        return inputs


class HeadJob(FrozenBackboneJob):
    """The `"head"` mode: the frozen backbone runs on every batch, compiled when asked.

    Args:
        setup: what the shared loop hands the mode.
        model: the model from `build_model`, on the CPU, backbone frozen.

    Example:
        >>> import torch
        >>> from resfx.data import iterate_batches, load_split
        >>> from resfx.train import DistributedContext, TrainingArgs, build_model
        >>> from resfx.train._job import SetupClock
        >>> args = TrainingArgs(weights=None, arch="resnet18", batch_size=4, image_size=16)
        >>> split = load_split("synthetic", "test", 8)
        >>> setup = JobSetup(args, DistributedContext(0, 1, 0), torch.device("cpu"), split,
        ...                  split, iterate_batches, 8, SetupClock())
        >>> job = HeadJob(setup, build_model(args))
        >>> images, labels = next(job.batches(epoch=0, skip=0))
        >>> job.step(images, labels).shape, 0 <= job.evaluate() <= 1
        (torch.Size([]), True)
    """

    def __init__(self, setup: JobSetup, model: ResNet) -> None:
        super().__init__(setup, model)
        args = setup.args
        self.frozen_forward = FrozenForward(
            self.backbone.forward_pooled,
            mode=args.compile,
            batch_size=args.batch_size,
            precision=args.precision,
        )

    def prepare(self) -> None:
        """Compile the frozen forward for the batch shape, when `compile` asks for it."""
        if not self.frozen_forward.compiled:
            return
        setup = self.setup
        size = setup.args.image_size
        example = torch.zeros(setup.args.batch_size, 3, size, size, device=setup.device)
        self.frozen_forward.warm_up(example.contiguous(memory_format=setup.memory_format))
        setup.clock.mark("compile", setup.device)

    def batches(self, epoch: int, skip: int) -> Iterator[tuple[Images, Labels]]:
        """The training images of `epoch`, resized on the device."""
        return self.setup.train_images(epoch, skip)

    def test_batches(self) -> Iterator[tuple[Images, Labels]]:
        """This process's share of the test images."""
        return self.setup.test_images()

    def features(self, inputs: Tensor) -> Features:
        """The frozen backbone's pooled features of a batch of images."""
        return self.frozen_forward(inputs.contiguous(memory_format=self.setup.memory_format))
