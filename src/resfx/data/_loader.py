"""The one image pipeline: a split's examples, decoded and resized, in batches of uint8.

`train`, `probe`, `extract` and the feature cache all take their images from
`decoded_batches`, so there is one way in for pixels.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from .._typing import ImagesUInt8, Labels
from ._decode import BadImagePolicy, decode_examples
from ._device import ImageSplit, StreamedSplit


@dataclass(frozen=True)
class DecodedBatch:
    """One batch from `decoded_batches`.

    Args:
        positions: where each image sits in the split (`split.labels[positions]` are its labels).
        images: the images, uint8 at the split's store size, on the CPU.
        labels: their classes.
        bad: the images of this batch that could not be read (`on_bad_image="skip"`), named.
    """

    positions: Int[Tensor, " b"]
    images: ImagesUInt8
    labels: Labels
    bad: tuple[str, ...] = ()


def decoded_batches(
    split: ImageSplit | StreamedSplit,
    order: Int[Tensor, " m"] | Sequence[int],
    *,
    batch_size: int,
    on_bad_image: BadImagePolicy = "error",
) -> Iterator[DecodedBatch]:
    """The split's examples at `order`, decoded and resized, `batch_size` at a time, in order.

    Args:
        split: a resident split (sliced) or a streamed one (decoded here).
        order: positions in the split to visit.
        batch_size: positions per batch (a batch holds fewer when images are skipped).
        on_bad_image: `"error"` raises on an unreadable image; `"skip"` leaves it out and
            names it in `DecodedBatch.bad`.

    Yields:
        One `DecodedBatch` per `batch_size` positions.

    Raises:
        ValueError: `batch_size` is not positive.
        resfx.data.BadImageError: an unreadable image with `on_bad_image="error"`.

    Example:
        >>> from resfx.data import load_split
        >>> split = load_split("synthetic", "test", 5)
        >>> [b.positions.tolist() for b in decoded_batches(split, range(5), batch_size=2)]
        [[0, 1], [2, 3], [4]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = torch.as_tensor(order, dtype=torch.int64)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        if isinstance(split, ImageSplit):
            cpu = chosen.to(split.images.device)
            yield DecodedBatch(chosen, split.images[cpu].cpu(), split.labels[cpu].cpu())
            continue
        sources = [split.positions[int(i)] for i in chosen]
        decoded = decode_examples(
            split.loader, sources, split.store_size, split.describe, on_bad_image
        )
        kept = set(decoded.kept)
        mask = torch.tensor([source in kept for source in sources], dtype=torch.bool)
        positions = chosen[mask]
        images = (
            torch.stack(decoded.images)
            if decoded.images
            else torch.empty(0, 3, split.store_size, split.store_size, dtype=torch.uint8)
        )
        yield DecodedBatch(positions, images, split.labels.cpu()[positions], tuple(decoded.bad))


__all__ = ["DecodedBatch", "decoded_batches"]
