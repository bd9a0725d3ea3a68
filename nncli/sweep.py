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

Or a search (an Optuna study, nncli.study; the nncli[optuna] extra)::

    search: {method: tpe, trials: 20, seed: 0}   # grid | random | tpe
    grid:                                        # searched as choices
      model.layers: [[auto, 8, auto], [auto, 32, auto]]
    params:                                      # distributions, as random.params
      train.lr: {log_uniform: [1.0e-4, 1.0]}
      train.batch_size: {int: [8, 64]}
    prune: {method: median, warmup_epochs: 5}    # median | hyperband; optional

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


class _SearchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str
    trials: Optional[int] = Field(None, ge=1)
    seed: int = 0


def report_every(spec: "SweepSpec", cfgs: list) -> int:
    """The epochs between two reports to the pruner: prune.every, else about 100 reports over
    the base config's epochs. Each report is a round trip to the driver (about 0.1 ms with
    local workers, 3 ms on Ray) and to the storage (10-20 ms with SQLite), which would
    dominate small epochs; the pruner sees the same steps of every trial either way."""
    if spec.prune is None:
        return 1
    if spec.prune.every is not None:
        return spec.prune.every
    return max(1, min(c.train.epochs for c in cfgs) // 100) if cfgs else 1


class _PruneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str
    warmup_epochs: int = Field(0, ge=0)
    startup_trials: Optional[int] = Field(None, ge=0)  # median: completed trials before pruning starts (Optuna's 5)
    every: Optional[int] = Field(None, ge=1)  # report epochs every, 2*every, ... (default: epochs // 100, at least 1)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: str
    name: Optional[str] = None
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    random: Optional[_RandomSpec] = None
    metric: Optional[str] = None
    plots: bool = False
    search: Optional[_SearchSpec] = None  # an Optuna study (nncli.study): grid, random or tpe over grid + params
    params: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)  # the search's distributions
    prune: Optional[_PruneSpec] = None  # stop hopeless points early (Optuna's median or hyperband pruner)


DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")


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
    spec.params = {k: {kind: [_number_or_value(a) for a in args] for kind, args in dist.items()}
                   for k, dist in spec.params.items()}
    _check_study(path, spec)
    if spec.metric is not None and spec.metric not in METRICS:
        raise ConfigError(f"{path}: metric: unknown column {shown(spec.metric)}{did_you_mean(spec.metric, METRICS)} "
                          f"(valid: {', '.join(METRICS)})")
    if not spec.grid and spec.random is None and not spec.params:
        raise ConfigError(f"{path}: give a grid and/or random samples" + (" (or params to search)" if spec.search else ""))
    for key, values in spec.grid.items():
        if not values:
            raise ConfigError(f"{path}: grid.{short(key, 60)}: needs at least one value")
    count = count_points(spec)
    if count > MAX_POINTS and spec.search is None:
        sizes = " x ".join([str(len(v)) for v in spec.grid.values()] + ([f"{spec.random.samples:,} samples"] if spec.random else []))
        raise ConfigError(f"{path}: the sweep has {count:,} points ({sizes}), more than nncli's limit of {MAX_POINTS:,}; "
                          "split it into smaller sweeps, or use random samples instead of a full grid")
    for section, params in (("random.params", spec.random.params if spec.random else {}), ("params", spec.params)):
        for key, dist in params.items():
            if len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
                raise ConfigError(f"{path}: {section}.{key}: use one of {{uniform: [a, b]}}, {{log_uniform: [a, b]}}, "
                                  "{int: [a, b]}, {choice: [...]}")
            kind, args = next(iter(dist.items()))
            if kind != "choice" and (len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)):
                raise ConfigError(f"{path}: {section}.{key}.{kind}: needs two numbers [low, high]")
            if kind == "int" and not all(float(a).is_integer() for a in args):
                raise ConfigError(f"{path}: {section}.{key}.int: needs two whole numbers [low, high] (both included)")
            if kind == "int" and args[0] > args[1]:
                raise ConfigError(f"{path}: {section}.{key}.int: low {args[0]} is above high {args[1]}")
            if kind == "choice" and not args:
                raise ConfigError(f"{path}: {section}.{key}.choice: needs at least one value")
            if kind == "log_uniform" and min(args) <= 0:
                raise ConfigError(f"{path}: {section}.{key}.log_uniform: bounds must be positive")
            if section == "params" and kind in ("uniform", "log_uniform") and args[0] > args[1]:
                raise ConfigError(f"{path}: params.{key}.{kind}: low {args[0]} is above high {args[1]}")
    if spec.search is not None:
        _check_search_space(path, spec)
    return spec


