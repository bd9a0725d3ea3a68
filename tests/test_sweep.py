"""``nncli sweep`` and the sweep logic behind it (nncli/sweep.py).

The library part runs in this process: ``Sweep.create`` (every point validated before
anything is created; sweep.yaml; one task per point), ``task_status``, ``Sweep.run`` with
an executor of the test's own (the Executor interface: no process is started), and
``Sweep.results`` (the ranking metric and its fallbacks; results.csv). The executors here
either run each task's command line in this process (helpers.nn, real run directories) or
fabricate run directories with chosen metrics. The ``nncli sweep`` command itself is run
in-process too, with its real default backend (nncli.workers.LocalWorkerExecutor: long-lived
worker processes that train point after point); tests/test_workers.py compares its runs
with those of the process executor (one ``python -m nncli train`` process per point).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import nncli.executors
import nncli.workers
from helpers import (Res, signal_when, add_blobs, assert_usage_error, chdir, nn, npz_arrays, read_text_csv, setup_workdir, start_cli,
                     summary, tmp_leftovers, write_yaml, xor_yaml)
from nncli.errors import ConfigError
from nncli.pointrun import Point
from nncli.runs import create_run_dir
from nncli.sweep import Executor, Sweep, Task, task_status

ESC = "\x1b"
XOR = "configs/xor.yaml"
RUN_ID_RE = re.compile(r"\d{8}-\d{6}-[A-Za-z0-9._-]+-[0-9a-f]{4}")


# ----------------------------------------------------------------------------- helpers


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


class InProcessExecutor(Executor):
    """Runs each task's ``python -m nncli ...`` command line in this process (helpers.nn):
    the same run directories, output and exit code, without a process."""

    def __init__(self):
        self.seen: list[Task] = []

    def run(self, tasks, done, report=None):
        for t in tasks:
            assert t.argv[:3] == [sys.executable, "-m", "nncli"], t.argv
            r = nn(*t.argv[3:], cwd=Path.cwd())
            assert not r.tb, r.show()
            t.returncode, t.stdout, t.stderr = r.rc, r.text, r.err
            self.seen.append(t)
            done(t)


class FabricatingExecutor(Executor):
    """Writes the run directory of each task by hand: config.yaml with the point's values and
    summary.json with the chosen status and metrics (a run that 'finished' instantly)."""

    def __init__(self, outcomes: list[dict]):
        self.outcomes = outcomes  # per task: status, metrics, val_metrics, returncode, stderr

    def run(self, tasks, done, report=None):
        for t, o in zip(tasks, self.outcomes, strict=True):
            name = option(t.argv, "--name")
            run = create_run_dir(option(t.argv, "--runs-dir"), name)
            cfg = {"name": name}
            for key, value in t.params.items():
                section, _, leaf = key.partition(".")
                cfg.setdefault(section, {})[leaf] = value
            write_yaml(run / "config.yaml", cfg)
            s = {"status": o.get("status", "completed"), "epochs_run": 5, "metrics": o["metrics"], "train_seconds": 0.25}
            if o.get("val_metrics"):
                s["val_metrics"] = o["val_metrics"]
            (run / "summary.json").write_text(json.dumps(s), encoding="utf-8")
            t.returncode, t.stdout, t.stderr = o.get("returncode", 0), f"{run}\n", o.get("stderr", "")
            done(t)


class ReturnCodeExecutor(Executor):
    """Only reports the given exit code and stderr for each task (no run directories)."""

    def __init__(self, outcomes: list[tuple[int, str]]):
        self.outcomes = outcomes

    def run(self, tasks, done, report=None):
        for t, (rc, err) in zip(tasks, self.outcomes, strict=True):
            t.returncode, t.stderr = rc, err
            done(t)


def no_processes(monkeypatch) -> list:
    """Make every attempt to start a process fail the test (and record it)."""
    started = []

    def refuse(*args, **kwargs):
        started.append(args)
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(nncli.executors.LocalProcessExecutor, "run", refuse)
    monkeypatch.setattr(nncli.workers.LocalWorkerExecutor, "run", refuse)
    return started


@pytest.fixture
def sweep_cwd(workdir, monkeypatch) -> Path:
    """A work directory (configs/xor.yaml, datasets/xor.csv) that is the current directory."""
    monkeypatch.chdir(workdir)
    return workdir


# ----------------------------------------------------------------------------- Sweep.create


def test_create_validates_every_point_before_creating_anything(sweep_cwd):
    # the product runs activation-major: points 5 and 6 have the unknown activation
    write_yaml(sweep_cwd / "bad.yaml", {"base": XOR, "grid": {"model.activation": ["tanh", "relu", "nope"],
                                                               "train.lr": [0.1, 0.5]}})
    with pytest.raises(ConfigError) as e:
        Sweep.create(sweep_cwd / "bad.yaml", sweep_cwd / "runs")
    msg = str(e.value)
    assert msg.startswith('sweep point 5 (model.activation="nope", train.lr=0.1): '), msg
    assert "model.activation" in msg.split(": ", 1)[1] and "nope" in msg, msg
    assert not (sweep_cwd / "runs").exists(), list((sweep_cwd / "runs").rglob("*"))


def test_create_rejects_an_invalid_sweep_name_before_creating_anything(sweep_cwd):
    write_yaml(sweep_cwd / "named.yaml", {"base": XOR, "name": "lr sweep/1", "grid": {"train.lr": [0.1]}})
    with pytest.raises(ConfigError, match="name 'lr sweep/1' is not valid"):
        Sweep.create(sweep_cwd / "named.yaml", sweep_cwd / "runs")
    assert not (sweep_cwd / "runs").exists()


def test_create_writes_sweep_yaml_and_one_task_per_point(sweep_cwd):
    spec = {
        "base": XOR,
        "grid": {"train.lr": [0.1, "1e-2"], "model.layers": [["auto", 8, "auto"]]},
        "random": {"samples": 2, "seed": 3, "params": {
            "train.l2": {"log_uniform": [1.0e-6, 1.0e-2]},
            "model.activation": {"choice": ["tanh", "relu"]},
            "train.momentum": {"uniform": [0.5, 0.99]},
        }},
    }
    path = write_yaml(sweep_cwd / "lr_l2.yaml", spec)
    sw = Sweep.create(path, "runs")
    assert sw.name == "lr_l2"  # the file's stem
    assert sw.dir.parent == Path("runs") and re.fullmatch(r"\d{8}-\d{6}-lr_l2-[0-9a-f]{4}", sw.dir.name), sw.dir
    assert sorted(p.name for p in sw.dir.iterdir()) == ["sweep.yaml"]
    assert sw.failed == [] and not sw.stopped

    # 2 grid points x 2 random draws; "1e-2" (text to YAML 1.1) is the number 0.01
    assert len(sw.tasks) == 4
    pts = [t.params for t in sw.tasks]
    assert [(p["train.lr"], p["model.layers"]) for p in pts] == [(0.1, ["auto", 8, "auto"])] * 2 + [(0.01, ["auto", 8, "auto"])] * 2
    assert isinstance(pts[2]["train.lr"], float)
    for p in pts:
        assert list(p) == ["train.lr", "model.layers", "train.l2", "model.activation", "train.momentum"]
        assert 1e-6 <= p["train.l2"] <= 1e-2 and 0.5 <= p["train.momentum"] <= 0.99
        assert p["model.activation"] in ("tanh", "relu")
    assert len({p["train.l2"] for p in pts}) == 4  # a fresh draw for every point

    saved = yaml.safe_load((sw.dir / "sweep.yaml").read_text(encoding="utf-8"))
    assert saved["points"] == pts
    assert saved["sweep"]["base"] == XOR and saved["sweep"]["random"]["seed"] == 3
    assert saved["sweep"]["grid"]["train.lr"] == [0.1, 0.01]
    assert saved["sweep"]["plots"] is False and saved["sweep"]["metric"] is None

    for i, t in enumerate(sw.tasks):
        assert t.index == i and t.returncode is None
        sets = [f"{k}={json.dumps(v)}" for k, v in t.params.items()]
        assert t.argv == [sys.executable, "-m", "nncli", "train", XOR, "--runs-dir", str(sw.dir),
                          "--name", f"lr_l2-{i + 1:03d}", "--quiet", "--json", "--no-plots",
                          *itertools.chain.from_iterable(("--set", s) for s in sets)]

    # the random draws are seeded: the same file gives the same points (in a new directory)
    again = Sweep.create(path, "runs")
    assert again.dir != sw.dir
    assert [t.params for t in again.tasks] == pts


def test_create_with_plots_and_a_name(sweep_cwd):
    path = write_yaml(sweep_cwd / "s.yaml", {"base": XOR, "name": "pics", "plots": True, "grid": {"train.lr": [0.1]}})
    sw = Sweep.create(path, sweep_cwd / "elsewhere")
    assert sw.name == "pics" and sw.dir.parent == sweep_cwd / "elsewhere"
    (t,) = sw.tasks
    assert "--no-plots" not in t.argv
    assert option(t.argv, "--name") == "pics-001"


# ----------------------------------------------------------------------------- task_status and Sweep.run


@pytest.mark.parametrize("rc, stderr, status", [
    (0, "nncli: warning: something\n", "completed"),
    (1, "epoch 1/50  loss 0.5\nnncli: error: training diverged at epoch 3; try a lower learning rate\n\n",
     "failed: nncli: error: training diverged at epoch 3; try a lower learning rate"),
    (1, "", "failed"),
    (130, "epoch 1/50\nnncli: error: interrupted after 2 epochs; checkpoint saved\n",
     "interrupted: nncli: error: interrupted after 2 epochs; checkpoint saved"),
    (-2, "Traceback (most recent call last):\n  ...\nKeyboardInterrupt\n", "interrupted: KeyboardInterrupt"),
    (-2, "", "interrupted"),
    (-15, "", "interrupted"),
    (-9, "", "failed (exit -9)"),
    (2, "nncli: error: bad.yaml: train.lr: must be positive\n", "failed (exit 2): nncli: error: bad.yaml: train.lr: must be positive"),
])
def test_task_status_names_the_outcome_and_the_last_stderr_line(rc, stderr, status):
    t = Task(0, Point(XOR), {}, returncode=rc, stderr=stderr)
    assert task_status(t) == status


def test_run_reports_every_task_and_records_failures_but_not_interruptions(sweep_cwd):
    path = write_yaml(sweep_cwd / "s.yaml", {"base": XOR, "grid": {"train.lr": [0.1, 0.2, 0.3, 0.4]}})
    sw = Sweep.create(path, "runs")
    outcomes = [(0, ""), (1, "nncli: error: diverged\n"), (130, "nncli: error: interrupted\n"), (-9, "")]
    reported = []
    sw.run(ReturnCodeExecutor(outcomes), lambda t, status: reported.append((t.index, status)))
    assert reported == [(0, "completed"), (1, "failed: nncli: error: diverged"),
                        (2, "interrupted: nncli: error: interrupted"), (3, "failed (exit -9)")]
    assert [t.index for t in sw.failed] == [1, 3]
    assert not sw.stopped


# ----------------------------------------------------------------------------- a custom executor, real runs


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    """A blobs sweep (3 learning rates, a validation split) run by InProcessExecutor while
    starting a process is forbidden: (work dir, sweep, executor, on_done reports, processes started)."""
    wd = add_blobs(setup_workdir(tmp_path_factory.mktemp("sweep")))
    write_yaml(wd / "blobs_lr.yaml", {"base": "configs/blobs.yaml",
                                      "grid": {"train.lr": [0.001, 0.05, 1.0], "data.val_split": [0.25]}})
    reported = []
    with pytest.MonkeyPatch.context() as mp, chdir(wd):
        started = no_processes(mp)
        sw = Sweep.create("blobs_lr.yaml", "runs")
        ex = InProcessExecutor()
        sw.run(ex, lambda t, status: reported.append((t.index, status)))
        df, metric, _ = sw.results()
    return wd, sw, ex, reported, started, df, metric


def test_sweep_run_uses_the_executor_it_is_given(real_sweep):
    """Sweep.run hands every task to the executor passed in, and only to it: no process is
    started (subprocess.Popen, LocalProcessExecutor.run and LocalWorkerExecutor.run are forbidden)."""
    wd, sw, ex, reported, started, _, _ = real_sweep
    assert started == []
    assert ex.seen == sw.tasks and len(sw.tasks) == 3
    assert reported == [(0, "completed"), (1, "completed"), (2, "completed")]
    assert sw.failed == []
    runs = sorted(p for p in (wd / sw.dir).iterdir() if p.is_dir())
    assert len(runs) == 3
    for t in sw.tasks:
        obj = json.loads(t.stdout)  # --json: one object on stdout
        run = wd / obj["run_dir"]
        assert run in runs and re.fullmatch(rf"\d{{8}}-\d{{6}}-blobs_lr-{t.index + 1:03d}-[0-9a-f]{{4}}", run.name), run
        cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        assert cfg["train"]["lr"] == pytest.approx(t.params["train.lr"]) and cfg["data"]["val_split"] == 0.25
        assert summary(run)["status"] == "completed"
        assert not (run / "loss.png").exists()  # plots: false in the sweep file
    assert tmp_leftovers(wd) == []


def test_sweep_results_of_real_runs_rank_by_val_accuracy(real_sweep):
    wd, sw, _, _, _, df, metric = real_sweep
    assert metric == "val_accuracy"  # a validation split: its accuracy ranks
    assert len(df) == 3
    key = [(-summary(wd / sw.dir / i)["val_metrics"]["accuracy"], summary(wd / sw.dir / i)["val_metrics"]["loss"])
           for i in df["id"]]
    assert key == sorted(key), key
    assert list(df["val_accuracy"]) == [-k[0] for k in key]
    saved = read_text_csv(wd / sw.dir / "results.csv")
    assert list(saved.columns) == list(map(str, df.columns))
    assert list(saved["id"]) == list(df["id"])
    assert [float(v) for v in saved["val_accuracy"]] == list(df["val_accuracy"])


# ----------------------------------------------------------------------------- Sweep.results: which metric ranks

# Three points whose scores rank them differently under every candidate metric, so the
# order of the results shows which metric was used.
SCORES = {
    "val_accuracy": [0.5, 0.9, 0.7],  # best first: 1, 2, 0
    "val_r2": [0.9, 0.5, 0.7],        # 0, 2, 1
    "accuracy": [0.7, 0.5, 0.9],      # 2, 0, 1
    "r2": [0.9, 0.7, 0.5],            # 0, 1, 2
    "loss": [0.2, 0.1, 0.3],          # lowest first: 1, 0, 2
}
ORDER = {"val_accuracy": [1, 2, 0], "val_r2": [0, 2, 1], "accuracy": [2, 0, 1], "r2": [0, 1, 2], "loss": [1, 0, 2]}


def fabricated_sweep(cwd: Path, present: list[str], metric=None, statuses=None):
    spec = {"base": XOR, "grid": {"train.lr": [0.1, 0.2, 0.3]}}
    if metric is not None:
        spec["metric"] = metric
    sw = Sweep.create(write_yaml(cwd / "fab.yaml", spec), "runs")
    outcomes = []
    for i in range(3):
        train = {m: SCORES[m][i] for m in present if not m.startswith("val_")}
        val = {m[4:]: SCORES[m][i] for m in present if m.startswith("val_")}
        outcomes.append({"metrics": train, "val_metrics": {**val, "loss": 0.3} if val else None,
                         "status": (statuses or ["completed"] * 3)[i]})
    sw.run(FabricatingExecutor(outcomes), lambda t, s: None)
    return sw


def check_results_csv(sw, df):
    saved = read_text_csv(sw.dir / "results.csv")
    assert list(saved.columns) == list(map(str, df.columns))
    assert list(saved["id"]) == list(df["id"])
    for col in df.columns:
        for got, want in zip(saved[col], df[col]):
            if want is None or (isinstance(want, float) and math.isnan(want)):
                assert got == "", (col, got, want)  # missing: an empty cell
            elif isinstance(want, float):
                assert float(got) == want, (col, got, want)
            else:
                assert got == str(want), (col, got, want)


@pytest.mark.parametrize("present, expected", [
    (["val_accuracy", "val_r2", "accuracy", "r2", "loss"], "val_accuracy"),
    (["val_r2", "accuracy", "r2", "loss"], "val_r2"),
    (["accuracy", "r2", "loss"], "accuracy"),
    (["r2", "loss"], "r2"),
    (["loss"], "loss"),
])
def test_results_fall_back_to_the_first_metric_present(sweep_cwd, present, expected):
    sw = fabricated_sweep(sweep_cwd, present)
    df, metric, _ = sw.results()
    assert metric == expected
    ids = sorted(p.name for p in sw.dir.iterdir() if p.is_dir())  # created in point order
    assert list(df["id"]) == [ids[i] for i in ORDER[expected]], df
    check_results_csv(sw, df)


@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_results_rank_by_the_sweep_files_metric(sweep_cwd, metric):
    """metric: in the sweep file wins over the default (val_accuracy is present here)."""
    sw = fabricated_sweep(sweep_cwd, list(SCORES), metric=metric)
    df, used, _ = sw.results()
    assert used == metric
    ids = sorted(p.name for p in sw.dir.iterdir() if p.is_dir())
    assert list(df["id"]) == [ids[i] for i in ORDER[metric]], df
    check_results_csv(sw, df)


def test_results_with_a_metric_no_run_reports_fall_back_with_a_note(sweep_cwd):
    """metric: val_accuracy on runs without validation data: ranked by the default, and said so."""
    sw = fabricated_sweep(sweep_cwd, ["accuracy", "loss"], metric="val_accuracy")
    df, used, notes = sw.results()
    assert used == "accuracy"
    ids = sorted(p.name for p in sw.dir.iterdir() if p.is_dir())
    assert list(df["id"]) == [ids[i] for i in ORDER["accuracy"]], df
    assert notes == ["no run reports val_accuracy; ranked by accuracy instead"]


def test_an_unknown_metric_is_refused_when_the_sweep_is_loaded(sweep_cwd):
    path = write_yaml(sweep_cwd / "typo.yaml", {"base": XOR, "grid": {"train.lr": [0.1]}, "metric": "val_acc"})
    with pytest.raises(ConfigError, match=r"metric: unknown column 'val_acc'; did you mean 'val_accuracy'\?"):
        Sweep.create(path, "runs")
    assert not (sweep_cwd / "runs").exists()


def test_random_bounds_and_choices_written_like_1e_3_are_numbers(sweep_cwd):
    (sweep_cwd / "r.yaml").write_text(
        f"base: {XOR}\nrandom:\n  samples: 4\n  seed: 1\n  params:\n"
        "    train.l2: {log_uniform: [1e-6, 1e-2]}\n    train.lr: {choice: [1e-3, 1e-2]}\n", encoding="utf-8")
    sw = Sweep.create(sweep_cwd / "r.yaml", "runs")
    for t in sw.tasks:
        assert isinstance(t.params["train.l2"], float) and 1e-6 <= t.params["train.l2"] <= 1e-2
        assert t.params["train.lr"] in (1e-3, 1e-2) and isinstance(t.params["train.lr"], float)


def test_a_custom_executor_that_stops_makes_the_sweep_interrupted(sweep_cwd):
    class StopAtOnce(Executor):
        def run(self, tasks, done, report=None):
            self.stop()  # the interface's own stop: no attribute of a particular backend

    sw = Sweep.create(write_yaml(sweep_cwd / "s.yaml", {"base": XOR, "grid": {"train.lr": [0.1]}}), "runs")
    sw.run(StopAtOnce(), lambda t, s: None)
    assert sw.stopped and not sw.failed


def test_results_rank_unfinished_runs_last(sweep_cwd):
    """The best val_accuracy belongs to a diverged run: completed runs still rank first."""
    sw = fabricated_sweep(sweep_cwd, ["val_accuracy", "loss"], statuses=["completed", "diverged", "completed"])
    df, metric, _ = sw.results()
    ids = sorted(p.name for p in sw.dir.iterdir() if p.is_dir())
    assert metric == "val_accuracy"
    assert list(df["id"]) == [ids[2], ids[0], ids[1]]
    assert list(df["status"]) == ["completed", "completed", "diverged"]
    check_results_csv(sw, df)


# ----------------------------------------------------------------------------- nncli sweep


SWEEP_YAML = """\
base: configs/xor.yaml
grid:
  train.lr: [0.1, 0.5, 1.0]
  model.layers: [[auto, 4, auto], [auto, 8, auto]]
  train.epochs: [30]
