"""freeze, unfreeze, freeze_to, frozen, optimizer hygiene and the parameter summary, by training."""

import copy

import pytest
import torch
import torchvision
from torch import nn

import resfx
from conftest import whole_model_copies
from resfx.autograd import DriftGuard
from resfx.models import STAGES


def _tiny() -> resfx.ResNet:
    return resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1), num_classes=5))


def _step(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """model.train(), one forward and backward on a fixed batch, and a step (SGD if none given)."""
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer or torch.optim.SGD(trainable, lr=0.01, momentum=0.9, weight_decay=0.1)
    optimizer.zero_grad(set_to_none=True)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 5, (4,), generator=generator)
    nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()


def _bn_state(model: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith(prefix)}


@pytest.mark.parametrize("make", [_tiny, lambda: torchvision.models.resnet18(num_classes=5)])
@pytest.mark.parametrize("policy", ["eval", "batch"])
def test_policy_keeps_running_statistics_through_train_calls(make, policy: str) -> None:
    model = make()
    resfx.freeze(model.layer1, bn=policy)
    before = _bn_state(model, "layer1.")
    for _ in range(2):
        model.eval()
        _step(model)  # calls model.train() first
    after = model.state_dict()
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name
    # the unfrozen BatchNorms did update: the same steps move statistics when not frozen
    assert int(model.layer2[0].bn1.num_batches_tracked) == 2


def test_plain_requires_grad_false_lets_running_statistics_move() -> None:
    """The pitfall `freeze` exists for; the same steps as above with requires_grad_(False)."""
    model = _tiny()
    model.layer1.requires_grad_(False)
    model.layer1.eval()
    before = _bn_state(model, "layer1.")
    _step(model)
    assert not torch.equal(model.layer1[0].bn1.running_mean, before["layer1.0.bn1.running_mean"])


def test_policies_normalise_as_documented() -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    bn.running_mean.fill_(5.0)
    x = torch.randn(4, 3, 2, 2)
    by_running = nn.functional.batch_norm(x, bn.running_mean, bn.running_var, training=False)
    by_batch = nn.functional.batch_norm(x, None, None, training=True)
    for policy, expected in [("eval", by_running), ("batch", by_batch), ("train", by_batch)]:
        frozen = resfx.freeze(copy.deepcopy(bn), bn=policy).train()
        torch.testing.assert_close(frozen(x), expected)
        # eval mode always uses the running statistics (as `train` updated them)
        torch.testing.assert_close(
            frozen.eval()(x),
            nn.functional.batch_norm(x, frozen.running_mean, frozen.running_var, training=False),
        )
        assert int(frozen.num_batches_tracked) == (1 if policy == "train" else 0)


@pytest.mark.parametrize("policy", ["eval", "batch"])
def test_policy_survives_deepcopy_pickle_and_state_dict_loading(policy: str) -> None:
    model = resfx.freeze(_tiny(), bn=policy)
    model.fc.requires_grad_(True)
    copies = whole_model_copies(model)
    reloaded = resfx.freeze(_tiny(), bn=policy)
    reloaded.fc.requires_grad_(True)
    reloaded.load_state_dict(model.state_dict())
    for twin in [*copies, reloaded]:
        with DriftGuard(twin):
            _step(twin)
        twin.eval()  # reaches the twin's own freeze record, not the original's
        resfx.unfreeze(twin)
        assert all(p.requires_grad for p in twin.parameters())
        assert not twin.layer1[0].bn1.training and twin.layer1[0].bn1.track_running_stats
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert model.layer1[0].bn1.training == (policy == "batch")


def test_unfreeze_follows_the_mode_asked_for_while_frozen() -> None:
    model = _tiny()
    resfx.freeze(model.layer1)
    model.eval()
    resfx.unfreeze(model.layer1)
    assert not model.layer1[0].bn1.training
    resfx.freeze(model.layer1)
    model.train()
    resfx.unfreeze(model.layer1)
    assert model.layer1[0].bn1.training


def test_freezing_again_with_another_policy_and_unfreezing_restores_the_first_state() -> None:
    model = _tiny()
    reference = copy.deepcopy(model)
    resfx.freeze(model.layer1, bn="batch")
    resfx.freeze(model, bn="eval")
    assert model.layer1[0].bn1.track_running_stats and not model.layer1[0].bn1.training
    resfx.unfreeze(model.layer2)
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert not any(p.requires_grad for p in model.layer1.parameters())
    resfx.unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())
    _step(model)
    _step(reference)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_unfreeze_leaves_parameters_frozen_by_other_means() -> None:
    model = _tiny()
    model.conv1.requires_grad_(False)
    resfx.freeze(model)
    resfx.unfreeze(model)
    assert not model.conv1.weight.requires_grad
    assert model.bn1.weight.requires_grad


