"""The frozen forward, defined once: what `resfx.train` runs, `resfx bench` times and the cache stores.

A frozen backbone runs in inference mode (no graph, no saved activations), under the
precision's autocast, and hands float32 features to the head, which runs outside
autocast, in float32, with autograd. With the `"eval"` BatchNorm policy the backbone
is a copy with BatchNorm folded into the convolutions (the same function, one kernel
less per layer); under bf16 on a GPU the copy keeps its weights in bf16, so autocast
has no weight to cast in every forward (the copy is never trained or saved).
"""

import time
from collections.abc import Callable
from typing import Literal, TypeVar, get_args

import torch
from jaxtyping import Float
from torch import Tensor
from torch import nn as tnn

from ._device_sync import synchronize
from ._fold import fold_batchnorm
from ._precision import autocast, check_precision
from ._typing import Features, Images, Logits

M = TypeVar("M", bound=tnn.Module)


def fold_frozen_backbone(model: M, *, precision: str) -> M:
    """The copy of a frozen backbone the frozen forward runs on: BatchNorm folded, in eval mode.

    On a GPU with `"bf16"` the copy's floating-point weights are stored in bfloat16.
    The original is untouched.

    Args:
        model: the frozen model (or backbone), on the device it will run on.
        precision: `"fp32"` or `"bf16"`.

    Returns:
        The folded copy, in eval mode, every parameter frozen.

    Raises:
        ValueError: an unknown precision, or a layout `fold_batchnorm` refuses.

    Example:
        >>> import resfx
        >>> model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1)))
        >>> folded = fold_frozen_backbone(model, precision="fp32")
        >>> folded.training, any(p.requires_grad for p in folded.parameters())
        (False, False)
    """
    check_precision(precision)
    folded = fold_batchnorm(model)
    parameter = next(folded.parameters(), None)
    if precision == "bf16" and parameter is not None and parameter.device.type == "cuda":
        folded = folded.to(torch.bfloat16)
    return folded


def frozen_features(
    backbone: Callable[[Images], Features], images: Images, *, precision: str
) -> Features:
    """The backbone's features in inference mode under `precision`'s autocast, as float32.

    The result is a copy made outside inference mode, so autograd may save it for the
    head's backward.

    Example:
        >>> import torch
        >>> frozen_features(torch.nn.Flatten(), torch.ones(2, 3, 2, 2), precision="fp32").shape
        torch.Size([2, 12])
    """
    with torch.inference_mode(), autocast(images.device, precision):
        features = backbone(images)
    return features.to(torch.float32, copy=True)


CompileMode = Literal[
    "off", "default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"
]
"""How the frozen forward runs: `"off"` (eager), or a `torch.compile` mode for the folded backbone.

`"reduce-overhead"` and `"max-autotune"` also replay the compiled forward from CUDA
graphs on a GPU; `"max-autotune-no-cudagraphs"` searches kernels without them.
Any mode but `"off"` also lets the head's step be replayed from a CUDA graph
(see `HeadStep`)."""


class FrozenForward:
    """The frozen backbone's forward on one fixed batch shape, eager or under `torch.compile`.

    Compiled code is specialised to its input shape; a new shape compiles again (and
    a CUDA graph is captured per shape). So a compiled `FrozenForward` cuts every
    input into chunks of `batch_size` images and pads the last chunk with zeros to
    that size: one shape, one compilation, whatever the split's length. The rows of
    an eval-mode backbone do not depend on one another, so the padding changes no
    real row, and only the real rows are returned. Eager (`mode="off"`) runs the
    input as it comes.

    Call `warm_up` once before timing anything: it runs the first (compiling) call
    and returns its seconds, which are what the compilation cost.

    Args:
        backbone: the frozen forward, e.g. `fold_frozen_backbone(model, ...).forward_pooled`.
        mode: a `CompileMode`.
        batch_size: the one batch size the compiled code is built for.
        precision: `"fp32"` or `"bf16"` (the autocast of every call).

    Raises:
        ValueError: an unknown mode or precision, or `batch_size < 1`.

    Example:
        >>> import torch, resfx
        >>> model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1))).eval()
        >>> forward = FrozenForward(model.forward_pooled, mode="off", batch_size=4, precision="fp32")
        >>> forward(torch.randn(6, 3, 32, 32)).shape
        torch.Size([6, 32])
    """

    def __init__(
        self,
        backbone: Callable[[Images], Features],
        *,
        mode: str,
        batch_size: int,
        precision: str,
    ) -> None:
        if mode not in get_args(CompileMode):
            raise ValueError(
                f"unknown compile mode {mode!r}; expected one of {get_args(CompileMode)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        check_precision(precision)
        self.mode = mode
        self.batch_size = batch_size
        self.precision = precision
        self._eager = backbone
        self._run: Callable[[Images], Features] = (
            backbone if mode == "off" else torch.compile(backbone, mode=mode, fullgraph=True)
        )

    @property
    def compiled(self) -> bool:
        """Whether the forward runs compiled code (any mode but `"off"`)."""
        return self.mode != "off"

    def warm_up(self, example: Images) -> float:
        """Run the forward once on `example`'s shape (compiling it) and return the seconds it took.

        Args:
            example: one batch of inputs (its values do not matter, its shape,
                dtype, device and memory format do).

        Returns:
            Wall seconds of the first call, synchronised: the compile time, for a compiled forward.

        Example:
            >>> import torch, resfx
            >>> model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1))).eval()
            >>> forward = FrozenForward(model.forward_pooled, mode="off", batch_size=2, precision="fp32")
            >>> forward.warm_up(torch.zeros(2, 3, 32, 32)) >= 0
            True
        """
        began = time.perf_counter()
        self(example)
        synchronize(example.device)
        return time.perf_counter() - began

    def _padded(self, images: Images) -> Images:
        """`images` with zero images appended up to `batch_size`, in their memory format.

        Made outside inference mode, as every full batch is: an inference tensor would
        fail the compiled code's guards and compile it again.
        """
        padding = images.new_zeros((self.batch_size - images.shape[0], *images.shape[1:]))
        channels_last = images.is_contiguous(memory_format=torch.channels_last)
        return torch.cat([images, padding]).contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format
        )

    def __call__(self, images: Images) -> Features:
        """The features of `images` in inference mode under the precision's autocast, as float32.

        Example:
            >>> import torch, resfx
            >>> model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1))).eval()
            >>> FrozenForward(model.forward_pooled, mode="off", batch_size=8,
            ...               precision="fp32")(torch.randn(3, 3, 32, 32)).dtype
            torch.float32
        """
        if not self.compiled:
            return frozen_features(self._eager, images, precision=self.precision)
        parts = []
        for chunk in images.split(self.batch_size):
            count = chunk.shape[0]
            if count < self.batch_size:
                chunk = self._padded(chunk)
            parts.append(frozen_features(self._run, chunk, precision=self.precision)[:count])
        return torch.cat(parts)


