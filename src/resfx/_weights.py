"""Checkpoints in, strictly: torchvision `.pth`, timm `.safetensors`, hashes, offline errors."""

import hashlib
import os
import re
import urllib.error
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch import nn as tnn


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model; the message names every one.

    Example:
        >>> import torch
        >>> try:
        ...     check_state_dict(torch.nn.Linear(1, 1), {})
        ... except CheckpointMismatchError as error:
        ...     print(error)
        checkpoint does not match Linear: missing keys ['weight', 'bias'] (2 in all)
    """


class ChecksumError(RuntimeError):
    """A downloaded or cached weights file does not have the SHA-256 its name promises.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"")
        >>> try:
        ...     verify_file_hash(p, "ffff")
        ... except ChecksumError:
        ...     print("refused")
        refused
    """


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (typically: offline).

    The message names the URL, the cache path to place the file at, and the
    `weights=<path>` alternative.

    Example:
        >>> issubclass(WeightsUnavailableError, RuntimeError)
        True
    """


@dataclass(frozen=True)
class InferenceTransform:
    """The evaluation transform a set of weights was trained for (torchvision's preset).

    `Resize(resize_size)` (shorter side, `interpolation`, antialiased), then
    `CenterCrop(crop_size)`, then `Normalize(mean, std)`. torchvision's V2
    weights expect a resize to 232, the V1 weights to 256; both crop 224.

    Args:
        resize_size: side the shorter edge is resized to.
        crop_size: side of the square centre crop.
        interpolation: the resize filter, `"bilinear"` for every torchvision ResNet.
        mean: per-channel mean to subtract (RGB, on a [0, 1] scale).
        std: per-channel standard deviation to divide by.

    Example:
        >>> t = PRETRAINED["resnet50.IMAGENET1K_V2"].transform
        >>> t.resize_size, t.crop_size
        (232, 224)
    """

    resize_size: int
    crop_size: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def build(self) -> tnn.Module:
        """torchvision's `ImageClassification` preset with these settings (PIL image or tensor in).

        Example:
            >>> from PIL import Image
            >>> PRETRAINED["resnet18.IMAGENET1K_V1"].transform.build()(Image.new("RGB", (300, 260))).shape
            torch.Size([3, 224, 224])
        """
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms._presets import ImageClassification

        return ImageClassification(
            crop_size=self.crop_size,
            resize_size=self.resize_size,
            mean=self.mean,
            std=self.std,
            interpolation=InterpolationMode(self.interpolation),
        )


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a named set of pretrained ResNet weights comes from, and what it expects.

    Args:
        name: the name users pass as `weights=` to `load_weights`, `"<arch>.<tag>"`:
            torchvision's enum names (`"resnet50.IMAGENET1K_V2"`) and timm's
            (`"resnet50.tv2_in1k"`); the architecture's factory also takes the
            tag alone (`resnet50(weights="IMAGENET1K_V2")`).
        url: the download address.
        file_name: the name of the file in the cache (`$TORCH_HOME/hub/checkpoints/`).
        hash_prefix: leading hex digits of the file's SHA-256, or `None` when the
            publisher gives none.
        num_classes: classes of the checkpoint's classifier.
        description: where the weights were trained, for messages and docs.
        arch: the architecture the file is for (`"resnet50"`).
        transform: the evaluation transform the weights were trained for.

    Example:
        >>> PRETRAINED["resnet34.IMAGENET1K_V1"].file_name
        'resnet34-b627a593.pth'
    """

    name: str
    url: str
    file_name: str
    hash_prefix: str | None
    num_classes: int
    description: str
    arch: str
    transform: InferenceTransform

    @property
    def tag(self) -> str:
        """The name without the architecture: `"IMAGENET1K_V2"`, `"tv2_in1k"`."""
        return self.name.split(".", 1)[1]

    @property
    def cache_path(self) -> Path:
        """Where the file lives in torch's hub cache (honours `TORCH_HOME`)."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name


