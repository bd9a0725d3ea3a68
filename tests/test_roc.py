"""ROC-AUC, average precision and log-loss in ``nncli eval`` (issue 15), against scikit-learn.

nncli computes them in numpy (nncli/metrics.py); every number here is compared with
scikit-learn's own ``roc_auc_score``, ``average_precision_score``, ``log_loss`` and
``roc_curve`` on the same predictions, to 1e-12: random scores with many ties, the edge
cases (one row, all scores equal, a class absent), and the predictions of gallery runs
through ``nncli eval --json``, with the probabilities taken from ``nncli predict``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, nn, strict_json

sk = pytest.importorskip("sklearn.metrics")

from nncli import metrics as M  # noqa: E402

TOL = 1e-12
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _quiet(f, *args, **kw):
    """A scikit-learn metric without its warnings (undefined metrics, rows not summing to 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kw)


def _scores(rng, n: int, kind: str) -> np.ndarray:
    """Scores in [0, 1]: continuous, or on a coarse grid (many ties), or all equal."""
    if kind == "grid":
        return rng.integers(0, 5, n) / 4.0
    if kind == "equal":
        return np.full(n, 0.3)
    return rng.random(n)


def _softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------- the metrics alone


@pytest.mark.parametrize("kind", ["continuous", "grid", "equal"])
def test_binary_metrics_equal_sklearn_on_random_scores_with_ties(kind):
    rng = np.random.default_rng({"continuous": 1, "grid": 2, "equal": 3}[kind])
    for trial in range(200):
        n = int(rng.integers(2, 80))
        y = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(np.int64)
        if y.min() == y.max():
            y[0] = 1 - y[0]
        s = _scores(rng, n, kind)
        assert abs(M.roc_auc(y, s) - sk.roc_auc_score(y, s)) <= TOL, (trial, y, s)
        assert abs(M.average_precision(y, s) - sk.average_precision_score(y, s)) <= TOL, (trial, y, s)
        P = np.stack([1 - s, s], axis=1)
        assert abs(M.log_loss(y, P) - sk.log_loss(y, s, labels=[0, 1])) <= TOL
        fpr, tpr, thr = M.roc_curve(y, s)
        ref = sk.roc_curve(y, s)
        assert np.array_equal(fpr, ref[0]) and np.array_equal(tpr, ref[1]) and np.array_equal(thr, ref[2])
        if kind == "equal":  # one threshold: the diagonal, and AP = the share of positives
            assert M.roc_auc(y, s) == 0.5 and M.average_precision(y, s) == pytest.approx(y.mean(), abs=TOL)


def test_ties_are_one_threshold_not_an_order():
    # a positive and a negative tied at 0.5: the tie counts 1/2 (a diagonal step), whatever
    # order the rows come in; ranking tied rows would give 1.0 or 0.75
    y, s = np.array([1, 0, 1, 0]), np.array([0.9, 0.5, 0.5, 0.1])
    assert M.roc_auc(y, s) == sk.roc_auc_score(y, s) == 0.875
    assert M.roc_auc(y[[0, 2, 1, 3]], s[[0, 2, 1, 3]]) == 0.875
    # AP without interpolation: thresholds 0.9 (P 1, R 1/2) and 0.5 (P 2/3, R 1): 1/2 + 1/2 * 2/3
    assert M.average_precision(y, s) == pytest.approx(0.5 + 0.5 * 2 / 3, abs=TOL)
    assert M.average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s), abs=TOL)


@pytest.mark.parametrize("k", [3, 5])
def test_multiclass_macro_equals_sklearn_ovr(k):
    rng = np.random.default_rng(k)
    classes = [f"c{i}" for i in range(k)]
    for trial in range(60):
        n = int(rng.integers(k * 2, 120))
        codes = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])  # every class present
        rng.shuffle(codes)
        Z = np.round(rng.normal(size=(n, k)) * 2, 0 if trial % 2 else 3)  # rounded logits: tied probabilities
        P = _softmax(Z)
        got = M.probability_scores(codes, P, classes)
        assert got["notes"] == []
        labels = list(range(k))
        assert abs(got["roc_auc"] - sk.roc_auc_score(codes, P, multi_class="ovr", average="macro", labels=labels)) <= TOL
        onehot = np.eye(k, dtype=np.int64)[codes]
        assert abs(got["average_precision"] - sk.average_precision_score(onehot, P, average="macro")) <= TOL
        assert abs(got["log_loss"] - _quiet(sk.log_loss, codes, P, labels=labels)) <= TOL
        per_auc = sk.roc_auc_score(onehot, P, average=None)
        per_ap = sk.average_precision_score(onehot, P, average=None)
        for c, label in enumerate(classes):
            assert abs(got["per_class"][label]["roc_auc"] - per_auc[c]) <= TOL
            assert abs(got["per_class"][label]["average_precision"] - per_ap[c]) <= TOL


