"""Validation of uploaded CSV files: the limits give 413, malformed content gives 422."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass


class CsvTooLarge(Exception):
    pass


class CsvInvalid(Exception):
    pass


@dataclass(frozen=True)
class CsvSummary:
    columns: list[str]
    rows: int


def inspect_csv(data: bytes, *, max_rows: int, max_columns: int) -> CsvSummary:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvInvalid(f"file is not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise CsvInvalid("file contains NUL bytes: not a CSV text file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            raise CsvInvalid("file is empty: expected a header line and at least 1 data row")
        columns = [name.strip() for name in header]
        if len(columns) < 2:
            raise CsvInvalid(f"header has {len(columns)} column; at least 2 are needed")
        if len(columns) > max_columns:
            raise CsvTooLarge(f"{len(columns)} columns exceed the limit of {max_columns}")
        if any(not name for name in columns):
            raise CsvInvalid(f"header line {reader.line_num} has an empty column name")
        duplicates = sorted({name for name in columns if columns.count(name) > 1})
        if duplicates:
            raise CsvInvalid(f"duplicate column names in header: {', '.join(duplicates)}")
        rows = 0
        for row in reader:
            if not row:
                continue
            if len(row) != len(columns):
                raise CsvInvalid(
                    f"line {reader.line_num} has {len(row)} fields but the header has {len(columns)}"
                )
            rows += 1
            if rows > max_rows:
                raise CsvTooLarge(f"more than {max_rows} data rows (the limit)")
    except csv.Error as exc:
        raise CsvInvalid(f"line {reader.line_num}: malformed CSV: {exc}") from None
    if rows == 0:
        raise CsvInvalid("no data rows: at least 1 row after the header is needed")
    return CsvSummary(columns=columns, rows=rows)
