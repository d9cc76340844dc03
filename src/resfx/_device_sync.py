"""Waiting for queued device work: shared by the training loop and the benchmarks."""

import torch


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work on `device`; a no-op on the CPU.

    Example:
        >>> synchronize("cpu")
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
