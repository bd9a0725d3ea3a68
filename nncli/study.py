"""A sweep run as an Optuna study: ``search:`` (grid, random, TPE), ``prune:`` (median,
hyperband) and ``--storage URL`` (a study kept in a database, continued by rerunning the
command, shared by several processes or machines).

Optuna is imported only here, and only when a sweep asks for one of those three things
(the nncli[optuna] extra); a plain grid/random sweep never touches it.

One trial is one point is one run directory, named ``<sweep name>-<trial number + 1>``
(``tpe-001``, ...). The executor pulls trials one at a time (:meth:`Study.tasks`), so TPE
chooses each point knowing every result so far, and after every epoch the driver reports
the sweep's metric to the trial (:meth:`Study.report`): a pruner that judges it hopeless
prunes the run (status "pruned", its directory kept).

The budget ``search.trials`` counts the whole study: every trial that completed, was
pruned, failed as a run (diverged, bad config) or is running, whoever runs it. Trials that
never trained (a process died before their run directory existed, or a race past the
budget) are failed with the user attribute ``nncli_uncounted`` and do not count; the
parameters of the first kind are enqueued again. Each process, after asking a trial, counts
the counted trials with a lower number (numbers are handed out by the storage, one by one):
if the budget is already full, the trial is failed as "over budget" and the process stops
asking, so the study never holds more than ``trials`` counted trials.

Each trial records (user attributes) its run directory, host, process id and sweep
directory. A rerun on the same host finds the trials left RUNNING by a process that no
longer exists: one whose run directory has a checkpoint is resumed (``nncli train
--resume``: it finishes bit for bit as if never interrupted); one without is failed
(uncounted) and its parameters are tried again.
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from .executors import Task
    from .sweep import SweepSpec
    from .trainer import EpochRecord

NEEDS_OPTUNA = "this sweep needs Optuna (search/prune/--storage): pip install 'nncli[optuna]'"
SEARCH_METHODS = ("grid", "random", "tpe")
PRUNE_METHODS = ("median", "hyperband")
POINT_PARAM = "nncli_point"  # a study of today's grid/random points: the point's index
UNCOUNTED = "nncli_uncounted"  # user attribute of a failed trial that never trained: why


def optuna_module():
    """The optuna module, or the one line naming the extra (exit 2)."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(NEEDS_OPTUNA) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the library never prints
    return optuna


def needs_study(spec: "SweepSpec", storage: Optional[str]) -> bool:
    return spec.search is not None or spec.prune is not None or storage is not None


def direction(metric: str) -> str:
    return "minimize" if "loss" in metric else "maximize"


def masked(url: str) -> str:
    """The storage URL with any password replaced by ***, as sweep.yaml records it."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _encode(value):
    """An Optuna categorical choice: numbers, text, booleans and null as they are, anything
    else (model.layers lists) as its JSON text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def _decode(choices: list, value):
    for c in choices:
        if _encode(c) == value:
            return c
    return value


def search_space(spec: "SweepSpec") -> dict[str, tuple[str, list]]:
    """{key: (kind, args)}: grid lists as choices, then the params distributions."""
    space = {k: ("choice", list(v)) for k, v in spec.grid.items()}
    for key, dist in spec.params.items():
        kind, args = next(iter(dist.items()))
        space[key] = (kind, list(args))
    return space


def _distribution(optuna, kind: str, args: list):
    d = optuna.distributions
    if kind == "uniform":
        return d.FloatDistribution(float(args[0]), float(args[1]))
    if kind == "log_uniform":
        return d.FloatDistribution(float(args[0]), float(args[1]), log=True)
    if kind == "int":
        return d.IntDistribution(int(args[0]), int(args[1]))
    return d.CategoricalDistribution([_encode(c) for c in args])


def default_metric(spec: "SweepSpec", cfg) -> str:
    """The study's objective: the sweep's metric, else the validation metric of the task
    (val_accuracy, val_r2) when the base config has validation data, else the train one;
    a loss when the task is not known before the data are read (no loss in the config)."""
    if spec.metric is not None:
        return spec.metric
    val = "val_" if (cfg.data.val is not None or cfg.data.val_split is not None) else ""
    return val + (cfg.task.metric if cfg.loss is not None else "loss")


