"""train(): the seed's contract, the fast head path against the plain one, BN policy, bad inputs."""

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import resfx
from resfx.bench import seed_train
from resfx.data import ImageSplit, epoch_order, iterate_batches, load_split
from resfx.train import (
    NonFiniteLossError,
    OutputDirectoryError,
    TrainHistory,
    TrainingArgs,
    TrainResult,
    build_model,
    train,
)

TINY_SETTINGS: dict[str, Any] = {
    "data": "synthetic",
    "weights": None,
    "trainset_size": 64,
    "testset_size": 32,
    "batch_size": 16,
    "epochs": 1,
    "image_size": 32,
    "device": "cpu",
    "progress": False,
}
"""A run small enough for the CPU test suite; the other test modules import it."""


def tiny(**changes: Any) -> TrainingArgs:
    return TrainingArgs(**{**TINY_SETTINGS, **changes})


def test_defaults_are_the_seeds_job() -> None:
    args = TrainingArgs()
    assert (args.batch_size, args.epochs, args.learning_rate) == (64, 5, 1e-3)
    assert args.n_classes is None and args.arch == "resnet34"  # None: CIFAR-10's 10 classes
    assert (args.trainset_size, args.testset_size, args.image_size) == (10_000, 1_000, 224)
    assert (args.mode, args.data, args.weights, args.precision) == (
        "head",
        "cifar10",
        "IMAGENET1K_V1",
        "fp32",
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"batch_size": -3}, "batch_size must be at least 1, got -3"),
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"n_classes": 1}, "n_classes must be at least 2, got 1"),
        ({"image_size": 0}, "image_size must be at least 1"),
        ({"learning_rate": 0.0}, "learning_rate must be positive and finite"),
        ({"learning_rate": math.nan}, "learning_rate must be positive and finite"),
        ({"trainset_size": 50_001}, "trainset_size must be between 1 and the train split's 50000"),
        ({"testset_size": 10_001}, "testset_size must be between 1 and the test split's 10000"),
        ({"testset_size": 0}, "testset_size must be between 1"),
        (
            {"mode": "linear"},
            "unknown mode 'linear'; expected one of \\('head', 'full', 'cached', 'partial'\\)",
        ),
        ({"data": "mnist"}, "unknown data 'mnist'"),
        ({"precision": "fp16"}, "unknown precision 'fp16'; expected one of \\('fp32', 'bf16'\\)"),
        ({"bn": "frozen"}, "unknown bn 'frozen'"),
        ({"device": "gpu"}, "unknown device 'gpu'"),
        ({"num_workers": -1}, "num_workers must be at least 0"),
        ({"mode": "cached", "bn": "batch"}, "mode='cached' needs bn='eval'"),
        ({"resume": True}, "resume, overwrite and checkpoint_every need output_dir"),
        ({"checkpoint_every": 5}, "resume, overwrite and checkpoint_every need output_dir"),
        ({"learning_rate": math.inf}, "learning_rate must be positive and finite, got inf"),
        ({"seed": 2**70}, "seed must be at most 9223372036854775807, got 1180591620717411303424"),
        ({"seed": -1}, "seed must be at least 0, got -1"),
        ({"image_size": 10**9}, "image_size must be at most 4096, got 1000000000"),
        ({"batch_size": 10**6}, "batch_size must be at most 65536"),
        ({"epochs": 10**7}, "epochs must be at most 1000000"),
        ({"output_dir": ""}, "output_dir is empty; pass a path, or None"),
        ({"feature_cache_dir": ""}, "feature_cache_dir is empty"),
        ({"output_dir": "o", "resume": True, "overwrite": True}, "resume and overwrite exclude"),
    ],
)
def test_invalid_settings_are_rejected_with_the_value(
    changes: dict[str, object], message: str, no_shape_checks: None
) -> None:
    """Checked without typeguard: users see these messages, not the annotation's."""
    with pytest.raises(ValueError, match=message):
        tiny(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 2.5}, "epochs must be an int, got float 2.5"),
        ({"trainset_size": 10.5}, "trainset_size must be an int, got float 10.5"),
        ({"n_classes": 10.0}, "n_classes must be an int or None, got float 10.0"),
        ({"batch_size": "64"}, "batch_size must be an int, got str '64'"),
        ({"epochs": True}, "epochs must be an int, got bool True"),
        ({"learning_rate": "0.1"}, "learning_rate must be a number, got str"),
        ({"weights": 123}, "weights must be a str or None, got int 123"),
        ({"progress": "no"}, "progress must be True or False or None, got str 'no'"),
        ({"download": 1}, "download must be True or False, got int 1"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_not_converted(
    changes: dict[str, object], message: str, no_shape_checks: None
) -> None:
    with pytest.raises(TypeError, match=message):
        tiny(**changes)


def test_settings_round_trip_through_a_dict() -> None:
    args = tiny(mode="cached", seed=4)
    assert TrainingArgs.from_dict(args.to_dict()) == args
    with pytest.raises(ValueError, match=r"unknown TrainingArgs fields \['lr'\]"):
        TrainingArgs.from_dict({"lr": 0.1})


HEAD_ARGS = tiny(epochs=2, trainset_size=40)
"""Two epochs of three steps (16, 16, 8 examples); several tests read the same run."""


@pytest.fixture(scope="module")
def head_run() -> TrainResult:
    return train(HEAD_ARGS)


def test_train_returns_the_seeds_triple_and_a_full_history(head_run: TrainResult) -> None:
    loss_list, accuracy_list, model = head_run
    assert len(loss_list) == 2 * 3
    assert len(accuracy_list) == 2 and all(0 <= a <= 1 for a in accuracy_list)
    assert model is head_run.model and isinstance(model, resfx.ResNet)
    assert head_run.examples_seen == [16, 32, 40, 56, 72, 80]
    assert head_run.history.epoch_examples == [40, 80]
    assert len(head_run.epoch_times) == 2 and all(t > 0 for t in head_run.epoch_times)
    history = head_run.history
    assert (history.mode, history.dataset, history.device) == ("head", "synthetic", "cpu")
    assert (history.trainable_parameters, history.frozen_parameters) == (5_130, 21_284_672)
    assert TrainHistory.from_dict(history.to_dict()) == history
    phases = history.setup_phases  # every set-up phase timed, in order, summing to the whole
    assert list(phases)[:4] == ["device and weights name", "data", "data to device", "model"]
    assert "fold" in phases and "features" not in phases and history.feature_images == 0
    assert math.isclose(sum(phases.values()), history.setup_seconds, rel_tol=1e-6)
    older = {
        k: v for k, v in history.to_dict().items() if k not in ("setup_phases", "feature_images")
    }
    assert TrainHistory.from_dict(older).setup_phases == {}  # histories from before still load


def _plain_head_training(args: TrainingArgs) -> tuple[resfx.ResNet, list[float]]:
    """The obvious loop: `model(x)` with autograd on, no inference mode, no tricks."""
    model = build_model(args)
    optimizer = torch.optim.Adam(resfx.parameter_groups(model, lr=args.learning_rate))
    split = load_split("synthetic", "train", args.trainset_size, seed=args.seed)
    losses = []
    for epoch in range(args.epochs):
        model.train()
        order = epoch_order(len(split), epoch=epoch, seed=args.seed)
        for images, labels in iterate_batches(
            split, order, args.batch_size, image_size=args.image_size
        ):
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return model, losses


def test_fast_head_path_gives_the_same_head_as_the_plain_loop(head_run: TrainResult) -> None:
    """Inference mode, folded BatchNorm and deferred loss reads change no result."""
    plain, losses = _plain_head_training(HEAD_ARGS)
    torch.testing.assert_close(head_run.loss_list, losses, rtol=1e-5, atol=1e-6)
    for name in ("weight", "bias"):
        torch.testing.assert_close(
            getattr(head_run.model.fc, name), getattr(plain.fc, name), rtol=1e-5, atol=1e-6
        )


def test_head_mode_leaves_the_backbone_and_its_batchnorm_statistics_untouched(
    head_run: TrainResult,
) -> None:
    before = build_model(HEAD_ARGS).state_dict()
    after = head_run.model.state_dict()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed == ["fc.weight", "fc.bias"]


def test_full_mode_trains_the_backbone_and_its_batchnorm() -> None:
    args = tiny(mode="full", trainset_size=16)
    before = build_model(args).state_dict()
    result = train(args)
    after = result.model.state_dict()
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])
    assert not torch.equal(before["layer4.2.bn2.running_mean"], after["layer4.2.bn2.running_mean"])
    assert result.history.frozen_parameters == 0


