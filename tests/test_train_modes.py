"""The job modes behind the shared loop: results pinned to the one-class loop they replaced,
features read through a `FeatureSource`, and the settings each mode refuses."""

import dataclasses
import hashlib
import os
import shlex
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import resfx.train._loop
from resfx._freeze import freeze, unfreeze
from resfx._frozen_step import fold_frozen_backbone
from resfx.cli import build_parser, main, ordinary_error_message, resume_command
from resfx.features import TensorFeatures, compute_features, tensor_checksum
from resfx.models import ResNet, ResNetConfig
from resfx.nn import Linear
from resfx.train import TrainHistory, TrainingArgs, load_checkpoint, train
from resfx.train._loop import load_job_split

PINNED_SETTINGS: dict[str, Any] = {
    "data": "synthetic",
    "weights": None,
    "trainset_size": 40,
    "testset_size": 32,
    "batch_size": 16,
    "epochs": 2,
    "image_size": 16,
    "device": "cpu",
    "progress": False,
    "checkpoint_every": 2,
    "learning_rate": 0.03,
}

PINNED: dict[str, tuple[dict[str, Any], str, list[str], str]] = {
    "head": (
        {"mode": "head"},
        "0de72589c1c0a44a",
        ["0x1.0000000000000p-3", "0x1.0000000000000p-4"],
        "994a431bf554fd07",
    ),
    "head-bn-train": (
        {"mode": "head", "bn": "train", "schedule": "cosine"},
        "ce25e73ef1103451",
        ["0x1.0000000000000p-3", "0x1.0000000000000p-3"],
        "2348304e2910867e",
    ),
    "cached": (
        {"mode": "cached"},
        "0de72589c1c0a44a",
        ["0x1.0000000000000p-3", "0x1.0000000000000p-4"],
        "994a431bf554fd07",
    ),
    "partial": (
        {"mode": "partial", "stages": "head:0,layer4:1", "optimizer": "adamw", "weight_decay": 0.1},
        "5695c38f5e117c86",
        ["0x1.0000000000000p-3", "0x1.0000000000000p-3"],
        "da8d697120ffd264",
    ),
    "full": (
        {"mode": "full", "optimizer": "sgd", "bn": "train"},
        "025eb7f289876941",
        ["0x1.0000000000000p-5", "0x1.0000000000000p-3"],
        "08f2e0140c8573d2",
    ),
}
"""Per case: settings, then digests of the losses, the accuracies and the final checkpoint
(state, optimizer, torch's generator, position), recorded from the one `_Run` class this
package had before its modes were split out (main at ae35d01; torch 2.14.1, x86-64 AMD EPYC,
one thread). Other kernels (another torch, CPU or BLAS) may round differently: then record
them again from ae35d01's code, as both gave these same digests here."""


def tiny_model(args: TrainingArgs) -> ResNet:
    """`build_model`'s contract on a width-4 ResNet: seeded, frozen but the head, or all trains."""
    torch.manual_seed(args.seed)
    model = freeze(ResNet(ResNetConfig(width=4)), bn=args.bn)
    model.fc = Linear(model.config.feature_dim, args.n_classes)
    model.config = dataclasses.replace(model.config, num_classes=args.n_classes)
    return unfreeze(model) if args.mode == "full" else model


