"""Which examples of a split to use: the first N (the seed's), a seeded random or a stratified subset."""

from collections.abc import Sequence
from typing import Literal

import torch

SubsetKind = Literal["first", "random", "stratified"]
"""`"first"`: the first N examples (the seed's); `"random"`: N drawn with a seed;
`"stratified"`: N drawn with a seed, each class in its share of the split."""


def choose_subset(
    labels: Sequence[int], size: int, how: SubsetKind = "first", *, seed: int = 0
) -> list[int]:
    """Positions of a subset of `size` examples, in increasing order.

    Stratified subsets give each class `size * n_class / n` examples, the
    remainder going to the classes with the largest fractional shares (ties
    to the smaller class index); within a class the examples are drawn with the
    seed.

    Args:
        labels: every example's class, in order.
        size: examples to choose, `1 <= size <= len(labels)`.
        how: `"first"`, `"random"` or `"stratified"`.
        seed: the random draw's seed.

    Returns:
        The chosen positions, sorted.

    Raises:
        ValueError: `size` is out of range or `how` is unknown.

    Example:
        >>> labels = [0] * 6 + [1] * 2
        >>> choose_subset(labels, 4)
        [0, 1, 2, 3]
        >>> sorted(labels[i] for i in choose_subset(labels, 4, "stratified"))
        [0, 0, 0, 1]
    """
    n = len(labels)
    if not 1 <= size <= n:
        raise ValueError(f"a subset of {size} examples is impossible from a split of {n}")
    generator = torch.Generator().manual_seed(seed)
    if how == "first":
        return list(range(size))
    if how == "random":
        return sorted(torch.randperm(n, generator=generator)[:size].tolist())
    if how != "stratified":
        raise ValueError(f"unknown subset {how!r}; expected 'first', 'random' or 'stratified'")
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(position)
    classes = sorted(by_class)
    shares = {c: size * len(by_class[c]) / n for c in classes}
    counts = {c: int(shares[c]) for c in classes}
    remainder = size - sum(counts.values())
    for c in sorted(classes, key=lambda c: (counts[c] - shares[c], c))[:remainder]:
        counts[c] += 1
    chosen = []
    for c in classes:
        members = by_class[c]
        order = torch.randperm(len(members), generator=generator)[: counts[c]]
        chosen += [members[i] for i in order.tolist()]
    return sorted(chosen)
