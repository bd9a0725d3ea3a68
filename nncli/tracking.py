"""Logging finished runs to MLflow (``--track mlflow``, or a ``track: {mlflow: ...}`` config
section; the ``nncli[mlflow]`` extra).

A run is logged AFTER its run directory is complete, from the run directory itself, so
tracking can never change or break a run, and the same code logs a run of ``nncli train``
and each point of a sweep whatever executor trained it:

- config.yaml -> params, the nested keys flattened with dots (``train.lr``, ``model.layers``;
  a value that is not text is written as JSON: ``[2, 4, 1]``, ``true``, ``null``);
- metrics.csv -> every epoch's metrics (loss, accuracy or r2, val_*, lr), step = the epoch;
- summary.json -> the summary metrics ``final_loss``, ``final_<metric>``, ``final_val_*``
  (the trained model measured on each split), ``epochs_run``, ``train_seconds``,
  ``best_epoch`` (early stopping);
- every file of the run directory as an artifact (config.yaml, metrics.csv, model.npz, ...);
- tags ``nncli.run_dir`` (its absolute path), ``nncli.run_id``, ``nncli.status`` and
  ``nncli.version``; the MLflow run's status is FINISHED for a completed run, FAILED for a
  diverged or failed one, KILLED for an interrupted or pruned one.

A sweep is one parent MLflow run (params: its base config, grid and random draws; the
sweep.yaml and results.csv as artifacts), and each point a child run of it (tag
``mlflow.parentRunId``), logged by the driver as the point finishes.

Tracking never makes a run fail: whatever MLflow raises becomes one warning naming what was
not logged (the functions here return those warnings; the library never prints). It is
bounded in time: MLflow's HTTP client retries an unreachable server for minutes by
default, so an http(s) server must first answer ``GET /health`` within CONNECT_SECONDS, and while
nncli logs, MLflow's retries and timeout are bounded (BOUNDS, unless the environment sets
them already).

Where runs go: ``track.mlflow.uri``, else MLflow's own default: the MLFLOW_TRACKING_URI
variable, else ``sqlite:///mlflow.db`` in the current directory (artifacts in ./mlruns),
which is what ``mlflow ui`` started in the same directory shows. The experiment:
``track.mlflow.experiment``, else the config's name (a sweep: the sweep's name).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

#: what ``--track`` accepts: a tracker, or none (no tracking, whatever the config says)
TRACKERS = ("mlflow", "none")
INSTALL = "pip install 'nncli[mlflow]'"
#: set to "off" in the environment of a sweep's points: the sweep's driver logs them itself
#: (as children of its parent run), so a point's own ``track:`` section is not acted on
POINT_ENV = "NNCLI_TRACK"
#: seconds an http(s) tracking server has to answer nncli's first request before nncli gives up
CONNECT_SECONDS = 3.0
#: MLflow's settings while nncli logs (each kept if the environment sets it): at most one
#: retry of an HTTP request, 10 s each (MLflow's defaults, 7 retries with exponential backoff
#: and 120 s each, would hold a finished run for minutes when the server is down), and no
#: progress bars on stderr
BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
          "MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
#: MLflow's limits
_BATCH_METRICS, _BATCH_PARAMS, _PARAM_CHARS, _KEY_CHARS = 1000, 100, 6000, 250
_KEY_RE = re.compile(r"[\w.\- ]+\Z")
#: the status of an MLflow run for each nncli status
RUN_STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED", "pruned": "KILLED"}


@dataclass
class Target:
    """Where runs are logged: a tracking URI (None: MLflow's default) and an experiment name."""

    uri: Optional[str]
    experiment: str
    resolved: Optional[str] = None  # the URI MLflow was given (uri, or MLflow's default), once tried


def target(flag: Optional[str], cfg, default_experiment: Optional[str] = None) -> Optional[Target]:
    """Where ``cfg``'s run is logged, or None: ``--track FLAG`` (mlflow, none, or None: not
    given) and the config's ``track`` section (which alone turns tracking on, unless the
    point of a sweep runs it: :data:`POINT_ENV`). ConfigError for an unknown tracker."""
    from .errors import ConfigError

    if flag is not None and flag not in TRACKERS:
        raise ConfigError(f"--track {flag}: unknown tracker; use {' or '.join(TRACKERS)}")
    if flag == "none":
        return None
    section = getattr(getattr(cfg, "track", None), "mlflow", None)
    if flag is None and (section is None or os.environ.get(POINT_ENV) == "off"):
        return None
    experiment = (section.experiment if section is not None else None) or default_experiment or getattr(cfg, "name", None) or "nncli"
    return Target(section.uri if section is not None else None, experiment)


def require_mlflow(what: str) -> None:
    """ConfigError (exit 2, before anything is trained) if MLflow is not installed."""
    import importlib.util

    from .errors import ConfigError

    try:
        found = importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        found = False
    if not found:
        raise ConfigError(f"{what} needs MLflow: {INSTALL}")


@contextlib.contextmanager
def points_untracked() -> Iterator[None]:
    """While the block runs, processes started from here (a sweep's points) do not act on a
    ``track:`` section of their config (:data:`POINT_ENV`); the environment is put back after."""
    old = os.environ.get(POINT_ENV)
    os.environ[POINT_ENV] = "off"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(POINT_ENV, None)
        else:
            os.environ[POINT_ENV] = old


# ---------------------------------------------------------------------- one run


def log_run(tgt: Target, run_dir, parent_id: Optional[str] = None, tags: Optional[dict] = None) -> tuple[Optional[str], list[str]]:
    """Log the finished run directory ``run_dir`` to ``tgt`` (a child of ``parent_id`` if
    given): (the MLflow run's id, or None if none was created; the warnings: at most one,
    none when everything was logged)."""
    run_dir = Path(run_dir).resolve()
    what = f"run {run_dir.name}"
    steps: list[str] = []
    ids: list[str] = []
    try:
        with _session(tgt) as (client, uri):
            try:
                _log_run_dir(client, _experiment_id(client, tgt.experiment), run_dir, parent_id, tags or {}, steps, ids)
            except Exception as e:
                if "metrics" in steps and "status" not in steps:  # the server answered until the artifacts:
                    with contextlib.suppress(Exception):  # do not leave the MLflow run RUNNING forever
                        client.set_terminated(ids[0], "FAILED")
                return (ids or [None])[0], [_not_logged(what, uri, steps, e)]
    except Exception as e:  # no session: MLflow could not be loaded, or the server is unreachable
        return None, [_not_logged(what, shown_uri(tgt.resolved or tgt.uri), steps, e)]
    return ids[0], []


def _log_run_dir(client, experiment_id: str, run_dir: Path, parent_id: Optional[str], tags: dict, steps: list[str],
                 ids: list[str]) -> None:
    from mlflow.entities import Metric, Param

    summary = _read_json(run_dir / "summary.json")
    config = _read_yaml(run_dir / "config.yaml")
    status = str(summary.get("status") or ("interrupted" if (run_dir / "checkpoint.npz").exists() else "failed"))
    all_tags = {"nncli.run_dir": str(run_dir), "nncli.run_id": run_dir.name, "nncli.status": status,
                "nncli.version": _version(), **({"mlflow.parentRunId": parent_id} if parent_id else {}), **tags}
    if summary.get("message"):
        all_tags["nncli.message"] = str(summary["message"])[:7000]
    start = _created_ms(summary.get("created")) or _mtime_ms(run_dir / "config.yaml")
    run = client.create_run(experiment_id, start_time=start, run_name=run_dir.name,
                            tags={k: str(v) for k, v in all_tags.items()})
    run_id = run.info.run_id
    ids.append(run_id)
    steps.append("the run")
    params = [Param(k, v) for k, v in flatten(config).items()]
    for i in range(0, len(params), _BATCH_PARAMS):
        client.log_batch(run_id, params=params[i:i + _BATCH_PARAMS])
    steps.append("params")
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, step) for step, row in epoch_metrics(run_dir / "metrics.csv") for k, v in row.items()]
    metrics += [Metric(k, v, now, 0) for k, v in summary_metrics(summary).items()]
    for i in range(0, len(metrics), _BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[i:i + _BATCH_METRICS])
    steps.append("metrics")
    for path in sorted(run_dir.iterdir()):
        if path.name.startswith("."):  # .lock
            continue
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path=path.name)
        else:
            client.log_artifact(run_id, str(path))
    steps.append("artifacts")
    client.set_terminated(run_id, RUN_STATUS.get(status, "FAILED"), end_time=_mtime_ms(run_dir / "summary.json") or now)
    steps.append("status")


