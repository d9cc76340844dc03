"""One entry point for every named source: CIFAR-10, the synthetic stand-in, an image folder."""

from pathlib import Path

from ._decode import BadImagePolicy
from ._device import DATASETS, DEFAULT_MEMORY_BUDGET_MIB, ImageSplit, StreamedSplit, load_split
from ._folder import load_folder_split, not_a_folder
from ._subset import SubsetKind


def check_data_source(data: str | Path) -> None:
    """Check that `data` is a name of `DATASETS` or an image folder's path, saying what it is.

    Args:
        data: a name or a path.

    Raises:
        ValueError: neither; the message says whether the path does not exist or is a file.

    Example:
        >>> check_data_source("synthetic")
        >>> check_data_source("/no/such/images")
        Traceback (most recent call last):
        ...
        ValueError: unknown data '/no/such/images': not one of ('cifar10', 'synthetic'), and /no/such/images does not exist; pass one of them or the path of an image folder (train/ and test/ class folders, or one folder of class folders)
    """
    if str(data) in DATASETS:
        return
    problem = not_a_folder(data)
    if problem:
        raise ValueError(
            f"unknown data {str(data)!r}: not one of {DATASETS}, and {problem}; pass one of "
            f"them or the path of an image folder (train/ and test/ class folders, or one "
            f"folder of class folders)"
        )


def load_data(
    data: str | Path,
    split: str,
    size: int,
    *,
    root: str | Path = "data",
    download: bool = True,
    seed: int = 0,
    subset: SubsetKind = "auto",
    test_fraction: float = 0.2,
    store_size: int | None = None,
    fallback_store_size: int = 224,
    memory_budget_mib: int = DEFAULT_MEMORY_BUDGET_MIB,
    on_bad_image: BadImagePolicy = "error",
    workers: int = 0,
    draft: bool = True,
) -> ImageSplit | StreamedSplit:
    """`size` examples of a split of `"cifar10"`, `"synthetic"` or an image folder's path.

    Args:
        data: a name of `DATASETS` or a folder (see `load_folder_split`).
        split: `"train"` or `"test"`.
        size: how many examples.
        root: CIFAR-10's folder.
        download: download CIFAR-10 when missing.
        seed: the synthetic set's seed and the subset's.
        subset: `"auto"` (`"first"` for `DATASETS`, `"stratified"` for a folder), `"first"`,
            `"random"` or `"stratified"`; a subset that misses classes is warned about.
        test_fraction: a folder without train/test folders: each class's test share.
        store_size: a folder: side images are stored at (`None`: see `load_folder_split`).
        fallback_store_size: a folder: the store size when images differ in size.
        memory_budget_mib: a folder: the most MiB held on the device, else streamed.
        on_bad_image: a folder: `"error"` or `"skip"` unreadable files.
        workers: a folder: processes decoding its images (the CLI passes the usable cores).
        draft: a folder: allow the DCT-downscaled JPEG decode (see `load_folder_split`).

    Returns:
        The split on the CPU.

    Raises:
        ValueError: an unknown name that is not a folder (see `check_data_source`), or a
            size too large.

    Example:
        >>> load_data("synthetic", "test", 3).images.shape
        torch.Size([3, 3, 32, 32])
    """
    if str(data) in DATASETS:
        return load_split(
            str(data), split, size, root=root, download=download, seed=seed, subset=subset
        )
    check_data_source(data)
    return load_folder_split(
        data,
        split,
        size,
        subset=subset,
        seed=seed,
        test_fraction=test_fraction,
        store_size=store_size,
        fallback_store_size=fallback_store_size,
        memory_budget_mib=memory_budget_mib,
        on_bad_image=on_bad_image,
        workers=workers,
        draft=draft,
    )