def _torchvision_weights() -> dict[str, PretrainedWeights]:
    """Every ImageNet entry of torchvision's ResNet weights enums, read, not copied."""
    from torchvision import models

    found = {}
    for arch, enum in TORCHVISION_WEIGHTS.items():
        for entry in getattr(models, enum):
            preset = entry.transforms()
            file_name = entry.url.rsplit("/", 1)[-1]
            accuracy = entry.meta["_metrics"]["ImageNet-1K"]["acc@1"]
            spec = PretrainedWeights(
                name=f"{arch}.{entry.name}",
                url=entry.url,
                file_name=file_name,
                hash_prefix=file_name.rsplit("-", 1)[-1].split(".")[0],
                num_classes=len(entry.meta["categories"]),
                description=f"torchvision {arch} {entry.name}, ImageNet-1k (acc@1 {accuracy})",
                arch=arch,
                transform=InferenceTransform(
                    resize_size=int(preset.resize_size[0]),
                    crop_size=int(preset.crop_size[0]),
                    interpolation=preset.interpolation.value,
                    mean=tuple(preset.mean),
                    std=tuple(preset.std),
                ),
            )
            found[spec.name] = spec
    return found


TORCHVISION_WEIGHTS: dict[str, str] = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "resnet152": "ResNet152_Weights",
    "wide_resnet50_2": "Wide_ResNet50_2_Weights",
    "wide_resnet101_2": "Wide_ResNet101_2_Weights",
    "resnext50_32x4d": "ResNeXt50_32X4D_Weights",
    "resnext101_32x8d": "ResNeXt101_32X8D_Weights",
    "resnext101_64x4d": "ResNeXt101_64X4D_Weights",
}
"""Each architecture's weights enum in `torchvision.models`."""

_TIMM_ORIGINS: dict[str, str] = {
    # timm's names for its safetensors copies of torchvision's files, with the file each
    # copies (timm's resnet.py default_cfgs). Its tv_in1k ResNet18..152 copy torchvision's
    # first releases of the V1 weights (other file names than today's V1 files).
    "resnet18.tv_in1k": "https://download.pytorch.org/models/resnet18-5c106cde.pth",
    "resnet34.tv_in1k": "https://download.pytorch.org/models/resnet34-333f7ec4.pth",
    "resnet50.tv_in1k": "https://download.pytorch.org/models/resnet50-19c8e357.pth",
    "resnet50.tv2_in1k": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    "resnet101.tv_in1k": "https://download.pytorch.org/models/resnet101-5d3b4d8f.pth",
    "resnet101.tv2_in1k": "https://download.pytorch.org/models/resnet101-cd907fc2.pth",
    "resnet152.tv_in1k": "https://download.pytorch.org/models/resnet152-b121ed2d.pth",
    "resnet152.tv2_in1k": "https://download.pytorch.org/models/resnet152-f82ba261.pth",
    "wide_resnet50_2.tv_in1k": "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth",
    "wide_resnet50_2.tv2_in1k": "https://download.pytorch.org/models/wide_resnet50_2-9ba9bcbe.pth",
    "wide_resnet101_2.tv_in1k": "https://download.pytorch.org/models/wide_resnet101_2-32ee1156.pth",
    "wide_resnet101_2.tv2_in1k": "https://download.pytorch.org/models/wide_resnet101_2-d733dc28.pth",
    "resnext50_32x4d.tv_in1k": "https://download.pytorch.org/models/resnext50_32x4d-7cdf4587.pth",
    "resnext50_32x4d.tv2_in1k": "https://download.pytorch.org/models/resnext50_32x4d-1a0047aa.pth",
    "resnext101_32x8d.tv_in1k": "https://download.pytorch.org/models/resnext101_32x8d-8ba56ff5.pth",
    "resnext101_32x8d.tv2_in1k": "https://download.pytorch.org/models/resnext101_32x8d-110c445d.pth",
    "resnext101_64x4d.tv_in1k": "https://download.pytorch.org/models/resnext101_64x4d-173b62eb.pth",
}


def _timm_weights(torchvision: dict[str, PretrainedWeights]) -> dict[str, PretrainedWeights]:
    """timm's Hugging Face copies; each expects the transform of the torchvision recipe it copies."""
    found = {}
    for name, origin in _TIMM_ORIGINS.items():
        arch, tag = name.split(".")
        recipe = torchvision[f"{arch}.IMAGENET1K_{'V2' if tag == 'tv2_in1k' else 'V1'}"]
        found[name] = PretrainedWeights(
            name=name,
            url=f"https://huggingface.co/timm/{name}/resolve/main/model.safetensors",
            file_name=f"timm-{name}.safetensors",
            hash_prefix=None,
            num_classes=1000,
            description=f"timm's safetensors copy of {origin}",
            arch=arch,
            transform=recipe.transform,
        )
    return found