def flatten(config: Any, prefix: str = "") -> dict[str, str]:
    """config.yaml's mapping as MLflow params: ``{"train.lr": "0.5", "model.layers": "[2, 4, 1]"}``.
    A mapping is flattened with dots when its keys can be MLflow param names (else it is one
    JSON value, as a class_weight mapping of arbitrary labels); text stays text, any other
    value is JSON; a value longer than MLflow's limit is cut (ending in ...)."""
    out: dict[str, str] = {}
    if not isinstance(config, dict):
        return out
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and all(_KEY_RE.match(f"{key}.{kk}") and len(f"{key}.{kk}") <= _KEY_CHARS for kk in v):
            out.update(flatten(v, key + "."))
            continue
        if not _KEY_RE.match(key) or len(key) > _KEY_CHARS:
            continue  # not a name MLflow accepts: left out (config.yaml, an artifact, has it)
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        out[key] = text if len(text) <= _PARAM_CHARS else text[: _PARAM_CHARS - 3] + "..."
    return out


def epoch_metrics(path: Path) -> list[tuple[int, dict[str, float]]]:
    """metrics.csv as (epoch, {column: value}) per row; an empty cell is left out."""
    import csv

    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                try:
                    epoch = int(row.pop("epoch"))
                except (KeyError, TypeError, ValueError):
                    continue
                values = {}
                for k, v in row.items():
                    if k and v not in (None, ""):
                        try:
                            values[k] = float(v)
                        except ValueError:
                            pass
                rows.append((epoch, values))
    except FileNotFoundError:
        pass
    return rows


