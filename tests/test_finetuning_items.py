"""Fine-tuning past the first step: one test per item of the fine-tuning issue.

Each runs optimizer steps or forwards and compares values, not flags alone.
"""

import subprocess
import sys
import warnings

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.checkpoint import checkpoint

import resfx
from conftest import TinyResNet


def _step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    model.train()
    loss = model(torch.randn(4, 3, 8, 8)).square().mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _head_only(model: nn.Module) -> nn.Module:
    resfx.freeze(model)
    resfx.unfreeze(model.fc)
    return model


# 1. The new group's rate is lr_scale x the run's current rate, not the constructor's default.
@pytest.mark.parametrize("make", [torch.optim.Adam, lambda g: torch.optim.SGD(g, momentum=0.9)])
def test_lr_scale_multiplies_the_current_rate_of_the_run(make) -> None:
    model = _head_only(TinyResNet())
    optimizer = make(resfx.parameter_groups(model, lr=1e-2))
    resfx.unfreeze(model.layer4, optimizer=optimizer, lr_scale=0.1)
    assert optimizer.param_groups[-1]["lr"] == pytest.approx(1e-3)
    optimizer.param_groups[0]["lr"] = 0.5  # as a scheduler would have left it
    resfx.freeze(model.layer3)
    resfx.unfreeze(model.layer3, optimizer=optimizer, lr_scale=0.1, model=model)
    assert optimizer.param_groups[-1]["lr"] == pytest.approx(1e-4)  # layer4's group: 1e-3 x 0.1


def test_lr_scale_reference_is_the_neighbour_toward_the_head_and_lr_is_explicit() -> None:
    model = _head_only(TinyResNet())
    optimizer = torch.optim.SGD(resfx.parameter_groups(model, lr=0.1))
    resfx.unfreeze(model.layer4, optimizer=optimizer, lr=0.02)
    assert optimizer.param_groups[-1]["lr"] == 0.02
    with pytest.raises(ValueError, match=r"different learning rates \[0.02, 0.1\]: pass model="):
        resfx.unfreeze(model.layer3, optimizer=optimizer, lr_scale=0.5)
    resfx.freeze(model.layer3)
    resfx.unfreeze(model.layer3, optimizer=optimizer, lr_scale=0.5, model=model)
    assert optimizer.param_groups[-1]["lr"] == pytest.approx(0.01)
    resfx.freeze(model.fc)
    with pytest.raises(ValueError, match="not both"):
        resfx.unfreeze(model.fc, optimizer=optimizer, lr=0.1, lr_scale=0.5)


# 2. A scheduler made before the unfreeze: warned about; Finetuner owns groups and schedule.
def test_unfreeze_warns_when_a_scheduler_is_attached() -> None:
    model = _head_only(TinyResNet())
    optimizer = torch.optim.SGD(resfx.parameter_groups(model, lr=0.1))
    torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    with pytest.warns(UserWarning, match="does not know the new groups"):
        resfx.unfreeze(model.layer4, optimizer=optimizer, lr=0.01)


# 3. Weight-decay split, and an optimizer state saved before the unfreeze loads after it.
def test_new_groups_follow_the_weight_decay_split() -> None:
    model = _head_only(TinyResNet())
    optimizer = torch.optim.AdamW(resfx.parameter_groups(model, lr=1e-2, weight_decay=0.05))
    resfx.unfreeze(model.layer4, optimizer=optimizer)
    decayed, plain = optimizer.param_groups[-2:]
    assert decayed["weight_decay"] == 0.05 and all(p.ndim >= 2 for p in decayed["params"])
    assert plain["weight_decay"] == 0.0 and [p.ndim for p in plain["params"]] == [1, 1]


def test_optimizer_state_saved_before_an_unfreeze_loads_after_it() -> None:
    model = _head_only(TinyResNet())
    optimizer = torch.optim.Adam(resfx.parameter_groups(model, lr=1e-2))
    _step(model, optimizer)
    saved = optimizer.state_dict()
    resfx.unfreeze(model.layer4, optimizer=optimizer, lr=1e-3)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optimizer.load_state_dict(saved)
    resfx.load_optimizer_state(optimizer, saved)
    head = optimizer.state[model.fc.weight]
    assert int(head["step"]) == 1 and not optimizer.state.get(model.layer4[0].weight)
    assert optimizer.param_groups[-1]["lr"] == 1e-3
    with pytest.raises(ValueError, match="not the first groups"):
        resfx.load_optimizer_state(
            torch.optim.Adam(resfx.parameter_groups(_head_only(TinyResNet()), lr=1.0)),
            optimizer.state_dict(),
        )


# 4. SyncBatchNorm conversion keeps the policies, or is warned about.
def test_torchs_sync_batchnorm_conversion_is_warned_about_and_resfxs_keeps_the_policy() -> None:
    model = resfx.freeze(TinyResNet())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    with pytest.warns(UserWarning, match="convert_sync_batchnorm"):
        # the copy lost the policy but kept momentum 0: batch statistics, statistics held
        assert resfx.bn_policy(converted.bn1) == "batch"
    with pytest.warns(UserWarning, match="bn1 is a SyncBatchNorm"):
        resfx.freeze(converted)
    kept = resfx.convert_sync_batchnorm(resfx.freeze(TinyResNet()))
    before = kept.bn1.running_mean.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(kept.bn1, nn.SyncBatchNorm) and resfx.bn_policy(kept.bn1) == "eval"
        kept.train()(torch.randn(4, 3, 8, 8))
        assert torch.equal(kept.bn1.running_mean, before) and not kept.bn1.training
        resfx.unfreeze(kept)
    assert resfx.bn_policy(kept.bn1) == "train" and kept.bn1.training


