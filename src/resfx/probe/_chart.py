"""The probe chart: test accuracy per stage, linear and kNN, with the seeds' spread and chance."""

from collections.abc import Sequence
from pathlib import Path

from .._names import data_name
from ._rows import ProbeRow


def probe_title(rows: Sequence[ProbeRow]) -> str:
    """What the chart and the table say was probed: data, architectures and their weights, seeds.

    Example:
        >>> from resfx.probe import KnnProbeResult, LinearProbeResult, ProbeRow
        >>> linear = LinearProbeResult(0.8, 0.9, 1e-3, 2.0, (1e-3,), (), True, (0, 5), 0.1)
        >>> knn = KnnProbeResult(0.7, 20, 0.07, 0.01)
        >>> row = ProbeRow("resnet18", "cifar10", None, "stem", 64, 10, (linear,), (knn,), 0.5)
        >>> probe_title([row])
        'probe per stage on CIFAR-10: resnet18 (random weights), 1 seed'
    """
    if not rows:
        return "probe per stage"
    models = ", ".join(
        dict.fromkeys(
            f"{r.arch} ({'random weights' if r.weights is None else r.weights})" for r in rows
        )
    )
    seeds = len(rows[0].linear)
    return f"probe per stage on {data_name(rows[0].dataset)}: {models}, {seeds} seed{'s' if seeds > 1 else ''}"


def plot_probe(rows: Sequence[ProbeRow], path: str | Path) -> Path:
    """A bar chart of test accuracy per stage: linear (solid) and kNN (hatched) per architecture.

    Error bars are the standard deviation over seeds; the dashed line is chance
    (1 / classes); the title names the data, each architecture with its weights, and
    the number of seeds.

    Args:
        rows: probe rows (`run_probe`'s or `probe_stages`'s).
        path: where the PNG goes (its folder is created).

    Returns:
        The path written.

    Raises:
        ValueError: no rows.

    Example:
        >>> import tempfile
        >>> from resfx.probe import KnnProbeResult, LinearProbeResult, ProbeRow
        >>> linear = LinearProbeResult(0.8, 0.9, 1e-3, 2.0, (1e-3,), (), True, (0, 5), 0.1)
        >>> knn = KnnProbeResult(0.7, 20, 0.07, 0.01)
        >>> row = ProbeRow("resnet18", "synthetic", None, "stem", 64, 10, (linear,), (knn,), 0.5)
        >>> plot_probe([row], tempfile.mkdtemp() + "/probe.png").suffix
        '.png'
    """
    if not rows:
        raise ValueError("plot_probe needs at least one row, got none")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    archs = list(dict.fromkeys(r.arch for r in rows))
    stages = list(dict.fromkeys(r.stage for r in rows))
    by_cell = {(r.arch, r.stage): r for r in rows}
    figure = Figure(figsize=(2.0 + 1.6 * len(stages), 4.0))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    width = 0.8 / (2 * len(archs))
    colours = [f"C{index}" for index in range(10)]
    for a, arch in enumerate(archs):
        colour = colours[a % len(colours)]
        for p, (probe, hatch) in enumerate((("linear", None), ("kNN", "//"))):
            offset = (2 * a + p - (2 * len(archs) - 1) / 2) * width
            cells = [by_cell.get((arch, s)) for s in stages]
            if probe == "linear":
                stats = [(c.test_accuracy, c.test_std) if c else (0.0, 0.0) for c in cells]
            else:
                stats = [(c.knn_accuracy, c.knn_std) if c else (0.0, 0.0) for c in cells]
            bars = axes.bar(
                [i + offset for i in range(len(stages))],
                [100 * m for m, _ in stats],
                width=width,
                yerr=[100 * s for _, s in stats],
                capsize=2,
                color=colour,
                alpha=1.0 if hatch is None else 0.45,
                hatch=hatch,
                edgecolor=colour,
                label=f"{arch} {probe}",
            )
            axes.bar_label(bars, fmt="%.0f", fontsize=6, padding=2)
    chance = 100 / max(r.classes for r in rows)
    axes.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance {chance:.0f}%")
    axes.set_xticks(range(len(stages)), stages)
    axes.set_ylabel("test accuracy (%), mean ± std over seeds")
    axes.set_ylim(0, 105)
    axes.set_title(probe_title(rows), fontsize=9)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
