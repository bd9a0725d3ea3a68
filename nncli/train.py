"""fit(): epochs of minibatch gradient descent, validation, early stopping, divergence.

The trainer never prints. :meth:`Trainer.epochs` yields one :class:`EpochRecord` per epoch;
the CLI renders them. One seeded generator drives everything random: the data splits
(consumed before the trainer is built), the initial weights and the per-epoch shuffles.

The per-epoch ``loss`` and ``accuracy``/``r2`` on the training data are accumulated from
the minibatches as they are trained (each batch measured before its update, as
scikit-learn's ``loss_curve_`` and Keras' history do), so they cost no extra pass. The
validation numbers are computed with the weights at the end of the epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from .data import Dataset, Split
from .losses import LOSSES
from .metrics import predicted_codes, r2_score, true_codes
from .model import MLP, Workspace
from .optim import OPTIMIZERS


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    metric: float  # accuracy (classification) or r2 (regression)
    val_loss: Optional[float] = None
    val_metric: Optional[float] = None
    seconds: float = 0.0  # elapsed since training started


@dataclass
class TrainResult:
    status: str = "running"  # completed | diverged | interrupted
    epochs_run: int = 0
    seconds: float = 0.0
    message: str = ""
    best_epoch: Optional[int] = None  # with early stopping: the epoch whose weights were kept
    stopped_early: bool = False
    history: list[EpochRecord] = field(default_factory=list)


def evaluate(model: MLP, split: Split, loss_name: str, task: str, chunk: int = 4096) -> tuple[float, float]:
    """(mean loss, accuracy or mean R²) of ``model`` on a whole split."""
    loss = LOSSES[loss_name]
    n = split.n
    total = 0.0
    ws: Optional[Workspace] = None
    A_all = np.empty((n, model.sizes[-1]), model.dtype)
    for s in range(0, n, chunk):
        xb, yb = split.X[s : s + chunk], split.Y[s : s + chunk]
        if ws is None:
            ws = Workspace(model, xb.shape[0])
        w = ws.view(xb.shape[0])
        A = model.forward(xb, w)
        total += loss.value(yb, A, w.Z[-1], model.output) * xb.shape[0]
        A_all[s : s + xb.shape[0]] = A
    return total / n, _metric(split.Y, A_all, task)


def _metric(Y, A, task) -> float:
    if task == "regression":
        return float(np.nanmean(r2_score(Y, A))) if len(Y) > 1 else float("nan")
    return float(np.mean(predicted_codes(A, task) == true_codes(Y, task)))


class Trainer:
    """Trains ``model`` on ``data`` as ``cfg.train`` says. Set ``stop_requested`` to stop after the current step."""

    def __init__(self, cfg, model: MLP, data: Dataset, rng: np.random.Generator):
        self.cfg = cfg
        self.model = model
        self.data = data
        self.rng = rng
        t = cfg.train
        self.loss = LOSSES[cfg.loss]
        self.task = cfg.task
        params = [p for _, p in model.params()]
        self.optimizer = OPTIMIZERS[t.optimizer](
            params, t.lr, momentum=t.momentum, beta1=t.beta1, beta2=t.beta2, eps=t.eps
        )
        self.epoch = 0  # epochs completed
        self.result = TrainResult()
        self.stop_requested = False
        self._best = None  # (val_loss, epoch, weights) for early stopping
        self._wait = 0

    def epochs(self) -> Iterator[EpochRecord]:
        cfg, model, loss, task = self.cfg, self.model, self.loss, self.task
        t = cfg.train
        X, Y = self.data.train.X, self.data.train.Y
        n = X.shape[0]
        bs = n if t.batch_size == "full" else min(int(t.batch_size), n)
        full_batch = bs == n
        ws = model.workspace(bs)
        Xb = np.empty((bs, X.shape[1]), X.dtype)
        Yb = np.empty((bs, Y.shape[1]), Y.dtype)
        grads = model.grads(ws)
        es = t.early_stopping
        regression = task == "regression"
        if regression:
            ss_tot = np.sum((Y.astype(np.float64) - Y.mean(axis=0, dtype=np.float64)) ** 2, axis=0)
        start = time.perf_counter() - self.result.seconds
        while self.epoch < t.epochs:
            snapshot = [p.copy() for _, p in model.params()]  # last finite weights, if this epoch diverges
            order = self.rng.permutation(n) if (t.shuffle and not full_batch) else None
            loss_sum = 0.0
            hits = 0
            ss_res = 0.0
            for s in range(0, n, bs):
                if full_batch:
                    xb, yb = X, Y
                    w = ws
                else:
                    m = min(bs, n - s)
                    if order is None:
                        xb, yb = X[s : s + m], Y[s : s + m]
                    else:
                        idx = order[s : s + m]
                        xb, yb = Xb[:m], Yb[:m]
                        np.take(X, idx, axis=0, out=xb)
                        np.take(Y, idx, axis=0, out=yb)
                    w = ws.view(m)
                A = model.forward(xb, w)
                E = loss.value(yb, A, w.Z[-1], model.output)
                if not np.isfinite(E):
                    return self._diverged(snapshot, f"the training loss became {E} in epoch {self.epoch + 1}", start)
                loss_sum += E * xb.shape[0]
                if regression:
                    ss_res = ss_res + np.sum((A.astype(np.float64) - yb) ** 2, axis=0)
                else:
                    hits += int(np.count_nonzero(predicted_codes(A, task) == true_codes(yb, task)))
                model.backward(xb, yb, w, loss, t.l2)
                self.optimizer.step(grads)
                if self.stop_requested:
                    break
            if self.stop_requested and s + bs < n:
                # interrupted mid-epoch: the epoch is not complete, so it is not recorded
                self.result.status = "interrupted"
                self.result.seconds = time.perf_counter() - start
                return
            if not all(np.isfinite(p).all() for _, p in model.params()):
                return self._diverged(snapshot, f"the weights became non-finite in epoch {self.epoch + 1}", start)
            self.epoch += 1
            if regression:
                with np.errstate(divide="ignore", invalid="ignore"):
                    metric = float(np.nanmean(np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan))) if n > 1 else float("nan")
            else:
                metric = hits / n
            rec = EpochRecord(self.epoch, loss_sum / n, metric)
            if self.data.val is not None:
                rec.val_loss, rec.val_metric = evaluate(model, self.data.val, cfg.loss, task)
                if not np.isfinite(rec.val_loss):
                    return self._diverged(snapshot, f"the validation loss became {rec.val_loss} in epoch {self.epoch}", start)
            rec.seconds = time.perf_counter() - start
            self.result.epochs_run = self.epoch
            self.result.history.append(rec)
            yield rec
            if es is not None and self._early_stop(rec.val_loss, es):
                break
            if self.stop_requested:
                self.result.status = "interrupted"
                self.result.seconds = time.perf_counter() - start
                return
        if self._best is not None:
            for (_, p), best in zip(model.params(), self._best[2]):
                np.copyto(p, best)
            self.result.best_epoch = self._best[1]
        self.result.status = "completed"
        self.result.seconds = time.perf_counter() - start

    def _early_stop(self, val_loss: float, es) -> bool:
        if self._best is None or val_loss < self._best[0] - es.min_delta:
            self._best = (val_loss, self.epoch, [p.copy() for _, p in self.model.params()])
            self._wait = 0
            return False
        self._wait += 1
        if self._wait >= es.patience:
            self.result.stopped_early = True
            return True
        return False

    def _diverged(self, snapshot, why: str, start: float):
        if not all(np.isfinite(p).all() for _, p in self.model.params()):
            for (_, p), old in zip(self.model.params(), snapshot):
                np.copyto(p, old)
        self.result.status = "diverged"
        self.result.seconds = time.perf_counter() - start
        self.result.message = (
            f"training diverged: {why}. The last finite weights were kept. "
            "Try a lower learning rate (train.lr) or standardised inputs (data.standardize: true)"
        )
