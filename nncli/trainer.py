"""fit(): epochs of minibatch gradient descent, validation, early stopping, divergence.

The trainer never prints. :meth:`Trainer.epochs` yields one :class:`EpochRecord` per epoch;
the CLI renders them. It needs no config: arrays (as :class:`~nncli.data.Split`), a model,
a loss, an optimizer, a task and :class:`FitOptions`, which is also how the benchmarks and
library users drive it. One seeded generator drives everything random: the data splits
(consumed before the trainer is built), the initial weights and the per-epoch shuffles.

The per-epoch ``loss`` and ``accuracy``/``r2`` on the training data are accumulated from
the minibatches as they are trained (each batch measured before its update, as
scikit-learn's ``loss_curve_`` and Keras' history do), so they cost no extra pass. The
validation numbers are computed with the weights at the end of the epoch.

Three options act on the loop. A learning-rate schedule (:mod:`nncli.schedules`) sets the
optimizer's eta before each epoch and is stepped after it, with the validation loss (the
training loss without validation) for plateau; its eta is recorded per epoch
(``EpochRecord.lr``, None with a constant eta). Gradient clipping (``clip_norm``) rescales
the whole gradient between backward and the optimizer step when its global L2 norm exceeds
the value, as ``torch.nn.utils.clip_grad_norm_``. Early stopping watches any metric of the
epoch record (``monitor``: losses must fall, accuracy and r2 rise) and keeps the weights of
the best epoch, as Keras' ``EarlyStopping(restore_best_weights=True)``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Iterator, Optional, Union

import numpy as np

from .data import Split
from .losses import Loss
from .model import MLP
from .optim import Optimizer
from .schedules import Schedule, make_schedule
from .tasks import Task


INTERRUPTED = object()  # what _train_epoch returns when stop_requested stopped it mid-epoch
RESUME_HINT = "training was interrupted; continue it with: nncli train --resume RUN_DIR"


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    metric: float  # accuracy (classification) or r2 (regression)
    val_loss: Optional[float] = None
    val_metric: Optional[float] = None
    seconds: Optional[float] = 0.0  # elapsed since training started (None: not known, epochs before a resume)
    lr: Optional[float] = None  # the learning rate of the epoch, under a schedule (None: the constant train.lr)


@dataclass
class TrainResult:
    status: str = "running"  # completed | diverged | interrupted | pruned (a sweep's pruner stopped it)
    epochs_run: int = 0
    seconds: float = 0.0
    message: str = ""
    best_epoch: Optional[int] = None  # with early stopping: the epoch whose weights were kept
    monitor: Optional[str] = None  # with early stopping: the metric it watched
    stopped_early: bool = False
    history: list[EpochRecord] = field(default_factory=list)


@dataclass
class EarlyStopping:
    patience: int = 10  # epochs without improvement of the monitored metric before stopping
    min_delta: float = 0.0  # smallest improvement that counts (a decrease of a loss, an increase of accuracy or r2)
    monitor: str = "val_loss"  # loss, accuracy or r2, of the training rows or (val_) the validation rows

    @property
    def falls(self) -> bool:
        """Whether smaller is better (a loss) or larger (accuracy, r2)."""
        return self.monitor.removeprefix("val_") == "loss"

    def improves(self, value: float, best: Optional[float]) -> bool:
        """Whether ``value`` beats ``best`` by more than min_delta (None: nothing seen yet; NaN never does)."""
        if math.isnan(value):
            return False
        if best is None:
            return True
        return value < best - self.min_delta if self.falls else value > best + self.min_delta


@dataclass
class FitOptions:
    epochs: int
    batch_size: Union[int, str] = 32  # or "full"
    shuffle: bool = True
    l2: float = 0.0
    early_stopping: Optional[EarlyStopping] = None
    schedule: Optional[dict] = None  # train.schedule: name, warmup and its keys (nncli.schedules); None: constant
    clip_norm: Optional[float] = None  # the largest global L2 norm of a gradient step (None: no clipping)
    # what a diverged run's message suggests (nncli.job.divergence_hint: only settings that are off)
    divergence_hint: str = "Try a lower learning rate (train.lr)"

    @classmethod
    def from_config(cls, t) -> "FitOptions":
        """From a config's ``train`` section."""
        es, sched = t.early_stopping, getattr(t, "schedule", None)
        return cls(t.epochs, t.batch_size, t.shuffle, t.l2,
                   None if es is None else EarlyStopping(es.patience, es.min_delta, es.monitor),
                   None if sched is None else sched.model_dump(), getattr(t, "clip_norm", None))


