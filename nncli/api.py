"""nncli from Python: :func:`train`, :func:`load_run` and the :class:`Run` they return.

The functions here run the very code of the commands (``nncli train``: nncli.job.TrainingJob;
``nncli eval`` and ``nncli predict``: nncli.inference), so a run trained or used from Python
is the run, and the numbers, the command would give. They never print: what the command
would show as a warning is in :attr:`Run.warnings`, and what goes wrong is raised as one
of nncli's errors (:mod:`nncli.errors`: ConfigError, DataError, RunError, ... all
subclasses of NncliError), the one line the command would print as its message.

A pandas DataFrame given to :meth:`Run.predict`, :meth:`Run.predict_proba` or
:meth:`Run.evaluate` is read by the rules of a file: exactly as nncli reads the CSV file
``df.to_csv(index=False)`` writes (so categorical columns are compared as that text,
missing cells are NaN/None or the tokens nncli counts as missing, and an unseen category is
an error unless the run was trained with data.unknown_category: ignore).

Guide with examples: docs/api.md.
"""

from __future__ import annotations

import copy
import io
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

from .errors import ConfigError, DataError, RunError

PathLike = Union[str, "os.PathLike[str]"]
_FRAME = "DataFrame"  # how a DataFrame input is named in messages


# ---------------------------------------------------------------------- training


def train(config: Union[PathLike, Mapping], overrides: Union[Mapping, list, tuple, None] = None,
          runs_dir: PathLike = "runs", name: Optional[str] = None, plots: bool = False,
          track: Optional[str] = None) -> "Run":
    """Train the network ``config`` describes, as ``nncli train`` does, and return its :class:`Run`.

    ``config``: a YAML file's path, or a dict of the same keys (its relative paths resolve
    against the current directory, as the file's do; nothing but the run directory is
    written), or a run's ``run.config``. ``overrides``: ``{"train.lr": 0.1}`` (values as Python values), or a list of
    ``"train.lr=0.1"`` strings as ``--set`` takes (values read as YAML). ``name``: the run
    name (default: the config's ``name``, else the file's stem, else ``run``). ``plots``:
    draw loss.png and the other pictures (off by default: matplotlib costs seconds).
    ``track``: "mlflow" logs the finished run to MLflow as ``--track mlflow`` does, "none"
    does not even if the config has a ``track`` section, None follows that section; what
    could not be logged is in ``run.warnings`` (tracking never fails a run).

    Silent. Raises ConfigError / DataError before anything is written, RunError if the run
    cannot be written (the error says what was kept). A run that diverged is returned like
    any other: look at ``run.status`` ("completed", "diverged"). Ctrl-C (SIGINT) finishes
    the current step, saves a checkpoint (status "interrupted") and then raises
    KeyboardInterrupt; ``nncli train --resume RUN_DIR`` continues that run.
    """
    from .job import TrainingJob
    from .runs import RunDir

    from . import tracking

    cfg = _config(config, overrides, name)
    tracked = tracking.target(track, cfg)
    if tracked is not None:  # a missing extra: ConfigError before anything is trained
        tracking.require_mlflow("nncli.train(track='mlflow')" if track else "the config's track.mlflow section")
    job = TrainingJob(cfg, runs_dir)
    if isinstance(config, (str, os.PathLike)):  # a run's own config.yaml: say if its data changed since (as the CLI does)
        job.warnings += [f"{c}: the result will not reproduce that run"
                         for c in RunDir(Path(config).parent).data_changes(job.data_files)]
    summary, signalled = _train_job(job, plots)
    if summary["status"] == "interrupted" or signalled:
        what = (f"interrupted after {summary['epochs_run']} epochs; checkpoint saved. "
                f"Continue with: nncli train --resume {job.run_dir}") if summary["status"] == "interrupted" else \
            f"interrupted after the run completed; {job.run_dir} is complete"
        raise KeyboardInterrupt(what)
    run = load_run(job.run_dir)
    run.warnings = list(job.warnings)
    if tracked is not None:  # from the complete run directory, as nncli train logs it
        _, notes = tracking.log_run(tracked, job.run_dir)
        run.warnings += notes
    return run


