"""`train()`: the feature-extraction job, fast, resumable, and distributed when launched so.

The fast path, each part measured on an H200 (see DESIGN.md): the subset stays
on the device as uint8 and is resized there; the frozen backbone runs in
inference mode (no autograd graph, no saved activations) with its eval-mode
BatchNorms folded into the convolutions, and only the head runs forward and
backward; optional bf16 autocast and, on a GPU, channels_last and a fused
Adam. `"cached"` mode goes further: the backbone runs once per image, not
once per image per epoch.
"""

import contextlib
import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch import nn as tnn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .._distributed import DistributedContext, init_distributed, resolve_device
from .._freeze import Finetuner, parameter_summary, unfreeze
from .._frozen_step import FrozenForward, HeadStep, fold_frozen_backbone
from .._precision import autocast
from .._sync import synchronize
from .._typing import Labels
from ..data import ImageSplit, StreamedSplit, epoch_order, iterate_batches, load_data
from ..features import FeatureCache, compute_features
from ..models import ResNet, get_resnet_for_feature_extraction, resolve_weights
from ..plot import plot_history
from ._args import TrainingArgs
from ._checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    CheckpointError,
    capture_rng,
    check_checkpoint_space,
    check_resumable,
    frozen_fingerprint,
    history_from,
    load_checkpoint,
    restore_rng,
    restore_state,
    save_checkpoint,
    seed_rng,
    trainable_state,
)
from ._results import TrainHistory, TrainResult
from ._rundir import OutputDirectoryError, claim_output_dir

HISTORY_NAME = "history.json"
"""File name of the history JSON inside `TrainingArgs.output_dir`."""

PLOT_NAME = "training.png"
"""File name of the loss and accuracy figure inside `TrainingArgs.output_dir`."""

