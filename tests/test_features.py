"""Feature cache: content keys that change with every input, disk round trips, cached == uncached."""

from pathlib import Path

import pytest
import torch

import resfx.features
from resfx.data import ImageSplit, load_split
from resfx.features import FeatureCache, compute_features, feature_key
from resfx.models import ResNet, ResNetConfig
from resfx.train import build_model, train
from test_train import tiny


def _small_model() -> ResNet:
    return ResNet(ResNetConfig(layers=(1, 1, 1, 1), width=4)).eval()


def _key(model: ResNet, split: ImageSplit, **changes: object) -> str:
    settings = {"image_size": 32, "precision": "fp32", "bn": "eval", **changes}
    return feature_key(model, split, **settings).digest()


def test_every_input_of_the_features_changes_the_key() -> None:
    model, split = _small_model(), load_split("synthetic", "train", 6)
    base = _key(model, split)
    assert base == _key(_clone(model), split)
    changed = _clone(model)
    with torch.no_grad():
        changed.layer2[0].conv1.weight[0, 0, 0, 0] += 1e-3
    assert _key(changed, split) != base
    stats = _clone(model)
    stats.layer4[0].bn2.running_var[3] = 2.0
    assert _key(stats, split) != base
    reordered = ImageSplit(split.images, split.labels, split.indices.flip(0), "synthetic", "train")
    assert _key(model, reordered) != base
    assert _key(model, load_split("synthetic", "train", 5)) != base
    assert _key(model, load_split("synthetic", "test", 6)) != base
    assert _key(model, split, image_size=64) != base
    assert _key(model, split, precision="bf16") != base
    assert _key(model, split, bn="batch") != base
    assert _key(_clone(model).train(), split) != base
    # same dataset name, split and indices, other pixels (another synthetic seed)
    assert _key(model, load_split("synthetic", "train", 6, seed=1)) != base
    relabelled = ImageSplit(split.images, split.labels.flip(0), split.indices, "synthetic", "train")
    assert _key(model, relabelled) != base


def test_the_head_is_not_part_of_the_key() -> None:
    model, split = _small_model(), load_split("synthetic", "train", 4)
    other = _clone(model)
    with torch.no_grad():
        other.fc.weight.add_(1.0)
    assert _key(other, split) == _key(model, split)


def _clone(model: ResNet) -> ResNet:
    copy = ResNet(model.config)
    copy.load_state_dict(model.state_dict())
    return copy.train(model.training)


def test_cache_computes_once_in_memory_and_reuses_from_disk(tmp_path: Path) -> None:
    model, split = _small_model(), load_split("synthetic", "test", 5)
    cache = FeatureCache(tmp_path)
    first = cache.features(model, split, image_size=32)
    again = cache.features(model, split, image_size=32)
    assert (cache.hits, cache.misses) == (1, 1)
    assert again is first
    fresh = FeatureCache(tmp_path)
    loaded = fresh.features(model, split, image_size=32)
    assert (fresh.hits, fresh.misses) == (1, 0)
    torch.testing.assert_close(loaded, first, rtol=0, atol=0)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_disk_entry_whose_stored_key_differs_is_recomputed(tmp_path: Path) -> None:
    model, split = _small_model(), load_split("synthetic", "test", 5)
    key = feature_key(model, split, image_size=32, precision="fp32", bn="eval")
    path = FeatureCache(tmp_path).path_for(key)
    assert path is not None
    torch.save({"key": {"backbone": "something else"}, "features": torch.zeros(5, 32)}, path)
    cache = FeatureCache(tmp_path)
    features = cache.features(model, split, image_size=32)
    assert cache.misses == 1
    torch.testing.assert_close(features, compute_features(model, split, image_size=32))


def test_read_only_cache_does_not_write(tmp_path: Path) -> None:
    model, split = _small_model(), load_split("synthetic", "test", 3)
    FeatureCache(tmp_path, write=False).features(model, split, image_size=32)
    assert not list(tmp_path.iterdir())


def test_features_do_not_depend_on_the_batch_size_and_match_forward_pooled() -> None:
    model, split = _small_model(), load_split("synthetic", "test", 7)
    small = compute_features(model, split, image_size=48, batch_size=3)
    whole = compute_features(model, split, image_size=48, batch_size=256)
    torch.testing.assert_close(small, whole, rtol=1e-5, atol=1e-5)
    from resfx.data import preprocess

    with torch.no_grad():
        direct = model.forward_pooled(preprocess(split.images, 48))
    torch.testing.assert_close(whole, direct, rtol=1e-5, atol=1e-5)
    assert not whole.is_inference()


def test_bf16_features_are_close_to_fp32() -> None:
    model, split = _small_model(), load_split("synthetic", "test", 4)
    fp32 = compute_features(model, split, image_size=32)
    bf16 = compute_features(model, split, image_size=32, precision="bf16")
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, fp32, rtol=0.05, atol=0.05 * fp32.abs().max().item())


def test_unknown_precision_is_an_error() -> None:
    model, split = _small_model(), load_split("synthetic", "test", 2)
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        compute_features(model, split, image_size=32, precision="fp16")


