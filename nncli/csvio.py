"""Reading tables and writing files: the edge between nncli and the file system.

- :func:`read_csv` reads a CSV with one ``pandas.read_csv`` call (or a Parquet file with
  pyarrow; separators, compression and formats are in :mod:`nncli.formats`). Files are
  UTF-8 (a BOM is fine) with a header line of unique names. Only the cells in :data:`MISSING` count as
  missing; every other text is kept as written.
- Errors name the file and, where there is one, the row and the column: rows are numbered
  from 1 for the first data row, so row r is line r + 1 of the file (:func:`cell`).
- :func:`atomic_file` is the one way nncli writes a file: into a temporary file beside the
  target, flushed and fsynced, then renamed over it. Readers see the old file or the new
  one, never half of one; on any error the target is left untouched and the temporary
  file is removed. One left by a killed process is removed by the next write of its target.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import secrets
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import numpy as np

from . import formats
from .errors import DataError, did_you_mean
from .formats import short

MISSING = ["", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "#N/A"]


def cell(source: str, i: int, column: str) -> str:
    """'SOURCE: row i+1 (line i+2), column 'C'' for the 0-based data row i."""
    return f"{source}: row {i + 1} (line {i + 2}), column '{column}'"


def missing_columns_message(source: str, missing: list, header: list, sep: str = ",") -> str:
    """One line naming the missing columns, the closest existing name and the columns there are.

    A header that is a single column containing another separator (',', ';', tab, '|') is a
    file with that separator: that is said instead. Long headers are shortened.
    """
    if len(header) == 1:
        for alt in (",", ";", "\t", "|"):
            if alt != sep and alt in str(header[0]):
                how = 'data.sep: "\\t"' if alt == "\t" else f"data.sep: '{alt}'"
                return (f"{source}: the header is a single column {short(header[0], 60)!r}: the file looks "
                        f"{formats.sep_name(alt)}-separated; set {how} (eval and predict: --sep)"
                        + (", or save it with commas" if alt != "," else ""))
    cols = ", ".join(repr(short(m, 40)) for m in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    hint = did_you_mean(missing[0], header)
    shown = ", ".join(short(h, 40) for h in header[:20]) + (f", ... ({len(header)} columns)" if len(header) > 20 else "")
    single = (f"; the first line has one field only: is this a {formats.table_kind(sep)} table with a header line?"
              if len(header) == 1 and not hint else "")
    return f"{source}: missing column{'s' if len(missing) > 1 else ''} {cols}{hint} (columns: {shown}){single}"


# ---------------------------------------------------------------------- reading


def check_header(header, source: str) -> list[str]:
    """The header's names, or a DataError for an empty header or a name given twice."""
    if not header or all(not h.strip() for h in header):
        raise DataError(f"{source}: no header line; the first line must name the columns")
    dup = sorted({h for h in header if header.count(h) > 1}, key=header.index)
    if dup:
        raise DataError(f"{source}: duplicate column name{'s' if len(dup) > 1 else ''} "
                        f"{short(', '.join(repr(d) for d in dup))}; column names must be unique")
    return list(header)


def read_header(path: Path, source: str, sep: str | None = None) -> list[str]:
    """The names on the header line, read through the decompression the name asks for.

    A file that is no text table (JSON, a workbook, binary data) is an error saying what
    it looks like. ``sep`` None: by the name (:func:`nncli.formats.default_sep`).
    """
    sep = sep or formats.default_sep(path)
    formats.not_a_table(source, formats.read_head(path, source), formats.table_kind(sep))
    try:
        with formats.decompression_errors(path, source), formats.open_bytes(path, source) as raw, \
                io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh, delimiter=sep), None)
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text; save the file as UTF-8 CSV") from None
    except csv.Error as e:
        raise DataError(f"{source}: malformed header line: {short(e)}") from None
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
    kind = _special_file(p)
    if kind:  # nncli reads a table more than once (its header, its fingerprint, its rows)
        stdin = "" if key else " (or give - to read CSV on stdin)"
        raise DataError(f"{source}: is {kind}, not a regular file; save the table to a file first{stdin}")
    if p.stat().st_size == 0:
        raise DataError(f"{source}: the file is empty (0 bytes); expected a header line and data rows")
    return p, source


def _special_file(p: Path) -> str:
    """'a character device', 'a named pipe (FIFO)', ... for a path that is no regular file; '' otherwise."""
    import stat

    try:
        mode = p.stat().st_mode
    except OSError:
        return ""
    for test, kind in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return ""


def read_csv(path: str | Path, key: str = "", str_columns=(), required=(), na_values=(), sep=None):
    """The table as a DataFrame; ``str_columns`` are kept as text exactly as written.

    Delimited text (``sep``, or by the name: tab for .tsv/.tab, else a comma), compressed
    by the name's ending (.gz, .bz2, .xz, .zip, .zst), or Parquet (.parquet): see
    :mod:`nncli.formats`.

    ``key`` names where the path came from (e.g. ``data.train``) for error messages;
    ``required`` columns must be in the header. Missing cells (:data:`MISSING` and the
    extra tokens ``na_values``, e.g. data.na_values) become NaN.
    """
    p, source = open_csv_source(path, key)
    parquet, sep = formats.is_parquet(p), sep or formats.default_sep(p)
    header = check_header(list(formats.parquet_schema(p, source).names), source) if parquet else read_header(p, source, sep)
    return _checked_table(header, source, sep, str_columns, required, na_values, lambda dtype: (
        formats.read_parquet(p, source, list(dtype))[1] if parquet else _read_delimited(p, source, sep, dtype)))


