"""Ordinary mistakes through the command line: exit code, a one-line message, no traceback.

Every case of `CASES` runs `resfx.cli.main`, the function `python -m resfx` and the `resfx`
script call, in this process with its own environment and captured output: each
subprocess would spend seconds importing torch and torchvision (about 100 s for the cases
on 2 cores). `python -m resfx` itself is run in a subprocess by the tests below and by
`tests/test_cli.py`. The cases that reach training use the synthetic data and no pretrained
weights, so they run offline.
"""

import contextlib
import io
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from resfx import cli
from resfx.train import claim_output_dir
from test_cli import TINY_FLAGS

TRAIN = TINY_FLAGS
BENCH = ["bench", "--device", "cpu", "--no-progress", "--quick"]


@dataclass
class Case:
    """One command line, what to set up first, and what it must answer."""

    argv: Callable[[Path], list[str]]
    status: int
    says: str
    setup: Callable[[Path], None] = lambda folder: None
    environment: dict[str, str] = field(default_factory=dict)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _truncated_torch_file(path: Path) -> None:
    _write(path, b"")
    torch.save({"weight": torch.zeros(100, 100)}, path)
    path.write_bytes(path.read_bytes()[:5000])


def _run_with_file(name: str, write: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda folder: write(folder / "run" / name)


def _checkpoint_folder(folder: Path) -> None:
    (folder / "run" / "checkpoint.pt").mkdir(parents=True)


def _earlier_run(folder: Path) -> None:
    (folder / "run").mkdir()
    (folder / "run" / "history.json").write_text("{}")


def _save(value: object) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        _write(path, b"")
        torch.save(value, path)

    return write


def _out(folder: Path) -> list[str]:
    return ["--output-dir", str(folder / "run")]


CASES: dict[str, Case] = {
    # 11: tracebacks for ordinary mistakes
    "n_classes_too_few": Case(
        lambda f: [*TRAIN, *_out(f), "--num-classes", "2"], 1, "outside the 2 classes of the head"
    ),
    "gpu_index_out_of_range": Case(
        lambda f: [*TRAIN, *_out(f), "--device", "cuda:99"], 1, "device='cuda:99' but"
    ),
    "unknown_weights": Case(
        lambda f: [*TRAIN, *_out(f), "--weights", "foo"], 1, "weights='foo' is neither a known"
    ),
    "missing_weights_file": Case(
        lambda f: [*TRAIN, *_out(f), "--weights", str(f / "gone.pth")], 1, "is neither a known"
    ),
    "truncated_weights_file": Case(
        lambda f: [*TRAIN, *_out(f), "--weights", str(f / "w.pth")],
        1,
        "probably truncated or corrupt",
        lambda f: _truncated_torch_file(f / "w.pth"),
    ),
    "non_tensor_weights_file": Case(
        lambda f: [*TRAIN, *_out(f), "--weights", str(f / "w.pth")],
        1,
        "holds a list, not a state dict of tensors",
        lambda f: _save([1, 2, 3])(f / "w.pth"),
    ),
    "infinite_learning_rate": Case(
        lambda f: [*TRAIN, "--learning-rate", "inf"], 2, "learning_rate must be positive and finite"
    ),
    "seed_out_of_range": Case(
        lambda f: [*TRAIN, "--seed", str(2**70)], 2, "seed must be at most 9223372036854775807"
    ),
    "huge_image_size": Case(
        lambda f: [*TRAIN, "--image-size", "100000"], 2, "image_size must be at most 4096"
    ),
    "rank_outside_world": Case(
        lambda f: [*TRAIN, *_out(f)],
        1,
        "WORLD_SIZE=2 but RANK='5' (expected 0 to 1)",
        environment={"WORLD_SIZE": "2", "RANK": "5"},
    ),
    "world_size_without_master": Case(
        lambda f: [*TRAIN, *_out(f)],
        1,
        "WORLD_SIZE=2 but MASTER_ADDR and MASTER_PORT not set",
        environment={"WORLD_SIZE": "2", "RANK": "0"},
    ),
    "feature_cache_dir_is_a_file": Case(
        lambda f: [*TRAIN, *_out(f), "--mode", "cached", "--feature-cache-dir", str(f / "file")],
        0,
        "resfx train: warning: feature cache",
        lambda f: (f / "file").write_text("not a folder"),
    ),
    # 12: damaged checkpoints, checked before the first epoch
    "truncated_checkpoint": Case(
        lambda f: [*TRAIN, *_out(f), "--resume"],
        1,
        "is damaged or not a torch file",
        _run_with_file("checkpoint.pt", _truncated_torch_file),
    ),
    "empty_checkpoint": Case(
        lambda f: [*TRAIN, *_out(f), "--resume"],
        1,
        "checkpoint.pt is empty (0 bytes)",
        _run_with_file("checkpoint.pt", lambda path: _write(path, b"")),
    ),
    "refused_checkpoint": Case(
        lambda f: [*TRAIN, *_out(f), "--resume"],
        1,
        "Weights only load failed",
        _run_with_file("checkpoint.pt", _save(torch.nn.Identity())),
    ),
    "checkpoint_is_a_folder": Case(
        lambda f: [*TRAIN, *_out(f), "--resume"],
        1,
        "checkpoint.pt is not a file; resfx writes its checkpoint.pt there",
        _checkpoint_folder,
    ),
    # 1, 2, 9: nothing destroys another run's files
    "earlier_run_needs_resume_or_overwrite": Case(
        lambda f: [*TRAIN, *_out(f)],
        1,
        "already holds a run (history.json); pass resume=True (--resume)",
        _earlier_run,
    ),
    "empty_output_dir": Case(lambda f: [*TRAIN, "--output-dir", ""], 2, "output_dir is empty"),
    # 8: bench settings are checked, 0 is not "the default"
    "bench_batch_size_0": Case(
        lambda f: [*BENCH, "--batch-size", "0"], 2, "--batch-size: must be at least 1, got 0"
    ),
    "bench_image_size_0": Case(
        lambda f: [*BENCH, "--image-size", "0"], 2, "--image-size: must be at least 1, got 0"
    ),
    "bench_warmup_negative": Case(
        lambda f: [*BENCH, "--warmup", "-1"], 2, "--warmup: must be at least 0, got -1"
    ),
    "bench_job_epochs_0": Case(
        lambda f: [*BENCH, "--job-epochs", "0"], 2, "--job-epochs: must be at least 1, got 0"
    ),
}


def _resfx(
    argv: list[str], environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    settings = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(environment or {})}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "RESFX_DEBUG"):
        if name not in (environment or {}):
            settings.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "resfx", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=settings,
    )


