"""The `resfx` command line (also `python -m resfx`).

Each subcommand has its name and one-line help in `resfx._commands.COMMANDS`
(read by `resfx --help` without importing torch) and one `_register_<name>`
function here, listed in `SUBCOMMANDS`, that adds its flags and sets `handler`.
A command line builds only the parser of the subcommand it names.

Example:
    >>> from resfx.cli import build_parser
    >>> build_parser().parse_args(["train", "--mode", "cached"]).mode
    'cached'
"""

import argparse
import contextlib
import dataclasses
import errno
import io
import logging
import os
import shlex
import signal
import sys
import threading
import traceback
import types
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from ._commands import DEBUG_HELP, DEBUG_VARIABLE, chosen_command, command_parser
from ._frozen_step import CompileMode
from ._log import LOG_FORMATS, logging_to
from .data import DatasetUnavailableError
from .train import (
    CHECKPOINT_NAME,
    HISTORY_NAME,
    PLOT_NAME,
    DistributedContext,
    NonFiniteLossError,
    OutputDirectoryError,
    Precision,
    TrainHistory,
    TrainingArgs,
    checkpoint_progress,
    format_setup_phases,
    load_checkpoint,
    prepare_output_dir,
    resolve_device,
    train,
)
from .weights import ChecksumError, WeightsUnavailableError

__all__ = [
    "SUBCOMMANDS",
    "add_dataclass_flags",
    "build_parser",
    "format_summary",
    "main",
    "ordinary_error_message",
    "resume_command",
]

_CLI_DEFAULTS: dict[str, Any] = {"output_dir": "runs/train"}
"""Where the command line differs from `TrainingArgs`: it always writes its results somewhere."""

_TRAIN_RENAMED = {"n_classes": "num_classes"}
"""`resfx train` flags named as the rest of resfx names them (`--n-classes` still works, warning)."""

_LOG = logging.getLogger("resfx.cli")

_ORDINARY_ERRORS = (
    ValueError,  # every validation error, CheckpointError, CheckpointMismatchError, bad images
    OSError,  # files, folders, a full disk; OutputDirectoryError
    NonFiniteLossError,
    DatasetUnavailableError,
    WeightsUnavailableError,
    ChecksumError,
)
"""What a user's mistake or bad luck raises; anything else is a bug and keeps its traceback."""

_TORCH_MESSAGES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("can't allocate memory", "out of memory", "OutOfMemoryError"),
        "out of memory ({}); lower --batch-size or --image-size",
    ),
    (
        ("unexpected pos", "PytorchStreamWriter failed"),
        "a file could not be written, most likely no space left on the device ({}); free some "
        "space or write elsewhere",
    ),
    (
        ("invalid device ordinal",),
        "no such GPU ({}); pick one of the GPUs torch.cuda.device_count() reports",
    ),
    (
        ("no CUDA GPUs are available", "Found no NVIDIA driver"),
        "CUDA is not usable on this machine ({}); use --device cpu",
    ),
    (
        ("cannot be converted to type float without overflow",),
        "a setting overflowed float32 in the optimizer ({}); lower --learning-rate or "
        "--weight-decay",
    ),
)
"""torch's RuntimeErrors with an ordinary cause: substrings of its message, and what to say."""

_RESFX_ROOT = Path(__file__).resolve().parent


