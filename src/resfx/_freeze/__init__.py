"""Freezing, by concern: what trains and how frozen BatchNorm behaves (`_freeze`, `_policy`),
optimizer groups and hygiene (`_optim`), the parameter summary (`_summary`), the drift guard
(`_drift`). Learning-rate schedules live apart, in `resfx._schedule`.

A private package: its public names are re-exported by `resfx` (and the drift guard by
`resfx.autograd`). It imports `resfx.nn` and plain data only, never `resfx.models`: a model
names its stages for `freeze_to` (`StagedModel`), so any model, resfx's or not, can be frozen.
"""

from ._drift import DriftError as DriftError
from ._drift import DriftGuard as DriftGuard
from ._finetune import Finetuner as Finetuner
from ._finetune import OptimizerFactory as OptimizerFactory
from ._finetune import OptimizerName as OptimizerName
from ._finetune import Stage as Stage
from ._freeze import convert_sync_batchnorm as convert_sync_batchnorm
from ._freeze import freeze as freeze
from ._freeze import freeze_to as freeze_to
from ._freeze import frozen as frozen
from ._freeze import unfreeze as unfreeze
from ._optim import OptimizerCheckError as OptimizerCheckError
from ._optim import OptimizerReport as OptimizerReport
from ._optim import check_optimizer as check_optimizer
from ._optim import load_optimizer_state as load_optimizer_state
from ._optim import parameter_groups as parameter_groups
from ._optim import trainable_parameters as trainable_parameters
from ._policy import BNPolicy as BNPolicy
from ._policy import bn_policy as bn_policy
from ._policy import has_running_stats as has_running_stats
from ._policy import is_batchnorm as is_batchnorm
from ._stages import StagedModel as StagedModel
from ._stages import StageSpec as StageSpec
from ._stages import stage_map as stage_map
from ._stages import stage_modules as stage_modules
from ._summary import ParameterRow as ParameterRow
from ._summary import ParameterSummary as ParameterSummary
from ._summary import parameter_summary as parameter_summary

__all__ = [
    "BNPolicy",
    "DriftError",
    "DriftGuard",
    "Finetuner",
    "OptimizerCheckError",
    "OptimizerFactory",
    "OptimizerName",
    "OptimizerReport",
    "ParameterRow",
    "ParameterSummary",
    "Stage",
    "StageSpec",
    "StagedModel",
    "bn_policy",
    "check_optimizer",
    "convert_sync_batchnorm",
    "freeze",
    "freeze_to",
    "frozen",
    "has_running_stats",
    "is_batchnorm",
    "load_optimizer_state",
    "parameter_groups",
    "parameter_summary",
    "stage_map",
    "stage_modules",
    "trainable_parameters",
    "unfreeze",
]
