"""PyTorch's own test samples as the acceptance test of resfx.nn and resfx.functional.

For every module resfx implements, each sample of torch's ModuleInfo database
(`torch.testing._internal.common_modules.module_db`) builds the torch module and
the resfx module with the same arguments and weights, runs both on the same
input (resfx on its fused path and under `reference_ops()`), and compares the
outputs, the gradients of the inputs and parameters, and the buffers after the
forward: in eval mode, and where train and eval mode differ (BatchNorm) after each
of `TRAIN_STEPS` train-mode forwards and an eval forward after them. For every reference op, each
sample of torch's OpInfo database (`common_methods_invocations.op_db`) runs the
resfx op and the torch op and compares outputs and input gradients (and the
running statistics batch norm updates). CPU, float32 and float64.

A sample resfx does not support is listed in `UNSUPPORTED` with the reason; a
listed sample that passes fails the test (the list stays honest), and so does
any other sample that fails. `python tests/test_torch_samples.py` prints the
per-module table (samples, passed, unsupported and why).
"""

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn as tnn

from resfx import functional as RF
from resfx import nn

pytest.importorskip("expecttest")  # torch's test databases import it

MODULES: dict[str, type[tnn.Module]] = {
    "nn.Conv2d": nn.Conv2d,
    "nn.BatchNorm2d": nn.BatchNorm2d,
    "nn.Linear": nn.Linear,
    "nn.ReLU": nn.ReLU,
    "nn.MaxPool2d": nn.MaxPool2d,
    "nn.AvgPool2d": nn.AvgPool2d,
    "nn.AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d,
}
"""torch's ModuleInfo name -> the resfx module held to its samples."""

OPS: dict[str, Callable[..., Any]] = {
    "nn.functional.conv2d": RF.conv2d,
    "nn.functional.batch_norm": RF.batch_norm,
    "nn.functional.linear": RF.linear,
    "nn.functional.relu": RF.relu,
    "nn.functional.max_pool2d": RF.max_pool2d,
    "nn.functional.avg_pool2d": RF.avg_pool2d,
    "nn.functional.adaptive_avg_pool2d": RF.adaptive_avg_pool2d,
    "nn.functional.pad": RF.pad,
}
"""torch's OpInfo name (all its variants) -> the resfx reference op held to its samples."""


UNSUPPORTED: dict[str, Callable[[tuple, dict], str | None]] = {}
"""Per module / op: a function of a sample's `(args, kwargs)` giving the reason resfx does
not support it, or `None` for a supported sample. Empty: resfx supports every sample."""

MOST_SAMPLES = None if os.environ.get("RESFX_ALL_TORCH_SAMPLES") else 60
"""Samples run per op variant and dtype: an even spread of at most this many (max_pool2d has
1440, each ~0.1 s with the suite's runtime checks on 2 cores); `RESFX_ALL_TORCH_SAMPLES=1`
runs them all."""