_LAUNCH_VARIABLES = (
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "RESFX_DEBUG",
)


def _main_in_process(
    argv: list[str], environment: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`cli.main(argv)` with `environment` for the launch variables, as a finished process."""
    saved = {name: os.environ.pop(name, None) for name in _LAUNCH_VARIABLES}
    os.environ.update(environment)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main(argv)
            except SystemExit as exit_:  # argparse's usage errors
                status = int(exit_.code or 0)
    finally:
        for name in _LAUNCH_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update({name: value for name, value in saved.items() if value is not None})
    return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def answers(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case of `CASES`, one after another in this process."""
    answered = {}
    for name, case in CASES.items():
        folder = tmp_path_factory.mktemp(name)
        case.setup(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # each case sees its warnings, as a new process
            answered[name] = _main_in_process(case.argv(folder), case.environment)
    return answered


@pytest.mark.parametrize("name", list(CASES))
def test_an_ordinary_mistake_gets_one_line_and_the_right_status(
    name: str, answers: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    case, answer = CASES[name], answers[name]
    assert answer.returncode == case.status, answer.stderr[-3000:]
    assert "Traceback" not in answer.stderr, answer.stderr[-3000:]
    lines = [line for line in answer.stderr.splitlines() if case.says in line]
    assert lines, answer.stderr[-3000:]
    if case.status:
        command = case.argv(Path())[0]
        assert lines[0].startswith(f"resfx {command}: error: "), lines[0]


def test_a_folder_in_use_by_a_live_run_is_refused_with_its_pid(tmp_path: Path) -> None:
    with claim_output_dir(tmp_path / "run", run_files=(), resume=False, overwrite=False):
        answer = _resfx([*TRAIN, *_out(tmp_path)])
    assert answer.returncode == 1 and "Traceback" not in answer.stderr
    assert f"is in use by another resfx run (pid {os.getpid()} on host" in answer.stderr


def test_debug_shows_the_traceback_and_unexpected_bugs_keep_theirs(tmp_path: Path) -> None:
    for argv, environment in (
        ([*TRAIN, "--device", "cuda:99", "--debug"], {}),
        ([*TRAIN, "--device", "cuda:99"], {"RESFX_DEBUG": "1"}),
    ):
        answer = _resfx([*argv, *_out(tmp_path)], environment)
        assert answer.returncode == 1
        assert "Traceback" in answer.stderr and "ValueError: device='cuda:99'" in answer.stderr


def test_interrupt_exits_130_and_bugs_keep_their_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", interrupted)
    assert cli.main(TRAIN) == 130
    assert capsys.readouterr().err == "resfx train: interrupted\n"
    for bug in (AssertionError("a bug"), RuntimeError("an unknown torch failure"), TypeError("x")):

        def fails(args: object, bug: Exception = bug) -> None:
            raise bug

        monkeypatch.setattr(cli, "train", fails)
        with pytest.raises(type(bug)):
            cli.main(TRAIN)


def test_bench_refuses_to_replace_earlier_results_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bench.json").write_text('{"earlier": true}')
    (tmp_path / "bench_freeze_depth.png").write_bytes(b"an earlier chart")
    assert cli.main([*BENCH, "--out", str(tmp_path)]) == 1  # before measuring anything
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"resfx bench: error: --out {str(tmp_path)!r} already holds earlier results (bench.json, "
        f"bench_freeze_depth.png); pass --overwrite to replace them, or another --out"
    ]
    assert (tmp_path / "bench.json").read_text() == '{"earlier": true}'
    assert (tmp_path / "bench_freeze_depth.png").read_bytes() == b"an earlier chart"


def test_help_states_each_default_once() -> None:
    answer = _resfx(["train", "--help"])
    assert answer.returncode == 0
    progress = answer.stdout[answer.stdout.index("--progress, --no-progress") :]
    progress = progress[: progress.index("\n  --", 1)]  # up to the next flag
    assert progress.count("default") == 1, progress
    assert "--overwrite" in answer.stdout and "--debug" in answer.stdout


def test_torch_errors_with_an_ordinary_cause_get_an_ordinary_message() -> None:
    try:
        torch.empty(2**50, dtype=torch.uint8)  # a petabyte: the allocator refuses at once
    except RuntimeError as error:
        allocator = error
    assert cli.ordinary_error_message(allocator).startswith("out of memory (")
    full = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    assert "no space left on the device" in cli.ordinary_error_message(full)
    gpu = RuntimeError("CUDA error: invalid device ordinal\nCUDA kernel errors might be ...")
    assert cli.ordinary_error_message(gpu).startswith("no such GPU (CUDA error: invalid")
    assert cli.ordinary_error_message(MemoryError()).startswith("out of memory")
    assert cli.ordinary_error_message(RuntimeError("an unknown failure")) is None
