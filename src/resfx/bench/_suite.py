"""What freezing saves, per training step: every mode measured side by side in one run."""

import gc
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

import torch
import torchvision
from torch import Tensor
from torch import nn as tnn
from tqdm.auto import tqdm

from .._freeze import BNPolicy, freeze_to
from .._frozen_step import fold_frozen_backbone, frozen_head_logits
from .._precision import Precision, autocast
from .._typing import Features, Images, Labels, Logits
from ..autograd import SavedTensorMeter, count_graph_nodes
from ..models import STAGES, resnet34
from ._measure import Timing, time_step

IMPLEMENTATIONS: tuple[str, ...] = ("resfx", "torchvision")
"""The ResNet34 implementations measured (same weights)."""

STEP_MODES: tuple[str, ...] = (
    "full",
    "frozen-eval",
    "frozen-batch",
    "frozen-train",
    "frozen-folded",
    "forward-only",
    "head-step",
)
"""Training-step modes, most expensive first.

- `full`: fine-tune everything (forward, backward, Adam on all parameters).
- `frozen-<policy>`: backbone frozen with that BatchNorm policy, head trained.
- `frozen-folded`: `resfx.train`'s `"head"` step itself, the same functions: the
  backbone's eval-mode BatchNorm folded into the convolutions, run in inference
  mode (in bf16 on a GPU, the folded copy's weights are stored in bf16), and the
  head trained in float32 outside autocast.
- `forward-only`: the whole model's forward in inference mode (the limit's first part).
- `head-step`: a head step on cached 512-d features (the limit's second part,
  and the cost per step of training on a feature cache).
"""


@dataclass(frozen=True)
class BenchConfig:
    """What `run_step_benchmarks` measures.

    Args:
        device: where to run.
        batch_size: images per step.
        image_size: side of the square input images.
        precisions: `"fp32"`, and `"bf16"` (autocast + channels_last, GPU only).
        implementations: which of `IMPLEMENTATIONS` to measure.
        modes: which of `STEP_MODES`.
        sweep: also measure the freeze-depth sweep (`freeze_to` stem..layer4).
        n_classes: classes of the new head.
        warmup: untimed steps before each measurement.
        repeats: timed steps per measurement.

    Raises:
        ValueError: an unknown precision, implementation or mode, or sizes below 1.

    Example:
        >>> BenchConfig(device="cpu", batch_size=2, image_size=32).precisions
        ('fp32',)
    """

    device: str = "cpu"
    batch_size: int = 8
    image_size: int = 64
    precisions: tuple[str, ...] = ("fp32",)
    implementations: tuple[str, ...] = IMPLEMENTATIONS
    modes: tuple[str, ...] = STEP_MODES
    sweep: bool = True
    n_classes: int = 10
    warmup: int = 2
    repeats: int = 5

    def __post_init__(self) -> None:
        unknown = (
            [p for p in self.precisions if p not in get_args(Precision)]
            + [i for i in self.implementations if i not in IMPLEMENTATIONS]
            + [m for m in self.modes if m not in STEP_MODES]
        )
        if unknown:
            raise ValueError(
                f"unknown precisions, implementations or modes {unknown}; expected "
                f"{get_args(Precision)}, {IMPLEMENTATIONS} and {STEP_MODES}"
            )
        if min(self.batch_size, self.image_size, self.repeats, self.n_classes) < 1:
            raise ValueError(
                f"batch_size, image_size, repeats and n_classes must be >= 1, got "
                f"{self.batch_size}, {self.image_size}, {self.repeats}, {self.n_classes}"
            )
        if "bf16" in self.precisions and torch.device(self.device).type != "cuda":
            raise ValueError("bf16 autocast + channels_last is measured on a CUDA device only")


@dataclass
class StepResult:
    """One measured training-step mode.

    Args:
        implementation: `"resfx"` or `"torchvision"`.
        precision: `"fp32"` or `"bf16"`.
        mode: a `STEP_MODES` entry or `"freeze_to:<stage>"`.
        median_ms: median step time.
        spread_ms: half the interquartile range of the step times.
        peak_memory_mib: peak GPU memory during the timed steps (`None` on the CPU).
        saved_bytes: bytes autograd saves for backward in one forward.
        graph_nodes: autograd nodes a backward runs.
        times_ms: every timed step.

    Example:
        >>> StepResult("resfx", "fp32", "full", 2.0, 0.1, None, 10, 3).mode
        'full'
    """

    implementation: str
    precision: str
    mode: str
    median_ms: float
    spread_ms: float
    peak_memory_mib: float | None
    saved_bytes: int
    graph_nodes: int
    times_ms: list[float] = field(default_factory=list)


