"""Saved-activation accounting: the bytes autograd keeps alive for backward."""

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._typing import AnyTensor


def _storage_key(tensor: AnyTensor) -> tuple[str, int]:
    return str(tensor.device), tensor.untyped_storage().data_ptr()


class SavedTensorMeter:
    """Context manager: count the bytes that autograd saves for backward inside the block.

    Every tensor an op saves for its backward passes through
    `torch.autograd.graph.saved_tensors_hooks`; the meter adds up the storages
    behind them, each once (views of one storage, or a tensor saved by two ops,
    count once). This is the memory a training step holds between forward and
    backward, and what freezing saves: ops whose inputs need no gradient save
    nothing. Measure one forward pass (and loss) per meter.

    Autograd receives detached aliases of the saved tensors, so a graph built
    inside a meter supports first-order `backward()` (as in training) but not
    `create_graph=True` double backward through the saved values.

    Args:
        exclude: a module whose parameters and buffers are not counted (they
            exist whether or not autograd saves them).

    Example:
        >>> import torch, resfx
        >>> model = resfx.nn.Linear(512, 10)
        >>> x = torch.randn(64, 512)
        >>> with SavedTensorMeter(exclude=model) as meter:
        ...     loss = model(x).sum()
        >>> meter.bytes, meter.tensors  # x, saved to compute the weight's gradient
        (131072, 1)
        >>> with SavedTensorMeter(exclude=model) as meter:
        ...     loss = model(x).sum()
        ...     _ = resfx.freeze(model)
        ...     loss = model(x).sum()
        >>> meter.bytes  # the first loss only: frozen, nothing is saved
        131072
    """

    def __init__(self, exclude: nn.Module | None = None) -> None:
        self.exclude = exclude
        self.bytes = 0
        self.tensors = 0
        self._seen: set[tuple[str, int]] = set()
        self._hooks: torch.autograd.graph.saved_tensors_hooks | None = None

    def _pack(self, tensor: AnyTensor) -> AnyTensor:
        key = _storage_key(tensor)
        if key not in self._seen:
            self._seen.add(key)
            self.bytes += tensor.untyped_storage().nbytes()
            self.tensors += 1
        # Hand autograd a detached alias, not the tensor itself: a saved *output* returned
        # as is would link the graph node to itself through Python (node -> saved tensor
        # -> grad_fn -> node), a cycle the garbage collector cannot see, and every model
        # metered would stay alive (measured: one ResNet34 kept per meter).
        return tensor.detach()

    def _unpack(self, tensor: AnyTensor) -> AnyTensor:
        return tensor

    def __enter__(self) -> "SavedTensorMeter":
        if self._hooks is not None:
            raise RuntimeError("a SavedTensorMeter cannot be entered twice; make a new one")
        if self.exclude is not None:
            owned = [*self.exclude.parameters(), *self.exclude.buffers()]
            self._seen.update(_storage_key(t) for t in owned)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._hooks is not None:
            self._hooks.__exit__(*exc_info)


def saved_activation_bytes(fn: Callable[[], Any], *, exclude: nn.Module | None = None) -> int:
    """Bytes autograd saves for backward while `fn()` runs (see `SavedTensorMeter`).

    Args:
        fn: the forward computation, e.g. `lambda: loss_fn(model(x), y)`.
        exclude: a module whose parameters and buffers are not counted.

    Returns:
        The bytes of the distinct storages saved.

    Example:
        >>> import torch
        >>> x = torch.randn(256, requires_grad=True)
        >>> saved_activation_bytes(lambda: (x.exp() * 2).sum())  # exp saves its output
        1024
    """
    with SavedTensorMeter(exclude) as meter:
        fn()
    return meter.bytes
