"""`resfx train --features STORE`: the cached mode's data and features read from a feature store.

One extraction (`resfx extract`) serves many heads: the head trains on the store's
pooled features, read a memory-mapped mini-batch at a time, and no image is decoded.
The store's labels and class names stand in for the splits.
"""

import torch

from ..data import ImageSplit
from ..features import FeatureSource, FeatureStore, fingerprint_module
from ..models import ResNet

STORE_STAGE = "pooled"
"""The stage a head reads: the pooled features it takes in `"cached"` mode."""

_SPLITS = ("train", "test")


def store_inputs(
    path: str, arch: str
) -> tuple[tuple[ImageSplit, ImageSplit], tuple[FeatureSource, FeatureSource], str]:
    """The label-only splits, the pooled features and the backbone fingerprint of a store.

    Args:
        path: a feature store folder written by `resfx extract`.
        arch: the architecture this run builds; it must be the store's.

    Returns:
        `(splits, sources, fingerprint)`: `(train, test)` splits holding the store's labels
        and class names (and no pixels), their pooled features, and the fingerprint of the
        backbone that computed them (for `check_store_backbone`).

    Raises:
        resfx.features.StoreError: no readable store at `path`.
        ValueError: the store lacks a `train` or `test` split or the pooled stage, or was
            extracted with another architecture.

    Example:
        >>> store_inputs("/nonexistent-store", "resnet18")
        Traceback (most recent call last):
        ...
        resfx.features._store.StoreError: /nonexistent-store holds no feature store...
    """
    store = FeatureStore.open(path)
    missing = [split for split in _SPLITS if split not in store.splits]
    if missing:
        raise ValueError(
            f"the feature store {path} holds the splits {list(store.splits)}, and training "
            f"needs {list(_SPLITS)} (missing {missing}); extract a folder with train/ and "
            f"test/ class folders"
        )
    if STORE_STAGE not in store.stages:
        raise ValueError(
            f"the feature store {path} holds the stages {list(store.stages)}; a head trains on "
            f"{STORE_STAGE!r}: extract with --stages including {STORE_STAGE}"
        )
    if store.manifest["arch"] != arch:
        raise ValueError(
            f"the feature store {path} was extracted with arch={store.manifest['arch']!r}, "
            f"this run builds arch={arch!r}; pass --arch {store.manifest['arch']}"
        )
    splits = tuple(
        ImageSplit(
            torch.empty(len(labels), 3, 0, 0, dtype=torch.uint8),
            labels,
            torch.arange(len(labels)),
            f"store:{path}",
            split,
            classes=store.classes,
        )
        for split in _SPLITS
        for labels in (store.labels(split),)
    )
    sources = tuple(store.source(split, STORE_STAGE) for split in _SPLITS)
    return (
        (splits[0], splits[1]),
        (sources[0], sources[1]),
        str(store.manifest["model_fingerprint"]),
    )


def check_store_backbone(model: ResNet, fingerprint: str, path: str) -> None:
    """Refuse a model whose backbone is not the one that computed the store's features.

    The trained head is saved with this backbone: a head fitted on another backbone's
    features would be a model that does not do what its history reports.

    Args:
        model: the run's model (its `fc` is the new head, left out of the comparison).
        fingerprint: the store manifest's `model_fingerprint`.
        path: the store, for the message.

    Raises:
        ValueError: the backbone's weights differ from those of the extraction.

    Example:
        >>> from resfx.models import ResNet, ResNetConfig
        >>> model = ResNet(ResNetConfig(width=4))
        >>> check_store_backbone(model, fingerprint_module(model, exclude_prefix="fc."), "s")
    """
    if fingerprint_module(model, exclude_prefix="fc.") != fingerprint:
        raise ValueError(
            f"the feature store {path} was computed by a backbone with other weights than "
            f"this run's (fingerprint {fingerprint[:12]}... vs "
            f"{fingerprint_module(model, exclude_prefix='fc.')[:12]}...); pass the --weights "
            f"(for random weights, the --seed) the extraction used"
        )


__all__ = ["STORE_STAGE", "check_store_backbone", "store_inputs"]
