"""`resfx probe` end to end: seeds, weights per architecture checked first, results kept per
architecture, earlier results refused, every setting validated (issue 22 items 2, 14, 16, 17)."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from resfx.cli import main
from resfx.features import FeatureCache
from resfx.probe import ProbeArgs, run_probe

TINY = ["--trainset-size", "20", "--testset-size", "10", "--image-size", "16", "--stages"]


def _folder(root: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 10), ("test", 5)):
        for label, colour in enumerate(((220, 30, 30), (30, 30, 220))):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for k in range(count):
                noise = torch.randint(-30, 30, (16, 16, 3), generator=generator)
                pixels = (torch.tensor(colour) + noise).clamp(0, 255).to(torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{k}.png")
    return root


def test_resfx_probe_on_a_folder_with_seeds(tmp_path: Path, capsys) -> None:
    root = _folder(tmp_path / "images")
    out = tmp_path / "probe"
    argv = ["probe", "--data", str(root), *TINY, "stem,layer4", "--seeds", "2"]
    status = main([*argv, "--output-dir", str(out)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "resnet18 (random weights), 2 seeds" in printed and "±" in printed
    report = json.loads((out / "probe.json").read_text())
    assert report["complete"] and len(report["strengths"]) == 8
    assert [r["stage"] for r in report["rows"]] == ["stem", "layer4"]
    row = report["rows"][0]
    assert row["dataset"] == f"folder:{root.resolve()}" and row["weights"] is None
    assert len(row["linear"]) == 2 and len(row["knn"]) == 2 and row["classes"] == 2
    assert row["test_accuracy"] == 1.0  # the two colours are linearly separable
    assert len(row["linear"][0]["val_accuracy"]) == 8
    assert (out / "probe.png").stat().st_size > 1000


def test_a_second_probe_into_the_same_folder_is_refused_without_overwrite(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "probe"
    argv = ["probe", *TINY, "stem", "--output-dir", str(out)]
    assert main(argv) == 0
    before = (out / "probe.json").read_bytes()
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "already holds an earlier probe's probe.json, probe.png" in error
    assert "--overwrite" in error and "Traceback" not in error
    assert (out / "probe.json").read_bytes() == before
    assert main([*argv, "--overwrite", "--seed", "1"]) == 0
    assert (out / "probe.json").read_bytes() != before


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--arch", ""], "no architecture"),
        (["--arch", ","], "no architecture"),
        (["--device", "bogus"], "unknown device 'bogus'"),
        (["--device", "meta"], "unknown device 'meta'"),
        (["--test-fraction", "nan"], "test_fraction must be in (0, 1)"),
        (["--memory-budget-mib", "-1"], "memory_budget_mib must be at least 0"),
        (["--store-size", "0"], "store_size must be at least 1"),
        (["--store-size", "-1"], "store_size must be at least 1"),
        (["--output-dir", ""], "output_dir is empty"),
        (["--feature-cache-dir", ""], "feature_cache_dir is empty"),
        (["--on-bad-image", "ignore"], "invalid choice: 'ignore'"),
        (["--val-fraction", "1"], "val_fraction must be in (0, 1)"),
        (["--regularisation", "inf"], "positive and finite"),
        (["--regularisation", "-1"], "positive and finite"),
        (["--strengths", "1e-3,x"], "strengths must be numbers"),
        (["--tol", "nan"], "tol must be positive and finite"),
        (["--knn-temperature", "0"], "knn_temperature must be positive"),
        (["--seeds", "0"], "seeds must be at least 1"),
        (["--weights", "resnet18=DEFAULT,resnet50=none"], "weights item 'resnet50=none'"),
    ],
)
def test_nonsense_settings_are_one_line_errors(
    flags: list[str], says: str, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["probe", *TINY, "stem", *flags])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and says in error, error
    assert "Traceback" not in error and list(tmp_path.iterdir()) == []


def test_a_gpu_this_machine_lacks_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "probe"
    assert main(["probe", *TINY, "stem", "--device", "cuda", "--output-dir", str(out)]) == 1
    error = capsys.readouterr().err
    assert "CUDA is not available" in error and "Traceback" not in error


def test_every_weights_file_is_checked_before_any_extraction(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes = []
    original = FeatureCache.stage_features
    monkeypatch.setattr(
        FeatureCache, "stage_features", lambda *a, **k: passes.append(1) or original(*a, **k)
    )
    wrong = tmp_path / "r50.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    weights = f"resnet18=none,resnet50={wrong}"
    argv = ["probe", *TINY, "stem", "--arch", "resnet18,resnet50", "--weights", weights]
    assert main([*argv, "--output-dir", str(tmp_path / "out")]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert passes == [] and not (tmp_path / "out" / "probe.json").exists()


def test_each_architecture_is_written_as_it_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = FeatureCache.stage_features

    def fail_on_the_second_model(self, model, *args, **kwargs):
        if model.config.layers != (2, 2, 2, 2):  # resnet18 passes, resnet34 fails
            raise RuntimeError("out of memory")
        return original(self, model, *args, **kwargs)

    monkeypatch.setattr(FeatureCache, "stage_features", fail_on_the_second_model)
    out = tmp_path / "out"
    args = ProbeArgs(
        archs="resnet18,resnet34",
        trainset_size=20,
        testset_size=10,
        image_size=16,
        stages="stem",
        output_dir=str(out),
    )
    with pytest.raises(RuntimeError, match="out of memory"):
        run_probe(args)
    report = json.loads((out / "probe.json").read_text())
    assert not report["complete"]
    assert [(r["arch"], r["stage"]) for r in report["rows"]] == [("resnet18", "stem")]


def test_weights_per_architecture_or_one_for_all(no_shape_checks: None) -> None:
    pair = ProbeArgs(archs="resnet18,resnet50", weights="resnet50=DEFAULT, resnet18=none")
    assert (pair.weights_for("resnet18"), pair.weights_for("resnet50")) == (None, "DEFAULT")
    every = ProbeArgs(archs="resnet18,resnet50", weights="DEFAULT")
    assert every.weights_for("resnet50") == "DEFAULT"
    with pytest.raises(ValueError, match=r"no weights for \['resnet50'\]"):
        ProbeArgs(archs="resnet18,resnet50", weights="resnet18=DEFAULT")
    with pytest.raises(TypeError, match="trainset_size must be of type int"):
        ProbeArgs(trainset_size="64")  # type: ignore[arg-type]
