"""One column of a table at a time: the checks and conversions the preprocessing is made of.

Every error names the file, the row (numbered from 1; row r is line r + 1) and the column,
and says what to do. The fitting steps (which columns are features, which are text, their
categories, fill values and the class labels) are here too, each a function of the
training rows; :class:`nncli.preprocess.Preprocessor` puts them together.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .csvio import cell, missing_columns_message
from .errors import DataError
from .tasks import Task

MAX_CATEGORIES = 1000
CHUNK = 8192  # rows per chunk when scaling large inputs: no full-size temporaries
BOOL_WORDS = {"True": 1.0, "TRUE": 1.0, "true": 1.0, "False": 0.0, "FALSE": 0.0, "false": 0.0}
NUMERIC_FIX = "fix the cell, or list the column in data.categorical to one-hot encode it"

# ---------------------------------------------------------------------- one column


def at_row(i: int, row_offset) -> int:
    """The 0-based file row of the i-th row of a frame: ``row_offset + i``, or ``row_offset[i]``
    when ``row_offset`` is an array of file rows (a frame of some rows of a file)."""
    return int(row_offset[i]) if isinstance(row_offset, np.ndarray) else i + row_offset


def file_rows(df, row_offset=0) -> np.ndarray:
    """The 0-based file row of every row of ``df`` (see :func:`_at`)."""
    return np.asarray(row_offset, np.int64) if isinstance(row_offset, np.ndarray) else np.arange(len(df)) + row_offset


def numeric_column(s, source: str, column: str, row_offset: int = 0, fix: str = NUMERIC_FIX) -> np.ndarray:
    """The column as float64, or a DataError naming the first bad cell."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=np.float64)
    if not pd.api.types.is_numeric_dtype(s):
        # the boolean words pandas reads as True/False count as 1/0, as they do at training
        s = s.replace(BOOL_WORDS) if s.isin(list(BOOL_WORDS)).any() else s
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & s.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{cell(source, at_row(i, row_offset), column)}: {s.iloc[i]!r} is not a number ({fix})")
        s = num
    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(v)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        what = "missing value" if np.isnan(v[i]) else f"infinite value {v[i]}"
        raise DataError(f"{cell(source, at_row(i, row_offset), column)}: {what}; fill or drop the row")
    return v


def text_column(s, source: str, column: str, row_offset: int = 0) -> np.ndarray:
    """The column as an array of str, or a DataError naming the first missing cell."""
    miss = s.isna().to_numpy()
    if miss.any():
        i = int(np.flatnonzero(miss)[0])
        raise DataError(f"{cell(source, at_row(i, row_offset), column)}: missing value; fill or drop the row")
    return s.astype(str).to_numpy(dtype=object)


def missing_message(source: str, gaps: dict, rows: np.ndarray, fix: str) -> str:
    """One line naming every column with missing cells: its count and first rows (from 1)."""
    parts = []
    for f, m in gaps.items():
        at = rows[np.flatnonzero(m)]
        more = ", ..." if len(at) > 5 else ""
        rows_, lines = (", ".join(str(int(r) + k) for r in at[:5]) + more for k in (1, 2))
        s_ = "s" if len(at) > 1 else ""
        parts.append(f"'{f}' {len(at)} cell{s_}: row{s_} {rows_} (line{s_} {lines})")
    n = len(parts)
    return f"{source}: missing values in {n} used column{'s' if n > 1 else ''}: {'; '.join(parts)}; {fix}"


def looks_numeric(s) -> bool:
    """A text column most of whose cells are numbers: probably a numeric column with typos."""
    import pandas as pd

    filled = s.dropna()
    return len(filled) > 0 and pd.to_numeric(filled, errors="coerce").notna().mean() >= 0.5


def sort_labels(labels) -> list[str]:
    """Numeric order when every label is a number ('2' < '10'), text order otherwise."""
    labels = [str(x) for x in labels]
    try:
        return sorted(labels, key=lambda x: (float(x), x))
    except ValueError:
        return sorted(labels)


