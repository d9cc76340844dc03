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
parameters and buffers excluded), the autograd node count and, on a GPU, the
peak memory of the timed steps.
"""

import pytest
import torch

from resfx.bench import STEP_MODES, BenchConfig, graph_cost, prepare_step, synchronized, time_step
from resfx.models import STAGES

STEP_GROUP = "resnet34 step by freezing"
DEPTH_GROUP = "resnet34 step by freeze depth"


def _run(
    benchmark, record_median, config: BenchConfig, mode: str, group: str, baseline: bool
) -> None:
    step = prepare_step(mode, "resfx", config)
    saved, nodes = graph_cost(step)
    benchmark.extra_info.update(
        saved_activation_bytes=saved,
        autograd_nodes=nodes,
        batch=config.batch_size,
        size=config.image_size,
        device=config.device,
    )
    if torch.device(config.device).type == "cuda":
        peak = time_step(step.run, device=config.device, warmup=1, repeats=1).peak_memory_mib
        benchmark.extra_info["peak_memory_mib"] = peak
    benchmark.group = group
    benchmark.pedantic(synchronized(step.run, config.device), rounds=10, warmup_rounds=3)
    record_median(group, mode, benchmark, baseline=baseline)


@pytest.fixture
def config(bench_device, bench_batch, bench_size) -> BenchConfig:
    return BenchConfig(device=str(bench_device), batch_size=bench_batch, image_size=bench_size)


@pytest.mark.parametrize("mode", STEP_MODES)
def test_step_by_freezing(benchmark, record_median, config: BenchConfig, mode: str) -> None:
    _run(benchmark, record_median, config, mode, STEP_GROUP, baseline=mode == "full")


@pytest.mark.parametrize("stage", STAGES[:-1])
def test_step_by_freeze_depth(benchmark, record_median, config: BenchConfig, stage: str) -> None:
    _run(
        benchmark,
        record_median,
        config,
        f"freeze_to:{stage}",
        DEPTH_GROUP,
        baseline=stage == "stem",
    )
