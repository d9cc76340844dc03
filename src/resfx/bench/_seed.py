"""The seed's training loop, kept as it was: the baseline that resfx's `train` is measured against.

It lives with the benchmarks because that is all it is for: a baseline, not a way to train.
"""

import time
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .._device_sync import synchronize
from ..data import SyntheticCIFAR10, get_cifar_subset, seed_transform
from ..models import resolve_weights
from ..train import DistributedContext, TrainHistory, TrainingArgs, TrainResult, resolve_device
from ..weights import load_weights


class _ImagesInMemory(Dataset):
    """Images held as one uint8 array, turned into PIL images one at a time on access.

    What torchvision's CIFAR10 does with its unpickled arrays, so the seed's loop
    pays the same per-image costs on synthetic data as on CIFAR-10.
    """

    def __init__(self, source: SyntheticCIFAR10, size: int, transform: Any) -> None:
        indices = torch.arange(size)
        self.data = source.images(indices).permute(0, 2, 3, 1).numpy()
        self.targets = source.labels(indices).tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


def _seed_data(args: TrainingArgs) -> tuple[Dataset, Dataset]:
    transform = seed_transform(args.image_size)
    if args.data == "cifar10":
        return get_cifar_subset(
            args.trainset_size,
            args.testset_size,
            root=args.data_root,
            download=args.download,
            transform=transform,
        )
    return tuple(
        _ImagesInMemory(SyntheticCIFAR10(train=train, seed=args.seed), size, transform)
        for train, size in ((True, args.trainset_size), (False, args.testset_size))
    )


def seed_train(args: TrainingArgs) -> TrainResult:
    """The seed's loop: torchvision ResNet34, per-image PIL transforms, a DataLoader, head only.

    As the seed wrote it: `requires_grad_(False)` on the whole model (its
    BatchNorms stay in train mode and keep updating their statistics), a new
    `Linear(512, n_classes)` head, Adam on the head, `loss.item()` every step,
    float32 throughout. Only `batch_size`, `epochs`, `learning_rate`,
    `n_classes`, the sizes, `data`, `data_root`, `download`, `weights`,
    `image_size`, `device`, `seed` and `num_workers` apply. It is the baseline
    of the benchmarks, not a way to train.

    Args:
        args: the settings.

    Returns:
        A result with `mode="seed"`.

    Raises:
        ValueError: CUDA asked for and missing.
        resfx.data.DatasetUnavailableError: CIFAR-10 missing and not downloadable.

    Example:
        >>> args = TrainingArgs(data="synthetic", weights=None, trainset_size=16,
        ...                     testset_size=8, epochs=1, batch_size=8, image_size=32,
        ...                     device="cpu")
        >>> len(seed_train(args).loss_list)
        2
    """
    began = time.perf_counter()
    device = resolve_device(args.device, DistributedContext(0, 1, 0))
    torch.manual_seed(args.seed)  # the seed's program reseeds the global RNG; kept as it was
    trainset, testset = _seed_data(args)
    model = _seed_model(args).to(device)
    optimizer = torch.optim.Adam(model.fc.parameters(), lr=args.learning_rate)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(
        trainset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        generator=generator,
    )
    test_loader = DataLoader(testset, batch_size=args.batch_size, num_workers=args.num_workers)
    history = TrainHistory(
        mode="seed",
        dataset=args.data,
        device=str(device),
        args=args.to_dict(),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        frozen_parameters=sum(p.numel() for p in model.parameters() if not p.requires_grad),
    )
    history.setup_seconds = time.perf_counter() - began
    for _ in range(args.epochs):
        epoch_began = time.perf_counter()
        _seed_epoch(model, train_loader, optimizer, history, device)
        correct = _seed_correct(model, test_loader, device)
        synchronize(device)
        history.accuracy_list.append(correct / len(testset))
        history.epoch_examples.append(history.examples_seen[-1])
        history.epoch_times.append(time.perf_counter() - epoch_began)
    return TrainResult(history, model)


def _seed_model(args: TrainingArgs) -> torch.nn.Module:
    """torchvision's ResNet34, every weight frozen by `requires_grad_(False)`, a new head."""
    model = torchvision.models.resnet34()
    if args.weights is not None:
        load_weights(model, resolve_weights("resnet34", args.weights))
    model.requires_grad_(False)
    model.fc = torch.nn.Linear(512, args.n_classes or 10)
    return model


def _seed_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    history: TrainHistory,
    device: torch.device,
) -> None:
    """One training epoch as the seed ran it: train mode, a host read of the loss every step."""
    model.train()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.loss_list.append(loss.item())
        seen = history.examples_seen[-1] if history.examples_seen else 0
        history.examples_seen.append(seen + len(labels))


def _seed_correct(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> int:
    """Correct test predictions, in eval mode without gradients."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in loader:
            predicted = model(images.to(device)).argmax(dim=1)
            correct += int((predicted == labels.to(device)).sum())
    return correct