def codes_of(values: np.ndarray, known: list[str], what: str, source: str, column: str, row_offset: int = 0,
             unknown: str = "error", fix: str = "") -> np.ndarray:
    """The position of every value in ``known``; a value not there is an error naming its row,
    or code -1 with ``unknown="ignore"``."""
    index = {c: k for k, c in enumerate(known)}
    codes = np.fromiter((index.get(v, -1) for v in values), dtype=np.int64, count=len(values))
    if unknown != "ignore" and (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        raise DataError(f"{cell(source, at_row(i, row_offset), column)}: {what} {values[i]!r} was not seen in training ({shown}){fix}")
    return codes


def squared_deviations(block: np.ndarray, m: np.ndarray) -> np.ndarray:
    """sum over rows of (x - m)^2, computed in place in ``block`` (a copy)."""
    block -= m
    block *= block
    return block.sum(axis=0)


def each_chunk(fn, n: int) -> list:
    """[fn(start) for start in range(0, n, CHUNK)]: work on the row chunks of a large array,
    on up to two threads when there are several chunks.

    numpy releases the GIL while it copies, casts and adds, so the chunks of the cast,
    the statistics and the scaling of a large table run side by side (and so do the page
    faults of their fresh output memory). Results keep the chunks' order, so a sum over
    them has the same bits on any number of threads.
    """
    starts = range(0, n, CHUNK)
    if len(starts) < 2 or threads() < 2:
        return [fn(c) for c in starts]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads()) as pool:
        return list(pool.map(fn, starts))


def threads() -> int:
    """The cores this process may use, at most 2, and at most OMP_NUM_THREADS when set (as
    nncli sweep sets it for each of its workers)."""
    import os

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    return max(1, min(n, 2, int(limit) if limit.isdigit() and int(limit) > 0 else 2))


def c_order_float64(A: np.ndarray) -> tuple[np.ndarray, bool]:
    """(A as a C-ordered float64 array, whether every value is finite), cast in row chunks.

    pandas keeps columns contiguous and every later step reads rows, so this one
    transposing cast replaces strided row gathers in each of them. Integers are always
    finite in float64, so only floating-point input is checked.
    """
    check = A.dtype.kind not in "iub"
    out = A if (A.dtype == np.float64 and A.flags.c_contiguous) else np.empty(A.shape, np.float64)

    def chunk(c):
        if out is not A:
            out[c : c + CHUNK] = A[c : c + CHUNK]
        return not check or bool(np.isfinite(out[c : c + CHUNK]).all())

    return out, all(each_chunk(chunk, A.shape[0]))



# ---------------------------------------------------------------------- fitting, step by step


def choose_features(df, d, source: str) -> list[str]:
    """data.features, or every column but the targets, data.exclude and saved row indices."""
    columns, targets = list(df.columns), d.targets
    missing = [t for t in targets if t not in columns]
    if missing:
        raise DataError(missing_columns_message(source, missing, columns))
    if d.features is not None:
        features = list(d.features)
        bad = [f for f in features if f not in columns]
        if bad:
            raise DataError(missing_columns_message(source + " (data.features)", bad, columns))
        clash = [f for f in features if f in targets]
        if clash:
            raise DataError(f"data.features: {clash[0]!r} is also a target column; a column cannot be both")
    else:
        # a column with an empty header (pandas names it "Unnamed: N") is a saved row
        # index, not a feature: it is left out unless data.features names it
        features = [c for c in columns if c not in targets and c not in d.exclude and not str(c).startswith("Unnamed: ")]
    for key, names in (("data.exclude", d.exclude), ("data.categorical", d.categorical)):
        bad = [c for c in names if c not in columns]
        if bad:
            raise DataError(missing_columns_message(f"{source} ({key})", bad, columns))
    if not features:
        raise DataError(f"{source}: no feature columns left besides the target(s) {', '.join(targets)}")
    return features


