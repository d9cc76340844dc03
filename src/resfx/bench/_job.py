"""The end-to-end seed job measured three ways: the seed's loop, resfx `"head"`, resfx `"cached"`."""

import dataclasses
import time
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from .._names import data_name
from ..train import TrainingArgs, format_setup_phases, train
from ._seed import seed_train

JOB_RUNS: tuple[str, ...] = ("seed", "head", "cached")
"""The seed's reference loop, then resfx's two frozen-backbone modes."""

_SHOWN_PHASES = 4  # the job table names each run's longest set-up phases


@dataclass
class JobResult:
    """One end-to-end run of the job.

    Args:
        run: `"seed"`, `"head"` or `"cached"`.
        precision: the precision resfx ran in (`"fp32"` for the seed's loop).
        seconds: wall time of the whole call: data, model, features, every epoch.
        epoch_seconds: wall seconds of each epoch.
        setup_seconds: seconds before the first epoch.
        final_accuracy: test accuracy after the last epoch.
        dataset: `"cifar10"` or `"synthetic"`.
        setup_phases: `setup_seconds` phase by phase (`TrainHistory.setup_phases`;
            empty for the seed's loop, which times its set-up as one).
        compile: the run's `TrainingArgs.compile` (`"off"`: eager).

    Example:
        >>> JobResult("seed", "fp32", 9.0, [1.0], 1.0, 0.5, "synthetic").run
        'seed'
    """

    run: str
    precision: str
    seconds: float
    epoch_seconds: list[float]
    setup_seconds: float
    final_accuracy: float
    dataset: str
    setup_phases: dict[str, float] = field(default_factory=dict)
    compile: str = "off"


def run_job_benchmarks(
    args: TrainingArgs,
    *,
    precisions: tuple[str, ...] = ("fp32",),
    compile: str = "off",
    progress: bool = True,
) -> list[JobResult]:
    """Run the seed's job end to end: its own loop, then resfx `"head"` and `"cached"` per precision.

    All runs share `args` (data, sizes, epochs, batch size, weights, device,
    seed); only the mode, precision and compile mode change, and nothing is
    written to disk. A compiled run's time includes its compilation (the set-up
    phase `"compile"`), as a user pays it.

    Args:
        args: the job; `mode`, `precision`, `compile` and `output_dir` are set per run.
        precisions: resfx's precisions to run (`"bf16"` on a GPU).
        compile: also run `"head"` and `"cached"` with this `TrainingArgs.compile`
            (`"off"`: eager runs only).
        progress: show a progress bar over the runs.

    Returns:
        One result per run: the seed's first, then per precision `head` and `cached`,
        then (with `compile`) the two again compiled.

    Example:
        >>> args = TrainingArgs(data="synthetic", weights=None, trainset_size=16, testset_size=8,
        ...                     epochs=1, batch_size=8, image_size=32, device="cpu")
        >>> [r.run for r in run_job_benchmarks(args, progress=False)]
        ['seed', 'head', 'cached']
    """
    compiles = ("off",) if compile == "off" else ("off", compile)
    plan = [("seed", "fp32", "off")] + [
        (run, p, c) for p in precisions for c in compiles for run in JOB_RUNS[1:]
    ]
    results = []
    for run, precision, mode in tqdm(plan, desc="seed job", disable=not progress, unit="run"):
        settings = dataclasses.replace(
            args,
            mode="head" if run == "seed" else run,
            precision=precision,
            compile=mode,
            output_dir=None,
            progress=False,
        )
        began = time.perf_counter()
        result = seed_train(settings) if run == "seed" else train(settings)
        seconds = time.perf_counter() - began
        history = result.history
        results.append(
            JobResult(
                run=run,
                precision=precision,
                seconds=seconds,
                epoch_seconds=list(history.epoch_times),
                setup_seconds=history.setup_seconds,
                final_accuracy=history.accuracy_list[-1],
                dataset=history.dataset,
                setup_phases=dict(history.setup_phases),
                compile=mode,
            )
        )
    return results


def format_job_table(results: list[JobResult]) -> str:
    """The job's runs side by side, with the speed-up over the seed's loop.

    Under each run that timed its set-up phases, a line names the longest ones.

    Example:
        >>> rows = [JobResult("seed", "fp32", 10.0, [2.0], 1.0, 0.5, "synthetic"),
        ...         JobResult("cached", "fp32", 0.5, [0.01], 0.4, 0.5, "synthetic",
        ...                   {"data": 0.05, "model": 0.25, "features": 0.1})]
        >>> for line in format_job_table(rows).splitlines()[-2:]:
        ...     print(line)
        cached  fp32        0.50     0.010       0.40     50.0%       20.0x
                setup: model 0.250 s, features 0.100 s, data 0.050 s
    """
    seed = next((r.seconds for r in results if r.run == "seed"), None)
    datasets = sorted({r.dataset for r in results})
    lines = [
        f"seed job on {', '.join(data_name(d) for d in datasets)}",
        f"{'run':<7} {'prec':<6} {'total s':>9} {'epoch s':>9} {'setup s':>10} {'accuracy':>9} "
        f"{'vs seed':>11}",
    ]
    for r in results:
        epoch = sum(r.epoch_seconds) / max(len(r.epoch_seconds), 1)
        speedup = "-" if seed is None else f"{seed / r.seconds:.1f}x"
        run = r.run if r.compile == "off" else f"{r.run}*"
        lines.append(
            f"{run:<7} {r.precision:<6} {r.seconds:>9.2f} {epoch:>9.3f} {r.setup_seconds:>10.2f} "
            f"{r.final_accuracy:>9.1%} {speedup:>11}"
        )
        if r.setup_phases:
            lines.append(f"{'':<8}setup: {format_setup_phases(r.setup_phases, top=_SHOWN_PHASES)}")
    compiled = sorted({r.compile for r in results if r.compile != "off"})
    if compiled:
        lines.append(f"* compiled: TrainingArgs.compile={', '.join(map(repr, compiled))}")
    return "\n".join(lines)
