"""Linear probes per stage: which stage's frozen features transfer best, per architecture.

For each architecture, one frozen inference pass over the train and test images
computes the average-pooled output of every chosen stage (stem, layer1..layer4),
stored in the feature cache one entry per stage. A linear head is then trained
on each stage's standardised features (full-batch Adam on cross-entropy, seeded)
and scored on the test split. This is what CLIP_benchmark and VTAB do across
models; here it is done across the stages of one frozen backbone.

Example:
    >>> import resfx
    >>> from resfx.data import load_split
    >>> from resfx.models import ResNet, ResNetConfig
    >>> model = resfx.freeze(ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1))))
    >>> rows = probe_stages(model, load_split("synthetic", "train", 64),
    ...                     load_split("synthetic", "test", 32), stages=["stem", "layer4"],
    ...                     image_size=32, steps=20)
    >>> [row.stage for row in rows]
    ['stem', 'layer4']
"""

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ._atomic import atomic_write_bytes
from ._freeze import freeze
from .data import DEFAULT_MEMORY_BUDGET_MIB, ImageSplit, StreamedSplit, load_data
from .features import FeatureCache
from .models import FEATURE_STAGES, ResNet, create_model, list_models

PROBE_STAGES: tuple[str, ...] = tuple(s for s in FEATURE_STAGES if s != "pooled")
"""Stages a probe can read: `stem`, `layer1` ... `layer4` (each average-pooled)."""

__all__ = [
    "PROBE_STAGES",
    "ProbeArgs",
    "ProbeRow",
    "format_probe_table",
    "linear_probe",
    "plot_probe",
    "probe_stages",
    "run_probe",
]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class ProbeRow:
    """One probe: an architecture's stage, its feature width and accuracies.

    Example:
        >>> ProbeRow("resnet18", "synthetic", "layer4", 512, 0.9, 0.8, 0.1).test_accuracy
        0.8
    """

    arch: str
    dataset: str
    stage: str
    dim: int
    train_accuracy: float
    test_accuracy: float
    seconds: float


