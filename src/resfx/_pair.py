"""Argument normalisation shared by the ops and modules."""

from ._typing import Size2d


def as_pair(value: Size2d, name: str, *, minimum: int) -> tuple[int, int]:
    """Return `value` as a `(height, width)` pair of ints, each at least `minimum`.

    Args:
        value: an int (used for both axes), a pair of ints, or a one-int sequence
            (used for both axes, as torch's 2-D ops allow).
        name: the argument's name, quoted in the error message.
        minimum: the smallest allowed value.

    Returns:
        The pair `(height, width)`.

    Raises:
        TypeError: `value` is neither an int nor a pair of ints.
        ValueError: an entry is below `minimum`.

    Example:
        >>> as_pair(3, "kernel_size", minimum=1)
        (3, 3)
        >>> as_pair((1, 2), "stride", minimum=1)
        (1, 2)
        >>> as_pair([2], "padding", minimum=0)
        (2, 2)
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got the bool {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    elif (
        isinstance(value, (tuple, list))
        and len(value) in (1, 2)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        # torch's 2-D ops take a one-element sequence for both axes too
        pair = (int(value[0]), int(value[-1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum} on both axes, got {value!r}")
    return pair