def read_csv_bytes(data: bytes, source: str, str_columns=(), required=(), na_values=()):
    """:func:`read_csv` of CSV bytes in memory, comma-separated (nncli.api reads a DataFrame
    as the file ``df.to_csv(index=False)`` writes): the same checks, dtypes and missing cells."""
    try:
        header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")), None)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{source}: unreadable header ({short(e)})") from None
    header = check_header(header, source)
    return _checked_table(header, source, ",", str_columns, required, na_values,
                          lambda dtype: _read_delimited(None, source, ",", dtype, data))


def _checked_table(header: list[str], source: str, sep: str, str_columns, required, na_values, read):
    """``read(dtype)``'s DataFrame after the header's checks, with the missing cells as NaN."""
    import pandas as pd

    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(missing_columns_message(source, missing, header, sep))
    if any(not str(c).strip() for c in required):
        raise DataError(f"{source}: a column used as a feature or target has an empty name; give it a name in the header")
    dtype = {c: str for c in str_columns if c in header}
    df = read(dtype)
    if len(df) == 0:
        raise DataError(f"{source}: has a header but no data rows")
    tokens = numeric_tokens(na_values)
    for c in df.columns:
        col = df[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            col = col.where(~col.isin(MISSING + list(na_values)))
            if tokens and c not in dtype:  # text only for its blank cells, all others numbers: -1.0 is "-1" too
                num = pd.to_numeric(col, errors="coerce")
                if num.notna().sum() == col.notna().sum():
                    col = col.where(~num.isin(tokens))
            df[c] = col
        elif tokens and not pd.api.types.is_bool_dtype(col):
            df[c] = col.where(~col.isin(tokens))  # e.g. -999 in a numeric column
    return df


def numeric_tokens(na_values) -> list[float]:
    """The missing-value tokens that are numbers (a numeric column holds them as numbers)."""
    out = []
    for v in na_values:
        try:
            out.append(float(v))
        except ValueError:
            pass
    return [v for v in out if math.isfinite(v)]


def _read_delimited(p: Path | None, source: str, sep: str, dtype: dict, data: bytes | None = None):
    """One ``pandas.read_csv`` of the (decompressed) file, or of ``data`` (p None), every error one short line."""
    import pandas as pd

    try:
        with (formats.decompression_errors(p, source) if data is None else nullcontext()), \
                (formats.open_bytes(p, source) if data is None else io.BytesIO(data)) as fh:
            # na_filter=False keeps pandas' fast path for clean numeric columns; a column with a
            # missing cell is read as text, and the missing tokens become NaN in read_csv
            df = pd.read_csv(fh, sep=sep, encoding="utf-8-sig", dtype=dtype or None, na_filter=False, low_memory=False)
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text; save the file as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: no columns to read") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(f"{source}: malformed {formats.table_kind(sep)}: {formats.parser_message(e)}") from None
    formats.check_no_extra_fields(df, source, sep, p)
    return df


# ---------------------------------------------------------------------- writing


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb", **open_kw) -> Iterator:
    """``open(path, mode)`` that replaces ``path`` only when the block ends without error.

    Writes go to ``.NAME.<pid>.<hex>.tmp`` in the same directory (so the rename cannot
    cross file systems), which is flushed, fsynced and renamed over ``path``. On any
    error, or an interruption, the temporary file is removed and ``path`` keeps its old
    content. Raises OSError if the file cannot be written. Temporary files of ``path`` that
    a dead process left (SIGKILL in the middle of a write) are removed first
    (:func:`remove_stale_temps`).
    """
    path = Path(path)
    remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fh = None
    done = False
    try:
        fh = open(tmp, mode.replace("w", "x"), **open_kw)  # inside the try: a signal right after it is cleaned up too
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(tmp, path)
        done = True
    except OSError as e:
        if e.filename is None or e.filename == str(tmp):  # the error names the file the user knows
            e.filename, e.filename2 = str(path), None
        raise
    finally:
        if not done:
            try:
                if fh is not None:
                    fh.close()  # flushes what is buffered: on a full disk that fails again
            except OSError:
                pass
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                if fh is not None:  # (when the open itself failed, its error is the one to report)
                    raise


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove ``.NAME.<pid>.<hex>.tmp`` files of ``path`` whose process is gone; return them.

    Only temporary files of this very target name are looked at, and only those whose PID
    is not a running process: a write in progress (this process's or another's) is never
    touched. A PID reused by an unrelated process keeps its file until that process ends.
    Errors (an unreadable directory, a file removed meanwhile) are ignored.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.([0-9]+)\.[0-9a-f]{{8}}\.tmp")
    removed = []
    try:
        with os.scandir(path.parent) as entries:
            names = [e.name for e in entries if e.name.startswith(f".{path.name}.") and e.name.endswith(".tmp")]
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or _process_alive(int(m.group(1))):
            continue
        try:
            (path.parent / name).unlink()
            removed.append(path.parent / name)
        except OSError:
            pass
    return removed


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (one we may not signal counts as running)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return True  # not a PID nncli writes; never guess
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


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


def fingerprint(path: str | Path) -> dict:
    """{"size": bytes, "sha256": hex digest} of a file, read in 1 MiB blocks: what a run
    records of each data file, to tell later whether it is still the same data."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"size": Path(path).stat().st_size, "sha256": h.hexdigest()}
