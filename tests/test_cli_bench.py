"""`resfx bench` and `resfx summary` from the command line."""

import json

from resfx.cli import main

TINY = [
    "--device",
    "cpu",
    "--batch-size",
    "2",
    "--image-size",
    "32",
    "--warmup",
    "0",
    "--repeats",
    "1",
    "--no-progress",
]
TINY_JOB = ["--job-trainset-size", "16", "--job-testset-size", "8", "--job-epochs", "1"]


def test_bench_writes_tables_json_and_charts(tmp_path, capsys) -> None:
    assert main(["bench", *TINY, *TINY_JOB, "--no-sweep", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "frozen-folded" in printed and "ratios resfx/fp32:" in printed
    assert "seed job on synthetic data" in printed
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["machine"]["device"] == "cpu"
    assert {s["mode"] for s in report["steps"]} >= {"full", "frozen-eval", "forward-only"}
    assert [run["run"] for run in report["job"]["runs"]] == ["seed", "head", "cached"]
    assert all(run["dataset"] == "synthetic" for run in report["job"]["runs"])
    assert (tmp_path / "bench_modes.png").stat().st_size > 10_000
    for step in report["steps"]:  # the table printed is the JSON's measurements
        assert f"{step['median_ms']:.2f}" in printed, step["mode"]


def test_bench_job_alone(tmp_path, capsys) -> None:
    assert main(["bench", *TINY, *TINY_JOB, "--no-steps", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["steps"] == [] and len(report["job"]["runs"]) == 3
    assert not (tmp_path / "bench_modes.png").exists()


def test_bench_refuses_bf16_on_the_cpu(capsys) -> None:
    assert main(["bench", *TINY, "--precision", "bf16", "--no-job"]) == 2
    assert "CUDA device only" in capsys.readouterr().err


def test_summary_prints_the_frozen_and_trainable_parameters(capsys) -> None:
    assert (
        main(["summary", "--model", "resnet18", "--num-classes", "10", "--freeze-to", "layer3"])
        == 0
    )
    table = capsys.readouterr().out
    assert "conv1.weight" in table and "layer4.1.bn2.bias" in table
    # resnet18 with a 10-class head; layer4 and fc train
    assert "total: 11181642 parameters, 8398858 trainable, 2782784 frozen" in table


def test_summary_explains_a_bad_weights_argument(capsys) -> None:
    assert main(["summary", "--weights", "IMAGENET1K_V9"]) == 1
    assert "neither a known name" in capsys.readouterr().err


def test_bench_explains_bad_settings_before_measuring(tmp_path, capsys) -> None:
    assert main(["bench", *TINY, "--job-trainset-size", "100000"]) == 2
    assert "trainset_size must be between 1 and" in capsys.readouterr().err
    assert main(["bench", "--device", "bogus", "--no-progress"]) == 2
    assert "bogus" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["bench", *TINY, "--out", str(blocker / "out")]) == 1
    assert "cannot be written" in capsys.readouterr().err
