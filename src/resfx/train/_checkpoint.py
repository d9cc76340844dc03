"""Checkpoints: what changes during training, written atomically, and resumed bit for bit.

A checkpoint holds the trainable parameters and every buffer (BatchNorm
statistics), the optimizer, the position (epoch, batch within it, global
step), the random number generators, the history so far, the settings, and a
fingerprint of the frozen parameters. The frozen backbone itself is not
stored: it is rebuilt from the same weights and seed, and the fingerprint
proves it is the same.
"""

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch import nn as tnn

from .._atomic import atomic_torch_save
from ..data import DATASETS, SubsetKind, resolve_subset
from ..features import fingerprint_module, tensor_checksum
from ._args import RESUMABLE_CHANGES, TrainingArgs
from ._results import TrainHistory
from ._rundir import OutputDirectoryError

CHECKPOINT_NAME = "checkpoint.pt"
"""File name of the checkpoint inside `TrainingArgs.output_dir`."""

_FORMAT = "resfx-checkpoint-2"  # 2: with the checksum of its contents


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed by these settings or this model; the message says why.

    Example:
        >>> issubclass(CheckpointError, ValueError)
        True
    """


def frozen_fingerprint(model: tnn.Module) -> str:
    """SHA-256 of the parameters that do not train (names, shapes, values).

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(2, 2).requires_grad_(False)
        >>> len(frozen_fingerprint(m))
        64
    """
    frozen = tnn.ParameterDict(
        {name.replace(".", "/"): p for name, p in model.named_parameters() if not p.requires_grad}
    )
    return fingerprint_module(frozen)


def trainable_state(model: tnn.Module) -> dict[str, Tensor]:
    """The part of the state that training changes: trainable parameters and all buffers.

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
        >>> _ = m[0].requires_grad_(False)
        >>> sorted(trainable_state(m))[:3]
        ['1.bias', '1.num_batches_tracked', '1.running_mean']
    """
    state = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    state.update({name: b.detach().clone() for name, b in model.named_buffers()})
    return state


@dataclass
class Checkpoint:
    """A resumable moment of a run.

    Args:
        args: the run's settings as a dict.
        state: trainable parameters and buffers (see `trainable_state`).
        optimizer: the optimizer's state dict.
        epoch: the epoch in progress (equal to the number done when `batch` is 0).
        batch: batches of `epoch` already done.
        step: optimizer steps done in all.
        history: the history so far, as a dict.
        rng: random number generator states (`torch`, `cuda`, `python`, `numpy`).
        frozen: `frozen_fingerprint` of the model.

    Example:
        >>> c = Checkpoint({}, {}, {}, epoch=1, batch=0, step=10, history={}, rng={}, frozen="")
        >>> c.step
        10
    """

    args: dict[str, Any]
    state: dict[str, Tensor]
    optimizer: dict[str, Any]
    epoch: int
    batch: int
    step: int
    history: dict[str, Any]
    rng: dict[str, Any]
    frozen: str


def seed_rng(seed: int) -> None:
    """Seed every generator a checkpoint saves: torch's (CPU and CUDA), Python's `random`, numpy's.

    A run seeds them all at its start, so that one resumed from a checkpoint and one
    never interrupted end with the same generator states, not only the same weights.

    Args:
        seed: the seed (numpy's generator takes it modulo 2**32).

    Example:
        >>> seed_rng(3); a = (torch.rand(1), random.random(), np.random.rand())
        >>> seed_rng(3); a == (torch.rand(1), random.random(), np.random.rand())
        True
    """
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def capture_rng() -> dict[str, Any]:
    """The states of torch's CPU and CUDA generators, Python's `random` and numpy's global one.

    numpy's state is kept as plain values and a tensor, which `torch.load(weights_only=True)`
    reads.

    Example:
        >>> sorted(capture_rng())
        ['cuda', 'numpy', 'python', 'torch']
    """
    # numpy's stubs give the default (legacy=True) the legacy=False overload's dict; the global
    # MT19937 generator returns the legacy tuple
    legacy = cast("tuple[str, NDArray[np.uint32], int, int, float]", np.random.get_state())
    name, keys, position, has_gauss, gauss = legacy
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
    }


def restore_rng(states: dict[str, Any]) -> None:
    """Put back every generator state taken by `capture_rng` (numpy's when it was taken).

    Example:
        >>> s = capture_rng(); a = (torch.rand(1), random.random(), np.random.rand())
        >>> restore_rng(s); a == (torch.rand(1), random.random(), np.random.rand())
        True
    """
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:  # checkpoints from before numpy's state was kept have none
        saved = states["numpy"]
        keys = saved["keys"].numpy().astype(np.uint32)
        np.random.set_state(
            (saved["name"], keys, saved["position"], saved["has_gauss"], saved["gauss"])
        )


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write a checkpoint atomically: the old file stays intact until the new one is complete.

    Args:
        checkpoint: what to save.
        path: the destination.

    Returns:
        The path.

    Example:
        >>> import tempfile
        >>> c = Checkpoint({}, {}, {}, epoch=0, batch=0, step=0, history={}, rng={}, frozen="")
        >>> load_checkpoint(save_checkpoint(c, tempfile.mkdtemp() + "/c.pt")).epoch
        0
    """
    contents = dict(checkpoint.__dict__)
    payload = {"format": _FORMAT, **contents, "checksum": tensor_checksum(contents)}
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`, verified against its stored checksum.

    Only tensors and plain values are unpickled (`weights_only=True`).

    Args:
        path: the file.

    Returns:
        The checkpoint, tensors on the CPU.

    Raises:
        FileNotFoundError: no file at `path`.
        CheckpointError: `path` is a folder or a symbolic link to no file (a loop), the
            file is empty, truncated or otherwise unreadable, is not a resfx checkpoint,
            or its contents do not match their checksum; the message says which and
            what to do.

    Example:
        >>> load_checkpoint("/nonexistent.pt")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no checkpoint at /nonexistent.pt
    """
    path = Path(path)
    remedy = "delete it to start the run over, or put back a good copy"
    if path.is_symlink() and not path.exists():
        raise CheckpointError(
            f"checkpoint {path} is a symbolic link that leads to no file (a loop, or its target "
            f"is gone); {remedy}"
        )
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is a folder, not a file; move it away")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); {remedy}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zips, foreign pickles: torch raises many kinds
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"checkpoint {path} is damaged or not a torch file and cannot be read "
            f"({type(error).__name__}: {first_line}); {remedy}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path} is not a resfx training checkpoint of format {_FORMAT} (found {found!r}); "
            f"{remedy}"
        )
    del payload["format"]
    stored = payload.pop("checksum", None)
    if stored != tensor_checksum(payload):
        raise CheckpointError(
            f"checkpoint {path} is damaged: its contents do not match the checksum written "
            f"with them (a bad disk or copy?); {remedy}"
        )
    return Checkpoint(**payload)


def _same_setting(name: str, saved: Any, current: dict[str, Any]) -> bool:
    """A saved setting equals the current one; subsets compare as what they mean for the data
    (a run saved with `"first"` on CIFAR-10 resumes under the default `"auto"`)."""
    if name != "subset" or saved not in get_args(SubsetKind):
        return current.get(name) == saved
    shuffled = current["data"] in DATASETS
    return resolve_subset(saved, shuffled=shuffled) == resolve_subset(
        current[name], shuffled=shuffled
    )


def check_resumable(
    checkpoint: Checkpoint, args: TrainingArgs, model: tnn.Module, *, world_size: int = 1
) -> None:
    """Check that `args`, `model` and the process count continue the run `checkpoint` comes from.

    Only the fields in `RESUMABLE_CHANGES` (epochs, output paths, device,
    progress bars...) may differ (and `subset` in name: `"auto"` is the subset it
    means for the data), the frozen parameters must be identical, and
    the number of processes too: it multiplies the global batch and decides
    each process's share of every epoch.

    Args:
        checkpoint: the checkpoint to continue.
        args: this run's settings.
        model: this run's model, built from `args`.
        world_size: this run's number of processes.

    Raises:
        CheckpointError: a setting differs, the number of processes does, or the frozen
            parameters do; the message names them.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(1, 1)
        >>> c = Checkpoint(TrainingArgs(seed=1).to_dict(), {}, {}, 0, 0, 0, {}, {},
        ...                frozen_fingerprint(m))
        >>> check_resumable(c, TrainingArgs(seed=2), m)
        Traceback (most recent call last):
        ...
        resfx.train._checkpoint.CheckpointError: the checkpoint was made with different settings: seed=1 (now 2); start a new output_dir or pass the same values
    """
    current = args.to_dict()
    differing = [
        f"{name}={value!r} (now {current.get(name)!r})"
        for name, value in checkpoint.args.items()
        if name not in RESUMABLE_CHANGES and not _same_setting(name, value, current)
    ]
    if differing:
        raise CheckpointError(
            f"the checkpoint was made with different settings: {', '.join(differing)}; "
            f"start a new output_dir or pass the same values"
        )
    before = checkpoint.history.get("world_size", 1)
    if before != world_size:
        batch = args.batch_size
        raise CheckpointError(
            f"the checkpoint was written by {before} process(es) (global batch {before} x "
            f"{batch} = {before * batch}), this run has {world_size} (global batch "
            f"{world_size * batch}): resume with torchrun --nproc-per-node {before}"
            f"{'' if before > 1 else ' or without torchrun'}, or start a new output_dir"
        )
    if checkpoint.frozen != frozen_fingerprint(model):
        raise CheckpointError(
            "the frozen parameters differ from the checkpoint's (different weights file or "
            "resfx version?); resume with the weights the run started with"
        )


def restore_state(model: tnn.Module, state: dict[str, Tensor]) -> None:
    """Load `trainable_state` output into `model`, checking it covers exactly that part.

    Raises:
        CheckpointError: names missing or unexpected.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(2, 1)
        >>> restore_state(m, trainable_state(m))
    """
    result = model.load_state_dict(state, strict=False)
    expected_missing = {name for name, p in model.named_parameters() if not p.requires_grad}
    wrong_missing = sorted(set(result.missing_keys) - expected_missing)
    if wrong_missing or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint state does not fit the model: missing {wrong_missing}, unexpected "
            f"{sorted(result.unexpected_keys)}"
        )


def history_from(checkpoint: Checkpoint) -> TrainHistory:
    """The history stored in a checkpoint.

    Example:
        >>> h = TrainHistory("head", "synthetic", "cpu")
        >>> history_from(Checkpoint({}, {}, {}, 0, 0, 0, h.to_dict(), {}, "")).mode
        'head'
    """
    return TrainHistory.from_dict(checkpoint.history)


_CHECKPOINT_MARGIN = 64 * 2**10
"""Bytes beyond the tensors: settings, history, generator states and the zip's records
(a head-mode checkpoint of a width-4 ResNet after one epoch: 43 KB of them)."""


def checkpoint_bytes(model: tnn.Module, optimizer: torch.optim.Optimizer) -> int:
    """About how many bytes `save_checkpoint` writes for `model` trained by `optimizer`.

    The tensors of `trainable_state` (what trains and every buffer), the
    optimizer's state as it is after a first step (Adam's two moments per
    trained value, SGD's momentum, nothing for plain SGD; its actual state once
    it has one), and 64 KiB for the rest.

    Args:
        model: the model, with what trains marked `requires_grad`.
        optimizer: the optimizer over what trains.

    Returns:
        The estimate in bytes.

    Example:
        >>> m = torch.nn.Linear(256, 256)
        >>> checkpoint_bytes(m, torch.optim.Adam(m.parameters())) // 1024
        835
    """
    trains = [p for p in model.parameters() if p.requires_grad]
    state = sum(t.numel() * t.element_size() for t in trainable_state(model).values())
    defaults = optimizer.defaults
    moments = 2 if "betas" in defaults else int(bool(defaults.get("momentum", 0)))
    moments_bytes = 0
    for p in trains:
        saved = [t for t in optimizer.state.get(p, {}).values() if isinstance(t, Tensor)]
        predicted = moments * p.numel() * p.element_size()
        moments_bytes += sum(t.numel() * t.element_size() for t in saved) if saved else predicted
    return state + moments_bytes + _CHECKPOINT_MARGIN


def check_checkpoint_space(
    folder: Path, model: tnn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Check that `folder` has room for a checkpoint of `model`, before the first epoch.

    Args:
        folder: the output directory.
        model: the model.
        optimizer: its optimizer.

    Raises:
        OutputDirectoryError: less free space than `checkpoint_bytes(model, optimizer)`.

    Example:
        >>> import tempfile
        >>> m = torch.nn.Linear(2, 2)
        >>> check_checkpoint_space(Path(tempfile.mkdtemp()), m, torch.optim.SGD(m.parameters()))
    """
    needed, free = checkpoint_bytes(model, optimizer), shutil.disk_usage(folder).free
    if free < needed:
        raise OutputDirectoryError(
            f"no space left for a checkpoint in output_dir {str(folder)!r}: "
            f"{free / 2**20:.1f} MiB free, a checkpoint needs about {needed / 2**20:.2f} MiB; "
            f"free some space or pass another output_dir"
        )
