"""``nncli sweep`` as an Optuna study (nncli/study.py): search (grid, random, tpe), pruning
(median, hyperband) and --storage (resumable, shared studies).

The sweeps run through the real CLI and the real local executor; what they did is checked
against Optuna itself: its API on the storage (trial states, values, parameters), its own
samplers replayed on the same results (the same points come out), and the median rule
computed by hand from the values the runs reported (the same runs are pruned, at the same
epoch). Killing a sweep (SIGINT to a real process) and rerunning it, and two processes
sharing one SQLite study, are run for real.
"""

from __future__ import annotations

import itertools
import math
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from nncli.runs import RunDir
from helpers import (assert_same_run, assert_usage_error, cli, cli_many, nn, read_text_csv, start_cli, summary,
                     write_blobs_csv)

optuna = pytest.importorskip("optuna")
TrialState = optuna.trial.TrialState

BASE = """\
name: blobs
seed: 3
data:
  train: datasets/blobs.csv
  target: label
  val_split: 0.25
model:
  layers: [auto, 4, auto]
  activation: tanh
loss: bce
train:
  optimizer: sgd
  lr: 0.1
  epochs: {epochs}
  batch_size: 16
"""


@pytest.fixture
def work(tmp_path) -> Path:
    """Two well separated blobs (120 rows, a quarter held out for validation) and base.yaml."""
    (tmp_path / "datasets").mkdir()
    write_blobs_csv(tmp_path / "datasets" / "blobs.csv", n_per_class=60)
    (tmp_path / "base.yaml").write_text(BASE.format(epochs=6), encoding="utf-8")
    return tmp_path


def write_sweep(work: Path, text: str, name: str = "s.yaml") -> str:
    (work / name).write_text(text, encoding="utf-8")
    return name


def load(work: Path, name: str, db: str = "study.db"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{work / db}")


def sweep_dirs(work: Path) -> list[Path]:
    return sorted(p for p in (work / "runs").iterdir() if (p / "sweep.yaml").exists())


def runs_of(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir())


def config_of(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))


def results(sweep_dir: Path):
    """results.csv, every cell as text."""
    return read_text_csv(sweep_dir / "results.csv")


def ok(r):
    assert r.rc == 0 and not r.tb, r.show()
    return r


# ----------------------------------------------------------------------------- search


SPACE = """\
params:
  train.lr: {log_uniform: [1.0e-3, 0.5]}
  train.batch_size: {int: [4, 32]}
  model.activation: {choice: [tanh, relu]}
"""


def distributions():
    """The sweep file's space as Optuna distributions, written out here (not nncli's mapping)."""
    d = optuna.distributions
    return {"train.lr": d.FloatDistribution(1e-3, 0.5, log=True), "train.batch_size": d.IntDistribution(4, 32),
            "model.activation": d.CategoricalDistribution(["tanh", "relu"])}


@pytest.mark.parametrize("method,trials", [("random", 4), ("tpe", 11)])
def test_random_and_tpe_are_optunas_samplers_and_rank(work, method, trials):
    """Every trial's parameters are what Optuna's own sampler (same seed, same space, told the
    same results in the same order) chooses; each run's config has them; the table ranks
    by the objective; results.csv has one row per trial."""
    s = write_sweep(work, f"base: base.yaml\nname: {method}\nsearch: {{method: {method}, trials: {trials}, seed: 7}}\n"
                          f"metric: val_loss\n{SPACE}")
    r = ok(nn("sweep", s, "--storage", "sqlite:///study.db", "--executor", "local", cwd=work))
    study = load(work, method)
    done = sorted(study.get_trials(), key=lambda t: t.number)
    assert [t.state for t in done] == [TrialState.COMPLETE] * trials
    sampler = optuna.samplers.RandomSampler(seed=7) if method == "random" else optuna.samplers.TPESampler(seed=7)
    replay = optuna.create_study(direction="minimize", sampler=sampler)
    (sd,) = sweep_dirs(work)
    for t in done:
        mine = replay.ask(distributions())
        assert mine.params == t.params, t.number
        replay.tell(mine, t.value)
        run = sd / t.user_attrs["run_dir"]
        cfg = config_of(run)
        assert cfg["train"]["lr"] == pytest.approx(t.params["train.lr"], rel=1e-12)
        assert cfg["train"]["batch_size"] == t.params["train.batch_size"]
        assert cfg["model"]["activation"] == t.params["model.activation"]
        assert t.value == summary(run)["val_metrics"]["loss"]
    table = results(sd)
    losses = [float(v) for v in table["val_loss"]]
    assert len(table) == trials and losses == sorted(losses) and min(losses) == study.best_value
    assert "ranked by val_loss" in r.text


