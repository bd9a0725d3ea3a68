"""The data pipeline: labels, categories, standardisation statistics and data errors.

Expected values come from the CSV contents these tests write and from the saved
model.npz / preprocess.json arrays, never from nncli's own output. Only the tests about
process-level behaviour start ``python -m nncli`` subprocesses (each costs over a second
of imports); the others drive the same Typer app in this process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# ---------------------------------------------------------------------- helpers

from cli_helpers import EVAL_FLAGS, TRAIN_FLAGS, Res, _chdir, _env, cli, cli_many, my_forward, nn, read_text_csv, write_rows  # noqa: F401


def saved_classes(run_dir: Path) -> tuple[list, list]:
    """(classes in preprocess.json, classes in model.npz loaded without pickles)."""
    meta = json.loads((run_dir / "preprocess.json").read_text(encoding="utf-8"))
    with np.load(run_dir / "model.npz", allow_pickle=False) as z:
        npz = [str(c) for c in z["classes"]]
    return meta["classes"], npz


# ---------------------------------------------------------------------- data


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


def std_rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        x, w = rng.uniform(0, 10), rng.normal(100, 20)
        c = "pqr"[int(rng.integers(3))]
        rows.append({"x": f"{x:.4f}", "w": f"{w:.4f}", "c": c, "label": "yes" if x > 4 else "no",
                     "y": f"{2 * x + rng.normal(0, 0.1):.4f}"})
    return rows


def config(name: str, train: str, loss: str, extra_data: str = "", epochs: int = 60, target: str = "label") -> str:
    return f"""\
name: {name}
seed: 4
data:
  train: {train}
  target: {target}
{extra_data}model:
  layers: [auto, 6, auto]
  activation: tanh
loss: {loss}
train:
  optimizer: adam
  lr: 0.05
  epochs: {epochs}
  batch_size: 16