def _check_study(path, spec: SweepSpec) -> None:
    """The search and prune blocks (nncli.study), each mistake one line."""
    from .study import PRUNE_METHODS, SEARCH_METHODS

    if spec.params and spec.search is None:
        raise ConfigError(f"{path}: params: distributions are searched by a search block, e.g. search: {{method: tpe, trials: 20}} "
                          "(random draws per grid point: random.params)")
    if spec.search is not None:
        if spec.random is not None:
            raise ConfigError(f"{path}: search and random: give the distributions under params: with search, "
                              "or use random: without search, not both")
        m = spec.search.method
        if m not in SEARCH_METHODS:
            raise ConfigError(f"{path}: search.method: unknown method {shown(m)}{did_you_mean(m, SEARCH_METHODS)} "
                              f"(valid: {', '.join(SEARCH_METHODS)})")
        if m != "grid" and spec.search.trials is None:
            raise ConfigError(f"{path}: search.trials: method {m} needs a budget, e.g. trials: 20")
        if spec.search.trials is not None and spec.search.trials > MAX_POINTS:
            raise ConfigError(f"{path}: search.trials: {spec.search.trials:,} is more than nncli's limit of {MAX_POINTS:,} runs")
    if spec.prune is not None:
        m = spec.prune.method
        if m not in PRUNE_METHODS:
            raise ConfigError(f"{path}: prune.method: unknown method {shown(m)}{did_you_mean(m, PRUNE_METHODS)} "
                              f"(valid: {', '.join(PRUNE_METHODS)})")
        if m != "median" and spec.prune.startup_trials is not None:
            raise ConfigError(f"{path}: prune.startup_trials: only the median pruner takes it")
        if spec.metric in ("seconds", "epochs"):
            raise ConfigError(f"{path}: prune: the metric {spec.metric} is not reported per epoch; "
                              "prune by loss, accuracy, r2 or their val_ forms")


def _check_search_space(path, spec: SweepSpec) -> None:
    if spec.search.method == "grid":
        ranges = [k for k, d in spec.params.items() if next(iter(d)) != "choice"]
        if ranges:
            raise ConfigError(f"{path}: params.{ranges[0]}: a grid search takes lists (grid: or {{choice: [...]}}), "
                              "not ranges; use search method random or tpe")
        from .study import budget

        n = budget(spec.model_copy(update={"search": spec.search.model_copy(update={"trials": None})}), 0)
        if spec.search.trials is not None and spec.search.trials > n:
            raise ConfigError(f"{path}: search.trials: {spec.search.trials} is more than the grid's {n} points")
        if n > MAX_POINTS:
            raise ConfigError(f"{path}: the grid search has {n:,} points, more than nncli's limit of {MAX_POINTS:,}; "
                              "give search.trials, or use method random or tpe")


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
                elif kind == "int":
                    p[key] = int(rng.integers(int(args[0]), int(args[1]) + 1))
                elif kind == "log_uniform":
                    p[key] = float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
                else:
                    p[key] = args[int(rng.integers(len(args)))]
            yield p


def command(spec: SweepSpec, params: dict, sweep_dir: Path, name: str) -> Point:
    """The ``nncli train`` of one point (nncli.pointrun.Point: run in a worker, or as a process)."""
    return Point(spec.base, [f"{key}={json.dumps(value)}" for key, value in params.items()], str(sweep_dir), name, spec.plots)


def validate_points(spec: SweepSpec, pts: list[dict]) -> list:
    """Every point's config is validated before any run starts; the configs."""
    out = []
    for i, p in enumerate(pts):
        overrides = [f"{k}={json.dumps(v)}" for k, v in p.items()]
        try:
            out.append(load_config(spec.base, overrides))
        except ConfigError as e:
            raise ConfigError(f"sweep point {i + 1} ({short(', '.join(overrides))}): {e}") from None
    return out