def evaluate(model: MLP, split: Split, loss: Loss, task: Task, chunk: int = 4096) -> tuple[float, float]:
    """(mean loss, accuracy or mean R²) of ``model`` on a whole split."""
    n = split.n
    total = 0.0
    A_all = np.empty((n, model.sizes[-1]), model.dtype)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for s in range(0, n, chunk):
            yb = split.Y[s : s + chunk]
            A_all[s : s + len(yb)] = model.forward(split.X[s : s + chunk])
            total += model.loss(yb, loss) * len(yb)
    return total / n, task.score(split.Y, A_all)


def clip_grad_norm(g: np.ndarray, max_norm: float) -> float:
    """Rescale the gradient ``g`` (one flat array: every parameter) in place so that its global
    L2 norm is at most ``max_norm``, as ``torch.nn.utils.clip_grad_norm_``: with the norm
    ||g||_2, the factor max_norm / (||g||_2 + 1e-6) is applied when it is below 1. Returns the
    norm before clipping."""
    total = math.sqrt(float(g.dot(g)))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        np.multiply(g, np.asarray(coef, g.dtype), g)
    return total


def _all_finite(x: np.ndarray, zeros: np.ndarray) -> bool:
    """Whether every element of the 1-d array x is finite, in one BLAS call.

    x . 0 is 0 when every x_i is finite and NaN otherwise (inf * 0 and NaN * 0 are NaN,
    and a sum of zeros cannot overflow), so it is exactly np.isfinite(x).all(), faster.
    numpy warns about the invalid inf * 0: call it under np.errstate(invalid="ignore").
    """
    return not math.isnan(x.dot(zeros))


class _Batches:
    """The minibatches of an epoch: rows in order, or gathered in the epoch's shuffled order
    into preallocated buffers (a gather from row-contiguous arrays)."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, batch_size):
        # gathering rows wants them contiguous in memory (an F-ordered X, as
        # DataFrame.to_numpy gives, makes each gather 50x slower): copied once if needed
        self.X, self.Y = np.ascontiguousarray(X), np.ascontiguousarray(Y)
        self.n = n = self.X.shape[0]
        self.size = n if batch_size == "full" else min(int(batch_size), n)
        self.full = self.size == n
        self.Xb = np.empty((self.size, self.X.shape[1]), self.X.dtype)
        self.Yb = np.empty((self.size, self.Y.shape[1]), self.Y.dtype)

    def order(self, rng: np.random.Generator, shuffle: bool) -> Optional[np.ndarray]:
        """A new epoch's row order (None: in file order)."""
        return rng.permutation(self.n) if (shuffle and not self.full) else None

    def at(self, start: int, order: Optional[np.ndarray]):
        """(rows, X batch, Y batch) of the batch beginning at position ``start`` of the epoch."""
        if self.full:
            return slice(None), self.X, self.Y
        m = min(self.size, self.n - start)
        if order is None:
            rows = slice(start, start + m)
            return rows, self.X[rows], self.Y[rows]
        rows = order[start : start + m]
        # the ndarray methods skip np.take's Python wrapper; "clip": with out=, mode "raise"
        # would buffer a copy (rows are valid anyway)
        self.X.take(rows, 0, self.Xb[:m], "clip")
        self.Y.take(rows, 0, self.Yb[:m], "clip")
        return rows, self.Xb[:m], self.Yb[:m]


class Trainer:
    """Trains ``model`` on ``train``. Set ``stop_requested`` to stop after the current step."""

    def __init__(self, model: MLP, loss: Loss, optimizer: Optimizer, task: Task, train: Split,
                 val: Optional[Split], rng: np.random.Generator, options: FitOptions):
        self.model, self.loss, self.optimizer, self.task = model, loss, optimizer, task
        self.train, self.val, self.rng, self.options = train, val, rng, options
        self.batches = _Batches(train.X, train.Y, options.batch_size)
        self.score = task.running_score(self.batches.Y, self.batches.size)
        self.epoch = 0  # epochs completed
        self.result = TrainResult()
        self.stop_requested = False
        self._stop_as = ("interrupted", RESUME_HINT)  # what a requested stop is: prune() makes it "pruned"
        self._pos = 0  # next row of the current epoch's order
        self._order: Optional[np.ndarray] = None  # the current epoch's shuffled row order
        self._loss_sum = 0.0  # sum of batch loss * batch rows in the current epoch
        # early stopping: (the best monitored value, None before a first valid one; its epoch; its weights)
        self._best: Optional[tuple[Optional[float], int, list[np.ndarray]]] = None
        self._wait = 0  # epochs since the best one
        self._start = 0.0
        self._zeros = np.zeros_like(model.flat)
        es = options.early_stopping
        if es is not None and es.monitor.removeprefix("val_") not in ("loss", task.metric):
            raise ValueError(f"early stopping cannot monitor {es.monitor}: this task reports loss and {task.metric}")
        if es is not None and es.monitor.startswith("val_") and val is None:
            raise ValueError(f"early stopping cannot monitor {es.monitor} without validation data")
        # the learning rate per epoch (None: constant, the loop as it was before schedules)
        self.schedule: Optional[Schedule] = make_schedule(optimizer.lr, options.schedule)
        if self.schedule is not None:
            optimizer.lr = self.schedule.lr

    def epochs(self) -> Iterator[EpochRecord]:
        """Train to ``options.epochs``, yielding one record per completed epoch.

        Resumable: the position inside the current epoch (its shuffled order, the next
        batch, the running totals) is trainer state, so an interruption after any step can
        be checkpointed and continued bit for bit (see :meth:`state`).
        """
        snapshot = np.empty_like(self.model.flat)  # the last finite weights, if an epoch diverges
        self._start = time.perf_counter() - self.result.seconds
        self.result.status = "running"
        es = self.options.early_stopping
        # resumed from a checkpoint of the very epoch early stopping stopped at: nothing more to train
        self.result.stopped_early = es is not None and self.epoch > 0 and self._wait >= es.patience
        while self.epoch < self.options.epochs and not self.result.stopped_early:
            np.copyto(snapshot, self.model.flat)
            if self._pos == 0:  # a fresh epoch (otherwise: resuming inside one)
                self._begin_epoch()
            why = self._train_epoch()
            if why is INTERRUPTED:
                return self._stop(*self._stop_as)
            if why is None:
                rec, why = self._end_epoch()
            if why is not None:
                return self._diverged(snapshot, why)
            stop_early = self._early_stop(rec)
            yield rec
            if stop_early:
                break
            if self.stop_requested and self.epoch < self.options.epochs:
                return self._stop(*self._stop_as)
        if self._best is not None:
            for (_, p), best in zip(self.model.params(), self._best[2]):
                np.copyto(p, best)
            self.result.best_epoch = self._best[1]
            self.result.monitor = es.monitor
        self._stop("completed", "")

    def prune(self, message: str) -> None:
        """Stop after the current epoch with status "pruned" (a sweep's pruner judged the run
        hopeless; ``message`` says why): final, not resumable, so no checkpoint is kept."""
        self._stop_as = ("pruned", message)
        self.stop_requested = True

    def rehearse(self) -> None:
        """A forward and a backward pass over the first batch (and the validation rows), nothing
        updated, nothing counted: every buffer a step needs, the BLAS library's included, is
        allocated now. The job calls it before the run directory exists, so memory that runs out
        (a MemoryError, or OpenBLAS ending the process) costs no partial run."""
        _, xb, yb = self.batches.at(0, None)
        with np.errstate(all="ignore"):
            self.model.forward(xb)
            self.model.loss(yb, self.loss)
            self.model.backward(xb, yb, self.loss, self.options.l2)
            if self.val is not None:
                evaluate(self.model, self.val, self.loss, self.task)

    # ------------------------------------------------------------------ one epoch
    def _begin_epoch(self) -> None:
        self._order = self.batches.order(self.rng, self.options.shuffle)
        self._loss_sum = 0.0
        self.score.reset()

    def _train_epoch(self):
        """The rest of the current epoch's batches; None, INTERRUPTED, or why it diverged (a str)."""
        model, batches, n = self.model, self.batches, self.batches.n
        # overflow on the way to divergence is detected here, not warned about
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while self._pos < n:
                rows, xb, yb = batches.at(self._pos, self._order)
                E = self._step(rows, xb, yb)
                if not math.isfinite(E):
                    return f"the training loss became {E} in epoch {self.epoch + 1}"
                self._pos += xb.shape[0]
                if self.stop_requested and self._pos < n:
                    return INTERRUPTED  # inside an epoch: its position is kept for the checkpoint
            finite = _all_finite(model.flat, self._zeros)  # (inside errstate: inf * 0 would warn)
        return None if finite else f"the weights became non-finite in epoch {self.epoch + 1}"

    def _step(self, rows, xb: np.ndarray, yb: np.ndarray) -> float:
        """One step of gradient descent on a batch; its loss E (nothing updated if E is not finite)."""
        A = self.model.forward(xb, self.rng)  # the rng draws dropout masks (none, and not used, without dropout)
        E = self.model.loss(yb, self.loss)
        if math.isfinite(E):
            self._loss_sum += E * xb.shape[0]
            self.score.add(A, rows)
            grads = self.model.backward(xb, yb, self.loss, self.options.l2)
            if self.options.clip_norm is not None:
                clip_grad_norm(grads, self.options.clip_norm)
            self.optimizer.step([grads])
        return E

    def _end_epoch(self) -> tuple[EpochRecord, Optional[str]]:
        """The epoch's record (with the validation numbers), and why it diverged, if it did."""
        self.epoch += 1
        self._pos = 0
        n = self.batches.n
        rec = EpochRecord(self.epoch, self._loss_sum / n, self.score.value(n))
        if self.val is not None:
            rec.val_loss, rec.val_metric = evaluate(self.model, self.val, self.loss.unweighted, self.task)  # as Keras
            if not np.isfinite(rec.val_loss):
                return rec, f"the validation loss became {rec.val_loss} in epoch {self.epoch}"
        rec.seconds = time.perf_counter() - self._start
        self.result.epochs_run = self.epoch
        self.result.history.append(rec)
        if self.schedule is not None:  # the next epoch's learning rate (plateau: from this epoch's loss)
            rec.lr = self.schedule.lr
            self.schedule.step(rec.loss if rec.val_loss is None else rec.val_loss)
            self.optimizer.lr = self.schedule.lr
        return rec, None

    def _early_stop(self, rec: EpochRecord) -> bool:
        """Keep the best weights so far; True once ``patience`` epochs brought no improvement
        of the monitored metric. Keras' EarlyStopping(restore_best_weights=True): the first
        epoch's weights are kept even if its value is not a number (NaN r2), and an epoch counts
        as better when its value beats the best by more than min_delta."""
        es = self.options.early_stopping
        if es is None:
            return False
        value = _monitored(rec, es.monitor)
        improved = es.improves(value, None if self._best is None else self._best[0])
        if improved or self._best is None:
            self._best = (value if improved else None, self.epoch, [p.copy() for _, p in self.model.params()])
        if improved:
            self._wait = 0
            return False
        self._wait += 1
        self.result.stopped_early = self._wait >= es.patience and self.epoch > 1  # (Keras: not after the first epoch)
        return self.result.stopped_early

    def _stop(self, status: str, message: str) -> None:
        self.result.status = status
        self.result.seconds = time.perf_counter() - self._start
        self.result.message = message

    def _diverged(self, snapshot: np.ndarray, why: str) -> None:
        if not np.isfinite(self.model.flat).all():
            np.copyto(self.model.flat, snapshot)
        self._stop("diverged", f"training diverged: {why}. The last finite weights were kept. {self.options.divergence_hint}")

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue exactly where training stands, as plain arrays.

        Weights, optimizer state, the generator's state, the epoch and the position inside
        it and early-stopping state. No pickles: the bookkeeping is a JSON string stored as a
        numpy str array. The history of the epochs trained is not in it (it would grow with
        every epoch): it is metrics.csv's, whose first ``epoch`` rows a resume reads back.
        """
        arrays = {f"param/{name}": p for name, p in self.model.params()}
        arrays.update({f"opt/{k}": v for k, v in self.optimizer.state().items()})
        if self._order is not None and self._pos > 0:
            arrays["order"] = self._order
        if self._best is not None:
            arrays.update({f"best/{name}": w for (name, _), w in zip(self.model.params(), self._best[2])})
        meta = {
            "epoch": self.epoch,
            "pos": self._pos,
            "totals": {"loss": self._loss_sum, "score": self.score.state()},
            "seconds": self.result.seconds,
            "rng": self.rng.bit_generator.state,
            "best": None if self._best is None else [self._best[0], self._best[1]],
            "wait": self._wait,
        }
        if self.schedule is not None:
            meta["schedule"] = {"name": self.schedule.name, **self.schedule.state()}
        arrays["meta"] = np.array(json.dumps(meta))
        return arrays

    def load_state(self, arrays, history: Optional[list] = None) -> None:
        """Continue from :meth:`state`'s arrays and the ``history`` of the epochs trained (one
        EpochRecord per epoch; a checkpoint written before nncli 0.2 carries its own);
        CheckpointError (a ValueError) naming the field that is malformed or inconsistent with
        this model, data and config (nothing is changed then)."""
        self.check_state(arrays)
        meta = json.loads(str(arrays["meta"]))
        if history is None:
            if "history" not in meta:
                _fail("'meta.history' is missing, and no metrics.csv history was given")
            history = [EpochRecord(*row) for row in meta["history"]]
        if len(history) != meta["epoch"]:
            _fail(f"the history has {len(history)} epochs, the checkpoint stands after epoch {meta['epoch']}")
        for name, p in self.model.params():
            np.copyto(p, arrays[f"param/{name}"])
        self.optimizer.load_state({k[4:]: arrays[k] for k in arrays if k.startswith("opt/")})
        self.rng.bit_generator.state = meta["rng"]
        self.epoch, self._pos, self._wait = int(meta["epoch"]), int(meta["pos"]), int(meta["wait"])
        self._order = np.asarray(arrays["order"]) if "order" in arrays else None
        if "totals" in meta:
            self._loss_sum = float(meta["totals"]["loss"])
            self.score.load_state(meta["totals"]["score"])
        elif meta.get("sums"):  # checkpoints written before nncli 0.2: [loss * n, hits, ss_res]
            loss_sum, hits, ss_res = meta["sums"]
            self._loss_sum = float(loss_sum)
            self.score.load_state(hits if self.task.is_classifier else ss_res)
        if meta["best"] is not None:
            weights = [np.array(arrays[f"best/{name}"]) for name, _ in self.model.params()]
            value = meta["best"][0]
            self._best = (None if value is None else float(value), int(meta["best"][1]), weights)
        if self.schedule is not None:
            self.schedule.load_state(meta["schedule"])
            self.optimizer.lr = self.schedule.lr
        self.result.seconds = float(meta["seconds"])
        self.result.history = list(history)
        self.result.epochs_run = self.epoch

    def check_state(self, arrays) -> None:
        """Raise CheckpointError unless ``arrays`` is a checkpoint this trainer can continue:
        every field of the right type, shape and range, every number finite, the row order a
        permutation of the training rows, and the position within the data and train.epochs."""
        _check_state(self, arrays)


class CheckpointError(ValueError):
    """A checkpoint field is malformed, or disagrees with the run's model, data or config."""


def _check_state(tr: "Trainer", arrays) -> None:
    """Every field of a checkpoint against the trainer it is loaded into (CheckpointError)."""
    meta = _check_meta(tr, arrays)
    for name, p in tr.model.params():
        _array(arrays, f"param/{name}", p)
    for k, v in tr.optimizer.state().items():
        _array(arrays, f"opt/{k}", v)
    if meta["best"] is not None:
        best = meta["best"]
        if not isinstance(best, list) or len(best) != 2:
            _fail("'meta.best' must be null or [val_loss, epoch]")
        es = tr.options.early_stopping
        if best[0] is not None or es is None or es.monitor in ("loss", "val_loss"):  # null: a first NaN metric
            _number("meta.best[0]", best[0])
        _whole("meta.best[1]", best[1], 1, meta["epoch"])
        for name, p in tr.model.params():
            _array(arrays, f"best/{name}", p)
    n = tr.batches.n
    if "order" in arrays:
        order = np.asarray(arrays["order"])
        if (order.shape != (n,) or order.dtype.kind not in "iu"
                or not np.array_equal(np.sort(order), np.arange(n, dtype=order.dtype))):
            _fail(f"'order' is not a permutation of the {n} training rows")
    elif meta["pos"] > 0 and tr.options.shuffle and not tr.batches.full:
        _fail(f"'order' is missing, but the checkpoint stands at row {meta['pos']} of a shuffled epoch")


def _check_meta(tr: "Trainer", arrays) -> dict:
    """The checkpoint's bookkeeping (epoch, position, generator, history, totals), checked."""
    if "meta" not in arrays:
        _fail("'meta' is missing")
    try:
        meta = json.loads(str(np.asarray(arrays["meta"])))
    except ValueError as e:
        _fail(f"'meta' is not JSON ({e})")
    if not isinstance(meta, dict):
        _fail("'meta' is not a JSON object")
    for key in ("epoch", "pos", "wait", "seconds", "rng", "best"):
        if key not in meta:
            _fail(f"'meta.{key}' is missing")
    n, epochs = tr.batches.n, tr.options.epochs
    _whole("meta.epoch", meta["epoch"], 0, epochs)
    _whole("meta.pos", meta["pos"], 0, n - 1 if meta["epoch"] < epochs else 0)  # a finished run stands at row 0
    _whole("meta.wait", meta["wait"], 0)
    _number("meta.seconds", meta["seconds"])
    if not isinstance(meta["rng"], dict) or meta["rng"].get("bit_generator") != tr.rng.bit_generator.state["bit_generator"]:
        _fail(f"'meta.rng' is not a {tr.rng.bit_generator.state['bit_generator']} generator state")
    history = meta.get("history", [])  # only in checkpoints written before nncli 0.2
    if "history" in meta and (not isinstance(history, list) or len(history) != meta["epoch"]):
        _fail(f"'meta.history' must list one row per epoch trained ({meta['epoch']})")
    for i, row in enumerate(history):
        if not isinstance(row, list) or len(row) != 6 or row[0] != i + 1:
            _fail(f"'meta.history' row {i + 1} is not [epoch {i + 1}, loss, metric, val_loss, val_metric, seconds]")
        for v in row[1:]:
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                _fail(f"'meta.history' row {i + 1} holds {json.dumps(v)[:40]}, not a number")
    _check_schedule(tr, meta)
    totals = meta.get("totals")
    if totals is not None:
        if not isinstance(totals, dict) or "loss" not in totals or "score" not in totals:
            _fail("'meta.totals' must be an object with 'loss' and 'score'")
        _number("meta.totals.loss", totals["loss"])
        score = totals["score"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (score if isinstance(score, list) else [score])):
            _fail("'meta.totals.score' is not a finite number (or a list of them)")
    return meta


