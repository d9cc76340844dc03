"""Shared settings for the pytest-benchmark suite.

Run: `pytest benchmarks --benchmark-only` (add `--benchmark-autosave`, then
`--benchmark-compare` to compare commits). Environment:
`RESFX_BENCH_DEVICE` (`cpu` default, `cuda`), `RESFX_BENCH_BATCH`,
`RESFX_BENCH_SIZE` (image side), `RESFX_BENCH_ROUNDS` (interleaved rounds of the
ratios, default 10).

pytest-benchmark times each test alone, one after another, so its tables carry
whatever the machine did meanwhile. The ratios printed at the end are measured
apart from them: every entry of a group keeps its step, and when the session
ends each group is timed in interleaved rounds with `resfx.bench.time_interleaved`
(every entry once per round, in a shuffled order), the ratio taken round by
round and printed as the median with its range. A benchmark measures, it never
asserts a time. With `--benchmark-disable` nothing is kept and no ratio is timed.
"""

import os
from collections import defaultdict
from collections.abc import Callable

import pytest
import torch

from resfx.bench import Ratio, time_interleaved

_steps: dict[str, dict[str, Callable[[], object]]] = defaultdict(dict)
_baselines: dict[str, str] = {}
_ratio_lines: list[str] = []


@pytest.fixture(scope="session")
def bench_device() -> torch.device:
    return torch.device(os.environ.get("RESFX_BENCH_DEVICE", "cpu"))


@pytest.fixture(scope="session")
def bench_batch(bench_device: torch.device) -> int:
    return int(os.environ.get("RESFX_BENCH_BATCH", 64 if bench_device.type == "cuda" else 8))


@pytest.fixture(scope="session")
def bench_size(bench_device: torch.device) -> int:
    return int(os.environ.get("RESFX_BENCH_SIZE", 224 if bench_device.type == "cuda" else 64))


@pytest.fixture
def compare_interleaved(benchmark):
    """Call with (group, entry, step) to time `step` against its group's others, interleaved.

    `baseline=True` marks the entry the others in its group are divided by.
    """

    def record(group: str, entry: str, step: Callable[[], object], *, baseline: bool = False):
        if benchmark.disabled:
            return
        _steps[group][entry] = step
        if baseline:
            _baselines[group] = entry

    return record


@pytest.fixture(scope="session", autouse=True)
def _interleaved_ratios(bench_device: torch.device):
    """After the last benchmark: each group's entries timed in interleaved rounds."""
    yield
    rounds = int(os.environ.get("RESFX_BENCH_ROUNDS", 10))
    for group, steps in sorted(_steps.items()):
        if len(steps) < 2:
            continue
        for step in steps.values():
            step()  # warm again: the other tests ran since this entry's own warm-up
        timings = time_interleaved(steps, device=bench_device, rounds=rounds)
        base = _baselines.get(group, min(steps))
        cells = ", ".join(f"{n} {t.median_ms:.2f} ms" for n, t in timings.items())
        ratios = ", ".join(
            f"{n}/{base} = "
            + Ratio.of_rounds(t.round_medians_ms, timings[base].round_medians_ms).text()
            for n, t in timings.items()
            if n != base
        )
        _ratio_lines.append(f"{group}: {cells}; {ratios}")
    _steps.clear()


def pytest_terminal_summary(terminalreporter) -> None:
    if not _ratio_lines:
        return
    terminalreporter.section(
        "resfx ratios (interleaved rounds after the benchmarks: median of per-round ratios "
        "[min-max])"
    )
    for line in _ratio_lines:
        terminalreporter.write_line(line)
