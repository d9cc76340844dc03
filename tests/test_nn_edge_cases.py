"""The edge cases where torch.nn defines behaviour: both resfx paths do what torch does."""

import pytest
import torch
from torch import nn as tnn

from resfx import nn
from resfx.models import ResNet, ResNetConfig

f64 = torch.float64
PATHS = [pytest.param(False, id="fused"), pytest.param(True, id="reference")]


def _run(module: tnn.Module, x: torch.Tensor, reference: bool) -> torch.Tensor:
    with nn.reference_ops(reference):
        return module(x)


@pytest.mark.parametrize("reference", PATHS)
@pytest.mark.parametrize(
    ("module", "x", "message"),
    [
        (
            nn.BatchNorm2d(3),
            torch.randn(3, 4, 4),
            r"4-D input of shape \(b, 3, h, w\), got \(3, 4, 4\); add a batch",
        ),
        (nn.BatchNorm2d(3), torch.randn(2, 3), r"4-D input of shape \(b, 3, h, w\), got \(2, 3\)"),
        (nn.BatchNorm2d(3), torch.randn(2, 3, 4, 4, 4), r"4-D input .* got \(2, 3, 4, 4, 4\)"),
        (nn.Conv2d(3, 4, 3), torch.randn(1, 1, 3, 5, 5), r"\(3, h, w\) or \(b, 3, h, w\)"),
        (nn.Conv2d(3, 4, 3), torch.randn(3, 5), r"\(3, h, w\) or \(b, 3, h, w\), got \(3, 5\)"),
        (nn.MaxPool2d(3), torch.randn(1, 1, 2, 2), r"gives an empty output \(0, 0\)"),
        (nn.MaxPool2d(2), torch.randn(4, 4), r"\(c, h, w\) or \(b, c, h, w\)"),
        (nn.AvgPool2d(3), torch.randn(1, 2, 2), r"gives an empty output"),
        (nn.AdaptiveAvgPool2d(2), torch.randn(1, 0, 4, 4), r"with c, h, w > 0, got \(1, 0, 4, 4\)"),
        (nn.Linear(3, 2), torch.randn(4, 2), r"\(\.\.\., 3\), got \(4, 2\)"),
        (nn.BatchNorm2d(3).train(), torch.randn(1, 3, 1, 1), "more than 1 value per channel"),
    ],
)
def test_inputs_torch_refuses_are_refused_on_both_paths(
    no_shape_checks: None, module: tnn.Module, x: torch.Tensor, message: str, reference: bool
) -> None:
    with pytest.raises(ValueError, match=message):
        _run(module, x, reference)


@pytest.mark.parametrize("reference", PATHS)
def test_empty_batches_match_torch(reference: bool) -> None:
    pairs = [
        (nn.Conv2d(3, 4, 3, padding=1, groups=1), tnn.Conv2d(3, 4, 3, padding=1)),
        (nn.MaxPool2d(3, 2, 1), tnn.MaxPool2d(3, 2, 1)),
        (nn.AvgPool2d(2), tnn.AvgPool2d(2)),
        (nn.AdaptiveAvgPool2d(2), tnn.AdaptiveAvgPool2d(2)),
        (nn.ReLU(), tnn.ReLU()),
    ]
    x = torch.randn(0, 3, 6, 6)
    for ours, theirs in pairs:
        theirs.load_state_dict(ours.state_dict())
        out = _run(ours, x, reference)
        assert out.shape == theirs(x).shape
    ours, theirs = nn.BatchNorm2d(3).train(), tnn.BatchNorm2d(3).train()
    assert _run(ours, x, reference).shape == (0, 3, 6, 6)
    theirs(x)
    # torch counts the empty batch but leaves the running statistics as they were
    for name, tensor in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], tensor), name
    assert _run(nn.Linear(3, 2), torch.randn(0, 3), reference).shape == (0, 2)


@pytest.mark.parametrize("reference", PATHS)
def test_nan_and_inf_pass_through_like_torch(reference: bool) -> None:
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 2.0])
    torch.testing.assert_close(_run(nn.ReLU(), x, reference), torch.relu(x), equal_nan=True)
    image = torch.randn(1, 3, 32, 32)
    image[0, 0, 5, 5] = float("nan")
    model = ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1), num_classes=3)).eval()
    assert _run(model, image, reference).isnan().all()


@pytest.mark.parametrize("reference", PATHS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_keeps_its_dtype(reference: bool, dtype: torch.dtype) -> None:
    modules = [
        nn.Conv2d(3, 4, 3, padding=1, groups=1, dtype=dtype),
        nn.BatchNorm2d(3),  # float32 statistics on half input, as torch allows
        nn.BatchNorm2d(3, dtype=dtype).eval(),
        nn.MaxPool2d(2, return_indices=False),
        nn.AvgPool2d(2),
        nn.AdaptiveAvgPool2d(3),
        nn.GlobalAvgPool2d(),
        nn.ReLU(),
    ]
    x = torch.randn(2, 3, 6, 6, dtype=dtype)
    for module in modules:
        assert _run(module, x, reference).dtype == dtype, module
    assert _run(nn.Linear(3, 2, dtype=dtype), x[:, :, 0, 0], reference).dtype == dtype


def test_cpu_bf16_autocast_gives_the_same_dtypes_and_values_on_both_paths() -> None:
    model = ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1), num_classes=3))
    x = torch.randn(2, 3, 32, 32)
    for training in (False, True):
        model.train(training)
        outputs = []
        for reference in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16), nn.reference_ops(reference):
                features = model.forward_pooled(x)
                outputs.append((features, model.fc(features)))
        (fused_features, fused_logits), (ref_features, ref_logits) = outputs
        assert fused_features.dtype == ref_features.dtype == torch.bfloat16
        assert fused_logits.dtype == ref_logits.dtype == torch.bfloat16
        torch.testing.assert_close(ref_logits, fused_logits, atol=0.1, rtol=0.05)
