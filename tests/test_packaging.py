"""The released artefacts: the sdist and wheel build, hold only the package, and the installed
wheel (not this checkout) imports, runs its console script and is seen by a type checker.

The wheel goes into a fresh virtual environment with no pip of its own; a `.pth` file there
points at this test environment's site-packages so torch is reused, not reinstalled. A `.pth`
line only adds a folder to `sys.path` (the `.pth` files inside it are not run), so the editable
install of the checkout stays invisible there, and the new environment's own site-packages comes
first on the path. Every command runs without `PYTHONPATH` from a folder outside the checkout.
The commands are started together once the wheel is installed (each one imports torch, mypy
reads all of torch's annotations), so on a multi-core machine they cost about the longest one.

`tests/user_script.py` is a researcher's script over every call of the README, the quick start
and the guides: it must pass `mypy --strict` against the installed wheel, and run there. mypy's
cache lives in the checkout's `.mypy_cache/` (ignored by git), so torch's annotations are read
once, not on every run.
"""

import email.parser
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import resfx

REPO = Path(__file__).resolve().parents[1]
USER_SCRIPT = Path(__file__).with_name("user_script.py")
MYPY_CACHE = REPO / ".mypy_cache" / "installed-wheel"
VERSION = resfx.__version__
DIST_INFO = f"resfx-{VERSION}.dist-info"

REVEAL_SCRIPT = """\
import torch
import resfx

model = resfx.resnet34(num_classes=10)
reveal_type(model)
reveal_type(model.forward(torch.zeros(2, 3, 32, 32)))
reveal_type(resfx.parameter_summary(model))
resfx.resnet34(num_classes="ten")
resfx.get_resnet_for_feature_extraction(weights=None)
resfx.frezee(model)
model.layer1.requires_grad = False
"""
"""Three types mypy must see through the installed wheel, and four mistakes it must report.

`forward`, not `model(...)`: torch types `Module.__call__` as returning `Any`.
"""


