"""The run folder: proved writable, claimed by one run at a time, never overwritten unasked.

A run claims its `output_dir` with a lock file holding its pid, host and start
time, locked with `flock` for as long as the run lives: the kernel drops that
lock when the process dies, however it dies, so a lock file left by a killed run
is recognised as stale and taken over (with a warning naming the dead run). A
folder that already holds a run's files is only used with `resume` (continue it)
or `overwrite` (replace resfx's own files in it, nothing else).
"""

import contextlib
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from .._atomic import remove_stale_temporaries
from .._lock import LockError, hold_lock

LOCK_NAME = ".resfx-run.lock"
"""File name of the run lock inside `TrainingArgs.output_dir`."""


class OutputDirectoryError(OSError):
    """The output directory cannot be created, written to, or used by this run.

    Example:
        >>> try:
        ...     prepare_output_dir("/proc/resfx-run")
        ... except OutputDirectoryError as error:
        ...     print(str(error)[:40])
        output_dir '/proc/resfx-run' cannot be w
    """


def prepare_output_dir(path: str | Path) -> Path:
    """Create `path` if needed and prove it is writable, before any training time is spent.

    Args:
        path: the output directory.

    Returns:
        The directory as an absolute `Path`.

    Raises:
        OutputDirectoryError: it is empty, cannot be created or written; the message says
            which and why.

    Example:
        >>> import tempfile
        >>> prepare_output_dir(tempfile.mkdtemp() + "/run").is_absolute()
        True
    """
    if not str(path):
        raise OutputDirectoryError(
            "output_dir is empty; pass a folder (it is created if missing), or none to write nothing"
        )
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise OutputDirectoryError(
            f"output_dir {str(path)!r} cannot be written ({error.strerror or error}); pass a "
            f"folder you can write to (it is created if missing)"
        ) from error
    return path.resolve()


@contextlib.contextmanager
def claim_output_dir(
    path: str | Path, *, run_files: Sequence[str], resume: bool, overwrite: bool
) -> Iterator[Path]:
    """Hold `path` for one run: locked, cleaned of dead writes, checked for an earlier run.

    Args:
        path: the output directory (created if missing).
        run_files: names of the files a run writes there (checkpoint, history, plot).
        resume: the run continues the one in the folder.
        overwrite: the run replaces the files of the one in the folder (only `run_files`).

    Yields:
        The directory, absolute; the lock is released (and its file removed) on exit.

    Raises:
        OutputDirectoryError: another live run holds the folder, a run's files are there
            and neither `resume` nor `overwrite` is set, or one of `run_files` is not a
            file; the message says what to do.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with claim_output_dir(folder, run_files=["a.json"], resume=False, overwrite=False):
        ...     _ = (Path(folder) / "a.json").write_text("{}")
        >>> with claim_output_dir(folder, run_files=["a.json"], resume=False, overwrite=False):
        ...     pass
        Traceback (most recent call last):
        ...
        resfx.train._rundir.OutputDirectoryError: output_dir ... already holds a run (a.json); ...
    """
    path = prepare_output_dir(path)
    with contextlib.ExitStack() as held:
        lock = hold_lock(
            path / LOCK_NAME, what=f"output_dir {str(path)!r}", remedy="pass another output_dir"
        )
        try:
            previous = held.enter_context(lock)
        except LockError as error:
            raise OutputDirectoryError(str(error)) from None
        if previous is not None:
            warnings.warn(
                f"output_dir {str(path)!r} was held by {previous}, which is no longer running "
                f"(killed?); this run takes it over",
                stacklevel=3,
            )
        remove_stale_temporaries(path, owned=run_files)
        _check_previous_run(path, run_files, resume=resume, overwrite=overwrite)
        yield path


def _check_previous_run(
    path: Path, run_files: Sequence[str], *, resume: bool, overwrite: bool
) -> None:
    present = [name for name in run_files if (path / name).exists()]
    for name in present:
        if not (path / name).is_file():
            raise OutputDirectoryError(
                f"{path / name} is not a file; resfx writes its {name} there: move it away or "
                f"pass another output_dir"
            )
    if present and not (resume or overwrite):
        raise OutputDirectoryError(
            f"output_dir {str(path)!r} already holds a run ({', '.join(present)}); pass "
            f"resume=True (--resume) to continue it, overwrite=True (--overwrite) to replace "
            f"its files, or another output_dir"
        )
    if overwrite:
        for name in present:
            (path / name).unlink()
