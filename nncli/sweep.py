"""``nncli sweep``: many training runs of one base config, N at a time.

A sweep file::

    base: configs/xor.yaml          # relative to the current directory
    name: xor-lr                    # optional; default: the sweep file's stem
    grid:                           # every combination
      train.lr: [0.01, 0.1, 1.0]
      model.layers: [[auto, 8, auto], [auto, 32, auto]]
    random:                         # optional: `samples` draws per grid point
      samples: 4
      seed: 0
      params:
        train.l2: {log_uniform: [1.0e-6, 1.0e-2]}
        model.activation: {choice: [tanh, relu]}
        train.momentum: {uniform: [0.5, 0.99]}
    metric: val_accuracy            # ranking column (default: val_ metric if any, else train)

Every point is one ``nncli train BASE --set KEY=VALUE ...`` (a nncli.pointrun.Point), so a
sweep run is exactly what a shell loop would produce. Where the points train is an executor's
business (nncli.executors: long-lived local workers, a process per point, a Ray cluster).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import NAME_RE, format_validation_error, load_config, read_yaml
from .csvio import atomic_write_text, write_rows
from .errors import ConfigError, RunError, did_you_mean
from .formats import short, shown
from .executors import Executor, Task, interrupted, task_status  # noqa: F401 (the sweep's vocabulary)
from .pointrun import Point
from .runs import SWEEP_FILE, create_run_dir


class _RandomSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    samples: int = Field(ge=1)
    seed: int = 0
    params: dict[str, dict[str, list[Any]]]


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: str
    name: Optional[str] = None
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    random: Optional[_RandomSpec] = None
    metric: Optional[str] = None
    plots: bool = False


DISTRIBUTIONS = ("uniform", "log_uniform", "choice")


_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
#: the most points a sweep may have (grid combinations times random samples): each is a
#: training process and a run directory; a larger sweep is refused before anything starts
MAX_POINTS = 10_000
# the columns `nncli runs` shows for every run, which a sweep may rank by
METRICS = ("loss", "accuracy", "r2", "val_loss", "val_accuracy", "val_r2", "seconds", "epochs")


def _number_or_value(v):
    if isinstance(v, str) and _FLOAT_RE.match(v.strip()):
        return float(v)
    return v


def load_sweep(path: Path | str) -> SweepSpec:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with base, grid and/or random")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path), SweepSpec)) from None
    # YAML 1.1 reads 1e-3 and 1.0e37 as text; values that are numbers become numbers
    spec.grid = {k: [_number_or_value(v) for v in values] for k, values in spec.grid.items()}
    if spec.random:
        spec.random.params = {k: {kind: [_number_or_value(a) for a in args] for kind, args in dist.items()}
                              for k, dist in spec.random.params.items()}
    if spec.metric is not None and spec.metric not in METRICS:
        raise ConfigError(f"{path}: metric: unknown column {shown(spec.metric)}{did_you_mean(spec.metric, METRICS)} "
                          f"(valid: {', '.join(METRICS)})")
    if not spec.grid and spec.random is None:
        raise ConfigError(f"{path}: give a grid and/or random samples")
    for key, values in spec.grid.items():
        if not values:
            raise ConfigError(f"{path}: grid.{short(key, 60)}: needs at least one value")
    count = count_points(spec)
    if count > MAX_POINTS:
        sizes = " x ".join([str(len(v)) for v in spec.grid.values()] + ([f"{spec.random.samples:,} samples"] if spec.random else []))
        raise ConfigError(f"{path}: the sweep has {count:,} points ({sizes}), more than nncli's limit of {MAX_POINTS:,}; "
                          "split it into smaller sweeps, or use random samples instead of a full grid")
    if spec.random:
        for key, dist in spec.random.params.items():
            if len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
                raise ConfigError(f"{path}: random.params.{key}: use one of {{uniform: [a, b]}}, {{log_uniform: [a, b]}}, {{choice: [...]}}")
            kind, args = next(iter(dist.items()))
            if kind != "choice" and (len(args) != 2 or not all(isinstance(a, (int, float)) for a in args)):
                raise ConfigError(f"{path}: random.params.{key}.{kind}: needs two numbers [low, high]")
            if kind == "log_uniform" and min(args) <= 0:
                raise ConfigError(f"{path}: random.params.{key}.log_uniform: bounds must be positive")
    return spec


def count_points(spec: SweepSpec) -> int:
    """How many points :func:`iter_points` gives, from the grid's lengths and the samples alone."""
    return math.prod(len(v) for v in spec.grid.values()) * (spec.random.samples if spec.random else 1)


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's points: each grid combination, times ``random.samples`` random draws
    (a list: call it on a sweep load_sweep accepted, which has at most MAX_POINTS)."""
    return list(iter_points(spec))


def iter_points(spec: SweepSpec):
    """The sweep's points one at a time (nothing is materialised): each grid combination,
    times ``random.samples`` random draws."""
    keys = list(spec.grid)
    grid = (dict(zip(keys, combo)) for combo in itertools.product(*(spec.grid[k] for k in keys)))
    if spec.random is None:
        yield from grid
        return
    rng = np.random.default_rng(spec.random.seed)
    for g in grid:
        for _ in range(spec.random.samples):
            p = dict(g)
            for key, dist in spec.random.params.items():
                kind, args = next(iter(dist.items()))
                if kind == "uniform":
                    p[key] = float(rng.uniform(args[0], args[1]))
                elif kind == "log_uniform":
                    p[key] = float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
                else:
                    p[key] = args[int(rng.integers(len(args)))]
            yield p


def command(spec: SweepSpec, params: dict, sweep_dir: Path, name: str) -> Point:
    """The ``nncli train`` of one point (nncli.pointrun.Point: run in a worker, or as a process)."""
    return Point(spec.base, [f"{key}={json.dumps(value)}" for key, value in params.items()], str(sweep_dir), name, spec.plots)


def validate_points(spec: SweepSpec, pts: list[dict]) -> None:
    """Every point's config is validated before any run starts."""
    for i, p in enumerate(pts):
        overrides = [f"{k}={json.dumps(v)}" for k, v in p.items()]
        try:
            load_config(spec.base, overrides)
        except ConfigError as e:
            raise ConfigError(f"sweep point {i + 1} ({short(', '.join(overrides))}): {e}") from None


