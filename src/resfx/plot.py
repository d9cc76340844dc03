"""Figures of training runs: the seed's loss-and-accuracy plot, and runs side by side.

Figures are drawn with matplotlib's object API on the Agg canvas (no display,
no global pyplot state), so they work on servers and in tests. They take plain
data: a run's history as a mapping (what `TrainHistory.to_dict()` gives and
`history.json` holds), or any object with a `to_dict()` or a `.history` that has
one (`TrainHistory`, `TrainResult`), so `plot` imports nothing of `train`, and
`train` draws its figure with it.

Example:
    >>> from resfx.plot import plot_history
    >>> from resfx.train import TrainHistory
    >>> history = TrainHistory("cached", "synthetic", "cpu", loss_list=[2.3, 1.2],
    ...                        examples_seen=[64, 128], accuracy_list=[0.5], epoch_examples=[128])
    >>> plot_history(history).axes[0].get_xlabel()
    'training examples seen'
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_comparison", "plot_history"]

_LOSS_COLOUR = "tab:blue"
_ACCURACY_COLOUR = "tab:red"

Run = Mapping[str, Any] | Any
"""A run's history: a mapping with `TrainHistory`'s fields, or an object with `to_dict()`
(a `TrainHistory`) or with a `.history` that has one (a `TrainResult`)."""


def _record(run: Run) -> dict[str, Any]:
    """The run's history as a plain dictionary."""
    history = getattr(run, "history", run)
    if isinstance(history, Mapping):
        return dict(history)
    if callable(getattr(history, "to_dict", None)):
        return dict(history.to_dict())
    raise TypeError(
        f"plot needs a run's history as a mapping or an object with to_dict(), got "
        f"{type(run).__name__}; pass a resfx.train.TrainHistory, TrainResult or history.json's dict"
    )


def _label(history: Mapping[str, Any]) -> str:
    """Mode and dataset for legends; synthetic data always says so."""
    data = "synthetic data" if history["dataset"] == "synthetic" else history["dataset"].upper()
    return f"{history['mode']}, {data}"


def _title(history: Mapping[str, Any]) -> str:
    data = (
        "SYNTHETIC data (generated, not CIFAR-10)"
        if history["dataset"] == "synthetic"
        else f"{history['dataset'].upper()} data"
    )
    return f"ResNet34, mode {history['mode']!r}, {data}"


def _save(figure: Figure, path: str | os.PathLike[str] | None) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120, bbox_inches="tight")


def plot_history(run: Run, path: str | os.PathLike[str] | None = None) -> Figure:
    """The seed's figure: loss per step and test accuracy per epoch, against examples seen.

    Two y-axes: cross-entropy on the left, test accuracy (%) on the right.
    The title names the mode and the dataset, and says so when it is synthetic.

    Args:
        run: a history (`TrainHistory`, its `to_dict()`, `history.json`'s content) or a
            result of `resfx.train.train`.
        path: where to write the figure (`.png`); `None` only returns it.

    Returns:
        The figure.

    Example:
        >>> from resfx.train import TrainHistory
        >>> h = TrainHistory("head", "synthetic", "cpu", loss_list=[2.3, 1.9, 1.5],
        ...                  examples_seen=[64, 128, 192], accuracy_list=[0.4],
        ...                  epoch_examples=[192])
        >>> len(plot_history(h).axes)
        2
    """
    history = _record(run)
    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    loss_axis = figure.add_subplot()
    loss_axis.plot(
        history["examples_seen"],
        history["loss_list"],
        color=_LOSS_COLOUR,
        linewidth=1,
        label="training loss (per step)",
    )
    loss_axis.set_xlabel("training examples seen")
    loss_axis.set_ylabel("cross-entropy loss", color=_LOSS_COLOUR)
    loss_axis.tick_params(axis="y", colors=_LOSS_COLOUR)
    loss_axis.grid(alpha=0.3)
    accuracy_axis = loss_axis.twinx()
    accuracy_axis.plot(
        history["epoch_examples"],
        [100 * a for a in history["accuracy_list"]],
        "o-",
        color=_ACCURACY_COLOUR,
        label="test accuracy (per epoch)",
    )
    accuracy_axis.set_ylabel("test accuracy (%)", color=_ACCURACY_COLOUR)
    accuracy_axis.tick_params(axis="y", colors=_ACCURACY_COLOUR)
    accuracy_axis.set_ylim(0, 100)
    handles = (
        loss_axis.get_legend_handles_labels()[0] + accuracy_axis.get_legend_handles_labels()[0]
    )
    loss_axis.legend(handles=handles, loc="center right")
    loss_axis.set_title(_title(history))
    _save(figure, path)
    return figure


def plot_comparison(runs: Sequence[Run], path: str | os.PathLike[str] | None = None) -> Figure:
    """Runs side by side (e.g. the modes): loss, test accuracy, and time end to end.

    Args:
        runs: histories or results (as for `plot_history`), one per line and bar.
        path: where to write the figure (`.png`); `None` only returns it.

    Returns:
        The figure, with three panels.

    Raises:
        ValueError: `runs` is empty.

    Example:
        >>> from resfx.train import TrainHistory
        >>> runs = [TrainHistory(m, "synthetic", "cpu", loss_list=[2.0, 1.0], examples_seen=[8, 16],
        ...                      accuracy_list=[0.5], epoch_examples=[16], epoch_times=[t])
        ...         for m, t in (("head", 2.0), ("cached", 0.1))]
        >>> len(plot_comparison(runs).axes)
        3
    """
    if not runs:
        raise ValueError("plot_comparison needs at least one run")
    histories = [_record(run) for run in runs]
    figure = Figure(figsize=(14, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axis, accuracy_axis, time_axis = figure.subplots(1, 3)
    labels = [_label(history) for history in histories]
    for history, label in zip(histories, labels, strict=True):
        loss_axis.plot(history["examples_seen"], history["loss_list"], linewidth=1, label=label)
        epochs = range(1, len(history["accuracy_list"]) + 1)
        accuracy_axis.plot(epochs, [100 * a for a in history["accuracy_list"]], "o-", label=label)
    loss_axis.set(xlabel="training examples seen", ylabel="cross-entropy loss", title="loss")
    accuracy_axis.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    accuracy_axis.set_ylim(0, 100)
    setup = [history["setup_seconds"] for history in histories]
    training = [sum(history["epoch_times"]) for history in histories]
    positions = range(len(histories))
    time_axis.bar(positions, setup, label="setup (data, model, cached features)")
    time_axis.bar(positions, training, bottom=setup, label="epochs (train + test)")
    time_axis.set_xticks(list(positions), labels, rotation=15)
    time_axis.set(ylabel="seconds", title="time, end to end")
    for axis in (loss_axis, accuracy_axis, time_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    if any(history["dataset"] == "synthetic" for history in histories):
        figure.suptitle("SYNTHETIC data (generated stand-in, not CIFAR-10)")
    _save(figure, path)
    return figure
