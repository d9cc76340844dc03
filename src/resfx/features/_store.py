"""The feature store: pooled features of chosen stages on disk, as `.npy` shards with a manifest.

Layout of a store folder:

    STORE/manifest.json                  what the store holds (written last, atomically)
    STORE/<split>/<stage>-<shard>.npy    float32 (rows, width), shard numbered from 00000
    STORE/.journal/                      while a run writes: its settings and finished shards
    STORE/.resfx-store.lock              while a run writes: its pid (flock)

Every `.npy` file is plain numpy (`numpy.load(path, mmap_mode="r")` reads it
without resfx). Shards are written as they are computed and each is recorded in
the journal once all of its stage files are on disk, so a killed run resumed
recomputes at most the shards that were in flight; `manifest.json` appears only
when every shard is there, and a reader never uses a store without it.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from .._atomic import atomic_write_bytes, atomic_write_with, remove_stale_temporaries
from .._lock import LockError, hold_lock
from .._typing import Features, Labels

STORE_FORMAT = "resfx-feature-store"
"""The `format` field of a store's `manifest.json`."""

STORE_VERSION = 1
"""The `version` field of a store's `manifest.json`; readers refuse other versions."""

MANIFEST_NAME = "manifest.json"
JOURNAL_NAME = ".journal"
STORE_LOCK_NAME = ".resfx-store.lock"
_SETTINGS_NAME = "settings.json"
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_SHARD_FILE = re.compile(r"^(?P<stage>[A-Za-z0-9_]+)-(?P<shard>\d{5})\.npy$")


class StoreError(ValueError):
    """A feature store cannot be written or read as asked; the message says why and what to do.

    Example:
        >>> try:
        ...     FeatureStore.open("/nonexistent-store")
        ... except StoreError as error:
        ...     print(str(error)[:40])
        /nonexistent-store holds no feature stor
    """


def shard_file(split: str, stage: str, shard: int) -> str:
    """The path of one shard's `.npy` file, relative to the store folder.

    Example:
        >>> shard_file("train", "layer4", 3)
        'train/layer4-00003.npy'
    """
    return f"{split}/{stage}-{shard:05d}.npy"


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=1) + "\n").encode()


@dataclass(frozen=True)
class ShardRecord:
    """One finished shard of one split: the split positions it kept and its files.

    Args:
        split: the split's name.
        shard: its number in the split, from 0.
        positions: the kept examples' positions in the split, in row order.
        bad: the examples it left out (unreadable), named.
        files: per stage, `{"bytes": size, "sha256": hex}` of its `.npy` file.

    Example:
        >>> ShardRecord("test", 0, (0, 2), ("a.jpg (OSError)",), {}).rows
        2
    """

    split: str
    shard: int
    positions: tuple[int, ...]
    bad: tuple[str, ...]
    files: Mapping[str, Mapping[str, Any]]

    @property
    def rows(self) -> int:
        """Rows this shard holds."""
        return len(self.positions)


def _npy_writer(array: np.ndarray) -> Callable[[BinaryIO], None]:
    """Writes `array`, C-contiguous, as `.npy` to the file it is given."""
    return lambda file: np.save(file, np.ascontiguousarray(array))


def _refuse_non_finite(
    array: np.ndarray, split: str, shard: int, stage: str, positions: Sequence[int]
) -> None:
    """A store holds only finite features: NaN or infinity is a failed forward, not data."""
    finite = np.isfinite(array).all(axis=1)
    if finite.all():
        return
    rows = [int(positions[row]) for row in np.flatnonzero(~finite).tolist()]
    shown = ", ".join(map(str, rows[:5])) + (" ..." if len(rows) > 5 else "")
    raise StoreError(
        f"stage {stage} of shard {shard} of {split} has NaN or infinite features for "
        f"{len(rows)} example(s) (positions {shown}); a store must hold only finite rows. "
        "The forward overflowed (a low precision, or weights that are not the model's) or "
        "the images are damaged: extract again with fp32 precision and checked weights; the "
        "shards finished so far are kept and a rerun resumes after them"
    )


