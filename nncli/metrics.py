"""Evaluation metrics: accuracy, precision/recall/F1, confusion matrix, ROC-AUC, average
precision, log-loss, MSE/RMSE/MAE/R².

Inputs are integer class codes (classification), class probabilities of shape (n, k), or
value arrays of shape (n, K) (regression). Nothing here prints.

The ranking metrics are scikit-learn's, computed the way it computes them (so they agree to
the last bits, ties included): ``roc_curve`` / ``roc_auc`` as ``sklearn.metrics.roc_curve``
and ``roc_auc_score``, ``average_precision`` as ``average_precision_score``, ``log_loss`` as
``log_loss``. scikit-learn itself is never imported (the tests compare against it).
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """C[i, j] = number of samples of true class i predicted as class j."""
    C = np.zeros((k, k), dtype=np.int64)
    np.add.at(C, (y_true, y_pred), 1)
    return C


def per_class(C: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(C).astype(np.float64)
    pred = C.sum(axis=0).astype(np.float64)
    true = C.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred > 0, tp / pred, 0.0)
        recall = np.where(true > 0, tp / true, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": true.astype(np.int64)}


def r2_score(Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray:
    """R² = 1 - sum (y - y_hat)^2 / sum (y - mean y)^2 per target column (nan if y is constant)."""
    Y = np.asarray(Y, np.float64)
    Y_hat = np.asarray(Y_hat, np.float64)
    ss_res = np.sum((Y - Y_hat) ** 2, axis=0)
    ss_tot = np.sum((Y - Y.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan)


def regression_report(Y: np.ndarray, Y_hat: np.ndarray) -> dict[str, np.ndarray]:
    Y = np.asarray(Y, np.float64)
    Y_hat = np.asarray(Y_hat, np.float64)
    err = Y_hat - Y
    mse = np.mean(err**2, axis=0)
    return {"mse": mse, "rmse": np.sqrt(mse), "mae": np.mean(np.abs(err), axis=0), "r2": r2_score(Y, Y_hat)}


# ---------------------------------------------------------------------- ranking metrics and log-loss


def _ranked(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tps, fps, thresholds): at each distinct score s, from the highest down, the numbers of
    positive and of negative rows scoring >= s (scikit-learn's confusion_matrix_at_thresholds).

    Tied scores are one threshold: a group of rows with the same score enters the counts
    together, whatever their order, so ties cost a diagonal step of the curve.
    y: (n,) 0/1 (1: the positive class); s: (n,) finite scores, n >= 1.
    """
    order = np.argsort(s, kind="stable")[::-1]
    s, y = s[order], np.asarray(y[order], np.float64)
    idx = np.concatenate([np.nonzero(np.diff(s))[0], [len(y) - 1]])  # the last row of each tie group
    tps = np.cumsum(y)[idx]
    fps = 1 + idx.astype(np.float64) - tps
    return tps, fps, s[idx]


