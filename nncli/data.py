"""The config's data as arrays: read, split into train / validation / test, preprocess.

- The training CSV's held-out rows are drawn once, from the run's one seeded generator
  (test rows first, then validation rows, stratified by class for classifiers), and the
  row indices of each split are kept in :class:`Dataset` ``.rows`` so that the run
  directory saves them: ``eval``, ``plot`` and ``gradcheck`` read them back instead of
  drawing them again.
- Rows without a target, and under data.missing: drop rows with a missing feature cell,
  are then dropped from each split (counted per split in ``Dataset.dropped_rows``); the
  saved split rows are the rows kept.
- The :class:`~nncli.preprocess.Preprocessor` is fitted on the training rows only.
- Rows are numbered from 1 for the first data row in messages (row r is line r + 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .csvio import read_csv
from .errors import DataError
from .losses import class_weights
from .columns import choose_features, text_column
from .preprocess import Preprocessor, target_scaling_applies


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
    dropped_rows: dict[str, int] = field(default_factory=dict)  # split name -> rows dropped (missing target or cells)


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
        labels = df[t]  # a missing label is a stratum of its own (those rows are dropped later)
        _, strata = np.unique(text_column(labels.fillna("\x00") if labels.isna().any() else labels, source, t),
                              return_inverse=True)
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


def data_files(cfg) -> dict[str, dict]:
    """The fingerprint (path, size, SHA-256) of each data file the config names."""
    from .csvio import fingerprint

    d = cfg.data
    files = {"data.train": d.train, "data.val": d.val, "data.test": d.test}
    return {key: {"path": str(path), **fingerprint(path)} for key, path in files.items() if path is not None}


def read_train_csv(cfg, str_columns=None):
    """(DataFrame, source) of data.train; targets of classifiers and categorical columns as text.

    An omitted ``loss`` is inferred here, the one place that resolves it (nncli.infer.resolve_loss
    sets ``cfg.loss``): the targets are read as text and inferred from; a classifier keeps that
    frame (it is what the named loss reads), a regression reads the file again as the named
    loss would, so a run and its saved config.yaml read the same numbers bit for bit.
    """
    d = cfg.data
    if str_columns is None and cfg.loss is None:
        from .infer import resolve_loss

        df, source = read_train_csv(cfg, list(d.categorical) + d.targets)  # the classifier's text columns below
        resolve_loss(cfg, df, source)
        if cfg.task.is_classifier:
            return df, source
    if str_columns is None:
        str_columns = list(d.categorical) + (d.targets if cfg.task.is_classifier else [])
    return (read_csv(d.train, "data.train", str_columns=str_columns, required=d.targets, na_values=d.na_values, sep=d.sep),
            f"data.train {d.train}")


def read_labelled_csv(path, key: str, prep: Preprocessor, sep=None):
    """(DataFrame, source) of another table with the run's features and targets; ``sep``:
    data.sep (None: by the file's name)."""
    return (read_csv(path, key, str_columns=prep.str_columns(), required=prep.required_columns(), na_values=prep.na_values,
                     sep=sep),
            f"{key} {path}")


def load_dataset(cfg, rng: np.random.Generator) -> Dataset:
    """Read, split and preprocess the config's data. Consumes ``rng`` only for splits."""
    d = cfg.data
    dtype = np.dtype(cfg.train.dtype)
    df, source = read_train_csv(cfg)
    rows = split_rows(cfg, df, rng, source)
    rows, dropped, notes = drop_rows(cfg, df, rows, source)

    unseen: dict = {}
    use = np.sort(np.concatenate(list(rows.values())))
    prep, X_raw = Preprocessor.fit_encode(df, d, cfg.task, source, rows["train"],
                                          use=None if len(use) == len(df) else use, counts=unseen)
    notes += unseen_notes(unseen, source, "the training rows", held_out=True)
    if target_scaling_applies(cfg):  # regression targets z-scored with the training rows' statistics
        prep.fit_target_scaler(df[prep.targets], source, rows["train"])
    targets = df[prep.targets]

    def from_rows(name, idx):
        Y = prep.transform_targets(targets.iloc[idx], source, dtype=dtype, row_offset=idx)
        return Split(name, prep.scale(X_raw, source, dtype, rows=idx), Y)

    def from_file(name, key, path):
        frame, src = read_labelled_csv(path, key, prep, d.sep)
        frame, at, n_dropped, note = usable_rows(frame, prep, src)
        if note:
            notes.append(note)
            dropped[name] = n_dropped
        seen: dict = {}
        X = prep.transform(frame, src, dtype=dtype, row_offset=at, counts=seen)
        notes.extend(unseen_notes(seen, src, "the training rows"))
        return Split(str(path), X, prep.transform_targets(frame, src, dtype=dtype, row_offset=at))

    splits = {"train": from_rows("train", rows["train"])}
    prep.class_weight = class_weights(getattr(cfg.train, "class_weight", None), prep.classes, splits["train"].Y)
    for name in ("val", "test"):
        if name in rows:
            splits[name] = from_rows(f"{name} ({len(rows[name])} rows of {d.train})", rows[name])
        elif getattr(d, name) is not None:
            splits[name] = from_file(name, f"data.{name}", getattr(d, name))
    notes = _notes(prep, len(rows["train"])) + notes
    return Dataset(prep, splits["train"], splits.get("val"), splits.get("test"), notes, rows, len(df), dropped)


SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


def drop_rows(cfg, df, rows: dict, source: str) -> tuple[dict, dict, list[str]]:
    """(the split rows without the rows that cannot be used, {split: rows dropped}, notes).

    A row whose target is missing is dropped whatever data.missing says; a row with a
    missing cell in a feature column only under data.missing: drop (error: the fit names
    every such cell; impute: it is filled).
    """
    d = cfg.data
    no_target = df[d.targets].isna().any(axis=1).to_numpy()
    gap = np.zeros(len(df), bool)
    if d.missing == "drop":
        features = choose_features(df, d, source)
        gap = df[features].isna().any(axis=1).to_numpy()
    bad = no_target | gap
    if not bad.any():
        return rows, {}, []
    kept = {name: idx[~bad[idx]] for name, idx in rows.items()}
    dropped = {name: int(bad[idx].sum()) for name, idx in rows.items() if bad[idx].any()}
    for name, idx in kept.items():
        if len(idx) == 0:
            raise DataError(f"{source}: no {SPLIT_NAMES[name]} rows left after dropping the rows with missing values "
                            f"({int(no_target.sum())} without a target, {int((gap & ~no_target).sum())} with a missing "
                            f"cell); fill them, or use data.missing: impute")
    per_split = ", ".join(f"{SPLIT_NAMES[k]} {n} of {len(rows[k])}" for k, n in dropped.items())
    return kept, dropped, [f"{source}: dropped {int(bad.sum())} rows ({per_split}): {_why(no_target, gap)}"]


def usable_rows(df, prep: Preprocessor, source: str):
    """(the rows of ``df`` that can be used, their file rows (0-based), how many were dropped,
    a note saying so or None): rows without a target are dropped, and under data.missing:
    drop rows with a missing feature cell. The file rows come from ``df``'s index (the rows
    of a file it was read from)."""
    import pandas as pd

    at = df.index.to_numpy() if pd.api.types.is_integer_dtype(df.index) else np.arange(len(df))
    no_target = df[[t for t in prep.targets if t in df.columns]].isna().any(axis=1).to_numpy()
    gap = np.zeros(len(df), bool)
    if prep.missing == "drop":
        gap = df[[f for f in prep.features if f in df.columns]].isna().any(axis=1).to_numpy()
    bad = no_target | gap
    if not bad.any():
        return df, np.asarray(at, np.int64), 0, None
    if bad.all():
        raise DataError(f"{source}: every row has a missing target or (data.missing: drop) a missing cell; nothing to evaluate")
    return (df[~bad], np.asarray(at[~bad], np.int64), int(bad.sum()),
            f"{source}: dropped {int(bad.sum())} of {len(df)} rows: {_why(no_target, gap)}")


def _why(no_target: np.ndarray, gap: np.ndarray) -> str:
    parts = []
    if no_target.any():
        parts.append(f"{int(no_target.sum())} with a missing target")
    if (gap & ~no_target).any():
        parts.append(f"{int((gap & ~no_target).sum())} with a missing value in a used column (data.missing: drop)")
    return ", ".join(parts)


def unseen_notes(counts: dict, source: str, fitted_on: str, held_out: bool = False) -> list[str]:
    """A note per column with categories unseen in ``fitted_on`` (data.unknown_category: ignore)."""
    kind = "held-out " if held_out else ""
    return [f"column '{f}': {n} {kind}row{'s' if n > 1 else ''} of {source} ha{'ve' if n > 1 else 's'} a category not seen "
            f"in {fitted_on}, encoded as all zeros (data.unknown_category: ignore)" for f, n in counts.items()]


def _notes(prep: Preprocessor, n: int) -> list[str]:
    """The near-unique text columns of the ``n`` training rows."""
    return [f"column '{f}' has {len(cats)} distinct values in {n} training rows and is one-hot encoded; "
            "if it is an identifier, leave it out with data.exclude"
            for f, cats in prep.categories.items() if len(cats) > 0.5 * n and len(cats) > 20]
