"""nncli.api: nncli.train / nncli.load_run / Run from Python, checked against the real CLI
(`nncli predict`, `nncli eval --json`, `nncli train --set`), against the network's outputs
recomputed from the saved files alone (helpers.my_forward), and docs/api.md as doctests."""

from __future__ import annotations

import csv
import doctest
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import (REPO, signal_when, assert_same_run, chdir, cli, cli_env, config_dict, my_forward, nn, only_run,
                     read_text_csv, write_regression_csv, write_rows, write_yaml)

import nncli
from nncli.errors import ConfigError, DataError, NncliError, RunError


# ---------------------------------------------------------------------- data: a classifier with categorical columns


def _shop_rows(n: int, seed: int) -> list[dict]:
    """x (0..10), w (around 100), a text category c in p/q/r, an integer category grade 1..3,
    and label low / mid / high from x and the grade."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        x, w, c, g = rng.uniform(0, 10), rng.normal(100, 20), "pqr"[int(rng.integers(3))], int(rng.integers(1, 4))
        s = x + 1.5 * (g - 2) + (1.0 if c == "p" else 0.0)
        rows.append({"x": f"{x:.4f}", "w": f"{w:.3f}", "c": c, "grade": str(g),
                     "label": "low" if s < 3.5 else "mid" if s < 7 else "high"})
    return rows


HEADER = ["x", "w", "c", "grade", "label"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """train.csv, test.csv, pred.csv (missing cells, an unseen category, no label), and one
    run trained by nncli.train (test_split rows held out; data.missing: impute;
    data.unknown_category: ignore; grade declared categorical)."""
    base = tmp_path_factory.mktemp("shop")
    write_rows(base / "train.csv", HEADER, _shop_rows(120, 1))
    test = _shop_rows(30, 2)
    test[3]["x"] = ""  # imputed
    test[5]["c"] = "NA"  # missing, imputed
    write_rows(base / "test.csv", HEADER, test)
    pred = [{k: v for k, v in r.items() if k != "label"} for r in _shop_rows(12, 3)]
    pred[1]["x"] = ""
    pred[2]["c"] = "NA"
    pred[4]["c"] = "s"  # unseen: all zeros, a warning
    write_rows(base / "pred.csv", HEADER[:-1], pred)
    cfg = config_dict(train_csv="train.csv", target="label", loss="cross_entropy", name="shop", seed=4,
                      layers=("auto", 6, "auto"), optimizer="adam", lr=0.05, epochs=25, batch_size=16,
                      data_extra={"categorical": ["grade"], "missing": "impute", "unknown_category": "ignore",
                                  "test_split": 0.25})
    write_yaml(base / "shop.yaml", cfg)
    with chdir(base):
        run = nncli.train("shop.yaml")
    assert run.status == "completed"
    return base


def _run(base: Path) -> Path:
    return only_run(base).relative_to(base)


def _cli_predict(base: Path, *args) -> tuple[pd.DataFrame, str]:
    r = nn("predict", _run(base), *args, cwd=base)
    assert r.rc == 0, r.show()
    return read_text_csv(r.out), r.err


def _assert_same_predictions(api: pd.DataFrame, cli_text: pd.DataFrame, new_cols: list[str]) -> None:
    """The new columns of the API's frame are the values nncli predict wrote: the same labels,
    the same floats (the CSV holds each float's shortest repr, which reads back exactly)."""
    assert list(api.columns[-len(new_cols):]) == new_cols
    assert len(api) == len(cli_text)
    for c in new_cols:
        if c == "prediction" and not pd.api.types.is_numeric_dtype(api[c]):  # a classifier's labels
            assert api[c].tolist() == cli_text[c].tolist(), c
        else:
            assert np.array_equal(api[c].to_numpy(np.float64), cli_text[c].astype(np.float64).to_numpy()), c


def test_predict_from_a_file_is_the_table_nncli_predict_writes(shop):
    with chdir(shop):
        run = nncli.load_run(_run(shop))
        out = run.predict("pred.csv")
    cli_out, err = _cli_predict(shop, "pred.csv")
    cols = ["prediction", "proba_high", "proba_low", "proba_mid"]
    assert list(out.columns) == HEADER[:-1] + cols == list(cli_out.columns)
    # every cell, written as nncli predict writes it, is the command's output byte for byte
    buf = io.StringIO()
    out.to_csv(buf, index=False, lineterminator="\n")
    assert buf.getvalue().encode("utf-8") == nn("predict", _run(shop), "pred.csv", cwd=shop).out
    _assert_same_predictions(out, cli_out, cols)
    # the unseen category: the command's warning line, here in run.warnings (nothing printed)
    assert run.warnings and all(w in err for w in run.warnings), (run.warnings, err)
    assert "category not seen in training" in run.warnings[0]
    assert run.classes == ["high", "low", "mid"]


def test_predict_runs_the_real_command_too(shop):
    """Against `python -m nncli predict` in its own process (not the in-process runner)."""
    r = cli("predict", _run(shop), "pred.csv", "--no-proba", cwd=shop)
    assert r.rc == 0, r.show()
    with chdir(shop):
        out = nncli.load_run(_run(shop)).predict("pred.csv", proba=False)
    buf = io.StringIO()
    out.to_csv(buf, index=False, lineterminator="\n")
    assert buf.getvalue().encode("utf-8") == r.out


def test_skip_invalid_and_parquet_inputs_are_the_commands(shop, tmp_path):
    text = (shop / "pred.csv").read_text(encoding="utf-8").splitlines()
    cells = text[3].split(",")
    cells[0] = "lots"  # text in the numeric column x: that row gets an error, the others predictions
    (tmp_path / "bad.csv").write_text("\n".join(text[:3] + [",".join(cells)] + text[4:]) + "\n", encoding="utf-8")
    with chdir(shop):
        run = nncli.load_run(_run(shop))
        out = run.predict(tmp_path / "bad.csv", skip_invalid=True)
        with pytest.raises(DataError, match=r"row 3 \(line 4\), column 'x': 'lots' is not a number"):
            run.predict(tmp_path / "bad.csv")
    cli_out, err = _cli_predict(shop, tmp_path / "bad.csv", "--skip-invalid")
    assert out.columns.tolist() == cli_out.columns.tolist() and out.columns[-1] == "error"
    assert out["error"].tolist() == cli_out["error"].tolist() and "'lots' is not a number" in out["error"][2]
    assert out["prediction"].isna().tolist() == [i == 2 for i in range(12)]
    assert any("1 of 12 rows could not be predicted" in w for w in run.warnings)
    pytest.importorskip("pyarrow")
    pd.read_csv(shop / "pred.csv").to_parquet(tmp_path / "pred.parquet", index=False)
    with chdir(shop):
        out = nncli.load_run(_run(shop)).predict(tmp_path / "pred.parquet")
    cli_out, _ = _cli_predict(shop, tmp_path / "pred.parquet")
    _assert_same_predictions(out, cli_out, ["prediction", "proba_high", "proba_low", "proba_mid"])
    assert out["grade"].dtype == np.int64  # Parquet keeps its types, as nncli predict -o x.parquet does


@pytest.mark.parametrize("variant", ["as_read", "all_text", "grade_float", "reindexed"])
def test_a_dataframe_is_read_as_the_csv_it_would_be_saved_as(shop, tmp_path, variant):
    """predict(df) appends to df exactly the columns `nncli predict` gives for the file
    df.to_csv(index=False): integer categories match the trained text ('1'), NaN is a missing
    cell, a float grade (2.0) is a category unseen in training, as it would be in the file."""
    df = pd.read_csv(shop / "pred.csv")  # pandas' own types: grade int64, x float64 with NaN, c with NaN
    assert df["grade"].dtype == np.int64 and df["x"].isna().sum() == 1 and df["c"].isna().sum() == 1
    if variant == "all_text":
        df = pd.read_csv(shop / "pred.csv", dtype=str, keep_default_na=False)
    elif variant == "grade_float":
        df["grade"] = df["grade"].astype(float)
    elif variant == "reindexed":
        df.index = [f"r{i}" for i in range(len(df))]
    df.to_csv(tmp_path / "saved.csv", index=False)
    with chdir(shop):
        run = nncli.load_run(_run(shop))
        out = run.predict(df)
    cli_out, err = _cli_predict(shop, tmp_path / "saved.csv")
    cols = ["prediction", "proba_high", "proba_low", "proba_mid"]
    _assert_same_predictions(out, cli_out, cols)
    pd.testing.assert_frame_equal(out[df.columns], df)  # the caller's own columns, types and index, untouched
    assert out.index.equals(df.index)
    n_unseen = 12 if variant == "grade_float" else 1
    assert f"{n_unseen} row" in " ".join(run.warnings)
    assert all(w.replace("DataFrame", str(tmp_path / "saved.csv")) in err for w in run.warnings), (run.warnings, err)


def test_predict_proba_is_the_networks_output_in_classes_order(shop):
    """Against the forward pass recomputed from the saved files alone (no nncli code)."""
    df = pd.read_csv(shop / "pred.csv", dtype=str, keep_default_na=False).iloc[[0, 3, 5, 6, 7]]  # rows with no gaps
    with chdir(shop):
        run = nncli.load_run(_run(shop))
        P = run.predict_proba(df)
    assert P.shape == (5, 3) and P.dtype == np.float64
    ref = my_forward(shop / _run(shop), df.reset_index(drop=True))  # softmax outputs, columns = the saved classes
    np.testing.assert_allclose(P, ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    with chdir(shop):
        labels = run.predict(df)["prediction"].tolist()
    assert labels == [run.classes[k] for k in P.argmax(axis=1)]


def _cli_eval(base: Path, *args) -> dict:
    r = nn("eval", _run(base), "--json", "--no-plots", *args, cwd=base)
    assert r.rc == 0, r.show()
    report = json.loads(r.out)
    report.pop("saved")
    return report


def _same_json(a: dict, b: dict) -> None:
    assert json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def test_evaluate_is_the_report_of_nncli_eval_json(shop):
    with chdir(shop):
        run = nncli.load_run(_run(shop))
        default, on_file = run.evaluate(), run.evaluate("test.csv")
        on_frame = run.evaluate(pd.read_csv("test.csv"))
    _same_json(default, _cli_eval(shop))  # the held-out test_split rows
    assert default["source"].startswith("data.test_split")
    cli_file = _cli_eval(shop, "--data", "test.csv")
    _same_json(on_file, cli_file)
    assert on_file["rows"] == 30 and 0 <= on_file["accuracy"] <= 1
    # a DataFrame: the same report but for the name of its source
    assert on_frame.pop("source") == "DataFrame"
    cli_file.pop("source")
    _same_json(on_frame, cli_file)
    # evaluate writes nothing into the run (nncli eval saves its report)
    files = {p.name: p.stat().st_mtime_ns for p in (shop / _run(shop)).iterdir()}
    with chdir(shop):
        run.evaluate("train.csv")
        run.evaluate()
    assert {p.name: p.stat().st_mtime_ns for p in (shop / _run(shop)).iterdir()} == files


def test_metrics_model_config_and_summary(shop):
    with chdir(shop):
        run = nncli.load_run(_run(shop))
    with open(shop / _run(shop) / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    m = run.metrics
    assert list(m.columns) == rows[0] == ["epoch", "loss", "accuracy"]
    assert m["epoch"].tolist() == list(range(1, 26))
    assert np.array_equal(m.to_numpy(np.float64), np.array(rows[1:], dtype=np.float64))
    # the lecture's W_l (n_l, n_{l-1}) and b_l, as saved in model.npz
    with np.load(shop / _run(shop) / "model.npz") as z:
        for l in (1, 2):
            assert np.array_equal(run.model.W[l - 1], z[f"W{l}"]) and np.array_equal(run.model.b[l - 1], z[f"b{l}"])
    assert run.model.W[0].shape[0] == 6 and run.model.W[1].shape == (3, 6)
    assert run.config.train.lr == 0.05 and run.config.model.layers[1] == 6
    assert run.summary == json.loads((shop / _run(shop) / "summary.json").read_text(encoding="utf-8"))
    assert run.path == _run(shop) and run.status == "completed"


# ---------------------------------------------------------------------- regression


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("reg")
    write_regression_csv(base / "reg.csv", n=60)
    write_regression_csv(base / "more.csv", n=15, seed=9)
    write_yaml(base / "reg.yaml", config_dict(train_csv="reg.csv", target="y", loss="mse", name="reg",
                                              output="identity", epochs=40, batch_size=8, lr=0.05,
                                              data_extra={"val_split": 0.2}))
    with chdir(base):
        run = nncli.train("reg.yaml")
    assert run.status == "completed"
    return base


def test_regression_predict_and_evaluate_equal_the_cli(reg):
    with chdir(reg):
        run = nncli.load_run(_run(reg))
        out_file, out_frame = run.predict("more.csv"), run.predict(pd.read_csv("more.csv"))
        report, on_frame = run.evaluate("more.csv"), run.evaluate(pd.read_csv("more.csv"))
    cli_out, _ = _cli_predict(reg, "more.csv")
    assert list(out_file.columns) == ["x", "y", "prediction"] == list(cli_out.columns)
    _assert_same_predictions(out_file, cli_out, ["prediction"])
    _assert_same_predictions(out_frame, cli_out, ["prediction"])
    assert out_frame["prediction"].dtype == np.float64
    cli_report = _cli_eval(reg, "--data", "more.csv")
    _same_json(report, cli_report)
    assert on_frame.pop("source") == "DataFrame"
    cli_report.pop("source")
    _same_json(on_frame, cli_report)
    # an independent check of the numbers: R² and MSE from the predictions
    y, p = pd.read_csv(reg / "more.csv")["y"].to_numpy(), out_file["prediction"].to_numpy(np.float64)
    t = report["targets"]["y"]
    assert t["mse"] == pytest.approx(np.mean((y - p) ** 2), rel=1e-5)
    assert t["r2"] == pytest.approx(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2), rel=1e-5)
    assert run.classes is None
    with pytest.raises(RunError, match="regression run .* has no class probabilities; use predict"):
        run.predict_proba(pd.read_csv(reg / "more.csv"))


# ---------------------------------------------------------------------- training


def test_train_is_the_job_nncli_train_runs(workdir):
    """A path with a dict of overrides, a path with --set strings, a dict config: the same run,
    bit for bit, as `nncli train --set`; a dict config writes nothing but the run directory."""
    r = nn("train", "configs/xor.yaml", "--no-plots", "-q", "--runs-dir", "cli", "--set", "train.epochs=150",
           "--set", "train.lr=0.3", cwd=workdir)
    assert r.rc == 0, r.show()
    ref = workdir / r.text.strip()
    import yaml

    raw = yaml.safe_load((workdir / "configs" / "xor.yaml").read_text(encoding="utf-8"))
    before = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))
    with chdir(workdir):
        a = nncli.train("configs/xor.yaml", {"train.epochs": 150, "train.lr": 0.3}, runs_dir="a")
        b = nncli.train(Path("configs/xor.yaml"), ["train.epochs=150", "train.lr=0.3"], runs_dir="b")
        c = nncli.train(raw, {"train.epochs": 150, "train.lr": 0.3}, runs_dir=Path("c"), name="from-dict")
        d = nncli.train(a.config, runs_dir="d", plots=True)  # a run's resolved config, trained again, with pictures
    for run in (a, b, c, d):
        assert_same_run(workdir / run.path, ref)
    assert "-xor-" in a.path.name and "-from-dict-" in c.path.name
    assert c.config.name == "from-dict" and raw["train"]["epochs"] == 2000  # the caller's dict is not changed
    after = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))
    new = [p for p in after if p not in before]
    assert all(p.split(os.sep)[0] in ("a", "b", "c", "d") for p in new), new
    assert [p for p in new if p.endswith(".png")] == [p for p in new if p.endswith(".png") and p.startswith("d")]
    assert (workdir / d.path / "loss.png").exists()  # plots=True draws; plots=False (the default) does not


