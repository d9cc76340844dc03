"""The frozen pass: pooled features of chosen stages, batch by batch, from the one image pipeline.

Images come from `resfx.data.decoded_batches` (the pipeline `train`, `probe` and
`extract` share), are normalised and resized on the model's device, and go
through one inference-mode forward for every stage asked for. Under `torchrun`
each process runs its share of the batches and an all-gather assembles them.
"""

from collections.abc import Iterator, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .._distributed import DistributedContext
from .._frozen_step import frozen_features
from .._precision import check_precision
from .._typing import Features, Images
from ..data import (
    BadImagePolicy,
    DecodedBatch,
    ImageSplit,
    StreamedSplit,
    decoded_batches,
    preprocess,
)
from ..models import ResNet


def stage_feature_batches(
    model: ResNet,
    split: ImageSplit | StreamedSplit,
    stages: Sequence[str],
    order: Int[Tensor, " m"] | Sequence[int],
    *,
    image_size: int,
    batch_size: int,
    precision: str = "fp32",
    device: torch.device | None = None,
    on_bad_image: BadImagePolicy = "error",
    workers: int = 0,
) -> Iterator[tuple[DecodedBatch, dict[str, Float[Tensor, "b _"]]]]:
    """Pooled features of `stages` for the split's examples at `order`, one batch at a time.

    Each stage's feature map `(b, c, h, w)` is averaged over `h, w`; `"pooled"`
    is `forward_pooled` (the same as `"layer4"` pooled). One frozen forward
    serves every stage.

    Args:
        model: the ResNet on `device`, BatchNorm in eval mode.
        split: the images.
        stages: names of `model.feature_stages`.
        order: positions in the split, in the order to visit them.
        image_size: side of the resized inputs.
        batch_size: positions per forward pass.
        precision: `"fp32"` or `"bf16"`.
        device: where the forward runs; `None`: the split's device.
        on_bad_image: `"error"` or `"skip"` (see `resfx.data.decoded_batches`).
        workers: processes decoding a streamed split (0: this one); batches go to a GPU
            from pinned memory.

    Yields:
        The decoded batch (its positions, labels and unreadable images) and the float32
        features `(len(batch.positions), channels)` per stage, on `device`.

    Raises:
        ValueError: unknown precision or stage.

    Example:
        >>> from resfx.models import ResNet, ResNetConfig
        >>> from resfx.data import load_split
        >>> model = ResNet(ResNetConfig(width=4)).eval()
        >>> split = load_split("synthetic", "test", 3)
        >>> [(b.positions.tolist(), tuple(f["layer1"].shape)) for b, f in stage_feature_batches(
        ...     model, split, ["layer1"], [2, 0, 1], image_size=32, batch_size=2)]
        [([2, 0], (2, 4)), ([1], (1, 4))]
    """
    check_precision(precision)
    device = split.device if device is None else device
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    channels = model.config.stage_channels
    widths: dict[str, int] = {}

    def pooled_stages(images: Images) -> Features:
        # One frozen forward for every stage: their pooled features side by side.
        pooled = {
            stage: output if output.ndim == 2 else output.mean(dim=(2, 3))
            for stage, output in model.forward_stages(images, stages).items()
        }
        widths.update((stage, part.shape[1]) for stage, part in pooled.items())
        return torch.cat(list(pooled.values()), dim=1)

    decoded = decoded_batches(
        split,
        order,
        batch_size=batch_size,
        on_bad_image=on_bad_image,
        workers=workers,
        pin_memory=device.type == "cuda",
    )
    for batch in decoded:
        if len(batch.positions) == 0:
            empty = {stage: torch.empty(0, channels[stage], device=device) for stage in stages}
            yield batch, empty
            continue
        images = preprocess(batch.images.to(device, non_blocking=True), image_size)
        inputs = images.contiguous(memory_format=memory_format)
        features = frozen_features(pooled_stages, inputs, precision=precision)
        parts = features.split(list(widths.values()), dim=1)
        yield batch, dict(zip(widths, parts, strict=True))


