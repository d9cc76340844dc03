"""Image folders and map-style Datasets in, resident or streamed: the same bytes, the same features."""

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

from resfx import data
from resfx.features import FeatureCache
from resfx.models import ResNet, ResNetConfig


def _write_tree(root: Path, counts: dict[str, dict[str, int]], corrupt: str | None = None) -> None:
    """A folder of PNG (class a) and JPEG (others) images of varied sizes, seeded."""
    generator = torch.Generator().manual_seed(0)
    for split, per_class in counts.items():
        for name, count in per_class.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                side = 12 + 4 * (k % 3)
                pixels = torch.randint(0, 256, (side, side + 2 * (k % 2), 3), generator=generator)
                image = Image.fromarray(pixels.to(torch.uint8).numpy())
                suffix = "png" if name == "a" else "jpg"
                image.save(folder / f"{k:03d}.{suffix}")
    if corrupt is not None:
        (root / corrupt).write_bytes(b"\xff\xd8\xff\xe0 this is not a whole JPEG")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    counts = {"train": {"a": 5, "b": 2, "c": 3}, "test": {"a": 2, "b": 1, "c": 2}}
    _write_tree(tmp_path, counts, corrupt="train/b/999.jpg")
    return tmp_path


def test_folder_classes_order_and_sizes_follow_imagefolder(tree: Path) -> None:
    from torchvision.datasets import ImageFolder

    layout = data.scan_image_folder(tree)
    reference = ImageFolder(str(tree / "train"))
    assert layout.classes == tuple(reference.classes)
    assert list(layout.train) == [(p, y) for p, y in reference.samples]
    split = data.load_folder_split(tree, "test", store_size=16)
    assert split.classes == ("a", "b", "c") and split.labels.tolist() == [0, 0, 1, 2, 2]
    assert split.images.shape == (5, 3, 16, 16) and split.images.dtype == torch.uint8
    # torchvision's Resize + CenterCrop on the PIL image, bit for bit; the uint8 tensor resize
    # agrees to one grey level
    from torchvision import transforms

    with Image.open(layout.test[0][0]) as image:
        pil = transforms.Compose([transforms.Resize(16), transforms.CenterCrop(16)])(image)
    assert torch.equal(split.images[0], transforms.functional.pil_to_tensor(pil.convert("RGB")))
    tensor = data.resize_to_square(data.read_image_file(layout.test[0][0]), 16)
    assert (split.images[0].int() - tensor.int()).abs().max() <= 1


def test_corrupt_file_stops_with_its_path_or_is_skipped_and_counted(tree: Path) -> None:
    with pytest.raises(data.BadImageError, match=r"1 image\(s\) could not be read: .*999\.jpg"):
        data.load_folder_split(tree, "train", store_size=16)
    split = data.load_folder_split(tree, "train", store_size=16, on_bad_image="skip")
    assert split.skipped == 1 and len(split) == 10
    assert split.labels.bincount().tolist() == [5, 2, 3]


def test_one_folder_is_split_by_a_seeded_fraction(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"all": {"a": 10, "b": 5}})
    first = data.scan_image_folder(tmp_path / "all", test_fraction=0.2, seed=3)
    again = data.scan_image_folder(tmp_path / "all", test_fraction=0.2, seed=3)
    other = data.scan_image_folder(tmp_path / "all", test_fraction=0.2, seed=4)
    assert first == again and first.test != other.test
    assert [y for _, y in first.test].count(0) == 2 and [y for _, y in first.test].count(1) == 1
    assert not {p for p, _ in first.train} & {p for p, _ in first.test}
    with pytest.raises(data.FolderLayoutError, match="test_fraction must be in"):
        data.scan_image_folder(tmp_path / "all", test_fraction=1.5)


def test_subsets_first_random_stratified(tree: Path) -> None:
    labels = [0] * 50 + [1] * 30 + [2] * 20
    assert data.choose_subset(labels, 10) == list(range(10))
    drawn = data.choose_subset(labels, 10, "random", seed=1)
    assert drawn == sorted(drawn) and drawn == data.choose_subset(labels, 10, "random", seed=1)
    strat = data.choose_subset(labels, 10, "stratified", seed=1)
    assert [labels[i] for i in strat].count(0) == 5
    assert [labels[i] for i in strat].count(2) == 2
    split = data.load_folder_split(tree, "test", 3, subset="stratified", store_size=16)
    assert sorted(split.labels.tolist()) == [0, 1, 2]


class _Mixed(Dataset):
    """PIL, uint8 and float images of several sizes, as a user's Dataset might return."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(1)
        self.pixels = [torch.randint(0, 256, (3, 20, 24), generator=generator) for _ in range(6)]
        self.targets = [0, 1, 2, 0, 1, 2]

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i: int) -> tuple[object, int]:
        p = self.pixels[i].to(torch.uint8)
        image = [Image.fromarray(p.permute(1, 2, 0).numpy()), p, p.float() / 255][i % 3]
        return image, self.targets[i]


def test_map_style_dataset_with_pil_uint8_and_float_images() -> None:
    source = _Mixed()
    split = data.from_dataset(source, "train", name="mixed", store_size=16)
    assert split.dataset == "mixed" and split.labels.tolist() == source.targets
    for i in range(3):
        expected = data.resize_to_square(source.pixels[i].to(torch.uint8), 16)
        assert torch.equal(split.images[i], expected), i
    with pytest.raises(data.BadImageError, match=r"float images must be in \[0, 1\]"):
        bad = TensorDataset(torch.full((1, 3, 4, 4), 2.0), torch.tensor([0]))
        data.from_dataset(bad, "test", store_size=4)


class _Unsized(Dataset[tuple[object, int]]):
    def __getitem__(self, i: int) -> tuple[object, int]:
        return torch.zeros(3, 4, 4, dtype=torch.uint8), 0


def test_a_dataset_without_len_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"_Unsized has no len\(\); from_dataset needs"):
        data.from_dataset(_Unsized(), "test", store_size=4)


def test_streamed_split_gives_bitwise_the_resident_features(tree: Path) -> None:
    resident = data.load_folder_split(tree, "test", store_size=16)
    streamed = data.load_folder_split(tree, "test", store_size=16, memory_budget_mib=0)
    assert isinstance(streamed, data.StreamedSplit) and len(streamed) == len(resident)
    assert torch.equal(streamed.labels, resident.labels)
    order = torch.tensor([4, 0, 2])
    assert torch.equal(streamed.gather(order), resident.gather(order))
    model = ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1))).eval()
    cache = FeatureCache()
    a = cache.features(model, resident, image_size=32, batch_size=2)
    b = cache.features(model, streamed, image_size=32, batch_size=2)
    assert cache.misses == 2 and torch.equal(a, b)
    assert cache.features(model, streamed, image_size=32, batch_size=2) is not None
    assert cache.hits == 1
