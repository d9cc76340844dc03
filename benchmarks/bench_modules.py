"""resfx.nn's fused path against torch.nn, module by module and as a ResNet34; pretrained build.

Every comparison is interleaved (`resfx.bench.time_interleaved`): each round
times A and B, `inner` calls each, in an order shuffled per round, so a machine
that slows down or speeds up while it runs (other jobs, thermal limits) weighs
on both alike; the figure is the median over rounds of the per-round ratio
`resfx / torch` (of the rounds' median call times). Groups:

- each module (forward + backward, the fused path; BatchNorm in train mode),
- ResNet34 eval forward and full training step (forward, backward, SGD),
- building a pretrained ResNet34 from a `.pth`: random init then a copying
  load (before) against the meta-device build with `assign=True` (after).

Run: `python benchmarks/bench_modules.py` (`--rounds`, `--batch`, `--size`). It
prints ratios; it asserts no time. Under pytest the same code runs once at a
small size, to keep it working.
"""

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn as tnn

import resfx
from resfx import nn
from resfx.bench import Ratio as BenchRatio
from resfx.bench import time_interleaved
from resfx.models import ResNet, ResNetConfig
from resfx.weights import load_weights


@dataclass(frozen=True)
class Ratio:
    """Median times of A (resfx) and B (torch) and the median of their per-round ratios."""

    name: str
    ours_ms: float
    theirs_ms: float
    ratio: float

    def row(self) -> str:
        return f"| {self.name} | {self.ours_ms:.3f} | {self.theirs_ms:.3f} | {self.ratio:.3f} |"


def interleaved(
    name: str, ours: Callable[[], object], theirs: Callable[[], object], rounds: int, inner: int
) -> Ratio:
    """Time `ours` and `theirs` in `rounds` interleaved rounds of `inner` calls each."""
    for step in (ours, theirs):
        step()  # warm-up: allocator, caches, lazy initialisation
    timings = time_interleaved(
        {"ours": ours, "theirs": theirs}, rounds=rounds, steps_per_round=inner
    )
    ratio = BenchRatio.of_rounds(
        timings["ours"].round_medians_ms, timings["theirs"].round_medians_ms
    )
    return Ratio(name, timings["ours"].median_ms, timings["theirs"].median_ms, ratio.median)


def _module_pairs(channels: int) -> list[tuple[str, tnn.Module, tnn.Module, bool]]:
    """(name, resfx module, torch module, takes feature maps) with the same arguments."""
    c = channels
    pairs = [
        ("Conv2d 3x3", dict(in_channels=c, out_channels=c, kernel_size=3, padding=1)),
        (
            "Conv2d 3x3 stride 2 no bias",
            dict(in_channels=c, out_channels=2 * c, kernel_size=3, stride=2, padding=1, bias=False),
        ),
        (
            "Conv2d 3x3 groups 8",
            dict(in_channels=c, out_channels=c, kernel_size=3, padding=1, groups=8),
        ),
        (
            "Conv2d 3x3 dilation 2",
            dict(in_channels=c, out_channels=c, kernel_size=3, padding=2, dilation=2),
        ),
        (
            "Conv2d 3x3 reflect",
            dict(in_channels=c, out_channels=c, kernel_size=3, padding=1, padding_mode="reflect"),
        ),
    ]
    out = [(name, nn.Conv2d(**kw), tnn.Conv2d(**kw), True) for name, kw in pairs]
    out += [
        ("BatchNorm2d train", nn.BatchNorm2d(c), tnn.BatchNorm2d(c), True),
        ("ReLU", nn.ReLU(), tnn.ReLU(), True),
        ("MaxPool2d 3/2/1", nn.MaxPool2d(3, 2, 1), tnn.MaxPool2d(3, 2, 1), True),
        ("AvgPool2d 2", nn.AvgPool2d(2), tnn.AvgPool2d(2), True),
        ("AdaptiveAvgPool2d 1", nn.AdaptiveAvgPool2d(1), tnn.AdaptiveAvgPool2d(1), True),
        ("AdaptiveAvgPool2d 3", nn.AdaptiveAvgPool2d(3), tnn.AdaptiveAvgPool2d(3), True),
        ("Linear", nn.Linear(c, 10), tnn.Linear(c, 10), False),
    ]
    for _, ours, theirs, _ in out:
        ours.load_state_dict(theirs.state_dict())
    return out


def bench_modules(batch: int, size: int, channels: int, rounds: int, inner: int) -> list[Ratio]:
    results = []
    for name, ours, theirs, maps in _module_pairs(channels):
        x = torch.randn(batch, channels, size, size) if maps else torch.randn(batch, channels)
        x.requires_grad_()

        def step(module: tnn.Module = ours, x: torch.Tensor = x) -> None:
            module(x).sum().backward()

        def step_torch(module: tnn.Module = theirs, x: torch.Tensor = x) -> None:
            module(x).sum().backward()

        results.append(interleaved(name, step, step_torch, rounds, inner))
    return results


def bench_resnet34(batch: int, size: int, rounds: int) -> list[Ratio]:
    torch.manual_seed(0)
    theirs = torchvision.models.resnet34()
    ours = resfx.resnet34()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(batch, 3, size, size)
    target = torch.randint(0, 1000, (batch,))

    def forward(model: tnn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return model(x)

        return run

    def train_step(model: tnn.Module) -> Callable[[], None]:
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)

        def run() -> None:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), target).backward()
            optimizer.step()

        return run

    ours.eval(), theirs.eval()
    results = [interleaved("ResNet34 eval forward", forward(ours), forward(theirs), rounds, 1)]
    ours.train(), theirs.train()
    results.append(
        interleaved("ResNet34 train step", train_step(ours), train_step(theirs), rounds, 1)
    )
    return results


def bench_pretrained_build(rounds: int) -> Ratio:
    """After (meta device + assign) over before (random init + copying load), both from a `.pth`
    saved here from torchvision's randomly initialised ResNet34."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resnet34.pth"
        torch.save(torchvision.models.resnet34().state_dict(), path)

        def before() -> object:
            return load_weights(ResNet(ResNetConfig()), path)

        def after() -> object:
            return resfx.resnet34(weights=path)

        return interleaved("pretrained ResNet34 build (after / before)", after, before, rounds, 1)


def run(rounds: int, batch: int, size: int, inner: int = 5) -> list[Ratio]:
    """Every group, in order."""
    torch.manual_seed(0)
    results = bench_modules(batch, size // 2, channels=64, rounds=rounds, inner=inner)
    results += bench_resnet34(batch, size, rounds)
    results.append(bench_pretrained_build(rounds))
    return results


def table(results: list[Ratio], rounds: int, batch: int, size: int) -> str:
    header = [
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch}, "
        f"images {size}x{size} (modules: 64 channels, {size // 2}x{size // 2}), "
        f"{rounds} interleaved rounds",
        "",
        "| measured | resfx ms | torch ms | ratio (median per round) |",
        "| --- | --- | --- | --- |",
    ]
    return "\n".join(header + [r.row() for r in results])


def test_benchmark_runs() -> None:
    """The benchmark's code keeps working (one round at a small size; no time asserted)."""
    results = run(rounds=1, batch=2, size=32, inner=1)  # 2: a train-mode BatchNorm at 1x1
    assert [r.name for r in results][-3:] == [
        "ResNet34 eval forward",
        "ResNet34 train step",
        "pretrained ResNet34 build (after / before)",
    ]
    assert all(r.ratio > 0 for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args()
    results = run(args.rounds, args.batch, args.size)
    print(table(results, args.rounds, args.batch, args.size))


if __name__ == "__main__":
    main()
