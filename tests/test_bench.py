"""The benchmark suite measures what it claims: modes, saved bytes, graph size, report files."""

import json

import pytest

from resfx.bench import (
    BenchConfig,
    StepResult,
    format_step_table,
    plot_steps,
    run_step_benchmarks,
    step_ratios,
    step_report,
    write_json,
)

TINY = {"batch_size": 2, "image_size": 32, "warmup": 0, "repeats": 1}


@pytest.fixture(scope="module")
def tiny_results() -> list[StepResult]:
    config = BenchConfig(**TINY, modes=("full", "frozen-eval", "forward-only", "head-step"))
    return run_step_benchmarks(config, progress=False)


def test_every_mode_and_sweep_stage_is_measured_for_both_implementations(tiny_results) -> None:
    measured = {(r.implementation, r.mode) for r in tiny_results}
    modes = [
        "full",
        "frozen-eval",
        "forward-only",
        "head-step",
        *(f"freeze_to:{s}" for s in ("stem", "layer1", "layer2", "layer3", "layer4")),
    ]
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
    # the two implementations build graphs of the same size, up to torchvision's in-place ReLU
    tv = {r.mode: r for r in tiny_results if r.implementation == "torchvision"}
    assert tv["full"].saved_bytes == full.saved_bytes


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