def test_head_trained_on_cached_features_equals_the_uncached_frozen_path() -> None:
    settings = {"trainset_size": 40, "epochs": 2}
    head = train(tiny(mode="head", **settings))
    cached = train(tiny(mode="cached", **settings))
    assert len(cached.loss_list) == len(head.loss_list) == 6
    torch.testing.assert_close(cached.loss_list, head.loss_list, rtol=1e-4, atol=1e-4)
    for name in ("weight", "bias"):
        torch.testing.assert_close(
            getattr(cached.model.fc, name), getattr(head.model.fc, name), rtol=1e-4, atol=1e-5
        )
    assert cached.accuracy_list == head.accuracy_list
    # One pass over every image (no cache folder: computed without keys), none in "head" mode.
    assert (cached.history.feature_images, head.history.feature_images) == (40 + 32, 0)
    untouched = build_model(tiny(**settings)).state_dict()
    for name, tensor in cached.model.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(tensor, untouched[name]), name


def test_unreadable_disk_entry_is_a_miss_and_batch_dependent_features_are_refused(
    tmp_path: Path,
) -> None:
    model, split = _small_model(), load_split("synthetic", "test", 3)
    cache = FeatureCache(tmp_path)
    key = feature_key(model, split, image_size=32, precision="fp32", bn="eval")
    cache.path_for(key).write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="cannot be read .*recomputing it"):
        assert cache.features(model, split, image_size=32).shape[0] == 3
    assert cache.misses == 1
    with pytest.raises(ValueError, match="BatchNorm layers in training mode"):
        FeatureCache().features(_clone(model).train(), split, image_size=32)


def _stored_entry(tmp_path: Path) -> tuple[ResNet, ImageSplit, Path, dict]:
    model, split = _small_model(), load_split("synthetic", "test", 4)
    FeatureCache(tmp_path).features(model, split, image_size=32)
    (path,) = tmp_path.glob("*.pt")
    return model, split, path, torch.load(path)


def test_an_entry_with_flipped_bits_is_a_miss_with_a_warning(tmp_path: Path) -> None:
    model, split, path, stored = _stored_entry(tmp_path)
    data = bytearray(path.read_bytes())
    raw = stored["features"].reshape(-1).view(torch.uint8).numpy().tobytes()
    at = bytes(data).index(raw[:32])
    data[at + 2] ^= 0x40  # torch.load does not check the zip's CRC: only the checksum notices
    path.write_bytes(bytes(data))
    assert not torch.equal(torch.load(path)["features"], stored["features"])
    cache = FeatureCache(tmp_path)
    with pytest.warns(UserWarning, match="does not match its checksum"):
        features = cache.features(model, split, image_size=32)
    assert cache.misses == 1 and torch.equal(features, stored["features"])


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda f: f[:, :-1], r"have shape \(4, 31\), the key says \(4, 32\)"),
        (lambda f: f.reshape(4, 4, 8), r"have shape \(4, 4, 8\), the key says \(4, 32\)"),
        (lambda f: f.double(), "are torch.float64, the key says float32"),
        (lambda f: f.reshape(-1), r"have shape \(128,\)"),
    ],
)
def test_an_entry_of_the_right_key_but_the_wrong_shape_dtype_or_rank_is_a_miss(
    tmp_path: Path, change: object, said: str
) -> None:
    model, split, path, stored = _stored_entry(tmp_path)
    features = change(stored["features"])
    checksum = resfx.features.tensor_checksum(features)  # a consistent, wrong entry
    torch.save({**stored, "features": features, "checksum": checksum}, path)
    cache = FeatureCache(tmp_path)
    with pytest.warns(UserWarning, match=said):
        assert cache.features(model, split, image_size=32).shape == (4, 32)
    assert cache.misses == 1


def test_an_entry_path_that_is_a_folder_and_a_cache_folder_that_is_a_file_fall_back(
    tmp_path: Path,
) -> None:
    model, split = _small_model(), load_split("synthetic", "test", 4)
    key = feature_key(model, split, image_size=32, precision="fp32", bn="eval")
    cache = FeatureCache(tmp_path / "cache")
    cache.path_for(key).mkdir(parents=True)
    with pytest.warns(UserWarning, match="could not be written .*memory only"):
        assert cache.features(model, split, image_size=32).shape == (4, 32)
    (tmp_path / "file").write_text("not a folder")
    in_file = FeatureCache(tmp_path / "file")
    with pytest.warns(UserWarning, match="file: cannot be written .*memory only"):
        assert in_file.features(model, split, image_size=32).shape == (4, 32)
    assert in_file.write is False and (tmp_path / "file").read_text() == "not a folder"


def test_a_hit_returns_the_asked_stage_when_two_stages_have_the_same_shape(
    tmp_path: Path,
) -> None:
    # width=4: stem and layer1 both give (n, 4), so only the stage in the key tells them apart.
    model, split = _small_model(), load_split("synthetic", "test", 5)
    expected = resfx.features.compute_stage_features(
        model, split, ["stem", "layer1"], image_size=32
    )
    assert expected["stem"].shape == expected["layer1"].shape
    assert not torch.equal(expected["stem"], expected["layer1"])
    cache = FeatureCache(tmp_path)
    stem = cache.stage_features(model, split, ["stem"], image_size=32)["stem"]
    layer1 = cache.stage_features(model, split, ["layer1"], image_size=32)["layer1"]
    assert torch.equal(stem, expected["stem"]) and torch.equal(layer1, expected["layer1"])
    from_disk = FeatureCache(tmp_path)
    assert torch.equal(
        from_disk.stage_features(model, split, ["layer1"], image_size=32)["layer1"],
        expected["layer1"],
    )
    assert (from_disk.hits, from_disk.misses) == (1, 0)