def test_unfreeze_adds_the_thawed_parameters_to_the_optimizer_once() -> None:
    model = resfx.freeze(_tiny())
    model.fc.requires_grad_(True)
    optimizer = torch.optim.Adam([*model.fc.parameters(), model.layer4[0].conv1.weight], lr=0.1)
    resfx.unfreeze(model.layer4, optimizer=optimizer, lr_scale=0.5)
    assert len(optimizer.param_groups) == 2
    new = optimizer.param_groups[1]
    held = {id(p) for p in new["params"]}
    assert held == {id(p) for p in model.layer4.parameters()} - {id(model.layer4[0].conv1.weight)}
    assert new["lr"] == 0.05 and new["betas"] == optimizer.defaults["betas"]
    before = {k: v.clone() for k, v in model.layer4.state_dict().items()}
    _step(model, optimizer)
    for name, p in model.layer4.named_parameters():
        assert not torch.equal(p, before[name]), name
    resfx.freeze(model.layer4)
    resfx.unfreeze(model.layer4, optimizer=optimizer)  # all held already: no new group
    assert len(optimizer.param_groups) == 2
    resfx.unfreeze(model, optimizer=optimizer, model=model)
    held = sorted(id(p) for group in optimizer.param_groups for p in group["params"])
    assert len(optimizer.param_groups) == 3 and held == sorted(id(p) for p in model.parameters())


def test_unfreeze_into_an_optimizer_with_named_groups_uses_full_names(
    no_shape_checks: None,
) -> None:
    model = resfx.freeze(_tiny())
    model.fc.requires_grad_(True)
    optimizer = torch.optim.SGD(list(model.fc.named_parameters(prefix="fc")), lr=0.1)
    with pytest.raises(ValueError, match="pass model= .* full names"):
        resfx.unfreeze(model.layer4, optimizer=optimizer)
    resfx.freeze(model.layer4)
    resfx.unfreeze(model.layer4, optimizer=optimizer, model=model)
    names = [n for g in optimizer.param_groups[1:] for n in g["param_names"]]
    assert names == [n for n, _ in model.layer4.named_parameters(prefix="layer4")]


def test_unfreeze_errors(no_shape_checks: None) -> None:
    with pytest.raises(ValueError, match="nothing in this Linear was frozen by resfx.freeze"):
        resfx.unfreeze(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="lr_scale must be positive"):
        resfx.unfreeze(resfx.freeze(nn.Linear(2, 2)), lr_scale=0.0)
    with pytest.raises(ValueError, match="bn must be one of"):
        resfx.freeze(nn.Linear(2, 2), bn="frozen")


@pytest.mark.parametrize("stage", STAGES)
def test_freeze_to_freezes_stem_to_stage_on_resfx_and_torchvision(stage: str) -> None:
    ours = resfx.freeze_to(resfx.resnet18(), stage)
    theirs = resfx.freeze_to(torchvision.models.resnet18(), stage)
    upto = STAGES[: STAGES.index(stage) + 1]
    expected = {id(p) for name in upto for module in ours.stage(name) for p in module.parameters()}
    assert {id(p) for p in ours.parameters() if not p.requires_grad} == expected
    assert [n for n, p in ours.named_parameters() if not p.requires_grad] == [
        n for n, p in theirs.named_parameters() if not p.requires_grad
    ]


def test_freeze_to_trains_only_the_later_stages() -> None:
    model = resfx.freeze_to(_tiny(), "layer2", bn="eval")
    with DriftGuard(model) as guard:
        _step(model)
    assert {name.split(".")[0] for name in guard.names} == {"conv1", "bn1", "layer1", "layer2"}


def test_freeze_to_errors(no_shape_checks: None) -> None:
    with pytest.raises(ValueError, match="unknown stage 'layer5'"):
        resfx.freeze_to(_tiny(), "layer5")
    with pytest.raises(TypeError, match=r"cannot tell the stages of this Sequential"):
        resfx.freeze_to(nn.Sequential(nn.Linear(2, 2)), "stem")


class _TwoStages(nn.Module):
    """A model of another family that names its own stages (resfx.StagedModel)."""

    stage_names = ("features", "classifier")

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.classifier = nn.Linear(4, 2)

    def stage(self, name: str) -> list[nn.Module]:
        return [getattr(self, name)]


def test_freeze_to_reads_the_stages_a_model_names(no_shape_checks: None) -> None:
    model = resfx.freeze_to(_TwoStages(), "features", bn="batch")
    assert [n for n, _ in resfx.trainable_parameters(model)] == [
        "classifier.weight",
        "classifier.bias",
    ]
    assert resfx.bn_policy(model.features[1]) == "batch"
    with pytest.raises(
        ValueError,
        match=r"unknown stage 'layer1'; this model's stages are \['features', 'classifier'\]",
    ):
        resfx.freeze_to(_TwoStages(), "layer1")


