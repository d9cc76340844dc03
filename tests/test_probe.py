"""Per-stage features in the cache (one frozen pass for every stage); the probe protocol's parts."""

import pytest
import torch

import resfx
from resfx.data import load_split
from resfx.features import FeatureCache, TensorFeatures, compute_stage_features
from resfx.models import ResNet, ResNetConfig
from resfx.probe import (
    ProbeSettings,
    fit_logistic,
    knn_probe,
    linear_probe,
    probe_features,
    standardise,
    stratified_split,
)


@pytest.fixture
def model() -> ResNet:
    return resfx.freeze(ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1))))


def test_stage_features_are_pooled_stage_outputs_and_one_pass_fills_every_stage(
    model: ResNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = load_split("synthetic", "test", 6)
    stages = ["stem", "layer2", "layer4"]
    out = compute_stage_features(model, split, stages, image_size=32, batch_size=4)
    x = resfx.data.preprocess(split.images, 32)
    with torch.no_grad():
        maps = model.forward_stages(x, stages)
        torch.testing.assert_close(out["layer4"], model.forward_pooled(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["layer2"], maps["layer2"].mean(dim=(2, 3)), atol=1e-6, rtol=0)
    passes = []
    original = ResNet.forward_stages
    monkeypatch.setattr(
        ResNet, "forward_stages", lambda self, *a: passes.append(1) or original(self, *a)
    )
    cache = FeatureCache()
    first = cache.stage_features(model, split, stages, image_size=32, batch_size=6)
    assert len(passes) == 1 and cache.misses == 3
    again = cache.stage_features(model, split, ["layer4", "stem"], image_size=32, batch_size=6)
    assert len(passes) == 1 and cache.hits == 2
    assert torch.equal(again["stem"], first["stem"])


def test_stage_keys_differ_by_stage_and_stay_content_based(model: ResNet) -> None:
    split = load_split("synthetic", "test", 4)
    cache = FeatureCache()
    cache.stage_features(model, split, ["stem"], image_size=32)
    other = load_split("synthetic", "test", 4, seed=1)
    cache.stage_features(model, other, ["stem"], image_size=32)
    assert cache.misses == 2 and cache.hits == 0


def _clusters(n: int, d: int = 40, informative: int = 4, classes: int = 3, seed: int = 0):
    """Class clusters in `informative` dimensions, the rest noise: regularisation matters."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, informative, generator=generator)
    features = torch.randn(n, d, generator=generator)
    features[:, :informative] += 1.5 * centres[labels]
    return features, labels


def test_one_batched_solve_equals_one_solve_per_strength() -> None:
    x, y = _clusters(90)
    x = standardise(x, x)[0]
    strengths = torch.tensor([1e-3, 1e-2, 1.0], dtype=torch.float64)
    batched = fit_logistic(x, y, 3, strengths, tol=1e-7)
    assert batched.converged.all()
    for j, strength in enumerate(strengths):
        alone = fit_logistic(x, y, 3, strength[None], tol=1e-7)
        # both stop at a gradient of 1e-7, so within about 1e-7 / strength of the optimum
        torch.testing.assert_close(batched.weights[j], alone.weights[0], atol=1e-4, rtol=0)
        torch.testing.assert_close(batched.bias[j], alone.bias[0], atol=1e-4, rtol=0)
    # the optimum: the gradient of mean cross-entropy + strength/2 |W|^2 vanishes
    theta = torch.cat([batched.weights[1], batched.bias[1][None]]).requires_grad_()
    xb = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    loss = torch.nn.functional.cross_entropy(xb @ theta, y) + 0.5e-2 * theta[:-1].pow(2).sum()
    (grad,) = torch.autograd.grad(loss, theta)
    assert grad.abs().max() <= 1e-7


def test_stronger_regularisation_shrinks_the_weights_and_a_bad_max_iter_is_reported() -> None:
    x, y = _clusters(60)
    fit = fit_logistic(x, y, 3, torch.logspace(-5, 1, 4, dtype=torch.float64))
    norms = fit.weights.flatten(1).norm(dim=1)
    assert (norms[1:] < norms[:-1]).all()
    short = fit_logistic(x, y, 3, torch.tensor([1e-6]), max_iter=2, tol=1e-10)
    assert not short.converged.any() and short.iterations.tolist() == [2]
    with pytest.raises(ValueError, match="positive and finite"):
        fit_logistic(x, y, 3, torch.tensor([float("nan")]))


def test_stratified_split_is_seeded_and_keeps_every_class_on_both_sides() -> None:
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    fit, val = stratified_split(labels, 0.2, seed=3)
    assert sorted(torch.cat([fit, val]).tolist()) == list(range(16))
    assert labels[val].tolist().count(0) == 2 and labels[val].tolist().count(1) == 1
    assert 2 not in labels[val].tolist()  # a class of one row stays in the fit
    again, _ = stratified_split(labels, 0.2, seed=3)
    other, _ = stratified_split(labels, 0.2, seed=4)
    assert torch.equal(fit, again) and not torch.equal(fit, other)


def test_linear_probe_picks_the_strength_of_best_validation_accuracy_and_refits() -> None:
    x, y = _clusters(150, d=60)
    result = linear_probe(x[:100], y[:100], x[100:], y[100:], 3)
    assert len(result.val_accuracy) == len(result.strengths) == 8
    best = max(result.val_accuracy)
    chosen = result.strengths.index(result.strength)
    assert result.val_accuracy[chosen] == best
    assert all(v < best for v in result.val_accuracy[chosen + 1 :])  # ties go to the stronger
    assert result.c == pytest.approx(1 / (result.strength * 100))
    assert result.converged and result.test_accuracy > 0.8
    fixed = linear_probe(x[:100], y[:100], x[100:], y[100:], 3, ProbeSettings(regularisation=0.1))
    assert fixed.strength == 0.1 and fixed.val_accuracy == () and fixed.iterations[0] == 0


def test_knn_probe_matches_a_hand_computed_vote() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[2.0, 0.2]])
    # k=2: neighbours 0 (cos 0.995) and 2 (cos 0.778); the class-1 vote alone would win
    # without the temperature's weighting only if k=3 and equal weights
    similarities = (
        torch.nn.functional.normalize(query, dim=1) @ torch.nn.functional.normalize(bank, dim=1).T
    )
    weights = torch.exp(similarities[0] / 0.07)
    assert weights[0] > weights[1] + weights[2]
    assert knn_probe(bank, labels, query, torch.tensor([0]), 2, k=3).test_accuracy == 1.0
    assert (
        knn_probe(bank, labels, query, torch.tensor([0]), 2, k=3, temperature=100.0).test_accuracy
        == 0.0
    )


def test_knn_probe_in_batches_equals_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _clusters(80)
    whole = knn_probe(x[:50], y[:50], x[50:], y[50:], 3)
    monkeypatch.setattr("resfx.probe._knn._SIMILARITY_ELEMENTS", 50 * 7)  # 7 rows a batch
    assert knn_probe(x[:50], y[:50], x[50:], y[50:], 3).test_accuracy == whole.test_accuracy


def test_probe_features_reads_feature_sources() -> None:
    x, y = _clusters(90)
    result = probe_features(TensorFeatures(x[:60], y[:60]), TensorFeatures(x[60:], y[60:]))
    direct = linear_probe(x[:60], y[:60], x[60:], y[60:], 3)
    assert result.linear.test_accuracy == direct.test_accuracy
    assert result.linear.strength == direct.strength
    with pytest.raises(ValueError, match="differ in width"):
        probe_features(TensorFeatures(x[:, :3], y), TensorFeatures(x, y))
