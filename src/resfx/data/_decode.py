"""Any image in, one uint8 size out: PIL, uint8 or float images decoded and resized on the way in.

Every source (a folder of files, any map-style Dataset) is a `loader(i) -> (image,
label)`; images become uint8 `(3, s, s)` once, at a common store size `s`
(shorter side resized with antialiased bilinear filtering, then centre-cropped;
an image already `s x s` is kept bit for bit).
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Shaped
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

_log = logging.getLogger("resfx.data")

BadImagePolicy = Literal["error", "skip"]
"""`"error"`: stop, naming every unreadable file; `"skip"`: leave them out and count them."""

Loader = Callable[[int], tuple[Any, int]]
"""`loader(i) -> (image, label)`: a PIL image, a uint8 tensor or a float tensor in [0, 1]."""


class BadImageError(ValueError):
    """Images could not be read or decoded; the message lists every path (or index) and why.

    Example:
        >>> issubclass(BadImageError, ValueError)
        True
    """


_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
"""PIL modes of one 16- or 32-bit channel, which `convert("RGB")` clips at 255 (saturates)."""


def _wide_grey(image: Image.Image, where: str) -> Tensor:
    """A 16-bit or 32-bit one-channel PIL image as a float tensor in [0, 1], by its range.

    16-bit modes (`I;16*`) are divided by 65535; `I` (32-bit integers: how PIL opens some
    16-bit files) likewise when its values fit 16 bits, else it is refused; `F` (32-bit
    floats) is kept as is and must be in [0, 1], as float tensors must.
    """
    array = np.asarray(image)
    if image.mode == "F":
        return torch.from_numpy(array.astype(np.float32))
    if image.mode == "I" and array.size and not 0 <= array.min() <= array.max() <= 65535:
        raise ValueError(
            f"{where}: a 32-bit integer image (PIL mode 'I') with values from {array.min()} to "
            f"{array.max()}, outside the 16-bit range [0, 65535] that resfx scales from; convert "
            f"it to 8 or 16 bits first"
        )
    return torch.from_numpy(array.astype(np.float64) / 65535)


def _check_finite(image: Tensor, where: str) -> None:
    finite = torch.isfinite(image)
    if not bool(finite.all()):
        raise ValueError(
            f"{where}: the image has {int((~finite).sum())} NaN or infinite values; fix or "
            f"drop it (a NaN would be stored as black)"
        )


def to_uint8_image(image: Any, where: str) -> Shaped[Tensor, "3 h w"]:
    """Turn a PIL image, a uint8 tensor or a [0, 1] float tensor into uint8 RGB `(3, h, w)`.

    Grey images are repeated to three channels, an alpha channel is dropped;
    float images are scaled by 255 and rounded (the inverse of `ToTensor`).
    PIL images of 16 or 32 bits per pixel (modes `I;16`, `I;16B`, `I;16L`,
    `I;16N`, `I`, `F`) are scaled by their range (65535 for the integer modes,
    [0, 1] for `F`) rather than clipped at 255.

    Args:
        image: the image; tensors are channels-first `(c, h, w)` or `(h, w)`.
        where: the file or index, for messages.

    Returns:
        The uint8 image.

    Raises:
        TypeError: not a PIL image or a tensor, or a tensor of another dtype.
        ValueError: a float image outside [0, 1] (normalised already?), with NaN or
            infinite values, a mode `I` image beyond 16 bits, or a shape that is not
            an image.

    Example:
        >>> to_uint8_image(Image.new("L", (4, 2), 255), "x").shape
        torch.Size([3, 2, 4])
        >>> to_uint8_image(Image.new("I;16", (1, 1), 32896), "x").flatten().tolist()
        [128, 128, 128]
    """
    if isinstance(image, Image.Image):
        if image.mode in _WIDE_MODES:
            image = _wide_grey(image, where)
        else:
            array = np.asarray(image.convert("RGB"))
            return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    if not isinstance(image, Tensor):
        raise TypeError(
            f"{where}: expected a PIL image or a tensor, got {type(image).__name__}; return "
            f"(image, label) pairs from the dataset"
        )
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
        raise ValueError(
            f"{where}: expected an image tensor (c, h, w) with 1, 3 or 4 channels, got shape "
            f"{tuple(image.shape)}"
        )
    if image.is_floating_point():
        _check_finite(image, where)
        low, high = float(image.min()), float(image.max())
        if low < 0 or high > 1:
            raise ValueError(
                f"{where}: float images must be in [0, 1] (as ToTensor gives), got values from "
                f"{low:.3g} to {high:.3g}; pass them before normalisation"
            )
        image = (image * 255).round().to(torch.uint8)
    elif image.dtype != torch.uint8:
        raise TypeError(f"{where}: expected uint8 or float images, got dtype {image.dtype}")
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image[:3].contiguous()


def resize_to_square(image: Shaped[Tensor, "3 h w"], size: int) -> Shaped[Tensor, "3 s s"]:
    """Resize the shorter side to `size` (bilinear, antialiased) and centre-crop `size x size`.

    An image that is already `size x size` is returned unchanged.

    Example:
        >>> resize_to_square(torch.zeros(3, 40, 60, dtype=torch.uint8), 32).shape
        torch.Size([3, 32, 32])
    """
    if tuple(image.shape[1:]) == (size, size):
        return image
    resized = TF.resize(image, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(resized, [size, size])


StoreWay = Literal["tensor", "pil", "pil-draft", "nvjpeg"]
"""How images reach the store size: `"tensor"` (`resize_to_square` on a uint8 tensor: Datasets),
`"pil"` (files: PIL decode and PIL resize), `"pil-draft"` (files: JPEGs DCT-downscaled first,
the folder default) or `"nvjpeg"` (files: JPEGs decoded on the GPU, tensor resize there)."""

_WAYS = {
    "tensor": "",
    "pil": "PIL decode + PIL ",
    "pil-draft": "PIL decode, JPEG DCT draft 1/2-1/8 keeping sides >= {twice}, + PIL ",
    "nvjpeg": "nvjpeg decode (PIL where refused) + tensor ",
}


def describe_store(size: int, way: StoreWay = "tensor") -> str:
    """A stable description of the way in (for cache keys and store manifests).

    The decoders agree to a few grey levels, not bit for bit, so each has its own
    text and a store made one way never matches another's key.

    Args:
        size: the store size.
        way: how images are decoded and resized (see `StoreWay`).

    Raises:
        ValueError: an unknown `way`.

    Example:
        >>> describe_store(32)
        'uint8 rgb, shorter side to 32 (bilinear, antialias) + centre crop 32'
        >>> describe_store(32, "pil-draft")[:58]
        'uint8 rgb, PIL decode, JPEG DCT draft 1/2-1/8 keeping side'
    """
    if way not in _WAYS:
        raise ValueError(f"unknown way {way!r}; expected one of {tuple(_WAYS)}")
    prefix = _WAYS[way].format(twice=2 * size)
    return f"uint8 rgb, {prefix}shorter side to {size} (bilinear, antialias) + centre crop {size}"


@dataclass
class Decoded:
    """What `decode_examples` read: the images, their labels and positions, and the failures
    (`bad`: each named with its error; `bad_positions`: their positions)."""

    images: list[Tensor]
    labels: list[int]
    kept: list[int]
    bad: list[str]
    bad_positions: list[int] = field(default_factory=list)


def decode_examples(
    loader: Loader,
    positions: Sequence[int],
    size: int,
    describe: Callable[[int], str],
    on_bad: BadImagePolicy,
) -> Decoded:
    """Load, convert and resize the examples at `positions`, collecting every failure.

    Raises:
        BadImageError: some failed and `on_bad` is `"error"` (all are named).

    Example:
        >>> loader = lambda i: (torch.zeros(3, 5, 5, dtype=torch.uint8), i)
        >>> decode_examples(loader, [0, 1], 4, str, "error").labels
        [0, 1]
    """
    out = Decoded([], [], [], [])
    for position in positions:
        where = describe(position)
        try:
            image, label = loader(position)
            out.images.append(resize_to_square(to_uint8_image(image, where), size))
        except (OSError, RuntimeError, ValueError, SyntaxError) as error:
            # PIL raises OSError/SyntaxError, torchvision's decoders RuntimeError
            out.bad.append(f"{where} ({type(error).__name__}: {str(error)[:120]})")
            out.bad_positions.append(position)
            continue
        out.labels.append(int(label))
        out.kept.append(position)
    if out.bad and on_bad == "error":
        raise bad_image_error(out.bad)
    return out


def bad_image_error(bad: Sequence[str]) -> BadImageError:
    """The error for unreadable images: how many, the first 20 named, and what to do.

    Example:
        >>> str(bad_image_error(["a.jpg (OSError: truncated)"]))[:50]
        '1 image(s) could not be read: a.jpg (OSError: trun'
    """
    return BadImageError(
        f"{len(bad)} image(s) could not be read: {'; '.join(bad[:20])}"
        f"{' ...' if len(bad) > 20 else ''}. Fix or delete them, or pass "
        f"on_bad_image='skip' (--on-bad-image skip) to leave them out"
    )


def log_skipped(paths: Sequence[str], what: str) -> None:
    """Log (as a warning, printed when logging is not set up) how many images were skipped and
    the first 10 of them.

    Example:
        >>> log_skipped([], "the test split")  # nothing skipped, nothing said
    """
    if not paths:
        return
    shown = ", ".join(paths[:10])
    _log.warning(
        "skipped %d unreadable image(s) of %s: %s%s",
        len(paths),
        what,
        shown,
        " ..." if len(paths) > 10 else "",
    )
