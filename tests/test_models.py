"""The whole ResNet family against torchvision's, and the registry, weights names and stages.

Cost, kept small on 2 CPU cores: every architecture is built on the meta device (no
memory, no init) and compared with torchvision's, also on meta, by state-dict names,
shapes and dtypes and by every convolution's, BatchNorm's and pooling's settings.
Numerically (one train step on two 32x32 images in float32: logits, every gradient,
every BatchNorm buffer, then eval logits) the tests run each kind of block once --
resnet18 (basic), resnet50 (bottleneck), resnext50_32x4d (groups), wide_resnet50_2
(wide), a dilated resnet50 -- and resnet101 as the deep one; the other four differ
from these only in block counts, which the meta comparison covers.
`RESFX_TEST_BIG_MODELS=1` runs the train step on those four too (resnet152,
wide_resnet101_2, resnext101_32x8d, resnext101_64x4d: minutes on 2 cores).
"""

import math
import os

import pytest
import torch
import torchvision

import resfx
from resfx import models, weights
from resfx.models import FEATURE_STAGES, ResNet, ResNetConfig

ARCHS = [arch for arch in models.list_models() if hasattr(torchvision.models, arch)]
"""The architectures torchvision builds too: each is compared with torchvision's."""


def _random_state(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded values for every tensor of a model made with `to_empty` (He-scaled weights)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            state[name] = torch.zeros_like(tensor)
            continue
        noise = torch.randn(tensor.shape, generator=generator)
        if tensor.ndim == 4:
            fan_out = tensor.shape[0] * tensor.shape[2] * tensor.shape[3]
            state[name] = noise * math.sqrt(2 / fan_out)
        elif name == "fc.weight":
            state[name] = noise / math.sqrt(tensor.shape[1])
        elif name.endswith("running_var"):
            state[name] = 0.5 + noise.abs()
        elif name.endswith(("running_mean", "bias")):
            state[name] = 0.1 * noise
        else:
            state[name] = 1.0 + 0.1 * noise
    return state


def _twins(arch: str, **kwargs: object) -> tuple[torch.nn.Module, ResNet]:
    with torch.device("meta"):
        theirs = getattr(torchvision.models, arch)(**kwargs)
        ours = models.create_model(arch) if not kwargs else getattr(models, arch)(**kwargs)
    theirs.to_empty(device="cpu")
    ours.to_empty(device="cpu")
    state = _random_state(theirs, seed=len(arch))
    theirs.load_state_dict(state, strict=True)
    ours.load_state_dict(state, strict=True)
    return theirs, ours


@pytest.mark.parametrize("arch", ARCHS)
def test_state_dict_names_shapes_and_dtypes_are_torchvisions(arch: str) -> None:
    with torch.device("meta"):
        ours = models.create_model(arch).state_dict()
        theirs = getattr(torchvision.models, arch)().state_dict()
    assert list(ours) == list(theirs)
    assert {k: (v.shape, v.dtype) for k, v in ours.items()} == {
        k: (v.shape, v.dtype) for k, v in theirs.items()
    }


def _compare_train_step(theirs: torch.nn.Module, ours: ResNet) -> None:
    x = torch.randn(2, 3, 32, 32)
    target = torch.tensor([1, 7])
    theirs.train()
    ours.train()
    expected = theirs(x)
    logits = ours(x)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    torch.nn.functional.cross_entropy(expected, target).backward()
    torch.nn.functional.cross_entropy(logits, target).backward()
    their_params = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        expected_grad = their_params[name].grad
        scale = float(expected_grad.abs().max()) or 1.0
        torch.testing.assert_close(
            parameter.grad, expected_grad, atol=1e-5 * scale, rtol=1e-4, msg=name
        )
    their_buffers = dict(theirs.named_buffers())
    for name, buffer in ours.named_buffers():
        torch.testing.assert_close(buffer, their_buffers[name], atol=1e-6, rtol=1e-5, msg=name)
    theirs.eval()
    ours.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


_BIG = ("resnet152", "wide_resnet101_2", "resnext101_32x8d", "resnext101_64x4d")
_NUMERIC = [
    arch
    if arch not in _BIG
    else pytest.param(
        arch,
        marks=pytest.mark.skipif(
            os.environ.get("RESFX_TEST_BIG_MODELS") != "1",
            reason="covered by the meta comparison; RESFX_TEST_BIG_MODELS=1 runs it",
        ),
    )
    for arch in ARCHS
    if arch != "resnet34"  # tests/test_resnet.py compares ResNet34 in float64
]


@pytest.mark.parametrize("arch", _NUMERIC)
def test_train_step_and_eval_equal_torchvision(arch: str) -> None:
    _compare_train_step(*_twins(arch))


_SETTINGS = {
    "Conv2d": (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
    ),
    "BatchNorm2d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "MaxPool2d": ("kernel_size", "stride", "padding"),
    "Linear": ("in_features", "out_features"),
}


def _as_pair(value: object) -> object:
    return tuple(value) if isinstance(value, (tuple, list)) else value


def _settings(module: torch.nn.Module) -> tuple[object, ...]:
    """A layer's kind and hyperparameters; ints and pairs compare as torch.nn stores them."""
    kind = type(module).__name__
    values = [_as_pair(getattr(module, name)) for name in _SETTINGS.get(kind, ())]
    if kind == "MaxPool2d":
        values = [v if isinstance(v, tuple) else (v, v) for v in values]
    return (kind, *values)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_layer_has_torchvisions_settings(arch: str) -> None:
    with torch.device("meta"):
        ours = dict(models.create_model(arch).named_modules())
        theirs = dict(getattr(torchvision.models, arch)().named_modules())
    layers = [n for n, m in theirs.items() if type(m).__name__ in _SETTINGS]
    assert len(layers) > 40
    for name in layers:
        assert _settings(ours[name]) == _settings(theirs[name]), name


def test_dilated_resnet50_equals_torchvision() -> None:
    theirs, ours = _twins("resnet50", replace_stride_with_dilation=[False, True, True])
    assert ours.layer4[1].conv2.dilation == (4, 4)
    _compare_train_step(theirs, ours)


def test_zero_init_residual_starts_every_block_as_identity() -> None:
    ours = models.resnet50(zero_init_residual=True)
    theirs = torchvision.models.resnet50(zero_init_residual=True)
    ours_zero = sorted(n for n, p in ours.named_parameters() if not p.any())
    theirs_zero = sorted(n for n, p in theirs.named_parameters() if not p.any())
    assert ours_zero == theirs_zero and "layer1.0.bn3.weight" in ours_zero


def test_every_architecture_has_a_factory_with_torchvisions_keywords() -> None:
    import inspect

    for arch in ARCHS:
        ours = inspect.signature(getattr(models, arch)).parameters
        assert {"weights", "progress", "num_classes", "zero_init_residual"} <= set(ours)
        if arch.startswith("resnet") and arch not in ("resnet18", "resnet34"):
            assert {"groups", "width_per_group", "replace_stride_with_dilation"} <= set(ours)


def test_resnet18_named_weights_fetch_resnet18s_file(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched = []

    def fake_pretrained(config: ResNetConfig, name: str, progress: bool) -> ResNet:
        fetched.append(weights.PRETRAINED[name].file_name)
        with torch.device("meta"):
            return ResNet(config)

    monkeypatch.setattr("resfx.models._factory._pretrained", fake_pretrained)
    models.resnet18(weights="IMAGENET1K_V1")
    models.resnet50(weights="DEFAULT")
    models.resnet50(weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V1)
    models.resnet50(weights="resnet50.tv2_in1k")
    assert fetched == [
        "resnet18-f37072fd.pth",
        "resnet50-11ad3fa6.pth",
        "resnet50-0676ba61.pth",
        "timm-resnet50.tv2_in1k.safetensors",
    ]


def test_weights_of_another_architecture_are_refused_with_the_right_names() -> None:
    with pytest.raises(ValueError, match=r"'resnet34.tv_in1k' are resnet34's, not resnet18's"):
        models.resnet18(weights="resnet34.tv_in1k")
    with pytest.raises(ValueError, match="ResNet34_Weights.IMAGENET1K_V1 are weights for another"):
        models.resnet18(weights=torchvision.models.ResNet34_Weights.IMAGENET1K_V1)
    with pytest.raises(ValueError, match=r"neither a known name for resnet18 \(\['IMAGENET1K_V1'"):
        models.resnet18(weights="IMAGENET1K_V2")
    with pytest.raises(ValueError, match="unknown architecture 'resnet19'"):
        resfx.create_model("resnet19")


def test_create_model_replaces_the_head_of_pretrained_weights(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    spec = weights.PRETRAINED["resnet18.IMAGENET1K_V1"]
    monkeypatch.setattr("resfx.models._factory.fetch_pretrained", lambda name, progress: path)
    model = resfx.create_model("resnet18", weights="IMAGENET1K_V1", num_classes=10)
    assert spec.num_classes == 1000
    assert model.fc.out_features == 10 and model.config.num_classes == 10
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight)
    with pytest.raises(ValueError, match="has 1000 classes but num_classes=10"):
        models.resnet18(weights="IMAGENET1K_V1", num_classes=10)


def test_config_refuses_what_basic_blocks_cannot_do(no_shape_checks: None) -> None:
    with pytest.raises(ValueError, match="basic blocks support only groups=1"):
        ResNetConfig(block="basic", groups=2)
    with pytest.raises(ValueError, match="replace_stride_with_dilation should be"):
        ResNetConfig(block="bottleneck", replace_stride_with_dilation=(True,))
    with pytest.raises(ValueError, match="inner width"):
        ResNet(ResNetConfig(block="bottleneck", width=4, groups=2, width_per_group=4))


@pytest.fixture(scope="module")
def small() -> ResNet:
    torch.manual_seed(0)
    model = ResNet(ResNetConfig(width=8, block="bottleneck", layers=(1, 1, 1, 1)))
    return resfx.freeze(model)


def test_stage_outputs_are_the_forward_passs_intermediates(small: ResNet) -> None:
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = small.forward_stages(x)
        assert list(out) == list(FEATURE_STAGES)
        channels = small.config.stage_channels
        assert {k: v.shape[1] for k, v in out.items()} == channels
        torch.testing.assert_close(out["pooled"], small.forward_pooled(x), rtol=0, atol=0)
        stem = small.maxpool(small.relu(small.bn1(small.conv1(x))))
        torch.testing.assert_close(out["stem"], stem, rtol=0, atol=0)
        torch.testing.assert_close(out["layer2"], small.layer2(small.layer1(stem)), rtol=0, atol=0)
        folded = resfx.fold_batchnorm(small).forward_stages(x, ["layer3", "stem"])
    assert list(folded) == ["stem", "layer3"]
    torch.testing.assert_close(folded["layer3"], out["layer3"], atol=1e-5, rtol=1e-5)


def test_stage_names_are_data_on_the_model(small: ResNet, no_shape_checks: None) -> None:
    assert small.stage_names == models.STAGES and small.feature_stages == FEATURE_STAGES
    with pytest.raises(ValueError, match="distinct names from"):
        small.forward_stages(torch.randn(1, 3, 32, 32), ["layer5"])
    with pytest.raises(ValueError, match="distinct names from"):
        small.forward_stages(torch.randn(1, 3, 32, 32), ["stem", "stem"])


def test_torchvisions_feature_extractor_gives_torchvisions_tensors(no_shape_checks: None) -> None:
    from torchvision.models.feature_extraction import create_feature_extractor

    theirs, ours = _twins("resnet50")
    nodes = {"maxpool": "stem", "layer1": "layer1", "layer3": "layer3", "avgpool": "pooled"}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = create_feature_extractor(theirs.eval(), nodes)(x)
        got = create_feature_extractor(ours.eval(), nodes)(x)
        stages = ours.forward_stages(x, ["stem", "layer1", "layer3", "pooled"])
    assert list(got) == list(expected)
    for name in nodes.values():
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-5, msg=name)
    torch.testing.assert_close(stages["pooled"], expected["pooled"].flatten(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(stages["layer3"], got["layer3"], atol=0, rtol=0)
