"""The job's configuration: the seed's defaults, every choice named, every value checked up front."""

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from .._freeze import BNPolicy
from .._precision import Precision
from ..data import CIFAR10_SIZES

Mode = Literal["head", "full", "cached"]
"""`"head"`: only the new head trains on a frozen backbone (the seed's job); `"full"`:
everything trains; `"cached"`: frozen features are computed once, then the head trains on them."""

DatasetName = Literal["cifar10", "synthetic"]
"""CIFAR-10 through torchvision, or the generated stand-in with the same shapes."""

Dataset = DatasetName
"""Deprecated name of `DatasetName` (it shadowed `torch.utils.data.Dataset`); removed in the next release."""

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class TrainingArgs:
    """Settings of one training run; the defaults are the seed's job.

    The seed trained a new `Linear(512, 10)` head on torchvision's ImageNet
    ResNet34 for 5 epochs (Adam, lr 1e-3, batch 64) on the first 10,000
    CIFAR-10 training images, testing on the first 1,000 test images at 224x224.

    Args:
        batch_size: examples per optimizer step (per process in a distributed run).
        epochs: passes over the training subset.
        learning_rate: Adam's learning rate.
        n_classes: outputs of the new head.
        trainset_size: first training examples used.
        testset_size: first test examples used.
        mode: `"head"`, `"full"` or `"cached"` (see `Mode`).
        data: `"cifar10"` or `"synthetic"`.
        data_root: folder holding `cifar-10-batches-py`.
        download: download CIFAR-10 when its files are missing.
        weights: pretrained weights name or checkpoint path; `None` for random initialisation.
        bn: BatchNorm policy of the frozen backbone (`"head"`/`"cached"` modes).
        image_size: side of the resized square images.
        device: `"auto"` (GPU when there is one), `"cpu"`, `"cuda"` or `"cuda:N"`.
        precision: `"fp32"` or `"bf16"`.
        seed: seeds the head's initialisation, the shuffling and the synthetic data.
        num_workers: DataLoader workers of the seed's reference loop (resfx's own
            pipeline keeps the images on the device and needs none).
        output_dir: where the plot, history and checkpoints go; `None` writes nothing.
        checkpoint_every: also save a checkpoint every this many steps (0: only
            at the end of each epoch); needs `output_dir`.
        resume: continue from `output_dir/checkpoint.pt` when it exists.
        feature_cache_dir: keep `"cached"` mode's features on disk here, across runs.
        progress: show progress bars; `None` shows them when stderr is a terminal.

    Raises:
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
    learning_rate: float = field(default=1e-3, metadata=_help("Adam's learning rate"))
    n_classes: int = field(default=10, metadata=_help("outputs of the new head"))
    trainset_size: int = field(default=10_000, metadata=_help("first training examples used"))
    testset_size: int = field(default=1_000, metadata=_help("first test examples used"))
    mode: Mode = field(
        default="head",
        metadata=_help(
            "head: train the new head on the frozen backbone; full: fine-tune everything; "
            "cached: compute frozen features once, then train the head on them"
        ),
    )
    data: DatasetName = field(
        default="cifar10", metadata=_help("cifar10, or synthetic (offline, generated)")
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
    feature_cache_dir: str | None = field(
        default=None, metadata=_help("keep cached mode's features on disk here")
    )
    progress: bool | None = field(
        default=None, metadata=_help("progress bars (default: when stderr is a terminal)")
    )

    def __post_init__(self) -> None:
        for name, minimum in (
            ("batch_size", 1),
            ("epochs", 1),
            ("n_classes", 2),
            ("image_size", 1),
        ):
            value = getattr(self, name)
            if value < minimum:
                raise ValueError(f"{name} must be at least {minimum}, got {value}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        for name, allowed in (
            ("mode", Mode),
            ("data", DatasetName),
            ("precision", Precision),
            ("bn", BNPolicy),
        ):
            if getattr(self, name) not in get_args(allowed):
                raise ValueError(
                    f"unknown {name} {getattr(self, name)!r}; expected one of {get_args(allowed)}"
                )
        for split, size in (("train", self.trainset_size), ("test", self.testset_size)):
            available = CIFAR10_SIZES[split]
            if not 1 <= size <= available:
                raise ValueError(
                    f"{split}set_size must be between 1 and the {split} split's {available} "
                    f"examples, got {size}"
                )
        if not _DEVICE.match(self.device):
            raise ValueError(f"unknown device {self.device!r}; expected auto, cpu, cuda or cuda:N")
        if self.num_workers < 0 or self.checkpoint_every < 0:
            raise ValueError(
                f"num_workers and checkpoint_every must be >= 0, got {self.num_workers} and "
                f"{self.checkpoint_every}"
            )
        if self.mode == "cached" and self.bn != "eval":
            raise ValueError(
                f"mode='cached' needs bn='eval' (with bn={self.bn!r} a frozen feature depends on "
                f"the other images in its batch, so it cannot be cached); use mode='head'"
            )
        if (self.resume or self.checkpoint_every) and self.output_dir is None:
            raise ValueError(
                "resume and checkpoint_every need output_dir, where checkpoint.pt is kept"
            )

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


RESUMABLE_CHANGES: frozenset[str] = frozenset(
    {
        "epochs",
        "output_dir",
        "resume",
        "progress",
        "num_workers",
        "checkpoint_every",
        "device",
        "data_root",
        "download",
        "feature_cache_dir",
    }
)
"""Fields that may differ between a run and the run that resumes it."""
