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
import dataclasses
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
    DistributedContext,
    NonFiniteLossError,
    OutputDirectoryError,
    Precision,
    TrainHistory,
    TrainingArgs,
    prepare_output_dir,
    resolve_device,
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


def _run_bench(namespace: argparse.Namespace) -> int:
    import torch

    from .bench import (
        BenchConfig,
        format_job_table,
        format_step_table,
        machine_info,
        plot_steps,
        run_job_benchmarks,
        run_step_benchmarks,
        step_report,
        write_json,
    )

    quick = namespace.quick
    try:
        device = str(resolve_device(namespace.device, DistributedContext(0, 1, 0)))
        on_gpu = torch.device(device).type == "cuda"
        batch = namespace.batch_size or (64 if on_gpu else 8)
        size = namespace.image_size or (224 if on_gpu else (32 if quick else 64))
        precisions = tuple(namespace.precision or (("fp32", "bf16") if on_gpu else ("fp32",)))
        config = BenchConfig(
            device=device,
            batch_size=batch,
            image_size=size,
            precisions=precisions,
            sweep=not namespace.no_sweep,
            warmup=namespace.warmup if namespace.warmup is not None else (1 if quick else 3),
            repeats=namespace.repeats if namespace.repeats is not None else (3 if quick else 10),
        )
        job_args = None
        if not namespace.no_job:
            job_args = TrainingArgs(
                data=namespace.job_data,
                weights=namespace.weights,
                trainset_size=namespace.job_trainset_size or (512 if quick else 10_000),
                testset_size=namespace.job_testset_size or (256 if quick else 1_000),
                epochs=namespace.job_epochs or (1 if quick else 5),
                batch_size=namespace.batch_size or 64,
                image_size=namespace.image_size or (64 if quick else 224),
                device=device,
                num_workers=namespace.num_workers,
            )
    except (ValueError, RuntimeError) as error:  # torch.device raises RuntimeError on nonsense
        print(f"resfx bench: error: {error}", file=sys.stderr)
        return 2
    try:
        out = prepare_output_dir(namespace.out)  # before any measuring: fail early
    except OutputDirectoryError as error:
        print(f"resfx bench: error: {error}", file=sys.stderr)
        return 1
    progress = not namespace.no_progress
    info = machine_info(device)
    print(
        f"resfx bench on {info['device_name']} ({device}), torch {info['torch']}, "
        f"{info['cpu_count']} CPUs; ResNet34, batch {batch}, {size}x{size}, "
        f"{config.repeats} timed steps after {config.warmup} warm-up"
    )
    steps = [] if namespace.no_steps else run_step_benchmarks(config, progress=progress)
    if steps:
        print(format_step_table(steps))
    report: dict[str, Any] = {
        "machine": info,
        "config": dataclasses.asdict(config),
        **step_report(steps),
    }
    if job_args is not None:
        jobs = run_job_benchmarks(job_args, precisions=config.precisions, progress=progress)
        print()
        print(format_job_table(jobs))
        report["job"] = {"args": job_args.to_dict(), "runs": [dataclasses.asdict(j) for j in jobs]}
    written = [write_json(report, out / "bench.json"), *(plot_steps(steps, out) if steps else [])]
    print("wrote: " + ", ".join(str(p) for p in written))
    return 0


def _register_bench(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "bench",
        help="measure what freezing saves: step time, memory, saved activations, the seed job",
        description=(
            "ResNet34 (resfx and torchvision, same weights) per training step: full "
            "fine-tuning, frozen backbone under each BatchNorm policy, frozen and folded, "
            "forward-only and the head step (the limit), and a freeze-depth sweep; then the "
            "seed's job end to end (its loop vs resfx head vs resfx cached). Prints tables, "
            "writes bench.json and PNG charts into --out."
        ),
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per step (default 64 on a GPU, 8 on the CPU)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="image side (default 224 on a GPU, 64 on the CPU, 32 with --quick)",
    )
    parser.add_argument(
        "--precision",
        action="append",
        choices=get_args(Precision),
        help="repeat for several (default fp32 and bf16 on a GPU, fp32 on the CPU)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and few repeats: under a minute on 2 CPU cores",
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per mode")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per mode")
    parser.add_argument("--no-sweep", action="store_true", help="skip the freeze-depth sweep")
    parser.add_argument("--no-job", action="store_true", help="skip the end-to-end seed job")
    parser.add_argument(
        "--no-steps", action="store_true", help="skip the per-step modes (the job alone)"
    )
    parser.add_argument(
        "--job-data",
        choices=("synthetic", "cifar10"),
        default="synthetic",
        help="data of the seed job (default synthetic: works offline)",
    )
    parser.add_argument(
        "--weights",
        type=_optional_text,
        default=None,
        help="backbone weights of the seed job (default none: random)",
    )
    parser.add_argument("--job-trainset-size", type=int, default=None)
    parser.add_argument("--job-testset-size", type=int, default=None)
    parser.add_argument("--job-epochs", type=int, default=None)
    parser.add_argument(
        "--num-workers", type=int, default=0, help="DataLoader workers of the seed's loop"
    )
    parser.add_argument("--out", default=".", help="folder for bench.json and the charts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_bench)


def _run_summary(namespace: argparse.Namespace) -> int:
    from ._freeze import freeze_to, parameter_summary
    from .models import resnet18, resnet34

    factory = resnet34 if namespace.model == "resnet34" else resnet18
    try:
        model = factory(weights=namespace.weights, num_classes=namespace.num_classes)
    except (ValueError, CheckpointMismatchError, WeightsUnavailableError) as error:
        print(f"resfx summary: error: {error}", file=sys.stderr)
        return 1
    if namespace.freeze_to != "nothing":
        freeze_to(model, namespace.freeze_to, bn=namespace.bn)
    print(parameter_summary(model).table())
    return 0


def _register_summary(subcommands: Any) -> None:
    from ._freeze import BNPolicy
    from .models import STAGES

    parser = subcommands.add_parser(
        "summary",
        help="print a ResNet's parameter table: shapes, counts, trainable or frozen, BN policy",
        description="Build a ResNet, optionally freeze it up to a stage, print its parameters.",
    )
    parser.add_argument("--model", choices=("resnet34", "resnet18"), default="resnet34")
    parser.add_argument(
        "--weights",
        type=_optional_text,
        default=None,
        help="IMAGENET1K_V1, resnet34.tv_in1k, a checkpoint path, or none",
    )
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument(
        "--freeze-to",
        choices=("nothing", *STAGES),
        default="nothing",
        help="freeze from the stem up to and including this stage",
    )
    parser.add_argument(
        "--bn",
        choices=get_args(BNPolicy),
        default="eval",
        help="BatchNorm policy of the frozen stages",
    )
    parser.set_defaults(handler=_run_summary)


SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    _register_train,
    _register_bench,
    _register_summary,
)
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
