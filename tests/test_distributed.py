"""Two processes under torchrun on the CPU (gloo): they agree, and match one process on the union batch."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from resfx.train import DistributedContext, TrainingArgs, train
from test_train import TINY_SETTINGS

SETTINGS = {**TINY_SETTINGS, "testset_size": 30, "epochs": 2}


CACHED = {**SETTINGS, "arch": "resnet18", "mode": "cached", "epochs": 1}
"""A cached run; its feature pass goes in batches of `FEATURE_BATCH`, so each rank has a share."""

FEATURE_BATCH = 16

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from jaxtyping import install_import_hook

    torch.set_num_threads(1)
    with install_import_hook("resfx", "typeguard.typechecked"):
        import resfx.train._loop
        from resfx.train import TrainingArgs, train

    # Several runs in one launch, one process group: train() uses a group that exists
    # and leaves it open (joining a fresh group per run can fail to connect under gloo).
    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    for name, settings, batch in json.loads(sys.argv[1]):
        resfx.train._loop._EVAL_BATCH = batch
        if isinstance(settings.get("feature_cache_dir"), list):
            settings["feature_cache_dir"] = settings["feature_cache_dir"][rank]
        result = train(TrainingArgs(**settings))
        torch.save(
            {"fc": result.model.fc.state_dict(), "history": result.history.to_dict()},
            os.path.join(sys.argv[2], f"{name}-rank{rank}.pt"),
        )
    torch.distributed.destroy_process_group()
    """
)


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One torchrun launch of two gloo processes on the CPU, every run of this module in it."""
    folder = tmp_path_factory.mktemp("distributed")
    script = folder / "worker.py"
    script.write_text(WORKER)
    shared, own = str(folder / "cache"), [str(folder / "cache"), str(folder / "empty")]
    runs = [
        ("head", {**SETTINGS, "batch_size": 16}, 256),
        ("cached", {**CACHED, "batch_size": 16, "feature_cache_dir": shared}, FEATURE_BATCH),
        # Rank 0 finds the entries, rank 1 does not: both must compute, neither may wait.
        ("mixed", {**CACHED, "batch_size": 16, "feature_cache_dir": own}, FEATURE_BATCH),
        ("hit", {**CACHED, "batch_size": 16, "feature_cache_dir": shared}, FEATURE_BATCH),
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(script),
        json.dumps(runs),
        str(folder),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=300, check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return folder


def _ranks(folder: Path, run: str) -> list[dict[str, Any]]:
    return [torch.load(folder / f"{run}-rank{r}.pt", weights_only=True) for r in range(2)]


def test_two_gloo_processes_agree_and_equal_one_process_on_the_union_batch(
    launched: Path,
) -> None:
    ranks = _ranks(launched, "head")
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


def test_cached_mode_shards_the_feature_pass_and_gathers_one_process_features(
    launched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_size, test_size = CACHED["trainset_size"], CACHED["testset_size"]
    ranks = _ranks(launched, "cached")
    histories = [rank["history"] for rank in ranks]
    # Batches of 16, dealt out in order: 64 training images are 4 batches (2 each),
    # 30 test images 2 batches (16 and 14).
    assert [h["feature_images"] for h in histories] == [32 + 16, 32 + 14]
    assert sum(h["feature_images"] for h in histories) == train_size + test_size
    assert histories[0]["loss_list"] == histories[1]["loss_list"]
    assert "features" in histories[0]["setup_phases"]

    monkeypatch.setattr("resfx.train._loop._EVAL_BATCH", FEATURE_BATCH)
    single_cache = tmp_path / "single"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: the same kernels, so the same bits
    try:
        single = train(
            TrainingArgs(**{**CACHED, "batch_size": 32, "feature_cache_dir": str(single_cache)})
        )
    finally:
        torch.set_num_threads(threads)
    assert single.history.feature_images == train_size + test_size
    # Rank 0 wrote the gathered features: bitwise one process's, under the same keys.
    entries = sorted(path.name for path in single_cache.glob("*.pt"))
    assert len(entries) == 2
    assert sorted(path.name for path in (launched / "cache").glob("*.pt")) == entries
    for entry in entries:
        gathered = torch.load(launched / "cache" / entry, weights_only=True)["features"]
        alone = torch.load(single_cache / entry, weights_only=True)["features"]
        assert torch.equal(gathered, alone)
    torch.testing.assert_close(histories[0]["loss_list"], single.loss_list, rtol=1e-5, atol=1e-5)
    assert histories[0]["accuracy_list"] == single.accuracy_list

    mixed = [rank["history"] for rank in _ranks(launched, "mixed")]
    assert [h["feature_images"] for h in mixed] == [48, 46]  # one rank's miss: all compute
    assert not (launched / "empty").exists() or not list((launched / "empty").glob("*.pt"))
    hit = [rank["history"] for rank in _ranks(launched, "hit")]
    assert [h["feature_images"] for h in hit] == [0, 0]  # every rank's hit: none computes
    for other in (mixed, hit):
        assert other[0]["loss_list"] == histories[0]["loss_list"]


def test_a_gpu_index_beyond_the_machines_gpus_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from resfx.train import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    single = DistributedContext(0, 1, 0)
    assert resolve_device("cuda:0", single) == torch.device("cuda", 0)
    with pytest.raises(
        ValueError, match=r"device='cuda:99' but this machine has 1 GPU \(cuda:0 to"
    ):
        resolve_device("cuda:99", single)


@given(
    total=st.integers(min_value=0, max_value=200),
    block=st.integers(min_value=1, max_value=40),
    world_size=st.integers(min_value=1, max_value=9),
)
def test_shares_cut_the_rows_in_order_at_whole_blocks_as_evenly_as_they_go(
    total: int, block: int, world_size: int
) -> None:
    shares = [
        DistributedContext(r, world_size, r).share(total, block=block) for r in range(world_size)
    ]
    assert [row for share in shares for row in share] == list(range(total))
    assert all(share.start % block == 0 for share in shares if len(share))
    blocks = [-(-len(share) // block) for share in shares]
    assert max(blocks) - min(blocks) <= 1


def test_all_gather_rows_refuses_rows_that_are_not_this_process_share() -> None:
    context = DistributedContext(0, 1, 0)
    rows = torch.arange(6.0).view(3, 2)
    assert context.all_gather_rows(rows, total=3, block=2) is rows
    with pytest.raises(ValueError, match=r"holds 2 rows but its share of 3 in blocks of 2 is 3"):
        context.all_gather_rows(rows[:2], total=3, block=2)
