"""Using a trained run: ``evaluate`` (metrics on labelled data) and ``predict`` (CSV in, CSV out).

Both start from :func:`nncli.runs.load_run`, so they see exactly the preprocessing the
network was trained with. ``evaluate`` computes in the run's own dtype (``train.dtype``), as
training, ``nncli runs`` and the pictures do, so the same rows give the same metric
everywhere. ``predict`` computes in float64 (the saved weights are exact in it), where a row's
probabilities do not depend on how many rows are predicted with it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from . import metrics as M
from .csvio import MISSING, atomic_file, check_header, missing_columns_message, open_csv_source, read_header
from .data import read_labelled_csv, read_train_csv
from .errors import DataError
from .losses import LOSSES
from .runs import Run

CHUNK_ROWS = 50_000


# ---------------------------------------------------------------------- evaluation


def eval_source(run: Run, data: Optional[str]):
    """(DataFrame, description, file name for the result, notes) of the data to evaluate on.

    Default: the config's test data (data.test, or the data.test_split rows saved with the
    run), else its validation data, else the training rows.
    """
    cfg, prep = run.config, run.prep
    if data is not None:
        df, _ = read_labelled_csv(data, "--data", prep)
        digest = hashlib.sha1(str(Path(data).resolve()).encode("utf-8")).hexdigest()[:8]
        stem = re.sub(r"[^\w.-]+", "_", Path(data).stem)[:60] or "data"
        return df, f"--data {data}", f"eval_{stem}_{digest}.json", []
    d = cfg.data
    if d.test is not None:
        return (*read_labelled_csv(d.test, "data.test", prep), "eval.json", [])
    if d.val is not None and not d.test_split:
        return (*read_labelled_csv(d.val, "data.val", prep), "eval.json", [])
    df, source = read_train_csv(cfg, prep.str_columns())
    if not (d.test_split or d.val_split):
        return df, f"data.train {d.train} (no test or validation data configured)", "eval.json", []
    name = "test" if d.test_split else "val"
    held, note = run.rows_of(df, name, source, fix="restore the file, train again, or evaluate another file with --data")
    if note is not None:
        return held, f"data.train {d.train} (every row, training rows included)", "eval.json", [
            note + ", training rows included. Retrain it, or pass --data"]
    what = {"test": "test", "val": "validation"}[name]
    return held, f"data.{name}_split: {len(held)} held-out {what} rows of {d.train}", "eval.json", []


def evaluate(run: Run, data: Optional[str] = None) -> tuple[dict, str]:
    """The evaluation report of ``run`` and the file name it should be saved under."""
    df, source, fname, notes = eval_source(run, data)
    prep, cfg, model = run.prep, run.config, run.model
    X = prep.transform(df, source, dtype=model.dtype)
    Y = prep.transform_targets(df, source, dtype=model.dtype)
    A = model.predict(X)
    loss = LOSSES[cfg.loss]
    report: dict = {"run": str(run.path), "source": source, "rows": int(len(df)), "task": prep.task.name,
                    "loss_name": cfg.loss, "loss": model.objective(X, Y, loss)}
    if notes:
        report["notes"] = notes
    if prep.task.is_classifier:
        report.update(_classification_report(prep, Y, A))
    else:
        report.update(_regression_report(prep, df, source, Y, A, loss))
    return report, fname


def _regression_report(prep, df, source, Y, A, loss) -> dict:
    """The loss and MSE, RMSE, MAE and R² per target, in the targets' own units: a run that
    z-scored its targets (data.standardize_target) has its outputs unscaled first, and the
    loss recomputed on them in float64 (the network trained on the z-scores)."""
    out: dict = {"loss_units": "original units"}
    if prep.scales_targets:
        Y, A = prep.target_values(df, source), prep.inverse_transform(A)[0]
        out["loss"] = float(loss.value(Y, A))
    r = M.regression_report(Y, A)
    out["targets"] = {t: {m: float(r[m][j]) for m in ("mse", "rmse", "mae", "r2")} for j, t in enumerate(prep.targets)}
    return out


def _classification_report(prep, Y, A) -> dict:
    y_true, y_pred = prep.task.true_codes(Y), prep.task.predicted_codes(A)
    C = M.confusion_matrix(y_true, y_pred, len(prep.classes))
    pc = M.per_class(C)
    return {
        "accuracy": M.accuracy(y_true, y_pred),
        "per_class": {label: {"precision": float(pc["precision"][i]), "recall": float(pc["recall"][i]),
                              "f1": float(pc["f1"][i]), "support": int(pc["support"][i])}
                      for i, label in enumerate(prep.classes)},
        "macro": {m: float(np.mean(pc[m])) for m in ("precision", "recall", "f1")},
        "confusion_matrix": {"labels": list(prep.classes), "matrix": C.tolist(),
                             "rows": "true class", "columns": "predicted class"},
    }


def save_eval(run: Run, report: dict, fname: str, plots: bool = True) -> list[Path]:
    """Write the report (and, for a classifier, its confusion.png) into the run directory."""
    saved = [run.dir.write_report(fname, report)]
    if plots and "confusion_matrix" in report:
        from .plots import confusion_plot

        cm = report["confusion_matrix"]
        png = run.path / (fname.replace("eval", "confusion", 1).removesuffix(".json") + ".png")
        saved.append(confusion_plot(cm["matrix"], cm["labels"], png, f"{run.config.name}: {report['source']}"))
    return saved


# ---------------------------------------------------------------------- prediction


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


def _open_input(path: str):
    """(binary stream, header, source name) for a CSV path or '-' (stdin)."""
    if path == "-":
        raw = sys.stdin.buffer
        first = raw.readline()
        if not first.strip():
            raise DataError("stdin: no input; expected a CSV header line and rows")
        try:
            header = check_header(next(csv.reader([first.decode("utf-8-sig")])), "stdin")
        except UnicodeDecodeError:
            raise DataError("stdin: not UTF-8 text") from None
        return io.BufferedReader(_Prepend(first, raw)), header, "stdin"
    p, source = open_csv_source(path, "")
    return open(p, "rb"), read_header(p, source), source


def predict(run: Run, input_path: str, output_path: str = "-", proba: bool = True, chunk_rows: int = CHUNK_ROWS) -> int:
    """Write every input column unchanged, then ``prediction`` (and ``proba_<label>``).

    Reads and writes ``chunk_rows`` rows at a time, so memory does not grow with the input.
    A file output is written atomically (:func:`nncli.csvio.atomic_file`): on any error an
    existing OUT is left untouched. Returns the number of rows written.
    """
    stream, header, source = _open_input(input_path)
    with stream:
        new_cols = _prediction_columns(run.prep, header, source, proba)
        if output_path == "-":
            return _write_predictions(run, stream, header, source, new_cols, sys.stdout, chunk_rows)
        if Path(output_path).is_dir():
            raise DataError(f"-o {output_path}: is a directory")
        try:
            with atomic_file(output_path, "w", encoding="utf-8", newline="") as out:
                return _write_predictions(run, stream, header, source, new_cols, out, chunk_rows)
        except OSError as e:
            raise DataError(f"-o {output_path}: cannot write ({e.strerror or e})") from None


def _prediction_columns(prep, header: list[str], source: str, proba: bool) -> list[str]:
    """The columns predict adds; an error if a feature column is missing or one of them exists."""
    missing = [f for f in prep.features if f not in header]
    if missing:
        raise DataError(missing_columns_message(source, missing, header).replace("missing column", "missing feature column"))
    if not prep.task.is_classifier:
        new_cols = [f"prediction_{t}" for t in prep.targets] if len(prep.targets) > 1 else ["prediction"]
    else:
        new_cols = ["prediction"] + ([f"proba_{c}" for c in prep.classes] if proba else [])
    clash = [c for c in new_cols if c in header]
    if clash:
        raise DataError(f"{source}: already has column '{clash[0]}' (an earlier prediction?); drop or rename it")
    return new_cols


def _write_predictions(run: Run, stream, header, source, new_cols, out, chunk_rows) -> int:
    """Stream ``stream``'s rows to ``out`` with the predictions appended, chunk by chunk."""
    import pandas as pd

    prep, model = run.prep, run.model.astype(np.float64)  # float64: rows give the same bits in any chunk
    written = 0
    reader = pd.read_csv(stream, dtype=str, keep_default_na=False, encoding="utf-8-sig", chunksize=chunk_rows)
    try:
        for i, chunk in enumerate(reader):
            if len(chunk) == 0:
                continue
            feats = chunk[prep.features].where(~chunk[prep.features].isin(MISSING))
            A = model.predict(prep.transform(feats, source, row_offset=i * chunk_rows))
            predictions, P = prep.inverse_transform(A)
            res = chunk.copy()
            if P is None:
                for j, c in enumerate(new_cols):
                    res[c] = predictions[:, j]
            else:
                for j, c in enumerate(new_cols):  # prediction, then proba_<label> per class (if asked for)
                    res[c] = predictions if j == 0 else P[:, j - 1]
            if written == 0:  # the input's own header, exactly as written (pandas renames empty names)
                csv.writer(out, lineterminator="\n").writerow(header + new_cols)
            res.to_csv(out, header=False, index=False, lineterminator="\n")
            written += len(chunk)
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text; save the file as UTF-8 CSV") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{source}: malformed CSV: {str(e).strip().splitlines()[-1]}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: no data") from None
    if written == 0:
        raise DataError(f"{source}: has a header but no data rows")
    out.flush()
    return written