def _all_weights() -> dict[str, PretrainedWeights]:
    torchvision = _torchvision_weights()
    return {**torchvision, **_timm_weights(torchvision)}


PRETRAINED: dict[str, PretrainedWeights] = _all_weights()
"""Named pretrained weights, `"<arch>.<tag>"`: every torchvision ImageNet entry and timm's copies."""


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, as hex.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"")
        >>> sha256_of(p)[:8]
        'e3b0c442'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file_hash(path: str | os.PathLike[str], hash_prefix: str) -> None:
    """Check that a file's SHA-256 starts with `hash_prefix` (torchvision's naming convention).

    Args:
        path: the file.
        hash_prefix: expected leading hex digits.

    Raises:
        ChecksumError: the hash differs; the message gives both and says what to do.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"")
        >>> verify_file_hash(p, "e3b0c442")
    """
    actual = sha256_of(path)
    if not actual.startswith(hash_prefix.lower()):
        raise ChecksumError(
            f"{path} has SHA-256 {actual[: len(hash_prefix)]}..., expected {hash_prefix}...: "
            f"the file is corrupt or not the published one; delete it and download it again"
        )


def fetch_pretrained(name: str, *, progress: bool = True) -> Path:
    """Return the local path of named pretrained weights, downloading them if not cached.

    Downloads go to `$TORCH_HOME/hub/checkpoints/` (torchvision's cache) and are
    hash-checked against the prefix in the file name, as torchvision does; a
    cached file is used as it is (call `verify_file_hash` to check it).

    Args:
        name: a key of `PRETRAINED`, e.g. `"resnet34.IMAGENET1K_V1"`.
        progress: show a download progress bar.

    Returns:
        The checkpoint's path.

    Raises:
        ValueError: unknown name.
        WeightsUnavailableError: not cached and the download failed (offline);
            the message says which file to place where.
        ChecksumError: the downloaded file fails the hash check.

    Example:
        >>> fetch_pretrained("resnet34.IMAGENET1K_V1").name  # doctest: +SKIP
        'resnet34-b627a593.pth'
    """
    if name not in PRETRAINED:
        raise ValueError(
            f"unknown weights {name!r}; expected one of {sorted(PRETRAINED)}, None, "
            f"or a path to a .pth or .safetensors file"
        )
    spec = PRETRAINED[name]
    target = spec.cache_path
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(spec.url, str(target), spec.hash_prefix, progress=progress)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise WeightsUnavailableError(
            f"could not download {spec.name} weights ({spec.description}) from {spec.url}: "
            f"{error}. On a machine without internet, download that file elsewhere and place "
            f"it at {target} (set TORCH_HOME to move the cache), or pass weights=<path to the "
            f"file>"
        ) from error
    except RuntimeError as error:
        if "invalid hash value" in str(error):
            raise ChecksumError(
                f"the file downloaded from {spec.url} fails the hash check ({error}); "
                f"it was not kept. Try again, or download it by hand and pass its path"
            ) from error
        raise
    return target


_WRAPPERS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema", "ema")
"""Keys under which training checkpoints (Lightning, timm, plain loops) keep the weights, in
the order they are tried: the trained weights before their exponential moving average."""

_SHOWN = 3
"""How many keys of each kind a mismatch message names."""


def _is_state_dict(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items())
    )


