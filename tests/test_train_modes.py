"""The job modes behind the shared loop: results pinned to the one-class loop they replaced,
features read through a `FeatureSource`, and the settings each mode refuses."""

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch

import resfx.train._loop
from resfx._freeze import freeze, unfreeze
from resfx.features import tensor_checksum
from resfx.models import ResNet, ResNetConfig
from resfx.nn import Linear
from resfx.train import TrainingArgs, load_checkpoint, train

PINNED_SETTINGS: dict[str, Any] = {
    "data": "synthetic",
    "weights": None,
    "trainset_size": 40,
    "testset_size": 32,
    "batch_size": 16,
    "epochs": 2,
    "image_size": 16,
    "device": "cpu",
    "progress": False,
    "checkpoint_every": 2,
    "learning_rate": 0.03,
}

PINNED: dict[str, tuple[dict[str, Any], str, list[str], str]] = {
    "head": (
        {"mode": "head"},
        "0de72589c1c0a44a",
        ["0x1.0000000000000p-3", "0x1.0000000000000p-4"],
        "994a431bf554fd07",
    ),
    "head-bn-train": (
        {"mode": "head", "bn": "train", "schedule": "cosine"},
        "ce25e73ef1103451",
        ["0x1.0000000000000p-3", "0x1.0000000000000p-3"],
        "2348304e2910867e",
    ),
    "cached": (
        {"mode": "cached"},
        "0de72589c1c0a44a",
        ["0x1.0000000000000p-3", "0x1.0000000000000p-4"],
        "994a431bf554fd07",
    ),
    "partial": (
        {"mode": "partial", "stages": "head:0,layer4:1", "optimizer": "adamw", "weight_decay": 0.1},
        "5695c38f5e117c86",
        ["0x1.0000000000000p-3", "0x1.0000000000000p-3"],
        "da8d697120ffd264",
    ),
    "full": (
        {"mode": "full", "optimizer": "sgd", "bn": "train"},
        "025eb7f289876941",
        ["0x1.0000000000000p-5", "0x1.0000000000000p-3"],
        "08f2e0140c8573d2",
    ),
}
"""Per case: settings, then digests of the losses, the accuracies and the final checkpoint
(state, optimizer, torch's generator, position), recorded from the one `_Run` class this
package had before its modes were split out (main at ae35d01, torch 2.x on an x86 CPU, one
thread; the same settings give the same digests on both)."""


def tiny_model(args: TrainingArgs) -> ResNet:
    """`build_model`'s contract on a width-4 ResNet: seeded, frozen but the head, or all trains."""
    torch.manual_seed(args.seed)
    model = freeze(ResNet(ResNetConfig(width=4)), bn=args.bn)
    model.fc = Linear(model.config.feature_dim, args.n_classes)
    model.config = dataclasses.replace(model.config, num_classes=args.n_classes)
    return unfreeze(model) if args.mode == "full" else model


@pytest.fixture
def tiny_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resfx.train._loop, "build_model", tiny_model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as when recorded: the same kernels, so the same bits
    yield
    torch.set_num_threads(threads)


def pinned(**changes: Any) -> TrainingArgs:
    return TrainingArgs(**{**PINNED_SETTINGS, **changes})


@pytest.mark.parametrize("case", list(PINNED))
def test_every_mode_gives_the_bits_the_one_class_loop_gave(
    case: str, tmp_path: Path, tiny_models: None
) -> None:
    changes, losses, accuracies, final = PINNED[case]
    result = train(pinned(**changes, output_dir=str(tmp_path)))
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    digest = tensor_checksum(
        {
            "state": saved.state,
            "optimizer": saved.optimizer,
            "rng": saved.rng["torch"],
            "position": [saved.epoch, saved.batch, saved.step],
        }
    )
    written = repr([float.hex(loss) for loss in result.loss_list]).encode()
    assert hashlib.sha256(written).hexdigest()[:16] == losses
    assert [float.hex(a) for a in result.accuracy_list] == accuracies
    assert digest[:16] == final
