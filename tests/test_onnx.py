"""nncli export (nncli/onnx_export.py): the ONNX graph of a run, run by onnxruntime, against
`nncli predict` (nncli's own numpy path) on the same rows: labels equal, probabilities within
1e-5, regression values within 1e-5 of the targets' scale (float32 graph; float64: 1e-12)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from helpers import (REPO, assert_usage_error, cli_env, nn, npz_arrays, read_text_csv, unseal, write_rows,  # noqa: E402
                     write_yaml)
from nncli.csvio import MISSING  # noqa: E402

CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))


# ---------------------------------------------------------------------- helpers


def train(config, runs_dir: Path, *sets: str, cwd=REPO) -> Path:
    args = ["train", config, "-q", "--no-plots", "--runs-dir", runs_dir]
    for s in sets:
        args += ["--set", s]
    r = nn(*args, cwd=cwd)
    assert r.rc == 0, r.show()
    return Path(cwd) / r.text.strip()


def export(run: Path, out: Path, *extra) -> Path:
    r = nn("export", run, "-o", out, *extra, cwd=out.parent)
    assert r.rc == 0 and not r.text, r.show()
    assert r.err_lines == [r.err_lines[0]] and r.err_lines[0].startswith(f"wrote {out}"), r.show()
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    return out


def predicted(run: Path, table: Path, tmp: Path, *extra):
    """`nncli predict`'s output for ``table``, every cell as written."""
    out = tmp / f"pred_{table.stem}.csv"
    r = nn("predict", run, table, "-o", out, *extra, cwd=tmp)
    assert r.rc == 0, r.show()
    return read_text_csv(out)


def feeds(sess, table: Path, na_values=()):
    """The graph's inputs from the table's cells: its string inputs take the texts as written;
    its numeric ones take the numbers, NaN for a missing cell (nncli's tokens and the texts of
    na_values; a number there, -1 say, is passed as the number: the graph knows it means missing)."""
    df = read_text_csv(table)
    out = {}
    for i in sess.get_inputs():
        cells = df[i.name]
        if i.type == "tensor(string)":
            out[i.name] = cells.to_numpy(dtype=object)
        else:
            gap = cells.isin(MISSING + [v for v in na_values if not _is_number(v)])
            x = np.array([np.nan if g else float(c) for c, g in zip(cells, gap)])
            out[i.name] = x.astype(np.float32 if i.type == "tensor(float)" else np.float64)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def run_graph(path: Path, table: Path, na_values=()) -> dict:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds(sess, table, na_values))))


def assert_same_as_predict(onnx_path: Path, run: Path, table: Path, tmp: Path, tol=1e-5, na_values=(), skip=False):
    """The graph's outputs on ``table`` against `nncli predict`'s columns: a row predict could not
    predict (--skip-invalid: empty cells) has an empty label and NaN values in the graph."""
    ref = predicted(run, table, tmp, *(["--skip-invalid"] if skip else []))
    got = run_graph(onnx_path, table, na_values)
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    if meta["classes"] is not None:
        assert list(got) == ["label", "probabilities"]
        assert got["label"].tolist() == ref["prediction"].tolist()  # the class labels as predict writes them
        P = ref[[f"proba_{c}" for c in meta["classes"]]].replace("", "nan").astype(float).to_numpy()
        assert got["probabilities"].shape == P.shape
        np.testing.assert_array_equal(np.isnan(got["probabilities"]), np.isnan(P))
        np.testing.assert_allclose(got["probabilities"], P, rtol=0, atol=tol)
        return got, ref
    assert list(got) == ["prediction"]
    cols = ["prediction"] if len(meta["targets"]) == 1 else [f"prediction_{t}" for t in meta["targets"]]
    V = ref[cols].replace("", "nan").astype(float).to_numpy()
    assert got["prediction"].shape == V.shape
    np.testing.assert_array_equal(np.isnan(got["prediction"]), np.isnan(V))
    for k in range(V.shape[1]):  # within tol relative to the size of each target's values
        scale = float(np.nanmax(np.abs(V[:, k])))
        np.testing.assert_allclose(got["prediction"][:, k], V[:, k], rtol=tol, atol=tol * scale)
    return got, ref


# ---------------------------------------------------------------------- the gallery


