"""The config's data as arrays: read, split into train / validation / test, preprocess.

- The training CSV's held-out rows are drawn once, from the run's one seeded generator
  (test rows first, then validation rows, stratified by class for classifiers), and the
  row indices of each split are kept in :class:`Dataset` ``.rows`` so that the run
  directory saves them: ``eval``, ``plot`` and ``gradcheck`` read them back instead of
  drawing them again.
- The :class:`~nncli.preprocess.Preprocessor` is fitted on the training rows only.
- Rows are numbered from 1 for the first data row in messages (row r is line r + 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .csvio import read_csv
from .errors import DataError
from .preprocess import Preprocessor, text_column


@dataclass
class Split:
    name: str  # e.g. "train", "val (20 rows of datasets/x.csv)", "datasets/test.csv"
    X: np.ndarray  # (n_samples, n_inputs)
    Y: np.ndarray  # (n_samples, n_outputs)

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
    rows: dict[str, np.ndarray] = field(default_factory=dict)  # split name -> row indices into data.train
    n_rows: int = 0  # rows of the training CSV


def split_indices(n: int, frac: float, rng: np.random.Generator, strata: Optional[np.ndarray] = None):
    """(kept, held_out) row indices, both sorted; held_out has about frac * n rows.

    With ``strata`` (class codes) the split is stratified: each class gives round(frac * n_c)
    rows, but never all of its rows.
    """
    if strata is None:
        held = np.sort(rng.permutation(n)[: int(round(frac * n))])
    else:
        parts = []
        for c in np.unique(strata):
            idx = np.flatnonzero(strata == c)
            k = min(int(round(frac * len(idx))), len(idx) - 1)
            parts.append(rng.permutation(idx)[:k])
        held = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    mask = np.ones(n, bool)
    mask[held] = False
    return np.flatnonzero(mask), held


def split_rows(cfg, df, rng: np.random.Generator, source: str) -> dict[str, np.ndarray]:
    """{"train": rows, "val": rows, "test": rows} of the training CSV (held-out splits only
    when the config asks for them).

    Test rows are drawn first, then validation rows, from the one seeded generator, and
    stratified by class for classifiers; the same config and seed give the same rows.
    """
    d = cfg.data
    n = len(df)
    rows = np.arange(n)
    strata = None
    if cfg.task.is_classifier and (d.test_split or d.val_split):
        t = d.targets[0]
        _, strata = np.unique(text_column(df[t], source, t), return_inverse=True)
    out = {}
    if d.test_split:
        rows, out["test"] = split_indices(n, d.test_split, rng, strata)
        if len(out["test"]) == 0:
            raise DataError(f"data.test_split: {d.test_split} of {n} rows leaves no test rows; use a larger fraction or data.test")
    if d.val_split:
        frac = d.val_split / (1 - (d.test_split or 0))
        keep, held = split_indices(len(rows), frac, rng, None if strata is None else strata[rows])
        rows, out["val"] = rows[keep], rows[held]
        if len(out["val"]) == 0:
            raise DataError(f"data.val_split: {d.val_split} of {n} rows leaves no validation rows; use a larger fraction or data.val")
    if len(rows) == 0:
        raise DataError(f"{source}: no training rows left after the held-out splits")
    return {"train": rows, **out}


def read_train_csv(cfg, str_columns=None):
    """(DataFrame, source) of data.train; targets of classifiers and categorical columns as text."""
    d = cfg.data
    if str_columns is None:
        str_columns = list(d.categorical) + (d.targets if cfg.task.is_classifier else [])
    return read_csv(d.train, "data.train", str_columns=str_columns, required=d.targets), f"data.train {d.train}"


def read_labelled_csv(path, key: str, prep: Preprocessor):
    """(DataFrame, source) of another CSV with the run's features and targets."""
    return read_csv(path, key, str_columns=prep.str_columns(), required=prep.required_columns()), f"{key} {path}"


def load_dataset(cfg, rng: np.random.Generator) -> Dataset:
    """Read, split and preprocess the config's data. Consumes ``rng`` only for splits."""
    d = cfg.data
    dtype = np.dtype(cfg.train.dtype)
    df, source = read_train_csv(cfg)
    rows = split_rows(cfg, df, rng, source)

    prep, X_raw = Preprocessor.fit_encode(df, d, cfg.task, source, rows["train"])
    Y_all = prep.transform_targets(df, source, dtype=dtype)

    def from_rows(name, idx):
        return Split(name, prep.scale(X_raw, source, dtype, rows=idx), Y_all[idx])

    def from_file(key, path):
        frame, src = read_labelled_csv(path, key, prep)
        return Split(str(path), prep.transform(frame, src, dtype=dtype), prep.transform_targets(frame, src, dtype=dtype))

    splits = {"train": from_rows("train", rows["train"])}
    for name in ("val", "test"):
        if name in rows:
            splits[name] = from_rows(f"{name} ({len(rows[name])} rows of {d.train})", rows[name])
        elif getattr(d, name) is not None:
            splits[name] = from_file(f"data.{name}", getattr(d, name))
    return Dataset(prep, splits["train"], splits.get("val"), splits.get("test"), _notes(prep, len(df)), rows, len(df))


def _notes(prep: Preprocessor, n: int) -> list[str]:
    return [f"column '{f}' has {len(cats)} distinct values in {n} rows and is one-hot encoded; "
            "if it is an identifier, leave it out with data.exclude"
            for f, cats in prep.categories.items() if len(cats) > 0.5 * n and len(cats) > 20]
