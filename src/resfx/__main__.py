"""`python -m resfx` and the `resfx` command: help, version and usage errors without torch."""

import sys
from collections.abc import Sequence

from ._commands import chosen_command, command_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `resfx` command line; without a subcommand it answers without loading torch.

    `resfx --help`, `resfx --version` and an unknown or missing subcommand are
    answered by the top-level parser alone; a subcommand's run, and its `--help`,
    go to `resfx.cli`, which imports only what that subcommand needs.

    Args:
        argv: the arguments after the program name; `None` reads `sys.argv`.

    Returns:
        The exit status: that of `resfx.cli.main`, 0 after `--help` or `--version`,
        2 for a missing or unknown subcommand.

    Example:
        >>> main(["--version"])  # doctest: +ELLIPSIS
        resfx ...
        0
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    if chosen_command(arguments) is None:
        parser, _ = command_parser()
        try:
            parser.parse_args(arguments)
        except SystemExit as done:  # argparse ends every command line without a subcommand
            return done.code if isinstance(done.code, int) else 2
    from .cli import main as cli_main

    return cli_main(arguments)


if __name__ == "__main__":
    raise SystemExit(main())
