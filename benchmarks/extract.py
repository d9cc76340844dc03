"""Images/s of an image folder -> pooled features of every stage -> .npy files: resfx vs torchvision.

- resfx: `load_folder_split` (streamed: the key hashes the files, nothing is decoded up front),
  `decoded_batches(workers=k)` (PIL, JPEG DCT draft, decoded in k processes), one frozen forward
  per batch (`forward_stages`, inference mode), each stage's pooled features written into its
  `.npy` (an `open_memmap`) as they come.
- torchvision: `ImageFolder` with `Resize(size)`, `CenterCrop(size)`, `PILToTensor` (the same
  documented preprocessing, decoded in full), `DataLoader(num_workers=k)`, the same ImageNet
  normalisation and `create_feature_extractor` over torchvision's ResNet with the same weights,
  stages and batch size, written the same way.
- decode only: resfx's `decoded_batches(workers=k)` alone, against the single-core decode limit,
  a `torchvision.io.decode_jpeg` + uint8 tensor resize loop in one thread (reported as
  `decode / (k x limit)`).
- peak RSS of the resfx run at N and 4N images, each in its own process; its decode workers'
  peak (`RUSAGE_CHILDREN`: the largest of them) is reported apart.

Every entry runs once per round, in a shuffled order, for `--rounds` rounds; medians and
ranges are printed side by side with the ratios. Nothing is asserted.

Run: `python benchmarks/extract.py --images 400 --size 64 --arch resnet18 [--rss-images 2000]`
(`--folder DIR` times an existing ImageFolder-layout folder instead of generated JPEGs).
"""

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

_TV_NODES = {
    "stem": "maxpool",
    "layer1": "layer1",
    "layer2": "layer2",
    "layer3": "layer3",
    "layer4": "layer4",
    "pooled": "flatten",
}


