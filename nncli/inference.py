"""Using a trained run: ``evaluate`` (metrics on labelled data) and ``predict`` (CSV in, CSV out).

Both start from :func:`nncli.runs.load_run`, so they see exactly the preprocessing the
network was trained with, and both compute in float64 (the saved weights are exact in it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from . import metrics as M
from .data import MISSING, _missing_columns_message, open_csv_source, read_csv, read_header, read_train_csv, split_rows
from .errors import DataError
from .losses import LOSSES
from .runs import Run, write_json

CHUNK_ROWS = 50_000


# ---------------------------------------------------------------------- evaluation


def eval_source(run: Run, data: Optional[str]):
    """(DataFrame, description, file name for the result) of the data to evaluate on.

    Default: the config's test data (data.test, or the data.test_split rows), else its
    validation data, else the training rows.
    """
    cfg, prep = run.config, run.prep
    if data is not None:
        df = read_csv(data, "--data", str_columns=prep.str_columns(), required=prep.features + prep.targets)
        digest = hashlib.sha1(str(Path(data).resolve()).encode("utf-8")).hexdigest()[:8]
        stem = re.sub(r"[^\w.-]+", "_", Path(data).stem)[:60] or "data"
        return df, f"--data {data}", f"eval_{stem}_{digest}.json"
    d = cfg.data

    def csv_file(key, path):
        return read_csv(path, key, str_columns=prep.str_columns(), required=prep.features + prep.targets), f"{key} {path}", "eval.json"

    if d.test is not None:
        return csv_file("data.test", d.test)
    if d.val is not None and not d.test_split:
        return csv_file("data.val", d.val)
    df, source = read_train_csv(cfg, prep.str_columns())
    rows, val_rows, test_rows = split_rows(cfg, df, np.random.default_rng(cfg.seed), source)
    if test_rows is not None:
        return df.iloc[test_rows], f"data.test_split: {len(test_rows)} held-out test rows of {d.train}", "eval.json"
    if val_rows is not None:
        return df.iloc[val_rows], f"data.val_split: {len(val_rows)} held-out validation rows of {d.train}", "eval.json"
    return df, f"data.train {d.train} (no test or validation data configured)", "eval.json"


def evaluate(run: Run, data: Optional[str] = None) -> tuple[dict, str]:
    """The evaluation report of ``run`` and the file name it should be saved under."""
    df, source, fname = eval_source(run, data)
    prep, cfg = run.prep, run.config
    X = prep.encode_features(df, source)
    Y = prep.encode_targets(df, source)
    model = run.model.astype(np.float64)
    A = model.predict(X)
    loss = LOSSES[cfg.loss]
    Z = None
    if model.output == loss.default_output and cfg.loss != "mse":
        # the loss from the logits, as in training, for stability
        from .model import Workspace

        ws = Workspace(model, X.shape[0])
        A = model.forward(X, ws)
        Z = ws.Z[-1]
    report: dict = {"run": str(run.path), "source": source, "rows": int(len(df)), "task": prep.task,
                    "loss_name": cfg.loss, "loss": loss.value(Y, A, Z, model.output)}
    if prep.is_classifier:
        y_true, y_pred = M.true_codes(Y, prep.task), M.predicted_codes(A, prep.task)
        k = len(prep.classes)
        C = M.confusion_matrix(y_true, y_pred, k)
        pc = M.per_class(C)
        report["accuracy"] = M.accuracy(y_true, y_pred)
        report["per_class"] = {
            label: {"precision": float(pc["precision"][i]), "recall": float(pc["recall"][i]),
                    "f1": float(pc["f1"][i]), "support": int(pc["support"][i])}
            for i, label in enumerate(prep.classes)
        }
        report["macro"] = {m: float(np.mean(pc[m])) for m in ("precision", "recall", "f1")}
        report["confusion_matrix"] = {"labels": list(prep.classes), "matrix": C.tolist(),
                                      "rows": "true class", "columns": "predicted class"}
    else:
        r = M.regression_report(Y, A)
        report["targets"] = {t: {m: float(r[m][j]) for m in ("mse", "rmse", "mae", "r2")} for j, t in enumerate(prep.targets)}
    return report, fname


def save_eval(run: Run, report: dict, fname: str, plots: bool = True) -> list[Path]:
    """Write the report (and, for a classifier, its confusion.png) into the run directory."""
    path = run.path / fname
    write_json(path, report)
    saved = [path]
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
            header = next(csv.reader([first.decode("utf-8-sig")]))
        except UnicodeDecodeError:
            raise DataError("stdin: not UTF-8 text") from None
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise DataError(f"stdin: duplicate column names {', '.join(map(repr, dup))}; column names must be unique")
        return io.BufferedReader(_Prepend(first, raw)), header, "stdin"
    p, source = open_csv_source(path, "")
    return open(p, "rb"), read_header(p, source), source


def predict(run: Run, input_path: str, output_path: str = "-", proba: bool = True, chunk_rows: int = CHUNK_ROWS) -> int:
    """Write every input column unchanged, then ``prediction`` (and ``proba_<label>``).

    Reads and writes ``chunk_rows`` rows at a time, so memory does not grow with the input.
    A file output is written to a temporary file and renamed at the end: on any error an
    existing OUT is left untouched. Returns the number of rows written.
    """
    import pandas as pd

    prep = run.prep
    model = run.model.astype(np.float64)
    stream, header, source = _open_input(input_path)
    with stream:
        missing = [f for f in prep.features if f not in header]
        if missing:
            raise DataError(_missing_columns_message(source, missing, header).replace("missing column", "missing feature column"))
        if prep.task == "regression":
            new_cols = [f"prediction_{t}" for t in prep.targets] if len(prep.targets) > 1 else ["prediction"]
        else:
            new_cols = ["prediction"] + ([f"proba_{c}" for c in prep.classes] if proba else [])
        clash = [c for c in new_cols if c in header]
        if clash:
            raise DataError(f"{source}: already has column '{clash[0]}' (an earlier prediction?); drop or rename it")

        tmp = None
        if output_path == "-":
            out = sys.stdout
        else:
            target = Path(output_path)
            if target.is_dir():
                raise DataError(f"-o {output_path}: is a directory")
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                out = open(tmp, "w", encoding="utf-8", newline="")
            except OSError as e:
                raise DataError(f"-o {output_path}: cannot write ({e.strerror})") from None
        written = 0
        try:
            reader = pd.read_csv(
                stream, dtype=str, keep_default_na=False, encoding="utf-8-sig", chunksize=chunk_rows,
            )
            try:
                for i, chunk in enumerate(reader):
                    if len(chunk) == 0:
                        continue
                    offset = i * chunk_rows
                    feats = chunk[prep.features].where(~chunk[prep.features].isin(MISSING))
                    X = prep.encode_features(feats, source, row_offset=offset)
                    A = model.predict(X)
                    res = chunk.copy()
                    labels, P = prep.decode(A)
                    if prep.task == "regression":
                        for j, c in enumerate(new_cols):
                            res[c] = A[:, j]
                    else:
                        res["prediction"] = labels
                        if proba:
                            for j, c in enumerate(prep.classes):
                                res[f"proba_{c}"] = P[:, j]
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
            if tmp is not None:
                os.fsync(out.fileno())
                out.close()
                os.replace(tmp, output_path)
                tmp = None
        finally:
            if tmp is not None:
                out.close()
                tmp.unlink(missing_ok=True)
    return written
