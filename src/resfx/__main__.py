"""`python -m resfx`: the same as the `resfx` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
