"""Issue 22's torch.nn parity items: what torch does, resfx does (torch is the spec)."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn as tnn

from resfx import functional as RF
from resfx import nn

PATHS = [pytest.param(False, id="fused"), pytest.param(True, id="reference")]
NON_FINITE = [float("nan"), float("inf"), float("-inf")]


# 7. One NaN or infinity reaches only the adaptive windows that hold it.
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
    output_size=st.one_of(
        st.integers(1, 10), st.tuples(st.one_of(st.none(), st.integers(0, 10)), st.integers(1, 6))
    ),
    spots=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from(NON_FINITE)), max_size=3
    ),
    seed=st.integers(0, 2**16),
)
def test_adaptive_avg_pool2d_confines_non_finite_cells_as_torch(
    shape: tuple, output_size, spots: list, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    for where, value in spots:
        x.view(-1)[int(where * x.numel())] = value
    x.requires_grad_(True)
    theirs = F.adaptive_avg_pool2d(x, output_size)
    upstream = torch.randn(theirs.shape, generator=g, dtype=torch.float64)
    for ours in (
        RF.adaptive_avg_pool2d(x, output_size),
        nn.AdaptiveAvgPool2d(output_size)(x),
    ):
        torch.testing.assert_close(ours, theirs, equal_nan=True)
        assert torch.equal(ours.isnan(), theirs.isnan())
        if ours.numel():  # torch's backward refuses an empty output
            torch.testing.assert_close(
                torch.autograd.grad(ours, x, upstream)[0],
                torch.autograd.grad(theirs, x, upstream, retain_graph=True)[0],
            )
    with nn.reference_ops():
        torch.testing.assert_close(nn.AdaptiveAvgPool2d(output_size)(x), theirs, equal_nan=True)


def test_adaptive_avg_pool2d_by_hand_keeps_a_nan_in_its_window() -> None:
    x = torch.tensor([[[[1.0, float("nan"), 2.0, 4.0, float("inf"), 5.0]]]])
    # windows over 6 cells to 3: [0, 2), [2, 4), [4, 6)
    assert RF.adaptive_avg_pool2d(x, (1, 3)).flatten().tolist()[1:] == [3.0, float("inf")]
    assert RF.adaptive_avg_pool2d(x, (1, 3)).flatten()[0].isnan()
    # overlapping windows over 6 cells to 4: [0, 2), [1, 3), [3, 5), [4, 6)
    assert RF.adaptive_avg_pool2d(x, (1, 4)).isnan().flatten().tolist() == [
        True,
        True,
        False,
        False,
    ]


# 8. GlobalAvgPool2d takes batches of 2-D feature maps only.
@pytest.mark.parametrize("reference", PATHS)
@pytest.mark.parametrize(
    ("shape", "hint"),
    [((1, 2, 3, 4, 6), ""), ((2, 3, 4), "; add a batch axis"), ((2, 3), ""), ((1, 2, 0, 4), "")],
)
def test_global_avg_pool2d_refuses_other_than_4d_naming_the_shape(
    no_shape_checks: None, reference: bool, shape: tuple, hint: str
) -> None:
    expected = (
        rf"expected input of shape \(b, c, h, w\) with c, h, w > 0, got {re.escape(str(shape))}"
    )
    with nn.reference_ops(reference), pytest.raises(ValueError, match=expected + hint):
        nn.GlobalAvgPool2d()(torch.randn(shape))
    with pytest.raises(ValueError, match=f"^global_avg_pool2d {expected}"):
        RF.global_avg_pool2d(torch.randn(shape))


@pytest.mark.parametrize("reference", PATHS)
def test_global_avg_pool2d_is_torchs_adaptive_pool_and_flatten_on_batches(reference: bool) -> None:
    x = torch.randn(0 if reference else 3, 4, 5, 6, dtype=torch.float64)
    x = torch.cat([x, torch.randn(2, 4, 5, 6, dtype=torch.float64)])
    expected = tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten())(x)
    with nn.reference_ops(reference):
        torch.testing.assert_close(nn.GlobalAvgPool2d()(x), expected)


# 9. Average pooling of int64 stays int64, rounded toward zero, as torch's kernel does.
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(3, 8), st.integers(3, 8)),
    kernel=st.integers(1, 3),
    stride=st.one_of(st.none(), st.integers(1, 3)),
    padding=st.integers(0, 1),
    ceil_mode=st.booleans(),
    count_include_pad=st.booleans(),
    divisor_override=st.sampled_from([None, 1, 3, -2]),
    seed=st.integers(0, 2**16),
)
def test_avg_pool2d_of_int64_matches_torch_exactly(
    shape: tuple,
    kernel: int,
    stride: int | None,
    padding: int,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
    seed: int,
) -> None:
    padding = min(padding, kernel // 2)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-1000, 1000, shape, generator=g)
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    theirs = F.avg_pool2d(x, *args)
    assert theirs.dtype == torch.int64
    module = nn.AvgPool2d(*args)
    for ours in (RF.avg_pool2d(x, *args), module(x), RF.avg_pool2d(x[:1], *args)):
        assert ours.dtype == torch.int64 and torch.equal(ours, theirs[: len(ours)])
    assert torch.equal(RF.avg_pool2d(x[0], *args), theirs[0])
    with nn.reference_ops():
        assert torch.equal(module(x), theirs)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8, torch.bool])
@pytest.mark.parametrize("reference", PATHS)
def test_avg_pool2d_refuses_the_integer_dtypes_torch_has_no_kernel_for(
    no_shape_checks: None, dtype: torch.dtype, reference: bool
) -> None:
    x = torch.ones(1, 1, 4, 4, dtype=dtype)
    with pytest.raises(NotImplementedError):
        F.avg_pool2d(x, 2)
    message = rf"AvgPool2d: torch has no average pooling for {dtype}.*input.float\(\)"
    with nn.reference_ops(reference), pytest.raises(TypeError, match=message):
        nn.AvgPool2d(2)(x)
    with pytest.raises(TypeError, match=message.replace("AvgPool2d", "avg_pool2d")):
        RF.avg_pool2d(x, 2)


# 20. numpy integers are sizes, as torch takes them; bools and floats are not.
def _numpy_sized_pairs() -> list[tuple[tnn.Module, tnn.Module]]:
    i = np.int64
    return [
        (nn.MaxPool2d((i(3), i(3))), tnn.MaxPool2d((i(3), i(3)))),
        (
            nn.MaxPool2d(i(3), stride=np.int32(2), padding=i(1), dilation=(i(1), 2)),
            tnn.MaxPool2d(i(3), stride=np.int32(2), padding=i(1), dilation=(i(1), 2)),
        ),
        (
            nn.AvgPool2d((i(2), 3), stride=[np.uint8(1)], padding=i(1), divisor_override=i(5)),
            tnn.AvgPool2d((i(2), 3), stride=[np.uint8(1)], padding=i(1), divisor_override=i(5)),
        ),
        (
            nn.Conv2d(i(4), i(6), i(3), stride=(i(2), 1), padding=i(2), dilation=i(2), groups=i(2)),
            tnn.Conv2d(
                i(4), i(6), i(3), stride=(i(2), 1), padding=i(2), dilation=i(2), groups=i(2)
            ),
        ),
        (nn.AdaptiveAvgPool2d((i(2), None)), tnn.AdaptiveAvgPool2d((i(2), None))),
    ]


@pytest.mark.parametrize("reference", PATHS)
def test_numpy_integer_sizes_build_the_modules_torch_builds(reference: bool) -> None:
    x = torch.randn(2, 4, 9, 9)
    for ours, theirs in _numpy_sized_pairs():
        ours.load_state_dict(theirs.state_dict())
        with nn.reference_ops(reference):
            torch.testing.assert_close(ours(x), theirs(x), msg=type(ours).__name__)


def test_numpy_integer_sizes_in_the_functional_ops_as_torch() -> None:
    i = np.int64
    x, weight = torch.randn(1, 2, 9, 9), torch.randn(4, 1, 3, 3)
    conv = {"stride": i(2), "padding": (i(1), 2), "dilation": [i(2)], "groups": i(2)}
    pool = {"stride": (i(2), np.int16(1)), "padding": i(1)}
    cases = [
        (RF.conv2d, F.conv2d, (x, weight), conv),
        (RF.max_pool2d, F.max_pool2d, (x, i(3)), {**pool, "dilation": i(1)}),
        (RF.avg_pool2d, F.avg_pool2d, (x, (i(3), 2)), {**pool, "divisor_override": i(4)}),
        (RF.adaptive_avg_pool2d, F.adaptive_avg_pool2d, (x, (i(4), i(2))), {}),
    ]
    for ours, theirs, args, kwargs in cases:
        torch.testing.assert_close(ours(*args, **kwargs), theirs(*args, **kwargs))
    # torch's functional refuses one numpy integer as output_size; resfx takes it
    torch.testing.assert_close(
        RF.adaptive_avg_pool2d(x, i(3)), F.adaptive_avg_pool2d(x, 3), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("size", [True, np.bool_(True), 2.0, np.float64(2.0), (2, False)])
def test_bools_and_floats_are_refused_as_sizes_as_torch_refuses_them(
    no_shape_checks: None, size: object
) -> None:
    x = torch.randn(1, 1, 6, 6)
    # torch refuses a bool or float size; in a pair it reads False as 0 (refused, not as a type)
    with pytest.raises(TypeError if not isinstance(size, tuple) else RuntimeError):
        F.max_pool2d(x, size)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair of ints"):
        nn.MaxPool2d(size)
    with pytest.raises(TypeError, match="stride must be an int or a pair of ints"):
        RF.conv2d(x, torch.randn(1, 1, 3, 3), stride=size)
    with pytest.raises(TypeError, match="groups must be an int"):
        nn.Conv2d(2, 2, 1, groups=size)


# 21. Sequential is edited as torch.nn.Sequential is.
def _edits() -> list:
    """Edits to apply alike to a resfx and a torch Sequential; each gets (seq, lib) and may
    return a value to compare."""
    return [
        lambda seq, lib: seq.__setitem__(-1, lib.Linear(3, 2)),
        lambda seq, lib: seq.__setitem__(0, lib.ReLU()),
        lambda seq, lib: seq[1:],
        lambda seq, lib: seq[::-2],
        lambda seq, lib: seq[-1],
        lambda seq, lib: seq.append(lib.Flatten()),
        lambda seq, lib: seq.insert(1, lib.Linear(4, 4)),
        lambda seq, lib: seq.insert(-1, lib.ReLU()),
        lambda seq, lib: seq.insert(len(seq), lib.ReLU()),
        lambda seq, lib: seq.extend([lib.ReLU(), lib.Flatten()]),
        lambda seq, lib: seq.extend(lib.Sequential(lib.ReLU())),
        lambda seq, lib: seq.__delitem__(1),
        lambda seq, lib: seq.__delitem__(slice(0, 2)),
        lambda seq, lib: seq.__delitem__(-1),
        lambda seq, lib: seq.pop(0),
        lambda seq, lib: seq.pop(slice(1, None)),
    ]


def _layout(value: object) -> object:
    """What an edit left or returned, comparable across libraries: names and module kinds."""
    if isinstance(value, (nn.Sequential, tnn.Sequential)):
        return ("Sequential", [(name, _layout(m)) for name, m in value.named_children()])
    if isinstance(value, tnn.Module):
        return (type(value).__name__, [tuple(p.shape) for p in value.parameters()])
    return value


@pytest.mark.parametrize("edit", range(len(_edits())))
def test_sequential_edits_as_torchs(edit: int) -> None:
    apply = _edits()[edit]
    ours = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
    theirs = tnn.Sequential(tnn.Linear(4, 4), tnn.ReLU(), tnn.Linear(4, 3))
    theirs.load_state_dict(ours.state_dict())
    assert _layout(apply(ours, nn)) == _layout(apply(theirs, tnn))
    assert _layout(ours) == _layout(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert isinstance(ours[:], nn.Sequential) and len(ours) == len(theirs)


def test_the_seeds_head_replacement_trains_the_new_layer() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1000))
    model[-1] = nn.Linear(8, 10)
    assert model[2].out_features == 10 and model(torch.randn(3, 4)).shape == (3, 10)
    model(torch.randn(3, 4)).sum().backward()
    assert model[-1].weight.grad is not None
    head = model[1:]
    assert [name for name, _ in head.named_children()] == ["1", "2"] and head[-1] is model[2]


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda seq: seq[3], IndexError),
        (lambda seq: seq.__setitem__(-4, nn.ReLU()), IndexError),
        (lambda seq: seq.__delitem__(3), IndexError),
        (lambda seq: seq.insert(4, nn.ReLU()), IndexError),
        (lambda seq: seq.insert(-4, nn.ReLU()), IndexError),
        (lambda seq: seq[1.0], TypeError),
    ],
)
def test_sequential_refuses_what_torchs_refuses(no_shape_checks: None, edit, error) -> None:
    with pytest.raises(error):
        edit(tnn.Sequential(tnn.ReLU(), tnn.ReLU(), tnn.ReLU()))
    with pytest.raises(error):
        edit(nn.Sequential(nn.ReLU(), nn.ReLU(), nn.ReLU()))


@pytest.mark.parametrize(
    "edit",
    [
        lambda seq: seq.__setitem__(0, None),
        lambda seq: seq.append("relu"),
        lambda seq: seq.insert(0, 3),
        lambda seq: seq.extend([nn.ReLU(), None]),
    ],
)
def test_sequential_refuses_what_is_not_a_module(no_shape_checks: None, edit) -> None:
    seq = nn.Sequential(nn.ReLU())
    with pytest.raises(TypeError, match="Sequential takes nn.Module instances, got"):
        edit(seq)
