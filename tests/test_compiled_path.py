"""The compiled frozen path: one batch shape, the same features, the same training steps."""

import os

import pytest
import torch

from resfx import ResNet, ResNetConfig
from resfx._frozen_step import FrozenForward, HeadStep, fold_frozen_backbone
from resfx.train import TrainingArgs, train

# The suite's runtime shape checks wrap every resfx function in a checker dynamo cannot
# trace: compiling runs without them, as users run.
compiling = pytest.mark.usefixtures("no_shape_checks")


@pytest.fixture
def backbone() -> ResNet:
    torch.manual_seed(0)
    return fold_frozen_backbone(
        ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1))).eval(), precision="fp32"
    )


@compiling
def test_a_compiled_forward_compiles_one_shape_and_returns_every_real_row(
    backbone: ResNet, compiled_shapes: list[tuple[int, ...]]
) -> None:
    forward = FrozenForward(backbone.forward_pooled, mode="default", batch_size=4, precision="fp32")
    eager = FrozenForward(backbone.forward_pooled, mode="off", batch_size=4, precision="fp32")
    images = torch.randn(11, 3, 32, 32)
    forward.warm_up(images[:4])
    for count in (11, 4, 3, 1, 8):
        features = forward(images[:count])
        assert features.shape == (count, 32) and features.dtype == torch.float32
        torch.testing.assert_close(features, eager(images[:count]), rtol=1e-5, atol=1e-6)
    assert compiled_shapes == [(4, 3, 32, 32)]
    assert not features.is_inference() and not features.requires_grad


def test_what_pads_a_batch_changes_no_real_row(backbone: ResNet) -> None:
    """Rows of an eval-mode backbone are independent: zeros or other images beside them alike."""
    eager = FrozenForward(backbone.forward_pooled, mode="off", batch_size=4, precision="fp32")
    images = torch.randn(3, 3, 32, 32)
    with_zeros = torch.cat([images, torch.zeros(1, 3, 32, 32)])
    with_noise = torch.cat([images, 100 * torch.randn(1, 3, 32, 32)])
    assert torch.equal(eager(with_zeros)[:3], eager(with_noise)[:3])


def test_bad_settings_say_what_is_allowed(backbone: ResNet) -> None:
    with pytest.raises(ValueError, match="unknown compile mode 'fast'.*'reduce-overhead'"):
        FrozenForward(backbone.forward_pooled, mode="fast", batch_size=4, precision="fp32")
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        FrozenForward(backbone.forward_pooled, mode="off", batch_size=0, precision="fp32")
    with pytest.raises(ValueError, match="compile='default' compiles the folded frozen backbone"):
        TrainingArgs(mode="full", compile="default")
    with pytest.raises(ValueError, match="bn='batch'"):
        TrainingArgs(mode="head", bn="batch", compile="default")


def test_the_eager_head_step_is_the_step_train_always_took() -> None:
    torch.manual_seed(0)
    heads = [torch.nn.Linear(8, 3) for _ in range(2)]
    heads[1].load_state_dict(heads[0].state_dict())
    optimizers = [torch.optim.Adam(head.parameters(), lr=1e-2) for head in heads]
    step = HeadStep(heads[0], optimizers[0], graph=True)  # no GPU here: every step is eager
    assert not step.graphed
    generator = torch.Generator().manual_seed(1)
    for count in (5, 5, 5, 2, 5):
        features = torch.randn(count, 8, generator=generator)
        labels = torch.randint(0, 3, (count,), generator=generator)
        loss = step(features, labels)
        optimizers[1].zero_grad(set_to_none=True)
        expected = torch.nn.functional.cross_entropy(heads[1](features), labels)
        expected.backward()
        optimizers[1].step()
        assert torch.equal(loss, expected.detach()) and not loss.requires_grad
    for ours, theirs in zip(heads[0].parameters(), heads[1].parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_an_optimizer_state_from_a_graphed_run_steps_eagerly_on_the_cpu() -> None:
    head = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(head.parameters(), capturable=False)
    optimizer.param_groups[0]["capturable"] = True  # as loaded from a GPU run's checkpoint
    step = HeadStep(head, optimizer, graph=False)
    assert optimizer.param_groups[0]["capturable"] is False
    step(torch.randn(3, 4), torch.tensor([0, 1, 1]))


@compiling
def test_a_compiled_head_run_trains_as_the_eager_run(
    compiled_shapes: list[tuple[int, ...]],
) -> None:
    settings = dict(
        data="synthetic",
        arch="resnet18",
        weights=None,
        trainset_size=40,
        testset_size=24,
        epochs=2,
        batch_size=16,
        image_size=32,
        device="cpu",
    )
    eager = train(TrainingArgs(**settings)).history
    compiled = train(TrainingArgs(**settings, compile="default")).history
    torch.testing.assert_close(compiled.loss_list, eager.loss_list, rtol=1e-4, atol=1e-5)
    assert compiled.accuracy_list == eager.accuracy_list
    assert compiled_shapes == [(16, 3, 32, 32)]  # train's batches, the last one padded, and eval


@compiling
@pytest.mark.skipif(
    not (os.environ.get("RESFX_TEST_INDUCTOR") or torch.cuda.is_available()),
    reason="inductor's first compile takes ~80 s on 2 CPU cores; RESFX_TEST_INDUCTOR=1 runs it",
)
def test_inductor_compiles_the_folded_backbone_in_one_graph(backbone: ResNet) -> None:
    torch._dynamo.reset()
    forward = FrozenForward(backbone.forward_pooled, mode="default", batch_size=2, precision="fp32")
    images = torch.randn(3, 3, 16, 16)
    assert forward.warm_up(images[:2]) > 0
    expected = FrozenForward(backbone.forward_pooled, mode="off", batch_size=2, precision="fp32")
    torch.testing.assert_close(forward(images), expected(images), rtol=1e-4, atol=1e-5)
