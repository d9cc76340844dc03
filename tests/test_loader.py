"""The one image pipeline: worker processes, one decode per image, keys from bytes, skipped images
reported, the draft decode's bound and nvjpeg's CPU fallback (with a fake GPU decoder)."""

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

import resfx.data._files as files_module
from resfx import data
from resfx.data._gpu import decode_jpeg_batch, gpu_decoded_chunks
from resfx.features import compute_stage_features, feature_key
from resfx.models import ResNet, ResNetConfig


def _photo(seed: int, width: int = 40, height: int = 30) -> Image.Image:
    """Smooth random content plus noise, like a small photograph."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((3, 4, 3)) * 255).astype(np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.float32)
    noisy = smooth + rng.normal(0, 12, smooth.shape)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def _jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """train/{a,b}: 6 JPEGs, one non-image (000, first of b) and one truncated JPEG (999)."""
    for k in range(6):
        name = "ab"[k % 2]
        (tmp_path / "train" / name).mkdir(parents=True, exist_ok=True)
        _photo(k).save(tmp_path / "train" / name / f"{k + 1:03d}.jpg", quality=90)
    (tmp_path / "test" / "a").mkdir(parents=True)
    (tmp_path / "test" / "b").mkdir(parents=True)
    _photo(9).save(tmp_path / "test" / "a" / "0.jpg")
    _photo(10).save(tmp_path / "test" / "b" / "0.jpg")
    (tmp_path / "train" / "b" / "000.jpg").write_bytes(b"not an image")
    whole = _jpeg_bytes(_photo(7))
    (tmp_path / "train" / "b" / "999.jpg").write_bytes(
        whole[:-200]
    )  # the header whole, the scan cut
    return tmp_path


def _clean(folder: Path) -> Path:
    (folder / "train" / "b" / "000.jpg").unlink()
    (folder / "train" / "b" / "999.jpg").unlink()
    return folder


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file decode, by path (worker-free runs only: the count is this process's)."""
    seen: list[str] = []
    real = files_module.decode_image_file

    def counted(source: str | bytes, size: int, *, draft: bool = True) -> torch.Tensor:
        seen.append(str(source))
        return real(source, size, draft=draft)

    monkeypatch.setattr(files_module, "decode_image_file", counted)
    return seen


def test_workers_give_the_serial_batches_bit_for_bit_in_order(folder: Path) -> None:
    split = data.load_folder_split(
        _clean(folder), "train", store_size=16, memory_budget_mib=0, workers=2
    )
    assert isinstance(split, data.StreamedSplit)
    order = torch.tensor([5, 0, 3, 1, 4, 2])
    serial = list(data.decoded_batches(split, order, batch_size=2))
    parallel = list(data.decoded_batches(split, order, batch_size=2, workers=2, pin_memory=True))
    assert [b.positions.tolist() for b in parallel] == [[5, 0], [3, 1], [4, 2]]
    for one, other in zip(serial, parallel, strict=True):
        assert torch.equal(one.images, other.images) and torch.equal(one.labels, other.labels)
    resident = data.load_folder_split(folder, "train", store_size=16, workers=2)
    assert torch.equal(resident.images, torch.cat([b.images for b in serial])[order.argsort()])


def test_bad_images_are_raised_or_skipped_per_batch_with_workers(folder: Path) -> None:
    split = data.load_folder_split(folder, "train", store_size=16, memory_budget_mib=0)
    assert len(split) == 8  # "error": no header check, nothing decoded yet
    with pytest.raises(data.BadImageError, match=r"2 image\(s\).*000\.jpg.*999\.jpg"):
        list(data.decoded_batches(split, range(8), batch_size=8, workers=2))
    batches = list(
        data.decoded_batches(split, range(8), batch_size=4, on_bad_image="skip", workers=2)
    )
    assert [len(b.bad) for b in batches] == [1, 1]
    assert [b.positions.tolist() for b in batches] == [[0, 1, 2], [4, 5, 6]]
    assert [Path(p).name for p in split.skipped_paths] == ["000.jpg", "999.jpg"]


def test_size_counts_readable_files_and_skips_are_named_and_logged(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="resfx.data"):
        split = data.load_folder_split(folder, "train", 7, store_size=16, on_bad_image="skip")
    # 000.jpg fails its header check and is dropped before choosing 7 of the 7 readable files;
    # 999.jpg (truncated) passes it and is left out when decoded: 6 images
    assert len(split) == 6 and split.skipped == 2
    assert [Path(p).name for p in split.skipped_paths] == ["000.jpg", "999.jpg"]
    assert "skipped 2 unreadable image(s)" in caplog.text and "000.jpg" in caplog.text
    with pytest.raises(ValueError, match=r"7 images readable \(1 unreadable left out\)"):
        data.load_folder_split(folder, "train", 8, store_size=16, on_bad_image="skip")