class HeadStep:
    """One training step of a head on features: zero the gradients, forward, cross-entropy, backward, step.

    With `graph=True`, on a GPU, and an Adam or AdamW optimizer, the step of the
    full batch shape is captured once in a CUDA graph and replayed: its inputs
    are copied into static buffers, and one replay launches the whole forward,
    backward and optimizer step. The first `warmup_steps` full-shape steps run
    eagerly on a side stream (they are real steps, as torch's capture recipe
    needs), the capture records the next one and replays it at once, so the
    sequence of steps is the eager one. Batches of another shape (an epoch's
    last) run eagerly on the same gradient buffers. The optimizer's `capturable`
    is set to whether the step is graphed, before its first step, so every step,
    eager or replayed, runs the same optimizer code (and an optimizer state loaded
    from a graphed run runs eagerly on the CPU). Learning rates are read when the graph is
    captured: a graph is only captured while `constant_lr` holds (the caller
    says whether its schedule changes the rate), otherwise every step is eager.
    On the CPU, or with `graph=False`, every step is eager.

    Args:
        head: the trained module (e.g. `model.fc`).
        optimizer: the head's optimizer.
        graph: capture the full-shape step in a CUDA graph where it can be.
        constant_lr: the learning rates never change during the run.
        warmup_steps: eager full-shape steps before the capture.

    Example:
        >>> import torch
        >>> head = torch.nn.Linear(4, 3)
        >>> step = HeadStep(head, torch.optim.Adam(head.parameters()), graph=False)
        >>> step(torch.randn(2, 4), torch.tensor([0, 2])).shape
        torch.Size([])
    """

    def __init__(
        self,
        head: Callable[[Features], Logits],
        optimizer: torch.optim.Optimizer,
        *,
        graph: bool,
        constant_lr: bool = True,
        warmup_steps: int = 3,
    ) -> None:
        self.head = head
        self.optimizer = optimizer
        self.warmup_steps = warmup_steps
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        on_gpu = bool(parameters) and all(p.is_cuda for p in parameters)
        self.graphed = (
            graph
            and constant_lr
            and on_gpu
            and isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW))
        )
        for group in optimizer.param_groups:
            if self.graphed or "capturable" in group:
                group["capturable"] = self.graphed
        self._graph: torch.cuda.CUDAGraph | None = None
        self._shape: tuple[int, ...] | None = None
        self._eager_full_steps = 0
        self._static: tuple[Tensor, Tensor, Tensor] | None = None

    def _forward_backward(self, features: Features, labels: Tensor) -> Tensor:
        loss = tnn.functional.cross_entropy(self.head(features).float(), labels)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def _eager(self, features: Features, labels: Tensor) -> Tensor:
        # Once a graph exists its gradient buffers are the parameters' .grad: zero them in
        # place rather than dropping them, so eager steps and replays share them.
        self.optimizer.zero_grad(set_to_none=self._graph is None)
        return self._forward_backward(features, labels)

    def _capture(self, features: Features, labels: Tensor) -> Tensor:
        static_features, static_labels = features.clone(), labels.clone()
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_loss = self._forward_backward(static_features, static_labels)
        self._graph, self._static = graph, (static_features, static_labels, static_loss)
        graph.replay()
        return static_loss.clone()

    def __call__(self, features: Features, labels: Tensor) -> Float[Tensor, ""]:
        """Train the head one step on `(features, labels)`; returns the loss (detached, on the device).

        Example:
            >>> import torch
            >>> head = torch.nn.Linear(4, 3)
            >>> step = HeadStep(head, torch.optim.SGD(head.parameters(), lr=0.1), graph=True)
            >>> float(step(torch.zeros(2, 4), torch.tensor([0, 1]))) > 0
            True
        """
        if not self.graphed:
            return self._eager(features, labels)
        if self._shape is None:
            self._shape = tuple(features.shape)
        if tuple(features.shape) != self._shape:
            return self._eager(features, labels)
        if self._graph is not None and self._static is not None:
            static_features, static_labels, static_loss = self._static
            static_features.copy_(features)
            static_labels.copy_(labels)
            self._graph.replay()
            return static_loss.clone()
        if self._eager_full_steps < self.warmup_steps:
            self._eager_full_steps += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss = self._eager(features, labels)
            torch.cuda.current_stream().wait_stream(side)
            loss.record_stream(torch.cuda.current_stream())
            return loss
        return self._capture(features, labels)
