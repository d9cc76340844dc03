"""Which examples of a split to use: the first N (the seed's), a seeded random or a stratified subset."""

import warnings
from collections.abc import Sequence
from typing import Literal

import torch

SubsetKind = Literal["auto", "first", "random", "stratified"]
"""`"first"`: the first N examples (the seed's); `"random"`: N drawn with a seed;
`"stratified"`: N drawn with a seed, each class in its share of the split; `"auto"`: `"first"`
for CIFAR-10 and the synthetic set (their splits are in no class order, and the first N is the
seed's rule), `"stratified"` for folders and Datasets (their files come class by class, so the
first N of a sorted folder is its first classes)."""


def resolve_subset(how: SubsetKind, *, shuffled: bool) -> SubsetKind:
    """The subset `how` means for a source: `"auto"` resolved, any other kind unchanged.

    Args:
        how: a subset kind.
        shuffled: the source's examples are in no class order (CIFAR-10, the synthetic set).

    Returns:
        `"first"` or `"stratified"` for `"auto"`, else `how`.

    Raises:
        ValueError: `how` is not a subset kind.

    Example:
        >>> resolve_subset("auto", shuffled=False), resolve_subset("auto", shuffled=True)
        ('stratified', 'first')
    """
    if how not in ("auto", "first", "random", "stratified"):
        raise ValueError(
            f"unknown subset {how!r}; expected 'auto', 'first', 'random' or 'stratified'"
        )
    if how != "auto":
        return how
    return "first" if shuffled else "stratified"


def choose_subset(
    labels: Sequence[int], size: int, how: SubsetKind = "first", *, seed: int = 0
) -> list[int]:
    """Positions of a subset of `size` examples, in increasing order.

    Stratified subsets give each class `size * n_class / n` examples, the
    remainder going to the classes with the largest fractional shares (ties
    to the smaller class index); within a class the examples are drawn with the
    seed. `"auto"` is `"stratified"` here (see `resolve_subset`).

    Args:
        labels: every example's class, in order.
        size: examples to choose, `1 <= size <= len(labels)`.
        how: `"first"`, `"random"`, `"stratified"` or `"auto"`.
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
    how = resolve_subset(how, shuffled=False)
    generator = torch.Generator().manual_seed(seed)
    if how == "first":
        return list(range(size))
    if how == "random":
        return sorted(torch.randperm(n, generator=generator)[:size].tolist())
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


def warn_missing_classes(
    every: Sequence[int],
    chosen: Sequence[int],
    *,
    where: str,
    how: SubsetKind,
    classes: Sequence[str] = (),
) -> list[int]:
    """Warn when the chosen labels miss classes that the whole split has.

    Args:
        every: the labels of the whole split (or its classes, each at least once).
        chosen: the labels of the subset.
        where: the split, for the message (`"the train split of folder:/data"`).
        how: the subset kind used, for the message.
        classes: class names, indexed by label, when the source has them.

    Returns:
        The missing labels, sorted (empty: nothing was warned).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_missing_classes([0, 0, 1, 2], [0, 0], where="train", how="first")
        [1, 2]
        >>> str(caught[0].message)[:58]
        "the 'first' subset of train misses 2 of its 3 classes (1, "
    """
    present = {int(label) for label in every}
    missing = sorted(present - {int(label) for label in chosen})
    if missing:
        named = [classes[m] if m < len(classes) else str(m) for m in missing]
        shown = ", ".join(named[:20]) + (" ..." if len(named) > 20 else "")
        warnings.warn(
            f"the {how!r} subset of {where} misses {len(missing)} of its {len(present)} classes "
            f"({shown}); pass subset 'stratified' (--subset stratified) for every class in its "
            f"share, or a larger size",
            stacklevel=3,
        )
    return missing
