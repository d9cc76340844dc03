"""The feature store and `extract`: plain-numpy shards, memory-mapped rows, resume bit for bit,
refusals (lock, finished, half-written, mismatched, damaged), folders and Datasets, one decode."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

import resfx.data._files
from resfx import cli
from resfx._distributed import DistributedContext
from resfx._lock import hold_lock
from resfx.data import load_folder_split
from resfx.features import FeatureSource, FeatureStore, StoreError, compute_stage_features, extract
from resfx.features._store import STORE_LOCK_NAME
from resfx.models import ResNet, ResNetConfig

STAGES = ["stem", "layer2", "pooled"]
SETTINGS = {"stages": STAGES, "image_size": 16, "batch_size": 2, "shard_size": 4, "device": "cpu"}


def _model() -> ResNet:
    torch.manual_seed(0)
    return ResNet(ResNetConfig(layers=(1, 1, 1, 1), width=4)).eval()


def write_folder(root: Path, train: int = 5, test: int = 2) -> Path:
    """train/ and test/ with two classes of small JPEG and PNG files of several sizes."""
    for split, count in (("train", train), ("test", test)):
        for label, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                pixels = np.random.default_rng(7 * k + label).integers(0, 256, (12 + k, 18, 3))
                image = Image.fromarray(pixels.astype(np.uint8))
                image.save(folder / f"{k}.{'jpg' if k % 2 else 'png'}")
    return root


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny convolutions: one thread is 10x faster than two on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "images")


def test_the_store_reads_with_plain_numpy_and_equals_the_frozen_pass(
    folder: Path, tmp_path: Path
) -> None:
    model = _model()
    store = extract(folder, tmp_path / "store", arch=model, **SETTINGS)
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert store.splits == ("train", "test") and store.stages == tuple(STAGES)
    assert store.classes == ("cat", "dog") and manifest["stages"] == {
        "stem": 4,
        "layer2": 8,
        "pooled": 32,
    }
    for split in store.splits:
        reference = load_folder_split(folder, split, store_size=16)
        expected = compute_stage_features(model, reference, STAGES, image_size=16, batch_size=2)
        entry = manifest["splits"][split]
        assert entry["rows"] == len(reference) and entry["skipped"] == []
        assert entry["labels"] == reference.labels.tolist() == store.labels(split).tolist()
        assert entry["paths"][0] == f"{split}/cat/0.png" and store.paths(split) == entry["paths"]
        for stage in STAGES:
            shards = entry["stages"][stage]
            assert [s["rows"][0] for s in shards] == list(range(0, len(reference), 4))
            arrays = [np.load(tmp_path / "store" / s["file"], mmap_mode="r") for s in shards]
            assert all(a.dtype == np.float32 for a in arrays)
            assert torch.equal(torch.from_numpy(np.concatenate(arrays)), expected[stage])
            assert torch.equal(store.load(split, stage), expected[stage])
    pool = extract(folder, tmp_path / "pool", arch=model, workers=2, **SETTINGS).root
    for name in sorted(p.relative_to(pool) for p in pool.rglob("*") if p.is_file()):
        assert (pool / name).read_bytes() == (tmp_path / "store" / name).read_bytes(), name


def test_rows_read_only_their_shards_and_a_damaged_shard_is_named_when_read(
    folder: Path, tmp_path: Path
) -> None:
    store = extract(folder, tmp_path / "store", arch=_model(), **SETTINGS)
    source = store.source("train", "layer2")
    assert isinstance(source, FeatureSource) and (len(source), source.width) == (10, 8)
    whole = store.load("train", "layer2")
    damaged = tmp_path / "store" / "train" / "layer2-00002.npy"
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    fresh = FeatureStore.open(tmp_path / "store").source("train", "layer2")
    index = torch.tensor([5, 0, 7, 3])
    assert torch.equal(fresh.rows(index), whole[index])  # shards 0 and 1 only
    with pytest.raises(StoreError, match="layer2-00002.npy is damaged: its SHA-256"):
        fresh.rows(torch.tensor([9]))
    with pytest.raises(StoreError, match="layer2-00002.npy is damaged"):
        FeatureStore.open(tmp_path / "store").verify()
    damaged.write_bytes(bytes(data[:-8]))
    with pytest.raises(StoreError, match="layer2-00002.npy is damaged: .* bytes, not"):
        FeatureStore.open(tmp_path / "store")


CHILD = textwrap.dedent(
    """
    import sys, time
    import torch
    import resfx.features._store as store
    from resfx.features import extract
    from resfx.models import ResNet, ResNetConfig

    checksum = store._sha256_of

    def stall_in_shard_2(path):
        if path.name.endswith("-00002.npy"):
            time.sleep(120)  # the parent kills us here: shard 2 half on disk, not in the journal
        return checksum(path)

    store._sha256_of = stall_in_shard_2
    torch.manual_seed(0)
    model = ResNet(ResNetConfig(layers=(1, 1, 1, 1), width=4)).eval()
    extract(sys.argv[1], sys.argv[2], arch=model, stages=["stem", "layer2", "pooled"],
            image_size=16, batch_size=2, shard_size=4, device="cpu")
    """
)


@pytest.mark.slow
def test_a_run_killed_mid_shard_resumes_to_the_same_bytes_recomputing_only_that_shard(
    folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    killed = tmp_path / "killed"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), str(folder), str(killed)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (killed / "train" / "stem-00002.npy").exists():
        assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (killed / "manifest.json").exists()
    with pytest.raises(
        StoreError, match="half-written feature store .2 shard.s. done.; pass resume"
    ):
        extract(folder, killed, arch=_model(), **SETTINGS)
    with pytest.raises(StoreError, match="half-written"):
        FeatureStore.open(killed)
    caplog.clear()
    with caplog.at_level("INFO", logger="resfx.extract"):
        extract(folder, killed, arch=_model(), resume=True, **SETTINGS)
    recomputed = [r.getMessage() for r in caplog.records if "rows in" in r.getMessage()]
    assert len(recomputed) == 2 and "(train 00002)" in recomputed[0]  # train 2, test 0
    whole = tmp_path / "whole"
    extract(folder, whole, arch=_model(), **SETTINGS)
    files = sorted(p.relative_to(whole) for p in whole.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(killed) for p in killed.rglob("*") if p.is_file())
    assert len(files) == 1 + 4 * 3  # the manifest, and 3 train + 1 test shards of 3 stages
    for name in files:
        assert (whole / name).read_bytes() == (killed / name).read_bytes(), name


def test_a_store_is_refused_while_held_when_finished_or_when_a_resume_differs(
    folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "store"
    out.mkdir()
    held = pytest.raises(
        StoreError, match=f"in use by another resfx run .pid {os.getpid()} on host"
    )
    with hold_lock(out / STORE_LOCK_NAME), held:
        extract(folder, out, arch=_model(), **SETTINGS)
    extract(folder, out, arch=_model(), **SETTINGS)
    with pytest.raises(StoreError, match="already holds a finished feature store; pass overwrite"):
        extract(folder, out, arch=_model(), **SETTINGS)
    changed = {**SETTINGS, "stages": ["stem"], "image_size": 32}
    with pytest.raises(StoreError, match="settings differ .*preprocessing: .*stages: stored"):
        extract(folder, out, arch=_model(), resume=True, **changed)
    (folder / "test" / "dog" / "0.png").write_bytes(
        (folder / "test" / "cat" / "0.png").read_bytes()
    )
    with pytest.raises(StoreError, match="settings differ .data: stored"):
        extract(folder, out, arch=_model(), resume=True, **SETTINGS)
    store = extract(folder, out, arch=_model(), overwrite=True, **changed)
    assert store.stages == ("stem",) and not (out / "train" / "pooled-00000.npy").exists()
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "test", "train"]


def test_extract_reads_a_dataset_and_skips_unreadable_images_naming_them(
    folder: Path, tmp_path: Path
) -> None:
    images = torch.rand(5, 3, 10, 10)
    data = TensorDataset(images, torch.tensor([1, 0, 1, 1, 0]))
    store = extract(data, tmp_path / "ds", arch=_model(), **SETTINGS)
    assert store.splits == ("train",) and store.paths("train") == [0, 1, 2, 3, 4]
    assert store.labels("train").tolist() == [1, 0, 1, 1, 0]
    (folder / "train" / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    skipped = extract(folder, tmp_path / "skip", arch=_model(), on_bad_image="skip", **SETTINGS)
    entry = skipped.manifest["splits"]["train"]
    assert entry["rows"] == 10 and len(entry["skipped"]) == 1
    assert "broken.jpg" in entry["skipped"][0] and "train/dog/broken.jpg" not in entry["paths"]


def test_extraction_decodes_each_image_exactly_once(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    real = resfx.data._files.decode_image_file

    def counting(source: str | bytes, size: int, *, draft: bool = True) -> torch.Tensor:
        decoded.append(str(source))
        return real(source, size, draft=draft)

    monkeypatch.setattr(resfx.data._files, "decode_image_file", counting)
    extract(folder, tmp_path / "store", arch=_model(), **SETTINGS)
    files = sorted(str(p) for p in folder.rglob("*.*"))
    assert sorted(decoded) == files


def test_the_extract_command_writes_a_store_and_says_ordinary_mistakes_in_one_line(
    folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flags = ["--image-size", "16", "--batch-size", "4", "--device", "cpu", "--arch", "resnet18"]
    out = str(tmp_path / "store")
    assert cli.main(["extract", "--data", str(folder), "--out", out, *flags]) == 0
    said = capsys.readouterr()
    assert "wrote" in said.out and "train 10, test 4 rows" in said.out
    assert "rows/s" in said.err  # the progress lines, one per shard
    assert FeatureStore.open(out).stages == ("pooled",)
    mistakes = {
        ("--data", str(tmp_path / "missing"), "--out", out): "is not a folder nor one of",
        ("--data", str(folder), "--out", out, "--stages", "layer9"): "'layer9' unknown",
        ("--data", str(folder), "--out", out): "already holds a finished feature store",
    }
    for argv, expected in mistakes.items():
        assert cli.main(["extract", *argv, *flags]) == 1
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and expected in error[0], error
    full = type("Usage", (), {"free": 4096})
    monkeypatch.setattr(resfx.features._extract.shutil, "disk_usage", lambda _: full)
    argv = ["extract", "--data", str(folder), "--out", str(tmp_path / "full"), *flags]
    assert cli.main(argv) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "not enough free space for the feature store" in error[0], error
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == []  # nothing written


class _Rank(DistributedContext):
    """One rank of a launch, run alone: its collectives only agree with itself."""

    def any_of(self, flags: Sequence[bool], device: torch.device) -> list[bool]:
        return list(flags)


def test_ranks_write_disjoint_shards_and_rank_0_merges_them_into_the_one_process_store(
    folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    single = tmp_path / "single"
    extract(folder, single, arch=_model(), **SETTINGS)
    shared = tmp_path / "shared"
    caplog.clear()
    with caplog.at_level("INFO", logger="resfx.extract"):
        # Alone, rank 1 cannot wait for rank 0 (a launch's last collective does): its store is
        # still half-written when it returns.
        with pytest.raises(StoreError, match="half-written"):
            extract(folder, shared, arch=_model(), context=_Rank(1, 2, 0), **SETTINGS)
        extract(folder, shared, arch=_model(), context=_Rank(0, 2, 0), **SETTINGS)
    shards = [
        r.getMessage().split("(")[1].split(")")[0]
        for r in caplog.records
        if "rows in" in r.getMessage()
    ]
    # Every split's shards in one list (train 0-2, test 0), dealt round robin: rank 1 takes 1 and 3.
    assert shards == ["train 00001", "test 00000", "train 00000", "train 00002"]
    for name in sorted(p.relative_to(single) for p in single.rglob("*") if p.is_file()):
        assert (single / name).read_bytes() == (shared / name).read_bytes(), name


def test_a_shard_with_non_finite_features_is_refused_and_nothing_of_it_is_written(
    tmp_path: Path,
) -> None:
    from resfx.features._store import StoreWriter

    writer = StoreWriter(tmp_path / "store", {"arch": "test"})
    features = np.ones((3, 2), np.float32)
    features[1, 0] = np.nan
    features[2, 1] = np.inf
    with writer.claim():
        with pytest.raises(StoreError, match=r"2 example\(s\) \(positions 11, 12\)"):
            writer.write_shard("train", 0, {"pooled": features}, [10, 11, 12], [])
        assert writer.done() == {}
        assert not list((tmp_path / "store").rglob("*.npy"))
        finite = writer.write_shard(
            "train", 0, {"pooled": np.ones((3, 2), np.float32)}, [10, 11, 12], []
        )
        assert finite.rows == 3


def test_extraction_through_a_model_that_gives_nan_stops_without_a_store(tmp_path: Path) -> None:
    model = _model()
    with torch.no_grad():
        model.layer4[0].conv1.weight[0, 0, 1, 1] = float("nan")
    data = TensorDataset(torch.rand(4, 3, 10, 10), torch.tensor([1, 0, 1, 0]))
    with pytest.raises(StoreError, match="stage pooled of shard 0 of train has NaN"):
        extract(data, tmp_path / "nan", arch=model, **SETTINGS)
    with pytest.raises(StoreError, match="half-written"):
        FeatureStore.open(tmp_path / "nan")


def test_files_named_like_shards_that_no_store_records_are_never_overwritten(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "train" / "pooled-00000.npy").write_bytes(b"someone's array")
    data = TensorDataset(torch.rand(4, 3, 10, 10), torch.tensor([1, 0, 1, 0]))
    with pytest.raises(StoreError, match=r"holds 1 file\(s\) named like feature-store shards"):
        extract(data, out, arch=_model(), **SETTINGS)
    assert (out / "train" / "pooled-00000.npy").read_bytes() == b"someone's array"
    store = extract(data, out, arch=_model(), overwrite=True, **SETTINGS)
    assert store.load("train", "pooled").shape[0] == 4
    assert (out / "notes.txt").read_text() == "mine"