def _train_job(job, plots: bool) -> tuple[dict, bool]:
    """(job.train's summary, whether SIGINT came while it ran). In the main thread, with
    Python's own SIGINT handler in place, Ctrl-C only asks the trainer to stop after its
    step (so it can checkpoint a consistent state), as it does for ``nncli train``;
    a handler the program installed itself is left alone."""
    signalled = []

    def stop(signum, frame):
        signalled.append(signum)
        job.trainer.stop_requested = True

    previous = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous = signal.signal(signal.SIGINT, stop)
    try:
        return job.train(plots=plots), bool(signalled)
    except BaseException:
        job.release()  # an error in the middle (finish releases the lock otherwise)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _config(config, overrides, name: Optional[str]):
    """The validated Config of a path or a dict, with the overrides and the name applied."""
    from .config import NAME_RE, Config, apply_overrides, config_from_dict, set_key
    from .yamlfile import read_yaml

    if isinstance(config, Config):  # a run's: run.config, trained again (with overrides)
        config = config.to_dict()
    if isinstance(config, Mapping):
        raw, source, default = _plain(copy.deepcopy(dict(config))), "config", "run"
    elif isinstance(config, (str, os.PathLike)):
        raw, source = read_yaml(config), os.fspath(config)
        stem = Path(config).stem
        default = stem if NAME_RE.match(stem) else "run"
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):  # config_from_dict says what is wrong with it
            return config_from_dict(raw, source)
    else:
        raise TypeError(f"config: a path to a YAML file or a dict, not {type(config).__name__}")
    if overrides is None:
        pass
    elif isinstance(overrides, Mapping):
        for key, value in overrides.items():
            path = str(key).split(".")
            if any(not p for p in path):
                raise ConfigError(f"overrides[{key!r}]: expected a dotted key such as 'train.lr'")
            set_key(raw, path, _plain(value), f"overrides[{key!r}]")
    elif isinstance(overrides, (list, tuple)) and all(isinstance(s, str) for s in overrides):
        apply_overrides(raw, list(overrides))
    else:
        raise TypeError("overrides: a dict such as {'train.lr': 0.1} or a list of 'KEY=VALUE' strings")
    if name is not None:
        raw["name"] = name
    cfg = config_from_dict(raw, source)
    if cfg.name is None:
        cfg.name = default
    return cfg


