"""resfx: feature extraction on ResNets, with typed from-scratch modules and provable freezing.

Example:
    >>> import torch, resfx
    >>> model = resfx.resnet34(num_classes=10)
    >>> model(torch.randn(2, 3, 64, 64)).shape
    torch.Size([2, 10])

`resfx.data`, `resfx.features`, `resfx.plot`, `resfx.train`, `resfx.bench` and `resfx.cli`
load on first use (`resfx.train.train(...)` works after `import resfx`), so `import resfx`
stays light.
"""

import importlib
from typing import Any

from . import autograd as autograd
from . import functional as functional
from . import models as models
from . import nn as nn

# Last: the job composes everything above (`resfx.train` is an attribute after `import resfx`).
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
from ._version import __version__ as __version__
from .autograd import GradientFlowError as GradientFlowError
from .autograd import check_gradient_flow as check_gradient_flow
from .models import ResNet as ResNet
from .models import ResNetConfig as ResNetConfig
from .models import create_model as create_model
from .models import get_resnet_for_feature_extraction as get_resnet_for_feature_extraction
from .models import list_models as list_models
from .models import resnet18 as resnet18
from .models import resnet34 as resnet34

_ON_FIRST_USE = ("data", "features", "plot", "train", "bench", "cli")


def __getattr__(name: str) -> Any:
    if name in _ON_FIRST_USE:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BNPolicy",
    "CompileMode",
    "Finetuner",
    "FrozenForward",
    "GradientFlowError",
    "HeadStep",
    "OptimizerCheckError",
    "OptimizerReport",
    "ParameterRow",
    "ParameterSummary",
    "ResNet",
    "ResNetConfig",
    "Schedule",
    "StageSpec",
    "StagedModel",
    "autograd",
    "bn_policy",
    "check_gradient_flow",
    "check_optimizer",
    "convert_sync_batchnorm",
    "create_model",
    "fold_batchnorm",
    "fold_frozen_backbone",
    "freeze",
    "freeze_to",
    "frozen",
    "functional",
    "get_resnet_for_feature_extraction",
    "has_running_stats",
    "is_batchnorm",
    "list_models",
    "load_optimizer_state",
    "models",
    "nn",
    "parameter_groups",
    "parameter_summary",
    "resnet18",
    "resnet34",
    "schedule_factor",
    "stage_map",
    "stage_modules",
    "train",
    "trainable_parameters",
    "unfreeze",
    "weights",
]