_SYNC_EVERY = 20  # steps between reads of the loss on the host (each read waits for the GPU)
_EVAL_BATCH = 256


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; training stopped at the named step.

    Example:
        >>> issubclass(NonFiniteLossError, ArithmeticError)
        True
    """


def build_model(args: TrainingArgs) -> ResNet:
    """The model `train(args)` starts from, seeded: `args.arch`, new head, backbone frozen or not.

    Seeds every generator with `args.seed` first (`seed_rng`), so the head's (and a random
    backbone's) initialisation is the same in every process and every run.

    Args:
        args: the settings (`arch`, `weights`, `n_classes` (`None`: 10), `bn`, `mode`, `seed`).

    Returns:
        The model on the CPU: backbone frozen with BatchNorm policy `args.bn`
        and only `fc` trainable, or everything trainable for `mode="full"`.

    Example:
        >>> model = build_model(TrainingArgs(weights=None, mode="full"))
        >>> all(p.requires_grad for p in model.parameters())
        True
    """
    seed_rng(args.seed)
    model = get_resnet_for_feature_extraction(
        num_classes=args.n_classes or 10, weights=args.weights, arch=args.arch, bn=args.bn
    )
    if args.mode == "full":
        unfreeze(model)
    return model


def load_job_split(args: TrainingArgs, split: str) -> ImageSplit | StreamedSplit:
    """One split of the job's data as `args` describes it (see `resfx.data.load_data`).

    Example:
        >>> len(load_job_split(TrainingArgs(data="synthetic", testset_size=8), "test"))
        8
    """
    return load_data(
        args.data,
        split,
        args.trainset_size if split == "train" else args.testset_size,
        root=args.data_root,
        download=args.download,
        seed=args.seed,
        subset=args.subset,
        test_fraction=args.test_fraction,
        store_size=args.store_size,
        fallback_store_size=args.image_size,
        memory_budget_mib=args.memory_budget_mib,
        on_bad_image=args.on_bad_image,
    )


def resolve_n_classes(args: TrainingArgs, split: ImageSplit | StreamedSplit) -> TrainingArgs:
    """`args` with `n_classes` set from the data when it is `None` (10 without class names).

    Raises:
        ValueError: an explicit `n_classes` that differs from the data's class names.

    Example:
        >>> from resfx.data import load_split
        >>> resolve_n_classes(TrainingArgs(data="synthetic"), load_split("synthetic", "test", 2)).n_classes
        10
    """
    found = len(split.classes) if split.classes else None
    if args.n_classes is not None and found is not None and args.n_classes != found:
        raise ValueError(
            f"n_classes={args.n_classes} but {split.dataset} has {found} classes "
            f"{list(split.classes)}; leave n_classes out (--n-classes none) to take them "
            f"from the data"
        )
    if args.n_classes is not None:
        return args
    return dataclasses.replace(args, n_classes=found or 10)


def check_labels(split: ImageSplit | StreamedSplit, n_classes: int) -> None:
    """Check that every label of `split` is a valid class index for `n_classes` outputs.

    Raises:
        ValueError: a label is negative or `>= n_classes`.

    Example:
        >>> from resfx.data import load_split
        >>> check_labels(load_split("synthetic", "test", 50), n_classes=2)
        Traceback (most recent call last):
        ...
        ValueError: the test subset has labels from 0 to 9, outside the 2 classes of the head (n_classes=2); pass n_classes=10 or more
    """
    low, high = int(split.labels.min()), int(split.labels.max())
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"the {split.split} subset has labels from {low} to {high}, outside the "
            f"{n_classes} classes of the head (n_classes={n_classes}); pass "
            f"n_classes={high + 1} or more"
        )


def _finetuner(
    args: TrainingArgs, model: tnn.Module, steps_per_epoch: int, on_gpu: bool
) -> Finetuner:
    """The optimizer, its groups and the learning-rate schedule of `train(args)`, in one object.

    Every mode goes through it: `"head"`/`"cached"` train the head alone,
    `"full"` every stage from the start, `"partial"` the stages after
    `freeze_to` or those of `stages` from their epochs (see `TrainingArgs.stage_schedule`).
    """
    lr, decay = args.learning_rate, args.weight_decay

    def build(groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        if args.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=0.9)
        kind = torch.optim.Adam if args.optimizer == "adam" else torch.optim.AdamW
        return kind(groups, lr=lr, fused=on_gpu)

    return Finetuner(
        model,
        args.stage_schedule(),
        epochs=args.epochs,
        steps_per_epoch=steps_per_epoch,
        lr=lr,
        lr_decay=args.lr_decay,
        weight_decay=decay,
        optimizer=build,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        bn=args.bn,
    )


class _LossLog:
    """Losses kept on the device until read in one transfer (reads make the host wait)."""

    def __init__(self, context: DistributedContext) -> None:
        self.context = context
        self._losses: list[Tensor] = []
        self._counts: list[int] = []

    def record(self, loss: Tensor, count: int) -> None:
        self._losses.append(loss)
        self._counts.append(count)

    def flush(self) -> tuple[list[float], list[int]]:
        """Per-step losses averaged over processes, and examples per step over all processes."""
        if not self._losses:
            return [], []
        losses = torch.stack(self._losses).to(torch.float64)
        counts = torch.tensor(self._counts, dtype=torch.float64, device=losses.device)
        totals = self.context.all_reduce_sum(torch.stack([losses * counts, counts]))
        self._losses, self._counts = [], []
        return (totals[0] / totals[1]).tolist(), [int(n) for n in totals[1].tolist()]


class _SetupClock:
    """Seconds of each set-up phase, in order: a `mark` ends the phase that ran since the last.

    Marking waits for the device first, so a phase's queued GPU work counts in it.
    """

    def __init__(self) -> None:
        self.began = self.last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def mark(self, phase: str, device: torch.device | None = None) -> None:
        if device is not None:
            synchronize(device)
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self.last
        self.last = now


class _Run:
    """One training run's state; `train` builds it and calls `run`."""

    def __init__(
        self,
        args: TrainingArgs,
        context: DistributedContext,
        output: Path | None,
        data: tuple[ImageSplit | StreamedSplit, ImageSplit | StreamedSplit] | None,
    ) -> None:
        clock = _SetupClock()
        self.args = args
        self.context = context
        self.device = resolve_device(args.device, context)
        if args.weights is not None:
            resolve_weights(args.arch, args.weights)  # a typo fails now, not after loading the data
        clock.mark("device and weights name")
        self.output = output
        self.checkpoint_path = None if self.output is None else self.output / CHECKPOINT_NAME
        self.last_checkpoint: tuple[Path, int] | None = None
        if data is None:
            data = (load_job_split(args, "train"), load_job_split(args, "test"))
        self.args = args = resolve_n_classes(args, data[0])
        for split in data:
            check_labels(split, args.n_classes)
        clock.mark("data")
        self.train_split, self.test_split = (split.to(self.device) for split in data)
        clock.mark("data to device", self.device)
        model = build_model(args)
        clock.mark("model")
        self.frozen = "" if self.checkpoint_path is None else frozen_fingerprint(model)
        clock.mark("fingerprint")
        on_gpu = self.device.type == "cuda"
        self.memory_format = torch.channels_last if on_gpu else torch.contiguous_format
        # Running statistics never change under the "eval" policy, so the frozen forward may
        # run on a folded copy; other policies, and modes that train backbone stages, need
        # live BatchNorms.
        folds = args.mode in ("head", "cached") and args.bn == "eval"
        self.model = model.to(self.device, memory_format=self.memory_format)
        clock.mark("model to device", self.device)
        # Folded on the device: the copy and its float64 arithmetic are fast there.
        self.backbone = (
            fold_frozen_backbone(self.model, precision=args.precision) if folds else self.model
        )
        clock.mark("fold", self.device)
        # "head" runs the frozen forward every step: compiled when asked. "cached" runs it
        # once per image, eagerly: a compilation costs more than it saves on one pass.
        self.frozen_forward: FrozenForward | None = None
        if args.mode == "head":
            self.frozen_forward = FrozenForward(
                self.backbone.forward_features,
                mode=args.compile,
                batch_size=args.batch_size,
                precision=args.precision,
            )
        self.tuner = _finetuner(args, self.model, self._steps_per_epoch(), on_gpu)
        self.optimizer = self.tuner.optimizer
        staged = any(start > 0 for _, start in args.stage_schedule())
        if staged and context.world_size > 1:
            raise ValueError(
                f"a staged run (stages={args.stages!r}) changes what trains mid-run, which "
                f"DistributedDataParallel cannot follow; run it in one process, or start every "
                f"stage at epoch 0"
            )
        module = self.model if args.mode in ("full", "partial") else self.model.fc
        self.trainable: tnn.Module = module
        if context.world_size > 1:
            self.trainable = DistributedDataParallel(
                module, device_ids=[self.device.index] if on_gpu else None
            )
        # The head's step, replayed from a CUDA graph when compiling on a GPU; the rate
        # a graph replays must not change, and DDP's all-reduce is not captured.
        self.head_step = HeadStep(
            self.trainable,
            self.optimizer,
            graph=args.compile != "off" and context.world_size == 1,
            constant_lr=args.schedule == "constant" and args.warmup_epochs == 0,
        )
        if self.output is not None and context.is_main:
            check_checkpoint_space(self.output, self.model, self.optimizer)
        summary = parameter_summary(self.model)
        self.history = TrainHistory(
            mode=args.mode,
            dataset=self.train_split.dataset,
            device=str(self.device),
            args=args.to_dict(),
            trainable_parameters=summary.trainable,
            frozen_parameters=summary.frozen,
            world_size=context.world_size,
        )
        clock.mark("optimizer and summary", self.device)
        self.epoch, self.batch, self.step = 0, 0, 0
        self._resume()
        clock.mark("resume", self.device)
        if self.frozen_forward is not None and self.frozen_forward.compiled:
            size = args.image_size
            example = torch.zeros(args.batch_size, 3, size, size, device=self.device)
            self.frozen_forward.warm_up(example.contiguous(memory_format=self.memory_format))
            clock.mark("compile", self.device)
        self.train_features: Tensor | None = None
        self.test_features: Tensor | None = None
        if args.mode == "cached":
            self._cache_features()
            clock.mark("features", self.device)
        self.log = _LossLog(context)
        self.history.setup_seconds = clock.last - clock.began
        self.history.setup_phases = clock.phases

    def _steps_per_epoch(self) -> int:
        share = math.ceil(len(self.train_split) / self.context.world_size)
        return math.ceil(share / self.args.batch_size)

    def _resume(self) -> None:
        path = self.checkpoint_path  # a link that leads nowhere is a damaged checkpoint
        if not (self.args.resume and path and (path.is_symlink() or path.exists())):
            return
        checkpoint = load_checkpoint(self.checkpoint_path)
        check_resumable(checkpoint, self.args, self.model, world_size=self.context.world_size)
        if checkpoint.epoch > self.args.epochs:
            raise CheckpointError(
                f"the checkpoint has {checkpoint.epoch} epochs done but epochs={self.args.epochs}; "
                f"pass epochs={checkpoint.epoch} or more to continue it"
            )
        # The values first (only the head trains yet, so every saved tensor has its place),
        # then the Finetuner starts the stages that had started and those due now.
        restore_state(self.model, checkpoint.state)
        try:
            self.tuner.load_state_dict(checkpoint.optimizer)
        except ValueError as error:
            raise CheckpointError(f"{self.checkpoint_path}: {error}") from error
        restored = history_from(checkpoint)
        restored.device, restored.args = self.history.device, self.history.args
        self.history = restored
        self.epoch, self.batch, self.step = checkpoint.epoch, checkpoint.batch, checkpoint.step
        self.last_checkpoint = (self.checkpoint_path, checkpoint.step)
        restore_rng(checkpoint.rng)

    def _cache_features(self) -> None:
        began = time.perf_counter()
        args, context = self.args, self.context
        splits = (self.train_split, self.test_split)
        cache = None
        if args.feature_cache_dir is None:
            # Features kept by no directory die with the run, so a cache could never hit:
            # skip its keys (each hashes every backbone weight and every image).
            compute: Callable[..., Tensor] = functools.partial(compute_features, context=context)
        else:
            cache = FeatureCache(args.feature_cache_dir, write=context.is_main, context=context)
            compute = functools.partial(cache.features, bn=args.bn)
        self.train_features, self.test_features = (
            compute(
                self.backbone,
                split,
                image_size=args.image_size,
                batch_size=_EVAL_BATCH,
                precision=args.precision,
            )
            for split in splits
        )
        shares = (len(context.share(len(split), block=_EVAL_BATCH)) for split in splits)
        computed = sum(shares) if cache is None else cache.computed_images
        synchronize(self.device)
        self.history.feature_seconds = time.perf_counter() - began
        self.history.feature_images = computed

    def _batches(self, epoch: int, skip: int) -> Iterator[tuple[Tensor, Labels]]:
        args, context = self.args, self.context
        order = epoch_order(
            len(self.train_split),
            epoch=epoch,
            seed=args.seed,
            rank=context.rank,
            world_size=context.world_size,
        )
        if self.train_features is None:
            yield from iterate_batches(
                self.train_split,
                order,
                args.batch_size,
                image_size=args.image_size,
                skip_batches=skip,
            )
            return
        order = order.to(self.device)
        for start in range(skip * args.batch_size, len(order), args.batch_size):
            chosen = order[start : start + args.batch_size]
            yield self.train_features[chosen], self.train_split.labels[chosen]

    def _step(self, inputs: Tensor, labels: Labels) -> Tensor:
        if self.args.mode in ("head", "cached"):
            if self.frozen_forward is not None:
                inputs = self.frozen_forward(inputs.contiguous(memory_format=self.memory_format))
            loss = self.head_step(inputs, labels)
        else:
            with autocast(self.device, self.args.precision):
                logits = self.trainable(inputs.contiguous(memory_format=self.memory_format))
            loss = F.cross_entropy(logits.float(), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss = loss.detach()
        self.tuner.step()
        return loss

    def _evaluate(self) -> float:
        """Test accuracy; each process scores its share, the counts are summed over processes."""
        split, context = self.test_split, self.context
        share = torch.arange(context.rank, len(split), context.world_size)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        self.model.eval()
        # The head is scored as it trains: on float32 features, in float32, outside autocast.
        # no_grad, not inference_mode: the images stay normal tensors, as the compiled frozen
        # forward saw them when it was compiled (inference tensors would compile it again).
        with torch.no_grad():
            if self.test_features is None:
                for images, labels in iterate_batches(
                    split, share, _EVAL_BATCH, image_size=self.args.image_size
                ):
                    images = images.contiguous(memory_format=self.memory_format)
                    if self.frozen_forward is None:
                        with autocast(self.device, self.args.precision):
                            logits = self.model(images)
                    else:
                        logits = self.model.fc(self.frozen_forward(images))
                    correct += (logits.argmax(dim=1) == labels).sum()
            else:
                chosen = share.to(self.device)
                logits = self.model.fc(self.test_features[chosen])
                correct += (logits.argmax(dim=1) == split.labels[chosen]).sum()
        self.model.train()
        counts = torch.stack(
            [correct, torch.tensor(len(share), dtype=torch.float64, device=self.device)]
        )
        counts = self.context.all_reduce_sum(counts.clone())
        return float(counts[0] / counts[1])

    def _flush(self, epoch: int, bar: tqdm) -> None:
        losses, counts = self.log.flush()
        first = self.step - len(losses) + 1
        for offset, loss in enumerate(losses):
            if not math.isfinite(loss):
                kept = (
                    f"the last good checkpoint is {self.last_checkpoint[0]} (step "
                    f"{self.last_checkpoint[1]}); it was kept"
                    if self.last_checkpoint
                    else "no checkpoint was written (set output_dir to keep one)"
                )
                raise NonFiniteLossError(
                    f"the training loss became {loss} at step {first + offset} (epoch {epoch + 1}); "
                    f"training stopped and {kept}. Lower learning_rate (now "
                    f"{self.args.learning_rate}) or check the data for NaN or infinite values"
                )
        seen = self.history.examples_seen[-1] if self.history.examples_seen else 0
        for loss, count in zip(losses, counts, strict=True):
            seen += count
            self.history.loss_list.append(loss)
            self.history.examples_seen.append(seen)
        if losses:
            bar.set_postfix(loss=f"{losses[-1]:.4f}")

    def _save(self) -> None:
        if self.checkpoint_path is None:
            return
        if self.context.is_main:
            checkpoint = Checkpoint(
                args=self.args.to_dict(),
                state=trainable_state(self.model),
                optimizer=self.tuner.state_dict(),
                epoch=self.epoch,
                batch=self.batch,
                step=self.step,
                history=self.history.to_dict(),
                rng=capture_rng(),
                frozen=self.frozen,
            )
            save_checkpoint(checkpoint, self.checkpoint_path)
        self.last_checkpoint = (self.checkpoint_path, self.step)

    def _run_epoch(self) -> None:
        args = self.args
        began = time.perf_counter()
        steps = self._steps_per_epoch()
        show = sys.stderr.isatty() if args.progress is None else args.progress
        bar = tqdm(
            total=steps,
            initial=self.batch,
            desc=f"epoch {self.epoch + 1}/{args.epochs} ({args.mode})",
            disable=not (show and self.context.is_main),
            leave=False,
        )
        self.model.train()
        for inputs, labels in self._batches(self.epoch, self.batch):
            self.log.record(self._step(inputs, labels), len(labels))
            self.step += 1
            self.batch += 1
            bar.update()
            checkpoint_due = (
                args.checkpoint_every > 0
                and self.step % args.checkpoint_every == 0
                and self.batch < steps
            )
            if checkpoint_due or self.step % _SYNC_EVERY == 0:
                self._flush(self.epoch, bar)
            if checkpoint_due:
                self._save()
        self._flush(self.epoch, bar)
        bar.close()
        self.tuner.epoch_end()
        accuracy = self._evaluate()
        synchronize(self.device)
        history = self.history
        history.accuracy_list.append(accuracy)
        history.epoch_examples.append(history.examples_seen[-1])
        history.epoch_times.append(time.perf_counter() - began)
        self.epoch, self.batch = self.epoch + 1, 0
        self._save()

    def run(self) -> TrainResult:
        while self.epoch < self.args.epochs:
            self._run_epoch()
        if self.output is not None and self.context.is_main:
            self.history.save_json(self.output / HISTORY_NAME)
            plot_history(self.history, self.output / PLOT_NAME)
        return TrainResult(self.history, self.model)


def train(
    args: TrainingArgs,
    data: tuple[ImageSplit | StreamedSplit, ImageSplit | StreamedSplit] | None = None,
) -> TrainResult:
    """Train a new head on a frozen ResNet34 (or fine-tune all of it), as the seed did, faster.

    Loads the first `trainset_size` / `testset_size` examples, builds the
    model with [`build_model`][resfx.train.build_model], trains for `epochs`
    with Adam and cross-entropy, and tests after every epoch. With
    `output_dir` it checkpoints after every epoch (and every
    `checkpoint_every` steps), resumes with `resume=True`, and writes
    `history.json` and `training.png`. Under `torchrun --nproc-per-node N`
    each process trains on its share through DistributedDataParallel over the
    trainable module only, and every reported number is reduced over processes
    (in `"cached"` mode each process computes the features of its share of the
    subset and an all-gather gives each all of them, the same bits as one process
    computes; with `feature_cache_dir` only rank 0 writes them).

    Args:
        args: the settings; the defaults are the seed's job.
        data: your own `(train, test)` splits, e.g. from
            `resfx.data.from_dataset(my_dataset, "train")`; then `args.data`,
            the sizes and `subset` are not used.

    Returns:
        The result: `loss_list` (every step), `accuracy_list` (every epoch),
        `model`, timings; `loss_list, accuracy_list, model = train(args)` works.

    Raises:
        OutputDirectoryError: `output_dir` cannot be written, is in use by another run, or
            holds an earlier run and neither `resume` nor `overwrite` is set (checked first).
        ValueError: labels outside `n_classes`, subset larger than the data, CUDA missing.
        resfx.data.DatasetUnavailableError: CIFAR-10 missing and not downloadable.
        CheckpointError: `resume` with a checkpoint from other settings.
        NonFiniteLossError: the loss became NaN or infinite (the step is named;
            the last good checkpoint is kept).

    Example:
        >>> args = TrainingArgs(data="synthetic", weights=None, trainset_size=64,
        ...                     testset_size=32, epochs=1, batch_size=32, image_size=32,
        ...                     device="cpu")
        >>> loss_list, accuracy_list, model = train(args)
        >>> len(loss_list), len(accuracy_list)
        (2, 1)
    """
    context = init_distributed(args.device)
    try:
        with _claimed_output(args, context) as output:
            return _Run(args, context, output, data).run()
    finally:
        context.close()


@contextlib.contextmanager
def _claimed_output(args: TrainingArgs, context: DistributedContext) -> Iterator[Path | None]:
    """Rank 0 claims `output_dir` for the run; every rank learns whether it could."""
    if args.output_dir is None:
        yield None
        return
    with contextlib.ExitStack() as stack:
        failure: OutputDirectoryError | None = None
        output = Path(args.output_dir).resolve()
        if context.is_main:
            try:
                output = stack.enter_context(
                    claim_output_dir(
                        args.output_dir,
                        run_files=(CHECKPOINT_NAME, HISTORY_NAME, PLOT_NAME),
                        resume=args.resume,
                        overwrite=args.overwrite,
                    )
                )
            except OutputDirectoryError as error:
                failure = error
        if context.world_size > 1:
            device = resolve_device(args.device, context)
            if context.any_of([failure is not None], device)[0] and failure is None:
                failure = OutputDirectoryError(
                    f"rank 0 could not claim output_dir {str(output)!r}; its message says why"
                )
        if failure is not None:
            raise failure
        yield output
