"""The benchmark suite measures what it claims: modes, saved bytes, graph size, report files."""

import json

import pytest
import torch

import resfx._frozen_step as frozen_step
import resfx.bench._suite as suite
import resfx.train._head as head_mode
from resfx.bench import (
    COMPILED_MODES,
    STEP_MODES,
    BenchConfig,
    Ratio,
    StepResult,
    format_step_table,
    peak_memory,
    plot_steps,
    prepare_step,
    run_step_benchmarks,
    step_ratios,
    step_report,
    time_interleaved,
    write_json,
)
from resfx.models import resnet34
from resfx.train import TrainingArgs, train

TINY = {"batch_size": 2, "image_size": 32, "warmup": 0, "repeats": 1}


@pytest.fixture(scope="module")
def tiny_results() -> list[StepResult]:
    return run_step_benchmarks(BenchConfig(**TINY), progress=False)


def test_every_mode_and_sweep_stage_is_measured_for_both_implementations(tiny_results) -> None:
    measured = {(r.implementation, r.mode) for r in tiny_results}
    modes = [
        "full",
        "frozen-eval",
        "frozen-batch",
        "frozen-train",
        "frozen-folded",
        "forward-only",
        "head-step",
        *(f"freeze_to:{s}" for s in ("stem", "layer1", "layer2", "layer3", "layer4")),
    ]
    assert tuple(modes[:7]) == STEP_MODES
    assert measured == {(i, m) for i in ("resfx", "torchvision") for m in modes}
    assert all(r.median_ms > 0 and r.round_medians_ms == r.times_ms for r in tiny_results)