@pytest.fixture
def tiny_models(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(resfx.train._loop, "build_model", tiny_model)
    monkeypatch.setattr(resfx.train._loop, "plot_history", lambda history, path: path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as when recorded: the same kernels, so the same bits
    yield
    torch.set_num_threads(threads)


def pinned(**changes: Any) -> TrainingArgs:
    return TrainingArgs(**{**PINNED_SETTINGS, **changes})


@pytest.mark.parametrize("case", list(PINNED))
def test_every_mode_gives_the_bits_the_one_class_loop_gave(
    case: str, tmp_path: Path, tiny_models: None
) -> None:
    changes, losses, accuracies, final = PINNED[case]
    result = train(pinned(**changes, output_dir=str(tmp_path)))
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    digest = tensor_checksum(
        {
            "state": saved.state,
            "optimizer": saved.optimizer,
            "rng": saved.rng["torch"],
            "position": [saved.epoch, saved.batch, saved.step],
        }
    )
    written = repr([float.hex(loss) for loss in result.loss_list]).encode()
    assert hashlib.sha256(written).hexdigest()[:16] == losses
    assert [float.hex(a) for a in result.accuracy_list] == accuracies
    assert digest[:16] == final


class CountingSource:
    """A `FeatureSource` that records the size of every read."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.inner = TensorFeatures(features, labels)
        self.reads: list[int] = []

    @property
    def labels(self) -> torch.Tensor:
        return self.inner.labels

    @property
    def width(self) -> int:
        return self.inner.width

    def __len__(self) -> int:
        return len(self.inner)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        self.reads.append(len(index))
        return self.inner.rows(index)


def _sources(args: TrainingArgs) -> tuple[CountingSource, CountingSource]:
    """The features the cached mode computes, computed here: folded backbone, in split order."""
    model = tiny_model(dataclasses.replace(args, n_classes=10))
    backbone = fold_frozen_backbone(model, precision="fp32")
    splits = [load_job_split(args, split) for split in ("train", "test")]
    return tuple(
        CountingSource(compute_features(backbone, split, image_size=args.image_size), split.labels)
        for split in splits
    )


def test_the_cached_mode_reads_given_features_a_batch_at_a_time_with_the_same_bits(
    tiny_models: None,
) -> None:
    args = pinned(mode="cached", checkpoint_every=0)
    computed = train(args)
    given = _sources(args)
    read = train(args, features=given)
    assert read.loss_list == computed.loss_list
    assert read.accuracy_list == computed.accuracy_list
    assert torch.equal(read.model.fc.weight, computed.model.fc.weight)
    train_reads, test_reads = (source.reads for source in given)
    assert train_reads == [16, 16, 8] * 2  # one read per step, 40 rows in batches of 16
    assert sum(test_reads) == 2 * 32 and max(test_reads) <= 256
    assert read.history.feature_images == 0 and "features" not in read.history.setup_phases


def test_features_that_do_not_fit_the_run_are_refused(tiny_models: None) -> None:
    args = pinned(mode="cached", checkpoint_every=0)
    train_features, test_features = _sources(args)
    with pytest.raises(ValueError, match="read by mode='cached' only .*got mode='head'"):
        train(pinned(checkpoint_every=0), features=(train_features, test_features))
    with pytest.raises(
        ValueError, match="train features have 32 rows of 32, where the split has 40"
    ):
        train(args, features=(test_features, test_features))
    shuffled = CountingSource(train_features.inner.features, train_features.labels.roll(1))
    with pytest.raises(ValueError, match="train features' labels differ from the train split's"):
        train(args, features=(shuffled, test_features))


TINY_FLAGS = [
    "train",
    *("--data", "synthetic", "--weights", "none", "--trainset-size", "48"),
    *("--testset-size", "16", "--batch-size", "16", "--image-size", "16"),
    *("--device", "cpu", "--no-progress", "--epochs", "2"),
]


def test_a_stage_that_starts_after_the_last_epoch_is_named_in_a_warning(
    tiny_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22 item 10: layer4 never unfroze, and nothing said so."""
    flags = [*TINY_FLAGS, "--mode", "partial", "--stages", "head:0,layer4:5", "--epochs", "1"]
    assert main([*flags, "--output-dir", "none"]) == 0
    err = capsys.readouterr().err
    assert (
        "resfx train: warning: stages='head:0,layer4:5': layer4 (from epoch 5) will not train in "
        "this run, whose epochs are 0 to 0 (epochs=1); pass epochs=6 or more" in err
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(pinned(mode="partial", stages="head:0,layer4:1", checkpoint_every=0))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--weight-decay", "1e308"], "weight_decay must be at most 3.403e+38"),
        (["--learning-rate", "1e39"], "give head a learning rate of about 1e39"),
        (["--learning-rate", "1e-300"], "give head a learning rate of about 1e-300"),
        (["--warmup-epochs", "1e308"], "warmup_epochs must be at most 1000000"),
        (
            ["--mode", "partial", "--freeze-to", "stem", "--lr-decay", "1e30"],
            "give layer3 a learning rate of about 1e57",
        ),
    ],
)
def test_settings_that_overflow_the_optimizer_are_one_line_errors_up_front(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22 item 18: `--weight-decay 1e308` was a raw RuntimeError from `optimizer.step`."""
    with pytest.raises(SystemExit) as exited:
        main([*TINY_FLAGS, *flags, "--output-dir", "none"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err
    assert len(err.strip().splitlines()[-1]) > 0 and "Traceback" not in err


def test_an_overflow_inside_torch_still_gets_one_line() -> None:
    error = RuntimeError("value cannot be converted to type float without overflow")
    assert ordinary_error_message(error) == (
        "a setting overflowed float32 in the optimizer (value cannot be converted to type float "
        "without overflow); lower --learning-rate or --weight-decay"
    )


def test_a_terminated_run_says_how_to_resume_and_the_resumed_run_says_from_where(
    tiny_models: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 22 item 26, with SIGTERM (a scheduler's stop) in the 5th of 6 steps."""
    unhandled: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: unhandled.append(signum))
    original = torch.optim.Adam.step
    calls: list[int] = []

    def step_then_terminate(self: torch.optim.Adam, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args, **kwargs)

    flags = [*TINY_FLAGS, "--checkpoint-every", "2", "--output-dir", str(tmp_path / "run dir")]
    try:
        with monkeypatch.context() as patch:
            patch.setattr(torch.optim.Adam, "step", step_then_terminate)
            assert main(flags) == 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not unhandled
    *logged, err = capsys.readouterr().err.strip().splitlines()  # 16 test images miss a class
    before = ("resfx train: warning: ", "resfx train: training ", "resfx train: epoch 1/2 ")
    assert all(line.startswith(before) for line in logged), logged
    checkpoint = tmp_path / "run dir" / "checkpoint.pt"
    said = (
        f"resfx train: interrupted; {checkpoint} holds the run at step 4 (epoch 2, 1 batch into "
        f"it); continue it with: "
    )
    assert err.startswith(said) and "\n" not in err
    command = shlex.split(err[len(said) :])
    assert command[:2] == ["resfx", "train"] and "--resume" in command
    assert main(command[1:]) == 0
    err = capsys.readouterr().err
    assert f"resfx train: resumed {checkpoint} at step 4 (epoch 2, 1 batch into it)" in err
    assert len(TrainHistory.load_json(checkpoint.parent / "history.json").loss_list) == 6


def test_the_resume_command_gives_back_the_same_settings_with_resume() -> None:
    args = TrainingArgs(
        data="synthetic",
        weights=None,
        epochs=3,
        learning_rate=0.1 + 0.2,
        mode="partial",
        stages="head:0,layer4:1",
        progress=False,
        overwrite=True,
        output_dir="runs/a b",
    )
    words = shlex.split(resume_command(args))
    namespace = build_parser().parse_args(words[1:])
    parsed = TrainingArgs(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(args)})
    assert parsed == dataclasses.replace(args, resume=True, overwrite=False)
