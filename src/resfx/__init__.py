"""resfx: feature extraction on ResNets, with typed from-scratch modules and provable freezing.

Example:
    >>> import torch, resfx
    >>> model = resfx.resnet34(num_classes=10)
    >>> model(torch.randn(2, 3, 64, 64)).shape
    torch.Size([2, 10])

Every name here loads on first use (`resfx.freeze` imports the freezing code, `resfx.train`
the job), so `import resfx` itself loads almost nothing. `resfx.ResNet`, `resfx.ResNetConfig`,
`resfx.resnet18`, `resfx.resnet34`, `resfx.create_model`, `resfx.list_models`,
`resfx.get_resnet_for_feature_extraction` (from `resfx.models`) and `resfx.check_gradient_flow`,
`resfx.GradientFlowError` (from `resfx.autograd`) are shortcuts to names exported, and
documented, in their subpackage.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:  # what type checkers and readers see; at run time `__getattr__` loads each
    from . import autograd as autograd
    from . import bench as bench
    from . import cli as cli
    from . import data as data
    from . import features as features
    from . import functional as functional
    from . import models as models
    from . import nn as nn
    from . import plot as plot
    from . import probe as probe
    from . import train as train
    from . import weights as weights
    from ._fold import fold_batchnorm as fold_batchnorm
    from ._freeze import BNPolicy as BNPolicy
    from ._freeze import Finetuner as Finetuner
    from ._freeze import OptimizerCheckError as OptimizerCheckError
    from ._freeze import OptimizerReport as OptimizerReport
    from ._freeze import ParameterRow as ParameterRow
    from ._freeze import ParameterSummary as ParameterSummary
    from ._freeze import StagedModel as StagedModel
    from ._freeze import StageSpec as StageSpec
    from ._freeze import bn_policy as bn_policy
    from ._freeze import check_optimizer as check_optimizer
    from ._freeze import convert_sync_batchnorm as convert_sync_batchnorm
    from ._freeze import freeze as freeze
    from ._freeze import freeze_to as freeze_to
    from ._freeze import frozen as frozen
    from ._freeze import has_running_stats as has_running_stats
    from ._freeze import is_batchnorm as is_batchnorm
    from ._freeze import load_optimizer_state as load_optimizer_state
    from ._freeze import parameter_groups as parameter_groups
    from ._freeze import parameter_summary as parameter_summary
    from ._freeze import stage_map as stage_map
    from ._freeze import stage_modules as stage_modules
    from ._freeze import trainable_parameters as trainable_parameters
    from ._freeze import unfreeze as unfreeze
    from ._frozen_step import CompileMode as CompileMode
    from ._frozen_step import FrozenForward as FrozenForward
    from ._frozen_step import HeadStep as HeadStep
    from ._frozen_step import fold_frozen_backbone as fold_frozen_backbone
    from ._schedule import Schedule as Schedule
    from ._schedule import schedule_factor as schedule_factor
    from .autograd import GradientFlowError as GradientFlowError
    from .autograd import check_gradient_flow as check_gradient_flow
    from .models import ResNet as ResNet
    from .models import ResNetConfig as ResNetConfig
    from .models import create_model as create_model
    from .models import get_resnet_for_feature_extraction as get_resnet_for_feature_extraction
    from .models import list_models as list_models
    from .models import resnet18 as resnet18
    from .models import resnet34 as resnet34

_SUBMODULES = (
    "autograd",
    "functional",
    "models",
    "nn",
    "weights",
    "data",
    "features",
    "plot",
    "train",
    "probe",
    "bench",
    "cli",
)
"""resfx's public subpackages: each loads on first use (`resfx.train.train(...)` works after
`import resfx`)."""

_NAMES: dict[str, tuple[str, ...]] = {
    "._fold": ("fold_batchnorm",),
    "._freeze": (
        "BNPolicy",
        "Finetuner",
        "OptimizerCheckError",
        "OptimizerReport",
        "ParameterRow",
        "ParameterSummary",
        "StagedModel",
        "StageSpec",
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
    ),
    "._frozen_step": (
        "CompileMode",
        "FrozenForward",
        "HeadStep",
        "fold_frozen_backbone",
    ),
    "._schedule": (
        "Schedule",
        "schedule_factor",
    ),
    ".autograd": (
        "GradientFlowError",
        "check_gradient_flow",
    ),
    ".models": (
        "ResNet",
        "ResNetConfig",
        "create_model",
        "get_resnet_for_feature_extraction",
        "list_models",
        "resnet18",
        "resnet34",
    ),
}
"""The top-level names, by the module each is imported from on first use (the same list as
the `TYPE_CHECKING` imports above; `tests/test_light_import.py` keeps the two equal)."""

_HOMES = {name: module for module, names in _NAMES.items() for name in names}


# Defined only at run time: to a type checker a module `__getattr__` makes every unknown name
# (a typo such as `resfx.frezee`) an `Any`; without it, only the imports above exist.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in _SUBMODULES:
            value = importlib.import_module(f".{name}", __name__)
        elif name in _HOMES:
            value = getattr(importlib.import_module(_HOMES[name], __name__), name)
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value  # later look-ups find it without this function
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES, *_HOMES})


__all__ = [
    "BNPolicy",
    "CompileMode",
    "Finetuner",
    "FrozenForward",
    "HeadStep",
    "OptimizerCheckError",
    "OptimizerReport",
    "ParameterRow",
    "ParameterSummary",
    "Schedule",
    "StageSpec",
    "StagedModel",
    "autograd",
    "bn_policy",
    "check_optimizer",
    "convert_sync_batchnorm",
    "fold_batchnorm",
    "fold_frozen_backbone",
    "freeze",
    "freeze_to",
    "frozen",
    "functional",
    "has_running_stats",
    "is_batchnorm",
    "load_optimizer_state",
    "models",
    "nn",
    "parameter_groups",
    "parameter_summary",
    "schedule_factor",
    "stage_map",
    "stage_modules",
    "train",
    "trainable_parameters",
    "unfreeze",
    "weights",
]
