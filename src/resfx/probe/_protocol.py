"""The probe protocol on features: standardise, a stratified seeded validation split, an L2 sweep
in one batched solve, the refit at the best strength, and the kNN probe.

Nothing here knows about images or models: `probe_features` takes two `FeatureSource`s, so a
feature store, a cache or tensors in memory all serve.
"""

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..features import FeatureSource
from ._knn import KnnProbeResult, knn_probe
from ._logistic import LogisticFit, fit_logistic, strength_to_c

DEFAULT_STRENGTHS: tuple[float, ...] = tuple(10.0**e for e in range(-6, 2))
"""The L2 grid of the sweep: 1e-6 ... 10, one per decade (8 values)."""


@dataclass(frozen=True)
class ProbeSettings:
    """How a stage is probed: the L2 grid or a fixed strength, the split, the solver, kNN.

    Args:
        strengths: the L2 grid swept on the validation split (see `resfx.probe.fit_logistic`
            for the objective; `C = 1 / (strength * n)` in scikit-learn's terms).
        regularisation: one strength to use without a sweep (no validation split then).
        val_fraction: share of each class of the training rows held out to choose the strength.
        tol: the solver stops a head once its largest gradient entry is at most this.
        max_iter: L-BFGS iterations at most per fit.
        knn_k: neighbours of the kNN probe.
        knn_temperature: `T` of the kNN votes' weights `exp(sim / T)`.

    Raises:
        ValueError: an empty grid, a strength or `T` not positive and finite, `val_fraction`
            outside (0, 1), `tol` not positive and finite, or `max_iter`, `knn_k` below 1.

    Example:
        >>> ProbeSettings(regularisation=1e-3).grid
        (0.001,)
        >>> len(ProbeSettings().grid)
        8
    """

    strengths: tuple[float, ...] = DEFAULT_STRENGTHS
    regularisation: float | None = None
    val_fraction: float = 0.2
    tol: float = 1e-4
    max_iter: int = 1000
    knn_k: int = 20
    knn_temperature: float = 0.07

    def __post_init__(self) -> None:
        chosen = self.grid
        if not chosen or not all(math.isfinite(s) and s > 0 for s in chosen):
            raise ValueError(
                f"L2 strengths must be positive and finite, at least one, got {list(chosen)}"
            )
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not (math.isfinite(self.tol) and self.tol > 0):
            raise ValueError(f"tol must be positive and finite, got {self.tol}")
        for name in ("max_iter", "knn_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.knn_temperature) and self.knn_temperature > 0):
            raise ValueError(
                f"knn_temperature must be positive and finite, got {self.knn_temperature}"
            )

    @property
    def grid(self) -> tuple[float, ...]:
        """The strengths fitted: `(regularisation,)` when fixed, else `strengths`, ascending."""
        if self.regularisation is not None:
            return (self.regularisation,)
        return tuple(sorted(self.strengths))


DEFAULT_SETTINGS = ProbeSettings()
"""The protocol's defaults: 8 strengths, a 20 % validation share, k = 20, T = 0.07."""


@dataclass(frozen=True)
class LinearProbeResult:
    """What `linear_probe` measured.

    Args:
        test_accuracy: the refit head's accuracy on the test rows.
        train_accuracy: its accuracy on the rows it was fitted on (train + validation).
        strength: the L2 strength chosen (or given).
        c: scikit-learn's `C` of the refit, `1 / (strength * rows)`.
        strengths: the grid swept (just `strength` when it was given).
        val_accuracy: validation accuracy per strength of `strengths` (empty when given).
        converged: every fit (sweep and refit) reached the solver's tolerance.
        iterations: L-BFGS iterations of the sweep (its slowest head) and of the refit.
        seconds: wall time of the probe.

    Example:
        >>> r = LinearProbeResult(0.8, 0.9, 1e-3, 2.0, (1e-3,), (), True, (0, 5), 0.1)
        >>> r.test_accuracy, r.strength
        (0.8, 0.001)
    """

    test_accuracy: float
    train_accuracy: float
    strength: float
    c: float
    strengths: tuple[float, ...]
    val_accuracy: tuple[float, ...]
    converged: bool
    iterations: tuple[int, int]
    seconds: float


@dataclass(frozen=True)
class ProbeResult:
    """Both probes of one stage and one seed.

    Example:
        >>> linear = LinearProbeResult(0.8, 0.9, 1e-3, 2.0, (1e-3,), (), True, (0, 5), 0.1)
        >>> ProbeResult(linear, KnnProbeResult(0.7, 20, 0.07, 0.01)).knn.test_accuracy
        0.7
    """

    linear: LinearProbeResult
    knn: KnnProbeResult


def standardise(
    train: Float[Tensor, "n d"], test: Float[Tensor, "m d"]
) -> tuple[Float[Tensor, "n d"], Float[Tensor, "m d"]]:
    """Both sets centred and scaled by the training set's mean and standard deviation, in float64.

    Constant columns stay at zero (their deviation is clamped to 1e-6 before dividing).

    Args:
        train: the rows the statistics come from.
        test: rows scaled the same way.

    Returns:
        `(train, test)` standardised, float64.

    Example:
        >>> a, b = standardise(torch.tensor([[0.0], [2.0]]), torch.tensor([[4.0]]))
        >>> a.flatten().tolist(), b.flatten().tolist()
        ([-0.7071067811865475, 0.7071067811865475], [2.1213203435596424])
    """
    train = train.to(torch.float64)
    mean = train.mean(dim=0, keepdim=True)
    std = train.std(dim=0, keepdim=True).nan_to_num(0.0).clamp_min(1e-6)
    return (train - mean) / std, (test.to(torch.float64) - mean) / std


def stratified_split(
    labels: Int[Tensor, " n"], fraction: float, seed: int
) -> tuple[Int[Tensor, " f"], Int[Tensor, " v"]]:
    """Positions of a seeded, stratified hold-out: `fraction` of each class (rounded) to validation.

    A class of one row stays whole in the fitting part; any larger class keeps at least
    one row on each side.

    Args:
        labels: each row's class.
        fraction: each class's share held out, in (0, 1).
        seed: seeds the draw.

    Returns:
        `(fit, validation)` positions, each ascending.

    Example:
        >>> fit, val = stratified_split(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1]), 0.25, 0)
        >>> len(fit), len(val), sorted(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1])[val].tolist())
        (7, 2, [0, 1])
    """
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    held = []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        count = len(members)
        take = 0 if count < 2 else min(count - 1, max(1, round(fraction * count)))
        held.append(members[torch.randperm(count, generator=generator)[:take]])
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[torch.cat(held)] = True
    return (~mask).nonzero().flatten(), mask.nonzero().flatten()


def _accuracy(predicted: Int[Tensor, "k n"], labels: Int[Tensor, " n"]) -> list[float]:
    return (predicted == labels.to(predicted.device)).to(torch.float64).mean(dim=1).tolist()


def linear_probe(
    train_features: Float[Tensor, "n d"],
    train_labels: Int[Tensor, " n"],
    test_features: Float[Tensor, "m d"],
    test_labels: Int[Tensor, " m"],
    n_classes: int,
    settings: ProbeSettings = DEFAULT_SETTINGS,
    *,
    seed: int = 0,
) -> LinearProbeResult:
    """A validation-tuned, L2-regularised multinomial logistic regression on frozen features.

    The protocol: standardise with the training rows' statistics; hold out a stratified,
    seeded `settings.val_fraction` of them; fit every strength of `settings.strengths` in one
    batched L-BFGS solve on the rest; pick the strength of best validation accuracy (ties:
    the stronger); refit on all training rows at that strength, starting from the sweep's
    head; score on the test rows. With `settings.regularisation` the sweep is skipped.

    Args:
        train_features: `(n, d)` features of the training rows.
        train_labels: their classes.
        test_features: `(m, d)` features of the test rows.
        test_labels: their classes.
        n_classes: classes of the heads.
        settings: the grid, split and solver settings.
        seed: seeds the validation split.

    Returns:
        Test and train accuracy, the chosen strength (and its `C`), validation accuracy
            per strength, whether every fit converged, iterations and seconds.

    Raises:
        ValueError: no validation rows for a sweep (classes of one row each; pass more rows
            or `regularisation`), or labels out of range.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.arange(60) % 3
        >>> x = torch.randn(60, 5, generator=g) + 3 * torch.nn.functional.one_hot(y, 5)
        >>> result = linear_probe(x[:40], y[:40], x[40:], y[40:], 3)
        >>> result.test_accuracy >= 0.9, len(result.val_accuracy), result.converged
        (True, 8, True)
    """
    began = time.perf_counter()
    x_train, x_test = standardise(train_features, test_features)
    grid = torch.tensor(settings.grid, dtype=torch.float64)
    init, val_accuracy, sweep_converged, sweep_iterations = None, [], True, 0
    strength = settings.grid[0]
    if settings.regularisation is None:
        fit, val = stratified_split(train_labels, settings.val_fraction, seed)
        if len(val) == 0:
            raise ValueError(
                f"no validation rows: every class of the {len(train_labels)} training rows has "
                f"a single row; pass more rows, or a fixed regularisation to skip the sweep"
            )
        fit, val = fit.to(x_train.device), val.to(x_train.device)
        sweep = fit_logistic(
            x_train[fit],
            train_labels[fit],
            n_classes,
            grid,
            tol=settings.tol,
            max_iter=settings.max_iter,
        )
        val_accuracy = _accuracy(sweep.predict(x_train[val]), train_labels[val])
        best = max(range(len(grid)), key=lambda j: (val_accuracy[j], j))
        strength = settings.grid[best]
        init = LogisticFit(
            sweep.weights[best : best + 1],
            sweep.bias[best : best + 1],
            sweep.converged[best : best + 1],
            sweep.iterations[best : best + 1],
        )
        sweep_converged = bool(sweep.converged.all())
        sweep_iterations = int(sweep.iterations.max())
    chosen = torch.tensor([strength], dtype=torch.float64)
    refit = fit_logistic(
        x_train,
        train_labels,
        n_classes,
        chosen,
        tol=settings.tol,
        max_iter=settings.max_iter,
        init=init,
    )
    return LinearProbeResult(
        test_accuracy=_accuracy(refit.predict(x_test), test_labels)[0],
        train_accuracy=_accuracy(refit.predict(x_train), train_labels)[0],
        strength=strength,
        c=strength_to_c(strength, len(train_labels)),
        strengths=settings.grid,
        val_accuracy=tuple(val_accuracy),
        converged=sweep_converged and bool(refit.converged.all()),
        iterations=(sweep_iterations, int(refit.iterations.max())),
        seconds=time.perf_counter() - began,
    )


def _all_rows(source: FeatureSource) -> Float[Tensor, "n d"]:
    return source.rows(torch.arange(len(source)))


def probe_features(
    train: FeatureSource,
    test: FeatureSource,
    settings: ProbeSettings = DEFAULT_SETTINGS,
    *,
    n_classes: int | None = None,
    seed: int = 0,
) -> ProbeResult:
    """The linear and kNN probes of one stage, on features read from any `FeatureSource`.

    Both probes need every row at once (the solver is full-batch), so the sources are
    read whole into memory: `n x d` float32 for each.

    Args:
        train: training features and labels (e.g. `TensorFeatures`, or a feature store's
            `source("train", stage)`).
        test: test features and labels.
        settings: the protocol's settings.
        n_classes: classes; `None`: the largest label of either source plus one.
        seed: seeds the validation split.

    Returns:
        The linear and kNN results.

    Raises:
        ValueError: the sources differ in width, a row holds NaN or infinity, or see
            `linear_probe`.

    Example:
        >>> from resfx.features import TensorFeatures
        >>> y = torch.arange(40) % 2
        >>> x = torch.nn.functional.one_hot(y, 4).float() + 0.1 * torch.randn(40, 4)
        >>> result = probe_features(TensorFeatures(x, y), TensorFeatures(x, y))
        >>> result.linear.test_accuracy, result.knn.test_accuracy
        (1.0, 1.0)
    """
    if train.width != test.width:
        raise ValueError(f"train and test features differ in width: {train.width}, {test.width}")
    classes = n_classes or int(max(train.labels.max(), test.labels.max())) + 1
    x_train, x_test = _all_rows(train), _all_rows(test)
    for name, rows in (("training", x_train), ("test", x_test)):
        broken = (~torch.isfinite(rows).all(dim=1)).nonzero().flatten()
        if len(broken):
            raise ValueError(
                f"{len(broken)} {name} feature rows hold NaN or infinity (first at row "
                f"{int(broken[0])}); extract the features again (fp32 rather than bf16?)"
            )
    linear = linear_probe(x_train, train.labels, x_test, test.labels, classes, settings, seed=seed)
    knn = knn_probe(
        x_train,
        train.labels,
        x_test,
        test.labels,
        classes,
        k=settings.knn_k,
        temperature=settings.knn_temperature,
    )
    return ProbeResult(linear, knn)


def probe_stage_sources(
    train: Mapping[str, FeatureSource],
    test: Mapping[str, FeatureSource],
    settings: ProbeSettings = DEFAULT_SETTINGS,
    *,
    n_classes: int | None = None,
    seed: int = 0,
) -> dict[str, ProbeResult]:
    """`probe_features` for each stage of per-stage sources (a feature store's, a cache's).

    Args:
        train: training features per stage.
        test: test features per stage, with the same stages.
        settings: the protocol's settings.
        n_classes: classes; `None`: from the labels.
        seed: seeds the validation split.

    Returns:
        One result per stage, in `train`'s order.

    Raises:
        ValueError: the two mappings name different stages.

    Example:
        >>> from resfx.features import TensorFeatures
        >>> y = torch.arange(20) % 2; x = torch.nn.functional.one_hot(y, 3).float()
        >>> sources = {"stem": TensorFeatures(x, y)}
        >>> list(probe_stage_sources(sources, sources, ProbeSettings(regularisation=1e-3)))
        ['stem']
    """
    if list(train) != list(test):
        raise ValueError(f"train and test name different stages: {list(train)}, {list(test)}")
    return {
        stage: probe_features(train[stage], test[stage], settings, n_classes=n_classes, seed=seed)
        for stage in train
    }


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for a single value).

    Example:
        >>> mean_and_std([1.0, 3.0])
        (2.0, 1.4142135623730951)
    """
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
