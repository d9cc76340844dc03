"""Fault injection: SIGKILL mid-training, mid-checkpoint and mid-cache-write, a full disk, a
read-only folder. Nothing damaged is used as if sound and a resumed run ends bitwise equal.

The kills run `_fault_driver.py` in a subprocess (a width-8 ResNet, 48 images, 2 epochs,
a checkpoint every step) that SIGKILLs itself at points drawn from a seeded generator,
then resume it until it finishes. The tests run as root, where `chmod` does not stop
writes: a read-only folder is simulated by making the probe write raise EACCES, a full
disk by making torch's writer fail as it does on ENOSPC.
"""

import dataclasses
import errno
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch

import resfx._atomic
import resfx.features._cache
import resfx.train._checkpoint
import resfx.train._rundir
from resfx import cli
from resfx.train import LOCK_NAME, Checkpoint, OutputDirectoryError, load_checkpoint, train
from test_cli import TINY_FLAGS
from test_train import tiny

DRIVER = Path(__file__).with_name("_fault_driver.py")
STEPS = 6  # 3 steps per epoch, 2 epochs
SAVES = 6  # one checkpoint per step (the last of each epoch at its end)


def _drive(folder: Path, mode: str, kill: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(DRIVER), str(folder / "run"), str(folder / "cache"), mode]
    command += [str(folder / "final.pt")] + ([kill] if kill else [])
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env=environment
    )


def _kill_then_resume(folder: Path, mode: str, kill: str) -> tuple[dict[str, Any], str]:
    killed = _drive(folder, mode, kill)
    assert killed.returncode == -9, (kill, killed.stderr[-2000:])
    resumed = _drive(folder, mode)
    assert resumed.returncode == 0, (kill, resumed.stderr[-2000:])
    return torch.load(folder / "final.pt"), resumed.stderr


_PER_RUN = ("epoch_times", "setup_seconds", "setup_phases", "feature_seconds", "feature_images")
"""History entries that measure one process's work (clocks, images it computed)."""
_PATHS = ("output_dir", "feature_cache_dir")


def _comparable(checkpoint: Checkpoint) -> list[tuple[str, object]]:
    """Every leaf of a checkpoint as (path, value), tensors as (dtype, shape, bytes); what
    measures one process and the run's own folders left out."""
    leaves: list[tuple[str, object]] = []

    def visit(path: str, value: object) -> None:
        if path.rsplit("/", 1)[-1] in (*_PER_RUN, *_PATHS):
            return
        if isinstance(value, torch.Tensor):
            raw = value.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            leaves.append((path, (value.dtype, tuple(value.shape), raw)))
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                visit(f"{path}/{key}", value[key])
        elif isinstance(value, (list, tuple)):
            leaves.append((f"{path}#", len(value)))
            for index, item in enumerate(value):
                visit(f"{path}[{index}]", item)
        else:
            leaves.append((path, value))

    visit("", dataclasses.asdict(checkpoint))
    return leaves


def _leftovers(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name == LOCK_NAME
    )


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    draw = random.Random(11)
    kills = [
        ("head", f"step:{draw.randint(2, STEPS)}"),
        ("head", f"replace:{draw.randint(2, SAVES)}"),
        ("head", f"write:{draw.randint(2, SAVES)}"),
        ("cached", f"write:{draw.randint(1, 2)}"),  # one of the two feature-cache entries
    ]
    modes = sorted({mode for mode, _ in kills})
    with ThreadPoolExecutor(max_workers=2) as pool:
        straight = dict(zip(modes, pool.map(lambda m: _drive(tmp_path / m, m), modes), strict=True))
        outcomes = list(
            pool.map(
                lambda case: _kill_then_resume(tmp_path / f"{case[0]}-{case[1]}", *case), kills
            )
        )
    for finished in straight.values():
        assert finished.returncode == 0, finished.stderr[-2000:]
    for (mode, kill), (resumed, stderr) in zip(kills, outcomes, strict=True):
        expected = torch.load(tmp_path / mode / "final.pt")
        assert resumed["losses"] == expected["losses"], kill
        for name, tensor in expected["state"].items():
            assert torch.equal(resumed["state"][name], tensor), (kill, name)
        # The whole final checkpoint too: generators, optimizer, history (but for clocks).
        final = dict(_comparable(load_checkpoint(tmp_path / f"{mode}-{kill}/run/checkpoint.pt")))
        whole = dict(_comparable(load_checkpoint(tmp_path / mode / "run" / "checkpoint.pt")))
        assert sorted(final) == sorted(whole), kill
        assert [path for path in whole if final[path] != whole[path]] == [], kill
        # The killed run's lock was found stale and taken over; nothing half-written is left.
        assert "no longer running" in stderr, kill
        assert _leftovers(tmp_path / f"{mode}-{kill}") == [], kill


def test_a_full_disk_says_so_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    flags = [*TINY_FLAGS, "--output-dir", str(run)]
    assert cli.main([*flags, "--epochs", "1"]) == 0
    good = (run / "checkpoint.pt").read_bytes()

    def full_disk(obj: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        Path(target).write_bytes(b"PK\x03\x04")  # what torch had written when the disk filled
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(resfx._atomic.torch, "save", full_disk)
    assert cli.main([*flags, "--resume"]) == 1
    error = capsys.readouterr().err
    assert "resfx train: error: writing" in error and "no space left on the device" in error
    assert "Traceback" not in error
    assert (run / "checkpoint.pt").read_bytes() == good
    assert _leftovers(run) == []


def test_a_read_only_output_dir_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(resfx.train._rundir.tempfile, "TemporaryFile", refuse)
    with pytest.raises(OutputDirectoryError, match="cannot be written .Permission denied"):
        train(tiny(output_dir=str(tmp_path / "run")))


def test_a_read_only_or_full_feature_cache_falls_back_to_memory_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = tiny(mode="cached", feature_cache_dir=str(tmp_path / "cache"), trainset_size=32)
    in_memory = train(tiny(mode="cached", trainset_size=32))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as patch:
        patch.setattr(resfx.features._cache.tempfile, "TemporaryFile", refuse)
        with pytest.warns(UserWarning, match="cannot be written .Read-only") as caught:
            read_only = train(args)
    assert len([w for w in caught if "feature cache" in str(w.message)]) == 1
    assert read_only.loss_list == in_memory.loss_list
    assert not list((tmp_path / "cache").glob("*.pt"))

    with monkeypatch.context() as patch:
        patch.setattr(
            resfx.features._cache.shutil, "disk_usage", lambda _: type("U", (), {"free": 10})
        )
        with pytest.warns(UserWarning, match="no space left .0.0 MiB free"):
            full = train(args)
    assert full.loss_list == in_memory.loss_list


def test_a_disk_too_full_for_one_checkpoint_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        resfx.train._checkpoint.shutil, "disk_usage", lambda _: type("U", (), {"free": 4096})
    )
    with pytest.raises(OutputDirectoryError, match="no space left for a checkpoint.*0.0 MiB free"):
        train(tiny(output_dir=str(tmp_path / "run")))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_checkpoint_damaged_on_disk_is_refused_with_what_to_do(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny(output_dir=str(run), trainset_size=32, epochs=1))
    path = run / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    weight = load_checkpoint(path).state["fc.weight"]
    raw = weight.reshape(-1).view(torch.uint8).numpy().tobytes()
    at = bytes(data).index(raw[:64])
    data[at + 3] ^= 0x10  # one bit of the head's weights: torch.load does not notice
    path.write_bytes(bytes(data))
    with pytest.raises(resfx.train.CheckpointError, match="damaged: its contents do not match"):
        load_checkpoint(path)
