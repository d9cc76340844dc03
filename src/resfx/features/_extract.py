"""`extract`: a frozen model's pooled stage features over a whole dataset, into a feature store.

The images come from `resfx.data.decoded_batches` (each decoded once), go
through one frozen forward per batch (`stage_feature_batches`), and are written
shard by shard (`StoreWriter`): memory holds one shard of features, whatever
the dataset's size. Under `torchrun` rank `r` of `W` computes shards `r, r + W,
...` of the list of every split's shards, and rank 0 writes the manifest once
all ranks are done.
"""

import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .._distributed import DistributedContext, init_distributed, resolve_device
from .._freeze import freeze
from ..data import (
    CIFAR10_SIZES,
    DATASETS,
    BadImagePolicy,
    ImageSplit,
    StreamedSplit,
    describe_preprocessing,
    load_folder_split,
    load_split,
    scan_image_folder,
)
from ..data._decode import describe_store
from ..models import FEATURE_STAGES, ResNet, create_model
from ._key import batchnorm_modes, fingerprint_module, refuse_train_mode
from ._pass import stage_feature_batches
from ._store import (
    FeatureStore,
    ShardRecord,
    StoreError,
    StoreWriter,
    assemble_manifest,
    iter_shards,
)

_LOG = logging.getLogger("resfx.extract")

Data = str | os.PathLike[str] | Dataset[Any] | Mapping[str, Dataset[Any]]
"""What `extract` reads: `"cifar10"`, `"synthetic"`, an image folder, a Dataset, or
`{split name: Dataset}`."""


@dataclass(frozen=True)
class _Source:
    """One split to extract: the images, each position's name and label, and a content digest."""

    split: ImageSplit | StreamedSplit
    names: list[str] | list[int]
    labels: list[int]
    digest: str
    store: str
    skipped: tuple[str, ...] = ()


def _folder_sources(
    root: Path, store_size: int, workers: int, on_bad_image: BadImagePolicy
) -> tuple[dict[str, _Source], tuple[str, ...]]:
    """Each split of an image folder, streamed by the data layer: nothing is decoded here, and
    the content digest hashes the files' bytes."""
    layout = scan_image_folder(root)
    sources = {}
    for split in ("train", "test"):
        if not layout.files(split):
            continue
        streamed = load_folder_split(
            root,
            split,
            store_size=store_size,
            memory_budget_mib=0,
            on_bad_image=on_bad_image,
            workers=workers,
        )
        # a budget of 0 MiB streams every split
        assert isinstance(streamed, StreamedSplit), type(streamed)
        names = [os.path.relpath(streamed.describe(p), layout.root) for p in streamed.positions]
        labels = streamed.labels.tolist()
        store = describe_store(store_size, "pil-draft")
        sources[split] = _Source(
            streamed, names, labels, streamed.content_digest(), store, streamed.skipped_paths
        )
    return sources, layout.classes


def _dataset_source(dataset: Dataset[Any], split: str, store_size: int) -> _Source:
    """A map-style Dataset as one streamed split; labels from `dataset.targets` when it has them
    (else each item is read once for its label)."""
    # a map-style Dataset has len(); torch's `Dataset` does not declare `__len__`
    n = len(dataset)  # type: ignore[arg-type]
    targets = getattr(dataset, "targets", None)
    labels = [
        int(t) for t in (targets if targets is not None else (dataset[i][1] for i in range(n)))
    ]
    name = type(dataset).__name__
    digest = hashlib.sha256(f"{name}|{n}|{labels}".encode()).hexdigest()
    streamed = StreamedSplit(
        lambda i: dataset[i],
        range(n),
        torch.tensor(labels, dtype=torch.int64),
        torch.arange(n),
        name,
        split,
        store_size,
        digest,
        lambda i: f"{name}[{i}]",
    )
    return _Source(streamed, list(range(n)), labels, digest, describe_store(store_size))


