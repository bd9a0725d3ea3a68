"""Table file formats: separators, compression, Parquet, and telling a table from a non-table.

- The separator of a delimited file is ``data.sep`` (or ``--sep``) when given, else chosen
  by the name: tab for ``.tsv`` / ``.tab`` (also compressed: ``x.tsv.gz``), a comma
  otherwise (:func:`default_sep`).
- A name ending in ``.gz``, ``.bz2``, ``.xz``, ``.zip`` (one file inside) or ``.zst`` is read
  through that decompression (:func:`open_bytes`) and written through that compression
  (:func:`table_writer`); ``.zst`` needs the ``zstandard`` package (``nncli[zstd]``).
- ``.parquet`` files are read and written with pyarrow (``nncli[parquet]``); their columns
  keep their types (numbers, booleans, text), and nulls are missing cells.
- :func:`sniff` names what the first bytes of a file look like when that is not a text
  table (JSON, a spreadsheet, a compressed or binary file), so the error says so in one
  short line instead of quoting the parser.

Every error is a one-line :class:`DataError` naming the file.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import importlib
import io
import lzma
import re
import sys
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from .errors import DataError

#: name endings read through a decompression (and written through the compression)
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}
#: name endings (before any compression ending) whose default separator is a tab
TAB_SUFFIXES = (".tsv", ".tab")
#: optional packages: (the extra that installs it, what needs it)
EXTRAS = {"pyarrow": ("parquet", "Parquet files"), "zstandard": ("zstd", ".zst files")}
#: words accepted for a tab in data.sep / --sep (a YAML or shell '\t' arrives as backslash-t)
SEP_WORDS = {"tab": "\t", "\\t": "\t", "TAB": "\t"}
#: endings of table formats nncli does not write (predict -o refuses them rather than write CSV)
NOT_WRITTEN = (".json", ".jsonl", ".xlsx", ".xls", ".ods", ".feather", ".arrow", ".h5", ".hdf5", ".pkl", ".pickle", ".npy", ".npz")
#: how much of a file :func:`sniff` looks at
HEAD_BYTES = 1 << 16
#: the longest quote of a parser's message or a cell in an error
SHORT = 120


def short(text, limit: int = SHORT) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(value, limit: int = 60) -> str:
    """A user's value as a message quotes it: its repr, cut to ``limit`` characters (a value
    from a file may be megabytes long, or a list of millions)."""
    return short(_bounded_repr(value), limit)


def _bounded_repr(value, depth: int = 0) -> str:
    """repr(value), but long or deep lists, tuples and dicts are cut before they are formatted."""
    if isinstance(value, dict):
        if depth >= 3:
            return "{...}"
        parts = [f"{_bounded_repr(k, depth + 1)[:30]}: {_bounded_repr(v, depth + 1)[:30]}" for k, v in list(value.items())[:8]]
    elif isinstance(value, (list, tuple)):
        if depth >= 3:
            return "[...]" if isinstance(value, list) else "(...)"
        parts = [_bounded_repr(v, depth + 1)[:30] for v in value[:8]]
    elif isinstance(value, str) and len(value) > 200:
        return repr(value[:200])
    else:
        return repr(value)
    if len(value) > 8:
        parts.append(f"... {len(value):,} items")
    brackets = {dict: "{}", list: "[]"}.get(type(value), "()")
    return brackets[0] + ", ".join(parts) + ("," if isinstance(value, tuple) and len(value) == 1 else "") + brackets[1]


# ---------------------------------------------------------------------- names


def compression_of(path) -> Optional[str]:
    """The codec a name's ending asks for ('gzip', 'bz2', 'xz', 'zip', 'zstd'), or None."""
    return COMPRESSIONS.get(Path(path).suffix.lower())


def format_suffix(path) -> str:
    """The ending that names the table format, behind any compression: 'a.tsv.gz' -> '.tsv'."""
    p = Path(path)
    if p.suffix.lower() in COMPRESSIONS:
        p = Path(p.stem)
    return p.suffix.lower()


def is_parquet(path) -> bool:
    return Path(path).suffix.lower() == ".parquet"


def default_sep(path) -> str:
    """Tab for .tsv / .tab files (compressed or not), a comma for anything else."""
    return "\t" if format_suffix(path) in TAB_SUFFIXES else ","