def test_grid_search_runs_every_combination_once(work):
    """search: grid is Optuna's GridSampler: each combination of the lists (grid: and choice
    params) exactly once; the default budget is the grid's size; ranked by val_accuracy."""
    s = write_sweep(work, "base: base.yaml\nname: g\nsearch: {method: grid}\ngrid:\n  train.lr: [0.05, 0.2]\n"
                          "  model.layers: [[auto, 2, auto], [auto, 5, auto]]\n"
                          "params:\n  model.activation: {choice: [tanh, relu]}\n")
    r = ok(nn("sweep", s, "--storage", "sqlite:///study.db", "--executor", "local", "-j", "2", cwd=work))
    (sd,) = sweep_dirs(work)
    seen = sorted((c["train"]["lr"], c["model"]["layers"][1], c["model"]["activation"]) for c in map(config_of, runs_of(sd)))
    assert seen == sorted(itertools.product([0.05, 0.2], [2, 5], ["tanh", "relu"]))
    study = load(work, "g")
    assert sorted(t.state.name for t in study.get_trials()) == ["COMPLETE"] * 8
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    table = results(sd)
    acc = [float(v) for v in table["val_accuracy"]]
    assert len(table) == 8 and acc == sorted(acc, reverse=True), r.show()


# ----------------------------------------------------------------------------- pruning


def median_rule(trials, warmup: int, startup: int, minimize: bool) -> dict[int, int | None]:
    """Trial number -> the step at which the median rule prunes it (None: never), computed
    here from the values each trial reported, the trials run one after another: at step s
    (s >= warmup, once `startup` trials completed before it), a trial whose best value so far
    is worse than the median of the completed trials' values at s is pruned."""
    out = {}
    for t in trials:
        earlier = [u for u in trials if u.number < t.number and u.state == TrialState.COMPLETE]
        out[t.number] = None
        for s in sorted(t.intermediate_values):
            so_far = [v for k, v in t.intermediate_values.items() if k <= s]
            best = min(so_far) if minimize else max(so_far)
            others = [u.intermediate_values[s] for u in earlier if s in u.intermediate_values]
            if len(earlier) >= max(1, startup) and s >= warmup and others:
                med = statistics.median(others)
                if (best > med) if minimize else (best < med):
                    out[t.number] = s
                    break
    return out


def test_median_pruning_stops_hopeless_points_as_optuna_decides(work):
    """lr 1e-5 cannot learn in 30 epochs, lr 0.1-0.3 can: with the median pruner, the hopeless
    points that come after a completed one are pruned (their runs say pruned: nncli runs,
    results.csv), the good ones complete; every decision is the median rule's, computed here
    from the reported values; a pruned run stops at the epoch it was pruned; exit 0."""
    (work / "base.yaml").write_text(BASE.format(epochs=30), encoding="utf-8")
    s = write_sweep(work, "base: base.yaml\nname: p\nsearch: {method: grid, seed: 1}\nmetric: val_loss\n"
                          "grid:\n  train.lr: [0.3, 1.0e-5, 0.1, 2.0e-5, 0.2, 1.0e-6]\n"
                          "prune: {method: median, warmup_epochs: 3, startup_trials: 1}\n")
    r = ok(nn("sweep", s, "--storage", "sqlite:///study.db", "--executor", "local", cwd=work))
    study = load(work, "p")
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    expected = median_rule(trials, warmup=3, startup=1, minimize=True)
    (sd,) = sweep_dirs(work)
    pruned = []
    for t in trials:
        run = sd / t.user_attrs["run_dir"]
        s_ = summary(run)
        if expected[t.number] is None:
            assert t.state == TrialState.COMPLETE and s_["status"] == "completed", t
            assert s_["epochs_run"] == 30
        else:
            assert t.state == TrialState.PRUNED and s_["status"] == "pruned", t
            assert s_["epochs_run"] == expected[t.number] + 1 == max(t.intermediate_values) + 1  # step = epoch - 1
            pruned.append(config_of(run)["train"]["lr"])
        assert len(t.intermediate_values) == s_["epochs_run"]
    assert pruned and all(lr < 1e-4 for lr in pruned), pruned
    listing = nn("runs", sd, cwd=work)
    assert listing.text.count("pruned") == len(pruned), listing.show()
    assert sorted(results(sd)["status"]) == sorted(["pruned"] * len(pruned) + ["completed"] * (6 - len(pruned)))
    assert r.rc == 0 and "pruned: median pruner" in r.err


