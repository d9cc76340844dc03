"""The linear probe against scikit-learn's `LogisticRegression(C=1 / (strength * n))`, the oracle.

The features are made so that regularisation matters: class clusters in a few dimensions,
the rest noise, fewer rows than a model with no penalty could ignore the noise with.
"""

import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from resfx.probe import (
    DEFAULT_STRENGTHS,
    ProbeSettings,
    fit_logistic,
    linear_probe,
    standardise,
    stratified_split,
    strength_to_c,
)

STRENGTHS = DEFAULT_STRENGTHS


def _features(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    centres = torch.randn(4, 6, generator=torch.Generator().manual_seed(99))
    features = torch.randn(n, 60, generator=generator)
    features[:, :6] += 0.9 * centres[labels]
    return features, labels


def _sklearn_accuracies(x_fit, y_fit, evaluations, strength: float) -> list[float]:
    model = LogisticRegression(C=strength_to_c(strength, len(y_fit)), tol=1e-6, max_iter=10_000)
    with threadpool_limits(1):  # BLAS threads on a loaded 2-core machine: 7.5 s instead of 0.3
        model.fit(x_fit.numpy(), y_fit.numpy())
    return [float((model.predict(x.numpy()) == y.numpy()).mean()) for x, y in evaluations]


def test_accuracy_at_every_strength_and_the_choice_match_scikit_learn() -> None:
    x, y = _features(250, seed=0)
    x_test, y_test = _features(200, seed=1)
    x, x_test = standardise(x, x_test)
    fit, val = stratified_split(y, 0.2, seed=0)
    grid = torch.tensor(STRENGTHS, dtype=torch.float64)
    ours = fit_logistic(x[fit], y[fit], 4, grid, tol=1e-6, max_iter=10_000)
    assert ours.converged.all()
    test_ours = (ours.predict(x_test) == y_test).double().mean(dim=1).tolist()
    val_ours = (ours.predict(x[val]) == y[val]).double().mean(dim=1).tolist()
    evaluations = [(x_test, y_test), (x[val], y[val])]
    theirs = [_sklearn_accuracies(x[fit], y[fit], evaluations, s) for s in STRENGTHS]
    test_theirs, val_theirs = [t for t, _ in theirs], [v for _, v in theirs]
    for strength, a, b in zip(STRENGTHS, test_ours, test_theirs, strict=True):
        assert abs(a - b) <= 0.01, f"strength {strength}: resfx {a:.3f}, scikit-learn {b:.3f}"
    assert max(test_ours) - min(test_ours) > 0.05  # the grid matters on these features

    result = linear_probe(x, y, x_test, y_test, 4, ProbeSettings(tol=1e-6, max_iter=10_000))
    assert list(result.val_accuracy) == val_ours
    chosen = max(range(len(STRENGTHS)), key=lambda j: (val_theirs[j], j))
    assert abs(STRENGTHS.index(result.strength) - chosen) <= 1
