"""JPEG batches decoded on the GPU by nvjpeg, with the CPU decoding what nvjpeg refuses.

Worker processes only read the files' bytes; the consumer hands each batch to
`torchvision.io.decode_jpeg(list_of_byte_tensors, device="cuda")` and resizes on
the GPU. Files that are not JPEGs (by their first bytes), and JPEGs that nvjpeg
refuses (CMYK, some progressive or damaged files), are decoded on the CPU with
PIL (full decode, no draft) and sent over.
"""

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_jpeg

from ._decode import resize_to_square
from ._files import FileLoader, decode_image_file
from ._pool import DecodedChunk, run_batches, stack_or_empty

_JPEG_START = b"\xff\xd8\xff"

GpuDecode = Callable[[list[Tensor], torch.device], list[Tensor]]
"""`decode(byte_tensors, device) -> images`: uint8 RGB `(3, h, w)` each, on `device`."""

CpuDecode = Callable[[bytes, int], Tensor]
"""`decode(file_bytes, size) -> image`: uint8 RGB `(3, size, size)` on the CPU."""


def nvjpeg_decode(blobs: list[Tensor], device: torch.device) -> list[Tensor]:
    """torchvision's batched nvjpeg decode of JPEG byte tensors to RGB on `device`.

    Example:
        >>> callable(nvjpeg_decode)
        True
    """
    return decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device)


def _cpu_full_decode(blob: bytes, size: int) -> Tensor:
    return decode_image_file(blob, size, draft=False)


def decode_jpeg_batch(
    blobs: Sequence[bytes],
    size: int,
    device: torch.device | str,
    *,
    gpu_decode: GpuDecode = nvjpeg_decode,
    cpu_decode: CpuDecode = _cpu_full_decode,
) -> tuple[list[Tensor | None], dict[int, str]]:
    """Decode files' bytes to uint8 `(3, size, size)` on `device`: JPEGs by `gpu_decode`
    in one batch, the rest (and JPEGs it refuses) by `cpu_decode`.

    When the batched call fails, each JPEG is tried alone, so one refused file
    costs only itself the trip to the CPU.

    Args:
        blobs: the files' bytes.
        size: the store size (shorter side to `size`, bilinear antialias, centre crop).
        device: the CUDA device.
        gpu_decode: the batch decoder (nvjpeg; tests inject a fake).
        cpu_decode: the fallback.

    Returns:
        One image per blob (`None` where neither decoder could read it) and, for
            those, the error by blob index (`"Error: message"`).

    Example:
        >>> fake = lambda blobs, device: [torch.zeros(3, 8, 6, dtype=torch.uint8) for _ in blobs]
        >>> images, errors = decode_jpeg_batch([b"\\xff\\xd8\\xff..."], 4, "cpu", gpu_decode=fake)
        >>> tuple(images[0].shape), errors
        ((3, 4, 4), {})
    """
    device = torch.device(device)
    images: list[Tensor | None] = [None] * len(blobs)
    jpegs = [i for i, blob in enumerate(blobs) if blob[:3] == _JPEG_START]
    on_cpu = sorted(set(range(len(blobs))) - set(jpegs))
    tensors = {i: torch.frombuffer(bytearray(blobs[i]), dtype=torch.uint8) for i in jpegs}
    try:
        decoded = dict(zip(jpegs, gpu_decode([tensors[i] for i in jpegs], device), strict=True))
    except RuntimeError:
        decoded = {}
        for i in jpegs:
            try:
                decoded[i] = gpu_decode([tensors[i]], device)[0]
            except RuntimeError:
                on_cpu.append(i)
    for i, image in decoded.items():
        images[i] = resize_to_square(image, size)
    errors = {}
    for i in sorted(on_cpu):
        try:
            images[i] = cpu_decode(blobs[i], size).to(device, non_blocking=True)
        except (OSError, RuntimeError, ValueError, SyntaxError) as error:
            errors[i] = f"{type(error).__name__}: {str(error)[:120]}"
    return images, errors


_Read = tuple[list[bytes], list[int], list[tuple[int, str]]]


class _BatchReader(Dataset[_Read]):
    """`job[positions]` reads one batch's files (in a worker); picklable."""

    def __init__(self, files: FileLoader) -> None:
        self.files = files

    def __getitem__(self, positions: list[int]) -> _Read:
        blobs: list[bytes] = []
        read: list[int] = []
        bad: list[tuple[int, str]] = []
        for position in positions:
            try:
                blobs.append(self.files.read_bytes(position))
                read.append(position)
            except OSError as error:
                bad.append((position, f"{type(error).__name__}: {str(error)[:120]}"))
        return blobs, read, bad


def gpu_decoded_chunks(
    files: FileLoader,
    batches: Sequence[Sequence[int]],
    device: torch.device | str,
    *,
    workers: int = 0,
    gpu_decode: GpuDecode = nvjpeg_decode,
) -> Iterator[DecodedChunk]:
    """Batches of `files` read in `workers` processes and decoded on `device` (see
    `decode_jpeg_batch`), in order.

    Args:
        files: the folder's files.
        batches: the positions of each batch.
        device: the CUDA device.
        workers: processes reading the files (0: this one).
        gpu_decode: the batch decoder.

    Yields:
        One `DecodedChunk` per batch, its images on `device`.

    Example:
        >>> fake = lambda blobs, device: [torch.zeros(3, 8, 8, dtype=torch.uint8) for _ in blobs]
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.jpg"; _ = path.write_bytes(b"\\xff\\xd8\\xff")
        >>> chunk = next(gpu_decoded_chunks(FileLoader([(str(path), 1)], 4), [[0]], "cpu",
        ...                                 gpu_decode=fake))
        >>> tuple(chunk.images.shape), chunk.labels
        ((1, 3, 4, 4), [1])
    """
    for blobs, read, unread in run_batches(_BatchReader(files), batches, workers=workers):
        images, errors = decode_jpeg_batch(blobs, files.size, device, gpu_decode=gpu_decode)
        kept = [p for p, image in zip(read, images, strict=True) if image is not None]
        bad = sorted(unread + [(read[i], why) for i, why in errors.items()])
        yield DecodedChunk(
            stack_or_empty([image for image in images if image is not None], files.size).to(device),
            [files.files[p][1] for p in kept],
            kept,
            [f"{files.describe(p)} ({why})" for p, why in bad],
            [p for p, _ in bad],
        )
