"""The preprocessing that travels with a run: a table's columns to the network's x and y, and back.

A :class:`Preprocessor` speaks scikit-learn's vocabulary:

- :meth:`Preprocessor.fit` learns the layout (feature columns, the categories of text
  columns, the class labels) from a DataFrame, and the standardisation statistics from the
  training rows only;
- :meth:`Preprocessor.transform` turns a DataFrame into the network inputs X of shape
  (n_samples, n_inputs): numeric columns z-scored, text columns one-hot encoded with the
  training categories; :meth:`Preprocessor.transform_targets` gives Y;
- :meth:`Preprocessor.inverse_transform` turns network outputs back into predictions in
  the original labels (``007`` stays ``007``) or values, with class probabilities;
- :meth:`Preprocessor.to_json` / :meth:`Preprocessor.from_json` save and rebuild it
  without pickles (preprocess.json, and x_mean/x_std/classes in model.npz).

A missing or non-finite value in a used column is an error naming its row and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .csvio import cell, missing_columns_message
from .errors import DataError
from .tasks import TASKS, Task

MAX_CATEGORIES = 1000
CHUNK = 8192  # rows per chunk when scaling large inputs: no full-size temporaries
BOOL_WORDS = {"True": 1.0, "TRUE": 1.0, "true": 1.0, "False": 0.0, "FALSE": 0.0, "false": 0.0}
NUMERIC_FIX = "fix the cell, or list the column in data.categorical to one-hot encode it"


# ---------------------------------------------------------------------- one column


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
            raise DataError(f"{cell(source, i + row_offset, column)}: {s.iloc[i]!r} is not a number ({fix})")
        s = num
    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(v)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        what = "missing value" if np.isnan(v[i]) else f"infinite value {v[i]}"
        raise DataError(f"{cell(source, i + row_offset, column)}: {what}; fill or drop the row")
    return v


def text_column(s, source: str, column: str, row_offset: int = 0) -> np.ndarray:
    """The column as an array of str, or a DataError naming the first missing cell."""
    miss = s.isna().to_numpy()
    if miss.any():
        i = int(np.flatnonzero(miss)[0])
        raise DataError(f"{cell(source, i + row_offset, column)}: missing value; fill or drop the row")
    return s.astype(str).to_numpy(dtype=object)


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


def codes_of(values: np.ndarray, known: list[str], what: str, source: str, column: str, row_offset: int = 0) -> np.ndarray:
    """The position of every value in ``known``; a value not there is an error naming its row."""
    index = {c: k for k, c in enumerate(known)}
    codes = np.fromiter((index.get(v, -1) for v in values), dtype=np.int64, count=len(values))
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        raise DataError(f"{cell(source, i + row_offset, column)}: {what} {values[i]!r} was not seen in training ({shown})")
    return codes


def _squared_deviations(block: np.ndarray, m: np.ndarray) -> np.ndarray:
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
    if len(starts) < 2 or _threads() < 2:
        return [fn(c) for c in starts]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(_threads()) as pool:
        return list(pool.map(fn, starts))


def _threads() -> int:
    """The cores this process may use, at most 2, and at most OMP_NUM_THREADS when set (as
    nncli sweep sets it for each of its workers)."""
    import os

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    return max(1, min(n, 2, int(limit) if limit.isdigit() and int(limit) > 0 else 2))


def _c_order_float64(A: np.ndarray) -> tuple[np.ndarray, bool]:
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


# ---------------------------------------------------------------------- the preprocessor


@dataclass
class Preprocessor:
    """Everything needed to turn a table into the network's inputs and targets, and back.

    x_mean and x_std cover the encoded input vector (one entry per network input); one-hot
    entries have mean 0 and std 1, so the transform is uniformly (encode(df) - x_mean) / x_std.
    """

    features: list[str]
    categories: dict[str, list[str]]  # text columns and their training categories
    targets: list[str]
    task: Task
    classes: Optional[list[str]]
    x_mean: np.ndarray = field(repr=False)
    x_std: np.ndarray = field(repr=False)
    standardize: bool = True

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

    @property
    def n_outputs(self) -> int:
        return self.task.n_outputs(self.classes, self.targets)

    def numeric_mask(self) -> np.ndarray:
        """For each network input: True if it is a numeric column, False if a one-hot entry."""
        return np.concatenate([np.zeros(len(self.categories[f]), bool) if f in self.categories else np.ones(1, bool)
                               for f in self.features])

    def positions(self) -> dict[str, int]:
        """The first network input of every feature (a one-hot block takes one per category)."""
        out, j = {}, 0
        for f in self.features:
            out[f] = j
            j += len(self.categories[f]) if f in self.categories else 1
        return out

    def str_columns(self) -> list[str]:
        """Columns to read as text: categorical features and classification targets."""
        return list(self.categories) + (self.targets if self.task.is_classifier else [])

    def required_columns(self) -> list[str]:
        return self.features + self.targets

    # -------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, df, data_cfg, task: Task, source: str, rows=None) -> "Preprocessor":
        """Learn the layout from every row of ``df`` (categories, labels), and the
        standardisation from ``rows`` (the training split; default all)."""
        return cls.fit_encode(df, data_cfg, task, source, rows)[0]

    @classmethod
    def fit_encode(cls, df, data_cfg, task: Task, source: str, rows=None) -> tuple["Preprocessor", np.ndarray]:
        """:meth:`fit`, and the encoded inputs of every row of ``df`` before scaling (computed once)."""
        features = _choose_features(df, data_cfg, source)
        categories = {}
        for f in features:
            if _is_text(df[f], f in data_cfg.categorical):
                categories[f] = _categories(df[f], f in data_cfg.categorical, source, f)
        classes = _fit_classes(df, data_cfg.targets, task, source)
        prep = cls(features, categories, data_cfg.targets, task, classes, np.zeros(0), np.ones(0), data_cfg.standardize)
        X = prep.encode(df, source)
        prep.fit_scaler(X, source, np.arange(len(df)) if rows is None else np.asarray(rows))
        return prep, X

    def fit_scaler(self, X: np.ndarray, source: str, rows: np.ndarray) -> None:
        """x_mean and x_std of the encoded inputs X[rows] (float64), added in row chunks
        (no copy of X); ``rows`` are also the file's row numbers, for messages."""
        width = X.shape[1]
        mean, std = np.zeros(width), np.ones(width)
        if self.standardize and len(rows):
            num = np.flatnonzero(self.numeric_mask())
            cols = slice(None) if len(num) == width else num  # all numeric: no column gather
            with np.errstate(all="ignore"):  # per-chunk partial sums, added in chunk order
                m = sum(each_chunk(lambda c: X[rows[c : c + CHUNK]][:, cols].sum(axis=0), len(rows)),
                        np.zeros(len(num))) / len(rows)
                sd = np.sqrt(sum(each_chunk(lambda c: _squared_deviations(X[rows[c : c + CHUNK]][:, cols], m), len(rows)),
                                 np.zeros(len(num))) / len(rows))
            for k, j in enumerate(num):
                if not (np.isfinite(m[k]) and np.isfinite(sd[k])):
                    col = X[rows, j]
                    i = int(np.argmax(np.abs(col)))
                    raise DataError(f"{cell(source, int(rows[i]), self.input_names[j])}: value {col[i]} is too large to standardise; rescale the column")
                mean[j] = m[k]
                std[j] = sd[k] if sd[k] > 0 else 1.0
        self.x_mean, self.x_std = mean, std

    # -------------------------------------------------------------- transforming
    def transform(self, df, source: str, dtype=np.float64, row_offset: int = 0) -> np.ndarray:
        """The network inputs X of shape (n_samples, n_inputs), standardised, in ``dtype``."""
        return self.scale(self.encode(df, source, row_offset), source, dtype, row_offset)

    def encode(self, df, source: str, row_offset: int = 0) -> np.ndarray:
        """float64 inputs before standardisation: numeric columns as they are, one-hot blocks
        for categorical ones, in feature order."""
        import pandas as pd

        missing = [f for f in self.features if f not in df.columns]
        if missing:
            raise DataError(missing_columns_message(source, missing, list(df.columns)))
        numeric = [f for f in self.features if f not in self.categories]
        # clean numeric columns in one block (the common, large case); anything else column by column
        fast = [f for f in numeric if pd.api.types.is_numeric_dtype(df[f]) and not pd.api.types.is_bool_dtype(df[f])]
        block, finite = _c_order_float64(df[fast].to_numpy()) if fast else (None, True)
        if not finite:
            fast, block = [], None  # find and report the bad cell column by column below
        if block is not None and len(fast) == self.n_inputs:
            return block  # every input is a clean numeric column, in feature order
        positions = self.positions()
        X = np.zeros((len(df), self.n_inputs), dtype=np.float64)
        if block is not None:
            X[:, [positions[f] for f in fast]] = block
        for f in numeric:
            if f not in fast:
                X[:, positions[f]] = numeric_column(df[f], source, f, row_offset)
        for f, cats in self.categories.items():
            codes = codes_of(text_column(df[f], source, f, row_offset), cats, "category", source, f, row_offset)
            X[np.arange(len(df)), positions[f] + codes] = 1
        return X

    def scale(self, X: np.ndarray, source: str, dtype=np.float64, row_offset: int = 0, rows=None) -> np.ndarray:
        """(X[rows] - x_mean) / x_std computed in float64 and stored in ``dtype``, in row chunks
        (no full-size temporaries); a value that does not fit ``dtype`` is an error naming its
        row and column."""
        rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
        out = np.empty((len(rows), X.shape[1]), dtype=dtype)

        def chunk(c):
            block = X[rows[c : c + CHUNK]]
            with np.errstate(all="ignore"):
                if self.standardize:
                    block -= self.x_mean
                    # divided in float64, rounded once into out's dtype
                    np.divide(block, self.x_std, out=out[c : c + CHUNK], casting="same_kind")
                else:
                    out[c : c + CHUNK] = block

        each_chunk(chunk, len(rows))
        if not np.isfinite(out).all():
            i, k = map(int, np.argwhere(~np.isfinite(out))[0])
            raise DataError(f"{cell(source, int(rows[i]) + row_offset, self.input_names[k])}: value out of range for {np.dtype(dtype).name}")
        return out

    def transform_targets(self, df, source: str, dtype=np.float64, row_offset: int = 0) -> np.ndarray:
        """Y of shape (n_samples, n_outputs): 0/1 for binary, one-hot for multiclass, values for regression."""
        missing = [t for t in self.targets if t not in df.columns]
        if missing:
            raise DataError(missing_columns_message(source, missing, list(df.columns)))
        if self.task.is_classifier:
            return self.task.encode(self.label_codes(df[self.targets[0]], source, row_offset), len(self.classes), dtype)
        Y = np.empty((len(df), len(self.targets)), dtype=dtype)
        for k, t in enumerate(self.targets):
            with np.errstate(over="ignore"):
                Y[:, k] = numeric_column(df[t], source, t, row_offset)
            bad = ~np.isfinite(Y[:, k])
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{cell(source, i + row_offset, t)}: target value out of range for {np.dtype(dtype).name}; rescale the column")
        return Y

    def label_codes(self, s, source: str, row_offset: int = 0) -> np.ndarray:
        """The class code of every label in the target column ``s``."""
        t = self.targets[0]
        return codes_of(text_column(s, source, t, row_offset), self.classes, "label", source, t, row_offset)

    def inverse_transform(self, A: np.ndarray):
        """Predictions from network outputs A: (labels or values, class probabilities or None)."""
        if not self.task.is_classifier:
            return A, None
        # the task's decision (y_hat >= 1/2 is class 1 for binary), as eval and training count it
        return np.asarray(self.classes, dtype=object)[self.task.predicted_codes(A)], self.task.probabilities(A)

    def unscale(self, X: np.ndarray) -> np.ndarray:
        """Standardised inputs back in the data's own units (float64)."""
        return X.astype(np.float64) * self.x_std + self.x_mean

    # -------------------------------------------------------------- persistence
    def to_json(self) -> dict:
        return {"features": self.features, "categories": self.categories, "targets": self.targets,
                "task": self.task.name, "classes": self.classes, "input_names": self.input_names}

    def arrays(self) -> dict[str, np.ndarray]:
        """The numbers saved in model.npz: x_mean, x_std and the class labels."""
        out = {"x_mean": self.x_mean, "x_std": self.x_std}
        if self.classes is not None:
            out["classes"] = np.asarray(self.classes, dtype=str)
        return out

    @classmethod
    def from_json(cls, meta: dict, arrays) -> "Preprocessor":
        """Rebuild from :meth:`to_json` and :meth:`arrays`; ValueError/KeyError/TypeError if they disagree."""
        classes = meta.get("classes")
        if meta["task"] not in TASKS:
            raise ValueError(f"unknown task {meta['task']!r}")
        prep = cls(
            list(meta["features"]), {k: list(v) for k, v in meta["categories"].items()}, list(meta["targets"]),
            TASKS[meta["task"]], list(classes) if classes is not None else None,
            np.asarray(arrays["x_mean"], dtype=np.float64), np.asarray(arrays["x_std"], dtype=np.float64),
        )
        if len(prep.x_mean) != len(prep.input_names) or prep.x_std.shape != prep.x_mean.shape:
            raise ValueError("x_mean/x_std do not match the feature layout")
        if "classes" in arrays and classes is not None and [str(c) for c in arrays["classes"]] != prep.classes:
            raise ValueError("classes in model.npz and preprocess.json disagree")
        return prep


