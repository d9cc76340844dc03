"""timm's model interface on resfx's ResNet: on the same weights, each method equals timm's.

Bitwise on the CPU (`torch.equal`), eval mode, one thread, for ResNet18, ResNet50,
ResNeXt50 and Wide ResNet50: `forward`, `forward_features`, `forward_head`,
`forward_intermediates`, `features_only` maps, `feature_info`, `num_features`,
`get_classifier` and `reset_classifier`. resfx's model is built on the meta device
and takes timm's tensors (torchvision's names, no mapping), so no weights are
initialised twice; 64x64 images keep the four architectures to a few seconds.
"""

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models import FeatureListNet

import resfx
from conftest import randomise_resnet_state
from resfx import weights
from resfx.models import TIMM_TAPS, ResNet, ResNetFeatures

ARCHS = ("resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One thread: the same kernels in both models, and faster on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _ours_with_their_weights(arch: str, theirs: torch.nn.Module) -> ResNet:
    with torch.device("meta"):
        ours = resfx.create_model(arch)
    ours.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    return ours.eval()


@pytest.fixture(scope="module", params=ARCHS)
def pair(request: pytest.FixtureRequest) -> tuple[ResNet, torch.nn.Module]:
    torch.manual_seed(0)
    theirs = timm.create_model(request.param, pretrained=False).eval()
    randomise_resnet_state(theirs, seed=1)  # BatchNorm statistics that are not the identity
    return _ours_with_their_weights(request.param, theirs), theirs


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))


def test_forward_features_and_head_equal_timms(
    pair: tuple[ResNet, torch.nn.Module], images: torch.Tensor
) -> None:
    ours, theirs = pair
    with torch.no_grad():
        maps = ours.forward_features(images)
        assert maps.shape == (2, ours.num_features, 2, 2)
        assert torch.equal(maps, theirs.forward_features(images))
        assert torch.equal(ours(images), theirs(images))
        for pre_logits in (False, True):
            head = ours.forward_head(maps, pre_logits=pre_logits)
            assert torch.equal(head, theirs.forward_head(maps, pre_logits=pre_logits))
        assert torch.equal(ours.forward_pooled(images), head)  # the old forward_features
    assert ours.num_features == theirs.num_features == head.shape[1]


def test_forward_intermediates_equal_timms(
    pair: tuple[ResNet, torch.nn.Module], images: torch.Tensor
) -> None:
    ours, theirs = pair
    # all maps; the last n; one map stopping right after it (timm still runs the maxpool);
    # indices out of order and from the end, stopping early
    cases = ((None, False), (2, False), ([0], True), ([-2, 1], True))
    with torch.no_grad():
        for indices, stop_early in cases:
            last, maps = ours.forward_intermediates(images, indices, stop_early=stop_early)
            their_last, their_maps = theirs.forward_intermediates(
                images, indices, stop_early=stop_early
            )
            assert torch.equal(last, their_last), (indices, stop_early)
            assert len(maps) == len(their_maps) > 0
            assert all(torch.equal(a, b) for a, b in zip(maps, their_maps, strict=True))
        only = ours.forward_intermediates(images, [1, 2], stop_early=True, intermediates_only=True)
        theirs_only = theirs.forward_intermediates(
            images, [1, 2], stop_early=True, intermediates_only=True
        )
        assert all(torch.equal(a, b) for a, b in zip(only, theirs_only, strict=True))


def test_feature_info_is_timms_with_resfx_module_names(
    pair: tuple[ResNet, torch.nn.Module],
) -> None:
    ours, theirs = pair
    renamed = {"act1": "relu"}
    expected = [
        {**info, "module": renamed.get(info["module"], info["module"])}
        for info in theirs.feature_info
    ]
    assert ours.feature_info == expected
    assert [info["module"] for info in ours.feature_info] == list(TIMM_TAPS)


