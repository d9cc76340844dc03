"""Checkpoints in, strictly: read a file, unwrap a training checkpoint, check every key, load."""

import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch import nn as tnn

from .._zoo import ZOO
from ._download import fetch_pretrained
from ._errors import CheckpointMismatchError
from ._registry import PRETRAINED

REFERENCE_STATES: dict[str, Callable[[], Mapping[str, Tensor]]] = {}
"""Each architecture's state dict (on the meta device: keys and shapes only), registered by
`resfx.models`, which sits above this layer; a mismatch message names the architecture a file
is for when its keys and shapes are one of these."""

_WRAPPERS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema", "ema")
"""Keys under which training checkpoints (Lightning, timm, plain loops) keep the weights, in
the order they are tried: the trained weights before their exponential moving average."""

_SHOWN = 3
"""How many keys of each kind a mismatch message names."""


def _is_state_dict(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items())
    )


def _unwrap(path: Path, loaded: object) -> dict[str, Tensor]:
    """The state dict in `loaded`: itself, or the first of `_WRAPPERS` that holds one."""
    if _is_state_dict(loaded):
        return dict(loaded)  # type: ignore[call-overload]
    if isinstance(loaded, Mapping):
        for wrapper in _WRAPPERS:
            if _is_state_dict(loaded.get(wrapper)):
                others = sorted(str(k) for k in loaded if k != wrapper)
                if others:  # a training checkpoint: say which of its entries is used
                    warnings.warn(
                        f"{path} is a training checkpoint; using its {wrapper!r} entry "
                        f"(other entries: {', '.join(others[:8])})",
                        stacklevel=4,
                    )
                return dict(loaded[wrapper])
        kinds = sorted({type(v).__name__ for v in loaded.values()})
        raise ValueError(
            f"{path} holds a {type(loaded).__name__} of {', '.join(kinds) or 'nothing'} with keys "
            f"{sorted(map(str, loaded))[:8]}, not a state dict of tensors (nor one under "
            f"{', '.join(repr(w) for w in _WRAPPERS)})"
        )
    raise ValueError(f"{path} holds a {type(loaded).__name__}, not a state dict of tensors")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a state dict from a `.pth`/`.pt`/`.bin` (torch) or `.safetensors` (timm) file.

    A training checkpoint (Lightning's or timm's `{"epoch", "state_dict",
    "optimizer", ...}`, or `{"model": ...}`, `{"model_state_dict": ...}`, EMA
    weights) is unwrapped, with a warning naming the entry used. Torch files are
    read with `weights_only=True`: no code in them runs, so a whole pickled model
    is refused, with how to re-save its weights.

    Args:
        path: the checkpoint file.

    Returns:
        Parameter and buffer names to tensors, on the CPU.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is a folder, empty, truncated or corrupt, holds a pickled
            object other than tensors, or holds no state dict; the message says which.

    Example:
        >>> import tempfile, torch
        >>> p = tempfile.mkdtemp() + "/w.pth"; torch.save({"fc.bias": torch.zeros(2)}, p)
        >>> list(read_checkpoint(p))
        ['fc.bias']
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not path.is_file():
        raise ValueError(f"{path} is a folder, not a weights file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): delete it and download or copy it again")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many kinds for a damaged file
        first_line = (str(error).strip().splitlines() or [""])[0]
        pickled = re.search(r"GLOBAL ([\w.]+)", str(error))
        if "Weights only load failed" in str(error) and pickled:
            raise ValueError(
                f"{path} is a valid torch file but holds a pickled {pickled[1]} object, not only "
                f"tensors; resfx reads weights with weights_only=True so that no code in a file "
                f"runs. If you trust the file, load it yourself (torch.load(path, "
                f"weights_only=False)) and re-save its weights with "
                f"torch.save(model.state_dict(), path)"
            ) from error
        raise ValueError(
            f"{path} could not be read as a checkpoint ({type(error).__name__}: {first_line}); it is "
            f"probably truncated or corrupt: delete it and download or copy it again"
        ) from error
    return _unwrap(path, loaded)


