"""The local executor of ``nncli sweep`` and ``nncli cv``: long-lived worker processes
(nncli/workers.py).

References are independent of the workers: each point's run directory is compared byte
for byte with the one ``nncli sweep --executor process`` writes (one fresh ``python -m
nncli train`` per point); the epochs the driver is shown are compared with each run's own
metrics.csv; which processes exist is read from /proc.
"""

from __future__ import annotations

import os
import subprocess
import re
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import Res, add_blobs, chdir, cli, nn, npz_arrays, read_text_csv, start_cli, summary, write_yaml
from nncli.executors import LocalProcessExecutor, make_executor, task_status
from nncli.pointrun import Outcome, Point
from nncli.runs import RunDir
from nncli.sweep import Sweep
from nncli.workers import LocalWorkerExecutor

XOR = "configs/xor.yaml"
MOONS = "configs/moons.yaml"
RUN_NAME_RE = re.compile(r"^\d{8}-\d{6}-(.+)-[0-9a-f]{4}$")
VOLATILE = ("run_id", "created", "train_seconds")  # summary.json keys that differ between any two runs


# ----------------------------------------------------------------------------- helpers


def runs_by_name(sweep_dir: Path) -> dict[str, Path]:
    """{run name (the sweep's NAME-NNN): run directory}."""
    return {RUN_NAME_RE.match(p.name).group(1): p for p in sweep_dir.iterdir() if p.is_dir()}


def assert_same_run_files(run: Path, ref: Path) -> None:
    """The same files, byte for byte; summary.json the same but for its run id, date and timing."""
    names = sorted(p.name for p in run.iterdir())
    assert names == sorted(p.name for p in ref.iterdir()), (run, ref)
    for name in names:
        if name == "summary.json":
            a, b = summary(run), summary(ref)
            for s in (a, b):
                for k in VOLATILE:
                    s.pop(k)
            assert a == b, (run, a, b)
        else:
            assert (run / name).read_bytes() == (ref / name).read_bytes(), (run / name, ref / name)


