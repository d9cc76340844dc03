"""Issue 22's data items: the default subset covers every class, 16/32-bit and NaN images,
FIFOs, empty class folders and missing paths."""

import dataclasses
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

from resfx import cli, data
from resfx.train import Checkpoint, CheckpointError, TrainingArgs
from resfx.train._checkpoint import check_resumable, frozen_fingerprint
from resfx.train._loop import load_job_split
from test_cli import TINY_FLAGS


def _class_folders(root: Path, counts: dict[str, int]) -> Path:
    """One folder of class folders holding 8x8 PNGs, each class its own grey level."""
    root.mkdir(parents=True, exist_ok=True)
    for k, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("L", (8, 8), 20 * k + i).save(root / name / f"{i}.png")
    return root


class _Sorted(Dataset):
    """Ten classes of four images, class by class, as a folder-backed Dataset is."""

    def __init__(self) -> None:
        self.targets = [k // 4 for k in range(40)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((3, 4, 4), self.targets[i] / 10), self.targets[i]


def test_the_default_subset_of_a_folder_or_dataset_has_every_class(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "ten", {f"c{k}": 5 for k in range(10)})
    # 4 images of each class train, 1 tests: 20 training images are 2 of each class
    split = data.load_folder_split(root, "train", 20, store_size=8)
    assert split.labels.bincount().tolist() == [2] * 10
    dataset = data.from_dataset(_Sorted(), "train", size=10, store_size=4)
    assert sorted(dataset.labels.tolist()) == list(range(10))
    job = TrainingArgs(data=str(root), trainset_size=20, testset_size=10, store_size=8)
    assert load_job_split(job, "train").labels.bincount().tolist() == [2] * 10
    assert data.load_split("synthetic", "test", 8).indices.tolist() == list(range(8))  # seed's


def test_a_run_saved_with_the_old_default_subset_resumes_where_it_means_the_same(
    tmp_path: Path,
) -> None:
    root = _class_folders(tmp_path / "two", {"a": 2, "b": 2})
    model = torch.nn.Linear(1, 1)
    for where, same in (("synthetic", True), (str(root), False)):
        saved = TrainingArgs(data=where, subset="first", trainset_size=2, testset_size=2)
        checkpoint = Checkpoint(saved.to_dict(), {}, {}, 0, 0, 0, {}, {}, frozen_fingerprint(model))
        now = dataclasses.replace(saved, subset="auto")  # the new default
        if same:  # "auto" is "first" on the synthetic set
            check_resumable(checkpoint, now, model)
        else:  # and "stratified" on a folder: other images
            with pytest.raises(CheckpointError, match="subset='first' .now 'auto'."):
                check_resumable(checkpoint, now, model)


def test_a_subset_that_misses_classes_is_warned_about_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _class_folders(tmp_path / "ten", {f"c{k}": 5 for k in range(10)})
    with pytest.warns(UserWarning, match=r"'first' subset .* misses 8 of its 10 classes \(c2, c3"):
        data.load_folder_split(root, "train", 8, subset="first", store_size=8)
    with pytest.warns(UserWarning, match=r"misses 7 of its 10 classes"):
        data.from_dataset(_Sorted(), "train", size=12, subset="first", store_size=4)
    with pytest.warns(UserWarning, match=r"misses 9 of its 10 classes"):
        data.load_split("synthetic", "test", 1)
    folder = ["--data", str(root), "--subset", "first", "--output-dir", "none"]
    sizes = ["--trainset-size", "8", "--testset-size", "10", "--epochs", "1", "--arch", "resnet18"]
    assert cli.main([*TINY_FLAGS, *folder, *sizes]) == 0
    error = capsys.readouterr().err
    assert "resfx train: warning: the 'first' subset of the train split" in error
    assert "misses 8 of its 10 classes (c2, c3, c4, c5, c6, c7, c8, c9)" in error


def test_16_and_32_bit_images_are_scaled_by_their_range_not_clipped(tmp_path: Path) -> None:
    ramp = np.arange(512, dtype=np.uint32).reshape(8, 64) * 128  # 0 .. 65408
    expected = np.round(ramp / 65535 * 255)
    files = {
        "I;16": tmp_path / "ramp16.png",
        "I": tmp_path / "ramp32.tiff",
        "F": tmp_path / "rampf.tiff",
    }
    Image.fromarray(ramp.astype(np.uint16)).save(files["I;16"])
    Image.fromarray(ramp.astype(np.int32)).save(files["I"])
    Image.fromarray((ramp / 65535).astype(np.float32)).save(files["F"])
    for mode, path in files.items():
        with Image.open(path) as image:
            assert image.mode == mode
        pixels = data.read_image_file(str(path))
        assert pixels.dtype == torch.uint8 and pixels.shape == (3, 8, 64)
        assert np.abs(pixels[0].numpy() - expected).max() <= 1, mode  # not ~255 everywhere
        assert torch.equal(pixels[0], pixels[2])
    big_endian = Image.frombytes("I;16B", (64, 8), ramp.astype(">u2").tobytes())
    assert np.abs(data.to_uint8_image(big_endian, "b")[1].numpy() - expected).max() <= 1
    too_wide = Image.fromarray(np.full((2, 2), 70_000, dtype=np.int32))
    with pytest.raises(ValueError, match="values from 70000 to 70000, outside the 16-bit"):
        data.to_uint8_image(too_wide, "wide.tiff")


def test_non_finite_pixels_are_refused_naming_the_index() -> None:
    images = torch.rand(4, 3, 8, 8)
    images[2, 0, 1, 1] = float("nan")
    images[3, 1, 0, 0] = float("inf")
    source = TensorDataset(images, torch.arange(4))
    with pytest.raises(data.BadImageError, match=r"2 image\(s\).*TensorDataset\[2\].*NaN or inf"):
        data.from_dataset(source, "train", store_size=8)
    kept = data.from_dataset(source, "train", store_size=8, on_bad_image="skip")
    assert kept.skipped == 2 and kept.labels.tolist() == [0, 1]


def test_a_fifo_named_like_an_image_is_reported_not_opened(tmp_path: Path) -> None:
    root = tmp_path / "fifo"
    _class_folders(root / "train", {"a": 2, "b": 2})
    _class_folders(root / "test", {"a": 1, "b": 1})
    fifo = root / "train" / "b" / "x.jpg"
    os.mkfifo(fifo)
    outcome: dict[str, object] = {}

    def load() -> None:
        try:
            data.load_folder_split(root, "train")  # the store size reads headers too
        except data.BadImageError as error:
            outcome["error"] = str(error)
        outcome["skipped"] = data.load_folder_split(root, "train", on_bad_image="skip").skipped

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive():  # blocked in open(): a writer's open and close lets it go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=30)
        pytest.fail("load_folder_split opened the FIFO and blocked")
    assert "x.jpg" in str(outcome["error"]) and "not a regular file" in str(outcome["error"])
    assert outcome["skipped"] == 1


def test_an_empty_class_folder_is_named(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "gap", {"cat": 2, "cow": 0, "dog": 2})
    with pytest.raises(
        data.FolderLayoutError, match=r"1 of the 3 class folders .* no images: cow;"
    ):
        data.scan_image_folder(root)
    with pytest.raises(data.FolderLayoutError, match="no class folders with images"):
        data.scan_image_folder(_class_folders(tmp_path / "none", {}))


def test_a_missing_data_path_says_it_does_not_exist(tmp_path: Path) -> None:
    missing, a_file = tmp_path / "no-such-images", tmp_path / "images.zip"
    a_file.write_bytes(b"PK")
    for check in (lambda d: TrainingArgs(data=d), lambda d: data.load_data(d, "train", 4)):
        with pytest.raises(ValueError, match=f"{missing} does not exist"):
            check(str(missing))
        with pytest.raises(ValueError, match=f"{a_file} is a file, not a folder"):
            check(str(a_file))
