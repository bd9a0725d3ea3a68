"""The preprocessing that travels with a run: a table's columns to the network's x and y, and back.

A :class:`Preprocessor` speaks scikit-learn's vocabulary:

- :meth:`Preprocessor.fit` learns the layout (feature columns, which are text, the class
  labels) from a DataFrame, and every statistic from the training rows only: the
  categories of text columns, the imputation values and missing indicators
  (data.missing: impute), the standardisation;
- :meth:`Preprocessor.transform` turns a DataFrame into the network inputs X of shape
  (n_samples, n_inputs): numeric columns z-scored, text columns one-hot encoded with the
  training categories; :meth:`Preprocessor.transform_targets` gives Y;
- :meth:`Preprocessor.inverse_transform` turns network outputs back into predictions in
  the original labels (``007`` stays ``007``) or values, with class probabilities;
- :meth:`Preprocessor.to_json` / :meth:`Preprocessor.from_json` save and rebuild it
  without pickles (preprocess.json, and x_mean/x_std/classes in model.npz).

Missing cells in feature columns are imputed (data.missing: impute) or one error listing
every affected column with its count and first rows (rows without a target, and under
data.missing: drop rows with a gap, are dropped before: nncli.data). An infinite value is an
error naming its row and column; an unseen category an error, or all zeros
(data.unknown_category: ignore).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .columns import (CHUNK, at_row, c_order_float64, categories_of, choose_features, codes_of, each_chunk, file_rows, fill_value, fit_classes, is_text_feature, missing_message, numeric_column, squared_deviations, text_column)
from .csvio import cell, missing_columns_message
from .errors import DataError
from .tasks import TASKS, Task

MISSING_FIX = ("set data.missing: drop to drop those rows, or data.missing: impute to fill them "
               "(or leave a column out with data.exclude)")
RUN_MISSING_FIX = ("this run was trained with data.missing: {missing}, which cannot fill them: fill the cells, "
                   "or train again with data.missing: impute")
UNKNOWN_FIX = ("; categories are learnt from the training rows only, and data.unknown_category: ignore "
               "encodes an unseen one as all zeros")


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
    # regression targets z-scored for training (data.standardize_target); None: unscaled
    y_mean: Optional[np.ndarray] = field(default=None, repr=False)
    y_std: Optional[np.ndarray] = field(default=None, repr=False)
    # missing cells and unseen categories (data.missing, data.impute, data.missing_indicator,
    # data.unknown_category, data.na_values); the defaults are how runs saved before them behave
    missing: str = "error"
    impute_values: dict = field(default_factory=dict)  # feature -> fill value (a number, or a category)
    indicators: list = field(default_factory=list)  # numeric features with a 0/1 "<f> (missing)" input, last
    unknown_category: str = "error"
    na_values: list = field(default_factory=list)  # cell texts that mean missing besides csvio.MISSING
    # train.class_weight resolved on the training rows: w_c per class, in the order of classes (None: unweighted)
    class_weight: Optional[list] = None

    # -------------------------------------------------------------- shape
    @property
    def input_names(self) -> list[str]:
        names = []
        for f in self.features:
            names += [f"{f}={c}" for c in self.categories[f]] if f in self.categories else [f]
        return names + [f"{f} (missing)" for f in self.indicators]

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def n_outputs(self) -> int:
        return self.task.n_outputs(self.classes, self.targets)

    def numeric_mask(self) -> np.ndarray:
        """For each network input: True if it is a numeric column, False if a one-hot entry."""
        return np.concatenate([np.zeros(len(self.categories[f]), bool) if f in self.categories else np.ones(1, bool)
                               for f in self.features] + [np.zeros(len(self.indicators), bool)])

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
        """Learn the layout (feature columns, which are text) and the label set from ``df``, and
        every statistic from ``rows`` (the training split; default all): the categories of
        text columns, the imputation values, which columns get a missing indicator, and the
        standardisation."""
        return cls.fit_encode(df, data_cfg, task, source, rows)[0]

    @classmethod
    def fit_encode(cls, df, data_cfg, task: Task, source: str, rows=None, use=None,
                   counts: Optional[dict] = None) -> tuple["Preprocessor", np.ndarray]:
        """:meth:`fit`, and the encoded inputs before scaling (computed once) of the rows ``use``
        of ``df`` (default every row; any other row of the result stays zero). ``counts``
        collects {column: rows} with a category unseen in ``rows`` (data.unknown_category: ignore)."""
        d, n = data_cfg, len(df)
        rows = np.arange(n) if rows is None else np.asarray(rows)
        features = choose_features(df, d, source)
        text = [f for f in features if is_text_feature(df[f], f in d.categorical, source, f)]
        prep = cls(features, {}, d.targets, task, None, np.zeros(0), np.ones(0), d.standardize,
                   missing=d.missing, unknown_category=d.unknown_category, na_values=list(d.na_values))
        if d.missing == "impute":  # fill values from the training rows, as SimpleImputer
            prep.impute_values = {f: fill_value(df[f].iloc[rows], f in text, d.impute, source, f, rows) for f in features}
            if d.missing_indicator:
                prep.indicators = [f for f in features if f not in text and bool(df[f].iloc[rows].isna().any())]
        for f in text:  # the categories of the training rows (after imputation), as OneHotEncoder
            s = df[f].iloc[rows]
            if f in prep.impute_values:
                s = s.fillna(prep.impute_values[f])
            prep.categories[f] = categories_of(s.dropna(), source, f)
        labelled = df[d.targets].notna().all(axis=1).to_numpy()  # rows with a target (others are dropped)
        prep.classes = fit_classes(df[d.targets][labelled], d.targets, task, source, np.flatnonzero(labelled))
        if use is None:
            X = prep.encode(df, source, counts=counts)
        else:
            use = np.asarray(use)
            X = np.zeros((n, prep.n_inputs))
            X[use] = prep.encode(df.iloc[use], source, row_offset=use, counts=counts)
        prep.fit_scaler(X, source, rows)
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
                sd = np.sqrt(sum(each_chunk(lambda c: squared_deviations(X[rows[c : c + CHUNK]][:, cols], m), len(rows)),
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
    def transform(self, df, source: str, dtype=np.float64, row_offset: int = 0, counts: Optional[dict] = None,
                  fix: str = "") -> np.ndarray:
        """The network inputs X of shape (n_samples, n_inputs), standardised, in ``dtype``.
        ``row_offset``: the file row of the first row, or an array of the file row of each;
        ``counts`` and ``fix``: see :meth:`encode`."""
        return self.scale(self.encode(df, source, row_offset, counts, fix), source, dtype, row_offset)

    def encode(self, df, source: str, row_offset: int = 0, counts: Optional[dict] = None, fix: str = "") -> np.ndarray:
        """float64 inputs before standardisation: numeric columns as they are, one-hot blocks
        for categorical ones, in feature order, then the missing indicators.

        Missing cells are imputed (data.missing: impute) or one DataError listing every
        affected column (ending with ``fix``, default: the data.missing options). An unseen
        category is an error, or (data.unknown_category: ignore) all zeros, counted per
        column in ``counts``."""
        import pandas as pd

        missing = [f for f in self.features if f not in df.columns]
        if missing:
            raise DataError(missing_columns_message(source, missing, list(df.columns)))
        df, gaps = self.fill_missing(df, source, row_offset, fix)
        numeric = [f for f in self.features if f not in self.categories]
        # clean numeric columns in one block (the common, large case); anything else column by column
        fast = [f for f in numeric if pd.api.types.is_numeric_dtype(df[f]) and not pd.api.types.is_bool_dtype(df[f])]
        block, finite = c_order_float64(df[fast].to_numpy()) if fast else (None, True)
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
            codes = codes_of(text_column(df[f], source, f, row_offset), cats, "category", source, f, row_offset,
                             self.unknown_category, UNKNOWN_FIX)
            known = codes >= 0
            if known.all():
                X[np.arange(len(df)), positions[f] + codes] = 1
            else:  # data.unknown_category: ignore: an unseen category is all zeros
                X[np.flatnonzero(known), positions[f] + codes[known]] = 1
                if counts is not None:
                    counts[f] = counts.get(f, 0) + int((~known).sum())
        first = self.n_inputs - len(self.indicators)
        for k, f in enumerate(self.indicators):
            if f in gaps:
                X[:, first + k] = gaps[f]
        return X

    def fill_missing(self, df, source: str, row_offset=0, fix: str = ""):
        """(``df`` with the missing cells of the features filled, {feature: its missing mask} of
        the features with missing cells). Without imputation a missing cell is a DataError
        listing every affected column with its count and first rows."""
        import pandas as pd

        gaps = {}
        for f in self.features:
            m = df[f].isna()
            if m.any():
                gaps[f] = m.to_numpy()
        if not gaps:
            return df, gaps
        if self.missing != "impute" or any(f not in self.impute_values for f in gaps):
            raise DataError(missing_message(source, gaps, file_rows(df, row_offset), fix or MISSING_FIX))
        df = df.copy(deep=False)
        for f in gaps:
            v = self.impute_values[f]
            if f not in self.categories and not pd.api.types.is_numeric_dtype(df[f]):
                v = repr(float(v))  # a number in a text column of numbers: read back exactly
            df[f] = df[f].fillna(v)
        return df, gaps

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
            raise DataError(f"{cell(source, at_row(int(rows[i]), row_offset), self.input_names[k])}: value out of range for {np.dtype(dtype).name}")
        return out

    def transform_targets(self, df, source: str, dtype=np.float64, row_offset: int = 0) -> np.ndarray:
        """Y of shape (n_samples, n_outputs): 0/1 for binary, one-hot for multiclass, values for regression."""
        missing = [t for t in self.targets if t not in df.columns]
        if missing:
            raise DataError(missing_columns_message(source, missing, list(df.columns)))
        if self.task.is_classifier:
            return self.task.encode(self.label_codes(df[self.targets[0]], source, row_offset), len(self.classes), dtype)
        # regression: the values (z-scored with the training statistics when the run scales
        # its targets), computed in float64 and rounded once into ``dtype``
        V = self.target_values(df, source, row_offset)
        if self.scales_targets:
            V = (V - self.y_mean) / self.y_std
        Y = np.empty(V.shape, dtype=dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            Y[...] = V
        for k, t in enumerate(self.targets):
            bad = ~np.isfinite(Y[:, k])
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{cell(source, at_row(i, row_offset), t)}: target value out of range for {np.dtype(dtype).name}; rescale the column")
        return Y

    def target_values(self, df, source: str, row_offset: int = 0) -> np.ndarray:
        """Regression targets (n_samples, n_targets) in their own units, float64, unscaled;
        a missing or non-numeric cell is an error naming its row and column."""
        missing = [t for t in self.targets if t not in df.columns]
        if missing:
            raise DataError(missing_columns_message(source, missing, list(df.columns)))
        V = np.empty((len(df), len(self.targets)), dtype=np.float64)
        for k, t in enumerate(self.targets):
            V[:, k] = numeric_column(df[t], source, t, row_offset)
        return V

    # -------------------------------------------------------------- target scaling
    @property
    def scales_targets(self) -> bool:
        """Whether the network's outputs are z-scored targets (data.standardize_target)."""
        return self.y_mean is not None

    @property
    def loss_units(self) -> Optional[str]:
        """What the training loss of a regression run is measured in (None for classifiers)."""
        if self.task.is_classifier:
            return None
        return "standardized targets" if self.scales_targets else "original units"

    def fit_target_scaler(self, df, source: str, rows=None, row_offset=0) -> None:
        """y_mean and y_std (population std, as StandardScaler; a constant target divides by
        1) of the regression targets of ``rows`` of ``df`` (the training split; default all).
        ``row_offset``: the file rows of ``df``'s rows, for messages (see :func:`_at`)."""
        if self.task.is_classifier:
            return
        rows = np.arange(len(df)) if rows is None else np.asarray(rows)
        if len(rows) == 0:
            return
        V = self.target_values(df.iloc[rows], source, file_rows(df, row_offset)[rows])
        with np.errstate(all="ignore"):
            m = V.mean(axis=0)
            sd = np.sqrt(((V - m) ** 2).mean(axis=0))
        for k, t in enumerate(self.targets):
            if not (np.isfinite(m[k]) and np.isfinite(sd[k])):
                i = int(np.argmax(np.abs(V[:, k])))
                raise DataError(f"{cell(source, at_row(int(rows[i]), row_offset), t)}: target value {V[i, k]} is too large "
                                "to standardise; rescale the column")
        # a target indistinguishable from a constant (its variance within the rounding error of
        # the two-pass computation, scikit-learn's test) is divided by 1, as StandardScaler does
        n, eps = len(rows), np.finfo(np.float64).eps
        constant = sd**2 <= n * eps * sd**2 + (n * m * eps) ** 2
        self.y_mean, self.y_std = m, np.where(constant, 1.0, sd)

    def unscale_targets(self, A: np.ndarray) -> np.ndarray:
        """Regression outputs (or encoded targets) back in the targets' own units, float64."""
        A = np.asarray(A, dtype=np.float64)
        return A * self.y_std + self.y_mean if self.scales_targets else A

    def label_codes(self, s, source: str, row_offset: int = 0) -> np.ndarray:
        """The class code of every label in the target column ``s``."""
        t = self.targets[0]
        return codes_of(text_column(s, source, t, row_offset), self.classes, "label", source, t, row_offset)

    def inverse_transform(self, A: np.ndarray):
        """Predictions from network outputs A: (labels or values, class probabilities or None)."""
        if not self.task.is_classifier:
            # values in the targets' own units (the network predicts z-scores when the run scales them)
            return (self.unscale_targets(A) if self.scales_targets else A), None
        # the task's decision (y_hat >= 1/2 is class 1 for binary), as eval and training count it
        return np.asarray(self.classes, dtype=object)[self.task.predicted_codes(A)], self.task.probabilities(A)

    def unscale(self, X: np.ndarray) -> np.ndarray:
        """Standardised inputs back in the data's own units (float64)."""
        return X.astype(np.float64) * self.x_std + self.x_mean

    # -------------------------------------------------------------- persistence
    def to_json(self) -> dict:
        return {"features": self.features, "categories": self.categories, "targets": self.targets,
                "task": self.task.name, "classes": self.classes, "input_names": self.input_names,
                **self._target_scaling_json(), **self._missing_json(),
                **({} if self.class_weight is None else {"class_weight": dict(zip(self.classes, self.class_weight))})}

    def _missing_json(self) -> dict:
        """How missing cells and unseen categories are handled, and the values fitted for it."""
        return {"missing": self.missing, "impute_values": self.impute_values, "missing_indicators": self.indicators,
                "unknown_category": self.unknown_category, "na_values": self.na_values}

    def _target_scaling_json(self) -> dict:
        """{"target_scaling": {target: {"mean", "std"}} or None} for regression; {} for classifiers."""
        if self.task.is_classifier:
            return {}
        if not self.scales_targets:
            return {"target_scaling": None}
        return {"target_scaling": {t: {"mean": float(self.y_mean[k]), "std": float(self.y_std[k])}
                                   for k, t in enumerate(self.targets)}}

    def arrays(self) -> dict[str, np.ndarray]:
        """The numbers saved in model.npz: x_mean, x_std and the class labels."""
        out = {"x_mean": self.x_mean, "x_std": self.x_std}
        if self.classes is not None:
            out["classes"] = np.asarray(self.classes, dtype=str)
        if self.scales_targets:
            out["y_mean"], out["y_std"] = self.y_mean, self.y_std
        return out

    @classmethod
    def from_json(cls, meta: dict, arrays) -> "Preprocessor":
        """Rebuild from :meth:`to_json` and :meth:`arrays`; ValueError/KeyError/TypeError if they disagree
        (:class:`SavedLayoutError`, a ValueError, when preprocess.json itself is malformed)."""
        check_saved_layout(meta)
        classes = meta.get("classes")
        if meta["task"] not in TASKS:
            raise ValueError(f"unknown task {meta['task']!r}")
        prep = cls(
            list(meta["features"]), {k: list(v) for k, v in meta["categories"].items()}, list(meta["targets"]),
            TASKS[meta["task"]], list(classes) if classes is not None else None,
            np.asarray(arrays["x_mean"], dtype=np.float64), np.asarray(arrays["x_std"], dtype=np.float64),
            **_missing_of(meta),
        )
        if prep.x_mean.ndim != 1 or len(prep.x_mean) != len(prep.input_names) or prep.x_std.shape != prep.x_mean.shape:
            raise ValueError("x_mean/x_std do not match the feature layout")
        if not (np.isfinite(prep.x_mean).all() and np.isfinite(prep.x_std).all() and (prep.x_std > 0).all()):
            raise SavedArrayError("'x_mean'/'x_std' hold NaN, infinite, zero or negative values; the file is corrupt")
        if "input_names" in meta and list(meta["input_names"]) != prep.input_names:
            raise SavedLayoutError("'input_names' do not match 'features' and 'categories'")
        if "classes" in arrays and classes is not None and [str(c) for c in arrays["classes"]] != prep.classes:
            raise ValueError("classes in model.npz and preprocess.json disagree")
        prep.y_mean, prep.y_std = _target_scaling_of(meta, arrays, prep.targets)
        prep.class_weight = _class_weight_of(meta, prep.classes)
        return prep


