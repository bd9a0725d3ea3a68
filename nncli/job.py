"""One training job, from a validated config to a complete run directory.

config -> data (read, split, preprocess) -> model -> fit -> run directory. Everything that
can be wrong with the config or the data is found in :class:`TrainingJob` ``__init__``,
before the run directory exists, so bad input writes nothing. Then :meth:`TrainingJob.start`
creates the run directory, :meth:`TrainingJob.epochs` trains (yielding records for a view),
and :meth:`TrainingJob.finish` writes the weights, the pictures and, last, summary.json.

metrics.csv grows by appending as epochs complete; a checkpoint (on an interruption, or
every train.checkpoint_every epochs) records its length, so a checkpoint's size does not
grow with the epochs. A file that cannot be written (a full disk, a read-only file
system) or memory that runs out leaves the run at its last checkpoint, or, with none, no
run directory at all (:meth:`TrainingJob.guarded`).
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from .config import Config
from .data import Dataset, data_files, load_dataset
from .errors import ConfigError, RunError
from .losses import LOSSES
from .memory import check_training_memory
from .model import MLP, load_weights
from .optim import OPTIMIZERS, Optimizer
from .runs import CHECKPOINT, LOCK, RunDir, model_config_digest, versions
from .trainer import CheckpointError, EpochRecord, FitOptions, Trainer, evaluate


def resolve_sizes(cfg: Config, n_inputs: int, n_outputs: int, input_names=()) -> list[int]:
    """model.layers with 'auto' replaced; an explicit size that disagrees with the data is an error."""
    sizes = list(cfg.model.layers)
    if sizes[0] == "auto":
        sizes[0] = n_inputs
    elif sizes[0] != n_inputs:
        cols = f" ({', '.join(list(input_names)[:8])}{', ...' if len(input_names) > 8 else ''})" if input_names else ""
        raise ConfigError(f"model.layers[0]: the network has {sizes[0]} inputs but the data gives {n_inputs}{cols}; "
                          f"use {n_inputs} or auto")
    if sizes[-1] == "auto":
        sizes[-1] = n_outputs
    elif sizes[-1] != n_outputs:
        raise ConfigError(f"model.layers[-1]: the network has {sizes[-1]} outputs but the data needs {n_outputs} "
                          f"({cfg.task.units}); use {n_outputs} or auto")
    return [int(s) for s in sizes]


def build_model(cfg: Config, sizes: list[int], rng: np.random.Generator) -> MLP:
    """The seeded initial network, or the weights of a model.init .npz file."""
    hidden, output, dtype = cfg.model.hidden_activations, cfg.output, cfg.train.dtype
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    try:
        if cfg.model.init.endswith(".npz"):
            W, b = load_weights(Path(cfg.model.init), sizes, what="initial weights (model.init)")
            return MLP([w.astype(dtype) for w in W], [x.astype(dtype) for x in b], hidden, output)
        return MLP.initialise(sizes, hidden, output, rng, cfg.model.init, dtype)
    except (MemoryError, ValueError) as e:
        raise ConfigError(f"model.layers: {sizes} has {n_params:,} parameters, more than this machine can hold ({type(e).__name__})") from None


def build_optimizer(cfg: Config, model: MLP) -> Optimizer:
    """train.optimizer over the model's one flat parameter array, with its own hyperparameters."""
    cls = OPTIMIZERS[cfg.train.optimizer]
    return cls([model.flat], cfg.train.lr, **{k: getattr(cfg.train, k) for k in cls.hyperparameters})


def prepare(cfg: Config) -> tuple[Dataset, MLP, np.random.Generator, Config]:
    """Data, a fresh seeded model and the generator, and the config with sizes resolved.

    The one generator is consumed in a fixed order: data splits, initial weights, shuffles.
    """
    rng = np.random.default_rng(cfg.seed)
    data = load_dataset(cfg, rng)
    sizes = resolve_sizes(cfg, data.prep.n_inputs, data.prep.n_outputs, data.prep.input_names)
    check_training_memory(cfg, sizes, data)  # all training will allocate, the model included, before any of it is
    model = build_model(cfg, sizes, rng)
    model.set_dropout(cfg.model.dropout_rates)  # masks drawn in training only (Trainer._step), from rng
    resolved = cfg.model_copy(deep=True)
    resolved.model.layers = sizes
    resolved.model.output = cfg.output
    return data, model, rng, resolved


