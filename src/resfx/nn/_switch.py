"""The switch between PyTorch's fused kernels (default) and resfx's reference ops."""

import contextlib
from collections.abc import Iterator

import torch
import torch.fx

_reference = False


def using_reference_ops() -> bool:
    """Whether resfx modules currently run the reference ops of `resfx.functional`.

    Returns:
        `True` inside [`reference_ops`][resfx.nn.reference_ops] (or after
            `set_reference_ops(True)`), `False` by default.

    Example:
        >>> using_reference_ops()
        False
    """
    return _reference


def set_reference_ops(enabled: bool) -> None:
    """Make every resfx module run the reference ops (`True`) or the fused kernels (`False`).

    Args:
        enabled: run the plain-maths ops of `resfx.functional`.

    Example:
        >>> set_reference_ops(True); using_reference_ops()
        True
        >>> set_reference_ops(False)
    """
    global _reference
    _reference = bool(enabled)


@contextlib.contextmanager
def reference_ops(enabled: bool = True) -> Iterator[None]:
    """Run resfx modules on the reference ops inside the block, then restore the setting.

    The reference ops are the definition; the fused kernels are the fast path.
    Both give the same values and gradients (the test suite proves it), the
    reference ops are slower (plain-op BatchNorm measured 1.3x-2.3x slower on an H200).

    Args:
        enabled: `True` for the reference ops, `False` to force the fused kernels.

    Example:
        >>> import torch, resfx
        >>> conv = resfx.nn.Conv2d(1, 1, 3)
        >>> x = torch.randn(1, 1, 5, 5)
        >>> with reference_ops():
        ...     slow = conv(x)
        >>> torch.allclose(slow, conv(x), atol=1e-6)
        True
    """
    previous = _reference
    set_reference_ops(enabled)
    try:
        yield
    finally:
        set_reference_ops(previous)


def _tracing(x: object) -> bool:
    """Whether `x` is traced by torch.fx or torch.compile: the modules then skip their Python
    input checks, which read concrete shapes (fx's proxies have none) and would add guards."""
    return isinstance(x, torch.fx.Proxy) or torch.compiler.is_compiling()
