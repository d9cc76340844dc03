"""What freezing saves, per training step: every mode measured side by side in one run."""

import functools
import gc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

import torch
import torchvision
from torch import Tensor
from torch import nn as tnn
from tqdm.auto import tqdm

from .._device_sync import synchronize
from .._freeze import BNPolicy, freeze_to
from .._frozen_step import CompileMode, FrozenForward, HeadStep, fold_frozen_backbone
from .._precision import Precision, autocast
from .._typing import Features, Images, Labels, Logits
from ..autograd import SavedTensorMeter, count_graph_nodes
from ..models import STAGES, resnet34
from ._measure import Ratio, peak_memory, time_interleaved

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

COMPILED_MODES: tuple[str, ...] = (
    "full-compiled",
    "frozen-compiled",
    "forward-compiled",
    "head-graphed",
)
"""The same comparison compiled (`BenchConfig.compile`), on resfx's model only.

- `full-compiled`: full fine-tuning with the model under `torch.compile` (forward
  and backward compiled; fused Adam on a GPU).
- `frozen-compiled`: `resfx.train`'s `"head"` step with `compile` set: the folded
  backbone under `torch.compile` for the one batch shape (`resfx.FrozenForward`),
  and the head's step replayed from a CUDA graph on a GPU (`resfx.HeadStep`).
- `forward-compiled`: the folded whole model's compiled forward in inference mode
  (the compiled limit's first part).
- `head-graphed`: the head's step on cached features through `resfx.HeadStep`, from a
  CUDA graph on a GPU (the compiled limit's second part).

A compiled mode's `setup_seconds` is its compilation (and graph capture): the
first calls, timed before its peak memory and its steps are measured.
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
        modes: which of `STEP_MODES` and `COMPILED_MODES` (the compiled ones need `compile`).
        compile: the `torch.compile` mode of the compiled modes (a `resfx.CompileMode`);
            `"off"` measures none of them.
        sweep: also measure the freeze-depth sweep (`freeze_to` stem..layer4).
        n_classes: classes of the new head.
        warmup: untimed steps of each mode before the timed rounds (after the two
            untimed steps that read its peak memory).
        repeats: timed steps per mode, in interleaved rounds of `steps_per_round`.
        steps_per_round: timed steps of a mode in a row within one round.

    Raises:
        ValueError: an unknown precision, implementation or mode, sizes below 1, or
            `repeats` not a multiple of `steps_per_round`.

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
    compile: str = "off"
    sweep: bool = True
    n_classes: int = 10
    warmup: int = 2
    repeats: int = 5
    steps_per_round: int = 1

    def __post_init__(self) -> None:
        unknown = (
            [p for p in self.precisions if p not in get_args(Precision)]
            + [i for i in self.implementations if i not in IMPLEMENTATIONS]
            + [m for m in self.modes if m not in STEP_MODES + COMPILED_MODES]
            + ([self.compile] if self.compile not in get_args(CompileMode) else [])
        )
        if unknown:
            raise ValueError(
                f"unknown precisions, implementations, modes or compile mode {unknown}; "
                f"expected {get_args(Precision)}, {IMPLEMENTATIONS}, "
                f"{STEP_MODES + COMPILED_MODES} and {get_args(CompileMode)}"
            )
        compiled = [m for m in self.modes if m in COMPILED_MODES]
        if compiled and self.compile == "off":
            raise ValueError(
                f"modes {compiled} are compiled, but compile='off'; pass a torch.compile mode "
                f"(e.g. compile='max-autotune-no-cudagraphs') or leave them out"
            )
        if min(self.batch_size, self.image_size, self.repeats, self.n_classes) < 1:
            raise ValueError(
                f"batch_size, image_size, repeats and n_classes must be >= 1, got "
                f"{self.batch_size}, {self.image_size}, {self.repeats}, {self.n_classes}"
            )
        if "bf16" in self.precisions and torch.device(self.device).type != "cuda":
            raise ValueError("bf16 autocast + channels_last is measured on a CUDA device only")
        if self.steps_per_round < 1 or self.repeats % self.steps_per_round:
            raise ValueError(
                f"repeats ({self.repeats}) must be a multiple of steps_per_round "
                f"({self.steps_per_round} >= 1): the timed steps are split into equal rounds"
            )

    @property
    def rounds(self) -> int:
        """How many interleaved rounds the timed steps are split into."""
        return self.repeats // self.steps_per_round


@dataclass
class StepResult:
    """One measured training-step mode.

    Args:
        implementation: `"resfx"` or `"torchvision"`.
        precision: `"fp32"` or `"bf16"`.
        mode: a `STEP_MODES` entry or `"freeze_to:<stage>"`.
        median_ms: median over every timed step.
        spread_ms: half the interquartile range of the step times.
        peak_memory_mib: the mode's peak memory over two steps, counted from before
            it was built (see `resfx.bench.peak_memory`): the GPU allocator's peak on
            a GPU, the peak of CPU tensor bytes on the CPU; `None` if not measured.
        saved_bytes: bytes autograd saves for backward in one forward.
        graph_nodes: autograd nodes a backward runs.
        times_ms: every timed step, round after round.
        round_medians_ms: each interleaved round's median, in the order they ran.
        setup_seconds: a one-off cost the mode pays before its steps (e.g. a compile),
            from `PreparedStep.setup_seconds`; `None` for modes with none.
        device: where it ran.

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
    round_medians_ms: list[float] = field(default_factory=list)
    setup_seconds: float | None = None
    device: str = "cpu"


