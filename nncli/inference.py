"""Using a trained run: ``evaluate`` (metrics on labelled data) and ``predict`` (CSV in, CSV out).

Both start from :func:`nncli.runs.load_run`, so they see exactly the preprocessing the
network was trained with. ``evaluate`` computes in the run's own dtype (``train.dtype``), as
training, ``nncli runs`` and the pictures do, so the same rows give the same metric
everywhere. ``predict`` computes in float64 (the saved weights are exact in it), where a row's
probabilities do not depend on how many rows are predicted with it.
"""

from __future__ import annotations

import hashlib
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np

from . import metrics as M
from .csvio import MISSING, missing_columns_message
from .data import data_files, read_labelled_csv, read_train_csv, unseen_notes, usable_rows
from .errors import DataError, OutputError
from .formats import CsvSink, open_input, table_writer
from .losses import LOSSES
from .runs import Run

CHUNK_ROWS = 50_000


# ---------------------------------------------------------------------- evaluation


def eval_source(run: Run, data: Optional[str], sep: Optional[str] = None):
    """(DataFrame, description, file name for the result, notes) of the data to evaluate on.

    Default: the config's test data (data.test, or the data.test_split rows saved with the
    run), else its validation data, else the training rows. ``sep`` (--sep) overrides
    data.sep for the --data file.
    """
    cfg, prep = run.config, run.prep
    if data is not None:
        df, _ = read_labelled_csv(data, "--data", prep, sep or cfg.data.sep)
        digest = hashlib.sha1(str(Path(data).resolve()).encode("utf-8")).hexdigest()[:8]
        stem = re.sub(r"[^\w.-]+", "_", Path(data).stem)[:60] or "data"
        return df, f"--data {data}", f"eval_{stem}_{digest}.json", []
    key, df, source, notes = _default_source(run)
    # the file the run was trained on may have changed since: say so (its fingerprint is saved)
    notes += [c + "; the scores are of the file as it is now" for c in run.dir.data_changes(
        {k: v for k, v in data_files(cfg).items() if k == key})]
    return df, source, "eval.json", notes


def _default_source(run: Run):
    """(the config key of the file read, DataFrame, description, notes) of eval's default data."""
    cfg, prep, d = run.config, run.prep, run.config.data
    if d.test is not None:
        return ("data.test", *read_labelled_csv(d.test, "data.test", prep, d.sep), [])
    if d.val is not None and not d.test_split:
        return ("data.val", *read_labelled_csv(d.val, "data.val", prep, d.sep), [])
    df, source = read_train_csv(cfg, prep.str_columns())
    if not (d.test_split or d.val_split):
        return "data.train", df, f"data.train {d.train} (no test or validation data configured)", []
    name = "test" if d.test_split else "val"
    held, note = run.rows_of(df, name, source, fix="restore the file, train again, or evaluate another file with --data")
    if note is not None:
        return "data.train", held, f"data.train {d.train} (every row, training rows included)", [
            note + ", training rows included. Retrain it, or pass --data"]
    what = {"test": "test", "val": "validation"}[name]
    return "data.train", held, f"data.{name}_split: {len(held)} held-out {what} rows of {d.train}", []


def evaluate(run: Run, data: Optional[str] = None, sep: Optional[str] = None) -> tuple[dict, str]:
    """The evaluation report of ``run`` and the file name it should be saved under."""
    df, source, fname, notes = eval_source(run, data, sep)
    return evaluation_report(run, df, source, notes), fname


def evaluation_report(run: Run, df, source: str, notes: list) -> dict:
    """The report of ``run`` on the labelled rows ``df`` (read by :func:`nncli.csvio.read_csv`'s
    rules; ``source`` names them in messages, ``notes`` come first among the report's)."""
    prep, cfg, model = run.prep, run.config, run.model
    # rows without a target (and, data.missing: drop, with a missing cell) are not scored
    df, at, n_dropped, dropped_note = usable_rows(df, prep, source)
    unseen: dict = {}
    X = prep.transform(df, source, dtype=model.dtype, row_offset=at, counts=unseen, fix=run_missing_fix(prep))
    Y = prep.transform_targets(df, source, dtype=model.dtype, row_offset=at)
    notes = [*notes, *([dropped_note] if dropped_note else []), *unseen_notes(unseen, source, "training")]
    A = model.predict(X)
    loss = LOSSES[cfg.loss]
    report: dict = {"run": str(run.path), "source": source, "rows": int(len(df)), "task": prep.task.name,
                    "loss_name": cfg.loss, "loss": model.objective(X, Y, loss)}
    if notes:
        report["notes"] = notes
    if n_dropped:
        report["dropped_rows"] = n_dropped
    if prep.unknown_category == "ignore":  # rows with a category unseen in training, per column
        report["unknown_categories"] = unseen
    if prep.task.is_classifier:
        report.update(_classification_report(prep, Y, A))
    else:
        report.update(_regression_report(prep, df, source, Y, A, loss, at))
    return report


