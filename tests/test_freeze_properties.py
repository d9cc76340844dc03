"""Property tests: frozen means frozen, proven by backward passes and optimizer steps.

Hypothesis draws the model (a tiny resfx ResNet or torchvision's resnet18), a
non-empty freeze mask over the modules that hold parameters, the batch size (1
only with "eval"), the optimizer and 1-3 steps; every BatchNorm policy runs in
every run. Every claim is checked on what training does, not on flags, and
"frozen" is checked bit for bit.
"""

import copy
from typing import get_args

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import resfx
from conftest import same_bits
from resfx.autograd import check_gradient_flow, reachable_parameters

POLICIES = get_args(resfx.BNPolicy)

MODELS = {
    "resfx": lambda: resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1), num_classes=5)),
    "torchvision-resnet18": lambda: torchvision.models.resnet18(num_classes=5),
}
OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.01),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01),
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.01),
}
BATCHNORMS = (nn.modules.batchnorm._BatchNorm, resfx.nn.BatchNorm2d)


def _inside(name: str, roots: list[str]) -> bool:
    return any(root == "" or name == root or name.startswith(root + ".") for root in roots)


def _batch(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    # a batch of 1 at 32x32 reaches layer4 at 1x1, where a train-mode BatchNorm sees a
    # single value per channel; 64x64 gives it 4
    size = 64 if batch == 1 else 32
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size, size, generator=generator)
    return images, torch.randint(0, 5, (batch,), generator=generator)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def _parametrised_modules(kind: str) -> list[str]:
    return [name for name, m in MODELS[kind]().named_modules() if any(True for _ in m.parameters())]


PARAMETRISED_MODULES = {kind: _parametrised_modules(kind) for kind in MODELS}


@st.composite
def training_plans(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(sorted(MODELS)))
    roots = st.lists(
        st.sampled_from(PARAMETRISED_MODULES[kind]), min_size=1, max_size=4, unique=True
    )
    return {
        "kind": kind,
        "roots": draw(roots),
        "batch": draw(st.sampled_from([1, 2, 3])),
        "optimizer": draw(st.sampled_from(sorted(OPTIMIZERS))),
        "over_all_parameters": draw(st.booleans()),
        "steps": draw(st.integers(1, 3)),
    }


