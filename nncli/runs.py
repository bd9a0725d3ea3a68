"""The run directory, both ways: every file of a run is written and read back here.

runs/<YYYYmmdd-HHMMSS>-<name>-<4 hex>/
  config.yaml      the resolved config, every default filled in (train it again to reproduce)
  preprocess.json  the feature layout: columns, categories, targets, task, labels
  splits.npz       row indices of data.train in each split (train, val, test) and the row count
  metrics.csv      one row per epoch
  model.npz        W1..WL (n_out, n_in), b1..bL, x_mean/x_std, classes; no pickles
  checkpoint.npz   while a run is interrupted: everything needed to resume it bit for bit
  summary.json     written last: a run without it is incomplete
  eval*.json, *.png  reports and pictures of later commands
  .lock            the advisory lock (flock) held while a process trains or resumes the run;
                   it holds that process's PID while it is held

Every file is written atomically (:func:`nncli.csvio.atomic_file`), so a crash in the
middle of a save leaves the previous version intact. Other modules never build these
paths or parse these files themselves: they ask a :class:`RunDir`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .csvio import atomic_write_text, fingerprint, write_json, write_npz
from .errors import ConfigError, RunError
from .runlock import LOCK, LOCK_WAIT, RunLock  # noqa: F401 (LOCK, LOCK_WAIT: part of this module's API)
from .npzfile import read_npz

CONFIG, PREPROCESS, SPLITS, METRICS = "config.yaml", "preprocess.json", "splits.npz", "metrics.csv"
MODEL, CHECKPOINT, SUMMARY = "model.npz", "checkpoint.npz", "summary.json"
SPLIT_NAMES = ("train", "val", "test")
DATA_FILES = "data_files.json"
SWEEP_FILE = "sweep.yaml"  # marks a sweep directory (its runs inside) among the run directories
SEALED = (PREPROCESS, SPLITS, MODEL)  # a complete run's summary.json records their SHA-256 ('files')

def create_run_dir(runs_dir: Path | str, name: str) -> Path:
    """A new, empty runs_dir/<YYYYmmdd-HHMMSS>-<name>-<4 hex> directory, never shared.

    ``os.mkdir`` is atomic, so processes started at the same second with the same name
    each get their own directory.
    """
    runs_dir = Path(runs_dir)
    if not name or any(c in name for c in "/\\\n\r\0") or name.startswith(".") or os.sep in name:
        raise RunError(f"run name {name!r} is not allowed: use letters, digits, '.', '_' and '-'")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create runs directory {runs_dir}: {e.strerror}") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = runs_dir / f"{stamp}-{name}-{secrets.token_hex(2)}"
        if path.resolve().parent != runs_dir.resolve():
            raise RunError(f"run name {name!r} would write outside {runs_dir}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise RunError(f"cannot create run directory in {runs_dir}: {e.strerror}") from None
    raise RunError(f"could not find a free run directory name in {runs_dir}")


def versions() -> dict:
    import platform

    from . import __version__

    return {"nncli": __version__, "numpy": np.__version__, "python": platform.python_version()}


class RunDir(RunLock):
    """One run directory: a write method and a read method for each of its files."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = None  # the open .lock file while this object holds the run's lock

    @classmethod
    def create(cls, runs_dir: Path | str, name: str) -> "RunDir":
        return cls(create_run_dir(runs_dir, name))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    # -------------------------------------------------------------- config.yaml
    def write_config(self, cfg) -> None:
        from .config import dump_config

        atomic_write_text(self / CONFIG, dump_config(cfg))

    def read_config_raw(self) -> dict:
        """config.yaml as a plain mapping, unvalidated (for listings); ValueError if unreadable."""
        from .config import read_yaml

        if not self.exists(CONFIG):
            raise ValueError("no config.yaml (not a run directory)")
        try:
            raw = read_yaml(self / CONFIG)
        except ConfigError as e:
            raise ValueError(f"config.yaml unreadable ({e})") from None
        if not isinstance(raw, dict):
            raise ValueError("config.yaml is not a mapping")
        return raw

    def read_config(self):
        """The validated Config; RunError if it is missing or invalid."""
        from .config import config_from_dict, read_yaml

        try:
            cfg = config_from_dict(read_yaml(self / CONFIG), str(self / CONFIG))
        except ConfigError as e:
            raise RunError(str(e)) from None
        if cfg.loss is None:  # nncli writes a run's config resolved: an omitted loss was inferred and written
            raise RunError(f"{self / CONFIG}: no 'loss'; a run's config.yaml names the loss it trained with: "
                           "restore the file, or train again")
        return cfg

    # -------------------------------------------------------------- preprocess.json + model.npz
    def write_preprocess(self, prep) -> None:
        write_json(self / PREPROCESS, prep.to_json())

    def write_model(self, model, prep) -> None:
        write_npz(self / MODEL, {**model.arrays(), **prep.arrays()})

    def read_model(self, cfg):
        """(Preprocessor, MLP) saved with the run, checked against each other and ``cfg``."""
        from .model import MLP, load_weights
        from .preprocess import Preprocessor, SavedArrayError, SavedLayoutError

        meta = self._read_json(PREPROCESS, required=True)
        sizes = cfg.model.layers
        if any(s == "auto" for s in sizes):
            raise RunError(f"{self / CONFIG}: model.layers still says 'auto'; not a saved run config")
        try:
            W, b = load_weights(self / MODEL, sizes, what="model")
            with read_npz(self / MODEL) as z:  # nncli.npzfile: headers checked before allocation, no pickles
                arrays = {k: z[k] for k in ("x_mean", "x_std", "classes", "y_mean", "y_std") if k in z.files}
            prep = Preprocessor.from_json(meta, arrays)
        except ConfigError as e:
            raise RunError(without_pickle_advice(str(e))) from None
        except SavedLayoutError as e:
            raise RunError(f"{self / PREPROCESS}: {e}; restore the file, or train again") from None
        except SavedArrayError as e:
            raise RunError(f"{self / MODEL}: {e}; restore the file, or train again") from None
        except (KeyError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise RunError(without_pickle_advice(f"{self / MODEL}: does not match {PREPROCESS} ({e})")) from None
        if prep.task.name != cfg.task.name:
            raise RunError(f"{self / PREPROCESS}: 'task' is {prep.task.name}, but {CONFIG} (loss {cfg.loss}) trains a "
                           f"{cfg.task.name} model; the files are not of one run")
        if prep.n_inputs != sizes[0] or prep.n_outputs != sizes[-1]:
            raise RunError(f"{self.path}: model sizes {sizes} do not match the saved preprocessing")
        dtype = cfg.train.dtype
        model = MLP([w.astype(dtype) for w in W], [x.astype(dtype) for x in b], cfg.model.hidden_activations, cfg.output)
        return prep, model

    # -------------------------------------------------------------- splits.npz
    def write_splits(self, rows: dict[str, np.ndarray], n_rows: int) -> None:
        write_npz(self / SPLITS, {**{k: np.asarray(v, np.int64) for k, v in rows.items()}, "n_rows": np.int64(n_rows)})

    def read_splits(self) -> Optional[dict[str, Any]]:
        """{"train": rows, "val": rows, "test": rows (those there are), "n_rows": n}, or None
        for a run saved before split indices were kept."""
        if not self.exists(SPLITS):
            return None
        try:
            with read_npz(self / SPLITS) as z:  # nncli.npzfile: headers checked before allocation, no pickles
                out = {k: np.asarray(z[k]) for k in SPLIT_NAMES if k in z.files}
                out["n_rows"] = int(z["n_rows"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise RunError(without_pickle_advice(f"{self / SPLITS}: unreadable ({type(e).__name__}: {e})")) from None
        for k in SPLIT_NAMES:
            v = out.get(k)
            if v is not None and (v.ndim != 1 or v.dtype.kind not in "iu" or (len(v) and (v.min() < 0 or v.max() >= out["n_rows"]))):
                raise RunError(f"{self / SPLITS}: '{k}' is not a list of row numbers below {out['n_rows']}")
        return out

    # -------------------------------------------------------------- data_files.json
    def write_data_files(self, files: dict[str, dict]) -> None:
        """The fingerprint of each data file the run read: {"data.train": {"path", "size", "sha256"}, ...}."""
        write_json(self / DATA_FILES, files)

    def read_data_files(self) -> Optional[dict]:
        """The saved fingerprints, or None for a run saved before they were kept; RunError if malformed."""
        saved = self._read_json(DATA_FILES, required=False)
        if saved is None and not self.exists(DATA_FILES):
            return None
        if not isinstance(saved, dict) or not all(isinstance(v, dict) for v in saved.values()):
            raise RunError(f"{self / DATA_FILES}: must be a JSON object of {{file key: {{path, size, sha256}}}}; "
                           "restore the file, or delete it to skip the check that the data is unchanged")
        return saved

    def data_changes(self, current: dict[str, dict]) -> list[str]:
        """One line per data file whose fingerprint differs from the one saved with the run
        (a run without saved fingerprints has none)."""
        saved = self.read_data_files() or {}
        out = []
        for key, now in current.items():
            then = saved.get(key)
            if isinstance(then, dict) and (then.get("size"), then.get("sha256")) != (now["size"], now["sha256"]):
                out.append(f"{key} {now['path']} is not the file run {self.path.name} was trained on "
                           f"({then.get('size')} bytes then, {now['size']} now; the SHA-256 differs)")
        return out

    # -------------------------------------------------------------- metrics.csv
    # Appended, never rewritten: start_metrics writes the header, append_metrics adds the rows
    # of new epochs. A checkpoint records the file's length when it was written
    # (:meth:`append_metrics` with sync), and a resume cuts the file back to that length.
    def start_metrics(self, metric: str, has_val: bool, history=(), lr: bool = False) -> int:
        """metrics.csv with its header (and the rows of ``history``), atomically; its size in bytes.
        ``lr``: with the column of the learning rate (a run with a train.schedule)."""
        text = metrics_text(metric, has_val, history, header=True, lr=lr)
        atomic_write_text(self / METRICS, text)
        return len(text.encode("utf-8"))

    def append_metrics(self, history, metric: str, has_val: bool, sync: bool = False) -> int:
        """Add the rows of ``history`` (whole lines, one write); fsynced if ``sync``. The file's size in bytes."""
        try:
            with open(self / METRICS, "ab") as fh:
                if history:
                    fh.write(metrics_text(metric, has_val, history).encode("utf-8"))
                    fh.flush()
                if sync:
                    os.fsync(fh.fileno())
                return fh.tell()
        except OSError as e:
            e.filename = e.filename or str(self / METRICS)
            raise

    def cut_metrics(self, size: int) -> None:
        """Drop what was appended after the first ``size`` bytes (epochs after a checkpoint)."""
        os.truncate(self / METRICS, size)

    def read_history(self, size: int, epochs: int, has_val: bool) -> list:
        """The EpochRecords in the first ``size`` bytes of metrics.csv, which must be epochs 1..``epochs``
        (what a checkpoint recorded); RunError otherwise. Their times are not kept: seconds None."""
        from .trainer import EpochRecord

        path = self / METRICS
        try:
            with open(path, "rb") as fh:
                data = fh.read(size)
        except FileNotFoundError:
            raise RunError(f"{self.path}: {METRICS} is missing; the checkpoint needs its first {epochs} rows") from None
        except OSError as e:
            raise RunError(f"{path}: unreadable ({e.strerror})") from None
        if len(data) != size:
            raise RunError(f"{path}: shorter ({len(data)} bytes) than when the checkpoint was written ({size}); "
                           "the run cannot be resumed")
        if not data.endswith(b"\n"):
            raise RunError(f"{path}: byte {size}, where the checkpoint's history ends, is not the end of a line; "
                           "the files are not of one run")
        try:
            reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
            rows = list(reader)
        except (UnicodeDecodeError, csv.Error) as e:
            raise RunError(f"{path}: unreadable ({e})") from None
        _check_metrics(path, reader.fieldnames or [], rows)
        if [int(float(r["epoch"])) for r in rows] != list(range(1, epochs + 1)):
            raise RunError(f"{path}: its first {size} bytes do not hold epochs 1 to {epochs}, as the checkpoint says; "
                           "the files are not of one run")
        cols = list(reader.fieldnames)
        metric = cols[2] if len(cols) > 2 else ""

        def num(r, col):
            return float(r[col]) if col in r else None

        return [EpochRecord(int(float(r["epoch"])), float(r["loss"]), num(r, metric),
                            num(r, "val_loss") if has_val else None, num(r, f"val_{metric}") if has_val else None, None,
                            num(r, "lr"))  # lr: a run with a train.schedule (the column is absent otherwise)
                for r in rows]

    def read_metrics(self) -> list[dict[str, str]]:
        """One dict per epoch, the cells as written (checked: whole epochs, numbers or nan)."""
        try:
            with open(self / METRICS, encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                rows = list(reader)
                header = reader.fieldnames or []
        except FileNotFoundError:
            raise RunError(f"{self.path}: {METRICS} is missing; restore the file, or train again") from None
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise RunError(f"{self / METRICS}: unreadable ({e})") from None
        _check_metrics(self / METRICS, header, rows)
        return rows

    # -------------------------------------------------------------- checkpoint.npz
    def write_checkpoint(self, arrays: dict[str, np.ndarray]) -> None:
        write_npz(self / CHECKPOINT, arrays)

    def read_checkpoint(self) -> dict[str, np.ndarray]:
        if not self.exists(CHECKPOINT):
            raise RunError(f"{self.path}: no {CHECKPOINT} to resume from (runs are checkpointed when interrupted, "
                           "and every train.checkpoint_every epochs)")
        try:
            with read_npz(self / CHECKPOINT) as z:  # nncli.npzfile: headers checked before allocation, no pickles
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise RunError(without_pickle_advice(f"{self / CHECKPOINT}: unreadable checkpoint ({type(e).__name__}: {e})")) from None

    def remove_checkpoint(self) -> None:
        (self / CHECKPOINT).unlink(missing_ok=True)

    # -------------------------------------------------------------- summary.json
    def write_summary(self, summary: dict) -> None:
        write_json(self / SUMMARY, summary)

    def read_summary(self) -> Optional[dict]:
        """summary.json, or None for an incomplete run; RunError if it is not JSON or malformed."""
        s = self._read_json(SUMMARY, required=False)
        if s is not None or self.exists(SUMMARY):
            problem = _summary_problem(s)
            if problem:
                raise RunError(f"{self / SUMMARY}: {problem}; restore the file, or train again")
        return s

    def digests(self) -> dict[str, str]:
        """{name: SHA-256} of the run's :data:`SEALED` files there are (summary.json keeps them)."""
        return {name: fingerprint(self / name)["sha256"] for name in SEALED if self.exists(name)}

    def check_model_config(self, cfg, summary: dict) -> None:
        """RunError if the settings that decide what the network computes (loss, model.*,
        train.dtype) differ from those summary.json recorded (:func:`model_config_digest`):
        config.yaml is not sealed as a whole, its data paths may be edited, but a changed
        activation would make every prediction silently different."""
        saved = summary.get("model_config")
        if isinstance(saved, str) and saved != model_config_digest(cfg):
            raise RunError(f"{self / CONFIG}: its loss, model or train.dtype settings are not those the run was "
                           f"saved with ({SUMMARY} records their SHA-256); restore them, or train again")

    def check_digests(self, summary: dict) -> None:
        """RunError if a file whose SHA-256 ``summary['files']`` records is missing or has changed
        since the run was saved: a corrupted or edited weight or preprocessing file would
        otherwise predict wrongly without a word. A run saved before digests were kept: nothing to check."""
        for name, digest in (summary.get("files") or {}).items():
            if name not in SEALED:
                continue
            if not self.exists(name):
                raise RunError(f"{self.path}: {name} is missing; restore the file, or train again")
            try:
                now = fingerprint(self / name)["sha256"]
            except OSError as e:
                raise RunError(f"{self / name}: unreadable ({e.strerror})") from None
            if now != digest:
                raise RunError(f"{self / name}: changed since the run was saved (its SHA-256 is not the one "
                               f"{SUMMARY} records); restore the file, or train again")

    def clear_summary(self) -> None:
        """Mark the run incomplete again (a resumed run, until it finishes)."""
        (self / SUMMARY).unlink(missing_ok=True)

    # -------------------------------------------------------------- reports
    def write_report(self, name: str, report: dict) -> Path:
        write_json(self / name, report)
        return self / name

    def _read_json(self, name: str, required: bool):
        try:
            return json.loads((self / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            if required:
                raise RunError(f"{self.path}: {name} is missing") from None
            return None
        except (ValueError, UnicodeDecodeError) as e:
            raise RunError(f"{self / name}: corrupt JSON ({e})") from None


def metrics_text(metric: str, has_val: bool, history, header: bool = False, lr: bool = False) -> str:
    """metrics.csv lines: the header (if ``header``), then one row per EpochRecord, floats as repr
    (they read back bit for bit). A last column ``lr``, the learning rate of each epoch, only
    when it is not constant (``lr``, or records that carry one: a train.schedule); without a
    schedule the file is what it always was."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    lr = lr or any(getattr(r, "lr", None) is not None for r in history)
    if header:
        w.writerow(["epoch", "loss", metric] + (["val_loss", f"val_{metric}"] if has_val else []) + (["lr"] if lr else []))
    for r in history:
        row = [r.epoch, repr(float(r.loss)), repr(float(r.metric))]
        if has_val:
            row += [repr(float(r.val_loss)), repr(float(r.val_metric))]
        if lr:
            row.append(repr(float(r.lr)))
        w.writerow(row)
    return buf.getvalue()


def _check_metrics(path: Path, header: list, rows: list[dict]) -> None:
    """RunError naming the line and column of metrics.csv that is not what nncli writes."""
    for col in ("epoch", "loss"):
        if col not in header:
            raise RunError(f"{path}: no '{col}' column; restore the file, or train again")
    for i, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise RunError(f"{path}: line {i} does not have {len(header)} fields; restore the file, or train again")
        for col, text in row.items():
            try:
                ok = float(text) >= 1 and float(text) == int(text) if col == "epoch" else (float(text) or True)
            except (TypeError, ValueError):
                ok = False
            if ok and col == "lr":  # a learning rate (a train.schedule): finite and not negative
                ok = bool(np.isfinite(float(text))) and float(text) >= 0
            if not ok:
                raise RunError(f"{path}: line {i}, column '{col}': {text[:40]!r} is not "
                               f"{'an epoch number' if col == 'epoch' else 'a learning rate' if col == 'lr' else 'a number'}; "
                               "restore the file, or train again")


def _summary_problem(s) -> Optional[str]:
    """What is wrong with the fields of summary.json that commands read, or None."""
    if not isinstance(s, dict):
        return f"must be a JSON object, not {'null' if s is None else type(s).__name__}"
    if "status" in s and not isinstance(s["status"], str):
        return "'status' must be a text"
    for key in ("epochs_run", "epochs"):
        if key in s and s[key] is not None and (isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < 0):
            return f"'{key}' must be a whole number of epochs"
    for key in ("metrics", "val_metrics"):
        if s.get(key) is not None and not isinstance(s[key], dict):
            return f"'{key}' must be a mapping"
    if "model_config" in s and not isinstance(s["model_config"], str):
        return "'model_config' must be a SHA-256 digest"
    files = s.get("files")
    if files is not None and (not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values())):
        return "'files' must map file names to SHA-256 digests"
    return None


def model_config_digest(cfg) -> str:
    """SHA-256 of the config's settings that decide what the network computes: the loss,
    the model section (layers, activations, output, ...) and train.dtype, as canonical JSON."""
    import hashlib

    settings = {"loss": cfg.loss, "model": cfg.model.model_dump(mode="json"), "dtype": cfg.train.dtype}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()


def without_pickle_advice(message: str) -> str:
    """``message`` without numpy's advice to load an untrusted file "unsafely" (unpickling it):
    a run file is never unpickled, whoever wrote it."""
    import re

    message = re.sub(r"\s*If you trust the file[^`]*(`[^`]*`[^`]*)*?\.(?=\)|$|\s)", "", message, flags=re.I)
    return message.replace("Object arrays cannot be loaded when allow_pickle=False",
                           "it holds object arrays (pickled data), which nncli never loads")


@dataclass
class Run:
    """A run loaded back: its directory, config, preprocessing, model, summary and split rows."""

    dir: RunDir
    config: Any  # nncli.config.Config
    prep: Any  # nncli.preprocess.Preprocessor
    model: Any  # nncli.model.MLP
    summary: dict
    splits: Optional[dict]

    @property
    def path(self) -> Path:
        return self.dir.path

    def rows_of(self, df, split: str, source: str, fix: str = "restore the file, or train again"):
        """(the rows of ``df``, the run's training CSV, in the saved ``split``; a note or None).

        A run saved before split indices were kept gives every row, with a note saying so.
        A file whose row count changed since training cannot be matched: DataError.
        """
        from .errors import DataError

        if self.splits is None:
            return df, (f"{self.path} was saved without its split rows (by an older nncli), so its {split} rows "
                        f"are unknown: using every row of {source}")
        if self.splits["n_rows"] != len(df):
            raise DataError(f"{source}: has {len(df)} rows, but the run was trained on {self.splits['n_rows']}; "
                            f"the file changed since training, so its {split} rows are unknown; {fix}")
        return df.iloc[self.splits[split]], None


def load_run(run_dir: Path | str, require_complete: bool = True) -> Run:
    """Config + Preprocessor + MLP + split rows from a run directory; RunError naming the problem."""
    rd = RunDir(run_dir)
    if not rd.path.is_dir():
        raise RunError(f"{rd.path}: no such run directory")
    summary = rd.read_summary()
    if summary is None and require_complete:
        raise RunError(f"{rd.path}: incomplete run (no {SUMMARY}); it was interrupted or is still training")
    rd.check_digests(summary or {})
    cfg = rd.read_config()
    rd.check_model_config(cfg, summary or {})
    prep, model = rd.read_model(cfg)
    return Run(rd, cfg, prep, model, summary or {}, rd.read_splits())
