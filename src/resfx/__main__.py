"""`python -m resfx` and the `resfx` command: `--version` at once, the rest by `resfx.cli`."""

import sys
from collections.abc import Sequence

from ._version import __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `resfx` command line; `resfx --version` answers without loading torch.

    Args:
        argv: the arguments after the program name; `None` reads `sys.argv`.

    Returns:
        The exit status of `resfx.cli.main`.

    Example:
        >>> main(["--version"])  # doctest: +ELLIPSIS
        resfx ...
        0
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments == ["--version"]:
        print(f"resfx {__version__}")
        return 0
    from .cli import main as cli_main

    return cli_main(arguments)


if __name__ == "__main__":
    raise SystemExit(main())