def test_log_loss_clips_as_sklearn():
    # probabilities of exactly 0 and 1 (a saturated sigmoid): clipped to [eps, 1 - eps]
    y = np.array([1, 0, 1, 0])
    p = np.array([1.0, 0.0, 0.0, 1.0])
    P = np.stack([1 - p, p], axis=1)
    assert M.log_loss(y, P) == pytest.approx(sk.log_loss(y, p, labels=[0, 1]), abs=TOL)
    assert np.isfinite(M.log_loss(y, P))


def test_edge_cases_null_with_a_note_where_sklearn_raises_or_has_no_number():
    # binary, one row of the positive class: no ROC (scikit-learn warns and returns nan), AP = 1
    one = M.probability_scores(np.array([1]), np.array([[0.2, 0.8]]), ["a", "b"])
    assert one["roc_auc"] is None and one["roc_curve"] is None
    assert np.isnan(_quiet(sk.roc_auc_score, [1], [0.8]))
    assert one["average_precision"] == sk.average_precision_score([1], [0.8]) == 1.0
    assert one["log_loss"] == pytest.approx(sk.log_loss([1], [0.8], labels=[0, 1]), abs=TOL)
    assert any("ROC-AUC is undefined" in n for n in one["notes"])
    # binary, no positive row: AP undefined (scikit-learn warns and returns 0.0), no ROC either
    neg = M.probability_scores(np.array([0, 0, 0]), np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]]), ["a", "b"])
    assert neg["average_precision"] is None and neg["roc_auc"] is None
    assert _quiet(sk.average_precision_score, [0, 0, 0], [0.1, 0.6, 0.5]) == 0.0
    assert any("positive class 'b'" in n for n in neg["notes"])
    # multi-class, class 2 absent: scikit-learn raises; nncli gives null for it and the macro
    # over the classes present, each equal to scikit-learn's binary one-vs-rest value
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 2, 30)
    P = _softmax(rng.normal(size=(30, 3)))
    with pytest.raises(ValueError):
        sk.roc_auc_score(codes, P, multi_class="ovr")
    got = M.probability_scores(codes, P, ["x", "y", "z"])
    assert got["per_class"]["z"] == {"roc_auc": None, "average_precision": None}
    ref_auc = [sk.roc_auc_score(codes == c, P[:, c]) for c in (0, 1)]
    ref_ap = [sk.average_precision_score(codes == c, P[:, c]) for c in (0, 1)]
    assert abs(got["roc_auc"] - np.mean(ref_auc)) <= TOL and abs(got["average_precision"] - np.mean(ref_ap)) <= TOL
    assert abs(got["log_loss"] - _quiet(sk.log_loss, codes, P, labels=[0, 1, 2])) <= TOL
    assert any("class 'z' is absent" in n for n in got["notes"])
    assert any("mean over the 2 of 3 classes" in n for n in got["notes"])
    # multi-class, one row: no class has a ROC-AUC; its own class has AP 1
    single = M.probability_scores(np.array([1]), P[:1], ["x", "y", "z"])
    assert single["roc_auc"] is None and single["average_precision"] == 1.0
    assert single["per_class"]["y"] == {"roc_auc": None, "average_precision": 1.0}
    # all scores equal: AUC 1/2, AP the share of the class
    flat = M.probability_scores(codes, np.full((30, 3), 1 / 3), ["x", "y", "z"])
    assert flat["per_class"]["x"]["roc_auc"] == 0.5
    assert flat["per_class"]["x"]["average_precision"] == pytest.approx(np.mean(codes == 0), abs=TOL)
    # non-finite outputs (a diverged network): null, never a crash
    bad = M.probability_scores(np.array([0, 1]), np.array([[np.nan, np.nan], [0.5, 0.5]]), ["a", "b"])
    assert bad["roc_auc"] is None and bad["log_loss"] is None and bad["notes"]


# ---------------------------------------------------------------------- gallery runs through nncli eval


def _ok(*args, cwd=REPO):
    r = nn(*args, cwd=cwd)
    assert r.rc == 0, r.show()
    return r


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> dict:
    """breast_cancer (binary) and iris (three classes), a few epochs each, in float64 (where
    ``nncli predict``, which computes in float64, gives the very probabilities eval scores)."""
    base = tmp_path_factory.mktemp("roc")
    runs = {}
    for name in ("breast_cancer", "iris"):
        r = _ok("train", f"configs/{name}.yaml", "-q", "--no-plots", "--runs-dir", str(base),
                "--set", "train.epochs=4", "--set", "train.dtype=float64")
        runs[name] = REPO / r.text.strip()
    return {"base": base, **runs}