def test_features_only_maps_equal_timms(
    pair: tuple[ResNet, torch.nn.Module], images: torch.Tensor
) -> None:
    ours, theirs = pair
    for out_indices in ((0, 1, 2, 3, 4), (1, 3), (0,), 2):
        features = ResNetFeatures(ours, out_indices).eval()
        their_features = FeatureListNet(theirs, out_indices=out_indices).eval()
        assert list(features.state_dict()) == list(their_features.state_dict())
        with torch.no_grad():
            maps, their_maps = features(images), their_features(images)
        assert len(maps) == len(their_maps) == len(features.out_indices)
        assert all(torch.equal(a, b) for a, b in zip(maps, their_maps, strict=True))
        info, their_info = features.feature_info, their_features.feature_info
        assert info.channels() == their_info.channels() == [m.shape[1] for m in maps]
        assert info.reduction() == their_info.reduction()
        assert info.channels(0) == their_info.channels(0)


def test_classifier_reset_as_timms(
    pair: tuple[ResNet, torch.nn.Module], images: torch.Tensor
) -> None:
    ours, theirs = (copy.deepcopy(model) for model in pair)
    assert torch.equal(ours.get_classifier().weight, theirs.get_classifier().weight)
    with torch.no_grad():
        maps = ours.forward_features(images)
        ours.reset_classifier(0)
        theirs.reset_classifier(0)
        assert isinstance(ours.get_classifier(), torch.nn.Identity)
        assert ours.config.num_classes == 0
        pooled = ours.forward_head(maps)
        assert torch.equal(pooled, theirs.forward_head(maps))
        assert pooled.shape == (2, ours.num_features)
        ours.reset_classifier(7)
        theirs.reset_classifier(7)
        ours_fc, theirs_fc = ours.get_classifier(), theirs.get_classifier()
        assert (ours_fc.in_features, ours_fc.out_features) == (theirs_fc.in_features, 7)
        assert ours.forward_head(maps).shape == theirs.forward_head(maps).shape == (2, 7)
    with pytest.raises(ValueError, match="num_classes must be 0 .* got -1"):
        ours.reset_classifier(-1)


def test_create_model_features_only_matches_timms_layout() -> None:
    with torch.device("meta"):
        ours = resfx.create_model("resnet18", features_only=True, out_indices=(0, 2))
        theirs = timm.create_model("resnet18", features_only=True, out_indices=(0, 2))
    assert isinstance(ours, ResNetFeatures)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.feature_info.channels() == theirs.feature_info.channels() == [64, 128]
    assert ours.feature_info.module_name() == ["relu", "layer2"]
    with pytest.raises(ValueError, match=r"increasing without repeats .* got \(3, 1\)"):
        resfx.create_model("resnet18", features_only=True, out_indices=(3, 1))
    with pytest.raises(ValueError, match="feature index 5 is out of range"):
        resfx.create_model("resnet18", features_only=True, out_indices=(5,))
    with pytest.raises(ValueError, match="pass features_only=True"):
        resfx.create_model("resnet18", out_indices=(1,))


def test_arch_dot_tag_names_and_unknown_tags() -> None:
    with torch.device("meta"):
        model = resfx.create_model("resnet34.tv_in1k", num_classes=0)  # random init, as timm
    assert model.config.layers == (3, 4, 6, 3) and model.num_features == 512
    with pytest.raises(ValueError) as caught:
        resfx.create_model("resnet18.a1_in1k")
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "unknown weights tag 'a1_in1k' in 'resnet18.a1_in1k'; resnet18 has tags "
        "['IMAGENET1K_V1', 'tv_in1k']"
    )
    with pytest.raises(ValueError, match="not both"):
        resfx.create_model("resnet18.tv_in1k", weights="IMAGENET1K_V1")


def test_pretrained_loads_the_tagged_file_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: torch.Tensor
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    theirs = timm.create_model("resnet18").eval()
    state = randomise_resnet_state(theirs, seed=3)
    cached = weights.PRETRAINED["resnet18.tv_in1k"].cache_path
    cached.parent.mkdir(parents=True)
    save_file({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, cached)
    ours = resfx.create_model("resnet18.tv_in1k", pretrained=True).eval()
    headless = resfx.create_model("resnet18.tv_in1k", pretrained=True, num_classes=0).eval()
    with torch.no_grad():
        assert torch.equal(ours(images), theirs(images))
        assert torch.equal(
            headless(images), theirs.forward_head(theirs.forward_features(images), pre_logits=True)
        )
