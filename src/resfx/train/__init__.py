"""The feature-extraction job: settings, the training loop, results, checkpoints, distributed runs.

Example:
    >>> from resfx.train import TrainingArgs, train
    >>> args = TrainingArgs(data="synthetic", weights=None, trainset_size=32, testset_size=16,
    ...                     epochs=1, batch_size=16, image_size=32, device="cpu")
    >>> loss_list, accuracy_list, model = train(args)
    >>> len(loss_list), len(accuracy_list)
    (2, 1)
"""

from ._args import RESUMABLE_CHANGES as RESUMABLE_CHANGES
from ._args import Dataset as Dataset
from ._args import Mode as Mode
from ._args import Precision as Precision
from ._args import TrainingArgs as TrainingArgs
from ._checkpoint import CHECKPOINT_NAME as CHECKPOINT_NAME
from ._checkpoint import Checkpoint as Checkpoint
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import load_checkpoint as load_checkpoint
from ._checkpoint import save_checkpoint as save_checkpoint
from ._checkpoint import trainable_state as trainable_state
from ._distributed import DistributedContext as DistributedContext
from ._distributed import init_distributed as init_distributed
from ._distributed import resolve_device as resolve_device
from ._loop import HISTORY_NAME as HISTORY_NAME
from ._loop import PLOT_NAME as PLOT_NAME
from ._loop import NonFiniteLossError as NonFiniteLossError
from ._loop import build_model as build_model
from ._loop import check_labels as check_labels
from ._loop import train as train
from ._results import TrainHistory as TrainHistory
from ._results import TrainResult as TrainResult
from ._rundir import LOCK_NAME as LOCK_NAME
from ._rundir import OutputDirectoryError as OutputDirectoryError
from ._rundir import claim_output_dir as claim_output_dir
from ._rundir import prepare_output_dir as prepare_output_dir
from ._seed import seed_train as seed_train

__all__ = [
    "CHECKPOINT_NAME",
    "HISTORY_NAME",
    "LOCK_NAME",
    "PLOT_NAME",
    "RESUMABLE_CHANGES",
    "Checkpoint",
    "CheckpointError",
    "Dataset",
    "DistributedContext",
    "Mode",
    "NonFiniteLossError",
    "OutputDirectoryError",
    "Precision",
    "TrainHistory",
    "TrainResult",
    "TrainingArgs",
    "build_model",
    "check_labels",
    "claim_output_dir",
    "init_distributed",
    "load_checkpoint",
    "prepare_output_dir",
    "resolve_device",
    "save_checkpoint",
    "seed_train",
    "train",
    "trainable_state",
]
