"""The folder lock: one live holder, a dead holder's lock taken over, links and non-files refused."""

import os
from pathlib import Path

import pytest

from resfx._lock import LockError, LockHeldError, hold_lock
from resfx.train import LOCK_NAME, OutputDirectoryError, claim_output_dir

CLAIM = {"run_files": ("checkpoint.pt",), "resume": False, "overwrite": False}


def test_a_lock_that_is_a_symbolic_link_is_refused_and_its_target_left_alone(
    tmp_path: Path,
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("a user's results")
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).symlink_to(target)
    with pytest.raises(OutputDirectoryError, match="symbolic link"), claim_output_dir(run, **CLAIM):
        pass
    assert target.read_text() == "a user's results"
    assert (run / LOCK_NAME).is_symlink()
    dangling = tmp_path / "dangling.lock"
    dangling.symlink_to(tmp_path / "missing")
    with pytest.raises(LockError, match="symbolic link"), hold_lock(dangling):
        pass
    assert not (tmp_path / "missing").exists()


def test_a_lock_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.lock"
    os.mkfifo(fifo)
    with pytest.raises(LockError, match="not a regular file"), hold_lock(fifo):
        pass
    folder = tmp_path / "folder.lock"
    folder.mkdir()
    with pytest.raises(LockError, match="cannot be opened"), hold_lock(folder):
        pass


def test_a_held_lock_names_its_holder_and_is_removed_on_release(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    with hold_lock(lock) as previous:
        assert previous is None
        with pytest.raises(LockHeldError, match=f"pid {os.getpid()} on host"), hold_lock(lock):
            pass
    assert not lock.exists()