class SavedLayoutError(ValueError):
    """preprocess.json is malformed: a field has the wrong type or disagrees with another."""


class SavedArrayError(ValueError):
    """An array of model.npz (x_mean, x_std) holds values no training run writes."""


def check_saved_layout(meta) -> None:
    """The types and shapes of the fields of preprocess.json; SavedLayoutError naming the field."""

    def names(key, value, allow_empty=True):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (not allow_empty and not value):
            raise SavedLayoutError(f"'{key}' must be a {'non-empty ' if not allow_empty else ''}list of names, not {_kind(value)}")
        if len(set(value)) != len(value):
            raise SavedLayoutError(f"'{key}' names a column twice")

    if not isinstance(meta, dict):
        raise SavedLayoutError(f"must be a JSON object (a mapping of fields), not {_kind(meta)}")
    for key in ("features", "categories", "targets", "task"):
        if key not in meta:
            raise SavedLayoutError(f"the field '{key}' is missing")
    names("features", meta["features"])
    names("targets", meta["targets"], allow_empty=False)
    cats = meta["categories"]
    if not isinstance(cats, dict):
        raise SavedLayoutError(f"'categories' must be a mapping of column to categories, not {_kind(cats)}")
    for f, values in cats.items():
        if f not in meta["features"]:
            raise SavedLayoutError(f"'categories' names '{f}', which is not one of the 'features'")
        names(f"categories.{f}", values, allow_empty=False)
    task = meta["task"]
    if not isinstance(task, str) or task not in TASKS:
        raise SavedLayoutError(f"'task' must be one of {', '.join(TASKS)}, not {json.dumps(task)[:40]}")
    classes = meta.get("classes")
    if TASKS[task].is_classifier:
        names("classes", classes)
        if len(classes) < 2:
            raise SavedLayoutError(f"'classes' of a {task} run must list at least two labels")
        if task == "binary" and len(classes) != 2:
            raise SavedLayoutError(f"'classes' of a binary run must list two labels, not {len(classes)}")
        if len(meta["targets"]) != 1:
            raise SavedLayoutError(f"a {task} run has one target column, but 'targets' lists {len(meta['targets'])}")
    elif classes is not None:
        raise SavedLayoutError("'classes' must be null for a regression run")
    if "input_names" in meta:
        names("input_names", meta["input_names"])
    for key, kind in (("impute_values", dict), ("missing_indicators", list), ("na_values", list)):
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise SavedLayoutError(f"'{key}' must be a {'mapping' if kind is dict else 'list'}, not {_kind(meta[key])}")
    for key in ("missing", "unknown_category"):
        if key in meta and not isinstance(meta[key], str):
            raise SavedLayoutError(f"'{key}' must be a text, not {_kind(meta[key])}")
    ts = meta.get("target_scaling")
    if ts is not None and not (isinstance(ts, dict) and all(isinstance(v, dict) for v in ts.values())):
        raise SavedLayoutError(f"'target_scaling' must be null or a mapping of target to {{mean, std}}, not {_kind(ts)}")


