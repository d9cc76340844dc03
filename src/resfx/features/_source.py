"""Rows of features with their labels, wherever they live: in memory, or memory-mapped from a store.

Every consumer of frozen features (the cached training mode, the probes) reads mini-batches
through `FeatureSource.rows`, so a split larger than memory is read a batch at a time.
"""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from jaxtyping import Int
from torch import Tensor

from .._typing import Features, Labels


@runtime_checkable
class FeatureSource(Protocol):
    """What the cached mode and the probes read features from.

    Example:
        >>> import torch
        >>> isinstance(TensorFeatures(torch.zeros(2, 3), torch.tensor([0, 1])), FeatureSource)
        True
    """

    @property
    def labels(self) -> Labels:
        """Every row's class, int64 on the CPU."""
        ...

    @property
    def width(self) -> int:
        """Features per row."""
        ...

    def __len__(self) -> int: ...

    def rows(self, index: Int[Tensor, " b"]) -> Features:
        """The rows at `index` (positions in this source), float32 on the CPU."""
        ...


@dataclass(frozen=True)
class TensorFeatures:
    """A `FeatureSource` held in memory as one tensor.

    Args:
        features: one row per example.
        labels: their classes.

    Raises:
        ValueError: the features are not 2-D, or the row counts differ.

    Example:
        >>> import torch
        >>> source = TensorFeatures(torch.arange(6.0).reshape(3, 2), torch.tensor([0, 1, 0]))
        >>> source.rows(torch.tensor([2, 0])).tolist(), source.width, len(source)
        ([[4.0, 5.0], [0.0, 1.0]], 2, 3)
    """

    features: Features
    labels: Labels

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.features.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"features must be (n, d) with one label per row, got features of shape "
                f"{tuple(self.features.shape)} and {self.labels.shape[0]} labels"
            )

    @property
    def width(self) -> int:
        """Features per row.

        Example:
            >>> import torch
            >>> TensorFeatures(torch.zeros(1, 4), torch.tensor([0])).width
            4
        """
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def rows(self, index: Int[Tensor, " b"]) -> Features:
        """The rows at `index`.

        Example:
            >>> import torch
            >>> TensorFeatures(torch.eye(2), torch.tensor([0, 1])).rows(torch.tensor([1])).tolist()
            [[0.0, 1.0]]
        """
        return self.features[index.to(self.features.device)]


__all__ = ["FeatureSource", "TensorFeatures"]