def _test_rows_csv(run: Path, data: Path, out: Path) -> Path:
    """The rows of ``data`` in the run's test split, as a CSV of the original lines."""
    lines = data.read_text(encoding="utf-8").splitlines()
    with np.load(run / "splits.npz") as s:
        rows = s["test"]
    out.write_text("\n".join([lines[0]] + [lines[1 + i] for i in rows]) + "\n", encoding="utf-8")
    return out


def _predicted(run: Path, csv: Path, out: Path):
    """(true labels, class labels, probabilities) as ``nncli predict`` writes them."""
    import pandas as pd

    _ok("predict", str(run), str(csv), "-o", str(out))
    df = pd.read_csv(out, dtype=str)
    prep = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    classes, target = prep["classes"], prep["targets"][0]
    P = df[[f"proba_{c}" for c in classes]].astype(float).to_numpy()
    return df[target].astype(str).to_numpy(), classes, P


def test_eval_json_on_binary_gallery_run_equals_sklearn(gallery, tmp_path):
    run = gallery["breast_cancer"]
    test_csv = _test_rows_csv(run, REPO / "datasets/breast_cancer.csv", tmp_path / "bc_test.csv")
    truth, classes, P = _predicted(run, test_csv, tmp_path / "pred.csv")
    y = (truth == classes[1]).astype(int)
    default = strict_json(_ok("eval", str(run), "--json", "--no-plots").text)  # the test split itself
    other = strict_json(_ok("eval", str(run), "--data", str(test_csv), "--json").text)
    for rep in (default, other):
        assert rep["rows"] == len(y) and rep["positive_class"] == classes[1]
        assert abs(rep["roc_auc"] - sk.roc_auc_score(y, P[:, 1])) <= TOL
        assert abs(rep["average_precision"] - sk.average_precision_score(y, P[:, 1])) <= TOL
        assert abs(rep["log_loss"] - sk.log_loss(y, P[:, 1], labels=[0, 1])) <= TOL
        fpr, tpr, _ = sk.roc_curve(y, P[:, 1])
        assert rep["roc_curve"] == {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
        # log-loss is the bce loss nncli reports, up to its clipping (at 1e-15, and the
        # logit form, vs scikit-learn's 2.2e-16): the same to rounding while no ŷ is 0 or 1
        assert rep["log_loss"] == pytest.approx(rep["loss"], rel=1e-12)
        assert "roc_average" not in rep and "roc_auc" not in rep["per_class"][classes[1]]
        assert "score_notes" not in rep and "notes" not in rep
    # roc.png for the default data and roc_<name>_<hash>.png for --data, as confusion.png
    assert not (run / "roc.png").exists()  # --no-plots
    [json_name] = [Path(p).name for p in other["saved"] if p.endswith(".json")]
    roc = run / json_name.replace("eval", "roc", 1).replace(".json", ".png")
    assert json_name.startswith("eval_bc_test_") and str(roc) in other["saved"]
    assert roc.read_bytes()[:8] == PNG_MAGIC and roc.stat().st_size > 1000
    shown = _ok("eval", str(run)).text
    assert (run / "roc.png").read_bytes()[:8] == PNG_MAGIC
    assert f"ROC-AUC {default['roc_auc']:.4f}" in shown and f"log-loss {default['log_loss']:.4f}" in shown
    assert f"average precision {default['average_precision']:.4f} (positive class {classes[1]})" in shown


def test_eval_json_on_multiclass_gallery_run_equals_sklearn(gallery, tmp_path):
    run = gallery["iris"]
    test_csv = _test_rows_csv(run, REPO / "datasets/iris.csv", tmp_path / "iris_test.csv")
    truth, classes, P = _predicted(run, test_csv, tmp_path / "pred.csv")
    codes = np.array([classes.index(t) for t in truth])
    onehot = np.eye(len(classes), dtype=np.int64)[codes]
    rep = strict_json(_ok("eval", str(run), "--json", "--no-plots").text)
    k = list(range(len(classes)))
    assert rep["roc_average"] == "macro one-vs-rest" and "roc_curve" not in rep
    assert abs(rep["roc_auc"] - sk.roc_auc_score(codes, P, multi_class="ovr", average="macro", labels=k)) <= TOL
    assert abs(rep["average_precision"] - sk.average_precision_score(onehot, P, average="macro")) <= TOL
    assert abs(rep["log_loss"] - _quiet(sk.log_loss, codes, P, labels=k)) <= TOL
    assert rep["log_loss"] == pytest.approx(rep["loss"], rel=1e-12)  # cross_entropy, up to clipping
    per_auc, per_ap = sk.roc_auc_score(onehot, P, average=None), sk.average_precision_score(onehot, P, average=None)
    for c, label in enumerate(classes):
        assert abs(rep["per_class"][label]["roc_auc"] - per_auc[c]) <= TOL
        assert abs(rep["per_class"][label]["average_precision"] - per_ap[c]) <= TOL
    shown = _ok("eval", str(run)).text
    assert "ROC-AUC" in shown and "AP" in shown and "(macro one-vs-rest)" in shown
    assert not (run / "roc.png").exists()  # not for three classes


def test_eval_of_rows_missing_a_class_reports_null_and_a_note(gallery, tmp_path):
    # iris without its last class: scikit-learn's ovr raises; nncli: null for it, a note, exit 0
    run = gallery["iris"]
    lines = (REPO / "datasets/iris.csv").read_text(encoding="utf-8").splitlines()
    prep = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    gone = prep["classes"][-1]
    (tmp_path / "two.csv").write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if gone not in ln]) + "\n")
    r = _ok("eval", str(run), "--data", str(tmp_path / "two.csv"), "--json", "--no-plots")
    rep = strict_json(r.text)
    assert rep["per_class"][gone]["roc_auc"] is None and rep["per_class"][gone]["average_precision"] is None
    present = [c for c in prep["classes"] if c != gone]
    assert rep["roc_auc"] == pytest.approx(np.mean([rep["per_class"][c]["roc_auc"] for c in present]), abs=TOL)
    assert any(f"class '{gone}' is absent" in n for n in rep["score_notes"])
    assert "notes" not in rep and r.err == ""  # nothing is wrong with the data: no warning
    shown = _ok("eval", str(run), "--data", str(tmp_path / "two.csv"), "--no-plots").text
    assert f"note: class '{gone}' is absent" in shown and "mean over the 2 of 3 classes" in shown
    # binary, rows of one class only: no ROC-AUC, no roc.png
    bc = gallery["breast_cancer"]
    lines = (REPO / "datasets/breast_cancer.csv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "benign.csv").write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ln.endswith(",benign")]) + "\n")
    rep = strict_json(_ok("eval", str(bc), "--data", str(tmp_path / "benign.csv"), "--json").text)
    assert rep["roc_auc"] is None and rep["roc_curve"] is None and rep["average_precision"] is None
    assert rep["log_loss"] is not None and not any("roc_" in Path(p).name for p in rep["saved"])
    assert any("ROC-AUC is undefined" in n for n in rep["score_notes"])
    assert "ROC-AUC -" in _ok("eval", str(bc), "--data", str(tmp_path / "benign.csv"), "--no-plots").text


def test_roc_png_that_cannot_be_written_is_one_error_after_the_report(gallery, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(gallery["breast_cancer"], run)
    (run / "roc.png").unlink(missing_ok=True)  # drawn by an earlier test
    (run / "roc.png").mkdir()  # a directory where the picture goes: the write fails
    (run / "roc.png" / "x").write_text("x")
    r = nn("eval", str(run), "--json", cwd=REPO)
    assert r.rc == 2, r.show()
    assert "roc.png: cannot save the picture" in r.err and "confusion.png" in r.err
    assert json.loads(r.text)["roc_auc"] is not None  # the report is printed all the same
    assert r.tb == ""


def test_float32_run_scores_its_own_float32_probabilities(gallery, tmp_path, monkeypatch):
    # a run in float32 (the default) is evaluated in float32, as training is: the scores are
    # scikit-learn's on exactly those probabilities (seen here as nncli hands them over)
    run = REPO / _ok("train", "configs/breast_cancer.yaml", "-q", "--no-plots", "--runs-dir", str(tmp_path),
                     "--set", "train.epochs=4").text.strip()
    seen = []
    real = M.probability_scores
    monkeypatch.setattr(M, "probability_scores", lambda codes, P, classes: seen.append((codes, P)) or real(codes, P, classes))
    rep = strict_json(_ok("eval", str(run), "--json", "--no-plots").text)
    [(codes, P)] = seen
    assert np.array_equal(P[:, 1].astype(np.float32), P[:, 1])  # float32 outputs, taken in float64
    test_csv = _test_rows_csv(run, REPO / "datasets/breast_cancer.csv", tmp_path / "t.csv")
    truth = [ln.rsplit(",", 1)[1] for ln in test_csv.read_text(encoding="utf-8").splitlines()[1:]]
    assert [rep["positive_class"] if c else "benign" for c in codes] == truth
    assert abs(rep["roc_auc"] - sk.roc_auc_score(codes, P[:, 1])) <= TOL
    assert abs(rep["average_precision"] - sk.average_precision_score(codes, P[:, 1])) <= TOL
    assert abs(rep["log_loss"] - _quiet(sk.log_loss, codes, P[:, 1], labels=[0, 1])) <= TOL
    assert rep["log_loss"] == pytest.approx(rep["loss"], rel=2e-5)  # the float32 loss, to its rounding
