"""``nncli cv``: K-fold cross-validation, one ordinary training run per fold.

The rows of data.train are dealt into K folds: for a classifier stratified by class,
exactly as scikit-learn's ``StratifiedKFold(K, shuffle=True, random_state=seed)`` deals
them; for a regression as ``KFold(K, shuffle=True, random_state=seed)`` (the same fold of
every row: the seed drives numpy's ``RandomState``, as scikit-learn's does). The seed is
the config's ``seed`` unless ``--seed`` gives another.

Each fold becomes two files in the cv directory, ``fold-<k>-train.csv`` (every row not in
fold k) and ``fold-<k>-val.csv`` (fold k), each cell written exactly as it stands in
data.train (Parquet: the same typed columns), and one ordinary ``nncli train CONFIG`` run
with ``data.train`` and ``data.val`` pointing at them and ``data.val_split`` and
``data.test_split`` unset. So a fold run is a run like any other: self-contained (its
config.yaml names its own files), reproducible (``nncli train RUN/config.yaml``), and
``nncli eval RUN`` measures it on its fold (or on data.test, which a cv keeps). The
config's own data.val, data.val_split and data.test_split are overridden, with a note:
in a cross-validation every row of data.train is a validation row exactly once.

The runs are started as a sweep's points are (nncli.executors: :class:`~nncli.executors.Task`, an
:class:`~nncli.executors.Executor`, :func:`~nncli.executors.task_status`), into one directory::

    runs/<stamp>-<name>-cv-<hex>/
      cv.yaml                  the config, K, the seed, --set, and each fold's rows of data.train
      fold-1-train.csv, fold-1-val.csv, ...
      <stamp>-<name>-fold-1-<hex>/ ...   one run directory per fold
      results.csv              per fold, then the mean and the standard deviation

This module does no terminal I/O: the command (nncli.cli) renders.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .errors import ConfigError, DataError, RunError

CV_FILE = "cv.yaml"  # marks a cv directory (its fold runs inside) among the run directories
RESULTS = "results.csv"
MAX_SEED = 2**32 - 1  # numpy's RandomState (scikit-learn's random_state) takes seeds up to this


# ---------------------------------------------------------------------- dealing rows into folds


def stratified_folds(y, k: int, seed: int) -> np.ndarray:
    """The fold (0 .. k-1) of each row, stratified by the labels ``y``: the folds
    ``sklearn.model_selection.StratifiedKFold(k, shuffle=True, random_state=seed)`` gives.

    Each class is dealt round-robin over its rows in sorted-label order (so each fold's
    share of a class differs by at most one row), then each class's fold numbers are
    shuffled with one ``RandomState(seed)``, class by class in order of first appearance.
    ValueError when every class has fewer than ``k`` rows (scikit-learn's condition).
    """
    y = np.asarray(y)
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    _, by_appearance = np.unique(first, return_inverse=True)  # class 0: the first label in y, ...
    codes = by_appearance[inverse.reshape(-1)]
    counts = np.bincount(codes)
    if np.all(k > counts):
        raise ValueError(f"every class has fewer than {k} rows (largest: {counts.max()})")
    ordered = np.sort(codes)
    allocation = np.asarray([np.bincount(ordered[i::k], minlength=len(counts)) for i in range(k)])
    rng = np.random.RandomState(seed)
    folds = np.empty(len(y), dtype=np.int64)
    for c in range(len(counts)):
        of_class = np.arange(k).repeat(allocation[:, c])
        rng.shuffle(of_class)
        folds[codes == c] = of_class
    return folds


def plain_folds(n: int, k: int, seed: int) -> np.ndarray:
    """The fold (0 .. k-1) of each of ``n`` rows as ``sklearn.model_selection.KFold(k,
    shuffle=True, random_state=seed)`` gives: the rows shuffled with ``RandomState(seed)``,
    then cut into k runs of consecutive sizes, the first n % k of them one row longer."""
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(k, n // k, dtype=np.int64)
    sizes[: n % k] += 1
    folds = np.empty(n, dtype=np.int64)
    folds[order] = np.repeat(np.arange(k), sizes)
    return folds


def fold_splits(folds: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, validation rows) of each fold, both sorted, as scikit-learn's ``split`` yields them."""
    rows = np.arange(len(folds))
    return [(rows[folds != i], rows[folds == i]) for i in range(k)]


# ---------------------------------------------------------------------- the fold files


def _fold_suffix(path: Path, sep: str) -> str:
    from .formats import is_parquet

    return ".parquet" if is_parquet(path) else ".tsv" if sep == "\t" else ".csv"


def _read_cells(path: Path, source: str, sep: str):
    """data.train as (header, every cell as written) for delimited text, or a pyarrow Table for Parquet."""
    from .formats import is_parquet, open_input, optional_import

    if is_parquet(path):
        pq = optional_import("pyarrow.parquet", source)
        try:
            return None, pq.read_table(path)
        except (OSError, ValueError) as e:
            raise DataError(f"{source}: not a readable Parquet file ({e})") from None
    import pandas as pd

    with open_input(str(path), sep) as table:
        chunks = list(table.chunks(100_000))
        return table.header, (pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=table.header))


