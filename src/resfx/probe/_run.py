"""`resfx probe`'s settings and run: images to per-stage features to probes, per architecture."""

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args

import torch

from .._atomic import atomic_write_bytes
from .._distributed import DistributedContext, resolve_device
from .._freeze import freeze
from .._precision import Precision
from ..data import (
    DATASETS,
    DEFAULT_MEMORY_BUDGET_MIB,
    BadImagePolicy,
    ImageSplit,
    StreamedSplit,
    SubsetKind,
    load_data,
)
from ..features import FeatureCache, FeatureSource, FeatureStore, TensorFeatures
from ..models import FEATURE_STAGES, ResNet, create_model, list_models
from ._chart import plot_probe
from ._protocol import (
    DEFAULT_SETTINGS,
    DEFAULT_STRENGTHS,
    ProbeResult,
    ProbeSettings,
    probe_stage_sources,
)
from ._rows import ProbeRow

PROBE_STAGES: tuple[str, ...] = tuple(s for s in FEATURE_STAGES if s != "pooled")
"""Stages a probe can read: `stem`, `layer1` ... `layer4` (each average-pooled)."""

PROBE_OUTPUTS: tuple[str, ...] = ("probe.json", "probe.png")
"""The files `run_probe` writes into `output_dir`."""

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_POSITIVE_INTS: tuple[str, ...] = (
    "trainset_size",
    "testset_size",
    "image_size",
    "batch_size",
    "seeds",
)
_POSITIVE_INTS += ("max_iter", "knn_k")


_LOG = logging.getLogger("resfx.probe")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _probe_logged(
    train: dict[str, FeatureSource],
    test: dict[str, FeatureSource],
    settings: ProbeSettings,
    *,
    n_classes: int,
    seed: int,
    arch: str,
) -> dict[str, ProbeResult]:
    """`probe_stage_sources`, a stage at a time, logging each stage's result as it comes."""
    results = {}
    for stage in train:
        result = probe_stage_sources(
            {stage: train[stage]}, {stage: test[stage]}, settings, n_classes=n_classes, seed=seed
        )[stage]
        linear, knn = result.linear, result.knn
        fields = {
            "arch": arch,
            "seed": seed,
            "stage": stage,
            "dim": train[stage].width,
            "linear_acc": linear.test_accuracy,
            "linear_train_acc": linear.train_accuracy,
            "strength": linear.strength,
            "converged": linear.converged,
            "knn_acc": knn.test_accuracy,
            "seconds": linear.seconds + knn.seconds,
        }
        _LOG.info(
            "%s seed %d %s (%d features): linear %.2f%% (L2 %g%s), kNN %.2f%%, %.1f s",
            arch,
            seed,
            stage,
            fields["dim"],
            100 * linear.test_accuracy,
            linear.strength,
            "" if linear.converged else ", not converged",
            100 * knn.test_accuracy,
            fields["seconds"],
            extra=fields,
        )
        results[stage] = result
    return results


def _stage_results(
    model: ResNet,
    train_split: ImageSplit | StreamedSplit,
    test_split: ImageSplit | StreamedSplit,
    stages: Sequence[str],
    settings: ProbeSettings,
    *,
    cache: FeatureCache,
    n_classes: int,
    seed: int,
    extraction: dict[str, Any],
    arch: str,
) -> tuple[dict[str, ProbeResult], dict[str, int], float]:
    """Both probes per stage for one seed: results, widths, and each stage's share of the pass."""
    began = time.perf_counter()
    train = cache.stage_features(model, train_split, stages, **extraction)
    test = cache.stage_features(model, test_split, stages, **extraction)
    seconds = time.perf_counter() - began
    images = len(train_split) + len(test_split)
    _LOG.info(
        "%s seed %d: features of %d images at %d stage(s) in %.1f s",
        arch,
        seed,
        images,
        len(stages),
        seconds,
        extra={"arch": arch, "seed": seed, "images": images, "seconds": seconds},
    )
    results = _probe_logged(
        {s: TensorFeatures(train[s].cpu(), train_split.labels.cpu()) for s in stages},
        {s: TensorFeatures(test[s].cpu(), test_split.labels.cpu()) for s in stages},
        settings,
        n_classes=n_classes,
        seed=seed,
        arch=arch,
    )
    return results, {s: int(train[s].shape[1]) for s in stages}, seconds / len(stages)


