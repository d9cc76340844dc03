"""Argument normalisation shared by the ops and modules."""

from numbers import Integral

from ._typing import Size2d


def is_int(value: object) -> bool:
    """Whether `value` is an integer as torch's size arguments take it: any `numbers.Integral`
    (`int`, `numpy.int64`, ...) but not `bool`.

    Example:
        >>> import numpy as np
        >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
        (True, True, False, False)
    """
    return isinstance(value, Integral) and not isinstance(value, bool)


def as_int(value: object, name: str) -> int:
    """Return the integer `value` (any `numbers.Integral` but `bool`) as a Python int.

    Raises:
        TypeError: `value` is not an integer.

    Example:
        >>> import numpy as np
        >>> as_int(np.int64(2), "groups")
        2
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def as_pair(value: Size2d, name: str, *, minimum: int) -> tuple[int, int]:
    """Return `value` as a `(height, width)` pair of ints, each at least `minimum`.

    Args:
        value: an integer (used for both axes), a pair of integers, or a one-integer
            sequence (used for both axes, as torch's 2-D ops allow). Any
            `numbers.Integral` but `bool` counts (`numpy.int64(3)`, as in torch).
        name: the argument's name, quoted in the error message.
        minimum: the smallest allowed value.

    Returns:
        The pair `(height, width)`, as Python ints.

    Raises:
        TypeError: `value` is neither an integer nor a pair of integers.
        ValueError: an entry is below `minimum`.

    Example:
        >>> import numpy as np
        >>> as_pair(3, "kernel_size", minimum=1)
        (3, 3)
        >>> as_pair((1, np.int64(2)), "stride", minimum=1)
        (1, 2)
        >>> as_pair([2], "padding", minimum=0)
        (2, 2)
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got the bool {value!r}")
    if isinstance(value, Integral):  # bools were refused above
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) in (1, 2) and all(map(is_int, value)):
        # torch's 2-D ops take a one-element sequence for both axes too
        pair = (int(value[0]), int(value[-1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum} on both axes, got {value!r}")
    return pair
