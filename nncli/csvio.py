"""Reading tables and writing files: the edge between nncli and the file system.

- :func:`read_csv` reads a CSV with one ``pandas.read_csv`` call. Files are UTF-8 (a BOM is
  fine) with a header line of unique names. Only the cells in :data:`MISSING` count as
  missing; every other text is kept as written.
- Errors name the file and, where there is one, the row and the column: rows are numbered
  from 1 for the first data row, so row r is line r + 1 of the file (:func:`cell`).
- :func:`atomic_file` is the one way nncli writes a file: into a temporary file beside the
  target, flushed and fsynced, then renamed over it. Readers see the old file or the new
  one, never half of one; on any error the target is left untouched and the temporary
  file is removed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import DataError, did_you_mean

MISSING = ["", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "#N/A"]


def cell(source: str, i: int, column: str) -> str:
    """'SOURCE: row i+1 (line i+2), column 'C'' for the 0-based data row i."""
    return f"{source}: row {i + 1} (line {i + 2}), column '{column}'"


def missing_columns_message(source: str, missing: list, header: list) -> str:
    """One line naming the missing columns, the closest existing name and the columns there are.

    A header that is a single column containing ';', tab or '|' is a file with another
    separator: that is said instead.
    """
    for sep in (";", "\t", "|"):
        if len(header) == 1 and sep in str(header[0]):
            return (f"{source}: the header is a single column {header[0]!r}: the file looks {sep!r}-separated; "
                    "nncli reads comma-separated CSV, so save it with commas")
    cols = ", ".join(repr(m) for m in missing)
    hint = did_you_mean(missing[0], header)
    return f"{source}: missing column{'s' if len(missing) > 1 else ''} {cols}{hint} (columns: {', '.join(header)})"


# ---------------------------------------------------------------------- reading


def check_header(header, source: str) -> list[str]:
    """The header's names, or a DataError for an empty header or a name given twice."""
    if not header or all(not h.strip() for h in header):
        raise DataError(f"{source}: no header line; the first line must name the columns")
    dup = sorted({h for h in header if header.count(h) > 1}, key=header.index)
    if dup:
        raise DataError(f"{source}: duplicate column name{'s' if len(dup) > 1 else ''} "
                        f"{', '.join(repr(d) for d in dup)}; column names must be unique")
    return list(header)


def read_header(path: Path, source: str) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text; save the file as UTF-8 CSV") from None
    return check_header(header, source)


def open_csv_source(path: str | Path, key: str = "") -> tuple[Path, str]:
    """(the path, how to name it in messages: '<key> <path>'); a DataError if it is no readable file."""
    p = Path(path)
    source = f"{key} {path}" if key else str(path)
    if not p.exists():
        hint = "" if p.is_absolute() else " (relative paths resolve against the current directory)"
        raise DataError(f"{source}: file not found{hint}")
    if p.is_dir():
        raise DataError(f"{source}: is a directory, not a CSV file")
    if p.stat().st_size == 0:
        raise DataError(f"{source}: the file is empty (0 bytes); expected a header line and data rows")
    return p, source


def read_csv(path: str | Path, key: str = "", str_columns=(), required=()):
    """The CSV as a DataFrame; ``str_columns`` are kept as text exactly as written.

    ``key`` names where the path came from (e.g. ``data.train``) for error messages;
    ``required`` columns must be in the header. Missing cells (:data:`MISSING`) become NaN.
    """
    import pandas as pd

    p, source = open_csv_source(path, key)
    header = read_header(p, source)
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(missing_columns_message(source, missing, header))
    if any(not str(c).strip() for c in required):
        raise DataError(f"{source}: a column used as a feature or target has an empty name; give it a name in the header")
    dtype = {c: str for c in str_columns if c in header}
    try:
        # na_filter=False keeps pandas' fast path for clean numeric columns; a column with a
        # missing cell is read as text, and the missing tokens become NaN just below
        df = pd.read_csv(p, encoding="utf-8-sig", dtype=dtype or None, na_filter=False, low_memory=False)
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text; save the file as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: no columns to read") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(f"{source}: malformed CSV: {_last_line(e)}") from None
    if len(df) == 0:
        raise DataError(f"{source}: has a header but no data rows")
    for c in df.columns:
        col = df[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            df[c] = col.where(~col.isin(MISSING))
    return df


def _last_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[-1] if text else type(e).__name__


# ---------------------------------------------------------------------- writing


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb", **open_kw) -> Iterator:
    """``open(path, mode)`` that replaces ``path`` only when the block ends without error.

    Writes go to ``.NAME.<pid>.<hex>.tmp`` in the same directory (so the rename cannot
    cross file systems), which is flushed, fsynced and renamed over ``path``. On any
    error, or an interruption, the temporary file is removed and ``path`` keeps its old
    content. Raises OSError if the file cannot be written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fh = open(tmp, mode.replace("w", "x"), **open_kw)
    done = False
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(tmp, path)
        done = True
    finally:
        if not done:
            try:
                fh.close()  # flushes what is buffered: on a full disk that fails again
            except OSError:
                pass
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} as JSON")


def _finite_or_null(o):
    """NaN and infinities become null: nncli's JSON files are strict JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite_or_null(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite_or_null(v) for v in o]
    return o


def to_json(obj) -> str:
    return json.dumps(_finite_or_null(obj), indent=2, ensure_ascii=False, default=_json_default) + "\n"


def write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, to_json(obj))


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def write_rows(path: str | Path, header: list[str], rows) -> None:
    """A CSV of ``header`` and ``rows`` (lists of cells), '\\n' line ends."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