def write_jpegs(
    root: Path, count: int, *, classes: int = 4, seed: int = 0, copies: int = 1
) -> Path:
    """`count` ImageNet-like JPEGs (500x375, smooth random content + noise, quality 90) in
    `root/train/<class>/`, round robin over `classes` classes, each written `copies` times
    (under other names), and one per class in `root/test/`; returns `root`."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        folder = root / "train" / f"class{k % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8))
        smooth = np.asarray(coarse.resize((500, 375), Image.Resampling.BICUBIC), np.float32)
        noisy = (smooth + rng.normal(0, 12, smooth.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{k:06d}.jpg", quality=90)
        for copy in range(1, copies):
            shutil.copyfile(folder / f"{k:06d}.jpg", folder / f"{k:06d}-{copy}.jpg")
        if k < classes:
            (root / "test" / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / f"{k:06d}.jpg", root / "test" / folder.name / "0.jpg")
    return root


def _models(arch: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """resfx's and torchvision's `arch`, with the same (seeded random) weights, eval mode."""
    import torchvision

    import resfx.models

    torch.manual_seed(0)
    reference = getattr(torchvision.models, arch)().eval()
    ours = getattr(resfx.models, arch)().eval()
    ours.load_state_dict(reference.state_dict())
    return ours, reference


class _NpyRows:
    """Rows appended to one `.npy` per stage, in order, as they come (plain writes: a memory
    map's written pages would count in the RSS being measured)."""

    def __init__(self, out: Path, n: int) -> None:
        self.out, self.n, self.files = out, n, {}

    def write(self, pooled: dict[str, torch.Tensor]) -> None:
        if not self.files:
            self.out.mkdir(parents=True, exist_ok=True)
            for stage, part in pooled.items():
                handle = open(self.out / f"{stage}.npy", "wb")  # noqa: SIM115 - closed in close()
                header = {"descr": "<f4", "fortran_order": False, "shape": (self.n, part.shape[1])}
                np.lib.format.write_array_header_1_0(handle, header)
                self.files[stage] = handle
        for stage, part in pooled.items():
            self.files[stage].write(part.to(torch.float32).numpy().tobytes())

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()


def _pool(output: torch.Tensor) -> torch.Tensor:
    return output if output.ndim == 2 else output.mean(dim=(2, 3))


def resfx_extract(root: Path, out: Path, *, model, size: int, batch_size: int, workers: int) -> int:
    """resfx: folder -> every stage's pooled features -> `out/<stage>.npy`; returns the rows."""
    from resfx.data import decoded_batches, load_folder_split, preprocess

    stages = list(model.feature_stages)
    split = load_folder_split(root, "train", store_size=size, memory_budget_mib=0, workers=workers)
    rows = _NpyRows(out, len(split))
    with torch.inference_mode():
        for batch in decoded_batches(
            split, range(len(split)), batch_size=batch_size, workers=workers
        ):
            pooled = {
                s: _pool(o)
                for s, o in model.forward_stages(preprocess(batch.images, size), stages).items()
            }
            rows.write(pooled)  # positions come in order, every image readable here
    rows.close()
    return len(split)


def torchvision_extract(
    root: Path, out: Path, *, model, size: int, batch_size: int, workers: int
) -> int:
    """torchvision: ImageFolder + DataLoader(num_workers) + create_feature_extractor, same
    preprocessing and stages; returns the rows."""
    from torch.utils.data import DataLoader
    from torchvision import transforms
    from torchvision.datasets import ImageFolder
    from torchvision.models.feature_extraction import create_feature_extractor

    from resfx.data import preprocess

    transform = transforms.Compose(
        [transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()]
    )
    dataset = ImageFolder(str(root / "train"), transform=transform)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    extractor = create_feature_extractor(model, {v: k for k, v in _TV_NODES.items()})
    rows = _NpyRows(out, len(dataset))
    start = 0
    with torch.inference_mode():
        for images, _ in loader:
            pooled = {s: _pool(o) for s, o in extractor(preprocess(images, size)).items()}
            rows.write(pooled)
            start += len(images)
    rows.close()
    return start


def resfx_decode(root: Path, *, size: int, batch_size: int, workers: int) -> int:
    """resfx's decode alone: every image through `decoded_batches(workers=k)`."""
    from resfx.data import decoded_batches, load_folder_split

    split = load_folder_split(root, "train", store_size=size, memory_budget_mib=0, workers=workers)
    return sum(
        len(b.positions)
        for b in decoded_batches(split, range(len(split)), batch_size=batch_size, workers=workers)
    )


def decode_limit(paths: list[str], *, size: int) -> int:
    """The single-core limit: `decode_jpeg` + uint8 tensor resize + crop, one thread."""
    from torchvision.io import ImageReadMode, decode_jpeg

    from resfx.data import resize_to_square

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for path in paths:
            encoded = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
            resize_to_square(decode_jpeg(encoded, mode=ImageReadMode.RGB), size)
    finally:
        torch.set_num_threads(threads)
    return len(paths)


def _interleaved(entries: dict[str, Callable[[], int]], rounds: int) -> dict[str, list[float]]:
    """images/s of every entry, once per round, in a shuffled order each round."""
    rates: dict[str, list[float]] = {name: [] for name in entries}
    order = list(entries)
    shuffle = random.Random(0)
    for _ in range(rounds):
        shuffle.shuffle(order)
        for name in order:
            began = time.perf_counter()
            count = entries[name]()
            rates[name].append(count / (time.perf_counter() - began))
    return rates


def _text(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} [{min(values):.1f}-{max(values):.1f}]"


def _ratio(a: list[float], b: list[float]) -> str:
    per_round = [x / y for x, y in zip(a, b, strict=True)]
    return f"{statistics.median(per_round):.2f}x [{min(per_round):.2f}-{max(per_round):.2f}]"


def peak_rss_child(root: Path, *, size: int, batch_size: int, workers: int, arch: str) -> dict:
    """Run the resfx extraction over `root` in a fresh process; its peak RSS and its workers'."""
    command = [
        sys.executable,
        __file__,
        "--rss-child",
        str(root),
        "--size",
        str(size),
        "--batch-size",
        str(batch_size),
        "--workers",
        str(workers),
        "--arch",
        arch,
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rss_child(args: argparse.Namespace) -> None:
    model, _ = _models(args.arch)
    with tempfile.TemporaryDirectory() as out:
        rows = resfx_extract(
            args.rss_child,
            Path(out),
            model=model,
            size=args.size,
            batch_size=args.batch_size,
            workers=args.workers,
        )
    # VmHWM is this process's own peak; ru_maxrss (RUSAGE_SELF) also counts the pre-exec
    # copy of whoever launched it (measured: 1282-1923 MiB for one and the same run)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    main = int(status["VmHWM"].split()[0]) / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "main_mib": main, "worker_mib": workers}))


def run(args: argparse.Namespace) -> dict:
    """The benchmark; prints its report and returns the numbers."""
    work = Path(tempfile.mkdtemp(prefix="resfx-extract-"))
    try:
        return _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> dict:
    root = args.folder or write_jpegs(work / "images", args.images)
    ours, reference = _models(args.arch)
    paths = [str(p) for p in sorted((root / "train").rglob("*")) if p.is_file()]
    shape = dict(size=args.size, batch_size=args.batch_size)
    out = work / "out"
    entries: dict[str, Callable[[], int]] = {}
    for k in (0, args.workers):
        entries[f"resfx, {k} workers"] = lambda k=k: resfx_extract(
            root, out / "resfx", model=ours, workers=k, **shape
        )
        entries[f"torchvision DataLoader, {k} workers"] = lambda k=k: torchvision_extract(
            root, out / "tv", model=reference, workers=k, **shape
        )
    entries[f"decode only, resfx {args.workers} workers"] = lambda: resfx_decode(
        root, workers=args.workers, **shape
    )
    entries["decode limit, decode_jpeg + resize, 1 core"] = lambda: decode_limit(
        paths, size=args.size
    )
    result: dict = {}
    if args.rounds > 0:
        result = _speed(args, root, out, entries, paths)
    if args.rss_images:
        result["rss"] = _rss(args, work, shape)
    return result


def _speed(
    args: argparse.Namespace, root: Path, out: Path, entries: dict, paths: list[str]
) -> dict:
    for step in entries.values():
        step()  # warm: file cache, lazy imports, oneDNN kernels
    rates = _interleaved(entries, args.rounds)
    check = {
        stage: float(
            np.abs(
                np.load(out / "resfx" / f"{stage}.npy") - np.load(out / "tv" / f"{stage}.npy")
            ).max()
        )
        for stage in _TV_NODES
    }
    k = args.workers
    base = rates[f"torchvision DataLoader, {k} workers"]
    decode = rates[f"decode only, resfx {k} workers"]
    limit = rates["decode limit, decode_jpeg + resize, 1 core"]
    print(
        f"{len(paths)} JPEGs from {root}, {args.arch}, store {args.size} px, batch "
        f"{args.batch_size}, {args.rounds} interleaved rounds, {torch.get_num_threads()} threads, "
        f"{len(__import__('os').sched_getaffinity(0))} usable cores"
    )
    print(f"{'entry':<46} {'images/s median [range]':>28}  vs torchvision {k} workers")
    for name, values in rates.items():
        print(f"{name:<46} {_text(values):>28}  {_ratio(values, base)}")
    scaled = [d / (k * x) for d, x in zip(decode, limit, strict=True)]
    print(
        f"decode / ({k} x single-core limit): {statistics.median(scaled):.2f}x "
        f"[{min(scaled):.2f}-{max(scaled):.2f}] (goal >= 0.8)"
    )
    print(
        f"whole run, resfx {k} workers / torchvision {k} workers: "
        f"{_ratio(rates[f'resfx, {k} workers'], base)} (goal >= 1.5)"
    )
    print("largest |resfx - torchvision| feature per stage (draft decode vs full):", check)
    return {"rates": rates, "decode_vs_limit": scaled, "feature_gap": check}


def _rss(args: argparse.Namespace, work: Path, shape: dict) -> dict:
    """Peak RSS of the resfx extraction at N and 4N images (the N written four times over:
    each costs the same to decode; 4x the rows), each in its own process."""
    k = args.workers
    write_jpegs(work / "rss" / "n", args.rss_images)
    write_jpegs(work / "rss" / "4n", args.rss_images, copies=4)
    rss = {
        n: peak_rss_child(work / "rss" / n, workers=k, arch=args.arch, **shape) for n in ("n", "4n")
    }
    n, four = rss["n"], rss["4n"]
    print(
        f"peak RSS, resfx {k} workers: {n['rows']} images main {n['main_mib']:.0f} MiB (workers "
        f"{n['worker_mib']:.0f}), {four['rows']} images main {four['main_mib']:.0f} MiB (workers "
        f"{four['worker_mib']:.0f}): 4N/N {four['main_mib'] / n['main_mib']:.3f} main, "
        f"{four['worker_mib'] / n['worker_mib']:.3f} workers (goal <= 1.15)"
    )
    return rss


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="generated JPEGs to time")
    parser.add_argument("--folder", type=Path, help="an ImageFolder-layout folder (with train/)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="0: only the RSS check")
    parser.add_argument("--rss-images", type=int, default=0, help="N of the RSS check (0: skip)")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict | None:
    """Run the benchmark (or, with `--rss-child`, one measured extraction)."""
    args = parse(argv)
    if args.rss_child is not None:
        _rss_child(args)
        return None
    return run(args)


if __name__ == "__main__":
    main()
