"""Data: CIFAR-10 through torchvision's real loader, the seed's subset, the device path, synthetic data."""

import hashlib
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import DataLoader

from resfx import data
from resfx.bench import seed_train
from resfx.train import train
from test_train import tiny

_PER_TRAIN_BATCH = 12
_TEST_SIZE = 20


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_cifar10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small CIFAR-10 on disk in the real format, with torchvision's checksums pointed at it.

    The folder `cifar-10-batches-py` holds `data_batch_1..5`, `test_batch` and
    `batches.meta`: pickled dicts with `data` (uint8, one 3072-byte row per image:
    1024 red, 1024 green, 1024 blue) and `labels`. Python 3 reads the real
    (Python 2) files with `encoding="latin1"`, which turns their byte-string keys
    into `str`, so the keys here are `str`. Only the MD5s in torchvision's
    class are replaced: its integrity check and loader run as they do on the
    real files.
    """
    root = tmp_path / "cifar"
    folder = root / data.CIFAR10_FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for offset, name in enumerate(names):
        count = _TEST_SIZE if name == "test_batch" else _PER_TRAIN_BATCH
        batch = {
            "batch_label": name,
            "labels": [int(v) for v in (np.arange(count) + offset) % 10],
            "data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
            "filenames": [f"{name}_{i}.png" for i in range(count)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": [f"class {k}" for k in range(10)], "num_cases_per_batch": 12}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, _md5(folder / n)] for n in names[:5]])
    monkeypatch.setattr(cls, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / "batches.meta")})
    return root


def _no_network(*args: object, **kwargs: object) -> None:
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_fake_cifar10_loads_through_torchvisions_class(fake_cifar10: Path) -> None:
    train = data.load_cifar10(fake_cifar10, train=True, download=False)
    test = data.load_cifar10(fake_cifar10, train=False, download=False)
    assert isinstance(train, torchvision.datasets.CIFAR10)
    assert train.data.shape == (5 * _PER_TRAIN_BATCH, 32, 32, 3)
    assert len(test) == _TEST_SIZE
    raw = pickle.loads((fake_cifar10 / data.CIFAR10_FOLDER / "data_batch_1").read_bytes())
    np.testing.assert_array_equal(
        train.data[0], raw["data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    )


def test_get_cifar_subset_takes_the_first_examples_with_the_seed_transform(
    fake_cifar10: Path,
) -> None:
    trainset, testset = data.get_cifar_subset(25, 7, root=fake_cifar10, download=False)
    assert (len(trainset), len(testset)) == (25, 7)
    assert list(trainset.indices) == list(range(25))
    image, label = trainset[13]
    assert image.shape == (3, 224, 224)
    assert label == trainset.dataset.targets[13]
    expected = data.seed_transform(224)(
        torchvision.transforms.ToPILImage()(trainset.dataset.data[13])
    )
    torch.testing.assert_close(image, expected)


def test_subset_larger_than_the_files_is_an_error(fake_cifar10: Path) -> None:
    with pytest.raises(ValueError, match=r"trainset_size=61 is larger than the train split \(60"):
        data.get_cifar_subset(61, 5, root=fake_cifar10, download=False)
    with pytest.raises(ValueError, match="testset_size=10001 is larger"):
        data.get_cifar_subset(10, 10_001, root=fake_cifar10, download=False)


def test_load_split_reads_cifar10_as_uint8_tensors(fake_cifar10: Path) -> None:
    split = data.load_split("cifar10", "test", 9, root=fake_cifar10, download=False)
    cifar = data.load_cifar10(fake_cifar10, train=False, download=False)
    assert split.images.dtype == torch.uint8
    torch.testing.assert_close(split.images, torch.from_numpy(cifar.data[:9]).permute(0, 3, 1, 2))
    assert split.labels.tolist() == cifar.targets[:9]
    assert (split.dataset, split.split) == ("cifar10", "test")


def test_missing_dataset_offline_names_url_folder_and_alternatives(tmp_path: Path) -> None:
    with pytest.raises(data.DatasetUnavailableError) as caught:
        data.load_cifar10(tmp_path, download=False)
    message = str(caught.value)
    assert data.CIFAR10_URL in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "synthetic" in message


def test_failed_download_explains_what_to_put_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", _no_network)
    with pytest.raises(
        data.DatasetUnavailableError, match="downloading it failed.*name resolution"
    ):
        data.load_cifar10(tmp_path, download=True)


def test_corrupt_file_is_reported_by_name(fake_cifar10: Path) -> None:
    batch = fake_cifar10 / data.CIFAR10_FOLDER / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-10])
    with pytest.raises(data.DatasetUnavailableError, match=r"MD5 differs for \['data_batch_3'\]"):
        data.load_cifar10(fake_cifar10, download=False)


def test_device_preprocessing_matches_the_seeds_pil_transform_within_one_grey_level() -> None:
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    ours = data.preprocess(images, 224)
    seed = data.seed_transform(224)
    theirs = torch.stack([seed(torchvision.transforms.ToPILImage()(image)) for image in images])
    one_grey_level = 1 / 255 / min(data.IMAGENET_STD)
    assert (ours - theirs).abs().max() < one_grey_level
    assert (ours - theirs).abs().mean() < one_grey_level / 2


def test_preprocess_keeps_native_size_exact() -> None:
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    mean = torch.tensor(data.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(data.IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(data.preprocess(images, 32), (images / 255 - mean) / std)


def test_synthetic_data_has_cifar10s_shapes_and_sizes() -> None:
    train, test = data.SyntheticCIFAR10(train=True), data.SyntheticCIFAR10(train=False)
    assert (len(train), len(test)) == (50_000, 10_000)
    image, label = train[49_999]
    assert image.size == (32, 32) and image.mode == "RGB"
    assert 0 <= label < 10 and len(train.classes) == 10
    labels = train.labels(torch.arange(5_000))
    assert torch.bincount(labels, minlength=10).min() > 400
    with pytest.raises(IndexError, match="outside"):
        train[50_000]
    with pytest.raises(IndexError, match=r"indices must be in \[0, 10000\)"):
        test.images(torch.tensor([10_000]))


def test_synthetic_data_is_a_pure_function_of_seed_split_and_index() -> None:
    a = data.SyntheticCIFAR10(seed=3)
    picked = torch.tensor([7, 2, 40_000])
    torch.testing.assert_close(a.images(picked), data.SyntheticCIFAR10(seed=3).images(picked))
    torch.testing.assert_close(a.images(picked)[1], a.images(torch.arange(3))[2])
    assert not torch.equal(a.images(picked), data.SyntheticCIFAR10(seed=4).images(picked))
    test = data.SyntheticCIFAR10(train=False, seed=3)
    assert not torch.equal(a.images(picked[:2]), test.images(picked[:2]))
    image, label = a[2]
    np.testing.assert_array_equal(
        np.asarray(image), a.images(torch.tensor([2]))[0].permute(1, 2, 0)
    )
    assert label == int(a.labels(torch.tensor([2])))


@pytest.mark.parametrize(
    ("train", "digest"),
    [
        (True, "0a1855b982ecf9d539bc94d840b64908624ea77ae3225b01d1de5e03aae93e64"),
        (False, "faf1256545b4613e8538624f7e063174da470b6831e745cff1ea710e78e08411"),
    ],
)
def test_synthetic_data_keeps_its_bytes_across_versions(train: bool, digest: str) -> None:
    # SHA-256 of images and labels as the first release generated them: a faster generator
    # must give the same data (saved runs and feature caches depend on it).
    synthetic, chosen = data.SyntheticCIFAR10(train=train, seed=7), torch.arange(0, 10_000, 37)
    found = hashlib.sha256(synthetic.images(chosen).numpy().tobytes())
    found.update(synthetic.labels(chosen).numpy().tobytes())
    assert found.hexdigest() == digest


def test_synthetic_data_is_learnable_from_simple_statistics() -> None:
    """A nearest-class-mean rule on per-channel means beats chance (10%) by far."""
    source = data.SyntheticCIFAR10(seed=0)
    fit, held = torch.arange(2_000), torch.arange(2_000, 3_000)
    colours = source.images(torch.cat([fit, held])).float().mean(dim=(2, 3))
    labels = source.labels(fit)
    centres = torch.stack([colours[: len(fit)][labels == k].mean(0) for k in range(10)])
    predicted = torch.cdist(colours[len(fit) :], centres).argmin(dim=1)
    accuracy = (predicted == source.labels(held)).float().mean()
    assert accuracy > 0.3


def test_synthetic_data_runs_through_the_seeds_dataloader() -> None:
    dataset = data.SyntheticCIFAR10(train=False, transform=data.seed_transform(64))
    images, labels = next(iter(DataLoader(dataset, batch_size=4)))
    assert images.shape == (4, 3, 64, 64) and labels.dtype == torch.int64


def test_load_split_validates_names_and_sizes() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.load_split("mnist", "train", 4)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        data.load_split("synthetic", "val", 4)
    with pytest.raises(ValueError, match="trainset_size must be at least 1"):
        data.load_split("synthetic", "train", 0)
    with pytest.raises(ValueError, match="trainset_size=50001 is larger"):
        data.load_split("synthetic", "train", 50_001)


def test_epoch_order_is_seeded_per_epoch_and_shards_cover_every_example() -> None:
    first = data.epoch_order(10, epoch=0, seed=1)
    assert sorted(first.tolist()) == list(range(10))
    assert torch.equal(first, data.epoch_order(10, epoch=0, seed=1))
    assert not torch.equal(first, data.epoch_order(10, epoch=1, seed=1))
    shards = [data.epoch_order(10, epoch=0, seed=1, rank=r, world_size=3) for r in range(3)]
    assert {len(s) for s in shards} == {4}
    assert set(torch.cat(shards).tolist()) == set(range(10))


def test_iterate_batches_skips_whole_batches_to_resume() -> None:
    split = data.load_split("synthetic", "train", 10)
    order = torch.randperm(10)
    full = list(data.iterate_batches(split, order, 4, image_size=32))
    resumed = list(data.iterate_batches(split, order, 4, image_size=32, skip_batches=1))
    assert [len(labels) for _, labels in full] == [4, 4, 2]
    for (x, y), (x2, y2) in zip(full[1:], resumed, strict=True):
        torch.testing.assert_close(x, x2)
        torch.testing.assert_close(y, y2)
    torch.testing.assert_close(full[0][1], split.labels[order[:4]])
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        next(data.iterate_batches(split, order, 0, image_size=32))


def test_training_runs_on_cifar10_files_through_both_pipelines(fake_cifar10: Path) -> None:
    """resfx's device path and the seed's PIL/DataLoader path both read the real format."""
    args = tiny(
        data="cifar10",
        data_root=str(fake_cifar10),
        download=False,
        trainset_size=16,
        testset_size=8,
    )
    ours, seeds = train(args), seed_train(args)
    assert ours.history.dataset == seeds.history.dataset == "cifar10"
    assert len(ours.loss_list) == len(seeds.loss_list) == 1
    assert len(ours.accuracy_list) == len(seeds.accuracy_list) == 1