class StoreWriter:
    """Writes one feature store, shard by shard, in a folder it holds alone (see `claim`).

    Args:
        root: the store folder (created if missing).
        settings: everything the features depend on (arch, weights fingerprint,
            preprocessing, stages, each split's content digest, ...): a resumed run
            must match them exactly.
        resume: continue a half-written store in `root` (its settings must match).
        overwrite: replace a store (finished or not) in `root`; only its own files go.
        check: called with the writer once the folder is claimed and checked, before
            anything is written (e.g. to refuse a disk without room for the rest).

    Example:
        >>> import tempfile
        >>> writer = StoreWriter(tempfile.mkdtemp(), {"stages": ["pooled"]})
        >>> with writer.claim():
        ...     record = writer.write_shard("test", 0, {"pooled": np.ones((2, 3), np.float32)},
        ...                                 positions=[0, 1], bad=[])
        >>> record.files["pooled"]["bytes"]
        152
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        settings: Mapping[str, Any],
        *,
        resume: bool = False,
        overwrite: bool = False,
        check: Callable[["StoreWriter"], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.settings = dict(settings)
        self.resume = resume
        self.overwrite = overwrite
        self.check = check

    @property
    def journal(self) -> Path:
        """The folder of the run's settings and finished shards."""
        return self.root / JOURNAL_NAME

    @contextlib.contextmanager
    def claim(self) -> Iterator["StoreWriter"]:
        """Hold the folder's lock while the block runs, having checked what the folder holds.

        Yields:
            This writer.

        Raises:
            StoreError: another run holds the folder (named by pid), it holds a finished
                store (without `overwrite`), a half-written one (without `resume` or
                `overwrite`), or one whose settings differ from these (with `resume`).
        """
        root = self.root
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} is not a folder; pass a folder for the feature store")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"the feature store folder {root} cannot be created ({error.strerror or error}); "
                f"pass a folder you can write to"
            ) from error
        with contextlib.ExitStack() as held:
            lock = hold_lock(
                root / STORE_LOCK_NAME,
                what=f"the feature store {root}",
                remedy="pass another folder",
            )
            try:
                held.enter_context(lock)
            except LockError as error:
                raise StoreError(str(error)) from None
            self.prepare()
            yield self

    def prepare(self) -> None:
        """Check the folder's contents against `resume`/`overwrite` and record the settings."""
        finished = (self.root / MANIFEST_NAME).exists()
        started = (self.journal / _SETTINGS_NAME).exists()
        if self.overwrite:
            self._remove_own_files()
        elif finished and not self.resume:
            raise StoreError(
                f"{self.root} already holds a finished feature store; pass overwrite=True "
                f"(--overwrite) to replace it, or another folder"
            )
        elif started and not self.resume:
            done = len(list(self.journal.glob("*-*.json")))
            raise StoreError(
                f"{self.root} holds a half-written feature store ({done} shard(s) done); pass "
                f"resume=True (--resume) to finish it or overwrite=True (--overwrite) to start "
                f"again"
            )
        elif self.resume and (started or finished):
            self._check_same_settings(finished)
        else:
            self._refuse_foreign_shards()
        if finished and self.resume:
            return
        if self.check is not None:
            self.check(self)
        self.journal.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.journal)
        atomic_write_bytes(self.journal / _SETTINGS_NAME, _json_bytes(self.settings))

    def _check_same_settings(self, finished: bool) -> None:
        if finished:
            recorded = json.loads((self.root / MANIFEST_NAME).read_text())["settings"]
        else:
            recorded = json.loads((self.journal / _SETTINGS_NAME).read_text())
        differ = sorted(
            key
            for key in set(recorded) | set(self.settings)
            if recorded.get(key) != self.settings.get(key)
        )
        if differ:
            details = "; ".join(
                f"{key}: stored {_short(recorded.get(key))}, now {_short(self.settings.get(key))}"
                for key in differ
            )
            raise StoreError(
                f"cannot resume the feature store in {self.root}: its settings differ ({details}); "
                f"run with the same settings, or pass overwrite=True (--overwrite) to start again"
            )

    def _refuse_foreign_shards(self) -> None:
        """Files named like shards that no journal entry records: someone else's, kept."""
        recorded = {
            shard_file(record.split, stage, record.shard)
            for record in self.done().values()
            for stage in record.files
        }
        for split in sorted(str(name) for name in self.settings.get("data", {})):
            folder = self.root / split
            if _SPLIT_NAME.match(split) and folder.is_dir():
                foreign = sorted(
                    p.name
                    for p in folder.iterdir()
                    if _SHARD_FILE.match(p.name) and f"{split}/{p.name}" not in recorded
                )
                if foreign:
                    raise StoreError(
                        f"{folder} holds {len(foreign)} file(s) named like feature-store shards "
                        f"({', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}) that no "
                        f"store in {self.root} records; writing would replace them. Pass an "
                        f"empty or new folder, or overwrite=True (--overwrite) to replace them"
                    )

    def _remove_own_files(self) -> None:
        """Delete a previous store's files (manifest first, so no half-replaced store looks done).

        Only shard files (`<stage>-<shard>.npy`) in the folders of the splits that
        the previous store or this one names are removed; nothing else in `root`.
        """
        splits = set(self.settings.get("data", {}))
        for recorded in (self.root / MANIFEST_NAME, self.journal / _SETTINGS_NAME):
            try:
                document = json.loads(recorded.read_text())
            except (OSError, ValueError):
                continue
            splits |= set(document.get("splits", {})) | set(document.get("data", {}))
        (self.root / MANIFEST_NAME).unlink(missing_ok=True)
        if self.journal.is_dir():
            shutil.rmtree(self.journal)
        for split in sorted(name for name in splits if _SPLIT_NAME.match(str(name))):
            folder = self.root / split
            if folder.is_dir() and not folder.is_symlink():
                for path in folder.iterdir():
                    if _SHARD_FILE.match(path.name) and path.is_file():
                        path.unlink()
                remove_stale_temporaries(folder)

    @property
    def finished(self) -> bool:
        """Whether the folder holds a finished store (its manifest)."""
        return (self.root / MANIFEST_NAME).exists()

    def done(self, *, verify: bool = False) -> dict[tuple[str, int], ShardRecord]:
        """The shards a previous run of these settings finished, whose files are still whole.

        A journal entry that cannot be read, or whose files are missing or of another
        size (or, with `verify`, another SHA-256), is left out: that shard is computed again.

        Args:
            verify: also check each file's SHA-256 (what a resumed run does once).

        Returns:
            The finished shards by `(split, shard)`.

        Example:
            >>> import tempfile
            >>> writer = StoreWriter(tempfile.mkdtemp(), {})
            >>> with writer.claim():
            ...     _ = writer.write_shard("test", 4, {"x": np.ones((1, 1), np.float32)}, [7], [])
            ...     sorted(writer.done(verify=True))
            [('test', 4)]
        """
        records = {}
        for path in sorted(self.journal.glob("*.json")):
            if path.name == _SETTINGS_NAME:
                continue
            try:
                entry = json.loads(path.read_text())
                record = ShardRecord(
                    entry["split"],
                    entry["shard"],
                    tuple(entry["positions"]),
                    tuple(entry["bad"]),
                    entry["files"],
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if all(self._whole(record, stage, verify) for stage in record.files):
                records[(record.split, record.shard)] = record
        return records

    def _whole(self, record: ShardRecord, stage: str, verify: bool) -> bool:
        path = self.root / shard_file(record.split, stage, record.shard)
        described = record.files[stage]
        if not path.is_file() or path.stat().st_size != described["bytes"]:
            return False
        return not verify or _sha256_of(path) == described["sha256"]

    def write_shard(
        self,
        split: str,
        shard: int,
        features: Mapping[str, np.ndarray],
        positions: Sequence[int],
        bad: Sequence[str],
    ) -> ShardRecord:
        """Write one shard's `.npy` file per stage, then record the shard in the journal.

        Args:
            split: the split's name.
            shard: the shard's number in the split.
            features: per stage, float32 `(rows, width)`.
            positions: the kept examples' positions in the split, one per row.
            bad: the examples of this shard left out, named.

        Returns:
            The shard's record.

        Raises:
            ValueError: an array that is not float32 with one row per position.
            StoreError: a row holds NaN or infinity (nothing of this shard is written).
        """
        files: dict[str, dict[str, Any]] = {}
        for stage, array in features.items():
            if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != len(positions):
                raise ValueError(
                    f"shard {shard} of {split}, stage {stage}: expected float32 "
                    f"({len(positions)}, width), got {array.dtype} {array.shape}"
                )
            _refuse_non_finite(array, split, shard, stage, positions)
            path = atomic_write_with(
                self.root / shard_file(split, stage, shard),
                _npy_writer(array),
            )
            files[stage] = {"bytes": path.stat().st_size, "sha256": _sha256_of(path)}
        record = ShardRecord(split, shard, tuple(int(p) for p in positions), tuple(bad), files)
        entry = {
            "split": split,
            "shard": shard,
            "positions": list(record.positions),
            "bad": list(record.bad),
            "files": files,
        }
        atomic_write_bytes(self.journal / f"{split}-{shard:05d}.json", _json_bytes(entry))
        return record

    def finish(self, manifest: Mapping[str, Any]) -> Path:
        """Write `manifest.json` (atomically, last) and remove the journal.

        Returns:
            The manifest's path.
        """
        path = atomic_write_bytes(self.root / MANIFEST_NAME, _json_bytes(manifest))
        shutil.rmtree(self.journal, ignore_errors=True)
        return path


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class _Shard:
    start: int
    stop: int
    path: Path
    sha256: str


class StoreFeatures:
    """One split and stage of a feature store as a `FeatureSource`: rows read from memory maps.

    Only the rows asked for are read. Each shard file's SHA-256 is checked the
    first time a row of it is read (once per process); a file that does not match,
    or whose shape is not the manifest's, is an error naming it.

    Args:
        shards: `(start, stop, path, sha256)` of each file, in row order.
        width: features per row.
        labels: every row's class.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
        >>> np.save(path, np.arange(6, dtype=np.float32).reshape(3, 2))
        >>> source = StoreFeatures([(0, 3, path, _sha256_of(path))], 2, torch.tensor([0, 1, 0]))
        >>> source.rows(torch.tensor([2, 0])).tolist(), len(source)
        ([[4.0, 5.0], [0.0, 1.0]], 3)
    """

    def __init__(
        self, shards: Sequence[tuple[int, int, Path, str]], width: int, labels: Labels
    ) -> None:
        self._shards = [_Shard(*shard) for shard in shards]
        self._starts = np.array([shard.start for shard in self._shards], dtype=np.int64)
        self._width = width
        self._labels = labels
        self._maps: dict[int, np.ndarray] = {}

    @property
    def labels(self) -> Labels:
        """Every row's class, int64 on the CPU."""
        return self._labels

    @property
    def width(self) -> int:
        """Features per row."""
        return self._width

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    def _map(self, number: int) -> np.ndarray:
        found = self._maps.get(number)
        if found is None:
            shard = self._shards[number]
            _check_file(shard.path, shard.sha256)
            try:
                found = np.load(shard.path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as error:
                raise StoreError(_damaged(shard.path, f"unreadable as .npy ({error})")) from error
            expected = (shard.stop - shard.start, self._width)
            if found.dtype != np.float32 or found.shape != expected:
                raise StoreError(
                    _damaged(shard.path, f"holds {found.dtype} {found.shape}, not {expected}")
                )
            self._maps[number] = found
        return found

    def rows(self, index: Int[Tensor, " b"]) -> Features:
        """The rows at `index` (positions in this split), float32 on the CPU.

        Raises:
            IndexError: a position outside `[0, len(self))`.
            StoreError: a shard file that is damaged.

        Example:
            >>> source = StoreFeatures([], 3, torch.zeros(0, dtype=torch.int64))
            >>> source.rows(torch.zeros(0, dtype=torch.int64)).shape
            torch.Size([0, 3])
        """
        wanted = index.detach().cpu().numpy().astype(np.int64, copy=False)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise IndexError(
                f"rows {wanted.min()}..{wanted.max()} asked of a source of {len(self)} rows"
            )
        out = np.empty((wanted.size, self._width), dtype=np.float32)
        owners = np.searchsorted(self._starts, wanted, side="right") - 1
        for number in np.unique(owners):
            chosen = owners == number
            out[chosen] = self._map(int(number))[wanted[chosen] - self._starts[number]]
        return torch.from_numpy(out)

    def verify(self) -> None:
        """Check every shard file's SHA-256 and shape now.

        Raises:
            StoreError: a damaged file, named.
        """
        for number in range(len(self._shards)):
            self._map(number)


def _damaged(path: Path, what: str) -> str:
    return (
        f"feature store file {path} is damaged: {what}; extract the store again (resfx "
        f"extract ... --overwrite) or restore the file"
    )


def _check_file(path: Path, sha256: str) -> None:
    if not path.is_file():
        raise StoreError(_damaged(path, "it is missing"))
    if _sha256_of(path) != sha256:
        raise StoreError(_damaged(path, "its SHA-256 differs from the manifest's"))


class FeatureStore:
    """A finished feature store, read: its manifest, and each split and stage's rows.

    Open one with `FeatureStore.open(path)`. Every shard file's size is checked
    when the store is opened; its SHA-256 when it is first read (or all at once
    by `verify()`).

    Args:
        root: the store folder.
        manifest: its parsed `manifest.json`.

    Example:
        >>> import tempfile, torch
        >>> from resfx.features import extract
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.rand(5, 3, 16, 16), torch.tensor([0, 1, 0, 1, 1]))
        >>> from resfx.models import ResNet, ResNetConfig
        >>> store = extract(data, tempfile.mkdtemp(), arch=ResNet(ResNetConfig(width=4)).eval(),
        ...                 stages=["layer1", "pooled"], image_size=16)
        >>> store.splits, store.stages, store.load("train", "pooled").shape
        (('train',), ('layer1', 'pooled'), torch.Size([5, 32]))
    """

    def __init__(self, root: Path, manifest: Mapping[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self._sources: dict[tuple[str, str], StoreFeatures] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "FeatureStore":
        """Open the store in `path`, checking its manifest and the sizes of its files.

        Args:
            path: the store folder.

        Returns:
            The store.

        Raises:
            StoreError: no manifest (not a store, or one still being written), another
                format or version, or a shard file missing or of the wrong size.
        """
        root = Path(path)
        manifest_path = root / MANIFEST_NAME
        if not manifest_path.is_file():
            half = (root / JOURNAL_NAME).is_dir()
            raise StoreError(
                f"{root} holds a half-written feature store (no {MANIFEST_NAME} yet): finish it "
                f"with resfx extract ... --resume"
                if half
                else f"{root} holds no feature store ({MANIFEST_NAME} is missing); write one with "
                f"resfx extract"
            )
        try:
            manifest = json.loads(manifest_path.read_text())
            found = (manifest["format"], manifest["version"])
        except (ValueError, KeyError, TypeError) as error:
            raise StoreError(_damaged(manifest_path, f"not a store manifest ({error})")) from error
        if found != (STORE_FORMAT, STORE_VERSION):
            raise StoreError(
                f"{manifest_path} is {found[0]} version {found[1]}; this resfx reads "
                f"{STORE_FORMAT} version {STORE_VERSION}"
            )
        store = cls(root, manifest)
        try:
            problem = _manifest_problem(root, manifest)
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as error:
            problem = f"not a store manifest ({type(error).__name__}: {error})"
        if problem is not None:
            raise StoreError(_damaged(manifest_path, problem))
        for split in store.splits:
            for stage in store.stages:
                for shard in manifest["splits"][split]["stages"][stage]:
                    file = root / shard["file"]
                    size = file.stat().st_size if file.is_file() else None
                    if size != shard["bytes"]:
                        what = (
                            "it is missing"
                            if size is None
                            else f"{size} bytes, not {shard['bytes']}"
                        )
                        raise StoreError(_damaged(file, what))
        return store

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits it holds, e.g. `("train", "test")`."""
        return tuple(self.manifest["splits"])

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages it holds, in `resfx.models.FEATURE_STAGES` order."""
        return tuple(self.manifest["stages"])

    @property
    def widths(self) -> dict[str, int]:
        """Features per row of each stage."""
        return dict(self.manifest["stages"])

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names (a label indexes them); empty when the source had none."""
        return tuple(self.manifest["classes"])

    def _split(self, split: str) -> Mapping[str, Any]:
        if split not in self.manifest["splits"]:
            raise KeyError(f"the store {self.root} has no split {split!r}; it has {self.splits}")
        return self.manifest["splits"][split]

    def labels(self, split: str) -> Labels:
        """Every row's class in `split`, int64.

        Raises:
            KeyError: no such split.
        """
        return torch.tensor(self._split(split)["labels"], dtype=torch.int64)

    def paths(self, split: str) -> list[str | int]:
        """Each row's image: its path relative to the data folder, or its index in the dataset.

        Raises:
            KeyError: no such split.
        """
        return list(self._split(split)["paths"])

    def source(self, split: str, stage: str) -> StoreFeatures:
        """The rows of one split and stage, memory-mapped (a `FeatureSource`).

        Raises:
            KeyError: no such split or stage.
        """
        key = (split, stage)
        if key not in self._sources:
            entry = self._split(split)
            if stage not in self.manifest["stages"]:
                raise KeyError(
                    f"the store {self.root} has no stage {stage!r}; it has {self.stages}"
                )
            shards = [
                (s["rows"][0], s["rows"][1], self.root / s["file"], s["sha256"])
                for s in entry["stages"][stage]
            ]
            self._sources[key] = StoreFeatures(shards, self.widths[stage], self.labels(split))
        return self._sources[key]

    def load(self, split: str, stage: str) -> Features:
        """Every row of one split and stage in memory (for sets that fit).

        Raises:
            KeyError: no such split or stage.
            StoreError: a damaged shard file.
        """
        source = self.source(split, stage)
        return source.rows(torch.arange(len(source)))

    def verify(self) -> None:
        """Check every file's SHA-256 and shape against the manifest now.

        Raises:
            StoreError: a damaged file, named.
        """
        for split in self.splits:
            for stage in self.stages:
                self.source(split, stage).verify()


def _manifest_problem(root: Path, manifest: Mapping[str, Any]) -> str | None:
    """What is inconsistent in a manifest's splits (row ranges, labels, files), or `None`."""
    classes = len(manifest["classes"])
    for split, described in manifest["splits"].items():
        rows = int(described["rows"])
        labels = described["labels"]
        if len(labels) != rows or len(described["paths"]) != rows:
            return (
                f"split {split!r} has {rows} rows but {len(labels)} labels and "
                f"{len(described['paths'])} paths"
            )
        if classes and any(not 0 <= int(label) < classes for label in labels):
            return f"split {split!r} has labels outside [0, {classes})"
        for stage in manifest["stages"]:
            stop = 0
            for shard in described["stages"][stage]:
                start, end = (int(value) for value in shard["rows"])
                if start != stop or end < start:
                    return f"split {split!r}, stage {stage!r}: row ranges do not tile 0..{rows}"
                stop = end
                file = Path(shard["file"])
                if file.is_absolute() or ".." in file.parts:
                    return f"shard file {shard['file']!r} lies outside the store {root}"
            if stop != rows:
                return f"split {split!r}, stage {stage!r}: row ranges do not tile 0..{rows}"
    return None


def assemble_manifest(
    header: Mapping[str, Any],
    splits: Mapping[str, Sequence[ShardRecord]],
    describe: Mapping[str, Any],
) -> dict[str, Any]:
    """The manifest of a store from its header and every split's finished shards, in order.

    Args:
        header: format-independent fields (arch, weights, preprocessing, stages, classes,
            settings).
        splits: each split's shard records, shard 0 first.
        describe: per split, `(paths, labels, skipped)`: each split position's image name
            and label, and the images left out before extraction (unreadable headers).

    Returns:
        The manifest: row ranges, files, paths, labels and skipped images per split.
    """
    manifest: dict[str, Any] = {"format": STORE_FORMAT, "version": STORE_VERSION, **header}
    manifest["splits"] = {}
    for split, records in splits.items():
        paths, labels, unreadable = describe[split]
        rows = 0
        stages: dict[str, list[dict[str, Any]]] = {stage: [] for stage in header["stages"]}
        for record in records:
            for stage in stages:
                stages[stage].append(
                    {
                        "file": shard_file(split, stage, record.shard),
                        "rows": [rows, rows + record.rows],
                        **record.files[stage],
                    }
                )
            rows += record.rows
        positions = [p for record in records for p in record.positions]
        manifest["splits"][split] = {
            "rows": rows,
            "paths": [paths[p] for p in positions],
            "labels": [labels[p] for p in positions],
            "skipped": [*unreadable, *(name for record in records for name in record.bad)],
            "stages": stages,
        }
    return manifest


def iter_shards(total: int, shard_size: int) -> Iterator[range]:
    """The split positions of each shard: `range(k * shard_size, (k + 1) * shard_size)`, clipped.

    Example:
        >>> [list(r) for r in iter_shards(5, 2)]
        [[0, 1], [2, 3], [4]]
    """
    for start in range(0, total, shard_size):
        yield range(start, min(start + shard_size, total))
