"""MkDocs hook: write the `resfx` command reference from the argparse parser itself.

A page holding the marker `<!-- resfx-cli-reference -->` gets, in its place,
one section per subcommand of `resfx.cli.build_parser()`: its description and
its `--help` text. The reference therefore lists exactly the commands and
flags the installed `resfx` accepts, with their defaults.
"""

import argparse
import os
from typing import Any

MARKER = "<!-- resfx-cli-reference -->"
_HELP_WIDTH = "96"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def cli_reference() -> str:
    """The Markdown for every subcommand: a table of them, then each one's heading and `--help`."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = _HELP_WIDTH  # argparse wraps help to the terminal width
    try:
        from resfx.cli import build_parser

        parser = build_parser()
        summaries = _summaries(parser)
        sections = [
            "The commands below, and every flag, are read from `resfx`'s own parser "
            "when this site is built.",
            "",
            "| command | what it does |",
            "| --- | --- |",
            *(
                f"| [`resfx {name}`](#resfx-{name}) | {summaries.get(name, '')} |"
                for name in _subcommands(parser)
            ),
        ]
        for name, sub in _subcommands(parser).items():
            sections += [
                "",
                f"## `resfx {name}` {{#resfx-{name}}}",
                "",
                _sentence(summaries.get(name) or f"the {name} command"),
                "",
                "```text",
                sub.format_help().rstrip(),
                "```",
            ]
        return "\n".join(sections) + "\n"
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace the marker with the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