def sep_option(value, what: str = "--sep"):
    """``value`` (None: not given) checked as :func:`check_sep` checks it; a bad one is a
    ConfigError naming ``what`` (--sep, the API's sep=)."""
    if value is None:
        return None
    from .errors import ConfigError

    try:
        return check_sep(value)
    except ValueError as e:
        raise ConfigError(f"{what}: {e}") from None


def check_sep(value) -> str:
    """A separator as given in data.sep or --sep: one character ('tab' or '\\t' for a tab).

    Raises ValueError (with the reason) for anything that cannot separate CSV columns.
    """
    sep = SEP_WORDS.get(value, value) if isinstance(value, str) else value
    if not isinstance(sep, str) or len(sep) != 1:
        raise ValueError(f"must be one character such as ',', ';', '|' or tab, not {shown(value)}")
    if sep in "\"\r\n" or sep.isalnum():
        raise ValueError(f"{shown(value)} cannot separate columns; use a character such as ',', ';', '|' or tab")
    return sep


def sep_name(sep: str) -> str:
    """How to write ``sep`` in a message or YAML: 'tab' for a tab, else quoted."""
    return "tab" if sep == "\t" else repr(sep)


def table_kind(sep: str) -> str:
    return {",": "CSV", "\t": "TSV"}.get(sep, f"{sep!r}-separated")


# ---------------------------------------------------------------------- optional packages