@functools.cache
def _initial_state(num_classes: int) -> dict[str, Tensor]:
    """torchvision's ResNet34 initial weights for seed 0 (drawn once), the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torchvision.models.resnet34(num_classes=num_classes).state_dict()


def _build_model(implementation: str, num_classes: int) -> tnn.Module:
    """A fresh ResNet34 with torchvision's initial weights for seed 0, its tensors its own.

    Built on the meta device and given copies of the weights drawn once: every mode
    starts from the same values without paying the random initialisation again.
    """
    with torch.device("meta"):
        model = (
            torchvision.models.resnet34(num_classes=num_classes)
            if implementation == "torchvision"
            else resnet34(num_classes=num_classes)
        )
    state = {name: tensor.clone() for name, tensor in _initial_state(num_classes).items()}
    model.load_state_dict(state, strict=True, assign=True)
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
        setup_seconds: a one-off cost of this mode paid in `prepare_step` beyond
            building the model and inputs (e.g. a compile), reported beside the step
            times; `None` for modes with none.

    Example:
        >>> step = prepare_step("head-step", "resfx", BenchConfig(batch_size=2, image_size=32))
        >>> step.run()
    """

    run: Callable[[], Any]
    forward: Callable[[], Any] | None
    model: tnn.Module
    setup_seconds: float | None = None


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


def _frozen_forward(
    model: tnn.Module, compile_mode: str, batch: _Batch, precision: Precision, *, with_head: bool
) -> FrozenForward:
    """train's frozen forward on a folded copy of `model` (without its head unless `with_head`)."""
    folded = fold_frozen_backbone(model, precision=precision)
    if not with_head:
        folded.fc = tnn.Identity()
    return FrozenForward(
        folded, mode=compile_mode, batch_size=batch.images.shape[0], precision=precision
    )


def _timed_first_calls(step: Callable[[], Any], calls: int, device: torch.device) -> float:
    """Seconds of a compiled step's first `calls` calls: its compilation and graph capture."""
    began = time.perf_counter()
    for _ in range(calls):
        step()
    synchronize(device)
    return time.perf_counter() - began


