"""CSV files to arrays, and the preprocessing that travels with a run.

- CSVs are read as UTF-8 (a BOM is fine) with pandas. Only these cells count as missing:
  the empty cell, NA, N/A, n/a, NaN, nan, NULL, null, #N/A. A missing or non-finite value
  in a used column is an error naming the file, the row and the column.
- Features are numeric or categorical (text). Categorical columns are one-hot encoded
  with the categories of the training data; numeric columns are z-scored with the mean
  and standard deviation of the training split (``data.standardize``).
- Classification labels are kept as the text they are written as, so predictions come
  back in the original labels (``007`` stays ``007``, ``Iris-setosa`` stays itself).
- Rows are numbered from 1 for the first data row; the header is line 1 of the file, so
  row r is line r + 1.

Nothing here pickles: :meth:`Preprocessor.to_json` and the arrays ``x_mean``/``x_std``
saved in model.npz rebuild the pipeline exactly.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import DataError, did_you_mean
from .parallel import pmap as _map
from .parallel import workers as _workers

MISSING = ["", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "#N/A"]
MAX_CATEGORIES = 1000
CHUNK = 8192  # rows per chunk when scaling large inputs: no full-size temporaries
BOOL_WORDS = {"True": 1.0, "TRUE": 1.0, "true": 1.0, "False": 0.0, "FALSE": 0.0, "false": 0.0}


# files from PARALLEL_MIN_BYTES to PARALLEL_MAX_BYTES are parsed in parallel parts. Stacking
# the parts' frames holds them and the result at once (for the 110 MB MNIST-like file the
# load peaks at 1.6 GB instead of 1.25 GB), so very large files are read whole.
PARALLEL_MIN_BYTES = 16 * 2**20
PARALLEL_MAX_BYTES = 512 * 2**20


def _pd():
    import pandas as pd

    return pd


def _where(source: str, i: int, column: str) -> str:
    return f"{source}: row {i + 1} (line {i + 2}), column '{column}'"


# ---------------------------------------------------------------------- reading


def read_header(path: Path, source: str) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text; save the file as UTF-8 CSV") from None
    if not header or all(not h.strip() for h in header):
        raise DataError(f"{source}: no header line; the first line must name the columns")
    seen, dup = set(), []
    for h in header:
        if h in seen and h not in dup:
            dup.append(h)
        seen.add(h)
    if dup:
        raise DataError(f"{source}: duplicate column name{'s' if len(dup) > 1 else ''} {', '.join(repr(d) for d in dup)}; column names must be unique")
    return header


def open_csv_source(path: str | Path, key: str) -> tuple[Path, str]:
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
    """Read a CSV into a DataFrame; ``str_columns`` are kept as text exactly as written.

    ``key`` names where the path came from (e.g. ``data.train``) for error messages.
    """
    pd = _pd()
    p, source = open_csv_source(path, key)
    header = read_header(p, source)
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(_missing_columns_message(source, missing, header))
    if any(not str(c).strip() for c in required):
        raise DataError(f"{source}: a column used as a feature or target has an empty name; give it a name in the header")
    dtype = {c: str for c in str_columns if c in header}
    try:
        # na_filter=False keeps pandas' fast path for clean numeric columns; a column with a
        # missing cell is read as text, and the missing tokens become NaN just below
        df = _read_parallel(p, dtype)
        if df is None:
            df = pd.read_csv(p, encoding="utf-8-sig", dtype=dtype or None, na_filter=False, low_memory=False)
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text; save the file as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: no columns to read") from None
    except (pd.errors.ParserError, ValueError) as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise DataError(f"{source}: malformed CSV: {msg}") from None
    if len(df) == 0:
        raise DataError(f"{source}: has a header but no data rows")
    for c in df.columns:
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])):
            col = df[c]
            df[c] = col.where(~col.isin(MISSING))
    return df


class _FilePart(io.RawIOBase):
    """Bytes [start, end) of a file, after ``prefix`` (the header line): one part of a CSV
    for its own pandas reader, streamed from the file (no copy of the file in memory)."""

    def __init__(self, path: Path, prefix: bytes, start: int, end: int):
        self._fh = open(path, "rb")
        self._fh.seek(start)
        self._prefix, self._left = prefix, end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._prefix:
            n = min(len(buf), len(self._prefix))
            buf[:n], self._prefix = self._prefix[:n], self._prefix[n:]
            return n
        if self._left <= 0:
            return 0
        n = self._fh.readinto(memoryview(buf)[: min(len(buf), self._left)])
        self._left -= n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def _scan(path: Path, block: int = 1 << 22):
    """(header line without a BOM, offset after it, whether the file holds a double quote),
    reading the file in blocks; None if there is no complete header line."""
    header, offset, quote = None, 0, False
    with open(path, "rb") as fh:
        while True:
            data = fh.read(block)
            if not data:
                break
            if header is None:
                first = data
                while b"\n" not in first and len(data) == block:  # a header longer than a block
                    data = fh.read(block)
                    first += data
                    if not data:
                        break
                nl = first.find(b"\n")
                if nl < 0:
                    return None
                bom = 3 if first.startswith(b"\xef\xbb\xbf") else 0
                header, offset = first[bom : nl + 1], nl + 1
                data = first
            if b'"' in data:
                quote = True
                break
    return (header, offset, quote) if header is not None else None


def _cut_points(path: Path, start: int, size: int, k: int) -> list[int]:
    """Offsets just after a line end near size * i / k, i = 1..k-1: where the parts begin."""
    cuts = [start]
    with open(path, "rb") as fh:
        for i in range(1, k):
            fh.seek(max(cuts[-1], size * i // k))
            chunk = fh.read(1 << 16)
            while chunk and b"\n" not in chunk:  # an extremely long line
                more = fh.read(1 << 16)
                if not more:
                    break
                chunk += more
            nl = chunk.find(b"\n")
            c = fh.tell() - len(chunk) + nl + 1 if nl >= 0 else size
            if cuts[-1] < c < size:
                cuts.append(c)
    return cuts + [size]


def _read_parallel(p: Path, dtype: dict):
    """A large CSV parsed in parts on several cores, or None where that cannot be exact.

    The file is cut at line ends into one part per core; each part after the first gets
    the header line and is parsed by its own pandas reader, streaming from the file, then
    the frames are stacked. Only files without a double quote are cut (a quoted cell may
    hold a line break), and the result is used only when every part inferred the same
    column types and a plain row index, which makes it the same frame the single reader
    builds. Anything else (a quote, differing types, any parser error) returns None, and
    the caller reads the file whole, with pandas' own message for a malformed file.
    """
    k = _workers()
    size = p.stat().st_size
    if k < 2 or not PARALLEL_MIN_BYTES <= size <= PARALLEL_MAX_BYTES:
        return None
    scanned = _scan(p)
    if scanned is None or scanned[2]:
        return None
    header, body, _ = scanned
    cuts = _cut_points(p, body, size, k)
    pd = _pd()

    def parse(i: int):
        # the first part is read with its own header line (and BOM) from offset 0
        part = _FilePart(p, b"", 0, cuts[1]) if i == 0 else _FilePart(p, header, cuts[i], cuts[i + 1])
        with io.BufferedReader(part, 1 << 20) as fh:
            return pd.read_csv(fh, encoding="utf-8-sig", dtype=dtype or None, na_filter=False, low_memory=False)

    try:
        frames = _map(parse, range(len(cuts) - 1))
    except Exception:
        return None
    first = frames[0]
    if any(list(f.columns) != list(first.columns) or not f.dtypes.equals(first.dtypes) for f in frames[1:]):
        return None
    # a part whose first row has an extra field gets that field's column as its index
    # (pandas' "implicit index") instead of an error: only plain 0..n-1 indexes are kept
    if not all(isinstance(f.index, pd.RangeIndex) and f.index.start == 0 and f.index.step == 1 for f in frames):
        return None
    return pd.concat(frames, ignore_index=True)


def _c_order_float64(A: np.ndarray) -> tuple[np.ndarray, bool]:
    """(A as a C-ordered float64 array, whether every value is finite), cast in row chunks
    on the thread pool.

    pandas keeps columns contiguous and every later step reads rows, so this one
    transposing cast replaces strided row gathers in each of them. Integers are always
    finite in float64, so only floating-point input is checked, chunk by chunk.
    """
    check = A.dtype.kind not in "iub"
    out = A if (A.dtype == np.float64 and A.flags.c_contiguous) else np.empty(A.shape, np.float64)

    def chunk(c):
        if out is not A:
            out[c : c + CHUNK] = A[c : c + CHUNK]
        return bool(np.isfinite(out[c : c + CHUNK]).all()) if check else True

    return out, all(_map(chunk, range(0, A.shape[0], CHUNK)))


def _missing_columns_message(source, missing, header) -> str:
    hint = did_you_mean(missing[0], header)
    if len(header) == 1 and any(sep in str(header[0]) for sep in (";", "\t", "|")):
        sep = next(s for s in (";", "\t", "|") if s in str(header[0]))
        return (f"{source}: the header is a single column {header[0]!r}: the file looks {sep!r}-separated; "
                "nncli reads comma-separated CSV, so save it with commas")
    cols = ", ".join(repr(m) for m in missing)
    return f"{source}: missing column{'s' if len(missing) > 1 else ''} {cols}{hint} (columns: {', '.join(header)})"


# ---------------------------------------------------------------------- column checks


def _numeric_column(s, source: str, column: str, row_offset: int = 0,
                    fix: str = "fix the cell, or list the column in data.categorical to one-hot encode it") -> np.ndarray:
    """The column as float64, or a DataError naming the first bad cell."""
    pd = _pd()
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=np.float64)
    if not pd.api.types.is_numeric_dtype(s):
        # the boolean words pandas reads as True/False count as 1/0, as they do at training
        s = s.replace(BOOL_WORDS) if s.isin(list(BOOL_WORDS)).any() else s
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & s.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{_where(source, i + row_offset, column)}: {s.iloc[i]!r} is not a number ({fix})")
        s = num
    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    _check_finite(v, source, column, row_offset)
    return v


def _check_finite(v: np.ndarray, source: str, column: str, row_offset: int = 0) -> None:
    ok = np.isfinite(v)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        what = "missing value" if np.isnan(v[i]) else f"infinite value {v[i]}"
        raise DataError(f"{_where(source, i + row_offset, column)}: {what}; fill or drop the row")


def _text_column(s, source: str, column: str, row_offset: int = 0) -> np.ndarray:
    """The column as an array of str, or a DataError naming the first missing cell."""
    miss = s.isna().to_numpy()
    if miss.any():
        i = int(np.flatnonzero(miss)[0])
        raise DataError(f"{_where(source, i + row_offset, column)}: missing value; fill or drop the row")
    return s.astype(str).to_numpy(dtype=object)


def _looks_numeric(s) -> bool:
    """A text column most of whose cells are numbers: probably a numeric column with typos."""
    pd = _pd()
    filled = s.dropna()
    if len(filled) == 0:
        return False
    return pd.to_numeric(filled, errors="coerce").notna().mean() >= 0.5


def sort_labels(labels) -> list[str]:
    """Numeric order when every label is a number ('2' < '10'), text order otherwise."""
    labels = [str(x) for x in labels]
    try:
        return sorted(labels, key=lambda x: (float(x), x))
    except ValueError:
        return sorted(labels)


# ---------------------------------------------------------------------- the preprocessor


@dataclass
class Preprocessor:
    """Everything needed to turn a CSV into the network's inputs and targets, and back.

    x_mean and x_std cover the encoded input vector (one entry per network input); one-hot
    entries have mean 0 and std 1, so transform is uniformly (encode(df) - x_mean) / x_std.
    """

    features: list[str]
    categories: dict[str, list[str]]
    targets: list[str]
    task: str  # binary | multiclass | regression
    classes: Optional[list[str]]
    x_mean: np.ndarray = field(repr=False)
    x_std: np.ndarray = field(repr=False)

    # -------------------------------------------------------------- shape
    @property
    def input_names(self) -> list[str]:
        names = []
        for f in self.features:
            names += [f"{f}={c}" for c in self.categories[f]] if f in self.categories else [f]
        return names

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    def numeric_mask(self) -> np.ndarray:
        """For each network input: True if it is a numeric column, False if a one-hot entry."""
        mask = []
        for f in self.features:
            mask += [False] * len(self.categories[f]) if f in self.categories else [True]
        return np.array(mask, dtype=bool)

    @property
    def n_outputs(self) -> int:
        if self.task == "binary":
            return 1
        if self.task == "multiclass":
            return len(self.classes)
        return len(self.targets)

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    def str_columns(self) -> list[str]:
        """Columns to read as text: categorical features and classification targets."""
        cols = list(self.categories)
        return cols + (self.targets if self.is_classifier else [])

    # -------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, df, data_cfg, loss_task: str, source: str, fit_rows=None, scale: bool = True) -> "Preprocessor":
        """Learn the layout from ``df``; categories and label set from every row, statistics
        from ``fit_rows`` (the training split) only. ``scale=False`` leaves the statistics to
        a later :meth:`fit_scaler` call."""
        targets = data_cfg.targets
        columns = list(df.columns)
        missing = [t for t in targets if t not in columns]
        if missing:
            raise DataError(_missing_columns_message(source, missing, columns))
        if data_cfg.features is not None:
            features = list(data_cfg.features)
            bad = [f for f in features if f not in columns]
            if bad:
                raise DataError(_missing_columns_message(source + " (data.features)", bad, columns))
            clash = [f for f in features if f in targets]
            if clash:
                raise DataError(f"data.features: {clash[0]!r} is also a target column; a column cannot be both")
        else:
            # a column with an empty header (pandas names it "Unnamed: N") is a saved row
            # index, not a feature: it is left out unless data.features names it
            features = [c for c in columns if c not in targets and c not in data_cfg.exclude
                        and not str(c).startswith("Unnamed: ")]
        for key, names in (("data.exclude", data_cfg.exclude), ("data.categorical", data_cfg.categorical)):
            bad = [c for c in names if c not in columns]
            if bad:
                raise DataError(_missing_columns_message(f"{source} ({key})", bad, columns))
        if not features:
            raise DataError(f"{source}: no feature columns left besides the target(s) {', '.join(targets)}")

        categories: dict[str, list[str]] = {}
        for f in features:
            s = df[f]
            pd = _pd()
            text = f in data_cfg.categorical or not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))
            if not text:
                continue
            if f not in data_cfg.categorical and _looks_numeric(s):
                _numeric_column(s, source, f)  # raises, naming the first non-numeric cell
            vals = _text_column(s, source, f)
            cats = sort_labels(set(vals))
            if len(cats) > MAX_CATEGORIES:
                raise DataError(
                    f"{source}: column '{f}' has {len(cats)} distinct text values; it looks like an "
                    "identifier or free text. Leave it out with data.exclude"
                )
            categories[f] = cats

        task, classes = _fit_targets(df, targets, loss_task, source)
        prep = cls(features, categories, targets, task, classes, np.zeros(0), np.ones(0))
        if scale:
            rows = np.arange(len(df)) if fit_rows is None else np.asarray(fit_rows)
            prep.fit_scaler(prep.encode_raw(df, source), data_cfg.standardize, source, rows)
        return prep

    def fit_scaler(self, X: np.ndarray, standardize: bool, source: str, rows: np.ndarray) -> None:
        """x_mean and x_std from the raw inputs X[rows] (float64), in row chunks (no copy of X).

        ``rows`` are the training rows of X, which are also the file's row numbers."""
        width = X.shape[1]
        mean, std = np.zeros(width), np.ones(width)
        if standardize and len(rows):
            num = np.flatnonzero(self.numeric_mask())
            cols = slice(None) if len(num) == width else num  # all numeric: no column gather
            starts = range(0, len(rows), CHUNK)

            def chunk_sum(c):
                return X[rows[c : c + CHUNK]][:, cols].sum(axis=0)

            def chunk_sq(c):
                d = X[rows[c : c + CHUNK]][:, cols]
                d -= m
                d *= d
                return d.sum(axis=0)

            with np.errstate(all="ignore"):  # per-chunk partial sums, added in chunk order
                m = sum(_map(chunk_sum, starts), np.zeros(len(num))) / len(rows)
                sd = np.sqrt(sum(_map(chunk_sq, starts), np.zeros(len(num))) / len(rows))
            for k, j in enumerate(num):
                if not (np.isfinite(m[k]) and np.isfinite(sd[k])):
                    col = X[rows, j]
                    i = int(np.argmax(np.abs(col)))
                    raise DataError(f"{_where(source, int(rows[i]), self.input_names[j])}: value {col[i]} is too large to standardise; rescale the column")
                mean[j] = m[k]
                std[j] = sd[k] if sd[k] > 0 else 1.0
        self.x_mean, self.x_std = mean, std

    # -------------------------------------------------------------- transforming
    def encode_features(self, df, source: str, standardize: bool = True, dtype=np.float64, row_offset: int = 0) -> np.ndarray:
        """The network inputs X of shape (n_samples, n_inputs), standardised, in ``dtype``."""
        return self.scale(self.encode_raw(df, source, row_offset), source, dtype, row_offset, standardize)

    def encode_raw(self, df, source: str, row_offset: int = 0) -> np.ndarray:
        """float64 inputs before standardisation: numeric columns as they are, one-hot blocks
        for categorical ones, in feature order."""
        pd = _pd()
        n = len(df)
        missing = [f for f in self.features if f not in df.columns]
        if missing:
            raise DataError(_missing_columns_message(source, missing, list(df.columns)))
        positions, j = {}, 0
        for f in self.features:
            positions[f] = j
            j += len(self.categories[f]) if f in self.categories else 1
        numeric = [f for f in self.features if f not in self.categories]
        # clean numeric columns in one block (the common, large case); anything else column by column
        fast = [f for f in numeric if pd.api.types.is_numeric_dtype(df[f]) and not pd.api.types.is_bool_dtype(df[f])]
        block, finite = _c_order_float64(df[fast].to_numpy()) if fast else (None, True)
        if not finite:
            fast, block = [], None  # find and report the bad cell column by column below
        if block is not None and len(fast) == self.n_inputs:
            return block  # every input is a clean numeric column, in feature order
        X = np.zeros((n, self.n_inputs), dtype=np.float64)
        if block is not None:
            X[:, [positions[f] for f in fast]] = block
        for f in numeric:
            if f not in fast:
                X[:, positions[f]] = _numeric_column(df[f], source, f, row_offset)
        for f, cats in self.categories.items():
            vals = _text_column(df[f], source, f, row_offset)
            index = {c: k for k, c in enumerate(cats)}
            codes = np.fromiter((index.get(v, -1) for v in vals), dtype=np.int64, count=n)
            if (codes < 0).any():
                i = int(np.flatnonzero(codes < 0)[0])
                shown = ", ".join(cats[:10]) + (", ..." if len(cats) > 10 else "")
                raise DataError(
                    f"{_where(source, i + row_offset, f)}: category {vals[i]!r} was not seen in training (known: {shown})"
                )
            X[np.arange(n), positions[f] + codes] = 1
        return X

    def scale(self, X: np.ndarray, source: str, dtype=np.float64, row_offset: int = 0, standardize: bool = True,
              rows=None) -> np.ndarray:
        """(X[rows] - x_mean) / x_std computed in float64 and stored in ``dtype``, in row chunks
        (no full-size temporaries); a value that does not fit ``dtype`` is an error naming its
        row and column."""
        rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
        out = np.empty((len(rows), X.shape[1]), dtype=dtype)

        def chunk(c):
            with np.errstate(all="ignore"):
                block = X[rows[c : c + CHUNK]]
                if standardize:
                    block -= self.x_mean
                    # divided in float64, rounded once into out's dtype
                    np.divide(block, self.x_std, out=out[c : c + CHUNK], casting="same_kind")
                else:
                    out[c : c + CHUNK] = block

        _map(chunk, range(0, len(rows), CHUNK))
        if not np.isfinite(out).all():
            i, k = map(int, np.argwhere(~np.isfinite(out))[0])
            raise DataError(f"{_where(source, int(rows[i]) + row_offset, self.input_names[k])}: value out of range for {np.dtype(dtype).name}")
        return out

    def encode_targets(self, df, source: str, dtype=np.float64, row_offset: int = 0) -> np.ndarray:
        """Y of shape (n_samples, n_outputs): 0/1 for binary, one-hot for multiclass, values for regression."""
        missing = [t for t in self.targets if t not in df.columns]
        if missing:
            raise DataError(_missing_columns_message(source, missing, list(df.columns)))
        n = len(df)
        if self.task == "regression":
            Y = np.empty((n, len(self.targets)), dtype=dtype)
            for k, t in enumerate(self.targets):
                with np.errstate(over="ignore"):
                    Y[:, k] = _numeric_column(df[t], source, t, row_offset)
                bad = ~np.isfinite(Y[:, k])
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise DataError(f"{_where(source, i + row_offset, t)}: target value out of range for {np.dtype(dtype).name}; rescale the column")
            return Y
        t = self.targets[0]
        codes = self.label_codes(df[t], source, row_offset)
        if self.task == "binary":
            return codes.astype(dtype).reshape(n, 1)
        Y = np.zeros((n, len(self.classes)), dtype=dtype)
        Y[np.arange(n), codes] = 1
        return Y

    def label_codes(self, s, source: str, row_offset: int = 0) -> np.ndarray:
        t = self.targets[0]
        vals = _text_column(s, source, t, row_offset)
        index = {c: k for k, c in enumerate(self.classes)}
        codes = np.fromiter((index.get(v, -1) for v in vals), dtype=np.int64, count=len(vals))
        if (codes < 0).any():
            i = int(np.flatnonzero(codes < 0)[0])
            raise DataError(
                f"{_where(source, i + row_offset, t)}: label {vals[i]!r} was not seen in training "
                f"(classes: {', '.join(self.classes[:20])})"
            )
        return codes

    def decode(self, y_hat: np.ndarray):
        """Predictions from network outputs: (labels or values, class probabilities or None)."""
        if self.task == "regression":
            return y_hat, None
        if self.task == "binary":
            p1 = y_hat[:, 0].astype(np.float64)
            proba = np.stack([1 - p1, p1], axis=1)
        else:
            proba = y_hat.astype(np.float64)
        labels = np.asarray(self.classes, dtype=object)[np.argmax(proba, axis=1)]
        return labels, proba

    # -------------------------------------------------------------- persistence
    def to_json(self) -> dict:
        return {
            "features": self.features,
            "categories": self.categories,
            "targets": self.targets,
            "task": self.task,
            "classes": self.classes,
            "input_names": self.input_names,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"x_mean": self.x_mean, "x_std": self.x_std}
        if self.classes is not None:
            out["classes"] = np.asarray(self.classes, dtype=str)
        return out

    @classmethod
    def from_saved(cls, meta: dict, arrays) -> "Preprocessor":
        classes = meta.get("classes")
        prep = cls(
            list(meta["features"]), {k: list(v) for k, v in meta["categories"].items()}, list(meta["targets"]),
            meta["task"], list(classes) if classes is not None else None,
            np.asarray(arrays["x_mean"], dtype=np.float64), np.asarray(arrays["x_std"], dtype=np.float64),
        )
        if len(prep.x_mean) != len(prep.input_names) or prep.x_std.shape != prep.x_mean.shape:
            raise ValueError("x_mean/x_std do not match the feature layout")
        if "classes" in arrays and classes is not None and [str(c) for c in arrays["classes"]] != prep.classes:
            raise ValueError("classes in model.npz and preprocess.json disagree")
        return prep