# 5. freeze_to and stage names on torchvision, timm and resfx ResNets, or any listed stages.
@pytest.mark.parametrize("activation", ["relu", "act1"])
def test_freeze_to_on_torchvision_and_timm_names(activation: str) -> None:
    model = resfx.freeze_to(TinyResNet(activation), "layer3")
    trainable = {name.split(".")[0] for name, _ in resfx.trainable_parameters(model)}
    assert trainable == {"layer4", "fc"}
    assert resfx.stage_map(model)["stem"] == ("conv1", "bn1", activation, "maxpool")


def test_stage_names_of_resfx_models_and_explicit_lists() -> None:
    ours = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1)))
    assert list(resfx.stage_map(ours)) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    mlp = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    resfx.freeze_to(mlp, "body", stages=[("body", ["0", "1"]), ("head", ["2"])])
    assert [p.requires_grad for p in mlp.parameters()] == [False, False, True, True]
    with pytest.raises(ValueError, match=r"stage modules \['9'\] are not in"):
        resfx.freeze_to(mlp, "x", stages=["9"])


# 6a. Every module with running statistics is covered by the policies.
@pytest.mark.parametrize("bn", ["eval", "batch"])
def test_instance_norm_with_running_stats_is_held_by_the_policy(bn: str) -> None:
    norm = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    with torch.no_grad():
        norm.running_mean.fill_(0.5)
    resfx.freeze(norm, bn=bn).train()
    x = torch.randn(2, 3, 4, 4)
    out = norm(x)
    assert torch.equal(norm.running_mean, torch.full((3,), 0.5)) and resfx.bn_policy(norm) == bn
    reference = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    reference.load_state_dict(norm.state_dict())
    expected = (
        reference.eval()(x)
        if bn == "eval"
        else nn.functional.instance_norm(x, weight=norm.weight, bias=norm.bias)
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    resfx.unfreeze(norm)
    norm(x)
    assert not torch.equal(norm.running_mean, torch.full((3,), 0.5))


# 6b. Tied parameters: warned about, the other owners named; the summary lists them once.
class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.mid = nn.Linear(3, 3)
        self.out = nn.Linear(3, 5, bias=False)
        self.out.weight = self.emb.weight


def test_freezing_and_unfreezing_one_owner_of_a_tied_weight_warns_and_names_the_other() -> None:
    model = _Tied()
    with pytest.warns(UserWarning, match=r"out.weight is also emb.weight"):
        resfx.freeze(model.out, model=model)
    with pytest.warns(UserWarning, match="frozen through another owner"):
        resfx.unfreeze(model.emb)
    assert model.emb.weight.requires_grad
    summary = resfx.parameter_summary(model)
    assert [row.name for row in summary.rows] == ["emb.weight", "mid.weight", "mid.bias"]


def test_unfreezing_one_owner_warns_that_the_other_still_reports_frozen() -> None:
    model = resfx.freeze(_Tied())
    with pytest.warns(UserWarning, match=r"weight is also Linear"):
        resfx.unfreeze(model.emb)
    resfx.freeze(model)
    with pytest.warns(UserWarning, match=r"emb.weight is also out.weight"):
        resfx.unfreeze(model.emb, model=model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resfx.unfreeze(resfx.freeze(model))  # both owners at once: nothing to warn about


# 7. Reentrant checkpointing: not called dead before backward, verified after it.
class _Checkpointed(nn.Module):
    def __init__(self, reentrant: bool) -> None:
        super().__init__()
        self.pre, self.inner, self.head = nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 1)
        self.reentrant = reentrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(checkpoint(self.inner, self.pre(x), use_reentrant=self.reentrant))


def test_check_gradient_flow_with_reentrant_checkpointing() -> None:
    model = _Checkpointed(reentrant=True)
    loss = model(torch.randn(2, 3)).sum()
    with pytest.warns(UserWarning, match="use_reentrant=True"):
        report = resfx.check_gradient_flow(model, loss)
    assert report.unverified == ("inner.weight", "inner.bias")
    loss.backward()
    assert len(resfx.check_gradient_flow(model).with_grad) == 6
    plain = _Checkpointed(reentrant=False)
    assert resfx.check_gradient_flow(plain, plain(torch.randn(2, 3)).sum()).unverified == ()


def test_reentrant_checkpointing_after_a_frozen_part_is_truly_dead() -> None:
    model = _Checkpointed(reentrant=True)
    resfx.freeze(model.pre)
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad"):
        loss = model(torch.randn(2, 3)).sum()
    with pytest.raises(resfx.GradientFlowError, match="dead") as caught:
        resfx.check_gradient_flow(model, loss)
    assert caught.value.problems["dead"] == ("inner.weight", "inner.bias")


# 9. API seams.
def test_problems_is_a_dict_of_names_on_both_reports() -> None:
    model = resfx.freeze(nn.Linear(2, 2))
    report = resfx.check_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model)
    assert report.problems == {"frozen_held": ("weight", "bias")}
    with pytest.raises(resfx.OptimizerCheckError) as caught:
        resfx.check_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model, strict=True)
    assert caught.value.problems == report.problems
    assert resfx.GradientFlowError({"dead": ("w",)}).problems == {"dead": ("w",)}


def test_resfx_train_is_an_attribute_after_import_resfx() -> None:
    code = "import resfx; print(resfx.train.TrainingArgs.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "TrainingArgs", result.stderr


def test_freeze_to_on_a_torchvision_resnet_with_a_finetuner() -> None:
    tv = torchvision.models.resnet18(num_classes=3)
    resfx.freeze_to(tv, "layer3")
    assert {n.split(".")[0] for n, _ in resfx.trainable_parameters(tv)} == {"layer4", "fc"}
