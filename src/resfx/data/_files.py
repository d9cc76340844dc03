"""Image files in, uint8 squares out: PIL decoding (DCT-downscaled for JPEGs), header checks and
the byte hash that keys a folder split without decoding it.

Measured on this 2-core machine (loaded, 2026-12-05), one core, 200 JPEGs of 500x375 (quality 90)
to a 64 px square, four rounds: PIL decode + PIL resize 173-531 images/s, PIL with `Image.draft`
335-598, PIL decode + uint8 tensor resize 146-361, `torchvision.io.decode_jpeg` + tensor resize
166-616. The draft decode is the fastest in every round but one; it is the default, keeping
the JPEG's sides at least twice the target (1/2 at 64 px from 375, 1/4 at 32 px: 270-555 images/s
at 64 px, within 1.2 % of the full decode's features; see `decode_image_file`).
"""

import hashlib
import io
import os
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Shaped
from PIL import Image
from torch import Tensor

from ._decode import resize_to_square, to_uint8_image

_PIL_RGB_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})
"""Modes PIL converts to RGB itself; others (16-bit, float) go through `to_uint8_image`."""


def resized_side(width: int, height: int, size: int) -> tuple[int, int]:
    """`(width, height)` with the shorter side at `size`, as torchvision's `Resize(size)` rounds it.

    Example:
        >>> resized_side(500, 375, 64)
        (85, 64)
    """
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def regular_file(path: str) -> str:
    """`path`, checked to be a regular file: opening a FIFO named `x.jpg` would block forever.

    Raises:
        OSError: it is a FIFO, socket or device (or is missing).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> regular_file(folder)
        Traceback (most recent call last):
        ...
        OSError: ... is not a regular file (a FIFO, socket or device?); only regular files are read as images
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(
            f"{path} is not a regular file (a FIFO, socket or device?); only regular files "
            f"are read as images"
        )
    return path


def decode_image_file(
    source: str | bytes, size: int, *, draft: bool = True
) -> Shaped[Tensor, "3 s s"]:
    """Decode an image file to uint8 RGB `(3, size, size)`: shorter side to `size`, centre crop.

    The resize is PIL's bilinear filter (antialiased when shrinking, as
    torchvision's `Resize` on a PIL image); the crop is `CenterCrop`'s. With
    `draft`, a JPEG is first decoded at 1/2, 1/4 or 1/8 scale in the DCT
    (`Image.draft`), the smallest whose sides stay at least `2 * size` (so the
    antialiased resize still shrinks by 2x or more). Measured on noisy 500x375
    JPEGs to 32 and 64 px: 1.1-1.2 grey levels apart from the full decode on
    average (at most 8-11), pooled features of a random ResNet 1.1-1.2 % apart
    (relative L2); keeping sides at least `size` instead moved them 4.9 levels
    and 5.3 % at 32 px. An image already `size x size` is kept bit for bit.

    Args:
        source: the file's path or its bytes.
        size: side of the square.
        draft: allow the DCT-downscaled JPEG decode.

    Returns:
        The image.

    Raises:
        OSError: PIL cannot read the file (missing, truncated, not an image).

    Example:
        >>> buffer = io.BytesIO(); Image.new("RGB", (50, 30), (9, 8, 7)).save(buffer, "PNG")
        >>> decode_image_file(buffer.getvalue(), 16)[:, 0, 0].tolist()
        [9, 8, 7]
    """
    with Image.open(
        io.BytesIO(source) if isinstance(source, bytes) else regular_file(source)
    ) as image:
        where = "<bytes>" if isinstance(source, bytes) else source
        if image.mode not in _PIL_RGB_MODES:
            return resize_to_square(to_uint8_image(image, where), size)
        if draft and image.format == "JPEG":
            image.draft("RGB", (2 * size, 2 * size))
        rgb = image.convert("RGB")
    if rgb.size != (size, size):
        width, height = resized_side(*rgb.size, size)
        left, top = round((width - size) / 2.0), round((height - size) / 2.0)
        rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
        rgb = rgb.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()


class FileLoader:
    """`loader(i) -> (image, label)` over `(path, label)` files, decoding straight to the store size.

    Picklable (worker processes under any start method get a copy).

    Args:
        files: `(path, label)` pairs; positions index into them.
        size: the store size.
        draft: allow the DCT-downscaled JPEG decode (see `decode_image_file`).

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/a.png"; Image.new("RGB", (9, 6)).save(path)
        >>> image, label = FileLoader([(path, 3)], 4)(0)
        >>> tuple(image.shape), label
        ((3, 4, 4), 3)
    """

    def __init__(self, files: Sequence[tuple[str, int]], size: int, *, draft: bool = True) -> None:
        self.files = tuple(files)
        self.size = size
        self.draft = draft

    def __call__(self, position: int) -> tuple[Shaped[Tensor, "3 s s"], int]:
        path, label = self.files[position]
        return decode_image_file(path, self.size, draft=self.draft), label

    def describe(self, position: int) -> str:
        """The file's path (for messages).

        Example:
            >>> FileLoader([("x/a.jpg", 0)], 4).describe(0)
            'x/a.jpg'
        """
        return self.files[position][0]

    def read_bytes(self, position: int) -> bytes:
        """The file's bytes (for a decoder elsewhere, e.g. nvjpeg).

        Raises:
            OSError: the file cannot be read.

        Example:
            >>> import tempfile
            >>> path = tempfile.mkdtemp() + "/a.bin"; _ = Path(path).write_bytes(b"ab")
            >>> FileLoader([(path, 0)], 4).read_bytes(0)
            b'ab'
        """
        return Path(self.files[position][0]).read_bytes()


def readable_header(path: str) -> bool:
    """Whether PIL recognises the file from its header (nothing is decoded).

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/a.jpg"; _ = Path(path).write_bytes(b"not an image")
        >>> readable_header(path)
        False
    """
    try:
        with Image.open(regular_file(path)):
            return True
    except (OSError, SyntaxError, ValueError):
        return False


def _file_digest(path: str) -> str:
    try:
        with open(regular_file(path), "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        # hashed as unreadable: the pass reports it (or skips it) when it decodes
        return f"unreadable:{type(error).__name__}"


def files_digest(
    files: Sequence[tuple[str, int]], root: str | Path, description: str, *, threads: int = 1
) -> str:
    """SHA-256 of the files' bytes, their paths under `root`, labels and the decoding, in order.

    The key of a folder split that is too large to hold: no image is decoded to
    compute it, and a changed byte in any file changes it. Files are hashed in
    `threads` threads (hashing releases the GIL).

    Args:
        files: `(path, label)` pairs, in the split's order.
        root: the folder the paths are named relative to.
        description: how the images are decoded and resized (`describe_store`).
        threads: threads hashing files at once.

    Returns:
        The hex digest.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()); _ = (root / "a").write_bytes(b"1")
        >>> one = files_digest([(str(root / "a"), 0)], root, "d")
        >>> _ = (root / "a").write_bytes(b"2")
        >>> one == files_digest([(str(root / "a"), 0)], root, "d")
        False
    """
    digest = hashlib.sha256(f"files|{description}\n".encode())
    paths = [path for path, _ in files]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        hashes = pool.map(_file_digest, paths, chunksize=64)
        for (path, label), file_hash in zip(files, hashes, strict=True):
            name = Path(os.path.relpath(path, root)).as_posix()
            digest.update(f"{name}|{label}|{file_hash}\n".encode())
    return digest.hexdigest()
