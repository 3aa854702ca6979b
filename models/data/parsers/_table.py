"""Reading delimited text files with errors that name the file and the offending line.

The fast path is one typed `pandas.read_csv` call. Only when it fails (or a line turns out
to be short) is the file re-read line by line to find the first bad line, so large files
cost nothing extra and bad ones still get a precise message.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from models.data.errors import DatasetError

Kind = Literal["int", "float", "str"]
Columns = Sequence[tuple[str, Kind]]

_PANDAS_DTYPES: dict[str, Any] = {"int": "int64", "float": "float64", "str": str}
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # finite numbers only
_INT64_MAX = 2**63 - 1
_MULTI_CHAR_SEP = "\x1f"  # stands in for "::" so the fast C parser can be used


@dataclass(frozen=True)
class TextFormat:
    """How a delimited file is written.

    Attributes:
        sep: Field separator, e.g. "\\t", "|", "::" or ",".
        encoding: Text encoding, e.g. "latin-1" or "utf-8".
        quoted: Whether fields may be double-quoted (CSV).
        header: Whether the first line is a header.
    """

    sep: str
    encoding: str
    quoted: bool = False
    header: bool = False


class _BadLineError(Exception):
    def __init__(self, lineno: int, reason: str) -> None:
        super().__init__(reason)
        self.lineno = lineno
        self.reason = reason


def require_file(path: Path) -> Path:
    """Returns `path` if it is a regular file.

    Raises:
        DatasetError: "missing file: <path>".
    """
    if not path.is_file():
        raise DatasetError(f"missing file: {path}")
    return path


def read_header(path: Path, fmt: TextFormat) -> list[str]:
    """Returns the fields of a file's first line.

    Raises:
        DatasetError: The file is missing, empty or not valid text.
    """
    require_file(path)
    for _lineno, text in _lines(path, fmt.encoding, first_only=True, context=True):
        if fmt.quoted:
            return next(csv.reader([text], delimiter=fmt.sep))
        return text.rstrip("\r\n").split(fmt.sep)
    raise DatasetError(f"{path}: file is empty")


def read_table(path: Path, fmt: TextFormat, columns: Columns) -> pd.DataFrame:
    """Reads a delimited file whose lines hold exactly `columns`.

    Args:
        path: The file.
        fmt: Separator, encoding, quoting and header.
        columns: (name, kind) per field, in file order; kind is "int", "float" or "str".

    Returns:
        A DataFrame with those column names: int64, float64 or object (str) columns.
        Blank lines are skipped; an empty file gives an empty frame.

    Raises:
        DatasetError: The file is missing, a line has the wrong number of fields, a value
            does not parse as its kind, or the text is not valid in `fmt.encoding`; the
            message names the file and the line.
    """
    require_file(path)
    try:
        frame = _read_fast(path, fmt, columns)
    except pd.errors.EmptyDataError:
        return pd.DataFrame({name: pd.Series(dtype=_PANDAS_DTYPES[kind]) for name, kind in columns})
    except (ValueError, OverflowError, csv.Error) as exc:  # ParserError, UnicodeDecodeError
        raise _diagnose(path, fmt, columns) or _unparsable(path, str(exc)) from None
    if frame.shape[1] != len(columns):
        raise _diagnose(path, fmt, columns) or _unparsable(path, "wrong number of fields")
    if frame.isna().to_numpy().any():
        # A short line leaves its last field missing (NaN); so does an empty last field,
        # which is legitimate in a text column. Only a line-by-line pass can tell them apart.
        error = _diagnose(path, fmt, columns)
        if error is not None:
            raise error
        for index, (_, kind) in enumerate(columns):
            if kind == "str":
                frame[index] = frame[index].fillna("")
        if frame.isna().to_numpy().any():
            raise _unparsable(path, "missing values")
    frame.columns = [name for name, _ in columns]
    return frame


def show(value: Any) -> str:
    """Formats a value for a message: numpy scalars as plain Python values."""
    return repr(value.item() if hasattr(value, "item") else value)


def line_number(fmt: TextFormat, row: int) -> int:
    """Maps a 0-based data row to its 1-based line (exact when the file has no blank lines)."""
    return row + 1 + int(fmt.header)


def fail_at(path: Path, fmt: TextFormat, row: int, message: str) -> DatasetError:
    """Builds the error for a bad value found after parsing, naming file and line."""
    return DatasetError(f"{path}, line {line_number(fmt, row)}: {message}")


def _read_fast(path: Path, fmt: TextFormat, columns: Columns) -> pd.DataFrame:
    source: Any = path
    sep = fmt.sep
    if len(sep) > 1:
        source = io.StringIO(path.read_text(encoding=fmt.encoding).replace(sep, _MULTI_CHAR_SEP))
        sep = _MULTI_CHAR_SEP
    options: dict[str, Any] = {
        "sep": sep,
        "header": None,
        "skiprows": 1 if fmt.header else 0,
        "dtype": {index: _PANDAS_DTYPES[kind] for index, (_, kind) in enumerate(columns)},
        "encoding": fmt.encoding,
        "quoting": csv.QUOTE_MINIMAL if fmt.quoted else csv.QUOTE_NONE,
        "keep_default_na": False,
        "na_values": {len(columns) - 1: [""]},  # see read_table
        "engine": "c",
        "skip_blank_lines": True,
    }
    return pd.read_csv(source, **options)


def _diagnose(path: Path, fmt: TextFormat, columns: Columns) -> DatasetError | None:
    """Finds the first bad line of a file; None when every line is well-formed."""
    lineno = 0
    try:
        for lineno, fields in _rows(path, fmt):
            if len(fields) != len(columns):
                return DatasetError(
                    f"{path}, line {lineno}: expected {len(columns)} fields separated by"
                    f" {fmt.sep!r}, found {len(fields)}"
                )
            for (name, kind), value in zip(columns, fields, strict=True):
                if not _parses(value, kind):
                    return DatasetError(
                        f"{path}, line {lineno}: {value!r} is not a valid {kind} ({name})"
                    )
    except _BadLineError as bad:
        return DatasetError(f"{path}, line {bad.lineno}: {bad.reason}")
    except csv.Error as exc:
        return DatasetError(f"{path}, line {lineno + 1}: {exc}")
    return None


def _unparsable(path: Path, reason: str) -> DatasetError:
    return DatasetError(f"{path}: could not parse file: {reason}")


def _parses(value: str, kind: Kind) -> bool:
    text = value.strip()
    if kind == "int":
        return bool(_INT.fullmatch(text)) and abs(int(text)) <= _INT64_MAX
    if kind == "float":
        return bool(_FLOAT.fullmatch(text))
    return True


def _lines(
    path: Path, encoding: str, *, first_only: bool = False, context: bool = False
) -> Iterator[tuple[int, str]]:
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                reason = f"not valid {encoding} text ({exc.reason} at byte {exc.start})"
                if context:
                    raise DatasetError(f"{path}, line {lineno}: {reason}") from None
                raise _BadLineError(lineno, reason) from None
            yield lineno, text
            if first_only:
                return


def _rows(path: Path, fmt: TextFormat) -> Iterator[tuple[int, list[str]]]:
    if not fmt.quoted:
        for lineno, text in _lines(path, fmt.encoding):
            line = text.rstrip("\r\n")
            if (lineno == 1 and fmt.header) or not line:
                continue
            yield lineno, line.split(fmt.sep)
        return
    current = [0]

    def texts() -> Iterator[str]:
        for lineno, text in _lines(path, fmt.encoding):
            current[0] = lineno
            yield text

    for index, fields in enumerate(csv.reader(texts(), delimiter=fmt.sep, strict=True)):
        if (index == 0 and fmt.header) or not fields:
            continue
        yield current[0], fields