def worker_processes(session: int | None = None) -> dict[int, int]:
    """{pid: parent pid} of the ``python -m nncli.workers`` processes (of one session if given)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if b"nncli.workers" not in cmd:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp session ...
        if fields[0] == "Z":
            continue
        if session is None or int(fields[3]) == session:
            out[int(d.name)] = int(fields[1])
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"nncli.workers" in cmd and stat[stat.rindex(")") + 2] != "Z"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def cwd(workdir, monkeypatch) -> Path:
    monkeypatch.chdir(workdir)
    return workdir


def sweep_of(cwd: Path, grid: dict, name: str = "s", base: str = XOR) -> Sweep:
    return Sweep.create(write_yaml(cwd / f"{name}.yaml", {"base": base, "name": name, "grid": grid}), "runs")


# ----------------------------------------------------------------------------- the default executor


def test_local_is_the_worker_pool_and_process_stays_a_process_per_point():
    assert type(make_executor("local", 2)) is LocalWorkerExecutor
    assert type(make_executor("process", 2)) is LocalProcessExecutor
    assert LocalWorkerExecutor.reports and not LocalProcessExecutor.reports


@pytest.mark.parametrize("command", ["sweep", "cv"])
def test_sweep_and_cv_use_the_workers_by_default(workdir, monkeypatch, command):
    used = []
    original = LocalWorkerExecutor.run

    def spy(self, tasks, done, report=None):
        used.append(self.jobs)
        return original(self, tasks, done, report)

    monkeypatch.setattr(LocalWorkerExecutor, "run", spy)
    if command == "sweep":
        write_yaml(workdir / "s.yaml", {"base": XOR, "grid": {"train.lr": [0.1, 0.5], "train.epochs": [5]}})
        r = nn("sweep", "s.yaml", "-j", "2", cwd=workdir)
    else:
        add_blobs(workdir)
        r = nn("cv", "configs/blobs.yaml", "--folds", "2", "-j", "2", cwd=workdir)
    assert r.rc == 0, r.show()
    assert used == [2]


# ----------------------------------------------------------------------------- bit-identical results


def test_worker_runs_are_byte_identical_to_a_process_per_point(workdir):
    """A 12-point sweep (lr x layers x seed on xor; lr x seed on moons with validation data)
    on 2 long-lived workers: each run directory is the one a fresh ``nncli train`` process
    writes (the process executor), file for file, byte for byte."""
    import shutil

    from helpers import REPO

    shutil.copy(REPO / "datasets" / "moons.csv", workdir / "datasets" / "moons.csv")
    shutil.copy(REPO / "configs" / "moons.yaml", workdir / "configs" / "moons.yaml")
    sweeps = {"x": (XOR, {"train.lr": [0.1, 0.5], "model.layers": [["auto", 3, "auto"], ["auto", 6, "auto"]],
                          "seed": [0, 1], "train.epochs": [40]}),
              "m": (MOONS, {"train.lr": [0.01, 0.05], "seed": [0, 2], "train.epochs": [4]})}
    for name, (base, grid) in sweeps.items():
        write_yaml(workdir / f"{name}.yaml", {"base": base, "name": name, "grid": grid})
    refs = {}
    for name in sweeps:  # the reference: one process per point
        r = cli("sweep", f"{name}.yaml", "-j", "2", "--executor", "process", "--runs-dir", "ref", cwd=workdir)
        assert r.rc == 0, r.show()
        refs.update(runs_by_name(workdir / r.text.splitlines()[-1]))
    assert len(refs) == 12
    seen_pids = set()
    with chdir(workdir):
        ex = LocalWorkerExecutor(2)
        for name in sweeps:
            sw = Sweep.create(f"{name}.yaml", "runs")

            def report(t, rec):
                seen_pids.add(ex.pids()[t.index])

            statuses = []
            ex.run(sw.tasks, lambda t: statuses.append(task_status(t)), report=report)
            assert statuses == ["completed"] * len(sw.tasks), [t.stderr for t in sw.tasks]
            runs = runs_by_name(sw.dir)
            assert len(runs) == len(sw.tasks)
            for run_name, run in runs.items():
                assert_same_run_files(run, refs[run_name])
                assert summary(run)["status"] == "completed"
            if name == "m":
                assert summary(runs["m-001"]).get("val_metrics"), "the moons points have validation data"
    assert ex.started_workers == 4 and len(seen_pids) == 4  # two workers per sweep, each training 4 or 2 points
    assert not any(alive(p) for p in seen_pids)  # each sweep's workers exited with it


# ----------------------------------------------------------------------------- per-epoch reports and pruning


def test_a_report_sees_every_epoch_and_its_message_prunes_that_point(cwd):
    sw = sweep_of(cwd, {"train.lr": [0.1, 0.3, 0.5], "train.epochs": [30]})
    seen: dict[int, list] = {}

    def report(t, rec):
        seen.setdefault(t.index, []).append(rec)
        return "hopeless after 4 epochs" if t.index == 1 and rec.epoch == 4 else None

    done = []
    ex = LocalWorkerExecutor(2)
    ex.run(sw.tasks, lambda t: done.append((t.index, task_status(t))), report=report)
    assert sorted(done) == [(0, "completed"), (1, "pruned: hopeless after 4 epochs"), (2, "completed")]
    runs = runs_by_name(sw.dir)
    s = summary(runs["s-002"])
    assert s["status"] == "pruned" and s["epochs_run"] == 4 and "hopeless after 4 epochs" in s.get("message", ""), s
    assert not (runs["s-002"] / "checkpoint.npz").exists()  # final: nothing to resume
    for i, name in enumerate(["s-001", "s-002", "s-003"]):
        header, *rows = (runs[name] / "metrics.csv").read_text().splitlines()
        assert header.split(",")[:2] == ["epoch", "loss"]
        # the records the driver saw are the run's own epochs, to the last digit
        assert [(r.epoch, repr(r.loss)) for r in seen[i]] == [(int(x.split(",")[0]), x.split(",")[1]) for x in rows]
    assert [len(seen[i]) for i in range(3)] == [30, 4, 30]
    r = nn("runs", sw.dir, "--format", "csv", cwd=cwd)  # nncli runs shows it
    assert r.rc == 0, r.show()
    rows = read_text_csv(r.out).to_dict("records")
    assert sorted((row["name"], row["status"]) for row in rows) == [("s-001", "completed"), ("s-002", "pruned"),
                                                                     ("s-003", "completed")]


def test_without_a_report_no_epoch_crosses_the_pipe_and_workers_start_as_needed(cwd, monkeypatch):
    import nncli.workers as workers

    calls = []
    original = LocalWorkerExecutor._receive

    def spy(self, w, done, report):
        calls.append(report)
        return original(self, w, done, report)

    monkeypatch.setattr(workers.LocalWorkerExecutor, "_receive", spy)
    sw = sweep_of(cwd, {"train.lr": [0.1], "train.epochs": [20]})
    done = []
    ex = LocalWorkerExecutor(4)
    ex.run(sw.tasks, done.append)
    assert [t.returncode for t in done] == [0]
    assert len(calls) == 2  # "started" and "done": no "epoch" message
    assert ex.started_workers == 1  # started as tasks need them, not --jobs of them


# ----------------------------------------------------------------------------- failures and clean-up


def test_a_killed_worker_fails_its_point_and_is_replaced(cwd):
    """One worker: it trains point 1, is killed (SIGKILL, as the OOM killer does) in point 2,
    which fails with one line; a new worker trains point 3."""
    sw = sweep_of(cwd, {"train.lr": [0.1, 0.2, 0.3], "train.epochs": [40]})
    ex = LocalWorkerExecutor(1)
    pids = []
    killed = []

    def report(t, rec):
        pid = ex.pids()[t.index]
        if pid not in pids:
            pids.append(pid)
        if t.index == 1 and rec.epoch == 3 and not killed:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)
        return None

    done = {}
    ex.run(sw.tasks, lambda t: done.__setitem__(t.index, task_status(t)), report=report)
    assert sorted(done) == [0, 1, 2]
    assert done[1].startswith("failed (exit -9): nncli: error: the worker process training this point died "
                              "(killed by signal 9, SIGKILL"), done[1]
    assert "\n" not in done[1]
    assert done[0] == done[2] == "completed"
    assert ex.started_workers == 2 and len(pids) == 2 and killed == pids[:1]  # the dead one was replaced
    assert not any(alive(p) for p in pids)
    runs = runs_by_name(sw.dir)
    assert summary(runs["s-001"])["status"] == summary(runs["s-003"])["status"] == "completed"
    assert not (runs["s-002"] / "summary.json").exists() and not RunDir(runs["s-002"]).is_locked()


@pytest.mark.parametrize("reporting", [False, True])
def test_a_driver_exception_stops_the_running_points_with_a_checkpoint_and_ends_every_worker(cwd, reporting):
    """The driver fails (here: its done callback raises) while a point trains: that point is
    stopped with a checkpoint, the pending one never starts, every worker exits, and the
    exception reaches the caller."""
    sw = sweep_of(cwd, {"train.epochs": [5, 100000000], "train.lr": [0.1, 0.2]})  # tasks 0, 1 short; 2, 3 long
    tasks = [sw.tasks[2], sw.tasks[0], sw.tasks[3]]
    ex = LocalWorkerExecutor(2)
    pids = set()

    def done(t):
        pids.update(ex.pids().values())
        deadline = time.monotonic() + 60
        while not list(sw.dir.glob("*-s-003-*/config.yaml")):  # the long point has started
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)
        raise RuntimeError("the driver broke")

    with pytest.raises(RuntimeError, match="the driver broke"):
        ex.run(tasks, done, report=(lambda t, rec: None) if reporting else None)
    assert len(pids) == 1 and not any(alive(p) for p in pids) and ex.workers == []
    runs = runs_by_name(sw.dir)
    assert sorted(runs) == ["s-001", "s-003"]  # the last task never started
    assert summary(runs["s-001"])["status"] == "completed"
    s = summary(runs["s-003"])
    assert s["status"] == "interrupted", s
    assert len(npz_arrays(runs["s-003"] / "checkpoint.npz")) > 0
    assert not RunDir(runs["s-003"]).is_locked()


def test_an_idle_worker_ignores_sigint_and_trains_the_next_point(cwd):
    sw = sweep_of(cwd, {"train.lr": [0.1, 0.2], "train.epochs": [10]})
    ex = LocalWorkerExecutor(1)
    pids = []

    def tasks():
        yield sw.tasks[0]
        # task 0 is done (its worker idle, waiting for the next): SIGINT it
        (pid,) = [w.pid for w in ex.workers]
        pids.append(pid)
        os.kill(pid, signal.SIGINT)
        time.sleep(0.3)
        assert alive(pid)
        yield sw.tasks[1]

    done = []
    ex.run(tasks(), lambda t: done.append(task_status(t)))
    assert done == ["completed", "completed"] and ex.started_workers == 1
    assert not alive(pids[0])


def test_a_sigint_to_a_busy_worker_interrupts_only_its_point_which_resumes_bit_for_bit(cwd):
    """As ``kill -INT`` to one ``nncli train`` of the process executor: that point checkpoints
    (exit 130), the sweep goes on, and ``nncli train --resume`` finishes the run exactly as an
    uninterrupted ``nncli train`` of the same point."""
    sw = sweep_of(cwd, {"train.lr": [0.1, 0.2], "train.epochs": [60]})
    ex = LocalWorkerExecutor(1)

    def report(t, rec):
        if t.index == 0 and rec.epoch == 2:
            os.kill(ex.pids()[0], signal.SIGINT)
        return None

    done = []
    ex.run(sw.tasks, lambda t: done.append((t.index, t.returncode, task_status(t))), report=report)
    assert [d[:2] for d in done] == [(0, 130), (1, 0)], done
    assert done[0][2].startswith("interrupted: nncli: error: interrupted after")
    assert ex.started_workers == 1 and not ex.stopping
    run = runs_by_name(sw.dir)["s-001"]
    s = summary(run)
    assert s["status"] == "interrupted" and 2 <= s["epochs_run"] < 60 and not RunDir(run).is_locked(), s
    r = nn("train", "--resume", run, "--no-plots", "-q", cwd=cwd)
    assert r.rc == 0 and summary(run)["status"] == "completed", r.show()
    r = nn("train", XOR, "--set", "train.lr=0.1", "--set", "train.epochs=60", "--no-plots", "-q", "--runs-dir", "ref",
           cwd=cwd)
    assert r.rc == 0, r.show()
    ref = cwd / r.text.strip()
    assert (run / "metrics.csv").read_bytes() == (ref / "metrics.csv").read_bytes()
    a, b = npz_arrays(run / "model.npz"), npz_arrays(ref / "model.npz")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_the_worker_state_is_put_back_after_each_point(tmp_path, monkeypatch):
    """What a point changes in its worker (cwd, environment, nncli.process.State, warning
    filters, numpy's error handling) the next point does not see (run here, in-process)."""
    import nncli.pointrun as pointrun
    import nncli.process as process
    from nncli import workers

    home = tmp_path / "home"
    (tmp_path / "elsewhere").mkdir()
    home.mkdir()
    seen = []

    def messy(point, report=None, files=None):
        seen.append((os.getcwd(), os.environ.get("NNCLI_TEST_LEAK"), process.State.interrupted, np.geterr()["over"],
                     len(warnings.filters)))
        os.chdir(tmp_path / "elsewhere")
        os.environ["NNCLI_TEST_LEAK"] = "1"
        process.State.interrupted = True
        process.State.done = True
        warnings.simplefilter("error")
        np.seterr(over="raise")
        return Outcome(0, "{}", "")

    monkeypatch.setattr(pointrun, "train_point", messy)
    monkeypatch.delenv("NNCLI_TEST_LEAK", raising=False)
    before = (np.geterr(), list(warnings.filters), dict(vars(process.State)))
    with chdir(home):
        for _ in range(2):
            out = workers._train(Point("c.yaml").to_dict(), str(home), False, None, None, os.getppid())
            assert out == {"returncode": 0, "stdout": "{}", "stderr": ""}
        assert os.getcwd() == str(home)
    assert seen[0] == seen[1] == (str(home), None, False, before[0]["over"], len(before[1]))
    assert "NNCLI_TEST_LEAK" not in os.environ
    assert (np.geterr(), list(warnings.filters), dict(vars(process.State))) == before


def test_a_worker_does_not_grow_over_100_points(cwd):
    """RSS of one worker over 100 xor points: no growth beyond a few MB after the first ones."""
    sw = sweep_of(cwd, {"seed": list(range(100)), "train.epochs": [3]})
    ex = LocalWorkerExecutor(1)
    rss = {}

    def report(t, rec):
        if rec.epoch == 3:
            rss[t.index] = rss_kib(ex.pids()[t.index])
        return None

    ex.run(sw.tasks, lambda t: None, report=report)
    assert all(t.returncode == 0 for t in sw.tasks) and ex.started_workers == 1
    growth = max(rss[i] for i in range(90, 100)) - rss[10]
    assert growth < 4 * 1024, (rss[10], rss[99], growth)


# ----------------------------------------------------------------------------- Ctrl-C on nncli sweep


LONG = "base: configs/xor.yaml\ngrid:\n  train.lr: [0.1, 0.2, 0.3]\n  train.epochs: [100000000]\n"


def _start_and_wait(workdir: Path) -> "subprocess.Popen":
    (workdir / "long.yaml").write_text(LONG, encoding="utf-8")
    p = start_cli("sweep", "long.yaml", "--jobs", "2", cwd=workdir, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list((workdir / "runs").glob("*/*/config.yaml"))) < 2:
        assert p.poll() is None and time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    time.sleep(0.5)  # some epochs
    return p


@pytest.mark.parametrize("how", ["terminal", "driver only"])
def test_ctrl_c_checkpoints_the_running_points_once_and_leaves_no_worker(workdir, how):
    """Ctrl-C (SIGINT to the process group: driver and workers) or ``kill -INT`` of the driver
    alone, twice: the two running points checkpoint (resumable), the third never starts,
    exit 130, and no worker of the sweep's session is left."""
    p = _start_and_wait(workdir)
    try:
        workers = worker_processes(p.pid)
        assert len(workers) == 2 and set(workers.values()) == {p.pid}, workers
        for _ in range(2):  # a second signal changes nothing
            if how == "terminal":
                os.killpg(p.pid, signal.SIGINT)
            else:
                p.send_signal(signal.SIGINT)
            time.sleep(0.05)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    r = Res(p.returncode, out, err.decode("utf-8", "replace"))
    assert r.rc == 130, r.show()
    assert "Traceback" not in r.err and r.err_lines[-1].startswith("nncli: error: sweep interrupted"), r.show()
    progress = [ln for ln in r.err_lines if re.match(r"^\[\d/3\] ", ln)]
    assert len(progress) == 2 and all(": interrupted: nncli: error: interrupted after" in ln for ln in progress), r.show()
    assert worker_processes(p.pid) == {} and not any(alive(w) for w in workers)
    sweep_dir = workdir / r.text.splitlines()[-1]
    runs = sorted(q for q in sweep_dir.iterdir() if q.is_dir())
    assert len(runs) == 2
    for run in runs:
        s = summary(run)
        assert s["status"] == "interrupted" and s["epochs_run"] >= 1, s


def test_workers_of_a_killed_driver_checkpoint_their_points_and_exit(workdir):
    """SIGKILL of ``nncli sweep`` alone (nothing can clean up): each worker notices at its next
    epoch that its driver is gone, checkpoints its point and exits."""
    p = _start_and_wait(workdir)
    try:
        workers = worker_processes(p.pid)
        assert len(workers) == 2, workers
        p.kill()
        p.communicate(timeout=60)
        deadline = time.monotonic() + 60
        while worker_processes(p.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker_processes(p.pid) == {}
    finally:
        for pid in worker_processes(p.pid):  # only this sweep's session
            os.kill(pid, signal.SIGKILL)
    runs = list((workdir / "runs").glob("*/*/config.yaml"))
    assert len(runs) == 2
    for run in (r.parent for r in runs):
        s = summary(run)
        assert s["status"] == "interrupted" and s["epochs_run"] >= 1, s
        assert len(npz_arrays(run / "checkpoint.npz")) > 0 and not RunDir(run).is_locked()


def test_the_benchmark_script_runs_both_executors_on_a_small_sweep():
    """benchmarks/sweep_workers.py (docs/performance.md's figures) keeps working: both sweeps
    complete every point (the script checks it), the report cost and RSS are measured.
    Timings are not checked: nothing can be timed reliably on a shared machine."""
    from benchmarks import sweep_workers as bench

    lines = []
    times = bench.side_by_side(seeds=1, jobs=2, repeats=1, epochs=5, out=lines.append)
    assert set(times) == {"process", "local"} and all(len(v) == 1 and v[0] > 0 for v in times.values())
    assert lines and lines[0].startswith("round 1: process ")
    plain, reported, _ = bench.report_cost(epochs=50, repeats=1, out=lines.append)
    assert plain > 0 and reported > 0 and "µs per epoch" in lines[-1]
    rss = bench.worker_rss(points=3, epochs=5, out=lines.append)
    assert len(rss) == 3 and all(r > 10_000 for r in rss)  # KiB: a worker with numpy loaded is tens of MiB