def test_hyperband_pruning_matches_optunas_pruner(work):
    """prune: hyperband is Optuna's HyperbandPruner: replaying the reported values into a
    study of Optuna's own with the same pruner and the same trial order gives the same
    decisions (the same study name: Hyperband's brackets follow it)."""
    (work / "base.yaml").write_text(BASE.format(epochs=9), encoding="utf-8")
    s = write_sweep(work, "base: base.yaml\nname: h\nsearch: {method: random, trials: 12, seed: 3}\nmetric: val_loss\n"
                          "params:\n  train.lr: {log_uniform: [1.0e-6, 0.5]}\nprune: {method: hyperband, warmup_epochs: 1}\n")
    ok(nn("sweep", s, "--storage", "sqlite:///study.db", "--executor", "local", cwd=work))
    trials = sorted(load(work, "h").get_trials(), key=lambda t: t.number)
    replay = optuna.create_study(study_name="h", direction="minimize", sampler=optuna.samplers.RandomSampler(seed=3),
                                 pruner=optuna.pruners.HyperbandPruner(min_resource=1))
    some_pruned = False
    for t in trials:
        mine = replay.ask({"train.lr": optuna.distributions.FloatDistribution(1e-6, 0.5, log=True)})
        assert mine.params == t.params
        pruned_at = None
        for step in sorted(t.intermediate_values):
            mine.report(t.intermediate_values[step], step)
            if mine.should_prune():
                pruned_at = step
                break
        assert (t.state == TrialState.PRUNED) == (pruned_at is not None), t.number
        if pruned_at is not None:
            assert max(t.intermediate_values) == pruned_at
            some_pruned = True
            replay.tell(mine, state=TrialState.PRUNED)
        else:
            replay.tell(mine, t.value)
    assert some_pruned


# ----------------------------------------------------------------------------- resumable, shared


