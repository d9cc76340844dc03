"""The fast path: uint8 images kept as one tensor on the device, resized and normalised per batch.

The seed decodes, resizes and normalises every image on the CPU, one PIL image
at a time, every epoch: on an H200 that pipeline, not the GPU, set the pace
(9.1 s per epoch, 1.1 s with the images on the GPU). Here the subset lives on
the device as uint8 (10,000 CIFAR images are 30 MiB) and each batch is
normalised at 32x32 and then resized with one `interpolate` call.

Differences from the PIL path, all below one grey level: PIL resizes the
uint8 image and rounds the result to uint8 before `ToTensor`, while this path
resizes floats; bilinear upsampling (32 -> 224) is the same filter in both
(antialiasing only matters when shrinking). The measured largest difference is
0.86/255 before normalisation (0.015 after it).
"""

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict, cast, get_args

import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from .._typing import ImagesUInt8, Labels
from ._cifar import CIFAR10_SIZES, IMAGENET_MEAN, IMAGENET_STD, check_subset_size, load_cifar10
from ._decode import (
    BadImageError,
    BadImagePolicy,
    Loader,
    bad_image_error,
    decode_examples,
    describe_store,
    log_skipped,
)
from ._pool import decode_chunks
from ._subset import SubsetKind, choose_subset, resolve_subset, warn_missing_classes
from ._synthetic import SyntheticCIFAR10

DatasetName = Literal["cifar10", "synthetic"]
"""CIFAR-10 through torchvision, or the generated stand-in with the same shapes
(`TrainingArgs.data` also takes the path of an image folder)."""

DATASETS: tuple[str, ...] = get_args(DatasetName)
"""Names `load_split` (and `TrainingArgs.data`) accept; `TrainingArgs.data` also takes a folder."""

DEFAULT_MEMORY_BUDGET_MIB: int = 2048
"""Images up to this many MiB (uint8 at the store size) are held on the device; larger sets
are streamed. 2 GiB holds 2.1 million 32x32 images, or 14,000 at 224x224."""


@dataclass(frozen=True)
class ImageSplit:
    """A subset of one split, held as tensors: uint8 images, labels, and where they came from.

    Args:
        images: the images, uint8 `(n, 3, 32, 32)`, channels first.
        labels: their classes.
        indices: each image's position in the full split.
        dataset: `"cifar10"`, `"synthetic"`, or the name of a folder or Dataset.
        split: `"train"` or `"test"`.
        skipped: unreadable images left out when it was made (`on_bad_image="skip"`).
        classes: the class names, when the source has them (folders, Datasets).
        skipped_paths: those images' paths (or names), in the source's order.

    Raises:
        ValueError: the split is not `"train"` or `"test"`.

    Example:
        >>> import torch
        >>> s = ImageSplit(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 1]),
        ...                torch.tensor([0, 1]), "synthetic", "test")
        >>> len(s), s.to("cpu").images.device.type
        (2, 'cpu')
    """

    images: ImagesUInt8
    labels: Labels
    indices: Int[Tensor, " b"]
    dataset: str
    split: str
    skipped: int = 0
    classes: tuple[str, ...] = ()
    skipped_paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.split not in CIFAR10_SIZES:
            raise ValueError(f"unknown split {self.split!r}; expected 'train' or 'test'")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> "ImageSplit":
        """The same split with images and labels on `device` (indices stay on the CPU).

        Example:
            >>> import torch
            >>> s = load_split("synthetic", "test", 4)
            >>> s.to("cpu").labels.device
            device(type='cpu')
        """
        return ImageSplit(
            self.images.to(device),
            self.labels.to(device),
            self.indices,
            self.dataset,
            self.split,
            self.skipped,
            self.classes,
            self.skipped_paths,
        )

    @property
    def device(self) -> torch.device:
        """Where the images are."""
        return self.images.device

    def gather(self, chosen: Int[Tensor, " m"]) -> ImagesUInt8:
        """The uint8 images at `chosen` (positions in this split), on the split's device.

        Example:
            >>> s = load_split("synthetic", "test", 4)
            >>> s.gather(torch.tensor([3, 1])).shape
            torch.Size([2, 3, 32, 32])
        """
        return self.images[chosen]

    def content_digest(self) -> str:
        """SHA-256 of the indices, the images' bytes and the labels, in order (for cache keys).

        Example:
            >>> len(load_split("synthetic", "test", 2).content_digest())
            64
        """
        digest = hashlib.sha256()
        for name in ("indices", "images", "labels"):
            tensor = getattr(self, name)
            flat = tensor.detach().reshape(-1).contiguous().cpu()
            digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()


