"""Start-up of the `resfx` command against `python -c "import torch"`, measured side by side.

Each command runs in a fresh interpreter (`python -m resfx ...`, the same interpreter as
`import torch`), in interleaved rounds: every command once per round, in a shuffled order
(`resfx.bench.time_interleaved`). The table gives each command's best and median wall time
over the rounds and its ratio to `import torch`'s best. Issue 21's goal: `resfx --version`
and `resfx --help` at most 0.3x. `resfx train --help` imports torch (its flags' choices and
defaults come from `TrainingArgs` and the types it names), so it costs more than 1x.

Run: `python benchmarks/bench_startup.py [--rounds 5]` (prints the table).
`pytest benchmarks/bench_startup.py` times each command under pytest-benchmark
(`RESFX_BENCH_STARTUP_ROUNDS` rounds, default 5) and adds the ratios to `import torch` to the
interleaved ratios printed at the end; with `--benchmark-disable` it runs each command once,
as a smoke test. It measures, it never asserts a time.
"""

import argparse
import os
import platform
import subprocess
import sys
from collections.abc import Callable

import pytest

from resfx.bench import time_interleaved

GROUP = "start-up: resfx vs import torch"
BASELINE = "import torch"
COMMANDS: dict[str, list[str]] = {
    BASELINE: ["-c", "import torch"],
    "resfx --version": ["-m", "resfx", "--version"],
    "resfx --help": ["-m", "resfx", "--help"],
    "resfx train --help": ["-m", "resfx", "train", "--help"],
}
"""What each entry runs after the interpreter's path."""


def _run(words: list[str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run([sys.executable, *words], check=True, stdout=subprocess.DEVNULL)

    return run


def startup_table(rounds: int) -> str:
    """Each command's best and median seconds over `rounds` interleaved rounds, and its ratio."""
    steps = {name: _run(words) for name, words in COMMANDS.items()}
    for step in steps.values():
        step()  # warm the file cache: the first run of each reads its files from disk
    timings = time_interleaved(steps, rounds=rounds)
    best = {name: min(t.round_medians_ms) / 1000 for name, t in timings.items()}
    lines = [
        f"start-up on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, {rounds} interleaved rounds (wall time)",
        f"{'command':<20} {'best s':>8} {'median s':>9} {'best / import torch':>20}",
    ]
    for name, timing in timings.items():
        lines.append(
            f"{name:<20} {best[name]:8.3f} {timing.median_ms / 1000:9.3f} "
            f"{best[name] / best[BASELINE]:19.2f}x"
        )
    return "\n".join(lines)


@pytest.mark.parametrize("name", COMMANDS)
def test_startup(benchmark, compare_interleaved, name: str) -> None:
    run = _run(COMMANDS[name])
    benchmark.group = GROUP
    rounds = int(os.environ.get("RESFX_BENCH_STARTUP_ROUNDS", 5))
    benchmark.pedantic(run, rounds=rounds, warmup_rounds=1)
    compare_interleaved(GROUP, name, run, baseline=name == BASELINE)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    print(startup_table(parser.parse_args().rounds))
