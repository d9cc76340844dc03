"""The job's configuration: the seed's defaults, every choice named, every value checked up front."""

import math
import re
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Union, get_args, get_origin

from .._freeze import BNPolicy, OptimizerName
from .._frozen_step import CompileMode
from .._precision import Precision
from .._resnet_layout import RESNET_STAGES
from .._schedule import Schedule
from ..data import (
    CIFAR10_SIZES,
    DATASETS,
    DEFAULT_MEMORY_BUDGET_MIB,
    BadImagePolicy,
    DatasetName,
    SubsetKind,
    check_data_source,
)
from ..models import list_models

Mode = Literal["head", "full", "cached", "partial"]
"""`"head"`: only the new head trains on a frozen backbone (the seed's job); `"full"`:
everything trains; `"cached"`: frozen features are computed once, then the head trains on them;
`"partial"`: the stages after `freeze_to` train (or those `stages` lists, from their epochs)."""

Dataset = DatasetName
"""Deprecated name of `DatasetName` (it shadowed `torch.utils.data.Dataset`); removed in the next release."""

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_STAGE_ITEM = re.compile(r"^(?P<stage>[a-z0-9_]+):(?P<epoch>\d+)$")


_BOUNDS: dict[str, tuple[int, int]] = {
    "batch_size": (1, 2**16),
    "epochs": (1, 10**6),
    "n_classes": (2, 10**6),
    "image_size": (1, 4096),
    "seed": (0, 2**63 - 1),  # torch.manual_seed takes up to 2**64 - 1; the sampler adds the epoch
    "num_workers": (0, 1024),
    "checkpoint_every": (0, 2**63 - 1),
    "store_size": (1, 4096),
    "memory_budget_mib": (0, 2**30),
}
"""Allowed range of each integer setting (trainset_size/testset_size: the split's size)."""

_TYPE_NAMES = {bool: "True or False", int: "an int", float: "a number", str: "a str"}

_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _check_type(name: str, value: Any, kind: Any) -> None:
    """Refuse a value of the wrong type: bools are not ints, floats are not ints, "64" is not 64."""
    union = get_origin(kind) in (Union, types.UnionType)
    options = get_args(kind) if union else (kind,)
    if value is None and type(None) in options:
        return
    base = next(option for option in options if option is not type(None))
    if get_origin(base) is Literal:
        return  # the value itself is checked against the choices
    if base is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif base is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    else:
        fits = isinstance(value, base)
    if not fits:
        expected = _TYPE_NAMES[base] + (" or None" if union else "")
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")


