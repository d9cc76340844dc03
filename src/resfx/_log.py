"""Progress lines through `logging`: the loggers resfx writes to, and the one handler the CLI installs.

Library code only logs, to loggers under `"resfx"` (`"resfx.train"`,
`"resfx.probe"`, `"resfx.extract"`, `"resfx.data"`), and never configures
logging: a program that imports resfx decides what is shown, e.g.
`logging.getLogger("resfx").setLevel(logging.INFO)` with a handler of its own,
or `logging.basicConfig(level=logging.INFO)`. The `resfx` command calls
`configure_logging`, which installs one handler on the `"resfx"` logger (never
the root logger) that writes every record as one flushed line, so a run whose
stderr is a file or a pipe shows its progress as it goes.

Each log call passes its numbers twice: in the message, for people, and as
`extra=` fields, for machines; the `"text"` format writes the message, the
`"json"` format one JSON object per line with the fields.
"""

import contextlib
import datetime
import json
import logging
import math
import sys
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
"""How `configure_logging` writes a record: `"text"` (`resfx train: epoch 1/5 ...`) or
`"json"` (one object per line: time, level, logger, message and the record's fields)."""

LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
"""The formats `configure_logging` takes, in the order `--log-format` lists them."""

ROOT_LOGGER = "resfx"
"""The logger every resfx logger is under, and the one `configure_logging` configures."""

_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime"}
"""What every `LogRecord` has; anything else on a record came from `extra=`."""


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call passed with `extra=`, in the order it passed them.

    Args:
        record: a log record.

    Returns:
        The fields, by name.

    Example:
        >>> record = logging.makeLogRecord({"msg": "epoch 1/2", "epoch": 1, "loss": 2.3})
        >>> record_fields(record)
        {'epoch': 1, 'loss': 2.3}
    """
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}


def _plain(value: Any) -> Any:
    """A value JSON can hold: non-finite floats as strings (JSON has no NaN), others by `str`."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: `time` (UTC, ISO 8601), `level`, `logger`, `message`, fields.

    The fields are those the log call passed with `extra=` (see `record_fields`); a
    record with an exception adds its traceback as `exception`.

    Example:
        >>> record = logging.makeLogRecord({"name": "resfx.train", "levelname": "INFO",
        ...                                 "msg": "epoch %d/%d", "args": (1, 2), "epoch": 1,
        ...                                 "created": 0.0})
        >>> JsonFormatter().format(record)
        '{"time": "1970-01-01T00:00:00.000+00:00", "level": "info", "logger": "resfx.train", "message": "epoch 1/2", "epoch": 1}'
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record's line (without its newline)."""
        time = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        line: dict[str, Any] = {
            "time": time.isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record_fields(record).items():
            line.setdefault(name, _plain(value))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, allow_nan=False)


class TextFormatter(logging.Formatter):
    """A record as `<prefix>: <message>`, with `warning: ` or `error: ` before a warning's or error's.

    The same shape as the `resfx` command's warnings and errors
    (`resfx train: warning: ...`).

    Args:
        prefix: what each line starts with, e.g. `"resfx train"`.

    Example:
        >>> record = logging.makeLogRecord({"levelno": logging.WARNING, "msg": "2 images skipped"})
        >>> TextFormatter("resfx probe").format(record)
        'resfx probe: warning: 2 images skipped'
    """

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        """The record's line (without its newline)."""
        level = ""
        if record.levelno >= logging.ERROR:
            level = "error: "
        elif record.levelno >= logging.WARNING:
            level = "warning: "
        text = f"{self.prefix}: {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class LineHandler(logging.Handler):
    r"""Writes each record as one line and flushes it, around any tqdm bars on the same stream.

    Args:
        stream: where lines go; `None` is whatever `sys.stderr` is when a record comes
            (so a test's or a program's replacement of stderr is followed).

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> handler = LineHandler(out)
        >>> handler.setFormatter(TextFormatter("resfx train"))
        >>> handler.handle(logging.makeLogRecord({"msg": "epoch 1/2", "levelno": logging.INFO}))
        True
        >>> out.getvalue()
        'resfx train: epoch 1/2\n'
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        """The stream lines go to now."""
        return sys.stderr if self._stream is None else self._stream

    def emit(self, record: logging.LogRecord) -> None:
        """Write `record`'s line and flush: a file or pipe holds it at once."""
        try:
            text, stream = self.format(record), self.stream
            tqdm = sys.modules.get("tqdm")
            if tqdm is None:
                stream.write(text + "\n")
            else:  # a bar may be showing: tqdm clears it, writes the line, and redraws it
                tqdm.tqdm.write(text, file=stream)
            stream.flush()
        except Exception:
            self.handleError(record)


def configure_logging(
    fmt: LogFormat = "text",
    stream: TextIO | None = None,
    *,
    prefix: str = "resfx",
    level: int = logging.INFO,
) -> LineHandler:
    """Send resfx's log records to `stream`, one flushed line each, in format `fmt`.

    Installs one `LineHandler` on the `"resfx"` logger, replacing the one an earlier
    call installed (calling it twice leaves one), and sets that logger's level. The
    root logger and handlers added by others are left as they are. The `resfx`
    command calls it (through `logging_to`); library code never does.

    Args:
        fmt: `"text"` or `"json"` (see `LogFormat`).
        stream: where lines go; `None`: `sys.stderr` as it is when each record comes.
        prefix: what text lines start with, e.g. `"resfx train"`.
        level: the least level shown.

    Returns:
        The installed handler.

    Raises:
        ValueError: an unknown `fmt`.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> _ = configure_logging("json", out)
        >>> _ = configure_logging("json", out)  # again: still one handler
        >>> logging.getLogger("resfx.train").info("epoch %d/%d", 1, 2, extra={"epoch": 1})
        >>> json.loads(out.getvalue())["epoch"]
        1
        >>> sum(isinstance(h, LineHandler) for h in logging.getLogger("resfx").handlers)
        1
        >>> remove_logging()
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {LOG_FORMATS}")
    remove_logging()
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(prefix))
    logger = logging.getLogger(ROOT_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def remove_logging() -> None:
    """Undo `configure_logging`: take out its handler (if any) and unset the `"resfx"` level.

    Example:
        >>> _ = configure_logging()
        >>> remove_logging()
        >>> [h for h in logging.getLogger("resfx").handlers if isinstance(h, LineHandler)]
        []
    """
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, LineHandler)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


@contextlib.contextmanager
def logging_to(
    fmt: LogFormat = "text", stream: TextIO | None = None, *, prefix: str = "resfx"
) -> Iterator[LineHandler]:
    r"""`configure_logging` for the duration of a `with` block, then the logging there was before.

    What a command does around its run, so a program (or a test) that calls
    `resfx.cli.main` keeps its own logging afterwards.

    Args:
        fmt: `"text"` or `"json"`.
        stream: where lines go; `None`: `sys.stderr` as it is when each record comes.
        prefix: what text lines start with.

    Yields:
        The installed handler.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with logging_to("text", out, prefix="resfx probe"):
        ...     logging.getLogger("resfx.probe").info("resnet18 layer4: 81.2%")
        >>> logging.getLogger("resfx.probe").info("not shown")
        >>> out.getvalue()
        'resfx probe: resnet18 layer4: 81.2%\n'
    """
    logger = logging.getLogger(ROOT_LOGGER)
    level = logger.level
    earlier = [h for h in logger.handlers if isinstance(h, LineHandler)]
    handler = configure_logging(fmt, stream, prefix=prefix)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        for restored in earlier:
            logger.addHandler(restored)
        logger.setLevel(level)