def test_killed_sweep_continues_without_rerunning_finished_trials(work):
    """SIGINT to a real `nncli sweep --storage sqlite:///...` after two trials finished (exit
    130), then the same command again: the study completes with exactly `trials` complete
    trials, finished runs are not touched (metrics.csv bytes and mtime), the interrupted
    trial is resumed and ends bit for bit as an uninterrupted run of its parameters. While
    another process holds that run's lock (resuming it), a rerun leaves it alone."""
    (work / "base.yaml").write_text(BASE.format(epochs=3000), encoding="utf-8")
    s = write_sweep(work, "base: base.yaml\nname: k\nsearch: {method: random, trials: 4, seed: 5}\n"
                          "params:\n  train.lr: {log_uniform: [1.0e-2, 0.3]}\n")
    argv = ("sweep", s, "--storage", "sqlite:///study.db", "--executor", "local")
    p = start_cli(*argv, cwd=work)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if not (work / "study.db").exists():
            continue
        try:
            trials = load(work, "k").get_trials()
        except Exception:  # noqa: BLE001 (the study is still being created)
            continue
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if len(complete) >= 2 and running and sweep_dirs(work):
            run = [d for d in runs_of(sweep_dirs(work)[0]) if d.name.split("-")[-2] == f"{running[0].number + 1:03d}"]
            if run and (run[0] / "config.yaml").exists() and not (run[0] / "summary.json").exists():
                break  # training (a run takes about 2 s here): interrupt it
    else:
        p.kill()
        pytest.fail("the sweep did not get to two finished trials and a third running one")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert b"rerun the same command to continue" in err
    study = load(work, "k")
    states = {t.number: t.state for t in study.get_trials()}
    finished = {n for n, st in states.items() if st == TrialState.COMPLETE}
    assert len(finished) >= 2 and len(finished) < 4
    (sd,) = sweep_dirs(work)
    before = {d.name: ((d / "metrics.csv").read_bytes(), (d / "metrics.csv").stat().st_mtime_ns)
              for d in runs_of(sd) if (d / "summary.json").exists() and summary(d)["status"] == "completed"}
    interrupted = [d for d in runs_of(sd) if (d / "checkpoint.npz").exists()]
    assert len(before) == len(finished) and len(interrupted) == 1, (states, runs_of(sd), err)

    (stopped_trial,) = [n for n, st in states.items() if st == TrialState.RUNNING]
    lock = RunDir(interrupted[0])
    lock.acquire()  # as if another process of this machine were resuming it now
    try:
        r = cli(*argv, cwd=work)  # runs the trials left, leaves that one to its owner
    finally:
        lock.release()
    assert r.rc == 0, r.show()
    assert f"{len(finished)} of 4 trials already done; continuing" in r.err
    states = {t.number: t.state for t in load(work, "k").get_trials()}
    assert states[stopped_trial] == TrialState.RUNNING and summary(interrupted[0])["status"] == "interrupted"
    done_now = sum(st == TrialState.COMPLETE for st in states.values())
    assert done_now == 3

    r = cli(*argv, cwd=work)  # nobody resumes it: this run does
    assert r.rc == 0, r.show()
    assert "3 of 4 trials already done; continuing" in r.err
    study = load(work, "k")
    counted = [t for t in study.get_trials() if not (t.state == TrialState.FAIL and "nncli_uncounted" in t.user_attrs)]
    assert sorted(t.state.name for t in counted) == ["COMPLETE"] * 4
    assert sweep_dirs(work) == [sd]
    runs = runs_of(sd)
    assert len(runs) == 4 and len({d.name.split("-")[-2] for d in runs}) == 4  # one run per trial
    for name, (data, mtime) in before.items():
        assert ((sd / name / "metrics.csv").read_bytes(), (sd / name / "metrics.csv").stat().st_mtime_ns) == (data, mtime)
    for run in interrupted:  # resumed, not restarted: the same directory, finished as if never stopped
        assert summary(run)["status"] == "completed"
        ref_dir = work / "ref"
        lr = config_of(run)["train"]["lr"]
        ok(nn("train", "base.yaml", "--runs-dir", ref_dir, "--no-plots", "-q", "--set", f"train.lr={json.dumps(lr)}", cwd=work))
        (ref,) = sorted(ref_dir.iterdir())
        assert_same_run(run, ref)
    assert len(results(sd)) == 4


def test_two_processes_share_one_study(tmp_path):
    """Two `nncli sweep` processes in two directories (two machines) with one SQLite storage:
    together they run exactly `trials` trials, each once (distinct trial numbers, one run
    directory each, none in both places), both took part, both exit 0."""
    db = tmp_path / "shared.db"
    for side in ("a", "b"):
        d = tmp_path / side
        (d / "datasets").mkdir(parents=True)
        write_blobs_csv(d / "datasets" / "blobs.csv", n_per_class=60)
        (d / "base.yaml").write_text(BASE.format(epochs=150), encoding="utf-8")
        write_sweep(d, "base: base.yaml\nname: shared\nsearch: {method: tpe, trials: 6, seed: 2}\n"
                       "params:\n  train.lr: {log_uniform: [1.0e-3, 0.5]}\n")
    argv = ["sweep", "s.yaml", "--storage", f"sqlite:///{db}", "--executor", "local"]
    res = cli_many([(argv, tmp_path / "a"), (argv, tmp_path / "b")])
    assert [r.rc for r in res] == [0, 0], [r.show() for r in res]
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}")
    counted = [t for t in study.get_trials() if not (t.state == TrialState.FAIL and "nncli_uncounted" in t.user_attrs)]
    assert sorted(t.state.name for t in counted) == ["COMPLETE"] * 6
    where = {}
    for side in ("a", "b"):
        (sd,) = sweep_dirs(tmp_path / side)
        for run in runs_of(sd):
            number = int(run.name.split("-")[-2]) - 1
            assert number not in where, f"trial {number} ran twice"
            where[number] = run
    assert sorted(where) == sorted(t.number for t in counted)
    assert {r.parents[2].name for r in where.values()} == {"a", "b"}  # both took part
    for t in counted:
        assert where[t.number].name == t.user_attrs["run_dir"]
        assert t.value == summary(where[t.number])["val_metrics"]["accuracy"]


