"""nncli.preprocess (the Preprocessor): class labels, one-hot encoding of text columns,
standardisation with training statistics only, inverse_transform back to labels, the
to_json/from_json round trip, and the data errors of cells and labels.

Expected values come from the CSV contents and DataFrames these tests write and from the
saved model.npz / preprocess.json arrays, never from nncli's own output. The library is
tested directly; trained runs (through the CLI in this process) check that predict and eval
use the same preprocessing. Only a few error cases start a ``python -m nncli`` subprocess.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

import nncli.columns
import pandas as pd
import pytest

from helpers import (GOOD_ROWS, NO_PLOTS, adam_yaml, assert_data_error_and_nothing_written, csv_bytes, my_forward, nn,
                     npz_arrays, read_text_csv, run_error_cases, std_rows, write_rows)
from nncli.config import DataConfig
from nncli.errors import DataError
from nncli.columns import CHUNK, c_order_float64, sort_labels
from nncli.preprocess import Preprocessor
from nncli.tasks import TASKS


def saved_classes(run_dir: Path) -> tuple[list, list]:
    """(classes in preprocess.json, classes in model.npz loaded without pickles)."""
    meta = json.loads((run_dir / "preprocess.json").read_text(encoding="utf-8"))
    with np.load(run_dir / "model.npz", allow_pickle=False) as z:
        npz = [str(c) for c in z["classes"]]
    return meta["classes"], npz


# ============================================================================= the library

FRAME = pd.DataFrame({
    "x": [1.0, 2.0, 4.0, 8.0, 16.0],
    "w": [10.0, 10.0, 10.0, 10.0, 10.0],  # constant: std 0, divided by 1 instead
    "c": ["q", "p", "r", "p", "q"],
    "label": ["10", "2", "1", "2", "10"],
})


def _fit(df=FRAME, task="multiclass", rows=None, **data):
    d = DataConfig(train="f.csv", target=data.pop("target", "label"), **data)
    return Preprocessor.fit(df, d, TASKS[task], "f.csv", rows=rows)


def test_fit_learns_layout_categories_and_numeric_labels():
    prep = _fit()
    assert prep.features == ["x", "w", "c"] and prep.targets == ["label"]
    assert prep.categories == {"c": ["p", "q", "r"]}
    assert prep.input_names == ["x", "w", "c=p", "c=q", "c=r"] and prep.n_inputs == 5
    assert prep.numeric_mask().tolist() == [True, True, False, False, False]
    assert prep.classes == ["1", "2", "10"], "numeric labels sort as numbers"
    assert prep.task.name == "multiclass" and prep.n_outputs == 3
    assert sort_labels(["b", "a", "10"]) == ["10", "a", "b"]  # not all numbers: text order


def test_one_hot_and_standardisation_from_the_training_rows_only():
    rows = [0, 1, 2]
    prep = _fit(rows=rows)
    x = FRAME["x"].to_numpy()
    assert prep.x_mean.tolist()[:2] == [pytest.approx(x[rows].mean(), rel=1e-15), 10.0]
    assert prep.x_std[0] == pytest.approx(np.sqrt(np.mean((x[rows] - x[rows].mean()) ** 2)), rel=1e-15)  # 1/n, not 1/(n-1)
    assert prep.x_std[1] == 1.0, "a constant column is divided by 1, not 0"
    assert prep.x_mean[2:].tolist() == [0, 0, 0] and prep.x_std[2:].tolist() == [1, 1, 1], "one-hot entries are not scaled"
    X = prep.transform(FRAME, "f.csv")
    onehot = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]], float)
    expected = np.column_stack([(x - x[rows].mean()) / prep.x_std[0], np.zeros(5), onehot])
    np.testing.assert_allclose(X, expected, rtol=1e-14, atol=1e-15)
    assert X.dtype == np.float64
    assert prep.transform(FRAME, "f.csv", dtype=np.float32).dtype == np.float32
    np.testing.assert_allclose(prep.unscale(X)[:, :2], FRAME[["x", "w"]].to_numpy(), rtol=1e-14)


def test_standardize_false_leaves_inputs_as_they_are():
    prep = _fit(standardize=False)
    assert prep.x_mean.tolist() == [0] * 5 and prep.x_std.tolist() == [1] * 5
    np.testing.assert_array_equal(prep.transform(FRAME, "f.csv")[:, 0], FRAME["x"].to_numpy())


def test_declared_categorical_numbers_are_one_hot_encoded():
    df = pd.DataFrame({"zip": ["10", "9", "10", "100"], "label": ["a", "b", "a", "b"]})
    prep = _fit(df, task="binary", categorical=["zip"])
    assert prep.categories == {"zip": ["9", "10", "100"]}
    np.testing.assert_array_equal(prep.transform(df, "f.csv"), [[0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_targets_of_each_task():
    binary = _fit(FRAME.assign(label=["yes", "no", "no", "yes", "no"]), task="binary")
    assert binary.classes == ["no", "yes"] and binary.n_outputs == 1
    np.testing.assert_array_equal(binary.transform_targets(FRAME.assign(label=["yes", "no", "no", "yes", "no"]), "f"),
                                  [[1], [0], [0], [1], [0]])
    multi = _fit()
    np.testing.assert_array_equal(multi.transform_targets(FRAME, "f"), [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    df = FRAME.drop(columns="label").assign(y1=[0.5, 1.5, 2.5, 3.5, 4.5], y2=[-1.0, 0.0, 1.0, 2.0, 3.0])
    reg = _fit(df, task="regression", target=["y1", "y2"])
    assert reg.classes is None and reg.n_outputs == 2 and reg.features == ["x", "w", "c"]
    np.testing.assert_array_equal(reg.transform_targets(df, "f"), df[["y1", "y2"]].to_numpy())


def test_inverse_transform_gives_labels_and_probabilities():
    binary = _fit(FRAME.assign(label=["yes", "no", "no", "yes", "no"]), task="binary")
    labels, proba = binary.inverse_transform(np.array([[0.2], [0.4999], [0.5001], [0.9]]))
    assert labels.tolist() == ["no", "no", "yes", "yes"], "y_hat = P(second class)"
    np.testing.assert_allclose(proba, [[0.8, 0.2], [0.5001, 0.4999], [0.4999, 0.5001], [0.1, 0.9]], rtol=1e-12)
    multi = _fit()
    A = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]])
    labels, proba = multi.inverse_transform(A)
    assert labels.tolist() == ["2", "1", "10"]
    np.testing.assert_array_equal(proba, A)
    df = FRAME.drop(columns="label").assign(y=[0.5, 1.5, 2.5, 3.5, 4.5])
    values, none = _fit(df, task="regression", target="y").inverse_transform(np.array([[1.25], [-3.0]]))
    assert none is None and values.tolist() == [[1.25], [-3.0]]


def test_binary_label_at_exactly_one_half_is_the_class_eval_counts():
    """predict's label and eval's accuracy must agree on the boundary y_hat = 1/2 itself."""
    binary = _fit(FRAME.assign(label=["yes", "no", "no", "yes", "no"]), task="binary")
    A = np.array([[0.5]])
    labels, _ = binary.inverse_transform(A)
    assert labels.tolist() == [binary.classes[int(binary.task.predicted_codes(A)[0])]] == ["yes"]


def test_to_json_from_json_round_trip_through_files(tmp_path):
    df = FRAME.assign(label=["007", "010", "007", "010", "007"])
    prep = _fit(df, task="binary", rows=[0, 1, 2])  # training rows with every category (they are learnt from these)
    (tmp_path / "preprocess.json").write_text(json.dumps(prep.to_json()), encoding="utf-8")
    np.savez(tmp_path / "model.npz", **prep.arrays())
    meta = json.loads((tmp_path / "preprocess.json").read_text(encoding="utf-8"))
    assert meta == {"features": ["x", "w", "c"], "categories": {"c": ["p", "q", "r"]}, "targets": ["label"],
                    "task": "binary", "classes": ["007", "010"], "input_names": ["x", "w", "c=p", "c=q", "c=r"],
                    "missing": "error", "impute_values": {}, "missing_indicators": [], "unknown_category": "error",
                    "na_values": []}
    again = Preprocessor.from_json(meta, npz_arrays(tmp_path / "model.npz"))
    assert again.to_json() == prep.to_json()
    assert again.task is TASKS["binary"] and again.classes == ["007", "010"]
    np.testing.assert_array_equal(again.x_mean, prep.x_mean)
    np.testing.assert_array_equal(again.x_std, prep.x_std)
    new = pd.DataFrame({"x": [3.0, -1.0], "w": [10.0, 11.0], "c": ["r", "p"], "label": ["010", "007"]})
    np.testing.assert_array_equal(again.transform(new, "n"), prep.transform(new, "n"))
    np.testing.assert_array_equal(again.transform_targets(new, "n"), [[1], [0]])


@pytest.mark.parametrize("damage, match", [
    (lambda m, a: a.update(x_mean=a["x_mean"][:3]), "x_mean/x_std"),
    (lambda m, a: a.update(classes=np.array(["007", "011"])), "classes"),
    (lambda m, a: m.update(task="ranking"), "ranking"),
])
def test_from_json_refuses_arrays_that_do_not_match(damage, match):
    prep = _fit(FRAME.assign(label=["007", "010", "007", "010", "007"]), task="binary")
    meta, arrays = json.loads(json.dumps(prep.to_json())), prep.arrays()
    damage(meta, arrays)
    with pytest.raises(ValueError, match=match):
        Preprocessor.from_json(meta, arrays)


def test_transform_errors_name_the_row_of_the_whole_file():
    prep = _fit()
    bad = pd.DataFrame({"x": ["1", "2", "warm"], "w": [1.0, 1.0, 1.0], "c": ["p", "p", "p"]})
    with pytest.raises(DataError) as e:
        prep.transform(bad, "new.csv", row_offset=100)
    assert str(e.value).startswith("new.csv: row 103 (line 104), column 'x': 'warm' is not a number"), str(e.value)
    unseen = pd.DataFrame({"x": [1.0, 2.0], "w": [1.0, 1.0], "c": ["p", "violet"]})
    with pytest.raises(DataError) as e:
        prep.transform(unseen, "new.csv", row_offset=7)
    assert str(e.value) == ("new.csv: row 9 (line 10), column 'c': category 'violet' was not seen in training (p, q, r); "
                            "categories are learnt from the training rows only, and data.unknown_category: ignore "
                            "encodes an unseen one as all zeros")
    with pytest.raises(DataError, match=r"row 2 \(line 3\), column 'label': label '3' was not seen"):
        prep.transform_targets(FRAME.assign(label=["1", "3", "2", "10", "1"]), "new.csv")
    with pytest.raises(DataError, match=r"missing column 'c'"):
        prep.transform(FRAME.drop(columns="c"), "new.csv")


# ============================================================================= trained runs


def binary_rows(n: int, seed: int, yes: str, no: str, xname: str = "x") -> list[dict]:
    """label = yes iff x + (0.8 for q, -0.8 for p) > 0; rows too close to the boundary are redrawn."""
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        x = round(float(rng.uniform(-3, 3)), 3)
        c = "pq"[int(rng.integers(2))]
        s = x + (0.8 if c == "q" else -0.8)
        if abs(s) < 0.15:
            continue
        rows.append({"ref": f"{len(rows):03d}", xname: f"{x:.3f}", "c": c, "label": yes if s > 0 else no})
    return rows


def multi_num_rows(n: int, seed: int) -> list[dict]:
    """Labels 1, 2 and 10 by bands of x (written as integers)."""
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        x = round(float(rng.uniform(-3, 3)), 3)
        if min(abs(x + 1), abs(x - 1)) < 0.15:
            continue
        rows.append({"x": f"{x:.3f}", "label": "10" if x < -1 else "1" if x < 1 else "2"})
    return rows


@pytest.fixture(scope="module")
def D(tmp_path_factory):
    wd = tmp_path_factory.mktemp("pipeline")
    data = {
        "bin_int": binary_rows(100, 1, "1", "0"),
        "bin_yesno": binary_rows(100, 2, "yes", "no", xname="größe"),
        "multi_num": multi_num_rows(120, 3),
        "std": std_rows(100, 4),
    }
    write_rows(wd / "bin_int.csv", ["ref", "x", "c", "label"], data["bin_int"])
    write_rows(wd / "bin_yesno.csv", ["ref", "größe", "c", "label"], data["bin_yesno"], bom=True)
    write_rows(wd / "multi_num.csv", ["x", "label"], data["multi_num"])
    write_rows(wd / "std.csv", ["x", "w", "c", "label", "y"], data["std"])
    new = {
        "bin_int": binary_rows(40, 11, "1", "0"),
        "bin_yesno": binary_rows(40, 12, "yes", "no", xname="größe"),
        "multi_num": multi_num_rows(40, 13),
    }
    write_rows(wd / "bin_int_new.csv", ["ref", "x", "c", "label"], new["bin_int"])
    write_rows(wd / "bin_yesno_new.csv", ["ref", "größe", "c", "label"], new["bin_yesno"])
    write_rows(wd / "multi_num_new.csv", ["x", "label"], new["multi_num"])
    configs = {
        "bin_int": adam_yaml("bin_int", "bin_int.csv", "bce", "  exclude: [ref]\n"),
        "bin_yesno": adam_yaml("bin_yesno", "bin_yesno.csv", "bce", "  exclude: [ref]\n"),
        "multi_num": adam_yaml("multi_num", "multi_num.csv", "cross_entropy", epochs=100),
        "std_val": adam_yaml("std_val", "std.csv", "bce", "  exclude: [y]\n  val_split: 0.2\n", epochs=5),
        "std_tv": adam_yaml("std_tv", "std.csv", "mse", "  exclude: [label]\n  val_split: 0.2\n  test_split: 0.2\n",
                            epochs=5, target="y"),
    }
    flag_rows = [dict(r, flag=("True" if i % 3 else "False")) for i, r in enumerate(binary_rows(60, 5, "yes", "no"))]
    write_rows(wd / "flag.csv", ["x", "c", "flag", "label"], flag_rows)
    data["flag"] = flag_rows
    configs["flag"] = adam_yaml("flag", "flag.csv", "bce", epochs=20)
    runs = {}
    for name, text in configs.items():
        (wd / f"{name}.yaml").write_text(text, encoding="utf-8")
        r = nn("train", f"{name}.yaml", "-q", "--runs-dir", "runs", *NO_PLOTS, cwd=wd)
        assert r.rc == 0, f"training {name}: {r.show()}"
        runs[name] = wd / r.text.strip().splitlines()[-1]
    return {"dir": wd, "runs": runs, "data": data, "new": new}


def _predict(D, name: str) -> pd.DataFrame:
    r = nn("predict", D["runs"][name], f"{name}_new.csv", cwd=D["dir"])
    assert r.rc == 0, r.show()
    return read_text_csv(r.out)


# ---------------------------------------------------------------------- labels


def test_bce_with_integer_labels(D):
    run = D["runs"]["bin_int"]
    assert saved_classes(run) == (["0", "1"], ["0", "1"])
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["task"] == "binary" and meta["features"] == ["x", "c"]  # ref excluded
    assert meta["categories"] == {"c": ["p", "q"]}
    out = _predict(D, "bin_int")
    assert list(out.columns) == ["ref", "x", "c", "label", "prediction", "proba_0", "proba_1"]
    assert out["ref"].tolist() == [r["ref"] for r in D["new"]["bin_int"]]  # 000, 007, ... as written
    assert set(out["prediction"]) <= {"0", "1"}
    true = [r["label"] for r in D["new"]["bin_int"]]
    acc = np.mean(np.array(out["prediction"]) == np.array(true))
    assert acc >= 0.9, f"labels decoded the wrong way round? accuracy {acc}"
    p1 = my_forward(run, out)[:, 0]
    np.testing.assert_allclose(out["proba_1"].astype(float), p1, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(out["proba_0"].astype(float), 1 - p1, rtol=1e-6, atol=1e-12)
    assert out["prediction"].tolist() == np.where(p1 >= 0.5, "1", "0").tolist()

    r = nn("eval", run, "--data", "bin_int_new.csv", "--json", *NO_PLOTS, cwd=D["dir"])
    assert r.rc == 0, r.show()
    rep = json.loads(r.text)
    assert rep["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert rep["confusion_matrix"]["labels"] == ["0", "1"]
    y = np.array([float(t) for t in true])
    bce = -np.mean(y * np.log(p1) + (1 - y) * np.log(1 - p1))
    # eval computes in the run's float32, as training does (this reference is float64): they
    # agree to float32 rounding of the logits, about 1e-7 of their size, absolute
    assert rep["loss"] == pytest.approx(bce, rel=1e-5, abs=1e-6)


def test_bce_with_yes_no_labels_bom_and_non_ascii_header(D):
    run = D["runs"]["bin_yesno"]
    assert saved_classes(run) == (["no", "yes"], ["no", "yes"])
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["features"] == ["größe", "c"], "the BOM must not become part of the first column name"
    out = _predict(D, "bin_yesno")
    assert list(out.columns) == ["ref", "größe", "c", "label", "prediction", "proba_no", "proba_yes"]
    assert set(out["prediction"]) <= {"yes", "no"}
    true = [r["label"] for r in D["new"]["bin_yesno"]]
    assert np.mean(np.array(out["prediction"]) == np.array(true)) >= 0.9
    p_yes = my_forward(run, out)[:, 0]  # sigmoid output = P(y = classes[1] = 'yes')
    np.testing.assert_allclose(out["proba_yes"].astype(float), p_yes, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(out["proba_no"].astype(float) + out["proba_yes"].astype(float), 1.0, atol=1e-12)


def test_numeric_labels_sort_numerically(D):
    run = D["runs"]["multi_num"]
    assert saved_classes(run) == (["1", "2", "10"], ["1", "2", "10"])
    with np.load(run / "model.npz", allow_pickle=False) as z:
        assert z["classes"].dtype.kind == "U"  # text, not an object array
        assert z["W2"].shape[0] == 3
    out = _predict(D, "multi_num")
    assert list(out.columns) == ["x", "label", "prediction", "proba_1", "proba_2", "proba_10"]
    true = [r["label"] for r in D["new"]["multi_num"]]
    assert np.mean(np.array(out["prediction"]) == np.array(true)) >= 0.85
    P = out[["proba_1", "proba_2", "proba_10"]].astype(float).to_numpy()
    np.testing.assert_allclose(P, my_forward(run, out), rtol=1e-6, atol=1e-12)
    assert out["prediction"].tolist() == [["1", "2", "10"][i] for i in P.argmax(axis=1)]


def test_true_false_column_predicts_like_it_trained(D):
    """A column of True/False trains (and evaluates); predict must accept the very same file."""
    run, wd = D["runs"]["flag"], D["dir"]
    ev = nn("eval", run, "--data", "flag.csv", "--json", *NO_PLOTS, cwd=wd)
    assert ev.rc == 0, ev.show()
    r = nn("predict", run, "flag.csv", cwd=wd)
    assert r.rc == 0, f"predict rejects the training file: {r.show()}"
    out = read_text_csv(r.out)
    assert out["flag"].tolist() == [row["flag"] for row in D["data"]["flag"]]
    true = [row["label"] for row in D["data"]["flag"]]
    acc = float(np.mean(np.array(out["prediction"]) == np.array(true)))
    assert acc == pytest.approx(json.loads(ev.text)["accuracy"], abs=1e-12)


def test_saved_preprocessing_is_the_preprocessor_loaded_back(D):
    from nncli.runs import load_run

    for name in ("bin_yesno", "multi_num", "std_tv"):
        run = D["runs"][name]
        meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
        prep = load_run(run).prep
        assert prep.to_json() == meta, name
        arrays = npz_arrays(run / "model.npz")
        np.testing.assert_array_equal(prep.x_mean, arrays["x_mean"].astype(np.float64))
        np.testing.assert_array_equal(prep.x_std, arrays["x_std"].astype(np.float64))


# ---------------------------------------------------------------------- standardisation


def _saved_rows(run: Path) -> dict:
    """splits.npz read with numpy alone: the training rows and the held-out ones."""
    return {k: v.tolist() for k, v in npz_arrays(run / "splits.npz").items()}


def test_standardisation_uses_training_rows_only_with_val_split(D):
    run = D["runs"]["std_val"]
    rows = D["data"]["std"]
    saved = _saved_rows(run)
    assert sorted(saved) == ["n_rows", "train", "val"] and saved["n_rows"] == len(rows)
    val = saved["val"]
    kept = [i for i in range(len(rows)) if i not in set(val)]
    assert saved["train"] == kept
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["val_metrics"]["rows"] == len(val) > 0 and summary["metrics"]["rows"] == len(kept)

    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["input_names"] == ["x", "w", "c=p", "c=q", "c=r"]
    with np.load(run / "model.npz", allow_pickle=False) as z:
        x_mean, x_std = z["x_mean"], z["x_std"]
    for j, col in enumerate(["x", "w"]):
        v = np.array([float(r[col]) for r in rows])
        assert abs(x_mean[j] - v.mean()) > 1e-6, "the whole file's mean must not be used"
        assert x_mean[j] == pytest.approx(v[kept].mean(), rel=1e-12)
        assert x_std[j] == pytest.approx(v[kept].std(), rel=1e-10)
    # one-hot inputs are not standardised
    assert np.array_equal(x_mean[2:], np.zeros(3)) and np.array_equal(x_std[2:], np.ones(3))


def test_standardisation_excludes_val_and_test_rows_for_regression(D):
    run = D["runs"]["std_tv"]
    rows = D["data"]["std"]
    saved = _saved_rows(run)
    held = set(saved["val"]) | set(saved["test"])
    assert len(saved["test"]) == 20 and len(saved["val"]) == 20 and len(held) == 40
    kept = [i for i in range(len(rows)) if i not in held]
    assert saved["train"] == kept
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["metrics"]["rows"] == 60 and summary["val_metrics"]["rows"] == 20
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["input_names"][:2] == ["x", "w"] and meta["task"] == "regression"
    with np.load(run / "model.npz", allow_pickle=False) as z:
        x_mean = z["x_mean"]
        assert "classes" not in z.files
    for j, col in enumerate(["x", "w"]):
        v = np.array([float(r[col]) for r in rows])
        assert abs(x_mean[j] - v.mean()) > 1e-6
        assert x_mean[j] == pytest.approx(v[kept].mean(), rel=1e-12)


# ---------------------------------------------------------------------- cell and label errors in training

def _with(row: int, col: int, value: str):
    rows = [list(r) for r in GOOD_ROWS]
    rows[row - 1][col] = value
    return csv_bytes(rows)


# name: (file bytes, loss, strings the one-line message must contain)
ERROR_CASES = {
    "blank_cell": (_with(3, 0, ""), "bce", ["data.csv", "row 3", "'x'", "missing"]),
    "na_cell": (_with(2, 1, "NA"), "bce", ["data.csv", "row 2", "'c'", "missing"]),
    "nan_cell": (_with(4, 0, "NaN"), "bce", ["data.csv", "row 4", "'x'"]),
    "inf_cell": (_with(5, 0, "inf"), "bce", ["data.csv", "row 5", "'x'", "inf"]),
    "text_in_numeric": (_with(3, 0, "abc"), "bce", ["data.csv", "row 3", "'x'", "abc"]),
    "one_class": (csv_bytes([(x, c, "yes") for x, c, _ in GOOD_ROWS]), "bce", ["data.csv", "one class", "yes"]),
    "float_targets_ce": (csv_bytes([(x, c, v) for (x, c, _), v in zip(GOOD_ROWS,
                                                                      ["0.5", "1.25", "2.0", "0.5", "3.75", "1.25"])]),
                         "cross_entropy", ["data.csv", "mse"]),
    "bce_three_classes": (csv_bytes([(x, c, v) for (x, c, _), v in zip(GOOD_ROWS, ["yes", "no", "maybe"] * 2)]), "bce",
                          ["data.csv", "cross_entropy"]),
}
# these go through a real process (exit status and stderr as a shell sees them); the others in-process
SUBPROCESS_CASES = ("blank_cell",)


@pytest.fixture(scope="module")
def error_results(tmp_path_factory):
    cases = {name: (content, adam_yaml(name, "data.csv", loss, epochs=3))
             for name, (content, loss, _) in ERROR_CASES.items()}
    return run_error_cases(tmp_path_factory.mktemp("train_errors"), cases, SUBPROCESS_CASES)


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_training_data_error(error_results, case):
    dirs, res = error_results
    assert_data_error_and_nothing_written(res[case], ERROR_CASES[case][2], dirs[case])


def test_float_targets_message_suggests_mse(error_results):
    msg = error_results[1]["float_targets_ce"].err
    assert re.search(r"use (loss: )?mse", msg), msg


def test_three_classes_for_bce_message_suggests_cross_entropy(error_results):
    msg = error_results[1]["bce_three_classes"].err
    assert re.search(r"use (loss: )?cross_entropy", msg), msg


# ---------------------------------------------------------------------- the C-ordered float64 cast (a fast path)

def _check_c_order(A, out, flag):
    want = np.asarray(A, dtype=np.float64)
    assert out.dtype == np.float64
    assert out.flags.c_contiguous
    assert out.shape == A.shape
    np.testing.assert_array_equal(out, want)  # NaN positions must match too
    assert flag == bool(np.isfinite(want).all())


def test_c_order_float64_int_f_ordered():
    rng = np.random.default_rng(20)
    A = np.asfortranarray(rng.integers(-2**40, 2**40, size=(50, 7), dtype=np.int64))
    assert not A.flags.c_contiguous
    out, flag = c_order_float64(A)
    _check_c_order(A, out, flag)
    assert flag is True
    assert out is not A


@pytest.mark.parametrize("rows", [50, 2 * CHUNK + 5])  # one chunk, and three (NaN in the last)
def test_c_order_float64_float32_with_nan(rows):
    rng = np.random.default_rng(21)
    A = np.asfortranarray(rng.normal(size=(rows, 3)).astype(np.float32))
    out, flag = c_order_float64(A)
    _check_c_order(A, out, flag)
    assert flag is True
    A[rows - 2, 1] = np.nan
    out, flag = c_order_float64(A)
    _check_c_order(A, out, flag)
    assert flag is False
    A[rows - 2, 1] = -np.inf
    out, flag = c_order_float64(A)
    assert flag is False


def test_c_order_float64_c_float64_returned_as_is():
    rng = np.random.default_rng(22)
    A = rng.normal(size=(40, 5))
    before = A.copy()
    out, flag = c_order_float64(A)
    assert out is A
    assert flag is True
    np.testing.assert_array_equal(A, before)
    A[7, 3] = np.inf
    out, flag = c_order_float64(A)
    assert out is A and flag is False
    # an F-ordered float64 array is copied into C order
    F = np.asfortranarray(before)
    out, flag = c_order_float64(F)
    assert out is not F
    _check_c_order(F, out, flag)
    assert flag is True


# ---------------------------------------------------------------------- row chunks on two threads (a fast path)


def test_chunk_loops_on_threads_give_the_bits_of_one_thread(monkeypatch):
    """The cast, the statistics and the scaling of a table larger than one chunk give the same
    bits on two threads as on one (the partial sums are added in chunk order either way)."""
    import nncli.columns
    import nncli.preprocess as P

    rng = np.random.default_rng(7)
    n = 3 * CHUNK + 123
    df = pd.DataFrame({"a": rng.integers(-1000, 1000, n), "b": rng.normal(5, 3, n), "label": rng.integers(0, 3, n).astype(str)})
    rows = np.sort(rng.choice(n, size=n - 500, replace=False))

    def pipeline():
        prep, X = Preprocessor.fit_encode(df, DataConfig(train="f.csv", target="label"), TASKS["multiclass"], "f.csv", rows)
        return prep.x_mean, prep.x_std, prep.scale(X, "f.csv", np.float32, rows=rows)

    calls = []
    real = P.each_chunk

    def counting(fn, n_rows):
        calls.append(n_rows)
        return real(fn, n_rows)

    monkeypatch.setattr(P, "each_chunk", counting)
    monkeypatch.setattr(nncli.columns, "threads", lambda: 2)
    two = pipeline()
    assert calls and max(calls) > CHUNK  # the chunk loops really ran over several chunks
    monkeypatch.setattr(nncli.columns, "threads", lambda: 1)
    one = pipeline()
    for a, b in zip(two, one):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # and against the plain computation: the mean and population std of the training rows
    np.testing.assert_allclose(one[0], df[["a", "b"]].to_numpy(np.float64)[rows].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(one[1], df[["a", "b"]].to_numpy(np.float64)[rows].std(axis=0), rtol=1e-12)


def test_threads_follow_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert nncli.columns.threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= nncli.columns.threads() <= 2