def _first_few(items: list[str], separator: str = ", ") -> str:
    """The first `_SHOWN` items, an ellipsis if there are more, and the count."""
    shown = separator.join(items[:_SHOWN])
    return f"[{shown}{separator + '...' if len(items) > _SHOWN else ''}] ({len(items)} in all)"


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str | None:
    """A hint when the unexpected keys are the missing ones under a common prefix."""
    if not unexpected:
        return None
    first = unexpected[0]
    for prefix in ("module.", "model.", "_orig_mod.", "backbone.", "encoder."):
        if first.startswith(prefix) and all(k.startswith(prefix) for k in unexpected):
            stripped = {k[len(prefix) :] for k in unexpected}
            if set(missing) <= stripped:
                return (
                    f"every key starts with {prefix!r} (saved from a wrapper such as "
                    f"DataParallel or a LightningModule): strip that prefix, e.g. "
                    f"{{k.removeprefix({prefix!r}): v for k, v in state_dict.items()}}"
                )
    return None


def _block_counts(state_dict: Mapping[str, Tensor]) -> tuple[int, ...]:
    """Blocks in each of a ResNet state dict's four groups, from keys like `layer3.22.conv1`."""
    found: dict[int, set[str]] = {}
    for key in state_dict:
        match = re.match(r"layer([1-4])\.(\d+)\.", key)
        if match:
            found.setdefault(int(match[1]), set()).add(match[2])
    return tuple(len(found.get(group, ())) for group in (1, 2, 3, 4))


def _backbone(state: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {
        k: tuple(v.shape)
        for k, v in state.items()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }


def matching_architecture(state_dict: Mapping[str, Tensor]) -> str | None:
    """The architecture of `resfx.models.list_models()` whose keys and shapes a state dict has.

    The classifier (`fc`) may differ: a file for 10 classes is still a resnet50's.

    Args:
        state_dict: a checkpoint's tensors.

    Returns:
        The architecture's name, or `None` when none of them matches.

    Example:
        >>> import torch, resfx
        >>> with torch.device("meta"):
        ...     state = resfx.create_model("resnet50", num_classes=10).state_dict()
        >>> matching_architecture(state), matching_architecture({})
        ('resnet50', None)
    """
    counts = _block_counts(state_dict)
    shapes = _backbone(state_dict)
    for name, spec in ZOO.items():
        known = spec.layers == counts and name in REFERENCE_STATES
        if known and _backbone(REFERENCE_STATES[name]()) == shapes:
            return name
    return None


def _hints(
    expected: Mapping[str, Tensor],
    state_dict: Mapping[str, Tensor],
    missing: list[str],
    unexpected: list[str],
    wrong: list[str],
    not_float: list[str],
) -> list[str]:
    """What the mismatch most likely is, most useful first."""
    hints = []
    prefix = _prefix_hint(missing, unexpected)
    if prefix:
        hints.append(prefix)
    other_backbone = bool(missing or wrong) and _backbone(expected) != _backbone(state_dict)
    architecture = matching_architecture(state_dict) if other_backbone else None
    if architecture is not None:
        hints.append(
            f"the file is a {architecture} checkpoint (its keys and shapes are {architecture}'s): "
            f"build that architecture, e.g. resfx.create_model({architecture!r}, weights=path)"
        )
    elif any(k.startswith("fc.") for k in wrong):
        hints.append(
            "the classifier differs: load with the checkpoint's num_classes and replace the "
            "head, or use resfx.get_resnet_for_feature_extraction(num_classes=n)"
        )
    if not_float:
        hints.append(
            "integer tensors where the model has floating-point parameters: the file holds "
            "quantised or wrongly converted weights, which would load truncated"
        )
    return hints


def check_state_dict(model: tnn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Check every key, shape and dtype of a checkpoint against a model, before loading it.

    `num_batches_tracked` may be absent (old torchvision files lack it; it loads
    as 0). Integer tensors where the model has floating-point ones are refused:
    `load_state_dict` would convert them silently.

    Args:
        model: the model the checkpoint is for.
        state_dict: the checkpoint's tensors.

    Raises:
        CheckpointMismatchError: missing, unexpected, wrongly shaped or wrongly typed keys:
            a hint first, then a count and the first few keys of each kind.

    Example:
        >>> import torch
        >>> check_state_dict(torch.nn.Linear(2, 3), {"weight": torch.zeros(3, 2)})
        Traceback (most recent call last):
        ...
        resfx.weights.CheckpointMismatchError: ... missing keys ['bias'] (1 in all)
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    common = [k for k in expected if k in state_dict]
    wrong = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)}"
        for k in common
        if state_dict[k].shape != expected[k].shape
    ]
    not_float = [
        f"{k}: checkpoint {state_dict[k].dtype}, model {expected[k].dtype}"
        for k in common
        if expected[k].is_floating_point() and not state_dict[k].is_floating_point()
    ]
    if not (missing or unexpected or wrong or not_float):
        return
    hints = _hints(expected, state_dict, missing, unexpected, wrong, not_float)
    parts = []
    for label, keys, separator in (
        ("missing keys", [repr(k) for k in missing], ", "),
        ("unexpected keys", [repr(k) for k in unexpected], ", "),
        ("wrong shapes", wrong, "; "),  # the shapes hold commas
        ("wrong dtypes", not_float, "; "),
    ):
        if keys:
            parts.append(f"{label} {_first_few(keys, separator)}")
    message = f"checkpoint does not match {type(model).__name__}: "
    if hints:
        message += "Hint: " + "; ".join(hints) + ". "
    raise CheckpointMismatchError(message + "; ".join(parts))