def _build_model(implementation: str, num_classes: int) -> tnn.Module:
    """A fresh ResNet34 with torchvision's initial weights for seed 0, the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reference = torchvision.models.resnet34(num_classes=num_classes)
        if implementation == "torchvision":
            return reference
        model = resnet34(num_classes=num_classes)
    model.load_state_dict(reference.state_dict(), strict=True)
    return model


@dataclass
class PreparedStep:
    """One training-step mode, built and ready to time: inputs exist, nothing has run.

    Args:
        run: one whole step (zero grads, forward, backward, optimizer step), or
            the forward alone for `forward-only`.
        forward: the step's forward up to the loss (for metering), `None` for
            `forward-only`.
        model: the model the step trains.

    Example:
        >>> step = prepare_step("head-step", "resfx", BenchConfig(batch_size=2, image_size=32))
        >>> step.run()
    """

    run: Callable[[], Any]
    forward: Callable[[], Any] | None
    model: tnn.Module


@dataclass(frozen=True)
class _Batch:
    """A step's inputs, drawn from a generator of its own (the global RNG is left alone)."""

    images: Images
    labels: Labels
    features: Features

    @classmethod
    def draw(
        cls, config: BenchConfig, feature_dim: int, memory_format: torch.memory_format
    ) -> "_Batch":
        generator = torch.Generator().manual_seed(0)
        size, batch = config.image_size, config.batch_size
        images = torch.randn(batch, 3, size, size, generator=generator)
        labels = torch.randint(0, config.n_classes, (batch,), generator=generator)
        features = torch.randn(batch, feature_dim, generator=generator)
        device = torch.device(config.device)
        return cls(
            images.to(device).contiguous(memory_format=memory_format),
            labels.to(device),
            features.to(device),
        )


def _forward_only(model: tnn.Module, batch: _Batch, precision: Precision) -> PreparedStep:
    """The whole model's forward in inference mode: the limit's first part."""
    model.eval()

    def forward_only() -> Logits:
        with torch.inference_mode(), autocast(batch.images.device, precision):
            return model(batch.images)

    return PreparedStep(forward_only, None, model)


def _loss_of(
    mode: str, model: tnn.Module, batch: _Batch, precision: Precision
) -> tuple[list[tnn.Parameter], Callable[[], Tensor]]:
    """The parameters a mode trains and its forward up to the loss."""
    loss_fn = tnn.functional.cross_entropy
    head = model.fc
    if mode == "head-step":
        return list(head.parameters()), lambda: loss_fn(head(batch.features), batch.labels)
    if mode == "frozen-folded":
        # train's frozen forward itself (resfx._frozen_step), on a copy without the head.
        backbone = fold_frozen_backbone(model, precision=precision)
        backbone.fc = tnn.Identity()

        def folded() -> Tensor:
            logits = frozen_head_logits(backbone, head, batch.images, precision=precision)
            return loss_fn(logits, batch.labels)

        return list(head.parameters()), folded
    if mode.startswith("frozen-"):
        policy: BNPolicy = mode.removeprefix("frozen-")  # type: ignore[assignment]
        freeze_to(model, "layer4", bn=policy)
    elif mode.startswith("freeze_to:"):
        freeze_to(model, mode.removeprefix("freeze_to:"), bn="eval")
    model.train()

    def trained() -> Tensor:
        with autocast(batch.images.device, precision):
            return loss_fn(model(batch.images), batch.labels)

    return [p for p in model.parameters() if p.requires_grad], trained


def prepare_step(
    mode: str, implementation: str, config: BenchConfig, precision: Precision = "fp32"
) -> PreparedStep:
    """Build the model, inputs and optimizer of one mode; return the step to time.

    Args:
        mode: a `STEP_MODES` entry or `"freeze_to:<stage>"`.
        implementation: `"resfx"` or `"torchvision"` (same initial weights).
        config: device, batch size, image size, classes.
        precision: `"fp32"`, or `"bf16"` (autocast + channels_last).

    Returns:
        The prepared step.

    Example:
        >>> config = BenchConfig(batch_size=2, image_size=32)
        >>> prepare_step("frozen-eval", "torchvision", config).model.fc.weight.requires_grad
        True
    """
    device = torch.device(config.device)
    memory_format = torch.channels_last if precision == "bf16" else torch.contiguous_format
    model = _build_model(implementation, config.n_classes).to(device, memory_format=memory_format)
    batch = _Batch.draw(config, model.fc.in_features, memory_format)
    if mode == "forward-only":
        return _forward_only(model, batch, precision)
    params, forward = _loss_of(mode, model, batch, precision)
    optimizer = torch.optim.Adam(params, lr=1e-3, fused=device.type == "cuda")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        forward().backward()
        optimizer.step()

    return PreparedStep(step, forward, model)


def graph_cost(step: PreparedStep) -> tuple[int, int]:
    """Bytes autograd saves for backward and nodes a backward runs, for one forward of `step`.

    The model's own parameters and buffers are not counted as saved.

    Returns:
        `(saved_bytes, graph_nodes)`; `(0, 0)` for a step without autograd.

    Example:
        >>> step = prepare_step("head-step", "resfx", BenchConfig(batch_size=2, image_size=32))
        >>> graph_cost(step)[1]
        6
    """
    if step.forward is None:
        return 0, 0
    with SavedTensorMeter(exclude=step.model) as meter:
        loss = step.forward()
    return meter.bytes, count_graph_nodes(loss)


