"""The command line: every TrainingArgs field is a flag, runs write their files, bad input exits clearly."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from resfx import cli
from resfx.train import TrainingArgs

TINY_FLAGS = [
    "train",
    "--data",
    "synthetic",
    "--weights",
    "none",
    "--trainset-size",
    "32",
    "--testset-size",
    "16",
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--image-size",
    "32",
    "--device",
    "cpu",
    "--no-progress",
]


def test_every_training_setting_has_a_flag_with_help() -> None:
    parser = cli.build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    text = train_parser.format_help()
    for field in dataclasses.fields(TrainingArgs):
        assert "--" + field.name.replace("_", "-") in text, field.name
    assert "{head,full,cached,partial}" in text and "--no-resume" in text


def test_defaults_parse_to_the_seeds_settings_with_an_output_dir() -> None:
    namespace = cli.build_parser().parse_args(["train"])
    values = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(TrainingArgs)}
    assert TrainingArgs(**values) == TrainingArgs(output_dir="runs/train")


def test_train_writes_history_and_plot_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = [*TINY_FLAGS, "--mode", "cached", "--output-dir", str(tmp_path / "run"), "--progress"]
    status = cli.main([*flags, "--feature-cache-dir", str(tmp_path / "features")])
    assert status == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "epoch 2/2 (cached)" in captured.err
    assert len(list((tmp_path / "features").glob("*.pt"))) == 2  # train and test features
    assert "mode 'cached' on SYNTHETIC data" in printed
    assert "final test accuracy:" in printed and "time per epoch:" in printed
    assert "parameters: 5,130 trainable, 21,284,672 frozen" in printed
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["dataset"] == "synthetic" and history["mode"] == "cached"
    assert len(history["loss_list"]) == 4 and len(history["accuracy_list"]) == 2
    assert history["args"]["trainset_size"] == 32
    assert (tmp_path / "run" / "training.png").stat().st_size > 10_000
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_invalid_value_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["train", "--batch-size", "0"])
    assert caught.value.code == 2
    assert "batch_size must be at least 1, got 0" in capsys.readouterr().err


def test_unknown_choice_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["train", "--mode", "linear"])
    assert caught.value.code == 2
    assert "invalid choice: 'linear'" in capsys.readouterr().err


def test_missing_dataset_offline_exits_1_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(
        [
            "train",
            "--data-root",
            str(tmp_path),
            "--no-download",
            "--output-dir",
            str(tmp_path / "o"),
        ]
    )
    assert status == 1
    error = capsys.readouterr().err
    assert "resfx train: error: CIFAR-10 is not usable" in error
    assert "cifar-10-python.tar.gz" in error and "--data synthetic" in error


def test_unwritable_output_dir_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main([*TINY_FLAGS, "--output-dir", str(blocker / "out")]) == 1
    assert "cannot be written" in capsys.readouterr().err


def test_python_dash_m_resfx_runs_the_same_command_line() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "resfx", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert "--trainset-size" in finished.stdout and "--precision {fp32,bf16}" in finished.stdout
