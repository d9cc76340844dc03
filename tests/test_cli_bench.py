"""`resfx bench` and `resfx summary` from the command line."""

import json

import pytest

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
    modes = ["--mode", "frozen-folded", "--mode", "head-step"]  # the cheap ones
    steps = [*modes, "--repeats", "4", "--steps-per-round", "2", "--no-sweep", "--no-job"]
    assert main(["bench", *TINY, *steps, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "frozen-folded" in printed and "ratios resfx/fp32 (median of per-round" in printed
    assert "4 timed steps per mode in 2 interleaved rounds" in printed
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["machine"]["device"] == "cpu" and report["config"]["steps_per_round"] == 2
    measured = [(s["mode"], s["implementation"]) for s in report["steps"]]
    assert measured == [(m, i) for m in modes[1::2] for i in ("resfx", "torchvision")]
    assert all(len(s["round_medians_ms"]) == 2 and s["peak_memory_mib"] for s in report["steps"])
    ratio = report["ratios"]["resfx/fp32"]["frozen-folded resfx/torchvision"]
    assert ratio["low"] <= ratio["median"] <= ratio["high"] and len(ratio["per_round"]) == 2
    assert report["peak_memory"].startswith("peak: CPU tensor bytes")
    assert (tmp_path / "bench_modes.png").stat().st_size > 10_000
    for step in report["steps"]:  # the table printed is the JSON's measurements
        assert f"{step['median_ms']:.2f}" in printed, step["mode"]


def test_bench_job_alone_replaces_earlier_results_with_overwrite(tmp_path, capsys) -> None:
    (tmp_path / "bench.json").write_text("{}")
    (tmp_path / "bench_modes.png").write_bytes(b"an earlier chart")
    out = ["--out", str(tmp_path), "--overwrite"]
    assert main(["bench", *TINY, *TINY_JOB, "--no-steps", *out]) == 0
    printed = capsys.readouterr().out
    assert "seed job on SYNTHETIC data (generated, not CIFAR-10)" in printed
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["steps"] == [] and len(report["job"]["runs"]) == 3
    assert [run["run"] for run in report["job"]["runs"]] == ["seed", "head", "cached"]
    assert all(run["dataset"] == "synthetic" for run in report["job"]["runs"])
    assert not (tmp_path / "bench_modes.png").exists()  # no steps: no chart, not an earlier one


def test_bench_refuses_bf16_on_the_cpu_and_unknown_modes(capsys) -> None:
    assert main(["bench", *TINY, "--precision", "bf16", "--no-job"]) == 2
    assert "CUDA device only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # at parse time, before any set-up
        main(["bench", *TINY, "--mode", "sideways", "--no-job"])
    assert refused.value.code == 2
    assert "argument --mode: invalid choice: 'sideways'" in capsys.readouterr().err


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
