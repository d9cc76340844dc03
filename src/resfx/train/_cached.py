"""The `"cached"` mode: the frozen backbone runs once per image, then the head trains on its features.

The features are read through `resfx.features.FeatureSource.rows`, one
mini-batch at a time, so a source larger than memory (a memory-mapped feature
store) plugs in where the in-memory features computed here would be.
"""

import functools
import time
from collections.abc import Callable, Iterator

from torch import Tensor

from .._device_sync import synchronize
from .._typing import Features, Labels
from ..data import ImageSplit, StreamedSplit
from ..features import FeatureCache, FeatureSource, TensorFeatures, compute_features
from ..models import ResNet
from ._head import FrozenBackboneJob
from ._job import JobSetup


class CachedJob(FrozenBackboneJob):
    """The `"cached"` mode: the head trains on features computed once, or read from `sources`.

    Args:
        setup: what the shared loop hands the mode.
        model: the model from `build_model`, on the CPU, backbone frozen.
        sources: the `(train, test)` features of the splits' examples, in the splits'
            order (e.g. a feature store's); `None` computes them in `prepare` (through
            `feature_cache_dir` when set).

    Raises:
        ValueError: a source's rows, width or labels do not match its split and the head.

    Example:
        >>> import torch
        >>> from resfx.data import iterate_batches, load_split
        >>> from resfx.train import DistributedContext, TrainingArgs, build_model
        >>> from resfx.train._job import SetupClock
        >>> args = TrainingArgs(weights=None, arch="resnet18", mode="cached", batch_size=4)
        >>> split = load_split("synthetic", "test", 8)
        >>> setup = JobSetup(args, DistributedContext(0, 1, 0), torch.device("cpu"), split,
        ...                  split, iterate_batches, 8, SetupClock())
        >>> made = TensorFeatures(torch.randn(8, 512), split.labels)
        >>> job = CachedJob(setup, build_model(args), sources=(made, made))
        >>> job.prepare()
        >>> features, labels = next(job.batches(epoch=0, skip=1))
        >>> features.shape, 0 <= job.evaluate().accuracy <= 1
        (torch.Size([4, 512]), True)
    """

    def __init__(
        self,
        setup: JobSetup,
        model: ResNet,
        sources: tuple[FeatureSource, FeatureSource] | None = None,
    ) -> None:
        super().__init__(setup, model)
        if sources is not None:
            for source, split in zip(sources, (setup.train_split, setup.test_split), strict=True):
                self._check_source(source, split)
        self.sources = sources
        self.labels: tuple[Labels, ...] = ()

    def _check_source(self, source: FeatureSource, split: ImageSplit | StreamedSplit) -> None:
        width = self.model.fc.in_features
        if len(source) != len(split) or source.width != width:
            raise ValueError(
                f"the {split.split} features have {len(source)} rows of {source.width}, where "
                f"the split has {len(split)} examples and the head takes {width} features; "
                f"extract them from the same data and backbone"
            )
        if not source.labels.to(split.labels.device).equal(split.labels):
            raise ValueError(
                f"the {split.split} features' labels differ from the {split.split} split's: "
                f"they were extracted from other data, or in another order"
            )

    def prepare(self) -> None:
        """Compute the features when no sources were given; keep the labels on the device."""
        if self.sources is None:
            self.sources = self._compute_sources()
            self.setup.clock.mark("features", self.setup.device)
        self.labels = tuple(source.labels.to(self.setup.device) for source in self.sources)

    def _compute_sources(self) -> tuple[FeatureSource, FeatureSource]:
        setup = self.setup
        args, context = setup.args, setup.context
        began = time.perf_counter()
        splits = (setup.train_split, setup.test_split)
        cache = None
        if args.feature_cache_dir is None:
            # Features kept by no directory die with the run, so a cache could never hit:
            # skip its keys (each hashes every backbone weight and every image).
            compute: Callable[..., Features] = functools.partial(compute_features, context=context)
        else:
            cache = FeatureCache(args.feature_cache_dir, write=context.is_main, context=context)
            compute = functools.partial(cache.features, bn=args.bn)
        computed = [
            compute(
                self.backbone,
                split,
                image_size=args.image_size,
                batch_size=setup.eval_batch,
                precision=args.precision,
            )
            for split in splits
        ]
        shares = (len(context.share(len(split), block=setup.eval_batch)) for split in splits)
        synchronize(setup.device)
        self.feature_seconds = time.perf_counter() - began
        self.feature_images = sum(shares) if cache is None else cache.computed_images
        train, test = (
            TensorFeatures(features, split.labels)
            for features, split in zip(computed, splits, strict=True)
        )
        return train, test

    def _rows(self, which: int, index: Tensor) -> tuple[Features, Labels]:
        if self.sources is None:
            raise RuntimeError("CachedJob.prepare() must run before its batches are read")
        features = self.sources[which].rows(index).to(self.setup.device)
        return features, self.labels[which][index]

    def batches(self, epoch: int, skip: int) -> Iterator[tuple[Features, Labels]]:
        """The features of `epoch`'s batches, read from the training source a batch at a time."""
        order = self.setup.epoch_order(epoch).to(self.setup.device)
        size = self.setup.args.batch_size
        for start in range(skip * size, len(order), size):
            yield self._rows(0, order[start : start + size])

    def test_batches(self) -> Iterator[tuple[Features, Labels]]:
        """This process's share of the test features, `eval_batch` rows at a time."""
        share = self.setup.test_share().to(self.setup.device)
        size = self.setup.eval_batch
        for start in range(0, len(share), size):
            yield self._rows(1, share[start : start + size])
