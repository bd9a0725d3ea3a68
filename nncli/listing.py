"""``nncli runs``: one row per run directory, built with pandas.

Each row: id, name, status, epochs, the config keys whose values differ between the
listed runs, and the final train and validation metrics from summary.json. A run without
summary.json is listed as ``incomplete``, one whose lock a process holds (training or
resuming it) as ``running``; a directory whose files cannot be read is skipped with a
warning, never an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import yaml

from .errors import ConfigError, RunError, did_you_mean
from .runs import CHECKPOINT, CONFIG, SWEEP_FILE, RunDir
from .cv import CV_FILE

LOWER_IS_BETTER = ("loss", "seconds", "mse", "rmse", "mae")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else v
    return out


def read_run(path: Path) -> dict:
    """The listing row of one run directory; raises ValueError if it cannot be read."""
    rd = RunDir(path)
    running = rd.is_locked()  # a process trains or resumes it now
    try:
        cfg = rd.read_config_raw()
    except ValueError:
        if not (running and not rd.exists(CONFIG)):
            raise
        cfg = {}  # a new run in its first moments: config.yaml is being written
    row = {"id": path.name, "name": cfg.get("name"), "status": "incomplete", "epochs": None}
    try:
        s = rd.read_summary()
    except RunError as e:
        raise ValueError(f"summary.json unreadable ({e})") from None
    if s is not None:
        row["status"] = s.get("status", "?")
        row["epochs"] = s.get("epochs_run")
        for prefix, key in (("", "metrics"), ("val_", "val_metrics")):
            row.update({f"{prefix}{k}": v for k, v in (s.get(key) or {}).items() if k != "rows"})
        row["seconds"] = s.get("train_seconds")
    elif rd.exists(CHECKPOINT):
        row["status"] = "interrupted"
    if running:
        row["status"] = "running"
    row["_config"] = _flatten(cfg)
    return row


def _as_number(v):
    """A float for numbers and number-like text ('1e-1', as config values are read), else None."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _equals(col, value):
    """Cells equal to value: numerically when both are numbers (1e-1 == 0.1), else as text."""
    import pandas as pd

    num = _as_number(value)
    if num is not None:
        return pd.Series([(_as_number(c) == num) if _as_number(c) is not None else str(c) == str(value) for c in col],
                         index=col.index, dtype=bool)
    return col.astype(str) == str(value)


def list_runs(runs_dir: Path | str, where: Optional[list[str]] = None, sort: Optional[str] = None):
    """(DataFrame, warnings) of the runs under ``runs_dir``."""
    import pandas as pd

    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ConfigError(f"{runs_dir}: no such runs directory")
    rows, warnings = [], []
    for p in sorted(runs_dir.iterdir()):
        if not p.is_dir() or p.name.startswith(".") or (p / SWEEP_FILE).exists() or (p / CV_FILE).exists():
            continue  # not a run: hidden, or a sweep or cv directory (list it with nncli runs SWEEP_DIR)
        try:
            rows.append(read_run(p))
        except (ValueError, OSError) as e:
            warnings.append(f"skipped {p}: {e}")
        except Exception as e:  # noqa: BLE001 (a listing shows what it can read and skips the rest)
            warnings.append(f"skipped {p}: unreadable ({type(e).__name__}: {e})")
    configs = pd.DataFrame([r.pop("_config") for r in rows])
    df = pd.DataFrame(rows)
    if df.empty:
        return df, warnings
    # a config key named like a result column (the top-level `loss`) is shown as config.<key>
    configs = configs.rename(columns={c: f"config.{c}" for c in configs.columns if c in df.columns and c != "name"})
    df["epochs"] = df["epochs"].astype("Int64")
    if where:
        mask = _matching(df, configs, where)
        df, configs = df[mask], configs[mask]
    varying = [c for c in configs.columns if c != "name" and configs[c].astype(str).nunique(dropna=False) > 1]
    metric_cols = [c for c in df.columns if c not in ("id", "name", "status", "epochs")]
    out = pd.concat([df[["id", "name", "status", "epochs"]].reset_index(drop=True),
                     configs[varying].reset_index(drop=True),
                     df[metric_cols].reset_index(drop=True)], axis=1)
    out = _ranked(out, sort) if sort else out
    out.attrs["config_columns"] = list(varying)  # for drop_order
    return out, warnings


