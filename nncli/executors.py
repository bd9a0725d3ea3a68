"""Where a sweep's (or a cv's) runs are trained: the executors.

A :class:`Task` is one ``nncli train`` (a :class:`nncli.pointrun.Point`). An
:class:`Executor` trains tasks, at most N at a time, and reports each as it finishes:

- ``process``: one ``python -m nncli train ...`` process per task (the first executor,
  exactly what a shell loop would run);
- ``local`` (the default): N long-lived worker processes that import nncli once and train
  task after task in-process (nncli.workers);
- ``ray``: tasks on a Ray cluster (nncli.ray_executor, the nncli[ray] extra).

All three run the same training job (nncli.job.TrainingJob) and produce the same run
directories, bit for bit.

Tasks are pulled from an iterable only when a slot is free, so a search (nncli.study) can
choose each point knowing the results so far. With a ``report`` callback, the executor calls
``report(task, rec)`` in the driver after each epoch of each task (rec: an
nncli.trainer.EpochRecord); a message it returns prunes that task (status "pruned").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from .pointrun import Point

if TYPE_CHECKING:
    from .trainer import EpochRecord

#: the executors ``--executor`` accepts
EXECUTORS = ("local", "process", "ray")

#: report(task, rec) -> a message to prune the task with, or None
Report = Callable[["Task", "EpochRecord"], Optional[str]]


@dataclass
class Task:
    index: int  # 0-based position in the sweep (a study's trial number)
    point: Point  # the nncli train it is
    params: dict  # the point's parameter values, for tables and progress lines
    returncode: Optional[int] = None  # as nncli train exits: 0, 1 diverged, 2 bad input, 130 interrupted
    stdout: str = ""  # nncli train --json's line
    stderr: str = ""  # its error line, if any

    @property
    def summary(self) -> dict:
        """The --json line the task printed ({"run_dir": ..., **summary.json}); {} if none."""
        import json

        try:
            out = json.loads(self.stdout) if self.stdout and self.stdout.strip() else {}
        except ValueError:
            return {}
        return out if isinstance(out, dict) else {}

    @property
    def argv(self) -> list[str]:
        """The command a process executor runs."""
        return [sys.executable, "-m", "nncli", *self.point.argv()]


class Executor:
    """Trains tasks, at most ``jobs`` at a time; calls ``done(task)`` (in the caller's thread)
    as each finishes.

    ``stopping`` is True once :meth:`stop` was called: no new task starts, running ones are
    asked to stop (they checkpoint and exit 130), and the sweep reports itself interrupted.
    """

    stopping = False
    #: whether :meth:`run` can call ``report`` (pruning needs it)
    reports = False

    def run(self, tasks: Iterable[Task], done: Callable[[Task], None], report: Optional[Report] = None) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Ask running tasks to stop (they checkpoint and exit 130); start no more."""
        self.stopping = True


class LocalProcessExecutor(Executor):
    """One ``python -m nncli train`` process per task."""

    def __init__(self, jobs: int, env: Optional[dict] = None):
        self.jobs = max(1, jobs)
        self.env = env
        self.running: dict = {}

    def run(self, tasks, done, report=None):
        import tempfile

        if report is not None:
            raise ValueError("the process executor cannot report epochs (pruning): use the local or ray executor")
        pending = iter(tasks)
        exhausted = False
        while not exhausted or self.running:
            while not exhausted and len(self.running) < self.jobs and not self.stopping:
                t = next(pending, None)
                if t is None:
                    exhausted = True
                    break
                out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
                proc = subprocess.Popen(t.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env)
                self.running[proc] = (t, out, err)
            if self.stopping:
                exhausted = True
            for proc in list(self.running):
                if proc.poll() is None:
                    continue
                t, out, err = self.running.pop(proc)
                out.seek(0)
                err.seek(0)
                t.returncode, t.stdout, t.stderr = proc.returncode, out.read(), err.read()
                out.close()
                err.close()
                done(t)
            time.sleep(0.02)

    def stop(self):
        import signal

        super().stop()
        for proc in self.running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)


def worker_env(jobs: int) -> dict:
    """Each worker gets an equal share of the cores for BLAS, unless the user chose already."""
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    return env


def make_executor(kind: str, jobs: int, address: Optional[str] = None, retries: Optional[int] = None) -> Executor:
    """The executor ``--executor KIND`` names (ConfigError for an unknown one, or a missing extra)."""
    from .errors import ConfigError

    if kind not in EXECUTORS:
        raise ConfigError(f"--executor: unknown executor {kind!r}; use one of {', '.join(EXECUTORS)}")
    if kind != "ray" and address is not None:
        raise ConfigError("--address is the address of a Ray cluster: use it with --executor ray")
    if kind == "process":
        return LocalProcessExecutor(jobs, worker_env(jobs))
    if kind == "local":
        from .workers import LocalWorkerExecutor

        return LocalWorkerExecutor(jobs)
    from .ray_executor import RayExecutor  # imports ray (ConfigError naming nncli[ray] if it is missing)

    return RayExecutor(jobs, address, 2 if retries is None else retries)


def interrupted(returncode: Optional[int]) -> bool:
    """Whether a worker's exit status means it was interrupted: exit 130, or killed by SIGINT
    or SIGTERM themselves (a negative return code: the signal came where nothing handled it)."""
    import signal

    return returncode in (130, -signal.SIGINT, -signal.SIGTERM)


def task_status(t: Task) -> str:
    """'completed', 'pruned: why', 'interrupted', 'failed' or 'failed (exit N)', with the run's last message."""
    if t.returncode == 0:
        summary = t.summary
        if summary.get("status") == "pruned":
            return "pruned" + (f": {summary['message']}" if summary.get("message") else "")
        return "completed"
    status = "interrupted" if interrupted(t.returncode) else {1: "failed"}.get(t.returncode, f"failed (exit {t.returncode})")
    msg = (t.stderr.strip().splitlines() or [""])[-1]
    return status + (f": {msg}" if msg else "")
