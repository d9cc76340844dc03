"""resfx ResNet34 against torchvision's: same keys, same logits, same gradients, same statistics."""

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import resfx
from conftest import randomise_resnet_state
from resfx.models import STAGES, ResNet, ResNetConfig


@pytest.fixture(scope="module")
def twins() -> tuple[torch.nn.Module, ResNet]:
    torch.manual_seed(0)
    reference = torchvision.models.resnet34()
    state = randomise_resnet_state(reference, seed=1)
    ours = resfx.resnet34()
    ours.load_state_dict(state, strict=True)
    return reference, ours


def test_state_dict_keys_and_shapes_are_torchvisions() -> None:
    ours = resfx.resnet34().state_dict()
    theirs = torchvision.models.resnet34().state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert {k: v.dtype for k, v in ours.items()} == {k: v.dtype for k, v in theirs.items()}


def test_resnet18_is_the_same_constructor_with_other_counts() -> None:
    assert list(resfx.resnet18().state_dict()) == list(torchvision.models.resnet18().state_dict())


def test_eval_logits_equal_torchvision(twins) -> None:
    reference, ours = twins
    reference.eval()
    ours.eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=0)
        with resfx.nn.reference_ops():
            torch.testing.assert_close(ours(x), expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("reference_ops", [False, True])
def test_train_step_matches_torchvision_gradients_and_statistics(reference_ops: bool) -> None:
    torch.manual_seed(0)
    theirs = torchvision.models.resnet34(num_classes=10).double()
    state = randomise_resnet_state(theirs, seed=2)
    ours = resfx.resnet34(num_classes=10).double()
    ours.load_state_dict(state, strict=True)
    theirs.train()
    ours.train()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    target = torch.tensor([0, 3, 9, 3])
    with resfx.nn.reference_ops(reference_ops):
        logits = ours(x)
    expected = theirs(x)
    torch.testing.assert_close(logits, expected, atol=1e-10, rtol=1e-9)
    torch.nn.functional.cross_entropy(logits, target).backward()
    torch.nn.functional.cross_entropy(expected, target).backward()
    their_params = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(
            parameter.grad, their_params[name].grad, atol=1e-9, rtol=1e-7, msg=name
        )
    their_buffers = dict(theirs.named_buffers())
    for name, buffer in ours.named_buffers():
        torch.testing.assert_close(buffer, their_buffers[name], atol=1e-12, rtol=1e-10, msg=name)


def test_timm_style_safetensors_checkpoint_loads_and_agrees(tmp_path, twins) -> None:
    reference, _ = twins
    # timm's resnet34.tv_in1k has torchvision's keys; its file carries no counters
    state = {
        k: v.contiguous()
        for k, v in reference.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    ours = resfx.resnet34(weights=path).eval()
    reference.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=0)
    assert int(ours.bn1.num_batches_tracked) == 0


def test_stages_cover_every_parameter_once() -> None:
    model = ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1)))
    seen = [id(p) for stage in STAGES for m in model.stage(stage) for p in m.parameters()]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    with pytest.raises(ValueError, match="unknown stage 'layer5'"):
        model.stage("layer5")


def test_config_validation(no_shape_checks: None) -> None:
    with pytest.raises(ValueError, match="4 positive block counts"):
        ResNetConfig(layers=(1, 1, 1))
    with pytest.raises(ValueError, match="num_classes must be 0 .* or more and width positive"):
        ResNetConfig(num_classes=-1)


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (
            torch.randn(2, 1, 32, 32),
            ValueError,
            r"expected RGB input of shape \(batch, 3, height, width\), got \(2, 1, 32, 32\).*expand",
        ),
        (torch.randn(3, 32, 32), ValueError, r"got \(3, 32, 32\); add a batch axis"),
        (
            torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
            TypeError,
            r"floating-point images, got dtype torch.uint8 with shape \(2, 3, 32, 32\)",
        ),
    ],
)
def test_wrong_input_is_explained(x, error, message) -> None:
    model = ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1)))
    with pytest.raises(error, match=message):
        model(x)


def test_pretrained_with_other_class_count_is_explained() -> None:
    with pytest.raises(ValueError, match="has 1000 classes but num_classes=10"):
        resfx.resnet34(weights="IMAGENET1K_V1", num_classes=10)
