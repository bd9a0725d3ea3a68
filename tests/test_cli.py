"""The CLI commands' behaviour (nncli/cli.py): ``nncli train`` end to end (exit codes, stdout
is the run directory or one JSON object, progress lines on stderr, the run directory's
files, determinism, --quiet/--name/--runs-dir/--json), ``nncli data``, --help and --version.

Commands run in this process (helpers.nn) with a temporary cwd; only the installed console
script needs a real process. The runs this module inspects are trained once by a
module-scoped fixture; each test then looks at the run it cares about.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import nncli
from helpers import (NO_PLOTS, add_blobs, assert_same_arrays, assert_usage_error, cli_env, metrics_rows, nn, npz_arrays,
                     read_text_csv, runs_in, setup_workdir, sigmoid)

RUN_DIR_RE = re.compile(r"^runs/\d{8}-\d{6}-xor-[0-9a-f]{4}$")

THREE_CLASS_YAML = """\
name: three
seed: 1
data:
  train: datasets/three.csv
  target: colour
model:
  layers: [auto, 5, auto]
  activation: sigmoid
loss: cross_entropy
train:
  optimizer: adam
  lr: 0.05
  epochs: 4
  batch_size: full
"""


def write_three_class_csv(path: Path) -> Path:
    rng = np.random.default_rng(4)
    lines = ["x1,x2,colour"]
    for label, c in (("red", (0, 3)), ("green", (3, 0)), ("blue", (-3, -3))):
        for x, y in rng.normal(c, 0.4, size=(10, 2)):
            lines.append(f"{x:.5f},{y:.5f},{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the runs


def _job(base: Path, key: str, args, setup=None):
    d = setup_workdir(base / key)
    if setup:
        setup(d)
    return d, nn("train", *args, cwd=d)


def _three(d):
    write_three_class_csv(d / "datasets" / "three.csv")
    (d / "configs" / "three.yaml").write_text(THREE_CLASS_YAML, encoding="utf-8")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    jobs = {
        # the README's main job, exactly as documented
        "xor": (["configs/xor.yaml"], None),
        "xor_again": (["configs/xor.yaml", *NO_PLOTS], None),
        "json": (["configs/xor.yaml", "--json", "--set", "train.epochs=5", *NO_PLOTS], None),
        "quiet_named": (["configs/xor.yaml", "--quiet", "--name", "foo", "--set", "train.epochs=5", *NO_PLOTS], None),
        "val": (["configs/blobs.yaml", "--set", "data.val_split=0.25", *NO_PLOTS], add_blobs),
        "three": (["configs/three.yaml", *NO_PLOTS], _three),
    }
    results = {k: _job(base, k, args, setup) for k, (args, setup) in jobs.items()}
    # reproduce the first run from its own saved config (into another runs dir, so that the
    # first work directory keeps exactly one run)
    d, r = results["xor"]
    assert r.rc == 0, r.show()
    saved = r.text.strip() + "/config.yaml"
    results["reproduce"] = (d, nn("train", saved, "-q", "--runs-dir", "reproduced", *NO_PLOTS, cwd=d))
    return results


@pytest.fixture(scope="module")
def xor(runs):
    d, r = runs["xor"]
    assert r.rc == 0, r.show()
    return d, r, d / r.text.strip()


# ----------------------------------------------------------------------------- the main xor run


def test_xor_exit_code_and_stdout_is_the_run_dir(xor):
    d, r, run = xor
    assert r.rc == 0
    assert r.text.endswith("\n") and r.text.count("\n") == 1, repr(r.text)
    assert RUN_DIR_RE.match(r.text.strip()), r.text
    assert run.is_dir()
    assert runs_in(d) == [run]


def test_xor_run_dir_files(xor):
    _, _, run = xor
    for f in ("config.yaml", "metrics.csv", "model.npz", "preprocess.json", "summary.json"):
        assert (run / f).is_file(), f
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_xor_metrics_csv(xor):
    _, _, run = xor
    header, rows = metrics_rows(run)
    assert header == ["epoch", "loss", "accuracy"]
    assert len(rows) == 2000
    assert [int(r[0]) for r in rows] == list(range(1, 2001))
    losses = [float(r[1]) for r in rows]
    acc = [float(r[2]) for r in rows]
    assert all(math.isfinite(x) and x >= 0 for x in losses)
    assert all(a in (0.0, 0.25, 0.5, 0.75, 1.0) for a in acc)  # 4 rows: accuracy in quarters
    assert losses[-1] < 0.05 < losses[0]
    assert acc[-1] == 1.0


def test_xor_summary(xor):
    _, _, run = xor
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed"
    assert summary["epochs_run"] == 2000
    assert summary["seed"] == 0
    assert summary["metrics"]["accuracy"] == 1.0
    assert summary["metrics"]["loss"] < 0.05
    assert summary["versions"]["nncli"] == nncli.__version__
    assert summary["versions"]["numpy"] == np.__version__
    assert summary["train_seconds"] >= 0


def test_xor_stderr_is_plain_and_about_20_progress_lines(xor):
    _, r, run = xor
    assert "\x1b" not in r.err
    assert not r.tb and "Traceback" not in r.err
    progress = [ln for ln in r.err.splitlines() if re.match(r"^epoch\s+\d+/2000\b", ln)]
    assert 15 <= len(progress) <= 25, r.err
    assert len(r.err.splitlines()) < 40
    assert re.match(r"^epoch\s+2000/2000\b", progress[-1])
    # each progress line agrees with metrics.csv for its epoch
    _, rows = metrics_rows(run)
    for ln in progress:
        m = re.match(r"^epoch\s+(\d+)/2000\s+loss\s+([0-9.e+-]+)\s+accuracy\s+([0-9.]+)", ln)
        assert m, ln
        ep, loss, acc = int(m.group(1)), float(m.group(2)), float(m.group(3))
        row = rows[ep - 1]
        assert math.isclose(loss, float(row[1]), rel_tol=5e-3, abs_tol=5e-5), (ln, row)
        assert math.isclose(acc, float(row[2]), abs_tol=5e-5), (ln, row)


def test_xor_saved_config_is_resolved(xor):
    _, _, run = xor
    cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert cfg["name"] == "xor" and cfg["seed"] == 0 and cfg["loss"] == "bce"
    assert cfg["model"]["layers"] == [2, 4, 1]
    assert cfg["model"]["output"] == "sigmoid"
    assert cfg["train"]["lr"] == 0.5 and cfg["train"]["epochs"] == 2000 and cfg["train"]["batch_size"] == 4
    # every default written out
    for key in ("optimizer", "shuffle", "l2", "dtype", "momentum", "beta1", "beta2", "eps"):
        assert key in cfg["train"], key
    for key in ("activation", "init"):
        assert key in cfg["model"], key


def test_xor_preprocess_json(xor):
    _, _, run = xor
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["features"] == ["x1", "x2"]
    assert meta["targets"] == ["y"]
    assert meta["task"] == "binary"
    assert [str(c) for c in meta["classes"]] == ["0", "1"]


def test_xor_model_npz_w_ij_shapes(xor):
    _, _, run = xor
    with np.load(run / "model.npz", allow_pickle=False) as z:
        assert z["W1"].shape == (4, 2)  # (n_out, n_in)
        assert z["W2"].shape == (1, 4)
        assert z["b1"].shape == (4,)
        assert z["b2"].shape == (1,)
        assert "W3" not in z.files
        for k in ("x_mean", "x_std", "classes"):
            assert k in z.files
        np.testing.assert_allclose(z["x_mean"], [0.5, 0.5])
        assert np.all(z["x_std"] > 0)
        assert [str(c) for c in z["classes"]] == ["0", "1"]


def test_xor_forward_by_hand_from_saved_arrays(xor):
    d, _, run = xor
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    with np.load(run / "model.npz", allow_pickle=False) as z:
        arr = {k: z[k].astype(np.float64) for k in ("W1", "b1", "W2", "b2", "x_mean", "x_std")}
    data = np.loadtxt(d / "datasets" / "xor.csv", delimiter=",", skiprows=1)
    X, y = data[:, :2], data[:, 2]
    probs = []
    for x in X:
        x = (x - arr["x_mean"]) / arr["x_std"]
        h = np.tanh(arr["W1"] @ x + arr["b1"])  # z = W x + b, W[i, j]: input j -> neuron i
        probs.append(sigmoid(arr["W2"] @ h + arr["b2"])[0])
    p = np.array(probs)
    # the network classifies XOR: y_hat >= 1/2 exactly where y = 1
    np.testing.assert_array_equal((p >= 0.5).astype(int), y.astype(int))
    # and its reported training loss is the mean cross-entropy of these probabilities
    bce = float(np.mean(-y * np.log(p) - (1 - y) * np.log(1 - p)))
    assert math.isclose(bce, summary["metrics"]["loss"], rel_tol=2e-3)
    # the library's own reload of the run gives the same probabilities
    from nncli.runs import load_run

    loaded = load_run(run)
    Xs = (X - arr["x_mean"]) / arr["x_std"]
    np.testing.assert_allclose(loaded.model.predict(Xs)[:, 0], p, rtol=1e-5)


# ----------------------------------------------------------------------------- determinism


def test_same_config_twice_is_bit_identical(runs, xor):
    _, _, run1 = xor
    d2, r2 = runs["xor_again"]
    assert r2.rc == 0, r2.show()
    run2 = d2 / r2.text.strip()
    assert run1 != run2
    assert (run1 / "metrics.csv").read_bytes() == (run2 / "metrics.csv").read_bytes()
    assert_same_arrays(npz_arrays(run1 / "model.npz"), npz_arrays(run2 / "model.npz"))
    assert (run1 / "config.yaml").read_text() == (run2 / "config.yaml").read_text()


def test_training_the_saved_config_reproduces_the_run(runs, xor):
    d, _, run1 = xor
    _, r = runs["reproduce"]
    assert r.rc == 0, r.show()
    assert r.err == "", r.show()
    run3 = d / r.text.strip()
    assert run3.parent == d / "reproduced" and run3.is_dir()
    assert (run1 / "metrics.csv").read_bytes() == (run3 / "metrics.csv").read_bytes()
    assert_same_arrays(npz_arrays(run1 / "model.npz"), npz_arrays(run3 / "model.npz"))
    assert yaml.safe_load((run1 / "config.yaml").read_text()) == yaml.safe_load((run3 / "config.yaml").read_text())


def _train_in_process(cfg_path, runs_dir, overrides):
    from nncli.config import load_config
    from nncli.job import TrainingJob

    job = TrainingJob(load_config(cfg_path, overrides), runs_dir)
    run = job.start()
    records = [(r.epoch, r.loss, r.metric, r.val_loss, r.val_metric) for r in job.epochs()]
    job.finish(plots=False)
    return run, records


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_training_job_is_deterministic_in_process(blobs_workdir, monkeypatch, optimizer):
    monkeypatch.chdir(blobs_workdir)
    overrides = ["train.epochs=6", "train.batch_size=5", "data.val_split=0.2", "train.dtype=float64",
                 f"train.optimizer={optimizer}", "train.lr=0.05"]
    run1, rec1 = _train_in_process("configs/blobs.yaml", "runs", overrides)
    run2, rec2 = _train_in_process("configs/blobs.yaml", "runs", overrides)
    assert run1 != run2
    assert rec1 == rec2 and len(rec1) == 6
    assert (run1 / "metrics.csv").read_bytes() == (run2 / "metrics.csv").read_bytes()
    assert_same_arrays(npz_arrays(run1 / "model.npz"), npz_arrays(run2 / "model.npz"))
    # a different seed gives a different run (the seed is really used)
    run3, rec3 = _train_in_process("configs/blobs.yaml", "runs", overrides + ["seed=4"])
    assert rec3 != rec1


# ----------------------------------------------------------------------------- options


def test_json_prints_one_object_with_run_dir(runs):
    d, r = runs["json"]
    assert r.rc == 0, r.show()
    assert r.text.count("\n") == 1
    obj = json.loads(r.text)
    assert isinstance(obj, dict)
    run = d / obj["run_dir"]
    assert run.is_dir() and runs_in(d) == [run]
    assert obj["status"] == "completed" and obj["epochs_run"] == 5
    header, rows = metrics_rows(run)
    assert header == ["epoch", "loss", "accuracy"]
    assert len(rows) == 5  # --set train.epochs=5


def test_quiet_and_name(runs):
    d, r = runs["quiet_named"]
    assert r.rc == 0, r.show()
    assert r.err == "", r.show()
    assert r.text.count("\n") == 1
    run = d / r.text.strip()
    assert run.is_dir()
    assert "foo" in run.name
    assert re.match(r"^\d{8}-\d{6}-foo-[0-9a-f]{4}$", run.name), run.name
    assert yaml.safe_load((run / "config.yaml").read_text())["name"] == "foo"
    assert len(metrics_rows(run)[1]) == 5


def test_validation_split_adds_columns(runs):
    d, r = runs["val"]
    assert r.rc == 0, r.show()
    run = d / r.text.strip()
    header, rows = metrics_rows(run)
    assert header == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(rows) == 5
    for row in rows:
        vl, va = float(row[3]), float(row[4])
        assert math.isfinite(vl) and vl > 0
        assert 0.0 <= va <= 1.0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val_metrics"]["rows"] == 10  # 25% of 40 rows, stratified: 5 per class
    assert summary["metrics"]["rows"] == 30
    assert math.isclose(summary["val_metrics"]["loss"], float(rows[-1][3]), rel_tol=1e-6)
    assert "val_loss" in r.err


def test_multiclass_auto_sizes_and_w_ij_shapes(runs):
    d, r = runs["three"]
    assert r.rc == 0, r.show()
    run = d / r.text.strip()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["layers"] == [2, 5, 3]
    assert cfg["model"]["output"] == "softmax"
    with np.load(run / "model.npz", allow_pickle=False) as z:
        assert z["W1"].shape == (5, 2) and z["W2"].shape == (3, 5)
        assert z["b1"].shape == (5,) and z["b2"].shape == (3,)
        assert sorted(str(c) for c in z["classes"]) == ["blue", "green", "red"]
    header, rows = metrics_rows(run)
    assert header == ["epoch", "loss", "accuracy"] and len(rows) == 4


def test_console_script_works(workdir):
    exe = shutil.which("nncli", path=str(Path(sys.executable).parent)) or shutil.which("nncli")
    if exe is None:
        pytest.skip("the nncli console script is not installed")
    r = subprocess.run([exe, "train", "configs/xor.yaml", "-q", "--set", "train.epochs=2", *NO_PLOTS],
                       cwd=workdir, capture_output=True, text=True, env=cli_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert (workdir / r.stdout.strip() / "summary.json").is_file()


def test_runs_dir_option(workdir):
    r = nn("train", "configs/xor.yaml", "-q", "--runs-dir", "elsewhere/runs", "--set", "train.epochs=2", *NO_PLOTS,
           cwd=workdir)
    assert r.rc == 0, r.show()
    run = workdir / r.text.strip()
    assert run.parent == workdir / "elsewhere" / "runs"
    assert (run / "summary.json").is_file()
    assert not (workdir / "runs").exists()


def test_diverging_run_exits_1_and_keeps_finite_weights(tmp_path):
    (tmp_path / "lin.csv").write_text("x,y\n1,2\n2,4\n3,6\n4,8\n")
    (tmp_path / "div.yaml").write_text(
        "data: {train: lin.csv, target: y}\nmodel: {layers: [1, 3, 1], activation: tanh}\nloss: mse\n"
        "train: {optimizer: sgd, lr: 1000000, epochs: 50}\n"  # (adam's steps are bounded by lr: it would not diverge)
    )
    r = nn("train", "div.yaml", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 1, r.show()
    assert not r.tb and "Traceback" not in r.err
    run = tmp_path / r.text.strip()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert summary["epochs_run"] < 50
    with np.load(run / "model.npz", allow_pickle=False) as z:
        for k in z.files:
            if k.startswith(("W", "b")):
                assert np.all(np.isfinite(z[k])), k
    assert "diverged" in r.err_lines[-1]


# ----------------------------------------------------------------------------- the training loop


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_epoch_loss_is_the_mean_of_minibatch_losses_before_each_update(blobs_workdir, monkeypatch, optimizer):
    """README: the training loss and metric are averaged over the epoch's minibatches as they
    are trained. Replayed by hand: 40 rows, unshuffled batches of 16, 16 and 8."""
    from nncli.config import load_config
    from nncli.job import TrainingJob, prepare
    from nncli.losses import LOSSES

    monkeypatch.chdir(blobs_workdir)
    lr, mu = 0.3, 0.5
    cfg = load_config("configs/blobs.yaml", [
        "train.epochs=2", "train.batch_size=16", "train.shuffle=false", "train.dtype=float64",
        f"train.lr={lr}", f"train.optimizer={optimizer}", f"train.momentum={mu}",
    ])
    data, model, _, _ = prepare(cfg)  # the same seeded start the job gets
    X, Y = data.train.X, data.train.Y
    n = X.shape[0]
    assert n == 40
    bce = LOSSES["bce"]
    v = [np.zeros_like(p) for _, p in model.params()]
    expected = []
    for _ in range(2):
        loss_sum, hits = 0.0, 0
        for s0 in range(0, n, 16):
            xb, yb = X[s0:s0 + 16], Y[s0:s0 + 16]
            p = model.predict(xb)[:, 0]
            hits += int(np.sum((p >= 0.5) == (yb[:, 0] == 1)))
            E, grads = model.loss_and_grads(xb, yb, bce)
            loss_sum += E * len(xb)
            for i, ((_, param), g) in enumerate(zip(model.params(), grads)):
                if optimizer == "sgd":
                    param -= lr * g
                else:
                    v[i] = mu * v[i] + g
                    param -= lr * v[i]
        expected.append((loss_sum / n, hits / n))

    job = TrainingJob(cfg, "runs")
    job.start()
    records = list(job.epochs())
    assert len(records) == 2
    for rec, (loss, acc) in zip(records, expected):
        assert math.isclose(rec.loss, loss, rel_tol=1e-12)
        assert rec.metric == acc
    for (name, got), (_, want) in zip(job.model.params(), model.params()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=name)


def test_full_batch_epoch_loss_is_the_loss_at_the_starting_weights(blobs_workdir, monkeypatch):
    from nncli.config import load_config
    from nncli.job import TrainingJob, prepare
    from nncli.losses import LOSSES

    monkeypatch.chdir(blobs_workdir)
    cfg = load_config("configs/blobs.yaml", ["train.epochs=1", "train.batch_size=full", "train.dtype=float64"])
    data, model, _, _ = prepare(cfg)
    E0 = model.objective(data.train.X, data.train.Y, LOSSES["bce"])
    job = TrainingJob(cfg, "runs")
    job.start()
    (rec,) = list(job.epochs())
    assert math.isclose(rec.loss, E0, rel_tol=1e-12)


# ----------------------------------------------------------------------------- version, help, data


def test_version_prints_the_package_version(tmp_path):
    r = nn("--version", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert r.text == f"nncli {nncli.__version__}\n" and r.err == "", r.show()


def test_help_lists_every_command_and_the_exit_codes(tmp_path):
    r = nn("--help", cwd=tmp_path)
    assert r.rc == 0, r.show()
    for command in ("train", "gradcheck", "eval", "predict", "plot", "runs", "sweep", "data"):
        assert re.search(rf"^\s+{command}\s", r.text, re.M), (command, r.text)
    assert "2 bad usage, config or data" in " ".join(r.text.split()), r.text
    train = nn("train", "--help", cwd=tmp_path)
    assert train.rc == 0, train.show()
    for opt in ("--set", "--name", "--runs-dir", "--resume", "--quiet", "--json", "--no-plots"):
        assert opt in train.text, (opt, train.text)


def test_data_writes_a_seeded_csv_to_stdout_or_a_file(tmp_path):
    a = nn("data", "xor", "-o", "-", "--n", "40", "--seed", "3", cwd=tmp_path)
    b = nn("data", "xor", "-o", "-", "--n", "40", "--seed", "3", cwd=tmp_path)
    c = nn("data", "xor", "-o", "-", "--n", "40", "--seed", "4", cwd=tmp_path)
    for r in (a, b, c):
        assert r.rc == 0 and r.err == "", r.show()  # stdout carries only the CSV
    assert a.out == b.out and a.out != c.out  # the same seed, the same bytes
    df = read_text_csv(a.out)
    assert list(df.columns) == ["x1", "x2", "label"] and len(df) == 40
    assert set(df["label"]) <= {"0", "1"}
    f = nn("data", "xor", "-o", "xor40.csv", "--n", "40", "--seed", "3", cwd=tmp_path)
    assert f.rc == 0 and f.text == "", f.show()
    assert f.err_lines == ["wrote xor40.csv: 40 rows, columns x1, x2, label"], f.show()
    assert (tmp_path / "xor40.csv").read_bytes() == a.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xor40.csv"]  # no temporary file left


def test_data_rejects_an_unknown_dataset_and_a_missing_output(tmp_path):
    assert_usage_error(nn("data", "nope", "-o", "out.csv", cwd=tmp_path), "unknown dataset 'nope'", "moons")
    r = nn("data", "xor", cwd=tmp_path)
    assert r.rc == 2 and not r.tb, r.show()
    assert "--output" in r.err, r.show()
    assert r.text == "" and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- one line, whatever the data holds


@pytest.mark.parametrize("label", ["\x1e", "a\u2028b", "x\x0by", "\x85"])
def test_an_error_naming_a_label_with_line_breaking_characters_stays_one_line(tmp_path, label):
    """A message quotes the user's cells; characters str.splitlines breaks on (record
    separators, CR, NEL, U+2028) are written as escapes, so the error is one line."""
    import csv

    with open(tmp_path / "d.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["x", "y"])
        w.writerows([[i, c] for i, c in enumerate([label, "0", "1"] * 3)])
    (tmp_path / "c.yaml").write_text(
        "data: {train: d.csv, target: y}\nmodel: {layers: [auto, 2, auto]}\nloss: bce\ntrain: {lr: 0.1, epochs: 1}\n",
        encoding="utf-8")
    r = nn("train", "c.yaml", *NO_PLOTS, cwd=tmp_path)
    assert_usage_error(r, "has 3 classes", repr(label)[1:-1])


def test_one_line_escapes_only_what_breaks_a_line():
    from nncli.view import one_line

    assert one_line("température 007 [auto, 4]\tok") == "température 007 [auto, 4]\tok"
    assert one_line("a\nb\x1ec\u2028d") == "a\\nb\\x1ec\\u2028d"
    assert len(one_line("".join(map(chr, range(0x20))) + "\x85\u2028\u2029").splitlines()) == 1