# ---------------------------------------------------------------------- a whole sweep

RANKING_DEFAULTS = ("val_accuracy", "val_r2", "accuracy", "r2", "loss")


@dataclass
class Sweep:
    """A validated sweep, ready to run: its points, directory and tasks."""

    spec: SweepSpec
    name: str
    dir: Path
    tasks: list[Task]
    failed: list[Task]
    stopped: bool = False

    @classmethod
    def create(cls, path: Path | str, runs_dir: Path | str, storage: Optional[str] = None) -> "Sweep":
        """Validate every point of the sweep file, then create the sweep directory with sweep.yaml."""
        import yaml

        if storage is not None:
            raise ConfigError("--storage is not built yet")  # nncli.study (helper O)
        path = Path(path)
        spec = load_sweep(path)
        pts = points(spec)
        validate_points(spec, pts)
        name = spec.name or path.stem
        if not NAME_RE.match(name):
            raise ConfigError(f"{path}: name {shown(name)} is not valid: use letters, digits, '.', '_' and '-'")
        sweep_dir = create_run_dir(runs_dir, name)
        try:
            atomic_write_text(sweep_dir / SWEEP_FILE, yaml.safe_dump({"sweep": spec.model_dump(mode="json"), "points": pts},
                                                                      sort_keys=False, allow_unicode=True))
        except OSError as e:  # a full disk: no empty sweep directory is left behind
            sweep_dir.rmdir()
            raise RunError(f"{sweep_dir / SWEEP_FILE}: cannot write ({e.strerror or e}); nothing was run") from None
        tasks = [Task(i, command(spec, p, sweep_dir, f"{name}-{i + 1:03d}"), p) for i, p in enumerate(pts)]
        return cls(spec, name, sweep_dir, tasks, [])

    def run(self, executor: "Executor", on_done: Callable[[Task, str], None]) -> None:
        """Run every task on ``executor``; ``on_done(task, status)`` as each finishes."""

        def done(t: Task) -> None:
            if t.returncode != 0 and not interrupted(t.returncode):
                self.failed.append(t)
            on_done(t, task_status(t))

        executor.run(self.tasks, done)
        self.stopped = executor.stopping

    def results(self):
        """(the ranked listing of the sweep's runs, the ranking metric or None, notes); saved as
        results.csv. A ``metric`` no run reports (val_accuracy without validation data, say)
        falls back to the default ranking, with a note."""
        from .listing import list_runs

        df, _ = list_runs(self.dir)
        notes = []
        metric = next((m for m in RANKING_DEFAULTS if m in df.columns), None)
        if self.spec.metric is not None and self.spec.metric in df.columns:
            metric = self.spec.metric
        elif self.spec.metric is not None and not df.empty:
            notes.append(f"no run reports {self.spec.metric}; ranked by {metric} instead")
        if metric is not None:
            df, _ = list_runs(self.dir, sort=metric)
        write_rows(self.dir / "results.csv", list(map(str, df.columns)),
                   df.astype(object).where(df.notna(), "").values.tolist())
        return df, metric, notes
