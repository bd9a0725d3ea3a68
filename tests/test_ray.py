"""``nncli sweep --executor ray`` (nncli/ray_executor.py) on a real Ray cluster.

The cluster is tests/ray_cluster.py's session fixture: a head and a second node on
127.0.0.1, one CPU each, started once for the whole test run. The sweeps run as real
``python -m nncli sweep ... --executor ray --address 127.0.0.1:PORT`` processes (the
driver), except the report test, which drives a RayExecutor in this process.

The worker-death tests find the Ray worker running a point through the test-only hook
nncli.ray_executor.TEST_PID_DIR (NNCLI_RAY_TEST_PIDS, set in the nodes' environment by the
fixture): each attempt of a point appends "start PID" when it starts and "epoch PID" after
its first epoch to PID_DIR/<point name>.pid. The test kills that PID (a process of the
cluster it started) with SIGKILL in the middle of the point.

References are independent of the Ray executor: the process executor (one ``python -m
nncli train`` per point) and ``nncli train`` run in this process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import assert_usage_error, cli_env, nn, read_text_csv, setup_workdir, start_cli, summary, write_yaml, xor_yaml

XOR = "configs/xor.yaml"
LONG = "configs/long.yaml"  # xor with 30,000 epochs: a point that runs for a second or two
NNCLI_LINE = re.compile(r"^(sweep |\[\d+/\d+\] |saved |nncli: error: )")


def sweep_cli(*args, cwd, cluster, timeout=180):
    """``python -m nncli sweep ARGS`` as a driver process joined to ``cluster``: (rc, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "nncli", "sweep", *map(str, args)], cwd=cwd, env=cli_env(cluster.env),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def sweep_dir(cwd: Path) -> Path:
    (d,) = [p for p in (cwd / "runs").iterdir() if p.is_dir()]
    return d


def point_runs(sweep: Path) -> dict[str, Path]:
    """{point name (sw-001...): its run directory} (run ids are stamp-NAME-hex)."""
    out = {}
    for d in sweep.iterdir():
        if d.is_dir():
            name = d.name.split("-", 2)[2].rsplit("-", 1)[0]
            assert name not in out, f"two run directories for {name}"
            out[name] = d
    return out


def no_leftovers(sweep: Path) -> None:
    """No temporary directory of the Ray executor's writer is left in the sweep directory."""
    assert not [p for p in sweep.iterdir() if p.name.startswith(".")], list(sweep.iterdir())


def only_nncli_lines(err: str) -> None:
    """stderr holds nncli's own lines only: nothing of Ray's chatter."""
    for ln in err.splitlines():
        assert NNCLI_LINE.match(ln), f"a line that is not nncli's on stderr: {ln!r}\n{err}"


def attempts(cluster, name: str) -> list[tuple[str, int]]:
    f = cluster.pid_dir / f"{name}.pid"
    if not f.exists():
        return []
    return [(w, int(pid)) for w, pid in (ln.split() for ln in f.read_text().splitlines())]