def run_missing_fix(prep) -> str:
    """What to do about missing cells a run cannot fill (trained without data.missing: impute)."""
    from .preprocess import RUN_MISSING_FIX

    return RUN_MISSING_FIX.format(missing=prep.missing)


def _regression_report(prep, df, source, Y, A, loss, row_offset=0) -> dict:
    """The loss and MSE, RMSE, MAE and R² per target, in the targets' own units: a run that
    z-scored its targets (data.standardize_target) has its outputs unscaled first, and the
    loss recomputed on them in float64 (the network trained on the z-scores)."""
    out: dict = {"loss_units": "original units"}
    if prep.scales_targets:
        Y, A = prep.target_values(df, source, row_offset), prep.inverse_transform(A)[0]
        out["loss"] = float(loss.value(Y, A))
    r = M.regression_report(Y, A)
    out["targets"] = {t: {m: float(r[m][j]) for m in ("mse", "rmse", "mae", "r2")} for j, t in enumerate(prep.targets)}
    return out


def _classification_report(prep, Y, A) -> dict:
    """Accuracy, per-class and macro precision / recall / F1, the confusion matrix, and the
    scores of the probabilities (:func:`nncli.metrics.probability_scores`: log-loss, ROC-AUC
    and average precision, per class one-vs-rest for more than two classes, the ROC curve's
    points for two); ``score_notes`` says which of those are undefined on these rows (a class
    absent, say: not a problem of the data, so not among the report's ``notes``)."""
    y_true, y_pred = prep.task.true_codes(Y), prep.task.predicted_codes(A)
    C = M.confusion_matrix(y_true, y_pred, len(prep.classes))
    pc = M.per_class(C)
    ranked = M.probability_scores(y_true, prep.task.probabilities(A), list(prep.classes))
    per_class_roc, score_notes = ranked.pop("per_class", {}), ranked.pop("notes")
    return {
        "accuracy": M.accuracy(y_true, y_pred),
        **{m: ranked.pop(m) for m in ("log_loss", "roc_auc", "average_precision")},
        "per_class": {label: {"precision": float(pc["precision"][i]), "recall": float(pc["recall"][i]),
                              "f1": float(pc["f1"][i]), "support": int(pc["support"][i]),
                              **per_class_roc.get(label, {})}
                      for i, label in enumerate(prep.classes)},
        "macro": {m: float(np.mean(pc[m])) for m in ("precision", "recall", "f1")},
        "confusion_matrix": {"labels": list(prep.classes), "matrix": C.tolist(),
                             "rows": "true class", "columns": "predicted class"},
        **ranked,  # positive_class and roc_curve (two classes) or roc_average
        **({"score_notes": score_notes} if score_notes else {}),
    }


def save_eval(run: Run, report: dict, fname: str, plots: bool = True) -> list[Path]:
    """Write the report (and, for a classifier, its confusion.png; for a binary one with rows of
    both classes, roc.png) into the run directory; OutputError naming the file if one cannot be
    written (a full disk, a read-only run)."""
    try:
        saved = [run.dir.write_report(fname, report)]
    except OSError as e:
        raise OutputError(f"{run.path / fname}: cannot save the report ({e.strerror or e})") from None
    if plots and "confusion_matrix" in report:
        from .plots import confusion_plot, roc_plot

        cm, title = report["confusion_matrix"], f"{run.config.name}: {report['source']}"
        pictures = [("confusion", lambda png: confusion_plot(cm["matrix"], cm["labels"], png, title))]
        if report.get("roc_curve"):  # a binary classifier evaluated on rows of both classes
            roc = report["roc_curve"]
            pictures.append(("roc", lambda png: roc_plot(roc["fpr"], roc["tpr"], report["roc_auc"],
                                                         report["positive_class"], png, title)))
        for stem, draw in pictures:
            png = run.path / (fname.replace("eval", stem, 1).removesuffix(".json") + ".png")
            try:
                saved.append(draw(png))
            except OSError as e:
                raise OutputError(f"{png}: cannot save the picture ({e.strerror or e}); "
                                  f"{', '.join(map(str, saved))} {'was' if len(saved) == 1 else 'were'} saved") from None
    return saved