def _write_rows(dest: Path, header, cells, rows: np.ndarray, sep: str) -> None:
    """The data rows ``rows`` of data.train, with its header, into ``dest`` (atomically)."""
    import csv

    from .csvio import atomic_file

    if header is None:  # Parquet: the same columns and types
        import pyarrow as pa
        import pyarrow.parquet as pq

        with atomic_file(dest, "wb") as fh:
            pq.write_table(cells.take(pa.array(rows, pa.int64())), fh)
        return
    with atomic_file(dest, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=sep, lineterminator="\n")
        w.writerow(header)
        w.writerows(cells.iloc[rows].values.tolist())


# ---------------------------------------------------------------------- a whole cross-validation


@dataclass
class Fold:
    number: int  # 1 .. K
    train: Path  # fold-<k>-train.csv
    val: Path  # fold-<k>-val.csv
    val_rows: np.ndarray  # the rows of data.train (0-based data rows) in this fold


@dataclass
class CrossValidation:
    """A validated cross-validation, ready to run: its folds, directory and tasks."""

    config: Path
    name: str
    k: int
    seed: int
    stratified: bool
    dir: Path
    folds: list[Fold]
    tasks: list  # nncli.executors.Task, one per fold (params: {"fold": k})
    failed: list = field(default_factory=list)
    stopped: bool = False
    notes: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, config: Path | str, k: int = 5, overrides: Optional[list[str]] = None, runs_dir: Path | str = "runs",
               seed: Optional[int] = None, plots: bool = False) -> "CrossValidation":
        """Validate the config and the data, deal the rows into ``k`` folds, and create the cv
        directory with cv.yaml and the fold files. Fold 1's job is built in this process
        first (its data read, its network sized), so a config or data that cannot train is
        one error before anything runs, and no directory is left behind."""
        from .config import load_config
        from .data import read_train_csv
        from .formats import default_sep
        from .runs import create_run_dir

        config, overrides = Path(config), list(overrides or [])
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ConfigError(f"--folds {k}: a cross-validation needs at least 2 folds")
        cfg = load_config(config, overrides)
        where = "--seed" if seed is not None else f"{config}: seed"
        seed = cfg.seed if seed is None else seed
        if seed < 0:
            raise ConfigError(f"--seed {seed}: must be 0 or more")
        if seed > MAX_SEED:
            raise ConfigError(f"{where} {seed}: the folds are dealt as scikit-learn deals them, with numpy's RandomState, "
                              f"which takes seeds up to {MAX_SEED}; give a smaller --seed")
        df, source = read_train_csv(cfg)  # resolves an omitted loss: the task decides stratification
        n = len(df)
        if k > n:
            raise ConfigError(f"--folds {k}: {source} has only {n} rows; use at most {n} folds")
        stratified = cfg.task.is_classifier
        notes = _overridden(cfg)
        if stratified:
            labels = df[cfg.data.targets[0]]
            y = labels.fillna("\x00").astype(str).to_numpy() if labels.isna().any() else labels.astype(str).to_numpy()
            counts = {str(c): int(m) for c, m in zip(*np.unique(y, return_counts=True))}
            try:
                fold_of = stratified_folds(y, k, seed)
            except ValueError as e:
                raise ConfigError(f"--folds {k}: {source}: {e}; use at most {max(counts.values())} folds") from None
            rare = min(counts, key=counts.get)
            if counts[rare] == 1:  # its fold would validate on a label that fold's training rows never saw
                raise DataError(f"{source}: class {rare!r} has a single row, so the fold that validates on it has no "
                                "training row of that class; remove the row, or merge the class with another")
            if counts[rare] < k:
                notes.append(f"class {rare!r} has only {counts[rare]} rows, fewer than the {k} folds: some folds have "
                             "none of it in their validation rows")
        else:
            fold_of = plain_folds(n, k, seed)

        sep = cfg.data.sep or default_sep(Path(cfg.data.train))
        header, cells = _read_cells(Path(cfg.data.train), source, sep)
        if len(cells) != n:  # both read the same file with pandas: a mismatch is a bug, said plainly
            raise DataError(f"{source}: read as {n} rows and as {len(cells)}; cannot deal its rows into folds")
        name = cfg.name
        cv_dir = create_run_dir(runs_dir, f"{name}-cv")
        try:
            suffix = _fold_suffix(Path(cfg.data.train), sep)
            folds = []
            for i, (train_rows, val_rows) in enumerate(fold_splits(fold_of, k), start=1):
                f = Fold(i, cv_dir / f"fold-{i}-train{suffix}", cv_dir / f"fold-{i}-val{suffix}", val_rows)
                _write_rows(f.train, header, cells, train_rows, sep)
                _write_rows(f.val, header, cells, val_rows, sep)
                folds.append(f)
            _write_cv_file(cv_dir, config, k, seed, stratified, overrides, plots, cfg.data.train, n, folds)
            first = _check_fold(config, overrides, folds[0], cv_dir, name)
            notes += first
        except OSError as e:
            shutil.rmtree(cv_dir, ignore_errors=True)
            raise RunError(f"{cv_dir}: cannot write the folds ({e.strerror or e}); nothing was run") from None
        except BaseException:
            shutil.rmtree(cv_dir, ignore_errors=True)
            raise
        tasks = [_task(config, overrides, f, cv_dir, name, plots) for f in folds]
        return cls(config, name, k, seed, stratified, cv_dir, folds, tasks, [], False, notes)

    def run(self, executor, on_done: Callable) -> None:
        """Run every fold's task on ``executor`` (an nncli.executors.Executor); ``on_done(task,
        status)`` as each finishes."""
        from .executors import interrupted, task_status

        def done(t) -> None:
            if t.returncode != 0 and not interrupted(t.returncode):
                self.failed.append(t)
            on_done(t, task_status(t))

        executor.run(self.tasks, done)
        self.stopped = executor.stopping

    def results(self) -> "CvResults":
        """Each fold's run, status and validation metrics, and the mean and standard deviation
        over the completed folds; saved as results.csv (one row per fold, then ``mean`` and
        ``std``)."""
        from .csvio import write_rows

        rows = [_fold_result(self, t) for t in self.tasks]
        metrics = list(dict.fromkeys(m for r in rows for m in r["metrics"]))
        done = [r for r in rows if r["status"] == "completed"]
        mean, std = {}, {}
        for m in metrics:
            values = np.array([r["metrics"][m] for r in done if r["metrics"].get(m) is not None], dtype=np.float64)
            if len(values):
                mean[m], std[m] = float(values.mean()), float(values.std())
        res = CvResults(self.dir, self.k, self.seed, self.stratified, rows, metrics, mean, std, len(done), list(self.notes))
        header = ["fold", "id", "status", "epochs", "val_rows"] + metrics
        table = [[r["fold"], r["id"] or "", r["status"], _blank(r["epochs"]), _blank(r["val_rows"])]
                 + [_blank(r["metrics"].get(m)) for m in metrics] for r in rows]
        for label, stat in (("mean", mean), ("std", std)):
            table.append([label, "", f"{len(done)} of {self.k} folds", "", ""] + [_blank(stat.get(m)) for m in metrics])
        write_rows(self.dir / RESULTS, header, table)
        return res


