"""The documentation works: every guide's Python runs, shown outputs are real, the site builds.

Each Markdown page under `docs/` (except the benchmark pages, which hold
measured results, not code to run) is cut into its fenced code blocks. The
```` ```python ```` blocks of a page run in order in one namespace, in a
temporary working directory, on the CPU. A ```` ```text title="Output" ````
block right after a Python block is what that block prints: the test compares
them (doctest rules: `...` matches anything, runs of whitespace are equal), so
every number a guide shows was computed by its own code. Snippets that are not
meant to run are ```` ```bash ```` or ```` ```text ````.

The site is built with `mkdocs build --strict` when mkdocs is installed, and
every public name must have an entry in the API reference. The API reference's
Returns and Yields sections are parsed as the site's renderer parses them (griffe's
Google parser with `mkdocs.yml`'s options and extensions): a wrapped description
must stay one row, not become one "return value" per line.
"""

import argparse
import contextlib
import doctest
import inspect
import io
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from test_public_api import _public_modules

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOT_RUN = ("benchmarks.md", "benchmarks/")
OUTPUT_INFO = 'text title="Output"'
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_CHECKER = doctest.OutputChecker()
_OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    info: str
    body: str
    line: int
    start: int
    end: int

    @property
    def language(self) -> str:
        return self.info.split(" ", 1)[0]


def code_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown page, in order, dedented to their fence."""
    blocks = []
    for match in _FENCE.finditer(text):
        body = textwrap.dedent(match["body"])
        line = text.count("\n", 0, match.start("body")) + 1
        blocks.append(Block(match["info"].strip(), body, line, match.start(), match.end()))
    return blocks


def pages_with_code() -> list[Path]:
    pages = sorted(DOCS.rglob("*.md"))
    return [
        page
        for page in pages
        if not str(page.relative_to(DOCS)).startswith(NOT_RUN)
        and any(block.language == "python" for block in code_blocks(page.read_text()))
    ]


def _is_output_of(block: Block, previous: Block | None, text: str) -> bool:
    return (
        block.info == OUTPUT_INFO
        and previous is not None
        and previous.language == "python"
        and not text[previous.end : block.start].strip()
    )


def test_guides_have_code_and_outputs_follow_code() -> None:
    names = {str(page.relative_to(DOCS)) for page in pages_with_code()}
    assert {
        "quickstart.md",
        "guides/tutorial-cifar10.md",
        "guides/proving-freezing.md",
        "guides/migrating.md",
    } <= names
    for page in DOCS.rglob("*.md"):
        text = page.read_text()
        blocks = code_blocks(text)
        for previous, block in zip([None, *blocks], blocks, strict=False):
            if block.info == OUTPUT_INFO:
                assert _is_output_of(block, previous, text), (
                    f"{page}:{block.line}: an Output block must follow a python block directly"
                )


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The guides' tensors are tiny: a second thread buys little, and on a busy machine stalls them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("page", pages_with_code(), ids=lambda p: str(p.relative_to(DOCS)))
def test_guide_code_runs_and_prints_what_the_page_shows(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # never the user's cache
    text = page.read_text()
    blocks = code_blocks(text)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    printed: dict[int, str] = {}
    for index, block in enumerate(blocks):
        if block.language != "python":
            continue
        # blank lines first, so tracebacks give the line number in the Markdown page
        code = compile("\n" * (block.line - 1) + block.body, str(page), "exec")
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            exec(code, namespace)
        printed[index] = captured.getvalue()
    for index, block in enumerate(blocks):
        if index and _is_output_of(block, blocks[index - 1], text):
            shown, actual = block.body, printed[index - 1]
            assert _CHECKER.check_output(shown, actual, _OPTIONS), (
                f"{page}:{block.line}: the page shows\n{shown}\nbut the code printed\n{actual}"
            )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stdout}\n{built.stderr}"
    return out


def test_site_builds_strictly_and_documents_every_public_name(site: Path) -> None:
    anchors = {
        anchor
        for page in (site / "api").rglob("*.html")
        for anchor in re.findall(r'id="([^"]+)"', page.read_text())
    }
    # a name re-exported elsewhere (resfx.ResNet is resfx.models.ResNet) is documented once
    documented = {
        id(getattr(module, name))
        for module in _public_modules()
        for name in module.__all__
        if f"{module.__name__}.{name}" in anchors
    }
    missing = []
    for module in _public_modules():
        assert module.__name__ in anchors, f"no API reference entry for {module.__name__}"
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                found = obj.__name__ in anchors
            else:
                found = f"{module.__name__}.{name}" in anchors or id(obj) in documented
            if not found:
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"public names without an API reference entry: {missing}"


def test_cli_reference_lists_every_subcommand(site: Path) -> None:
    from resfx.cli import build_parser

    page = (site / "api" / "cli" / "index.html").read_text()
    subparsers = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    for name in subparsers.choices:
        assert f'id="resfx-{name}"' in page, f"resfx {name} is missing from the CLI reference"


def _mkdocstrings_python_config() -> dict[str, Any]:
    """`mkdocs.yml`'s `mkdocstrings` handler settings for Python (its `!!python` tags unread)."""
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader)
    (plugin,) = (p["mkdocstrings"] for p in config["plugins"] if isinstance(p, dict))
    return plugin["handlers"]["python"]


def _add_shown(obj: Any, found: dict[str, Any]) -> None:
    """Add `obj` (for an alias, its target in resfx) and a class's public members to `found`."""
    if obj.is_alias:
        if not obj.target_path.startswith("resfx."):
            return
        obj = obj.final_target
    if obj.path not in found:
        found[obj.path] = obj
        for name, member in obj.members.items() if obj.is_class else ():
            if not name.startswith("_"):
                _add_shown(member, found)


def _rendered_objects(package: Any) -> dict[str, Any]:
    """What the API reference shows: each public module, its `__all__`, their public members."""
    found: dict[str, Any] = {}
    for module in _public_modules():
        inner = module.__name__.removeprefix(package.name).removeprefix(".")
        griffe_module = package[inner] if inner else package
        found[griffe_module.path] = griffe_module
        for name in module.__all__:
            if not inspect.ismodule(getattr(module, name)):
                _add_shown(griffe_module[name], found)
    return found


def test_every_returns_section_renders_one_row_per_value() -> None:
    griffe = pytest.importorskip("griffe")
    config = _mkdocstrings_python_config()
    options = config["options"]
    parser, parser_options = options["docstring_style"], options.get("docstring_options", {})
    package = griffe.load(
        "resfx",
        search_paths=[str(ROOT / path) for path in config["paths"]],
        extensions=griffe.load_extensions(*(str(ROOT / e) for e in options["extensions"])),
        docstring_parser=parser,
        docstring_options=parser_options,
    )
    split = []
    for path, obj in _rendered_objects(package).items():
        if obj.docstring is None:
            continue
        for section in obj.docstring.parse(parser, **parser_options):
            # one row per unindented line: rows are separate values only when each is named
            rows = section.value if section.kind.value in ("returns", "yields") else []
            if len(rows) > 1 and not all(row.name for row in rows):
                lines = "\n".join(f"    {row.description}" for row in rows)
                split.append(f"{obj.filepath}:{obj.lineno} {path} {section.kind.value}:\n{lines}")
    assert not split, (
        "these Returns/Yields sections render one value per line; indent each continuation "
        "line 4 more spaces (or name each value, `name: description`):\n" + "\n".join(split)
    )