@pytest.mark.parametrize("name", CONFIGS)
def test_every_gallery_run_exports_and_predicts_as_nncli(name, tmp_path):
    cfg = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text(encoding="utf-8"))
    run = train(f"configs/{name}.yaml", tmp_path / "runs", "train.epochs=5")
    out = export(run, tmp_path / f"{name}.onnx")
    m = onnx.load(str(out))
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert [i.name for i in m.graph.input] == meta["features"]  # one input per feature column, named after it
    # the weights as model.npz holds them, the lecture's W_l of shape (n_out, n_in)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    with np.load(run / "model.npz") as npz:
        L = sum(1 for k in npz.files if k.startswith("W"))
        for l in range(1, L + 1):
            np.testing.assert_array_equal(inits[f"W{l}"], npz[f"W{l}"])
            np.testing.assert_array_equal(inits[f"b{l}"], npz[f"b{l}"])
    assert_same_as_predict(out, run, REPO / cfg["data"]["train"], tmp_path)


def test_a_float64_graph_agrees_to_rounding(tmp_path):
    run = train("configs/wine.yaml", tmp_path / "runs", "train.epochs=5")
    out = export(run, tmp_path / "wine64.onnx", "--dtype", "float64")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert {i.type for i in sess.get_inputs()} == {"tensor(double)"}
    assert_same_as_predict(out, run, REPO / "datasets" / "wine.csv", tmp_path, tol=1e-12)
    sine = train("configs/sine.yaml", tmp_path / "runs", "train.epochs=5")  # regression with scaled targets
    assert_same_as_predict(export(sine, tmp_path / "sine64.onnx", "--dtype", "float64"), sine,
                           REPO / "datasets" / "sine.csv", tmp_path, tol=1e-12)


def test_at_a_tie_a_float64_graph_decides_as_predict(tmp_path):
    """The lecture's single neuron on XOR, trained to the end, sits at y_hat = 1/2 +- 1e-7, where
    float32 and float64 decide differently: the float64 graph gives predict's labels on every row;
    the float32 graph's probabilities are still within 1e-5 (its labels there are float32's)."""
    run = train("configs/xor-linear.yaml", tmp_path / "runs")
    xor = REPO / "datasets" / "xor.csv"
    ref = predicted(run, xor, tmp_path)
    assert np.abs(ref["proba_1"].astype(float) - 0.5).max() < 1e-6  # the tie this test is about
    assert_same_as_predict(export(run, tmp_path / "x64.onnx", "--dtype", "float64"), run, xor, tmp_path, tol=1e-12)
    got = run_graph(export(run, tmp_path / "x32.onnx"), xor)
    np.testing.assert_allclose(got["probabilities"], ref[["proba_0", "proba_1"]].astype(float).to_numpy(), atol=1e-5)


# ---------------------------------------------------------------------- text columns, missing cells