# ---------------------------------------------------------------------- prediction


def predict(run: Run, input_path: str, output_path: str = "-", proba: bool = True, chunk_rows: int = CHUNK_ROWS,
            sep: Optional[str] = None, notes: Optional[list] = None, skip_invalid: bool = False) -> int:
    """Write every input column unchanged, then ``prediction`` (and ``proba_<label>``).

    The input is any table nncli reads (:mod:`nncli.formats`; '-' is CSV on stdin), with
    ``sep``, else the run's data.sep, else the separator its name implies. OUT's name
    chooses its format (.parquet; .tsv/.tab: tabs; compressed by .gz, .bz2, .xz, .zip,
    .zst; else CSV); '-' is CSV on stdout. Reads and writes ``chunk_rows`` rows at a time
    (Parquet: its record batches), so memory does not grow with the input. A file output is
    written atomically (:func:`nncli.csvio.atomic_file`): on any error an existing OUT is
    left untouched. Returns the number of rows written. ``notes`` (a list) receives what the
    caller should warn about (rows whose unseen categories were encoded as zeros).
    ``skip_invalid``: a row that cannot be predicted (a missing value the run does not fill, an
    unseen category, text in a numeric column) gets empty prediction cells and the reason in
    an ``error`` column, instead of stopping the whole file; ``notes`` gets their count.
    """
    table = open_input(input_path, sep or run.config.data.sep)
    with table:
        new_cols = added_columns(run.prep, table, proba, skip_invalid)
        if output_path == "-":
            return _write_predictions(run, table, new_cols, _StdoutSink(sys.stdout), chunk_rows, notes)
        if Path(output_path).is_dir():
            raise DataError(f"-o {output_path}: is a directory")
        try:
            with table_writer(output_path, f"-o {output_path}", table.arrow_schema) as out:
                return _write_predictions(run, table, new_cols, out, chunk_rows, notes)
        except OSError as e:
            raise DataError(f"-o {output_path}: cannot write ({e.strerror or e})") from None


class _StdoutSink(CsvSink):
    """CSV on stdout: a stdout that cannot be written (a full disk) is one OutputError; a closed
    pipe (``| head``) stays a BrokenPipeError, which the CLI ends quietly."""

    def write(self, df, header: list[str]) -> None:
        with _stdout_errors():
            super().write(df, header)

    def close(self) -> None:
        with _stdout_errors():
            super().close()


@contextmanager
def _stdout_errors():
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(f"cannot write the predictions to stdout: {e.strerror or e}") from None


def _predict_chunk(prep, model, feats, unseen: dict, source: str, offset: int, fix) -> np.ndarray:
    """The network's outputs for a chunk of feature rows (``unseen`` counts categories encoded
    as zeros; any row that cannot be predicted is a DataError naming it)."""
    counts: dict = {}
    A = model.predict(prep.transform(feats, source, row_offset=offset, counts=counts, fix=fix))
    for column, n in counts.items():  # counted only once the whole chunk went through
        unseen[column] = unseen.get(column, 0) + n
    return A


def _predict_skipping(prep, model, feats, unseen: dict, source: str, offset: int, fix):
    """(outputs, one error message per row, '' where there is none): the rows that cannot be
    predicted are found by halving the rows that fail, so any number of bad rows costs
    O(n log n) rows transformed; their outputs are NaN."""
    A = np.full((len(feats), prep.n_outputs), np.nan)
    errors = [""] * len(feats)

    def solve(lo: int, hi: int) -> None:
        try:
            A[lo:hi] = _predict_chunk(prep, model, feats.iloc[lo:hi], unseen, source, offset + lo, fix)
        except DataError as e:
            if hi - lo == 1:
                errors[lo] = str(e)
                return
            mid = (lo + hi) // 2
            solve(lo, mid)
            solve(mid, hi)

    solve(0, len(feats))
    return A, errors


