"""Staged fine-tuning: `Finetuner` against its formula, torch's schedulers, and itself resumed.

Every claim is checked by running optimizer steps on a tiny ResNet: frozen
values compared bit for bit, learning rates against the documented formula
written out again here, resumes against uninterrupted runs.
"""

import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import resfx
from conftest import TinyResNet
from resfx import Finetuner, schedule_factor

STAGE_ORDER = ("head", "layer4", "layer3", "layer2", "layer1", "stem")


def tiny_model(seed: int = 0) -> TinyResNet:
    torch.manual_seed(seed)
    return TinyResNet()


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().reshape(-1).contiguous().view(torch.uint8).clone()


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: bits(t) for name, t in module.state_dict().items()}


def same_bits(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1000 + step)
    images = torch.randn(4, 3, 8, 8, generator=generator)
    return images, torch.randint(0, 3, (4,), generator=generator)


def train_steps(model: torch.nn.Module, tuner: Finetuner, steps: range) -> None:
    model.train()
    for step in steps:
        images, labels = batch(step)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        tuner.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tuner.optimizer.step()
        tuner.step()


def formula(config: dict, depth: int, start_epoch: int, step: int) -> float:
    """The module docstring's formula, written out independently of the implementation."""
    spe, total = config["steps_per_epoch"], config["epochs"] * config["steps_per_epoch"]
    start = start_epoch * spe
    if step < start:
        return 0.0
    warm_steps = round(config["warmup_epochs"] * spe)
    warm = 1.0 if warm_steps == 0 else min(1.0, (step - start + 1) / warm_steps)
    if config["schedule"] == "constant":
        f = 1.0
    elif config["schedule"] == "cosine":
        f = 0.5 * (1 + math.cos(math.pi * step / total))
    else:
        up = 0.3 * total - 1
        low, peak, end = 1 / 25, 1.0, 1 / 25 / 1e4
        if step <= up:
            f = peak + (low - peak) / 2 * (math.cos(math.pi * step / up) + 1)
        else:
            pct = (step - up) / (total - 1 - up)
            f = end + (peak - end) / 2 * (math.cos(math.pi * pct) + 1)
    return config["lr"] * config["lr_decay"] ** depth * f * warm


@st.composite
def runs(draw: st.DrawFn) -> dict:
    epochs = draw(st.integers(2, 4))
    count = draw(st.integers(1, 4))
    starts = [0] + [draw(st.integers(0, epochs)) for _ in range(count - 1)]
    return {
        "stages": list(zip(STAGE_ORDER[:count], starts, strict=True)),
        "epochs": epochs,
        "steps_per_epoch": draw(st.integers(1, 3)),
        "lr": draw(st.sampled_from([0.05, 0.01, 1e-3])),
        "lr_decay": draw(st.sampled_from([1.0, 0.5, 0.1])),
        "weight_decay": draw(st.sampled_from([0.0, 0.05])),
        "optimizer": draw(st.sampled_from(["adam", "adamw", "sgd"])),
        "schedule": draw(st.sampled_from(["constant", "cosine", "onecycle"])),
        "warmup_epochs": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "bn": draw(st.sampled_from(["eval", "batch"])),
    }


def build(config: dict, seed: int = 0) -> tuple[TinyResNet, Finetuner]:
    model = tiny_model(seed)
    return model, Finetuner(model, **config)


@given(runs())
def test_frozen_values_unchanged_until_their_stage_starts_and_rates_follow_the_formula(
    config: dict,
) -> None:
    model, tuner = build(config)
    modules = dict(model.named_modules())
    stages = {stage.name: stage for stage in tuner.stages}
    before = {
        stage.name: {m: snapshot(modules[m]) for m in stage.modules} for stage in tuner.stages
    }
    unstaged = [
        name
        for name in ("conv1", "bn1", "layer1", "layer2")
        if not any(name in stage.modules for stage in tuner.stages)
    ]
    stem_before = {name: snapshot(modules[name]) for name in unstaged}
    total = config["epochs"] * config["steps_per_epoch"]
    for step in range(total):
        for group in tuner.optimizer.param_groups:
            stage = stages[group["stage"]]
            expected = formula(config, stage.depth, stage.start_epoch, step)
            assert group["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-18), (
                step,
                group["stage"],
            )
        train_steps(model, tuner, range(step, step + 1))
        done = step + 1
        for stage in tuner.stages:
            if stage.start_epoch * config["steps_per_epoch"] > done or (
                done == total and stage.start_epoch >= config["epochs"]
            ):
                for name in stage.modules:
                    assert same_bits(snapshot(modules[name]), before[stage.name][name]), (
                        stage.name,
                        done,
                    )
    for name, saved in stem_before.items():
        assert same_bits(snapshot(modules[name]), saved), name


