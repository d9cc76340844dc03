"""Progress through `logging`: lines written as each epoch, probe stage and shard ends, where
stderr is a file (a batch job, `nohup`, CI), in text or JSON; and the history's per-epoch
train accuracy, test loss and per-step learning rate."""

import dataclasses
import io
import json
import logging
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import resfx.probe._run
import resfx.train._loop
from resfx import cli
from resfx._log import LineHandler, configure_logging, logging_to, remove_logging
from resfx.data import load_split
from resfx.features import TensorFeatures
from resfx.models import ResNet, ResNetConfig
from resfx.probe import ProbeArgs, run_probe
from resfx.train import TrainHistory, train
from test_train_modes import TINY_FLAGS, pinned, tiny_models

__all__ = ["tiny_models"]  # the fixture, imported for the tests below

EPOCH_FIELDS = {"epoch", "epochs", "loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"}


def _epoch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("resfx train: epoch ")]


def test_train_with_stderr_in_a_file_writes_each_epoch_line_when_the_epoch_ends(
    tiny_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21 item 3: `resfx train ... 2>log` printed nothing for 15 minutes."""
    log = tmp_path / "log"
    seen_at_epoch_start: list[list[str]] = []
    run_epoch = resfx.train._loop.TrainingLoop._run_epoch

    def look_then_run(loop: resfx.train._loop.TrainingLoop) -> None:
        # Another reader of the file: it sees only what reached the file (was flushed).
        seen_at_epoch_start.append(_epoch_lines(log.read_text()))
        run_epoch(loop)

    monkeypatch.setattr(resfx.train._loop.TrainingLoop, "_run_epoch", look_then_run)
    flags = [*TINY_FLAGS, "--output-dir", "none"]
    flags.remove("--no-progress")  # bars as a user gets them: off, stderr is no terminal
    with log.open("w", buffering=1 << 20) as stderr:  # a file buffers, a terminal would not
        assert not stderr.isatty()
        monkeypatch.setattr(sys, "stderr", stderr)
        assert cli.main(flags) == 0
    lines = _epoch_lines(log.read_text())
    assert [line.split(" (")[0] for line in lines] == [
        "resfx train: epoch 1/2",
        "resfx train: epoch 2/2",
    ]
    assert seen_at_epoch_start == [[], lines[:1]]
    for part in ("loss ", "train accuracy ", "test loss ", "test accuracy ", "lr 0.001", " s"):
        assert part in lines[0], part
    assert "\r" not in log.read_text()  # no progress bar drawn into the file


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_bars_show_and_each_epoch_line_still_stands_on_its_own_line(
    tiny_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    flags = [*TINY_FLAGS, "--output-dir", "none"]
    flags.remove("--no-progress")
    assert cli.main(flags) == 0
    text = terminal.getvalue()
    assert "\r" in text and "it/s" in text  # tqdm drew its bars
    for epoch in (1, 2):
        line = rf"(^|[\r\n])resfx train: epoch {epoch}/2 \(head\): loss [^\r\n]*, [\d.]+ s\n"
        assert re.search(line, text), text


def test_json_lines_parse_and_hold_the_epochs_numbers(
    tiny_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*TINY_FLAGS, "--output-dir", "none", "--log-format", "json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    epochs = [r for r in records if r["message"].startswith("epoch ")]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for record in epochs:
        assert set(record) >= EPOCH_FIELDS and record["logger"] == "resfx.train"
        assert record["level"] == "info" and record["time"].endswith("+00:00")
        assert 0 <= record["train_acc"] <= 1 and 0 <= record["test_acc"] <= 1
        assert record["lr"] == 0.001 and record["test_loss"] > 0 and record["seconds"] > 0
    warnings = [r for r in records if r["level"] == "warning"]  # 16 test images miss a class
    assert warnings and all("misses" in r["message"] for r in warnings)


def test_a_json_error_is_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    flags = [*TINY_FLAGS, "--output-dir", "none", "--log-format", "json", "--device", "cuda:99"]
    assert cli.main(flags) == 1
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and "cuda:99" in record["message"]


def test_the_probe_logs_a_start_line_and_a_line_per_arch_seed_and_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 21 item 3: `resfx probe` printed nothing for 27 minutes."""
    tiny = ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1)))
    monkeypatch.setattr(resfx.probe._run, "create_model", lambda arch, weights: tiny)
    out = io.StringIO()
    args = ProbeArgs(
        trainset_size=40,
        testset_size=20,
        image_size=16,
        stages="stem,layer4",
        seeds=2,
        regularisation=1e-2,
        output_dir=None,
    )
    with logging_to("json", out):
        rows = run_probe(args)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    records = [r for r in records if r["logger"] == "resfx.probe"]
    assert records[0]["message"].startswith("probing resnet18 (random weights), stages stem, ")
    stages = [(r["seed"], r["stage"]) for r in records if "stage" in r]
    assert stages == [(0, "stem"), (0, "layer4"), (1, "stem"), (1, "layer4")]
    by_stage = {(r["seed"], r["stage"]): r for r in records if "stage" in r}
    for row in rows:
        for seed, linear in enumerate(row.linear):
            assert by_stage[(seed, row.stage)]["linear_acc"] == linear.test_accuracy
            assert by_stage[(seed, row.stage)]["seconds"] >= linear.seconds


