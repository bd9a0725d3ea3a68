"""``nncli cv`` and the cross-validation behind it (nncli/cv.py).

The folds are checked against scikit-learn itself: ``stratified_folds`` deals exactly the
folds of ``StratifiedKFold(k, shuffle=True, random_state=seed)`` and ``plain_folds`` those of
``KFold(k, shuffle=True, random_state=seed)``, over many label vectors, fold counts and
seeds. The command runs in this process (helpers.nn) with its real backend, one
``python -m nncli train`` process per fold; the interruption is a real process and a real
SIGINT. The last test runs benchmarks/cv_vs_sklearn.py's comparison: the mean validation
accuracy of ``nncli cv configs/iris.yaml --folds 5`` within 0.03 of scikit-learn's
cross_val_score on the same folds.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import (REPO, Res, signal_when, add_blobs, assert_same_run, assert_usage_error, chdir, nn, read_text_csv,
                     start_cli, summary, write_regression_csv)
from nncli.cv import CV_FILE, CrossValidation, plain_folds, stratified_folds
from nncli.executors import Executor

sk_split = pytest.importorskip("sklearn.model_selection")

BLOBS = "configs/blobs.yaml"


@pytest.fixture
def blobs(workdir) -> Path:
    """A work directory with datasets/blobs.csv (40 rows, classes a and b, 20 each) and configs/blobs.yaml."""
    return add_blobs(workdir)


def cv_dir_of(r: Res, cwd: Path) -> Path:
    """The cv directory: the last line of stdout."""
    assert not r.tb, r.show()
    path = cwd / r.text.strip().splitlines()[-1]
    assert path.is_dir() and (path / CV_FILE).exists(), r.show()
    return path


def fold_runs(cv_dir: Path) -> list[Path]:
    """The fold run directories, in fold order."""
    runs = [p for p in cv_dir.iterdir() if p.is_dir()]
    return sorted(runs, key=lambda p: int(re.search(r"-fold-(\d+)-[0-9a-f]{4}$", p.name).group(1)))


def cv_doc(cv_dir: Path) -> dict:
    return yaml.safe_load((cv_dir / CV_FILE).read_text(encoding="utf-8"))


def sk_test_folds(splitter, n: int, y=None) -> np.ndarray:
    """The fold of each row as a scikit-learn splitter deals them."""
    out = np.full(n, -1)
    for i, (_, test) in enumerate(splitter.split(np.zeros((n, 1)), y)):
        out[test] = i
    return out


# ----------------------------------------------------------------------------- dealing rows into folds


def label_vectors():
    rng = np.random.default_rng(0)
    yield np.array(["a"] * 20 + ["b"] * 20)
    yield rng.permutation(np.array(["setosa"] * 50 + ["versicolor"] * 50 + ["virginica"] * 50))
    yield rng.choice(["x", "y", "z", "w"], size=97, p=[0.6, 0.25, 0.1, 0.05])  # imbalanced, a rare class
    yield rng.integers(0, 7, size=211).astype(str)  # labels in no particular order of appearance
    yield np.array(["b", "a", "b", "b", "a", "c", "b", "a", "c", "b", "b", "a"])  # first appearance b, a, c


@pytest.mark.parametrize("y", list(label_vectors()), ids=lambda y: f"n{len(y)}")
@pytest.mark.parametrize("k", [2, 3, 5, 10])
@pytest.mark.parametrize("seed", [0, 3, 12345, 2**32 - 1])
def test_stratified_folds_are_sklearns_stratified_kfold(y, k, seed):
    counts = np.unique(y, return_counts=True)[1]
    if np.all(k > counts):
        with pytest.raises(ValueError, match=f"fewer than {k} rows"):
            stratified_folds(y, k, seed)
        return
    ours = stratified_folds(y, k, seed)
    with pytest.warns(UserWarning) if k > counts.min() else _nothing():
        theirs = sk_test_folds(sk_split.StratifiedKFold(k, shuffle=True, random_state=seed), len(y), y)
    np.testing.assert_array_equal(ours, theirs)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("y", list(label_vectors())[:4], ids=lambda y: f"n{len(y)}")
@pytest.mark.parametrize("k", [2, 5, 10])
def test_each_fold_holds_each_class_in_proportion(y, k):
    """Every class is spread over the folds as evenly as whole rows allow: its count in any
    two folds differs by at most one row, so each fold's proportions are the table's."""
    folds = stratified_folds(y, k, seed=1)
    assert set(folds) == set(range(k))
    for c in np.unique(y):
        per_fold = np.bincount(folds[y == c], minlength=k)
        assert per_fold.sum() == (y == c).sum()
        assert per_fold.max() - per_fold.min() <= 1, (c, per_fold)


@pytest.mark.parametrize("n, k", [(40, 5), (41, 5), (150, 10), (7, 7), (10, 3)])
@pytest.mark.parametrize("seed", [0, 3, 99])
def test_plain_folds_are_sklearns_kfold(n, k, seed):
    np.testing.assert_array_equal(plain_folds(n, k, seed), sk_test_folds(sk_split.KFold(k, shuffle=True, random_state=seed), n))


# ----------------------------------------------------------------------------- a cv run: folds, files, runs


def test_cv_folds_are_disjoint_cover_every_row_and_are_written_cell_for_cell(tmp_path):
    """A table with quoted separators, spaces, a missing cell and ';' as data.sep: each fold's
    files hold exactly the rows of data.train dealt to it, every cell as written; the folds
    are disjoint, cover every row once, and are StratifiedKFold's."""
    rows = []
    rng = np.random.default_rng(4)
    for i in range(30):
        label = ["red", "green", "blue"][i % 3]
        rows.append([f"{rng.normal():.17g}", f"note; {i} \"q\"" if i % 4 == 0 else f" {i} ", "NA" if i == 5 else f"{i}", label])
    with open(tmp_path / "t.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=";", lineterminator="\n")
        w.writerow(["x", "note", "z", "colour"])
        w.writerows(rows)
    (tmp_path / "c.yaml").write_text(
        "seed: 5\ndata: {train: t.csv, target: colour, sep: ';', exclude: [note], missing: impute}\n"
        "model: {layers: [auto, 3, auto]}\nloss: cross_entropy\ntrain: {optimizer: adam, lr: 0.01, epochs: 3}\n",
        encoding="utf-8")
    r = nn("cv", "c.yaml", "--folds", "4", cwd=tmp_path)
    assert r.rc == 0, r.show()
    cv_dir = cv_dir_of(r, tmp_path)
    doc = cv_doc(cv_dir)
    original = read_text_csv_sep(tmp_path / "t.csv", ";")
    y = original["colour"].to_numpy()
    val_rows = [np.array(f["val_rows"]) for f in doc["folds"]]
    assert np.array_equal(np.sort(np.concatenate(val_rows)), np.arange(30))  # every row exactly once
    expected = sk_test_folds(sk_split.StratifiedKFold(4, shuffle=True, random_state=5), 30, y)
    for i, rows_i in enumerate(val_rows):
        assert np.array_equal(rows_i, np.flatnonzero(expected == i))
        val = read_text_csv_sep(cv_dir / f"fold-{i + 1}-val.csv", ";")
        train = read_text_csv_sep(cv_dir / f"fold-{i + 1}-train.csv", ";")
        assert val.equals(original.iloc[rows_i].reset_index(drop=True))
        assert train.equals(original.drop(index=rows_i).reset_index(drop=True))
    for i, run in enumerate(fold_runs(cv_dir)):
        s = summary(run)
        assert s["status"] == "completed" and s["val_metrics"]["rows"] == len(val_rows[i]), s


def read_text_csv_sep(path: Path, sep: str):
    import pandas as pd

    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8")


def test_a_fold_run_is_an_ordinary_run_eval_and_retraining_work(blobs):
    """A fold run names its own files: `nncli eval RUN` measures it on its fold (the same
    accuracy as its summary), and training its config.yaml again gives the same run bit for bit."""
    r = nn("cv", BLOBS, "--folds", "4", cwd=blobs)
    assert r.rc == 0, r.show()
    cv_dir = cv_dir_of(r, blobs)
    run = fold_runs(cv_dir)[2]
    cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert cfg["data"]["train"].endswith("fold-3-train.csv") and cfg["data"]["val"].endswith("fold-3-val.csv")
    assert cfg["data"]["val_split"] is None and cfg["data"]["test_split"] is None
    e = nn("eval", run, "--json", "--no-plots", cwd=blobs)
    assert e.rc == 0, e.show()
    report = json.loads(e.text)
    assert report["rows"] == 10 and "fold-3-val.csv" in report["source"]
    assert report["accuracy"] == pytest.approx(summary(run)["val_metrics"]["accuracy"], abs=1e-12)
    again = nn("train", run / "config.yaml", "--runs-dir", "again", "--no-plots", "-q", cwd=blobs)
    assert again.rc == 0, again.show()
    assert_same_run(blobs / again.text.strip(), run)


def test_same_seed_reproduces_the_folds_and_the_runs_and_seed_changes_only_the_folds(blobs):
    a, b = (nn("cv", BLOBS, "--folds", "4", "--runs-dir", d, cwd=blobs) for d in ("a", "b"))
    c = nn("cv", BLOBS, "--folds", "4", "--seed", "7", "--runs-dir", "c", cwd=blobs)
    da, db, dc = (cv_dir_of(r, blobs) for r in (a, b, c))
    assert cv_doc(da)["folds"] == cv_doc(db)["folds"]
    for ra, rb in zip(fold_runs(da), fold_runs(db)):
        assert_same_run(ra, rb)
    doc = cv_doc(dc)
    assert doc["cv"]["seed"] == 7 and doc["folds"] != cv_doc(da)["folds"]
    y = read_text_csv(blobs / "datasets" / "blobs.csv")["label"].to_numpy()
    expected = sk_test_folds(sk_split.StratifiedKFold(4, shuffle=True, random_state=7), len(y), y)
    assert [f["val_rows"] for f in doc["folds"]] == [np.flatnonzero(expected == i).tolist() for i in range(4)]
    # --seed deals the folds; the runs keep the config's seed (initial weights, shuffling)
    assert all(yaml.safe_load((run / "config.yaml").read_text())["seed"] == 3 for run in fold_runs(dc))


def test_regression_uses_plain_shuffled_kfold(tmp_path):
    write_regression_csv(tmp_path / "lin.csv", n=23)
    (tmp_path / "r.yaml").write_text("seed: 2\ndata: {train: lin.csv, target: y}\nmodel: {layers: [auto, 4, auto]}\n"
                                     "loss: mse\ntrain: {optimizer: adam, lr: 0.01, epochs: 5}\n", encoding="utf-8")
    r = nn("cv", "r.yaml", "--folds", "5", "--json", cwd=tmp_path)
    assert r.rc == 0, r.show()
    out = json.loads(r.text)
    assert out["stratified"] is False and out["folds"] == 5
    expected = sk_test_folds(sk_split.KFold(5, shuffle=True, random_state=2), 23)
    doc = cv_doc(Path(tmp_path / out["cv_dir"]))
    assert [f["val_rows"] for f in doc["folds"]] == [np.flatnonzero(expected == i).tolist() for i in range(5)]
    assert {"val_loss", "val_r2"} <= set(out["mean"])


def test_held_out_settings_of_the_config_are_overridden_with_a_note(blobs):
    (blobs / "split.yaml").write_text((blobs / BLOBS).read_text().replace(
        "  target: label\n", "  target: label\n  val_split: 0.2\n  test_split: 0.2\n"), encoding="utf-8")
    r = nn("cv", "split.yaml", "--folds", "4", cwd=blobs)
    assert r.rc == 0, r.show()
    notes = [ln for ln in r.err_lines if "warning" in ln]
    assert len(notes) == 1 and "data.val_split, data.test_split" in notes[0] and "not used" in notes[0], r.show()
    for run in fold_runs(cv_dir_of(r, blobs)):
        s = summary(run)
        assert s["metrics"]["rows"] == 30 and s["val_metrics"]["rows"] == 10, s  # all 40 rows: 30 train, 10 val


def test_parquet_folds_keep_the_columns_and_types(blobs):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    df = read_text_csv(blobs / "datasets" / "blobs.csv")
    table = pa.table({"x1": df["x1"].astype(float), "x2": df["x2"].astype(float), "label": df["label"]})
    pq.write_table(table, blobs / "datasets" / "blobs.parquet")
    (blobs / "pq.yaml").write_text((blobs / BLOBS).read_text().replace("blobs.csv", "blobs.parquet"), encoding="utf-8")
    r = nn("cv", "pq.yaml", "--folds", "4", cwd=blobs)
    assert r.rc == 0, r.show()
    cv_dir = cv_dir_of(r, blobs)
    for f in cv_doc(cv_dir)["folds"]:
        val = pq.read_table(cv_dir / f["val"])
        assert val.schema == table.schema and val.equals(table.take(pa.array(f["val_rows"])))


# ----------------------------------------------------------------------------- the table, results.csv, --json


def test_table_results_csv_and_json_give_per_fold_and_mean_and_std(blobs):
    r = nn("cv", BLOBS, "--folds", "4", cwd=blobs)
    assert r.rc == 0, r.show()
    cv_dir = cv_dir_of(r, blobs)
    runs = fold_runs(cv_dir)
    acc = np.array([summary(p)["val_metrics"]["accuracy"] for p in runs])
    loss = np.array([summary(p)["val_metrics"]["loss"] for p in runs])
    # the printed table: one row per fold (its run id), then mean ± std
    for p in runs:
        assert p.name in r.text
    last = next(ln for ln in r.text.splitlines() if "mean ± std" in ln)
    assert f"{acc.mean():.4f} ± {acc.std():.4f}" in last and "4 of 4 folds" in last, r.text
    assert [ln for ln in r.err_lines if re.match(r"\[\d/4\] fold \d: completed", ln)].__len__() == 4, r.show()
    # results.csv: the folds, then mean and std (numpy's std, ddof 0, as cross_val_score(...).std())
    rows = read_text_csv(cv_dir / "results.csv").to_dict("records")
    assert [row["fold"] for row in rows] == ["1", "2", "3", "4", "mean", "std"]
    assert [row["id"] for row in rows[:4]] == [p.name for p in runs]
    assert [float(row["val_accuracy"]) for row in rows[:4]] == acc.tolist()
    assert float(rows[4]["val_accuracy"]) == acc.mean() and float(rows[5]["val_accuracy"]) == acc.std()
    assert float(rows[4]["val_loss"]) == loss.mean() and float(rows[5]["val_loss"]) == loss.std()
    assert rows[0]["val_rows"] == "10" and rows[0]["status"] == "completed"
    # --json: one object
    j = nn("cv", BLOBS, "--folds", "4", "--json", "--runs-dir", "j", cwd=blobs)
    assert j.rc == 0, j.show()
    [line] = j.text.splitlines()
    out = json.loads(line)
    assert out["folds"] == 4 and out["completed"] == 4 and out["stratified"] is True and out["seed"] == 3
    assert [run["val_accuracy"] for run in out["runs"]] == acc.tolist()  # the same seed: the same runs
    assert out["mean"]["val_accuracy"] == acc.mean() and out["std"]["val_accuracy"] == acc.std()
    assert all(Path(blobs / run["run_dir"]).is_dir() for run in out["runs"])


def test_nncli_runs_skips_a_cv_directory_and_lists_its_folds(blobs):
    r = nn("cv", BLOBS, "--folds", "3", cwd=blobs)
    cv_dir = cv_dir_of(r, blobs)
    top = nn("runs", "runs", "--format", "json", cwd=blobs)
    assert top.rc == 0 and json.loads(top.text) == [] and "skipped" not in top.err, top.show()
    inside = nn("runs", cv_dir, "--format", "json", cwd=blobs)
    assert inside.rc == 0 and "skipped" not in inside.err, inside.show()
    assert sorted(row["id"] for row in json.loads(inside.text)) == sorted(p.name for p in fold_runs(cv_dir))


# ----------------------------------------------------------------------------- bad usage, exit codes


@pytest.mark.parametrize("args, needles", [
    (["--folds", "1"], ["--folds 1", "at least 2"]),
    (["--folds", "41"], ["--folds 41", "only 40 rows", "at most 40"]),
    (["--folds", "25"], ["--folds 25", "every class has fewer than 25 rows", "at most 20"]),
    (["--jobs", "0"], ["--jobs"]),
    (["--seed", "4294967296"], ["--seed 4294967296", "RandomState", str(2**32 - 1)]),
    (["--set", "train.lrr=0.1"], ["train.lrr", "unknown key"]),
    (["--set", "model.layers=[3, 4, 1]"], ["model.layers[0]", "3 inputs", "gives 2"]),  # found by fold 1's job
])
def test_bad_usage_is_one_line_exit_2_and_creates_nothing(blobs, args, needles):
    r = nn("cv", BLOBS, *args, cwd=blobs)
    assert_usage_error(r, *needles)
    assert not (blobs / "runs").exists() or list((blobs / "runs").iterdir()) == []


def test_a_missing_config_or_data_file_is_one_line(blobs):
    assert_usage_error(nn("cv", "nope.yaml", cwd=blobs), "nope.yaml")
    assert_usage_error(nn("cv", BLOBS, "--set", "data.train=gone.csv", cwd=blobs), "gone.csv", "not found")
    assert not (blobs / "runs").exists() or list((blobs / "runs").iterdir()) == []


def test_a_class_of_one_row_is_refused_and_a_rare_class_is_a_warning(tmp_path):
    """A class with one row would be in no training row of the fold that validates on it: one
    line, exit 2, before anything runs. A class with fewer rows than folds: a warning."""
    rows = [[f"{i * 0.1:.1f}", f"{(i * 7) % 5}", "ab"[i % 2]] for i in range(30)]
    _write_csv(tmp_path / "d.csv", ["x1", "x2", "label"], rows + [["0.1", "0.2", "z"]])
    (tmp_path / "c.yaml").write_text("data: {train: d.csv, target: label}\nmodel: {layers: [auto, 3, auto]}\n"
                                     "loss: cross_entropy\ntrain: {optimizer: adam, lr: 0.01, epochs: 2}\n", encoding="utf-8")
    for seed in ("0", "1", "2"):  # wherever the row falls, fold 1 or another
        r = nn("cv", "c.yaml", "--folds", "3", "--seed", seed, cwd=tmp_path)
        assert_usage_error(r, "class 'z' has a single row", "remove the row")
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
    _write_csv(tmp_path / "d.csv", ["x1", "x2", "label"], rows + [["0.1", "0.2", "z"], ["0.3", "0.4", "z"]])
    r = nn("cv", "c.yaml", "--folds", "3", cwd=tmp_path)
    assert r.rc == 0, r.show()
    [note] = [ln for ln in r.err_lines if "warning" in ln]
    assert "class 'z' has only 2 rows, fewer than the 3 folds" in note


def _write_csv(path: Path, header, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def test_failing_folds_exit_1_and_the_table_still_shows_them(tmp_path):
    write_regression_csv(tmp_path / "lin.csv")
    (tmp_path / "div.yaml").write_text("data: {train: lin.csv, target: y}\nmodel: {layers: [1, 3, 1]}\nloss: mse\n"
                                       "train: {optimizer: sgd, lr: 1000000, epochs: 50}\n", encoding="utf-8")
    r = nn("cv", "div.yaml", "--folds", "3", cwd=tmp_path)
    assert r.rc == 1, r.show()
    assert r.err_lines[-1] == "nncli: error: 3 of 3 folds failed; see the table above", r.show()
    cv_dir = cv_dir_of(r, tmp_path)
    rows = read_text_csv(cv_dir / "results.csv").to_dict("records")
    assert [row["status"] for row in rows[:3]] == ["failed"] * 3
    assert all(summary(run)["status"] == "diverged" for run in fold_runs(cv_dir))
    assert rows[3]["fold"] == "mean" and rows[3]["status"] == "0 of 3 folds" and rows[3]["val_loss"] == ""


class Scripted(Executor):
    """Gives each task a chosen exit code (no process); stops after ``stop_after`` tasks."""

    def __init__(self, codes, stop_after=None):
        self.codes, self.stop_after = codes, stop_after

    def run(self, tasks, done, report=None):
        for i, (t, code) in enumerate(zip(tasks, self.codes)):
            if self.stopping:
                break
            t.returncode = code
            t.stderr = "nncli: error: boom\n" if code not in (0, 130) else ""
            done(t)
            if self.stop_after is not None and i + 1 >= self.stop_after:
                self.stop()


def test_library_records_failures_not_interruptions_and_stops_when_asked(blobs):
    with chdir(blobs):
        cvr = CrossValidation.create(BLOBS, 4)
        seen = []
        cvr.run(Scripted([0, 1, 130, 0], stop_after=3), lambda t, status: seen.append(status))
        assert seen == ["completed", "failed: nncli: error: boom", "interrupted"]
        assert [t.index for t in cvr.failed] == [1] and cvr.stopped
        res = cvr.results()
        assert [f["status"] for f in res.folds] == ["completed", "failed", "interrupted", "not run"]
        assert res.completed == 1 and res.mean == {}  # nothing ran for real: no fold has a run directory


def test_interrupt_keeps_finished_folds_and_exits_130(blobs):
    """SIGINT to `nncli cv` (a real process) while fold 2 trains: fold 1 is kept completed,
    fold 2 checkpoints (and resumes as any run does), folds 3 and 4 never start, results.csv
    is written with the completed fold's mean, exit 130."""
    p = start_cli("cv", BLOBS, "--folds", "4", "--set", "train.epochs=6000", cwd=blobs)
    r = signal_when(p, lambda: list(blobs.glob("runs/*/*-fold-1-*/summary.json")) and list(blobs.glob("runs/*/*-fold-2-*/config.yaml")),
                    "fold 2 starting", settle=0.2)
    assert r.rc == 130, r.show()
    assert r.err_lines[-1].startswith("nncli: error: cv interrupted; finished folds are kept in"), r.show()
    assert "Traceback" not in r.err
    cv_dir = cv_dir_of(r, blobs)
    runs = fold_runs(cv_dir)
    assert len(runs) == 2, runs
    assert summary(runs[0])["status"] == "completed"
    assert summary(runs[1])["status"] == "interrupted" and (runs[1] / "checkpoint.npz").exists()
    rows = read_text_csv(cv_dir / "results.csv").to_dict("records")
    assert [row["status"] for row in rows[:4]] == ["completed", "interrupted", "not run", "not run"]
    assert rows[4]["status"] == "1 of 4 folds"
    assert float(rows[4]["val_accuracy"]) == summary(runs[0])["val_metrics"]["accuracy"]
    resumed = nn("train", "--resume", runs[1], "--no-plots", "-q", cwd=blobs)
    assert resumed.rc == 0 and summary(runs[1])["status"] == "completed", resumed.show()


# ----------------------------------------------------------------------------- against scikit-learn


def test_iris_cv_mean_accuracy_is_within_003_of_sklearns_cross_val_score():
    """The issue's check: `nncli cv configs/iris.yaml --folds 5` (the real command) against
    cross_val_score of Pipeline(StandardScaler, MLPClassifier) with the config's settings on
    the same folds, which are StratifiedKFold(5, shuffle=True, random_state=3)'s."""
    pytest.importorskip("sklearn.neural_network")
    from benchmarks.cv_vs_sklearn import compare

    r = compare(REPO / "configs" / "iris.yaml", 5, cwd=REPO)
    assert r["same_folds_as_StratifiedKFold"]
    assert len(r["nncli"]) == len(r["sklearn"]) == 5
    assert abs(r["diff"]) <= 0.03, r
