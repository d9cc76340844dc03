"""The decode pool really decodes in worker processes: found by the mutation pass."""

import os

from torch.utils.data import Dataset

from resfx.data._pool import run_batches


class _Pid(Dataset):
    def __getitem__(self, batch: list[int]) -> tuple[int, list[int]]:
        return os.getpid(), batch


def test_run_batches_with_workers_computes_in_other_processes_and_keeps_the_order() -> None:
    batches = [[0, 1], [2], [3, 4], [5]]
    serial = list(run_batches(_Pid(), batches))
    pooled = list(run_batches(_Pid(), batches, workers=2))
    assert [b for _, b in pooled] == [b for _, b in serial] == batches
    assert {pid for pid, _ in serial} == {os.getpid()}
    assert os.getpid() not in {pid for pid, _ in pooled}
