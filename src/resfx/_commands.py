"""The `resfx` subcommands by name, and the top-level parser, without importing torch.

`resfx --help`, `resfx --version` and a mistyped command are answered from here;
`resfx.cli` adds the flags of the one subcommand a command line names, so only
that subcommand's modules are imported.
"""

import argparse
from collections.abc import Sequence

from ._version import __version__

COMMANDS: dict[str, str] = {
    "train": "train a new head on a frozen ResNet34 (the seed's job), or fine-tune it",
    "bench": "measure what freezing saves: step time, memory, saved activations, the seed job",
    "summary": "print a ResNet's parameter table: shapes, counts, trainable or frozen, BN policy",
    "probe": "which stage transfers best: a linear probe on each stage's frozen features",
    "extract": "write a frozen model's pooled stage features of a whole dataset to a feature store",
}
"""Each subcommand's name and its line in `resfx --help`, in that order."""

DEBUG_VARIABLE = "RESFX_DEBUG"
DEBUG_HELP = f"show the full traceback of an error (also: {DEBUG_VARIABLE}=1)"


def command_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level `resfx` parser and each subcommand's parser, the latter still without flags.

    Returns:
        The parser, and the subcommands' parsers by name.

    Example:
        >>> parser, subcommands = command_parser()
        >>> list(subcommands) == list(COMMANDS), subcommands["train"].prog
        (True, 'resfx train')
    """
    parser = argparse.ArgumentParser(
        prog="resfx", description="Feature extraction on ResNets, measured.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subcommands = {
        name: subparsers.add_parser(name, help=text, allow_abbrev=False)
        for name, text in COMMANDS.items()
    }
    return parser, subcommands


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand a command line names: its first word that is not a flag, if a known name.

    The top-level flags (`--debug`, `--version`, `--help`) take no value, so the
    first other word is the subcommand.

    Args:
        argv: the arguments after the program name.

    Returns:
        The name, or `None` when there is none or it is unknown.

    Example:
        >>> chosen_command(["--debug", "train", "--epochs", "2"]), chosen_command(["--help"])
        ('train', None)
    """
    word = next((word for word in argv if not word.startswith("-")), None)
    return word if word in COMMANDS else None