def ordinary_error_message(error: BaseException) -> str | None:
    """The one-line message for an ordinary failure, or `None` for a bug (keep its traceback).

    Ordinary: validation and file errors (`ValueError`, `OSError`, resfx's own
    error classes), a `TypeError` raised by resfx's own argument checks, memory
    exhaustion, and the RuntimeErrors torch raises for a full disk, a missing GPU
    or an allocation too large. Anything else (an `AssertionError`, an unknown
    RuntimeError) is unexpected, and its traceback is what a bug report needs.

    Args:
        error: the exception.

    Returns:
        The message on one line, or `None`.

    Example:
        >>> ordinary_error_message(ValueError("epochs must be at least 1,   got 0"))
        'epochs must be at least 1, got 0'
        >>> ordinary_error_message(OSError(errno.ENOSPC, "No space left on device", "/d/c.pt"))
        'No space left on device: /d/c.pt'
        >>> ordinary_error_message(AssertionError("bug")) is None
        True
    """
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror + (f": {error.filename}" if error.filename else "")
        if error.errno == errno.ENOSPC and "space" not in text.lower():
            text = f"no space left on the device: {text}"
    elif isinstance(error, (*_ORDINARY_ERRORS, MemoryError)) or (
        isinstance(error, TypeError) and _raised_by_resfx(error)
    ):
        text = str(error) or type(error).__name__
        if isinstance(error, MemoryError):
            text = f"out of memory ({text}); lower --batch-size or --image-size"
    elif isinstance(error, RuntimeError):
        found = next(
            (said for needles, said in _TORCH_MESSAGES if any(n in str(error) for n in needles)),
            None,
        )
        if found is None:
            return None
        text = found.format(" ".join(str(error).split())[:300])
    else:
        return None
    return " ".join(text.split())


def _raised_by_resfx(error: BaseException) -> bool:
    """Whether the innermost frame of the traceback is resfx's own code (an argument check)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(_RESFX_ROOT)


def _optional_text(value: str) -> str | None:
    """`none` (any case) means `None`, for flags whose field may be `None`."""
    return None if value.lower() == "none" else value


def _optional(base: type) -> Callable[[str], Any]:
    """A flag converter where `none` (any case) means `None` and anything else is `base`."""

    def convert(value: str) -> Any:
        text = _optional_text(value)
        return None if text is None else base(text)

    convert.__name__ = base.__name__  # argparse names the type in its error messages
    return convert


class _StoreWithDeprecatedAliases(argparse.Action):
    """`store`, where every option string after the first is a deprecated spelling that warns
    (one line on stderr)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if option_string is not None and option_string in self.option_strings[1:]:
            print(
                f"{parser.prog}: warning: {option_string} is deprecated and will be removed; "
                f"use {self.option_strings[0]}",
                file=sys.stderr,
            )
        setattr(namespace, self.dest, self.value(parser, namespace, values))

    def value(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any
    ) -> Any:
        """What to store for the flag's `values`: the values themselves."""
        return values


def _flag(name: str, renamed: Mapping[str, str]) -> str:
    """The `--flag` of the field `name`: its own name with dashes, unless `renamed` says another."""
    return "--" + renamed.get(name, name).replace("_", "-")


def add_dataclass_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    defaults: dict[str, Any] | None = None,
    *,
    renamed: Mapping[str, str] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
    skip: Collection[str] = (),
) -> None:
    """Add one `--flag` per field of the dataclass `cls`, typed and documented from the field.

    `Literal` fields get `choices`; `bool` fields get `--x/--no-x`; `X | None`
    fields take `none` for `None`; help comes from the field's `metadata["help"]`.

    Args:
        parser: the parser to extend.
        cls: the dataclass, e.g. `TrainingArgs`.
        defaults: defaults that differ from the dataclass's.
        renamed: a flag name for a field whose flag is not its own name
            (`{"n_classes": "num_classes"}`); the field's own spelling stays as a
            deprecated alias that warns on stderr.
        choices: the allowed values of `str` fields whose type does not list them
            (architecture names); `none` too where the field may be `None`.
        skip: fields the caller adds a flag for itself.

    Raises:
        TypeError: a field's type has no flag form, or a `bool` field is renamed.

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser()
        >>> add_dataclass_flags(parser, TrainingArgs, renamed={"n_classes": "num_classes"})
        >>> parser.parse_args(["--mode", "cached", "--weights", "none"]).weights is None
        True
        >>> parser.parse_args(["--num-classes", "5"]).n_classes
        5
    """
    defaults = defaults or {}
    for field in fields(cls):
        if field.name in skip:
            continue
        default = defaults.get(field.name, field.default)
        if default is MISSING:
            raise TypeError(f"field {field.name} has no default; give one in `defaults`")
        alias = (renamed or {}).get(field.name)
        _add_field_flag(parser, field, default, alias, (choices or {}).get(field.name))


