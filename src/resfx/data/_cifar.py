"""CIFAR-10 through torchvision, the seed's ImageNet transform, and the seed's subsets."""

import urllib.error
from pathlib import Path
from typing import Any

from torch.utils.data import Subset
from torchvision import transforms
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity

CIFAR10_URL: str = CIFAR10.url
"""Where torchvision downloads CIFAR-10 from (the python pickles, 163 MiB packed)."""

CIFAR10_FOLDER: str = CIFAR10.base_folder
"""The folder, under `root`, that holds the extracted batches: `cifar-10-batches-py`."""

CIFAR10_SIZES: dict[str, int] = {"train": 50_000, "test": 10_000}
"""Examples in each split of CIFAR-10 (and of the synthetic stand-in)."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel mean the ImageNet weights were trained with (RGB, on a [0, 1] scale)."""

IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel standard deviation the ImageNet weights were trained with."""


class DatasetUnavailableError(RuntimeError):
    """CIFAR-10 is neither on disk nor downloadable; the message says what to put where.

    Example:
        >>> import tempfile
        >>> try:
        ...     load_cifar10(tempfile.mkdtemp(), download=False)
        ... except DatasetUnavailableError as error:
        ...     print(str(error)[:25])
        CIFAR-10 is not usable un
    """


def seed_transform(image_size: int = 224) -> transforms.Compose:
    """The seed's per-image transform: `Resize(image_size)`, `ToTensor()`, ImageNet `Normalize`.

    It runs on PIL images, one at a time, on the CPU (in DataLoader workers).
    [`preprocess`][resfx.data.preprocess] is the same maths on a batch of
    uint8 tensors on any device.

    Args:
        image_size: side of the resized (square) image; the seed used 224.

    Returns:
        The composed transform.

    Raises:
        ValueError: `image_size` is not positive.

    Example:
        >>> from PIL import Image
        >>> seed_transform(64)(Image.new("RGB", (32, 32))).shape
        torch.Size([3, 64, 64])
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    return transforms.Compose(
        [
            transforms.Resize(image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _damaged_files(root: Path) -> tuple[list[str], list[str]]:
    """Names of the CIFAR-10 files missing under `root`, and of those whose MD5 differs."""
    folder = root / CIFAR10_FOLDER
    expected = [
        *CIFAR10.train_list,
        *CIFAR10.test_list,
        [CIFAR10.meta["filename"], CIFAR10.meta["md5"]],
    ]
    missing = [name for name, _ in expected if not (folder / name).is_file()]
    corrupt = [
        name
        for name, md5 in expected
        if (folder / name).is_file() and not check_integrity(str(folder / name), md5)
    ]
    return missing, corrupt


def _unavailable_message(root: Path, missing: list[str], corrupt: list[str], cause: str) -> str:
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if corrupt:
        problems.append(f"MD5 differs for {corrupt}")
    return (
        f"CIFAR-10 is not usable under {root / CIFAR10_FOLDER} ({'; '.join(problems)}){cause}. "
        f"Download {CIFAR10_URL} (MD5 {CIFAR10.tgz_md5}) and extract it into {root}, so that "
        f"{root / CIFAR10_FOLDER} holds data_batch_1 ... data_batch_5, test_batch and "
        f"batches.meta; or pass download=True (--download) on a machine with internet; or "
        f"train on data='synthetic' (--data synthetic) to run offline"
    )


def load_cifar10(
    root: str | Path = "data",
    *,
    train: bool = True,
    download: bool = True,
    transform: transforms.Compose | None = None,
) -> CIFAR10:
    """One split of CIFAR-10 as torchvision's dataset, every file MD5-checked.

    Args:
        root: the folder that holds (or will hold) `cifar-10-batches-py`.
        train: the 50,000 training images (`True`) or the 10,000 test images.
        download: download and extract the archive when the files are missing.
        transform: applied to each PIL image on access, e.g.
            [`seed_transform`][resfx.data.seed_transform].

    Returns:
        The dataset; `.data` is a uint8 array `(n, 32, 32, 3)`, `.targets` a list of labels.

    Raises:
        DatasetUnavailableError: files missing or corrupt and not downloadable;
            the message names the files, the URL and the folder to extract into.

    Example:
        >>> train = load_cifar10("data", download=False)  # doctest: +SKIP
        >>> train.data.shape  # doctest: +SKIP
        (50000, 32, 32, 3)
    """
    root = Path(root)
    missing, corrupt = _damaged_files(root)
    if (missing or corrupt) and download:
        try:
            CIFAR10(str(root), train=train, download=True)
        except (urllib.error.URLError, OSError, RuntimeError) as error:
            cause = f"; downloading it failed: {error}"
            raise DatasetUnavailableError(
                _unavailable_message(root, missing, corrupt, cause)
            ) from error
        missing, corrupt = _damaged_files(root)
    if missing or corrupt:
        cause = "" if download else " and download=False"
        raise DatasetUnavailableError(_unavailable_message(root, missing, corrupt, cause))
    return CIFAR10(str(root), train=train, download=False, transform=transform)


def get_cifar_subset(
    trainset_size: int = 10_000,
    testset_size: int = 1_000,
    *,
    root: str | Path = "data",
    download: bool = True,
    transform: transforms.Compose | None = None,
) -> tuple[Subset[tuple[Any, int]], Subset[tuple[Any, int]]]:
    """The seed's data: the first `trainset_size` training and first `testset_size` test images.

    Args:
        trainset_size: examples taken from the start of the training split.
        testset_size: examples taken from the start of the test split.
        root: the folder that holds (or will hold) `cifar-10-batches-py`.
        download: download the archive when the files are missing.
        transform: per-image transform; `None` means the seed's, `seed_transform(224)`.

    Returns:
        `(trainset, testset)` as `torch.utils.data.Subset`s of torchvision's CIFAR10.

    Raises:
        ValueError: a size is not positive or larger than its split.
        DatasetUnavailableError: the files are missing and not downloadable.

    Example:
        >>> trainset, testset = get_cifar_subset(10_000, 1_000)  # doctest: +SKIP
        >>> len(trainset), len(testset)  # doctest: +SKIP
        (10000, 1000)
    """
    for split, size in (("train", trainset_size), ("test", testset_size)):
        check_subset_size(split, size, CIFAR10_SIZES[split])
    transform = seed_transform() if transform is None else transform
    trainset = load_cifar10(root, train=True, download=download, transform=transform)
    testset = load_cifar10(root, train=False, download=download, transform=transform)
    check_subset_size("train", trainset_size, len(trainset))
    check_subset_size("test", testset_size, len(testset))
    return Subset(trainset, range(trainset_size)), Subset(testset, range(testset_size))


def check_subset_size(split: str, size: int, available: int) -> None:
    """Check that a subset of `size` first examples fits in a split of `available` examples.

    Args:
        split: `"train"` or `"test"`, for the message.
        size: the requested number of examples.
        available: examples in the split.

    Raises:
        ValueError: `size` is not positive or exceeds `available`.

    Example:
        >>> check_subset_size("test", 2_000, 1_000)
        Traceback (most recent call last):
        ...
        ValueError: testset_size=2000 is larger than the test split (1000 examples); pass at most 1000
    """
    if size < 1:
        raise ValueError(f"{split}set_size must be at least 1, got {size}")
    if size > available:
        raise ValueError(
            f"{split}set_size={size} is larger than the {split} split ({available} examples); "
            f"pass at most {available}"
        )
