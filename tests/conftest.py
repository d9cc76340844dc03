"""Shared fixtures and hypothesis profiles.

Runtime shape checks are on for the whole suite: pytest's addopts pass
`--jaxtyping-packages=resfx,typeguard.typechecked`, so every function and method
in `resfx` is checked against its jaxtyping annotations (typeguard 2.13.3).

Hypothesis profiles: `ci` (default, bounded so the suite stays fast on 2 cores)
and `thorough` (`pytest --hypothesis-profile=thorough`) for many more examples.
Each run draws a new hypothesis seed, so CI explores new examples every time; the
header prints it, and `RESFX_HYPOTHESIS_SEED=<seed>` (or `--hypothesis-seed=<seed>`)
replays a run exactly.
"""

import copy
import io
import os
import pickle
import random
from collections.abc import Iterator

import jaxtyping
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough",
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

torch.set_num_threads(min(2, torch.get_num_threads()))

HYPOTHESIS_SEED = int(
    os.environ.get("RESFX_HYPOTHESIS_SEED", random.SystemRandom().randrange(2**32))
)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Before hypothesis's own pytest_configure, which applies --hypothesis-seed.
    if config.getoption("hypothesis_seed") is None:
        config.option.hypothesis_seed = str(HYPOTHESIS_SEED)


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed")
    return (
        f"hypothesis seed {seed} (replay: RESFX_HYPOTHESIS_SEED={seed} or --hypothesis-seed={seed})"
    )


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality: same dtype, shape and bytes (NaN equals the same NaN; -0.0 is not 0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    as_bytes = [t.detach().cpu().contiguous().reshape(-1).view(torch.uint8) for t in (a, b)]
    return torch.equal(*as_bytes)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture
def no_shape_checks() -> Iterator[None]:
    """Switch the jaxtyping runtime checks off, to test resfx's own error messages.

    With the checks on, a wrong shape is caught by the annotation before the
    library's explicit check (which is what users without the checks see).
    """
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


def whole_model_copies(model: torch.nn.Module) -> list[torch.nn.Module]:
    """`model` copied the three ways a whole model is: `copy.deepcopy`, `pickle` and
    `torch.save` / `torch.load` (each keeps instance attributes, e.g. freeze records)."""
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return [
        copy.deepcopy(model),
        pickle.loads(pickle.dumps(model)),
        torch.load(buffer, weights_only=False),
    ]


def randomise_resnet_state(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Give every BatchNorm scale, shift and running statistic a random value, in place.

    Returns the model's state dict. Convolution and linear weights keep their
    (already random) initialisation, which keeps activations finite.
    """
    generator = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + noise.abs())
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * noise)
            elif ("bn" in name or "downsample.1" in name) and name.endswith("weight"):
                tensor.copy_(1.0 + 0.1 * noise)
            elif ("bn" in name or "downsample.1" in name) and name.endswith("bias"):
                tensor.copy_(0.1 * noise)
    return state


class TinyResNet(torch.nn.Module):
    """A few-hundred-parameter stand-in with a ResNet's module names, fast under any test budget.

    `activation="relu"` names the stem as torchvision does (`conv1`, `bn1`,
    `relu`, `maxpool`); `activation="act1"` as timm's `ResNet` does.
    """

    def __init__(self, activation: str = "relu", num_classes: int = 3) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.activation = activation
        self.add_module(activation, torch.nn.ReLU())
        self.maxpool = torch.nn.MaxPool2d(2)
        for index in range(1, 5):
            layer = torch.nn.Sequential(
                torch.nn.Conv2d(4, 4, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(4),
                torch.nn.ReLU(),
            )
            self.add_module(f"layer{index}", layer)
        self.fc = torch.nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(getattr(self, self.activation)(self.bn1(self.conv1(x))))
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
        return self.fc(x.mean((2, 3)))


@pytest.fixture
def compiled_shapes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, ...]]]:
    """`torch.compile` on dynamo's eager backend (no inductor: seconds, not minutes, on 2 cores).

    Records the first input's shape of every compilation; the shape checks are off, as
    dynamo cannot trace their wrappers.
    """
    shapes: list[tuple[int, ...]] = []
    real_compile = torch.compile

    def backend(graph: torch.fx.GraphModule, examples: list[torch.Tensor]) -> object:
        shapes.append(tuple(examples[0].shape))
        return graph.forward

    def eager_compile(fn: object, *, mode: str, fullgraph: bool) -> object:
        assert fullgraph and mode != "off"
        return real_compile(fn, backend=backend, fullgraph=True, dynamic=False)

    monkeypatch.setattr(torch, "compile", eager_compile)
    torch._dynamo.reset()
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield shapes
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)
        torch._dynamo.reset()
