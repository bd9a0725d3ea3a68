"""Evaluation metrics: accuracy, precision/recall/F1, confusion matrix, MSE/RMSE/MAE/R².

Inputs are integer class codes (classification) or value arrays of shape (n, K)
(regression). Nothing here prints.
"""

from __future__ import annotations

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
