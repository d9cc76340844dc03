"""Griffe extension for the docs build: render resfx's `Example:` sections as code.

resfx docstrings title their doctests `Example:` (one example each, see
STYLE.md). Griffe's Google parser knows only the plural `Examples:` as a
section and would render the singular as an admonition whose `>>>` lines read
as Markdown quotes. This extension renames the title before parsing, so the
examples are shown as highlighted console sessions; the sources stay as they are.
"""

import re
from typing import Any

import griffe

_SINGULAR_TITLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename `Example:` section titles to `Examples:` in every loaded docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR_TITLE.sub(r"\g<indent>Examples:", obj.docstring.value)
