"""Freezing, by concern: what trains and how frozen BatchNorm behaves (`_freeze`, `_policy`),
optimizer groups and hygiene (`_optim`), the parameter summary (`_summary`), the drift guard
(`_drift`).

A private package: its public names are re-exported by `resfx` (and the drift guard by
`resfx.autograd`). It imports `resfx.nn` and plain data only, never `resfx.models`: a model
names its stages for `freeze_to` (`StagedModel`), so any model, resfx's or not, can be frozen.
"""

from ._drift import DriftError as DriftError
from ._drift import DriftGuard as DriftGuard
from ._freeze import StagedModel as StagedModel
from ._freeze import freeze as freeze
from ._freeze import freeze_to as freeze_to
from ._freeze import frozen as frozen
from ._freeze import unfreeze as unfreeze
from ._optim import OptimizerCheckError as OptimizerCheckError
from ._optim import OptimizerReport as OptimizerReport
from ._optim import check_optimizer as check_optimizer
from ._optim import parameter_groups as parameter_groups
from ._optim import trainable_parameters as trainable_parameters
from ._policy import BNPolicy as BNPolicy
from ._policy import bn_policy as bn_policy
from ._policy import is_batchnorm as is_batchnorm
from ._summary import ParameterRow as ParameterRow
from ._summary import ParameterSummary as ParameterSummary
from ._summary import parameter_summary as parameter_summary

__all__ = [
    "BNPolicy",
    "DriftError",
    "DriftGuard",
    "OptimizerCheckError",
    "OptimizerReport",
    "ParameterRow",
    "ParameterSummary",
    "StagedModel",
    "bn_policy",
    "check_optimizer",
    "freeze",
    "freeze_to",
    "frozen",
    "is_batchnorm",
    "parameter_groups",
    "parameter_summary",
    "trainable_parameters",
    "unfreeze",
]