def test_a_trial_whose_process_died_before_its_run_directory_is_tried_again(work):
    """A trial left RUNNING on this host by a process that no longer exists (SIGKILL right
    after it asked the trial), with no run directory: the next run of the command fails it
    (uncounted), tries its parameters again in a new trial, and the study still ends with
    `trials` complete trials."""
    s = write_sweep(work, "base: base.yaml\nname: o\nsearch: {method: random, trials: 2, seed: 1}\n"
                          "params:\n  train.lr: {log_uniform: [1.0e-2, 0.3]}\n")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    study = optuna.create_study(study_name="o", storage="sqlite:///" + str(work / "study.db"), direction="maximize")
    lost = study.ask({"train.lr": optuna.distributions.FloatDistribution(1e-2, 0.3, log=True)})
    lost.set_user_attr("host", socket.gethostname())
    lost.set_user_attr("pid", gone.pid)
    ok(nn("sweep", s, "--storage", "sqlite:///study.db", "--executor", "local", cwd=work))
    trials = {t.number: t for t in load(work, "o").get_trials()}
    assert trials[lost.number].state == TrialState.FAIL and "nncli_uncounted" in trials[lost.number].user_attrs
    (again,) = [t for t in trials.values() if t.user_attrs.get("retry_of") == lost.number]
    assert again.state == TrialState.COMPLETE and again.params == lost.params
    assert sorted(t.state.name for t in trials.values() if t.number != lost.number) == ["COMPLETE", "COMPLETE"]
    (sd,) = sweep_dirs(work)
    assert config_of(sd / again.user_attrs["run_dir"])["train"]["lr"] == pytest.approx(lost.params["train.lr"], rel=1e-12)
    assert len(runs_of(sd)) == 2


# ----------------------------------------------------------------------------- the sweep file


BAD = {
    "search: {method: bayes, trials: 3}\nparams:\n  train.lr: {uniform: [0.1, 0.2]}\n": ("search.method", "bayes", "grid, random, tpe"),
    "search: {method: tpe, trials: 0}\nparams:\n  train.lr: {uniform: [0.1, 0.2]}\n": ("trials",),
    "search: {method: tpe}\nparams:\n  train.lr: {uniform: [0.1, 0.2]}\n": ("search.trials", "needs a budget"),
    "search: {method: grid, trials: 3}\ngrid:\n  train.lr: [0.1, 0.2]\n": ("search.trials", "more than the grid's 2"),
    "search: {method: grid}\nparams:\n  train.lr: {uniform: [0.1, 0.2]}\n": ("params.train.lr", "use search method random or tpe"),
    "params:\n  train.lr: {uniform: [0.1, 0.2]}\n": ("params:", "search"),
    "search: {method: tpe, trials: 2}\nparams:\n  train.lr: {normal: [0.1, 0.2]}\n": ("params.train.lr", "{int: [a, b]}"),
    "search: {method: tpe, trials: 2}\nparams:\n  train.epochs: {int: [5, 2.5]}\n": ("params.train.epochs.int", "whole numbers"),
    "search: {method: tpe, trials: 2}\nparams:\n  train.lr: {uniform: [0.5, 0.1]}\n": ("params.train.lr.uniform", "above high"),
    "search: {method: tpe, trials: 2}\nrandom: {samples: 2, params: {train.l2: {uniform: [0, 1]}}}\n"
    "params:\n  train.lr: {uniform: [0.1, 0.2]}\n": ("search and random",),
    "grid:\n  train.lr: [0.1]\nprune: {method: asha}\n": ("prune.method", "asha", "median, hyperband"),
    "grid:\n  train.lr: [0.1]\nprune: {method: hyperband, startup_trials: 2}\n": ("prune.startup_trials",),
    "grid:\n  train.lr: [0.1]\nmetric: seconds\nprune: {method: median}\n": ("prune", "seconds"),
    "grid:\n  train.lr: [0.1]\nmetric: val_r2\nprune: {method: median}\n": ("val_r2", "accuracy"),
    "grid:\n  train.lr: [0.1, -1]\nprune: {method: median}\n": ("sweep point 2", "train.lr"),
}


