"""Griffe extension for the docs build: render resfx's `Example:` sections as code.

resfx docstrings title their doctests `Example:` (one example each, see
STYLE.md). Griffe's Google parser knows only the plural `Examples:` as a
section and would render the singular as an admonition whose `>>>` lines read
as Markdown quotes. This extension renames the title before parsing, so the
examples are shown as highlighted console sessions; the sources stay as they are.
"""

import inspect
import re
from typing import Any

import griffe

_SINGULAR_TITLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename `Example:` section titles to `Examples:` in every loaded docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR_TITLE.sub(r"\g<indent>Examples:", obj.docstring.value)


class GeneratedFactories(griffe.Extension):
    """Document the zoo's factories as the functions they are at run time.

    `resfx.models.resnet18 = _factory("resnet18", ...)` is, to static analysis, an
    attribute without a docstring; its signature and docstring are made from its spec
    in `resfx._zoo` when the module runs. This replaces each such attribute by a
    function with the run-time signature and docstring.
    """

    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        if mod.path != "resfx.models._factory":
            return
        for name, member in list(mod.members.items()):
            generated = not member.is_alias and member.is_attribute
            if generated and str(member.value).startswith("_factory("):
                mod.set_member(name, _as_function(member))


def _as_function(attribute: griffe.Object) -> griffe.Function:
    factory = griffe.dynamic_import(attribute.path)
    parameters = griffe.Parameters(
        *(
            griffe.Parameter(
                parameter.name,
                annotation=inspect.formatannotation(parameter.annotation),
                kind=griffe.ParameterKind.keyword_only,
                default=repr(parameter.default),
            )
            for parameter in inspect.signature(factory).parameters.values()
        )
    )
    docstring = _SINGULAR_TITLE.sub(r"\g<indent>Examples:", inspect.getdoc(factory) or "")
    function = griffe.Function(
        attribute.name,
        parameters=parameters,
        returns="ResNet",
        docstring=griffe.Docstring(docstring, parser="google"),
        lineno=attribute.lineno,
        endlineno=attribute.endlineno,
    )
    function.docstring.parent = function
    return function
