"""Compute precision: its names, their dtypes, and the one autocast every frozen or trained forward uses."""

from contextlib import AbstractContextManager
from typing import Literal

import torch

Precision = Literal["fp32", "bf16"]
"""float32 throughout, or bfloat16 autocast for the backbone (the head and loss stay float32)."""

PRECISION_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
"""The compute dtype of each `Precision`."""


def check_precision(precision: str) -> None:
    """Raise `ValueError` unless `precision` is a `Precision` name."""
    if precision not in PRECISION_DTYPES:
        raise ValueError(
            f"unknown precision {precision!r}; expected one of {tuple(PRECISION_DTYPES)}"
        )


def autocast(device: torch.device | str, precision: str) -> AbstractContextManager[None]:
    """bfloat16 autocast on `device` for `"bf16"`, a disabled (no-op) autocast for `"fp32"`.

    The one autocast of resfx: the training loop, the feature cache, `resfx bench` and
    `benchmarks/` all enter it.

    Args:
        device: where the forward runs.
        precision: `"fp32"` or `"bf16"` (see `resfx.train.Precision`).

    Returns:
        The context manager.

    Raises:
        ValueError: unknown precision.

    Example:
        >>> import torch
        >>> with autocast("cpu", "bf16"):
        ...     print((torch.ones(2, 2) @ torch.ones(2, 2)).dtype)
        torch.bfloat16
        >>> with autocast("cpu", "fp32"):
        ...     print((torch.ones(2, 2) @ torch.ones(2, 2)).dtype)
        torch.float32
    """
    check_precision(precision)
    return torch.autocast(
        torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )
