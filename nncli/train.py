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

import math
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
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _evaluate(model, split, loss, task, chunk)


def _evaluate(model, split, loss, task, chunk):
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


class _HitCounter:
    """Correctly classified rows of a batch, without temporaries.

    A row is a hit when y_hat >= 1/2 matches y >= 1/2 (binary), or when the argmax of y_hat
    is the class of its one-hot y (multiclass). The true class of every training row is
    computed once; each batch gathers its rows' classes with the same index as X and Y.
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

    def batch_truth(self, idx) -> np.ndarray:
        """The true classes of rows ``idx`` (an index array, or a slice)."""
        if isinstance(idx, slice):
            return self.truth[idx]
        out = self.buf[: len(idx)]
        self.truth.take(idx, 0, out, "clip")
        return out

    def __call__(self, A: np.ndarray, truth: np.ndarray) -> int:
        m = A.shape[0]
        pred, eq = self.pred[:m], self.eq[:m]
        if self.binary:
            np.greater_equal(A, self.half, pred)
        else:
            A.argmax(1, pred)
        np.equal(pred, truth, eq)
        return int(np.count_nonzero(eq))


def _all_finite(x: np.ndarray, zeros: np.ndarray) -> bool:
    """Whether every element of the 1-d array x is finite, in one BLAS call.

    x . 0 is 0 when every x_i is finite and NaN otherwise (inf * 0 and NaN * 0 are NaN,
    and a sum of zeros cannot overflow), so it is exactly np.isfinite(x).all(), faster.
    numpy warns about the invalid inf * 0: call it under np.errstate(invalid="ignore").
    """
    return not math.isnan(x.dot(zeros))


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
        # the optimizer sees the one flat parameter array (W1, b1, ..., bL views live in it)
        self.optimizer = OPTIMIZERS[t.optimizer](
            [model.flat], t.lr, momentum=t.momentum, beta1=t.beta1, beta2=t.beta2, eps=t.eps
        )
        self.epoch = 0  # epochs completed
        self.result = TrainResult()
        self.stop_requested = False
        self._best = None  # (val_loss, epoch, weights) for early stopping
        self._wait = 0
        self._pos = 0  # next row of the current epoch's order
        self._order = None  # the current epoch's shuffled row order
        self._sums = None  # running [loss * rows, hits, squared residuals] of the current epoch

    def epochs(self) -> Iterator[EpochRecord]:
        """Train to ``cfg.train.epochs``, yielding one record per completed epoch.

        Resumable: the position inside the current epoch (its shuffled order, the next
        batch, the running sums) is trainer state, so an interruption after any step can
        be checkpointed and continued bit for bit (see :meth:`state`).
        """
        cfg, model, loss, task = self.cfg, self.model, self.loss, self.task
        t = cfg.train
        # minibatches gather rows, which wants rows contiguous in memory (an F-ordered X, as
        # DataFrame.to_numpy gives, makes each gather 50x slower): copied once if needed
        X, Y = np.ascontiguousarray(self.data.train.X), np.ascontiguousarray(self.data.train.Y)
        n = X.shape[0]
        bs = n if t.batch_size == "full" else min(int(t.batch_size), n)
        full_batch = bs == n
        ws = model.workspace(bs)
        Xb = np.empty((bs, X.shape[1]), X.dtype)
        Yb = np.empty((bs, Y.shape[1]), Y.dtype)
        grads = [ws.grad_flat]
        es = t.early_stopping
        snapshot = np.empty_like(model.flat)
        zeros = np.zeros_like(model.flat)
        regression = task == "regression"
        hits = None if regression else _HitCounter(Y, bs, task == "binary")
        if regression:
            ss_tot = np.sum((Y.astype(np.float64) - Y.mean(axis=0, dtype=np.float64)) ** 2, axis=0)
        start = time.perf_counter() - self.result.seconds
        self.result.status = "running"
        forward, batch_loss, backward, step = model.forward, model.batch_loss, model.backward, self.optimizer.step
        l2 = t.l2
        while self.epoch < t.epochs:
            np.copyto(snapshot, model.flat)  # the last finite weights, if this epoch diverges
            if self._pos == 0:  # a fresh epoch (otherwise: resuming inside one)
                self._order = self.rng.permutation(n) if (t.shuffle and not full_batch) else None
                self._sums = [0.0, 0, np.zeros(Y.shape[1]) if regression else 0.0]  # loss*n, hits, ss_res
            order, sums = self._order, self._sums
            # overflow on the way to divergence is detected below, not warned about
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                while self._pos < n:
                    s = self._pos
                    if full_batch:
                        xb, yb, w, rows = X, Y, ws, slice(None)
                    else:
                        m = min(bs, n - s)
                        if order is None:
                            rows = slice(s, s + m)
                            xb, yb = X[rows], Y[rows]
                        else:
                            rows = order[s : s + m]
                            xb, yb = Xb[:m], Yb[:m]
                            # the ndarray methods skip np.take's Python wrapper; "clip": with
                            # out=, mode "raise" would buffer a copy (rows are valid anyway)
                            X.take(rows, 0, xb, "clip")
                            Y.take(rows, 0, yb, "clip")
                        w = ws.view(m)
                    A = forward(xb, w)
                    E = batch_loss(yb, w, loss)
                    if not math.isfinite(E):
                        return self._diverged(snapshot, f"the training loss became {E} in epoch {self.epoch + 1}", start)
                    sums[0] += E * xb.shape[0]
                    if regression:
                        sums[2] = sums[2] + np.sum((A.astype(np.float64) - yb) ** 2, axis=0)
                    else:
                        sums[1] += hits(A, hits.batch_truth(rows))
                    backward(xb, yb, w, loss, l2)
                    step(grads)
                    self._pos = s + xb.shape[0]
                    if self.stop_requested and self._pos < n:
                        # interrupted inside an epoch: its position is kept for the checkpoint
                        return self._interrupted(start)
                finite = _all_finite(model.flat, zeros)  # (inside errstate: inf * 0 would warn)
            if not finite:
                return self._diverged(snapshot, f"the weights became non-finite in epoch {self.epoch + 1}", start)
            self.epoch += 1
            self._pos = 0
            if regression:
                with np.errstate(divide="ignore", invalid="ignore"):
                    r2 = np.where(ss_tot > 0, 1 - sums[2] / ss_tot, np.nan)
                metric = float(np.nanmean(r2)) if np.isfinite(r2).any() else float("nan")
            else:
                metric = sums[1] / n
            rec = EpochRecord(self.epoch, sums[0] / n, metric)
            if self.data.val is not None:
                rec.val_loss, rec.val_metric = evaluate(model, self.data.val, cfg.loss, task)
                if not np.isfinite(rec.val_loss):
                    return self._diverged(snapshot, f"the validation loss became {rec.val_loss} in epoch {self.epoch}", start)
            rec.seconds = time.perf_counter() - start
            self.result.epochs_run = self.epoch
            self.result.history.append(rec)
            stop_early = es is not None and self._early_stop(rec.val_loss, es)
            yield rec
            if stop_early:
                break
            if self.stop_requested and self.epoch < t.epochs:
                return self._interrupted(start)
        if self._best is not None:
            for (_, p), best in zip(model.params(), self._best[2]):
                np.copyto(p, best)
            self.result.best_epoch = self._best[1]
        self.result.status = "completed"
        self.result.seconds = time.perf_counter() - start

    def _interrupted(self, start: float) -> None:
        self.result.status = "interrupted"
        self.result.seconds = time.perf_counter() - start
        self.result.message = "training was interrupted; continue it with: nncli train --resume RUN_DIR"

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue exactly where training stands, as plain arrays.

        Weights, optimizer state, the generator's state, the epoch and the position inside
        it, early-stopping state and the history so far. No pickles: the bookkeeping is a
        JSON string stored as a numpy str array.
        """
        import json

        arrays: dict[str, np.ndarray] = {}
        for name, p in self.model.params():
            arrays[f"param/{name}"] = p
        for k, v in self.optimizer.state().items():
            arrays[f"opt/{k}"] = v
        if self._order is not None and self._pos > 0:
            arrays["order"] = self._order
        if self._best is not None:
            for (name, _), p in zip(self.model.params(), self._best[2]):
                arrays[f"best/{name}"] = p
        sums = self._sums
        meta = {
            "epoch": self.epoch,
            "pos": self._pos,
            "sums": [float(sums[0]), int(sums[1]), np.asarray(sums[2], dtype=np.float64).tolist()] if sums else None,
            "seconds": self.result.seconds,
            "rng": self.rng.bit_generator.state,
            "best": None if self._best is None else [self._best[0], self._best[1]],
            "wait": self._wait,
            "history": [[r.epoch, r.loss, r.metric, r.val_loss, r.val_metric, r.seconds] for r in self.result.history],
        }
        arrays["meta"] = np.array(json.dumps(meta))
        return arrays

    def load_state(self, arrays) -> None:
        import json

        meta = json.loads(str(arrays["meta"]))
        for name, p in self.model.params():
            np.copyto(p, arrays[f"param/{name}"])
        self.optimizer.load_state({k[4:]: arrays[k] for k in arrays if k.startswith("opt/")})
        self.rng.bit_generator.state = meta["rng"]
        self.epoch = int(meta["epoch"])
        self._pos = int(meta["pos"])
        self._order = np.asarray(arrays["order"]) if "order" in arrays else None
        if meta["sums"] is not None:
            s = meta["sums"]
            self._sums = [float(s[0]), int(s[1]), np.asarray(s[2]) if isinstance(s[2], list) else float(s[2])]
        if meta["best"] is not None:
            weights = [np.array(arrays[f"best/{name}"]) for name, _ in self.model.params()]
            self._best = (float(meta["best"][0]), int(meta["best"][1]), weights)
        self._wait = int(meta["wait"])
        self.result.seconds = float(meta["seconds"])
        self.result.history = [EpochRecord(*row) for row in meta["history"]]
        self.result.epochs_run = self.epoch

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
        if not np.isfinite(self.model.flat).all():
            np.copyto(self.model.flat, snapshot)
        self.result.status = "diverged"
        self.result.seconds = time.perf_counter() - start
        self.result.message = (
            f"training diverged: {why}. The last finite weights were kept. "
            "Try a lower learning rate (train.lr) or standardised inputs (data.standardize: true)"
        )
