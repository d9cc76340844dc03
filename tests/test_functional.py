"""The reference ops against torch.nn.functional, by hand, and under gradcheck."""

import math

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
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(
        st.one_of(
            st.tuples(st.integers(0, 2), st.integers(0, 2)),
            st.just("valid"),
            st.just("same") if stride == (1, 1) else st.just("valid"),
        )
    )
    ph, pw = padding if isinstance(padding, tuple) else (0, 0)
    groups = draw(st.sampled_from([1, 2, 3]))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 10))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 10))
    batch = draw(st.sampled_from([(), (1,), (2,), (0,)]))
    return {
        "shape": (*batch, groups * draw(st.integers(1, 2)), h, w),
        "c_out": groups * draw(st.integers(1, 2)),
        "kernel": (kh, kw),
        "stride": stride,
        "padding": padding,
        "dilation": (dh, dw),
        "groups": groups,
        "bias": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


@given(conv_cases())
def test_conv2d_matches_torch_in_value_and_gradient(case: dict) -> None:
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["shape"], generator=g, dtype=f64, requires_grad=True)
    c_group = case["shape"][-3] // case["groups"]
    weight = torch.randn(
        case["c_out"], c_group, *case["kernel"], generator=g, dtype=f64
    ).requires_grad_()
    bias = (
        torch.randn(case["c_out"], generator=g, dtype=f64).requires_grad_()
        if case["bias"]
        else None
    )
    args = (case["stride"], case["padding"], case["dilation"], case["groups"])
    ours = RF.conv2d(x, weight, bias, *args)
    theirs = F.conv2d(x, weight, bias, *args)
    torch.testing.assert_close(ours, theirs)
    upstream = torch.randn(ours.shape, generator=g, dtype=f64)
    inputs = [t for t in (x, weight, bias) if t is not None]
    torch.testing.assert_close(
        torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(theirs, inputs, upstream)
    )