# ---------------------------------------------------------------------- fitting, step by step


def _choose_features(df, d, source: str) -> list[str]:
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


def _is_text(s, declared: bool) -> bool:
    import pandas as pd

    return declared or not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def _categories(s, declared: bool, source: str, column: str) -> list[str]:
    """The sorted categories of a text column; a mostly numeric column with a typo is an error."""
    if not declared and looks_numeric(s):
        numeric_column(s, source, column)  # raises, naming the first non-numeric cell
    cats = sort_labels(set(text_column(s, source, column)))
    if len(cats) > MAX_CATEGORIES:
        raise DataError(f"{source}: column '{column}' has {len(cats)} distinct text values; it looks like an "
                        "identifier or free text. Leave it out with data.exclude")
    return cats


def _fit_classes(df, targets: list[str], task: Task, source: str) -> Optional[list[str]]:
    """The sorted class labels of a classifier's target column (None for regression)."""
    if not task.is_classifier:
        for t in targets:
            numeric_column(df[t], source, t, fix="loss mse needs numeric targets; for class labels use loss bce or cross_entropy")
        return None
    t = targets[0]
    classes = sort_labels(set(text_column(df[t], source, t)))
    shown = f"{', '.join(classes[:6])}{', ...' if len(classes) > 6 else ''}"
    if len(classes) < 2:
        raise DataError(f"{source}: target column '{t}' has only one class ({classes[0]!r}); a classifier needs at least two")
    if task.max_classes is not None and len(classes) > task.max_classes:
        raise DataError(f"{source}: target column '{t}' has {len(classes)} classes ({shown}); loss bce needs exactly two: use loss: cross_entropy")
    try:
        nums = np.array([float(c) for c in classes])
    except ValueError:
        return classes  # text labels
    odd = [c for c, v in zip(classes, nums) if not np.isfinite(v) or v != round(v)]
    if odd:
        raise DataError(f"{source}: target column '{t}' looks continuous ({len(classes)} distinct values such as {odd[0]!r}): use loss: mse?")
    return classes