class Study:
    """The Optuna study of one sweep: the trials to run, the reports, the results told."""

    def __init__(self, spec: "SweepSpec", name: str, sweep_dir: Path, storage: Optional[str], points: list[dict],
                 metric: str, fingerprint: str):
        optuna = optuna_module()
        self.optuna = optuna
        self.spec, self.name, self.dir, self.metric = spec, name, Path(sweep_dir), metric
        self.points = points  # today's grid/random points (a study without search:), else []
        self.space = search_space(spec) if spec.search is not None else {POINT_PARAM: ("choice", list(range(len(points))))}
        self.dists = {k: _distribution(optuna, kind, args) for k, (kind, args) in self.space.items()}
        method = spec.search.method if spec.search is not None else "grid"
        seed = spec.search.seed if spec.search is not None else 0
        sampler = make_sampler(optuna, method, seed,
                               {k: [_encode(c) for c in args] for k, (_, args) in self.space.items()})
        self.budget = budget(spec, len(points))
        self.prunes = spec.prune is not None
        self.every = 1  # the epochs between reports (nncli.sweep.report_every sets it)
        self.study = self._create(storage, sampler)
        known = self.study.user_attrs.get("nncli_sweep")
        if known is None:
            self.study.set_user_attr("nncli_sweep", fingerprint)
        elif known != fingerprint:
            raise ConfigError(f"--storage {masked(storage or '')}: the study {name!r} there was started by a different sweep "
                              "file; give this sweep another name: (or use another storage)")
        if self.study.direction.name.lower() != direction(metric):
            raise ConfigError(f"--storage: the study {name!r} there {self.study.direction.name.lower()}s its objective; "
                              f"this sweep's metric {metric} needs {direction(metric)}")
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.trials: dict[int, Any] = {}  # trial number -> optuna Trial, for the running ones
        self.reported: dict[int, set] = {}  # resumed trials: the steps reported before the interruption
        self.done_before = sum(1 for t in self._all() if _counted(t) and t.state.is_finished())

    def _create(self, storage: Optional[str], sampler):
        """optuna.create_study(load_if_exists=True); processes that create the same new
        database at the same moment race on its tables ("table ... already exists", "UNIQUE constraint failed: alembic_version"): the
        loser tries again, and then finds them."""
        import time

        for attempt in range(6):
            try:
                return self.optuna.create_study(storage=storage, study_name=self.name, load_if_exists=True,
                                                direction=direction(self.metric), sampler=sampler, pruner=self._pruner())
            except ImportError as e:  # a database driver the URL names is missing
                raise ConfigError(f"--storage {masked(storage or '')}: {e}") from None
            except Exception as e:  # noqa: BLE001 (Optuna and SQLAlchemy raise many kinds for a bad URL)
                text = str(e)
                racing = type(e).__name__ in ("OperationalError", "IntegrityError") and any(
                    w in text for w in ("already exists", "database is locked", "UNIQUE constraint failed"))
                if racing and attempt < 5:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                if type(e).__name__ in ("ArgumentError", "OperationalError", "ValueError", "NoSuchModuleError",
                                        "IntegrityError"):
                    raise ConfigError(f"--storage {masked(storage or '')}: {text.splitlines()[0]}") from None
                raise

    # ------------------------------------------------------------------ pruning

    def _pruner(self):
        p = self.spec.prune
        pruners = self.optuna.pruners
        if p is None:
            return pruners.NopPruner()
        if p.method == "median":
            return pruners.MedianPruner(n_startup_trials=5 if p.startup_trials is None else p.startup_trials,
                                        n_warmup_steps=p.warmup_epochs)
        return pruners.HyperbandPruner(min_resource=max(1, p.warmup_epochs))

    def value(self, rec: "EpochRecord") -> Optional[float]:
        """The sweep's metric in an epoch's record."""
        val = self.metric.startswith("val_")
        if self.metric.endswith("loss"):
            v = rec.val_loss if val else rec.loss
        else:
            v = rec.val_metric if val else rec.metric
        return None if v is None else float(v)

    def report(self, task: "Task", rec: "EpochRecord") -> Optional[str]:
        """After each epoch (in the driver): report the metric at step epoch - 1 (so the
        first warmup_epochs epochs are never pruned); a message if the pruner prunes."""
        trial = self.trials.get(task.index)
        v = self.value(rec)
        if trial is None or v is None:
            return None
        step = rec.epoch - 1
        if step in self.reported.get(task.index, ()):
            return None  # an epoch reported before the run was interrupted and resumed
        trial.report(v, step)
        if trial.should_prune():
            return f"{self.spec.prune.method} pruner, epoch {rec.epoch}: {self.metric} {v:.4g}"
        return None

    # ------------------------------------------------------------------ trials

    def _all(self):
        return self.study.get_trials(deepcopy=False)

    def counted(self) -> int:
        return sum(1 for t in self._all() if _counted(t))

    def params(self, trial) -> dict:
        """The point's config values of a trial (decoded choices; a point study's point)."""
        if self.spec.search is None:
            return dict(self.points[int(trial.params[POINT_PARAM])])
        out = {}
        for k, (kind, args) in self.space.items():
            v = trial.params[k]
            out[k] = _decode(args, v) if kind == "choice" else (int(v) if kind == "int" else float(v))
        return out

    def _task(self, trial, resume: Optional[str] = None) -> "Task":
        from .executors import Task
        from .sweep import command

        params = self.params(trial)
        point = command(self.spec, params, self.dir, run_name(self.name, trial.number))
        point.report_every = self.every
        if resume is not None:
            point.resume = resume
        for key, value in (("host", self.host), ("pid", self.pid), ("sweep_dir", str(self.dir.resolve())),
                           ("params", json.dumps(params))):
            trial.set_user_attr(key, value)
        self.trials[trial.number] = trial
        return Task(trial.number, point, params)

    def _attr(self, trial_id: int, key: str, value) -> None:
        self.study._storage.set_trial_user_attr(trial_id, key, value)

    def orphans(self) -> list:
        """Trials left RUNNING on this host by a process that no longer exists."""
        return [t for t in self._all() if t.state.name == "RUNNING" and t.user_attrs.get("host") == self.host
                and t.user_attrs.get("pid") != self.pid and not _alive(t.user_attrs.get("pid"))]

    def tasks(self, stopping: Callable[[], bool]) -> Iterator["Task"]:
        """The trials to run, one at a time as the executor pulls them: first the orphans of
        this host (resumed, or failed and enqueued again), then new trials until the budget
        of the whole study is full."""
        from .runs import CHECKPOINT, RunDir

        for t in self.orphans():
            if stopping():
                return
            run = find_run(Path(t.user_attrs.get("sweep_dir") or self.dir), run_name(self.name, t.number))
            if run is not None and RunDir(run).is_locked():
                continue  # another process of this host resumes it now
            trial = self.optuna.trial.Trial(self.study, t._trial_id)
            if run is not None and (run / CHECKPOINT).exists():
                self.reported[t.number] = set(t.intermediate_values)
                yield self._task(trial, resume=str(run))
            else:
                self._retry(t, "its process ended before the run directory existed")
        while not stopping():
            if self.counted() >= self.budget:
                return
            trial = self.study.ask(fixed_distributions=self.dists)
            before = sum(1 for t in self._all() if t.number < trial.number and _counted(t))
            if before >= self.budget:  # another process filled the budget between the count and the ask
                self._attr(trial._trial_id, UNCOUNTED, "over budget")
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
                return
            yield self._task(trial)

    def _retry(self, frozen, why: str) -> None:
        """Fail a trial that never trained (uncounted) and enqueue its parameters again."""
        self._attr(frozen._trial_id, UNCOUNTED, why)
        self.study.tell(frozen.number, state=self.optuna.trial.TrialState.FAIL, skip_if_finished=True)
        self.study.enqueue_trial(dict(frozen.params), user_attrs={"retry_of": frozen.number}, skip_if_exists=False)

    def finished(self, task: "Task") -> None:
        """Tell the study how the task's run ended (done() of the executor, in the driver)."""
        from .executors import interrupted
        from .runs import CHECKPOINT

        trial = self.trials.pop(task.index, None)
        if trial is None:
            return
        states = self.optuna.trial.TrialState
        summary = task.summary
        run_dir = summary.get("run_dir")
        if run_dir:
            self._attr(trial._trial_id, "run_dir", Path(run_dir).name)
        if interrupted(task.returncode):
            run = Path(run_dir) if run_dir else find_run(self.dir, run_name(self.name, task.index))
            if run is None or not (run / CHECKPOINT).exists():
                self._retry(self.study._storage.get_trial(trial._trial_id), "interrupted before its run directory existed")
            return  # left RUNNING: the next run of the command resumes it from its checkpoint
        if task.returncode != 0:
            msg = (task.stderr.strip().splitlines() or [""])[-1]
            self._attr(trial._trial_id, "message", msg)
            self.study.tell(trial, state=states.FAIL)
            return
        if summary.get("status") == "pruned":
            self.study.tell(trial, state=states.PRUNED)
            return
        v = final_value(summary, self.metric)
        if v is None:
            self._attr(trial._trial_id, "message", f"the run reports no {self.metric}")
            self.study.tell(trial, state=states.FAIL)
        else:
            self.study.tell(trial, v)


