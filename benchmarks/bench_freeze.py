"""What freezing saves on a ResNet34 training step: time, saved activations, autograd nodes.

Built on `resfx.bench`'s step preparation and timing core, the same code
`resfx bench` runs. Groups (Adam, cross-entropy, a new 10-class head):

- `resnet34 step by freezing`: full fine-tuning; the backbone frozen under each
  BatchNorm policy; the frozen backbone folded and run without autograd; and
  the limit's two parts, the forward alone (inference mode) and the head's step
  on cached features. Ratios print against full fine-tuning.
- `resnet34 step by freeze depth`: `freeze_to(stage)` from the stem to layer4,
  ratios against freezing the stem only.

Each entry's `extra_info` holds the bytes autograd saves for backward (model
parameters and buffers excluded), the autograd node count and the peak memory
of two steps counted from before the step was built (`resfx.bench.peak_memory`:
the GPU allocator's peak, or CPU tensor bytes). The ratios printed at the end
are timed interleaved (see conftest.py).
"""

import pytest

from resfx.bench import (
    STEP_MODES,
    BenchConfig,
    PreparedStep,
    graph_cost,
    peak_memory,
    prepare_step,
    synchronized,
)
from resfx.models import STAGES

STEP_GROUP = "resnet34 step by freezing"
DEPTH_GROUP = "resnet34 step by freeze depth"


def _run(
    benchmark, compare_interleaved, config: BenchConfig, mode: str, group: str, baseline: bool
) -> None:
    def prepare() -> PreparedStep:
        return prepare_step(mode, "resfx", config)

    if benchmark.disabled:  # --benchmark-disable: the code runs once, nothing is measured
        step, peak = prepare(), None
    else:
        step, peak = peak_memory(prepare, lambda s: s.run(), device=config.device)
    saved, nodes = graph_cost(step)
    benchmark.extra_info.update(
        saved_activation_bytes=saved,
        autograd_nodes=nodes,
        peak_memory_mib=None if peak is None else peak / 2**20,
        batch=config.batch_size,
        size=config.image_size,
        device=config.device,
    )
    benchmark.group = group
    benchmark.pedantic(synchronized(step.run, config.device), rounds=10, warmup_rounds=3)
    compare_interleaved(group, mode, step.run, baseline=baseline)


@pytest.fixture
def config(bench_device, bench_batch, bench_size) -> BenchConfig:
    return BenchConfig(device=str(bench_device), batch_size=bench_batch, image_size=bench_size)


@pytest.mark.parametrize("mode", STEP_MODES)
def test_step_by_freezing(benchmark, compare_interleaved, config: BenchConfig, mode: str) -> None:
    _run(benchmark, compare_interleaved, config, mode, STEP_GROUP, baseline=mode == "full")


@pytest.mark.parametrize("stage", STAGES[:-1])
def test_step_by_freeze_depth(
    benchmark, compare_interleaved, config: BenchConfig, stage: str
) -> None:
    _run(
        benchmark,
        compare_interleaved,
        config,
        f"freeze_to:{stage}",
        DEPTH_GROUP,
        baseline=stage == "stem",
    )