def check_weights_source(weights: str | os.PathLike[str] | Mapping[str, Tensor]) -> None:
    """Check that `weights` names known pretrained weights or an existing file, without loading.

    What `load_weights` checks first, for callers that want to fail before slow work.

    Args:
        weights: a key of `PRETRAINED`, a path, or a state dict.

    Raises:
        TypeError: `weights` is none of those types.
        ValueError: an unknown name that is not a file either.

    Example:
        >>> check_weights_source("resnet34.IMAGENET1K_V1")
        >>> check_weights_source("IMAGENET1K_V9")
        Traceback (most recent call last):
        ...
        ValueError: weights='IMAGENET1K_V9' is neither a known name (...) nor an existing .pth/.safetensors file
    """
    if isinstance(weights, Mapping):
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"weights: pass a name of PRETRAINED, a path, or a state dict, got "
            f"{type(weights).__name__}; to load a model's weights use model.load_state_dict"
        )
    if isinstance(weights, str) and weights in PRETRAINED:
        return
    if not Path(weights).is_file():
        raise ValueError(
            f"weights={str(weights)!r} is neither a known name ({sorted(PRETRAINED)}) "
            f"nor an existing .pth/.safetensors file"
        )


def load_weights(
    model: tnn.Module,
    weights: str | os.PathLike[str] | Mapping[str, Tensor],
    *,
    progress: bool = True,
) -> tnn.Module:
    """Load named pretrained weights, a checkpoint file or a state dict into `model`, strictly.

    Args:
        model: the model to fill (in place).
        weights: a key of `PRETRAINED` (`"resnet34.IMAGENET1K_V1"`, `"resnet34.tv_in1k"`),
            a path to a `.pth` / `.safetensors` file, or a state dict already in memory.
        progress: show a download progress bar.

    Returns:
        `model`, for chaining.

    Raises:
        TypeError: `weights` is not a name, path or state dict.
        ValueError: an unknown name that is not a file either, or a file that holds no
            state dict (see `read_checkpoint`).
        CheckpointMismatchError: keys, shapes or dtypes differ.
        WeightsUnavailableError: named weights not cached and not downloadable.
        ChecksumError: a downloaded file fails its hash check.

    Example:
        >>> import tempfile, torch, resfx
        >>> p = tempfile.mkdtemp() + "/w.pth"
        >>> torch.save(resfx.nn.Linear(2, 3).state_dict(), p)
        >>> _ = load_weights(resfx.nn.Linear(2, 3), p)
        >>> _ = load_weights(resfx.nn.Linear(2, 3), torch.load(p))  # a state dict works too
    """
    check_weights_source(weights)
    if isinstance(weights, Mapping):
        state_dict = _unwrap(Path("<the state dict passed>"), weights)
    elif isinstance(weights, str) and weights in PRETRAINED:
        state_dict = read_checkpoint(fetch_pretrained(weights, progress=progress))
    else:
        state_dict = read_checkpoint(weights)
    check_state_dict(model, state_dict)
    model.load_state_dict(state_dict, strict=True)
    return model
