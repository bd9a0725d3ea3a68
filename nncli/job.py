"""One training job from a validated config to a complete run directory.

Everything that can be wrong with the config or the data is found in
:meth:`TrainingJob.__init__`, before the run directory exists, so bad input writes
nothing. Then :meth:`start` creates the run directory, :meth:`epochs` trains (yielding
records for a view), and :meth:`finish` writes the weights, the metrics and, last,
summary.json.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from . import runs
from .config import Config, dump_config
from .data import Dataset, load_dataset
from .errors import ConfigError
from .model import MLP, load_weights
from .train import EpochRecord, Trainer, evaluate


def resolve_sizes(cfg: Config, n_inputs: int, n_outputs: int, input_names=()) -> list[int]:
    """model.layers with 'auto' replaced; an explicit size that disagrees with the data is an error."""
    sizes = list(cfg.model.layers)
    if sizes[0] == "auto":
        sizes[0] = n_inputs
    elif sizes[0] != n_inputs:
        cols = f" ({', '.join(list(input_names)[:8])}{', ...' if len(input_names) > 8 else ''})" if input_names else ""
        raise ConfigError(
            f"model.layers[0]: the network has {sizes[0]} inputs but the data gives {n_inputs}{cols}; "
            f"use {n_inputs} or auto"
        )
    if sizes[-1] == "auto":
        sizes[-1] = n_outputs
    elif sizes[-1] != n_outputs:
        why = {"binary": "one unit, P(y = class 1), for loss bce", "multiclass": "one unit per class",
               "regression": "one unit per target column"}[cfg.task]
        raise ConfigError(
            f"model.layers[-1]: the network has {sizes[-1]} outputs but the data needs {n_outputs} "
            f"({why}); use {n_outputs} or auto"
        )
    return [int(s) for s in sizes]


def build_model(cfg: Config, sizes: list[int], rng: np.random.Generator) -> MLP:
    hidden, output, dtype = cfg.model.hidden_activations, cfg.output, cfg.train.dtype
    init = cfg.model.init
    if init.endswith(".npz"):
        W, b = load_weights(Path(init), sizes, what="initial weights (model.init)")
        return MLP([w.astype(dtype) for w in W], [x.astype(dtype) for x in b], hidden, output)
    return MLP.initialise(sizes, hidden, output, rng, init, dtype)


def prepare(cfg: Config) -> tuple[Dataset, MLP, np.random.Generator, Config]:
    """Data, a fresh seeded model and the generator, and the config with sizes resolved.

    The one generator is consumed in a fixed order: data splits, initial weights, shuffles.
    """
    rng = np.random.default_rng(cfg.seed)
    data = load_dataset(cfg, rng)
    sizes = resolve_sizes(cfg, data.prep.n_inputs, data.prep.n_outputs, data.prep.input_names)
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    try:
        model = build_model(cfg, sizes, rng)
    except (MemoryError, ValueError) as e:
        raise ConfigError(f"model.layers: {sizes} has {n_params:,} parameters, more than this machine can hold ({type(e).__name__})") from None
    resolved = cfg.model_copy(deep=True)
    resolved.model.layers = sizes
    resolved.model.output = cfg.output
    return data, model, rng, resolved


CHECKPOINT = "checkpoint.npz"


class TrainingJob:
    def __init__(self, cfg: Config, runs_dir: Path | str = "runs"):
        self.data, self.model, self.rng, self.cfg = prepare(cfg)
        self.runs_dir = Path(runs_dir)
        self.run_dir: Optional[Path] = None
        self.trainer = Trainer(self.cfg, self.model, self.data, self.rng)
        self.warnings = self.cfg.warnings() + list(self.data.notes)
        self.created = ""

    @classmethod
    def resume(cls, run_dir: Path | str) -> "TrainingJob":
        """The job of an interrupted (or killed) run, restored from its checkpoint.npz."""
        import json

        from .config import load_config
        from .errors import RunError

        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise RunError(f"{run_dir}: no such run directory")
        summary = {}
        if (run_dir / runs.SUMMARY).exists():
            try:
                summary = json.loads((run_dir / runs.SUMMARY).read_text(encoding="utf-8"))
            except ValueError:
                summary = {}
            if summary.get("status") == "completed":
                raise RunError(f"{run_dir}: this run already completed; nothing to resume")
        ckpt = run_dir / CHECKPOINT
        if not ckpt.exists():
            raise RunError(
                f"{run_dir}: no {CHECKPOINT} to resume from (runs are checkpointed when interrupted, "
                "and every train.checkpoint_every epochs)"
            )
        cfg = load_config(run_dir / "config.yaml")
        job = cls(cfg, run_dir.parent)
        try:
            with np.load(ckpt, allow_pickle=False) as z:
                job.trainer.load_state({k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise RunError(f"{ckpt}: unreadable checkpoint ({type(e).__name__}: {e})") from None
        job.run_dir = run_dir
        job.created = summary.get("created", "")
        return job

    @property
    def result(self):
        return self.trainer.result

    def start(self) -> Path:
        if self.run_dir is not None:  # resumed: the directory and its config exist
            if (self.run_dir / runs.SUMMARY).exists():
                (self.run_dir / runs.SUMMARY).unlink()  # incomplete again until finish()
            return self.run_dir
        self.run_dir = runs.create_run_dir(self.runs_dir, self.cfg.name)
        runs.atomic_write_text(self.run_dir / "config.yaml", dump_config(self.cfg))
        runs.write_json(self.run_dir / "preprocess.json", self.data.prep.to_json())
        self.created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return self.run_dir

    def epochs(self) -> Iterator[EpochRecord]:
        """The trainer's records; writes a checkpoint every train.checkpoint_every epochs."""
        every = self.cfg.train.checkpoint_every
        for rec in self.trainer.epochs():
            if every and rec.epoch % every == 0 and rec.epoch < self.cfg.train.epochs:
                self.write_checkpoint()
            yield rec

    def history_so_far(self) -> list[EpochRecord]:
        """Records of epochs trained before a resume (empty for a new run)."""
        return list(self.result.history)

    def write_checkpoint(self) -> None:
        runs.write_npz(self.run_dir / CHECKPOINT, self.trainer.state())
        header, rows = self.metrics_rows()
        runs.write_csv(self.run_dir / "metrics.csv", header, rows)

    def _draw(self) -> None:
        """loss.png and decision_boundary.png, from the run in memory (nothing is re-read)."""
        try:  # a picture must never cost the run
            from . import plots

            plots.render(plots.run_spec(self.run_dir, self.cfg.name, self._loss_history(), self.model,
                                        self.data.prep, *self._raw_training_points()))
        except Exception as e:
            self.warnings.append(f"could not draw the pictures: {type(e).__name__}: {e}")

    def _loss_history(self):
        h = self.result.history
        val = [r.val_loss for r in h] if self.data.val is not None else None
        return [r.epoch for r in h], [r.loss for r in h], val

    def _raw_training_points(self):
        """(X in the data's own units, class codes) of the training split, for the boundary
        picture; (None, None) where there is none to draw."""
        from .plots import can_draw_boundary

        prep, tr = self.data.prep, self.data.train
        if not can_draw_boundary(prep):
            return None, None
        X = tr.X.astype(np.float64) * prep.x_std + prep.x_mean  # undo the standardisation
        codes = (tr.Y[:, 0] >= 0.5).astype(np.int64) if prep.task == "binary" else tr.Y.argmax(axis=1)
        return X, codes

    def metric_name(self) -> str:
        return "r2" if self.cfg.task == "regression" else "accuracy"

    def metrics_rows(self):
        has_val = self.data.val is not None
        m = self.metric_name()
        header = ["epoch", "loss", m] + (["val_loss", f"val_{m}"] if has_val else [])
        rows = []
        for r in self.result.history:
            row = [r.epoch, repr(float(r.loss)), repr(float(r.metric))]
            if has_val:
                row += [repr(float(r.val_loss)), repr(float(r.val_metric))]
            rows.append(row)
        return header, rows

    def finish(self, plots: bool = True) -> dict:
        """Write model.npz, metrics.csv, the pictures and, last, summary.json; return the summary."""
        assert self.run_dir is not None, "start() first"
        res = self.result
        if res.status == "interrupted":
            self.write_checkpoint()
        arrays = dict(self.model.arrays())
        arrays.update(self.data.prep.arrays())
        runs.write_npz(self.run_dir / "model.npz", arrays)
        header, rows = self.metrics_rows()
        runs.write_csv(self.run_dir / "metrics.csv", header, rows)
        if plots and res.epochs_run > 0:
            self._draw()
        m = self.metric_name()
        summary = {
            "status": res.status,
            "run_id": self.run_dir.name,
            "name": self.cfg.name,
            "created": self.created,
            "epochs_run": res.epochs_run,
            "epochs": self.cfg.train.epochs,
            "train_seconds": round(res.seconds, 6),
            "seed": self.cfg.seed,
            "task": self.cfg.task,
        }
        if res.message:
            summary["message"] = res.message
        if res.best_epoch is not None:
            summary["best_epoch"] = res.best_epoch
            summary["stopped_early"] = res.stopped_early
        loss, metric = evaluate(self.model, self.data.train, self.cfg.loss, self.cfg.task)
        summary["metrics"] = {"loss": loss, m: metric, "rows": self.data.train.n}
        if self.data.val is not None:
            vl, vm = evaluate(self.model, self.data.val, self.cfg.loss, self.cfg.task)
            summary["val_metrics"] = {"loss": vl, m: vm, "rows": self.data.val.n}
        summary["versions"] = runs.versions()
        runs.write_summary(self.run_dir, summary)
        if res.status == "completed":
            (self.run_dir / CHECKPOINT).unlink(missing_ok=True)
        return summary