@dataclass
class CvResults:
    dir: Path
    k: int
    seed: int
    stratified: bool
    folds: list[dict]  # {"fold", "id", "run_dir", "status", "epochs", "val_rows", "metrics": {val_<m>: value}}
    metrics: list[str]  # the validation metric columns, val_loss first
    mean: dict
    std: dict
    completed: int
    notes: list[str]

    def to_dict(self) -> dict:
        return {"cv_dir": str(self.dir), "folds": self.k, "seed": self.seed, "stratified": self.stratified,
                "completed": self.completed,
                "runs": [{k: v for k, v in r.items() if k != "metrics"} | r["metrics"] for r in self.folds],
                "mean": self.mean, "std": self.std, "notes": self.notes}


def _blank(v):
    return "" if v is None else v


def _overridden(cfg) -> list[str]:
    """A note for each of the config's held-out settings a cross-validation replaces."""
    d = cfg.data
    given = [f"data.{k}" for k in ("val", "val_split", "test_split") if getattr(d, k) is not None]
    if not given:
        return []
    return [f"{', '.join(given)} of the config {'are' if len(given) > 1 else 'is'} not used: in a cross-validation every row of data.train is a "
            "validation row once, in its fold" + (" (data.test is kept)" if d.test is not None else "")]


def fold_overrides(fold: Fold) -> list[str]:
    """The --set values that make a config train on ``fold``."""
    return [f"data.train={json.dumps(str(fold.train), ensure_ascii=False)}",
            f"data.val={json.dumps(str(fold.val), ensure_ascii=False)}",
            "data.val_split=null", "data.test_split=null"]