def kill_at_first_epoch(cluster, name: str, timeout: float = 60) -> int:
    """Wait until point ``name`` has trained its first epoch on a Ray worker, SIGKILL that worker; its PID."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        epochs = [pid for what, pid in attempts(cluster, name) if what == "epoch"]
        if epochs:
            os.kill(epochs[0], signal.SIGKILL)
            return epochs[0]
        time.sleep(0.01)
    raise AssertionError(f"point {name} never reported its first epoch")


@pytest.fixture
def ray_work(tmp_path, ray_cluster) -> Path:
    """A work directory (configs/xor.yaml, configs/long.yaml, datasets/xor.csv)."""
    setup_workdir(tmp_path)
    (tmp_path / LONG).write_text(xor_yaml(("epochs: 2000", "epochs: 30000")), encoding="utf-8")
    return tmp_path


# ----------------------------------------------------------------------------- without a cluster


def test_missing_ray_is_one_line_naming_the_extra(workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the package
    write_yaml(workdir / "sw.yaml", {"base": XOR, "grid": {"train.lr": [0.1, 0.5]}})
    r = nn("sweep", "sw.yaml", "--executor", "ray", cwd=workdir)
    assert_usage_error(r, "nncli sweep --executor ray needs Ray: pip install 'nncli[ray]'")
    assert not (workdir / "runs").exists()  # said before anything is written


def test_an_address_where_no_cluster_answers_is_one_line_at_once(workdir):
    pytest.importorskip("ray")
    from ray_cluster import free_port

    write_yaml(workdir / "sw.yaml", {"base": XOR, "grid": {"train.lr": [0.1, 0.5]}})
    port = free_port()  # free: nothing listens there
    t0 = time.monotonic()
    r = nn("sweep", "sw.yaml", "--executor", "ray", "--address", f"127.0.0.1:{port}", cwd=workdir)
    assert_usage_error(r, f"--address 127.0.0.1:{port}: no Ray cluster answers there (", "ray start --head")
    assert time.monotonic() - t0 < 30  # not Ray's minutes of retrying
    assert not (workdir / "runs").exists()
    r = nn("sweep", "sw.yaml", "--executor", "ray", "--address", "ray://127.0.0.1:10001", cwd=workdir)
    assert_usage_error(r, "--address ray://127.0.0.1:10001: Ray Client addresses (ray://) are not supported")
    assert not (workdir / "runs").exists()


# ----------------------------------------------------------------------------- on the cluster


def test_process_local_and_ray_sweeps_are_byte_identical(ray_work, ray_cluster):
    spec = {"base": XOR, "grid": {"train.lr": [0.1, 0.5], "model.activation": ["tanh", "relu"],
                                  "model.layers": [["auto", 4, "auto"], ["auto", 8, "auto"]], "train.epochs": [300]}}
    dirs = {}
    for kind in ("process", "local", "ray"):
        cwd = ray_work / kind
        setup_workdir(cwd)
        write_yaml(cwd / "sw.yaml", spec)
        extra = ["--address", ray_cluster.address] if kind == "ray" else []
        rc, out, err = sweep_cli("sw.yaml", "--executor", kind, "--jobs", "2", *extra, cwd=cwd, cluster=ray_cluster)
        assert rc == 0, (kind, out, err)
        assert out.splitlines()[-1] == str(Path("runs") / sweep_dir(cwd).name), out
        only_nncli_lines(err)
        assert err.count(": completed\n") == 8, err
        dirs[kind] = point_runs(sweep_dir(cwd))
        no_leftovers(sweep_dir(cwd))
    assert sorted(dirs["ray"]) == sorted(dirs["process"]) == [f"sw-{i:03d}" for i in range(1, 9)]
    for name, ref in dirs["process"].items():
        files = sorted(p.name for p in ref.iterdir())
        for kind in ("local", "ray"):
            run = dirs[kind][name]
            assert sorted(p.name for p in run.iterdir()) == files, (kind, name)
            for f in ("metrics.csv", "model.npz", "config.yaml", "data_files.json", "preprocess.json", "splits.npz"):
                assert (run / f).read_bytes() == (ref / f).read_bytes(), (kind, name, f)
            s, r = summary(run), summary(ref)
            assert s["status"] == r["status"] == "completed"
            assert s["metrics"] == r["metrics"] and s["files"] == r["files"], (kind, name)
    # the sweeps' results agree too, but for the run ids and times
    tables = {k: read_text_csv(sweep_dir(ray_work / k) / "results.csv") for k in ("process", "ray")}
    cols = [c for c in tables["process"].columns if c not in ("id", "created", "seconds")]
    assert tables["ray"].sort_values("name")[cols].values.tolist() == tables["process"].sort_values("name")[cols].values.tolist()


def test_a_bad_point_fails_once_and_a_killed_worker_is_retried(ray_work, ray_cluster):
    (ray_work / "datasets" / "noy.csv").write_text("a,b\n0,1\n1,0\n", encoding="utf-8")  # no column y: exit 2 in training
    write_yaml(ray_work / "rk.yaml", {"base": LONG, "grid": {"data.train": ["datasets/xor.csv", "datasets/noy.csv"]}})
    p = subprocess.Popen([sys.executable, "-m", "nncli", "sweep", "rk.yaml", "--executor", "ray", "--jobs", "2",
                          "--address", ray_cluster.address], cwd=ray_work, env=cli_env(ray_cluster.env),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = kill_at_first_epoch(ray_cluster, "rk-001")
    out, err = (s.decode() for s in p.communicate(timeout=120))
    assert p.returncode == 1, (out, err)  # one of the two failed
    only_nncli_lines(err)
    bad = [ln for ln in err.splitlines() if "noy.csv" in ln and ln.startswith("[")]
    assert len(bad) == 1 and ": failed (exit 2): nncli: error: " in bad[0], err
    assert [w for w, _ in attempts(ray_cluster, "rk-002")] == ["start"]  # an nncli error is the outcome: never retried
    tries = attempts(ray_cluster, "rk-001")
    assert [w for w, _ in tries] == ["start", "epoch", "start", "epoch"], tries  # killed once, retried once
    assert tries[1][1] == killed and tries[3][1] != killed
    # the killed worker's temporary directory (nncli-ray-PID-...) was removed by the next attempt
    assert not list(Path(tempfile.gettempdir()).glob(f"nncli-ray-{killed}-*"))
    assert re.search(r"^\[\d/2\] data\.train=\"datasets/xor\.csv\": completed$", err, re.M), err
    # the retried point is the run `nncli train` gives
    runs = point_runs(sweep_dir(ray_work))
    ref = nn("train", LONG, "--set", 'data.train="datasets/xor.csv"', "--runs-dir", "ref", "--no-plots", "-q", cwd=ray_work)
    assert ref.rc == 0, ref.show()
    (ref_run,) = (ray_work / "ref").iterdir()
    for f in ("metrics.csv", "model.npz"):
        assert (runs["rk-001"] / f).read_bytes() == (ref_run / f).read_bytes(), f
    no_leftovers(sweep_dir(ray_work))


def test_a_worker_that_dies_more_than_retries_times_is_failed(ray_work, ray_cluster):
    write_yaml(ray_work / "rd.yaml", {"base": LONG, "grid": {"train.lr": [0.5]}})
    p = subprocess.Popen([sys.executable, "-m", "nncli", "sweep", "rd.yaml", "--executor", "ray", "--retries", "0",
                          "--address", ray_cluster.address], cwd=ray_work, env=cli_env(ray_cluster.env),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill_at_first_epoch(ray_cluster, "rd-001")
    out, err = (s.decode() for s in p.communicate(timeout=120))
    assert p.returncode == 1, (out, err)
    only_nncli_lines(err)
    assert re.search(r"^\[1/1\] train\.lr=0\.5: failed: the Ray worker died 1 time \(\w+", err, re.M), err
    assert err.splitlines()[-1] == "nncli: error: 1 of 1 runs failed; see the table above", err
    assert [w for w, _ in attempts(ray_cluster, "rd-001")] == ["start", "epoch"]  # --retries 0: no second attempt
    assert point_runs(sweep_dir(ray_work)) == {}
    no_leftovers(sweep_dir(ray_work))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_cancels_the_rest_and_keeps_finished_runs(ray_work, ray_cluster, sig):
    # ray.init replaces the driver's SIGTERM handler (Ray's documentation says so): SIGTERM must stop the sweep too
    name = f"rc{int(sig)}"
    write_yaml(ray_work / f"{name}.yaml", {"base": LONG, "grid": {"train.lr": [0.1, 0.2, 0.3, 0.4]}})
    # the cluster given as RAY_ADDRESS (the other tests give --address)
    p = start_cli("sweep", f"{name}.yaml", "--executor", "ray", "--jobs", "1", cwd=ray_work,
                  env=dict(ray_cluster.env, RAY_ADDRESS=ray_cluster.address))
    lines = []
    while True:  # the first point finished: its line is out
        ln = p.stderr.readline().decode()
        assert ln, f"the sweep ended early: {lines}"
        lines.append(ln)
        if ln.startswith("[1/4]"):
            break
    deadline = time.monotonic() + 60
    while not [w for w, _ in attempts(ray_cluster, f"{name}-002") if w == "epoch"]:  # the second one is training
        assert time.monotonic() < deadline, "the second point never trained on the test cluster"
        time.sleep(0.01)
    t0 = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    took = time.monotonic() - t0
    err = "".join(lines) + err.decode()
    assert p.returncode == 130, (out, err)
    assert took < 20, took
    only_nncli_lines(err)
    assert lines[-1].startswith("[1/4] train.lr=0.1: completed"), lines
    assert err.splitlines()[-1].startswith("nncli: error: sweep interrupted; finished runs are kept in "), err
    runs = point_runs(sweep_dir(ray_work))
    assert sorted(runs) == [f"{name}-001"]  # the finished run is kept, whole; the cancelled one left nothing
    assert summary(runs[f"{name}-001"])["status"] == "completed"
    assert not (ray_cluster.pid_dir / f"{name}-003.pid").exists()  # the rest never started
    no_leftovers(sweep_dir(ray_work))


def test_each_epoch_is_reported_to_the_driver_and_its_answer_prunes(ray_work, ray_cluster, monkeypatch):
    ray = pytest.importorskip("ray")
    from nncli.executors import Task, make_executor
    from nncli.pointrun import Point

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.chdir(ray_work)
    tasks = [Task(i, Point(XOR, ["train.epochs=40"], str(ray_work / "rp"), f"rp-{i + 1}"), {}) for i in range(2)]
    seen: dict[int, list[int]] = {0: [], 1: []}

    def report(task, rec):
        seen[task.index].append(rec.epoch)
        return "hopeless" if task.index == 1 and rec.epoch == 5 else None

    finished = []
    ex = make_executor("ray", 2, address=ray_cluster.address, retries=2)
    assert ex.reports
    put = []  # what goes to the object store: each distinct input file, once
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda value, **kw: put.append(value) or real_put(value, **kw))
    ex.run(iter(tasks), finished.append, report)
    assert sorted(put) == sorted([(ray_work / XOR).read_bytes(), (ray_work / "datasets" / "xor.csv").read_bytes()])
    assert not ray.is_initialized()  # the executor disconnected
    assert sorted(t.index for t in finished) == [0, 1]
    assert seen[0] == list(range(1, 41)) and seen[1] == [1, 2, 3, 4, 5]  # every epoch, in order, until pruned
    assert all(t.returncode == 0 for t in finished), [(t.returncode, t.stderr) for t in finished]
    runs = {t.index: Path(json.loads(t.stdout)["run_dir"]) for t in finished}
    assert all(r.parent == ray_work / "rp" for r in runs.values())  # the --json line names the driver's path
    full, pruned = summary(runs[0]), summary(runs[1])
    assert full["status"] == "completed" and full["epochs_run"] == 40
    assert pruned["status"] == "pruned" and pruned["epochs_run"] == 5 and "hopeless" in pruned.get("message", "")
    # the pruned run is the first 5 epochs of the same config's full run
    a = (runs[0] / "metrics.csv").read_text().splitlines()
    b = (runs[1] / "metrics.csv").read_text().splitlines()
    assert len(a) == 41 and b == a[:6]
    listed = nn("runs", "rp", "--format", "csv", cwd=ray_work)
    assert listed.rc == 0 and "pruned" in listed.text, listed.show()


def test_a_retried_point_reports_each_epoch_once(ray_work, ray_cluster, monkeypatch):
    """The attempt after a killed worker trains epochs 1, 2, ... again: the driver's report sees each epoch once."""
    import threading

    pytest.importorskip("ray")
    from nncli.executors import Task, make_executor
    from nncli.pointrun import Point

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.chdir(ray_work)
    seen = []  # the epochs the driver's report is given
    killed = []

    def kill_after_5_reports():
        deadline = time.monotonic() + 60
        while len(seen) < 5:  # the first attempt has reported 5 epochs (it waits for each answer)
            assert time.monotonic() < deadline
            time.sleep(0.005)
        killed.append(kill_at_first_epoch(ray_cluster, "rr-1"))

    killer = threading.Thread(target=kill_after_5_reports)
    killer.start()
    finished = []
    make_executor("ray", 1, address=ray_cluster.address, retries=1).run(
        iter([Task(0, Point(XOR, ["train.epochs=300"], str(ray_work / "rr"), "rr-1"), {})]), finished.append,
        lambda task, rec: seen.append(rec.epoch))
    killer.join()
    assert [w for w, _ in attempts(ray_cluster, "rr-1")] == ["start", "epoch", "start", "epoch"]
    assert killed and seen == list(range(1, 301)), seen[:12]
    (t,) = finished
    assert t.returncode == 0 and summary(Path(json.loads(t.stdout)["run_dir"]))["epochs_run"] == 300


