"""Image folders in torchvision's ImageFolder layout: `train/` and `test/` (or `val/`), or one
folder split by a seeded fraction. Class names come from the sub-folders, sorted."""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from ._decode import BadImageError, BadImagePolicy, describe_store, to_uint8_image
from ._device import DEFAULT_MEMORY_BUDGET_MIB, ImageSplit, StreamedSplit, materialise
from ._files import FileLoader, files_digest, readable_header, regular_file
from ._subset import SubsetKind, choose_subset, resolve_subset, warn_missing_classes

_TEST_FOLDERS = ("test", "val")


class FolderLayoutError(ValueError):
    """A folder is not in the ImageFolder layout; the message says what was found and expected.

    Example:
        >>> import tempfile
        >>> try:
        ...     scan_image_folder(tempfile.mkdtemp())
        ... except FolderLayoutError as error:
        ...     print(str(error)[:30])
        no class folders with images i
    """


@dataclass(frozen=True)
class FolderLayout:
    """An image folder's classes and files, per split.

    Args:
        root: the folder.
        classes: class names (sub-folder names), sorted; a label is an index into them.
        train: `(path, label)` of every training image, in ImageFolder's order.
        test: the same for the test images.
        split_by: `"folders"` (train/ and test/ or val/) or `"fraction"` (one folder, split).

    Example:
        >>> FolderLayout(Path("x"), ("cat",), (), (), "folders").n_classes
        1
    """

    root: Path
    classes: tuple[str, ...]
    train: tuple[tuple[str, int], ...]
    test: tuple[tuple[str, int], ...]
    split_by: str

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def files(self, split: str) -> tuple[tuple[str, int], ...]:
        """The `(path, label)` pairs of `"train"` or `"test"`.

        Raises:
            ValueError: unknown split.

        Example:
            >>> FolderLayout(Path("x"), ("a",), (("x/a/1.png", 0),), (), "folders").files("train")
            (('x/a/1.png', 0),)
        """
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        return self.train if split == "train" else self.test


def not_a_folder(path: str | Path) -> str | None:
    """Why `path` is not a folder (it does not exist, is a file, ...), or `None` when it is one.

    Example:
        >>> not_a_folder("/no/such/place")
        '/no/such/place does not exist'
        >>> not_a_folder("/") is None
        True
    """
    path = Path(path)
    if path.is_dir():
        return None
    if not os.path.lexists(path):
        return f"{path} does not exist"
    if path.is_file():
        return f"{path} is a file, not a folder"
    return f"{path} is not a folder"