def make_sampler(optuna, method: str, seed: int, grid_space: Optional[dict] = None):
    """Optuna's sampler of ``method`` (grid, random, tpe) with ``seed``, which does not repeat
    the points of trials it did not make itself.

    A seeded Optuna sampler draws the same sequence in every process that creates it: a
    rerun that continues a study, or a second machine sharing it, would propose again the
    very points the first one tried (Optuna's random start-up trials, and so TPE's). So
    whenever a trial's number is not the one after this sampler's previous trial (trials of
    an earlier invocation or of another process came before), its generators are reseeded
    from (seed, trial number): still deterministic, and a study that one process runs from
    start to end draws exactly what Optuna's own sampler with that seed draws. The grid
    sampler does not stop the study once the grid is covered (study.stop() may only be called
    inside study.optimize): the budget ends an nncli study."""
    base = {"grid": optuna.samplers.GridSampler, "random": optuna.samplers.RandomSampler,
            "tpe": optuna.samplers.TPESampler}[method]

    class Sampler(base):
        _next_number = 0  # the number this sampler's next trial has when no one else asked in between

        def before_trial(self, study, trial) -> None:
            if trial.number != self._next_number:
                state = int(np.random.SeedSequence([seed, trial.number]).generate_state(1)[0])
                for s in (self, getattr(self, "_random_sampler", None)):  # TPE's start-up draws come from its own RandomSampler
                    if s is not None and hasattr(s, "_rng"):
                        s._rng.rng.seed(state)
            self._next_number = trial.number + 1
            super().before_trial(study, trial)

        if method == "grid":
            def after_trial(self, study, trial, state, values) -> None:
                pass

    return Sampler(grid_space, seed=seed) if method == "grid" else Sampler(seed=seed)