def roc_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of the ROC curve as ``sklearn.metrics.roc_curve`` (with its default
    drop_intermediate=True: points collinear with their neighbours dropped, which changes no
    area) returns them, starting at (0, 0) with threshold inf. Needs both classes in y."""
    tps, fps, thr = _ranked(y, s)
    if len(fps) > 2:
        keep = np.concatenate([[True], np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), [True]])
        tps, fps, thr = tps[keep], fps[keep], thr[keep]
    tps, fps = np.concatenate([[0.0], tps]), np.concatenate([[0.0], fps])
    thr = np.concatenate([[np.inf], thr.astype(np.float64)])
    return fps / fps[-1], tps / tps[-1], thr


def roc_auc(y: np.ndarray, s: np.ndarray) -> Optional[float]:
    """Area under the ROC curve by the trapezoid rule over the distinct thresholds
    (``sklearn.metrics.roc_auc_score``): the probability that a random positive row scores
    above a random negative one, a tie counting 1/2. None when y holds only one class."""
    y = np.asarray(y)
    if not (np.any(y == 1) and np.any(y == 0)):
        return None
    fpr, tpr, _ = roc_curve(y, s)
    return float(np.trapezoid(tpr, fpr))


def average_precision(y: np.ndarray, s: np.ndarray) -> Optional[float]:
    """AP = sum_n (R_n - R_{n-1}) P_n over the distinct thresholds, from the highest down, with
    P_n and R_n the precision and recall of the rows scoring >= the n-th threshold and
    R_0 = 0: the step function, no interpolation (``sklearn.metrics.average_precision_score``).
    None when y has no positive row (scikit-learn warns and returns 0 there)."""
    y = np.asarray(y)
    if not np.any(y == 1):
        return None
    tps, fps, _ = _ranked(y, s)
    precision = np.concatenate([(tps / (tps + fps))[::-1], [1.0]])  # tps + fps >= 1: the rows so far
    recall = np.concatenate([(tps / tps[-1])[::-1], [0.0]])
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def log_loss(codes: np.ndarray, P: np.ndarray) -> float:
    """-1/n sum_i log p_i(y_i), natural log, with the probabilities clipped to [eps, 1 - eps],
    eps the machine epsilon of P's dtype (``sklearn.metrics.log_loss``, which no longer
    renormalises the rows). codes: (n,) class codes; P: (n, k) class probabilities."""
    eps = np.finfo(P.dtype).eps
    P = np.clip(P, eps, 1 - eps)
    Y = np.zeros(P.shape, P.dtype)
    Y[np.arange(len(codes)), codes] = 1
    terms = np.where(Y != 0, Y * np.log(P), 0.0)  # scipy's xlogy(Y, P): 0 where y = 0
    return float(np.mean(-np.sum(terms, axis=1)))


def probability_scores(codes: np.ndarray, P: np.ndarray, classes: list) -> dict:
    """ROC-AUC, average precision and log-loss of class probabilities P (n, k) against the true
    class codes (n,), as scikit-learn computes them:

    - two classes: roc_auc_score(y, P[:, 1]), average_precision_score(y, P[:, 1]) (class 1
      of ``classes`` is the positive class), and the ROC curve's points;
    - more: roc_auc_score(y, P, multi_class='ovr', average='macro') and
      average_precision_score(one-hot y, P, average='macro'), with each class's
      one-vs-rest value in ``per_class``;
    - log_loss(y, P, labels=range(k)).

    Where scikit-learn raises or returns a number without meaning (a class absent from the
    rows, or no row of any other class), the value is None and ``notes`` says why; the macro
    averages are then over the classes where it is defined (None if there are none).
    """
    codes = np.asarray(codes, np.int64)
    P = np.asarray(P, np.float64)
    k, n = len(classes), len(codes)
    if n == 0 or not np.all(np.isfinite(P)):  # no rows, or a diverged network: nothing to rank
        kind = {"positive_class": classes[1], "roc_curve": None} if k == 2 else {"roc_average": "macro one-vs-rest"}
        why = "there are no rows" if n == 0 else "the network's outputs are not all finite"
        return {"log_loss": None, "roc_auc": None, "average_precision": None, **kind,
                "notes": [f"{why}: log-loss, ROC-AUC and average precision are reported as null"]}
    out: dict = {"log_loss": log_loss(codes, P)}
    notes: list[str] = []
    if k == 2:
        y = (codes == 1).astype(np.int64)
        out.update(roc_auc=roc_auc(y, P[:, 1]), average_precision=average_precision(y, P[:, 1]),
                   positive_class=classes[1])
        if out["roc_auc"] is None:
            rows = f"every one of the {n} evaluated rows is" if n > 1 else "the one evaluated row is"
            notes.append(f"{rows} of class '{classes[int(codes[0])]}': ROC-AUC is undefined "
                         "(it needs rows of both classes) and reported as null; no ROC curve")
            out["roc_curve"] = None
        else:
            fpr, tpr, _ = roc_curve(y, P[:, 1])
            out["roc_curve"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
        if out["average_precision"] is None:
            notes.append(f"no evaluated row is of the positive class '{classes[1]}': "
                         "average precision is undefined and reported as null")
        return {**out, "notes": notes}
    per = {}
    for c, label in enumerate(classes):
        y = (codes == c).astype(np.int64)
        per[label] = {"roc_auc": roc_auc(y, P[:, c]), "average_precision": average_precision(y, P[:, c])}
    absent = [label for label, m in per.items() if m["average_precision"] is None]
    alone = [label for label, m in per.items() if m["average_precision"] is not None and m["roc_auc"] is None]
    if absent:
        which = f"classes {', '.join(map(repr, absent))} are" if len(absent) > 1 else f"class {absent[0]!r} is"
        notes.append(f"{which} absent from the {n} evaluated row{'s' * (n != 1)}: one-vs-rest ROC-AUC and average precision "
                     "are undefined for a class without rows and reported as null")
    if alone:
        notes.append(f"every evaluated row is of class {alone[0]!r}: its one-vs-rest ROC-AUC is undefined "
                     "(no row of another class) and reported as null")
    partial = {}  # metric name -> number of classes it is defined for, where fewer than k
    for m, name in (("roc_auc", "ROC-AUC"), ("average_precision", "average precision")):
        vals = [v[m] for v in per.values() if v[m] is not None]
        out[m] = float(np.mean(vals)) if vals else None
        if len(vals) < k:
            partial[name] = len(vals)
    for d in sorted(set(partial.values()), reverse=True):
        names = " and ".join(name for name, count in partial.items() if count == d)
        notes.append(f"macro {names}: the mean over the {d} of {k} classes where defined" if d
                     else f"macro {names}: undefined for every class, reported as null")
    out.update(roc_average="macro one-vs-rest", per_class=per)
    return {**out, "notes": notes}