"""


def _progress(err: str, total: int) -> list[str]:
    return [ln for ln in err.splitlines() if re.match(rf"^\[\d+/{total}\] ", ln)]


def _sweep_dir(r: Res, wd: Path) -> Path:
    lines = r.text.rstrip("\n").splitlines()
    assert lines, r.show()
    path = wd / lines[-1]
    assert path.is_dir(), r.show()
    assert path.parent.resolve() == (wd / "runs").resolve(), path
    return path


def test_sweep_grid_runs_every_point_and_ranks_them(workdir):
    (workdir / "lr_layers.yaml").write_text(SWEEP_YAML, encoding="utf-8")
    r = nn("sweep", "lr_layers.yaml", "--jobs", "2", cwd=workdir)
    assert r.rc == 0, r.show()
    sd = _sweep_dir(r, workdir)
    assert "lr_layers" in sd.name
    entries = sorted(sd.iterdir())
    run_dirs = [p for p in entries if p.is_dir()]
    assert len(run_dirs) == 6, entries
    assert sorted(p.name for p in entries if not p.is_dir()) == ["results.csv", "sweep.yaml"], entries
    for run in run_dirs:
        s = summary(run)
        assert s["status"] == "completed" and s["epochs_run"] == 30, (run, s)
        assert (run / "model.npz").is_file() and (run / "metrics.csv").is_file()
    # one progress line per point, all completed
    progress = _progress(r.err, 6)
    assert len(progress) == 6, r.show()
    assert sorted(int(ln[1:ln.index("/")]) for ln in progress) == [1, 2, 3, 4, 5, 6]
    assert all("completed" in ln for ln in progress), progress
    # results.csv: one row per point, the grid exactly
    rows = read_text_csv(sd / "results.csv").to_dict("records")
    assert len(rows) == 6, rows
    assert {row["id"] for row in rows} == {p.name for p in run_dirs}
    combos = {(float(row["train.lr"]), tuple(json.loads(row["model.layers"]))) for row in rows}
    assert combos == {(lr, (2, h, 1)) for lr, h in itertools.product((0.1, 0.5, 1.0), (4, 8))}
    for row in rows:
        cfg = yaml.safe_load((sd / row["id"] / "config.yaml").read_text(encoding="utf-8"))
        assert cfg["train"]["lr"] == pytest.approx(float(row["train.lr"]))
        assert cfg["model"]["layers"] == json.loads(row["model.layers"])
    # ranked: best accuracy first, in results.csv and in the table on stdout
    acc = [float(row["accuracy"]) for row in rows]
    assert acc == sorted(acc, reverse=True), acc
    table_ids = RUN_ID_RE.findall("\n".join(r.text.splitlines()[:-1]))
    assert table_ids == [row["id"] for row in rows], (table_ids, [row["id"] for row in rows])
    assert ESC not in r.text + r.err
    assert tmp_leftovers(workdir) == []


def test_sweep_with_a_failing_point_exits_1_and_keeps_the_others(workdir):
    # linear hidden units: trains (badly) at lr 0.5, overflows at lr 1e37
    (workdir / "configs" / "xor_id.yaml").write_text(xor_yaml(("activation: tanh", "activation: identity")),
                                                     encoding="utf-8")
    (workdir / "fails.yaml").write_text(
        "base: configs/xor_id.yaml\ngrid:\n  train.lr: [0.5, 1.0e+37]\n  train.epochs: [40]\n", encoding="utf-8")
    r = nn("sweep", "fails.yaml", "--jobs", "2", cwd=workdir)
    assert r.rc == 1, r.show()
    sd = _sweep_dir(r, workdir)
    run_dirs = [p for p in sd.iterdir() if p.is_dir()]
    assert len(run_dirs) == 2
    rows = read_text_csv(sd / "results.csv").to_dict("records")
    assert sorted(row["status"] for row in rows) == ["completed", "diverged"], rows
    progress = _progress(r.err, 2)
    assert len(progress) == 2, r.show()
    assert sum("completed" in ln for ln in progress) == 1 and sum("failed" in ln for ln in progress) == 1, progress
    # the failed point's line carries the run's own error message
    failed = next(ln for ln in progress if "failed" in ln)
    assert "train.lr=1e+37" in failed and "diverged" in failed, failed
    assert r.err_lines[-1].startswith("nncli: error:") and "1 of 2 runs failed" in r.err_lines[-1], r.show()


def test_sweep_rejects_an_unknown_grid_key_before_any_run(workdir):
    (workdir / "typo.yaml").write_text("base: configs/xor.yaml\ngrid:\n  train.lrr: [0.1, 0.5]\n", encoding="utf-8")
    r = nn("sweep", "typo.yaml", "--jobs", "2", cwd=workdir)
    assert_usage_error(r, "train.lrr", "did you mean 'lr'")
    assert r.text == ""
    assert not (workdir / "runs").exists(), list((workdir / "runs").rglob("*"))


def test_sweep_rejects_an_unknown_top_level_key_naming_the_valid_ones(workdir):
    (workdir / "typo.yaml").write_text("base: configs/xor.yaml\ngrids:\n  train.lr: [0.1, 0.5]\n", encoding="utf-8")
    r = nn("sweep", "typo.yaml", cwd=workdir)
    assert_usage_error(r, "typo.yaml", "grids", "did you mean 'grid'",
                       "(valid keys here: base, name, grid, random, metric, plots, search, params, prune)")
    assert not (workdir / "runs").exists()


def test_sweep_rejects_a_bad_point_before_any_run(workdir):
    (workdir / "bad.yaml").write_text("base: configs/xor.yaml\ngrid:\n  train.lr: [0.1, -1]\n", encoding="utf-8")
    r = nn("sweep", "bad.yaml", cwd=workdir)
    assert_usage_error(r, "sweep point 2 (train.lr=-1)", "train.lr")
    assert not (workdir / "runs").exists()


def test_sweep_interrupted_stops_its_workers_keeps_their_runs_and_exits_130(workdir):
    """SIGINT to ``nncli sweep`` (a real process: signals): each running worker checkpoints
    and exits 130, the pending point never starts, results.csv is written, exit 130."""
    (workdir / "long.yaml").write_text(
        "base: configs/xor.yaml\ngrid:\n  train.lr: [0.1, 0.2, 0.3]\n  train.epochs: [10000000]\n", encoding="utf-8")
    p = start_cli("sweep", "long.yaml", "--jobs", "2", cwd=workdir)
    # a worker installs its signal handler before it creates its run directory; then let them train some epochs
    r = signal_when(p, lambda: len(list((workdir / "runs").glob("*/*/config.yaml"))) >= 2, "the workers starting",
                    settle=0.5, poll=0.05)
    assert r.rc == 130, r.show()
    sd = _sweep_dir(r, workdir)
    runs = sorted(q for q in sd.iterdir() if q.is_dir())
    assert len(runs) == 2, runs  # the third point never started
    for run in runs:
        s = summary(run)
        assert s["status"] == "interrupted" and s["epochs_run"] >= 1, s
        assert len(npz_arrays(run / "checkpoint.npz")) > 0
    rows = read_text_csv(sd / "results.csv").to_dict("records")
    assert sorted(row["id"] for row in rows) == [q.name for q in runs]
    progress = _progress(r.err, 3)
    assert len(progress) == 2 and all(": interrupted" in ln for ln in progress), r.show()
    assert r.err_lines[-1].startswith("nncli: error: sweep interrupted"), r.show()
    assert "Traceback" not in r.err