#: how divergence_hint names what to try (nncli.sklearn names them as its parameters)
HINTS = {"lr": "a lower learning rate (train.lr)", "standardize": "standardised inputs (data.standardize: true)",
         "standardize_target": "standardised targets (data.standardize_target: true)"}


def divergence_hint(cfg: Config, names: dict = HINTS) -> str:
    """What to try after a divergence: a lower learning rate, and the scalings that are off
    (never one that is already on)."""
    from .preprocess import target_scaling_can_apply

    tries = [names["lr"]]
    if not cfg.data.standardize:
        tries.append(names["standardize"])
    if target_scaling_can_apply(cfg) and not cfg.data.standardize_target:
        tries.append(names["standardize_target"])
    return "Try " + " or ".join(tries)


class TrainingJob:
    def __init__(self, cfg: Config, runs_dir: Path | str = "runs"):
        self.data, self.model, self.rng, self.cfg = prepare(cfg)
        self.runs_dir = Path(runs_dir)
        self.run: Optional[RunDir] = None
        self.loss = LOSSES[self.cfg.loss]
        self.trainer = Trainer(self.model, self.loss.weighted(self.data.prep.class_weight), build_optimizer(self.cfg, self.model), self.cfg.task,
                               self.data.train, self.data.val, self.rng,
                               replace(FitOptions.from_config(self.cfg.train), divergence_hint=divergence_hint(self.cfg)))
        self.warnings = self.cfg.warnings() + list(self.data.notes)
        self.data_files = data_files(self.cfg)  # fingerprints of what was read, saved with the run
        self.created = ""
        self.resumed = False
        self._metrics_size: Optional[int] = None  # bytes of metrics.csv written (None: not started)
        self._logged = 0  # epochs of the history in metrics.csv
        self._flushed = 0.0  # when metrics.csv was last appended to
        self._checkpoint_epoch: Optional[int] = None  # the epoch of the checkpoint on disk, if any
        self.snapshots = None  # train.snapshots: nncli.animate.Snapshots, made when training starts

    @classmethod
    def resume(cls, run_dir: Path | str) -> "TrainingJob":
        """The job of an interrupted (or killed) run, restored from its checkpoint."""
        rd = RunDir(run_dir)
        if not rd.path.is_dir():
            raise RunError(f"{rd.path}: no such run directory")
        _refuse_completed(rd)
        rd.acquire()  # held until finish(): a second resume of this run is refused, naming this PID
        try:
            return cls._restore(rd)
        except BaseException:
            rd.release()
            raise

    @classmethod
    def _restore(cls, rd: RunDir) -> "TrainingJob":
        """resume(), with the run's lock held."""
        summary = _refuse_completed(rd)  # again: it may have completed while this process waited
        state = rd.read_checkpoint()
        job = cls(_as_trained(rd.read_config(), rd), rd.path.parent)
        changed = rd.data_changes(job.data_files)
        if changed:  # the rest of the run would train on other data: no bit-identical resume
            raise RunError(f"cannot resume: {changed[0]}; put the original file back")
        try:
            job.trainer.check_state(state)
            epoch = json.loads(str(state["meta"]))["epoch"]
            size = _metrics_bytes(state)
            history = None if size is None else rd.read_history(size, epoch, job.data.val is not None)
            job.trainer.load_state(state, history)
        except CheckpointError as e:
            raise RunError(f"{rd / CHECKPOINT}: {e}; the checkpoint is damaged or not of this run, so it cannot be resumed") from None
        except (ValueError, KeyError, TypeError) as e:
            raise RunError(f"{rd / CHECKPOINT}: unreadable checkpoint ({type(e).__name__}: {e})") from None
        job.run, job.resumed = rd, True
        job.created = summary.get("created", "")
        job._metrics_size, job._checkpoint_epoch = size, epoch
        return job

    @property
    def run_dir(self) -> Optional[Path]:
        return None if self.run is None else self.run.path

    @property
    def result(self):
        return self.trainer.result

    def metric_name(self) -> str:
        return self.cfg.task.metric

    def start(self) -> Path:
        """Create the run directory and write what is known before training; resumed: mark it
        incomplete and cut metrics.csv back to the checkpoint's epochs. Raises OSError if a
        file cannot be written (call it inside :meth:`guarded`)."""
        metric, has_val = self.metric_name(), self.data.val is not None
        self.trainer.rehearse()  # every buffer allocated now, before anything is written
        if self.run is not None:  # resumed: the directory and its config exist
            self.run.clear_summary()
            if self._metrics_size is None:  # a checkpoint of nncli < 0.2 carries the history itself
                self._metrics_size = self.run.start_metrics(metric, has_val, self.result.history)
            else:  # rows appended after the checkpoint (then SIGKILL, or a failed save) go
                self.run.cut_metrics(self._metrics_size)
            self._logged = len(self.result.history)
            return self.run.path
        self.run = _created_locked(self.runs_dir, self.cfg.name)
        self.run.write_config(self.cfg)
        self.run.write_preprocess(self.data.prep)
        self.run.write_splits(self.data.rows, self.data.n_rows)
        self.run.write_data_files(self.data_files)
        self._metrics_size = self.run.start_metrics(metric, has_val, lr=self.trainer.schedule is not None)  # lr: per epoch
        self.created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return self.run.path

    def epochs(self) -> Iterator[EpochRecord]:
        """The trainer's records; appends them to metrics.csv (about once a second, so that a
        listing sees the progress) and writes a checkpoint every train.checkpoint_every epochs."""
        every = self.cfg.train.checkpoint_every
        shots = self._snapshots()
        for rec in self.trainer.epochs():
            if shots is not None:  # train.snapshots: a copy of the parameters, for training.gif
                shots.take(rec.epoch, rec.loss, self.model.flat)
            if every and rec.epoch % every == 0 and rec.epoch < self.cfg.train.epochs:
                self.write_checkpoint()
            elif self.run is not None and time.monotonic() - self._flushed > METRICS_FLUSH_SECONDS:
                self._log_metrics()  # (a job driven without start(), as the benchmarks do, writes nothing)
            yield rec

    def _snapshots(self):
        """The recorder of training.gif (nncli.animate.Snapshots; None without train.snapshots)."""
        if not self.cfg.train.snapshots:
            return None
        from .animate import Snapshots

        self.snapshots = Snapshots(self.cfg.train.snapshots, self.cfg.train.epochs)
        self.snapshots.start(self.trainer.epoch, self.result.history, self.model.flat)  # resumed: from here on
        return self.snapshots

    def history_so_far(self) -> list[EpochRecord]:
        """Records of epochs trained before a resume (empty for a new run)."""
        return list(self.result.history)

    def write_checkpoint(self) -> None:
        """checkpoint.npz of where training stands, after the epochs so far are in metrics.csv
        (synced: the checkpoint records how many bytes of it are its history)."""
        self._log_metrics(sync=True)
        state = self.trainer.state()
        state["metrics_bytes"] = np.int64(self._metrics_size)
        self.run.write_checkpoint(state)
        self._checkpoint_epoch = self.trainer.epoch

    def _log_metrics(self, sync: bool = False) -> None:
        """Append the epochs not yet in metrics.csv."""
        history = self.result.history
        self._metrics_size = self.run.append_metrics(history[self._logged:], self.metric_name(),
                                                     self.data.val is not None, sync=sync)
        self._logged = len(history)
        self._flushed = time.monotonic()

    def finish(self, plots: bool = True) -> dict:
        """Write the last epochs, model.npz, the pictures and, last, summary.json; return the
        summary. Raises OSError if a file cannot be written (call it inside :meth:`guarded`)."""
        assert self.run is not None, "start() first"
        res = self.result
        try:
            if res.status == "interrupted":
                self.write_checkpoint()
            else:
                self._log_metrics(sync=True)
            self.run.write_model(self.model, self.data.prep)
            if plots and res.epochs_run > 0:
                self._draw()
            summary = self._summary()
            self.run.write_summary(summary)
            if res.status in ("completed", "pruned"):  # final: a periodic checkpoint has no use left
                try:
                    self.run.remove_checkpoint()
                except OSError as e:  # the run is complete all the same; a later resume refuses it
                    self.warnings.append(f"could not remove {self.run / CHECKPOINT}: {e.strerror}")
        finally:  # a failed write must not leave the run locked for the rest of a library caller's process
            self.release()
        return summary

    def train(self, plots: bool = True, on_epoch: Optional[Callable[[EpochRecord], None]] = None) -> dict:
        """The whole job, silently: start(), every epoch, finish(), inside :meth:`guarded`; the
        summary. ``on_epoch(rec)`` sees each epoch's record as it completes (a view, a sweep's
        pruner, which may call ``self.trainer.prune``)."""
        with self.guarded():
            self.start()
            for rec in self.epochs():
                if on_epoch is not None:
                    on_epoch(rec)
            return self.finish(plots=plots)

    @contextmanager
    def guarded(self):
        """``with job.guarded():`` around start(), the epochs and finish(): a file that cannot be
        written (OSError) or memory that runs out (MemoryError) becomes one RunError (exit 2) saying
        what was kept (:meth:`failed`)."""
        try:
            yield self
        except (OSError, MemoryError) as e:
            raise self.failed(e) from None

    def failed(self, e: BaseException) -> RunError:
        """The error of a job stopped by ``e``, after tidying up: the run is kept at its last
        checkpoint if it has one (written atomically, so intact); a new run without one is
        removed, so that no partial run directory is left; a resumed run is left as it was."""
        if isinstance(e, MemoryError):
            cause = (f"out of memory while training {self.cfg.name} ({'-'.join(map(str, self.cfg.model.layers))}, "
                     f"batch size {self.cfg.train.batch_size}); use a smaller model.layers or train.batch_size")
        else:
            where = getattr(e, "filename", None) or (self.run.path if self.run is not None else self.runs_dir)
            cause = f"{where}: cannot write ({getattr(e, 'strerror', None) or e})"
        run = self.run
        self.release()
        if run is None:
            return RunError(cause)
        if self._checkpoint_epoch is not None and run.exists(CHECKPOINT):
            return RunError(f"{cause}; the run is kept at its checkpoint after epoch {self._checkpoint_epoch}: "
                            f"make room, then continue it with: nncli train --resume {run.path}")
        if self.resumed:
            return RunError(f"{cause}; {run.path} is left as it was")
        shutil.rmtree(run.path, ignore_errors=True)
        return RunError(f"{cause}; nothing could be saved, so the new run directory {run.path} was removed")

    def release(self) -> None:
        """Let other processes resume the run (finish() does; the process's end does too)."""
        if self.run is not None:
            self.run.release()

    def _summary(self) -> dict:
        res, cfg, m = self.result, self.cfg, self.metric_name()
        summary = {"status": res.status, "run_id": self.run.path.name, "name": cfg.name, "created": self.created,
                   "epochs_run": res.epochs_run, "epochs": cfg.train.epochs, "train_seconds": round(res.seconds, 6),
                   "seed": cfg.seed, "task": cfg.task.name}
        if self.data.prep.loss_units:  # regression: the training loss below is on z-scored targets, or not
            summary["loss_units"] = self.data.prep.loss_units
        if res.message:
            summary["message"] = res.message
        if res.best_epoch is not None:
            summary["best_epoch"] = res.best_epoch
            summary["monitor"] = res.monitor  # the metric early stopping watched
            summary["stopped_early"] = res.stopped_early
        for key, split in (("metrics", self.data.train), ("val_metrics", self.data.val)):
            if split is not None:
                loss, metric = evaluate(self.model, split, self.loss, cfg.task)
                summary[key] = {"loss": loss, m: metric, "rows": split.n}
        if self.data.dropped_rows:  # rows without a target, or with a missing cell under data.missing: drop
            summary["dropped_rows"] = dict(self.data.dropped_rows)
        summary["warnings"] = list(self.warnings)  # the data's notes (near-unique columns, dropped rows, ...) and the config's
        summary["versions"] = versions()
        summary["files"] = self.run.digests()  # load_run checks them: a changed model.npz is refused, not used
        summary["model_config"] = model_config_digest(self.cfg)  # and the settings of config.yaml the network depends on
        return summary

    def _draw(self) -> None:
        """loss.png, decision_boundary.png and fit.png, from the run in memory (nothing is re-read)."""
        try:  # a picture must never cost the run
            from . import plots

            prep, tr = self.data.prep, self.data.train
            h = self.result.history
            history = ([r.epoch for r in h], [r.loss for r in h], [r.val_loss for r in h] if self.data.val is not None else None,
                       [r.lr for r in h] if h and h[0].lr is not None else None)  # lr: under a train.schedule
            points = (prep.unscale(tr.X), prep.task.true_codes(tr.Y)) if plots.can_draw_boundary(prep) else (None, None)
            te, res = self.data.test, self.result
            test = (prep.unscale(te.X), prep.task.true_codes(te.Y)) if te is not None and points[0] is not None else None
            fit = None if prep.task.is_classifier else {  # fit.png: true targets in their own units
                k: (s.X, prep.unscale_targets(s.Y)) for k, s in (("train", tr), ("test", te)) if s is not None}
            best = {"epoch": res.best_epoch, "stopped_early": res.stopped_early, "monitor": res.monitor}
            plots.render(plots.run_spec(self.run.path, self.cfg.name, history, self.model, prep, *points, test=test,
                                        best=best if res.best_epoch is not None else None, fit=fit))
        except Exception as e:
            self.warnings.append(f"could not draw the pictures: {type(e).__name__}: {e}")
        if self.snapshots is not None:
            self._animate()

    def _animate(self) -> None:
        """training.gif from the snapshots (nncli.animate); a failure is a warning, never the run's."""
        try:
            from . import animate

            prep, tr = self.data.prep, self.data.train
            self.snapshots.close(self.result, self.result.history, self.model.flat)
            y = prep.task.true_codes(tr.Y) if prep.task.is_classifier else prep.unscale_targets(tr.Y)[:, 0]
            self.warnings += animate.write_gif(self.run.path, self.cfg.name, self.snapshots, self.model, prep,
                                               prep.unscale(tr.X), y)
        except Exception as e:
            self.warnings.append(f"could not draw training.gif: {type(e).__name__}: {e}")


