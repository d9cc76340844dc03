"""A weighted k-nearest-neighbour probe (DINO's): cosine similarity, top k, votes `exp(sim / T)`."""

import time
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

_SIMILARITY_ELEMENTS = 2**22
"""Similarities held at once (`test rows x train rows` of a batch): 16 MiB of float32."""


@dataclass(frozen=True)
class KnnProbeResult:
    """What `knn_probe` measured.

    Args:
        test_accuracy: share of test rows whose weighted vote is their class.
        k: neighbours that voted (at most the training rows).
        temperature: `T` of the votes' weights `exp(sim / T)`.
        seconds: wall time of the probe.

    Example:
        >>> KnnProbeResult(0.75, 20, 0.07, 0.01).test_accuracy
        0.75
    """

    test_accuracy: float
    k: int
    temperature: float
    seconds: float


def knn_probe(
    train_features: Float[Tensor, "n d"],
    train_labels: Int[Tensor, " n"],
    test_features: Float[Tensor, "m d"],
    test_labels: Int[Tensor, " m"],
    n_classes: int,
    *,
    k: int = 20,
    temperature: float = 0.07,
) -> KnnProbeResult:
    """Classify each test row by its `k` most similar training rows, votes weighted by similarity.

    Rows are L2-normalised, so the similarity is the cosine; each of the top `k`
    neighbours adds `exp(sim / temperature)` to its class, and the class with the
    most weight wins (DINO's evaluation: k = 20, T = 0.07). Test rows are taken in
    batches, so memory holds at most about 4M similarities whatever the sizes.

    Args:
        train_features: `(n, d)` features of the labelled rows.
        train_labels: their classes.
        test_features: `(m, d)` features to classify.
        test_labels: their classes.
        n_classes: classes of the votes.
        k: neighbours per test row (fewer when there are fewer training rows).
        temperature: `T` of the weights; lower trusts the nearest more.

    Returns:
        The accuracy, `k` used, `T` and seconds.

    Raises:
        ValueError: `k` below 1, `temperature` not positive and finite, no rows,
            or feature widths that differ.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> y = torch.tensor([0, 0, 1, 1])
        >>> knn_probe(x, y, x, y, 2, k=2).test_accuracy
        1.0
    """
    if k < 1 or not (0 < temperature < float("inf")):
        raise ValueError(
            f"k must be >= 1 and temperature positive and finite, got {k}, {temperature}"
        )
    if len(train_features) == 0 or len(test_features) == 0:
        raise ValueError("knn_probe needs training and test rows, got none")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train and test features differ in width: {train_features.shape[1]} and "
            f"{test_features.shape[1]}"
        )
    began = time.perf_counter()
    bank = torch.nn.functional.normalize(train_features.float(), dim=1)
    queries = torch.nn.functional.normalize(test_features.float(), dim=1)
    labels = train_labels.to(bank.device)
    k = min(k, len(bank))
    batch = max(1, _SIMILARITY_ELEMENTS // len(bank))
    correct = 0
    for start in range(0, len(queries), batch):
        similarity = queries[start : start + batch] @ bank.T
        top, index = similarity.topk(k, dim=1)
        votes = torch.zeros(len(top), n_classes, device=bank.device)
        votes.scatter_add_(1, labels[index], torch.exp(top / temperature))
        predicted = votes.argmax(dim=1).cpu()
        correct += int((predicted == test_labels[start : start + batch].cpu()).sum())
    return KnnProbeResult(correct / len(queries), k, temperature, time.perf_counter() - began)
