"""Checkpoints: atomic writes, bit-exact resume after an interruption, refusal to resume the wrong run."""

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
import torch

import resfx
import resfx._atomic
from resfx.train import (
    CheckpointError,
    TrainingArgs,
    load_checkpoint,
    train,
)
from resfx.train._checkpoint import Checkpoint, save_checkpoint
from test_train import tiny


def _args(output_dir: Path, **changes: Any) -> TrainingArgs:
    # bn="train": BatchNorm statistics change during training, so resuming must restore them.
    settings = {"trainset_size": 48, "epochs": 2, "checkpoint_every": 2, "bn": "train", **changes}
    return tiny(output_dir=str(output_dir), **settings)


def _interrupt_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the `step`-th optimizer step raise KeyboardInterrupt, as Ctrl-C or a kill would."""
    original = torch.optim.Adam.step
    calls = []

    def step_or_interrupt(self: torch.optim.Adam, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step_or_interrupt)


def test_interrupted_and_resumed_run_ends_bitwise_equal_to_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = train(_args(tmp_path / "straight"))
    interrupted = _args(tmp_path / "interrupted")
    with monkeypatch.context() as patch:
        _interrupt_at_step(patch, 5)
        with pytest.raises(KeyboardInterrupt):
            train(interrupted)
    saved = load_checkpoint(tmp_path / "interrupted" / "checkpoint.pt")
    assert (saved.epoch, saved.batch, saved.step) == (1, 1, 4)  # mid-epoch, 3 steps per epoch
    resumed = train(dataclasses.replace(interrupted, resume=True))
    expected, actual = straight.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert resumed.loss_list == straight.loss_list
    assert resumed.accuracy_list == straight.accuracy_list
    assert resumed.examples_seen == straight.examples_seen
    statistics = expected["layer1.0.bn1.running_mean"]
    assert not torch.equal(statistics, torch.zeros_like(statistics))


def test_resume_continues_only_the_same_run(tmp_path: Path) -> None:
    args = _args(tmp_path, checkpoint_every=0, trainset_size=16)
    first = train(args)
    again = train(dataclasses.replace(args, resume=True))
    assert again.loss_list == first.loss_list
    assert torch.equal(again.model.fc.weight, first.model.fc.weight)
    with pytest.raises(CheckpointError, match="has 2 epochs done but epochs=1; pass epochs=2"):
        train(dataclasses.replace(args, resume=True, epochs=1))
    with pytest.raises(CheckpointError, match=r"learning_rate=0.001 \(now 0.5\), seed=0 \(now 3\)"):
        train(dataclasses.replace(args, resume=True, learning_rate=0.5, seed=3))


def test_resume_refuses_a_backbone_whose_weights_file_changed(tmp_path: Path) -> None:
    weights = tmp_path / "backbone.pth"
    torch.manual_seed(1)
    torch.save(resfx.resnet34().state_dict(), weights)
    args = _args(
        tmp_path / "run",
        trainset_size=16,
        epochs=1,
        checkpoint_every=0,
        bn="eval",
        weights=str(weights),
    )
    train(args)
    torch.manual_seed(2)
    torch.save(resfx.resnet34().state_dict(), weights)
    with pytest.raises(CheckpointError, match="the frozen parameters differ from the checkpoint"):
        train(dataclasses.replace(args, resume=True))


def test_a_failed_save_leaves_the_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    good = Checkpoint({}, {"w": torch.ones(3)}, {}, 1, 0, 4, {}, {}, "")
    save_checkpoint(good, path)
    real_save = torch.save

    def save_half_then_fail(obj: object, target: str) -> None:
        real_save(obj, target)
        Path(target).write_bytes(Path(target).read_bytes()[:20])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(resfx._atomic.torch, "save", save_half_then_fail)
    newer = dataclasses.replace(good, step=8, state={"w": torch.zeros(3)})
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(newer, path)
    monkeypatch.undo()
    loaded = load_checkpoint(path)
    assert loaded.step == 4 and torch.equal(loaded.state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="is not a resfx training checkpoint"):
        load_checkpoint(path)


def test_atomic_writes_get_the_usual_file_mode(tmp_path: Path) -> None:
    from resfx._atomic import atomic_write_bytes

    umask = os.umask(0)
    os.umask(umask)
    path = atomic_write_bytes(tmp_path / "report.json", b"{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