def _fit_targets(df, targets, loss_task, source):
    if loss_task == "regression":
        for t in targets:
            _numeric_column(df[t], source, t, fix="loss mse needs numeric targets; for class labels use loss bce or cross_entropy")
        return "regression", None
    t = targets[0]
    vals = _text_column(df[t], source, t)
    classes = sort_labels(set(vals))
    if len(classes) < 2:
        raise DataError(f"{source}: target column '{t}' has only one class ({classes[0]!r}); a classifier needs at least two")
    if loss_task == "binary" and len(classes) > 2:
        raise DataError(
            f"{source}: target column '{t}' has {len(classes)} classes ({', '.join(classes[:6])}{', ...' if len(classes) > 6 else ''}); "
            "loss bce needs exactly two: use loss: cross_entropy"
        )
    try:
        nums = np.array([float(c) for c in classes])
        if not np.all(np.isfinite(nums)) or np.any(nums != np.round(nums)):
            raise DataError(
                f"{source}: target column '{t}' looks continuous ({len(classes)} distinct values such as "
                f"{next(c for c, v in zip(classes, nums) if v != round(v) or not np.isfinite(v))!r}): use loss: mse?"
            )
    except ValueError:
        pass  # text labels
    return loss_task, classes


# ---------------------------------------------------------------------- splits and datasets


