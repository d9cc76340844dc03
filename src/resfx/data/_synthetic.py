"""A learnable stand-in for CIFAR-10, generated from a seed: same shapes, sizes and classes.

Every image and label is a pure function of `(seed, split, index)`, computed
with an integer hash on tensors: nothing is stored, any subset is generated in
one vectorised call, and the same index always gives the same image on every
machine. Each class has its own colour cast and stripe orientation, blurred by
per-image brightness, stripe phase and per-pixel noise, so a linear head on
frozen (even randomly initialised) features learns it well above chance,
but not instantly.
"""

import math
from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float, Int
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .._typing import ImagesUInt8, Labels
from ._cifar import CIFAR10_SIZES

_MASK32 = 0xFFFFFFFF
_SIDE = 32
_PIXELS = 3 * _SIDE * _SIDE
_GOLDEN = 0x9E3779B9
_STREAM_LABEL, _STREAM_IMAGE, _STREAM_PIXEL = 0, 1, 2

# Per-class colour casts, each channel in [-1, 1]; no two classes share one.
_PALETTE = torch.tensor(
    [
        [1.0, -0.5, -0.5],
        [-0.5, 1.0, -0.5],
        [-0.5, -0.5, 1.0],
        [1.0, 1.0, -1.0],
        [-1.0, 1.0, 1.0],
        [1.0, -1.0, 1.0],
        [0.5, 0.5, 0.5],
        [-0.5, -0.5, -0.5],
        [1.0, 0.0, -1.0],
        [-1.0, 0.0, 1.0],
    ]
)


def _hash32(x: Int[Tensor, "*shape"]) -> Int[Tensor, "*shape"]:
    """A 32-bit integer mix (xorshift-multiply); multipliers below 2**31 keep int64 exact.

    In place on its own copy: a 10k-image subset is 30M lanes, and each temporary
    of that size is fresh memory to fault in.
    """
    x = x & _MASK32
    x ^= x >> 16
    x.mul_(0x7FEB352D).bitwise_and_(_MASK32)
    x ^= x >> 15
    x.mul_(0x2C1B3C6D).bitwise_and_(_MASK32)
    x ^= x >> 16
    return x


def _uniform(
    seed: int, train: bool, stream: int, indices: Int[Tensor, " b"], lanes: int
) -> Float[Tensor, "b lanes"]:
    """`lanes` uniform numbers in [0, 1) per index, a pure function of all arguments."""
    salt = (seed & _MASK32) * 8 + 4 * int(train) + stream
    base = _hash32(torch.tensor(salt, dtype=torch.int64))
    per_index = _hash32(indices.to(torch.int64) ^ base)
    lane = torch.arange(lanes, dtype=torch.int64) * _GOLDEN
    return _hash32(per_index[:, None] + lane[None, :]).to(torch.float32).div_(2.0**32)


class SyntheticCIFAR10(Dataset[tuple[Any, int]]):
    """A synthetic dataset with CIFAR-10's shapes: 32x32 RGB, 10 classes, 50,000 / 10,000 images.

    Labelled `"synthetic"` wherever resfx reports on it. Indexing returns a PIL
    image (passed through `transform`) and a label, like torchvision's CIFAR10,
    so the seed's pipeline runs on it unchanged; [`images`][resfx.data.SyntheticCIFAR10.images]
    and [`labels`][resfx.data.SyntheticCIFAR10.labels] generate any subset at
    once as tensors.

    Args:
        train: the 50,000-image training split (`True`) or the 10,000-image test split.
        seed: selects the dataset; the same seed gives the same images everywhere.
        transform: applied to each PIL image on access.

    Example:
        >>> data = SyntheticCIFAR10(train=False, seed=0)
        >>> len(data), data.images(torch.arange(4)).shape
        (10000, torch.Size([4, 3, 32, 32]))
    """

    name: str = "synthetic"

    def __init__(
        self,
        train: bool = True,
        *,
        seed: int = 0,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.train = train
        self.seed = seed
        self.transform = transform
        self.classes = [f"synthetic class {k}" for k in range(len(_PALETTE))]

    def __len__(self) -> int:
        return CIFAR10_SIZES["train" if self.train else "test"]

    def _check_indices(self, indices: Int[Tensor, " b"]) -> None:
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= len(self)):
            raise IndexError(
                f"indices must be in [0, {len(self)}) for the synthetic "
                f"{'train' if self.train else 'test'} split, got values from "
                f"{int(indices.min())} to {int(indices.max())}"
            )

    def labels(self, indices: Int[Tensor, " b"]) -> Labels:
        """The labels of the examples at `indices`, in `[0, 10)`.

        Raises:
            IndexError: an index is outside the split.

        Example:
            >>> SyntheticCIFAR10(seed=0).labels(torch.arange(3)).shape
            torch.Size([3])
        """
        self._check_indices(indices)
        draw = _uniform(self.seed, self.train, _STREAM_LABEL, indices, 1)[:, 0]
        return (draw * len(self.classes)).to(torch.int64).clamp_(max=len(self.classes) - 1)

    def images(self, indices: Int[Tensor, " b"]) -> ImagesUInt8:
        """The images at `indices` as one uint8 tensor `(b, 3, 32, 32)`, channels first.

        Raises:
            IndexError: an index is outside the split.

        Example:
            >>> x = SyntheticCIFAR10(seed=1).images(torch.tensor([0, 7]))
            >>> x.dtype, tuple(x.shape)
            (torch.uint8, (2, 3, 32, 32))
        """
        labels = self.labels(indices)
        per_image = _uniform(self.seed, self.train, _STREAM_IMAGE, indices, 2)
        noise = _uniform(self.seed, self.train, _STREAM_PIXEL, indices, _PIXELS)
        colour = _PALETTE[labels][:, :, None, None]
        angle = labels.to(torch.float32) * (math.pi / len(self.classes))
        coords = torch.arange(_SIDE, dtype=torch.float32)
        along = (
            coords[None, None, :] * torch.cos(angle)[:, None, None]
            + coords[None, :, None] * torch.sin(angle)[:, None, None]
        )
        stripes = torch.cos(2 * math.pi * (along / 8 + per_image[:, 0, None, None]))
        brightness = 50 * (per_image[:, 1] - 0.5)
        # The sum in its written order, accumulated in place (the same roundings, fewer
        # image-sized temporaries).
        pixels = 128 + 30 * colour + 30 * stripes[:, None]
        pixels += brightness[:, None, None, None]
        pixels += noise.view(-1, 3, _SIDE, _SIDE).sub_(0.5).mul_(90)
        return pixels.round_().clamp_(0, 255).to(torch.uint8)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is outside the synthetic split of {len(self)} images")
        position = torch.tensor([index % len(self)])
        array = self.images(position)[0].permute(1, 2, 0).numpy()
        image = Image.fromarray(array)
        label = int(self.labels(position)[0])
        return (image if self.transform is None else self.transform(image)), label