def test_without_an_address_a_local_ray_runs_the_sweep_and_is_shut_down(ray_work, ray_cluster):
    """No --address, no RAY_ADDRESS: the sweep starts a Ray of its own (not the test cluster),
    runs on it, and stops it: no process of that Ray is left (its session directory is named
    after the driver's PID)."""
    write_yaml(ray_work / "lo.yaml", {"base": XOR, "grid": {"train.lr": [0.1, 0.5], "train.epochs": [50]}})
    ray_tmp = tempfile.mkdtemp(prefix="nl", dir="/tmp")  # its session directory, not in /tmp/ray (short: socket paths)
    try:
        p = start_cli("sweep", "lo.yaml", "--executor", "ray", "--jobs", "2", cwd=ray_work,
                      env=dict(ray_cluster.env, RAY_TMPDIR=ray_tmp))
        out, err = (s.decode() for s in p.communicate(timeout=120))
        assert [d.name for d in Path(ray_tmp).glob(f"ray/session_*_{p.pid}")], list(Path(ray_tmp).rglob("session_*"))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert p.returncode == 0, (out, err)
    only_nncli_lines(err)
    assert err.count(": completed\n") == 2, err
    assert not (ray_cluster.pid_dir / "lo-001.pid").exists()  # not the test cluster's workers
    assert sorted(point_runs(sweep_dir(ray_work))) == ["lo-001", "lo-002"]
    session = re.compile(rf"session_[\d_-]+_{p.pid}\b".encode())
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and session.search((proc / "cmdline").read_bytes()):
                left.append(proc.name)
        except OSError:
            pass
    assert not left, f"processes of the sweep's own Ray still run: {left}"


