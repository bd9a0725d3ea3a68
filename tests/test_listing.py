"""``nncli runs``: the listing of run directories (nncli/listing.py).

Statuses (completed, diverged, incomplete, interrupted), the config keys that differ
between the listed runs, final metrics, --sort (losses ascending, other metrics
descending, completed runs first), --where (numbers read as --set reads them), the
table/csv/json formats, and unreadable directories skipped with a warning. Everything
runs in this process (helpers.nn); the runs are trained here too.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import NO_PLOTS, Res, nn, one_run_dir, read_text_csv, setup_workdir, summary, xor_yaml

ESC = "\x1b"
XOR = "configs/xor.yaml"


def records(r: Res) -> list[dict]:
    assert r.rc == 0, r.show()
    data = json.loads(r.text)
    assert isinstance(data, list), data
    return data


def csv_rows(r: Res) -> list[dict]:
    assert r.rc == 0, r.show()
    return read_text_csv(r.out).to_dict("records")


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _check_order(recs, key, descending):
    values = [r.get(key) for r in recs]
    present = [v for v in values if not _is_missing(v)]
    # missing values come last
    assert all(not _is_missing(v) for v in values[: len(present)]), values
    assert present == sorted(present, reverse=descending), (key, values)
    return present


# ----------------------------------------------------------------------------- the runs


@pytest.fixture(scope="module")
def listing(tmp_path_factory):
    """A runs directory R with two completed runs (lr 0.1, 0.5), a diverged one, an
    incomplete one and two corrupt ones, and the output of several ``nncli runs``."""
    wd = setup_workdir(tmp_path_factory.mktemp("listing"))
    # linear hidden units: trains (badly) at lr 0.5, overflows at lr 1e37
    (wd / "configs" / "xor_id.yaml").write_text(xor_yaml(("activation: tanh", "activation: identity")), encoding="utf-8")
    base = [*NO_PLOTS, "--quiet", "--runs-dir", "R", "--set", "train.epochs=50"]
    a = nn("train", XOR, *base, "--set", "train.lr=0.1", cwd=wd)
    b = nn("train", XOR, *base, "--set", "train.lr=0.5", cwd=wd)
    c = nn("train", "configs/xor_id.yaml", *base, "--set", "train.lr=1.0e+37", cwd=wd)
    assert a.rc == 0, a.show()
    assert b.rc == 0, b.show()
    assert c.rc == 1, c.show()
    runs = {"lr01": one_run_dir(a, wd), "lr05": one_run_dir(b, wd), "diverged": one_run_dir(c, wd)}
    assert summary(runs["diverged"])["status"] == "diverged"
    R = wd / "R"
    runs["incomplete"] = R / "20990101-000000-xor-0001"
    shutil.copytree(runs["lr05"], runs["incomplete"])
    (runs["incomplete"] / "summary.json").unlink()
    runs["bad_summary"] = R / "20990101-000000-xor-0002"
    shutil.copytree(runs["lr01"], runs["bad_summary"])
    (runs["bad_summary"] / "summary.json").write_text("{not json", encoding="utf-8")
    runs["bad_config"] = R / "20990101-000000-xor-0003"
    shutil.copytree(runs["lr01"], runs["bad_config"])
    (runs["bad_config"] / "config.yaml").write_text("name: xor\ntrain: [lr: 0.1\n  epochs: {\n", encoding="utf-8")

    calls = {
        "table": ["runs", "R"],
        "json_loss": ["runs", "R", "--format", "json", "--sort", "loss"],
        "json_accuracy": ["runs", "R", "--format", "json", "--sort", "accuracy"],
        "json_where": ["runs", "R", "--format", "json", "--where", "train.lr=0.1"],
        "json_where_exp": ["runs", "R", "--format", "json", "--where", "train.lr=1e-1", "--where", "status=completed"],
        "csv_loss": ["runs", "R", "--format", "csv", "--sort", "loss"],
        "bad_sort": ["runs", "R", "--sort", "acuracy"],
    }
    out = {key: nn(*args, cwd=wd) for key, args in calls.items()}
    return wd, runs, out


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory) -> Path:
    """A diverged regression run (loss: mse, metric r2)."""
    wd = setup_workdir(tmp_path_factory.mktemp("regression"))
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, 40)
    (wd / "datasets" / "lin.csv").write_text("x,y\n" + "".join(f"{a:.5f},{3 * a + 1:.5f}\n" for a in x), encoding="utf-8")
    (wd / "lin.yaml").write_text(
        "name: lin\nseed: 0\ndata: {train: datasets/lin.csv, target: y}\n"
        "model: {layers: [auto, 4, auto], activation: identity}\nloss: mse\n"
        "train: {optimizer: sgd, lr: 1.0, epochs: 50, batch_size: full}\n", encoding="utf-8")
    r = nn("train", "lin.yaml", "-q", *NO_PLOTS, cwd=wd)
    assert r.rc == 1, r.show()
    run = one_run_dir(r, wd)
    assert summary(run)["status"] == "diverged"
    return run


# ----------------------------------------------------------------------------- the listing


def test_runs_skips_corrupt_directories_with_a_warning(listing):
    wd, runs, out = listing
    for key in ("table", "json_loss", "csv_loss"):
        r = out[key]
        assert r.rc == 0, r.show()
        assert not r.tb and "Traceback" not in r.err, r.show()
        for bad in ("bad_summary", "bad_config"):
            hits = [ln for ln in r.err_lines if runs[bad].name in ln]
            assert len(hits) == 1 and "warning" in hits[0], r.show()
        assert runs["bad_summary"].name not in r.text and runs["bad_config"].name not in r.text, r.show()
    table = out["table"]
    for key in ("lr01", "lr05", "diverged", "incomplete"):
        assert runs[key].name in table.text, table.show()
    assert ESC not in table.text + table.err


def test_runs_json_lists_statuses_and_varying_keys(listing):
    wd, runs, out = listing
    recs = records(out["json_loss"])
    by_id = {r["id"]: r for r in recs}
    expected = {runs["lr01"].name: "completed", runs["lr05"].name: "completed",
                runs["diverged"].name: "diverged", runs["incomplete"].name: "incomplete"}
    assert {i: r["status"] for i, r in by_id.items()} == expected
    assert by_id[runs["lr01"].name]["train.lr"] == pytest.approx(0.1)
    assert by_id[runs["lr05"].name]["train.lr"] == pytest.approx(0.5)
    assert by_id[runs["incomplete"].name]["train.lr"] == pytest.approx(0.5)
    for rec in recs:
        assert "train.epochs" not in rec, rec  # 50 everywhere: not a differing key
        assert "seed" not in rec and "data.train" not in rec, rec
    s = summary(runs["lr01"])
    assert by_id[runs["lr01"].name]["loss"] == pytest.approx(s["metrics"]["loss"])
    assert by_id[runs["lr01"].name]["accuracy"] == pytest.approx(s["metrics"]["accuracy"])
    assert by_id[runs["lr01"].name]["epochs"] == 50


def test_runs_sort_loss_ascending_and_accuracy_descending(listing):
    wd, runs, out = listing
    by_loss = records(out["json_loss"])
    present = _check_order(by_loss, "loss", descending=False)
    assert len(present) >= 2
    completed = [r["id"] for r in by_loss if r["status"] == "completed"]
    losses = {runs[k].name: summary(runs[k])["metrics"]["loss"] for k in ("lr01", "lr05")}
    assert completed == sorted(losses, key=losses.get)
    assert by_loss[-1]["id"] == runs["incomplete"].name  # no loss: last
    by_acc = records(out["json_accuracy"])
    _check_order(by_acc, "accuracy", descending=True)
    assert by_acc[-1]["id"] == runs["incomplete"].name
    assert {r["id"] for r in by_acc} == {r["id"] for r in by_loss}


def test_runs_where_filters(listing):
    wd, runs, out = listing
    recs = records(out["json_where"])
    assert [r["id"] for r in recs] == [runs["lr01"].name], recs


def test_runs_where_reads_numbers_as_train_set_does(listing):
    """--set train.lr=1e-1 trains with 0.1 (README: nncli reads 1e-3 as 0.001), so
    --where train.lr=1e-1 must find that run, like --where train.lr=0.1."""
    wd, runs, out = listing
    recs = records(out["json_where_exp"])
    assert [r["id"] for r in recs] == [runs["lr01"].name], recs


def test_runs_csv_has_the_same_rows_as_json(listing):
    wd, runs, out = listing
    rows = csv_rows(out["csv_loss"])
    recs = records(out["json_loss"])
    assert [row["id"] for row in rows] == [rec["id"] for rec in recs]
    assert list(rows[0].keys()) == list(recs[0].keys())
    for row, rec in zip(rows, recs):
        assert row["status"] == rec["status"]
        for k, v in rec.items():
            if isinstance(v, float) and not math.isnan(v):
                assert float(row[k]) == pytest.approx(v), (k, row[k], v)
            elif _is_missing(v):
                assert row[k] == "", (k, row[k])


def test_runs_unknown_sort_column_exits_2_with_did_you_mean(listing):
    wd, runs, out = listing
    r = out["bad_sort"]
    assert r.rc == 2, r.show()
    assert "did you mean 'accuracy'" in r.err, r.show()
    assert len(r.err_lines) == 1, r.show()
    assert r.text == "", r.show()
    assert not r.tb and "Traceback" not in r.err


def test_runs_with_bce_and_mse_runs_together(listing, regression_run, tmp_path):
    """A regression run (loss: mse) listed next to classifiers (loss: bce): the config key
    ``loss`` differs between them, and the listing must still work in every format."""
    wd, runs, _ = listing
    reg_run = regression_run
    R = tmp_path / "mixed"
    R.mkdir()
    for run in (runs["lr01"], runs["lr05"], reg_run):
        shutil.copytree(run, R / run.name)
    js, cs, tb = (nn("runs", R, *fmt, cwd=tmp_path) for fmt in (["--format", "json"], ["--format", "csv"], []))
    problems = []  # every format is checked, so one failure shows the whole picture
    for what, r in (("json", js), ("csv", cs), ("table", tb)):
        if r.rc != 0 or r.tb or "Traceback" in r.err:
            problems.append(f"{what}: exit {r.rc}: {(r.err.strip().splitlines() or [''])[-1]} {r.tb}")
    if js.rc == 0:
        recs = json.loads(js.text)
        statuses = {r["id"]: r["status"] for r in recs}
        want = {runs["lr01"].name: "completed", runs["lr05"].name: "completed", reg_run.name: "diverged"}
        if statuses != want:
            problems.append(f"json statuses {statuses} != {want}")
        lr01 = next((r for r in recs if r["id"] == runs["lr01"].name), {})
        if lr01.get("loss") != pytest.approx(summary(runs["lr01"])["metrics"]["loss"]):
            problems.append(f"json 'loss' of {runs['lr01'].name} is {lr01.get('loss')!r}, not the final training loss")
    if cs.rc == 0:
        header = next(csv.reader(io.StringIO(cs.text)))
        if len(header) != len(set(header)):
            problems.append(f"duplicate CSV columns: {header}")
    if tb.rc == 0 and reg_run.name not in tb.text:
        problems.append("table does not list the regression run")
    assert not problems, "\n".join(problems)


def test_runs_lists_300_runs(listing, tmp_path):
    wd, runs, _ = listing
    R = tmp_path / "many"
    R.mkdir()
    for i in range(300):
        shutil.copytree(runs["lr01"], R / f"20990101-000000-xor-{i:04x}")
    rows = csv_rows(nn("runs", R, "--format", "csv", cwd=tmp_path))
    assert len(rows) == 300
    assert {row["status"] for row in rows} == {"completed"}
    assert len({row["id"] for row in rows}) == 300


def test_runs_lists_an_interrupted_run_and_skips_sweep_directories(listing, tmp_path):
    """A run without summary.json but with checkpoint.npz is ``interrupted`` (resumable);
    a sweep directory (it holds sweep.yaml) is not a run: it is neither listed nor warned about."""
    wd, runs, _ = listing
    R = tmp_path / "R"
    R.mkdir()
    shutil.copytree(runs["lr01"], R / runs["lr01"].name)
    stopped = R / "20990101-000000-xor-0abc"
    shutil.copytree(runs["lr05"], stopped)
    (stopped / "summary.json").unlink()
    (stopped / "checkpoint.npz").write_bytes(b"")  # its presence marks the run resumable
    sweep = R / "20990101-000000-lr-sweep-0def"
    shutil.copytree(runs["lr01"], sweep / runs["lr01"].name)
    (sweep / "sweep.yaml").write_text("sweep: {base: configs/xor.yaml}\npoints: []\n", encoding="utf-8")
    r = nn("runs", R, "--format", "json", cwd=tmp_path)
    recs = records(r)
    assert r.err == "", r.show()
    assert {rec["id"]: rec["status"] for rec in recs} == {runs["lr01"].name: "completed", stopped.name: "interrupted"}
    # and a sweep directory lists its own runs
    inner = records(nn("runs", sweep, "--format", "json", cwd=tmp_path))
    assert [rec["id"] for rec in inner] == [runs["lr01"].name]
