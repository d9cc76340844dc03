"""Write the main job's probe task: an image folder whose 10 classes differ in texture, not colour.

Each class is a grating of one of 5 orientations and one of 2 spatial frequencies; every image
draws its own two colours, phase and contrast, then gets Gaussian noise. Mean colour says nothing
about the class, so a probe has to read texture from a stage's features, and stages differ.

Run: `python scripts/probe_demo_data.py runs/probe-data` (train/ 200 and test/ 50 PNGs per class,
32x32, seeded: the same folder on every machine with the same torch).
"""

import argparse
import math
from pathlib import Path

import torch
from PIL import Image

ORIENTATIONS = 5
FREQUENCIES = (1 / 8, 1 / 4)


def gratings(labels: torch.Tensor, side: int, noise: float, generator: torch.Generator):
    """uint8 images `(n, side, side, 3)` of the classes `labels`."""
    n = len(labels)
    angle = (labels % ORIENTATIONS).float() * (math.pi / ORIENTATIONS)
    frequency = torch.tensor(FREQUENCIES)[labels // ORIENTATIONS]
    coords = torch.arange(side, dtype=torch.float32)
    along = (
        coords[None, None, :] * torch.cos(angle)[:, None, None]
        + coords[None, :, None] * torch.sin(angle)[:, None, None]
    )
    phase = torch.rand(n, 1, 1, generator=generator)
    wave = 0.5 + 0.5 * torch.cos(2 * math.pi * (frequency[:, None, None] * along + phase))
    background = 255 * torch.rand(n, 1, 1, 3, generator=generator)
    foreground = 255 * torch.rand(n, 1, 1, 3, generator=generator)
    pixels = background + (foreground - background) * wave[..., None]
    pixels += noise * torch.randn(n, side, side, 3, generator=generator)
    return pixels.round().clamp(0, 255).to(torch.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--noise", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(args.seed)
    classes = 2 * ORIENTATIONS
    for split, count in (("train", args.train_per_class), ("test", args.test_per_class)):
        labels = torch.arange(classes).repeat_interleave(count)
        images = gratings(labels, args.side, args.noise, generator)
        for k, (label, image) in enumerate(zip(labels.tolist(), images, strict=True)):
            folder = args.root / split / f"grating{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.numpy()).save(folder / f"{k:05d}.png")
    print(f"wrote {classes} classes of gratings to {args.root}")


if __name__ == "__main__":
    main()