def optional_import(module: str, source: str, verb: str = "reading"):
    """``import module``, or a DataError naming the nncli extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        extra, what = EXTRAS[package]
        raise DataError(f"{source}: {verb} {what} needs the {package} package: pip install {package} "
                        f"(or nncli's extra '{extra}': pip install -e '.[{extra}]')") from None


# ---------------------------------------------------------------------- reading bytes


def open_bytes(path, source: str):
    """A binary stream of the file's content, decompressed as its name's ending says."""
    codec = compression_of(path)
    with decompression_errors(path, source):
        if codec is None:
            return open(path, "rb")
        if codec == "gzip":
            return gzip.open(path, "rb")
        if codec == "bz2":
            return bz2.open(path, "rb")
        if codec == "xz":
            return lzma.open(path, "rb")
        if codec == "zstd":
            zstd = optional_import("zstandard", source)
            return io.BufferedReader(zstd.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True, closefd=True))
        zf = zipfile.ZipFile(path)
        names = [n for n in zf.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")]
        if len(names) != 1:
            zf.close()
            listed = short(", ".join(names[:5]) + (", ..." if len(names) > 5 else ""), SHORT)
            raise DataError(f"{source}: a .zip must hold exactly one table file; this one holds {len(names)}"
                            + (f" ({listed})" if names else ""))
        member = zf.open(names[0])
        zf.close()  # the member keeps the archive open until it is closed
        return member


def _codec_errors() -> tuple:
    errors = [OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile]
    zstd = sys.modules.get("zstandard")
    if zstd is not None:
        errors.append(zstd.ZstdError)
    return tuple(errors)


@contextmanager
def decompression_errors(path, source: str):
    """Errors of a decompression inside the block become one DataError (uncompressed files: unchanged)."""
    try:
        yield
    except _codec_errors() as e:
        codec = compression_of(path)
        if codec is None:
            raise
        name = {"zstd": "zstd", "zip": "ZIP"}.get(codec, codec)
        raise DataError(f"{source}: not valid {name} data, though the name ends in {Path(path).suffix} "
                        f"({short(e) or type(e).__name__})") from None


def read_head(path, source: str, n: int = HEAD_BYTES) -> bytes:
    """The first ``n`` bytes of the (decompressed) content."""
    with decompression_errors(path, source), open_bytes(path, source) as fh:
        return fh.read(n)


# ---------------------------------------------------------------------- what is it?

_MAGIC = [
    (b"PAR1", "a Parquet file", "name it .parquet"),
    (b"\x1f\x8b", "gzip-compressed data", "name it .gz (e.g. data.csv.gz)"),
    (b"\xfd7zXZ\x00", "xz-compressed data", "name it .xz (e.g. data.csv.xz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data", "name it .zst (e.g. data.csv.zst)"),
    (b"PK\x03\x04", "a ZIP archive or an Excel/OpenDocument workbook",
     "save the sheet as CSV, or name a ZIP of one CSV file .zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel (.xls) or other Office file", "save the sheet as CSV"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV"),
    (b"ARROW1", "an Arrow/Feather file", "save it as Parquet or CSV"),
    (b"\x89HDF", "an HDF5 file", "save the table as CSV"),
    (b"\x93NUMPY", "a numpy .npy array", "save the table as CSV"),
    (b"%PDF", "a PDF document", None),
    (b"\x89PNG", "a PNG image", None),
    (b"\xff\xd8\xff", "a JPEG image", None),
    (b"GIF8", "a GIF image", None),
    (b"\x7fELF", "an executable", None),
]
_JSON_ARRAY = re.compile(r"\[\s*([\[{\"\d\-]|true\b|false\b|null\b|\]|$)")


def sniff(head: bytes) -> Optional[tuple[str, Optional[str]]]:
    """(what the content looks like, what to do) when its first bytes are not a text table, else None."""
    for magic, what, fix in _MAGIC:
        if head.startswith(magic):
            return what, fix
    if head.startswith(b"BZh") and head[4:10] == b"1AY&SY":
        return "bzip2-compressed data", "name it .bz2 (e.g. data.csv.bz2)"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text", "save the file as UTF-8"
    if b"\x00" in head:
        return "binary data", None
    text = codecs.getincrementaldecoder("utf-8-sig")("replace").decode(head[:4096]).lstrip()
    if text.startswith("{") or _JSON_ARRAY.match(text):
        return "JSON", "convert it to CSV (e.g. pandas.read_json(...).to_csv(...))"
    low = text[:100].lower()
    if low.startswith(("<?xml", "<!doctype html", "<html")):
        return ("HTML" if "html" in low[:15] else "XML"), None
    return None


def not_a_table(source: str, head: bytes, kind: str = "CSV", hint: bool = True) -> None:
    """A DataError saying what the content looks like (and, with ``hint``, what to do), if
    :func:`sniff` recognises it."""
    found = sniff(head)
    if found:
        what, fix = found
        raise DataError(f"{source}: looks like {what}, not a {kind} table" + (f"; {fix}" if fix and hint else ""))


# ---------------------------------------------------------------------- Parquet


def parquet_schema(path, source: str):
    """The pyarrow schema of a Parquet file; an error saying what the file is when it is none."""
    pq = optional_import("pyarrow.parquet", source)
    try:
        return pq.read_schema(path)
    except (OSError, ValueError) as e:  # pyarrow.ArrowInvalid is a ValueError
        head = read_head(path, source)
        found = sniff(head)
        if found is not None and found[0] != "a Parquet file":
            raise DataError(f"{source}: looks like {found[0]}, not a Parquet file") from None
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head[:4096])  # a cut character at the end is fine
            text = bool(head.strip()) and not head.startswith(b"PAR1")
        except UnicodeDecodeError:
            text = False
        if text:
            raise DataError(f"{source}: looks like text (a CSV?), not a Parquet file; name the file for its format") from None
        raise DataError(f"{source}: not a readable Parquet file ({short(e)})") from None


def parquet_frame(table, str_columns=()) -> "object":
    """A pyarrow Table as a DataFrame: numbers, booleans and text keep their types, nulls are
    missing; ``str_columns`` become text (integers as written: 1 -> '1')."""
    import pandas as pd
    import pyarrow as pa

    for c in str_columns:
        if c in table.column_names and pa.types.is_integer(table.schema.field(c).type):
            table = table.set_column(table.column_names.index(c), c, table.column(c).cast(pa.string()))
    df = table.to_pandas()
    for c in df.columns:
        col = df[c]
        numeric = pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
        if (c in str_columns or not numeric) and not pd.api.types.is_string_dtype(col):
            df[c] = col.map(lambda v: v if _is_missing(v) else str(v), na_action="ignore").astype("str")
        elif pd.api.types.is_string_dtype(col) and col.dtype != "str":
            df[c] = col.astype("str")
    return df


def _is_missing(v) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def read_parquet(path, source: str, str_columns=()):
    """(header, DataFrame) of a Parquet file (see :func:`parquet_frame`)."""
    pq = optional_import("pyarrow.parquet", source)
    header = list(parquet_schema(path, source).names)
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{source}: not a readable Parquet file ({short(e)})") from None
    return header, parquet_frame(table, str_columns)


# ---------------------------------------------------------------------- tables read in chunks (predict)


@dataclass
class InputTable:
    """An input read chunk by chunk: ``header`` as written, ``chunks(n)`` yields DataFrames
    (delimited files: every cell as text; Parquet: typed columns)."""

    header: list[str]
    source: str
    chunks: Callable[[int], Iterator]
    close: Callable[[], None] = lambda: None
    arrow_schema: object = None  # the input's column types (Parquet), kept in a Parquet output
    sep: Optional[str] = None  # the separator of a delimited input

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Prepend(io.RawIOBase):
    """A binary stream that yields ``head`` and then the rest of ``raw`` (for stdin)."""

    def __init__(self, head: bytes, raw):
        self.head, self.raw = head, raw

    def readable(self):
        return True

    def readinto(self, b):
        if self.head:
            n = min(len(b), len(self.head))
            b[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.raw.read(len(b))
        b[: len(data)] = data
        return len(data)


def open_input(path: str, sep: Optional[str] = None) -> InputTable:
    """The table at ``path`` ('-': stdin, delimited) for reading in chunks.

    ``sep`` None: by the name (:func:`default_sep`; stdin: a comma).
    """
    from .csvio import check_header, open_csv_source, read_header

    if path == "-":
        raw = sys.stdin.buffer
        first = raw.readline()
        if not first.strip():
            raise DataError("stdin: no input; expected a CSV header line and rows")
        not_a_table("stdin", first, hint=False)  # "name it .gz" is no advice for a pipe
        sep = sep or ","
        try:
            header = check_header(next(csv.reader([first.decode("utf-8-sig")], delimiter=sep)), "stdin")
        except UnicodeDecodeError:
            raise DataError("stdin: not UTF-8 text") from None
        stream = io.BufferedReader(_Prepend(first, raw))
        return InputTable(header, "stdin", lambda n: _csv_chunks(stream, "-", "stdin", sep, n), stream.close, sep=sep)
    p, source = open_csv_source(path, "")
    if is_parquet(p):
        schema = parquet_schema(p, source)
        return InputTable(list(schema.names), source, lambda n: _parquet_chunks(p, source, n), arrow_schema=schema)
    sep = sep or default_sep(p)
    header = read_header(p, source, sep)
    stream = open_bytes(p, source)
    return InputTable(header, source, lambda n: _csv_chunks(stream, p, source, sep, n), stream.close, sep=sep)


def _csv_chunks(stream, path, source: str, sep: str, chunk_rows: int):
    import pandas as pd

    try:
        with decompression_errors(path, source):
            for chunk in pd.read_csv(stream, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                                     chunksize=chunk_rows):
                check_no_extra_fields(chunk, source, sep, None if path == "-" else path)
                yield chunk
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text; save the file as UTF-8 CSV") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{source}: malformed {table_kind(sep)} file: {parser_message(e)}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: no data") from None


def _parquet_chunks(path, source: str, chunk_rows: int):
    pq = optional_import("pyarrow.parquet", source)
    import pyarrow as pa

    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield parquet_frame(pa.Table.from_batches([batch]))
    except (OSError, ValueError) as e:
        raise DataError(f"{source}: not a readable Parquet file ({short(e)})") from None


def check_no_extra_fields(df, source: str, sep: str, path=None) -> None:
    """DataError if pandas made the first field(s) of each row an index: the first data row
    has more fields than the header (pandas then reads every row so, shifting the columns,
    and a later row with the header's count is padded with an empty cell). The message
    names the line (for a file; ``path`` None: stdin) and the counts."""
    import pandas as pd

    if isinstance(df.index, pd.RangeIndex):
        return
    m = len(df.columns)
    k = m + df.index.nlevels
    last = df.iloc[:, -1] if m else None
    trailing = last is not None and len(df) > 0 and bool((last.isna() | (last.astype(str) == "")).all())
    hint = f" (a {sep_name(sep)} at the end of every line makes an empty last field)" if trailing else ""
    where = f"line {_first_data_line(path, source, sep)}" if path is not None else "the first data row"
    raise DataError(f"{source}: {where} has {k} fields, the header has {m}{hint}; remove the extra "
                    f"field{'s' if k - m > 1 else ''}, or name {'them' if k - m > 1 else 'it'} in the header")


def _first_data_line(path, source: str, sep: str) -> int:
    """The line number of the first non-empty row after the header (2 unless blank lines come first)."""
    try:
        with open_bytes(path, source) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="", errors="replace") as fh:
            reader = csv.reader(fh, delimiter=sep)
            next(reader, None)
            for row in reader:
                if row:
                    return reader.line_num
    except (OSError, csv.Error, DataError):
        pass
    return 2


def parser_message(e: Exception) -> str:
    """A parser's message as one short line (its last line: pandas puts the reason there)."""
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return short(lines[-1]) if lines else type(e).__name__


# ---------------------------------------------------------------------- writing tables (predict -o)


class CsvSink:
    """Writes DataFrame chunks as delimited text to a text stream; the header once, as given."""

    def __init__(self, out, sep: str = ","):
        self.out, self.sep, self.started = out, sep, False

    def write(self, df, header: list[str]) -> None:
        if not self.started:  # the input's own header, exactly as written (pandas renames empty names)
            csv.writer(self.out, delimiter=self.sep, lineterminator="\n").writerow(header)
            self.started = True
        df.to_csv(self.out, sep=self.sep, header=False, index=False, lineterminator="\n")

    def close(self) -> None:
        self.out.flush()


@dataclass
class ParquetSink:
    """Writes DataFrame chunks as one Parquet file. The column types are fixed by the first
    chunk (the input's own types for its columns, when known; a column of nulls only is text)."""

    fh: object
    input_schema: object = None
    writer: object = None
    schema: object = None

    def write(self, df, header: list[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        df = df.set_axis(header, axis=1)
        if self.schema is None:
            fields = []
            for c in header:
                if self.input_schema is not None and c in self.input_schema.names:
                    fields.append(self.input_schema.field(c))
                    continue
                t = pa.Array.from_pandas(df[c]).type
                fields.append(pa.field(c, pa.string() if pa.types.is_null(t) else t))
            self.schema = pa.schema(fields)
            self.writer = pq.ParquetWriter(self.fh, self.schema)
        self.writer.write_table(pa.Table.from_pandas(df, schema=self.schema, preserve_index=False))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _compressor(fh, path, source: str):
    """(a binary stream compressing into ``fh`` as the name says, the function that finishes it)."""
    codec = compression_of(path)
    if codec is None:
        return fh, lambda: None
    if codec == "gzip":
        w = gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0)
    elif codec == "bz2":
        w = bz2.BZ2File(fh, "wb")
    elif codec == "xz":
        w = lzma.LZMAFile(fh, "wb")
    elif codec == "zstd":
        w = optional_import("zstandard", source, "writing").ZstdCompressor().stream_writer(fh, closefd=False)
    else:
        zf = zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED)
        info = zipfile.ZipInfo(Path(path).stem or "table.csv", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        member = zf.open(info, "w", force_zip64=True)

        def finish():
            member.close()
            zf.close()

        return member, finish
    return w, w.close


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:
        pass


@contextmanager
def table_writer(path, source: str, input_schema=None):
    """A sink with ``write(df, header)`` that writes the table format ``path``'s name says
    (.parquet; else delimited text: tab for .tsv/.tab, a comma otherwise; compressed by
    the ending), atomically (:func:`nncli.csvio.atomic_file`)."""
    from .csvio import atomic_file

    if format_suffix(path) in NOT_WRITTEN:
        raise DataError(f"{source}: nncli writes CSV (.csv), TSV (.tsv) or Parquet (.parquet), not {format_suffix(path)} files")
    if is_parquet(path):
        optional_import("pyarrow.parquet", source, "writing")
        with atomic_file(path, "wb") as fh:
            sink = ParquetSink(fh, input_schema)
            try:
                yield sink
            except BaseException:
                _quietly(sink.close)  # before atomic_file closes fh (or the writer's __del__ writes to it)
                raise
            sink.close()
        return
    if compression_of(path) == "zstd":
        optional_import("zstandard", source, "writing")
    with atomic_file(path, "wb") as fh:
        raw, finish = _compressor(fh, path, source)
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True)
        try:
            yield CsvSink(text, default_sep(path))
            text.flush()
        except BaseException:
            # finish the wrappers now, into the temporary file atomic_file removes: left to the
            # garbage collector, they would write to a closed file and print about it
            _quietly(text.detach)
            _quietly(finish)
            raise
        text.detach()
        finish()