def test_a_dict_config_without_a_name_is_named_run(workdir):
    import yaml

    raw = yaml.safe_load((workdir / "configs" / "xor.yaml").read_text(encoding="utf-8"))
    del raw["name"]
    with chdir(workdir):
        run = nncli.train(raw, {"train.epochs": 2})
    assert run.config.name == "run" and "-run-" in run.path.name and run.path.parent == Path("runs")


def test_warnings_are_in_run_warnings_and_nothing_is_printed(workdir):
    """A whole session in its own process (no pytest capture): train with a config the command
    warns about, predict with an unseen value, evaluate, load; stdout and stderr stay empty."""
    (workdir / "pred.csv").write_text("x1,x2\n0,1\n1,1\n", encoding="utf-8")
    script = textwrap.dedent("""
        import json, sys
        import nncli
        run = nncli.train("configs/xor.yaml", {"train.epochs": 30, "model.activation": "step"}, runs_dir="r")
        run.predict("pred.csv"); run.predict_proba("pred.csv"); run.evaluate(); run.metrics
        again = nncli.load_run(run.path)
        json.dump({"warnings": run.warnings, "status": again.status}, open("out.json", "w"))
    """)
    p = subprocess.run([sys.executable, "-c", script], cwd=workdir, env=cli_env(), capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout == b"" and p.stderr == b""
    out = json.loads((workdir / "out.json").read_text(encoding="utf-8"))
    assert out["status"] == "completed"
    assert any("model.activation: 'step' has derivative 0" in w for w in out["warnings"]), out
    # the command prints the same line as a warning
    r = nn("train", "configs/xor.yaml", "--no-plots", "--set", "train.epochs=30", "--set", "model.activation=step",
           cwd=workdir)
    assert r.rc == 0 and f"nncli: warning: {out['warnings'][0]}" in r.err.splitlines(), r.show()


def test_a_diverged_run_is_returned_with_its_status(tmp_path):
    write_regression_csv(tmp_path / "reg.csv")
    write_yaml(tmp_path / "reg.yaml", config_dict(train_csv="reg.csv", target="y", loss="mse", output="identity",
                                                  epochs=20, batch_size=8, lr=1e6))
    with chdir(tmp_path):
        run = nncli.train("reg.yaml")
    assert run.status == "diverged" and run.summary["epochs_run"] < 20
    assert "learning rate" in run.summary["message"]
    assert len(run.metrics) == run.summary["epochs_run"]
    r = nn("train", "reg.yaml", "--no-plots", "-q", "--runs-dir", "cli", cwd=tmp_path)
    assert r.rc == 1  # the command's exit status for the same run
    assert summary_of(tmp_path / r.text.strip())["epochs_run"] == run.summary["epochs_run"]


def summary_of(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text(encoding="utf-8"))


def test_ctrl_c_checkpoints_the_run_then_raises_keyboard_interrupt(workdir):
    """SIGINT while nncli.train trains: the step finishes, the run is checkpointed (status
    interrupted), KeyboardInterrupt reaches the caller, and Python's SIGINT handler is back."""
    script = textwrap.dedent("""
        import json, signal, nncli
        try:
            nncli.train("configs/xor.yaml", {"train.epochs": 10000000}, runs_dir="r")
            out = {"raised": None}
        except KeyboardInterrupt as e:
            out = {"raised": str(e)}
        out["handler_restored"] = signal.getsignal(signal.SIGINT) is signal.default_int_handler
        json.dump(out, open("out.json", "w"))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=workdir, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    r = signal_when(proc, lambda: (workdir / "r").is_dir() and any((d / "metrics.csv").exists() for d in (workdir / "r").iterdir()),
                    "training under way", timeout=60, settle=0.2)
    assert r.rc == 0 and r.out == b"" and r.err == "", r.show()
    out = json.loads((workdir / "out.json").read_text(encoding="utf-8"))
    (run,) = list((workdir / "r").iterdir())
    assert out["raised"] and "checkpoint saved" in out["raised"] and f"nncli train --resume r/{run.name}" in out["raised"]
    assert out["handler_restored"]
    s = summary_of(run)
    assert s["status"] == "interrupted" and 0 < s["epochs_run"] < 10000000
    assert (run / "checkpoint.npz").exists()


# ---------------------------------------------------------------------- errors


def test_errors_are_nncli_errors_and_write_nothing(workdir):
    import yaml

    raw = yaml.safe_load((workdir / "configs" / "xor.yaml").read_text(encoding="utf-8"))
    with chdir(workdir):
        with pytest.raises(ConfigError, match=r"^configs/xor.yaml: train.lrr: unknown key; did you mean 'lr'\?"):
            nncli.train("configs/xor.yaml", {"train.lrr": 0.1})
        with pytest.raises(ConfigError, match=r"^configs/xor.yaml: train.lrr: unknown key"):
            nncli.train("configs/xor.yaml", ["train.lrr=0.1"])
        bad = {**raw, "train": {**raw["train"], "lrr": 0.1}}
        with pytest.raises(ConfigError, match=r"^config: train.lrr: unknown key; did you mean 'lr'\?"):
            nncli.train(bad)
        with pytest.raises(ConfigError, match=r"^config: train.lr"):
            nncli.train(raw, {"train.lr": "fast"})
        with pytest.raises(ConfigError, match=r"overrides\['train.lr.epochs'\]: 'train.lr' is not a section"):
            nncli.train(raw, {"train.lr.epochs": 3})
        with pytest.raises(DataError, match="file not found"):
            nncli.train(raw, {"data.train": Path("nowhere.csv")})
        with pytest.raises(ConfigError, match="config file not found"):
            nncli.train("configs/nope.yaml")
        with pytest.raises(TypeError):
            nncli.train(raw, "train.lr=0.1")
        assert not (workdir / "runs").exists()  # nothing written by any of them
        run = nncli.train(raw, {"train.epochs": 3})
        with pytest.raises(DataError, match=r"^DataFrame: missing feature column 'x2'"):
            run.predict(pd.DataFrame({"x1": [0.0, 1.0]}))
        with pytest.raises(DataError, match=r"^DataFrame: missing column 'y'"):
            run.evaluate(pd.DataFrame({"x1": [0.0, 1.0], "x2": [1.0, 0.0]}))
        with pytest.raises(DataError, match=r"^nowhere.csv: file not found"):
            run.predict("nowhere.csv")
        with pytest.raises(DataError, match=r"^DataFrame: row 2 \(line 3\), column 'x1': 'many' is not a number"):
            run.predict(pd.DataFrame({"x1": ["0", "many"], "x2": [1, 0]}))
        with pytest.raises(DataError, match="already has column 'prediction'"):
            run.predict(run.predict("datasets/xor.csv"))
        with pytest.raises(RunError, match="no such run directory"):
            nncli.load_run("runs/nothing-here")
        (workdir / run.path / "summary.json").unlink()
        with pytest.raises(RunError, match="incomplete run"):
            nncli.load_run(run.path)
    assert issubclass(nncli.ConfigError, nncli.NncliError) and nncli.DataError is DataError
    assert issubclass(RunError, NncliError)


# ---------------------------------------------------------------------- import cost, names


def test_import_nncli_imports_no_numpy_pandas_or_matplotlib():
    code = ("import sys, json, nncli; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'pandas', 'matplotlib', 'pydantic', 'yaml'})))")
    p = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []


def test_nncli_train_stays_the_function_when_the_other_modules_are_imported():
    """nncli.train is the function (the training loop's module is nncli.trainer), whatever
    else was imported first."""
    code = ("import nncli.trainer, nncli.job, nncli.cli, nncli; from nncli.trainer import Trainer; import nncli.api; "
            "import sys; assert callable(nncli.train) and nncli.train is nncli.api.train, nncli.train; "
            "assert sys.modules['nncli.trainer'].Trainer is Trainer and 'nncli.train' not in sys.modules; "
            "from nncli import train, load_run, Run; assert train is nncli.api.train and Run is nncli.api.Run")
    p = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert nncli.train is nncli.api.train  # and in this process, where nncli.train was imported long ago


# ---------------------------------------------------------------------- docs/api.md


def test_docs_api_md_examples_run():
    with chdir(REPO):
        res = doctest.testfile(str(REPO / "docs" / "api.md"), module_relative=False,
                               optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, res
    assert res.attempted > 5, res