def _sources(
    data: Data, store_size: int, workers: int, on_bad_image: BadImagePolicy
) -> tuple[dict[str, _Source], tuple[str, ...]]:
    if isinstance(data, Mapping):
        odd = [split for split in data if not re.fullmatch(r"[A-Za-z0-9_-]+", str(split))]
        if odd:
            raise ValueError(
                f"split names become folder names: use letters, digits, '_' and '-', got {odd}"
            )
        sources = {split: _dataset_source(d, split, store_size) for split, d in data.items()}
        first = next(iter(data.values()), None)
        return sources, tuple(getattr(first, "classes", ()) or ())
    if isinstance(data, Dataset):
        classes = tuple(getattr(data, "classes", ()) or ())
        return {"train": _dataset_source(data, "train", store_size)}, classes
    if str(data) in DATASETS:
        loaded = {
            split: load_split(str(data), split, size) for split, size in CIFAR10_SIZES.items()
        }
        sources = {
            split: _Source(
                s, s.indices.tolist(), s.labels.tolist(), s.content_digest(), describe_store(32)
            )
            for split, s in loaded.items()
        }
        return sources, loaded["train"].classes
    root = Path(data)
    if not root.is_dir():
        raise StoreError(
            f"data {str(data)!r} is not a folder nor one of {DATASETS}; pass an image folder "
            f"(<class>/<image> files, or train/ and test/ of them)"
        )
    return _folder_sources(root, store_size, workers, on_bad_image)


def _model(arch: str | ResNet, weights: str | None, device: torch.device) -> tuple[ResNet, str]:
    if isinstance(arch, ResNet):
        if weights is not None:
            raise ValueError("pass weights with an architecture name, not with a model")
        refuse_train_mode(arch)
        return arch.to(device), f"{type(arch).__name__}({arch.config})"
    return freeze(create_model(arch, weights=weights, progress=False)).to(device), arch


def _check_stages(stages: Sequence[str]) -> list[str]:
    chosen = list(stages)
    unknown = [stage for stage in chosen if stage not in FEATURE_STAGES]
    if not chosen or unknown or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"stages must be distinct names from {FEATURE_STAGES}, got {chosen}"
            + (f" ({', '.join(map(repr, unknown))} unknown)" if unknown else "")
        )
    return [stage for stage in FEATURE_STAGES if stage in chosen]


def _check_room(root: Path, rows: int, widths: Mapping[str, int]) -> None:
    needed = rows * sum(widths.values()) * 4 + 2**20
    free = shutil.disk_usage(root).free
    if free < needed:
        raise StoreError(
            f"not enough free space for the feature store in {root}: {free / 2**20:.1f} MiB "
            f"free, it needs about {needed / 2**20:.1f} MiB ({rows} rows x "
            f"{sum(widths.values())} features x 4 bytes); free some space or pass another folder"
        )


def _agree(context: DistributedContext, failed: bool, device: torch.device, what: str) -> None:
    """Every process learns whether any failed; those that did not raise `what`."""
    if context.any_of([failed], device)[0] and not failed:
        raise StoreError(f"another process of this torchrun launch failed {what}; see its error")