def _spread(samples: list[Any]) -> list[tuple[int, Any]]:
    """Every sample, or an even spread of `MOST_SAMPLES` of them, with their indices."""
    step = 1 if MOST_SAMPLES is None else -(-len(samples) // MOST_SAMPLES)
    return list(enumerate(samples))[::step]


@dataclass
class Tally:
    """What happened to one module's or op's samples."""

    samples: int = 0
    passed: int = 0
    unsupported: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def supported_share(self) -> float:
        return 1.0 - sum(self.unsupported.values()) / max(self.samples, 1)


def _tolerances(dtype: torch.dtype) -> dict[str, float]:
    # einsum and torch's kernels sum in different orders; float64 keeps torch's defaults
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {}


def _clone(value: Any) -> Any:
    """A fresh copy of every tensor in `value` (leaves keep `requires_grad` and memory format)."""
    if isinstance(value, torch.Tensor):
        copy = value.detach().clone()
        return copy.requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def _compare_runs(
    ours: Callable[[], tuple[Any, list[torch.Tensor]]],
    theirs: Callable[[], tuple[Any, list[torch.Tensor]]],
    dtype: torch.dtype,
) -> None:
    """Run both sides; compare their outputs, then the gradients of their `leaves` for the
    same upstream gradient. Each side returns `(output, leaves)`."""
    tolerances = _tolerances(dtype)
    out_ours, leaves_ours = ours()
    out_theirs, leaves_theirs = theirs()
    outs_ours, outs_theirs = list(_tensors(out_ours)), list(_tensors(out_theirs))
    assert len(outs_ours) == len(outs_theirs), "different number of outputs"
    for a, b in zip(outs_ours, outs_theirs, strict=True):
        torch.testing.assert_close(a, b, equal_nan=True, **tolerances)
    pairs = [
        (a, b)
        for a, b in zip(outs_ours, outs_theirs, strict=True)
        if b.requires_grad and b.numel() and a.requires_grad
    ]
    wanted = [i for i, t in enumerate(leaves_theirs) if t.requires_grad]
    if not pairs or not wanted:
        return
    generator = torch.Generator().manual_seed(0)
    upstream = [torch.randn(b.shape, generator=generator, dtype=b.dtype) for _, b in pairs]
    grads_ours = torch.autograd.grad(
        [a for a, _ in pairs], [leaves_ours[i] for i in wanted], upstream, allow_unused=True
    )
    grads_theirs = torch.autograd.grad(
        [b for _, b in pairs], [leaves_theirs[i] for i in wanted], upstream, allow_unused=True
    )
    for index, a, b in zip(wanted, grads_ours, grads_theirs, strict=True):
        if b is None:
            assert a is None or not a.any(), f"gradient of leaf {index} should be zero"
            continue
        torch.testing.assert_close(
            a, b, equal_nan=True, msg=f"gradient of leaf {index}", **tolerances
        )


def _run_module(
    ours: tnn.Module, args: tuple, kwargs: dict, reference: bool
) -> tuple[Any, list[torch.Tensor]]:
    with nn.reference_ops(reference):
        out = ours(*args, **kwargs)
    return out, [*_tensors((args, kwargs)), *ours.parameters()]


def _run_torch_module(
    theirs: tnn.Module, args: tuple, kwargs: dict
) -> tuple[Any, list[torch.Tensor]]:
    return theirs(*args, **kwargs), [*_tensors((args, kwargs)), *theirs.parameters()]


TRAIN_STEPS = 3
"""Forwards per sample in train mode for a module whose train and eval modes differ: running
statistics are compared after each (one step would not tell a cumulative average, 1/n, from
a plain copy of the batch's), then once more in eval mode, which reads what training left."""


def _varied(value: Any, step: int) -> Any:
    """A fresh copy of `value` with every floating-point tensor scaled and shifted by `step`,
    so that each training step sees other statistics (step 0 is `value` itself)."""
    copy = _clone(value)
    with torch.no_grad():
        for tensor in _tensors(copy):
            if tensor.is_floating_point():
                tensor.mul_(1 + step).add_(step)
    return copy


def _module_sample(
    name: str, info: Any, sample: Any, dtype: torch.dtype, training: bool, reference: bool
) -> None:
    ctor = sample.constructor_input
    theirs = info.module_cls(*ctor.args, **ctor.kwargs).to(dtype).train(training)
    ours = MODULES[name](*ctor.args, **ctor.kwargs).to(dtype).train(training)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    steps = TRAIN_STEPS if training and info.train_and_eval_differ else 1
    modes = [training] * steps + ([False] if steps > 1 else [])
    for step, mode in enumerate(modes):
        ours.train(mode)
        theirs.train(mode)
        forward = sample.forward_input
        args_ours, kwargs_ours = _varied(forward.args, step), _varied(forward.kwargs, step)
        args_theirs, kwargs_theirs = _varied(forward.args, step), _varied(forward.kwargs, step)
        _compare_runs(
            functools.partial(_run_module, ours, args_ours, kwargs_ours, reference),
            functools.partial(_run_torch_module, theirs, args_theirs, kwargs_theirs),
            dtype,
        )
        mine, torchs = ours.state_dict(), theirs.state_dict()
        assert list(mine) == list(torchs)
        for key in mine:
            torch.testing.assert_close(
                mine[key], torchs[key], msg=f"buffer {key} after step {step}", **_tolerances(dtype)
            )


def _op_sample(name: str, info: Any, sample: Any, dtype: torch.dtype) -> None:
    ours_op = OPS[name]
    everything = (sample.input, *sample.args)
    ours_args, theirs_args = _clone(everything), _clone(everything)
    ours_kwargs, theirs_kwargs = _clone(sample.kwargs), _clone(sample.kwargs)
    _compare_runs(
        lambda: (ours_op(*ours_args, **ours_kwargs), list(_tensors(ours_args))),
        lambda: (info.op(*theirs_args, **theirs_kwargs), list(_tensors(theirs_args))),
        dtype,
    )
    # ops that update arguments in place (batch norm's running statistics) update them alike
    for a, b in zip(_tensors(ours_args), _tensors(theirs_args), strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), equal_nan=True, **_tolerances(dtype))