def test_bf16_head_training_stays_close_to_fp32(head_run: TrainResult) -> None:
    fp32 = head_run
    bf16 = train(dataclasses.replace(HEAD_ARGS, precision="bf16", epochs=1))
    assert all(math.isfinite(loss) for loss in bf16.loss_list)
    assert bf16.model.fc.weight.dtype == torch.float32
    torch.testing.assert_close(bf16.loss_list[0], fp32.loss_list[0], rtol=0.05, atol=0.05)


def test_labels_outside_n_classes_are_rejected_before_training() -> None:
    with pytest.raises(ValueError, match="labels from 0 to 9, outside the 5 classes.*n_classes=10"):
        train(tiny(n_classes=5))


def test_unwritable_output_dir_fails_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(
        "resfx.train._loop.load_data", lambda *a, **k: pytest.fail("data loaded before the check")
    )
    with pytest.raises(OutputDirectoryError, match="a-file/run' cannot be written"):
        train(tiny(output_dir=str(blocker / "run")))


def test_cuda_requested_without_cuda_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="device='cuda' but CUDA is not available"):
        train(tiny(device="cuda"))


def test_non_finite_loss_stops_at_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the 4th batch on the images are NaN (a corrupt shard): step 4 is named."""
    real = resfx.train._loop.iterate_batches
    served = []

    def corrupt_after_six(
        split: ImageSplit, *args: object, **kwargs: object
    ) -> Iterator[tuple[Tensor, Tensor]]:
        for images, labels in real(split, *args, **kwargs):
            served.append(split.split)
            corrupt = served.count("train") > 3 and split.split == "train"
            yield (torch.full_like(images, math.nan) if corrupt else images), labels

    monkeypatch.setattr(resfx.train._loop, "iterate_batches", corrupt_after_six)
    args = tiny(epochs=3, trainset_size=32, output_dir=str(tmp_path), checkpoint_every=1)
    with pytest.raises(NonFiniteLossError) as caught:
        train(args)
    message = str(caught.value)
    assert "loss became nan at step 4 (epoch 2)" in message
    assert f"last good checkpoint is {tmp_path / 'checkpoint.pt'} (step 3); it was kept" in message
    saved = resfx.train.load_checkpoint(tmp_path / "checkpoint.pt")
    assert (saved.step, saved.epoch, saved.batch) == (3, 1, 1)
    assert saved.history["loss_list"] and all(map(math.isfinite, saved.history["loss_list"]))


def test_non_finite_loss_without_output_dir_says_nothing_was_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = resfx.train._loop.iterate_batches

    def nan_images(*args: object, **kwargs: object) -> Iterator[tuple[Tensor, Tensor]]:
        for images, labels in real(*args, **kwargs):
            yield torch.full_like(images, math.inf), labels

    monkeypatch.setattr(resfx.train._loop, "iterate_batches", nan_images)
    with pytest.raises(NonFiniteLossError, match="at step 1 .*no checkpoint was written"):
        train(tiny(trainset_size=16))


def test_seed_reference_loop_runs_the_seeds_recipe() -> None:
    result = seed_train(tiny(trainset_size=32, testset_size=16))
    assert result.history.mode == "seed"
    assert len(result.loss_list) == 2 and len(result.accuracy_list) == 1
    assert result.history.trainable_parameters == 5_130
    assert result.model.bn1.training is False  # evaluated last, as the seed did


def test_moved_and_renamed_names_keep_working_for_one_release() -> None:
    with pytest.warns(DeprecationWarning, match="moved to resfx.bench.seed_train"):
        assert resfx.train.seed_train is seed_train
    assert resfx.train.Dataset is resfx.train.DatasetName
    assert "seed_train" not in resfx.train.__all__ and "Dataset" not in resfx.train.__all__
    with pytest.raises(AttributeError, match="has no attribute 'check_labels'"):
        resfx.train.check_labels  # noqa: B018
