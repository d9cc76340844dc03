"""The zoo is one table: resfx's copy of torchvision's metadata, and what each spec generates.

`resfx._zoo` holds each architecture's weights metadata as resfx's own data; these
tests check every field against torchvision's weights enums (the files, accuracy,
parameter counts, evaluation transforms, the default), and that each spec yields
its public factory, its docstring and its `PRETRAINED` entries.
"""

import inspect
from pathlib import Path

import PIL.Image
import pytest
import torch
import torchvision

from resfx import models, weights
from resfx._zoo import IMAGENET_MEAN, IMAGENET_STD, ZOO

API_PAGE = Path(__file__).resolve().parents[1] / "docs" / "api" / "models.md"


@pytest.mark.parametrize("arch", [name for name, spec in ZOO.items() if spec.torchvision_enum])
def test_weights_metadata_is_torchvisions(arch: str) -> None:
    spec = ZOO[arch]
    enum = getattr(torchvision.models, spec.torchvision_enum)
    assert [file.tag for file in spec.weights] == [entry.name for entry in enum]
    assert spec.default == enum.DEFAULT.name
    for file, entry in zip(spec.weights, enum, strict=True):
        metrics = entry.meta["_metrics"]["ImageNet-1K"]
        assert (file.url, file.recipe) == (entry.url, entry.meta["recipe"])
        assert (file.acc1, file.acc5) == (metrics["acc@1"], metrics["acc@5"])
        assert spec.num_params == entry.meta["num_params"]
        assert len(entry.meta["categories"]) == 1000
        preset = entry.transforms()
        ours = weights.PRETRAINED[f"{arch}.{file.tag}"]
        assert ours.url == entry.url and ours.hash_prefix == file.hash_prefix
        assert entry.url.endswith(f"-{ours.hash_prefix}.pth")
        transform = ours.transform
        assert [transform.crop_size] == list(preset.crop_size)
        assert [transform.resize_size] == list(preset.resize_size)
        assert transform.interpolation == preset.interpolation.value
        assert list(transform.mean) == list(preset.mean) == list(IMAGENET_MEAN)
        assert list(transform.std) == list(preset.std) == list(IMAGENET_STD)


def test_timm_names_and_the_transforms_of_the_recipes_they_copy() -> None:
    # timm's resnet.py default_cfgs: `<arch>.tv_in1k` for every architecture, `.tv2_in1k`
    # for those with torchvision V2 weights, each copying the file named in its origin
    for arch, spec in ZOO.items():
        tags = [copy.tag for copy in spec.timm]
        assert tags == ["tv_in1k", "tv2_in1k"][: len(spec.weights)]
        for copy in spec.timm:
            entry = weights.PRETRAINED[f"{arch}.{copy.tag}"]
            assert entry.file_name == f"timm-{arch}.{copy.tag}.safetensors"
            assert (
                entry.url
                == f"https://huggingface.co/timm/{arch}.{copy.tag}/resolve/main/model.safetensors"
            )
            assert entry.transform == weights.PRETRAINED[f"{arch}.{copy.recipe}"].transform
            assert copy.origin.startswith(f"{arch}-") and copy.origin_url in entry.description
    assert weights.PRETRAINED["resnet50.tv2_in1k"].transform.resize_size == 232
    assert weights.PRETRAINED["resnet50.tv_in1k"].transform.resize_size == 256


def test_each_spec_makes_one_exported_documented_factory() -> None:
    documented = API_PAGE.read_text()
    for arch, spec in ZOO.items():
        factory = getattr(models, arch, None)
        assert factory is not None and arch in models.__all__, (
            f"bind {arch} = _factory({arch!r}, ...) in models/_factory.py and export it"
        )
        assert f"::: resfx.models.{arch}" in documented, f"add {arch} to {API_PAGE.name}"
        assert factory.__name__ == arch and inspect.getdoc(factory).startswith(spec.summary)
        assert factory.__doc__.count(f"{spec.name}.tv_in1k") == len(spec.timm[:1])
        assert models.ARCHITECTURES[arch]["layers"] == spec.layers
    assert list(ZOO) == models.list_models()


def test_generated_factories_refuse_what_a_def_would(no_shape_checks: None) -> None:
    with pytest.raises(TypeError, match="too many positional arguments"):
        models.resnet18(10)
    with pytest.raises(TypeError, match="unexpected keyword argument 'groups'"):
        models.resnet18(groups=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'groups'"):
        models.wide_resnet50_2(groups=2)
    with torch.device("meta"):
        model = models.resnet50(width_per_group=128, num_classes=3)
    assert model.config.width_per_group == 128 and model.fc.out_features == 3


def test_the_factories_signatures_are_torchvisions() -> None:
    for arch in (name for name in ZOO if hasattr(torchvision.models, name)):
        ours = inspect.signature(getattr(models, arch)).parameters
        theirs = inspect.signature(getattr(torchvision.models, arch)).parameters
        assert list(ours)[:2] == list(theirs)[:2] == ["weights", "progress"]
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in ours.values())
        assert ours["progress"].default is True and ours["weights"].default is None


def test_weights_transforms_are_callable_and_give_torchvisions_tensors() -> None:
    # issue 21: torchvision's `weights.transforms()` is a call; resfx's entries answer it.
    # Two presets exist (resize 256 for V1, 232 for V2; the settings of every entry are
    # checked above); timm's copy takes its recipe's
    pixels = torch.randint(0, 256, (3, 301, 260), dtype=torch.uint8, generator=torch.Generator())
    image = PIL.Image.fromarray(pixels.permute(1, 2, 0).numpy())
    enum = torchvision.models.ResNet50_Weights
    for name, tag in (("IMAGENET1K_V1", "IMAGENET1K_V1"), ("tv2_in1k", "IMAGENET1K_V2")):
        ours = weights.PRETRAINED[f"resnet50.{name}"].transforms()
        theirs = enum[tag].transforms()
        for source in (image, pixels[None]):
            out = ours(source)
            assert out.dtype == torch.float32 and out.shape[-3:] == (3, 224, 224)
            assert torch.equal(out, theirs(source)), (name, type(source))
