"""Issue 22.29: frozen BatchNorm statistics survive torch's own SyncBatchNorm converter."""

import copy
import warnings

import pytest
import torch
import torchvision
from torch import nn

import resfx
from conftest import TinyResNet, randomise_resnet_state, same_bits, whole_model_copies


def _pretrained_resnet18() -> nn.Module:
    model = torchvision.models.resnet18(num_classes=4)
    randomise_resnet_state(model, seed=2)
    return model


def _statistics(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: tensor.clone()
        for name, tensor in model.state_dict().items()
        if name.endswith(("running_mean", "running_var"))
    }


def _batchnorms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_torchs_converter_after_freeze_cannot_move_the_statistics() -> None:
    model = _pretrained_resnet18()
    before = _statistics(model)
    resfx.freeze(model)
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert all(isinstance(m, nn.SyncBatchNorm) for m in _batchnorms(model))
    model.train()
    assert model.bn1.training  # torch's copy lost the policy's patched train()
    x = torch.randn(4, 3, 32, 32)
    model(x)
    model(5 * x + 3)
    after = _statistics(model)
    assert before.keys() == after.keys()
    assert all(same_bits(before[name], after[name]) for name in before), [
        name for name in before if not same_bits(before[name], after[name])
    ]
    with pytest.warns(UserWarning, match="normalises with batch statistics"):
        assert resfx.bn_policy(model.bn1) == "batch"


def test_unfreeze_after_torchs_converter_restores_the_original_momentum() -> None:
    model = TinyResNet()
    model.bn1.momentum = None  # the cumulative average comes back as None
    model.layer1[1].momentum = 0.25
    resfx.freeze(model)
    assert {m.momentum for m in _batchnorms(model)} == {0.0}
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    resfx.unfreeze(model)
    assert model.bn1.momentum is None and model.layer1[1].momentum == 0.25
    assert {m.momentum for m in _batchnorms(model)} - {None, 0.25} == {0.1}
    assert all(p.requires_grad for p in model.parameters())
    before = _statistics(model)
    model.train()(torch.randn(4, 3, 8, 8))
    after = _statistics(model)
    assert all(not torch.equal(before[name], after[name]) for name in before)


def test_freeze_again_after_torchs_converter_keeps_the_original_record() -> None:
    model = nn.SyncBatchNorm.convert_sync_batchnorm(resfx.freeze(TinyResNet()))
    with pytest.warns(UserWarning, match="is a SyncBatchNorm made by torch") as warned:
        resfx.freeze(model)
    assert len(warned) == 5 and "bn1 is a SyncBatchNorm" in str(warned[0].message)
    assert resfx.bn_policy(model.bn1) == "eval" and not model.train().bn1.training
    resfx.unfreeze(model)
    assert model.bn1.momentum == 0.1 and model.bn1.training
    assert all(p.requires_grad for p in model.parameters())


def test_eval_policy_outputs_are_eval_mode_outputs_and_unfreeze_restores_momentum() -> None:
    model = _pretrained_resnet18()
    reference = copy.deepcopy(model).eval()
    x = torch.randn(2, 3, 32, 32)
    resfx.freeze(model).train()
    assert same_bits(model(x), reference(x))
    resfx.unfreeze(model)
    assert all(m.momentum == 0.1 for m in _batchnorms(model))


def test_the_saved_momentum_survives_whole_model_copies_and_state_dicts_need_none() -> None:
    model = resfx.freeze(TinyResNet())
    assert model.bn1.momentum == 0.0
    for twin in whole_model_copies(model):
        resfx.unfreeze(twin)
        assert twin.bn1.momentum == 0.1
    # A state dict holds tensors only, not momentum: the model it is loaded into keeps the
    # momentum it was built (and frozen) with, so unfreeze restores that one.
    reloaded = resfx.freeze(TinyResNet())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reloaded.load_state_dict(model.state_dict())
    assert "momentum" not in str(list(model.state_dict()))
    resfx.unfreeze(reloaded)
    assert reloaded.bn1.momentum == 0.1