"""


@pytest.fixture(scope="module")
def D(tmp_path_factory):
    wd = tmp_path_factory.mktemp("pipeline")
    data = {
        "bin_int": binary_rows(100, 1, "1", "0"),
        "bin_yesno": binary_rows(100, 2, "yes", "no", xname="größe"),
        "multi_num": multi_num_rows(120, 3),
        "std": std_rows(100, 4),
    }
    write_rows(wd / "bin_int.csv", data["bin_int"], ["ref", "x", "c", "label"])
    write_rows(wd / "bin_yesno.csv", data["bin_yesno"], ["ref", "größe", "c", "label"], bom=True)
    write_rows(wd / "multi_num.csv", data["multi_num"], ["x", "label"])
    write_rows(wd / "std.csv", data["std"], ["x", "w", "c", "label", "y"])
    new = {
        "bin_int": binary_rows(40, 11, "1", "0"),
        "bin_yesno": binary_rows(40, 12, "yes", "no", xname="größe"),
        "multi_num": multi_num_rows(40, 13),
    }
    write_rows(wd / "bin_int_new.csv", new["bin_int"], ["ref", "x", "c", "label"])
    write_rows(wd / "bin_yesno_new.csv", new["bin_yesno"], ["ref", "größe", "c", "label"])
    write_rows(wd / "multi_num_new.csv", new["multi_num"], ["x", "label"])
    configs = {
        "bin_int": config("bin_int", "bin_int.csv", "bce", "  exclude: [ref]\n"),
        "bin_yesno": config("bin_yesno", "bin_yesno.csv", "bce", "  exclude: [ref]\n"),
        "multi_num": config("multi_num", "multi_num.csv", "cross_entropy", epochs=100),
        "std_val": config("std_val", "std.csv", "bce", "  exclude: [y]\n  val_split: 0.2\n", epochs=5),
        "std_tv": config("std_tv", "std.csv", "mse", "  exclude: [label]\n  val_split: 0.2\n  test_split: 0.2\n",
                         epochs=5, target="y"),
    }
    flag_rows = [dict(r, flag=("True" if i % 3 else "False")) for i, r in enumerate(binary_rows(60, 5, "yes", "no"))]
    write_rows(wd / "flag.csv", flag_rows, ["x", "c", "flag", "label"])
    data["flag"] = flag_rows
    configs["flag"] = config("flag", "flag.csv", "bce", epochs=20)
    runs = {}
    for name, text in configs.items():
        (wd / f"{name}.yaml").write_text(text, encoding="utf-8")
        r = nn("train", f"{name}.yaml", "-q", "--runs-dir", "runs", *TRAIN_FLAGS, cwd=wd)
        assert r.rc == 0, f"training {name}: {r.err}"
        runs[name] = wd / r.text.strip().splitlines()[-1]
    return {"dir": wd, "runs": runs, "data": data, "new": new}


def _predict(D, name: str) -> pd.DataFrame:
    r = nn("predict", D["runs"][name], f"{name}_new.csv", cwd=D["dir"])
    assert r.rc == 0, r.err
    return read_text_csv(r.out)


# ---------------------------------------------------------------------- 8. labels


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

    r = nn("eval", run, "--data", "bin_int_new.csv", "--json", *EVAL_FLAGS, cwd=D["dir"])
    assert r.rc == 0, r.err
    rep = json.loads(r.text)
    assert rep["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert rep["confusion_matrix"]["labels"] == ["0", "1"]
    y = np.array([float(t) for t in true])
    bce = -np.mean(y * np.log(p1) + (1 - y) * np.log(1 - p1))
    assert rep["loss"] == pytest.approx(bce, rel=1e-5)


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
    ev = nn("eval", run, "--data", "flag.csv", "--json", *EVAL_FLAGS, cwd=wd)
    assert ev.rc == 0, ev.err
    r = nn("predict", run, "flag.csv", cwd=wd)
    assert r.rc == 0, f"predict rejects the training file: {r.err}"
    out = read_text_csv(r.out)
    assert out["flag"].tolist() == [row["flag"] for row in D["data"]["flag"]]
    true = [row["label"] for row in D["data"]["flag"]]
    acc = float(np.mean(np.array(out["prediction"]) == np.array(true)))
    assert acc == pytest.approx(json.loads(ev.text)["accuracy"], abs=1e-12)


# ---------------------------------------------------------------------- 9. standardisation


def _split(run: Path, csv_path: Path):
    from nncli.data import split_rows
    from nncli.runs import load_run

    cfg = load_run(run).config
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    return split_rows(cfg, df, np.random.default_rng(cfg.seed), str(csv_path))


def test_standardisation_uses_training_rows_only_with_val_split(D):
    run, wd = D["runs"]["std_val"], D["dir"]
    rows = D["data"]["std"]
    train_rows, val_rows, test_rows = _split(run, wd / "std.csv")
    assert test_rows is None
    val = sorted(int(i) for i in val_rows)
    # stratified: round(0.2 * n_c) rows of each class (no .5 cases in this data)
    for lab in ("yes", "no"):
        n_c = sum(r["label"] == lab for r in rows)
        assert (0.2 * n_c) % 1 != 0.5
        assert sum(rows[i]["label"] == lab for i in val) == round(0.2 * n_c)
    kept = [i for i in range(len(rows)) if i not in set(val)]
    assert sorted(int(i) for i in train_rows) == kept
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["val_metrics"]["rows"] == len(val) and summary["metrics"]["rows"] == len(kept)

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
    run, wd = D["runs"]["std_tv"], D["dir"]
    rows = D["data"]["std"]
    train_rows, val_rows, test_rows = _split(run, wd / "std.csv")
    held = set(int(i) for i in val_rows) | set(int(i) for i in test_rows)
    assert len(test_rows) == 20 and len(val_rows) == 20 and not set(map(int, val_rows)) & set(map(int, test_rows))
    kept = [i for i in range(len(rows)) if i not in held]
    assert sorted(map(int, train_rows)) == kept
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


# ---------------------------------------------------------------------- 10. data errors in training

GOOD = [("0.5", "p", "yes"), ("-1.0", "q", "no"), ("1.5", "p", "yes"), ("-0.3", "q", "no"),
        ("2.0", "q", "yes"), ("-2.0", "p", "no")]


def _csv(rows, header=("x", "c", "label")) -> bytes:
    return ("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n").encode("utf-8")


def _with(row: int, col: int, value: str):
    rows = [list(r) for r in GOOD]
    rows[row - 1][col] = value
    return _csv(rows)


# name: (file bytes or None for no file, loss, strings the one-line message must contain)
ERROR_CASES = {
    "missing_file": (None, "bce", ["data.csv", "not found"]),
    "empty_file": (b"", "bce", ["data.csv", "empty"]),
    "header_only": (b"x,c,label\n", "bce", ["data.csv", "no data rows"]),
    "blank_cell": (_with(3, 0, ""), "bce", ["data.csv", "row 3", "'x'", "missing"]),
    "na_cell": (_with(2, 1, "NA"), "bce", ["data.csv", "row 2", "'c'", "missing"]),
    "nan_cell": (_with(4, 0, "NaN"), "bce", ["data.csv", "row 4", "'x'"]),
    "inf_cell": (_with(5, 0, "inf"), "bce", ["data.csv", "row 5", "'x'", "inf"]),
    "text_in_numeric": (_with(3, 0, "abc"), "bce", ["data.csv", "row 3", "'x'", "abc"]),
    "duplicate_columns": (_csv([("1", "p", "2", "yes"), ("2", "q", "3", "no")], ("x", "c", "x", "label")), "bce",
                          ["data.csv", "duplicate", "'x'"]),
    "missing_target": (_csv(GOOD, ("x", "c", "lbl")), "bce", ["data.csv", "'label'"]),
    "one_class": (_csv([(x, c, "yes") for x, c, _ in GOOD]), "bce", ["data.csv", "one class", "yes"]),
    "float_targets_ce": (_csv([(x, c, v) for (x, c, _), v in zip(GOOD, ["0.5", "1.25", "2.0", "0.5", "3.75", "1.25"])]),
                         "cross_entropy", ["data.csv", "mse"]),
    "bce_three_classes": (_csv([(x, c, v) for (x, c, _), v in zip(GOOD, ["yes", "no", "maybe"] * 2)]), "bce",
                          ["data.csv", "cross_entropy"]),
    "latin1": ("x,c,label\n0.5,café,yes\n-1.0,thé,no\n".encode("latin-1"), "bce", ["data.csv", "UTF-8"]),
    "ragged_long": (b"x,c,label\n0.5,p,yes\n-1.0,q,no,extra\n1.5,p,yes\n", "bce", ["data.csv"]),
    "ragged_short": (b"x,c,label\n0.5,p,yes\n-1.0,q,no\n1.5,p\n-2.0,q,no\n", "bce", ["data.csv", "row 3", "label"]),
}
# these go through real processes (exit status and stderr as a shell sees them); the others in-process
SUBPROCESS_CASES = ("missing_file", "blank_cell", "latin1")


@pytest.fixture(scope="module")
def error_results(tmp_path_factory):
    base = tmp_path_factory.mktemp("train_errors")
    dirs = {}
    for name, (content, loss, _) in ERROR_CASES.items():
        d = base / name
        d.mkdir()
        if content is not None:
            (d / "data.csv").write_bytes(content)
        (d / "cfg.yaml").write_text(config(name, "data.csv", loss, epochs=3), encoding="utf-8")
        dirs[name] = d
    args = ["train", "cfg.yaml", *TRAIN_FLAGS]
    res = dict(zip(SUBPROCESS_CASES, cli_many([(args, dirs[n]) for n in SUBPROCESS_CASES])))
    for name in ERROR_CASES:
        if name not in res:
            res[name] = nn(*args, cwd=dirs[name])
    return dirs, res


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_training_data_error(error_results, case):
    dirs, res = error_results
    r = res[case]
    assert r.rc == 2, f"exit {r.rc}; stderr: {r.err}"
    assert "Traceback" not in r.err
    assert len(r.err_lines) == 1, f"expected one line on stderr: {r.err!r}"
    msg = r.err_lines[0]
    for needle in ERROR_CASES[case][2]:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    assert r.out == b""
    runs = dirs[case] / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "nothing may be written on a data error"


def test_float_targets_message_suggests_mse(error_results):
    msg = error_results[1]["float_targets_ce"].err
    assert re.search(r"use (loss: )?mse", msg), msg


def test_three_classes_for_bce_message_suggests_cross_entropy(error_results):
    msg = error_results[1]["bce_three_classes"].err
    assert re.search(r"use (loss: )?cross_entropy", msg), msg
