"""Measuring what freezing saves: the core shared by `resfx bench` and `benchmarks/`.

`time_step` times one operation and `time_interleaved` several in interleaved
rounds; `peak_memory` reads an operation's peak (GPU allocator or CPU tensor
bytes); `prepare_step` builds each training-step mode (`STEP_MODES`, plus
`"freeze_to:<stage>"`); `run_step_benchmarks` measures them interleaved and
`step_ratios` states the goals' ratios with their spread over rounds (`Ratio`);
`run_job_benchmarks` times the seed's job end to end; the report helpers print,
save and chart the results.

Example:
    >>> from resfx.bench import time_step
    >>> time_step(lambda: None, warmup=0, repeats=3).device
    'cpu'
"""

from .._precision import autocast as autocast
from ._job import JOB_RUNS as JOB_RUNS
from ._job import JobResult as JobResult
from ._job import format_job_table as format_job_table
from ._job import run_job_benchmarks as run_job_benchmarks
from ._measure import Ratio as Ratio
from ._measure import Timing as Timing
from ._measure import machine_info as machine_info
from ._measure import peak_memory as peak_memory
from ._measure import synchronize as synchronize
from ._measure import synchronized as synchronized
from ._measure import time_interleaved as time_interleaved
from ._measure import time_step as time_step
from ._report import BENCH_OUTPUTS as BENCH_OUTPUTS
from ._report import format_step_table as format_step_table
from ._report import plot_steps as plot_steps
from ._report import step_report as step_report
from ._report import write_json as write_json
from ._seed import seed_train as seed_train
from ._suite import COMPILED_MODES as COMPILED_MODES
from ._suite import IMPLEMENTATIONS as IMPLEMENTATIONS
from ._suite import STEP_MODES as STEP_MODES
from ._suite import BenchConfig as BenchConfig
from ._suite import PreparedStep as PreparedStep
from ._suite import StepResult as StepResult
from ._suite import graph_cost as graph_cost
from ._suite import prepare_step as prepare_step
from ._suite import results_as_dicts as results_as_dicts
from ._suite import run_step_benchmarks as run_step_benchmarks
from ._suite import step_ratios as step_ratios

__all__ = [
    "BENCH_OUTPUTS",
    "COMPILED_MODES",
    "IMPLEMENTATIONS",
    "JOB_RUNS",
    "STEP_MODES",
    "BenchConfig",
    "JobResult",
    "PreparedStep",
    "Ratio",
    "StepResult",
    "Timing",
    "autocast",
    "format_job_table",
    "format_step_table",
    "graph_cost",
    "machine_info",
    "peak_memory",
    "plot_steps",
    "prepare_step",
    "results_as_dicts",
    "run_job_benchmarks",
    "run_step_benchmarks",
    "seed_train",
    "step_ratios",
    "step_report",
    "synchronize",
    "synchronized",
    "time_interleaved",
    "time_step",
    "write_json",
]
