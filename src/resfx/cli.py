"""The `resfx` command line (also `python -m resfx`).

Each subcommand is one `_register_<name>` function that adds its parser and
sets `handler`; adding one means writing that function and listing it in
`SUBCOMMANDS`.

Example:
    >>> from resfx.cli import build_parser
    >>> build_parser().parse_args(["train", "--mode", "cached"]).mode
    'cached'
"""

import argparse
import os
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from typing import Any, Literal, Union, get_args, get_origin

from .data import DatasetUnavailableError
from .train import (
    CHECKPOINT_NAME,
    HISTORY_NAME,
    PLOT_NAME,
    CheckpointError,
    NonFiniteLossError,
    OutputDirectoryError,
    TrainHistory,
    TrainingArgs,
    train,
)
from .weights import CheckpointMismatchError, WeightsUnavailableError

__all__ = ["SUBCOMMANDS", "add_dataclass_flags", "build_parser", "format_summary", "main"]

_CLI_DEFAULTS: dict[str, Any] = {"output_dir": "runs/train"}
"""Where the command line differs from `TrainingArgs`: it always writes its results somewhere."""

_RUN_ERRORS = (
    DatasetUnavailableError,
    OutputDirectoryError,
    NonFiniteLossError,
    CheckpointError,
    CheckpointMismatchError,
    WeightsUnavailableError,
)


def _optional_text(value: str) -> str | None:
    """`none` (any case) means `None`, for flags whose field may be `None`."""
    return None if value.lower() == "none" else value


def add_dataclass_flags(
    parser: argparse.ArgumentParser, cls: type, defaults: dict[str, Any] | None = None
) -> None:
    """Add one `--flag` per field of the dataclass `cls`, typed and documented from the field.

    `Literal` fields get `choices`; `bool` fields get `--x/--no-x`; `X | None`
    fields take `none` for `None`; help comes from the field's `metadata["help"]`.

    Args:
        parser: the parser to extend.
        cls: the dataclass, e.g. `TrainingArgs`.
        defaults: defaults that differ from the dataclass's.

    Raises:
        TypeError: a field's type has no flag form.

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser()
        >>> add_dataclass_flags(parser, TrainingArgs)
        >>> parser.parse_args(["--mode", "cached", "--weights", "none"]).weights is None
        True
    """
    defaults = defaults or {}
    for field in fields(cls):
        default = defaults.get(field.name, field.default)
        if default is MISSING:
            raise TypeError(f"field {field.name} has no default; give one in `defaults`")
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata.get('help', '')} (default: {default})"
        kind = field.type
        options = get_args(kind)
        optional = get_origin(kind) in (Union, types.UnionType) and type(None) in options
        base = next((o for o in options if o is not type(None)), kind) if optional else kind
        if get_origin(base) is Literal:
            parser.add_argument(flag, choices=get_args(base), default=default, help=help_text)
        elif base is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        elif base in (int, float, str):
            converter: Callable[[str], Any] = _optional_text if optional else base
            if optional and base is not str:
                raise TypeError(f"field {field.name}: only str fields may also be None")
            parser.add_argument(flag, type=converter, default=default, help=help_text)
        else:
            raise TypeError(f"field {field.name} has type {kind}, which has no flag form")


