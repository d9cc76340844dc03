"""Every public name is importable and documented with an example."""

import ast
import importlib
import inspect
import itertools
import pkgutil
import types
from pathlib import Path

import pytest

import resfx


def _public_modules() -> list[types.ModuleType]:
    modules = [resfx]
    for info in pkgutil.walk_packages(resfx.__path__, "resfx."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            modules.append(importlib.import_module(info.name))
    return modules


def _public_objects() -> list[tuple[str, object]]:
    found = []
    for module in _public_modules():
        found.append((module.__name__, module))
        for name in getattr(module, "__all__", []):
            found.append((f"{module.__name__}.{name}", getattr(module, name)))
    return found


def test_every_public_module_declares_its_names() -> None:
    for module in _public_modules():
        exported = getattr(module, "__all__", None)
        assert exported, f"{module.__name__} has no __all__"
        for name in exported:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"


def _documented_attributes() -> set[str]:
    """Names assigned at module level in resfx's source with a docstring right under them."""
    found = set()
    for path in Path(resfx.__file__).parent.rglob("*.py"):
        body = ast.parse(path.read_text()).body
        for node, after in itertools.pairwise(body):
            documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            if documented and isinstance(after.value.value, str):
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [getattr(node, "target", None)]
                )
                found.update(t.id for t in targets if isinstance(t, ast.Name))
    return found


DOCUMENTED_ATTRIBUTES = _documented_attributes()


@pytest.mark.parametrize(("qualified", "obj"), _public_objects(), ids=lambda v: str(v)[:60])
def test_public_name_has_docstring_with_example(qualified: str, obj: object) -> None:
    if not (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj)):
        # constants and type aliases: a docstring right under their assignment
        assert qualified.rpartition(".")[2] in DOCUMENTED_ATTRIBUTES, (
            f"{qualified} has no docstring"
        )
        return
    doc = inspect.getdoc(obj)
    assert doc, f"{qualified} has no docstring"
    assert ">>>" in doc, f"{qualified}'s docstring has no example"
    if inspect.isclass(obj):
        for name, member in vars(obj).items():
            if inspect.isfunction(member) and not name.startswith("_") and name != "extra_repr":
                assert inspect.getdoc(member), f"{qualified}.{name} has no docstring"