def _add_field_flag(
    parser: argparse.ArgumentParser,
    field: dataclasses.Field[Any],
    default: Any,
    renamed: str | None,
    allowed: Sequence[Any] | None,
) -> None:
    """The flag of one field for `add_dataclass_flags`, named `renamed` when that is given."""
    flags = [_flag(field.name, {} if renamed is None else {field.name: renamed})]
    help_text = field.metadata.get("help", "")
    if "default" not in help_text:
        help_text = f"{help_text} (default: {default})"
    kind = field.type
    options = get_args(kind)
    optional = get_origin(kind) in (Union, types.UnionType) and type(None) in options
    base = next((o for o in options if o is not type(None)), kind) if optional else kind
    common: dict[str, Any] = {
        "dest": field.name,
        "default": default,
        "help": help_text,
        "action": _StoreWithDeprecatedAliases,
    }
    if renamed is not None:
        flags.append(_flag(field.name, {}))
        common["help"] += f"; {flags[1]} is a deprecated spelling"
        common["metavar"] = renamed.upper()
    if base is bool:
        if renamed is not None:
            raise TypeError(f"field {field.name} is a bool: its --no- flag cannot be renamed")
        parser.add_argument(*flags, **common | {"action": argparse.BooleanOptionalAction})
    elif get_origin(base) is Literal:
        parser.add_argument(*flags, choices=get_args(base), **common | {"metavar": None})
    elif base in (int, float, str):
        converter: Callable[[str], Any] = _optional(base) if optional else base
        if allowed is not None and optional:  # `none` converts to None, checked as a choice
            common["metavar"] = "{" + ",".join([*allowed, "none"]) + "}"
            allowed = [*allowed, None]
        parser.add_argument(*flags, type=converter, choices=allowed, **common)
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
        ...                  frozen_parameters=21284672, setup_seconds=0.5,
        ...                  setup_phases={"data": 0.125, "model": 0.375})
        >>> print(format_summary(h, []))  # doctest: +ELLIPSIS
        resfx train: mode 'cached' on SYNTHETIC data (generated stand-in, not CIFAR-10), cpu, 1 process
          final test accuracy: 75.00% (per epoch: 50.00%, 75.00%)
          time per epoch: 0.375 s (mean of 2); setup 0.500 s, of it cached features 0.000 s
          setup phases: data 0.125 s, model 0.375 s
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
    ]
    if history.setup_phases:
        lines.append(f"  setup phases: {format_setup_phases(history.setup_phases)}")
    lines.append(
        f"  parameters: {history.trainable_parameters:,} trainable, "
        f"{history.frozen_parameters:,} frozen"
    )
    if written:
        lines.append(f"  wrote: {', '.join(written)}")
    return "\n".join(lines)