def _head_step_mode(
    mode: str, model: tnn.Module, batch: _Batch, compile_mode: str, precision: Precision
) -> PreparedStep:
    """train's head step (`HeadStep`) on cached features or after the frozen forward.

    `frozen-folded` is the eager step of `resfx.train`'s `"head"` mode; `frozen-compiled`
    and `head-graphed` are the same with `compile` set (a CUDA graph on a GPU).
    """
    device = batch.images.device
    compiled = compile_mode != "off"
    head = model.fc
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3, fused=device.type == "cuda")
    head_step = HeadStep(head, optimizer, graph=compiled)
    if mode == "head-graphed":

        def features() -> Features:
            return batch.features

    else:
        frozen = _frozen_forward(model, compile_mode, batch, precision, with_head=False)

        def features() -> Features:
            return frozen(batch.images)

    def step() -> Tensor:
        return head_step(features(), batch.labels)

    def loss() -> Tensor:
        return tnn.functional.cross_entropy(head(features()), batch.labels)

    # The eager warm-up steps, then the capture: compiled and captured before it is timed.
    setup = _timed_first_calls(step, head_step.warmup_steps + 1, device) if compiled else None
    return PreparedStep(step, loss, model, setup)


def _compiled_step(
    mode: str, model: tnn.Module, batch: _Batch, config: BenchConfig, precision: Precision
) -> PreparedStep:
    """One of `COMPILED_MODES`, built, compiled and (on a GPU) captured: ready to time."""
    device = batch.images.device
    if mode in ("frozen-compiled", "head-graphed"):
        return _head_step_mode(mode, model, batch, config.compile, precision)
    if mode == "forward-compiled":
        forward = _frozen_forward(model, config.compile, batch, precision, with_head=True)

        def forward_only() -> Logits:
            return forward(batch.images)

        return PreparedStep(forward_only, None, model, _timed_first_calls(forward_only, 1, device))
    model.train()
    compiled = torch.compile(model, mode=config.compile, fullgraph=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=device.type == "cuda")

    def loss() -> Tensor:
        with autocast(device, precision):
            return tnn.functional.cross_entropy(compiled(batch.images), batch.labels)

    def full_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    return PreparedStep(full_step, loss, model, _timed_first_calls(full_step, 1, device))


def prepare_step(
    mode: str, implementation: str, config: BenchConfig, precision: Precision = "fp32"
) -> PreparedStep:
    """Build the model, inputs and optimizer of one mode; return the step to time.

    Args:
        mode: a `STEP_MODES` or `COMPILED_MODES` entry, or `"freeze_to:<stage>"`.
        implementation: `"resfx"` or `"torchvision"` (same initial weights).
        config: device, batch size, image size, classes, compile mode.
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
    if mode == "frozen-folded":
        return _head_step_mode(mode, model, batch, "off", precision)
    if mode in COMPILED_MODES:
        return _compiled_step(mode, model, batch, config, precision)
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


def _plan(config: BenchConfig, precision: str) -> list[list[tuple[str, str]]]:
    """The groups of (mode, implementation) built and timed together: the modes, then the sweep."""
    sweep = [f"freeze_to:{stage}" for stage in STAGES[:-1]] if config.sweep else []
    # The compiled modes run on resfx's model alone: the torchvision comparison is eager.
    first = config.implementations[0]
    return [
        [
            (mode, implementation)
            for mode in modes
            for implementation in config.implementations
            if mode not in COMPILED_MODES or implementation == first
        ]
        for modes in (config.modes, sweep)
        if modes
    ]


def _release(device: torch.device) -> None:
    """Free the previous group's models before the next is built."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _measure_group(
    group: list[tuple[str, str]], config: BenchConfig, precision: str, bar: Any
) -> list[StepResult]:
    """Build every step of `group`, read each one's peak and graph, warm up, time in rounds."""
    prepared: dict[tuple[str, str], PreparedStep] = {}
    peaks: dict[tuple[str, str], int] = {}
    costs: dict[tuple[str, str], tuple[int, int]] = {}
    for key in group:
        mode, implementation = key
        bar.set_postfix_str(f"building {implementation} {precision} {mode}")
        prepared[key], peaks[key] = peak_memory(
            functools.partial(prepare_step, mode, implementation, config, precision),
            lambda step: step.run(),
            device=config.device,
        )
        costs[key] = graph_cost(prepared[key])
        for _ in range(config.warmup):
            prepared[key].run()
        bar.update()
    bar.set_postfix_str(f"{precision}: {config.rounds} interleaved rounds of {len(group)}")
    timings = time_interleaved(
        {f"{m} {i}": prepared[(m, i)].run for m, i in group},
        device=config.device,
        rounds=config.rounds,
        steps_per_round=config.steps_per_round,
    )
    results = []
    for (mode, implementation), timing in zip(group, timings.values(), strict=True):
        saved, nodes = costs[(mode, implementation)]
        results.append(
            StepResult(
                implementation=implementation,
                precision=precision,
                mode=mode,
                median_ms=timing.median_ms,
                spread_ms=timing.spread_ms,
                peak_memory_mib=peaks[(mode, implementation)] / 2**20,
                saved_bytes=saved,
                graph_nodes=nodes,
                times_ms=list(timing.times_ms),
                round_medians_ms=list(timing.round_medians_ms),
                setup_seconds=prepared[(mode, implementation)].setup_seconds,
                device=str(config.device),
            )
        )
    return results


