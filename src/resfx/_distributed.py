"""Running under `torchrun`: process group from the environment, sharding, reduced metrics.

Below `features` and `train`, which both split work across the processes: each
computes its share of the rows, then `all_gather_rows` assembles them everywhere.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from jaxtyping import Shaped
from torch import Tensor


@dataclass
class DistributedContext:
    """This process's place in a run: rank, number of processes, and the local device index.

    A single process (no `WORLD_SIZE` in the environment, or 1) is rank 0 of 1
    and every collective is a no-op.

    Args:
        rank: this process's rank, from 0.
        world_size: number of processes.
        local_rank: rank on this machine (which GPU to use).
        owns_group: this context created the process group and destroys it on `close`.

    Example:
        >>> ctx = DistributedContext(0, 1, 0)
        >>> ctx.is_main, ctx.all_reduce_sum(torch.ones(2)).tolist()
        (True, [1.0, 1.0])
    """

    rank: int
    world_size: int
    local_rank: int
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        """Sum `tensor` over all processes, in place; returns it.

        Example:
            >>> DistributedContext(0, 1, 0).all_reduce_sum(torch.tensor([3.0])).item()
            3.0
        """
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any_of(self, flags: Sequence[bool], device: torch.device) -> list[bool]:
        """For each flag, whether it is set on any process (every process gets the same answer).

        What processes reduce before a choice they must all make alike, e.g. "compute
        or use the cache": one of them deciding otherwise would leave the rest waiting.

        Args:
            flags: this process's flags (the same number on every process).
            device: where the collective runs (the GPU under NCCL, the CPU under gloo).

        Returns:
            The flags, each OR-ed over the processes.

        Example:
            >>> DistributedContext(0, 1, 0).any_of([True, False], torch.device("cpu"))
            [True, False]
        """
        counts = torch.tensor([float(flag) for flag in flags], device=device)
        return [bool(count > 0) for count in self.all_reduce_sum(counts).tolist()]

    def share(self, total: int, *, block: int = 1) -> range:
        """This process's contiguous share of `total` rows, cut only at multiples of `block`.

        The `ceil(total / block)` blocks are dealt out in order, as evenly as they
        go (processes differ by one block at most; some get none when there are
        fewer blocks than processes). Cutting at block boundaries keeps every batch
        of `block` rows whole, so a share computed batch by batch gives the same
        bits as one process computing all the rows in batches of `block`.

        Args:
            total: number of rows.
            block: the unit of work (a batch size).

        Returns:
            The rows of this process, `range(start, stop)`.

        Raises:
            ValueError: `total < 0` or `block < 1`.

        Example:
            >>> [DistributedContext(rank, 3, 0).share(10, block=2) for rank in range(3)]
            [range(0, 2), range(2, 6), range(6, 10)]
        """
        return _share(total, block, self.rank, self.world_size)

    def all_gather_rows(
        self, rows: Shaped[Tensor, "b *rest"], *, total: int, block: int = 1
    ) -> Shaped[Tensor, "n *rest"]:
        """Every process's `share(total, block=block)` of rows, assembled in order on every one.

        Shares are padded to the longest before `torch.distributed.all_gather`
        (which needs equal sizes) and the padding dropped after, so uneven shares
        work; the rows are copied, never recomputed, so the result is bitwise each
        process's own. One process returns `rows` itself.

        Args:
            rows: this process's rows, `len(share(total, block=block))` of them.
            total: the rows of all processes together.
            block: the block `share` was cut with.

        Returns:
            All `total` rows, on `rows`' device.

        Raises:
            ValueError: `rows` is not this process's share.

        Example:
            >>> DistributedContext(0, 1, 0).all_gather_rows(torch.ones(3, 2), total=3).shape
            torch.Size([3, 2])
        """
        mine = self.share(total, block=block)
        if rows.shape[0] != len(mine):
            raise ValueError(
                f"rank {self.rank} of {self.world_size} holds {rows.shape[0]} rows but its share "
                f"of {total} in blocks of {block} is {len(mine)} (rows {mine.start} to "
                f"{mine.stop}); pass rows[share(total, block=block)]"
            )
        if self.world_size == 1:
            return rows
        shares = [_share(total, block, rank, self.world_size) for rank in range(self.world_size)]
        longest = max(len(part) for part in shares)
        padded = rows.new_zeros((longest, *rows.shape[1:]))
        padded[: len(mine)] = rows
        gathered = [torch.empty_like(padded) for _ in shares]
        dist.all_gather(gathered, padded.contiguous())
        return torch.cat([part[: len(span)] for part, span in zip(gathered, shares, strict=True)])

    def close(self) -> None:
        """Destroy the process group if this context created it.

        Example:
            >>> DistributedContext(0, 1, 0).close()
        """
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def _share(total: int, block: int, rank: int, world_size: int) -> range:
    if total < 0 or block < 1:
        raise ValueError(
            f"cannot share {total} rows in blocks of {block}: need total >= 0 and block >= 1"
        )
    blocks = -(-total // block)
    first, last = rank * blocks // world_size, (rank + 1) * blocks // world_size
    return range(min(first * block, total), min(last * block, total))


_LAUNCH = (
    "launch with torchrun --nproc-per-node N, which sets RANK, LOCAL_RANK, WORLD_SIZE, "
    "MASTER_ADDR and MASTER_PORT (or unset WORLD_SIZE for one process)"
)


def _environment_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not an integer; {_LAUNCH}") from None


def init_distributed(device: str) -> DistributedContext:
    """Join the process group `torchrun` describes in the environment, if there is one.

    Reads `RANK`, `WORLD_SIZE` and `LOCAL_RANK`; initialises with NCCL when
    training on CUDA and gloo on the CPU (unless a group already exists).

    Args:
        device: the requested device (`"auto"`, `"cpu"`, `"cuda"`...), to pick the backend.

    Returns:
        The context; rank 0 of 1 outside `torchrun`.

    Raises:
        ValueError: the environment variables are inconsistent or incomplete (checked
            before anything waits for other processes).

    Example:
        >>> init_distributed("cpu").world_size  # outside torchrun
        1
    """
    world_size = _environment_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistributedContext(0, 1, 0)
    rank = _environment_int("RANK", -1)
    local_rank = _environment_int("LOCAL_RANK", rank)
    if not 0 <= rank < world_size:
        raise ValueError(
            f"WORLD_SIZE={world_size} but RANK={os.environ.get('RANK')!r} (expected 0 to "
            f"{world_size - 1}); {_LAUNCH}"
        )
    if dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank)
    unset = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if unset:
        raise ValueError(
            f"WORLD_SIZE={world_size} but {' and '.join(unset)} not set, so the processes "
            f"cannot find each other; {_LAUNCH}"
        )
    on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if on_cuda and not 0 <= local_rank < torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} GPUs; "
            f"start at most that many processes per node"
        )
    if on_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if on_cuda else "gloo")
    return DistributedContext(rank, world_size, local_rank, owns_group=True)


def resolve_device(spec: str, context: DistributedContext) -> torch.device:
    """The device to train on: `"auto"` picks the GPU when there is one.

    Under `torchrun` with CUDA each process takes the GPU of its local rank.

    Args:
        spec: `"auto"`, `"cpu"`, `"cuda"` or `"cuda:N"`.
        context: the distributed context.

    Returns:
        The device.

    Raises:
        ValueError: CUDA was asked for but is not available, or there is no GPU of that index.

    Example:
        >>> resolve_device("cpu", DistributedContext(0, 1, 0))
        device(type='cpu')
    """
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={spec!r} but CUDA is not available on this machine; use device='cpu' or 'auto'"
        )
    device = torch.device(spec)
    if device.type == "cuda":
        index = device.index
        if index is None:
            index = context.local_rank if context.world_size > 1 else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise ValueError(
                f"device={spec!r} but this machine has {count} GPU{'s' if count != 1 else ''} "
                f"(cuda:0 to cuda:{count - 1}); pick one of them"
            )
        return torch.device("cuda", index)
    return device
