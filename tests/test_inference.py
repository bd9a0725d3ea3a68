"""nncli.inference (`nncli predict` and `nncli eval`): round trips, independence from nncli's
own code, column matching, stdin/stdout, atomic -o, chunking, regression, and eval's default
data (the held-out rows saved in splits.npz; every row, with a note, for an older run).

Expected values are computed here from the CSV contents written by these tests and from
the saved model.npz / preprocess.json arrays, never copied from nncli's output.
Subprocesses that do not depend on each other are started together (``cli_many``) to keep
the suite fast on a small machine.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import (unseal, NO_PLOTS, assert_usage_error, cli, cli_env, cli_many, my_forward, nn, npz_arrays, read_text_csv,
                     write_rows)

# ---------------------------------------------------------------------- data

CLASSES3 = ["Iris-setosa", "peut-être", "黄色"]  # sorted text order
COLOURS = ["rouge", "vert", "黄色"]
OFFSET = {"rouge": -1.0, "vert": 0.0, "黄色": 1.0}
NOTES = ["a, b", "été", "NA", 'dit "oui"', "", "  espace ", "1.50", "007"]
CLF_COLUMNS = ["id", "température", "couleur", "note", "label"]


def clf_label(x: float, c: str) -> str:
    s = x + OFFSET[c]
    return CLASSES3[0] if s < -0.8 else CLASSES3[1] if s < 0.8 else CLASSES3[2]


def clf_rows(n: int, seed: int) -> list[dict]:
    """Label = a threshold on température shifted by the colour; a margin keeps it learnable."""
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        x = float(rng.uniform(-3, 3))
        c = COLOURS[int(rng.integers(3))]
        s = x + OFFSET[c]
        if min(abs(s + 0.8), abs(s - 0.8)) < 0.15:
            continue
        i = len(rows)
        rows.append({"id": f"{i:03d}", "température": f"{x:.2f}", "couleur": c,
                     "note": NOTES[i % len(NOTES)], "label": clf_label(float(f"{x:.2f}"), c)})
    return rows


REG_GROUPS = {"a": 0.0, "b": 1.0, "ç": -1.0}


def reg_rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x1, x2 = rng.uniform(-2, 2, size=2)
        g = list(REG_GROUPS)[int(rng.integers(3))]
        y1 = 1.5 * x1 - x2 + REG_GROUPS[g] + rng.normal(0, 0.05)
        y2 = 0.5 * x1 + 2.0 * x2 + rng.normal(0, 0.05)
        rows.append({"x1": f"{x1:.4f}", "x2": f"{x2:.4f}", "g": g, "y1": f"{y1:.4f}", "y2": f"{y2:.4f}"})
    return rows


def clf_yaml(name: str, extra_data: str = "", epochs: int = 60) -> str:
    return f"""\
name: {name}
seed: 1
data:
  train: clf.csv
  target: label
  exclude: [id, note]
{extra_data}model:
  layers: [auto, 8, auto]
  activation: tanh
loss: cross_entropy
train:
  optimizer: adam
  lr: 0.05
  epochs: {epochs}
  batch_size: 16
"""


def reg_yaml(name: str, train: str, target: str) -> str:
    return f"""\
name: {name}
seed: 2
data:
  train: {train}
  target: {target}
model:
  layers: [auto, 8, auto]
  activation: tanh
loss: mse
train:
  optimizer: adam
  lr: 0.05
  epochs: 100
  batch_size: 16
