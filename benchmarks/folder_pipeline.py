"""Images per second of an image folder into the network: resfx's pipeline vs ImageFolder + DataLoader.

- torchvision: `ImageFolder(root/train, transform=seed_transform(size))` (the seed's per-image
  Resize + ToTensor + Normalize on PIL images) and a `DataLoader(batch_size=64)` with 0 and 2
  workers, each batch moved to the device; one full pass.
- resfx, first pass: `load_folder_split` (decode with PIL once, store at the images' own size as
  uint8), `.to(device)`, then one pass of `iterate_batches` (normalise + resize on the device).
- resfx, later passes: `iterate_batches` alone (what every further epoch costs).

Run: `python benchmarks/folder_pipeline.py /work/data/cifar10-small [--size 224] [--device cpu]`.
Prints a table and the ratios; nothing is asserted.
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from resfx.data import epoch_order, iterate_batches, load_folder_split, seed_transform


def _timed(run: Callable[[], int]) -> tuple[float, int]:
    began = time.perf_counter()
    count = run()
    return time.perf_counter() - began, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    def torchvision_pass(workers: int) -> int:
        dataset = ImageFolder(str(args.root / "train"), transform=seed_transform(args.size))
        loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=workers)
        count = 0
        for images, labels in loader:
            images.to(device), labels.to(device)
            count += len(labels)
        return count

    def resfx_pass(split) -> int:
        order = epoch_order(len(split), epoch=0, seed=0, shuffle=True)
        count = 0
        for images, _ in iterate_batches(split, order, args.batch_size, image_size=args.size):
            count += len(images)
        return count

    kept = {}

    def resfx_first() -> int:
        kept["split"] = load_folder_split(args.root, "train").to(device)
        return resfx_pass(kept["split"])

    rows = []
    for workers in (0, 2):
        seconds, count = _timed(lambda w=workers: torchvision_pass(w))
        rows.append((f"ImageFolder + DataLoader, {workers} workers", seconds, count))
    seconds, count = _timed(resfx_first)
    rows.append(("resfx folder, first pass (decode once + device)", seconds, count))
    seconds, count = _timed(lambda: resfx_pass(kept["split"]))
    rows.append(("resfx folder, later passes (on the device)", seconds, count))
    baseline = rows[0][2] / rows[0][1]
    print(f"{args.root} train, {rows[0][2]} images, output {args.size}x{args.size}, {device}")
    print(f"{'pipeline':<50} {'seconds':>8} {'images/s':>9} {'vs 0 workers':>12}")
    for name, seconds, count in rows:
        rate = count / seconds
        print(f"{name:<50} {seconds:>8.2f} {rate:>9.0f} {rate / baseline:>11.2f}x")


if __name__ == "__main__":
    main()
