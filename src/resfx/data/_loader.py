"""The one image pipeline: a split's examples, decoded and resized, in batches of uint8.

`train`, `probe`, `extract` and the feature cache all take their images from
`decoded_batches`, so there is one way in for pixels.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from .._typing import Images, ImagesUInt8, Labels
from ._decode import BadImagePolicy, bad_image_error, log_skipped
from ._device import ImageSplit, StreamedSplit, preprocess
from ._files import FileLoader
from ._gpu import gpu_decoded_chunks
from ._pool import decode_chunks


@dataclass(frozen=True)
class DecodedBatch:
    """One batch from `decoded_batches`.

    Args:
        positions: where each image sits in the split (`split.labels[positions]` are its labels).
        images: the images, uint8 at the split's store size, on the CPU.
        labels: their classes.
        bad: the images of this batch that could not be read (`on_bad_image="skip"`), named.

    Example:
        >>> batch = DecodedBatch(torch.tensor([4]), torch.zeros(1, 3, 2, 2, dtype=torch.uint8),
        ...                      torch.tensor([1]))
        >>> batch.positions.tolist(), batch.bad
        ([4], ())
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
    workers: int = 0,
    pin_memory: bool = False,
    jpeg_device: torch.device | str | None = None,
) -> Iterator[DecodedBatch]:
    """The split's examples at `order`, decoded and resized, `batch_size` at a time, in order.

    A streamed split's batches are decoded in `workers` processes, ahead of the
    consumer (two batches per worker in flight), each image once per pass.
    Images that fail only now are added to `split.skipped_paths` and logged at
    the end of the pass.

    Args:
        split: a resident split (sliced) or a streamed one (decoded here).
        order: positions in the split to visit.
        batch_size: positions per batch (a batch holds fewer when images are skipped).
        on_bad_image: `"error"` raises on an unreadable image; `"skip"` leaves it out and
            names it in `DecodedBatch.bad`.
        workers: processes decoding a streamed split (0: this process).
        pin_memory: images in pinned host memory (when CUDA is available), for
            asynchronous copies to the GPU.
        jpeg_device: a CUDA device: a streamed image folder's JPEGs are decoded
            there by nvjpeg (see `decode_jpeg_batch`) and the images come back on
            it; the workers only read the files. Pixels differ slightly from the
            CPU decode (`describe_store(size, "nvjpeg")`).

    Yields:
        One `DecodedBatch` per `batch_size` positions.

    Raises:
        ValueError: `batch_size` is not positive, `workers` negative, or `jpeg_device`
            given for a split that is not a streamed image folder.
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
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if isinstance(split, ImageSplit):
        if jpeg_device is not None:
            raise ValueError("jpeg_device decodes a streamed image folder; this split is held")
        for chosen in batches:
            cpu = chosen.to(split.images.device)
            images = split.images[cpu].cpu()
            yield DecodedBatch(
                chosen,
                images.pin_memory() if _pins(pin_memory) else images,
                split.labels[cpu].cpu(),
            )
        return
    sources = [[split.positions[int(i)] for i in chosen] for chosen in batches]
    if jpeg_device is None:
        chunks = decode_chunks(
            split.loader,
            split.describe,
            split.store_size,
            sources,
            workers=workers,
            pin_memory=pin_memory,
        )
    elif isinstance(split.loader, FileLoader):
        chunks = gpu_decoded_chunks(split.loader, sources, jpeg_device, workers=workers)
    else:
        raise ValueError(f"jpeg_device decodes image files; {split.dataset} is not an image folder")
    skipped: list[str] = []
    for chosen, source, chunk in zip(batches, sources, chunks, strict=True):
        if chunk.bad and on_bad_image == "error":
            raise bad_image_error(chunk.bad)
        kept = set(chunk.kept)
        mask = torch.tensor([position in kept for position in source], dtype=torch.bool)
        positions = chosen[mask]
        skipped += split.record_skipped([split.describe(p) for p in chunk.bad_positions])
        yield DecodedBatch(positions, chunk.images, split.labels.cpu()[positions], tuple(chunk.bad))
    log_skipped(skipped, f"the {split.split} split of {split.dataset} (this pass)")


def _pins(pin_memory: bool) -> bool:
    return pin_memory and torch.cuda.is_available()


def iterate_batches(
    split: ImageSplit | StreamedSplit,
    order: Int[Tensor, " m"],
    batch_size: int,
    *,
    image_size: int,
    skip_batches: int = 0,
) -> Iterator[tuple[Images, Labels]]:
    """Preprocessed batches of `split` in the given order, built on the split's device.

    A streamed split is decoded by [`decoded_batches`][resfx.data.decoded_batches]
    in its `workers` processes with its `on_bad_image` policy (a batch holds fewer
    examples when an image is skipped), pinned and copied asynchronously to a GPU.

    Args:
        split: the images and labels (move them to the device first); a streamed
            split decodes each batch here.
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
        >>> from resfx.data import load_split
        >>> s = load_split("synthetic", "test", 5)
        >>> [tuple(x.shape) for x, _ in iterate_batches(s, torch.arange(5), 2, image_size=32)]
        [(2, 3, 32, 32), (2, 3, 32, 32), (1, 3, 32, 32)]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    labels = split.labels
    order = order[skip_batches * batch_size :]
    if isinstance(split, StreamedSplit):
        for batch in decoded_batches(
            split,
            order,
            batch_size=batch_size,
            on_bad_image=split.on_bad_image,
            workers=split.workers,
            pin_memory=split.device.type == "cuda",
        ):
            images = batch.images.to(split.device, non_blocking=True)
            yield preprocess(images, image_size), labels[batch.positions.to(labels.device)]
        return
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        yield (
            preprocess(split.gather(chosen.to(split.device)), image_size),
            labels[chosen.to(labels.device)],
        )


__all__ = ["DecodedBatch", "decoded_batches", "iterate_batches"]