"""


N_TRAIN = 120
N_BIG = 100_000


def write_big(path: Path, bad_last: bool) -> Path:
    rng = np.random.default_rng(99)
    xs = rng.uniform(-3, 3, size=N_BIG)
    cs = rng.integers(3, size=N_BIG)
    lines = ["id,température,couleur,note"]
    for i in range(N_BIG):
        c = COLOURS[cs[i]]
        if bad_last and i == N_BIG - 1:
            c = "violet"
        lines.append(f"{i:06d},{xs[i]:.3f},{c},n{i % 7}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def W(tmp_path_factory):
    """A work directory with the CSVs and every trained run the tests use."""
    wd = tmp_path_factory.mktemp("evalpredict")
    train = clf_rows(N_TRAIN, seed=1)
    write_rows(wd / "clf.csv", CLF_COLUMNS, train)
    new = clf_rows(50, seed=11)
    write_rows(wd / "new.csv", CLF_COLUMNS, new)
    write_rows(wd / "clf_test.csv", CLF_COLUMNS, clf_rows(30, seed=5))
    write_rows(wd / "clf_val.csv", CLF_COLUMNS, clf_rows(25, seed=6))
    reg_train, reg_new = reg_rows(100, seed=3), reg_rows(40, seed=4)
    write_rows(wd / "reg1.csv", ["x1", "x2", "g", "y1"], reg_train)
    write_rows(wd / "reg2.csv", ["x1", "x2", "g", "y1", "y2"], reg_train)
    write_rows(wd / "reg1_new.csv", ["x1", "x2", "g", "y1"], reg_new)
    write_rows(wd / "reg2_new.csv", ["x1", "x2", "g", "y1", "y2"], reg_new)

    configs = {
        "clf": clf_yaml("clf"),
        "clf_test": clf_yaml("clf_test", "  test: clf_test.csv\n", epochs=20),
        "clf_val": clf_yaml("clf_val", "  val: clf_val.csv\n", epochs=20),
        "clf_tsplit": clf_yaml("clf_tsplit", "  test_split: 0.2\n", epochs=20),
        "clf_vsplit": clf_yaml("clf_vsplit", "  val_split: 0.2\n", epochs=20),
        "reg1": reg_yaml("reg1", "reg1.csv", "y1"),
        "reg2": reg_yaml("reg2", "reg2.csv", "[y1, y2]"),
    }
    for name, text in configs.items():
        (wd / f"{name}.yaml").write_text(text, encoding="utf-8")
    runs = {}
    for name in configs:
        r = nn("train", f"{name}.yaml", "-q", "--runs-dir", "runs", *NO_PLOTS, cwd=wd)
        assert r.rc == 0, f"training {name} failed: {r.err}"
        runs[name] = wd / r.text.strip().splitlines()[-1]
        assert (runs[name] / "summary.json").exists()
    return {"dir": wd, "runs": runs, "train": train, "new": new, "reg_new": reg_new}


@pytest.fixture(scope="module")
def base_predict(W):
    """`predict clf new.csv` on stdout: the reference the other predict tests compare with."""
    r = nn("predict", W["runs"]["clf"], "new.csv", cwd=W["dir"])
    assert r.rc == 0, r.err
    assert r.out.startswith("id,température,".encode("utf-8"))
    return r


# ---------------------------------------------------------------------- independent maths

def my_class_report(true: list[str], pred: list[str], classes: list[str]) -> dict:
    k = len(classes)
    idx = {c: i for i, c in enumerate(classes)}
    C = np.zeros((k, k), dtype=int)
    for t, p in zip(true, pred):
        C[idx[t], idx[p]] += 1
    assert (C.sum(axis=0) > 0).all() and (C.sum(axis=1) > 0).all(), "test data must exercise every class"
    prec = np.diag(C) / C.sum(axis=0)
    rec = np.diag(C) / C.sum(axis=1)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.where(prec + rec > 0, prec + rec, 1), 0.0)
    return {"C": C, "precision": prec, "recall": rec, "f1": f1, "support": C.sum(axis=1),
            "accuracy": float(np.mean(np.array(true) == np.array(pred)))}


# ---------------------------------------------------------------------- 1. round trip


def test_predict_eval_round_trip_text_features_and_labels(W, base_predict):
    run, wd = W["runs"]["clf"], W["dir"]
    inp = read_text_csv(wd / "new.csv")
    out = read_text_csv(base_predict.out)
    n_in = len(CLF_COLUMNS)
    assert list(out.columns[:n_in]) == CLF_COLUMNS
    # every input column unchanged, text for text (IDs like 007, "1.50", quotes, commas, NA)
    for col in CLF_COLUMNS:
        assert out[col].tolist() == [r[col] for r in W["new"]], col
    assert "007" in out["id"].tolist() and "NA" in out["note"].tolist() and "  espace " in out["note"].tolist()
    classes = sorted({r["label"] for r in W["train"]})
    assert classes == CLASSES3
    assert list(out.columns[n_in:]) == ["prediction"] + [f"proba_{c}" for c in classes]
    assert len(out) == len(inp) == 50

    P = out[[f"proba_{c}" for c in classes]].astype(float).to_numpy()
    assert np.all(P >= 0) and np.allclose(P.sum(axis=1), 1.0, atol=1e-9)
    pred = out["prediction"].tolist()
    assert pred == [classes[i] for i in np.argmax(P, axis=1)]
    true = [r["label"] for r in W["new"]]
    mine = my_class_report(true, pred, classes)
    assert mine["accuracy"] >= 0.85, "a learnable problem should be learnt"

    r = nn("eval", run, "--data", "new.csv", "--json", *NO_PLOTS, cwd=wd)
    assert r.rc == 0, r.err
    rep = json.loads(r.text)
    assert rep["rows"] == 50
    assert rep["accuracy"] == pytest.approx(mine["accuracy"], abs=1e-12)
    assert rep["confusion_matrix"]["labels"] == classes
    assert np.array_equal(np.array(rep["confusion_matrix"]["matrix"]), mine["C"])
    for i, c in enumerate(classes):
        pc = rep["per_class"][c]
        assert pc["precision"] == pytest.approx(mine["precision"][i], abs=1e-12)
        assert pc["recall"] == pytest.approx(mine["recall"][i], abs=1e-12)
        assert pc["f1"] == pytest.approx(mine["f1"][i], abs=1e-12)
        assert pc["support"] == int(mine["support"][i])
    for m in ("precision", "recall", "f1"):
        assert rep["macro"][m] == pytest.approx(float(np.mean(mine[m])), abs=1e-12)
        assert rep["macro"][m] == pytest.approx(np.mean([rep["per_class"][c][m] for c in classes]), abs=1e-12)
    # softmax cross-entropy: mean of -log p(true class). eval computes in the run's float32 (as
    # training does, issue 13), so it agrees with this float64 reference to float32 rounding:
    # about 1e-7 of the logits' size, absolute, in each of log-sum-exp and z_true
    p_true = P[np.arange(len(true)), [classes.index(t) for t in true]]
    assert rep["loss"] == pytest.approx(float(np.mean(-np.log(p_true))), rel=1e-6, abs=1e-5)


# ---------------------------------------------------------------------- 2. independence


def test_probabilities_match_own_forward_pass_from_saved_files(W, base_predict):
    run = W["runs"]["clf"]
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["features"] == ["température", "couleur"]
    assert meta["categories"] == {"couleur": sorted(COLOURS)}
    assert meta["task"] == "multiclass" and meta["classes"] == CLASSES3
    out = read_text_csv(base_predict.out)
    A = my_forward(run, read_text_csv(W["dir"] / "new.csv"))
    P = out[[f"proba_{c}" for c in CLASSES3]].astype(float).to_numpy()
    np.testing.assert_allclose(P, A, rtol=1e-6, atol=1e-12)


# ---------------------------------------------------------------------- 3. column matching and errors


def _variant(W, name: str, edit) -> str:
    df = read_text_csv(W["dir"] / "new.csv")
    df = edit(df)
    df.to_csv(W["dir"] / name, index=False, lineterminator="\n")
    return name


def _pred_cols(df: pd.DataFrame) -> pd.DataFrame:
    return df[["prediction"] + [f"proba_{c}" for c in CLASSES3]].reset_index(drop=True)


def test_column_order_extra_and_target_columns_do_not_change_predictions(W, base_predict):
    def reorder_extra(df):
        df = df[list(reversed(df.columns))].copy()
        df.insert(1, "extra", "zzz")
        df["autre_num"] = "3.5"
        return df

    def garbage_target(df):
        df = df.copy()
        df["label"] = ["???", "", "NA", "Iris-virginica"] * 12 + ["x", "y"]
        return df

    files = [
        _variant(W, "v_reordered.csv", reorder_extra),
        _variant(W, "v_notarget.csv", lambda df: df.drop(columns=["label"])),
        _variant(W, "v_garbage_target.csv", garbage_target),
        _variant(W, "v_features_only.csv", lambda df: df[["couleur", "température"]]),
    ]
    results = [nn("predict", W["runs"]["clf"], f, cwd=W["dir"]) for f in files]
    ref = _pred_cols(read_text_csv(base_predict.out))
    for f, r in zip(files, results):
        assert r.rc == 0, f"{f}: {r.err}"
        got = read_text_csv(r.out)
        inp = read_text_csv(W["dir"] / f)
        assert list(got.columns[: len(inp.columns)]) == list(inp.columns), f
        assert got[list(inp.columns)].equals(inp), f
        assert list(got.columns[len(inp.columns):]) == ["prediction"] + [f"proba_{c}" for c in CLASSES3], f
        assert got["prediction"].tolist() == ref["prediction"].tolist(), f
        np.testing.assert_allclose(got[[f"proba_{c}" for c in CLASSES3]].astype(float).to_numpy(),
                                   ref[[f"proba_{c}" for c in CLASSES3]].astype(float).to_numpy(), rtol=1e-12, err_msg=f)


def test_column_with_empty_header_passes_through_unchanged(W):
    """README: predict writes every input column unchanged; a spreadsheet's trailing comma
    makes a column whose name is empty, and its header must stay empty (not 'Unnamed: 5')."""
    src = (W["dir"] / "new.csv").read_text(encoding="utf-8").splitlines()
    lines = [src[0] + ","] + [ln + ("," if i % 2 else ",z") for i, ln in enumerate(src[1:])]
    (W["dir"] / "trailing_comma.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = nn("predict", W["runs"]["clf"], "trailing_comma.csv", cwd=W["dir"])
    assert r.rc == 0, r.err
    rows_in = list(csv.reader(io.StringIO("\n".join(lines) + "\n")))
    rows_out = list(csv.reader(io.StringIO(r.text)))
    n = len(rows_in[0])
    assert rows_out[0][:n] == rows_in[0], f"header changed: {rows_out[0][:n]} != {rows_in[0]}"
    assert [row[:n] for row in rows_out[1:]] == rows_in[1:]


def test_header_only_input_is_an_error_and_writes_nothing(W):
    """Exit 2 means 'nothing is written' (README); not even the header line on stdout."""
    (W["dir"] / "header_only.csv").write_text(",".join(CLF_COLUMNS) + "\n", encoding="utf-8")
    r = nn("predict", W["runs"]["clf"], "header_only.csv", cwd=W["dir"])
    assert_usage_error(r, "header_only.csv")
    assert r.out == b"", f"stdout on error: {r.out!r}"


def _set_cell(row: int, col: str, value: str):
    """Edit data row ``row`` (numbered from 1) of column ``col``."""
    def edit(df):
        df = df.copy()
        df.loc[row - 1, col] = value
        return df
    return edit


def test_predict_input_errors_name_columns_rows_and_values(W):
    cases = {
        "e_missing.csv": lambda df: df.drop(columns=["température", "couleur"]),
        "e_unseen.csv": _set_cell(17, "couleur", "violet"),
        "e_blank.csv": _set_cell(9, "température", ""),
        "e_na_cat.csv": _set_cell(4, "couleur", "NA"),
        "e_text_num.csv": _set_cell(12, "température", "chaud"),
    }
    files = [_variant(W, name, edit) for name, edit in cases.items()]
    # the first through a real process (exit status and stderr as a shell sees them)
    res = {files[0]: cli("predict", W["runs"]["clf"], files[0], cwd=W["dir"])}
    res.update({f: nn("predict", W["runs"]["clf"], f, cwd=W["dir"]) for f in files[1:]})
    for f, r in res.items():
        assert r.out == b"", f"{f}: nothing may reach stdout on an error"
    assert_usage_error(res["e_missing.csv"], "température", "couleur")
    assert_usage_error(res["e_unseen.csv"], "couleur", "violet", "row 17")
    assert_usage_error(res["e_blank.csv"], "température", "row 9")
    assert_usage_error(res["e_na_cat.csv"], "couleur", "row 4")
    assert_usage_error(res["e_text_num.csv"], "température", "row 12", "chaud")


# ---------------------------------------------------------------------- 4. stdin, -o, atomicity, pipes


def test_stdin_and_output_file_match_file_and_stdout(W, base_predict):
    wd = W["dir"] / "o1"
    wd.mkdir()
    (wd / "out.csv").write_text("old contents\n", encoding="utf-8")
    data = (W["dir"] / "new.csv").read_bytes()
    bom = "\ufeff".encode("utf-8") + data
    r_stdin, r_file, r_bom = cli_many([
        (["predict", W["runs"]["clf"], "-"], wd, data),
        (["predict", W["runs"]["clf"], W["dir"] / "new.csv", "-o", "out.csv"], wd),
        (["predict", W["runs"]["clf"], "-"], wd, bom),  # README: a BOM is fine
    ])
    assert r_stdin.rc == 0, r_stdin.err
    assert r_stdin.out == base_predict.out
    assert r_bom.rc == 0, r_bom.err
    assert r_bom.out == base_predict.out
    assert r_file.rc == 0, r_file.err
    assert r_file.out == b""
    assert (wd / "out.csv").read_bytes() == base_predict.out
    assert sorted(p.name for p in wd.iterdir()) == ["out.csv"], "no temporary file may remain"


@pytest.fixture(scope="module")
def big(W):
    return write_big(W["dir"] / "big.csv", bad_last=False), write_big(W["dir"] / "big_bad.csv", bad_last=True)


def test_error_in_last_row_leaves_existing_output_untouched(W, big):
    wd = W["dir"] / "o2"
    wd.mkdir()
    before = "id,prediction\n1,keep me\n".encode("utf-8")
    (wd / "out.csv").write_bytes(before)
    (wd / "neighbour.txt").write_text("x", encoding="utf-8")
    r = cli("predict", W["runs"]["clf"], big[1], "-o", "out.csv", cwd=wd)
    assert_usage_error(r, "couleur", "violet", f"row {N_BIG}")
    assert (wd / "out.csv").read_bytes() == before
    assert sorted(p.name for p in wd.iterdir()) == ["neighbour.txt", "out.csv"], "no temporary file may remain"


def test_pipe_into_head_ends_quietly(W, big):
    cmd = (f'"{sys.executable}" -m nncli predict "{W["runs"]["clf"]}" "{big[0]}" | head -1; '
           'echo "${PIPESTATUS[0]}" > pipestatus.txt')
    p = subprocess.run(cmd, shell=True, executable="/bin/bash", cwd=W["dir"], env=cli_env(),
                       capture_output=True, timeout=180)
    err = p.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert err.strip() == ""
    assert p.stdout.decode("utf-8") == "id,température,couleur,note,prediction," + ",".join(f"proba_{c}" for c in CLASSES3) + "\n"
    assert (W["dir"] / "pipestatus.txt").read_text().strip() == "0"


# ---------------------------------------------------------------------- 5. chunking (in-process)


def test_chunked_prediction_equals_one_shot(W, base_predict, tmp_path):
    from nncli.inference import predict
    from nncli.runs import load_run

    run = load_run(W["runs"]["clf"])
    src = W["dir"] / "new.csv"  # 50 rows: 7 full chunks of 7 and one of 1
    n7 = predict(run, str(src), str(tmp_path / "c7.csv"), chunk_rows=7)
    n1 = predict(run, str(src), str(tmp_path / "c1.csv"), chunk_rows=100_000)
    assert n7 == n1 == 50
    assert (tmp_path / "c7.csv").read_bytes() == (tmp_path / "c1.csv").read_bytes()
    # and both equal what the command line writes on stdout
    assert (tmp_path / "c7.csv").read_bytes() == base_predict.out


@pytest.mark.parametrize("row, col, value, needle", [
    (33, "couleur", "violet", "violet"),
    (48, "température", "", "missing"),
    (22, "température", "tiède", "tiède"),
])
def test_error_in_later_chunk_reports_absolute_row(W, tmp_path, row, col, value, needle):
    from nncli.errors import DataError
    from nncli.inference import predict
    from nncli.runs import load_run

    run = load_run(W["runs"]["clf"])
    f = _variant(W, f"chunk_err_{row}.csv", _set_cell(row, col, value))
    with pytest.raises(DataError) as ei:
        predict(run, str(W["dir"] / f), str(tmp_path / "out.csv"), chunk_rows=7)
    msg = str(ei.value)
    assert re.search(rf"\brow {row}\b", msg), msg
    assert f"line {row + 1}" in msg, msg
    assert col in msg and needle in msg, msg
    assert not (tmp_path / "out.csv").exists()
    assert list(tmp_path.iterdir()) == [], "no temporary file may remain"


# ---------------------------------------------------------------------- 6. regression


def test_regression_one_and_two_targets(W):
    wd, runs = W["dir"], W["runs"]
    res = [
        nn("predict", runs["reg1"], "reg1_new.csv", cwd=wd),
        nn("predict", runs["reg2"], "reg2_new.csv", cwd=wd),
        nn("eval", runs["reg1"], "--data", "reg1_new.csv", "--json", *NO_PLOTS, cwd=wd),
        nn("eval", runs["reg2"], "--data", "reg2_new.csv", "--json", *NO_PLOTS, cwd=wd),
    ]
    for r in res:
        assert r.rc == 0, r.err
    p1, p2 = read_text_csv(res[0].out), read_text_csv(res[1].out)
    assert list(p1.columns) == ["x1", "x2", "g", "y1", "prediction"]
    assert list(p2.columns) == ["x1", "x2", "g", "y1", "y2", "prediction_y1", "prediction_y2"]
    for col in ("x1", "x2", "g", "y1"):
        assert p1[col].tolist() == [r[col] for r in W["reg_new"]]
    # predictions are the identity output of the saved network, in the targets' own units: the
    # network predicts z-scores (data.standardize_target), unscaled with model.npz's y_mean/y_std
    def unscaled(run, A):
        z = npz_arrays(run / "model.npz")
        return A * z["y_std"].astype(np.float64) + z["y_mean"].astype(np.float64)

    np.testing.assert_allclose(p1["prediction"].astype(float), unscaled(runs["reg1"], my_forward(runs["reg1"], p1))[:, 0],
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(p2[["prediction_y1", "prediction_y2"]].astype(float).to_numpy(),
                               unscaled(runs["reg2"], my_forward(runs["reg2"], p2)), rtol=1e-6, atol=1e-9)

    for rep_res, pdf, targets, pcols in (
        (res[2], p1, ["y1"], ["prediction"]),
        (res[3], p2, ["y1", "y2"], ["prediction_y1", "prediction_y2"]),
    ):
        rep = json.loads(rep_res.text)
        assert rep["rows"] == 40
        assert set(rep["targets"]) == set(targets)
        mses = []
        for t, pc in zip(targets, pcols):
            y = np.array([float(r[t]) for r in W["reg_new"]])
            yh = pdf[pc].astype(float).to_numpy()
            mse = np.mean((yh - y) ** 2)
            mses.append(mse)
            m = rep["targets"][t]
            assert m["mse"] == pytest.approx(mse, rel=1e-6)
            assert m["rmse"] == pytest.approx(np.sqrt(mse), rel=1e-6)
            assert m["mae"] == pytest.approx(np.mean(np.abs(yh - y)), rel=1e-6)
            r2 = 1 - np.sum((y - yh) ** 2) / np.sum((y - y.mean()) ** 2)
            assert m["r2"] == pytest.approx(r2, rel=1e-6)
            assert r2 > 0.9, "a linear target should be learnt"
        # the quadratic cost 1/2 sum_j (y_j - y_hat_j)^2, mean over samples
        assert rep["loss"] == pytest.approx(0.5 * sum(mses), rel=1e-6)


# ---------------------------------------------------------------------- 7. eval's default data


@pytest.fixture(scope="module")
def default_evals(W):
    names = ["clf_test", "clf_val", "clf_tsplit", "clf_vsplit", "clf"]
    # one through a real process, the others in this one
    res = [cli("eval", W["runs"][names[0]], "--json", *NO_PLOTS, cwd=W["dir"])]
    res += [nn("eval", W["runs"][n], "--json", *NO_PLOTS, cwd=W["dir"]) for n in names[1:]]
    out = {}
    for n, r in zip(names, res):
        assert r.rc == 0, f"{n}: {r.err}"
        lines = [ln for ln in r.text.splitlines() if ln.strip()]
        assert len(lines) == 1, f"--json must print one JSON object, got {r.text!r}"
        obj = json.loads(lines[0])
        assert isinstance(obj, dict)
        out[n] = obj
    return out


def _strip_saved(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "saved"}


def _class_counts(rows) -> dict:
    counts = {}
    for r in rows:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    return counts


def test_eval_default_is_test_file(W, default_evals):
    rep = default_evals["clf_test"]
    assert "data.test" in rep["source"]
    assert rep["rows"] == 30
    true = [r["label"] for r in clf_rows(30, seed=5)]
    assert {c: v["support"] for c, v in rep["per_class"].items()} == {c: true.count(c) for c in CLASSES3}
    saved = json.loads((W["runs"]["clf_test"] / "eval.json").read_text(encoding="utf-8"))
    assert _strip_saved(saved) == _strip_saved(rep)


def test_eval_default_is_val_file_without_test(W, default_evals):
    rep = default_evals["clf_val"]
    assert "data.val" in rep["source"]
    assert rep["rows"] == 25
    assert (W["runs"]["clf_val"] / "eval.json").exists()


def test_eval_default_is_test_split_rows(W, default_evals):
    rep = default_evals["clf_tsplit"]
    run = W["runs"]["clf_tsplit"]
    assert "test_split" in rep["source"]
    counts = _class_counts(W["train"])
    for c, n_c in counts.items():
        assert (0.2 * n_c) % 1 != 0.5  # no rounding ambiguity in this data
    expected = {c: int(round(0.2 * n_c)) for c, n_c in counts.items()}
    assert {c: v["support"] for c, v in rep["per_class"].items()} == expected
    assert rep["rows"] == sum(expected.values())
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["metrics"]["rows"] == N_TRAIN - rep["rows"], "test rows are not training rows"
    assert "val_metrics" not in summary or summary["val_metrics"] is None
    # exactly the held-out rows: evaluating them as a --data file gives the same report
    held = _held_out_rows(run, "test")
    assert len(held) == rep["rows"]
    write_rows(W["dir"] / "held_test.csv", CLF_COLUMNS, [W["train"][i] for i in held])
    r = nn("eval", run, "--data", "held_test.csv", "--json", *NO_PLOTS, cwd=W["dir"])
    assert r.rc == 0, r.err
    other = json.loads(r.text)
    for k in ("rows", "accuracy", "per_class", "confusion_matrix"):
        assert other[k] == rep[k], k
    assert other["loss"] == pytest.approx(rep["loss"], rel=1e-12)


def _held_out_rows(run: Path, which: str) -> list[int]:
    """The held-out rows saved with the run (splits.npz, read with numpy alone); they and the
    training rows are disjoint and together every row of clf.csv."""
    saved = npz_arrays(run / "splits.npz")
    assert int(saved["n_rows"]) == N_TRAIN
    train, held = saved["train"].tolist(), saved[which].tolist()
    assert not set(train) & set(held)
    assert sorted(train + held) == list(range(N_TRAIN))
    return held


def test_eval_default_is_val_split_rows(W, default_evals):
    rep = default_evals["clf_vsplit"]
    run = W["runs"]["clf_vsplit"]
    assert "val_split" in rep["source"]
    counts = _class_counts(W["train"])
    expected = {c: int(round(0.2 * n_c)) for c, n_c in counts.items()}
    assert {c: v["support"] for c, v in rep["per_class"].items()} == expected
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    # the validation rows of training: same count, same loss (summary computed them in float32)
    assert summary["val_metrics"]["rows"] == rep["rows"]
    assert summary["metrics"]["rows"] == N_TRAIN - rep["rows"]
    assert rep["loss"] == pytest.approx(summary["val_metrics"]["loss"], rel=1e-4)
    assert abs(rep["accuracy"] - summary["val_metrics"]["accuracy"]) <= 1.0 / rep["rows"] + 1e-12
    held = _held_out_rows(run, "val")
    true = [W["train"][i]["label"] for i in held]
    assert {c: true.count(c) for c in CLASSES3} == expected


def test_eval_default_without_held_out_data_is_training_data(W, default_evals):
    rep = default_evals["clf"]
    assert "data.train" in rep["source"] or "train" in rep["source"]
    assert rep["rows"] == N_TRAIN
    true = [r["label"] for r in W["train"]]
    assert {c: v["support"] for c, v in rep["per_class"].items()} == {c: true.count(c) for c in CLASSES3}


def _copy_run(W, name: str, where: str) -> tuple[Path, Path]:
    """(a work directory holding clf.csv, a copy of run ``name`` in its runs/ without eval reports)."""
    wd = W["dir"] / where
    (wd / "runs").mkdir(parents=True)
    shutil.copy(W["dir"] / "clf.csv", wd / "clf.csv")
    run = Path(shutil.copytree(W["runs"][name], wd / "runs" / W["runs"][name].name))
    for p in run.glob("eval*.json"):
        p.unlink()
    return wd, run


def test_eval_reads_the_held_out_rows_saved_in_splits_npz(W):
    """No generator replay: whatever rows splits.npz names are the ones evaluated."""
    wd, run = _copy_run(W, "clf_tsplit", "saved_rows")
    arrays = npz_arrays(run / "splits.npz")
    mine = np.array([0, 3, 4, 10, 11, 57, 119])
    arrays["test"] = mine
    arrays["train"] = np.setdiff1d(np.arange(N_TRAIN), mine)
    np.savez(run / "splits.npz", **arrays)
    unseal(run)  # an edited splits.npz: a sealed run would refuse it (its digest)
    r = nn("eval", run, "--json", *NO_PLOTS, cwd=wd)
    assert r.rc == 0, r.show()
    rep = json.loads(r.text)
    assert rep["rows"] == len(mine) and "notes" not in rep
    true = [W["train"][i]["label"] for i in mine]
    assert {c: v["support"] for c, v in rep["per_class"].items()} == {c: true.count(c) for c in CLASSES3}
    write_rows(wd / "mine.csv", CLF_COLUMNS, [W["train"][i] for i in mine])
    other = json.loads(nn("eval", run, "--data", "mine.csv", "--json", *NO_PLOTS, cwd=wd).text)
    for k in ("rows", "accuracy", "per_class", "confusion_matrix"):
        assert other[k] == rep[k], k


def test_eval_of_an_old_run_without_splits_npz_uses_every_row_with_a_note(W):
    wd, run = _copy_run(W, "clf_tsplit", "old_run")
    (run / "splits.npz").unlink()
    unseal(run)  # an old run: no splits.npz, and no digests either
    r = nn("eval", run, "--json", *NO_PLOTS, cwd=wd)
    assert r.rc == 0, r.show()
    rep = json.loads(r.text)
    assert rep["rows"] == N_TRAIN
    assert rep["source"].startswith("data.train clf.csv") and "every row, training rows included" in rep["source"]
    true = [row["label"] for row in W["train"]]
    assert {c: v["support"] for c, v in rep["per_class"].items()} == {c: true.count(c) for c in CLASSES3}
    assert len(rep["notes"]) == 1 and "training rows included" in rep["notes"][0], rep["notes"]
    assert str(run) in rep["notes"][0]
    assert r.err_lines == [f"nncli: warning: {rep['notes'][0]}"], r.err
    saved = json.loads((run / "eval.json").read_text(encoding="utf-8"))
    assert saved["notes"] == rep["notes"]


def test_eval_refuses_held_out_rows_of_a_changed_training_file(W):
    wd, run = _copy_run(W, "clf_tsplit", "changed_file")
    with open(wd / "clf.csv", "a", encoding="utf-8") as fh:
        fh.write("999,0.50,rouge,x,peut-être\n")
    r = nn("eval", run, "--json", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, "data.train clf.csv", f"has {N_TRAIN + 1} rows", f"trained on {N_TRAIN}", "test rows are unknown")
    assert not (run / "eval.json").exists()


def test_eval_with_a_damaged_splits_npz_is_a_one_line_error(W):
    wd, run = _copy_run(W, "clf_tsplit", "damaged_splits")
    arrays = npz_arrays(run / "splits.npz")
    arrays["test"] = np.array([1, 2, N_TRAIN])  # a row past the end
    np.savez(run / "splits.npz", **arrays)
    unseal(run)  # an edited splits.npz: a sealed run would refuse it (its digest)
    r = nn("eval", run, "--json", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, "splits.npz", "test")
    assert not (run / "eval.json").exists()


def test_eval_data_files_never_overwrite_each_other(W, default_evals):
    run, wd = W["runs"]["clf"], W["dir"]
    eval_json = run / "eval.json"
    assert eval_json.exists(), "default eval must save eval.json in the run directory"
    before = eval_json.read_bytes()
    (wd / "x").mkdir()
    (wd / "y").mkdir()
    rows_a, rows_b = clf_rows(20, seed=21), clf_rows(24, seed=22)
    write_rows(wd / "a.csv", CLF_COLUMNS, rows_a)
    write_rows(wd / "b.csv", CLF_COLUMNS, rows_b)
    write_rows(wd / "x" / "same.csv", CLF_COLUMNS, rows_a)
    write_rows(wd / "y" / "same.csv", CLF_COLUMNS, rows_b)
    existing = {p.name for p in run.iterdir()}
    res = [nn("eval", run, "--data", f, "--json", *NO_PLOTS, cwd=wd) for f in ("a.csv", "b.csv", "x/same.csv", "y/same.csv")]
    for r in res:
        assert r.rc == 0, r.err
    new_json = sorted(n for n in {p.name for p in run.iterdir()} - existing if n.endswith(".json"))
    assert len(new_json) == 4, new_json
    assert "eval.json" not in new_json
    assert eval_json.read_bytes() == before, "--data must not overwrite eval.json"
    by_source = {}
    for n in new_json:
        rep = json.loads((run / n).read_text(encoding="utf-8"))
        by_source[rep["source"]] = rep
    assert set(by_source) == {"--data a.csv", "--data b.csv", "--data x/same.csv", "--data y/same.csv"}
    assert by_source["--data a.csv"]["rows"] == 20 and by_source["--data b.csv"]["rows"] == 24
    assert by_source["--data x/same.csv"]["rows"] == 20 and by_source["--data y/same.csv"]["rows"] == 24
    assert any(n.startswith("eval_a_") for n in new_json) and any(n.startswith("eval_b_") for n in new_json)
