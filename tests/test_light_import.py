"""`import resfx` is light: every name loads on first use, and only what it needs.

Measured at commit ae35d01, before this change: `import resfx` loaded 57 resfx modules,
matplotlib and torchvision (whose package imports `torchvision.models`).
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import resfx
from resfx._commands import COMMANDS

HEAVY = ("matplotlib", "torchvision", "resfx.train", "resfx.data", "resfx.features")
HEAVY += ("resfx.plot", "resfx.bench", "resfx.probe", "resfx.cli")
MODULES_BEFORE = 57
"""resfx modules `import resfx` loaded before the change (ae35d01, this machine)."""

_LOADED = "import json, sys; print(json.dumps(sorted(sys.modules)))"


def _modules_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\n{_LOADED}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


def _heavy(loaded: list[str]) -> list[str]:
    return [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]


def test_import_resfx_loads_at_most_half_of_its_old_modules_and_nothing_heavy() -> None:
    loaded = _modules_after("import resfx")
    assert not _heavy(loaded)
    ours = [m for m in loaded if m.split(".")[0] == "resfx"]
    assert len(ours) <= MODULES_BEFORE // 2, ours
    assert "torch" not in loaded  # `resfx --version` needs no torch


def test_the_core_names_load_neither_the_job_nor_matplotlib_nor_torchvision() -> None:
    on_first_use = ("data", "features", "plot", "train", "probe", "bench", "cli")
    core = [n for n in resfx.__all__ if n not in on_first_use]
    loaded = _modules_after(f"import resfx\nfor name in {core!r}: getattr(resfx, name)")
    assert not _heavy(loaded), _heavy(loaded)
    assert {"resfx._freeze", "resfx.models", "resfx.weights", "resfx.autograd"} <= set(loaded)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["--debug", "--help"], ["tarin"]])
def test_resfx_without_a_subcommand_answers_without_torch(argv: list[str]) -> None:
    code = f"from resfx.__main__ import main\nassert main({argv!r}) in (0, 2)"
    loaded = _modules_after(code)
    assert "torch" not in loaded and "resfx.cli" not in loaded


def test_python_m_resfx_lists_every_command_and_names_a_mistyped_one() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "resfx", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name, summary in COMMANDS.items():
        assert name in shown and summary.split()[0] in shown
    mistyped = subprocess.run(
        [sys.executable, "-m", "resfx", "tarin"], capture_output=True, text=True
    )
    assert mistyped.returncode == 2
    assert mistyped.stderr.splitlines()[-1].startswith(
        "resfx: error: argument COMMAND: invalid choice: 'tarin' (choose from 'train'"
    )


def test_every_name_has_one_home_read_by_type_checkers_and_at_run_time() -> None:
    source = Path(resfx.__file__).read_text()
    guarded = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    seen = {}
    for node in guarded.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            assert alias.asname == alias.name  # an explicit re-export
            seen[alias.name] = "." * node.level + (node.module or "")
    homes = {name: "." for name in resfx._SUBMODULES} | resfx._HOMES
    assert seen == homes
    assert set(resfx.__all__) <= set(homes) and set(resfx.__all__) <= set(dir(resfx))
    for name, module in resfx._HOMES.items():
        assert getattr(resfx, name) is getattr(sys.modules[f"resfx{module}"], name)
    assert resfx.train.TrainingArgs is sys.modules["resfx.train"].TrainingArgs