def test_a_study_with_median_pruning_runs_on_ray(ray_work, ray_cluster):
    """search + prune on the Ray executor: the per-epoch reports reach the driver's study,
    which prunes exactly where the median rule says (computed in tests/test_study.py from
    the values reported), and the pruned points' run directories, written back by the driver,
    say so."""
    optuna = pytest.importorskip("optuna")
    from test_study import median_rule

    write_yaml(ray_work / "st.yaml", {
        "base": XOR, "name": "st", "metric": "loss", "search": {"method": "grid", "seed": 1},
        "grid": {"train.lr": [0.5, 1.0e-6, 0.3, 2.0e-6, 0.4], "train.epochs": [30]},
        "prune": {"method": "median", "warmup_epochs": 3, "startup_trials": 1, "every": 1}})
    rc, out, err = sweep_cli("st.yaml", "--executor", "ray", "--jobs", "1", "--address", ray_cluster.address,
                             "--storage", "sqlite:///st.db", cwd=ray_work, cluster=ray_cluster)
    assert rc == 0, (out, err)
    only_nncli_lines(err)
    study = optuna.load_study(study_name="st", storage="sqlite:///" + str(ray_work / "st.db"))
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 5
    expected = median_rule(trials, warmup=3, startup=1, minimize=True)
    runs = point_runs(sweep_dir(ray_work))
    pruned = []
    for t in trials:
        s = summary(runs[f"st-{t.number + 1:03d}"])
        if expected[t.number] is None:
            assert t.state.name == "COMPLETE" and s["status"] == "completed" and s["epochs_run"] == 30, t
        else:
            assert t.state.name == "PRUNED" and s["status"] == "pruned", t
            assert s["epochs_run"] == expected[t.number] + 1 == len(t.intermediate_values)
            pruned.append(t.params["train.lr"])
    assert pruned and all(lr < 1e-5 for lr in pruned), pruned
    no_leftovers(sweep_dir(ray_work))