def _plain(value: Any) -> Any:
    """``value`` with every path (os.PathLike) in it as a str, as YAML would give it."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------- loading


def load_run(path: PathLike) -> "Run":
    """The run in directory ``path``, checked as ``nncli eval`` and ``nncli predict`` check it
    (complete, its sealed files unchanged): RunError naming the problem otherwise."""
    from .runs import load_run as load

    return Run(load(path))


class Run:
    """A trained run: its files, its network, and predictions and evaluations with it.

    ``path`` (the run directory, as given, or as ``nncli train`` prints it: relative when the
    runs directory is), ``config`` (nncli.config.Config, the resolved config the
    run was trained with: ``run.config.train.lr``; ``run.config.to_dict()`` for a plain
    dict), ``summary`` (summary.json as a dict), ``status``, ``metrics`` (metrics.csv as a
    DataFrame), ``model`` (nncli.model.MLP: ``model.W[l-1]`` is the lecture's W_l, of shape
    (n_l, n_{l-1}), ``model.b[l-1]`` is b_l), ``classes`` (a classifier's labels, in the
    order of the ``proba_<label>`` columns and of :meth:`predict_proba`'s columns; None for
    a regression), ``warnings`` (lines ``nncli`` would have printed as warnings: training's,
    then each prediction's or evaluation's notes).
    """

    def __init__(self, loaded):
        from .runs import RunDir

        self._run = loaded  # nncli.runs.Run
        self._dir = RunDir(loaded.path.resolve())  # metrics.csv is read later: from here, whatever the directory then
        self.warnings: list[str] = []

    def __repr__(self) -> str:
        return f"<nncli.Run {self.path} status={self.status!r}>"

    @property
    def path(self) -> Path:
        return self._run.path

    @property
    def config(self):
        return self._run.config

    @property
    def summary(self) -> dict:
        return self._run.summary

    @property
    def status(self) -> str:
        return self._run.summary.get("status", "")

    @property
    def model(self):
        return self._run.model

    @property
    def classes(self) -> Optional[list[str]]:
        prep = self._run.prep
        return list(prep.classes) if prep.task.is_classifier else None

    @property
    def metrics(self):
        """metrics.csv as a DataFrame: one row per epoch (epoch, loss, the task's metric,
        val_loss and val_<metric> with validation data, lr under a train.schedule)."""
        import csv

        import pandas as pd

        from .runs import METRICS

        rows = self._dir.read_metrics()  # checked: whole epochs, numbers or nan
        with open(self._dir / METRICS, encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
        df = pd.DataFrame(rows, columns=header).apply(pd.to_numeric, errors="coerce")
        df["epoch"] = df["epoch"].astype("int64")
        return df

    # ------------------------------------------------------------------ prediction

    def predict(self, data, proba: bool = True, sep: Optional[str] = None, skip_invalid: bool = False):
        """``nncli predict``'s table as a DataFrame: the input's columns, then ``prediction``
        (a regression with several targets: ``prediction_<target>``), then for a classifier
        ``proba_<label>`` per class (``proba=False``: left out).

        ``data``: a DataFrame (returned with its own columns, values and index, the new
        columns appended; it is read as nncli reads ``data.to_csv(index=False)``), or the
        path of a table nncli reads (CSV, TSV, Parquet, compressed; ``sep`` as ``--sep``),
        whose cells come back as ``nncli predict`` copies them: the file's text (Parquet:
        its types). ``skip_invalid``: as ``--skip-invalid`` (an ``error`` column).
        Unseen categories encoded as zeros (data.unknown_category: ignore) are noted in
        :attr:`warnings`.
        """
        import pandas as pd

        from .inference import CHUNK_ROWS, _write_predictions, added_columns

        frame = data if isinstance(data, pd.DataFrame) else None
        notes: list = []
        sink = _FrameSink()
        with self._table(data, sep) as table:
            new_cols = added_columns(self._run.prep, table, proba, skip_invalid)
            _write_predictions(self._run, table, new_cols, sink, CHUNK_ROWS, notes)
        self.warnings += notes
        out = sink.frame()
        if frame is None:
            return out
        res = frame.copy()
        for c in new_cols:
            res[c] = out[c].to_numpy()
        return res

    def predict_proba(self, data, sep: Optional[str] = None):
        """The class probabilities of every row as a numpy array (n_rows, n_classes), float64,
        columns in the order of :attr:`classes` (the ``proba_<label>`` columns of
        :meth:`predict`); RunError for a regression run."""
        import numpy as np

        classes = self.classes
        if classes is None:
            raise RunError(f"{self.path}: a regression run (loss {self.config.loss}) has no class probabilities; "
                           f"use predict")
        out = self.predict(data, proba=True, sep=sep)
        return out[[f"proba_{c}" for c in classes]].to_numpy(dtype=np.float64)

    def evaluate(self, data=None, sep: Optional[str] = None) -> dict:
        """The report ``nncli eval RUN --json`` prints (without its ``saved`` list: nothing is
        written into the run directory). ``data``: None for eval's default data (the test
        data, else the validation data, else the training rows), a path (``--data``; ``sep``
        as ``--sep``), or a DataFrame with the target column(s) (read as nncli reads
        ``data.to_csv(index=False)``; the report's source is "DataFrame")."""
        import pandas as pd

        from .csvio import read_csv_bytes
        from .inference import evaluate, evaluation_report

        if isinstance(data, pd.DataFrame):
            prep = self._run.prep
            df = read_csv_bytes(_csv_bytes(data), _FRAME, str_columns=prep.str_columns(),
                                required=prep.required_columns(), na_values=prep.na_values)
            report = evaluation_report(self._run, df, _FRAME, [])
        elif data is None or isinstance(data, (str, os.PathLike)):
            report, _ = evaluate(self._run, None if data is None else os.fspath(data), _sep(sep))
        else:
            raise TypeError(f"data: a pandas DataFrame, a path or None, not {type(data).__name__}")
        self.warnings += report.get("notes", [])
        return report

    def _table(self, data, sep: Optional[str]):
        """The InputTable ``nncli predict`` would read ``data`` as."""
        import pandas as pd

        from .formats import InputTable, _csv_chunks, open_input

        if isinstance(data, pd.DataFrame):
            from .csvio import check_header

            raw = io.BytesIO(_csv_bytes(data))
            header = check_header([str(c) for c in data.columns], _FRAME)
            return InputTable(header, _FRAME, lambda n: _csv_chunks(raw, "-", _FRAME, ",", n), raw.close, sep=",")
        if isinstance(data, (str, os.PathLike)):
            path = os.fspath(data)
            if path == "-":
                raise DataError("-: give a path or a DataFrame (stdin is the command's)")
            return open_input(path, _sep(sep) or self.config.data.sep)
        raise TypeError(f"data: a pandas DataFrame or a path, not {type(data).__name__}")


class _FrameSink:
    """Collects the chunks ``nncli predict`` would write (nncli.inference._write_predictions)."""

    def __init__(self):
        self.chunks: list = []
        self.header: list[str] = []

    def write(self, df, header: list[str]) -> None:
        df = df.copy(deep=False)
        df.columns = header  # the input's own names, as the CSV header is written
        self.chunks.append(df)
        self.header = header

    def close(self) -> None:
        pass

    def frame(self):
        import pandas as pd

        return pd.concat(self.chunks, ignore_index=True) if len(self.chunks) != 1 else self.chunks[0].reset_index(drop=True)


def _csv_bytes(df) -> bytes:
    """The CSV file ``df.to_csv(index=False)`` writes, in UTF-8: how nncli reads a DataFrame."""
    import pandas as pd

    if isinstance(df.columns, pd.MultiIndex):
        raise DataError(f"{_FRAME}: has several header levels (a MultiIndex); give it one row of column names")
    if df.shape[1] == 0:
        raise DataError(f"{_FRAME}: has no columns")
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _sep(sep: Optional[str]) -> Optional[str]:
    """``sep`` checked as --sep is."""
    from .formats import sep_option

    return sep_option(sep, "sep")