class _StreamedOptions(TypedDict):
    """The options `materialise` passes on to each `StreamedSplit` it makes."""

    workers: int
    on_bad_image: BadImagePolicy
    classes: tuple[str, ...]


class StreamedSplit:
    """A split too large for the memory budget: each batch is decoded from its source again.

    Same interface as `ImageSplit` for everything resfx does with a split
    (`labels`, `indices`, `dataset`, `split`, `len`, `to`, `gather`,
    `content_digest`, `device`); `gather` decodes the chosen images, resizes
    them to the store size and sends them to the device, so host memory holds
    one batch. A pass ([`decoded_batches`][resfx.data.decoded_batches],
    [`iterate_batches`][resfx.data.iterate_batches]) decodes in `workers`
    processes and applies `on_bad_image` to images that fail only then (their
    paths are added to `skipped_paths`).

    Args:
        loader: `loader(i) -> (image, label)` for positions of the source.
        positions: the source positions of this split's examples, in order.
        labels: their labels.
        indices: each example's index in the full split (for keys and reports).
        dataset: the dataset's name.
        split: `"train"` or `"test"`.
        store_size: side of the stored square images.
        digest: content hash of the source's examples (computed by the source).
        describe: names position `i` in messages (a file path).
        device: where gathered images go.
        skipped: unreadable images left out when it was made.
        classes: the class names, if known.
        workers: worker processes a pass decodes in (0: the calling process).
        on_bad_image: what a pass does with an image that fails to decode.
        skipped_paths: the paths of the images left out so far.

    Example:
        >>> loader = lambda i: (torch.full((3, 8, 8), i, dtype=torch.uint8), i % 2)
        >>> s = StreamedSplit(loader, [0, 1, 2], torch.tensor([0, 1, 0]), torch.arange(3),
        ...                   "toy", "test", 8, "abc", str)
        >>> s.gather(torch.tensor([2, 0]))[:, 0, 0, 0].tolist()
        [2, 0]
    """

    def __init__(
        self,
        loader: Loader,
        positions: Sequence[int],
        labels: Labels,
        indices: Int[Tensor, " b"],
        dataset: str,
        split: str,
        store_size: int,
        digest: str,
        describe: Callable[[int], str],
        device: torch.device | str = "cpu",
        skipped: int = 0,
        classes: tuple[str, ...] = (),
        *,
        workers: int = 0,
        on_bad_image: BadImagePolicy = "error",
        skipped_paths: Sequence[str] = (),
    ) -> None:
        self.loader = loader
        self.positions = list(positions)
        self.labels = labels
        self.indices = indices
        self.dataset = dataset
        self.split = split
        self.store_size = store_size
        self.digest = digest
        self.describe = describe
        self.device = torch.device(device)
        self.classes = classes
        self.workers = workers
        self.on_bad_image = on_bad_image
        self._skipped_paths = list(skipped_paths)
        self._skipped_before = skipped - len(self._skipped_paths)

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def skipped(self) -> int:
        """How many images were left out, when it was made and by the passes since."""
        return self._skipped_before + len(self._skipped_paths)

    @property
    def skipped_paths(self) -> tuple[str, ...]:
        """The paths of the images left out, when it was made and by the passes since."""
        return tuple(self._skipped_paths)

    def record_skipped(self, paths: Sequence[str]) -> list[str]:
        """Add images a pass left out (each path once); returns the ones not known before.

        Example:
            >>> loader = lambda i: (torch.zeros(3, 4, 4, dtype=torch.uint8), 0)
            >>> s = StreamedSplit(loader, [0], torch.tensor([0]), torch.arange(1), "t", "test",
            ...                   4, "", str)
            >>> s.record_skipped(["a", "a"]), s.skipped
            (['a'], 1)
        """
        new = [path for path in dict.fromkeys(paths) if path not in self._skipped_paths]
        self._skipped_paths += new
        return new

    def to(self, device: torch.device | str) -> "StreamedSplit":
        """The same split, gathering onto `device` (labels move there now).

        Example:
            >>> loader = lambda i: (torch.zeros(3, 4, 4, dtype=torch.uint8), 0)
            >>> s = StreamedSplit(loader, [0], torch.tensor([0]), torch.arange(1), "t", "test",
            ...                   4, "", str)
            >>> s.to("cpu").device.type
            'cpu'
        """
        return StreamedSplit(
            self.loader,
            self.positions,
            self.labels.to(device),
            self.indices,
            self.dataset,
            self.split,
            self.store_size,
            self.digest,
            self.describe,
            device,
            self.skipped,
            self.classes,
            workers=self.workers,
            on_bad_image=self.on_bad_image,
            skipped_paths=self._skipped_paths,
        )

    def gather(self, chosen: Int[Tensor, " m"]) -> ImagesUInt8:
        """Decode the examples at `chosen` (positions in this split) into uint8 on the device.

        Raises:
            BadImageError: one of them cannot be read.

        Example:
            >>> loader = lambda i: (torch.zeros(3, 4, 4, dtype=torch.uint8), 0)
            >>> s = StreamedSplit(loader, [0, 0], torch.tensor([0, 0]), torch.arange(2), "t",
            ...                   "test", 4, "", str)
            >>> s.gather(torch.tensor([1])).shape
            torch.Size([1, 3, 4, 4])
        """
        positions = [self.positions[int(i)] for i in chosen.tolist()]
        decoded = decode_examples(self.loader, positions, self.store_size, self.describe, "error")
        return torch.stack(decoded.images).to(self.device, non_blocking=True)

    def content_digest(self) -> str:
        """The content hash of the examples, from the source (file bytes or decoded pixels).

        Example:
            >>> loader = lambda i: (torch.zeros(3, 4, 4, dtype=torch.uint8), 0)
            >>> StreamedSplit(loader, [0], torch.tensor([0]), torch.arange(1), "t", "test", 4,
            ...               "abc", str).content_digest()
            'abc'
        """
        return self.digest


