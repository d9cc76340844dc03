"""A probe's row (one architecture's stage, every seed) and the text table of rows."""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ._knn import KnnProbeResult
from ._protocol import LinearProbeResult, mean_and_std


@dataclass(frozen=True)
class ProbeRow:
    """One architecture's stage: the linear and kNN probes of every seed.

    Args:
        arch: the architecture.
        dataset: the data's name (`"synthetic"`, `"folder:/path"`, ...).
        weights: the weights' name or path, `None` for random weights.
        stage: the stage probed.
        dim: features per row.
        classes: classes of the task (chance is `1 / classes`).
        linear: the linear probe of each seed.
        knn: the kNN probe of each seed.
        extract_seconds: this stage's share of the frozen passes (mean over seeds).

    Example:
        >>> linear = LinearProbeResult(0.8, 0.9, 1e-3, 2.0, (1e-3,), (), True, (0, 5), 0.1)
        >>> knn = KnnProbeResult(0.7, 20, 0.07, 0.01)
        >>> row = ProbeRow("resnet18", "synthetic", None, "stem", 64, 10, (linear,), (knn,), 0.5)
        >>> row.test_accuracy, row.knn_accuracy, round(row.seconds, 2)
        (0.8, 0.7, 0.61)
    """

    arch: str
    dataset: str
    weights: str | None
    stage: str
    dim: int
    classes: int
    linear: tuple[LinearProbeResult, ...]
    knn: tuple[KnnProbeResult, ...]
    extract_seconds: float

    @property
    def test_accuracy(self) -> float:
        """The linear probe's test accuracy, mean over seeds."""
        return mean_and_std([r.test_accuracy for r in self.linear])[0]

    @property
    def test_std(self) -> float:
        """Its standard deviation over seeds (0 for one seed)."""
        return mean_and_std([r.test_accuracy for r in self.linear])[1]

    @property
    def knn_accuracy(self) -> float:
        """The kNN probe's test accuracy, mean over seeds."""
        return mean_and_std([r.test_accuracy for r in self.knn])[0]

    @property
    def knn_std(self) -> float:
        """Its standard deviation over seeds."""
        return mean_and_std([r.test_accuracy for r in self.knn])[1]

    @property
    def train_accuracy(self) -> float:
        """The refit linear head's accuracy on its own rows, mean over seeds."""
        return mean_and_std([r.train_accuracy for r in self.linear])[0]

    @property
    def converged(self) -> bool:
        """Every linear fit of every seed reached the solver's tolerance."""
        return all(r.converged for r in self.linear)

    @property
    def seconds(self) -> float:
        """Seconds per seed: the stage's share of the frozen pass plus both probes, mean."""
        probes = [lin.seconds + knn.seconds for lin, knn in zip(self.linear, self.knn, strict=True)]
        return self.extract_seconds + mean_and_std(probes)[0]

    def to_dict(self) -> dict[str, Any]:
        """Every field, plus the summaries over seeds, for JSON.

        Example:
            >>> linear = LinearProbeResult(0.8, 0.9, 1e-3, 2.0, (1e-3,), (), True, (0, 5), 0.1)
            >>> knn = KnnProbeResult(0.7, 20, 0.07, 0.01)
            >>> row = ProbeRow("resnet18", "synthetic", None, "stem", 64, 10, (linear,), (knn,), 0)
            >>> row.to_dict()["test_accuracy"], row.to_dict()["linear"][0]["strength"]
            (0.8, 0.001)
        """
        summary = {
            name: getattr(self, name)
            for name in (
                "test_accuracy",
                "test_std",
                "knn_accuracy",
                "knn_std",
                "train_accuracy",
                "converged",
                "seconds",
            )
        }
        return {**asdict(self), **summary}


def _percent(mean: float, std: float, seeds: int) -> str:
    return f"{100 * mean:6.2f}" + (f" ± {100 * std:4.2f}" if seeds > 1 else "")


def format_probe_table(rows: Sequence[ProbeRow]) -> str:
    """The probe results as a text table: one line per architecture and stage.

    Columns: the linear probe's test accuracy (mean ± std over seeds), the kNN probe's,
    the refit head's train accuracy, the L2 strength chosen (each seed's, or the one
    given), and seconds per seed. A `*` after the strength marks a fit that did not
    converge within `max_iter`.

    Example:
        >>> linear = LinearProbeResult(0.8, 0.9, 1e-3, 2.0, (1e-3,), (), True, (0, 5), 0.1)
        >>> knn = KnnProbeResult(0.7, 20, 0.07, 0.01)
        >>> row = ProbeRow("resnet18", "synthetic", None, "stem", 64, 10, (linear,), (knn,), 0.5)
        >>> print(format_probe_table([row]))
        arch      stage   dim  linear %  kNN %  train %  L2 chosen   s/seed
        resnet18  stem     64     80.00   70.00    90.00  1e-03         0.6
    """
    seeds = max([len(r.linear) for r in rows], default=1)
    width = max([len("arch"), *(len(r.arch) for r in rows)])
    cell = 14 if seeds > 1 else 8
    chosen_of = {
        id(row): ",".join(dict.fromkeys(f"{r.strength:.0e}" for r in row.linear))
        + ("" if row.converged else "*")
        for row in rows
    }
    chosen_width = max([10, *(len(c) for c in chosen_of.values())])
    lines = [
        f"{'arch':<{width}}  stage   dim  {'linear %':>{cell}}  {'kNN %':>{cell - 3}}  "
        f"train %  {'L2 chosen':<{chosen_width}}  s/seed"
    ]
    for row in rows:
        chosen = chosen_of[id(row)]
        lines.append(
            f"{row.arch:<{width}}  {row.stage:<6} {row.dim:>4}  "
            f"{_percent(row.test_accuracy, row.test_std, seeds):>{cell}}  "
            f"{_percent(row.knn_accuracy, row.knn_std, seeds):>{cell - 3}}  "
            f"{100 * row.train_accuracy:7.2f}  {chosen:<{chosen_width}} {row.seconds:7.1f}"
        )
    return "\n".join(lines)