def _unwrap(path: Path, loaded: object) -> dict[str, Tensor]:
    """The state dict in `loaded`: itself, or the first of `_WRAPPERS` that holds one."""
    if _is_state_dict(loaded):
        return dict(loaded)  # type: ignore[call-overload]
    if isinstance(loaded, Mapping):
        for wrapper in _WRAPPERS:
            if _is_state_dict(loaded.get(wrapper)):
                others = sorted(str(k) for k in loaded if k != wrapper)
                if others:  # a training checkpoint: say which of its entries is used
                    warnings.warn(
                        f"{path} is a training checkpoint; using its {wrapper!r} entry "
                        f"(other entries: {', '.join(others[:8])})",
                        stacklevel=4,
                    )
                return dict(loaded[wrapper])
        kinds = sorted({type(v).__name__ for v in loaded.values()})
        raise ValueError(
            f"{path} holds a {type(loaded).__name__} of {', '.join(kinds) or 'nothing'} with keys "
            f"{sorted(map(str, loaded))[:8]}, not a state dict of tensors (nor one under "
            f"{', '.join(repr(w) for w in _WRAPPERS)})"
        )
    raise ValueError(f"{path} holds a {type(loaded).__name__}, not a state dict of tensors")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a state dict from a `.pth`/`.pt`/`.bin` (torch) or `.safetensors` (timm) file.

    A training checkpoint (Lightning's or timm's `{"epoch", "state_dict",
    "optimizer", ...}`, or `{"model": ...}`, `{"model_state_dict": ...}`, EMA
    weights) is unwrapped, with a warning naming the entry used. Torch files are
    read with `weights_only=True`: no code in them runs, so a whole pickled model
    is refused, with how to re-save its weights.

    Args:
        path: the checkpoint file.

    Returns:
        Parameter and buffer names to tensors, on the CPU.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is a folder, empty, truncated or corrupt, holds a pickled
            object other than tensors, or holds no state dict; the message says which.

    Example:
        >>> import tempfile, torch
        >>> p = tempfile.mkdtemp() + "/w.pth"; torch.save({"fc.bias": torch.zeros(2)}, p)
        >>> list(read_checkpoint(p))
        ['fc.bias']
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not path.is_file():
        raise ValueError(f"{path} is a folder, not a weights file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): delete it and download or copy it again")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many kinds for a damaged file
        first_line = (str(error).strip().splitlines() or [""])[0]
        pickled = re.search(r"GLOBAL ([\w.]+)", str(error))
        if "Weights only load failed" in str(error) and pickled:
            raise ValueError(
                f"{path} is a valid torch file but holds a pickled {pickled[1]} object, not only "
                f"tensors; resfx reads weights with weights_only=True so that no code in a file "
                f"runs. If you trust the file, load it yourself (torch.load(path, "
                f"weights_only=False)) and re-save its weights with "
                f"torch.save(model.state_dict(), path)"
            ) from error
        raise ValueError(
            f"{path} could not be read as a checkpoint ({type(error).__name__}: {first_line}); it is "
            f"probably truncated or corrupt: delete it and download or copy it again"
        ) from error
    return _unwrap(path, loaded)


def _some(items: list[str], separator: str = ", ") -> str:
    shown = separator.join(items[:_SHOWN])
    return f"[{shown}{separator + '...' if len(items) > _SHOWN else ''}] ({len(items)} in all)"


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str | None:
    """A hint when the unexpected keys are the missing ones under a common prefix."""
    if not unexpected:
        return None
    first = unexpected[0]
    for prefix in ("module.", "model.", "_orig_mod.", "backbone.", "encoder."):
        if first.startswith(prefix) and all(k.startswith(prefix) for k in unexpected):
            stripped = {k[len(prefix) :] for k in unexpected}
            if set(missing) <= stripped:
                return (
                    f"every key starts with {prefix!r} (saved from a wrapper such as "
                    f"DataParallel or a LightningModule): strip that prefix, e.g. "
                    f"{{k.removeprefix({prefix!r}): v for k, v in state_dict.items()}}"
                )
    return None