def _class_weight_of(meta: dict, classes) -> Optional[list]:
    """The saved class weights (train.class_weight), one per class; SavedLayoutError if malformed."""
    cw = meta.get("class_weight")
    if cw is None:
        return None
    if (classes is None or not isinstance(cw, dict) or sorted(cw) != sorted(classes)
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0 for w in cw.values())):
        raise SavedLayoutError("'class_weight' must map every class label to a positive weight")
    return [float(cw[c]) for c in classes]


def _kind(value) -> str:
    """The JSON kind of a value, for messages: 'a list', 'null', ..."""
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a text", bool: "true/false", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _missing_of(meta: dict) -> dict:
    """The missing-value fields of preprocess.json; a run saved before them gets the defaults."""
    out = {"missing": str(meta.get("missing", "error")), "impute_values": dict(meta.get("impute_values") or {}),
           "indicators": list(meta.get("missing_indicators") or []),
           "unknown_category": str(meta.get("unknown_category", "error")), "na_values": [str(v) for v in meta.get("na_values") or []]}
    features, categories = list(meta["features"]), meta["categories"]
    if out["missing"] not in ("error", "drop", "impute") or out["unknown_category"] not in ("error", "ignore"):
        raise ValueError("unknown data.missing or data.unknown_category in preprocess.json")
    if any(f not in features for f in out["impute_values"]) or any(f not in features or f in categories for f in out["indicators"]):
        raise ValueError("impute_values/missing_indicators name columns that are not features")
    for f, v in out["impute_values"].items():
        if f in categories:
            out["impute_values"][f] = str(v)
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise ValueError(f"impute value of '{f}' is not a finite number")
        else:
            out["impute_values"][f] = float(v)
    return out


