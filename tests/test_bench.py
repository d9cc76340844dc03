"""The benchmark suite measures what it claims: modes, saved bytes, graph size, report files."""

import json

import pytest
import torch

import resfx._frozen_step as frozen_step
import resfx.bench._suite as suite
import resfx.train._loop as loop
from resfx.bench import (
    STEP_MODES,
    BenchConfig,
    StepResult,
    format_step_table,
    plot_steps,
    prepare_step,
    run_step_benchmarks,
    step_ratios,
    step_report,
    write_json,
)
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
    assert all(r.median_ms > 0 and len(r.times_ms) == 1 for r in tiny_results)


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
    ratios = step_ratios(tiny_results)
    assert {"full/frozen-eval", "frozen-eval/limit", "full resfx/torchvision"} <= set(
        ratios["resfx/fp32"]
    )
    table = format_step_table(tiny_results)
    assert "freeze_to:layer2" in table and "ratios resfx/fp32:" in table
    path = write_json(step_report(tiny_results), tmp_path / "bench.json")
    loaded = json.loads(path.read_text())
    assert len(loaded["steps"]) == len(tiny_results)
    charts = plot_steps(tiny_results, tmp_path)
    assert [p.name for p in charts] == ["bench_modes.png", "bench_freeze_depth.png"]
    assert all(p.stat().st_size > 10_000 for p in charts)


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown precisions, implementations or modes"):
        BenchConfig(modes=("sideways",))
    with pytest.raises(ValueError, match="CUDA device only"):
        BenchConfig(precisions=("bf16",))
    with pytest.raises(ValueError, match="must be >= 1"):
        BenchConfig(batch_size=0)


def test_the_benchmarks_frozen_step_is_the_one_train_runs(monkeypatch) -> None:
    for name in ("fold_frozen_backbone", "frozen_head_logits"):
        assert getattr(suite, name) is getattr(loop, name) is getattr(frozen_step, name), name
    calls: list[str] = []

    def spy(*args, **kwargs):
        calls.append(kwargs["precision"])
        return frozen_step.frozen_head_logits(*args, **kwargs)

    monkeypatch.setattr(suite, "frozen_head_logits", spy)
    monkeypatch.setattr(loop, "frozen_head_logits", spy)
    prepare_step("frozen-folded", "resfx", BenchConfig(**TINY)).run()
    assert calls == ["fp32"]
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
    train(args)
    assert calls == ["fp32", "fp32"]


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
