"""resfx.nn modules against their torch.nn twins: names, initialisation, values, gradients."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn as tnn

from resfx import nn

f64 = torch.float64


def _same_init(make_ours, make_theirs, seed: int = 3) -> tuple[tnn.Module, tnn.Module]:
    torch.manual_seed(seed)
    ours = make_ours()
    torch.manual_seed(seed)
    theirs = make_theirs()
    return ours, theirs


@pytest.mark.parametrize(
    ("make_ours", "make_theirs"),
    [
        (
            lambda: nn.Conv2d(3, 5, (3, 2), stride=2, padding=(1, 0)),
            lambda: tnn.Conv2d(3, 5, (3, 2), stride=2, padding=(1, 0)),
        ),
        (lambda: nn.Conv2d(4, 2, 1, bias=False), lambda: tnn.Conv2d(4, 2, 1, bias=False)),
        (lambda: nn.Linear(7, 3), lambda: tnn.Linear(7, 3)),
        (lambda: nn.Linear(7, 3, bias=False), lambda: tnn.Linear(7, 3, bias=False)),
        (lambda: nn.BatchNorm2d(6), lambda: tnn.BatchNorm2d(6)),
        (
            lambda: nn.BatchNorm2d(6, affine=False, track_running_stats=False),
            lambda: tnn.BatchNorm2d(6, affine=False, track_running_stats=False),
        ),
    ],
)
def test_names_shapes_and_initialisation_match_torch_bitwise(make_ours, make_theirs) -> None:
    ours, theirs = _same_init(make_ours, make_theirs)
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for name, tensor in theirs_state.items():
        assert torch.equal(ours_state[name], tensor), name
    # state dicts round-trip strictly in both directions
    ours.load_state_dict(theirs_state, strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)


def _compare(ours: tnn.Module, theirs: tnn.Module, x: torch.Tensor, *, reference: bool) -> None:
    theirs.load_state_dict(ours.state_dict())
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    with nn.reference_ops(reference):
        y_ours = ours(x_ours)
    y_theirs = theirs(x_theirs)
    torch.testing.assert_close(y_ours, y_theirs)
    upstream = torch.randn_like(y_theirs)
    params_ours = [p for p in ours.parameters()]
    params_theirs = [p for p in theirs.parameters()]
    torch.testing.assert_close(
        torch.autograd.grad(y_ours, [x_ours, *params_ours], upstream),
        torch.autograd.grad(y_theirs, [x_theirs, *params_theirs], upstream),
    )
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


@given(
    groups=st.sampled_from([1, 2]),
    c_in=st.integers(1, 2),
    c_out=st.integers(1, 2),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.sampled_from([0, 1, (1, 0), "same", "valid"]),
    dilation=st.sampled_from([1, 2, (1, 2)]),
    padding_mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
    bias=st.booleans(),
    batch=st.sampled_from([(), (1,), (3,)]),
    reference=st.booleans(),
)
def test_conv2d_module_matches_torch(
    groups, c_in, c_out, k, stride, padding, dilation, padding_mode, bias, batch, reference
):
    if padding == "same":
        stride = 1
    args = (groups * c_in, groups * c_out, k, stride, padding, dilation, groups, bias, padding_mode)
    ours = nn.Conv2d(*args, dtype=f64)
    theirs = tnn.Conv2d(*args, dtype=f64)
    assert repr(ours) == repr(theirs)
    _compare(ours, theirs, torch.randn(*batch, groups * c_in, 6, 5, dtype=f64), reference=reference)


def test_modules_build_on_the_meta_device_and_in_any_dtype() -> None:
    modules = [
        lambda **kw: nn.Conv2d(4, 6, 3, groups=2, **kw),
        lambda **kw: nn.Linear(4, 3, **kw),
        lambda **kw: nn.BatchNorm2d(4, **kw),
    ]
    for make in modules:
        meta = make(device="meta")
        assert {t.device.type for t in meta.state_dict().values()} == {"meta"}
        real = make(dtype=f64)
        assert {t.dtype for t in real.parameters()} == {f64}
        meta.load_state_dict(real.state_dict(), assign=True)
        for name, tensor in meta.state_dict().items():
            assert torch.equal(tensor, real.state_dict()[name]), name
    bn = nn.BatchNorm2d(3, dtype=torch.float16)
    assert bn.num_batches_tracked.dtype == torch.long
    assert bn.running_var.dtype == torch.float16


def test_batchnorm_without_bias_matches_torch() -> None:
    ours, theirs = nn.BatchNorm2d(3, bias=False).double(), tnn.BatchNorm2d(3, bias=False).double()
    assert ours.bias is None and list(ours.state_dict()) == list(theirs.state_dict())
    for reference in (False, True):
        _compare(ours, theirs, torch.randn(4, 3, 2, 2, dtype=f64), reference=reference)


@given(
    momentum=st.one_of(st.none(), st.floats(0.0, 1.0)),
    affine=st.booleans(),
    track=st.booleans(),
    training=st.booleans(),
    steps=st.integers(1, 3),
    reference=st.booleans(),
    batch=st.integers(2, 4),
)
def test_batchnorm_module_matches_torch_over_steps(
    momentum, affine, track, training, steps, reference, batch
):
    ours = nn.BatchNorm2d(3, momentum=momentum, affine=affine, track_running_stats=track).double()
    theirs = tnn.BatchNorm2d(
        3, momentum=momentum, affine=affine, track_running_stats=track
    ).double()
    ours.train(training)
    theirs.train(training)
    for step in range(steps):
        x = torch.randn(batch, 3, 4, 3, dtype=f64) * (step + 1) + step
        _compare(ours, theirs, x, reference=reference)


@given(
    reference=st.booleans(),
    batch=st.sampled_from([(), (1,), (3,)]),
    k=st.integers(1, 4),
    stride=st.one_of(st.none(), st.integers(1, 3)),
    dilation=st.integers(1, 2),
    ceil_mode=st.booleans(),
    count_include_pad=st.booleans(),
    output_size=st.sampled_from([1, 2, 5, (3, None), (None, 1)]),
)
def test_parameter_free_modules_match_torch(
    reference, batch, k, stride, dilation, ceil_mode, count_include_pad, output_size
):
    x = torch.randn(*batch, 2, 7, 6, dtype=f64)
    pool = (k, stride, k // 2)
    pairs = [
        (nn.ReLU(), tnn.ReLU()),
        (
            nn.MaxPool2d(*pool, dilation, ceil_mode=ceil_mode),
            tnn.MaxPool2d(*pool, dilation, ceil_mode=ceil_mode),
        ),
        (
            nn.AvgPool2d(*pool, ceil_mode, count_include_pad),
            tnn.AvgPool2d(*pool, ceil_mode, count_include_pad),
        ),
        (nn.AdaptiveAvgPool2d(output_size), tnn.AdaptiveAvgPool2d(output_size)),
        (nn.Flatten(), tnn.Flatten()),
        (nn.Flatten(0, 1), tnn.Flatten(0, 1)),
        (nn.Sequential(nn.ReLU(), nn.Flatten()), tnn.Sequential(tnn.ReLU(), tnn.Flatten())),
    ]
    if batch:
        pairs.append(
            (nn.GlobalAvgPool2d(), tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten()))
        )
    for ours, theirs in pairs:
        _compare(ours, theirs, x, reference=reference)


@pytest.mark.parametrize("reference", [False, True])
def test_max_pool_indices_and_ties_match_torch(reference: bool) -> None:
    x = torch.tensor([[[3.0, 3.0, 1.0], [3.0, 2.0, 0.0], [5.0, 5.0, 5.0]]], dtype=f64)
    ours, theirs = nn.MaxPool2d(2, 1, return_indices=True), tnn.MaxPool2d(2, 1, return_indices=True)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    with nn.reference_ops(reference):
        values, indices = ours(x_ours)
    expected_values, expected_indices = theirs(x_theirs)
    assert torch.equal(values, expected_values) and torch.equal(indices, expected_indices)
    # ties send the gradient to the first maximum of each window, as torch's kernel does
    values.sum().backward()
    expected_values.sum().backward()
    assert torch.equal(x_ours.grad, x_theirs.grad)
    assert indices.tolist() == [[[0, 1], [6, 7]]]


def test_relu_in_place_matches_torch() -> None:
    for reference in (False, True):
        x, expected = (
            torch.tensor([-1.0, 2.0, float("nan")]),
            torch.tensor([-1.0, 2.0, float("nan")]),
        )
        with nn.reference_ops(reference):
            out = nn.ReLU(inplace=True)(x)
        tnn.ReLU(inplace=True)(expected)
        assert out is x
        torch.testing.assert_close(x, expected, equal_nan=True)
    assert repr(nn.ReLU(inplace=True)) == repr(tnn.ReLU(inplace=True))


def test_linear_module_matches_torch_on_leading_axes() -> None:
    ours, theirs = nn.Linear(4, 3).double(), tnn.Linear(4, 3).double()
    for reference in (False, True):
        _compare(ours, theirs, torch.randn(2, 5, 4, dtype=f64), reference=reference)


def test_batchnorm_cumulative_average_by_hand() -> None:
    bn = nn.BatchNorm2d(1, momentum=None, affine=False)
    for value in (2.0, 4.0, 9.0):
        bn(torch.full((2, 1, 1, 1), value) + torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1))
    assert int(bn.num_batches_tracked) == 3
    assert bn.running_mean.item() == pytest.approx(5.0)  # mean of 2, 4, 9
    assert bn.running_var.item() == pytest.approx(2.0)  # unbiased var of (v-1, v+1) is 2 each


def test_batchnorm_loads_checkpoints_without_counter() -> None:
    bn = nn.BatchNorm2d(2)
    state = {k: v for k, v in tnn.BatchNorm2d(2).state_dict().items() if "num_batches" not in k}
    bn.load_state_dict(state, strict=True)
    assert int(bn.num_batches_tracked) == 0


def test_reference_switch_restores_previous_setting() -> None:
    assert not nn.using_reference_ops()
    with nn.reference_ops():
        assert nn.using_reference_ops()
        with nn.reference_ops(False):
            assert not nn.using_reference_ops()
        assert nn.using_reference_ops()
    assert not nn.using_reference_ops()


def test_modules_reject_bad_configuration_and_input(no_shape_checks: None) -> None:
    with pytest.raises(ValueError, match="in_channels >= 1"):
        nn.Conv2d(0, 3, 3)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        nn.Conv2d(1, 3, (0, 3))
    with pytest.raises(
        ValueError,
        match=r"Conv2d expected input of shape \(3, h, w\) or \(b, 3, h, w\), got \(1, 4, 5, 5\)",
    ):
        nn.Conv2d(3, 3, 3)(torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        nn.Conv2d(3, 3, 3, dilation=3)(torch.randn(3, 5, 5))
    with pytest.raises(ValueError, match="by at most 1 on each side"):
        nn.Conv2d(1, 1, 5, padding=2, padding_mode="reflect")(torch.randn(1, 2, 2))
    with pytest.raises(ValueError, match="groups=2 for 3 and 4 channels"):
        nn.Conv2d(3, 4, 1, groups=2)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 4, 1, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"BatchNorm2d expected 4-D input of shape \(b, 2, h, w\)"):
        nn.BatchNorm2d(2)(torch.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match="momentum must be in"):
        nn.BatchNorm2d(2, momentum=1.5)
    with pytest.raises(ValueError, match=r"Linear expected input of shape \(\.\.\., 4\)"):
        nn.Linear(4, 2)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="at most half the kernel"):
        nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="does not fit an input of rank 2"):
        nn.Flatten(1, 3)(torch.randn(2, 3))
    with pytest.raises(TypeError, match="takes nn.Module instances, got int at position 1"):
        nn.Sequential(nn.ReLU(), 3)
    with pytest.raises(IndexError, match="length 1 has no index 4"):
        nn.Sequential(nn.ReLU())[4]


def test_shape_annotations_are_checked_at_runtime_in_the_suite() -> None:
    # The jaxtyping import hook is on in the tests: a rank-3 input fails the annotation.
    with pytest.raises(TypeError, match=r"(?s)parameter 'input'.*f32\[2,2,3\].*b c h w"):
        nn.BatchNorm2d(2)(torch.randn(2, 2, 3))