def probe_stages(
    model: ResNet,
    train_split: ImageSplit | StreamedSplit,
    test_split: ImageSplit | StreamedSplit,
    settings: ProbeSettings = DEFAULT_SETTINGS,
    *,
    stages: Sequence[str] = PROBE_STAGES,
    image_size: int = 224,
    batch_size: int = 256,
    precision: str = "fp32",
    cache: FeatureCache | None = None,
    n_classes: int | None = None,
    arch: str = "model",
    weights: str | None = None,
    seed: int = 0,
) -> list[ProbeRow]:
    """The linear and kNN probes on each stage of a frozen model, one frozen pass per split.

    Args:
        model: the ResNet, frozen with eval-mode BatchNorm (`resfx.freeze(model)`),
            on the splits' device.
        train_split: training images (on the model's device).
        test_split: test images.
        settings: the protocol (see `linear_probe`, `knn_probe`).
        stages: names of `PROBE_STAGES`.
        image_size: side of the resized inputs.
        batch_size: images per forward pass.
        precision: `"fp32"` or `"bf16"`.
        cache: where features are kept (one entry per stage); `None`: in memory only.
        n_classes: classes; `None`: the largest label plus one.
        arch: the name reported in each row.
        weights: the weights reported in each row (`None`: random).
        seed: seeds the validation split.

    Returns:
        One row per stage, in `stages` order, each with one seed.

    Raises:
        ValueError: an unknown stage, or BatchNorm in training mode.

    Example:
        >>> from resfx.data import load_split
        >>> from resfx.models import ResNetConfig
        >>> model = freeze(ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1))))
        >>> rows = probe_stages(model, load_split("synthetic", "train", 40),
        ...                     load_split("synthetic", "test", 20), stages=["stem", "layer4"],
        ...                     image_size=32)
        >>> [(row.stage, row.dim) for row in rows]
        [('stem', 4), ('layer4', 32)]
    """
    unknown = [s for s in stages if s not in PROBE_STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; expected names from {PROBE_STAGES}")
    classes = n_classes or int(max(train_split.labels.max(), test_split.labels.max())) + 1
    extraction = {"image_size": image_size, "batch_size": batch_size, "precision": precision}
    results, dims, share = _stage_results(
        model,
        train_split,
        test_split,
        stages,
        settings,
        cache=FeatureCache() if cache is None else cache,
        n_classes=classes,
        seed=seed,
        extraction=extraction,
        arch=arch,
    )
    return [
        ProbeRow(
            arch,
            train_split.dataset,
            weights,
            stage,
            dims[stage],
            classes,
            (results[stage].linear,),
            (results[stage].knn,),
            share,
        )
        for stage in stages
    ]


@dataclass(frozen=True)
class ProbeArgs:
    """Settings of `resfx probe`: data, architectures and their weights, stages, protocol, outputs.

    Args:
        data: `"synthetic"`, `"cifar10"` or an image folder's path.
        archs: architectures, comma-separated (`"resnet18,resnet50"`).
        weights: weights for every architecture (`"DEFAULT"`, `"IMAGENET1K_V1"`, a path), or
            per architecture (`"resnet18=r18.pth,resnet50=DEFAULT"`, naming every one of
            `archs`; `none` for random), or `None` for random backbones.
        stages: stages, comma-separated, from `PROBE_STAGES`.
        trainset_size: training images.
        testset_size: test images.
        subset: `"auto"` (`"first"` for cifar10/synthetic, else `"stratified"`), `"first"`,
            `"random"` or `"stratified"`.
        image_size: side of the network's inputs.
        store_size: an image folder's store size (`None`: their own or `image_size`).
        test_fraction: a single image folder's test share per class.
        memory_budget_mib: an image folder's device budget; larger ones are streamed.
        on_bad_image: an image folder's unreadable files: `"error"` or `"skip"`.
        data_root: CIFAR-10's folder.
        download: download CIFAR-10 when missing.
        device: `"auto"` (a GPU when there is one, as `resfx train`), `"cpu"`, `"cuda"`,
            `"cuda:N"`.
        precision: `"fp32"` or `"bf16"`.
        batch_size: images per forward pass.
        seeds: repeats with seeds `seed, seed + 1, ...`: each draws its own validation split
            and subset (and synthetic data); the table gives mean ± std.
        seed: the first seed; also the random backbones' initialisation.
        val_fraction: share of each class of the training images held out to choose the L2
            strength.
        strengths: the L2 grid, comma-separated (see `resfx.probe.fit_logistic`).
        regularisation: one L2 strength, without a sweep; `None` sweeps `strengths`.
        tol: the solver's tolerance on the largest gradient entry.
        max_iter: the solver's iterations at most per fit.
        knn_k: neighbours of the kNN probe.
        knn_temperature: `T` of its votes' weights `exp(sim / T)`.
        output_dir: where `probe.json` and `probe.png` go; `None` writes nothing.
        overwrite: replace an earlier run's `probe.json`/`probe.png` in `output_dir`;
            without it such a folder is refused.
        feature_cache_dir: keep features on disk here, across runs.
        features: a feature store from `resfx extract` (with `train` and `test` splits):
            probe its stages (those of `stages` it holds) without reading any image;
            `data`, `archs`, `weights` and the sizes are then not used (the store
            names its architecture and weights).

    Raises:
        ValueError: an unknown architecture, stage, device, subset or policy; no
            architecture or stage; a size, seed count, fraction or strength out of range;
            an empty path; weights per architecture that miss or add one.
        TypeError: a value of the wrong type (`"64"` for an int).

    Example:
        >>> ProbeArgs(archs="resnet18,resnet50", weights="resnet18=DEFAULT,resnet50=none").weights_for(
        ...     "resnet18")
        'DEFAULT'
    """

    data: str = field(default="synthetic", metadata=_help("synthetic, cifar10, or a folder"))
    archs: str = field(default="resnet18", metadata=_help("architectures, comma-separated"))
    weights: str | None = field(
        default=None,
        metadata=_help("weights for all archs (DEFAULT, a path), or arch=value,...; none: random"),
    )
    stages: str = field(default=",".join(PROBE_STAGES), metadata=_help("stages, comma-separated"))
    trainset_size: int = field(default=5_000, metadata=_help("training images"))
    testset_size: int = field(default=1_000, metadata=_help("test images"))
    subset: SubsetKind = field(default="auto", metadata=_help("auto, first, random or stratified"))
    image_size: int = field(default=64, metadata=_help("side of the network's inputs"))
    store_size: int | None = field(
        default=None, metadata=_help("image folder: side images are stored at")
    )
    test_fraction: float = field(default=0.2, metadata=_help("one image folder: test share"))
    memory_budget_mib: int = field(
        default=DEFAULT_MEMORY_BUDGET_MIB, metadata=_help("image folder: MiB held on the device")
    )
    on_bad_image: BadImagePolicy = field(
        default="error", metadata=_help("unreadable files: error or skip")
    )
    data_root: str = field(default="data", metadata=_help("folder holding cifar-10-batches-py"))
    download: bool = field(default=True, metadata=_help("download CIFAR-10 when missing"))
    device: str = field(
        default="auto", metadata=_help("auto (a GPU when there is one), cpu, cuda or cuda:N")
    )
    precision: Precision = field(default="fp32", metadata=_help("fp32 or bf16"))
    batch_size: int = field(default=256, metadata=_help("images per forward pass"))
    seeds: int = field(default=1, metadata=_help("repeats (val split, subset), mean ± std"))
    seed: int = field(default=0, metadata=_help("first seed; random backbones' init"))
    val_fraction: float = field(default=0.2, metadata=_help("train share choosing the L2"))
    strengths: str = field(
        default=",".join(f"{s:g}" for s in DEFAULT_STRENGTHS),
        metadata=_help("L2 grid, comma-separated; C = 1/(strength * rows)"),
    )
    regularisation: float | None = field(
        default=None, metadata=_help("one L2 strength, no sweep; none: sweep")
    )
    tol: float = field(default=1e-4, metadata=_help("solver: largest gradient entry at the end"))
    max_iter: int = field(default=1000, metadata=_help("solver: L-BFGS iterations at most"))
    knn_k: int = field(default=20, metadata=_help("kNN probe: neighbours"))
    knn_temperature: float = field(default=0.07, metadata=_help("kNN probe: vote temperature"))
    output_dir: str | None = field(
        default="runs/probe", metadata=_help("where probe.json and probe.png go")
    )
    overwrite: bool = field(
        default=False, metadata=_help("replace probe.json/probe.png of an earlier run")
    )
    feature_cache_dir: str | None = field(
        default=None, metadata=_help("keep features on disk here")
    )
    features: str | None = field(
        default=None,
        metadata=_help("a feature store from `resfx extract`: probe it, reading no image"),
    )

    def __post_init__(self) -> None:
        self._check_types()
        if not self.arch_list:
            raise ValueError(
                f"no architecture in archs={self.archs!r}; name one or more, e.g. resnet18,resnet50"
            )
        unknown = [a for a in self.arch_list if a not in list_models()]
        if unknown:
            raise ValueError(f"unknown archs {unknown}; expected names from {list_models()}")
        wrong = [s for s in self.stage_list if s not in PROBE_STAGES]
        if wrong or not self.stage_list:
            raise ValueError(f"unknown stages {wrong}; expected names from {PROBE_STAGES}")
        for name in _POSITIVE_INTS:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.store_size is not None and self.store_size < 1:
            raise ValueError(f"store_size must be at least 1 (or None), got {self.store_size}")
        if self.memory_budget_mib < 0:
            raise ValueError(f"memory_budget_mib must be at least 0, got {self.memory_budget_mib}")
        if not 0 <= self.seed < 2**63 - self.seeds:
            raise ValueError(f"seed must be in [0, 2**63 - seeds), got {self.seed}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        for name, allowed in (
            ("subset", SubsetKind),
            ("on_bad_image", BadImagePolicy),
            ("precision", Precision),
        ):
            if getattr(self, name) not in get_args(allowed):
                raise ValueError(
                    f"unknown {name} {getattr(self, name)!r}; expected one of {get_args(allowed)}"
                )
        if not _DEVICE.match(self.device):
            raise ValueError(f"unknown device {self.device!r}; expected auto, cpu, cuda or cuda:N")
        for name in ("output_dir", "feature_cache_dir", "features", "weights", "data", "data_root"):
            if getattr(self, name) == "":
                raise ValueError(
                    f"{name} is empty; pass a path or name, or none (where allowed) on the "
                    f"command line"
                )
        if self.data not in DATASETS and not Path(self.data).is_dir():
            raise ValueError(
                f"data {self.data!r} is neither one of {DATASETS} nor an existing folder; pass "
                f"the path of an image folder (train/ and test/ class folders, or class folders)"
            )
        if self.overwrite and self.output_dir is None:
            raise ValueError("overwrite needs output_dir, the folder whose results it replaces")
        self._weights_by_arch()
        _ = self.settings

    def _check_types(self) -> None:
        for setting in fields(self):
            value, kind = getattr(self, setting.name), setting.type
            options = [o for o in get_args(kind) if o is not type(None)] or [kind]
            if value is None and type(None) in get_args(kind):
                continue
            base = options[0]
            if base in (int, float):
                fits = isinstance(value, (int, float) if base is float else int)
                fits = fits and not isinstance(value, bool)
            elif base in (str, bool):
                fits = isinstance(value, base)
            else:
                fits = isinstance(value, str)  # a Literal's choices are checked by value
            if not fits:
                raise TypeError(
                    f"{setting.name} must be of type {getattr(base, '__name__', 'str')}, got "
                    f"{type(value).__name__} {value!r}"
                )

    @property
    def arch_list(self) -> list[str]:
        """The architectures, in order."""
        return [a.strip() for a in self.archs.split(",") if a.strip()]

    @property
    def stage_list(self) -> list[str]:
        """The stages, in order."""
        return [s.strip() for s in self.stages.split(",") if s.strip()]

    @property
    def settings(self) -> ProbeSettings:
        """The protocol's settings these arguments give.

        Raises:
            ValueError: a strength that is not a number, or see `ProbeSettings`.
        """
        try:
            grid = tuple(float(s) for s in self.strengths.split(",") if s.strip())
        except ValueError:
            raise ValueError(
                f"strengths must be numbers, comma-separated, got {self.strengths!r}"
            ) from None
        return ProbeSettings(
            strengths=grid,
            regularisation=self.regularisation,
            val_fraction=self.val_fraction,
            tol=self.tol,
            max_iter=self.max_iter,
            knn_k=self.knn_k,
            knn_temperature=self.knn_temperature,
        )

    def _weights_by_arch(self) -> dict[str, str | None]:
        if self.weights is None or "=" not in self.weights:
            return dict.fromkeys(self.arch_list, self.weights)
        chosen: dict[str, str | None] = {}
        for item in self.weights.split(","):
            arch, _, value = (part.strip() for part in item.partition("="))
            if arch not in self.arch_list or not value or arch in chosen:
                raise ValueError(
                    f"weights item {item.strip()!r}: expected arch=value with each of archs "
                    f"{self.arch_list} once, and a value (a name, a path, or none)"
                )
            chosen[arch] = None if value.lower() == "none" else value
        missing = [a for a in self.arch_list if a not in chosen]
        if missing:
            raise ValueError(
                f"weights per architecture name no weights for {missing}; add e.g. "
                f"{missing[0]}=none for random weights"
            )
        return chosen

    def weights_for(self, arch: str) -> str | None:
        """The weights of `arch`: its own entry, or the one value for all; `None`: random.

        Raises:
            KeyError: `arch` is not one of `archs`.
        """
        return self._weights_by_arch()[arch]


def _write_report(args: ProbeArgs, out: Path, rows: Sequence[ProbeRow], done: bool) -> None:
    report = {
        "args": {f.name: getattr(args, f.name) for f in fields(args)},
        "strengths": list(args.settings.grid),
        "complete": done,
        "rows": [r.to_dict() for r in rows],
    }
    text = json.dumps(report, indent=2, allow_nan=False)
    atomic_write_bytes(out / "probe.json", text.encode())
    plot_probe(rows, out / "probe.png")


def _prepare_output(args: ProbeArgs) -> Path | None:
    if args.output_dir is None:
        return None
    from ..train import prepare_output_dir

    out = prepare_output_dir(args.output_dir)
    earlier = [name for name in PROBE_OUTPUTS if (out / name).exists()]
    if earlier and not args.overwrite:
        from ..train import OutputDirectoryError

        raise OutputDirectoryError(
            f"output_dir {str(out)!r} already holds an earlier probe's {', '.join(earlier)}; "
            f"pass --overwrite (overwrite=True) to replace them, or another --output-dir"
        )
    return out


def _splits(
    args: ProbeArgs, seed: int, device: torch.device
) -> tuple[ImageSplit | StreamedSplit, ...]:
    shared: dict[str, Any] = {
        "root": args.data_root,
        "download": args.download,
        "seed": seed,
        "subset": args.subset,
        "test_fraction": args.test_fraction,
        "store_size": args.store_size,
        "fallback_store_size": args.image_size,
        "memory_budget_mib": args.memory_budget_mib,
        "on_bad_image": args.on_bad_image,
    }
    return tuple(
        load_data(args.data, split, size, **shared).to(device)
        for split, size in (("train", args.trainset_size), ("test", args.testset_size))
    )


def run_probe(args: ProbeArgs) -> list[ProbeRow]:
    """Probe every stage of every architecture on one dataset, over seeds; write JSON and a chart.

    Before any image is read: the output folder is checked (an earlier probe's files
    are refused without `overwrite`), the device is checked, and every architecture is
    built with its weights, so a wrong weights file fails at once. Then, per
    architecture, each seed's splits go through one frozen pass for all stages and both
    probes; `probe.json` and `probe.png` are rewritten (atomically) after each
    architecture, so a later failure keeps what was finished.

    Args:
        args: the settings.

    Returns:
        One row per architecture and stage, each with every seed.

    Raises:
        ValueError: sizes larger than the data, weights an architecture lacks, a device
            this machine does not have.
        resfx.train.OutputDirectoryError: `output_dir` holds an earlier probe's results
            (without `overwrite`), or cannot be written.
        resfx.data.BadImageError: unreadable images with `on_bad_image="error"`.

    Example:
        >>> rows = run_probe(ProbeArgs(trainset_size=40, testset_size=20, image_size=32,
        ...                            stages="stem", output_dir=None))
        >>> rows[0].arch, rows[0].stage, rows[0].dim, len(rows[0].linear)
        ('resnet18', 'stem', 64, 1)
    """
    out = _prepare_output(args)
    if args.features is not None:
        return _probe_store(args, out)
    device = resolve_device(args.device, DistributedContext(0, 1, 0))
    models = {}
    for arch in args.arch_list:
        torch.manual_seed(args.seed)
        models[arch] = freeze(create_model(arch, weights=args.weights_for(arch)))
    seeds = range(args.seed, args.seed + args.seeds)
    sizes = f"{args.trainset_size} train and {args.testset_size} test images"
    weights = {arch: args.weights_for(arch) for arch in args.arch_list}
    _log_start(args, f"{args.data} ({sizes}), device {device}", weights, args.stage_list)
    seed_matters = args.data == "synthetic" or args.subset != "first"
    loaded: dict[int, tuple[ImageSplit | StreamedSplit, ...]] = {}
    cache = FeatureCache(args.feature_cache_dir)
    extraction = {
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "precision": args.precision,
    }
    rows: list[ProbeRow] = []
    for arch in args.arch_list:
        model = models.pop(arch).to(device)
        per_seed = []
        for seed in seeds:
            data_seed = seed if seed_matters else args.seed
            if data_seed not in loaded:
                loaded[data_seed] = _splits(args, data_seed, device)
            train_split, test_split = loaded[data_seed]
            classes = len(train_split.classes) or (
                int(max(train_split.labels.max(), test_split.labels.max())) + 1
            )
            per_seed.append(
                _stage_results(
                    model,
                    train_split,
                    test_split,
                    args.stage_list,
                    args.settings,
                    cache=cache,
                    n_classes=classes,
                    seed=seed,
                    extraction=extraction,
                    arch=arch,
                )
            )
        del model
        rows += [
            ProbeRow(
                arch,
                loaded[next(iter(loaded))][0].dataset,
                args.weights_for(arch),
                stage,
                per_seed[0][1][stage],
                classes,
                tuple(results[stage].linear for results, _, _ in per_seed),
                tuple(results[stage].knn for results, _, _ in per_seed),
                sum(share for _, _, share in per_seed) / len(per_seed),
            )
            for stage in args.stage_list
        ]
        if out is not None:
            _write_report(args, out, rows, done=arch == args.arch_list[-1])
    return rows


def _log_start(
    args: ProbeArgs, source: str, weights: dict[str, str | None], stages: Sequence[str]
) -> None:
    """The line that says what a probe run is about to do: architectures and their weights,
    stages, seeds, and the data."""
    fields = {
        "archs": list(weights),
        "weights": list(weights.values()),
        "stages": list(stages),
        "seeds": args.seeds,
        "source": source,
    }
    _LOG.info(
        "probing %s, stages %s, over %d seed%s, on %s",
        ", ".join(f"{arch} ({value or 'random'} weights)" for arch, value in weights.items()),
        ", ".join(stages),
        args.seeds,
        "s" if args.seeds > 1 else "",
        source,
        extra=fields,
    )


def _store_stages(store: FeatureStore, args: ProbeArgs) -> list[str]:
    missing = [split for split in ("train", "test") if split not in store.splits]
    stages = [stage for stage in args.stage_list if stage in store.stages]
    if missing or not stages:
        raise ValueError(
            f"the feature store {args.features} holds splits {list(store.splits)} and stages "
            f"{list(store.stages)}; a probe needs 'train' and 'test' and one of {args.stage_list}"
            f": extract with --stages {','.join(args.stage_list)} from a folder with train/ and "
            f"test/"
        )
    return stages


def _probe_store(args: ProbeArgs, out: Path | None) -> list[ProbeRow]:
    """Both probes on each stage a feature store holds, over seeds; no image is read."""
    store = FeatureStore.open(str(args.features))
    stages = _store_stages(store, args)
    labels = (store.labels("train"), store.labels("test"))
    classes = len(store.classes) or int(max(int(y.max()) for y in labels)) + 1
    arch = str(store.manifest["arch"])
    weights = {arch: store.manifest["weights"]}
    _log_start(args, f"the feature store {args.features}", weights, stages)
    per_seed = [
        _probe_logged(
            {stage: store.source("train", stage) for stage in stages},
            {stage: store.source("test", stage) for stage in stages},
            args.settings,
            n_classes=classes,
            seed=seed,
            arch=arch,
        )
        for seed in range(args.seed, args.seed + args.seeds)
    ]
    rows = [
        ProbeRow(
            arch,
            f"store:{args.features}",
            store.manifest["weights"],
            stage,
            store.widths[stage],
            classes,
            tuple(results[stage].linear for results in per_seed),
            tuple(results[stage].knn for results in per_seed),
            0.0,
        )
        for stage in stages
    ]
    if out is not None:
        _write_report(args, out, rows, done=True)
    return rows