def compute_features(
    model: ResNet,
    split: ImageSplit | StreamedSplit,
    *,
    image_size: int,
    batch_size: int = 256,
    precision: str = "fp32",
    context: DistributedContext | None = None,
) -> Features:
    """`model.forward_pooled` over every image of `split`, in order, in inference mode.

    The model's modes are used as they are (freeze it with eval-mode BatchNorm
    first, so that features do not depend on the batch). Runs on the device
    the split's images are on, in `channels_last` memory format on a GPU.

    Args:
        model: the ResNet (on the split's device).
        split: the images.
        image_size: side of the resized inputs.
        batch_size: images per forward pass.
        precision: `"fp32"`, or `"bf16"` for bfloat16 autocast.
        context: the processes of a `torchrun` launch that share the pass (see
            `compute_stage_features`); `None`: this process computes every image.

    Returns:
        float32 features `(len(split), d)` on the split's device.

    Raises:
        ValueError: unknown precision.

    Example:
        >>> from resfx.models import ResNet, ResNetConfig
        >>> from resfx.data import load_split
        >>> model = ResNet(ResNetConfig(width=4)).eval()
        >>> compute_features(model, load_split("synthetic", "test", 3), image_size=32).shape
        torch.Size([3, 32])
    """
    return compute_stage_features(
        model,
        split,
        ["pooled"],
        image_size=image_size,
        batch_size=batch_size,
        precision=precision,
        context=context,
    )["pooled"]


def compute_stage_features(
    model: ResNet,
    split: ImageSplit | StreamedSplit,
    stages: Sequence[str],
    *,
    image_size: int,
    batch_size: int = 256,
    precision: str = "fp32",
    context: DistributedContext | None = None,
) -> dict[str, Float[Tensor, "b _"]]:
    """Average-pooled features of several stages from one inference pass over `split`.

    Each stage's feature map `(b, c, h, w)` is averaged over `h, w`; `"pooled"`
    is `forward_pooled` (the same as `"layer4"` pooled). Under `torchrun`,
    with `context`, each process runs only its share of the batches
    (`context.share(len(split), block=batch_size)`: whole batches, in order)
    and an all-gather gives every process all the features: the same batches
    as one process would run, so the same bits, row for row.

    Args:
        model: the ResNet (on the split's device), BatchNorm in eval mode.
        split: the images.
        stages: names of `model.feature_stages` (the same on every process).
        image_size: side of the resized inputs.
        batch_size: images per forward pass.
        precision: `"fp32"` or `"bf16"`.
        context: the processes that share the pass; `None`: this process computes
            every image. Every process of `context` must call this together.

    Returns:
        float32 features `(len(split), channels)` per stage, on the split's device.

    Raises:
        ValueError: unknown precision or stage.

    Example:
        >>> from resfx.models import ResNet, ResNetConfig
        >>> from resfx.data import load_split
        >>> model = ResNet(ResNetConfig(width=4)).eval()
        >>> out = compute_stage_features(model, load_split("synthetic", "test", 3), ["stem", "layer2"],
        ...                              image_size=32)
        >>> {k: tuple(v.shape) for k, v in out.items()}
        {'stem': (3, 4), 'layer2': (3, 8)}
    """
    device = split.device
    chunks: dict[str, list[Tensor]] = {stage: [] for stage in stages}
    share = share_of(context, len(split), batch_size)
    batches = stage_feature_batches(
        model,
        split,
        stages,
        torch.arange(share.start, share.stop),
        image_size=image_size,
        batch_size=batch_size,
        precision=precision,
    )
    for _, features in batches:
        for stage, part in features.items():
            chunks[stage].append(part)
    channels = model.config.stage_channels
    local = {
        stage: torch.cat(parts) if parts else torch.empty(0, channels[stage], device=device)
        for stage, parts in chunks.items()
    }
    if context is None:
        return local
    return {
        stage: context.all_gather_rows(part, total=len(split), block=batch_size)
        for stage, part in local.items()
    }


def share_of(context: DistributedContext | None, total: int, batch_size: int) -> range:
    """The rows this process computes: its share under `context`, else all of them."""
    return range(total) if context is None else context.share(total, block=batch_size)