def test_configuring_twice_leaves_one_handler_and_the_root_logger_alone() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    first, second = io.StringIO(), io.StringIO()
    try:
        configure_logging("text", first)
        configure_logging("json", second)
        ours = [h for h in logging.getLogger("resfx").handlers if isinstance(h, LineHandler)]
        assert len(ours) == 1
        logging.getLogger("resfx.train").info("epoch %d/%d", 1, 2, extra={"epoch": 1})
        assert first.getvalue() == "" and json.loads(second.getvalue())["epoch"] == 1
    finally:
        remove_logging()
    assert (list(root.handlers), root.level) == before
    assert not [h for h in logging.getLogger("resfx").handlers if isinstance(h, LineHandler)]


def test_a_command_gives_back_the_logging_it_found(capsys: pytest.CaptureFixture[str]) -> None:
    mine = io.StringIO()
    configure_logging("text", mine, prefix="mine")
    try:
        assert cli.main(["train", "--device", "cuda:99", "--output-dir", "none"]) == 1
        logging.getLogger("resfx.probe").info("after")
        assert mine.getvalue() == "mine: after\n"
        assert "resfx train: error:" in capsys.readouterr().err
    finally:
        remove_logging()


def _lr_at_every_step(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    rates: list[float] = []
    step = torch.optim.Adam.step

    def recording_step(self: torch.optim.Adam, *args: Any, **kwargs: Any) -> Any:
        rates.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    return rates


def test_the_history_holds_train_accuracy_test_loss_and_the_optimizers_rate_per_step(
    tiny_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A learning rate too small to move the head: the epoch's train accuracy is the first
    head's on the training features, its test loss the first head's mean cross-entropy."""
    args = pinned(
        mode="cached",
        testset_size=24,
        learning_rate=1e-12,
        schedule="cosine",
        warmup_epochs=1,
        checkpoint_every=0,
    )
    splits = [load_split("synthetic", s, n) for s, n in (("train", 40), ("test", 24))]
    made = [TensorFeatures(torch.randn(len(s), 32), s.labels) for s in splits]
    rates = _lr_at_every_step(monkeypatch)
    history = train(args, (splits[0], splits[1]), features=(made[0], made[1])).history
    assert history.lr_list == rates and len(rates) == 6 and len(set(rates)) == 6  # warm-up, cosine
    assert len(history.train_correct_list) == len(history.loss_list) == 6
    head = resfx.train._loop.build_model(dataclasses.replace(args, n_classes=10)).fc
    with torch.no_grad():
        train_logits, test_logits = (head(f.rows(torch.arange(len(f)))) for f in made)
    first_accuracy = float((train_logits.argmax(1) == splits[0].labels).double().mean())
    assert history.train_accuracy_list == [first_accuracy, first_accuracy]
    assert sum(history.train_correct_list[:3]) == round(first_accuracy * 40)
    first_loss = float(F.cross_entropy(test_logits, splits[1].labels))
    assert history.test_loss_list == pytest.approx([first_loss, first_loss], rel=1e-6)


def test_a_resumed_run_records_the_same_new_fields_as_an_uninterrupted_one(
    tiny_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"mode": "cached", "schedule": "cosine"}
    whole = train(pinned(**settings, output_dir=str(tmp_path / "whole"))).history
    step = torch.optim.Adam.step
    calls: list[int] = []

    def interrupted_at_the_fourth_step(self: torch.optim.Adam, *args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 6:  # the last checkpoint is step 4's: 1 step into epoch 2 of 3 steps
            raise KeyboardInterrupt
        return step(self, *args, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(torch.optim.Adam, "step", interrupted_at_the_fourth_step)
        with pytest.raises(KeyboardInterrupt):
            train(pinned(**settings, output_dir=str(tmp_path / "cut")))
    resumed = train(pinned(**settings, output_dir=str(tmp_path / "cut"), resume=True)).history
    for name in ("lr_list", "train_correct_list", "train_accuracy_list", "test_loss_list"):
        assert getattr(resumed, name) == getattr(whole, name), name
    assert len(whole.lr_list) == len(whole.loss_list) and len(whole.test_loss_list) == 2


def test_a_history_written_before_the_new_fields_still_loads(tmp_path: Path) -> None:
    old = TrainHistory("head", "synthetic", "cpu", loss_list=[2.0], examples_seen=[8])
    values = old.to_dict()
    for name in ("lr_list", "train_correct_list", "train_accuracy_list", "test_loss_list"):
        del values[name]
    (tmp_path / "history.json").write_text(json.dumps(values))
    loaded = TrainHistory.load_json(tmp_path / "history.json")
    assert loaded.loss_list == [2.0] and loaded.lr_list == [] and loaded.test_loss_list == []
    assert math.isnan(resfx.train._loop.epoch_training_numbers(loaded, 0)[1])