_CHUNK = 256
"""Images decoded per chunk when a split is made (one chunk per worker in flight)."""


def materialise(
    loader: Loader,
    positions: Sequence[int],
    *,
    dataset: str,
    split: str,
    store_size: int,
    describe: Callable[[int], str],
    memory_budget_mib: int = DEFAULT_MEMORY_BUDGET_MIB,
    on_bad_image: BadImagePolicy = "error",
    classes: tuple[str, ...] = (),
    workers: int = 0,
    source_digest: Callable[[], str] | None = None,
    labels: Sequence[int] | None = None,
    skipped_paths: Sequence[str] = (),
) -> ImageSplit | StreamedSplit:
    """Decode a source's examples once into an `ImageSplit`, or stream them over the budget.

    Under the budget every image is decoded once, here, in `workers` processes.
    Over it, a source that can key its examples without decoding them
    (`source_digest` and `labels`: a folder hashes its files' bytes) gives a
    `StreamedSplit` with nothing decoded; any other source is decoded once here
    to check each image, read its label and hash its pixels.

    Args:
        loader: `loader(i) -> (image, label)`.
        positions: which of the source's examples, in order.
        dataset: the name reports and cache keys use.
        split: `"train"` or `"test"`.
        store_size: side of the stored square images.
        describe: names position `i` (a file path) in messages.
        memory_budget_mib: the most MiB of uint8 images held at once.
        on_bad_image: `"error"` or `"skip"` (see `BadImagePolicy`).
        classes: the class names, if known.
        workers: worker processes that decode (0: this process).
        source_digest: the examples' content key, computed without decoding.
        labels: each position's label (needed with `source_digest`).
        skipped_paths: examples the source left out already (e.g. by their headers).

    Returns:
        An `ImageSplit` (resident, on the CPU) or a `StreamedSplit`.

    Raises:
        BadImageError: unreadable images with `on_bad_image="error"`, or none readable.
        ValueError: a non-positive budget or store size, or `source_digest` without `labels`.

    Example:
        >>> loader = lambda i: (torch.full((3, 6, 6), 9, dtype=torch.uint8), 1)
        >>> s = materialise(loader, [0, 1], dataset="toy", split="test", store_size=4,
        ...                 describe=str)
        >>> type(s).__name__, tuple(s.images.shape)
        ('ImageSplit', (2, 3, 4, 4))
        >>> type(materialise(loader, [0, 1], dataset="toy", split="test", store_size=4,
        ...                  describe=str, memory_budget_mib=0)).__name__
        'StreamedSplit'
    """
    if store_size < 1 or memory_budget_mib < 0:
        raise ValueError(
            f"store_size must be positive and memory_budget_mib non-negative, got {store_size} "
            f"and {memory_budget_mib}"
        )
    if source_digest is not None and (labels is None or len(labels) != len(positions)):
        raise ValueError("materialise: source_digest needs labels, one per position")
    over = len(positions) * 3 * store_size * store_size > memory_budget_mib * 2**20
    streamed: _StreamedOptions = {
        "workers": workers,
        "on_bad_image": on_bad_image,
        "classes": classes,
    }
    if over and source_digest is not None and labels is not None:
        log_skipped(skipped_paths, f"the {split} split of {dataset}")
        return StreamedSplit(
            loader,
            positions,
            torch.tensor(list(labels), dtype=torch.int64),
            torch.tensor(list(positions), dtype=torch.int64),
            dataset,
            split,
            store_size,
            source_digest(),
            describe,
            skipped=len(skipped_paths),
            skipped_paths=skipped_paths,
            **streamed,
        )
    kept: list[int] = []
    kept_labels: list[int] = []
    bad: list[str] = []
    bad_paths = list(skipped_paths)
    held = (
        None if over else torch.empty(len(positions), 3, store_size, store_size, dtype=torch.uint8)
    )
    # Over the budget (a source that cannot key itself): this one pass checks every image,
    # reads the labels and hashes the pixels; one chunk per worker is held at a time.
    digest = hashlib.sha256(describe_store(store_size).encode())
    chunks = [positions[start : start + _CHUNK] for start in range(0, len(positions), _CHUNK)]
    for chunk in decode_chunks(loader, describe, store_size, chunks, workers=workers):
        if held is None:
            digest.update(chunk.images.numpy().tobytes())
        else:
            held[len(kept) : len(kept) + len(chunk.kept)] = chunk.images
        kept += chunk.kept
        kept_labels += chunk.labels
        bad += chunk.bad
        bad_paths += [describe(position) for position in chunk.bad_positions]
    if bad and on_bad_image == "error":
        raise bad_image_error(bad)
    if not kept:
        raise BadImageError(f"none of the {len(positions)} images could be read")
    log_skipped(bad_paths, f"the {split} split of {dataset}")
    label_tensor = torch.tensor(kept_labels, dtype=torch.int64)
    kept_tensor = torch.tensor(kept, dtype=torch.int64)
    if held is not None:
        images = held if len(kept) == len(positions) else held[: len(kept)].clone()
        return ImageSplit(
            images,
            label_tensor,
            kept_tensor,
            dataset,
            split,
            skipped=len(bad_paths),
            classes=classes,
            skipped_paths=tuple(bad_paths),
        )
    digest.update(label_tensor.numpy().tobytes())
    digest.update(kept_tensor.numpy().tobytes())
    return StreamedSplit(
        loader,
        kept,
        label_tensor,
        kept_tensor,
        dataset,
        split,
        store_size,
        digest.hexdigest(),
        describe,
        skipped=len(bad_paths),
        skipped_paths=bad_paths,
        **streamed,
    )