def run_step_benchmarks(config: BenchConfig, *, progress: bool = True) -> list[StepResult]:
    """Measure every (precision, mode, implementation) of `config`, interleaved in one run.

    Per precision, every mode of `config.modes` for every implementation is built
    first (a fresh ResNet34 each, the same weights for both implementations; Adam
    fused on a GPU), then the freeze-depth sweep as a second group. For each
    built step: its peak memory over two untimed steps (`resfx.bench.peak_memory`:
    counted from before it was built, so the other modes' resident models do not
    count), the bytes autograd saves and the graph's nodes on one forward, and
    `config.warmup` untimed steps. Then the group is timed in `config.rounds`
    interleaved rounds (`resfx.bench.time_interleaved`): each round runs every
    step `config.steps_per_round` times, in an order shuffled per round with a
    fixed seed, so noise and drift weigh on every mode alike.

    Args:
        config: what to measure.
        progress: show a progress bar.

    Returns:
        One result per measurement: per precision, the modes then the sweep, each
            mode's implementations in `config.implementations` order.

    Example:
        >>> config = BenchConfig(batch_size=2, image_size=32, modes=("head-step",),
        ...                      implementations=("resfx",), sweep=False, warmup=0, repeats=1)
        >>> [r.mode for r in run_step_benchmarks(config, progress=False)]
        ['head-step']
    """
    device = torch.device(config.device)
    _initial_state(config.n_classes)  # drawn before any peak is read: no mode's memory
    plan = [(precision, _plan(config, precision)) for precision in config.precisions]
    total = sum(len(group) for _, groups in plan for group in groups)
    results = []
    with tqdm(total=total, desc="resfx bench", disable=not progress, unit="mode") as bar:
        for precision, groups in plan:
            for group in groups:
                _release(device)
                results.extend(_measure_group(group, config, precision, bar))
    _release(device)
    return results


