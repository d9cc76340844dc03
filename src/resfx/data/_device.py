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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.utils.data import DistributedSampler

from .._typing import Images, ImagesUInt8, Labels
from ._cifar import CIFAR10_SIZES, IMAGENET_MEAN, IMAGENET_STD, check_subset_size, load_cifar10
from ._synthetic import SyntheticCIFAR10

DATASETS: tuple[str, ...] = ("cifar10", "synthetic")
"""Names `load_split` (and `TrainingArgs.data`) accept."""


@dataclass(frozen=True)
class ImageSplit:
    """A subset of one split, held as tensors: uint8 images, labels, and where they came from.

    Args:
        images: the images, uint8 `(n, 3, 32, 32)`, channels first.
        labels: their classes.
        indices: each image's position in the full split.
        dataset: `"cifar10"` or `"synthetic"`.
        split: `"train"` or `"test"`.

    Raises:
        ValueError: the name of the dataset or split is unknown.

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

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; expected one of {DATASETS}")
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
            self.images.to(device), self.labels.to(device), self.indices, self.dataset, self.split
        )


def load_split(
    dataset: str,
    split: str,
    size: int,
    *,
    root: str | Path = "data",
    download: bool = True,
    seed: int = 0,
) -> ImageSplit:
    """The first `size` examples of a split (the seed's subset), as uint8 tensors on the CPU.

    Args:
        dataset: `"cifar10"` (torchvision's files) or `"synthetic"` (generated, offline).
        split: `"train"` or `"test"`.
        size: how many examples, from the start of the split.
        root: CIFAR-10's folder (unused for synthetic data).
        download: download CIFAR-10 when its files are missing.
        seed: selects the synthetic dataset (unused for CIFAR-10).

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
    indices = torch.arange(size)
    if dataset == "synthetic":
        source = SyntheticCIFAR10(train=split == "train", seed=seed)
        return ImageSplit(source.images(indices), source.labels(indices), indices, dataset, split)
    cifar = load_cifar10(root, train=split == "train", download=download)
    check_subset_size(split, size, len(cifar))
    images = torch.from_numpy(cifar.data[:size]).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(cifar.targets[:size], dtype=torch.int64)
    return ImageSplit(images, labels, indices, dataset, split)


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
    sampler = DistributedSampler(
        range(n), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
    )
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.int64)


def iterate_batches(
    split: ImageSplit,
    order: Int[Tensor, " m"],
    batch_size: int,
    *,
    image_size: int,
    skip_batches: int = 0,
) -> Iterator[tuple[Images, Labels]]:
    """Preprocessed batches of `split` in the given order, built on the split's device.

    Args:
        split: the images and labels (move them to the device first).
        order: the examples to visit, e.g. from [`epoch_order`][resfx.data.epoch_order].
        batch_size: examples per batch; the last batch may be smaller.
        image_size: side of the resized images.
        skip_batches: batches to leave out at the start (to resume mid-epoch).

    Yields:
        `(images, labels)`: normalised float32 images `(b, 3, image_size, image_size)` and labels.

    Raises:
        ValueError: `batch_size` is not positive.

    Example:
        >>> import torch
        >>> s = load_split("synthetic", "test", 5)
        >>> [tuple(x.shape) for x, _ in iterate_batches(s, torch.arange(5), 2, image_size=32)]
        [(2, 3, 32, 32), (2, 3, 32, 32), (1, 3, 32, 32)]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = order.to(split.images.device)
    for start in range(skip_batches * batch_size, len(order), batch_size):
        chosen = order[start : start + batch_size]
        yield preprocess(split.images[chosen], image_size), split.labels[chosen]
