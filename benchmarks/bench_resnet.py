"""resfx ResNet34 against torchvision's on the same weights and input.

Groups: eval forward and full training step (forward, backward, Adam), in fp32
and (on a GPU) bf16 autocast + channels_last. The printed ratio
`resfx/torchvision` (timed interleaved after the benchmarks, see conftest.py) is
the speed goal's figure (1.05x on GPU, 1.10x on CPU).
"""

import pytest
import torch
import torchvision

import resfx
from resfx.bench import autocast, synchronized


def _models(device: torch.device, channels_last: bool) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    reference = torchvision.models.resnet34()
    ours = resfx.resnet34()
    ours.load_state_dict(reference.state_dict())
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return {
        "resfx": ours.to(device, memory_format=memory_format),
        "torchvision": reference.to(device, memory_format=memory_format),
    }


def _model_and_input(
    device: torch.device, batch: int, size: int, precision: str, implementation: str
) -> tuple[torch.nn.Module, torch.Tensor]:
    """The model and a batch, both channels_last in bf16; skips bf16 off the GPU."""
    if precision == "bf16" and device.type != "cuda":
        pytest.skip("bf16 autocast + channels_last is measured on the GPU")
    channels_last = precision == "bf16"
    model = _models(device, channels_last)[implementation]
    x = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("implementation", ["resfx", "torchvision"])
def test_eval_forward(
    benchmark, compare_interleaved, bench_device, bench_batch, bench_size, precision, implementation
) -> None:
    model, x = _model_and_input(bench_device, bench_batch, bench_size, precision, implementation)
    model.eval()
    group = f"resnet34 eval forward {precision}"
    benchmark.group = group

    def step() -> torch.Tensor:
        with torch.inference_mode(), autocast(bench_device, precision):
            return model(x)

    benchmark.pedantic(synchronized(step, bench_device), rounds=10, warmup_rounds=3)
    compare_interleaved(group, implementation, step, baseline=implementation == "torchvision")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("implementation", ["resfx", "torchvision"])
def test_train_step(
    benchmark, compare_interleaved, bench_device, bench_batch, bench_size, precision, implementation
) -> None:
    model, x = _model_and_input(bench_device, bench_batch, bench_size, precision, implementation)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    target = torch.randint(0, 1000, (bench_batch,), device=bench_device)
    group = f"resnet34 train step {precision}"
    benchmark.group = group

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(bench_device, precision):
            loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()

    benchmark.pedantic(synchronized(step, bench_device), rounds=10, warmup_rounds=3)
    compare_interleaved(group, implementation, step, baseline=implementation == "torchvision")
