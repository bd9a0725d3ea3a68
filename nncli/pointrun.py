"""One sweep point trained in this process: what ``nncli train CONFIG --set ... --quiet --json``
does, without starting a process.

The long-lived workers of ``nncli sweep`` (local ones, nncli.workers; Ray tasks,
nncli.ray_executor) import nncli once and call :func:`train_point` for each point they are
given. It runs the very job ``nncli train`` runs (nncli.job.TrainingJob), so the run
directory it writes is the one the command would write, bit for bit, and it answers as
the command would: an exit status, the ``--json`` line, the one error line.

Nothing here prints or touches signals: the worker decides what a Ctrl-C means and calls
:func:`request_stop`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, NncliError

if TYPE_CHECKING:
    from .trainer import EpochRecord

#: the config keys whose values are input files a point reads (model.init when it ends in .npz)
FILE_KEYS = ("data.train", "data.val", "data.test", "model.init")


@dataclass
class Point:
    """What one ``nncli train`` of a sweep is given."""

    config: str  # the base config file, as the sweep names it (relative to the current directory)
    overrides: list[str] = field(default_factory=list)  # --set KEY=VALUE, each value YAML
    runs_dir: str = "runs"  # where the run directory is created (the sweep directory)
    name: Optional[str] = None  # --name
    plots: bool = False  # draw the pictures (a sweep skips them unless it says plots: true)
    resume: Optional[str] = None  # continue this interrupted run directory instead (config, overrides, name unused)
    report_every: int = 1  # with a report callback: report epochs k, 2k, 3k, ... only (each report is a round trip)

    def argv(self) -> list[str]:
        """The arguments of the same ``nncli train`` command (after ``nncli``)."""
        if self.resume is not None:
            return ["train", "--resume", self.resume, "--quiet", "--json"] + ([] if self.plots else ["--no-plots"])
        argv = ["train", self.config, "--runs-dir", self.runs_dir] + (["--name", self.name] if self.name else [])
        argv += ["--quiet", "--json"] + ([] if self.plots else ["--no-plots"])
        for s in self.overrides:
            argv += ["--set", s]
        return argv

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Outcome:
    """How the point ended, as ``nncli train --quiet --json`` reports it."""

    returncode: int  # 0 completed (or pruned), 1 diverged, 2 bad config/data/disk, 130 interrupted
    stdout: str = ""  # the --json line: {"run_dir": ..., **summary}; empty if no run was written
    stderr: str = ""  # the error line ("nncli: error: ..."), empty on success

    @property
    def summary(self) -> Optional[dict]:
        try:
            return json.loads(self.stdout) if self.stdout.strip() else None
        except ValueError:
            return None

    def to_dict(self) -> dict:
        return asdict(self)


#: a pruner: given each epoch's record, a message to prune the run with, or None to go on
Report = Callable[["EpochRecord"], Optional[str]]

_running = None  # the job train_point is running (request_stop reaches it)


def request_stop() -> None:
    """Ask the point being trained (if any) to stop after its current step and checkpoint,
    as Ctrl-C asks ``nncli train``; its outcome is then 130 (interrupted)."""
    if _running is not None:
        _running.trainer.stop_requested = True


def train_point(point: Point, report: Optional[Report] = None, files: Optional[dict[str, bytes]] = None) -> Outcome:
    """Train ``point`` here and return its outcome; never raises an nncli error (it becomes
    the outcome's exit status and error line, as the command would exit).

    ``report(rec)`` is called after every epoch; a message it returns prunes the run (status
    "pruned", exit 0). ``files`` maps paths the point names (the base config, data.train,
    data.val, data.test, an .npz model.init) to their bytes: the point reads those instead of
    the local files (a Ray worker that shares no file system with the driver), and the run
    directory records the original paths, as if it had read them.
    """
    global _running
    tmp = None
    try:
        if files:
            tmp = tempfile.mkdtemp(prefix="nncli-point-")
        job = _job(point, files or {}, tmp)
        _running = job
        summary = job.train(plots=point.plots, on_epoch=None if report is None else _pruner(job, report, point.report_every))
    except NncliError as e:
        return Outcome(e.exit_code, "", _error_line(str(e)))
    except MemoryError:
        return Outcome(EXIT_USAGE, "", _error_line("out of memory in nncli train; free memory, or use smaller data, "
                                                   "model.layers or train.batch_size"))
    except OSError as e:
        return Outcome(EXIT_USAGE, "", _error_line(f"{e.filename or 'nncli train'}: {e.strerror or e}"))
    finally:
        _running = None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    out = json.dumps({"run_dir": str(job.run_dir), **summary}, ensure_ascii=False)
    status = summary["status"]
    if status == "diverged":
        return Outcome(EXIT_FAILED, out, _error_line(summary.get("message", "training diverged")))
    if status == "interrupted":
        return Outcome(EXIT_INTERRUPTED, out, _error_line(
            f"interrupted after {summary['epochs_run']} epochs; checkpoint saved. Continue with: nncli train --resume {job.run_dir}"))
    return Outcome(0, out, "")


def _pruner(job, report: Report, every: int = 1):
    """on_epoch for job.train: every ``every``-th epoch goes to ``report``, whose message prunes the run."""

    def on_epoch(rec):
        if rec.epoch % every:
            return
        message = report(rec)
        if message:
            job.trainer.prune(message)

    return on_epoch


def _error_line(msg: str) -> str:
    from .view import one_line

    return f"nncli: error: {one_line(msg)}"


def _job(point: Point, files: dict[str, bytes], tmp: Optional[str]):
    """The TrainingJob of ``point`` (resumed, or new from its config and overrides)."""
    from .config import load_config
    from .job import TrainingJob

    if point.resume is not None:
        return TrainingJob.resume(point.resume)
    local = _copies(files, tmp) if files else {}
    overrides = list(point.overrides) + ([f"name={json.dumps(point.name, ensure_ascii=False)}"] if point.name else [])
    cfg = load_config(local.get(point.config, point.config), overrides)
    if not local:
        return TrainingJob(cfg, point.runs_dir)
    original = cfg.model_copy(deep=True)
    for key in FILE_KEYS:  # read the copies...
        section, attr = key.split(".")
        path = getattr(getattr(cfg, section), attr)
        if path is not None and str(path) in local:
            setattr(getattr(cfg, section), attr, local[str(path)])
    job = TrainingJob(cfg, point.runs_dir)
    for key in FILE_KEYS:  # ...and record the originals, as a run on the driver's machine would
        section, attr = key.split(".")
        setattr(getattr(job.cfg, section), attr, getattr(getattr(original, section), attr))
    for key, fp in job.data_files.items():
        fp["path"] = str(getattr(original.data, key.split(".")[1]))
    return job


def _copies(files: dict[str, bytes], tmp: str) -> dict[str, str]:
    """Write each file's bytes into ``tmp`` (keeping its name and suffix, which say its format);
    {original path: local copy}."""
    local = {}
    for i, (path, data) in enumerate(files.items()):
        d = os.path.join(tmp, str(i))
        os.mkdir(d)
        target = os.path.join(d, Path(path).name)
        with open(target, "wb") as f:
            f.write(data)
        local[path] = target
    return local


def input_files(point: Point) -> list[str]:
    """The files ``point`` reads, as it names them: the base config, and the data files and
    .npz model.init of its resolved config (what a worker without the driver's files needs)."""
    from .config import load_config

    cfg = load_config(point.config, list(point.overrides))
    out = [point.config]
    for key in FILE_KEYS:
        section, attr = key.split(".")
        path = getattr(getattr(cfg, section), attr)
        if path is not None and (key != "model.init" or str(path).endswith(".npz")):
            out.append(str(path))
    return list(dict.fromkeys(out))