def split_indices(n: int, frac: float, rng: np.random.Generator, strata: Optional[np.ndarray] = None):
    """(kept, held_out) row indices, both sorted; held_out has about frac * n rows.

    With ``strata`` (class codes) the split is stratified: each class gives round(frac * n_c)
    rows, but never all of its rows.
    """
    if strata is None:
        perm = rng.permutation(n)
        k = int(round(frac * n))
        held = np.sort(perm[:k])
    else:
        held = []
        for c in np.unique(strata):
            idx = np.flatnonzero(strata == c)
            k = min(int(round(frac * len(idx))), len(idx) - 1)
            held.append(rng.permutation(idx)[:k])
        held = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    mask = np.ones(n, bool)
    mask[held] = False
    return np.flatnonzero(mask), held


@dataclass
class Split:
    name: str  # e.g. "train", "val (20% of datasets/x.csv)", "datasets/test.csv"
    X: np.ndarray
    Y: np.ndarray

    @property
    def n(self) -> int:
        return self.X.shape[0]


@dataclass
class Dataset:
    prep: Preprocessor
    train: Split
    val: Optional[Split] = None
    test: Optional[Split] = None
    notes: list[str] = field(default_factory=list)


def split_rows(cfg, df, rng: np.random.Generator, source: str):
    """(train_rows, val_rows or None, test_rows or None) of the training CSV.

    Test rows are drawn first, then validation rows, from the one seeded generator, and
    stratified by class for classifiers; the same config and seed give the same rows.
    """
    d = cfg.data
    n = len(df)
    rows = np.arange(n)
    strata = None
    if cfg.task != "regression" and (d.test_split or d.val_split):
        t = d.targets[0]
        labels = _text_column(df[t], source, t)
        _, strata = np.unique(labels, return_inverse=True)
    test_rows = val_rows = None
    if d.test_split:
        rows, test_rows = split_indices(n, d.test_split, rng, strata)
        if len(test_rows) == 0:
            raise DataError(f"data.test_split: {d.test_split} of {n} rows leaves no test rows; use a larger fraction or data.test")
    if d.val_split:
        frac = d.val_split / (1 - (d.test_split or 0))
        keep, held = split_indices(len(rows), frac, rng, None if strata is None else strata[rows])
        rows, val_rows = rows[keep], rows[held]
        if len(val_rows) == 0:
            raise DataError(f"data.val_split: {d.val_split} of {n} rows leaves no validation rows; use a larger fraction or data.val")
    if len(rows) == 0:
        raise DataError(f"{source}: no training rows left after the held-out splits")
    return rows, val_rows, test_rows