@pytest.mark.parametrize("policy", POLICIES)
# the profile's examples shared out between the policies (ci: 5 each; thorough: 125 each)
@settings(max_examples=max(5, settings.default.max_examples // 4))
@given(plan=training_plans())
def test_frozen_parts_do_not_move_and_trainable_parts_do(policy: str, plan: dict) -> None:
    plan = {
        **plan,
        "policy": policy,
        "batch": plan["batch"] if policy == "eval" else max(plan["batch"], 2),
    }
    torch.manual_seed(0)
    model = MODELS[plan["kind"]]()
    for root in plan["roots"]:
        resfx.freeze(model.get_submodule(root), bn=plan["policy"])
    frozen_modules = {name for name, _ in model.named_modules() if _inside(name, plan["roots"])}
    frozen = {
        name for name, _ in model.named_parameters() if name.rpartition(".")[0] in frozen_modules
    }
    trainable = {name for name, _ in model.named_parameters()} - frozen
    frozen_bn_buffers = {
        f"{name}.{buffer}"
        for name, module in model.named_modules()
        if name in frozen_modules and isinstance(module, BATCHNORMS)
        for buffer in ("running_mean", "running_var", "num_batches_tracked")
    }
    params = (
        model.parameters()
        if plan["over_all_parameters"] or not trainable
        else resfx.parameter_groups(model, lr=0.01)
    )
    optimizer = OPTIMIZERS[plan["optimizer"]](params)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not plan["over_all_parameters"] and trainable:
        # parameter_groups holds exactly the trainable parameters, nothing frozen
        assert held == {id(p) for name, p in model.named_parameters() if name in trainable}
    assert frozen, "the plan freezes something"
    before = _state(model)

    for step in range(plan["steps"]):
        model.train()  # every epoch's call, which must not undo the policy
        optimizer.zero_grad(set_to_none=True)
        images, labels = _batch(plan["batch"], seed=step)
        loss = nn.functional.cross_entropy(model(images), labels)
        assert set(reachable_parameters(loss, model)) == trainable
        if not trainable:
            assert not loss.requires_grad
            continue
        check_gradient_flow(model, loss)
        loss.backward()
        check_gradient_flow(model)
        for name, p in model.named_parameters():
            if name in frozen:
                assert p.grad is None, name
            else:
                assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        optimizer.step()

    after = model.state_dict()
    for name in frozen:
        assert same_bits(after[name], before[name]), f"frozen {name} moved"
    for name in trainable:
        assert not torch.equal(after[name], before[name]), f"trainable {name} did not move"
    for name in frozen_bn_buffers:
        unchanged = same_bits(after[name], before[name])
        assert unchanged == (plan["policy"] != "train"), (name, plan["policy"])


@st.composite
def freezing_sequences(draw: st.DrawFn) -> dict:
    """Freezes before a `frozen` block, the block's module and policy, and freezes inside it."""
    kind = draw(st.sampled_from(sorted(MODELS)))
    names = PARAMETRISED_MODULES[kind]
    policies = st.sampled_from(POLICIES)
    block = draw(st.sampled_from(names))
    inside = [name for name in names if _inside(name, [block])]
    return {
        "kind": kind,
        "training": draw(st.booleans()),
        "before": draw(st.lists(st.tuples(st.sampled_from(names), policies), max_size=2)),
        "block": (block, draw(policies)),
        "inside": draw(st.lists(st.tuples(st.sampled_from(inside), policies), max_size=2)),
    }


def _freeze_all(model: nn.Module, steps: list[tuple[str, str]]) -> None:
    for name, policy in steps:
        resfx.freeze(model.get_submodule(name), bn=policy)


def _observable(model: nn.Module) -> dict:
    """Flags, modes, BatchNorm settings and instance attributes of every module."""
    return {
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "training": {name: m.training for name, m in model.named_modules()},
        "track": {
            name: m.track_running_stats
            for name, m in model.named_modules()
            if isinstance(m, BATCHNORMS)
        },
        "attributes": {name: sorted(vars(m)) for name, m in model.named_modules()},
    }


def _train_step(model: nn.Module) -> dict[str, torch.Tensor]:
    """One SGD step in train mode (when anything trains) and an eval forward; the state after."""
    images, labels = _batch(2, seed=1)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    loss = nn.functional.cross_entropy(model(images), labels)
    if trainable:
        loss.backward()
        torch.optim.SGD(trainable, lr=0.01, momentum=0.9).step()
    model.eval()
    return {**_state(model), "eval output": model(images).detach()}


def _assert_same_training(model: nn.Module, reference: nn.Module) -> None:
    ours, theirs = _train_step(model), _train_step(reference)
    for name, tensor in theirs.items():
        assert same_bits(ours[name], tensor), name


def test_same_bits_is_bitwise() -> None:
    nan = torch.tensor([float("nan"), 1.0])
    assert same_bits(nan, nan.clone()) and not torch.equal(nan, nan.clone())
    assert torch.equal(torch.tensor(0.0), torch.tensor(-0.0))
    assert not same_bits(torch.tensor(0.0), torch.tensor(-0.0))
    assert not same_bits(torch.tensor(1.0), torch.tensor(1.0, dtype=torch.float64))


@given(sequence=freezing_sequences())
def test_unfreeze_and_frozen_restore_flags_modes_and_behaviour(sequence: dict) -> None:
    pristine = MODELS[sequence["kind"]]().train(sequence["training"])
    model = copy.deepcopy(pristine)
    _freeze_all(model, sequence["before"])
    entered = copy.deepcopy(model)

    block, policy = sequence["block"]
    with resfx.frozen(model.get_submodule(block), bn=policy):
        _freeze_all(model, sequence["inside"])
    assert _observable(model) == _observable(entered)
    _assert_same_training(copy.deepcopy(model), entered)

    _freeze_all(model, [sequence["block"], *sequence["inside"]])
    resfx.unfreeze(model)
    assert _observable(model) == _observable(pristine)
    _assert_same_training(model, pristine)


@given(
    kind=st.sampled_from(sorted(MODELS)),
    root=st.sampled_from(["layer1", "layer2.0", "layer3.0.bn1", "fc", "conv1"]),
    optimizer=st.sampled_from(sorted(OPTIMIZERS)),
)
def test_freezing_after_backward_leaves_nothing_a_step_could_apply(
    kind: str, root: str, optimizer: str
) -> None:
    model = MODELS[kind]()
    opt = OPTIMIZERS[optimizer](model.parameters())
    images, labels = _batch(2, seed=0)
    nn.functional.cross_entropy(model(images), labels).backward()
    opt.step()  # the optimizer now keeps state (momentum, moments) for every parameter
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(images), labels).backward()

    part = resfx.freeze(model.get_submodule(root))
    before = _state(part)
    report = resfx.check_optimizer(opt, model)
    expected = {f"{root}.{name}" for name, _ in part.named_parameters()}
    assert set(report.frozen_held) == set(report.frozen_with_state) == expected
    assert report.frozen_with_grad == ()
    opt.step()
    for name, tensor in part.state_dict().items():
        assert same_bits(tensor, before[name]), name


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_plain_requires_grad_false_after_backward_lets_a_step_move_weights(optimizer: str) -> None:
    """The pitfall `freeze` removes: a stale `.grad` (and weight decay, momentum) still apply."""
    model = MODELS["resfx"]()
    opt = OPTIMIZERS[optimizer](model.parameters())
    images, labels = _batch(2, seed=0)
    nn.functional.cross_entropy(model(images), labels).backward()
    model.layer1.requires_grad_(False)
    before = _state(model.layer1)
    assert resfx.check_optimizer(opt, model).frozen_with_grad
    opt.step()
    moved = [n for n, t in model.layer1.state_dict().items() if not same_bits(t, before[n])]
    assert moved