def linear_probe(
    train_features: Float[Tensor, "n d"],
    train_labels: Int[Tensor, " n"],
    test_features: Float[Tensor, "m d"],
    test_labels: Int[Tensor, " m"],
    n_classes: int,
    *,
    steps: int = 300,
    learning_rate: float = 0.01,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> tuple[float, float]:
    """Train a linear head on features (full batch, Adam) and return train and test accuracy.

    Features are standardised with the training split's mean and standard
    deviation; the head starts at zero, so the result depends only on the data,
    `steps`, the learning rate and weight decay (the seed is for ties in future
    variants and kept in reports).

    Args:
        train_features: `(n, d)` features of the training images.
        train_labels: their classes.
        test_features: `(m, d)` features of the test images.
        test_labels: their classes.
        n_classes: outputs of the head.
        steps: full-batch Adam steps.
        learning_rate: Adam's learning rate.
        weight_decay: L2 penalty on the head's weights.
        seed: seeds torch for the run.

    Returns:
        `(train_accuracy, test_accuracy)` in [0, 1].

    Raises:
        ValueError: `steps` or `n_classes` below 1.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [0.1], [0.9]]); y = torch.tensor([0, 1, 0, 1])
        >>> linear_probe(x, y, x, y, 2, steps=50)
        (1.0, 1.0)
    """
    if steps < 1 or n_classes < 1:
        raise ValueError(f"steps and n_classes must be at least 1, got {steps} and {n_classes}")
    torch.manual_seed(seed)
    mean = train_features.mean(dim=0, keepdim=True)
    std = train_features.std(dim=0, keepdim=True).clamp_min(1e-6)
    x_train = (train_features - mean) / std
    x_test = (test_features - mean) / std
    head = torch.nn.Linear(x_train.shape[1], n_classes, device=x_train.device)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(head(x_train), train_labels).backward()
        optimizer.step()
    with torch.no_grad():
        train_accuracy = (head(x_train).argmax(dim=1) == train_labels).float().mean()
        test_accuracy = (head(x_test).argmax(dim=1) == test_labels).float().mean()
    return float(train_accuracy), float(test_accuracy)


def probe_stages(
    model: ResNet,
    train_split: ImageSplit | StreamedSplit,
    test_split: ImageSplit | StreamedSplit,
    *,
    stages: Sequence[str] = PROBE_STAGES,
    image_size: int = 224,
    batch_size: int = 256,
    precision: str = "fp32",
    cache: FeatureCache | None = None,
    n_classes: int | None = None,
    arch: str = "model",
    steps: int = 300,
    learning_rate: float = 0.01,
    seed: int = 0,
) -> list[ProbeRow]:
    """A linear probe on each stage of a frozen model; one frozen pass per split serves all.

    Args:
        model: the ResNet, frozen with eval-mode BatchNorm (`resfx.freeze(model)`),
            on the splits' device.
        train_split: training images (on the model's device).
        test_split: test images.
        stages: names of `PROBE_STAGES`.
        image_size: side of the resized inputs.
        batch_size: images per forward pass.
        precision: `"fp32"` or `"bf16"`.
        cache: where features are kept (one entry per stage); `None`: in memory only.
        n_classes: the head's outputs; `None`: the largest label plus one.
        arch: the name reported in each row.
        steps: full-batch steps of each probe.
        learning_rate: Adam's learning rate.
        seed: seeds each probe.

    Returns:
        One row per stage, in `stages` order.

    Raises:
        ValueError: an unknown stage, or BatchNorm in training mode.

    Example:
        >>> probe_stages.__name__
        'probe_stages'
    """
    unknown = [s for s in stages if s not in PROBE_STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; expected names from {PROBE_STAGES}")
    cache = FeatureCache() if cache is None else cache
    shared = {"image_size": image_size, "batch_size": batch_size, "precision": precision}
    began = time.perf_counter()
    train = cache.stage_features(model, train_split, stages, **shared)
    test = cache.stage_features(model, test_split, stages, **shared)
    feature_seconds = (time.perf_counter() - began) / len(stages)
    classes = n_classes or int(max(train_split.labels.max(), test_split.labels.max())) + 1
    rows = []
    for stage in stages:
        began = time.perf_counter()
        train_accuracy, test_accuracy = linear_probe(
            train[stage],
            train_split.labels,
            test[stage],
            test_split.labels,
            classes,
            steps=steps,
            learning_rate=learning_rate,
            seed=seed,
        )
        seconds = feature_seconds + time.perf_counter() - began
        rows.append(
            ProbeRow(
                arch,
                train_split.dataset,
                stage,
                int(train[stage].shape[1]),
                train_accuracy,
                test_accuracy,
                seconds,
            )
        )
    return rows


@dataclass(frozen=True)
class ProbeArgs:
    """Settings of `resfx probe`: data, architectures, stages, probe training, outputs.

    Args:
        data: `"synthetic"`, `"cifar10"` or an image folder's path.
        archs: architectures, comma-separated (`"resnet18,resnet50"`).
        weights: weights name for every architecture (`"DEFAULT"`, `"IMAGENET1K_V1"`),
            or `None` for random backbones.
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
        device: `"cpu"`, `"cuda"`, `"cuda:N"`.
        precision: `"fp32"` or `"bf16"`.
        batch_size: images per forward pass.
        steps: full-batch steps of each probe.
        learning_rate: the probes' learning rate.
        seed: seeds the subsets, the synthetic data and the probes.
        output_dir: where `probe.json` and `probe.png` go; `None` writes nothing.
        feature_cache_dir: keep features on disk here, across runs.

    Raises:
        ValueError: an unknown architecture or stage, or a size below 1.

    Example:
        >>> ProbeArgs(archs="resnet18,resnet50").arch_list
        ['resnet18', 'resnet50']
    """

    data: str = field(default="synthetic", metadata=_help("synthetic, cifar10, or a folder"))
    archs: str = field(default="resnet18", metadata=_help("architectures, comma-separated"))
    weights: str | None = field(
        default=None, metadata=_help("weights name for every arch (DEFAULT, ...); none: random")
    )
    stages: str = field(default=",".join(PROBE_STAGES), metadata=_help("stages, comma-separated"))
    trainset_size: int = field(default=5_000, metadata=_help("training images"))
    testset_size: int = field(default=1_000, metadata=_help("test images"))
    subset: str = field(default="auto", metadata=_help("auto, first, random or stratified"))
    image_size: int = field(default=64, metadata=_help("side of the network's inputs"))
    store_size: int | None = field(
        default=None, metadata=_help("image folder: side images are stored at")
    )
    test_fraction: float = field(default=0.2, metadata=_help("one image folder: test share"))
    memory_budget_mib: int = field(
        default=DEFAULT_MEMORY_BUDGET_MIB, metadata=_help("image folder: MiB held on the device")
    )
    on_bad_image: str = field(default="error", metadata=_help("unreadable files: error or skip"))
    data_root: str = field(default="data", metadata=_help("folder holding cifar-10-batches-py"))
    download: bool = field(default=True, metadata=_help("download CIFAR-10 when missing"))
    device: str = field(default="cpu", metadata=_help("cpu, cuda or cuda:N"))
    precision: str = field(default="fp32", metadata=_help("fp32 or bf16"))
    batch_size: int = field(default=256, metadata=_help("images per forward pass"))
    steps: int = field(default=300, metadata=_help("full-batch steps of each probe"))
    learning_rate: float = field(default=0.01, metadata=_help("the probes' learning rate"))
    seed: int = field(default=0, metadata=_help("seeds subsets, synthetic data and probes"))
    output_dir: str | None = field(
        default="runs/probe", metadata=_help("where probe.json and probe.png go")
    )
    feature_cache_dir: str | None = field(
        default=None, metadata=_help("keep features on disk here")
    )

    def __post_init__(self) -> None:
        unknown = [a for a in self.arch_list if a not in list_models()]
        if unknown:
            raise ValueError(f"unknown archs {unknown}; expected names from {list_models()}")
        wrong = [s for s in self.stage_list if s not in PROBE_STAGES]
        if wrong or not self.stage_list:
            raise ValueError(f"unknown stages {wrong}; expected names from {PROBE_STAGES}")
        for name in ("trainset_size", "testset_size", "image_size", "batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def arch_list(self) -> list[str]:
        """The architectures, in order."""
        return [a.strip() for a in self.archs.split(",") if a.strip()]

    @property
    def stage_list(self) -> list[str]:
        """The stages, in order."""
        return [s.strip() for s in self.stages.split(",") if s.strip()]


def format_probe_table(rows: Sequence[ProbeRow]) -> str:
    """The probe results as a text table: one line per architecture and stage.

    Example:
        >>> print(format_probe_table([ProbeRow("resnet18", "synthetic", "stem", 64, 0.5, 0.25, 1.0)]))
        arch      stage   dim  train acc  test acc
        resnet18  stem     64     50.00%    25.00%
    """
    width = max([len("arch"), *(len(r.arch) for r in rows)])
    lines = [f"{'arch':<{width}}  stage   dim  train acc  test acc"]
    for row in rows:
        lines.append(
            f"{row.arch:<{width}}  {row.stage:<6} {row.dim:>4}  {100 * row.train_accuracy:>8.2f}%"
            f"  {100 * row.test_accuracy:>7.2f}%"
        )
    return "\n".join(lines)


def plot_probe(rows: Sequence[ProbeRow], path: str | Path) -> Path:
    """A bar chart of test accuracy per stage, one bar colour per architecture, as PNG.

    Example:
        >>> import tempfile
        >>> rows = [ProbeRow("resnet18", "synthetic", s, 8, 0.5, 0.4, 0.0) for s in ("stem", "layer1")]
        >>> plot_probe(rows, tempfile.mkdtemp() + "/probe.png").suffix
        '.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    archs = list(dict.fromkeys(r.arch for r in rows))
    stages = list(dict.fromkeys(r.stage for r in rows))
    accuracy = {(r.arch, r.stage): 100 * r.test_accuracy for r in rows}
    figure, axes = plt.subplots(figsize=(1.6 + 1.3 * len(stages), 3.6))
    width = 0.8 / len(archs)
    for k, arch in enumerate(archs):
        xs = [i + (k - (len(archs) - 1) / 2) * width for i in range(len(stages))]
        ys = [accuracy.get((arch, s), 0.0) for s in stages]
        bars = axes.bar(xs, ys, width=width, label=arch)
        axes.bar_label(bars, fmt="%.1f", fontsize=7)
    axes.set_xticks(range(len(stages)), stages)
    axes.set_ylabel("test accuracy (%)")
    axes.set_ylim(0, 100)
    axes.set_title(f"linear probe per stage ({rows[0].dataset})" if rows else "linear probe")
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def run_probe(args: ProbeArgs) -> list[ProbeRow]:
    """Probe every stage of every architecture on one dataset; write JSON and a chart.

    Each architecture is built with `args.weights`, frozen (eval-mode BatchNorm)
    and moved to the device; the images are loaded once for all of them.

    Args:
        args: the settings.

    Returns:
        One row per architecture and stage.

    Raises:
        ValueError: sizes larger than the data, or weights an architecture lacks.
        resfx.data.BadImageError: unreadable images with `on_bad_image="error"`.

    Example:
        >>> rows = run_probe(ProbeArgs(trainset_size=32, testset_size=16, image_size=32,
        ...                            stages="stem", steps=5, output_dir=None))
        >>> rows[0].arch, rows[0].stage, rows[0].dim
        ('resnet18', 'stem', 64)
    """
    shared: dict[str, Any] = {
        "root": args.data_root,
        "download": args.download,
        "seed": args.seed,
        "subset": args.subset,
        "test_fraction": args.test_fraction,
        "store_size": args.store_size,
        "fallback_store_size": args.image_size,
        "memory_budget_mib": args.memory_budget_mib,
        "on_bad_image": args.on_bad_image,
    }
    train_split = load_data(args.data, "train", args.trainset_size, **shared).to(args.device)
    test_split = load_data(args.data, "test", args.testset_size, **shared).to(args.device)
    n_classes = len(train_split.classes) or None
    cache = FeatureCache(args.feature_cache_dir)
    rows = []
    for arch in args.arch_list:
        torch.manual_seed(args.seed)
        model = freeze(create_model(arch, weights=args.weights)).to(args.device)
        rows += probe_stages(
            model,
            train_split,
            test_split,
            stages=args.stage_list,
            image_size=args.image_size,
            batch_size=args.batch_size,
            precision=args.precision,
            cache=cache,
            n_classes=n_classes,
            arch=arch,
            steps=args.steps,
            learning_rate=args.learning_rate,
            seed=args.seed,
        )
    if args.output_dir is not None:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = {
            "args": {f.name: getattr(args, f.name) for f in fields(args)},
            "rows": [asdict(r) for r in rows],
        }
        atomic_write_bytes(out / "probe.json", json.dumps(report, indent=2).encode())
        plot_probe(rows, out / "probe.png")
    return rows