def _run(
    *command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _checked(finished: subprocess.CompletedProcess[str]) -> str:
    if finished.returncode != 0:
        pytest.fail(f"{finished.args} exited {finished.returncode}:\n{finished.stderr}")
    return finished.stdout


def _user_environ(bin_dir: Path) -> dict[str, str]:
    """This process's environment less every `PYTHON*` variable, with `bin_dir` first on `PATH`.

    The suite runs with `PYTHONPATH=src`, which would put the checkout before the installed wheel.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return environ | {
        "PATH": f"{bin_dir}{os.pathsep}{environ.get('PATH', '')}",
        "PYTHONNOUSERSITE": "1",
        "MPLBACKEND": "Agg",
    }


MYPY_INI = """\
[mypy]
strict = True
# Only the user's scripts are checked; resfx and torch are followed silently (their own errors
# are not reported), which is what a user of the installed wheel gets.
follow_imports = silent
# torch leaves some methods unannotated (`Tensor.backward`), torchvision has no annotations
untyped_calls_exclude = torch
[mypy-torchvision.*]
ignore_missing_imports = True
"""
"""A strict user's configuration: only torch's and torchvision's missing annotations excused."""

IMPORT_CHECK = (
    "import importlib.metadata, resfx; print(resfx.__file__); print(resfx.__version__); "
    "print(importlib.metadata.version('resfx'))"
)
SUMMARY_FLAGS = ("summary", "--model", "resnet18", "--num-classes", "10", "--freeze-to", "layer2")


@dataclass(frozen=True)
class Installed:
    """The built artefacts, the environment the wheel went into, and the commands run there."""

    wheel: Path
    sdist: Path
    env: Path
    user_dir: Path
    started: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    finished: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def start(self, name: str, *command: str | Path) -> None:
        """Start a command in `user_dir` as a user would: no `PYTHONPATH`, the new env first."""
        self.started[name] = subprocess.Popen(
            [str(part) for part in command],
            cwd=self.user_dir,
            env=_user_environ(self.env / "bin"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self, name: str) -> subprocess.CompletedProcess[str]:
        """Wait for the command started as `name`."""
        if name not in self.finished:
            process = self.started[name]
            stdout, stderr = process.communicate(timeout=300)
            self.finished[name] = subprocess.CompletedProcess(
                process.args, process.returncode, stdout, stderr
            )
        return self.finished[name]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("packaging")
    dist = root / "dist"
    # No build isolation: the setuptools of this environment builds, offline and in seconds.
    # `build` makes the sdist, then the wheel from the unpacked sdist, so the sdist is complete.
    _checked(_run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, REPO))
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    env = root / "env"
    venv.create(env, with_pip=False)
    python, script = env / "bin" / "python", env / "bin" / "resfx"
    # Installed before the .pth exists and without PYTHONPATH, so pip sees an empty environment.
    pip = (sys.executable, "-m", "pip", "--python", python, "install")
    flags = ("--no-deps", "--no-index", "--no-compile", "--quiet")
    _checked(_run(*pip, *flags, wheel, cwd=root, env=_user_environ(env / "bin")))
    (site_packages,) = (env / "lib").glob("python*/site-packages")
    test_env_paths = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site_packages / "_resfx_test_env.pth").write_text("\n".join(test_env_paths) + "\n")
    user_dir = root / "user"
    user_dir.mkdir()
    (user_dir / "reveal_types.py").write_text(REVEAL_SCRIPT)
    (user_dir / "user_script.py").write_text(USER_SCRIPT.read_text())
    (user_dir / "mypy.ini").write_text(MYPY_INI)

    installed = Installed(wheel=wheel, sdist=sdist, env=env, user_dir=user_dir)
    mypy = (sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", MYPY_CACHE)
    scripts = ("reveal_types.py", "user_script.py")
    installed.start("mypy", *mypy, "--python-executable", python, "--no-error-summary", *scripts)
    installed.start("script", python, "-W", "error", "user_script.py")
    installed.start("import", python, "-c", IMPORT_CHECK)
    installed.start("version", script, "--version")
    installed.start("summary", script, *SUMMARY_FLAGS)
    yield installed
    for process in installed.started.values():
        process.kill()
        process.communicate()


def _package_files() -> set[str]:
    """What the wheel must hold of the package: every module of `src/resfx` and `py.typed`."""
    package = REPO / "src" / "resfx"
    modules = {path.relative_to(package.parent).as_posix() for path in package.rglob("*.py")}
    return modules | {"resfx/py.typed"}


def test_wheel_holds_the_package_its_metadata_and_nothing_else(installed: Installed) -> None:
    assert installed.wheel.name == f"resfx-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = {name for name in wheel.namelist() if not name.endswith("/")}
        metadata = email.parser.Parser().parsestr(wheel.read(f"{DIST_INFO}/METADATA").decode())
        entry_points = wheel.read(f"{DIST_INFO}/entry_points.txt").decode()
    assert {name.split("/")[0] for name in names} == {"resfx", DIST_INFO}
    assert {name for name in names if name.startswith("resfx/")} == _package_files()
    assert {name.removeprefix(f"{DIST_INFO}/") for name in names if "dist-info" in name} == {
        "METADATA",
        "WHEEL",
        "RECORD",
        "entry_points.txt",
        "top_level.txt",
        "licenses/LICENSE",
    }
    assert metadata["Name"] == "resfx"
    assert metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    assert any(
        requirement.startswith("torch>=") for requirement in metadata.get_all("Requires-Dist")
    )
    assert "resfx = resfx.__main__:main" in entry_points


def test_sdist_holds_the_sources_license_and_changelog_but_no_tests(installed: Installed) -> None:
    top = f"resfx-{VERSION}"
    with tarfile.open(installed.sdist) as sdist:
        names = {member.name.removeprefix(f"{top}/") for member in sdist if member.isfile()}
    assert {name.split("/")[0] for name in names} == {
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "MANIFEST.in",
        "pyproject.toml",
        "setup.cfg",
        "PKG-INFO",
        "src",
    }
    sources = {name.removeprefix("src/") for name in names if name.startswith("src/resfx/")}
    assert sources == _package_files()


def test_installed_wheel_imports_from_its_own_environment(installed: Installed) -> None:
    location, version, metadata_version = _checked(installed.result("import")).split()
    assert Path(location).is_relative_to(installed.env), location
    assert version == metadata_version == VERSION


def test_console_script_prints_the_version(installed: Installed) -> None:
    assert _checked(installed.result("version")) == f"resfx {VERSION}\n"


def test_console_script_summary_runs_from_the_wheel(installed: Installed) -> None:
    table = _checked(installed.result("summary"))
    rows = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert "(64, 3, 7, 7)" in rows["conv1.weight"] and "frozen" in rows["conv1.weight"]
    assert "(10, 512)" in rows["fc.weight"] and "frozen" not in rows["fc.weight"]


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_type_checker_sees_the_installed_signatures(installed: Installed) -> None:
    finished = installed.result("mypy")
    lines = finished.stdout.splitlines()
    revealed = [m.group(1) for line in lines if (m := re.search(r'Revealed type is "(.*)"', line))]
    errors = [line for line in lines if ": error: " in line]
    assert revealed == [
        _qualified_name(resfx.ResNet),
        "torch._tensor.Tensor",
        _qualified_name(resfx.ParameterSummary),
    ], finished.stdout + finished.stderr
    # the researcher's script is clean under --strict: the wrong calls are the only errors
    assert len(errors) == 4, finished.stdout
    # the zoo's factories are typed by the Protocol of their signature
    assert errors[0].startswith(
        'reveal_types.py:8: error: Argument "num_classes" to "__call__" of "BasicFactory"'
    )
    assert '"str"; expected "int"' in errors[0]
    # a required argument is required in the signature type checkers read
    assert errors[1].startswith(
        'reveal_types.py:9: error: No overload variant of "get_resnet_for_feature_extraction"'
    )
    # a misspelt name is an error, not an `Any` from the lazy module `__getattr__`
    assert errors[2].startswith('reveal_types.py:10: error: Module has no attribute "frezee"')
    # the DESIGN pitfall `requires_grad = False` (no underscore) on a typed stage
    assert errors[3].startswith("reveal_types.py:11: error: Incompatible types in assignment")
    assert finished.returncode == 1


def test_the_users_script_runs_from_the_wheel(installed: Installed) -> None:
    printed = _checked(installed.result("script")).splitlines()
    assert printed[-1].startswith("linear "), printed[-3:]
