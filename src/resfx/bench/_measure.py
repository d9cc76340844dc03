"""The measuring core shared by `resfx bench` and `benchmarks/`: one timing loop, one truth."""

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._sync import synchronize


@dataclass(frozen=True)
class Timing:
    """Step times of one measured operation, warm-up excluded, and its peak memory.

    Args:
        times_ms: one wall time per repeat, in milliseconds (CUDA events on a GPU).
        peak_memory_bytes: the GPU allocator's peak during the repeats, `None` on the CPU.
        device: where it ran, e.g. `"cuda:0"` or `"cpu"`.

    Example:
        >>> t = Timing((1.0, 2.0, 3.0), None, "cpu")
        >>> t.median_ms, t.spread_ms
        (2.0, 0.5)
    """

    times_ms: tuple[float, ...]
    peak_memory_bytes: int | None
    device: str

    @property
    def median_ms(self) -> float:
        """Median step time in milliseconds."""
        return statistics.median(self.times_ms)

    @property
    def spread_ms(self) -> float:
        """Half the distance between the 25th and 75th percentiles (0 for one repeat)."""
        if len(self.times_ms) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times_ms, n=4, method="inclusive")
        return (q3 - q1) / 2

    @property
    def peak_memory_mib(self) -> float | None:
        """Peak GPU memory in MiB, or `None` on the CPU."""
        return None if self.peak_memory_bytes is None else self.peak_memory_bytes / 2**20


def synchronized(step: Callable[[], Any], device: torch.device | str) -> Callable[[], Any]:
    """Wrap `step` so that it returns only when its GPU work is done (for wall-clock timers).

    Args:
        step: the operation.
        device: the device it runs on.

    Returns:
        A function that runs `step`, synchronises, and returns `step`'s result.

    Example:
        >>> synchronized(lambda: 3, "cpu")()
        3
    """

    def run() -> Any:
        result = step()
        synchronize(device)
        return result

    return run


def time_step(
    step: Callable[[], Any],
    *,
    device: torch.device | str = "cpu",
    warmup: int = 3,
    repeats: int = 10,
) -> Timing:
    """Time `step` `repeats` times after `warmup` untimed runs.

    On a GPU every repeat is timed with CUDA events (recorded around the step,
    read after a synchronise) and the allocator's peak is reset after warm-up;
    on the CPU `time.perf_counter` brackets each call.

    Args:
        step: the operation; build its inputs outside it.
        device: where it runs.
        warmup: untimed runs first (allocator, cuDNN autotuning, caches).
        repeats: timed runs.

    Returns:
        The times and peak memory.

    Raises:
        ValueError: `repeats < 1` or `warmup < 0`.

    Example:
        >>> t = time_step(lambda: sum(range(1000)), warmup=1, repeats=5)
        >>> len(t.times_ms)
        5
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    device = torch.device(device)
    for _ in range(warmup):
        step()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        pairs = []
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            pairs.append((start, end))
        torch.cuda.synchronize(device)
        times = tuple(start.elapsed_time(end) for start, end in pairs)
        peak = int(torch.cuda.max_memory_allocated(device))
        return Timing(times, peak, str(device))
    times_list = []
    for _ in range(repeats):
        begin = time.perf_counter()
        step()
        times_list.append((time.perf_counter() - begin) * 1e3)
    return Timing(tuple(times_list), None, str(device))


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on: device name, library versions, CPU count.

    Example:
        >>> sorted(machine_info())[:3]
        ['cpu_count', 'cuda', 'device']
    """
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "device": str(device),
        "device_name": name or platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