def _check_schedule(tr: "Trainer", meta: dict) -> None:
    """'meta.schedule': present exactly when the run has a schedule, of that schedule, stepped once per epoch."""
    state = meta.get("schedule")
    if tr.schedule is None:
        if state is not None:
            _fail("'meta.schedule' is there, but this run's learning rate is constant (no train.schedule)")
        return
    if state is None:
        _fail(f"'meta.schedule' is missing, but this run has the schedule '{tr.schedule.name}'")
    try:
        tr.schedule.check_state(state)
    except ValueError as e:
        _fail(f"'meta.schedule' {e}")
    if state["epoch"] != meta["epoch"]:
        _fail(f"'meta.schedule.epoch' is {state['epoch']}, but the checkpoint stands after epoch {meta['epoch']}")


def _monitored(rec: EpochRecord, monitor: str) -> float:
    """The value early stopping watches in an epoch's record."""
    if monitor in ("loss", "val_loss"):
        value = getattr(rec, monitor)
    else:
        value = rec.val_metric if monitor.startswith("val_") else rec.metric
    return float("nan") if value is None else float(value)


def _fail(msg: str):
    raise CheckpointError(msg)


def _array(arrays, key: str, like) -> None:
    if key not in arrays:
        _fail(f"'{key}' is missing")
    a = np.asarray(arrays[key])
    if a.shape != np.shape(like) or a.dtype.kind not in "fiu":
        _fail(f"'{key}' has shape {a.shape} ({a.dtype}), the model needs {np.shape(like)}")
    if not np.isfinite(a).all():
        _fail(f"'{key}' holds NaN or infinite values")


def _whole(key: str, value, low: int, high=None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        _fail(f"'{key}' is {json.dumps(value)[:40]}, not a whole number from {low} to {high if high is not None else 'any'}")


def _number(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(f"'{key}' is {json.dumps(value)[:40]}, not a finite number")
