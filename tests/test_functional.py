"""The reference ops against torch.nn.functional, by hand, and under gradcheck."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from resfx import functional as RF

f64 = torch.float64


@st.composite
def conv_cases(draw: st.DrawFn) -> dict:
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    return {
        "shape": (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w),
        "c_out": draw(st.integers(1, 4)),
        "kernel": (kh, kw),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": (ph, pw),
        "bias": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


@given(conv_cases())
def test_conv2d_matches_torch_in_value_and_gradient(case: dict) -> None:
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["shape"], generator=g, dtype=f64, requires_grad=True)
    weight = torch.randn(
        case["c_out"], case["shape"][1], *case["kernel"], generator=g, dtype=f64
    ).requires_grad_()
    bias = (
        torch.randn(case["c_out"], generator=g, dtype=f64).requires_grad_()
        if case["bias"]
        else None
    )
    args = (case["stride"], case["padding"])
    ours = RF.conv2d(x, weight, bias, *args)
    theirs = F.conv2d(x, weight, bias, *args)
    torch.testing.assert_close(ours, theirs)
    upstream = torch.randn(ours.shape, generator=g, dtype=f64)
    inputs = [t for t in (x, weight, bias) if t is not None]
    torch.testing.assert_close(
        torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(theirs, inputs, upstream)
    )


@st.composite
def pool_cases(draw: st.DrawFn) -> dict:
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    return {
        "shape": (
            draw(st.integers(1, 3)),
            draw(st.integers(1, 3)),
            draw(st.integers(kh, 9)),
            draw(st.integers(kw, 9)),
        ),
        "kernel": (kh, kw),
        "stride": stride,
        "padding": (ph, pw),
        "seed": draw(st.integers(0, 2**16)),
    }


@given(pool_cases())
def test_max_pool2d_matches_torch_in_value_and_gradient(case: dict) -> None:
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["shape"], generator=g, dtype=f64, requires_grad=True)
    ours = RF.max_pool2d(x, case["kernel"], case["stride"], case["padding"])
    theirs = F.max_pool2d(x, case["kernel"], case["stride"], case["padding"])
    torch.testing.assert_close(ours, theirs)
    upstream = torch.randn(ours.shape, generator=g, dtype=f64)
    torch.testing.assert_close(
        torch.autograd.grad(ours, x, upstream), torch.autograd.grad(theirs, x, upstream)
    )


@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
    training=st.booleans(),
    affine=st.booleans(),
    momentum=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_batch_norm_matches_torch(
    shape: tuple, training: bool, affine: bool, momentum: float, seed: int
) -> None:
    if training and shape[0] * shape[2] * shape[3] < 2:
        shape = (2, *shape[1:])
    g = torch.Generator().manual_seed(seed)
    c = shape[1]
    x = torch.randn(shape, generator=g, dtype=f64, requires_grad=True)
    weight = torch.randn(c, generator=g, dtype=f64).requires_grad_() if affine else None
    bias = torch.randn(c, generator=g, dtype=f64).requires_grad_() if affine else None
    mean = torch.randn(c, generator=g, dtype=f64)
    var = torch.rand(c, generator=g, dtype=f64) + 0.5
    ours_stats, theirs_stats = (mean.clone(), var.clone()), (mean.clone(), var.clone())
    ours = RF.batch_norm(x, *ours_stats, weight, bias, training, momentum, 1e-5)
    theirs = F.batch_norm(x, *theirs_stats, weight, bias, training, momentum, 1e-5)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours_stats, theirs_stats)
    inputs = [t for t in (x, weight, bias) if t is not None]
    upstream = torch.randn(shape, generator=g, dtype=f64)
    torch.testing.assert_close(
        torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(theirs, inputs, upstream)
    )


@given(batch=st.integers(1, 4), d_in=st.integers(1, 6), d_out=st.integers(1, 6), bias=st.booleans())
def test_linear_relu_and_pool_match_torch(batch: int, d_in: int, d_out: int, bias: bool) -> None:
    x = torch.randn(batch, d_in, dtype=f64)
    weight = torch.randn(d_out, d_in, dtype=f64)
    b = torch.randn(d_out, dtype=f64) if bias else None
    torch.testing.assert_close(RF.linear(x, weight, b), F.linear(x, weight, b))
    torch.testing.assert_close(RF.relu(x), F.relu(x))
    maps = torch.randn(batch, d_in, d_out, 3, dtype=f64)
    torch.testing.assert_close(
        RF.global_avg_pool2d(maps), F.adaptive_avg_pool2d(maps, 1).flatten(1)
    )


def test_conv2d_by_hand() -> None:
    x = torch.tensor([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])
    weight = torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]]])
    # each output is top-left minus bottom-right of its 2x2 window: always 1 - 5 = -4
    assert RF.conv2d(x, weight, torch.tensor([0.5])).tolist() == [[[[-3.5, -3.5], [-3.5, -3.5]]]]
    # padding 1, stride 2: windows centred on the corners see one input pixel each
    out = RF.conv2d(x, torch.ones(1, 1, 3, 3), stride=2, padding=1)
    assert out.tolist() == [[[[12.0, 16.0], [24.0, 28.0]]]]


def test_batch_norm_by_hand() -> None:
    # one channel holding 1, 3 (batch 2, 1x1): mean 2, biased var 1, unbiased var 2
    x = torch.tensor([[[[1.0]]], [[[3.0]]]])
    running_mean, running_var = torch.zeros(1), torch.ones(1)
    out = RF.batch_norm(
        x,
        running_mean,
        running_var,
        torch.tensor([2.0]),
        torch.tensor([1.0]),
        training=True,
        momentum=0.5,
        eps=0.0,
    )
    assert out.flatten().tolist() == [-1.0, 3.0]
    assert running_mean.tolist() == [1.0]  # 0.5 * 0 + 0.5 * 2
    assert running_var.tolist() == [1.5]  # 0.5 * 1 + 0.5 * 2 (unbiased)
    evaluated = RF.batch_norm(x, running_mean, running_var, training=False, eps=0.0)
    assert torch.allclose(evaluated.flatten(), torch.tensor([0.0, 2.0]) / 1.5**0.5)


def test_reference_ops_pass_gradcheck() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 5, 4, generator=g, dtype=f64, requires_grad=True)
    w = torch.randn(3, 2, 3, 2, generator=g, dtype=f64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: RF.conv2d(*t, stride=(2, 1), padding=1), (x, w, b))
    assert torch.autograd.gradcheck(lambda t: RF.max_pool2d(t, 3, 2, 1), (x,))
    gamma = torch.randn(2, generator=g, dtype=f64, requires_grad=True)
    beta = torch.randn(2, generator=g, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t, gm, bt: RF.batch_norm(t, None, None, gm, bt, training=True), (x, gamma, beta)
    )
    lw = torch.randn(5, 4, generator=g, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(RF.linear, (x, lw))
    assert torch.autograd.gradcheck(RF.global_avg_pool2d, (x,))


def test_reference_ops_reject_bad_arguments(no_shape_checks: None) -> None:
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"input has 2 channels but weight \(1, 3, 3, 3\)"):
        RF.conv2d(x, torch.randn(1, 3, 3, 3))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        RF.conv2d(x, torch.randn(1, 2, 5, 5))
    with pytest.raises(ValueError, match="at most half the kernel"):
        RF.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        RF.conv2d(x, torch.randn(1, 2, 1, 1), stride=0)
    with pytest.raises(TypeError, match="padding must be an int or a pair"):
        RF.conv2d(x, torch.randn(1, 2, 1, 1), padding=(1, 2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        RF.batch_norm(torch.randn(1, 2, 1, 1), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean and running_var are required"):
        RF.batch_norm(x, None, None, training=False)
