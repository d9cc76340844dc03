"""`train()`: set a run up, build its mode's job, and run the loop every mode shares.

A mode (`_head.HeadJob`, `_cached.CachedJob`, `_finetune.PartialJob`/`FullJob`, behind
`_job.Job`) knows how to make and step a batch and how to score the test split. This
module keeps everything else: the run folder, the data and the model it starts from, the
set-up timings, resume, the epochs of steps with their deferred loss reads, checkpoints,
the history and the figure; under `torchrun` each process trains on its share and every
number is reduced over processes.
"""

import contextlib
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._device_sync import synchronize
from .._distributed import DistributedContext, init_distributed, resolve_device
from .._freeze import parameter_summary, unfreeze
from ..data import ImageSplit, StreamedSplit, iterate_batches, load_data
from ..features import FeatureSource
from ..models import ResNet, get_resnet_for_feature_extraction, resolve_weights
from ..plot import plot_history
from ._args import Mode, TrainingArgs
from ._cached import CachedJob
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
    save_checkpoint,
    seed_rng,
)
from ._finetune import FullJob, PartialJob
from ._head import HeadJob
from ._job import Job, JobSetup, SetupClock, StepResult
from ._results import TrainHistory, TrainResult
from ._rundir import OutputDirectoryError, claim_output_dir
from ._store_input import check_store_backbone, store_inputs

HISTORY_NAME = "history.json"
"""File name of the history JSON inside `TrainingArgs.output_dir`."""

PLOT_NAME = "training.png"
"""File name of the loss and accuracy figure inside `TrainingArgs.output_dir`."""

_SYNC_EVERY = 20  # steps between reads of the loss on the host (each read waits for the GPU)
_EVAL_BATCH = 256

_JOBS: dict[Mode, type[HeadJob | PartialJob | FullJob]] = {
    "head": HeadJob,
    "partial": PartialJob,
    "full": FullJob,
}
"""The job of each mode built from `(setup, model)` alone (`"cached"` also takes sources)."""

_LOG = logging.getLogger("resfx.train")


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
            f"{list(split.classes)}; leave n_classes out (--num-classes none) to take them "
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


@dataclasses.dataclass
class _Steps:
    """Steps' numbers as plain values: per step, the loss averaged over processes, and the
    examples, the correct predictions (both over all processes) and the learning rate."""

    losses: list[float]
    counts: list[int]
    correct: list[int]
    rates: list[float]


class _StepLog:
    """Steps' numbers kept on the device until read in one transfer (reads make the host wait)."""

    def __init__(self, context: DistributedContext) -> None:
        self.context = context
        self._losses: list[Tensor] = []
        self._correct: list[Tensor] = []
        self._counts: list[int] = []
        self._rates: list[float] = []

    def record(self, step: StepResult, count: int, rate: float) -> None:
        self._losses.append(step.loss)
        self._correct.append(step.correct)
        self._counts.append(count)
        self._rates.append(rate)

    def flush(self) -> _Steps:
        """The steps recorded since the last flush, reduced over processes."""
        if not self._losses:
            return _Steps([], [], [], [])
        losses = torch.stack(self._losses).to(torch.float64)
        correct = torch.stack(self._correct).to(losses)
        counts = torch.tensor(self._counts, dtype=torch.float64, device=losses.device)
        totals = self.context.all_reduce_sum(torch.stack([losses * counts, counts, correct]))
        steps = _Steps(
            (totals[0] / totals[1]).tolist(),
            [int(n) for n in totals[1].tolist()],
            [int(n) for n in totals[2].tolist()],
            self._rates,
        )
        self._losses, self._correct, self._counts, self._rates = [], [], [], []
        return steps


