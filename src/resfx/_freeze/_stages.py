"""A model's stages by name, input to output: given, read from the model, or mapped per ResNet family.

`freeze_to` and `Finetuner` name stages (`"stem"`, `"layer3"`, `"head"`); this
module turns those names into the modules' names inside the model. Three
sources, in this order:

1. an explicit ordered list the caller passes (`stages=`), for any model;
2. the model's own stage names as data: a `StagedModel` (a `stage_names`
   attribute and a `stage(name)` method, as resfx's ResNet family has) is asked;
3. the ResNet naming of torchvision and timm: `layer1` ... `layer4` and `fc`
   in both, and a stem of `conv1`, `bn1`, `maxpool` with torchvision's `relu`
   or timm's `act1` (timm's `ResNet.group_matcher` reads the same names).
"""

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from torch import nn

from .._resnet_layout import RESNET_STAGES

StageSpec = Sequence[str | tuple[str, Sequence[str]]] | Mapping[str, Sequence[str]]
"""An explicit stage list, input to output: module names (each its own stage, named by
itself), `(stage, module names)` pairs, or a mapping from stage to module names."""

_TIMM_STAGES: dict[str, tuple[str, ...]] = {
    **RESNET_STAGES,
    "stem": tuple("act1" if name == "relu" else name for name in RESNET_STAGES["stem"]),
}
"""timm's `ResNet` has torchvision's layout but names the stem's activation `act1`."""


@runtime_checkable
class StagedModel(Protocol):
    """A model that names its own stages, input to output, for `freeze_to` and `Finetuner`.

    `resfx.models.ResNet` is one; a model of another family (or a wrapper of a
    foreign one) becomes one by having these two members. A model without them
    is read with torchvision's or timm's ResNet module names, or given an
    explicit stage list.

    Example:
        >>> import torch, resfx
        >>> class Tiny(torch.nn.Module):
        ...     stage_names = ("body", "head")
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.body, self.head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
        ...     def stage(self, name):
        ...         return [getattr(self, name)]
        >>> model = resfx.freeze_to(Tiny(), "body")
        >>> isinstance(model, resfx.StagedModel), [n for n, _ in resfx.trainable_parameters(model)]
        (True, ['head.weight', 'head.bias'])
    """

    stage_names: tuple[str, ...]
    """The stage names, input to output."""

    def stage(self, name: str) -> list[nn.Module]:
        """The modules that make up the stage `name`, in forward order."""
        ...


def _explicit(stages: StageSpec) -> dict[str, tuple[str, ...]]:
    items = stages.items() if isinstance(stages, Mapping) else stages
    result: dict[str, tuple[str, ...]] = {}
    modules: tuple[str, ...]
    for item in items:
        if isinstance(item, str):
            name, modules = item, (item,)
        elif (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and not isinstance(item[1], str)
        ):
            name, modules = item[0], tuple(item[1])
        else:
            raise TypeError(
                f"a stage is a module name or a (stage name, module names) pair, got {item!r}"
            )
        if name in result:
            raise ValueError(f"stage {name!r} is listed twice in {list(stages)!r}")
        if not modules or not all(isinstance(m, str) for m in modules):
            raise TypeError(f"stage {name!r} needs one or more module names, got {modules!r}")
        result[name] = modules
    if not result:
        raise ValueError("stages is empty; list the model's stages input to output")
    return result


def _from_model(model: StagedModel, names: dict[int, str]) -> dict[str, tuple[str, ...]]:
    """`model`'s own stages as module names (`names`: each module's name, by identity)."""
    result = {}
    for stage in model.stage_names:
        modules = model.stage(stage)
        result[stage] = tuple(names[id(module)] for module in modules)
    return result


def _resnet_family(model: nn.Module) -> dict[str, tuple[str, ...]]:
    children = dict(model.named_children())
    for layout in (RESNET_STAGES, _TIMM_STAGES):
        if all(isinstance(children.get(m), nn.Module) for ms in layout.values() for m in ms):
            return dict(layout)
    raise TypeError(
        f"cannot tell the stages of this {type(model).__name__} (top-level modules "
        f"{list(children)}): it is not a torchvision, timm or resfx ResNet; pass its stages "
        f"input to output, e.g. stages=['embed', 'blocks.0', 'blocks.1', 'head']"
    )


def stage_map(model: nn.Module, stages: StageSpec | None = None) -> dict[str, tuple[str, ...]]:
    """The stages of `model`, input to output, each with the names of its modules.

    Args:
        model: the model.
        stages: an explicit ordered stage list (see `StageSpec`), for any model;
            `None` asks a `StagedModel`, or else maps torchvision's and timm's
            ResNet module names (timm's stem activation is `act1`, torchvision's `relu`).

    Returns:
        Stage name -> module names inside `model`, in the order given or input to output.

    Raises:
        TypeError: the stages cannot be told and none were given, or `stages`
            is malformed.
        ValueError: a stage is listed twice, or a module name is not in `model`.

    Example:
        >>> import torchvision, resfx
        >>> from resfx import stage_map
        >>> stage_map(torchvision.models.resnet18())["stem"]
        ('conv1', 'bn1', 'relu', 'maxpool')
        >>> stage_map(torchvision.models.resnet18(), ["layer4", ("head", ["fc"])])
        {'layer4': ('layer4',), 'head': ('fc',)}
    """
    if stages is not None:
        result = _explicit(stages)
    elif isinstance(model, StagedModel):
        result = _from_model(model, {id(m): name for name, m in model.named_modules()})
    else:
        result = _resnet_family(model)
    known = dict(model.named_modules())
    missing = sorted({m for modules in result.values() for m in modules} - set(known))
    if missing:
        raise ValueError(
            f"stage modules {missing} are not in this {type(model).__name__}; module names "
            f"are those of model.named_modules(), e.g. {list(known)[1:6]}"
        )
    return result


def stage_modules(model: nn.Module, stage: str, stages: StageSpec | None = None) -> list[nn.Module]:
    """The modules of one stage of `model`, in order (see `stage_map`).

    Args:
        model: the model.
        stage: the stage's name.
        stages: the explicit stage list, or `None` (see `stage_map`).

    Returns:
        The stage's modules.

    Raises:
        ValueError: `stage` is not one of the model's stages (the message lists them).
        TypeError: as `stage_map`.

    Example:
        >>> import torchvision
        >>> from resfx import stage_modules
        >>> [type(m).__name__ for m in stage_modules(torchvision.models.resnet18(), "head")]
        ['Linear']
    """
    mapping = stage_map(model, stages)
    if stage not in mapping:
        raise ValueError(f"unknown stage {stage!r}; this model's stages are {list(mapping)}")
    known = dict(model.named_modules())
    return [known[name] for name in mapping[stage]]
