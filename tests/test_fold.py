"""BatchNorm folding: the folded copy computes what the eval-mode model computes."""

import pytest
import torch
import torchvision
from hypothesis import given
from hypothesis import strategies as st

import resfx
from conftest import randomise_resnet_state
from resfx import fold_batchnorm
from resfx.models import ResNet, ResNetConfig


@pytest.mark.parametrize(
    "make",
    [
        lambda: ResNet(ResNetConfig(width=8, layers=(1, 2, 1, 1))),
        lambda: torchvision.models.resnet18(num_classes=7),
    ],
)
def test_folded_resnet_matches_eval_model_without_any_batchnorm(make) -> None:
    model = make()
    randomise_resnet_state(model, seed=4)
    model.eval()
    folded = fold_batchnorm(model)
    norms = (resfx.nn.BatchNorm2d, torch.nn.BatchNorm2d)
    assert not any(isinstance(m, norms) for m in folded.modules())
    assert sum(isinstance(m, norms) for m in model.modules()) > 0, "original untouched"
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=2e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in folded.parameters())
    assert not folded.training


@given(
    c_in=st.integers(1, 4),
    c_out=st.integers(1, 4),
    bias=st.booleans(),
    affine=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_folding_one_pair_is_exact_in_float64(c_in, c_out, bias, affine, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    pair = resfx.nn.Sequential(
        resfx.nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias),
        resfx.nn.BatchNorm2d(c_out, affine=affine),
    ).double()
    with torch.no_grad():
        pair[1].running_mean.copy_(torch.randn(c_out, generator=g))
        pair[1].running_var.copy_(torch.rand(c_out, generator=g) + 0.1)
        if affine:
            pair[1].weight.copy_(torch.randn(c_out, generator=g))
    pair.eval()
    x = torch.randn(2, c_in, 5, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fold_batchnorm(pair)(x), pair(x))


def test_batchnorm_without_running_statistics_cannot_be_folded() -> None:
    pair = resfx.nn.Sequential(
        resfx.nn.Conv2d(1, 2, 1), resfx.nn.BatchNorm2d(2, track_running_stats=False)
    )
    with pytest.raises(ValueError, match="without running statistics"):
        fold_batchnorm(pair)


class _PreActivationBlock(torch.nn.Module):
    """BatchNorm before each convolution (He et al. 2016, "identity mappings")."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn1 = resfx.nn.BatchNorm2d(channels)
        self.conv1 = resfx.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = resfx.nn.BatchNorm2d(channels)
        self.conv2 = resfx.nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        return x + self.conv2(torch.relu(self.bn2(out)))


def test_a_pre_activation_block_is_refused_not_folded_wrongly() -> None:
    block = _PreActivationBlock(4)
    with pytest.raises(ValueError, match="registers bn1 before conv1, as a pre-activation block"):
        fold_batchnorm(block)