def read_train_csv(cfg, str_columns=None):
    d = cfg.data
    if str_columns is None:
        str_columns = list(d.categorical) + (d.targets if cfg.task != "regression" else [])
    return read_csv(d.train, "data.train", str_columns=str_columns, required=d.targets), f"data.train {d.train}"


def load_dataset(cfg, rng: np.random.Generator) -> Dataset:
    """Read, split and preprocess the config's data. Consumes ``rng`` only for splits."""
    d = cfg.data
    dtype = np.dtype(cfg.train.dtype)
    df, source = read_train_csv(cfg)
    n = len(df)
    rows, val_rows, test_rows = split_rows(cfg, df, rng, source)

    prep = Preprocessor.fit(df, d, cfg.task, source, scale=False)  # the layout; X is encoded once below
    X_raw = prep.encode_raw(df, source)
    prep.fit_scaler(X_raw, d.standardize, source, rows)
    Y_all = prep.encode_targets(df, source, dtype=dtype)

    def make_rows(name, idx):
        return Split(name, prep.scale(X_raw, source, dtype, rows=idx), Y_all[idx])

    def make(name, frame, src):
        return Split(name, prep.encode_features(frame, src, dtype=dtype), prep.encode_targets(frame, src, dtype=dtype))

    train = make_rows("train", rows)
    val = make_rows(f"val ({len(val_rows)} rows of {d.train})", val_rows) if val_rows is not None else None
    test = make_rows(f"test ({len(test_rows)} rows of {d.train})", test_rows) if test_rows is not None else None
    for key, path in (("data.val", d.val), ("data.test", d.test)):
        if path is None:
            continue
        frame = read_csv(path, key, str_columns=prep.str_columns(), required=prep.features + prep.targets)
        split = make(str(path), frame, f"{key} {path}")
        if key == "data.val":
            val = split
        else:
            test = split

    notes = []
    for f, cats in prep.categories.items():
        if len(cats) > 0.5 * n and len(cats) > 20:
            notes.append(f"column '{f}' has {len(cats)} distinct values in {n} rows and is one-hot encoded; if it is an identifier, leave it out with data.exclude")
    return Dataset(prep, train, val, test, notes)
