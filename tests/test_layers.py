"""The import graph of resfx has no cycle and no upward edge: the layer order, in one place.

`LAYERS` lists resfx's top-level modules and packages from the bottom up. A module
may import from its own layer's modules or from lower layers, never from a higher
one; and no chain of imports between modules comes back to where it started. Every
import counts, at module level or inside a function (a lazy import is still an
edge). docs/architecture.md shows the same table, and a test below keeps the two equal.
"""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "_typing",
        "_pair",
        "_zoo",
        "_schedule",
        "_resnet_layout",
        "_precision",
        "_atomic",
        "_lock",
        "_device_sync",
        "_distributed",
        "_version",
        "_names",
        "_log",
    ),
    ("_functional", "functional"),
    ("nn",),
    ("_fold", "_frozen_step"),
    ("_freeze",),
    ("_weights", "weights"),
    ("models",),
    ("autograd",),
    ("data",),
    ("features",),
    ("plot",),
    ("train", "probe"),
    ("bench",),
    ("_commands", "cli", "__main__"),
)
"""resfx's parts, bottom layer first; the package's own `__init__` is above them all."""

DEPRECATED_EDGES: frozenset[tuple[str, str]] = frozenset({("resfx.train", "resfx.bench")})
"""Upward edges allowed for one release: `resfx.train.seed_train`, the old name of
`resfx.bench.seed_train`, is looked up in `bench` when used. Remove with the alias."""


def _layer_of() -> dict[str, int]:
    return {part: index for index, parts in enumerate(LAYERS) for part in parts}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((SRC / "resfx").rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The resfx modules `name` imports, resolved to the most specific module that exists."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "importlib.import_module"
            and isinstance(node.args[0], ast.Constant)
            and not node.args[0].value.startswith(".")
        ):
            targets = [node.args[0].value]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from . import nn` names a module; `from ._x import f` names a module's member.
            targets = [f"{stem}.{alias.name}" for alias in node.names] + [stem]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("resfx") and target != name:
                found.add(target)
                break
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    for source, target in DEPRECATED_EDGES:
        graph[source].discard(target)
    return graph


def _part(module: str) -> str:
    """The top-level part a module belongs to: `resfx.train._loop` -> `train`."""
    return module.split(".")[1] if module != "resfx" else ""


def test_every_part_of_resfx_has_a_layer() -> None:
    parts = {_part(name) for name in _modules()} - {""}
    missing = sorted(parts - set(_layer_of()))
    assert not missing, (
        f"add {missing} to LAYERS in tests/test_layers.py (and docs/architecture.md)"
    )
    stale = sorted(set(_layer_of()) - parts)
    assert not stale, f"LAYERS names parts that no longer exist: {stale}"


def test_no_import_goes_up_a_layer() -> None:
    layer = _layer_of()
    upward = [
        f"{source} (layer {layer[_part(source)]}) imports {target} (layer {layer[_part(target)]})"
        for source, targets in sorted(_graph().items())
        if source != "resfx"
        for target in sorted(targets)
        if target != "resfx" and layer[_part(target)] > layer[_part(source)]
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_nothing_imports_the_package_root() -> None:
    # `import resfx` inside resfx would run the whole package's __init__ from below.
    importers = sorted(source for source, targets in _graph().items() if "resfx" in targets)
    assert not importers, f"these modules import the resfx root: {importers}"


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph()
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_walker_finds_lazy_and_relative_imports(tmp_path: Path) -> None:
    path = tmp_path / "_conv.py"
    path.write_text(
        "import importlib\n"
        "def f():\n"
        "    from ..train._loop import train\n"
        "    from .. import _fold\n"
        "    return importlib.import_module('resfx.bench')\n"
    )
    known = {"resfx.nn", "resfx.nn._conv", "resfx.train", "resfx.train._loop", "resfx._fold"}
    known |= {"resfx.bench"}
    found = _imports("resfx.nn._conv", path, known)
    assert found == {"resfx.train._loop", "resfx._fold", "resfx.bench"}


def test_the_architecture_page_lists_the_same_layers() -> None:
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", ARCHITECTURE.read_text(), re.MULTILINE)
    documented = [tuple(re.findall(r"`([^`]+)`", parts)) for _, parts in rows]
    assert documented == list(LAYERS)