def load_split(
    dataset: str,
    split: str,
    size: int,
    *,
    root: str | Path = "data",
    download: bool = True,
    seed: int = 0,
    subset: SubsetKind = "auto",
) -> ImageSplit:
    """The first `size` examples of a split (the seed's subset), as uint8 tensors on the CPU.

    Args:
        dataset: `"cifar10"` (torchvision's files) or `"synthetic"` (generated, offline).
        split: `"train"` or `"test"`.
        size: how many examples, from the start of the split.
        root: CIFAR-10's folder (unused for synthetic data).
        download: download CIFAR-10 when its files are missing.
        seed: selects the synthetic dataset, and seeds a random or stratified subset.
        subset: `"first"` (the seed's; `"auto"` means it here), `"random"` or `"stratified"`
            (see `choose_subset`); a subset that misses classes is warned about.

    Returns:
        The subset.

    Raises:
        ValueError: unknown dataset or split, or `size` outside `[1, split size]`.
        resfx.data.DatasetUnavailableError: CIFAR-10 is missing and not downloadable.

    Example:
        >>> s = load_split("synthetic", "train", 8, seed=0)
        >>> s.images.shape, s.dataset
        (torch.Size([8, 3, 32, 32]), 'synthetic')
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    if split not in CIFAR10_SIZES:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    check_subset_size(split, size, CIFAR10_SIZES[split])
    subset = resolve_subset(subset, shuffled=True)
    where = f"the {split} split of {dataset}"
    if dataset == "synthetic":
        source = SyntheticCIFAR10(train=split == "train", seed=seed)
        # Labelling all 50,000 costs 0.5 s: the "first" subset is checked against the 10
        # classes, which every split of the synthetic set has.
        every = [] if subset == "first" else source.labels(torch.arange(len(source))).tolist()
        indices = _subset_indices(every, size, subset, seed)
        labels = source.labels(indices)
        present = every or range(len(source.classes))
        warn_missing_classes(
            present, labels.tolist(), where=where, how=subset, classes=source.classes
        )
        return ImageSplit(source.images(indices), labels, indices, dataset, split)
    cifar = load_cifar10(root, train=split == "train", download=download)
    check_subset_size(split, size, len(cifar))
    indices = _subset_indices(cifar.targets, size, subset, seed)
    images = torch.from_numpy(cifar.data[indices.numpy()]).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(cifar.targets, dtype=torch.int64)[indices]
    warn_missing_classes(
        cifar.targets, labels.tolist(), where=where, how=subset, classes=cifar.classes
    )
    return ImageSplit(images, labels, indices, dataset, split)


def _subset_indices(
    labels: Sequence[int], size: int, subset: SubsetKind, seed: int
) -> Int[Tensor, " b"]:
    if subset == "first":
        return torch.arange(size)
    return torch.tensor(choose_subset(labels, size, subset, seed=seed), dtype=torch.int64)


@functools.lru_cache(maxsize=8)
def _normalisation(device: torch.device) -> tuple[Tensor, Tensor]:
    """ImageNet mean and std on `device`, made once: a host-to-GPU copy per batch would
    make the host wait for the GPU every step."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return mean, std


