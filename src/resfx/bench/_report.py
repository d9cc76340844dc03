"""The benchmark report: a terminal table, a JSON file with every figure, and PNG charts."""

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._atomic import atomic_write_bytes
from ._suite import StepResult, results_as_dicts, step_ratios

BENCH_OUTPUTS: tuple[str, ...] = ("bench.json", "bench_modes.png", "bench_freeze_depth.png")
"""The files `resfx bench --out DIR` writes into DIR."""


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _on_gpu(results: list[StepResult]) -> bool:
    return any(r.device.startswith("cuda") for r in results)


def _peak_memory_meaning(results: list[StepResult]) -> str:
    """What the peak-memory figures are: the GPU allocator's peak, or CPU tensor bytes."""
    source = (
        "the GPU allocator's (torch.cuda.max_memory_allocated)"
        if _on_gpu(results)
        else "CPU tensor bytes (torch profiler's allocation events)"
    )
    return (
        f"peak: {source}, counted from before the mode was built: its model, inputs, "
        f"optimizer state and the peak of two steps"
    )


def format_step_table(results: list[StepResult]) -> str:
    """A fixed-width table of step results, grouped by precision, with the ratios under it.

    The peak column says whose peak it is (`GPU` allocator or `CPU` tensors); the last
    column holds each interleaved round's median; each ratio is the median of its
    per-round ratios with their range.

    Args:
        results: from `run_step_benchmarks`.

    Returns:
        The table as text.

    Example:
        >>> rows = [StepResult("resfx", "fp32", "full", 8.0, 0.1, None, 2**20, 100)]
        >>> print(format_step_table(rows).splitlines()[0])
        precision  mode                 implementation  median ms  ±spread  CPU peak MiB  saved MiB  nodes  setup s  round medians ms
    """
    where = "GPU" if _on_gpu(results) else "CPU"
    header = (
        f"{'precision':<10} {'mode':<20} {'implementation':<15} {'median ms':>9} "
        f"{'±spread':>8} {where + ' peak MiB':>13} {'saved MiB':>10} {'nodes':>6} {'setup s':>8}"
        f"  round medians ms"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.precision:<10} {r.mode:<20} {r.implementation:<15} {r.median_ms:>9.2f} "
            f"{r.spread_ms:>8.2f} {_fmt(r.peak_memory_mib, 0):>13} "
            f"{r.saved_bytes / 2**20:>10.2f} {r.graph_nodes:>6} {_fmt(r.setup_seconds):>8}  "
            + " ".join(f"{m:.2f}" for m in r.round_medians_ms)
        )
    lines.append(_peak_memory_meaning(results))
    for key, entry in step_ratios(results).items():
        if entry:
            lines.append("")
            lines.append(f"ratios {key} (median of per-round ratios [min-max]):")
            lines.extend(f"  {name:<40} {ratio.text()}" for name, ratio in entry.items())
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a report dictionary as indented JSON, atomically.

    Args:
        report: JSON-serialisable figures.
        path: the file to write.

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> write_json({"a": 1}, tempfile.mkdtemp() + "/r.json").name
        'r.json'
    """
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(report, indent=2) + "\n").encode())
    return path


def step_report(results: list[StepResult]) -> dict[str, Any]:
    """Every step figure and ratio (with its per-round values), as one JSON-ready dictionary.

    Example:
        >>> sorted(step_report([]))
        ['peak_memory', 'ratios', 'steps']
    """
    ratios = {
        key: {name: asdict(ratio) for name, ratio in entry.items()}
        for key, entry in step_ratios(results).items()
    }
    return {
        "steps": results_as_dicts(results),
        "ratios": ratios,
        "peak_memory": _peak_memory_meaning(results),
    }


def _series(results: list[StepResult]) -> list[tuple[str, str]]:
    return sorted({(r.implementation, r.precision) for r in results})


def _offsets(count: int, series: int, index: int, width: float) -> list[float]:
    """x positions of series `index` of `series`, side by side around each of `count` ticks."""
    return [m + (index - (series - 1) / 2) * width for m in range(count)]


def _machine_line(results: list[StepResult], machine: Mapping[str, Any] | None) -> str:
    """Which device measured: its name (from `machine_info`) and torch's device string."""
    devices = ", ".join(dict.fromkeys(r.device for r in results)) or "cpu"
    if not machine:
        return f"on {devices}"
    cpus = f", {machine['cpu_count']} CPUs" if machine.get("cpu_count") else ""
    return f"on {machine.get('device_name') or devices} ({devices}{cpus})"