def step_ratios(results: list[StepResult]) -> dict[str, dict[str, Ratio]]:
    """The ratios the goals are stated in, per `implementation/precision`, with their spread.

    Each time ratio is taken round by round (the two modes' medians of the same
    interleaved round) and summarised by its median and range over rounds
    (`resfx.bench.Ratio`). Keys inside each entry: `full/frozen-eval` (speed-up
    of freezing), `full/frozen-folded`, `frozen-eval/limit` and
    `frozen-folded/limit` where limit = forward-only + head-step of the same
    round, `peak frozen-eval/full` (one value: the peaks are read once), and
    `<mode> resfx/torchvision` for every mode both implementations ran; with the
    compiled modes, the same compiled-to-compiled (`full-compiled/frozen-compiled`,
    `frozen-compiled/compiled limit` where the compiled limit = forward-compiled +
    head-graphed) and what compiling gains (`frozen-folded/frozen-compiled`).

    Args:
        results: from `run_step_benchmarks` (modes paired with each other must come
            from the same group of rounds, as there).

    Returns:
        `{"resfx/fp32": {"full/frozen-eval": Ratio(...), ...}, ...}`.

    Example:
        >>> rows = [StepResult("resfx", "fp32", m, 0.0, 0.0, None, 0, 0, round_medians_ms=t)
        ...         for m, t in [("full", [8.0, 9.0]), ("frozen-eval", [2.0, 2.0]),
        ...                      ("forward-only", [1.5, 1.0]), ("head-step", [0.5, 0.5])]]
        >>> for name, ratio in step_ratios(rows)["resfx/fp32"].items():
        ...     print(name, ratio.text())
        full/frozen-eval 4.250x [4.000-4.500] over 2 rounds
        frozen-eval/limit 1.167x [1.000-1.333] over 2 rounds
    """
    table = {(r.implementation, r.precision, r.mode): r for r in results}
    ratios: dict[str, dict[str, Ratio]] = {}
    for implementation, precision in dict.fromkeys(
        (r.implementation, r.precision) for r in results
    ):

        def get(mode: str, impl: str = implementation, prec: str = precision) -> StepResult | None:
            found = table.get((impl, prec, mode))
            return found if found is not None and found.round_medians_ms else None

        entry: dict[str, Ratio] = {}

        def limit_of(forward: StepResult | None, head: StepResult | None) -> list[float] | None:
            if forward is None or head is None:
                return None
            return [
                a + b for a, b in zip(forward.round_medians_ms, head.round_medians_ms, strict=True)
            ]

        comparisons = (
            (
                get("full"),
                ("frozen-eval", "frozen-folded"),
                limit_of(get("forward-only"), get("head-step")),
                "limit",
            ),
            (
                get("full-compiled"),
                ("frozen-compiled",),
                limit_of(get("forward-compiled"), get("head-graphed")),
                "compiled limit",
            ),
        )
        for full, modes, limit, limit_name in comparisons:
            for mode in modes:
                measured = get(mode)
                if measured is None:
                    continue
                if full is not None:
                    entry[f"{full.mode}/{mode}"] = Ratio.of_rounds(
                        full.round_medians_ms, measured.round_medians_ms
                    )
                if limit is not None:
                    entry[f"{mode}/{limit_name}"] = Ratio.of_rounds(
                        measured.round_medians_ms, limit
                    )
                if full is not None and full.peak_memory_mib and measured.peak_memory_mib:
                    entry[f"peak {mode}/{full.mode}"] = Ratio.of_rounds(
                        [measured.peak_memory_mib], [full.peak_memory_mib]
                    )
        eager, compiled = get("frozen-folded"), get("frozen-compiled")
        if eager is not None and compiled is not None:
            entry["frozen-folded/frozen-compiled"] = Ratio.of_rounds(
                eager.round_medians_ms, compiled.round_medians_ms
            )
        if implementation == "resfx":
            for (impl, prec, mode), result in table.items():
                other = get(mode, "torchvision", prec)
                if impl == "resfx" and prec == precision and other and result.round_medians_ms:
                    entry[f"{mode} resfx/torchvision"] = Ratio.of_rounds(
                        result.round_medians_ms, other.round_medians_ms
                    )
        ratios[f"{implementation}/{precision}"] = entry
    return ratios


def results_as_dicts(results: list[StepResult]) -> list[dict[str, Any]]:
    """Plain dictionaries of the results, for JSON.

    Example:
        >>> results_as_dicts([StepResult("resfx", "fp32", "full", 1.0, 0.0, None, 0, 0)])[0]["mode"]
        'full'
    """
    return [asdict(r) for r in results]
