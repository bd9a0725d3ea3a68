"""MLflow tracking (nncli/tracking.py; ``--track mlflow`` of ``nncli train`` and ``nncli
sweep``, the config's ``track:`` section).

Every check reads the store back with MLflow's own client (MlflowClient) and compares it
with the run directory as nncli wrote it (config.yaml read with yaml, metrics.csv with the
csv module, summary.json with json): the params, each epoch's metrics and their steps, the
summary metrics, the artifacts, the tags, the MLflow run status; a sweep's parent and child
runs. The stores are SQLite files (recent MLflow refuses the plain file store without an
opt-in), one per module (creating one costs seconds of migrations), each test in its own
experiment. An unreachable http URI (a closed port on 127.0.0.1) must leave the run
complete, exit 0, one warning, within seconds.
"""

from __future__ import annotations

import csv
import json
import socket
import sys
import time
from pathlib import Path

import pytest
import yaml

mlflow = pytest.importorskip("mlflow")

from helpers import chdir, cli, nn, one_run_dir, summary  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A SQLite tracking URI shared by the module's tests (each uses its own experiment)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def xor_config(workdir: Path, name: str, **track) -> Path:
    """configs/xor.yaml of the workdir with 7 epochs, a run name, and ``track`` as its track.mlflow section."""
    cfg = yaml.safe_load((workdir / "configs" / "xor.yaml").read_text(encoding="utf-8"))
    cfg["name"] = name
    cfg["train"]["epochs"] = 7
    if track:
        cfg["track"] = {"mlflow": track}
    path = workdir / "configs" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def runs_of(uri: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {uri}"
    return client.search_runs([exp.experiment_id])


def as_params(config: dict, prefix: str = "") -> dict:
    """config.yaml's keys, dotted, each value as MLflow keeps it (a string): text as it is,
    anything else JSON (the documented encoding)."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict) and v:
            out.update(as_params(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, str) else json.dumps(v)
    return out


def csv_columns(path: Path) -> dict[str, list[tuple[int, float]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {k: [(int(r["epoch"]), float(r[k])) for r in rows if r[k] != ""] for k in rows[0] if k != "epoch"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- nncli train


def test_train_logs_params_every_epoch_summary_artifacts_and_tags(workdir, store):
    cfg = xor_config(workdir, "xor-tracked", uri=store, experiment="train-config")
    r = nn("train", cfg, "--no-plots", cwd=workdir)  # the config's track section alone turns tracking on
    assert r.rc == 0, r.show()
    run_dir = one_run_dir(r, workdir)
    assert "logged to MLflow" in r.err and "nncli: warning" not in r.err, r.show()

    (run,) = runs_of(store, "train-config")
    client = MlflowClient(tracking_uri=store)
    assert run.info.status == "FINISHED"
    # params: every key of config.yaml, dotted, with its value
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert config["track"] == {"mlflow": {"uri": store, "experiment": "train-config"}}
    assert run.data.params == as_params(config)
    assert run.data.params["train.lr"] == "0.5" and run.data.params["model.layers"] == "[2, 4, 1]"
    assert run.data.params["model.activation"] == "tanh" and run.data.params["train.epochs"] == "7"
    # every epoch's metrics, step = epoch, the values of metrics.csv
    columns = csv_columns(run_dir / "metrics.csv")
    assert set(columns) == {"loss", "accuracy"}
    for key, expected in columns.items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert [s for s, _ in history] == list(range(1, 8)), key
        assert history == expected, key
    # the summary's figures
    s = summary(run_dir)
    assert run.data.metrics["final_loss"] == s["metrics"]["loss"]
    assert run.data.metrics["final_accuracy"] == s["metrics"]["accuracy"]
    assert run.data.metrics["epochs_run"] == 7 == s["epochs_run"]
    assert run.data.metrics["train_seconds"] == s["train_seconds"]
    # the run's files, byte for byte
    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.npz", "metrics.csv", "config.yaml", "summary.json", "preprocess.json"} <= listed
    assert ".lock" not in listed
    got = Path(client.download_artifacts(run.info.run_id, "model.npz", str(workdir / "dl")))
    assert got.read_bytes() == (run_dir / "model.npz").read_bytes()
    # the tags linking back to the run
    tags = run.data.tags
    assert tags["nncli.run_dir"] == str(run_dir.resolve())
    assert tags["nncli.status"] == "completed" and tags["nncli.run_id"] == run_dir.name
    import nncli

    assert tags["nncli.version"] == nncli.__version__
    assert run.info.run_name == run_dir.name
    # the run itself is an ordinary run: eval loads its config.yaml (with the track section)
    r = nn("eval", run_dir, "--json", "--no-plots", cwd=workdir)
    assert r.rc == 0, r.show()
    assert json.loads(r.text)["loss"] == pytest.approx(s["metrics"]["loss"], rel=1e-6)


def test_track_flag_takes_the_uri_from_the_environment_and_the_experiment_from_the_name(workdir, store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    cfg = xor_config(workdir, "xor-env")  # no track section
    r = nn("train", cfg, "--no-plots", "-q", "--track", "mlflow", cwd=workdir)
    assert r.rc == 0, r.show()
    run_dir = one_run_dir(r, workdir)
    assert r.err == "", r.show()  # --quiet: nothing but the result when everything was logged
    (run,) = runs_of(store, "xor-env")  # the experiment: the config's name
    assert run.data.tags["nncli.run_dir"] == str(run_dir.resolve())
    assert run.data.params["name"] == "xor-env"
    # --track on the command line is not part of the run's config
    assert "track" not in yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))


def test_without_a_uri_runs_go_to_mlflows_default_store_in_the_current_directory(workdir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    r = nn("train", xor_config(workdir, "xor-default"), "--no-plots", "-q", "--track", "mlflow", cwd=workdir)
    assert r.rc == 0 and r.err == "", r.show()
    run_dir = one_run_dir(r, workdir)
    (run,) = runs_of(f"sqlite:///{workdir / 'mlflow.db'}", "xor-default")  # sqlite:///mlflow.db, here
    assert run.data.tags["nncli.run_dir"] == str(run_dir.resolve())
    assert (workdir / "mlruns").is_dir()  # its artifacts: ./mlruns, as MLflow puts them by default
    assert list((workdir / "mlruns").rglob("model.npz"))


def test_track_none_overrides_the_config_section(workdir, tmp_path):
    db = tmp_path / "none.db"
    cfg = xor_config(workdir, "xor-none", uri=f"sqlite:///{db}")
    r = nn("train", cfg, "--no-plots", "-q", "--track", "none", cwd=workdir)
    assert r.rc == 0 and r.err == "", r.show()
    one_run_dir(r, workdir)
    assert not db.exists()


def test_unknown_tracker_is_refused_before_anything_runs(workdir):
    r = nn("train", "configs/xor.yaml", "--track", "wandb", cwd=workdir)
    assert r.rc == 2 and "--track wandb: unknown tracker; use mlflow or none" in r.err, r.show()
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize("how", ["flag", "config"])
def test_missing_mlflow_is_one_line_naming_the_extra_before_training(workdir, monkeypatch, how):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow fails, find_spec finds nothing: not installed
    if how == "flag":
        r = nn("train", "configs/xor.yaml", "--track", "mlflow", cwd=workdir)
    else:
        r = nn("train", xor_config(workdir, "xor-cfg", experiment="e"), cwd=workdir)
    assert r.rc == 2, r.show()
    assert len(r.lines) == 1 and "pip install 'nncli[mlflow]'" in r.lines[0] and "Traceback" not in r.err, r.show()
    assert not (workdir / "runs").exists()  # refused before the run directory was created


def test_unreachable_server_warns_and_the_run_completes_within_seconds(workdir):
    port = free_port()  # bound and closed again: nothing listens there
    cfg = xor_config(workdir, "xor-down", uri=f"http://127.0.0.1:{port}", experiment="down")
    t0 = time.monotonic()
    r = cli("train", cfg, "--no-plots", "-q", "--json", cwd=workdir)  # a real process: MLflow's import and client included
    elapsed = time.monotonic() - t0
    assert r.rc == 0, r.show()
    assert elapsed < 15, f"{elapsed:.1f} s"
    out = json.loads(r.text)
    run_dir = workdir / out["run_dir"]
    assert out["status"] == "completed" == summary(run_dir)["status"]
    assert {"model.npz", "metrics.csv", "config.yaml", "summary.json"} <= {p.name for p in run_dir.iterdir()}
    assert len(r.err_lines) == 1, r.show()
    line = r.err_lines[0]
    assert line.startswith("nncli: warning: ") and f"127.0.0.1:{port}" in line and "not logged" in line, line
    assert run_dir.name in line, line


def test_bounds_are_set_only_while_logging(workdir, monkeypatch):
    import os

    from nncli import tracking

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # the user's own setting is kept
    seen = {}

    def spy(uri):
        seen.update({k: os.environ.get(k) for k in tracking.BOUNDS})
        raise ConnectionError("refused")

    monkeypatch.setattr(tracking, "_check_reachable", spy)
    with chdir(workdir):
        run_id, warnings = tracking.log_run(tracking.Target("http://127.0.0.1:1", "x"), workdir)
    assert run_id is None and len(warnings) == 1 and "refused" in warnings[0]
    assert seen["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1" and seen["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_a_diverged_run_is_failed_and_an_interrupted_one_killed(workdir, store):
    from nncli import tracking

    cfg = xor_config(workdir, "xor-diverge", uri=store, experiment="statuses")
    # linear hidden units overflow at lr 1e37
    r = nn("train", cfg, "--no-plots", "-q", "--set", "model.activation=identity", "--set", "train.lr=1e37", cwd=workdir)
    assert r.rc == 1, r.show()
    (run,) = runs_of(store, "statuses")
    assert run.info.status == "FAILED" and run.data.tags["nncli.status"] == "diverged"
    # an interrupted run (its summary says so): KILLED, with its status as a tag
    run_dir = Path(run.data.tags["nncli.run_dir"])
    s = summary(run_dir)
    s["status"] = "interrupted"
    (run_dir / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    with chdir(workdir):  # (a new experiment's artifacts go to ./mlruns: MLflow's default)
        run_id, warnings = tracking.log_run(tracking.Target(store, "statuses"), run_dir)
    assert warnings == []
    got = MlflowClient(tracking_uri=store).get_run(run_id)
    assert got.info.status == "KILLED" and got.data.tags["nncli.status"] == "interrupted"


def test_a_server_that_accepts_but_never_answers_costs_seconds(workdir):
    with socket.socket() as hung:  # listening, never accepting: connections complete, no reply ever comes
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        cfg = xor_config(workdir, "xor-hung", uri=f"http://127.0.0.1:{hung.getsockname()[1]}")
        t0 = time.monotonic()
        r = nn("train", cfg, "--no-plots", "-q", cwd=workdir)
        elapsed = time.monotonic() - t0
    assert r.rc == 0, r.show()
    one_run_dir(r, workdir)
    assert elapsed < 10, f"{elapsed:.1f} s"
    assert len(r.err_lines) == 1 and "no answer from 127.0.0.1" in r.err_lines[0], r.show()


# MLflow's own tracking server (the app `mlflow server` serves), in a process of its own on
# 127.0.0.1, its artifacts proxied (mlflow-artifacts:/): what a team's server does
SERVER = """
import os, sys
port, root = int(sys.argv[1]), sys.argv[2]
os.environ["_MLFLOW_SERVER_FILE_STORE"] = f"sqlite:///{root}/server.db"
os.environ["_MLFLOW_SERVER_SERVE_ARTIFACTS"] = "true"
os.environ["_MLFLOW_SERVER_ARTIFACT_DESTINATION"] = f"{root}/artifacts"
os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = "mlflow-artifacts:/"
from mlflow.server import app
from werkzeug.serving import make_server
make_server("127.0.0.1", port, app, threaded=True).serve_forever()
"""


def test_a_real_tracking_server_over_http(workdir, tmp_path):
    import subprocess
    import urllib.request

    port = free_port()
    root = tmp_path / "server"
    root.mkdir()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(root)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the MLflow server did not start"
            time.sleep(0.2)
        uri = f"http://127.0.0.1:{port}"
        MlflowClient(tracking_uri=uri).search_experiments()  # a warm server (its first request creates its database)
        cfg = xor_config(workdir, "xor-http", uri=uri, experiment="over-http")
        r = nn("train", cfg, "--no-plots", "-q", cwd=workdir)
        assert r.rc == 0 and r.err == "", r.show()
        run_dir = one_run_dir(r, workdir)  # stdout: the run directory only (MLflow's "View run" lines go nowhere)
        (run,) = runs_of(uri, "over-http")
        client = MlflowClient(tracking_uri=uri)
        assert run.info.status == "FINISHED" and run.data.tags["nncli.run_dir"] == str(run_dir.resolve())
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss"))
        assert history == csv_columns(run_dir / "metrics.csv")["loss"]
        assert {"model.npz", "metrics.csv", "config.yaml"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
        stored = list((root / "artifacts").rglob("model.npz"))  # the server keeps the files it was sent
        assert len(stored) == 1 and stored[0].read_bytes() == (run_dir / "model.npz").read_bytes()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_artifacts_that_cannot_be_stored_are_named_and_the_rest_is_logged(workdir, store, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the artifact store should be a directory\n")
    MlflowClient(tracking_uri=store).create_experiment("no-artifacts", artifact_location=str(blocker / "artifacts"))
    cfg = xor_config(workdir, "xor-noart", uri=store, experiment="no-artifacts")
    r = nn("train", cfg, "--no-plots", "-q", cwd=workdir)
    assert r.rc == 0, r.show()
    run_dir = one_run_dir(r, workdir)
    assert len(r.err_lines) == 1, r.show()
    assert f"not logged: artifacts, status of run {run_dir.name}" in r.err_lines[0], r.show()
    (run,) = runs_of(store, "no-artifacts")
    assert run.data.params["train.epochs"] == "7" and run.data.metrics["epochs_run"] == 7  # logged before the artifacts
    assert run.info.status == "FAILED"  # not left RUNNING


# ---------------------------------------------------------------------- nncli sweep


def sweep_file(workdir: Path, name: str, lrs, **track) -> Path:
    """A sweep over train.lr of xor with linear hidden units (it trains at lr 0.5, overflows at 1e37)."""
    base = xor_config(workdir, f"{name}-base", **track)
    cfg = yaml.safe_load(base.read_text(encoding="utf-8"))
    cfg["model"]["activation"] = "identity"
    base.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"base": str(base.relative_to(workdir)), "grid": {"train.lr": lrs}}), encoding="utf-8")
    return path


def test_sweep_is_one_parent_run_with_a_child_per_point(workdir, store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    sweep = sweep_file(workdir, "lr-sweep", [0.5, 0.2, 1.0e37])
    r = nn("sweep", sweep, "--track", "mlflow", cwd=workdir)
    assert r.rc == 1, r.show()  # the diverged point fails the sweep, as without tracking
    assert "nncli: warning" not in r.err, r.show()
    sweep_dir = workdir / r.text.splitlines()[-1]
    runs = runs_of(store, "lr-sweep")  # the experiment: the sweep's name
    parents = [x for x in runs if "mlflow.parentRunId" not in x.data.tags]
    children = [x for x in runs if "mlflow.parentRunId" in x.data.tags]
    assert len(parents) == 1 and len(children) == 3, [x.data.tags for x in runs]
    parent = parents[0]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert parent.data.tags["nncli.sweep_dir"] == str(sweep_dir.resolve())
    assert json.loads(parent.data.params["grid.train.lr"]) == [0.5, 0.2, 1.0e37]
    assert parent.info.status == "FAILED"
    client = MlflowClient(tracking_uri=store)
    assert {"sweep.yaml", "results.csv"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    # each child is its point's run directory, logged as nncli train logs a run
    by_lr = {float(c.data.params["train.lr"]): c for c in children}
    assert set(by_lr) == {0.5, 0.2, 1.0e37}
    for lr, child in by_lr.items():
        run_dir = Path(child.data.tags["nncli.run_dir"])
        assert run_dir.parent == sweep_dir.resolve()
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        assert config["train"]["lr"] == lr and child.data.params == as_params(config)
        status = summary(run_dir)["status"]
        assert child.data.tags["nncli.status"] == status
        assert child.info.status == {"completed": "FINISHED", "diverged": "FAILED"}[status]
        history = sorted((m.step, m.value) for m in client.get_metric_history(child.info.run_id, "loss"))
        assert history == csv_columns(run_dir / "metrics.csv")["loss"]
        assert {"model.npz", "metrics.csv", "config.yaml"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
    assert by_lr[1.0e37].data.tags["nncli.status"] == "diverged"


def test_a_sweep_whose_base_config_tracks_logs_each_point_once_as_a_child(workdir, store):
    # the base config's track section: the driver logs the sweep; the points' own nncli train
    # processes (--executor process) must not log themselves as well
    sweep = sweep_file(workdir, "cfg-sweep", [0.5, 0.2], uri=store, experiment="from-config")
    r = nn("sweep", sweep, "--executor", "process", "--jobs", "2", cwd=workdir)
    assert r.rc == 0 and "nncli: warning" not in r.err, r.show()
    runs = runs_of(store, "from-config")
    assert len(runs) == 3, [x.data.tags for x in runs]
    parent = next(x for x in runs if "mlflow.parentRunId" not in x.data.tags)
    assert parent.info.status == "FINISHED"
    assert sorted(x.data.tags.get("mlflow.parentRunId") == parent.info.run_id for x in runs) == [False, True, True]
    import os

    assert os.environ.get("NNCLI_TRACK") is None  # the sweep put the environment back


def test_a_sweep_with_an_unreachable_server_warns_once_and_runs(workdir):
    sweep = sweep_file(workdir, "down-sweep", [0.5, 0.2], uri=f"http://127.0.0.1:{free_port()}")
    t0 = time.monotonic()
    r = nn("sweep", sweep, cwd=workdir)
    assert r.rc == 0, r.show()
    assert time.monotonic() - t0 < 30
    warnings = [ln for ln in r.err_lines if ln.startswith("nncli: warning")]
    assert len(warnings) == 1 and "not logged: sweep" in warnings[0] and "Connection refused" in warnings[0], r.show()
    sweep_dir = workdir / r.text.splitlines()[-1]
    assert sorted(summary(p)["status"] for p in sweep_dir.iterdir() if p.is_dir()) == ["completed", "completed"]


def test_a_mapping_whose_keys_mlflow_refuses_is_one_json_param(workdir, store):
    from nncli import tracking

    r = nn("train", xor_config(workdir, "xor-labels"), "--no-plots", "-q", cwd=workdir)
    assert r.rc == 0, r.show()
    run_dir = one_run_dir(r, workdir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    config["train"]["class_weight"] = {"a+b": 2.0, "c?": 1.0}  # labels MLflow refuses in a param name
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    with chdir(workdir):  # (a new experiment's artifacts go to ./mlruns: MLflow's default)
        run_id, warnings = tracking.log_run(tracking.Target(store, "labels"), run_dir)
    assert warnings == []
    params = MlflowClient(tracking_uri=store).get_run(run_id).data.params
    assert json.loads(params["train.class_weight"]) == {"a+b": 2.0, "c?": 1.0}
    assert params["train.lr"] == "0.5" and not any(k.startswith("train.class_weight.") for k in params)


def test_a_studys_pruned_points_are_killed_children(workdir, store):
    pytest.importorskip("optuna")
    base = xor_config(workdir, "xor-study", uri=store, experiment="study")
    (workdir / "study.yaml").write_text(yaml.safe_dump({
        "base": str(base.relative_to(workdir)), "search": {"method": "random", "trials": 4, "seed": 0},
        "params": {"train.lr": {"log_uniform": [1.0e-3, 1.0]}}, "grid": {"train.epochs": [40]},
        "prune": {"method": "median", "warmup_epochs": 2, "startup_trials": 1}}), encoding="utf-8")
    r = nn("sweep", "study.yaml", cwd=workdir)
    assert r.rc == 0 and "nncli: warning" not in r.err, r.show()
    runs = runs_of(store, "study")
    (parent,) = [x for x in runs if "mlflow.parentRunId" not in x.data.tags]
    children = [x for x in runs if x.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and len(runs) == 5
    assert parent.data.params["search.method"] == "random" and parent.data.params["prune.method"] == "median"
    statuses = []
    for child in children:
        s = summary(Path(child.data.tags["nncli.run_dir"]))
        statuses.append(s["status"])
        assert child.data.tags["nncli.status"] == s["status"]
        assert child.info.status == {"completed": "FINISHED", "pruned": "KILLED"}[s["status"]]
        assert child.data.metrics["epochs_run"] == s["epochs_run"]
    assert "pruned" in statuses and "completed" in statuses, statuses


def test_a_sweep_without_mlflow_is_refused_before_its_directory_exists(workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    sweep = sweep_file(workdir, "no-mlflow", [0.5])
    r = nn("sweep", sweep, "--track", "mlflow", cwd=workdir)
    assert r.rc == 2 and len(r.lines) == 1, r.show()
    assert r.lines[0] == "nncli: error: nncli sweep --track mlflow needs MLflow: pip install 'nncli[mlflow]'", r.show()
    assert not (workdir / "runs").exists()


def test_the_library_api_follows_the_config_section_and_its_track_argument(workdir, store, capfd):
    """nncli.train logs as nncli train does (the config's track section, or track='mlflow'),
    track='none' skips it, and nothing is printed (what could not be logged is a warning in
    run.warnings)."""
    import nncli

    cfg = xor_config(workdir, "xor-api", uri=store, experiment="api")
    with chdir(workdir):
        run = nncli.train(cfg)
        skipped = nncli.train(cfg, track="none")
        dead = nncli.train(cfg, {"track.mlflow.uri": f"http://127.0.0.1:{free_port()}"})
    (logged,) = runs_of(store, "api")
    assert logged.data.tags["nncli.run_dir"] == str((workdir / run.path).resolve())
    assert logged.data.params["train.lr"] == "0.5" and run.warnings == [] and skipped.warnings == []
    assert dead.status == "completed" and any("MLflow" in w for w in dead.warnings), dead.warnings
    assert capfd.readouterr() == ("", "")
