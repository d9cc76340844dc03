"""Drift guard: frozen parameters and buffers stay bitwise what they were (the proof that freezing held)."""

from types import TracebackType

import torch
from torch import Tensor, nn

from .._typing import AnyTensor
from ._policy import frozen_state

_SAME_SIZE_INTEGERS: dict[int, torch.dtype] = {
    1: torch.uint8,
    2: torch.int16,
    4: torch.int32,
    8: torch.int64,
}


class DriftError(RuntimeError):
    """Frozen tensors changed; the message names each, with how many elements differ.

    Args:
        changed: one line per changed tensor, starting with its name.

    Example:
        >>> print(DriftError(["bn1.running_mean: 3 of 64 elements differ"]))
        frozen tensors changed:
          - bn1.running_mean: 3 of 64 elements differ
    """

    def __init__(self, changed: list[str]) -> None:
        super().__init__("frozen tensors changed:\n" + "\n".join(f"  - {c}" for c in changed))
        self.changed = tuple(changed)


def _bits(tensor: AnyTensor) -> AnyTensor:
    """The tensor's elements as integers of the same size: equal bits, equal integers (NaNs too)."""
    flat = tensor.detach().reshape(-1)
    integer = _SAME_SIZE_INTEGERS.get(flat.element_size())
    return flat.view(torch.uint8) if integer is None else flat.view(integer)


def _guards_buffers(module: nn.Module) -> bool:
    """Frozen parts' buffers are guarded, except BatchNorms frozen with the policy "train"."""
    state = frozen_state(module)
    if state is not None:
        return state.bn_policy != "train"
    own = list(module.parameters(recurse=False))
    return bool(own) and not any(p.requires_grad for p in own)


class DriftGuard:
    """Snapshot the frozen parameters and buffers of a model; `check()` that they are bitwise unchanged.

    Guarded: every parameter with `requires_grad=False`, and the buffers
    (BatchNorm running statistics and counters) of every frozen part: a module
    frozen by `resfx.freeze` (except a BatchNorm with the policy `"train"`,
    whose statistics are meant to move) or one whose own parameters are all
    frozen. So a BatchNorm frozen only by `requires_grad_(False)` and left in
    train mode is caught. Comparison is bitwise, so NaNs compare equal to
    themselves and `-0.0` differs from `0.0`. The snapshot is a copy, on the
    tensors' devices.

    Args:
        module: the model to guard.

    Raises:
        ValueError: nothing in `module` is frozen.

    Example:
        >>> import torch, resfx
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
        >>> _ = model[1].requires_grad_(False)  # not resfx.freeze: statistics still update
        >>> with DriftGuard(model):
        ...     _ = model(torch.randn(8, 4))
        Traceback (most recent call last):
        ...
        resfx._freeze._drift.DriftError: frozen tensors changed:
          - 1.running_mean: 4 of 4 elements differ
          - 1.running_var: 4 of 4 elements differ
          - 1.num_batches_tracked: 1 of 1 elements differ
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        snapshot: dict[str, Tensor] = {
            name: p.detach().clone() for name, p in module.named_parameters() if not p.requires_grad
        }
        for prefix, sub in module.named_modules():
            if _guards_buffers(sub):
                for name, buffer in sub.named_buffers(prefix=prefix, recurse=False):
                    snapshot[name] = buffer.detach().clone()
        if not snapshot:
            raise ValueError(
                f"nothing in this {type(module).__name__} is frozen, so there is nothing to "
                f"guard; freeze a part first (resfx.freeze)"
            )
        self._snapshot = snapshot

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the guarded parameters and buffers."""
        return tuple(self._snapshot)

    def check(self) -> None:
        """Compare every guarded tensor with its snapshot, bit for bit.

        Raises:
            DriftError: some changed (values, shape or dtype) or disappeared; names each.

        Example:
            >>> import torch, resfx
            >>> model = resfx.freeze(torch.nn.Linear(2, 2))
            >>> guard = DriftGuard(model)
            >>> with torch.no_grad():
            ...     _ = model.bias.add_(1)
            >>> guard.check()
            Traceback (most recent call last):
            ...
            resfx._freeze._drift.DriftError: frozen tensors changed:
              - bias: 2 of 2 elements differ
        """
        current: dict[str, Tensor] = dict(self.module.named_parameters())
        current.update(self.module.named_buffers())
        changed = []
        for name, before in self._snapshot.items():
            now = current.get(name)
            if now is None:
                changed.append(f"{name}: no longer in the module")
            elif now.shape != before.shape or now.dtype != before.dtype:
                changed.append(
                    f"{name}: was {before.dtype} {tuple(before.shape)}, "
                    f"now {now.dtype} {tuple(now.shape)}"
                )
            else:
                differ = int((_bits(now.to(before.device)) != _bits(before)).sum())
                if differ:
                    changed.append(f"{name}: {differ} of {before.numel()} elements differ")
        if changed:
            raise DriftError(changed)

    def __enter__(self) -> "DriftGuard":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.check()