def _run_train(namespace: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    values = {field.name: getattr(namespace, field.name) for field in fields(TrainingArgs)}
    try:
        args = TrainingArgs(**values)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    # train() has left the process group by the end; torchrun's RANK says who reports.
    reports = os.environ.get("RANK", "0") == "0"
    with _terminate_as_interrupt():
        try:
            result = train(args)
        except KeyboardInterrupt as interrupt:
            hint = _resume_hint(args) if reports else None
            if hint is None:
                raise
            raise KeyboardInterrupt(hint) from interrupt
    if reports:
        written = []
        if args.output_dir is not None:
            folder = Path(args.output_dir).resolve()
            written = [str(folder / name) for name in (HISTORY_NAME, PLOT_NAME, CHECKPOINT_NAME)]
        print(format_summary(result.history, written))
    return 0


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's stop, `kill`) interrupts the run as Ctrl-C does, so it says how
    to resume; the checkpoints are written atomically, so either way none is left half done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _resume_hint(args: TrainingArgs) -> str | None:
    """How to continue an interrupted run from its checkpoint; `None` when it left none."""
    if args.output_dir is None:
        return None
    path = Path(args.output_dir).resolve() / CHECKPOINT_NAME
    try:
        checkpoint = load_checkpoint(path)
    except (OSError, ValueError):
        return None
    return (
        f"{path} holds the run at {checkpoint_progress(checkpoint)}; continue it with: "
        f"{resume_command(args)}"
    )


def resume_command(args: TrainingArgs) -> str:
    """The command line that resumes the run of `args` (under torchrun when this is one).

    Every setting that differs from the command line's default is spelled out, with
    `--resume` instead of `--overwrite`.

    Args:
        args: the interrupted run's settings.

    Returns:
        The command, quoted for a POSIX shell.

    Example:
        >>> resume_command(TrainingArgs(epochs=3, weights=None, output_dir="runs/a b"))
        "resfx train --epochs 3 --weights none --output-dir 'runs/a b' --resume"
    """
    resumed = dataclasses.replace(args, resume=True, overwrite=False)
    words = []
    for field in fields(TrainingArgs):
        value = getattr(resumed, field.name)
        if value == _CLI_DEFAULTS.get(field.name, field.default):
            continue
        flag = _flag(field.name, _TRAIN_RENAMED)
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words += [flag, "none" if value is None else str(value)]
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = ["torchrun", f"--nproc-per-node={processes}", "-m"] if processes > 1 else []
    return shlex.join([*launcher, "resfx", "train", *words])


def _register_train(parser: argparse.ArgumentParser) -> None:
    from .models import STAGES, list_models

    parser.description = (
        "Train on CIFAR-10 (or --data synthetic, offline) as the seed did: ResNet34 with "
        "ImageNet weights, frozen, a new 10-class head. Writes history.json, training.png "
        "and checkpoint.pt into --output-dir and prints a summary. Runs under "
        "`torchrun --nproc-per-node N` too."
    )
    add_dataclass_flags(
        parser,
        TrainingArgs,
        _CLI_DEFAULTS,
        renamed=_TRAIN_RENAMED,
        choices={"arch": list_models(), "freeze_to": STAGES[:-1]},
    )
    _add_log_format(parser)
    parser.set_defaults(handler=lambda namespace: _run_train(namespace, parser))


def _add_log_format(parser: argparse.ArgumentParser) -> None:
    """`--log-format`: how the command's progress lines (per epoch, stage, shard) are written."""
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="progress lines on stderr, one per epoch, probe stage or shard, written as they "
        "happen: text, or json (one object per line: time, level, logger, message and its "
        "numbers) (default text)",
    )


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least `minimum` (argparse then names the flag)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "int"  # argparse says "invalid int value" for text that is no integer
    return parse


_JOB_DEFAULTS: dict[str, tuple[int, int]] = {
    "trainset_size": (10_000, 512),
    "testset_size": (1_000, 256),
    "epochs": (5, 1),
}
"""`resfx bench`'s seed job, per setting: its default, and its default with `--quick`."""


def _default_if_none(value: Any, default: Any) -> Any:
    """`value` unless the flag was not given (`None`); 0 is a value, not a missing one."""
    return default if value is None else value


def _bench_settings(namespace: argparse.Namespace) -> tuple[Any, TrainingArgs | None]:
    """The step benchmarks' `BenchConfig` and the seed job's `TrainingArgs` (or `None`)."""
    import torch

    from .bench import COMPILED_MODES, STEP_MODES, BenchConfig

    quick = namespace.quick
    device = str(resolve_device(namespace.device, DistributedContext(0, 1, 0)))
    on_gpu = torch.device(device).type == "cuda"
    config = BenchConfig(
        device=device,
        batch_size=_default_if_none(namespace.batch_size, 64 if on_gpu else 8),
        image_size=_default_if_none(namespace.image_size, 224 if on_gpu else (32 if quick else 64)),
        precisions=tuple(namespace.precision or (("fp32", "bf16") if on_gpu else ("fp32",))),
        modes=tuple(
            namespace.mode or (STEP_MODES + (COMPILED_MODES if namespace.compile != "off" else ()))
        ),
        compile=namespace.compile,
        sweep=not namespace.no_sweep,
        warmup=_default_if_none(namespace.warmup, 1 if quick else 3),
        # --quick on a busy CPU: a step median per round shrugs off one stalled step
        repeats=_default_if_none(namespace.repeats, 9 if quick else 10),
        steps_per_round=_default_if_none(
            namespace.steps_per_round, 3 if quick and namespace.repeats is None else 1
        ),
    )
    if namespace.weights is not None:  # checked whatever runs: a typo is never accepted
        from .models import resolve_weights

        resolve_weights("resnet34", namespace.weights)
    if namespace.no_job:
        return config, None
    job_args = TrainingArgs(
        data=namespace.job_data,
        weights=namespace.weights,
        **{
            setting: _default_if_none(getattr(namespace, f"job_{setting}"), default[quick])
            for setting, default in _JOB_DEFAULTS.items()
        },
        batch_size=_default_if_none(namespace.batch_size, 64),
        image_size=_default_if_none(namespace.image_size, 64 if quick else 224),
        device=device,
        num_workers=namespace.num_workers,
    )
    return config, job_args


