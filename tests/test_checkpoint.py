"""Checkpoints: atomic writes, bit-exact resume after an interruption, refusal to resume the wrong run."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import resfx
import resfx._atomic
from resfx.train import (
    LOCK_NAME,
    CheckpointError,
    OutputDirectoryError,
    TrainingArgs,
    claim_output_dir,
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


def test_resume_with_another_world_size_says_what_differs(tmp_path: Path) -> None:
    args = tiny(output_dir=str(tmp_path), trainset_size=32, epochs=1)
    train(args)
    path = tmp_path / "checkpoint.pt"
    saved = load_checkpoint(path)
    saved.history["world_size"] = 2  # as `torchrun --nproc-per-node 2` writes it
    save_checkpoint(saved, path)
    with pytest.raises(
        CheckpointError,
        match=r"written by 2 process\(es\) \(global batch 2 x 16 = 32\), this run has 1 "
        r"\(global batch 16\): resume with torchrun --nproc-per-node 2",
    ):
        train(dataclasses.replace(args, epochs=2, resume=True))


def test_damaged_checkpoints_are_refused_each_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(Checkpoint({}, {"w": torch.ones(3)}, {}, 1, 0, 4, {}, {}, ""), path)
    whole = path.read_bytes()
    for data, said in (
        (b"", "is empty .0 bytes."),
        (whole[: len(whole) // 2], "is damaged or not a torch file"),
    ):
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=said) as caught:
            load_checkpoint(path)
        assert "\n" not in str(caught.value) and "delete it" in str(caught.value)
    path.unlink()
    path.mkdir()
    with pytest.raises(CheckpointError, match="is a folder, not a file"):
        load_checkpoint(path)


def test_a_run_folder_is_claimed_by_one_run_and_a_dead_runs_lock_is_taken_over(
    tmp_path: Path,
) -> None:
    claim = {"run_files": ("checkpoint.pt",), "resume": False, "overwrite": False}
    with claim_output_dir(tmp_path, **claim):
        lock = tmp_path / LOCK_NAME
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        in_use = f"in use by another resfx run .pid {os.getpid()}"
        with pytest.raises(OutputDirectoryError, match=in_use), claim_output_dir(tmp_path, **claim):
            pass
    assert not lock.exists()
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": "h", "started": "then"}))
    stale = f"held by pid {dead.pid} on host h, started then, which is no longer running"
    with pytest.warns(UserWarning, match=stale), claim_output_dir(tmp_path, **claim):
        pass
    assert not lock.exists()


def test_overwrite_replaces_only_resfx_files_and_the_summary_names_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from resfx import cli
    from test_cli import TINY_FLAGS

    monkeypatch.chdir(tmp_path)
    flags = [*TINY_FLAGS, "--epochs", "1", "--output-dir", "run"]
    assert cli.main(flags) == 0
    assert (
        f"wrote: {tmp_path}/run/history.json, {tmp_path}/run/training.png"
        in capsys.readouterr().out
    )
    (tmp_path / "run" / "notes.txt").write_text("mine")
    stale = tmp_path / "run" / f".checkpoint.pt.{resfx._atomic.host_tag()}-{2**22 + 7}.ab.tmp"
    stale.write_bytes(b"half a checkpoint")
    before = load_checkpoint(tmp_path / "run" / "checkpoint.pt").args
    assert cli.main([*flags, "--seed", "1", "--overwrite"]) == 0
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt").args["seed"] == 1 != before["seed"]
    assert not stale.exists()
