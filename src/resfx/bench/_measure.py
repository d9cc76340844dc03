"""The measuring core shared by `resfx bench` and `benchmarks/`: one timing loop, one truth."""

import contextlib
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile

from .._device_sync import synchronize

_Built = TypeVar("_Built")


@dataclass(frozen=True)
class Timing:
    """Step times of one measured operation, warm-up excluded, and its peak memory.

    Args:
        times_ms: one wall time per repeat, in milliseconds (CUDA events on a GPU), in
            the order they ran: `rounds` rounds of equally many steps.
        peak_memory_bytes: the GPU allocator's peak during the repeats, `None` where
            it was not read (the CPU, or interleaved timing, which reads no peak).
        device: where it ran, e.g. `"cuda:0"` or `"cpu"`.
        rounds: how many interleaved rounds `times_ms` holds (1: timed in one go).

    Raises:
        ValueError: `times_ms` does not split into `rounds` rounds of equal length.

    Example:
        >>> t = Timing((1.0, 2.0, 3.0, 5.0), None, "cpu", rounds=2)
        >>> t.median_ms, t.spread_ms, t.round_medians_ms
        (2.5, 0.875, (1.5, 4.0))
    """

    times_ms: tuple[float, ...]
    peak_memory_bytes: int | None
    device: str
    rounds: int = 1

    def __post_init__(self) -> None:
        if self.rounds < 1 or len(self.times_ms) % self.rounds:
            raise ValueError(
                f"{len(self.times_ms)} step times do not split into {self.rounds} equal rounds; "
                f"pass rounds >= 1 that divides the number of times"
            )

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
    def round_medians_ms(self) -> tuple[float, ...]:
        """The median step time of each round, in the order the rounds ran."""
        size = len(self.times_ms) // self.rounds
        return tuple(
            statistics.median(self.times_ms[start : start + size])
            for start in range(0, len(self.times_ms), size)
        )

    @property
    def peak_memory_mib(self) -> float | None:
        """Peak GPU memory in MiB, or `None` where it was not read."""
        return None if self.peak_memory_bytes is None else self.peak_memory_bytes / 2**20


@dataclass(frozen=True)
class Ratio:
    """A ratio of two interleaved measurements: the median of its per-round values and their range.

    Args:
        median: the median over rounds of (numerator's round median / denominator's).
        low: the smallest per-round ratio.
        high: the largest per-round ratio.
        per_round: every round's ratio, in the order the rounds ran.

    Example:
        >>> r = Ratio.of_rounds((2.0, 4.0, 3.0), (1.0, 2.0, 2.0))
        >>> r.median, r.low, r.high
        (2.0, 1.5, 2.0)
        >>> r.text()
        '2.000x [1.500-2.000] over 3 rounds'
    """

    median: float
    low: float
    high: float
    per_round: tuple[float, ...]

    @classmethod
    def of_rounds(cls, numerator: Sequence[float], denominator: Sequence[float]) -> "Ratio":
        """The ratio of two operations' round medians, paired round by round.

        Args:
            numerator: one median per round (e.g. `Timing.round_medians_ms`).
            denominator: the other operation's, from the same rounds.

        Returns:
            The ratio with its spread over rounds.

        Raises:
            ValueError: no rounds, or the two do not have the same number of rounds.
        """
        if not numerator or len(numerator) != len(denominator):
            raise ValueError(
                f"a ratio pairs rounds: got {len(numerator)} and {len(denominator)} round "
                f"medians; pass the same (>= 1) rounds of both, timed together"
            )
        ratios = tuple(a / b for a, b in zip(numerator, denominator, strict=True))
        return cls(statistics.median(ratios), min(ratios), max(ratios), ratios)

    def text(self) -> str:
        """The ratio as `median x [low-high] over N rounds` (`median x (one value)` for one)."""
        if len(self.per_round) == 1:
            return f"{self.median:.3f}x (one value)"
        return (
            f"{self.median:.3f}x [{self.low:.3f}-{self.high:.3f}] over {len(self.per_round)} rounds"
        )


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


def _interleaved_order(names: Sequence[str], rounds: int, seed: int) -> Iterator[list[str]]:
    """Each round's order: shuffled by a seeded generator, so no name always follows another."""
    generator = random.Random(seed)
    for _ in range(rounds):
        order = list(names)
        generator.shuffle(order)
        yield order