METRICS_FLUSH_SECONDS = 1.0  # how often the epochs trained are appended to metrics.csv (and at checkpoints)


def _metrics_bytes(state) -> Optional[int]:
    """The bytes of metrics.csv a checkpoint's history is (None: a checkpoint of nncli < 0.2, history inside)."""
    if "metrics_bytes" not in state:
        return None
    size = np.asarray(state["metrics_bytes"])
    if size.shape != () or size.dtype.kind not in "iu" or int(size) < 0:
        raise CheckpointError("'metrics_bytes' is not a whole number of bytes")
    return int(size)


def _as_trained(cfg: Config, rd: RunDir) -> Config:
    """The config a run was trained with: one saved before data.standardize_target existed
    (its config.yaml lacks the key) trained on unscaled targets, and resumes so."""
    try:
        saved = rd.read_config_raw().get("data") or {}
    except ValueError:
        return cfg
    if isinstance(saved, dict) and "standardize_target" not in saved:
        cfg = cfg.model_copy(deep=True)
        cfg.data.standardize_target = False
    return cfg


def _created_locked(runs_dir: Path, name: str) -> RunDir:
    """A new run directory, locked from (almost) the moment it exists; removed again if it cannot be."""
    rd = RunDir.create(runs_dir, name)
    try:
        rd.acquire()
    except BaseException:
        try:
            (rd / LOCK).unlink(missing_ok=True)
            rd.path.rmdir()
        except OSError:
            pass
        raise
    return rd


def _refuse_completed(rd: RunDir) -> dict:
    """The run's summary (empty if none); RunError if it says the run completed."""
    summary = _summary_or_empty(rd)
    if summary.get("status") == "completed":
        raise RunError(f"{rd.path}: this run already completed; nothing to resume")
    if summary.get("status") == "pruned":
        raise RunError(f"{rd.path}: this run was pruned by its sweep ({summary.get('message', '')}); a pruned run is final")
    return summary


def _summary_or_empty(rd: RunDir) -> dict:
    try:
        return rd.read_summary() or {}
    except RunError:
        return {}