@pytest.mark.parametrize("body", list(BAD))
def test_bad_study_lines(work, body):
    """One line, exit 2, naming the key and what to do; nothing written (no runs/, no storage)."""
    s = write_sweep(work, "base: base.yaml\n" + body)
    needles = BAD[body] if body.startswith("grid:\n  train.lr: [0.1, -1]") else (s, *BAD[body])
    assert_usage_error(nn("sweep", s, "--executor", "local", cwd=work), *needles)
    assert not (work / "runs").exists()


def test_val_metric_without_validation_data_is_refused(work):
    (work / "base.yaml").write_text(BASE.format(epochs=3).replace("  val_split: 0.25\n", ""), encoding="utf-8")
    s = write_sweep(work, "base: base.yaml\nmetric: val_loss\ngrid:\n  train.lr: [0.1]\nprune: {method: median}\n")
    assert_usage_error(nn("sweep", s, cwd=work), "metric val_loss", "validation data", "data.val_split")
    assert not (work / "runs").exists()


def test_pruning_with_the_process_executor_is_refused(work):
    s = write_sweep(work, "base: base.yaml\ngrid:\n  train.lr: [0.1]\nprune: {method: median}\n")
    assert_usage_error(nn("sweep", s, "--executor", "process", cwd=work), "prune", "--executor process", "local")
    assert not (work / "runs").exists()


