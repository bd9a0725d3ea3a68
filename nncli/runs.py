"""The run directory: unique creation, atomic writes, and loading a run back.

runs/<id>/
  config.yaml      the resolved config, every default filled in (train it again to reproduce)
  metrics.csv      one row per epoch
  model.npz        W1..WL (n_out, n_in), b1..bL, x_mean/x_std, classes; no pickles
  preprocess.json  the feature layout: columns, categories, targets, task, labels
  summary.json     written last: a run without it is incomplete

Every file is written atomically (temporary file in the same directory, flush, fsync,
os.replace), so a crash in the middle of a save leaves the previous version intact.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import RunError

SUMMARY = "summary.json"


# ---------------------------------------------------------------------- atomic files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd = None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(tmp, path)
    finally:
        if fd is not None:
            os.close(fd)
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} as JSON")


def _clean(o):
    """NaN and infinities become null: summary files must be strict JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def to_json(obj) -> str:
    return json.dumps(_clean(obj), indent=2, ensure_ascii=False, default=_json_default) + "\n"


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, to_json(obj))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def write_csv(path: Path, header: list[str], rows) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------------- creation


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


# ---------------------------------------------------------------------- loading


@dataclass
class Run:
    path: Path
    config: object  # nncli.config.Config
    prep: object  # nncli.data.Preprocessor
    model: object  # nncli.model.MLP
    summary: dict


def load_run(run_dir: Path | str, require_complete: bool = True) -> Run:
    """Config + Preprocessor + MLP from a run directory; RunError naming the problem."""
    from .config import config_from_dict, read_yaml
    from .data import Preprocessor
    from .errors import ConfigError
    from .model import MLP, load_weights

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    summary_path = run_dir / SUMMARY
    summary: dict = {}
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise RunError(f"{summary_path}: corrupt JSON ({e})") from None
    elif require_complete:
        raise RunError(f"{run_dir}: incomplete run (no {SUMMARY}); it was interrupted or is still training")
    try:
        cfg = config_from_dict(read_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
    except ConfigError as e:
        raise RunError(str(e)) from None
    try:
        meta = json.loads((run_dir / "preprocess.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{run_dir}: preprocess.json is missing") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise RunError(f"{run_dir / 'preprocess.json'}: corrupt JSON ({e})") from None
    npz = run_dir / "model.npz"
    sizes = cfg.model.layers
    if any(s == "auto" for s in sizes):
        raise RunError(f"{run_dir / 'config.yaml'}: model.layers still says 'auto'; not a saved run config")
    try:
        W, b = load_weights(npz, sizes, what="model")
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_mean", "x_std", "classes") if k in z.files}
        prep = Preprocessor.from_saved(meta, arrays)
    except ConfigError as e:
        raise RunError(str(e)) from None
    except (KeyError, ValueError, TypeError) as e:
        raise RunError(f"{npz}: does not match preprocess.json ({e})") from None
    if prep.n_inputs != sizes[0] or prep.n_outputs != sizes[-1]:
        raise RunError(f"{run_dir}: model sizes {sizes} do not match the saved preprocessing")
    dtype = cfg.train.dtype
    model = MLP([w.astype(dtype) for w in W], [x.astype(dtype) for x in b], cfg.model.hidden_activations, cfg.output)
    return Run(run_dir, cfg, prep, model, summary)


def find_runs(runs_dir: Path | str) -> list[Path]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def versions() -> dict:
    import platform

    from . import __version__

    return {"nncli": __version__, "numpy": np.__version__, "python": platform.python_version()}


def write_summary(run_dir: Path, summary: dict) -> None:
    write_json(Path(run_dir) / SUMMARY, summary)


def optional_float(x) -> Optional[float]:
    return None if x is None else float(x)