def added_columns(prep, table, proba: bool, skip_invalid: bool) -> list[str]:
    """The columns predict appends to ``table``'s (``error`` last with ``skip_invalid``); an
    error if a feature column is missing or one of them exists."""
    new_cols = _prediction_columns(prep, table, proba) + (["error"] if skip_invalid else [])
    if skip_invalid and "error" in table.header:
        raise DataError(f"{table.source}: already has a column 'error'; rename it to use --skip-invalid")
    return new_cols


def _prediction_columns(prep, table, proba: bool) -> list[str]:
    """The columns predict adds; an error if a feature column is missing or one of them exists."""
    header, source = table.header, table.source
    missing = [f for f in prep.features if f not in header]
    if missing:
        message = missing_columns_message(source, missing, header, table.sep or ",")
        raise DataError(message.replace("missing column", "missing feature column"))
    if not prep.task.is_classifier:
        new_cols = [f"prediction_{t}" for t in prep.targets] if len(prep.targets) > 1 else ["prediction"]
    else:
        new_cols = ["prediction"] + ([f"proba_{c}" for c in prep.classes] if proba else [])
    clash = [c for c in new_cols if c in header]
    if clash:
        raise DataError(f"{source}: already has column '{clash[0]}' (an earlier prediction?); drop or rename it")
    return new_cols


def _missing_as_nan(prep, feats):
    """The feature cells (text, as predict reads them) with the missing ones as NaN, as
    training's reader (csvio.read_csv) decides: csvio.MISSING and data.na_values as text, and
    in a numeric column also a cell whose number is a number of data.na_values (-1.0 for
    "-1"), which training reads as a number."""
    import pandas as pd

    from .csvio import numeric_tokens

    feats = feats.where(~feats.isin(MISSING + list(prep.na_values)))
    tokens = numeric_tokens(prep.na_values)
    if tokens:
        for c in (c for c in prep.features if c not in prep.categories):
            feats[c] = feats[c].where(~pd.to_numeric(feats[c], errors="coerce").isin(tokens))
    return feats


def _write_predictions(run: Run, table, new_cols, out, chunk_rows, notes=None) -> int:
    """Stream ``table``'s rows to the sink ``out`` with the predictions appended, chunk by chunk."""
    header, source = table.header, table.source
    prep, model = run.prep, run.model.astype(np.float64)  # float64: rows give the same bits in any chunk
    written = 0
    unseen: dict = {}  # column -> rows with a category unseen in training (data.unknown_category: ignore)
    skip_invalid = new_cols[-1] == "error"
    invalid = 0
    for chunk in table.chunks(chunk_rows):
        if len(chunk) == 0:
            continue
        feats = _missing_as_nan(prep, chunk[prep.features])
        kw = dict(source=source, offset=written, fix=run_missing_fix(prep))
        if skip_invalid:
            A, errors = _predict_skipping(prep, model, feats, unseen, **kw)
        else:
            A, errors = _predict_chunk(prep, model, feats, unseen, **kw), None
        predictions, P = prep.inverse_transform(A)
        res = chunk.copy()
        cols = new_cols[:-1] if skip_invalid else new_cols
        if P is None:
            for j, c in enumerate(cols):
                res[c] = predictions[:, j]
        else:
            for j, c in enumerate(cols):  # prediction, then proba_<label> per class (if asked for)
                res[c] = predictions if j == 0 else P[:, j - 1]
        if errors is not None:
            bad = np.array([e != "" for e in errors])
            invalid += int(bad.sum())
            for c in cols:  # no prediction for a row that could not be predicted: empty cells
                res[c] = res[c].astype(object).where(~bad, None)
            res["error"] = errors
        out.write(res, header + new_cols)  # the input's own header, exactly as written
        written += len(chunk)
    if skip_invalid and notes is not None and invalid:
        notes.append(f"{source}: {invalid} of {written} rows could not be predicted; their reasons are in the error column")
    if written == 0:
        raise DataError(f"{source}: has a header but no data rows")
    if notes is not None:
        notes.extend(unseen_notes(unseen, source, "training"))
    out.close()
    return written
