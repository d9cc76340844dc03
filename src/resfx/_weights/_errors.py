"""The errors of loading weights, each saying what was wrong and what to do.

They show as `resfx.weights.<name>` (their public home) in tracebacks and reprs.
"""


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model; the message names every one.

    Example:
        >>> import torch
        >>> from resfx.weights import check_state_dict
        >>> try:
        ...     check_state_dict(torch.nn.Linear(1, 1), {})
        ... except CheckpointMismatchError as error:
        ...     print(error)
        checkpoint does not match Linear: missing keys ['weight', 'bias'] (2 in all)
    """

    __module__ = "resfx.weights"


class ChecksumError(RuntimeError):
    """A downloaded or cached weights file does not have the SHA-256 its name promises.

    Example:
        >>> import tempfile, pathlib
        >>> from resfx.weights import verify_file_hash
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"")
        >>> try:
        ...     verify_file_hash(p, "ffff")
        ... except ChecksumError:
        ...     print("refused")
        refused
    """

    __module__ = "resfx.weights"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (typically: offline).

    The message names the URL, the cache path to place the file at, and the
    `weights=<path>` alternative.

    Example:
        >>> issubclass(WeightsUnavailableError, RuntimeError)
        True
    """

    __module__ = "resfx.weights"
