"""Issue 22's job items: bench's weights check, a checkpoint that is a symlink loop, the
checkpoint size estimate, and reports on an ASCII-only stdout."""

import dataclasses
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim import SGD

import resfx.train._loop
from resfx import cli
from resfx._freeze import freeze, unfreeze
from resfx.models import ResNet, ResNetConfig
from resfx.nn import Linear
from resfx.train import (
    Checkpoint,
    CheckpointError,
    TrainHistory,
    TrainingArgs,
    build_model,
    load_checkpoint,
    train,
)
from resfx.train._checkpoint import (
    capture_rng,
    checkpoint_bytes,
    frozen_fingerprint,
    save_checkpoint,
    trainable_state,
)
from test_cli import TINY_FLAGS
from test_cli_bench import TINY
from test_train import tiny


def test_bench_checks_the_weights_whatever_it_measures(capsys: pytest.CaptureFixture[str]) -> None:
    for skip in (["--no-job"], ["--no-job", "--no-steps"], ["--no-steps"]):
        assert cli.main(["bench", *TINY, *skip, "--weights", "IMAGENET1K_V9"]) == 2
        error = capsys.readouterr().err
        assert error.startswith("resfx bench: error: ") and "IMAGENET1K_V9" in error, skip
        assert error.count("\n") == 1, skip


def _width8(args: TrainingArgs) -> ResNet:
    """`build_model`'s contract on a small width-8 ResNet (head or full mode)."""
    torch.manual_seed(args.seed)
    model = freeze(ResNet(ResNetConfig(width=8, layers=(1, 1, 1, 1))), bn=args.bn)
    model.fc = Linear(model.config.feature_dim, args.n_classes)
    model.config = dataclasses.replace(model.config, num_classes=args.n_classes)
    return unfreeze(model) if args.mode == "full" else model


def test_a_checkpoint_that_is_a_symlink_loop_is_refused_under_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resfx.train._loop, "build_model", _width8)
    run = tmp_path / "run"
    run.mkdir()
    os.symlink("checkpoint.pt", run / "checkpoint.pt")  # a link to itself
    with pytest.raises(CheckpointError, match="symbolic link that leads to no file"):
        load_checkpoint(run / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="symbolic link that leads to no file"):
        train(tiny(output_dir=str(run), resume=True, trainset_size=16, testset_size=8))
    assert (run / "checkpoint.pt").is_symlink()  # nothing was trained or written over it


@pytest.mark.parametrize(
    ("mode", "optimizer"), [("head", torch.optim.Adam), ("full", torch.optim.Adam), ("full", SGD)]
)
def test_the_checkpoint_size_estimate_is_within_2x_of_the_file(
    tmp_path: Path, mode: str, optimizer: Any
) -> None:
    args = tiny(mode=mode, n_classes=10)
    # head: the job's own ResNet34 (the 134 KB file); full: a width-8 ResNet
    model = build_model(args) if mode == "head" else _width8(args)
    trains = [p for p in model.parameters() if p.requires_grad]
    stepper = optimizer(trains, lr=1e-3, **({"momentum": 0.9} if optimizer is SGD else {}))
    estimate = checkpoint_bytes(model, stepper)  # before any step, as the run checks it
    for p in trains:
        p.grad = torch.ones_like(p)
    stepper.step()
    history = TrainHistory(mode, "synthetic", "cpu", args=args.to_dict(), loss_list=[0.5] * 4)
    checkpoint = Checkpoint(
        args.to_dict(), trainable_state(model), stepper.state_dict(), 1, 0, 4,
        history.to_dict(), capture_rng(), frozen_fingerprint(model),
    )  # fmt: skip
    written = save_checkpoint(checkpoint, tmp_path / "checkpoint.pt").stat().st_size
    assert written / 2 <= estimate <= 2 * written, (mode, estimate, written)
    # the moments it predicted are there (Adam's scalar step counts aside)
    assert estimate <= checkpoint_bytes(model, stepper) <= 1.01 * estimate


def test_reports_print_on_an_ascii_only_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What Python sets up under LANG=C or PYTHONIOENCODING=ascii: strict ASCII streams.
    streams = {name: io.TextIOWrapper(io.BytesIO(), encoding="ascii") for name in ("out", "err")}
    monkeypatch.setattr(sys, "stdout", streams["out"])
    monkeypatch.setattr(sys, "stderr", streams["err"])
    monkeypatch.setattr(resfx.train._loop, "build_model", _width8)
    out = tmp_path / "résultats"
    train_run = [*TINY_FLAGS, "--epochs", "1", "--output-dir", f"{out}/t"]
    probe = ["probe", "--arch", "resnet18", "--stages", "stem", "--trainset-size", "16"]
    probe += [
        "--testset-size",
        "8",
        "--image-size",
        "16",
        "--output-dir",
        f"{out}/p",
    ]
    bench = ["bench", *TINY, "--no-job", "--no-steps", "--out", f"{out}/b"]
    statuses = [cli.main(argv) for argv in (train_run, probe, bench, train_run)]
    printed = {}
    for name, stream in streams.items():
        stream.flush()
        printed[name] = stream.buffer.getvalue().decode("ascii")
    assert statuses == [0, 0, 0, 1], printed["err"]
    assert r"r\xe9sultats/t/history.json" in printed["out"]  # train's summary
    assert r"r\xe9sultats/p/probe.json" in printed["out"]  # probe's
    assert r"r\xe9sultats/b/bench.json" in printed["out"]  # bench's
    assert r"resfx train: error: output_dir '" in printed["err"]  # the second run's refusal
    assert r"r\xe9sultats/t' already holds a run" in printed["err"]
    assert sys.stdout.errors == "strict"  # put back as it was