def preprocess(images: ImagesUInt8, image_size: int) -> Float[Tensor, "b 3 h_out w_out"]:
    """The seed's `Resize(image_size)` + `ToTensor()` + ImageNet `Normalize`, on a uint8 batch.

    Runs on the images' device. Normalising first and resizing second gives the
    same result as the other order (bilinear weights sum to one) on 49x fewer
    pixels for 32 -> 224. Bilinear, `align_corners=False`, no antialiasing: the
    filter PIL applies when enlarging (see the module notes for the rounding
    difference).

    Args:
        images: uint8 images `(b, 3, h, w)`.
        image_size: side of the square output.

    Returns:
        Normalised float32 images `(b, 3, image_size, image_size)`.

    Raises:
        ValueError: `image_size` is not positive.

    Example:
        >>> import torch
        >>> x = preprocess(torch.full((2, 3, 32, 32), 255, dtype=torch.uint8), 64)
        >>> x.shape, round(x[0, 0, 0, 0].item(), 4)
        (torch.Size([2, 3, 64, 64]), 2.2489)
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    mean, std = _normalisation(images.device)
    x = (images.to(torch.float32) / 255 - mean) / std
    if x.shape[-2:] != (image_size, image_size):
        x = torch.nn.functional.interpolate(
            x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=False
        )
    return x


def describe_preprocessing(image_size: int) -> str:
    """A stable text description of [`preprocess`][resfx.data.preprocess], for cache keys.

    Example:
        >>> describe_preprocessing(224)[:40]
        'uint8/255, normalize(mean=(0.485, 0.456,'
    """
    return (
        f"uint8/255, normalize(mean={IMAGENET_MEAN}, std={IMAGENET_STD}), "
        f"bilinear(size={image_size}, align_corners=False, antialias=False)"
    )


def epoch_order(
    n: int,
    *,
    epoch: int,
    seed: int,
    shuffle: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> Int[Tensor, " m"]:
    """This process's example order for one epoch, from torch's `DistributedSampler`.

    The order depends only on `(seed, epoch)`, so a resumed run replays it
    exactly, and with `world_size > 1` each rank gets its own equal share (the
    sampler repeats a few examples to even the shares out).

    Args:
        n: examples in the dataset.
        epoch: the epoch, from 0.
        seed: the shuffling seed.
        shuffle: permute (training) or keep the order.
        rank: this process's rank.
        world_size: number of processes.

    Returns:
        Indices into the dataset, `ceil(n / world_size)` of them.

    Example:
        >>> epoch_order(6, epoch=0, seed=0, shuffle=False, rank=1, world_size=2).tolist()
        [1, 3, 5]
    """
    # DistributedSampler only takes len() of its dataset; torch annotates it `Dataset`
    indices = cast("Dataset[int]", range(n))
    sampler: DistributedSampler[int] = DistributedSampler(
        indices, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
    )
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.int64)