def extract(
    data: Data,
    out: str | os.PathLike[str],
    *,
    arch: str | ResNet = "resnet18",
    weights: str | None = None,
    stages: Sequence[str] = ("pooled",),
    image_size: int = 224,
    batch_size: int = 64,
    shard_size: int = 4096,
    workers: int = 0,
    precision: str = "fp32",
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    on_bad_image: BadImagePolicy = "error",
    seed: int = 0,
    context: DistributedContext | None = None,
) -> FeatureStore:
    """Write a frozen model's pooled features of `stages` over every split of `data` to a store.

    Each image is decoded once, resized (shorter side to `image_size`, centre
    crop), normalised and run through the model in inference mode with eval-mode
    BatchNorm; each stage's feature map is averaged over its positions. Rows are
    written `shard_size` at a time, so memory holds one shard; a killed run
    passed `resume=True` recomputes only the shards it had not finished, and the
    result is the same, bit for bit on the CPU. Under `torchrun` each process
    computes its own shards and rank 0 writes the manifest last.

    Args:
        data: `"cifar10"`, `"synthetic"`, an image folder (its `train/` and `test/`,
            or one folder split as `resfx.data.scan_image_folder` does), a map-style
            Dataset of `(image, label)` (one split, `"train"`), or `{split: Dataset}`.
        out: the store folder.
        arch: an architecture name (`resfx.models.list_models()`), or a ResNet in
            eval mode.
        weights: weights for `arch` (`"DEFAULT"`, a name, a checkpoint path); `None`:
            random initialisation.
        stages: which of `resfx.models.FEATURE_STAGES` to store.
        image_size: side of the model's square inputs.
        batch_size: images per forward pass.
        shard_size: rows per `.npy` file (and the unit of resuming).
        workers: processes decoding images (0: this one; the CLI's default is every
            usable core, `resfx.data.default_workers()`).
        precision: `"fp32"` or `"bf16"` autocast; stored features are float32.
        device: `"auto"`, `"cpu"`, `"cuda"` or `"cuda:N"`.
        resume: finish a half-written store in `out` (the settings must be the same).
        overwrite: replace a store in `out`.
        on_bad_image: `"error"` stops at unreadable images, naming them; `"skip"`
            leaves them out and lists them in the manifest.
        seed: seeds the random initialisation when `weights` is `None`, as
            `resfx train --seed` does, so a head trained on the store (`resfx train
            --features`) pairs with the same random backbone.
        context: the processes of a `torchrun` launch; `None`: from the environment.

    Returns:
        The finished store.

    Raises:
        StoreError: `out` is held by another run, holds a store (without `overwrite`)
            or a half-written one (without `resume`), its settings differ (with
            `resume`), the disk has too little room, or `data` is not a folder or name.
        ValueError: an unknown stage, precision or architecture, or a bad size.
        resfx.data.BadImageError: unreadable images with `on_bad_image="error"`.

    Example:
        >>> import tempfile, torch
        >>> from torch.utils.data import TensorDataset
        >>> from resfx.models import ResNet, ResNetConfig
        >>> data = TensorDataset(torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 0, 1, 0, 1]))
        >>> store = extract(data, tempfile.mkdtemp(), arch=ResNet(ResNetConfig(width=4)).eval(),
        ...                 stages=["stem", "layer2"], image_size=16, shard_size=4)
        >>> store.source("train", "layer2").rows(torch.tensor([5, 0])).shape
        torch.Size([2, 8])
    """
    for name, value in (("image_size", image_size), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if shard_size < 1 or workers < 0:
        raise ValueError(
            f"shard_size must be at least 1 and workers at least 0, got {shard_size} and {workers}"
        )
    chosen = _check_stages(stages)
    owned = context is None
    context = init_distributed(device) if context is None else context
    try:
        return _extract(
            data,
            Path(out),
            arch=arch,
            weights=weights,
            stages=chosen,
            image_size=image_size,
            batch_size=batch_size,
            shard_size=shard_size,
            workers=workers,
            precision=precision,
            device=resolve_device(device, context),
            resume=resume,
            overwrite=overwrite,
            on_bad_image=on_bad_image,
            seed=seed,
            context=context,
        )
    finally:
        if owned:
            context.close()


def _extract(
    data: Data,
    root: Path,
    *,
    arch: str | ResNet,
    weights: str | None,
    stages: list[str],
    image_size: int,
    batch_size: int,
    shard_size: int,
    workers: int,
    precision: str,
    device: torch.device,
    resume: bool,
    overwrite: bool,
    on_bad_image: BadImagePolicy,
    seed: int,
    context: DistributedContext,
) -> FeatureStore:
    sources, classes = _sources(data, image_size, workers, on_bad_image)
    torch.manual_seed(seed)  # the random initialisation, when there are no weights
    model, arch_name = _model(arch, weights, device)
    widths = {stage: model.config.stage_channels[stage] for stage in stages}
    preprocessing = {
        "store": next(iter(sources.values())).store,
        "model_input": describe_preprocessing(image_size),
        "image_size": image_size,
        "precision": precision,
        "bn": f"eval:{batchnorm_modes(model)}",
    }
    settings = {
        "arch": arch_name,
        "weights": None if weights is None else str(weights),
        "seed": seed if weights is None and not isinstance(arch, ResNet) else None,
        "model_fingerprint": fingerprint_module(model, exclude_prefix="fc."),
        "preprocessing": preprocessing,
        "stages": widths,
        "batch_size": batch_size,
        "shard_size": shard_size,
        "on_bad_image": on_bad_image,
        "data": {
            split: {"count": len(s.labels), "digest": s.digest} for split, s in sources.items()
        },
    }
    total = sum(len(s.labels) for s in sources.values())

    def check_room(writer: StoreWriter) -> None:
        _check_room(root, total - sum(r.rows for r in writer.done().values()), widths)

    writer = StoreWriter(root, settings, resume=resume, overwrite=overwrite, check=check_room)
    with ExitStack() as held:
        failure: BaseException | None = None
        if context.is_main:
            try:
                held.enter_context(writer.claim())
            except BaseException as error:
                failure = error
        _agree(context, failure is not None, device, "to claim the store")
        if failure is not None:
            raise failure
        if writer.finished:
            return FeatureStore.open(root)
        plan = [
            (split, number, positions)
            for split, source in sources.items()
            for number, positions in enumerate(iter_shards(len(source.labels), shard_size))
        ]
        done = writer.done(verify=resume)
        mine = [
            (index, *shard)
            for index, shard in enumerate(plan)
            if index % context.world_size == context.rank and shard[:2] not in done
        ]
        _log_plan(context, settings, root, len(plan), len(done))
        try:
            for index, split, number, positions in mine:
                _write_shard(
                    writer,
                    model,
                    sources[split].split,
                    split,
                    number,
                    positions,
                    stages=stages,
                    widths=widths,
                    image_size=image_size,
                    batch_size=batch_size,
                    workers=workers,
                    precision=precision,
                    device=device,
                    on_bad_image=on_bad_image,
                    progress=f"{index + 1}/{len(plan)}",
                )
        except BaseException as error:
            failure = error
        _agree(context, failure is not None, device, "while extracting")
        if failure is not None:
            raise failure
        if context.is_main:
            _write_manifest(writer, plan, sources, classes)
        _agree(context, False, device, "to write the manifest")
    return FeatureStore.open(root)


def _log_plan(
    context: DistributedContext, settings: Mapping[str, Any], root: Path, shards: int, done: int
) -> None:
    """Rank 0's line that says what an extraction is about to write."""
    if not context.is_main:
        return
    counts = {split: part["count"] for split, part in settings["data"].items()}
    _LOG.info(
        "extracting %s (%s weights), stages %s, of %s images into %s: %d shards, %d done before",
        settings["arch"],
        settings["weights"] or "random",
        ", ".join(settings["stages"]),
        ", ".join(f"{split} {count}" for split, count in counts.items()),
        root,
        shards,
        done,
        extra={
            "arch": settings["arch"],
            "weights": settings["weights"],
            "stages": list(settings["stages"]),
            "images": counts,
            "shards": shards,
            "shards_done": done,
        },
    )


def _write_manifest(
    writer: StoreWriter,
    plan: Sequence[tuple[str, int, range]],
    sources: Mapping[str, _Source],
    classes: Sequence[str],
) -> None:
    """Rank 0, once every shard is done: the manifest from the journal, written last."""
    records = writer.done()
    missing = [
        f"{split} {number:05d}" for split, number, _ in plan if (split, number) not in records
    ]
    if missing:
        raise StoreError(
            f"shards {', '.join(missing[:10])} of {writer.root} are not on disk after every "
            f"process finished; under torchrun on several machines the store folder must be "
            f"on a file system they all share"
        )
    per_split: dict[str, list[ShardRecord]] = {split: [] for split in sources}
    for split, number, _ in plan:
        per_split[split].append(records[(split, number)])
    settings = writer.settings
    header = {
        key: settings[key]
        for key in ("arch", "weights", "model_fingerprint", "preprocessing", "stages")
    }
    header.update(classes=list(classes), settings=settings)
    describe = {split: (s.names, s.labels, s.skipped) for split, s in sources.items()}
    writer.finish(assemble_manifest(header, per_split, describe))
    _LOG.info("feature store written: %s", writer.root / "manifest.json")


def _write_shard(
    writer: StoreWriter,
    model: ResNet,
    split: ImageSplit | StreamedSplit,
    split_name: str,
    number: int,
    positions: range,
    *,
    stages: list[str],
    widths: Mapping[str, int],
    image_size: int,
    batch_size: int,
    workers: int,
    precision: str,
    device: torch.device,
    on_bad_image: BadImagePolicy,
    progress: str,
) -> None:
    """Compute one shard (one frozen pass over its positions) and write it."""
    began = time.perf_counter()
    arrays = {stage: np.empty((len(positions), widths[stage]), np.float32) for stage in stages}
    kept: list[int] = []
    bad: list[str] = []
    batches = stage_feature_batches(
        model,
        split,
        stages,
        torch.arange(positions.start, positions.stop),
        image_size=image_size,
        batch_size=batch_size,
        precision=precision,
        device=device,
        on_bad_image=on_bad_image,
        workers=workers,
    )
    for batch, features in batches:
        start = len(kept)
        for stage, part in features.items():
            arrays[stage][start : start + len(part)] = part.cpu().numpy()
        kept += batch.positions.tolist()
        bad += batch.bad
    writer.write_shard(
        split_name, number, {stage: a[: len(kept)] for stage, a in arrays.items()}, kept, bad
    )
    seconds = time.perf_counter() - began
    _LOG.info(
        "shard %s (%s %05d): %d rows in %.1f s (%.0f rows/s)%s",
        progress,
        split_name,
        number,
        len(kept),
        seconds,
        len(kept) / max(seconds, 1e-9),
        f", {len(bad)} unreadable skipped" if bad else "",
        extra={
            "shard": progress,
            "split": split_name,
            "number": number,
            "rows": len(kept),
            "skipped": len(bad),
            "seconds": seconds,
        },
    )