def _modes_figure(results: list[StepResult], machine: Mapping[str, Any] | None) -> Figure:
    """Bars: median step time (and peak memory, when measured) per mode and series.

    Each time bar carries its spread (half the interquartile range of the steps) and
    a dot per interleaved round's median, so a noisy mode shows as one.
    """
    series = _series(results)
    modes = list(dict.fromkeys(r.mode for r in results if not r.mode.startswith("freeze_to:")))
    table = {(r.implementation, r.precision, r.mode): r for r in results}
    panels = [("median_ms", "step time (ms): median, ±half IQR, dots: rounds", "step time")]
    if any(r.peak_memory_mib for r in results):
        where = "GPU allocator" if _on_gpu(results) else "CPU tensors"
        panels.append(("peak_memory_mib", f"peak memory, {where} (MiB)", "peak memory"))
    figure = Figure(figsize=(13 if len(panels) == 2 else 8, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    width = 0.8 / max(len(series), 1)
    for axis, (attribute, ylabel, title) in zip(axes, panels, strict=True):
        for index, (implementation, precision) in enumerate(series):
            offsets = _offsets(len(modes), len(series), index, width)
            rows = [table.get((implementation, precision, m)) for m in modes]
            values = [getattr(r, attribute, 0.0) or 0.0 for r in rows]
            timing = attribute == "median_ms"
            bars = axis.bar(
                offsets,
                values,
                width,
                yerr=[r.spread_ms if r else 0.0 for r in rows] if timing else None,
                capsize=3,
                label=f"{implementation} {precision}",
            )
            if timing:
                for x, row in zip(offsets, rows, strict=True):
                    rounds = row.round_medians_ms if row else []
                    axis.plot([x] * len(rounds), rounds, ".", color="black", markersize=3)
            axis.bar_label(
                bars,
                fmt="%.3g" if timing else "%.0f",
                fontsize=7 if len(series) <= 2 else 6,
                rotation=0 if len(series) <= 2 else 90,
                padding=2,
            )
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.set_xticks(range(len(modes)))
        axis.set_xticklabels(modes, rotation=30, ha="right")
        axis.set_ylim(0, 1.15 * axis.get_ylim()[1])  # room for the rotated labels
        axis.legend(fontsize=8)
    figure.suptitle(f"ResNet34 training step by mode, {_machine_line(results, machine)}")
    return figure


def _depth_figure(results: list[StepResult], machine: Mapping[str, Any] | None) -> Figure | None:
    """Step time and saved activations against freeze depth; `None` without a sweep.

    The series sit side by side around each depth (resfx and torchvision save the
    same activations, so drawn at one x the second would hide the first), and the
    time carries its spread (half the interquartile range).
    """
    sweep = [r for r in results if r.mode.startswith("freeze_to:")]
    if not sweep:
        return None
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    time_axis, memory_axis = figure.subplots(1, 2)
    series = _series(results)
    stages = list(dict.fromkeys(r.mode.removeprefix("freeze_to:") for r in sweep))
    table = {(r.implementation, r.precision, r.mode.removeprefix("freeze_to:")): r for r in sweep}
    for index, (implementation, precision) in enumerate(series):
        rows = [table.get((implementation, precision, stage)) for stage in stages]
        x = _offsets(len(stages), len(series), index, 0.12)
        style = {"marker": "os^D"[index % 4], "label": f"{implementation} {precision}"}
        time_axis.errorbar(
            x,
            [r.median_ms if r else float("nan") for r in rows],
            yerr=[r.spread_ms if r else 0.0 for r in rows],
            capsize=3,
            **style,
        )
        memory_axis.plot(
            x, [r.saved_bytes / 2**20 if r else float("nan") for r in rows], "--", **style
        )
    for axis in (time_axis, memory_axis):
        axis.set_xticks(range(len(stages)), stages)
        axis.set_xlabel("frozen up to and including")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    time_axis.set_ylabel("step time (ms): median, ±half IQR")
    time_axis.set_title("step time")
    memory_axis.set_ylabel("activations saved for backward (MiB)")
    memory_axis.set_title("saved activations")
    figure.suptitle(
        f"Cost of a ResNet34 training step against freeze depth, {_machine_line(results, machine)}"
    )
    return figure


def plot_steps(
    results: list[StepResult],
    out_dir: str | os.PathLike[str],
    machine: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Charts: time and peak memory by mode, and cost against freeze depth.

    Drawn on matplotlib `Figure` objects with the Agg canvas: no pyplot state, no
    backend switch (a notebook's backend stays as it was).

    Args:
        results: from `run_step_benchmarks`.
        out_dir: the folder for the PNG files.
        machine: `machine_info(device)` of the run, so the titles name the device;
            `None` names only torch's device string.

    Returns:
        The PNG paths written (`bench_modes.png`, `bench_freeze_depth.png` when
        the sweep ran).

    Example:
        >>> import tempfile
        >>> rows = [StepResult("resfx", "fp32", "full", 8.0, 0.1, None, 2**20, 100)]
        >>> [p.name for p in plot_steps(rows, tempfile.mkdtemp())]
        ['bench_modes.png']
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    modes_chart, depth_chart = BENCH_OUTPUTS[1:]
    figures = {
        modes_chart: _modes_figure(results, machine),
        depth_chart: _depth_figure(results, machine),
    }
    written = []
    for name, figure in figures.items():
        if figure is not None:
            figure.savefig(out_dir / name, dpi=120)
            written.append(out_dir / name)
    return written