def _fold_name(name: str, fold: Fold) -> str:
    return f"{name}-fold-{fold.number}"


def _task(config: Path, overrides: list[str], fold: Fold, cv_dir: Path, name: str, plots: bool):
    from .executors import Task

    from .pointrun import Point

    point = Point(str(config), overrides + fold_overrides(fold), str(cv_dir), _fold_name(name, fold), plots)
    return Task(fold.number - 1, point, {"fold": fold.number})


def _check_fold(config: Path, overrides: list[str], fold: Fold, cv_dir: Path, name: str) -> list[str]:
    """Build fold ``fold``'s training job in this process (nothing is written): a config or data
    that cannot train fails here, once. Its warnings (a loss inferred, ...)."""
    from .config import load_config
    from .job import TrainingJob

    cfg = load_config(config, overrides + fold_overrides(fold) + [f"name={json.dumps(_fold_name(name, fold))}"])
    job = TrainingJob(cfg, cv_dir)
    return [w for w in job.warnings]


def _write_cv_file(cv_dir, config, k, seed, stratified, overrides, plots, train, n, folds) -> None:
    import yaml

    from .csvio import atomic_write_text

    doc = {"cv": {"config": str(config), "folds": k, "seed": seed, "stratified": stratified, "set": overrides,
                  "plots": plots},
           "data": {"train": str(train), "rows": n},
           "folds": [{"fold": f.number, "train": f.train.name, "val": f.val.name,
                      "val_rows": [int(r) for r in f.val_rows]} for f in folds]}
    atomic_write_text(cv_dir / CV_FILE, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=None,
                                                       width=120))


def _run_dir_of(cv: CrossValidation, t) -> Optional[Path]:
    """The fold's run directory: from the worker's --json line, else by its name in the cv directory."""
    for line in reversed((t.stdout or "").strip().splitlines()):
        try:
            rd = json.loads(line).get("run_dir")
        except (ValueError, AttributeError):
            continue
        if rd and Path(rd).is_dir():
            return Path(rd)
    fold = cv.folds[t.index]
    found = sorted(cv.dir.glob(f"*-{_fold_name(cv.name, fold)}-????"))
    found = [p for p in found if p.is_dir()]
    return found[-1] if found else None


def _fold_result(cv: CrossValidation, t) -> dict:
    from .runs import RunDir
    from .executors import task_status

    run_dir = _run_dir_of(cv, t)
    status = task_status(t) if t.returncode is not None else "not run"
    row = {"fold": t.index + 1, "id": run_dir.name if run_dir else None, "run_dir": str(run_dir) if run_dir else None,
           "status": status.split(":")[0], "message": status.partition(": ")[2], "epochs": None,
           "val_rows": None, "metrics": {}}
    if run_dir is None:
        return row
    try:
        s = RunDir(run_dir).read_summary()
    except RunError as e:
        row["message"] = row["message"] or str(e)
        return row
    if s is None:
        return row
    row["epochs"] = s.get("epochs_run")
    if t.returncode == 0:
        row["status"] = s.get("status", row["status"])
    val = s.get("val_metrics") or {}
    row["val_rows"] = val.get("rows")
    row["metrics"] = {f"val_{m}": (float(v) if v is not None and math.isfinite(float(v)) else None)
                      for m, v in val.items() if m != "rows"}
    return row
