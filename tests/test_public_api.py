"""Every public name is importable and documented with an example."""

import importlib
import inspect
import pkgutil
import types

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


@pytest.mark.parametrize(("qualified", "obj"), _public_objects(), ids=lambda v: str(v)[:60])
def test_public_name_has_docstring_with_example(qualified: str, obj: object) -> None:
    if not (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj)):
        return  # constants and type aliases are documented in their module
    doc = inspect.getdoc(obj)
    assert doc, f"{qualified} has no docstring"
    assert ">>>" in doc, f"{qualified}'s docstring has no example"
    if inspect.isclass(obj):
        for name, member in vars(obj).items():
            if inspect.isfunction(member) and not name.startswith("_") and name != "extra_repr":
                assert inspect.getdoc(member), f"{qualified}.{name} has no docstring"
