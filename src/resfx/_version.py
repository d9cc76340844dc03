"""resfx's version, in one place: the package, `resfx --version` and the wheel's metadata read it.

Example:
    >>> from resfx._version import __version__
    >>> __version__.count(".")
    2
"""

__version__ = "0.1.0"
