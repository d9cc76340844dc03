"""Decode batches in worker processes: torch's DataLoader over a batch-decoding Dataset.

Each worker decodes whole batches (load, convert, resize to the store size, stack) and sends
them back through shared memory; the DataLoader keeps the batches in order and prefetches two
per worker, so decoding overlaps whatever the consumer does with the batch before.
"""

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .._typing import ImagesUInt8
from ._decode import Loader, decode_examples


def default_workers() -> int:
    """The number of cores this process may run on (the CLI's default `--workers`).

    Example:
        >>> default_workers() >= 1
        True
    """
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class DecodedChunk:
    """One batch of a source's examples, decoded (positions are the source's).

    Args:
        images: the readable ones, uint8 `(k, 3, s, s)`.
        labels: their labels.
        kept: their source positions.
        bad: the unreadable ones, each named with its error.
        bad_positions: their source positions.
    """

    images: ImagesUInt8
    labels: list[int]
    kept: list[int]
    bad: list[str]
    bad_positions: list[int]


_Chunk = tuple[ImagesUInt8, list[int], list[int], list[str], list[int]]
_T = TypeVar("_T")


class _BatchDecoder(Dataset[_Chunk | Exception]):
    """`job[positions]` decodes one batch; picklable when its loader and `describe` are."""

    def __init__(self, loader: Loader, describe: Callable[[int], str], size: int) -> None:
        self.loader = loader
        self.describe = describe
        self.size = size

    def __getitem__(self, positions: list[int]) -> _Chunk | Exception:
        try:
            decoded = decode_examples(self.loader, positions, self.size, self.describe, "skip")
        except Exception as error:
            return error
        images = stack_or_empty(decoded.images, self.size)
        return images, decoded.labels, decoded.kept, decoded.bad, decoded.bad_positions


def _as_is(item: object) -> object:
    return item


def decode_chunks(
    loader: Loader,
    describe: Callable[[int], str],
    size: int,
    batches: Sequence[Sequence[int]],
    *,
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[DecodedChunk]:
    """Decode `batches` of source positions, in order, in `workers` processes (0: here).

    Unreadable images never raise here: they come back in `DecodedChunk.bad` for
    the caller's policy. Any other error in a worker is raised again here with
    its own type and message.

    Args:
        loader: `loader(i) -> (image, label)`.
        describe: names position `i` in messages.
        size: the store size.
        batches: the positions of each batch.
        workers: worker processes; 0 decodes in this process.
        pin_memory: put the images in pinned host memory (when CUDA is available).

    Yields:
        One `DecodedChunk` per batch.

    Raises:
        ValueError: `workers` is negative.

    Example:
        >>> loader = lambda i: (torch.full((3, 4, 4), i, dtype=torch.uint8), i)
        >>> [c.kept for c in decode_chunks(loader, str, 2, [[0, 1], [2]])]
        [[0, 1], [2]]
    """
    if workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    for result in run_batches(_BatchDecoder(loader, describe, size), batches, workers=workers):
        images, labels, kept, bad, bad_positions = result
        if pin_memory and torch.cuda.is_available() and not images.is_pinned():
            images = images.pin_memory()
        yield DecodedChunk(images, list(labels), list(kept), list(bad), list(bad_positions))


def run_batches(
    job: Dataset[_T | Exception], batches: Sequence[Sequence[int]], *, workers: int = 0
) -> Iterator[_T]:
    """`job[batch]` for each batch, in order, computed in `workers` processes (0: here).

    A job returns an exception instead of raising it (see `_BatchDecoder`); it is
    raised here, with its own type and message rather than the DataLoader's
    traceback text.

    Raises:
        ValueError: `workers` is negative.

    Example:
        >>> class Sums(Dataset):
        ...     def __getitem__(self, batch): return sum(batch)
        >>> list(run_batches(Sums(), [[1, 2], [3]]))
        [3, 3]
    """
    if workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    batches = [list(batch) for batch in batches]
    if workers == 0 or len(batches) < 2:
        results: Iterator[_T | Exception] = (job[batch] for batch in batches)
    else:
        results = iter(
            DataLoader(
                job,
                batch_size=None,
                sampler=batches,
                num_workers=min(workers, len(batches)),
                collate_fn=_as_is,
            )
        )
    for result in results:
        if isinstance(result, Exception):
            raise result
        yield result


def stack_or_empty(images: list[Tensor], size: int) -> ImagesUInt8:
    """The images stacked, or an empty `(0, 3, size, size)` batch.

    Example:
        >>> stack_or_empty([], 4).shape
        torch.Size([0, 3, 4, 4])
    """
    if images:
        return torch.stack(images)
    return torch.empty(0, 3, size, size, dtype=torch.uint8)