def test_frozen_restores_on_error_and_is_single_use() -> None:
    model = _tiny()
    resfx.freeze(model.layer1, bn="batch")
    block = resfx.frozen(model, bn="eval")
    with pytest.raises(KeyError), block:
        assert not any(p.requires_grad for p in model.parameters())
        assert not model.layer1[0].bn1.training
        raise KeyError("inside")
    assert model.layer1[0].bn1.training and not model.layer1[0].bn1.track_running_stats
    assert all(p.requires_grad for p in model.layer2.parameters())
    with pytest.raises(RuntimeError, match="cannot be entered twice"), block:
        pass


def test_frozen_restores_each_flag_it_found_including_hand_frozen_ones() -> None:
    model = _tiny()
    resfx.freeze(model.layer1)  # by freeze, before the block
    model.layer2.requires_grad_(False)  # by hand, before the block
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    with resfx.frozen(model):
        model.layer2.requires_grad_(True)  # unfrozen by hand inside the block
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert any(flags.values()) and not all(flags.values())


def test_trainable_parameters_and_parameter_groups_hold_trainable_parameters_only() -> None:
    model = resfx.freeze_to(_tiny(), "layer4")
    names = [name for name, _ in resfx.trainable_parameters(model)]
    assert names == ["fc.weight", "fc.bias"]
    groups = resfx.parameter_groups(model, lr=0.1, weight_decay=0.5)
    assert [[id(p) for p in g["params"]] for g in groups] == [
        [id(model.fc.weight)],
        [id(model.fc.bias)],
    ]
    assert [g["weight_decay"] for g in groups] == [0.5, 0.0]
    assert len(resfx.parameter_groups(model, lr=0.1)) == 1
    shared = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    shared[1].weight = shared[0].weight
    assert len(resfx.parameter_groups(shared, lr=0.1)[0]["params"]) == 3


def test_parameter_groups_errors(no_shape_checks: None) -> None:
    with pytest.raises(ValueError, match="every parameter of this ResNet is frozen"):
        resfx.parameter_groups(resfx.freeze(_tiny()), lr=0.1)
    with pytest.raises(ValueError, match="lr=-1"):
        resfx.parameter_groups(_tiny(), lr=-1.0)
    with pytest.raises(ValueError, match="weight_decay=nan"):
        resfx.parameter_groups(_tiny(), lr=0.1, weight_decay=float("nan"))


def test_check_optimizer_reports_frozen_parameters_state_and_missing_ones() -> None:
    model = _tiny()
    optimizer = torch.optim.SGD([*model.parameters(), torch.zeros(2)], lr=0.1, momentum=0.9)
    _step(model, optimizer)
    resfx.freeze(model.layer1)
    model.layer2.requires_grad_(False)  # by hand: keeps its stale .grad
    model.extra = nn.Linear(2, 2)
    report = resfx.check_optimizer(optimizer, model)
    layer1 = [n for n, _ in model.named_parameters() if n.startswith("layer1.")]
    layer2 = [n for n, _ in model.named_parameters() if n.startswith("layer2.")]
    assert report.frozen_held == (*layer1, *layer2)
    assert report.frozen_with_state == report.frozen_held
    assert report.frozen_with_grad == tuple(layer2)
    assert report.trainable_missing == ("extra.weight", "extra.bias")
    assert report.foreign == 1
    assert not report.ok
    with pytest.raises(resfx.OptimizerCheckError, match="extra.weight") as raised:
        resfx.check_optimizer(optimizer, model, strict=True)
    assert raised.value.report == report
    assert len(report.describe()) == 3
    groups = resfx.parameter_groups(model, lr=0.1)
    assert resfx.check_optimizer(torch.optim.SGD(groups), model, strict=True).ok


def test_parameter_summary_rows_totals_and_table() -> None:
    model = resfx.freeze_to(_tiny(), "layer3", bn="batch")
    model.layer4[0].bn1.requires_grad_(False)
    summary = resfx.parameter_summary(model)
    rows = {row.name: row for row in summary.rows}
    assert [row.name for row in summary.rows] == [n for n, _ in model.named_parameters()]
    assert rows["layer1.0.bn1.weight"].bn_policy == "batch"
    assert rows["layer4.0.bn1.weight"].bn_policy == "train"  # frozen by hand: still updates
    assert rows["fc.weight"].bn_policy is None and rows["fc.weight"].shape == (5, 32)
    assert summary.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen_by_name = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.0.bn1.")
    frozen_count = sum(
        p.numel() for n, p in model.named_parameters() if n.startswith(frozen_by_name)
    )
    assert summary.frozen == frozen_count
    assert summary.total == sum(p.numel() for p in model.parameters())
    table = summary.table().splitlines()
    assert table[0].split() == ["parameter", "shape", "count", "status", "bn"]
    assert table[1].split() == ["conv1.weight", "(4,", "3,", "7,", "7)", "588", "frozen"]
    assert table[-1] == (
        f"total: {summary.total} parameters, {summary.trainable} trainable, {summary.frozen} frozen"
    )