def check_state_dict(model: tnn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Check every key, shape and dtype of a checkpoint against a model, before loading it.

    `num_batches_tracked` may be absent (old torchvision files lack it; it loads
    as 0). Integer tensors where the model has floating-point ones are refused:
    `load_state_dict` would convert them silently.

    Args:
        model: the model the checkpoint is for.
        state_dict: the checkpoint's tensors.

    Raises:
        CheckpointMismatchError: missing, unexpected, wrongly shaped or wrongly typed keys:
            a hint first, then a count and the first few keys of each kind.

    Example:
        >>> import torch
        >>> check_state_dict(torch.nn.Linear(2, 3), {"weight": torch.zeros(3, 2)})
        Traceback (most recent call last):
        ...
        resfx._weights.CheckpointMismatchError: ... missing keys ['bias'] (1 in all)
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    common = [k for k in expected if k in state_dict]
    wrong = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)}"
        for k in common
        if state_dict[k].shape != expected[k].shape
    ]
    not_float = [
        f"{k}: checkpoint {state_dict[k].dtype}, model {expected[k].dtype}"
        for k in common
        if expected[k].is_floating_point() and not state_dict[k].is_floating_point()
    ]
    if not (missing or unexpected or wrong or not_float):
        return
    hints = []
    prefix = _prefix_hint(missing, unexpected)
    if prefix:
        hints.append(prefix)
    if any(k.startswith("fc.") for k in wrong):
        hints.append(
            "the classifier differs: load with the checkpoint's num_classes and replace the "
            "head, or use resfx.get_resnet_for_feature_extraction(num_classes=n)"
        )
    if not_float:
        hints.append(
            "integer tensors where the model has floating-point parameters: the file holds "
            "quantised or wrongly converted weights, which would load truncated"
        )
    parts = []
    for label, keys, separator in (
        ("missing keys", [repr(k) for k in missing], ", "),
        ("unexpected keys", [repr(k) for k in unexpected], ", "),
        ("wrong shapes", wrong, "; "),  # the shapes hold commas
        ("wrong dtypes", not_float, "; "),
    ):
        if keys:
            parts.append(f"{label} {_some(keys, separator)}")
    message = f"checkpoint does not match {type(model).__name__}: "
    if hints:
        message += "Hint: " + "; ".join(hints) + ". "
    raise CheckpointMismatchError(message + "; ".join(parts))


def check_weights_source(weights: str | os.PathLike[str] | Mapping[str, Tensor]) -> None:
    """Check that `weights` names known pretrained weights or an existing file, without loading.

    What `load_weights` checks first, for callers that want to fail before slow work.

    Args:
        weights: a key of `PRETRAINED`, a path, or a state dict.

    Raises:
        TypeError: `weights` is none of those types.
        ValueError: an unknown name that is not a file either.

    Example:
        >>> check_weights_source("resnet34.IMAGENET1K_V1")
        >>> check_weights_source("IMAGENET1K_V9")
        Traceback (most recent call last):
        ...
        ValueError: weights='IMAGENET1K_V9' is neither a known name (...) nor an existing .pth/.safetensors file
    """
    if isinstance(weights, Mapping):
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"weights: pass a name of PRETRAINED, a path, or a state dict, got "
            f"{type(weights).__name__}; to load a model's weights use model.load_state_dict"
        )
    if isinstance(weights, str) and weights in PRETRAINED:
        return
    if not Path(weights).is_file():
        raise ValueError(
            f"weights={str(weights)!r} is neither a known name ({sorted(PRETRAINED)}) "
            f"nor an existing .pth/.safetensors file"
        )


def load_weights(
    model: tnn.Module,
    weights: str | os.PathLike[str] | Mapping[str, Tensor],
    *,
    progress: bool = True,
) -> tnn.Module:
    """Load named pretrained weights, a checkpoint file or a state dict into `model`, strictly.

    Args:
        model: the model to fill (in place).
        weights: a key of `PRETRAINED` (`"resnet34.IMAGENET1K_V1"`, `"resnet34.tv_in1k"`),
            a path to a `.pth` / `.safetensors` file, or a state dict already in memory.
        progress: show a download progress bar.

    Returns:
        `model`, for chaining.

    Raises:
        TypeError: `weights` is not a name, path or state dict.
        ValueError: an unknown name that is not a file either, or a file that holds no
            state dict (see `read_checkpoint`).
        CheckpointMismatchError: keys, shapes or dtypes differ.
        WeightsUnavailableError: named weights not cached and not downloadable.
        ChecksumError: a downloaded file fails its hash check.

    Example:
        >>> import tempfile, torch, resfx
        >>> p = tempfile.mkdtemp() + "/w.pth"
        >>> torch.save(resfx.nn.Linear(2, 3).state_dict(), p)
        >>> _ = load_weights(resfx.nn.Linear(2, 3), p)
        >>> _ = load_weights(resfx.nn.Linear(2, 3), torch.load(p))  # a state dict works too
    """
    check_weights_source(weights)
    if isinstance(weights, Mapping):
        state_dict = _unwrap(Path("<the state dict passed>"), weights)
    elif isinstance(weights, str) and weights in PRETRAINED:
        state_dict = read_checkpoint(fetch_pretrained(weights, progress=progress))
    else:
        state_dict = read_checkpoint(weights)
    check_state_dict(model, state_dict)
    model.load_state_dict(state_dict, strict=True)
    return model