@st.composite
def pad_cases(draw: st.DrawFn) -> dict:
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    axes = draw(st.integers(1, 3))
    rank = draw(st.sampled_from([axes + 1, axes + 2] if mode != "constant" else [axes, 4]))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(max(rank, axes)))
    pads = []
    for axis in range(axes):
        size = shape[-1 - axis]
        # torch's circular mode goes wrong when it wraps more than once around a cropped axis
        limit = {"reflect": size - 1, "circular": size - size // 2}.get(mode, 3)
        pads += [draw(st.integers(-(size // 2), limit)) for _ in range(2)]
    value = draw(st.floats(-2, 2)) if mode == "constant" else None
    return {"shape": shape, "pad": tuple(pads), "mode": mode, "value": value}


@given(pad_cases(), st.integers(0, 2**16))
def test_pad_matches_torch_in_value_and_gradient(case: dict, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case["shape"], generator=g, dtype=f64, requires_grad=True)
    try:
        theirs = F.pad(x, case["pad"], case["mode"], case["value"])
    except RuntimeError:  # e.g. replicate cropping an axis to nothing
        with pytest.raises(ValueError, match="cannot crop"):
            RF.pad(x, case["pad"], case["mode"], case["value"])
        return
    ours = RF.pad(x, case["pad"], case["mode"], case["value"])
    torch.testing.assert_close(ours, theirs)
    if ours.numel():
        upstream = torch.randn(ours.shape, generator=g, dtype=f64)
        torch.testing.assert_close(
            torch.autograd.grad(ours, x, upstream), torch.autograd.grad(theirs, x, upstream)
        )


def test_pad_by_hand() -> None:
    row = torch.tensor([[0.0, 1.0, 2.0]])
    assert RF.pad(row, (2, 1), "reflect").tolist() == [[2.0, 1.0, 0.0, 1.0, 2.0, 1.0]]
    assert RF.pad(row, (2, 1), "replicate").tolist() == [[0.0, 0.0, 0.0, 1.0, 2.0, 2.0]]
    assert RF.pad(row, (2, 1), "circular").tolist() == [[1.0, 2.0, 0.0, 1.0, 2.0, 0.0]]
    assert RF.pad(row, (1, -2), value=5.0).tolist() == [[5.0, 0.0]]
    # circular crops first, then wraps around what is left (as torch does)
    assert RF.pad(row, (-1, 2), "circular").tolist() == [[1.0, 2.0, 1.0, 2.0]]
    for mode in ("reflect", "replicate"):  # torch: "input (W: 3) is too small"
        with pytest.raises(ValueError, match="cannot crop axis 1 of shape"):
            RF.pad(row, (-2, -1), mode)
    # but torch's 2-d reflection pad crops an axis to nothing
    assert RF.pad(row[None], (-2, -1, 0, 0), "reflect").shape == (1, 1, 0)
    with pytest.raises(ValueError, match="cannot wrap around axis 1"):
        RF.pad(row, (-3, 1), "circular")


@st.composite
def pool_cases(draw: st.DrawFn) -> dict:
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    batch = draw(st.sampled_from([(), (1,), (2,), (0,)]))
    return {
        "shape": (
            *batch,
            draw(st.integers(1, 3)),
            draw(st.integers(dh * (kh - 1) + 1, 9)),
            draw(st.integers(dw * (kw - 1) + 1, 9)),
        ),
        "kernel": (kh, kw),
        "stride": stride,
        "padding": (ph, pw),
        "dilation": (dh, dw),
        "ceil_mode": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def _assert_same_values_and_gradients(ours, theirs, x, generator) -> None:
    torch.testing.assert_close(ours, theirs)
    if ours.numel():
        upstream = torch.randn(ours.shape, generator=generator, dtype=f64)
        torch.testing.assert_close(
            torch.autograd.grad(ours, x, upstream), torch.autograd.grad(theirs, x, upstream)
        )


@given(pool_cases())
def test_max_pool2d_matches_torch_in_value_indices_and_gradient(case: dict) -> None:
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["shape"], generator=g, dtype=f64, requires_grad=True)
    args = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    ours, ours_indices = RF.max_pool2d(x, *args, return_indices=True)
    theirs, theirs_indices = F.max_pool2d(x, *args, return_indices=True)
    assert torch.equal(ours_indices, theirs_indices)
    _assert_same_values_and_gradients(ours, theirs, x, g)


@given(pool_cases(), st.booleans(), st.sampled_from([None, 1, 3]))
def test_avg_pool2d_matches_torch_in_value_and_gradient(
    case: dict, count_include_pad: bool, divisor_override: int | None
) -> None:
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["shape"], generator=g, dtype=f64, requires_grad=True)
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"])
    args = (*args, count_include_pad, divisor_override)
    _assert_same_values_and_gradients(RF.avg_pool2d(x, *args), F.avg_pool2d(x, *args), x, g)


@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 9), st.integers(1, 9)),
    output_size=st.one_of(
        st.integers(0, 10), st.tuples(st.one_of(st.none(), st.integers(0, 10)), st.integers(1, 4))
    ),
    unbatched=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_adaptive_avg_pool2d_matches_torch_in_value_and_gradient(
    shape: tuple, output_size, unbatched: bool, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape[1:] if unbatched else shape, generator=g, dtype=f64, requires_grad=True)
    ours = RF.adaptive_avg_pool2d(x, output_size)
    _assert_same_values_and_gradients(ours, F.adaptive_avg_pool2d(x, output_size), x, g)


@given(
    shape=st.one_of(
        st.tuples(st.integers(1, 4), st.integers(1, 4)),
        st.tuples(st.integers(0, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
        st.tuples(
            st.integers(1, 2),
            st.integers(1, 2),
            st.integers(1, 3),
            st.integers(1, 3),
            st.integers(1, 2),
        ),
    ),
    training=st.booleans(),
    affine=st.booleans(),
    momentum=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_batch_norm_matches_torch(
    shape: tuple, training: bool, affine: bool, momentum: float, seed: int
) -> None:
    if training and 0 < math.prod(shape) // shape[1] < 2:
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
    if not x.numel():
        return
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
    torch.testing.assert_close(RF.linear(x[0], weight, b), F.linear(x[0], weight, b))
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
    # dilation 2: the 2x2 kernel's taps are the four corners of the 3x3 image
    assert RF.conv2d(x, torch.ones(1, 1, 2, 2), dilation=2).tolist() == [[[[20.0]]]]
    # groups 2: each output channel sees only its own input channel
    two = torch.cat([x, 10 * x], dim=1)
    out = RF.conv2d(two, torch.ones(2, 1, 3, 3), groups=2)
    assert out.flatten().tolist() == [45.0, 450.0]
    # "same" with an even kernel pads the extra row and column on the bottom / right
    same = RF.conv2d(x[0], torch.ones(1, 1, 2, 2), padding="same")
    assert same.tolist() == [[[12.0, 16.0, 9.0], [24.0, 28.0, 15.0], [15.0, 17.0, 9.0]]]


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
    with pytest.raises(
        ValueError,
        match=r"expected input of shape \(3, h, w\) or \(b, 3, h, w\), got \(1, 2, 4, 4\)",
    ):
        RF.conv2d(x, torch.randn(1, 3, 3, 3))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        RF.conv2d(x, torch.randn(1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"with dilation \(2, 2\) \(which spans \(5, 5\)\)"):
        RF.conv2d(x, torch.randn(1, 2, 3, 3), dilation=2)
    with pytest.raises(ValueError, match=r"expected input of shape \(2, h, w\) or \(b, 2, h, w\)"):
        RF.conv2d(x[0, 0], torch.randn(1, 2, 1, 1))
    with pytest.raises(ValueError, match="groups must be a positive divisor of the 3 output"):
        RF.conv2d(x, torch.randn(3, 1, 1, 1), groups=2)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        RF.conv2d(x, torch.randn(1, 2, 1, 1), stride=2, padding="same")
    with pytest.raises(ValueError, match="got 'full'"):
        RF.conv2d(x, torch.randn(1, 2, 1, 1), padding="full")
    with pytest.raises(
        ValueError, match=r"'reflect' pads axis 3 of shape \(1, 2, 4, 4\) by at most 3"
    ):
        RF.pad(x, (4, 0, 0, 0), "reflect")
    with pytest.raises(ValueError, match="with 4 pads needs an input of rank 3"):
        RF.pad(x[0, 0], (1, 1, 1, 1), "replicate")
    with pytest.raises(ValueError, match="even number of pads"):
        RF.pad(x, (1, 1, 1))
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
