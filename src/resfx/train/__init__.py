"""The feature-extraction job: settings, the training loop, results, checkpoints, distributed runs.

Example:
    >>> from resfx.train import TrainingArgs, train
    >>> args = TrainingArgs(data="synthetic", weights=None, trainset_size=32, testset_size=16,
    ...                     epochs=1, batch_size=16, image_size=32, device="cpu")
    >>> loss_list, accuracy_list, model = train(args)
    >>> len(loss_list), len(accuracy_list)
    (2, 1)
"""

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from .._distributed import DistributedContext as DistributedContext
from .._distributed import resolve_device as resolve_device
from .._precision import Precision as Precision
from ..data import DatasetName as DatasetName
from ._args import RESUMABLE_CHANGES as RESUMABLE_CHANGES
from ._args import Dataset as Dataset
from ._args import Mode as Mode
from ._args import TrainingArgs as TrainingArgs
from ._checkpoint import CHECKPOINT_NAME as CHECKPOINT_NAME
from ._checkpoint import Checkpoint as Checkpoint
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import load_checkpoint as load_checkpoint
from ._loop import HISTORY_NAME as HISTORY_NAME
from ._loop import PLOT_NAME as PLOT_NAME
from ._loop import NonFiniteLossError as NonFiniteLossError
from ._loop import build_model as build_model
from ._loop import checkpoint_progress as checkpoint_progress
from ._loop import train as train
from ._results import TrainHistory as TrainHistory
from ._results import TrainResult as TrainResult
from ._results import format_setup_phases as format_setup_phases
from ._rundir import LOCK_NAME as LOCK_NAME
from ._rundir import OutputDirectoryError as OutputDirectoryError
from ._rundir import claim_output_dir as claim_output_dir
from ._rundir import prepare_output_dir as prepare_output_dir

__all__ = [
    "CHECKPOINT_NAME",
    "HISTORY_NAME",
    "LOCK_NAME",
    "PLOT_NAME",
    "RESUMABLE_CHANGES",
    "Checkpoint",
    "CheckpointError",
    "DatasetName",
    "DistributedContext",
    "Mode",
    "NonFiniteLossError",
    "OutputDirectoryError",
    "Precision",
    "TrainHistory",
    "TrainResult",
    "TrainingArgs",
    "build_model",
    "checkpoint_progress",
    "claim_output_dir",
    "format_setup_phases",
    "load_checkpoint",
    "prepare_output_dir",
    "resolve_device",
    "train",
]


# Defined only at run time: to a type checker a module `__getattr__` makes every unknown name
# an `Any`; without it, a misspelt name (or the moved `seed_train`) is an error.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        # `resfx.train.seed_train` moved to `resfx.bench.seed_train` (a benchmark baseline, not
        # training API); the old name works, with a warning, for one release. Looked up by name
        # at call time: `bench` imports `train`, so `train` cannot import `bench` at load.
        if name == "seed_train":
            warnings.warn(
                "resfx.train.seed_train moved to resfx.bench.seed_train; the old name is removed in "
                "the next release",
                DeprecationWarning,
                stacklevel=2,
            )
            return importlib.import_module("resfx.bench").seed_train
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
