"""The linear probe's whole grid, refit and kNN against scikit-learn fitting the same grid.

- resfx: `linear_probe` (standardise, a stratified 20 % validation split, the 8 strengths of
  `DEFAULT_STRENGTHS` in one batched L-BFGS solve, the refit at the best strength on every
  training row) plus `knn_probe` (k = 20, T = 0.07) of `rows // 5` test rows.
- scikit-learn: `LogisticRegression(C=1 / (strength * n), solver="lbfgs")` for each of the same
  8 strengths on the same standardised fitting rows (what a sweep costs it, before any refit).

Both stop at the same tolerance (1e-4 on the largest gradient entry of the mean objective, the
meaning scikit-learn's lbfgs gives `tol`) and the same `max_iter`. The features: 10 classes as
clusters in 32 dimensions, the rest noise, standardised. Timed in interleaved rounds
(`resfx.bench.time_interleaved`); the ratio is resfx / scikit-learn per round (goal <= 0.5).

Run: `python benchmarks/bench_probe.py [--rows 10000] [--dim 512] [--classes 10] [--rounds 2]
[--threads N]`
(prints the table and the ratio). `pytest benchmarks/bench_probe.py` runs the same comparison
at `RESFX_BENCH_PROBE_ROWS` rows of 32 features (default 300) under pytest-benchmark; with
`--benchmark-disable` it runs each side once, as a smoke test.
"""

import argparse
import os
import platform
from collections.abc import Callable

import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from resfx.bench import Ratio, time_interleaved
from resfx.probe import (
    DEFAULT_SETTINGS,
    knn_probe,
    linear_probe,
    standardise,
    stratified_split,
    strength_to_c,
)

GROUP = "probe: grid + refit + kNN vs scikit-learn's grid"


def make_features(rows: int, dim: int, classes: int, seed: int = 0):
    """`rows` training and `rows // 5` test features (class clusters in 32 dimensions, the rest
    noise) with their labels."""
    generator = torch.Generator().manual_seed(seed)
    total = rows + rows // 5
    labels = torch.arange(total) % classes
    centres = torch.randn(classes, 32, generator=generator)
    features = torch.randn(total, dim, generator=generator)
    features[:, :32] += 0.5 * centres[labels]
    return features[:rows], labels[:rows], features[rows:], labels[rows:]


def make_steps(rows: int, dim: int, classes: int) -> dict[str, Callable[[], list[float]]]:
    """The two sides, each returning its test accuracies; inputs built here, outside the timing."""
    x, y, x_test, y_test = make_features(rows, dim, classes)
    fit, _ = stratified_split(y, DEFAULT_SETTINGS.val_fraction, seed=0)
    x_fit = standardise(x, x_test)[0][fit].numpy()
    y_fit = y[fit].numpy()
    x_eval = standardise(x, x_test)[1].numpy()

    def resfx() -> list[float]:
        linear = linear_probe(x, y, x_test, y_test, classes, DEFAULT_SETTINGS)
        knn = knn_probe(x, y, x_test, y_test, classes)
        return [linear.test_accuracy, knn.test_accuracy]

    def scikit_learn() -> list[float]:
        accuracies = []
        for strength in DEFAULT_SETTINGS.grid:
            model = LogisticRegression(
                C=strength_to_c(strength, len(y_fit)),
                tol=DEFAULT_SETTINGS.tol,
                max_iter=DEFAULT_SETTINGS.max_iter,
            )
            model.fit(x_fit, y_fit)
            accuracies.append(float((model.predict(x_eval) == y_test.numpy()).mean()))
        return accuracies

    return {"resfx": resfx, "scikit-learn": scikit_learn}


def test_probe_against_scikit_learn(benchmark, compare_interleaved) -> None:
    rows = int(os.environ.get("RESFX_BENCH_PROBE_ROWS", 300))
    steps = make_steps(rows, 32, 10)
    benchmark.group = GROUP
    accuracies = benchmark.pedantic(steps["resfx"], rounds=3, warmup_rounds=1)
    assert all(0 <= a <= 1 for a in accuracies)
    if benchmark.disabled:  # the smoke test: scikit-learn's side runs once too
        assert len(steps["scikit-learn"]()) == len(DEFAULT_SETTINGS.grid)
    compare_interleaved(GROUP, "scikit-learn", steps["scikit-learn"], baseline=True)
    compare_interleaved(GROUP, "resfx", steps["resfx"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch's and BLAS's threads (default: theirs)"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    steps = make_steps(args.rows, args.dim, args.classes)
    small = make_steps(200, 64, args.classes)
    for step in small.values():
        step()  # first calls (imports, allocator) outside the timing
    print(
        f"{args.rows} x {args.dim} features, {args.classes} classes, "
        f"{len(DEFAULT_SETTINGS.grid)} strengths; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    results: dict[str, list[float]] = {}
    kept = {
        name: (lambda n=name, s=step: results.__setitem__(n, s())) for name, step in steps.items()
    }
    timings = time_interleaved(kept, rounds=args.rounds)
    for name in steps:
        accuracies = ", ".join(f"{100 * a:.1f}" for a in results[name])
        print(
            f"{name:>12}: {timings[name].median_ms / 1000:7.2f} s  test accuracy (%) {accuracies}"
        )
    ratio = Ratio.of_rounds(
        timings["resfx"].round_medians_ms, timings["scikit-learn"].round_medians_ms
    )
    print(f"resfx / scikit-learn = {ratio.text()} (goal <= 0.5)")


if __name__ == "__main__":
    main()