def _class_files(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    try:
        classes, class_to_idx = find_classes(str(folder))
        samples = make_dataset(
            str(folder), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True
        )
    except OSError as error:
        raise FolderLayoutError(
            f"no class folders with images in {folder} ({error}); expected "
            f"<class>/<image> files with extensions {IMG_EXTENSIONS}"
        ) from error
    # Refused, not skipped: a label is the class folder's place in sorted order, so leaving
    # one out would renumber every class after it (and differ from a test folder that has it).
    empty = sorted(set(classes) - {classes[label] for _, label in samples})
    if empty:
        raise FolderLayoutError(
            f"{len(empty)} of the {len(classes)} class folders in {folder} have no images: "
            f"{', '.join(empty)}; add images (extensions {', '.join(IMG_EXTENSIONS)}) or move "
            f"those folders out (a label is a class folder's place in sorted order, so resfx "
            f"does not skip one)"
        )
    return classes, samples


def scan_image_folder(
    root: str | Path, *, test_fraction: float = 0.2, seed: int = 0
) -> FolderLayout:
    """Find an image folder's classes and files (no image is opened).

    With `root/train` and `root/test` (or `root/val`), those are the splits and
    both must have the same class folders. Otherwise `root` itself holds the
    class folders and each class is split: a seeded `test_fraction` of its
    images (at least one when it has two or more) goes to the test split.

    Args:
        root: the folder.
        test_fraction: share of each class for testing when there is one folder.
        seed: seeds that split.

    Returns:
        The layout.

    Raises:
        FolderLayoutError: not a folder, no class folders with images, a class
            folder without images (named), classes that differ between train and
            test, or a fraction outside (0, 1).

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for split, name in [("train", "a"), ("train", "b"), ("test", "a"), ("test", "b")]:
        ...     (root / split / name).mkdir(parents=True)
        ...     Image.new("RGB", (8, 8)).save(root / split / name / "0.png")
        >>> layout = scan_image_folder(root)
        >>> layout.classes, len(layout.train), layout.split_by
        (('a', 'b'), 2, 'folders')
    """
    root = Path(root)
    problem = not_a_folder(root)
    if problem:
        raise FolderLayoutError(problem)
    test_folder = next((root / n for n in _TEST_FOLDERS if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test_folder is not None:
        classes, train = _class_files(root / "train")
        test_classes, test = _class_files(test_folder)
        if test_classes != classes:
            raise FolderLayoutError(
                f"{root / 'train'} has classes {classes} but {test_folder} has {test_classes}; "
                f"give both the same class folders"
            )
        return FolderLayout(root, tuple(classes), tuple(train), tuple(test), "folders")
    if not 0 < test_fraction < 1:
        raise FolderLayoutError(f"test_fraction must be in (0, 1), got {test_fraction}")
    classes, samples = _class_files(root)
    generator = torch.Generator().manual_seed(seed)
    test_positions: set[int] = set()
    for label in range(len(classes)):
        members = [i for i, (_, y) in enumerate(samples) if y == label]
        count = round(test_fraction * len(members))
        count = max(count, 1) if len(members) > 1 else 0
        order = torch.randperm(len(members), generator=generator)[:count]
        test_positions.update(members[i] for i in order.tolist())
    return FolderLayout(
        root,
        tuple(classes),
        tuple(s for i, s in enumerate(samples) if i not in test_positions),
        tuple(s for i, s in enumerate(samples) if i in test_positions),
        "fraction",
    )


def _open_image(path: str) -> Image.Image:
    """`Image.open` on a regular file only: opening a FIFO blocks until something writes to it."""
    return Image.open(regular_file(path))


def read_image_file(path: str) -> torch.Tensor:
    """Decode one image file with PIL (as torchvision's ImageFolder does) to uint8 RGB `(3, h, w)`.

    Only regular files are opened (a FIFO named `x.jpg` would block the read forever).

    Raises:
        OSError: PIL cannot read it (missing, truncated, not an image), or it is not a
            regular file.

    Example:
        >>> import tempfile
        >>> p = tempfile.mkdtemp() + "/x.png"; Image.new("L", (5, 3)).save(p)
        >>> read_image_file(p).shape
        torch.Size([3, 3, 5])
    """
    with _open_image(path) as image:
        return to_uint8_image(image, path)


def _store_size_of(paths: list[str], fallback: int) -> int:
    """The images' own side when every one is the same square size (from headers), else `fallback`."""
    sizes = set()
    for path in paths:
        try:
            with _open_image(path) as image:
                sizes.add(image.size)
        except (OSError, SyntaxError):
            continue  # reported when decoded
        if len(sizes) > 1:
            return fallback
    if len(sizes) == 1:
        width, height = sizes.pop()
        if width == height:
            return width
    return fallback


def load_folder_split(
    root: str | Path,
    split: str,
    size: int | None = None,
    *,
    subset: SubsetKind = "auto",
    seed: int = 0,
    test_fraction: float = 0.2,
    store_size: int | None = None,
    fallback_store_size: int = 224,
    memory_budget_mib: int = DEFAULT_MEMORY_BUDGET_MIB,
    on_bad_image: BadImagePolicy = "error",
    workers: int = 0,
    draft: bool = True,
) -> ImageSplit | StreamedSplit:
    """One split of an image folder as uint8 images, decoded once (or streamed over the budget).

    Files are decoded by `decode_image_file` (PIL; JPEGs DCT-downscaled first
    with `draft`) in `workers` processes. Under the budget each image is decoded
    once, here. Over it nothing is decoded here: the split's key hashes the
    files' bytes (`files_digest`) and each pass decodes each image once.

    With `on_bad_image="skip"`, files whose header PIL does not recognise (not
    an image, empty, unreadable) are dropped *before* `size` images are chosen,
    so `size` counts readable files; a file that fails only when decoded
    (e.g. truncated) is left out then, and the split holds fewer.

    Args:
        root: the folder (see `scan_image_folder`).
        split: `"train"` or `"test"`.
        size: how many images; `None` takes them all.
        subset: `"stratified"` (`"auto"` means it here), `"first"` (ImageFolder order:
            classes sorted, then files) or `"random"` (see `choose_subset`); a subset that
            misses classes of the split is warned about.
        seed: seeds the subset and the one-folder split.
        test_fraction: test share of each class when `root` has no train/test folders.
        store_size: side the images are stored at; `None` keeps their own size
            when all are one square size, else `fallback_store_size`.
        fallback_store_size: see `store_size` (`resfx train` passes `--image-size`).
        memory_budget_mib: the most MiB of uint8 images held at once; above it
            the split is streamed from the files every pass.
        on_bad_image: `"error"` (stop, naming every unreadable file) or `"skip"`
            (leave them out; `split.skipped` counts them, `split.skipped_paths`
            names them, and they are logged).
        workers: processes decoding (0: this process).
        draft: allow the DCT-downscaled JPEG decode (see `describe_store`).

    Returns:
        The split; its `dataset` is `"folder:<absolute path>"`, `classes` the class names.

    Raises:
        FolderLayoutError: the folder is not in the layout.
        ValueError: `size` larger than the split.
        resfx.data.BadImageError: unreadable files with `on_bad_image="error"`.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for k, name in enumerate(["cat", "dog", "cat"]):
        ...     (root / name).mkdir(exist_ok=True)
        ...     Image.new("RGB", (10, 10), (k, 0, 0)).save(root / name / f"{k}.png")
        >>> s = load_folder_split(root, "train")
        >>> s.images.shape, s.classes
        (torch.Size([2, 3, 10, 10]), ('cat', 'dog'))
    """
    layout = scan_image_folder(root, test_fraction=test_fraction, seed=seed)
    every = layout.files(split)
    if not every:
        raise FolderLayoutError(f"the {split} split of {layout.root} has no images")
    unreadable: list[str] = []
    files = every
    if on_bad_image == "skip":
        with ThreadPoolExecutor(max(1, workers)) as pool:
            readable = list(pool.map(readable_header, [path for path, _ in every], chunksize=64))
        files = tuple(f for f, ok in zip(every, readable, strict=True) if ok)
        unreadable = [path for (path, _), ok in zip(every, readable, strict=True) if not ok]
    labels = [label for _, label in files]
    if size is not None and size > len(files):
        dropped = f" readable ({len(unreadable)} unreadable left out)" if unreadable else ""
        raise ValueError(
            f"{split}set_size={size} is larger than the {split} split of {layout.root} "
            f"({len(files)} images{dropped}); pass at most {len(files)}"
        )
    if not files:
        raise BadImageError(f"none of the {len(every)} images of {layout.root} can be read")
    subset = resolve_subset(subset, shuffled=False)
    positions = choose_subset(labels, size or len(files), subset, seed=seed)
    warn_missing_classes(
        labels,
        [labels[i] for i in positions],
        where=f"the {split} split of {layout.root}",
        how=subset,
        classes=layout.classes,
    )
    paths = [files[i][0] for i in positions]
    side = store_size or _store_size_of(paths, fallback_store_size)
    loader = FileLoader(files, side, draft=draft)
    description = describe_store(side, "pil-draft" if draft else "pil")
    return materialise(
        loader,
        positions,
        dataset=f"folder:{layout.root.resolve()}",
        split=split,
        store_size=side,
        describe=loader.describe,
        memory_budget_mib=memory_budget_mib,
        on_bad_image=on_bad_image,
        classes=layout.classes,
        workers=workers,
        source_digest=lambda: files_digest(
            [files[i] for i in positions], layout.root, description, threads=max(1, workers)
        ),
        labels=[labels[i] for i in positions],
        skipped_paths=unreadable,
    )
