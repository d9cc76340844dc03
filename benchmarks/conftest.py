"""Shared settings for the pytest-benchmark suite.

Run: `pytest benchmarks --benchmark-only` (add `--benchmark-autosave`, then
`--benchmark-compare` to compare commits). Environment:
`RESFX_BENCH_DEVICE` (`cpu` default, `cuda`), `RESFX_BENCH_BATCH`,
`RESFX_BENCH_SIZE` (image side). Ratios between the entries of a group that
ran in this session are printed at the end: a benchmark measures, it never
asserts a time.
"""

import os
from collections import defaultdict

import pytest
import torch

_medians: dict[str, dict[str, float]] = defaultdict(dict)
_baselines: dict[str, str] = {}


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
def record_median():
    """Call with (group, entry, benchmark) after a benchmark ran, to get it into the ratios.

    `baseline=True` marks the entry the others in its group are divided by.
    """

    def record(group: str, entry: str, benchmark, *, baseline: bool = False) -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is not None and getattr(stats, "stats", None) is not None:
            _medians[group][entry] = stats.stats.median
            if baseline:
                _baselines[group] = entry

    return record


def pytest_terminal_summary(terminalreporter) -> None:
    if not _medians:
        return
    terminalreporter.section("resfx ratios (medians measured side by side in this run)")
    for group, entries in sorted(_medians.items()):
        base_name = _baselines.get(group, min(entries))
        base = entries[base_name]
        cells = ", ".join(f"{n} {t * 1e3:.2f} ms" for n, t in entries.items())
        ratios = ", ".join(
            f"{n}/{base_name} = {t / base:.3f}x" for n, t in entries.items() if n != base_name
        )
        terminalreporter.write_line(f"{group}: {cells}" + (f"; {ratios}" if ratios else ""))