def _search_probes(spec: SweepSpec) -> list[dict]:
    """Points a search may choose, validated before it starts: the first value of every key,
    then each key's every choice and both bounds of its range in turn."""
    from .study import search_space

    space = search_space(spec)
    first = {k: args[0] for k, (kind, args) in space.items()}
    first = {k: (int(v) if space[k][0] == "int" else v) for k, v in first.items()}
    probes = [first]
    for k, (kind, args) in space.items():
        for v in args[1:]:
            probes.append({**first, k: int(v) if kind == "int" else v})
    return probes


def _check_metric(path, spec: SweepSpec, metric: str, cfgs: list) -> None:
    """A study's metric needs validation data in every point when it is a val_ one, and must be
    the task's (accuracy for classifiers, r2 for regression)."""
    for cfg in cfgs:
        if metric.startswith("val_") and cfg.data.val is None and cfg.data.val_split is None:
            raise ConfigError(f"{path}: metric {metric}: the study needs validation data in every point; "
                              f"add data.val or data.val_split to {spec.base} (or the grid), or use metric: {metric[4:]}")
        task_metric = cfg.task.metric if cfg.loss is not None else None
        base = metric[4:] if metric.startswith("val_") else metric
        if task_metric is not None and base not in ("loss", task_metric):
            raise ConfigError(f"{path}: metric {metric}: the runs of {spec.base} report {task_metric}, not {base}; "
                              f"use metric: {metric.replace(base, task_metric)} or a loss")
    if metric in ("seconds", "epochs"):
        raise ConfigError(f"{path}: metric {metric}: a study optimises a loss, accuracy or r2")