@settings(max_examples=10)  # three runs per example
@given(runs(), st.data())
def test_resume_at_any_step_is_bitwise_equal_to_an_uninterrupted_run(
    config: dict, data: st.DataObject
) -> None:
    total = config["epochs"] * config["steps_per_epoch"]
    cut = data.draw(st.integers(0, total))
    model, tuner = build(config)
    train_steps(model, tuner, range(total))
    uninterrupted = snapshot(model)

    first, first_tuner = build(config)
    train_steps(first, first_tuner, range(cut))
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "tuner": first_tuner.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed, resumed_tuner = build(config)
    resumed.load_state_dict(saved["model"])
    resumed_tuner.load_state_dict(saved["tuner"])
    assert resumed_tuner.learning_rates() == first_tuner.learning_rates()
    train_steps(resumed, resumed_tuner, range(cut, total))
    assert same_bits(snapshot(resumed), uninterrupted)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_schedule_factor_is_torchs_scheduler(schedule: str) -> None:
    for total in (5, 12, 40):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
            if schedule == "cosine"
            else torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.2, total_steps=total)
        )
        for step in range(total):
            assert optimizer.param_groups[0]["lr"] == pytest.approx(
                0.2 * schedule_factor(schedule, step, total), rel=1e-9, abs=1e-15
            )
            optimizer.step()
            scheduler.step()


def test_groups_exist_from_the_start_and_follow_the_weight_decay_split() -> None:
    model = tiny_model()
    tuner = Finetuner(
        model,
        [("head", 0), ("layer4", 1)],
        epochs=2,
        steps_per_epoch=1,
        lr=0.1,
        weight_decay=0.05,
        optimizer="adamw",
    )
    groups = tuner.optimizer.param_groups
    assert [(g["stage"], g["weight_decay"], len(g["params"])) for g in groups] == [
        ("head", 0.05, 1),
        ("head", 0.0, 1),
        ("layer4", 0.05, 0),
        ("layer4", 0.0, 0),
    ]
    shape = [len(g["params"]) for g in tuner.optimizer.state_dict()["param_groups"]]
    train_steps(model, tuner, range(1))
    decayed = {id(p) for p in groups[2]["params"]}
    assert decayed and all(p.ndim >= 2 for p in groups[2]["params"])
    assert all(p.ndim < 2 for p in groups[3]["params"])
    assert {id(p) for p in model.layer4.parameters()} == decayed | {
        id(p) for p in groups[3]["params"]
    }
    assert len(shape) == len(tuner.optimizer.state_dict()["param_groups"])


def test_a_started_stage_of_a_resfx_resnet_trains_and_its_batchnorm_returns_to_train_mode() -> None:
    model = resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1), num_classes=3))
    tuner = Finetuner(model, [("head", 0), ("layer4", 1)], epochs=2, steps_per_epoch=1, lr=0.1)
    assert resfx.bn_policy(model.layer4[0].bn1) == "eval"
    weight = bits(model.layer4[0].conv1.weight)
    for _ in range(2):
        loss = model(torch.randn(2, 3, 32, 32)).square().mean()
        tuner.optimizer.zero_grad()
        loss.backward()
        tuner.optimizer.step()
        tuner.step()
    assert resfx.bn_policy(model.layer4[0].bn1) == "train"
    assert not torch.equal(bits(model.layer4[0].conv1.weight), weight)
    assert resfx.check_optimizer(tuner.optimizer, model).ok


def test_finetuner_works_on_torchvision_and_explicit_stage_lists() -> None:
    import torchvision

    tv = torchvision.models.resnet18(num_classes=3)
    tuner = Finetuner(
        tv, [("head", 0), ("layer4", 1), ("stem", 1)], epochs=2, steps_per_epoch=1, lr=0.1
    )
    assert tuner.stages[2].modules == ("conv1", "bn1", "relu", "maxpool")
    mlp = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    tuner = Finetuner(
        mlp, [("2", 0), ("0", 1)], epochs=2, steps_per_epoch=1, lr=0.1, stage_names=["0", "2"]
    )
    assert [p.requires_grad for p in mlp.parameters()] == [False, False, True, True]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": [("layer4", 1)]}, "no stage starts at epoch 0"),
        ({"stages": [("head", 0), ("head", 1)]}, "listed twice"),
        ({"stages": [("head", 0), ("layer9", 1)]}, "unknown stage 'layer9'"),
        ({"stages": [("head", -1)]}, "expected an epoch >= 0"),
        ({"lr": float("inf")}, "lr must be finite"),
        ({"epochs": 0}, "epochs must be an int of at least 1"),
        ({"schedule": "step"}, "unknown schedule 'step'"),
        ({"optimizer": "lamb"}, "unknown optimizer 'lamb'"),
    ],
)
@pytest.mark.usefixtures("no_shape_checks")  # the library's own messages, not typeguard's
def test_finetuner_refuses_bad_settings(kwargs: dict, message: str) -> None:
    settings = {"stages": [("head", 0)], "epochs": 1, "steps_per_epoch": 1, "lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        Finetuner(tiny_model(), **settings)


def test_step_past_the_end_epoch_end_misaligned_and_other_settings_are_refused() -> None:
    model, tuner = build({"stages": [("head", 0)], "epochs": 1, "steps_per_epoch": 2, "lr": 0.1})
    train_steps(model, tuner, range(1))
    with pytest.raises(ValueError, match="not a multiple of steps_per_epoch=2"):
        tuner.epoch_end()
    train_steps(model, tuner, range(1, 2))
    assert tuner.epoch_end() == 1
    with pytest.raises(ValueError, match="all 2 steps"):
        tuner.step()
    _, other = build({"stages": [("head", 0)], "epochs": 1, "steps_per_epoch": 2, "lr": 0.2})
    with pytest.raises(ValueError, match=r"lr=0.1 \(now 0.2\)"):
        other.load_state_dict(tuner.state_dict())
