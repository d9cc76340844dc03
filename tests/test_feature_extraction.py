"""get_resnet_for_feature_extraction: a frozen ResNet34 backbone and a new head that trains."""

import warnings

import pytest
import torch
from torch import nn

import resfx
from resfx import get_resnet_for_feature_extraction
from resfx.autograd import DriftGuard, check_gradient_flow


def _train_head(model: resfx.ResNet, n_classes: int) -> None:
    optimizer = torch.optim.AdamW(resfx.parameter_groups(model, lr=1e-2, weight_decay=0.1))
    images = torch.randn(2, 3, 32, 32)
    labels = torch.arange(2) % n_classes
    for _ in range(2):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(images), labels)
        check_gradient_flow(model, loss)
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("policy", ["eval", "batch"])
def test_random_backbone_stays_frozen_and_the_head_trains(policy: str) -> None:
    model = resfx.get_resnet_for_feature_extraction(num_classes=3, bn=policy)
    assert isinstance(model.fc, resfx.nn.Linear) and model.fc.weight.shape == (3, 512)
    assert model.config.num_classes == 3
    head = {k: v.clone() for k, v in model.fc.state_dict().items()}
    with DriftGuard(model) as guard:
        _train_head(model, 3)
    assert not any(name.startswith("fc.") for name in guard.names)
    assert len(guard.names) == len(model.state_dict()) - 2
    for name, tensor in model.fc.state_dict().items():
        assert not torch.equal(tensor, head[name]), name
    assert {row.bn_policy for row in resfx.parameter_summary(model).rows} == {policy, None}


def test_local_checkpoint_loads_into_the_frozen_backbone(tmp_path) -> None:
    torch.manual_seed(7)
    source = resfx.resnet34()
    path = tmp_path / "resnet34.pth"
    torch.save(source.state_dict(), path)
    model = resfx.get_resnet_for_feature_extraction(num_classes=1, weights=path)
    loaded = model.state_dict()
    for name, tensor in source.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(loaded[name], tensor), name
    assert model.fc.out_features == 1
    assert [n for n, _ in resfx.trainable_parameters(model)] == ["fc.weight", "fc.bias"]
    images = torch.randn(2, 3, 32, 32)
    # in train mode the frozen backbone normalises with the checkpoint's running statistics
    features = model.train().forward_pooled(images)
    assert torch.equal(features, source.eval().forward_pooled(images))


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(resfx.resnet18().state_dict(), path)
    with pytest.raises(
        resfx.weights.CheckpointMismatchError, match=r"missing keys \[.layer1.2.conv1.weight."
    ):
        resfx.get_resnet_for_feature_extraction(num_classes=10, weights=path)


@pytest.mark.parametrize(
    ("num_classes", "error", "message"),
    [
        (0, ValueError, "num_classes must be at least 1"),
        (2.0, TypeError, "num_classes must be an int, got 2.0"),
        (True, TypeError, "num_classes must be an int, got True"),
        (None, TypeError, "needs num_classes="),
    ],
)
def test_num_classes_is_validated(no_shape_checks: None, num_classes, error, message: str) -> None:
    with pytest.raises(error, match=message):
        resfx.get_resnet_for_feature_extraction(num_classes=num_classes)


def test_the_seeds_call_with_the_class_count_by_position_works(no_shape_checks: None) -> None:
    # as the exercise (and ARENA's test of it) writes it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = get_resnet_for_feature_extraction(10)
    assert model.fc.out_features == 10 and model.config.num_classes == 10
    assert [name for name, _ in resfx.trainable_parameters(model)] == ["fc.weight", "fc.bias"]
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(TypeError, match="got both: num_classes=10"):
        get_resnet_for_feature_extraction(10, n_classes=10)
    with pytest.raises(TypeError, match="positional"):
        get_resnet_for_feature_extraction(10, None)  # type: ignore[misc]


def test_the_factory_is_offline_by_default(no_shape_checks: None) -> None:
    assert resfx.models.get_resnet_for_feature_extraction is resfx.get_resnet_for_feature_extraction
    torch.manual_seed(0)
    model = resfx.get_resnet_for_feature_extraction(num_classes=2)
    torch.manual_seed(0)
    assert torch.equal(model.conv1.weight, resfx.resnet34().conv1.weight)


def test_n_classes_is_a_deprecated_alias_for_one_release(no_shape_checks: None) -> None:
    with pytest.warns(
        DeprecationWarning, match=r"\(n_classes=\.\.\.\) is deprecated.*pass num_classes"
    ):
        model = resfx.get_resnet_for_feature_extraction(n_classes=4)
    assert model.fc.out_features == 4 and model.config.num_classes == 4
    with pytest.raises(TypeError, match="got both: num_classes=4"):
        resfx.get_resnet_for_feature_extraction(num_classes=4, n_classes=4)