def format_summary(history: TrainHistory, written: Sequence[str]) -> str:
    """The text `resfx train` prints at the end: accuracy, time per epoch, parameter counts.

    Args:
        history: the finished run's history.
        written: files the run wrote.

    Returns:
        Lines of text.

    Example:
        >>> h = TrainHistory("cached", "synthetic", "cpu", accuracy_list=[0.5, 0.75],
        ...                  epoch_times=[0.5, 0.25], trainable_parameters=5130,
        ...                  frozen_parameters=21284672)
        >>> print(format_summary(h, []))  # doctest: +ELLIPSIS
        resfx train: mode 'cached' on SYNTHETIC data (generated stand-in, not CIFAR-10), cpu, 1 process
          final test accuracy: 75.00% (per epoch: 50.00%, 75.00%)
          time per epoch: 0.375 s (mean of 2); setup 0.000 s, of it cached features 0.000 s
          parameters: 5,130 trainable, 21,284,672 frozen
    """
    data = (
        "SYNTHETIC data (generated stand-in, not CIFAR-10)"
        if history.dataset == "synthetic"
        else f"{history.dataset} data"
    )
    processes = f"{history.world_size} process{'es' if history.world_size > 1 else ''}"
    per_epoch = ", ".join(f"{100 * a:.2f}%" for a in history.accuracy_list)
    final = f"{100 * history.accuracy_list[-1]:.2f}%" if history.accuracy_list else "n/a"
    times = history.epoch_times
    mean = sum(times) / len(times) if times else float("nan")
    lines = [
        f"resfx train: mode {history.mode!r} on {data}, {history.device}, {processes}",
        f"  final test accuracy: {final} (per epoch: {per_epoch})",
        f"  time per epoch: {mean:.3f} s (mean of {len(times)}); setup "
        f"{history.setup_seconds:.3f} s, of it cached features {history.feature_seconds:.3f} s",
        f"  parameters: {history.trainable_parameters:,} trainable, "
        f"{history.frozen_parameters:,} frozen",
    ]
    if written:
        lines.append(f"  wrote: {', '.join(written)}")
    return "\n".join(lines)


def _run_train(namespace: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    values = {field.name: getattr(namespace, field.name) for field in fields(TrainingArgs)}
    try:
        args = TrainingArgs(**values)
    except ValueError as error:
        parser.error(str(error))
    try:
        result = train(args)
    except _RUN_ERRORS as error:
        print(f"resfx train: error: {error}", file=sys.stderr)
        return 1
    # train() has left the process group by now; torchrun's RANK says who reports.
    if os.environ.get("RANK", "0") == "0":
        written = []
        if args.output_dir is not None:
            written = [
                f"{args.output_dir}/{name}" for name in (HISTORY_NAME, PLOT_NAME, CHECKPOINT_NAME)
            ]
        print(format_summary(result.history, written))
    return 0


def _register_train(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "train",
        help="train a new head on a frozen ResNet34 (the seed's job), or fine-tune it",
        description=(
            "Train on CIFAR-10 (or --data synthetic, offline) as the seed did: ResNet34 with "
            "ImageNet weights, frozen, a new 10-class head. Writes history.json, training.png "
            "and checkpoint.pt into --output-dir and prints a summary. Runs under "
            "`torchrun --nproc-per-node N` too."
        ),
    )
    add_dataclass_flags(parser, TrainingArgs, _CLI_DEFAULTS)
    parser.set_defaults(handler=lambda namespace: _run_train(namespace, parser))


SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (_register_train,)
"""One registration function per subcommand, in `--help` order."""


def build_parser() -> argparse.ArgumentParser:
    """The `resfx` parser with every subcommand of `SUBCOMMANDS`.

    Example:
        >>> build_parser().parse_args(["train", "--epochs", "2"]).epochs
        2
    """
    parser = argparse.ArgumentParser(
        prog="resfx", description="Feature extraction on ResNets, measured."
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `resfx` command line.

    Args:
        argv: the arguments after the program name; `None` reads `sys.argv`.

    Returns:
        The exit status: 0 on success, 1 when the run failed (the error is
        printed), 2 for invalid arguments.

    Example:
        >>> main(["train", "--data", "synthetic", "--weights", "none", "--trainset-size", "16",
        ...       "--testset-size", "8", "--epochs", "1", "--batch-size", "8", "--image-size",
        ...       "32", "--device", "cpu", "--output-dir", "none"])  # doctest: +ELLIPSIS
        resfx train: mode 'head' on SYNTHETIC data ...
        0
    """
    namespace = build_parser().parse_args(argv)
    return namespace.handler(namespace)
