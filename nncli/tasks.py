"""The three tasks of the lecture: binary and multi-class classification, and regression.

A task owns what differs between them: how many output units the network has, how the
targets are encoded (0/1, one-hot, values), how outputs are decoded (the decision
boundary y_hat >= 1/2, argmax, the values themselves), and the metric reported beside
the loss (accuracy or R²). The loss chosen in the config names its task
(``nncli.losses.LOSSES[name].task``); everything else asks the task instead of comparing
strings.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import metrics as M


class Task:
    name = ""
    metric = ""  # the score reported beside the loss
    is_classifier = True
    units = ""  # what the output units are, for messages
    max_classes: Optional[int] = None

    def n_outputs(self, classes: Optional[list], targets: list) -> int:
        raise NotImplementedError

    def encode(self, codes_or_values: np.ndarray, n_classes: int, dtype) -> np.ndarray:
        """Y (n_samples, n_outputs) from class codes (classifiers) or values (n, K) (regression)."""
        raise NotImplementedError

    def predicted_codes(self, A: np.ndarray) -> np.ndarray:
        """Class codes of network outputs A (n, n_outputs)."""
        raise NotImplementedError

    def true_codes(self, Y: np.ndarray) -> np.ndarray:
        """Class codes of encoded targets Y."""
        raise NotImplementedError

    def probabilities(self, A: np.ndarray) -> np.ndarray:
        """(n, n_classes) class probabilities, float64."""
        raise NotImplementedError

    def score(self, Y: np.ndarray, A: np.ndarray) -> float:
        """Accuracy of A against Y (classifiers)."""
        return float(np.mean(self.predicted_codes(A) == self.true_codes(Y)))

    def running_score(self, Y: np.ndarray, batch_size: int) -> "RunningScore":
        """An accumulator of the score over an epoch's batches of the rows of Y."""
        return Hits(Y, batch_size, isinstance(self, Binary))

    def __repr__(self) -> str:
        return f"<task {self.name}>"


class Binary(Task):
    """One output unit y_hat = P(y = class 1 | x); the decision boundary is y_hat = 1/2."""

    name, metric, units = "binary", "accuracy", "one unit, P(y = class 1), for loss bce"
    max_classes = 2

    def n_outputs(self, classes, targets):
        return 1

    def encode(self, codes, n_classes, dtype):
        return codes.astype(dtype).reshape(-1, 1)

    def predicted_codes(self, A):
        return (A[:, 0] >= 0.5).astype(np.int64)

    def true_codes(self, Y):
        return Y[:, 0].astype(np.int64)

    def probabilities(self, A):
        p1 = A[:, 0].astype(np.float64)
        return np.stack([1 - p1, p1], axis=1)


class Multiclass(Task):
    """One output unit per class (softmax); one-hot targets; the prediction is the argmax."""

    name, metric, units = "multiclass", "accuracy", "one unit per class"

    def n_outputs(self, classes, targets):
        return len(classes)

    def encode(self, codes, n_classes, dtype):
        Y = np.zeros((len(codes), n_classes), dtype=dtype)
        Y[np.arange(len(codes)), codes] = 1
        return Y

    def predicted_codes(self, A):
        return np.argmax(A, axis=1)

    def true_codes(self, Y):
        return np.argmax(Y, axis=1)

    def probabilities(self, A):
        return A.astype(np.float64)


class Regression(Task):
    """One output unit per target column; the score is R², averaged over the targets."""

    name, metric, units, is_classifier = "regression", "r2", "one unit per target column", False

    def n_outputs(self, classes, targets):
        return len(targets)

    def encode(self, values, n_classes, dtype):
        return np.asarray(values, dtype=dtype)

    def score(self, Y, A):
        return float(np.nanmean(M.r2_score(Y, A))) if len(Y) > 1 else float("nan")

    def running_score(self, Y, batch_size):
        return Residuals(Y)


TASKS: dict[str, Task] = {t.name: t for t in (Binary(), Multiclass(), Regression())}


# ---------------------------------------------------------------------- scores over an epoch


class RunningScore:
    """The training score of an epoch, accumulated batch by batch as the batches are trained
    (each measured before its update, as scikit-learn's loss_curve_ does)."""

    def reset(self) -> None: ...

    def add(self, A: np.ndarray, rows) -> None:
        """Count the batch of rows ``rows`` (an index array, or a slice) with outputs A."""

    def value(self, n: int) -> float: ...

    def state(self): ...

    def load_state(self, s) -> None: ...


class Hits(RunningScore):
    """Correctly classified rows, without temporaries: y_hat >= 1/2 against y >= 1/2 (binary),
    or the argmax of y_hat against the class of the one-hot y (multi-class).

    The true class of every training row is computed once; each batch gathers its rows'
    classes with the same index as X and Y.
    """

    def __init__(self, Y: np.ndarray, bs: int, binary: bool):
        self.binary = binary
        if binary:
            self.truth = Y >= 0.5  # (n, 1) bool
            self.pred = np.empty((bs, 1), bool)
            self.half = np.array(0.5, Y.dtype)
        else:
            self.truth = Y.argmax(axis=1)  # (n,) class codes
            self.pred = np.empty(bs, self.truth.dtype)
        self.buf = np.empty_like(self.pred)  # the batch's true classes when gathered
        self.eq = np.empty(self.pred.shape, bool)
        self.hits = 0

    def reset(self):
        self.hits = 0

    def batch_truth(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            return self.truth[rows]
        out = self.buf[: len(rows)]
        self.truth.take(rows, 0, out, "clip")
        return out

    def add(self, A, rows):
        m = A.shape[0]
        pred, eq = self.pred[:m], self.eq[:m]
        if self.binary:
            np.greater_equal(A, self.half, pred)
        else:
            A.argmax(1, pred)
        np.equal(pred, self.batch_truth(rows), eq)
        self.hits += int(np.count_nonzero(eq))

    def value(self, n):
        return self.hits / n

    def state(self):
        return self.hits

    def load_state(self, s):
        self.hits = int(s)


class Residuals(RunningScore):
    """R² of the epoch: 1 - sum (y - y_hat)^2 / sum (y - mean y)^2 per target, averaged."""

    def __init__(self, Y: np.ndarray):
        self.Y = Y
        self.ss_tot = np.sum((Y.astype(np.float64) - Y.mean(axis=0, dtype=np.float64)) ** 2, axis=0)
        self.reset()

    def reset(self):
        self.ss_res = np.zeros(self.Y.shape[1])

    def add(self, A, rows):
        yb = self.Y[rows]
        self.ss_res = self.ss_res + np.sum((A.astype(np.float64) - yb) ** 2, axis=0)

    def value(self, n):
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(self.ss_tot > 0, 1 - self.ss_res / self.ss_tot, np.nan)
        return float(np.nanmean(r2)) if np.isfinite(r2).any() else float("nan")

    def state(self):
        return np.asarray(self.ss_res, dtype=np.float64).tolist()

    def load_state(self, s):
        self.ss_res = np.asarray(s, dtype=np.float64) if isinstance(s, list) else np.zeros(self.Y.shape[1]) + float(s)