def summary_metrics(summary: dict) -> dict[str, float]:
    """summary.json's figures as MLflow metrics: final_<name> of the trained model on the
    training data, final_val_<name> on the validation data, epochs_run, train_seconds,
    best_epoch."""
    out = {}
    for key, prefix in (("metrics", "final_"), ("val_metrics", "final_val_")):
        for name, value in (summary.get(key) or {}).items():
            if name != "rows" and isinstance(value, (int, float)) and not isinstance(value, bool):
                out[prefix + name] = float(value)
    for key in ("epochs_run", "train_seconds", "best_epoch"):
        value = summary.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


# ---------------------------------------------------------------------- a sweep


@dataclass
class SweepTracker:
    """One sweep in MLflow: a parent run (:meth:`start`), a child per point (:meth:`point`,
    from the sweep's done callback), the parent's end (:meth:`finish`). Each returns the
    warnings; once the parent could not be created, nothing more is tried."""

    tgt: Target
    sweep_dir: Path
    params: dict = field(default_factory=dict)  # the parent run's params: sweep_params(spec)
    parent_id: Optional[str] = None
    failed: bool = False  # the parent run could not be created: nothing more is tried
    unlogged: int = 0  # points not (wholly) logged; the first one's warning is shown, the count at the end

    def start(self) -> list[str]:
        what = f"sweep {Path(self.sweep_dir).name} (its parent run, hence its points)"
        try:
            with _session(self.tgt) as (client, uri):
                try:
                    from mlflow.entities import Param

                    eid = _experiment_id(client, self.tgt.experiment)
                    sweep_dir = Path(self.sweep_dir).resolve()
                    run = client.create_run(eid, run_name=sweep_dir.name, tags={
                        "nncli.sweep_dir": str(sweep_dir), "nncli.version": _version()})
                    self.parent_id = run.info.run_id
                    params = [Param(k, v) for k, v in self.params.items()]
                    for i in range(0, len(params), _BATCH_PARAMS):
                        client.log_batch(self.parent_id, params=params[i:i + _BATCH_PARAMS])
                except Exception as e:
                    return self._give_up(what, uri, e)
        except Exception as e:
            return self._give_up(what, shown_uri(self.tgt.resolved or self.tgt.uri), e)
        return []

    def point(self, task) -> list[str]:
        """Log a finished task (nncli.executors.Task) as a child run: its run directory if it
        wrote one (its --json line names it), else a FAILED run with its params and error."""
        if self.failed or self.parent_id is None:
            return []
        notes = self._point(task)
        self.unlogged += bool(notes)
        return notes if self.unlogged <= 1 else []

    def _point(self, task) -> list[str]:
        tags = {"nncli.sweep_point": str(task.index + 1)}
        run_dir = _task_run_dir(task)
        if run_dir is not None:
            return log_run(self.tgt, run_dir, self.parent_id, tags)[1]
        what = f"sweep point {task.index + 1} (it wrote no run directory)"
        try:
            with _session(self.tgt) as (client, uri):
                try:
                    from mlflow.entities import Param

                    eid = _experiment_id(client, self.tgt.experiment)
                    error = (task.stderr.strip().splitlines() or [""])[-1][:7000]
                    run = client.create_run(eid, run_name=f"{Path(self.sweep_dir).name}-point-{task.index + 1}", tags={
                        "mlflow.parentRunId": self.parent_id, "nncli.status": "failed", "nncli.error": error,
                        "nncli.version": _version(), **tags})
                    params = [Param(k, v) for k, v in flatten(dict(task.params)).items()]
                    for i in range(0, len(params), _BATCH_PARAMS):
                        client.log_batch(run.info.run_id, params=params[i:i + _BATCH_PARAMS])
                    client.set_terminated(run.info.run_id, "KILLED" if _interrupted(task.returncode) else "FAILED")
                except Exception as e:
                    return [_not_logged(what, uri, [], e)]
        except Exception as e:
            return [_not_logged(what, shown_uri(self.tgt.resolved or self.tgt.uri), [], e)]
        return []

    def finish(self, status: str, files: tuple[str, ...] = ("sweep.yaml", "results.csv")) -> list[str]:
        """End the parent run with ``status`` (completed, failed or interrupted) and the
        sweep directory's ``files`` as its artifacts."""
        if self.failed or self.parent_id is None:
            return []
        more = [f"MLflow: {self.unlogged - 1} more points of sweep {Path(self.sweep_dir).name} were not (wholly) logged"] \
            if self.unlogged > 1 else []
        return more + self._finish(status, files)

    def _finish(self, status: str, files: tuple[str, ...]) -> list[str]:
        what = f"the end of sweep {Path(self.sweep_dir).name} (its {', '.join(files)} and status)"
        try:
            with _session(self.tgt) as (client, uri):
                try:
                    for name in files:
                        path = Path(self.sweep_dir) / name
                        if path.is_file():
                            client.log_artifact(self.parent_id, str(path))
                    client.set_terminated(self.parent_id, RUN_STATUS.get(status, "FAILED"))
                except Exception as e:
                    return [_not_logged(what, uri, [], e)]
        except Exception as e:
            return [_not_logged(what, shown_uri(self.tgt.resolved or self.tgt.uri), [], e)]
        return []

    def _give_up(self, what: str, uri: str, e: Exception) -> list[str]:
        self.failed = True
        return [_not_logged(what, uri, [], e)]


