"""Any map-style `torch.utils.data.Dataset` of `(image, label)` pairs as a resfx split."""

from collections.abc import Sized
from typing import Any

from torch.utils.data import Dataset

from ._decode import BadImagePolicy, to_uint8_image
from ._device import DEFAULT_MEMORY_BUDGET_MIB, ImageSplit, StreamedSplit, materialise
from ._subset import SubsetKind, choose_subset, resolve_subset, warn_missing_classes


def _labels(dataset: Any, needed: bool) -> list[int] | None:
    """Every label, from `dataset.targets` when it has them, else by loading every item when
    `needed` (a stratified subset of part of the dataset), else `None`."""
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return [int(t) for t in targets]
    if not needed:
        return None
    return [int(dataset[i][1]) for i in range(len(dataset))]


def from_dataset(
    dataset: Dataset[Any],
    split: str = "train",
    *,
    name: str | None = None,
    size: int | None = None,
    subset: SubsetKind = "auto",
    seed: int = 0,
    store_size: int | None = None,
    fallback_store_size: int = 224,
    memory_budget_mib: int = DEFAULT_MEMORY_BUDGET_MIB,
    on_bad_image: BadImagePolicy = "error",
    classes: tuple[str, ...] | None = None,
    workers: int = 0,
) -> ImageSplit | StreamedSplit:
    """One split from any map-style Dataset whose items are `(image, label)`.

    Images may be PIL images, uint8 tensors `(c, h, w)` or float tensors in
    [0, 1] (`ToTensor()`'s output, before normalising); they are converted to
    uint8 and resized to one store size once (or per batch, when streamed over
    the budget). Give the dataset no normalising transform: resfx normalises
    on the device.

    Args:
        dataset: the dataset (`len` and integer indexing).
        split: `"train"` or `"test"`.
        name: the name reports and cache keys use; default the class name.
        size: how many examples; `None` takes them all.
        subset: `"stratified"` (`"auto"` means it here; labels from `dataset.targets`
            when present, else by loading every item), `"first"` or `"random"`; a
            subset that misses classes of `dataset.targets` is warned about.
        seed: seeds the subset.
        store_size: side the images are stored at; `None` takes the first
            image's side when it is square, else `fallback_store_size`.
        fallback_store_size: see `store_size`.
        memory_budget_mib: the most MiB of uint8 images held at once.
        on_bad_image: `"error"` or `"skip"` for items that fail to load or convert.
        classes: class names; default `dataset.classes` when it has them.
        workers: processes loading and converting items (0: this process).

    Returns:
        The split.

    Raises:
        ValueError: `size` larger than the dataset, or an image that is not one.
        TypeError: items that are not `(image, label)` with a PIL image or tensor.
        resfx.data.BadImageError: failing items with `on_bad_image="error"`.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.rand(6, 3, 16, 16), torch.arange(6) % 2)
        >>> s = from_dataset(data, "test", size=4)
        >>> s.images.shape, s.labels.tolist()
        (torch.Size([4, 3, 16, 16]), [0, 1, 0, 1])
    """
    if not isinstance(dataset, Sized):
        raise TypeError(
            f"{type(dataset).__name__} has no len(); from_dataset needs a map-style Dataset "
            f"with __len__ and integer indexing"
        )
    n = len(dataset)
    if size is not None and size > n:
        raise ValueError(
            f"{split}set_size={size} is larger than the dataset ({n} examples); pass at most {n}"
        )
    label = type(dataset).__name__ if name is None else name
    subset = resolve_subset(subset, shuffled=False)
    found = classes if classes is not None else tuple(getattr(dataset, "classes", ()) or ())
    take = size or n
    labels = _labels(dataset, needed=subset == "stratified" and take < n)
    positions = choose_subset(labels or [0] * n, take, subset, seed=seed)
    if labels is not None:
        warn_missing_classes(
            labels,
            [labels[i] for i in positions],
            where=f"the {split} split of {label}",
            how=subset,
            classes=found,
        )
    if store_size is None:
        first = to_uint8_image(dataset[positions[0]][0], f"{label}[{positions[0]}]")
        height, width = first.shape[1:]
        store_size = int(height) if height == width else fallback_store_size
    return materialise(
        lambda i: dataset[i],
        positions,
        dataset=label,
        split=split,
        store_size=store_size,
        describe=lambda i: f"{label}[{i}]",
        memory_budget_mib=memory_budget_mib,
        on_bad_image=on_bad_image,
        classes=tuple(found),
        workers=workers,
    )
