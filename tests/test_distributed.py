"""Two processes under torchrun on the CPU (gloo): they agree, and match one process on the union batch."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from resfx.train import TrainingArgs, train
from test_train import TINY_SETTINGS

SETTINGS = {**TINY_SETTINGS, "testset_size": 30, "epochs": 2}


WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from jaxtyping import install_import_hook

    torch.set_num_threads(1)
    with install_import_hook("resfx", "typeguard.typechecked"):
        from resfx.train import TrainingArgs, train

    result = train(TrainingArgs(**json.loads(sys.argv[1])))
    torch.save(
        {"fc": result.model.fc.state_dict(), "history": result.history.to_dict()},
        os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"),
    )
    """
)


def test_two_gloo_processes_agree_and_equal_one_process_on_the_union_batch(
    tmp_path: Path,
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    per_rank = {**SETTINGS, "batch_size": 16}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(script),
        json.dumps(per_rank),
        str(tmp_path),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=240, check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name in ("weight", "bias"):
        assert torch.equal(ranks[0]["fc"][name], ranks[1]["fc"][name])
    first, second = (rank["history"] for rank in ranks)
    assert first["loss_list"] == second["loss_list"]
    assert first["accuracy_list"] == second["accuracy_list"]
    assert first["world_size"] == 2
    assert first["examples_seen"] == [32, 64, 96, 128]

    # DistributedSampler interleaves one permutation, so each step's two shards of 16
    # make up exactly the batch of 32 that a single process takes at that step.
    single = train(TrainingArgs(**{**SETTINGS, "batch_size": 32}))
    torch.testing.assert_close(first["loss_list"], single.loss_list, rtol=1e-5, atol=1e-5)
    assert first["accuracy_list"] == single.accuracy_list
    for name in ("weight", "bias"):
        torch.testing.assert_close(
            ranks[0]["fc"][name], getattr(single.model.fc, name), rtol=1e-4, atol=1e-5
        )


def test_a_gpu_index_beyond_the_machines_gpus_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from resfx.train import DistributedContext, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    single = DistributedContext(0, 1, 0)
    assert resolve_device("cuda:0", single) == torch.device("cuda", 0)
    with pytest.raises(
        ValueError, match=r"device='cuda:99' but this machine has 1 GPU \(cuda:0 to"
    ):
        resolve_device("cuda:99", single)