class TrainingLoop:
    """The loop every mode shares: epochs of steps, loss reads, tests, checkpoints and resume.

    Args:
        job: the mode (see `Job`).
        setup: what the mode was built from.
        history: the record the loop extends (replaced by the checkpoint's on resume).
        checkpoint_path: where checkpoints go; `None` writes none.
        frozen: `frozen_fingerprint` of the model, stored in every checkpoint.
    """

    def __init__(
        self,
        job: Job,
        setup: JobSetup,
        history: TrainHistory,
        checkpoint_path: Path | None,
        frozen: str,
    ) -> None:
        self.job, self.setup, self.history = job, setup, history
        self.args = setup.args
        self.checkpoint_path, self.frozen = checkpoint_path, frozen
        self.last_checkpoint: tuple[Path, int] | None = None
        self.epoch, self.batch, self.step = 0, 0, 0
        self.log = _StepLog(setup.context)

    def resume(self) -> None:
        """Continue from the checkpoint in `output_dir` when `resume` is set and there is one."""
        path, args = self.checkpoint_path, self.args
        # a link that leads nowhere (a loop) is a damaged checkpoint, not a missing one
        if not (args.resume and path and (path.is_symlink() or path.exists())):
            return
        checkpoint = load_checkpoint(path)
        check_resumable(checkpoint, args, self.job.model, world_size=self.setup.context.world_size)
        if checkpoint.epoch > args.epochs:
            raise CheckpointError(
                f"the checkpoint has {checkpoint.epoch} epochs done but epochs={args.epochs}; "
                f"pass epochs={checkpoint.epoch} or more to continue it"
            )
        try:
            self.job.load_state_dict({"state": checkpoint.state, "optimizer": checkpoint.optimizer})
        except CheckpointError:
            raise
        except ValueError as error:
            raise CheckpointError(f"{path}: {error}") from error
        restored = history_from(checkpoint)
        restored.device, restored.args = self.history.device, self.history.args
        self.history = restored
        self.epoch, self.batch, self.step = checkpoint.epoch, checkpoint.batch, checkpoint.step
        self.last_checkpoint = (path, checkpoint.step)
        restore_rng(checkpoint.rng)
        if self.setup.context.is_main:
            _LOG.info("resumed %s at %s", path, checkpoint_progress(checkpoint))

    def _flush(self, epoch: int, bar: tqdm) -> None:
        steps, history = self.log.flush(), self.history
        _refuse_non_finite(steps.losses, self.step - len(steps.losses) + 1, epoch, self)
        seen = history.examples_seen[-1] if history.examples_seen else 0
        for count in steps.counts:
            seen += count
            history.examples_seen.append(seen)
        history.loss_list += steps.losses
        history.train_correct_list += steps.correct
        history.lr_list += steps.rates
        if steps.losses:
            bar.set_postfix(loss=f"{steps.losses[-1]:.4f}")

    def _save(self) -> None:
        if self.checkpoint_path is None:
            return
        if self.setup.context.is_main:
            trained = self.job.state_dict()
            checkpoint = Checkpoint(
                args=self.args.to_dict(),
                state=trained["state"],
                optimizer=trained["optimizer"],
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
        steps = self.setup.steps_per_epoch()
        show = sys.stderr.isatty() if args.progress is None else args.progress
        bar = tqdm(
            total=steps,
            initial=self.batch,
            desc=f"epoch {self.epoch + 1}/{args.epochs} ({args.mode})",
            disable=not (show and self.setup.context.is_main),
            leave=False,
        )
        first_step = len(self.history.loss_list) - self.batch  # a resumed epoch began earlier
        self.job.model.train()
        for inputs, labels in self.job.batches(self.epoch, self.batch):
            rate = self.job.tuner.learning_rates()[0]
            self.log.record(self.job.step(inputs, labels), len(labels), rate)
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
        self.job.tuner.epoch_end()
        score = self.job.evaluate()
        synchronize(self.setup.device)
        history = self.history
        loss, train_accuracy = epoch_training_numbers(history, first_step)
        history.accuracy_list.append(score.accuracy)
        history.test_loss_list.append(score.loss)
        history.train_accuracy_list.append(train_accuracy)
        history.epoch_examples.append(history.examples_seen[-1])
        history.epoch_times.append(time.perf_counter() - began)
        self.epoch, self.batch = self.epoch + 1, 0
        if self.setup.context.is_main:
            _log_epoch(self, loss, train_accuracy)
        self._save()

    def run(self, output: Path | None) -> TrainResult:
        """Train the epochs left; write the history and plot into `output` at the end."""
        if self.setup.context.is_main:
            _log_start(self)
        while self.epoch < self.args.epochs:
            self._run_epoch()
        if output is not None and self.setup.context.is_main:
            self.history.save_json(output / HISTORY_NAME)
            plot_history(self.history, output / PLOT_NAME)
        return TrainResult(self.history, self.job.model)


def _log_start(loop: TrainingLoop) -> None:
    """The line before the first epoch: what trains, where, on how much data, from which epoch."""
    setup, args = loop.setup, loop.args
    fields = {
        "mode": args.mode,
        "epochs": args.epochs,
        "first_epoch": loop.epoch + 1,
        "steps_per_epoch": setup.steps_per_epoch(),
        "train_examples": len(setup.train_split),
        "test_examples": len(setup.test_split),
        "device": str(setup.device),
        "processes": setup.context.world_size,
        "setup_seconds": loop.history.setup_seconds,
    }
    _LOG.info(
        "training %s mode on %s: epochs %d to %d of %d steps, %d train and %d test examples "
        "(set up in %.1f s)",
        args.mode,
        fields["device"],
        loop.epoch + 1,
        args.epochs,
        fields["steps_per_epoch"],
        fields["train_examples"],
        fields["test_examples"],
        loop.history.setup_seconds,
        extra=fields,
    )


def _log_epoch(loop: TrainingLoop, loss: float, train_accuracy: float) -> None:
    """The line of the epoch just done: training loss and accuracy, test loss and accuracy,
    the learning rate of its last step, and its seconds."""
    history, args = loop.history, loop.args
    fields = {
        "epoch": loop.epoch,
        "epochs": args.epochs,
        "mode": args.mode,
        "step": loop.step,
        "loss": loss,
        "train_acc": train_accuracy,
        "test_loss": history.test_loss_list[-1],
        "test_acc": history.accuracy_list[-1],
        "lr": history.lr_list[-1],
        "seconds": history.epoch_times[-1],
    }
    _LOG.info(
        "epoch %d/%d (%s): loss %.4f, train accuracy %.2f%%, test loss %.4f, "
        "test accuracy %.2f%%, lr %.3g, %.2f s",
        loop.epoch,
        args.epochs,
        args.mode,
        loss,
        100 * train_accuracy,
        fields["test_loss"],
        100 * fields["test_acc"],
        fields["lr"],
        fields["seconds"],
        extra=fields,
    )


def epoch_training_numbers(history: TrainHistory, first_step: int) -> tuple[float, float]:
    """The mean training loss and the training accuracy of the epoch whose first step is
    `first_step` (an index into `history.loss_list`) and whose last is the last recorded.

    Both weigh each step by its examples. The accuracy counts the steps that have
    `train_correct_list` entries (all of them, but for a run resumed from a history
    written before that list existed). `nan` when there is nothing to count.

    Args:
        history: the run's history, up to the end of the epoch.
        first_step: the index of the epoch's first step.

    Returns:
        `(loss, accuracy)`.

    Example:
        >>> h = TrainHistory("head", "synthetic", "cpu", loss_list=[3.0, 2.0, 1.0],
        ...                  examples_seen=[4, 8, 10], train_correct_list=[1, 2, 2])
        >>> epoch_training_numbers(h, first_step=1)
        (1.6666666666666667, 0.6666666666666666)
    """
    before = history.examples_seen[first_step - 1] if first_step > 0 else 0
    counts = [end - start for start, end in pairwise([before, *history.examples_seen[first_step:]])]
    losses = history.loss_list[first_step:]
    examples = sum(counts)
    loss = (
        sum(x * n for x, n in zip(losses, counts, strict=True)) / examples if examples else math.nan
    )
    counted = min(len(counts), len(history.train_correct_list))
    counted_examples = sum(counts[len(counts) - counted :])
    correct = sum(history.train_correct_list[len(history.train_correct_list) - counted :])
    return loss, correct / counted_examples if counted_examples else math.nan


def _refuse_non_finite(losses: list[float], first: int, epoch: int, loop: TrainingLoop) -> None:
    """Stop at the first non-finite loss, naming its step and the checkpoint kept."""
    for offset, loss in enumerate(losses):
        if math.isfinite(loss):
            continue
        kept = (
            f"the last good checkpoint is {loop.last_checkpoint[0]} (step "
            f"{loop.last_checkpoint[1]}); it was kept"
            if loop.last_checkpoint
            else "no checkpoint was written (set output_dir to keep one)"
        )
        raise NonFiniteLossError(
            f"the training loss became {loss} at step {first + offset} (epoch {epoch + 1}); "
            f"training stopped and {kept}. Lower learning_rate (now "
            f"{loop.args.learning_rate}) or check the data for NaN or infinite values"
        )


def checkpoint_progress(checkpoint: Checkpoint) -> str:
    """Where a checkpoint stands in its run, in words: the step, and the epoch and batch.

    Example:
        >>> c = Checkpoint({}, {}, {}, epoch=1, batch=2, step=5, history={}, rng={}, frozen="")
        >>> checkpoint_progress(c)
        'step 5 (epoch 2, 2 batches into it)'
        >>> checkpoint_progress(Checkpoint({}, {}, {}, 2, 0, 6, {}, {}, ""))
        'step 6 (the end of epoch 2)'
    """
    if checkpoint.batch == 0:
        return f"step {checkpoint.step} (the end of epoch {checkpoint.epoch})"
    return (
        f"step {checkpoint.step} (epoch {checkpoint.epoch + 1}, {checkpoint.batch} "
        f"batch{'es' if checkpoint.batch > 1 else ''} into it)"
    )


def _job_for(
    setup: JobSetup, model: ResNet, features: tuple[FeatureSource, FeatureSource] | None
) -> Job:
    mode = setup.args.mode
    if mode == "cached":
        return CachedJob(setup, model, features)
    return _JOBS[mode](setup, model)


def _load_splits(
    args: TrainingArgs,
    data: tuple[ImageSplit | StreamedSplit, ImageSplit | StreamedSplit] | None,
) -> tuple[TrainingArgs, tuple[ImageSplit | StreamedSplit, ImageSplit | StreamedSplit]]:
    if data is None:
        data = (load_job_split(args, "train"), load_job_split(args, "test"))
    args = resolve_n_classes(args, data[0])
    for split in data:
        check_labels(split, args.n_classes or 10)
    return args, data


def _start(
    args: TrainingArgs,
    context: DistributedContext,
    output: Path | None,
    data: tuple[ImageSplit | StreamedSplit, ImageSplit | StreamedSplit] | None,
    features: tuple[FeatureSource, FeatureSource] | None,
    store_fingerprint: str | None = None,
) -> TrainingLoop:
    """Set a run up, each phase timed: data, model, the mode's job, resume, the mode's last work."""
    clock = SetupClock()
    device = resolve_device(args.device, context)
    if args.weights is not None:
        resolve_weights(args.arch, args.weights)  # a typo fails now, not after loading the data
    clock.mark("device and weights name")
    args, data = _load_splits(args, data)
    clock.mark("data")
    train_split, test_split = (split.to(device) for split in data)
    clock.mark("data to device", device)
    model = build_model(args)
    if store_fingerprint is not None and args.features is not None:
        check_store_backbone(model, store_fingerprint, args.features)
    clock.mark("model")
    checkpoint_path = None if output is None else output / CHECKPOINT_NAME
    frozen = "" if checkpoint_path is None else frozen_fingerprint(model)
    clock.mark("fingerprint")
    setup = JobSetup(
        args, context, device, train_split, test_split, iterate_batches, _EVAL_BATCH, clock
    )
    job = _job_for(setup, model, features)
    if output is not None and context.is_main:
        check_checkpoint_space(output, job.model, job.tuner.optimizer)
    summary = parameter_summary(job.model)
    history = TrainHistory(
        mode=args.mode,
        dataset=train_split.dataset,
        device=str(device),
        args=args.to_dict(),
        trainable_parameters=summary.trainable,
        frozen_parameters=summary.frozen,
        world_size=context.world_size,
    )
    clock.mark("optimizer and summary", device)
    loop = TrainingLoop(job, setup, history, checkpoint_path, frozen)
    loop.resume()
    clock.mark("resume", device)
    job.prepare()
    loop.history.feature_seconds, loop.history.feature_images = (
        job.feature_seconds,
        job.feature_images,
    )
    loop.history.setup_seconds = clock.last - clock.began
    loop.history.setup_phases = clock.phases
    return loop


def train(
    args: TrainingArgs,
    data: tuple[ImageSplit | StreamedSplit, ImageSplit | StreamedSplit] | None = None,
    *,
    features: tuple[FeatureSource, FeatureSource] | None = None,
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
        features: in `"cached"` mode, the `(train, test)` features of the splits'
            examples in their order (any `resfx.features.FeatureSource`, e.g. a
            feature store's), read a batch at a time instead of computed.

    Returns:
        The result: `loss_list` (every step), `accuracy_list` (every epoch),
            `model`, timings; `loss_list, accuracy_list, model = train(args)` works.

    Raises:
        OutputDirectoryError: `output_dir` cannot be written, is in use by another run, or
            holds an earlier run and neither `resume` nor `overwrite` is set (checked first).
        ValueError: labels outside `n_classes`, subset larger than the data, CUDA missing,
            `features` outside `"cached"` mode or not matching the splits.
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
    if features is not None and args.mode != "cached":
        raise ValueError(
            f"features are read by mode='cached' only (got mode={args.mode!r}); pass mode='cached'"
        )
    store_fingerprint = None
    if args.features is not None:
        if data is not None or features is not None:
            raise ValueError(
                f"args.features reads the feature store {args.features!r}; pass no data or "
                f"features arguments with it"
            )
        data, features, store_fingerprint = store_inputs(args.features, args.arch)
    context = init_distributed(args.device)
    try:
        with _claimed_output(args, context) as output:
            loop = _start(args, context, output, data, features, store_fingerprint)
            return loop.run(output)
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