def _study_dir(path, runs_dir, record: dict) -> Optional[Path]:
    """The sweep directory of earlier invocations of this study (same name and storage) under
    ``runs_dir``, if its sweep.yaml records the same sweep; another sweep with that name and
    storage is refused."""
    import yaml

    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return None
    for d in sorted(runs_dir.iterdir(), reverse=True):
        f = d / SWEEP_FILE
        if not f.is_file():
            continue
        try:
            old = yaml.safe_load(f.read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if not isinstance(old, dict) or not isinstance(old.get("study"), dict):
            continue
        if (old["study"].get("name"), old["study"].get("storage")) != (record["study"]["name"], record["study"]["storage"]):
            continue
        if old.get("sweep") != record["sweep"]:
            raise ConfigError(f"{path}: {d} holds the study {record['study']['name']!r} of this storage with a different "
                              "sweep file; give this sweep another name:, or rerun that sweep file")
        return d
    return None


# ---------------------------------------------------------------------- a whole sweep

RANKING_DEFAULTS = ("val_accuracy", "val_r2", "accuracy", "r2", "loss")


@dataclass
class Sweep:
    """A validated sweep, ready to run: its points, directory and tasks."""

    spec: SweepSpec
    name: str
    dir: Path
    tasks: list[Task]  # a study's: the trials handed to the executor so far
    failed: list[Task]
    stopped: bool = False
    study: Any = None  # a nncli.study.Study (search:, prune: or --storage), else None
    total: int = 0  # the runs of the sweep (a study's budget, trials of earlier invocations included)

    @classmethod
    def create(cls, path: Path | str, runs_dir: Path | str, storage: Optional[str] = None,
               reports: bool = True) -> "Sweep":
        """Validate every point of the sweep file, then create the sweep directory with sweep.yaml
        (a study kept in ``storage``: the sweep directory of its earlier invocations, if any).
        ``reports``: whether the executor can report epochs (prune: needs it)."""
        import yaml

        from . import study as st

        path = Path(path)
        spec = load_sweep(path)
        name = spec.name or path.stem
        if not NAME_RE.match(name):
            raise ConfigError(f"{path}: name {shown(name)} is not valid: use letters, digits, '.', '_' and '-'")
        is_study = st.needs_study(spec, storage)
        if is_study:
            st.optuna_module()  # the missing extra: one line, before anything is written
        pts = points(spec) if spec.search is None else []
        cfgs = validate_points(spec, pts if spec.search is None else _search_probes(spec))
        dump = spec.model_dump(mode="json", exclude={k for k in ("search", "params", "prune") if not getattr(spec, k)})
        record: dict = {"sweep": dump}
        if spec.search is None:
            record["points"] = pts
        study = None
        sweep_dir = None
        if is_study:
            metric = st.default_metric(spec, cfgs[0])
            _check_metric(path, spec, metric, cfgs)
            if spec.prune is not None and not reports:
                raise ConfigError(f"{path}: prune: needs per-epoch reports, which this executor cannot give "
                                  "(--executor process cannot); use --executor local (the default) or ray")
            fingerprint = json.dumps(dump, sort_keys=True)
            record["study"] = {"name": name, "storage": st.masked(storage) if storage else None, "metric": metric,
                               "direction": st.direction(metric)}
            if storage is not None:
                sweep_dir = _study_dir(path, runs_dir, record)
            study = st.Study(spec, name, sweep_dir or Path(runs_dir), storage, pts, metric, fingerprint)
            study.every = report_every(spec, cfgs)
        reused = sweep_dir is not None
        if not reused:
            sweep_dir = create_run_dir(runs_dir, name)
            try:
                atomic_write_text(sweep_dir / SWEEP_FILE, yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
            except OSError as e:  # a full disk: no empty sweep directory is left behind
                sweep_dir.rmdir()
                raise RunError(f"{sweep_dir / SWEEP_FILE}: cannot write ({e.strerror or e}); nothing was run") from None
        if study is not None:
            study.dir = sweep_dir
            return cls(spec, name, sweep_dir, [], [], study=study, total=study.budget)
        tasks = [Task(i, command(spec, p, sweep_dir, f"{name}-{i + 1:03d}"), p) for i, p in enumerate(pts)]
        return cls(spec, name, sweep_dir, tasks, [], total=len(tasks))

    def run(self, executor: "Executor", on_done: Callable[[Task, str], None]) -> None:
        """Run every task on ``executor``; ``on_done(task, status)`` as each finishes. A
        study's trials are asked one at a time as the executor pulls them, and told as they end."""

        def done(t: Task) -> None:
            if self.study is not None:
                self.study.finished(t)
            if t.returncode != 0 and not interrupted(t.returncode):
                self.failed.append(t)
            on_done(t, task_status(t))

        if self.study is None:
            executor.run(self.tasks, done)
        else:
            def pulled():
                for t in self.study.tasks(lambda: executor.stopping):
                    self.tasks.append(t)
                    yield t

            if self.study.prunes:
                executor.run(pulled(), done, report=self.study.report)
            else:
                executor.run(pulled(), done)
        self.stopped = executor.stopping

    def results(self):
        """(the ranked listing of the sweep's runs, the ranking metric or None, notes); saved as
        results.csv. A ``metric`` no run reports (val_accuracy without validation data, say)
        falls back to the default ranking, with a note."""
        from .listing import list_runs

        df, _ = list_runs(self.dir)
        df = _with_unrun(df, [t for t in self.failed if not _ran(t)])
        notes = []
        metric = next((m for m in RANKING_DEFAULTS if m in df.columns), None)
        if self.spec.metric is not None and self.spec.metric in df.columns:
            metric = self.spec.metric
        elif self.spec.metric is not None and not df.empty:
            notes.append(f"no run reports {self.spec.metric}; ranked by {metric} instead")
        if metric is not None:
            from .listing import _ranked

            df, _ = list_runs(self.dir)
            df = _ranked(_with_unrun(df, [t for t in self.failed if not _ran(t)]), metric)
        write_rows(self.dir / "results.csv", list(map(str, df.columns)),
                   df.astype(object).where(df.notna(), "").values.tolist())
        return df, metric, notes


def _ran(t: Task) -> bool:
    """Whether the task's run directory exists (its --json line names it)."""
    return bool(t.summary.get("run_dir"))


def _with_unrun(df, failed: list[Task]):
    """The listing plus a row per point that failed before its run directory existed (a bad
    data file, a worker that died): status failed, its parameters, no id."""
    import pandas as pd

    if not failed:
        return df
    rows = [{"id": "", "name": t.point.name, "status": "failed", **{k: (json.dumps(v) if isinstance(v, list) else v)
                                                                    for k, v in t.params.items()}} for t in failed]
    attrs = dict(df.attrs)
    out = pd.concat([df, pd.DataFrame(rows)], ignore_index=True) if not df.empty else pd.DataFrame(rows)
    out.attrs.update(attrs)
    if "epochs" in out.columns:
        out["epochs"] = out["epochs"].astype("Int64")
    return out
