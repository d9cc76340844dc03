"""torchvision's ResNet layout: the module names that make up each stage, input to output.

Plain data at the bottom of the layers: `resfx.models.ResNet.stage` reads it, and
`resfx.freeze_to` falls back on it for a ResNet that does not name its own stages
(torchvision's), so neither imports the other.
"""

RESNET_STAGES: dict[str, tuple[str, ...]] = {
    "stem": ("conv1", "bn1", "relu", "maxpool"),
    "layer1": ("layer1",),
    "layer2": ("layer2",),
    "layer3": ("layer3",),
    "layer4": ("layer4",),
    "head": ("fc",),
}
"""Stage name -> the ResNet's attribute names in that stage, in forward order."""