def test_missing_optuna_is_one_line_before_anything_is_written(work, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    s = write_sweep(work, "base: base.yaml\nsearch: {method: tpe, trials: 2}\nparams:\n  train.lr: {uniform: [0.1, 0.2]}\n")
    assert_usage_error(nn("sweep", s, cwd=work), "needs Optuna", "pip install 'nncli[optuna]'")
    assert not (work / "runs").exists()
    plain = write_sweep(work, "base: base.yaml\ngrid:\n  train.lr: [0.1]\n", "plain.yaml")
    assert ok(nn("sweep", plain, "--executor", "process", cwd=work))  # a plain sweep needs no Optuna


def test_another_sweep_file_with_the_same_name_and_storage_is_refused(work):
    s = write_sweep(work, "base: base.yaml\nname: same\ngrid:\n  train.lr: [0.1]\n")
    ok(nn("sweep", s, "--storage", "sqlite:///study.db", "--executor", "local", cwd=work))
    write_sweep(work, "base: base.yaml\nname: same\ngrid:\n  train.lr: [0.2]\n", "other.yaml")
    assert_usage_error(nn("sweep", "other.yaml", "--storage", "sqlite:///study.db", cwd=work), "same", "different sweep file")
    (work / "runs" / sweep_dirs(work)[0].name / "sweep.yaml").rename(work / "moved.yaml")  # the other machine's case: only the storage knows
    assert_usage_error(nn("sweep", "other.yaml", "--storage", "sqlite:///study.db", cwd=work), "same", "different sweep file")


def test_rerunning_a_finished_study_runs_nothing(work):
    """The same command on a finished study: the same sweep directory, no new run, exit 0."""
    s = write_sweep(work, "base: base.yaml\nname: again\ngrid:\n  train.lr: [0.1, 0.2]\n")
    ok(nn("sweep", s, "--storage", "sqlite:///study.db", "--executor", "local", cwd=work))
    (sd,) = sweep_dirs(work)
    first = runs_of(sd)
    r = ok(nn("sweep", s, "--storage", "sqlite:///study.db", "--executor", "local", cwd=work))
    assert sweep_dirs(work) == [sd] and runs_of(sd) == first and "2 of 2 trials already done" in r.err
    assert len(load(work, "again").get_trials()) == 2


# ----------------------------------------------------------------------------- plain sweeps


def test_int_distribution_in_random_block(work):
    """random.params takes {int: [low, high]} (both included), drawn from the sweep's numpy
    generator as the other distributions are."""
    from nncli.sweep import load_sweep, points

    write_sweep(work, "base: base.yaml\nrandom:\n  samples: 50\n  seed: 4\n  params:\n    train.batch_size: {int: [2, 5]}\n")
    pts = points(load_sweep(work / "s.yaml"))
    rng = np.random.default_rng(4)
    assert [p["train.batch_size"] for p in pts] == [int(rng.integers(2, 6)) for _ in range(50)]
    assert {type(p["train.batch_size"]) for p in pts} == {int} and {p["train.batch_size"] for p in pts} == {2, 3, 4, 5}


def test_point_failing_before_its_run_dir_is_a_failed_row(work):
    """A point whose data file is missing fails before its run directory exists: it is a row
    'failed' with its parameters in the table and results.csv (exit 1), not left out."""
    s = write_sweep(work, "base: base.yaml\nname: f\ngrid:\n  data.train: [datasets/blobs.csv, datasets/missing.csv]\n")
    r = nn("sweep", s, "--executor", "process", cwd=work)
    assert r.rc == 1, r.show()
    (sd,) = sweep_dirs(work)
    table = results(sd)
    assert list(table["status"]) == ["completed", "failed"], table
    failed = table.iloc[1]
    assert (failed["name"], failed["data.train"], failed["id"]) == ("f-002", "datasets/missing.csv", "")
    assert len(runs_of(sd)) == 1


@pytest.mark.parametrize("every, epochs, expected", [(4, 12, 4), (None, 250, 2), (None, 30, 1)])
def test_prune_every_reports_every_kth_epoch_only(work, every, epochs, expected):
    """prune.every: K reports epochs K, 2K, ... (steps K-1, 2K-1, ...) and no other, so a
    storage round trip is paid once per K epochs; without it, about 100 reports per run
    (epochs // 100, at least 1). Pruning still stops a run only at a reported epoch."""
    (work / "base.yaml").write_text(BASE.format(epochs=epochs), encoding="utf-8")
    prune = "{method: median, warmup_epochs: 0, startup_trials: 1" + (f", every: {every}" if every else "") + "}"
    s = write_sweep(work, "base: base.yaml\nname: e\nsearch: {method: grid, seed: 1}\nmetric: val_loss\n"
                          f"grid:\n  train.lr: [0.3, 1.0e-6, 1.0e-6]\nprune: {prune}\n")
    ok(nn("sweep", s, "--storage", "sqlite:///study.db", "--executor", "local", cwd=work))
    trials = load(work, "e").get_trials()
    (sd,) = sweep_dirs(work)
    for t in trials:
        s_ = summary(sd / t.user_attrs["run_dir"])
        steps = sorted(t.intermediate_values)
        assert steps == [e - 1 for e in range(expected, s_["epochs_run"] + 1, expected)], (t.number, steps)
        assert s_["epochs_run"] % expected == 0 or s_["status"] == "completed"


@pytest.mark.parametrize("method", ["random", "tpe"])
def test_a_sampler_continuing_a_study_does_not_repeat_its_points(method):
    """A seeded Optuna sampler created again (a rerun continuing a study, a second process
    sharing it) would draw the same sequence and propose the points already tried: nncli's
    sampler reseeds from (seed, trial number) when trials it did not make came before. One
    process running a study from start to end draws exactly what Optuna's own sampler does."""
    from nncli.study import make_sampler

    dist = {"train.lr": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True)}

    def run(study, n):
        out = []
        for _ in range(n):
            t = study.ask(dist)
            out.append(t.params["train.lr"])
            study.tell(t, math.log(t.params["train.lr"]) ** 2)
        return out

    plain = optuna.create_study(sampler=(optuna.samplers.RandomSampler if method == "random" else optuna.samplers.TPESampler)(seed=5))
    whole = optuna.create_study(sampler=make_sampler(optuna, method, 5))
    assert run(whole, 12) == run(plain, 12)  # uninterrupted: Optuna's own draws
    first = optuna.create_study(sampler=make_sampler(optuna, method, 5))
    before = run(first, 6)
    again = optuna.create_study(storage=first._storage, study_name=first.study_name, load_if_exists=True,
                                sampler=make_sampler(optuna, method, 5))
    after = run(again, 6)  # the rerun: same seed, 6 trials already in the study
    assert not set(after) & set(before), (before, after)
    assert before == run(optuna.create_study(sampler=make_sampler(optuna, method, 5)), 6)