def sweep_target(flag: Optional[str], sweep_file) -> Optional[Target]:
    """Where a sweep is logged, or None: ``--track FLAG`` and the ``track`` section of its
    base config; the experiment defaults to the sweep's name. A sweep file or base config
    that cannot be read gives None here: the sweep itself then reports it."""
    from .config import load_config
    from .errors import NncliError
    from .sweep import load_sweep

    target(flag, None)  # an unknown --track
    if flag == "none":
        return None
    try:
        spec = load_sweep(sweep_file)
        cfg = load_config(spec.base)
    except NncliError:
        return None
    return target(flag, cfg, default_experiment=spec.name or Path(sweep_file).stem)


def sweep_params(spec) -> dict:
    """A sweep's parent-run params: its spec (base config, grid, random draws, search,
    pruning, ranking metric) flattened, keys with no value left out."""
    d = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else dict(spec)
    return {k: v for k, v in flatten(d).items() if v != "null"}


def _task_run_dir(task) -> Optional[Path]:
    run_dir = task.summary.get("run_dir")  # (nncli.executors.Task: its --json line)
    return Path(run_dir) if run_dir and Path(run_dir).is_dir() else None


def _interrupted(returncode) -> bool:
    import signal

    return returncode in (130, -signal.SIGINT, -signal.SIGTERM)


