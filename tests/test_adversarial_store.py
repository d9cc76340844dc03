"""Damaged stores, resumes over damaged shards and bad rows: found by the mutation and adversarial pass."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from resfx.features import FeatureStore, StoreError, TensorFeatures, extract
from resfx.features._store import StoreWriter, assemble_manifest, shard_file
from resfx.probe import probe_features
from test_store import SETTINGS, write_folder
from test_store import _model as tiny_model


def _tiny_store(root: Path) -> Path:
    """A finished store of 4 train rows in two shards of stage `x`, written without a model."""
    writer = StoreWriter(root, {})
    with writer.claim():
        records = [
            writer.write_shard(
                "train", n, {"x": np.full((2, 3), n, np.float32)}, [2 * n, 2 * n + 1], []
            )
            for n in range(2)
        ]
        describe = {"train": ([f"{i}.png" for i in range(4)], [0, 1, 0, 1], [])}
        header = {"stages": {"x": 3}, "classes": ["a", "b"]}
        writer.finish(assemble_manifest(header, {"train": records}, describe))
    return root


def _edit(root: Path, change) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    change(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_a_journal_entry_whose_shard_file_is_missing_short_or_altered_is_computed_again(
    tmp_path: Path,
) -> None:
    writer = StoreWriter(tmp_path / "s", {})
    with writer.claim():
        for n in range(4):
            writer.write_shard(
                "train", n, {"x": np.full((2, 3), n, np.float32)}, [2 * n, 2 * n + 1], []
            )
        (tmp_path / "s" / shard_file("train", "x", 1)).unlink()
        short = tmp_path / "s" / shard_file("train", "x", 2)
        short.write_bytes(short.read_bytes()[:-4])
        altered = tmp_path / "s" / shard_file("train", "x", 3)
        altered.write_bytes(altered.read_bytes()[:-4] + b"\x00\x00\x80\x7f")
        assert sorted(writer.done()) == [("train", 0), ("train", 3)]
        assert sorted(writer.done(verify=True)) == [("train", 0)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(version=2), "version 2; this resfx reads"),
        (lambda m: m.pop("splits"), "not a store manifest"),
        (lambda m: m["splits"]["train"]["labels"].pop(), "4 rows but 3 labels"),
        (lambda m: m["splits"]["train"]["labels"].__setitem__(0, 7), r"labels outside \[0, 2\)"),
        (lambda m: m["splits"]["train"]["stages"]["x"][1].update(rows=[1, 4]), "do not tile"),
        (lambda m: m["splits"]["train"]["stages"]["x"][0].update(file="/etc/hosts"), "outside"),
    ],
)
def test_a_manifest_that_disagrees_with_itself_is_refused_when_opened(
    tmp_path: Path,
    change,
    message: str,
) -> None:
    root = _tiny_store(tmp_path / "s")
    assert FeatureStore.open(root).load("train", "x")[:, 0].tolist() == [0, 0, 1, 1]
    _edit(root, change)
    with pytest.raises(StoreError, match=message):
        FeatureStore.open(root)


def test_probes_refuse_nan_rows() -> None:
    labels = torch.arange(8) % 2
    rows = torch.nn.functional.one_hot(labels, 3).float()
    broken = rows.clone()
    broken[5, 1] = float("nan")
    with pytest.raises(
        ValueError, match=r"1 training feature rows hold NaN or infinity \(first at row 5\)"
    ):
        probe_features(TensorFeatures(broken, labels), TensorFeatures(rows, labels))


def test_a_resume_recomputes_a_journalled_shard_whose_bytes_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_folder(tmp_path / "images", train=3, test=1)
    out = tmp_path / "store"

    def killed_before_the_manifest(self: StoreWriter, manifest: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(StoreWriter, "finish", killed_before_the_manifest)
        with pytest.raises(KeyboardInterrupt):
            extract(folder, out, arch=tiny_model(), **SETTINGS)
    shard = out / shard_file("train", "pooled", 0)
    shard.write_bytes(shard.read_bytes()[:-4] + b"\x00\x00\xc0\x7f")  # same size, a NaN
    store = extract(folder, out, arch=tiny_model(), resume=True, **SETTINGS)
    store.verify()
    assert bool(torch.isfinite(store.load("train", "pooled")).all())


def test_every_image_a_shard_skips_is_listed_not_only_its_last_batch_s(tmp_path: Path) -> None:
    import io

    from PIL import Image

    folder = write_folder(tmp_path / "images", train=2, test=1)
    encoded = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (48, 48, 3)).astype(np.uint8)
    Image.fromarray(noise).save(encoded, "JPEG")
    for name in ("0z.jpg", "1z.jpg"):  # one in each batch of shard 0: header whole, pixels cut
        (folder / "train" / "cat" / name).write_bytes(encoded.getvalue()[:-200])
    store = extract(folder, tmp_path / "s", arch=tiny_model(), on_bad_image="skip", **SETTINGS)
    skipped = store.manifest["splits"]["train"]["skipped"]
    assert sorted(Path(entry.split(" ")[0]).name for entry in skipped) == ["0z.jpg", "1z.jpg"]