def test_each_image_is_decoded_once_per_pass_and_once_for_a_cached_run(
    folder: Path, decodes: list[str]
) -> None:
    root = _clean(folder)
    model = ResNet(ResNetConfig(width=4)).eval()
    resident = data.load_folder_split(root, "train", store_size=16)
    assert sorted(decodes) == sorted(p for p, _ in data.scan_image_folder(root).train)
    feature_key(model, resident, image_size=16, precision="fp32", bn="eval")
    compute_stage_features(model, resident, ["pooled"], image_size=16)
    assert len(decodes) == 6
    decodes.clear()
    streamed = data.load_folder_split(root, "train", store_size=16, memory_budget_mib=0)
    feature_key(model, streamed, image_size=16, precision="fp32", bn="eval")
    assert decodes == []  # the key hashes bytes
    streamed_features = compute_stage_features(model, streamed, ["pooled"], image_size=16)
    assert sorted(decodes) == sorted(set(decodes)) and len(decodes) == 6
    order = data.epoch_order(6, epoch=0, seed=0)
    list(data.iterate_batches(streamed, order, 4, image_size=16))
    assert len(decodes) == 12
    resident_features = compute_stage_features(model, resident, ["pooled"], image_size=16)
    assert torch.equal(streamed_features["pooled"], resident_features["pooled"])


def test_the_streamed_key_follows_the_bytes_and_the_decoding(folder: Path) -> None:
    root = _clean(folder)

    def key(**options: object) -> str:
        split = data.load_folder_split(root, "train", store_size=16, memory_budget_mib=0, **options)
        return split.content_digest()

    first = key()
    assert key() == first and key(workers=2) == first
    assert key(draft=False) != first
    path = root / "train" / "a" / "001.jpg"
    path.write_bytes(_jpeg_bytes(_photo(99)))
    assert key() != first


def test_the_draft_decode_stays_within_its_measured_bound() -> None:
    """500x375 JPEGs to 32 and 64 px: the DCT draft vs the full decode (measured on 64 images:
    1.1-1.2 grey levels on average, at most 11; a random ResNet's features 1.1-1.2 % apart)."""
    blobs = [_jpeg_bytes(_photo(seed, 500, 375)) for seed in range(2)]
    pairs = {}
    for size in (32, 64):
        full = torch.stack([data.decode_image_file(b, size, draft=False) for b in blobs])
        draft = torch.stack([data.decode_image_file(b, size) for b in blobs])
        apart = (full.int() - draft.int()).abs()
        assert 0 < apart.float().mean() <= 2.0 and apart.max() <= 16, size
        pairs[size] = full, draft
    model = ResNet(ResNetConfig(width=4)).eval()
    with torch.no_grad():
        a, b = (model.forward_pooled(data.preprocess(x, 32)) for x in pairs[32])
    assert ((a - b).norm(dim=1) / a.norm(dim=1)).max() <= 0.03


def _fake_nvjpeg(refused: set[bytes], calls: list[int]):
    """nvjpeg's contract on the CPU: torchvision's decode_jpeg, refusing `refused` blobs."""

    def decode(blobs: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
        calls.append(len(blobs))
        if any(bytes(b.numpy()) in refused for b in blobs):
            raise RuntimeError("nvjpeg: unsupported")
        return [decode_jpeg(b, mode=ImageReadMode.RGB).to(device) for b in blobs]

    return decode


def test_nvjpeg_refusals_and_other_formats_fall_back_to_the_cpu() -> None:
    plain = _jpeg_bytes(_photo(1))
    cmyk = _jpeg_bytes(_photo(2).convert("CMYK"))
    png = io.BytesIO()
    _photo(3).save(png, "PNG")
    calls: list[int] = []
    blobs = [plain, cmyk, png.getvalue(), b"\xff\xd8\xff broken", b"junk"]
    fake = _fake_nvjpeg({cmyk, b"\xff\xd8\xff broken"}, calls)
    images, errors = decode_jpeg_batch(blobs, 16, "cpu", gpu_decode=fake)
    assert calls == [3, 1, 1, 1]  # the batch, then each JPEG alone
    assert sorted(errors) == [3, 4] and images[3] is None and images[4] is None
    for i, blob in enumerate(blobs[:3]):
        expected = data.decode_image_file(blob, 16, draft=False)
        assert (images[i].int() - expected.int()).abs().max() <= 2, i


def test_gpu_chunks_read_in_workers_and_name_the_unreadable(folder: Path) -> None:
    layout = data.scan_image_folder(folder)
    loader = data.FileLoader(layout.train, 16)
    chunks = list(
        gpu_decoded_chunks(
            loader,
            [[0, 1, 2, 3], [4, 5, 6, 7]],
            "cpu",
            workers=2,
            gpu_decode=_fake_nvjpeg(set(), []),
        )
    )
    assert [c.kept for c in chunks] == [[0, 1, 2], [4, 5, 6]]
    assert [[Path(b.split(" ")[0]).name for b in c.bad] for c in chunks] == [
        ["000.jpg"],
        ["999.jpg"],
    ]