def test_interleaved_rounds_run_every_step_in_a_shuffled_order() -> None:
    calls: list[str] = []
    steps = {name: lambda name=name: calls.append(name) for name in "abcd"}
    timings = time_interleaved(steps, rounds=6, steps_per_round=2, seed=1)
    rounds = [calls[i : i + 8] for i in range(0, len(calls), 8)]
    assert len(rounds) == 6 and all(sorted(r) == sorted("aabbccdd") for r in rounds)
    assert all(r[0::2] == r[1::2] for r in rounds)  # a step's repeats run in a row
    orders = [r[0::2] for r in rounds]
    # shuffled per round: "a" is not always first, nor always after the same step
    assert len({o[o.index("a") - 1] if o.index("a") else None for o in orders}) > 1
    assert all(len(t.times_ms) == 12 and len(t.round_medians_ms) == 6 for t in timings.values())
    with pytest.raises(ValueError, match="pass the same"):
        Ratio.of_rounds([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="multiple of steps_per_round"):
        BenchConfig(repeats=5, steps_per_round=2)


def test_cpu_peak_counts_what_the_operation_keeps_and_its_transient_peak_only() -> None:
    resident = torch.ones(10_000)  # another operation's memory: not counted

    def prepare() -> torch.Tensor:
        scratch = torch.ones(5_000)  # made and freed while preparing: not counted
        del scratch
        return torch.zeros(1_000)

    kept, peak = peak_memory(prepare, lambda x: (x * 2).sum())
    assert 8_000 <= peak < 8_100, peak  # x and x * 2 (4,000 bytes each) and the sums
    assert kept.shape == (1_000,) and resident.sum() == 10_000


def test_peaks_per_mode_are_the_modes_own(tiny_results) -> None:
    by_mode = {r.mode: r for r in tiny_results if r.implementation == "resfx"}
    with torch.device("meta"):
        params_mib = sum(p.numel() for p in resnet34(num_classes=10).parameters()) * 4 / 2**20
    full, frozen = by_mode["full"].peak_memory_mib, by_mode["frozen-eval"].peak_memory_mib
    # frozen: the model and a small batch; full: the model, its gradients and Adam's two moments
    assert params_mib < frozen < 1.25 * params_mib and full > frozen + 3 * params_mib
    tv = {r.mode: r.peak_memory_mib for r in tiny_results if r.implementation == "torchvision"}
    assert tv["full"] == pytest.approx(full, rel=0.02)  # built after resfx's: its own peak only


def test_freezing_shrinks_what_autograd_saves_and_traverses(tiny_results) -> None:
    by_mode = {r.mode: r for r in tiny_results if r.implementation == "resfx"}
    full, frozen = by_mode["full"], by_mode["frozen-eval"]
    # frozen: the head's input (b x 512 floats) plus the loss's few bytes; nothing of the backbone
    head_input = TINY["batch_size"] * 512 * 4
    assert head_input <= frozen.saved_bytes < 2 * head_input < full.saved_bytes / 100
    assert frozen.graph_nodes < 10 < full.graph_nodes
    assert by_mode["forward-only"].saved_bytes == 0
    depth = [by_mode[f"freeze_to:{s}"].saved_bytes for s in ("stem", "layer1", "layer2", "layer3")]
    assert depth == sorted(depth, reverse=True) and depth[-1] < full.saved_bytes
    # torchvision's in-place ReLU saves nothing extra: both implementations save the same bytes
    tv = {r.mode: r for r in tiny_results if r.implementation == "torchvision"}
    assert tv["full"].saved_bytes == full.saved_bytes
    # the folded frozen step saves only what the head needs, like the other frozen modes
    for mode in ("frozen-batch", "frozen-train", "frozen-folded"):
        assert head_input <= by_mode[mode].saved_bytes < 2 * head_input, mode


def test_ratios_table_json_and_charts(tiny_results, tmp_path) -> None:
    ratios = step_ratios(tiny_results)["resfx/fp32"]
    assert {"full/frozen-eval", "frozen-eval/limit", "full resfx/torchvision"} <= set(ratios)
    by_mode = {(r.implementation, r.mode): r for r in tiny_results}
    full = ratios["full resfx/torchvision"]
    per_round = [
        a / b
        for a, b in zip(
            by_mode["resfx", "full"].round_medians_ms,
            by_mode["torchvision", "full"].round_medians_ms,
            strict=True,
        )
    ]
    assert full.per_round == tuple(per_round) and full.low <= full.median <= full.high
    table = format_step_table(tiny_results)
    assert "freeze_to:layer2" in table and "ratios resfx/fp32 (median of per-round" in table
    assert f"full resfx/torchvision                   {full.text()}" in table
    assert "CPU peak MiB" in table and "peak: CPU tensor bytes" in table
    path = write_json(step_report(tiny_results), tmp_path / "bench.json")
    loaded = json.loads(path.read_text())
    assert len(loaded["steps"]) == len(tiny_results)
    assert loaded["ratios"]["resfx/fp32"]["full resfx/torchvision"]["per_round"] == per_round
    charts = plot_steps(tiny_results, tmp_path)
    assert [p.name for p in charts] == ["bench_modes.png", "bench_freeze_depth.png"]
    assert all(p.stat().st_size > 10_000 for p in charts)


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown precisions, implementations, modes or compile"):
        BenchConfig(modes=("sideways",))
    with pytest.raises(ValueError, match="CUDA device only"):
        BenchConfig(precisions=("bf16",))
    with pytest.raises(ValueError, match="must be >= 1"):
        BenchConfig(batch_size=0)


def test_the_benchmarks_frozen_step_is_the_one_train_runs(monkeypatch) -> None:
    for name in ("fold_frozen_backbone", "FrozenForward", "HeadStep"):
        assert getattr(suite, name) is getattr(head_mode, name) is getattr(frozen_step, name), name
    calls: list[tuple[object, ...]] = []
    forward, step = frozen_step.FrozenForward.__call__, frozen_step.HeadStep.__call__

    def spy_forward(self, images):
        calls.append(("forward", self.mode, self.precision))
        return forward(self, images)

    def spy_step(self, features, labels):
        calls.append(("step", self.graphed))
        return step(self, features, labels)

    monkeypatch.setattr(frozen_step.FrozenForward, "__call__", spy_forward)
    monkeypatch.setattr(frozen_step.HeadStep, "__call__", spy_step)
    prepare_step("frozen-folded", "resfx", BenchConfig(**TINY)).run()
    assert calls == [("forward", "off", "fp32"), ("step", False)]
    args = TrainingArgs(
        data="synthetic",
        weights=None,
        trainset_size=4,
        testset_size=2,
        epochs=1,
        batch_size=4,
        image_size=32,
        device="cpu",
        mode="head",
    )
    train(args)  # one step, then the test split's forward
    assert calls[2:] == [("forward", "off", "fp32"), ("step", False), ("forward", "off", "fp32")]


def test_the_folded_frozen_step_computes_the_unfolded_frozen_step() -> None:
    # Same weights: bench's frozen-folded loss equals frozen-eval's up to the folding's rounding.
    folded = prepare_step("frozen-folded", "resfx", BenchConfig(**TINY))
    unfolded = prepare_step("frozen-eval", "resfx", BenchConfig(**TINY))
    assert torch.allclose(folded.forward(), unfolded.forward(), rtol=1e-4, atol=1e-5)


def test_preparing_a_step_leaves_the_global_rng_alone() -> None:
    before = torch.random.get_rng_state()
    for mode in ("full", "frozen-folded", "head-step"):
        prepare_step(mode, "torchvision", BenchConfig(**TINY)).run()
    assert torch.equal(torch.random.get_rng_state(), before)


def test_the_compiled_modes_report_their_compile_time(compiled_shapes) -> None:
    config = BenchConfig(
        **{**TINY, "implementations": ("resfx", "torchvision")},
        modes=("frozen-folded", *COMPILED_MODES),
        compile="default",
        sweep=False,
    )
    results = run_step_benchmarks(config, progress=False)
    compiled = {r.mode: r for r in results if r.mode in COMPILED_MODES}
    assert sorted(compiled) == sorted(COMPILED_MODES)
    assert {r.implementation for r in compiled.values()} == {"resfx"}  # compiled: resfx alone
    assert all(r.setup_seconds is not None and r.setup_seconds > 0 for r in compiled.values())
    assert [r.setup_seconds for r in results if r.mode == "frozen-folded"] == [None, None]
    # one compilation per compiled model: the folded backbone, the whole folded model, and
    # the full model (this backend compiles the forward; autograd runs its backward)
    assert compiled_shapes == [(2, 3, 32, 32)] * 3
    with pytest.raises(
        ValueError, match="modes \\['frozen-compiled'\\] are compiled, but compile='off'"
    ):
        BenchConfig(modes=("frozen-compiled",))


def test_compiled_ratios_are_compiled_to_compiled() -> None:
    rounds = {
        "full": [8.0, 8.0],
        "frozen-folded": [2.0, 2.0],
        "full-compiled": [6.0, 6.0],
        "frozen-compiled": [1.5, 1.0],
        "forward-compiled": [1.0, 0.8],
        "head-graphed": [0.5, 0.2],
    }
    rows = [
        StepResult("resfx", "fp32", mode, 0.0, 0.0, None, 0, 0, round_medians_ms=times)
        for mode, times in rounds.items()
    ]
    ratios = {name: ratio.median for name, ratio in step_ratios(rows)["resfx/fp32"].items()}
    assert ratios == pytest.approx(
        {
            "full/frozen-folded": 4.0,
            "full-compiled/frozen-compiled": 5.0,  # the median of 4.0 and 6.0
            "frozen-compiled/compiled limit": 1.0,
            "frozen-folded/frozen-compiled": (2 / 1.5 + 2 / 1.0) / 2,
        }
    )


def test_the_seed_job_runs_compiled_with_its_compile_time_counted(compiled_shapes) -> None:
    from resfx.bench import format_job_table, run_job_benchmarks

    args = TrainingArgs(
        data="synthetic",
        weights=None,
        arch="resnet18",
        trainset_size=16,
        testset_size=8,
        epochs=1,
        batch_size=8,
        image_size=32,
        device="cpu",
    )
    runs = run_job_benchmarks(args, compile="default", progress=False)
    assert [(r.run, r.compile) for r in runs] == [
        ("seed", "off"),
        ("head", "off"),
        ("cached", "off"),
        ("head", "default"),
        ("cached", "default"),
    ]
    head = runs[3]
    assert "compile" in head.setup_phases and head.setup_phases["compile"] > 0
    assert "compile" not in runs[4].setup_phases  # cached mode's one pass stays eager
    assert compiled_shapes == [(8, 3, 32, 32)]
    table = format_job_table(runs)
    assert "head*" in table and "* compiled: TrainingArgs.compile='default'" in table


def test_timing_charts_show_the_spread_the_rounds_and_the_device() -> None:
    from resfx.bench._report import _depth_figure, _modes_figure

    rows = [
        StepResult(impl, "fp32", mode, 10.0, 1.5, 100.0, 2**20, 10, round_medians_ms=[9.0, 11.0])
        for impl in ("resfx", "torchvision")
        for mode in ("full", "freeze_to:layer1", "freeze_to:layer2")
    ]
    machine = {"device_name": "Test CPU 9000", "cpu_count": 2}
    modes = _modes_figure(rows, machine)
    assert "Test CPU 9000 (cpu, 2 CPUs)" in modes.get_suptitle()
    time_axis = modes.axes[0]
    caps = [c for c in time_axis.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert len(caps) == 2  # one set of error bars per implementation
    dots = [line for line in time_axis.lines if line.get_marker() == "."]
    assert sorted(y for line in dots for y in line.get_ydata()) == [9.0, 9.0, 11.0, 11.0]
    depth = _depth_figure(rows, None)
    assert depth is not None and "on cpu" in depth.get_suptitle()
    memory_axis = depth.axes[1]
    resfx_x, torchvision_x = (list(line.get_xdata()) for line in memory_axis.lines)
    assert all(a < b for a, b in zip(resfx_x, torchvision_x, strict=True))  # side by side