def shop_rows(n: int, seed: int, gaps: bool) -> list[dict]:
    """Customers: numbers (age, 'size (cm)'), text (city; plan, codes that look like numbers),
    and a class with a label that looks like a number ('007'). ``gaps``: missing cells of
    every kind nncli knows (empty, NA, ? and -1 from na_values)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        age, size = rng.uniform(18, 80), rng.normal(170, 10)
        city, plan = ["Paris", "Lyon", "Nice"][int(rng.integers(3))], ["1", "2", "10"][int(rng.integers(3))]
        score = (age - 45) / 15 + (city == "Lyon") - (plan == "10") + rng.normal(0, 0.3)
        label = "007" if score > 0.5 else "cat" if score > -0.5 else "dog"
        row = {"age": f"{age:.1f}", "size (cm)": f"{size:.2f}", "city": city, "plan": plan, "label": label,
               "y": f"{3 * age + 20 * (city == 'Nice') + rng.normal(0, 1):.3f}", "z": f"{size / 10 - float(plan):.3f}"}
        if gaps and i % 7 == 3:
            row["age"] = ["", "NA", "?", "-1"][i % 4]
        if gaps and i % 11 == 5:
            row["city"] = ["", "NA", "?"][i % 3]
        if gaps and i % 13 == 6:
            row["size (cm)"] = "n/a"
        rows.append(row)
    return rows


HEADER = ["age", "size (cm)", "city", "plan", "label", "y", "z"]


def shop_config(tmp: Path, **data) -> Path:
    d = {"train": "shop.csv", "target": "label", "exclude": ["y", "z"], "categorical": ["plan"], "val_split": 0.2, **data}
    return write_yaml(tmp / "shop.yaml", {"name": "shop", "seed": 1, "data": d,
                                          "model": {"layers": ["auto", 8, "auto"], "activation": "tanh"},
                                          "loss": "cross_entropy", "train": {"optimizer": "adam", "lr": 0.05, "epochs": 30}})


def test_text_columns_and_imputed_cells(tmp_path):
    write_rows(tmp_path / "shop.csv", HEADER, shop_rows(200, 0, gaps=True))
    na = ["?", "-1"]
    shop_config(tmp_path, missing="impute", missing_indicator=True, unknown_category="ignore", na_values=na,
                impute={"numeric": "median", "categorical": "most_frequent"})
    run = train("shop.yaml", tmp_path / "runs", cwd=tmp_path)
    out = export(run, tmp_path / "shop.onnx")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in sess.get_inputs()] == [
        ("age", "tensor(float)"), ("size (cm)", "tensor(float)"), ("city", "tensor(string)"), ("plan", "tensor(string)")]
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["missing_indicators"] and meta["classes"] == ["007", "cat", "dog"]
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}  # the class order of 'probabilities'
    assert json.loads(props["classes"]) == meta["classes"] and json.loads(props["features"]) == meta["features"]
    assert_same_as_predict(out, run, tmp_path / "shop.csv", tmp_path, na_values=na)
    # new rows: unseen categories (all zeros) and gaps of every kind, imputed as nncli does
    new = shop_rows(60, 1, gaps=True)
    for i, r in enumerate(new[:12]):
        r["city"] = ["Rome", "paris", "Paris ", "Lyon"][i % 4]
        r["plan"] = ["3", "01", "1.0", "10"][i % 4]
    write_rows(tmp_path / "new.csv", HEADER, new)
    got, ref = assert_same_as_predict(out, run, tmp_path / "new.csv", tmp_path, na_values=na)
    assert len(set(got["label"])) > 1 and not np.isnan(got["probabilities"]).any()


def test_rows_nncli_refuses_get_nan_and_an_empty_label(tmp_path):
    """A run without imputation and with unknown_category: error: predict --skip-invalid leaves the
    cells of a row with a gap, an unseen category or an infinite number empty; so does the graph."""
    write_rows(tmp_path / "shop.csv", HEADER, shop_rows(150, 2, gaps=False))
    shop_config(tmp_path, na_values=["?"])  # data.missing: error, unknown_category: error (the defaults)
    run = train("shop.yaml", tmp_path / "runs", cwd=tmp_path)
    out = export(run, tmp_path / "strict.onnx")
    new = shop_rows(40, 3, gaps=True)
    new[0]["city"], new[1]["plan"], new[2]["age"], new[4]["size (cm)"] = "Rome", "3", "inf", "-inf"
    write_rows(tmp_path / "new.csv", HEADER, new)
    got, ref = assert_same_as_predict(out, run, tmp_path / "new.csv", tmp_path, na_values=["?"], skip=True)
    bad = ref["error"] != ""
    assert 8 <= bad.sum() < len(ref) and (got["label"][bad.to_numpy()] == "").all()


@pytest.mark.parametrize("hidden, output, dtype", [
    (["sigmoid", "leaky_relu"], "identity", "float32"),  # two targets, z-scored (data.standardize_target)
    ("relu", "relu", "float32"),
    ("step", "sigmoid", "float64"),  # step's 0/1 at z = 0 is exact only when both compute the same z
    ("identity", "tanh", "float32"),
    ("tanh", "softmax", "float32"),
])
def test_regressions_with_every_activation(hidden, output, dtype, tmp_path):
    write_rows(tmp_path / "shop.csv", HEADER, shop_rows(120, 4, gaps=True))
    scaled = output == "identity"
    cfg = {"name": "reg", "seed": 0,
           "data": {"train": "shop.csv", "target": ["y", "z"] if scaled else "z", "exclude": ["label"],
                    "missing": "impute", "na_values": ["?", "-1"], "val_split": 0.2},
           "model": {"layers": ["auto", 6, 5, "auto"] if isinstance(hidden, list) else ["auto", 6, "auto"],
                     "activation": hidden, "output": output},
           "loss": "mse", "train": {"optimizer": "adam", "lr": 0.01, "epochs": 5, "dtype": dtype}}
    write_yaml(tmp_path / "reg.yaml", cfg)
    run = train("reg.yaml", tmp_path / "runs", cwd=tmp_path)
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert (meta["target_scaling"] is not None) == scaled
    out = export(run, tmp_path / "reg.onnx")
    assert_same_as_predict(out, run, tmp_path / "shop.csv", tmp_path, tol=1e-5 if dtype == "float32" else 1e-12,
                           na_values=["?", "-1"])


def test_a_feature_named_like_an_output_keeps_its_name(tmp_path):
    rows = [{"label": f"{x:.3f}", "probabilities": f"{x * x:.3f}", "c": "ab"[i % 2], "y": "np"[int(x * x > 0.3)]}
            for i, x in enumerate(np.linspace(-1, 1, 30))]
    write_rows(tmp_path / "d.csv", ["label", "probabilities", "c", "y"], rows)
    write_yaml(tmp_path / "d.yaml", {"name": "d", "data": {"train": "d.csv", "target": "y"},
                                     "model": {"layers": ["auto", 4, "auto"]}, "loss": "bce", "train": {"epochs": 3}})
    run = train("d.yaml", tmp_path / "runs", cwd=tmp_path)
    out = export(run, tmp_path / "d.onnx")
    m = onnx.load(str(out))
    assert [i.name for i in m.graph.input] == ["label", "probabilities", "c"]
    assert [o.name for o in m.graph.output] == ["label_", "probabilities_"]
    got = run_graph(out, tmp_path / "d.csv")
    ref = predicted(run, tmp_path / "d.csv", tmp_path)
    assert got["label_"].tolist() == ref["prediction"].tolist()
    np.testing.assert_allclose(got["probabilities_"], ref[["proba_n", "proba_p"]].astype(float).to_numpy(), atol=1e-5)


# ---------------------------------------------------------------------- refusals: one line, exit 2


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("xor")
    return train("configs/xor.yaml", base / "runs", "train.epochs=3")


def test_a_bad_run_dir_is_refused_as_predict_refuses_it(xor_run, tmp_path):
    import shutil

    incomplete = tmp_path / "incomplete"
    shutil.copytree(xor_run, incomplete)
    (incomplete / "summary.json").unlink()
    altered = tmp_path / "altered"
    shutil.copytree(xor_run, altered)
    with open(altered / "model.npz", "ab") as fh:
        fh.write(b"\0")
    reshaped = unseal(Path(shutil.copytree(xor_run, tmp_path / "reshaped")))  # past the digests, to the shape check
    arrays = npz_arrays(reshaped / "model.npz")
    arrays["W1"] = np.zeros((arrays["W1"].shape[0] + 1, arrays["W1"].shape[1]), arrays["W1"].dtype)
    np.savez(reshaped / "model.npz", **arrays)
    (tmp_path / "old.onnx").write_bytes(b"keep me")
    for bad in (tmp_path / "nowhere", incomplete, altered, reshaped, REPO / "configs"):
        e = nn("export", bad, "-o", tmp_path / "old.onnx", cwd=tmp_path)
        p = nn("predict", bad, REPO / "datasets" / "xor.csv", cwd=tmp_path)
        assert_usage_error(e, str(bad))
        assert e.lines == p.lines  # the same refusal, word for word
        assert (tmp_path / "old.onnx").read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["altered", "incomplete", "old.onnx", "reshaped"]  # no temp file


def test_bad_options_and_outputs(xor_run, tmp_path):
    for dtype in ("float16", "double", "f8"):
        assert_usage_error(nn("export", xor_run, "-o", tmp_path / "x.onnx", "--dtype", dtype, cwd=tmp_path), f"--dtype {dtype}")
    assert_usage_error(nn("export", xor_run, "-o", tmp_path / "no" / "x.onnx", cwd=tmp_path), "-o", "No such file")
    assert_usage_error(nn("export", xor_run, "-o", tmp_path, cwd=tmp_path), "is a directory")
    assert_usage_error(nn("export", xor_run, "-o", "-", cwd=tmp_path), "-o")
    assert list(tmp_path.iterdir()) == []


def test_an_activation_without_an_onnx_form_is_refused(tmp_path, monkeypatch):
    """An activation registered at run time (nncli's extension point) has no ONNX node: one line."""
    from nncli.activations import ACTIVATIONS, Activation

    def softsign(z, out):
        np.divide(z, 1 + np.abs(z), out)
        return out

    def d_softsign(z, a, out):
        np.divide(1.0, (1 + np.abs(z)) ** 2, out)
        return out

    monkeypatch.setitem(ACTIVATIONS, "softsign", Activation("softsign", softsign, d_softsign))
    run = train("configs/xor.yaml", tmp_path / "runs", "train.epochs=2", "model.activation=softsign")
    assert_usage_error(nn("export", run, "-o", tmp_path / "x.onnx", cwd=tmp_path), "'softsign'", "ONNX")
    assert not (tmp_path / "x.onnx").exists()


def test_without_onnx_one_line_names_the_extra(xor_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    assert_usage_error(nn("export", xor_run, "-o", tmp_path / "x.onnx", cwd=tmp_path), "pip install 'nncli[onnx]'")
    assert not (tmp_path / "x.onnx").exists()


def test_importing_nncli_does_not_import_onnx():
    code = "import sys, nncli, nncli.cli, nncli.onnx_export; print('onnx' in sys.modules, 'onnxruntime' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=REPO)
    assert r.returncode == 0 and r.stdout.split() == ["False", "False"], r.stderr