def is_text(s, declared: bool) -> bool:
    import pandas as pd

    return declared or not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def is_text_feature(s, declared: bool, source: str, column: str) -> bool:
    """Whether a feature column is one-hot encoded: declared in data.categorical, or text.
    A text column whose filled cells are numbers (a numeric column with missing cells) is
    numeric; a mostly numeric one with a typo is an error naming the first bad cell."""
    if not is_text(s, declared):
        return False
    if declared or not looks_numeric(s):
        return True
    filled = s.notna().to_numpy()
    numeric_column(s[filled], source, column, row_offset=np.flatnonzero(filled))  # raises on a typo
    return False


def fill_value(s, text: bool, how, source: str, column: str, rows: np.ndarray):
    """The imputation value of a column from its training rows ``s`` (file rows ``rows``), as
    SimpleImputer: median, mean or 0 (numeric); the most frequent value (ties: the smallest)
    or the category 'missing' (text)."""
    filled = s.notna().to_numpy()
    if text and how.categorical == "missing":
        return "missing"
    if not text and how.numeric == "zero":
        return 0.0
    if not filled.any():
        raise DataError(f"{source}: column '{column}' has no values in the training rows to impute from; "
                        "leave it out with data.exclude")
    if text:
        counts = s[filled].astype(str).value_counts()
        return min(counts.index[counts.to_numpy() == counts.max()])
    v = numeric_column(s[filled], source, column, row_offset=rows[filled])
    return float(np.median(v)) if how.numeric == "median" else float(np.mean(v))


def categories_of(s, source: str, column: str, row_offset=0) -> list[str]:
    """The sorted categories of a text column (its filled cells)."""
    cats = sort_labels(set(text_column(s, source, column, row_offset)))
    if len(cats) > MAX_CATEGORIES:
        raise DataError(f"{source}: column '{column}' has {len(cats)} distinct text values; it looks like an "
                        "identifier or free text. Leave it out with data.exclude")
    return cats


def fit_classes(df, targets: list[str], task: Task, source: str, row_offset=0) -> Optional[list[str]]:
    """The sorted class labels of a classifier's target column (None for regression). A
    target that does not fit the loss is an error naming the loss that fits it."""
    if not task.is_classifier:
        for t in targets:
            s = df[t]
            if is_text(s, False) and not looks_numeric(s):  # class labels: say which classifier loss
                n = len(set(s.dropna().astype(str)))
                raise DataError(f"{source}: target column '{t}' holds text labels ({n} distinct), not numbers; "
                                f"loss mse is for numeric targets: use loss: {'bce' if n == 2 else 'cross_entropy'}")
            numeric_column(s, source, t, row_offset, fix="loss mse needs numeric targets")
        return None
    t = targets[0]
    classes = sort_labels(set(text_column(df[t], source, t, row_offset)))
    shown = f"{', '.join(classes[:6])}{', ...' if len(classes) > 6 else ''}"
    if len(classes) < 2:
        raise DataError(f"{source}: target column '{t}' has only one class ({classes[0]!r}); a classifier needs at least two")
    try:
        nums = np.array([float(c) for c in classes])
    except ValueError:
        nums = None  # text labels
    odd = [] if nums is None else [c for c, v in zip(classes, nums) if not np.isfinite(v) or v != round(v)]
    if odd:  # checked first: a continuous target needs mse, whatever the number of values
        raise DataError(f"{source}: target column '{t}' looks continuous ({len(classes)} distinct values such as {odd[0]!r}): use loss: mse")
    if task.max_classes is not None and len(classes) > task.max_classes:
        raise DataError(f"{source}: target column '{t}' has {len(classes)} classes ({shown}); loss bce needs exactly two: use loss: cross_entropy")
    return classes