def _record(
    tally: Tally, name: str, label: str, args: tuple, kwargs: dict, run: Callable[[], None]
) -> None:
    """Run one sample, and count it as passed, unsupported (with the listed reason) or failed."""
    tally.samples += 1
    reason = UNSUPPORTED.get(name, lambda a, k: None)(args, kwargs)
    try:
        run()
    except Exception as error:  # any failure of a supported sample is reported below
        if reason is not None:
            tally.unsupported[reason] = tally.unsupported.get(reason, 0) + 1
        else:
            tally.failures.append(f"{label}: {type(error).__name__}: {str(error)[:300]}")
        return
    if reason is not None:
        tally.failures.append(f"{label}: listed as unsupported ({reason}) but passes")
    else:
        tally.passed += 1


@functools.cache
def _databases() -> tuple[list[Any], list[Any]]:
    from torch.testing._internal.common_methods_invocations import op_db
    from torch.testing._internal.common_modules import module_db

    return (
        [m for m in module_db if m.name in MODULES],
        [o for o in op_db if o.name in OPS],
    )


def module_tally(name: str, dtype: torch.dtype) -> Tally:
    """Run every ModuleInfo sample of torch module `name` against its resfx twin."""
    tally = Tally()
    (info,) = [m for m in _databases()[0] if m.name == name]
    modes = (True, False) if info.train_and_eval_differ else (True,)
    for training in modes:
        samples = info.module_inputs_func(
            info, device="cpu", dtype=dtype, requires_grad=True, training=training
        )
        for index, sample in enumerate(samples):
            for reference in (False, True):
                torch.manual_seed(index)
                label = (
                    f"{name} sample {index} ({sample.desc or 'default'}), "
                    f"{'train' if training else 'eval'}, {'reference' if reference else 'fused'}"
                )
                ctor = sample.constructor_input
                _record(
                    tally,
                    name,
                    label,
                    ctor.args,
                    ctor.kwargs,
                    functools.partial(
                        _module_sample, name, info, sample, dtype, training, reference
                    ),
                )
    return tally


def op_tally(name: str, dtype: torch.dtype) -> Tally:
    """Run every OpInfo sample (all variants) of torch op `name` against the resfx op."""
    tally = Tally()
    for info in (o for o in _databases()[1] if o.name == name):
        samples = list(info.sample_inputs("cpu", dtype, requires_grad=True))
        for index, sample in _spread(samples):
            label = f"{name}{'.' + info.variant_test_name if info.variant_test_name else ''} sample {index}"
            _record(
                tally,
                name,
                label,
                (sample.input, *sample.args),
                sample.kwargs,
                functools.partial(_op_sample, name, info, sample, dtype),
            )
    return tally


def _assert_accepted(tally: Tally) -> None:
    assert not tally.failures, "\n".join(tally.failures[:20])
    assert tally.samples > 0
    assert tally.supported_share >= 0.95, tally.unsupported


DTYPES = [pytest.param(torch.float32, id="float32"), pytest.param(torch.float64, id="float64")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(MODULES))
def test_module_samples(name: str, dtype: torch.dtype) -> None:
    _assert_accepted(module_tally(name, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(OPS))
def test_op_samples(name: str, dtype: torch.dtype) -> None:
    _assert_accepted(op_tally(name, dtype))


def _table() -> str:
    rows = [
        "| module / op | dtype | runs (samples x paths x modes) | passed | unsupported (why) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for names, run in ((MODULES, module_tally), (OPS, op_tally)):
        for name in names:
            for dtype in (torch.float32, torch.float64):
                tally = run(name, dtype)
                why = "; ".join(f"{n}: {reason}" for reason, n in tally.unsupported.items()) or "0"
                failed = f" ({len(tally.failures)} FAILED)" if tally.failures else ""
                rows.append(
                    f"| {name} | {str(dtype).removeprefix('torch.')} | {tally.samples} | "
                    f"{tally.passed}{failed} | {why} |"
                )
    return "\n".join(rows)


if __name__ == "__main__":
    print(_table())