def time_interleaved(
    steps: Mapping[str, Callable[[], Any]],
    *,
    device: torch.device | str = "cpu",
    rounds: int = 10,
    steps_per_round: int = 1,
    seed: int = 0,
) -> dict[str, Timing]:
    """Time several operations in interleaved rounds, so that machine noise weighs on all alike.

    Each round runs every operation `steps_per_round` times in a row, in an order
    shuffled per round by a generator seeded with `seed`; every step is timed on
    its own (CUDA events on a GPU, `time.perf_counter` on the CPU). Warm the
    operations up before: nothing here is untimed.

    Args:
        steps: the operations by name; build their inputs outside them.
        device: where they run.
        rounds: how many rounds.
        steps_per_round: timed steps of each operation per round.
        seed: the seed of the rounds' order.

    Returns:
        One `Timing` per name, with `rounds` rounds and no peak memory.

    Raises:
        ValueError: no operations, or `rounds` or `steps_per_round` below 1.

    Example:
        >>> timings = time_interleaved({"a": lambda: None, "b": lambda: None}, rounds=3)
        >>> [len(t.round_medians_ms) for t in timings.values()]
        [3, 3]
    """
    if not steps or rounds < 1 or steps_per_round < 1:
        raise ValueError(
            f"need at least one operation, rounds >= 1 and steps_per_round >= 1, got "
            f"{len(steps)} operations, {rounds} and {steps_per_round}"
        )
    device = torch.device(device)
    on_gpu = device.type == "cuda"
    marks: dict[str, list[Any]] = {name: [] for name in steps}
    for order in _interleaved_order(list(steps), rounds, seed):
        for name in order:
            step = steps[name]
            for _ in range(steps_per_round):
                if on_gpu:
                    start, end = (
                        torch.cuda.Event(enable_timing=True),
                        torch.cuda.Event(enable_timing=True),
                    )
                    start.record()
                    step()
                    end.record()
                    marks[name].append((start, end))
                else:
                    begin = time.perf_counter()
                    step()
                    marks[name].append((time.perf_counter() - begin) * 1e3)
    synchronize(device)
    return {
        name: Timing(
            tuple(start.elapsed_time(end) for start, end in times) if on_gpu else tuple(times),
            None,
            str(device),
            rounds=rounds,
        )
        for name, times in marks.items()
    }


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point the process's stderr at /dev/null: the profiler's C++ side logs each start and
    stop there, whatever the log-level settings, and a benchmark prints its own table."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _tensor_bytes_peak(run: Callable[[], _Built]) -> tuple[_Built, int, int]:
    """`run()`'s result, and the net and peak bytes of the CPU tensors it allocated.

    torch's profiler records every allocation and free of the CPU allocator in
    order; their running sum is the bytes held by tensors `run` made, and its
    maximum the peak (what `torch.cuda.max_memory_allocated` is on a GPU).
    """
    profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _stderr_silenced():
        profiler.start()
    try:
        result = run()
    finally:
        with _stderr_silenced():
            profiler.stop()
    events, stack = [], list(profiler.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.tag == _EventType.Allocation:
            events.append(event)
    held = peak = 0
    for event in sorted(events, key=lambda e: e.start_time_ns):
        held += event.extra_fields.alloc_size
        peak = max(peak, held)
    return result, held, peak


def peak_memory(
    prepare: Callable[[], _Built],
    step: Callable[[_Built], Any],
    *,
    device: torch.device | str = "cpu",
    steps: int = 2,
) -> tuple[_Built, int]:
    """Prepare an operation, run it `steps` times, and return it with the memory peak of that.

    The peak counts from before `prepare`: the tensors it keeps (a model, its
    inputs, an optimizer's state once a step made it) plus the steps' transient
    peak; whatever else is resident (other operations' models) is not counted,
    and neither are tensors `prepare` made and freed before the steps. On a GPU
    it is the caching allocator's peak of allocated bytes
    (`torch.cuda.max_memory_allocated`); on the CPU the peak of the bytes held by
    tensors, from the allocation events of torch's profiler (the process's RSS is
    higher: the interpreter, libraries, and freed memory the C allocator keeps).

    Args:
        prepare: builds the operation (e.g. a model and its inputs).
        step: runs it once, given what `prepare` returned.
        device: where it runs.
        steps: how many steps the peak spans (two: an optimizer's state is made in
            the first step and held through the second's backward).

    Returns:
        What `prepare` returned, and the peak in bytes.

    Raises:
        ValueError: `steps < 1`.

    Example:
        >>> _, peak = peak_memory(lambda: torch.zeros(256), lambda x: (x + 1).sum())
        >>> peak >= 2 * 256 * 4
        True
    """
    if steps < 1:
        raise ValueError(f"need steps >= 1 to read a peak, got {steps}")
    device = torch.device(device)
    gc.collect()

    def run_steps(built: _Built) -> None:
        for _ in range(steps):
            step(built)
        synchronize(device)

    if device.type == "cuda":
        synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
        built = prepare()
        torch.cuda.reset_peak_memory_stats(device)
        run_steps(built)
        return built, int(torch.cuda.max_memory_allocated(device)) - baseline
    built, kept, _ = _tensor_bytes_peak(prepare)
    _, _, transient = _tensor_bytes_peak(lambda: run_steps(built))
    return built, kept + transient


def _cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; `platform.processor()` is empty there)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on: device name, library versions, CPU count.

    Example:
        >>> sorted(machine_info())[:3]
        ['cpu_count', 'cuda', 'device']
    """
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
