"""Figures: the seed's two-axis plot and the comparison, written as PNG and labelled truthfully."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from resfx.plot import plot_comparison, plot_history
from resfx.train import TrainHistory, TrainResult


def _history(mode: str = "head", dataset: str = "synthetic") -> TrainHistory:
    return TrainHistory(
        mode,
        dataset,
        "cpu",
        loss_list=[2.3, 2.0, 1.7, 1.5, 1.4, 1.2],
        examples_seen=[64, 128, 192, 256, 320, 384],
        accuracy_list=[0.35, 0.52],
        epoch_examples=[192, 384],
        epoch_times=[1.5, 1.4],
        setup_seconds=0.5,
    )


def test_seed_figure_has_loss_and_accuracy_on_two_axes_against_examples_seen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plots" / "training.png"
    figure = plot_history(_history(), path)
    loss_axis, accuracy_axis = figure.axes
    assert loss_axis.get_xlabel() == "training examples seen"
    assert loss_axis.get_ylabel() == "cross-entropy loss"
    assert accuracy_axis.get_ylabel() == "accuracy (%)"
    assert list(loss_axis.lines[0].get_xdata()) == [64, 128, 192, 256, 320, 384]
    assert list(accuracy_axis.lines[0].get_ydata()) == [35.0, 52.0]
    assert "SYNTHETIC" in loss_axis.get_title()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 600


def test_real_data_is_not_called_synthetic() -> None:
    figure = plot_history(TrainResult(_history(dataset="cifar10"), model=torch.nn.Linear(1, 1)))
    assert "CIFAR-10" in figure.axes[0].get_title()
    assert "SYNTHETIC" not in figure.axes[0].get_title()


def test_comparison_shows_every_run_and_its_time(tmp_path: Path) -> None:
    runs = [_history("head"), _history("cached")]
    runs[1].epoch_times = [0.1, 0.1]
    path = tmp_path / "modes.png"
    figure = plot_comparison(runs, path)
    loss_axis, accuracy_axis, time_axis = figure.axes
    assert [line.get_label() for line in loss_axis.lines] == [
        "head, synthetic data",
        "cached, synthetic data",
    ]
    assert len(accuracy_axis.lines) == 2
    heights = [bar.get_height() for bar in time_axis.patches]
    assert heights == pytest.approx([0.5, 0.5, 2.9, 0.2])
    assert "SYNTHETIC" in figure.get_suptitle()
    assert path.stat().st_size > 10_000


def test_comparison_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        plot_comparison([])


def _run_args(**args: object) -> dict[str, object]:
    return {"arch": "resnet18", "weights": "IMAGENET1K_V1", **args}


def test_titles_name_the_architecture_weights_and_data_as_written() -> None:
    run = _history(dataset="/data/Imagenette2")
    run.args = _run_args()
    title = plot_history(run).axes[0].get_title()
    assert title == "resnet18 (IMAGENET1K_V1), mode 'head', Imagenette2"
    run.args = _run_args(weights=None)
    assert plot_history(run).axes[0].get_title().startswith("resnet18 (random init)")
    run.args = {}
    assert "not recorded" in plot_history(run).axes[0].get_title()


def test_a_staged_run_marks_where_each_later_stage_starts() -> None:
    run = _history("partial")
    run.args = _run_args(stages="head:0,layer4:1")
    axis = plot_history(run).axes[0]
    marks = [line for line in axis.lines if line.get_linestyle() == ":"]
    assert [list(line.get_xdata()) for line in marks] == [[192, 192]]
    assert [text.get_text() for text in axis.texts] == ["layer4 starts"]
    run.args = _run_args()
    assert not plot_history(run).axes[0].texts


def test_coinciding_runs_stay_distinguishable() -> None:
    runs = [_history("head"), _history("cached")]  # the same losses and accuracies
    loss_axis, accuracy_axis, _ = plot_comparison(runs).axes
    for axis in (loss_axis, accuracy_axis):
        first, second = axis.lines
        assert first.get_linewidth() > second.get_linewidth()
        assert first.get_linestyle() != second.get_linestyle()
    assert accuracy_axis.lines[0].get_marker() != accuracy_axis.lines[1].get_marker()


def test_runs_of_different_models_say_which_is_which() -> None:
    runs = [_history("head"), _history("full")]
    runs[0].args, runs[1].args = _run_args(), _run_args(weights=None)
    labels = [line.get_label() for line in plot_comparison(runs).axes[0].lines]
    assert labels == [
        "resnet18 (IMAGENET1K_V1), head, synthetic data",
        "resnet18 (random init), full, synthetic data",
    ]


def test_the_seed_figure_shows_test_loss_and_training_accuracy_when_recorded() -> None:
    run = _history()
    run.test_loss_list, run.train_accuracy_list = [2.1, 1.6], [0.3, 0.6]
    loss_axis, accuracy_axis = plot_history(run).axes
    assert [line.get_label() for line in loss_axis.lines] == [
        "training loss (per step)",
        "test loss (per epoch)",
    ]
    assert list(loss_axis.lines[1].get_ydata()) == [2.1, 1.6]
    assert list(accuracy_axis.lines[1].get_ydata()) == [30.0, 60.0]
    assert len(plot_history(_history()).axes[1].lines) == 1  # an older history: test only
