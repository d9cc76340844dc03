"""timm's `features_only=True` for resfx's ResNet: the feature maps at chosen indices, as a list.

`ResNetFeatures` is what `create_model(..., features_only=True)` returns, the
counterpart of timm's `FeatureListNet`; `FeatureInfo` is its `feature_info`, with
timm's accessors (`channels()`, `reduction()`, `module_name()`).
"""

import itertools
from collections.abc import Sequence
from typing import overload

from torch import nn as tnn

from .._typing import Images
from ._resnet import (
    _TRUNK,
    TIMM_TAPS,
    FeatureMaps,
    ResNet,
    StageInfo,
    _check_images,
    _run_taps,
    _take_indices,
)


class FeatureInfo:
    """The channels, output strides and modules of a `ResNetFeatures`' maps, as timm's.

    Without an index, each accessor gives the values of the maps the model
    returns (`out_indices`, in order); with an int, that one map's of all five;
    with a sequence, those maps'.

    Args:
        stages: `ResNet.feature_info`, one entry per timm index 0..4.
        out_indices: the indices the model returns, increasing.

    Example:
        >>> info = FeatureInfo(ResNet().feature_info, (1, 3))
        >>> info.channels(), info.reduction(), info.module_name(), info.channels(0)
        ([64, 256], [4, 16], ['layer1', 'layer3'], 64)
    """

    def __init__(self, stages: Sequence[StageInfo], out_indices: Sequence[int]) -> None:
        self.info = list(stages)
        self.out_indices = tuple(out_indices)

    @overload
    def channels(self, idx: int) -> int: ...
    @overload
    def channels(self, idx: Sequence[int] | None = None) -> list[int]: ...
    def channels(self, idx: int | Sequence[int] | None = None) -> int | list[int]:
        """Channels of the returned maps (or of map `idx`, or of maps `idx`).

        Example:
            >>> FeatureInfo(ResNet().feature_info, (0, 4)).channels()
            [64, 512]
        """
        if isinstance(idx, int):
            return self.info[idx]["num_chs"]
        return [self.info[i]["num_chs"] for i in self._indices(idx)]

    @overload
    def reduction(self, idx: int) -> int: ...
    @overload
    def reduction(self, idx: Sequence[int] | None = None) -> list[int]: ...
    def reduction(self, idx: int | Sequence[int] | None = None) -> int | list[int]:
        """Output strides of the returned maps (or of map `idx`, or of maps `idx`).

        Example:
            >>> FeatureInfo(ResNet().feature_info, (0, 4)).reduction()
            [2, 32]
        """
        if isinstance(idx, int):
            return self.info[idx]["reduction"]
        return [self.info[i]["reduction"] for i in self._indices(idx)]

    @overload
    def module_name(self, idx: int) -> str: ...
    @overload
    def module_name(self, idx: Sequence[int] | None = None) -> list[str]: ...
    def module_name(self, idx: int | Sequence[int] | None = None) -> str | list[str]:
        """resfx module names of the returned maps (timm's `act1` is resfx's `relu`).

        Example:
            >>> FeatureInfo(ResNet().feature_info, (0, 4)).module_name()
            ['relu', 'layer4']
        """
        if isinstance(idx, int):
            return self.info[idx]["module"]
        return [self.info[i]["module"] for i in self._indices(idx)]

    def _indices(self, idx: Sequence[int] | None) -> Sequence[int]:
        return self.out_indices if idx is None else idx

    def __getitem__(self, index: int) -> StageInfo:
        """The entry of timm index `index` (of all five, not only the returned ones)."""
        return self.info[index]

    def __len__(self) -> int:
        """Five: timm's indices 0..4."""
        return len(self.info)


class ResNetFeatures(tnn.Module):
    """A ResNet's trunk that returns its feature maps at timm's indices (timm's `FeatureListNet`).

    It holds the model's own modules up to the deepest index asked for, under
    their names (so its `state_dict` keys are the model's, and timm's), and
    drops the rest (the pooling and `fc`). The indices are timm's: 0 is the
    output of `relu` (timm's `act1`, before the maxpool, output stride 2), 1..4
    of `layer1..layer4` (see `resfx.models.TIMM_TAPS`).

    Args:
        model: the ResNet; its modules are shared, not copied.
        out_indices: increasing indices in 0..4 (negative ones count from the
            end), or an int n for the last n maps.

    Raises:
        ValueError: an index out of range, repeated or out of order.

    Example:
        >>> import torch
        >>> features = ResNetFeatures(ResNet(), out_indices=(1, 4)).eval()
        >>> [tuple(m.shape) for m in features(torch.randn(1, 3, 64, 64))]
        [(1, 64, 16, 16), (1, 512, 2, 2)]
        >>> features.feature_info.channels(), features.feature_info.reduction()
        ([64, 512], [4, 32])
    """

    def __init__(self, model: ResNet, out_indices: int | Sequence[int] = (0, 1, 2, 3, 4)) -> None:
        super().__init__()
        indices = _take_indices(out_indices)
        if any(later <= earlier for earlier, later in itertools.pairwise(indices)):
            raise ValueError(
                f"out_indices must be increasing without repeats (the maps come in forward "
                f"order, as timm's), got {out_indices}"
            )
        self.out_indices = tuple(indices)
        self.feature_info = FeatureInfo(model.feature_info, self.out_indices)
        self._taps = frozenset(TIMM_TAPS[index] for index in indices)
        for name in _TRUNK[: _TRUNK.index(TIMM_TAPS[indices[-1]]) + 1]:
            self.add_module(name, model.get_submodule(name))
        self.register_forward_pre_hook(_check_images)

    def forward(self, x: Images) -> FeatureMaps:
        """The feature maps at `out_indices`, in that order.

        Example:
            >>> import torch
            >>> ResNetFeatures(ResNet(), out_indices=[0])(torch.randn(1, 3, 32, 32))[0].shape
            torch.Size([1, 64, 16, 16])
        """
        return _run_taps(self.named_children(), x, self._taps)[1]