def final_value(summary: dict, metric: str) -> Optional[float]:
    """The metric as the run's summary (and the ranked table) reports it."""
    section = "val_metrics" if metric.startswith("val_") else "metrics"
    v = (summary.get(section) or {}).get(metric[4:] if metric.startswith("val_") else metric)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def budget(spec: "SweepSpec", n_points: int) -> int:
    """The trials of the whole study: search.trials, else every grid combination (search:
    grid), else every point of today's grid/random."""
    if spec.search is None:
        return n_points
    if spec.search.trials is not None:
        return spec.search.trials
    return math.prod(len(args) for _, args in search_space(spec).values())


def run_name(sweep: str, number: int) -> str:
    return f"{sweep}-{number + 1:03d}"


def find_run(sweep_dir: Path, name: str) -> Optional[Path]:
    """The run directory ``<stamp>-<name>-<4 hex>`` in the sweep directory, if there is one."""
    import re

    pattern = re.compile(r"\d{8}-\d{6}-" + re.escape(name) + r"-[0-9a-f]{4}$")
    try:
        found = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and pattern.match(p.name))
    except OSError:
        return None
    return found[-1] if found else None


def _counted(t) -> bool:
    return not (t.state.name == "FAIL" and UNCOUNTED in t.user_attrs)


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
