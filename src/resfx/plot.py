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

from ._names import data_name

__all__ = ["plot_comparison", "plot_history"]

_LOSS_COLOUR = "tab:blue"
_ACCURACY_COLOUR = "tab:red"
_LINE_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v")

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


def _model_name(history: Mapping[str, Any]) -> str:
    """The architecture and its starting weights, from the run's arguments."""
    args = history.get("args") or {}
    if "arch" not in args:  # a history written without its arguments
        return "architecture and weights not recorded"
    weights = args.get("weights")
    return f"{args['arch']} ({'random init' if weights in (None, 'none') else weights})"


def _label(history: Mapping[str, Any]) -> str:
    """Mode and data for legends (the model is in the figure's title); synthetic says so."""
    data = "synthetic data" if history["dataset"] == "synthetic" else data_name(history["dataset"])
    return f"{history['mode']}, {data}"


def _title(history: Mapping[str, Any]) -> str:
    return f"{_model_name(history)}, mode {history['mode']!r}, {data_name(history['dataset'])}"


def _stage_starts(history: Mapping[str, Any]) -> list[tuple[str, int]]:
    """A staged run's `(stage, examples seen when it started)` for the stages after epoch 0."""
    stages = (history.get("args") or {}).get("stages")
    if not stages:
        return []
    starts = []
    for item in str(stages).split(","):
        name, _, epoch = item.strip().partition(":")
        if epoch.isdigit() and 0 < int(epoch) <= len(history["epoch_examples"]):
            starts.append((name, history["epoch_examples"][int(epoch) - 1]))
    return starts


def _save(figure: Figure, path: str | os.PathLike[str] | None) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120, bbox_inches="tight")


def plot_history(run: Run, path: str | os.PathLike[str] | None = None) -> Figure:
    """The seed's figure: loss per step and test accuracy per epoch, against examples seen.

    Two y-axes: cross-entropy on the left (per step, and the test loss per epoch
    when recorded), accuracy (%) on the right (test, and training when recorded).
    The title names the architecture, its starting weights, the mode and the data
    (and says so when it is synthetic); a staged run marks where each later stage
    starts training.

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
    epochs = len(history["epoch_examples"])
    test_loss = history.get("test_loss_list") or []
    if len(test_loss) == epochs:  # histories before test loss was recorded have none
        loss_axis.plot(
            history["epoch_examples"],
            test_loss,
            "s--",
            color=_LOSS_COLOUR,
            label="test loss (per epoch)",
        )
    train_accuracy = history.get("train_accuracy_list") or []
    if len(train_accuracy) == epochs:
        accuracy_axis.plot(
            history["epoch_examples"],
            [100 * a for a in train_accuracy],
            "^--",
            color=_ACCURACY_COLOUR,
            alpha=0.7,
            label="training accuracy (per epoch)",
        )
    accuracy_axis.set_ylabel("accuracy (%)", color=_ACCURACY_COLOUR)
    accuracy_axis.tick_params(axis="y", colors=_ACCURACY_COLOUR)
    accuracy_axis.set_ylim(0, 100)
    handles = (
        loss_axis.get_legend_handles_labels()[0] + accuracy_axis.get_legend_handles_labels()[0]
    )
    loss_axis.legend(  # below the axes: the curves fill the plot
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize="small"
    )
    for stage, examples in _stage_starts(history):
        loss_axis.axvline(examples, color="grey", linestyle=":", linewidth=1)
        loss_axis.annotate(
            f"{stage} starts",
            (examples, 0.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, 4),
            textcoords="offset points",
            fontsize=8,
            color="dimgrey",
        )
    loss_axis.set_title(_title(history), fontsize=10)
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
    if len({_model_name(history) for history in histories}) > 1:
        labels = [f"{_model_name(h)}, {label}" for h, label in zip(histories, labels, strict=True)]
    # Runs often coincide (head and cached train the same head on the same features):
    # each later run is drawn thinner, dashed and with its own marker, so one on top
    # of another still shows both.
    for index, (history, label) in enumerate(zip(histories, labels, strict=True)):
        style = {
            "linewidth": max(2.5 - 0.7 * index, 0.8),
            "linestyle": _LINE_STYLES[index % len(_LINE_STYLES)],
            "label": label,
        }
        loss_axis.plot(history["examples_seen"], history["loss_list"], **style)
        epochs = range(1, len(history["accuracy_list"]) + 1)
        accuracy_axis.plot(
            epochs,
            [100 * a for a in history["accuracy_list"]],
            marker=_MARKERS[index % len(_MARKERS)],
            markersize=max(9 - 2 * index, 4),
            **style,
        )
    loss_axis.set(xlabel="training examples seen", ylabel="cross-entropy loss", title="loss")
    accuracy_axis.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    accuracy_axis.set_ylim(0, 100)
    setup = [history["setup_seconds"] for history in histories]
    training = [sum(history["epoch_times"]) for history in histories]
    positions = range(len(histories))
    time_axis.bar(positions, setup, label="setup (data, model, cached features)")
    time_axis.bar(positions, training, bottom=setup, label="epochs (train + test)")
    time_axis.set_xticks(
        list(positions), [label.replace(", ", "\n").replace(" (", "\n(") for label in labels]
    )
    time_axis.set(ylabel="seconds", title="time, end to end")
    accuracy_axis.xaxis.get_major_locator().set_params(integer=True)
    time_axis.set_ylim(0, 1.3 * max(s + t for s, t in zip(setup, training, strict=True)))
    for axis in (loss_axis, accuracy_axis, time_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    models = ", ".join(dict.fromkeys(_model_name(history) for history in histories))
    data = ", ".join(dict.fromkeys(data_name(history["dataset"]) for history in histories))
    figure.suptitle(f"{models} on {data}")
    _save(figure, path)
    return figure