def _matching(df, configs, where: list[str]):
    """The rows (a boolean array) whose config key or column equals the value of every KEY=VALUE."""
    mask = None
    for w in where:
        key, sep, raw = w.partition("=")
        if not sep or not key:
            raise ConfigError(f"--where {w}: expected KEY=VALUE, e.g. --where train.lr=0.1")
        value = yaml.safe_load(raw) if raw.strip() else None
        value = json.dumps(value) if isinstance(value, list) else value
        if key in configs.columns:  # a config key first (`loss=mse`), then a result column
            col = configs[key]
        elif f"config.{key}" in configs.columns:
            col = configs[f"config.{key}"]
        elif key in df.columns:
            col = df[key]
        else:
            valid = sorted(set(df.columns) | set(configs.columns))
            raise ConfigError(f"--where {w}: unknown key '{key}'{did_you_mean(key, valid)}")
        hit = _equals(col, value).to_numpy()
        mask = hit if mask is None else mask & hit
    return mask


def _ranked(out, sort: str):
    """Best first by ``sort`` (losses and seconds ascending, other metrics descending);
    completed runs before the others; equal scores: the lower loss first."""
    if sort not in out.columns:
        raise ConfigError(f"--sort {sort}: no such column{did_you_mean(sort, list(out.columns))} (columns: {', '.join(out.columns)})")
    ascending = any(t in sort for t in LOWER_IS_BETTER)
    out = out.assign(_unfinished=out["status"] != "completed")
    keys, order = ["_unfinished", sort], [True, ascending]
    tie = next((c for c in ("val_loss", "loss") if c in out.columns and c != sort), None)
    if tie is not None:
        keys.append(tie)
        order.append(True)
    return out.sort_values(keys, ascending=order, na_position="last", kind="stable").reset_index(drop=True).drop(columns="_unfinished")


def drop_order(df, metric: Optional[str] = None) -> list[str]:
    """The columns a table too wide for the terminal leaves out, least useful first (README,
    `nncli runs`): seconds, epochs, val_rows; the name when it only numbers the runs of one
    sweep or cv (``sw-001``, ``sw-002``, ...); train metrics other than the loss when there
    are validation metrics; the name; the differing config keys, rightmost first; the other
    metrics. Never left out: id, fold, status, loss, val_loss and the ranking metric
    (``metric``, else the sweep's default: val_accuracy, val_r2, accuracy, r2)."""
    import re

    from .sweep import RANKING_DEFAULTS

    cols = [str(c) for c in df.columns]
    metric = metric if metric in cols else next((m for m in RANKING_DEFAULTS if m in cols), None)
    keep = {"id", "fold", "status", "loss", "val_loss", metric}
    config = [c for c in df.attrs.get("config_columns", [c for c in cols if "." in c]) if c in cols]
    known = keep | set(config) | {"name", "seconds", "epochs", "val_rows"}
    metrics = [c for c in cols if c not in known]
    has_val = any(c.startswith("val_") for c in metrics + [metric or ""])
    train = [c for c in metrics if not c.startswith("val_")] if has_val else []
    names = [re.sub(r"-\d+$", "", str(n)) for n in df["name"]] if "name" in cols else []
    numbered = len(names) > 1 and len(set(names)) == 1
    order = [c for c in ("seconds", "epochs", "val_rows") if c in cols]
    order += (["name"] if numbered else []) + train + ([] if numbered or "name" not in cols else ["name"])
    order += config[::-1] + [c for c in metrics if c not in train]
    return [c for c in order if c not in keep]  # --sort by a config key keeps that key