def _refuse_earlier_results(out: Path, overwrite: bool) -> None:
    """Stop before measuring if `out` holds an earlier run's results and `overwrite` is off."""
    from .bench import BENCH_OUTPUTS

    earlier = [name for name in BENCH_OUTPUTS if (out / name).exists()]
    if earlier and not overwrite:
        raise OutputDirectoryError(
            f"--out {str(out)!r} already holds earlier results ({', '.join(earlier)}); pass "
            f"--overwrite to replace them, or another --out"
        )


def _run_bench(namespace: argparse.Namespace) -> int:
    from .bench import (
        BENCH_OUTPUTS,
        format_job_table,
        format_step_table,
        machine_info,
        plot_steps,
        run_job_benchmarks,
        run_step_benchmarks,
        step_report,
        write_json,
    )

    try:
        config, job_args = _bench_settings(namespace)
    except (ValueError, TypeError, RuntimeError) as error:  # torch.device: RuntimeError
        print(f"resfx bench: error: {error}", file=sys.stderr)
        return 2
    out = prepare_output_dir(namespace.out)  # before any measuring: fail early
    _refuse_earlier_results(out, namespace.overwrite)
    progress = not namespace.no_progress
    info = machine_info(config.device)
    size = config.image_size
    print(
        f"resfx bench on {info['device_name']} ({config.device}), torch {info['torch']}, "
        f"{info['cpu_count']} CPUs; ResNet34, batch {config.batch_size}, {size}x{size}, "
        f"{config.repeats} timed steps per mode in {config.rounds} interleaved rounds, "
        f"after {config.warmup} warm-up"
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
        jobs = run_job_benchmarks(
            job_args, precisions=config.precisions, compile=config.compile, progress=progress
        )
        print()
        print(format_job_table(jobs))
        report["job"] = {"args": job_args.to_dict(), "runs": [dataclasses.asdict(j) for j in jobs]}
    written = [
        write_json(report, out / "bench.json"),
        *(plot_steps(steps, out, info) if steps else []),
    ]
    for stale in set(BENCH_OUTPUTS) - {path.name for path in written}:
        (out / stale).unlink(missing_ok=True)  # --overwrite: no earlier chart beside new figures
    print("wrote: " + ", ".join(str(p) for p in written))
    return 0


def _register_bench(parser: argparse.ArgumentParser) -> None:
    from .bench import COMPILED_MODES, STEP_MODES

    parser.description = (
        "ResNet34 (resfx and torchvision, same weights) per training step: full "
        "fine-tuning, frozen backbone under each BatchNorm policy, frozen and folded, "
        "forward-only and the head step (the limit), and a freeze-depth sweep; then the "
        "seed's job end to end (its loop vs resfx head vs resfx cached). Prints tables, "
        "writes bench.json and PNG charts into --out."
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--batch-size",
        type=_int_at_least(1),
        default=None,
        help="images per step (default 64 on a GPU, 8 on the CPU)",
    )
    parser.add_argument(
        "--image-size",
        type=_int_at_least(1),
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
        "--mode",
        action="append",
        choices=STEP_MODES + COMPILED_MODES,
        help="a step mode to measure; repeat for several (default all of resfx.bench.STEP_MODES, "
        "and COMPILED_MODES with --compile)",
    )
    parser.add_argument(
        "--compile",
        choices=get_args(CompileMode),
        default="off",
        help="also measure the compiled modes (resfx.bench.COMPILED_MODES) under this "
        "torch.compile mode, and the seed job with TrainingArgs.compile set (default off)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and few repeats: a few minutes on 2 CPU cores",
    )
    parser.add_argument(
        "--warmup", type=_int_at_least(0), default=None, help="untimed steps per mode"
    )
    parser.add_argument(
        "--repeats",
        type=_int_at_least(1),
        default=None,
        help="timed steps per mode (default 10, 9 with --quick)",
    )
    parser.add_argument(
        "--steps-per-round",
        type=_int_at_least(1),
        default=None,
        help="timed steps of a mode in a row per interleaved round, dividing --repeats "
        "(default 1; 3 with --quick and no --repeats)",
    )
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
    for setting, (usual, quick) in _JOB_DEFAULTS.items():
        parser.add_argument(
            f"--job-{setting.replace('_', '-')}",
            type=_int_at_least(1),
            default=None,
            help=f"{setting.replace('_', ' ')} of the seed job (default {usual}, {quick} with "
            "--quick)",
        )
    parser.add_argument(
        "--num-workers",
        type=_int_at_least(0),
        default=0,
        help="DataLoader workers of the seed's loop",
    )
    parser.add_argument("--out", default=".", help="folder for bench.json and the charts")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier bench.json and charts in --out (refused without it)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_log_format(parser)
    parser.set_defaults(handler=_run_bench)


def _run_summary(namespace: argparse.Namespace) -> int:
    from ._freeze import freeze_to, parameter_summary
    from .models import create_model

    model = create_model(
        namespace.arch, weights=namespace.weights, num_classes=namespace.num_classes
    )
    if namespace.freeze_to != "nothing":
        freeze_to(model, namespace.freeze_to, bn=namespace.bn)
    print(parameter_summary(model).table())
    return 0


def _register_summary(parser: argparse.ArgumentParser) -> None:
    from ._freeze import BNPolicy
    from .models import STAGES, list_models

    parser.description = "Build a ResNet, optionally freeze it up to a stage, print its parameters."
    parser.add_argument(
        "--arch",
        "--model",
        dest="arch",
        choices=list_models(),
        default="resnet34",
        help="the architecture (default resnet34)",
    )
    parser.add_argument(
        "--weights",
        type=_optional_text,
        default=None,
        help="IMAGENET1K_V1, DEFAULT, resnet34.tv_in1k, a checkpoint path, or none",
    )
    parser.add_argument(
        "--num-classes", type=int, default=None, help="outputs of fc (default: the weights', 1000)"
    )
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


def _run_probe(namespace: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .probe import PROBE_OUTPUTS, ProbeArgs, format_probe_table, probe_title, run_probe

    values = {field.name: getattr(namespace, field.name) for field in fields(ProbeArgs)}
    try:
        args = ProbeArgs(**values)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    rows = run_probe(args)
    print(f"resfx {probe_title(rows)}; L2 grid {', '.join(f'{s:g}' for s in args.settings.grid)}")
    print(format_probe_table(rows))
    if args.output_dir is not None:
        out = Path(args.output_dir).resolve()
        print("wrote: " + ", ".join(str(out / name) for name in PROBE_OUTPUTS))
    return 0


class _ArchitectureList(_StoreWithDeprecatedAliases):
    """probe's `--arch`: repeatable and comma-separated, each name checked against the zoo;
    the first one given replaces the default, and `--archs` is a deprecated spelling."""

    def value(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any
    ) -> Any:
        """The names given so far, comma-separated, after those of `values`' are checked."""
        from .models import list_models

        names = [name.strip() for name in str(values).split(",") if name.strip()]
        unknown = [name for name in names if name not in list_models()]
        if unknown:
            parser.error(
                f"argument {self.option_strings[0]}: unknown architecture "
                f"{', '.join(map(repr, unknown))}; known: {', '.join(list_models())}"
            )
        marker = f"_{self.dest}_given"  # the default is replaced, then added to
        earlier = getattr(namespace, self.dest) if getattr(namespace, marker, False) else ""
        setattr(namespace, marker, True)
        return ",".join([*filter(None, earlier.split(",")), *names])


def _register_probe(parser: argparse.ArgumentParser) -> None:
    from .probe import ProbeArgs

    parser.description = (
        "For each architecture, one frozen pass computes every chosen stage's pooled "
        "features (cached per stage); each stage gets a validation-tuned L2 logistic "
        "regression (the whole grid in one solve, refit at the best strength) and a "
        "weighted kNN probe, over --seeds seeds. Prints a table, writes probe.json and "
        "probe.png into --output-dir (refusing an earlier probe's without --overwrite)."
    )
    default = next(field.default for field in fields(ProbeArgs) if field.name == "archs")
    parser.add_argument(
        "--arch",
        "--archs",
        dest="archs",
        metavar="ARCH",
        action=_ArchitectureList,
        default=default,
        help=f"an architecture; repeat, or separate by commas, for several (default: {default}); "
        "--archs is a deprecated spelling",
    )
    add_dataclass_flags(parser, ProbeArgs, skip=("archs",))
    _add_log_format(parser)
    parser.set_defaults(handler=lambda namespace: _run_probe(namespace, parser))


def _run_extract(namespace: argparse.Namespace) -> int:
    import time

    from .features import extract

    began = time.perf_counter()
    store = extract(
        namespace.data,
        namespace.out,
        arch=namespace.arch,
        weights=namespace.weights,
        stages=[stage.strip() for stage in namespace.stages.split(",") if stage.strip()],
        image_size=namespace.image_size,
        batch_size=namespace.batch_size,
        shard_size=namespace.shard_size,
        workers=namespace.workers,
        precision=namespace.precision,
        device=namespace.device,
        resume=namespace.resume,
        overwrite=namespace.overwrite,
        on_bad_image=namespace.on_bad_image,
        seed=namespace.seed,
    )
    seconds = time.perf_counter() - began
    rows = {split: len(store.labels(split)) for split in store.splits}
    skipped = sum(len(store.manifest["splits"][split]["skipped"]) for split in store.splits)
    counts = ", ".join(f"{split} {count}" for split, count in rows.items())
    print(
        f"resfx extract: wrote {store.root.resolve()}: {counts} rows, stages "
        f"{', '.join(f'{stage} ({width})' for stage, width in store.widths.items())}; "
        f"{sum(rows.values()) / seconds:.1f} images/s"
        + (f"; {skipped} unreadable image(s) skipped (listed in manifest.json)" if skipped else "")
    )
    return 0


def _register_extract(parser: argparse.ArgumentParser) -> None:
    from .data import default_workers
    from .models import FEATURE_STAGES, list_models

    parser.description = (
        "Decode every image once, run the frozen model (eval-mode BatchNorm) and write the "
        "average-pooled features of the chosen stages to --out as .npy shards and a "
        "manifest.json (numpy.load(path, mmap_mode='r') reads them). A killed run continues "
        "with --resume; under torchrun the processes share the shards."
    )
    parser.add_argument(
        "--data", required=True, help="an image folder, 'synthetic' or 'cifar10' (all splits)"
    )
    parser.add_argument("--out", required=True, help="the feature store folder")
    parser.add_argument(
        "--arch",
        "--model",
        dest="arch",
        choices=list_models(),
        default="resnet18",
        help="the architecture (default resnet18)",
    )
    parser.add_argument(
        "--weights",
        type=_optional_text,
        default=None,
        help="DEFAULT, IMAGENET1K_V1, a checkpoint path, or none (random; the default)",
    )
    parser.add_argument(
        "--stages",
        default="pooled",
        help=f"comma-separated, from {','.join(FEATURE_STAGES)} (default pooled)",
    )
    for flag, default, what in (
        ("--image-size", 224, "side of the resized square images"),
        ("--batch-size", 64, "images per forward pass"),
        ("--shard-size", 4096, "rows per .npy file"),
    ):
        parser.add_argument(
            flag, type=_int_at_least(1), default=default, help=f"{what} (default {default})"
        )
    parser.add_argument(
        "--workers",
        type=_int_at_least(0),
        default=default_workers(),
        help=f"processes decoding images (default {default_workers()}: the usable cores)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        choices=get_args(Precision),
        default="fp32",
        help="fp32, or bf16 autocast for the forward pass (default fp32)",
    )
    parser.add_argument("--resume", action="store_true", help="finish a half-written store")
    parser.add_argument("--overwrite", action="store_true", help="replace a store in --out")
    parser.add_argument(
        "--on-bad-image",
        choices=("error", "skip"),
        default="error",
        help="stop at unreadable images (default), or skip them and list them in the manifest",
    )
    parser.add_argument(
        "--seed",
        type=_int_at_least(0),
        default=0,
        help="seeds random weights (--weights none) as resfx train --seed does (default 0)",
    )
    _add_log_format(parser)
    parser.set_defaults(handler=_run_extract)


SUBCOMMANDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "train": _register_train,
    "bench": _register_bench,
    "summary": _register_summary,
    "probe": _register_probe,
    "extract": _register_extract,
}
"""Per subcommand of `resfx._commands.COMMANDS`, the function adding its flags and `handler`."""


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The `resfx` parser, with the flags of the subcommands `commands` (all by default).

    The other subcommands are listed, with their help line, but have no flags:
    a command line needs only its own subcommand's, and adding them imports
    that subcommand's modules.

    Args:
        commands: names of `SUBCOMMANDS` to add the flags of; `None` adds every one.

    Returns:
        The parser.

    Example:
        >>> build_parser().parse_args(["train", "--epochs", "2"]).epochs
        2
        >>> build_parser(["summary"]).parse_args(["summary", "--arch", "resnet18"]).arch
        'resnet18'
    """
    parser, subcommands = command_parser()
    for name, subcommand in subcommands.items():
        if commands is None or name in commands:
            SUBCOMMANDS[name](subcommand)
        # SUPPRESS: `resfx --debug train` keeps the top-level flag's value.
        subcommand.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP
        )
    return parser


@contextlib.contextmanager
def _printable_output() -> Iterator[None]:
    """stdout and stderr escape what their encoding cannot show (`LANG=C`, a non-ASCII
    folder name) instead of raising: a run must not fail on its own report."""
    streams = [s for s in (sys.stdout, sys.stderr) if isinstance(s, io.TextIOWrapper)]
    before = [stream.errors for stream in streams]
    for stream in streams:
        stream.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        for stream, errors in zip(streams, before, strict=True):
            stream.reconfigure(errors=errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `resfx` command line.

    Args:
        argv: the arguments after the program name; `None` reads `sys.argv`.

    Every ordinary error (see `ordinary_error_message`) is printed on one line
    as `resfx <command>: error: ...`; `--debug` or `RESFX_DEBUG=1` re-raises
    it with its traceback instead. Warnings print as `resfx <command>: warning: ...`.
    These lines, and the progress lines of `train`, `probe` and `extract`, go through
    the `"resfx"` logger to stderr, each flushed as it comes; `--log-format json`
    writes each as one JSON object instead.
    What the output's encoding cannot show (a non-ASCII path under `LANG=C`) is
    printed with backslash escapes, so a run never fails on its own report.

    Returns:
        The exit status: 0 on success, 1 when the run failed (the error is
            printed), 2 for invalid arguments, 130 when interrupted (Ctrl-C).

    Example:
        >>> main(["train", "--data", "synthetic", "--weights", "none", "--trainset-size", "16",
        ...       "--testset-size", "8", "--epochs", "1", "--batch-size", "8", "--image-size",
        ...       "32", "--device", "cpu", "--output-dir", "none"])  # doctest: +ELLIPSIS
        resfx train: mode 'head' on SYNTHETIC data ...
        0
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    chosen = chosen_command(arguments)
    namespace = build_parser([] if chosen is None else [chosen]).parse_args(arguments)
    command = f"resfx {namespace.command}"
    debug = namespace.debug or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    log_format = vars(namespace).get("log_format", "text")  # commands without the flag: text
    with warnings.catch_warnings(), _printable_output(), logging_to(log_format, prefix=command):
        warnings.showwarning = lambda message, *_, **__: _LOG.warning("%s", message)
        try:
            return namespace.handler(namespace)
        except KeyboardInterrupt as interrupt:
            if debug:
                raise
            detail = f"; {interrupt}" if str(interrupt) else ""
            _LOG.info("interrupted%s", detail)
            return 130
        except Exception as error:
            message = ordinary_error_message(error)
            if message is None or debug:
                raise
            _LOG.error("%s", message)
            return 1