@dataclass(frozen=True)
class TrainingArgs:
    """Settings of one training run; the defaults are the seed's job.

    The seed trained a new `Linear(512, 10)` head on torchvision's ImageNet
    ResNet34 for 5 epochs (Adam, lr 1e-3, batch 64) on the first 10,000
    CIFAR-10 training images, testing on the first 1,000 test images at 224x224.

    Args:
        batch_size: examples per optimizer step (per process in a distributed run).
        epochs: passes over the training subset.
        learning_rate: the peak learning rate (of the head's group in a staged run).
        n_classes: outputs of the new head; `None` takes the data's class count (10
            for CIFAR-10 and synthetic, the class folders of an image folder); a
            number that disagrees with an image folder's classes is an error.
        trainset_size: first training examples used.
        testset_size: first test examples used.
        mode: `"head"`, `"full"`, `"cached"` or `"partial"` (see `Mode`).
        freeze_to: in `"partial"` mode, the last stage kept frozen (`"stem"` ... `"layer4"`);
            every later stage trains from the start.
        stages: in `"partial"` mode instead of `freeze_to`, a staged run:
            `"head:0,layer4:2,layer3:4"` trains each stage from the epoch
            after its colon (see `resfx.Finetuner`); unlisted stages stay frozen.
        optimizer: `"adam"`, `"adamw"` or `"sgd"` (momentum 0.9).
        weight_decay: weight decay of weights with 2 or more axes (biases and norms: 0).
        lr_decay: in `"partial"` mode, each stage's rate is this times the next
            stage's toward the head (layer-wise decay).
        schedule: `"constant"`, `"cosine"` or `"onecycle"` over the whole run.
        warmup_epochs: linear warm-up of each stage from when it starts, in epochs.
        data: `"cifar10"`, `"synthetic"`, or the path of an image folder
            (`train/` and `test/` or `val/` class folders, or one folder of class
            folders split by `test_fraction`).
        arch: the backbone, a name of `resfx.models.list_models()`.
        subset: which examples `trainset_size`/`testset_size` take: `"first"`
            (the seed's), `"random"` or `"stratified"` (seeded by `seed`); `"auto"` (the
            default) is `"first"` for cifar10/synthetic, `"stratified"` for a folder.
        test_fraction: an image folder without train/test folders: each class's share
            for testing.
        store_size: an image folder: side the images are decoded and stored at;
            `None` keeps their own size when all are one square size, else `image_size`.
        memory_budget_mib: an image folder held on the device up to this many MiB
            of uint8 images; larger ones are streamed from the files every pass.
        on_bad_image: an image folder's unreadable files: `"error"` (stop, naming
            them) or `"skip"` (leave them out, counted).
        data_root: folder holding `cifar-10-batches-py`.
        download: download CIFAR-10 when its files are missing.
        weights: pretrained weights name or checkpoint path; `None` for random initialisation.
        bn: BatchNorm policy of the frozen backbone (`"head"`/`"cached"` modes).
        image_size: side of the resized square images.
        device: `"auto"` (GPU when there is one), `"cpu"`, `"cuda"` or `"cuda:N"`.
        precision: `"fp32"` or `"bf16"`.
        compile: `"head"`/`"cached"` modes with `bn="eval"`: `"off"` runs eagerly; a
            `torch.compile` mode (see `resfx.CompileMode`) compiles `"head"` mode's folded
            frozen backbone for one batch shape (the set-up phase `"compile"`), and on a
            GPU replays the head's step from a CUDA graph in both modes (Adam/AdamW, a
            constant learning rate, one process). `"cached"` mode's one feature pass
            stays eager: compiling it costs more than it saves on a single pass.
        seed: seeds the head's initialisation, the shuffling and the synthetic data.
        num_workers: DataLoader workers of the seed's reference loop (resfx's own
            pipeline keeps the images on the device and needs none).
        output_dir: where the plot, history and checkpoints go; `None` writes nothing.
        checkpoint_every: also save a checkpoint every this many steps (0: only
            at the end of each epoch); needs `output_dir`.
        resume: continue from `output_dir/checkpoint.pt` when it exists.
        overwrite: replace the files of a run already in `output_dir` (its checkpoint,
            history and plot; nothing else). Without `resume` or `overwrite` a folder
            holding a run is refused.
        feature_cache_dir: keep `"cached"` mode's features on disk here, across runs.
        features: a feature store folder from `resfx extract` (with `train` and `test`
            splits and the `pooled` stage): `"cached"` mode trains the head on its
            features, read a batch at a time, and decodes no image; `data`, the sizes
            and `subset` are then not used.
        progress: show progress bars; `None` shows them when stderr is a terminal.

    Raises:
        TypeError: a value has the wrong type (`epochs=2.5`, `batch_size="64"`, `progress="no"`).
        ValueError: a value is out of range or unknown; the message names it and what is allowed.

    Example:
        >>> TrainingArgs().batch_size, TrainingArgs().mode
        (64, 'head')
        >>> TrainingArgs(batch_size=0)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be at least 1, got 0
    """

    batch_size: int = field(default=64, metadata=_help("examples per optimizer step"))
    epochs: int = field(default=5, metadata=_help("passes over the training subset"))
    learning_rate: float = field(default=1e-3, metadata=_help("the peak learning rate"))
    n_classes: int | None = field(
        default=None, metadata=_help("outputs of the new head; none: the data's class count")
    )
    trainset_size: int = field(default=10_000, metadata=_help("first training examples used"))
    testset_size: int = field(default=1_000, metadata=_help("first test examples used"))
    mode: Mode = field(
        default="head",
        metadata=_help(
            "head: train the new head on the frozen backbone; full: fine-tune everything; "
            "cached: compute frozen features once, then train the head on them"
        ),
    )
    freeze_to: str | None = field(
        default=None,
        metadata=_help("partial mode: the last stage kept frozen (stem, layer1 ... layer4)"),
    )
    stages: str | None = field(
        default=None,
        metadata=_help("partial mode, a staged run: stage:epoch pairs, e.g. head:0,layer4:2"),
    )
    optimizer: OptimizerName = field(default="adam", metadata=_help("adam, adamw or sgd"))
    weight_decay: float = field(
        default=0.0, metadata=_help("weight decay of weights (not of biases and norms)")
    )
    lr_decay: float = field(
        default=1.0,
        metadata=_help("partial mode: each stage's rate x this per stage from the head"),
    )
    schedule: Schedule = field(
        default="constant", metadata=_help("learning-rate schedule: constant, cosine, onecycle")
    )
    warmup_epochs: float = field(
        default=0.0, metadata=_help("linear warm-up of each stage from its start, in epochs")
    )
    data: str = field(
        default="cifar10",
        metadata=_help("cifar10, synthetic (offline, generated), or an image folder's path"),
    )
    data_root: str = field(default="data", metadata=_help("folder holding cifar-10-batches-py"))
    download: bool = field(default=True, metadata=_help("download CIFAR-10 when missing"))
    weights: str | None = field(
        default="IMAGENET1K_V1",
        metadata=_help("pretrained weights name or checkpoint path; 'none' for random init"),
    )
    bn: BNPolicy = field(default="eval", metadata=_help("BatchNorm policy of the frozen backbone"))
    image_size: int = field(default=224, metadata=_help("side of the resized square images"))
    device: str = field(default="auto", metadata=_help("auto, cpu, cuda or cuda:N"))
    precision: Precision = field(
        default="fp32", metadata=_help("fp32, or bf16 autocast for the backbone")
    )
    compile: CompileMode = field(
        default="off",
        metadata=_help(
            "head/cached modes: torch.compile mode of the folded frozen backbone, plus a "
            "CUDA-graphed head step on a GPU; off: eager"
        ),
    )
    seed: int = field(default=0, metadata=_help("seeds initialisation, shuffling, synthetic data"))
    num_workers: int = field(
        default=0, metadata=_help("DataLoader workers of the seed's reference loop")
    )
    output_dir: str | None = field(
        default=None, metadata=_help("where plot, history and checkpoints go")
    )
    checkpoint_every: int = field(
        default=0, metadata=_help("also checkpoint every N steps (0: at epoch ends only)")
    )
    resume: bool = field(
        default=False, metadata=_help("continue from OUTPUT_DIR/checkpoint.pt if it exists")
    )
    overwrite: bool = field(
        default=False,
        metadata=_help("replace the run already in OUTPUT_DIR (only resfx's own files)"),
    )
    feature_cache_dir: str | None = field(
        default=None, metadata=_help("keep cached mode's features on disk here")
    )
    features: str | None = field(
        default=None,
        metadata=_help(
            "a feature store from `resfx extract`: mode cached trains the head on its pooled "
            "features, reading no image (DATA and the sizes are then not used)"
        ),
    )
    progress: bool | None = field(
        default=None, metadata=_help("progress bars (default: when stderr is a terminal)")
    )
    arch: str = field(default="resnet34", metadata=_help("the backbone architecture"))
    subset: SubsetKind = field(
        default="auto", metadata=_help("auto: first on cifar10/synthetic, stratified on a folder")
    )
    test_fraction: float = field(
        default=0.2, metadata=_help("one image folder: each class's share for testing")
    )
    store_size: int | None = field(
        default=None,
        metadata=_help("image folder: side images are stored at (none: own size or image size)"),
    )
    memory_budget_mib: int = field(
        default=DEFAULT_MEMORY_BUDGET_MIB,
        metadata=_help("image folder: MiB of uint8 images held on the device, else streamed"),
    )
    on_bad_image: BadImagePolicy = field(
        default="error", metadata=_help("image folder's unreadable files: error or skip")
    )

    def __post_init__(self) -> None:
        for setting in fields(self):
            _check_type(setting.name, getattr(self, setting.name), setting.type)
        _check_bounds(self)
        _check_paths(self)
        _check_names(self)
        _check_sizes(self)
        _MODE_CHECKS[self.mode](self)
        _check_rates(self)
        if (self.resume or self.overwrite or self.checkpoint_every) and self.output_dir is None:
            raise ValueError(
                "resume, overwrite and checkpoint_every need output_dir, where checkpoint.pt is kept"
            )

    def stage_schedule(self) -> list[tuple[str, int]]:
        """The `(stage, start epoch)` pairs of this run, head first (see `resfx.Finetuner`).

        `"head"` and `"full"` train `[("head", 0)]` and every stage from epoch
        0; `"partial"` the stages after `freeze_to`, or those of `stages`.

        Raises:
            ValueError: `stages` is malformed or names an unknown stage.

        Example:
            >>> TrainingArgs(mode="partial", stages="head:0,layer4:2").stage_schedule()
            [('head', 0), ('layer4', 2)]
            >>> TrainingArgs(mode="partial", freeze_to="layer3").stage_schedule()
            [('head', 0), ('layer4', 0)]
        """
        names = tuple(RESNET_STAGES)
        if self.mode in ("head", "cached"):
            return [("head", 0)]
        if self.mode == "full":
            return [(name, 0) for name in reversed(names)]
        if self.stages is None:
            kept = names.index(str(self.freeze_to))
            return [(name, 0) for name in reversed(names[kept + 1 :])]
        pairs = []
        for item in self.stages.split(","):
            match = _STAGE_ITEM.match(item.strip())
            if match is None or match["stage"] not in names:
                raise ValueError(
                    f"stages must be stage:epoch pairs with stages from {names}, e.g. "
                    f"'head:0,layer4:2'; got {item!r} in {self.stages!r}"
                )
            pairs.append((match["stage"], int(match["epoch"])))
        listed = [name for name, _ in pairs]
        if len(set(listed)) != len(listed) or min(epoch for _, epoch in pairs) != 0:
            raise ValueError(
                f"stages must name each stage once and start one at epoch 0 (the head, "
                f"usually), got {self.stages!r}"
            )
        return pairs

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values, for JSON and checkpoints.

        Example:
            >>> TrainingArgs().to_dict()["learning_rate"]
            0.001
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainingArgs":
        """Settings from `to_dict`'s output; unknown keys are an error.

        Raises:
            ValueError: a key is not a field.

        Example:
            >>> TrainingArgs.from_dict({"epochs": 2}).epochs
            2
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown TrainingArgs fields {unknown}; known fields: {sorted(known)}"
            )
        return cls(**values)


def _check_bounds(args: "TrainingArgs") -> None:
    """Integers in their `_BOUNDS`, floats finite and in the float32 range the optimizer uses."""
    for name, (low, high) in _BOUNDS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")
        if value > high:
            raise ValueError(f"{name} must be at most {high}, got {value}")
    if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        raise ValueError(f"learning_rate must be positive and finite, got {args.learning_rate}")
    for name in ("weight_decay", "lr_decay", "warmup_epochs"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value >= 0) or (name == "lr_decay" and value == 0):
            raise ValueError(f"{name} must be finite and >= 0 (lr_decay > 0), got {value}")
    if args.weight_decay > _FLOAT32_MAX:
        raise ValueError(
            f"weight_decay must be at most {_FLOAT32_MAX:.4g} (the optimizer computes in "
            f"float32), got {args.weight_decay}"
        )
    if args.warmup_epochs > _BOUNDS["epochs"][1]:
        raise ValueError(
            f"warmup_epochs must be at most {_BOUNDS['epochs'][1]}, got {args.warmup_epochs}"
        )


def _check_paths(args: "TrainingArgs") -> None:
    for name in ("output_dir", "feature_cache_dir", "features", "weights"):
        if getattr(args, name) == "":
            raise ValueError(f"{name} is empty; pass a path, or None (none on the command line)")
    if args.resume and args.overwrite:
        raise ValueError(
            "resume and overwrite exclude each other: resume continues the run in "
            "output_dir, overwrite replaces it; pass one"
        )
    check_data_source(args.data)


def _check_names(args: "TrainingArgs") -> None:
    if args.arch not in list_models():
        raise ValueError(f"unknown arch {args.arch!r}; expected one of {list_models()}")
    if not 0 < args.test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {args.test_fraction}")
    for name, allowed in (
        ("mode", Mode),
        ("precision", Precision),
        ("bn", BNPolicy),
        ("subset", SubsetKind),
        ("on_bad_image", BadImagePolicy),
        ("optimizer", OptimizerName),
        ("schedule", Schedule),
        ("compile", CompileMode),
    ):
        if getattr(args, name) not in get_args(allowed):
            raise ValueError(
                f"unknown {name} {getattr(args, name)!r}; expected one of {get_args(allowed)}"
            )


def _check_sizes(args: "TrainingArgs") -> None:
    for split, size in (("train", args.trainset_size), ("test", args.testset_size)):
        available = CIFAR10_SIZES[split] if args.data in DATASETS else size
        if not 1 <= size <= available:
            raise ValueError(
                f"{split}set_size must be between 1 and the {split} split's {available} "
                f"examples, got {size}"
            )
    if not _DEVICE.match(args.device):
        raise ValueError(f"unknown device {args.device!r}; expected auto, cpu, cuda or cuda:N")


def _check_rates(args: "TrainingArgs") -> None:
    """Every stage's rate, `learning_rate * lr_decay**depth`, a normal float32 (the optimizer's)."""
    low, high = math.log(_FLOAT32_TINY), math.log(_FLOAT32_MAX)
    for depth, (stage, _) in enumerate(args.stage_schedule()):
        exponent = math.log(args.learning_rate) + depth * math.log(args.lr_decay)
        if not low <= exponent <= high:
            raise ValueError(
                f"learning_rate={args.learning_rate} and lr_decay={args.lr_decay} give {stage} a "
                f"learning rate of about 1e{exponent / math.log(10):.0f}, outside the float32 "
                f"range the optimizer computes in ({_FLOAT32_TINY:.3g} to {_FLOAT32_MAX:.3g}); "
                f"pass values that keep every stage's rate in it"
            )


def _check_no_store(args: "TrainingArgs") -> None:
    if args.features is not None:
        raise ValueError(
            f"features (a feature store, {args.features!r}) is read by mode='cached' only "
            f"(got mode={args.mode!r}); pass mode='cached'"
        )


def _check_not_partial(args: "TrainingArgs") -> None:
    if args.freeze_to is not None or args.stages is not None:
        raise ValueError(
            f"freeze_to and stages are for mode='partial' (got mode={args.mode!r}, "
            f"freeze_to={args.freeze_to!r}, stages={args.stages!r})"
        )


def _check_compile(args: "TrainingArgs") -> None:
    if args.compile != "off" and (args.mode not in ("head", "cached") or args.bn != "eval"):
        raise ValueError(
            f"compile={args.compile!r} compiles the folded frozen backbone of mode 'head' or "
            f"'cached' with bn='eval' (got mode={args.mode!r}, bn={args.bn!r}); pass "
            f"compile='off' for this run"
        )


def _check_head(args: "TrainingArgs") -> None:
    """`"head"` mode: no stages to train; compiling needs the folded (eval-BatchNorm) backbone."""
    _check_not_partial(args)
    _check_no_store(args)
    _check_compile(args)


def _check_cached(args: "TrainingArgs") -> None:
    """`"cached"` mode: as `"head"`, and a feature is cached only when no batch changes it."""
    _check_not_partial(args)
    if args.bn != "eval":
        raise ValueError(
            f"mode='cached' needs bn='eval' (with bn={args.bn!r} a frozen feature depends on "
            f"the other images in its batch, so it cannot be cached); use mode='head'"
        )
    if args.features is not None and args.feature_cache_dir is not None:
        raise ValueError(
            f"features reads the store {args.features!r} and feature_cache_dir caches computed "
            f"features ({args.feature_cache_dir!r}); pass one of the two"
        )
    _check_compile(args)


def _check_partial(args: "TrainingArgs") -> None:
    """`"partial"` mode: `freeze_to` or `stages`, one of the two."""
    if (args.freeze_to is None) == (args.stages is None):
        raise ValueError(
            "mode='partial' needs freeze_to (e.g. 'layer3': layer4 and the head train) or "
            "stages (e.g. 'head:0,layer4:2'), one of the two"
        )
    frozen_stages = tuple(RESNET_STAGES)[:-1]
    if args.freeze_to is not None and args.freeze_to not in frozen_stages:
        raise ValueError(f"unknown freeze_to {args.freeze_to!r}; expected one of {frozen_stages}")
    _check_no_store(args)
    _check_compile(args)


def _check_full(args: "TrainingArgs") -> None:
    """`"full"` mode: everything trains from the start, eagerly."""
    _check_not_partial(args)
    _check_no_store(args)
    _check_compile(args)


_MODE_CHECKS: dict[str, Callable[["TrainingArgs"], None]] = {
    "head": _check_head,
    "cached": _check_cached,
    "partial": _check_partial,
    "full": _check_full,
}
"""Each mode's own checks of the settings (the rest apply to every mode)."""


RESUMABLE_CHANGES: frozenset[str] = frozenset(
    {
        "epochs",
        "output_dir",
        "resume",
        "overwrite",
        "progress",
        "num_workers",
        "checkpoint_every",
        "device",
        "data_root",
        "download",
        "feature_cache_dir",
        "memory_budget_mib",
    }
)
"""Fields that may differ between a run and the run that resumes it."""
