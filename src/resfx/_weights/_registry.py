"""The named pretrained weights, built from the zoo's specs.

Where each file comes from, and what it expects.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn as tnn

from .._zoo import IMAGENET_MEAN, IMAGENET_STD, ZOO, ArchSpec


@dataclass(frozen=True)
class InferenceTransform:
    """The evaluation transform a set of weights was trained for (torchvision's preset).

    `Resize(resize_size)` (shorter side, `interpolation`, antialiased), then
    `CenterCrop(crop_size)`, then `Normalize(mean, std)`. torchvision's V2
    weights expect a resize to 232, the V1 weights to 256; both crop 224.

    Args:
        resize_size: side the shorter edge is resized to.
        crop_size: side of the square centre crop.
        interpolation: the resize filter, `"bilinear"` for every torchvision ResNet.
        mean: per-channel mean to subtract (RGB, on a [0, 1] scale).
        std: per-channel standard deviation to divide by.

    Example:
        >>> t = PRETRAINED["resnet50.IMAGENET1K_V2"].transform
        >>> t.resize_size, t.crop_size
        (232, 224)
    """

    resize_size: int
    crop_size: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def build(self) -> tnn.Module:
        """torchvision's `ImageClassification` preset with these settings (PIL image or tensor in).

        Example:
            >>> from PIL import Image
            >>> PRETRAINED["resnet18.IMAGENET1K_V1"].transform.build()(Image.new("RGB", (300, 260))).shape
            torch.Size([3, 224, 224])
        """
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms._presets import ImageClassification

        return ImageClassification(
            crop_size=self.crop_size,
            resize_size=self.resize_size,
            mean=self.mean,
            std=self.std,
            interpolation=InterpolationMode(self.interpolation),
        )


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a named set of pretrained ResNet weights comes from, and what it expects.

    Args:
        name: the name users pass as `weights=` to `load_weights`, `"<arch>.<tag>"`:
            torchvision's enum names (`"resnet50.IMAGENET1K_V2"`) and timm's
            (`"resnet50.tv2_in1k"`); the architecture's factory also takes the
            tag alone (`resnet50(weights="IMAGENET1K_V2")`).
        url: the download address.
        file_name: the name of the file in the cache (`$TORCH_HOME/hub/checkpoints/`).
        hash_prefix: leading hex digits of the file's SHA-256, or `None` when the
            publisher gives none.
        num_classes: classes of the checkpoint's classifier.
        description: where the weights were trained, for messages and docs.
        arch: the architecture the file is for (`"resnet50"`).
        transform: the evaluation transform the weights were trained for.

    Example:
        >>> PRETRAINED["resnet34.IMAGENET1K_V1"].file_name
        'resnet34-b627a593.pth'
    """

    name: str
    url: str
    file_name: str
    hash_prefix: str | None
    num_classes: int
    description: str
    arch: str
    transform: InferenceTransform

    @property
    def tag(self) -> str:
        """The name without the architecture: `"IMAGENET1K_V2"`, `"tv2_in1k"`."""
        return self.name.split(".", 1)[1]

    @property
    def cache_path(self) -> Path:
        """Where the file lives in torch's hub cache (honours `TORCH_HOME`)."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name

    def transforms(self) -> tnn.Module:
        """The evaluation transform, ready to call, as torchvision's `weights.transforms()`.

        A PIL image, or a `uint8` tensor `(3, h, w)` or `(b, 3, h, w)`, in; the
        resized, centre-cropped, normalised float tensor out, the same tensor
        torchvision's transform gives (it is `transform.build()`).

        Returns:
            torchvision's `ImageClassification` preset with `transform`'s settings.

        Example:
            >>> import torch
            >>> image = torch.randint(0, 256, (3, 300, 260), dtype=torch.uint8)
            >>> PRETRAINED["resnet50.IMAGENET1K_V2"].transforms()(image).shape
            torch.Size([3, 224, 224])
        """
        return self.transform.build()


_IMAGENET_CLASSES = 1000


def _entries(spec: ArchSpec) -> list[PretrainedWeights]:
    """An architecture's torchvision files, then timm's copies with their recipe's transform."""
    transforms = {}
    entries = []
    for file in spec.weights:
        transforms[file.tag] = InferenceTransform(
            resize_size=file.resize_size,
            crop_size=file.crop_size,
            interpolation=file.interpolation,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
        entries.append(
            PretrainedWeights(
                name=f"{spec.name}.{file.tag}",
                url=file.url,
                file_name=file.file_name,
                hash_prefix=file.hash_prefix,
                num_classes=_IMAGENET_CLASSES,
                description=f"torchvision {spec.name} {file.tag}, ImageNet-1k (acc@1 {file.acc1})",
                arch=spec.name,
                transform=transforms[file.tag],
            )
        )
    for copy in spec.timm:
        name = f"{spec.name}.{copy.tag}"
        entries.append(
            PretrainedWeights(
                name=name,
                url=f"https://huggingface.co/timm/{name}/resolve/main/model.safetensors",
                file_name=f"timm-{name}.safetensors",
                hash_prefix=None,
                num_classes=_IMAGENET_CLASSES,
                description=f"timm's safetensors copy of {copy.origin_url}",
                arch=spec.name,
                transform=transforms[copy.recipe],
            )
        )
    return entries


PRETRAINED: dict[str, PretrainedWeights] = {
    entry.name: entry for spec in ZOO.values() for entry in _entries(spec)
}
"""Named pretrained weights, `"<arch>.<tag>"`: every torchvision ImageNet entry and timm's copies."""

TORCHVISION_WEIGHTS: dict[str, str] = {
    name: spec.torchvision_enum for name, spec in ZOO.items() if spec.torchvision_enum is not None
}
"""Each architecture's weights enum in `torchvision.models` (those torchvision publishes)."""
