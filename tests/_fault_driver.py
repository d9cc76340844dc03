"""A tiny resumable training run that can SIGKILL itself at a chosen point (for test_faults.py).

Usage: python _fault_driver.py RUN_DIR CACHE_DIR MODE FINAL_STATE [KILL]
KILL is `step:N` (during the N-th optimizer step), `replace:N` (the N-th atomic
write, complete on disk but not yet renamed into place) or `write:N` (the N-th
torch.save, half written), counted over the whole run.
"""

import dataclasses
import io
import os
import signal
import sys

import torch

import resfx._atomic
from resfx._freeze import freeze
from resfx.models import ResNet, ResNetConfig
from resfx.nn import Linear
from resfx.train import TrainingArgs, _loop, train
from resfx.train._checkpoint import seed_rng


def tiny_model(args: TrainingArgs) -> ResNet:
    """`build_model`'s contract on a width-8 ResNet: seeded, backbone frozen, new head."""
    seed_rng(args.seed)
    model = freeze(ResNet(ResNetConfig(width=8)), bn=args.bn)
    model.fc = Linear(model.config.feature_dim, args.n_classes)
    model.config = dataclasses.replace(model.config, num_classes=args.n_classes)
    return model


def kill_at(event: str, count: int) -> None:
    calls = {"n": 0}

    def due() -> bool:
        calls["n"] += 1
        return calls["n"] == count

    def die() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if event == "step":
        original_step = torch.optim.Adam.step

        def step(self, *args, **kwargs):
            if due():
                die()
            return original_step(self, *args, **kwargs)

        torch.optim.Adam.step = step
    elif event == "replace":
        original_replace = os.replace

        def replace(source, target):
            if due():
                die()
            return original_replace(source, target)

        resfx._atomic.os.replace = replace
    elif event == "write":
        original_save = torch.save

        def save(obj, target, *args, **kwargs):
            if due():
                buffer = io.BytesIO()
                original_save(obj, buffer)
                with open(target, "wb") as handle:
                    handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                die()
            return original_save(obj, target, *args, **kwargs)

        resfx._atomic.torch.save = save
    else:
        raise ValueError(f"unknown kill point {event!r}")


def main() -> None:
    run_dir, cache_dir, mode, final = sys.argv[1:5]
    if len(sys.argv) > 5:
        event, count = sys.argv[5].split(":")
        kill_at(event, int(count))
    _loop.build_model = tiny_model
    args = TrainingArgs(
        data="synthetic",
        weights=None,
        trainset_size=48,
        testset_size=16,
        batch_size=16,
        epochs=2,
        image_size=32,
        device="cpu",
        mode=mode,
        bn="eval" if mode == "cached" else "train",
        output_dir=run_dir,
        feature_cache_dir=cache_dir if mode == "cached" else None,
        checkpoint_every=1,
        resume=True,
        progress=False,
    )
    result = train(args)
    torch.save({"state": result.model.state_dict(), "losses": result.loss_list}, final)


if __name__ == "__main__":
    main()