def _measure(mode: str, implementation: str, config: BenchConfig, precision: str) -> StepResult:
    prepared = prepare_step(mode, implementation, config, precision)
    saved, nodes = graph_cost(prepared)
    timing: Timing = time_step(
        prepared.run, device=config.device, warmup=config.warmup, repeats=config.repeats
    )
    return StepResult(
        implementation=implementation,
        precision=precision,
        mode=mode,
        median_ms=timing.median_ms,
        spread_ms=timing.spread_ms,
        peak_memory_mib=timing.peak_memory_mib,
        saved_bytes=saved,
        graph_nodes=nodes,
        times_ms=list(timing.times_ms),
    )


def _plan(config: BenchConfig) -> Iterator[tuple[str, str, str]]:
    sweep = [f"freeze_to:{stage}" for stage in STAGES[:-1]] if config.sweep else []
    for precision in config.precisions:
        for mode in [*config.modes, *sweep]:
            for implementation in config.implementations:
                yield precision, mode, implementation


def run_step_benchmarks(config: BenchConfig, *, progress: bool = True) -> list[StepResult]:
    """Measure every (precision, mode, implementation) of `config`, side by side in one run.

    Each measurement builds a fresh ResNet34 (same weights for both
    implementations; Adam is fused on a GPU for every mode), prepares its inputs outside the timed region, meters the
    bytes autograd saves and the graph's nodes on one forward, then times
    `config.repeats` steps after `config.warmup` with `resfx.bench.time_step`.

    Args:
        config: what to measure.
        progress: show a progress bar.

    Returns:
        One result per measurement, in plan order.

    Example:
        >>> config = BenchConfig(batch_size=2, image_size=32, modes=("head-step",),
        ...                      implementations=("resfx",), sweep=False, warmup=0, repeats=1)
        >>> [r.mode for r in run_step_benchmarks(config, progress=False)]
        ['head-step']
    """
    plan = list(_plan(config))
    results = []
    bar = tqdm(plan, desc="resfx bench", disable=not progress, unit="mode")
    for precision, mode, implementation in bar:
        bar.set_postfix_str(f"{implementation} {precision} {mode}")
        # The previous mode's model and optimizer must be gone before this one's peak is read.
        gc.collect()
        if torch.device(config.device).type == "cuda":
            torch.cuda.empty_cache()
        results.append(_measure(mode, implementation, config, precision))
    return results


def step_ratios(results: list[StepResult]) -> dict[str, dict[str, float]]:
    """The ratios the goals are stated in, per `implementation/precision`.

    Keys inside each entry: `full/frozen-eval` (speed-up of freezing),
    `full/frozen-folded`, `frozen-eval/limit` and `frozen-folded/limit` where
    limit = forward-only + head-step, `peak frozen-eval/full` (GPU only), and
    `<mode> resfx/torchvision` for every mode both implementations ran.

    Args:
        results: from `run_step_benchmarks`.

    Returns:
        `{"resfx/fp32": {"full/frozen-eval": 4.1, ...}, ...}`.

    Example:
        >>> rows = [StepResult("resfx", "fp32", m, t, 0.0, None, 0, 0)
        ...         for m, t in [("full", 8.0), ("frozen-eval", 2.0),
        ...                      ("forward-only", 1.5), ("head-step", 0.5)]]
        >>> step_ratios(rows)["resfx/fp32"]
        {'full/frozen-eval': 4.0, 'frozen-eval/limit': 1.0}
    """
    table = {(r.implementation, r.precision, r.mode): r for r in results}
    ratios: dict[str, dict[str, float]] = {}
    for implementation, precision in dict.fromkeys(
        (r.implementation, r.precision) for r in results
    ):

        def get(mode: str, impl: str = implementation, prec: str = precision) -> StepResult | None:
            return table.get((impl, prec, mode))

        entry: dict[str, float] = {}
        full, limit_parts = get("full"), (get("forward-only"), get("head-step"))
        limit = (
            limit_parts[0].median_ms + limit_parts[1].median_ms
            if limit_parts[0] and limit_parts[1]
            else None
        )
        for mode in ("frozen-eval", "frozen-folded"):
            measured = get(mode)
            if measured is None:
                continue
            if full is not None:
                entry[f"full/{mode}"] = full.median_ms / measured.median_ms
            if limit is not None:
                entry[f"{mode}/limit"] = measured.median_ms / limit
            if full is not None and full.peak_memory_mib and measured.peak_memory_mib:
                entry[f"peak {mode}/full"] = measured.peak_memory_mib / full.peak_memory_mib
        if implementation == "resfx":
            for (impl, prec, mode), result in table.items():
                other = table.get(("torchvision", prec, mode))
                if impl == "resfx" and prec == precision and other is not None:
                    entry[f"{mode} resfx/torchvision"] = result.median_ms / other.median_ms
        ratios[f"{implementation}/{precision}"] = entry
    return ratios


def results_as_dicts(results: list[StepResult]) -> list[dict[str, Any]]:
    """Plain dictionaries of the results, for JSON.

    Example:
        >>> results_as_dicts([StepResult("resfx", "fp32", "full", 1.0, 0.0, None, 0, 0)])[0]["mode"]
        'full'
    """
    return [asdict(r) for r in results]
