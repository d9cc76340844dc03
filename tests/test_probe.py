"""Per-stage features in the cache (one frozen pass for every stage) and `resfx probe` end to end."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import resfx
from resfx.cli import main
from resfx.data import load_split
from resfx.features import FeatureCache, compute_stage_features
from resfx.models import ResNet, ResNetConfig
from resfx.probe import ProbeArgs, linear_probe, run_probe


@pytest.fixture
def model() -> ResNet:
    return resfx.freeze(ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1))))


def test_stage_features_are_pooled_stage_outputs_and_one_pass_fills_every_stage(
    model: ResNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = load_split("synthetic", "test", 6)
    stages = ["stem", "layer2", "layer4"]
    out = compute_stage_features(model, split, stages, image_size=32, batch_size=4)
    x = resfx.data.preprocess(split.images, 32)
    with torch.no_grad():
        maps = model.forward_stages(x, stages)
        torch.testing.assert_close(out["layer4"], model.forward_features(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["layer2"], maps["layer2"].mean(dim=(2, 3)), atol=1e-6, rtol=0)
    passes = []
    original = ResNet.forward_stages
    monkeypatch.setattr(
        ResNet, "forward_stages", lambda self, *a: passes.append(1) or original(self, *a)
    )
    cache = FeatureCache()
    first = cache.stage_features(model, split, stages, image_size=32, batch_size=6)
    assert len(passes) == 1 and cache.misses == 3
    again = cache.stage_features(model, split, ["layer4", "stem"], image_size=32, batch_size=6)
    assert len(passes) == 1 and cache.hits == 2
    assert torch.equal(again["stem"], first["stem"])


def test_stage_keys_differ_by_stage_and_stay_content_based(model: ResNet) -> None:
    split = load_split("synthetic", "test", 4)
    cache = FeatureCache()
    cache.stage_features(model, split, ["stem"], image_size=32)
    other = load_split("synthetic", "test", 4, seed=1)
    cache.stage_features(model, other, ["stem"], image_size=32)
    assert cache.misses == 2 and cache.hits == 0


def test_linear_probe_separates_separable_features() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    features = torch.randn(60, 5, generator=generator) + 3 * torch.nn.functional.one_hot(labels, 5)
    train_acc, test_acc = linear_probe(features[:40], labels[:40], features[40:], labels[40:], 3)
    assert train_acc == 1.0 and test_acc > 0.9


def _folder(root: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 8), ("test", 4)):
        for label, colour in enumerate(((220, 30, 30), (30, 30, 220))):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for k in range(count):
                noise = torch.randint(-30, 30, (16, 16, 3), generator=generator)
                pixels = (torch.tensor(colour) + noise).clamp(0, 255).to(torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{k}.png")
    return root


def test_resfx_probe_end_to_end_on_a_small_folder(tmp_path: Path, capsys) -> None:
    root = _folder(tmp_path / "images")
    out = tmp_path / "probe"
    status = main(
        [
            "probe",
            "--data",
            str(root),
            "--archs",
            "resnet18",
            "--stages",
            "stem,layer4",
            "--trainset-size",
            "16",
            "--testset-size",
            "8",
            "--image-size",
            "32",
            "--steps",
            "30",
            "--output-dir",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "resnet18  stem" in printed and "resnet18  layer4" in printed
    report = json.loads((out / "probe.json").read_text())
    assert [r["stage"] for r in report["rows"]] == ["stem", "layer4"]
    assert report["rows"][0]["dataset"] == f"folder:{root.resolve()}"
    assert report["rows"][0]["test_accuracy"] == 1.0  # the two colours are linearly separable
    assert (out / "probe.png").stat().st_size > 1000


def test_probe_args_are_checked(no_shape_checks: None) -> None:
    with pytest.raises(ValueError, match="unknown archs"):
        ProbeArgs(archs="resnet19")
    with pytest.raises(ValueError, match="unknown stages"):
        ProbeArgs(stages="layer5")
    rows = run_probe(
        ProbeArgs(
            trainset_size=16,
            testset_size=8,
            image_size=32,
            stages="layer1",
            steps=3,
            output_dir=None,
        )
    )
    assert [(r.arch, r.stage, r.dim) for r in rows] == [("resnet18", "layer1", 64)]