# ---------------------------------------------------------------------- the MLflow session


@contextlib.contextmanager
def _session(tgt: Target):
    """(an MlflowClient for ``tgt``, its URI as shown) with MLflow's HTTP retries bounded
    (:data:`BOUNDS`), its log lines, Python warnings and stdout silenced, and an http(s)
    server checked with a short request first; everything put back afterwards."""
    import logging
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow  # first: importing it sets the level of its logger
        from mlflow.tracking import MlflowClient
    saved_env = {k: os.environ.get(k) for k in BOUNDS}
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic", "sqlalchemy", "urllib3")]
    levels = [lg.level for lg in loggers]
    try:
        for k, v in BOUNDS.items():
            os.environ.setdefault(k, v)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        # MLflow writes "View run ... at: URL" lines on stdout (an http server), where nncli
        # prints only its result: they go nowhere
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            uri = tgt.resolved = tgt.uri or mlflow.get_tracking_uri()
            _check_reachable(uri)
            yield MlflowClient(tracking_uri=uri), shown_uri(uri)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _check_reachable(uri: str) -> None:
    """ConnectionError if an http(s) tracking server does not answer within CONNECT_SECONDS:
    no connection (nothing listens, no route) or no reply to ``GET /health`` (a server that
    accepts connections but hangs). Any reply, whatever its status, counts as an answer."""
    import http.client
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(host, port, timeout=CONNECT_SECONDS)
    try:
        conn.request("GET", parts.path.rstrip("/") + "/health")
        conn.getresponse().read(1024)
    except (socket.timeout, TimeoutError):
        raise ConnectionError(f"no answer from {host}:{port} within {CONNECT_SECONDS:g} s") from None
    except (ConnectionError, socket.gaierror) as e:
        raise ConnectionError(f"cannot connect to {host}:{port} ({e.strerror or type(e).__name__})") from None
    except OSError as e:
        if e.errno is not None:  # no route to the host, network unreachable, ...
            raise ConnectionError(f"cannot connect to {host}:{port} ({e.strerror or e})") from None
        # an answer nncli cannot read itself (TLS, a malformed reply): MLflow's client says what it is
    except http.client.HTTPException:
        pass
    finally:
        conn.close()


def _experiment_id(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name)
        except Exception:  # created meanwhile by another process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise ValueError(f"experiment {name!r} is deleted in MLflow: restore it (mlflow experiments restore) "
                         "or name another with track.mlflow.experiment")
    return exp.experiment_id


def _not_logged(what: str, uri: str, steps: list[str], e: Exception) -> str:
    from .formats import short

    done = [s for s in steps if s != "the run"]
    missing = [s for s in ("params", "metrics", "artifacts", "status") if s not in steps]
    part = (f"{', '.join(missing)} of {what}" if done else what)
    cause = short((str(e).strip().splitlines() or [type(e).__name__])[0], 300) or type(e).__name__
    return f"MLflow ({uri}): not logged: {part}: {type(e).__name__}: {cause}; the nncli run itself is complete"


def shown_uri(uri: Optional[str]) -> str:
    """The URI without a password (http://user:secret@host -> http://user:***@host)."""
    if not uri:
        return os.environ.get("MLFLOW_TRACKING_URI") or "MLflow's default URI"
    return re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", uri)


def _version() -> str:
    from . import __version__

    return __version__


def _read_json(path: Path) -> dict:
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        out = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return out if isinstance(out, dict) else {}


def _created_ms(created) -> Optional[int]:
    from datetime import datetime

    try:
        return int(datetime.strptime(str(created), "%Y-%m-%dT%H:%M:%S%z").timestamp() * 1000)
    except ValueError:
        return None


def _mtime_ms(path: Path) -> Optional[int]:
    try:
        return int(path.stat().st_mtime * 1000)
    except OSError:
        return None
