"""The job's fine-tuning modes: partial and staged runs, optimizers, schedules, resumed bit for bit."""

from pathlib import Path

import pytest
import torch

from resfx.cli import build_parser
from resfx.train import CheckpointError, TrainingArgs, build_model, train

SMALL = {
    "data": "synthetic",
    "weights": None,
    "trainset_size": 32,
    "testset_size": 16,
    "batch_size": 16,
    "image_size": 32,
    "device": "cpu",
    "mode": "partial",
    "stages": "head:0,layer4:1",
    "optimizer": "adamw",
    "weight_decay": 0.05,
    "warmup_epochs": 0.5,
    "lr_decay": 0.5,
    "learning_rate": 1e-2,
}


def test_a_staged_run_trains_each_stage_from_its_epoch_and_resumes_bitwise(tmp_path: Path) -> None:
    args = TrainingArgs(**SMALL, epochs=2, output_dir=str(tmp_path / "whole"))
    start = build_model(args).state_dict()
    whole = train(args)
    after = whole.model.state_dict()
    for name, value in start.items():
        changed = not torch.equal(after[name], value)
        if name.startswith(("layer4.", "fc.")) and name.endswith("weight"):
            assert changed, name
        elif not name.startswith(("layer4.", "fc.")):
            assert not changed, name
    folder = str(tmp_path / "resumed")
    train(TrainingArgs(**SMALL, epochs=1, output_dir=folder))
    resumed = train(TrainingArgs(**SMALL, epochs=2, output_dir=folder, resume=True))
    assert resumed.loss_list == whole.loss_list
    assert all(torch.equal(resumed.model.state_dict()[k], v) for k, v in after.items())
    with pytest.raises(CheckpointError, match=r"epochs=1 \(now 3\)"):
        cosine = {**SMALL, "schedule": "cosine"}
        train(TrainingArgs(**cosine, epochs=1, output_dir=str(tmp_path / "cosine")))
        train(TrainingArgs(**cosine, epochs=3, output_dir=str(tmp_path / "cosine"), resume=True))


def test_partial_mode_freezes_up_to_freeze_to_and_the_flags_reach_training_args() -> None:
    args = TrainingArgs(mode="partial", freeze_to="layer3")
    assert args.stage_schedule() == [("head", 0), ("layer4", 0)]
    assert TrainingArgs(mode="full").stage_schedule()[-1] == ("stem", 0)
    namespace = build_parser().parse_args(
        [
            "train",
            "--mode",
            "partial",
            "--stages",
            "head:0,layer4:2",
            "--optimizer",
            "sgd",
            "--weight-decay",
            "0.01",
            "--schedule",
            "onecycle",
            "--warmup-epochs",
            "1",
            "--lr-decay",
            "0.5",
        ]
    )
    assert (namespace.mode, namespace.stages, namespace.optimizer, namespace.schedule) == (
        "partial",
        "head:0,layer4:2",
        "sgd",
        "onecycle",
    )
    assert (namespace.weight_decay, namespace.warmup_epochs, namespace.lr_decay) == (0.01, 1.0, 0.5)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "partial"}, "needs freeze_to .* or stages"),
        ({"mode": "partial", "freeze_to": "layer3", "stages": "head:0"}, "one of the two"),
        ({"mode": "partial", "freeze_to": "head"}, "unknown freeze_to 'head'"),
        ({"mode": "head", "freeze_to": "layer3"}, "are for mode='partial'"),
        ({"mode": "partial", "stages": "head:0,layer9:1"}, "got 'layer9:1'"),
        ({"mode": "partial", "stages": "layer4:1"}, "start one at epoch 0"),
        ({"weight_decay": -1.0}, "weight_decay must be finite"),
        ({"optimizer": "lamb"}, "unknown optimizer 'lamb'"),
        ({"schedule": "step"}, "unknown schedule 'step'"),
    ],
)
def test_training_args_refuse_bad_fine_tuning_settings(
    values: dict, message: str, no_shape_checks: None
) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingArgs(**values)
