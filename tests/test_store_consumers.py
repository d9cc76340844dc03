"""`--features STORE`: the cached training mode and the probes read a feature store, no image."""

from pathlib import Path

import pytest
import torch

import resfx.data._files
from resfx import cli
from resfx.features import FeatureStore, TensorFeatures, extract
from resfx.models import resnet18
from resfx.probe import ProbeArgs, probe_stage_sources, run_probe
from resfx.train import TrainingArgs, train
from test_store import one_thread, write_folder

__all__ = ["one_thread"]  # test_store's autouse fixture: one torch thread in this file too


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A folder of images, a resnet18 weights file, and the store extracted with them."""
    root = tmp_path_factory.mktemp("store-train")
    folder = write_folder(root / "images", train=4, test=2)
    torch.manual_seed(3)
    weights = root / "r18.pth"
    torch.save(resnet18().state_dict(), weights)
    store = root / "store"
    extract(
        folder, store, arch="resnet18", weights=str(weights), stages=("layer1", "pooled"),
        image_size=16, batch_size=4, shard_size=4, device="cpu",
    )  # fmt: skip
    return folder, weights, store


def _args(**changes: object) -> TrainingArgs:
    base: dict[str, object] = {
        "mode": "cached", "arch": "resnet18", "epochs": 2, "batch_size": 3, "image_size": 16,
        "device": "cpu", "trainset_size": 8, "testset_size": 4, "subset": "first",
    }  # fmt: skip
    return TrainingArgs(**{**base, **changes})  # type: ignore[arg-type]


def test_a_head_trains_on_the_store_without_decoding_and_as_on_the_images(
    made: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, weights, store = made
    on_images = train(_args(data=str(folder), weights=str(weights)))

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image was decoded although the features come from a store")

    monkeypatch.setattr(resfx.data._files, "decode_image_file", no_decoding)
    on_store = train(_args(features=str(store), weights=str(weights)))
    assert on_store.history.feature_images == 0
    assert len(on_store.loss_list) == len(on_images.loss_list) == 2 * 3
    torch.testing.assert_close(
        torch.tensor(on_store.loss_list), torch.tensor(on_images.loss_list), rtol=1e-5, atol=1e-6
    )
    assert on_store.accuracy_list == on_images.accuracy_list


def test_random_weights_pair_through_the_seed(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "images", train=2, test=1)
    store = tmp_path / "store"
    extract(folder, store, arch="resnet18", image_size=16, device="cpu", seed=5)
    assert len(train(_args(features=str(store), weights=None, seed=5, epochs=1)).loss_list) == 2
    with pytest.raises(ValueError, match="the --seed"):
        train(_args(features=str(store), weights=None, seed=6))


def test_a_store_is_refused_for_another_backbone_arch_or_mode(
    made: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    store = made[2]
    with pytest.raises(ValueError, match="other weights than this run's"):
        train(_args(features=str(store), weights=None))
    with pytest.raises(ValueError, match="arch='resnet18', this run builds arch='resnet34'"):
        train(_args(features=str(store), arch="resnet34", weights=None))
    with pytest.raises(ValueError, match="mode='cached' only"):
        _args(features=str(store), mode="head")
    with pytest.raises(ValueError, match="pass one of the two"):
        _args(features=str(store), feature_cache_dir=str(tmp_path))
    code = cli.main(["train", "--features", str(tmp_path / "none"), "--mode", "cached"])
    assert code != 0


def test_a_probe_reads_the_store_stages_it_holds_and_equals_a_probe_of_its_rows(
    made: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_path = made[2]
    monkeypatch.setattr(resfx.data._files, "decode_image_file", None)
    args = ProbeArgs(
        features=str(store_path), stages="layer1,layer4", seeds=2, knn_k=3,
        output_dir=str(tmp_path / "probe"),
    )  # fmt: skip
    rows = run_probe(args)
    assert [(row.arch, row.stage, row.dim, len(row.linear)) for row in rows] == [
        ("resnet18", "layer1", 64, 2)
    ]
    store = FeatureStore.open(store_path)
    in_memory = {
        split: {"layer1": TensorFeatures(store.load(split, "layer1"), store.labels(split))}
        for split in ("train", "test")
    }
    again = probe_stage_sources(in_memory["train"], in_memory["test"], args.settings, seed=1)
    assert rows[0].linear[1].test_accuracy == again["layer1"].linear.test_accuracy
    assert (tmp_path / "probe" / "probe.json").is_file()
    with pytest.raises(ValueError, match="a probe needs 'train' and 'test' and one of"):
        run_probe(ProbeArgs(features=str(store_path), stages="stem", output_dir=None))