# ---------------------------------------------------------------------- target scaling


def target_scaling_can_apply(cfg) -> bool:
    """Loss mse with the identity output: where data.standardize_target takes effect.

    Classification losses ignore the key (their targets are labels); so does a bounded or
    one-sided output activation (sigmoid, tanh, relu, ...), whose range z-scores would not
    fit, and any other regression loss (a registered one such as Huber's has thresholds in
    the targets' units, which scaling would change).
    """
    return cfg.loss == "mse" and cfg.output == "identity"


def target_scaling_applies(cfg) -> bool:
    """data.standardize_target is on and takes effect (:func:`target_scaling_can_apply`)."""
    return bool(cfg.data.standardize_target) and target_scaling_can_apply(cfg)


def _target_scaling_of(meta: dict, arrays, targets: list[str]):
    """(y_mean, y_std) saved with a run, or (None, None) for an unscaled one (runs saved before
    target scaling included). preprocess.json and model.npz must agree where both have them."""
    saved = meta.get("target_scaling")
    from_json = None
    if saved is not None:
        if not isinstance(saved, dict) or list(saved) != list(targets):
            raise ValueError("target_scaling in preprocess.json does not name the target columns")
        from_json = (np.array([float(saved[t]["mean"]) for t in targets]), np.array([float(saved[t]["std"]) for t in targets]))
    from_npz = None
    if "y_mean" in arrays or "y_std" in arrays:
        from_npz = (np.asarray(arrays["y_mean"], np.float64).reshape(-1), np.asarray(arrays["y_std"], np.float64).reshape(-1))
    if from_json is not None and from_npz is not None and not all(np.array_equal(a, b) for a, b in zip(from_json, from_npz)):
        raise ValueError("y_mean/y_std in model.npz and target_scaling in preprocess.json disagree")
    m, sd = from_json if from_json is not None else from_npz if from_npz is not None else (None, None)
    if m is None:
        return None, None
    if m.shape != (len(targets),) or sd.shape != m.shape or not (np.isfinite(m).all() and np.isfinite(sd).all() and (sd > 0).all()):
        raise ValueError("y_mean/y_std do not match the target columns")
    return m, sd
