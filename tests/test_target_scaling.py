"""data.standardize_target (issue 13): regression targets z-scored with the training split's
statistics, everything the user sees in the targets' own units.

Independent checks: scikit-learn's ``TransformedTargetRegressor(transformer=StandardScaler())``
(the scaler is fitted on the same training rows; its regressor is the saved network, computed
here from model.npz alone), ``sklearn.metrics`` on the predictions ``nncli predict`` wrote, and
hypothesis-drawn target tables against ``StandardScaler``.

Classification losses ignore the key (their targets are labels): a classifier trains to the
same bits with it on or off. A bounded or one-sided output activation (sigmoid, tanh, relu)
ignores it too, since z-scores would not fit its range.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

pytest.importorskip("sklearn", reason="the independent checks need scikit-learn (pip install -e '.[bench]')")

from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.preprocessing import StandardScaler

from helpers import (unseal, NO_PLOTS, assert_same_arrays, config_dict, my_forward, nn, npz_arrays, one_run_dir, read_text_csv,
                     summary, write_config, write_rows, write_yaml)
from nncli.config import config_from_dict
from nncli.job import divergence_hint
from nncli.preprocess import Preprocessor
from nncli.tasks import TASKS

# ---------------------------------------------------------------------- data


def diamonds_rows(n: int, seed: int) -> list[dict]:
    """A diamonds-like table: carat, cut (text), depth; price from about 300 to 19,000."""
    rng = np.random.default_rng(seed)
    cuts = {"Fair": 0.8, "Good": 0.9, "Ideal": 1.1}
    rows = []
    for _ in range(n):
        carat = float(rng.uniform(0.2, 2.6))
        cut = ["Fair", "Good", "Ideal"][int(rng.integers(3))]
        depth = float(rng.normal(61.5, 1.2))
        price = 300 + 3900 * cuts[cut] * carat ** 1.6 + rng.normal(0, 150)
        rows.append({"carat": f"{carat:.3f}", "cut": cut, "depth": f"{depth:.2f}", "price": f"{max(price, 300):.0f}"})
    return rows


def two_target_rows(n: int, seed: int) -> list[dict]:
    """Two targets on very different scales: y_big in the thousands, y_small in the thousandths."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        x1, x2 = rng.uniform(-2, 2, size=2)
        rows.append({"x1": f"{x1:.4f}", "x2": f"{x2:.4f}",
                     "y_big": f"{5000 + 1500 * x1 - 700 * x2 + rng.normal(0, 30):.2f}",
                     "y_small": f"{0.004 + 0.002 * np.tanh(x2) + rng.normal(0, 1e-5):.6f}"})
    return rows


DIAMOND_COLS = ["carat", "cut", "depth", "price"]


def diamonds_config(path: Path, name: str, standardize_target: bool = True) -> Path:
    """12 relu units, plain sgd (lr 0.01, batches of 16, 60 epochs), a 25% test split."""
    cfg = config_dict(train_csv="diamonds.csv", target="price", loss="mse", name=name, seed=3, layers=("auto", 12, "auto"),
                      data_extra={"test_split": 0.25, "standardize_target": standardize_target},
                      optimizer="sgd", lr=0.01, epochs=60, batch_size=16)
    cfg["model"]["activation"] = "relu"
    return write_yaml(path, cfg)


@pytest.fixture(scope="module")
def D(tmp_path_factory) -> dict:
    """diamonds.csv (400 rows), new.csv (60 unseen rows) and runs: sgd with and without target
    scaling, and a two-target run."""
    wd = tmp_path_factory.mktemp("target_scaling")
    write_rows(wd / "diamonds.csv", DIAMOND_COLS, diamonds_rows(400, 1))
    write_rows(wd / "new.csv", DIAMOND_COLS, diamonds_rows(60, 2))
    write_rows(wd / "two.csv", ["x1", "x2", "y_big", "y_small"], two_target_rows(300, 3))
    diamonds_config(wd / "scaled.yaml", "scaled")
    diamonds_config(wd / "raw.yaml", "raw", standardize_target=False)
    write_config(wd / "two.yaml", train_csv="two.csv", target=["y_big", "y_small"], loss="mse", name="two", seed=1,
                 layers=("auto", 16, "auto"), data_extra={"test_split": 0.2},
                 optimizer="adam", lr=0.01, epochs=150, batch_size=16)
    runs, res = {}, {}
    for name in ("scaled", "raw", "two"):
        r = nn("train", f"{name}.yaml", "-q", *NO_PLOTS, cwd=wd)
        res[name] = r
        if name != "raw":
            assert r.rc == 0, r.show()
        runs[name] = one_run_dir(r, wd) if r.text.strip() else None
    return {"dir": wd, "runs": runs, "res": res}


# ---------------------------------------------------------------------- the scaler itself


@settings(max_examples=60, deadline=None)
@given(Y=arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(1, 3)),
                elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)),
       frac=st.floats(0.3, 1.0))
def test_target_scaler_is_standard_scaler_on_the_training_rows(Y, frac):
    """y_mean, y_std, transform_targets and inverse_transform agree with StandardScaler fitted on
    the training rows only (population std; a constant column is divided by 1)."""
    n, k = Y.shape
    targets = [f"y{j}" for j in range(k)]
    df = pd.DataFrame({**{t: Y[:, j] for j, t in enumerate(targets)}, "x": np.arange(n, dtype=float)})
    rows = np.arange(max(1, int(frac * n)))
    prep = Preprocessor(["x"], {}, targets, TASKS["regression"], None, np.zeros(1), np.ones(1))
    prep.fit_target_scaler(df, "t.csv", rows)
    sc = StandardScaler().fit(Y[rows])
    np.testing.assert_allclose(prep.y_mean, sc.mean_, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(prep.y_std, sc.scale_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(prep.transform_targets(df, "t.csv"), sc.transform(Y), rtol=1e-7, atol=1e-7)
    A = np.linspace(-2, 2, n * k).reshape(n, k)
    np.testing.assert_allclose(prep.inverse_transform(A)[0], sc.inverse_transform(A), rtol=1e-9, atol=1e-6)
    # without statistics (an unscaled run) the targets and outputs are the values themselves
    plain = Preprocessor(["x"], {}, targets, TASKS["regression"], None, np.zeros(1), np.ones(1))
    np.testing.assert_array_equal(plain.transform_targets(df, "t.csv"), Y)
    np.testing.assert_array_equal(plain.inverse_transform(A)[0], A)


def test_a_target_too_large_to_standardise_is_one_error(tmp_path):
    write_rows(tmp_path / "big.csv", ["x", "y"], [[i, 1e308 if i < 3 else i] for i in range(10)])
    write_config(tmp_path / "c.yaml", train_csv="big.csv", target="y", loss="mse", data_extra={"standardize_target": True},
                 dtype="float64")
    r = nn("train", "c.yaml", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 2 and len(r.err_lines) == 1, r.show()
    assert "column 'y'" in r.err and "too large to standardise" in r.err, r.show()
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


# ---------------------------------------------------------------------- TransformedTargetRegressor semantics


class SavedNetwork(BaseEstimator, RegressorMixin):
    """The saved network as a scikit-learn regressor on the raw table's rows: ``fit`` keeps the
    (scaled) targets it is handed, ``predict`` is the network's output (my_forward)."""

    def __init__(self, run_dir=None):
        self.run_dir = run_dir

    def fit(self, X, y):
        self.fitted_on_ = np.asarray(y, np.float64)
        return self

    def predict(self, X):
        A = my_forward(Path(self.run_dir), X)
        return A[:, 0] if A.shape[1] == 1 else A


def _table(path: Path) -> pd.DataFrame:
    return read_text_csv(path.read_bytes())


def test_predictions_are_inverse_of_the_network_on_scaled_targets(D):
    """TransformedTargetRegressor(SavedNetwork, StandardScaler) fitted on the run's training rows:
    the targets it hands the regressor are the ones nncli trained on, and its predictions are
    exactly what `nncli predict` writes."""
    wd, run = D["dir"], D["runs"]["scaled"]
    df = _table(wd / "diamonds.csv")
    train_rows = np.load(run / "splits.npz")["train"]
    y = df["price"].astype(float).to_numpy()
    ttr = TransformedTargetRegressor(regressor=SavedNetwork(str(run)), transformer=StandardScaler())
    ttr.fit(df.iloc[train_rows], y[train_rows])

    # the statistics: the training split's mean and population std, in preprocess.json and model.npz
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    z = npz_arrays(run / "model.npz")
    sc = ttr.transformer_
    assert meta["target_scaling"]["price"]["mean"] == pytest.approx(float(sc.mean_[0]), rel=1e-12)
    assert meta["target_scaling"]["price"]["std"] == pytest.approx(float(sc.scale_[0]), rel=1e-12)
    np.testing.assert_array_equal(z["y_mean"], [meta["target_scaling"]["price"]["mean"]])
    np.testing.assert_array_equal(z["y_std"], [meta["target_scaling"]["price"]["std"]])
    # the scaled targets the network trained on
    from nncli.runs import load_run

    loaded = load_run(run)
    np.testing.assert_allclose(loaded.prep.transform_targets(df.iloc[train_rows], "t")[:, 0], ttr.regressor_.fitted_on_,
                               rtol=1e-9, atol=1e-12)

    r = nn("predict", run, "new.csv", cwd=wd)
    assert r.rc == 0, r.show()
    out = read_text_csv(r.out)
    new = _table(wd / "new.csv")
    np.testing.assert_allclose(out["prediction"].astype(float), ttr.predict(new), rtol=1e-6, atol=1e-6)
    # in the targets' own units: thousands, not z-scores
    assert out["prediction"].astype(float).max() > 3000


def test_eval_metrics_are_sklearn_metrics_in_original_units(D):
    wd, run = D["dir"], D["runs"]["scaled"]
    r_eval = nn("eval", run, "--data", "new.csv", "--json", *NO_PLOTS, cwd=wd)
    r_pred = nn("predict", run, "new.csv", cwd=wd)
    assert r_eval.rc == 0 and r_pred.rc == 0, r_eval.show() + r_pred.show()
    rep, out = json.loads(r_eval.text), read_text_csv(r_pred.out)
    # eval computes in the run's dtype (float32 here), predict in float64: agreement to ~1e-6
    y, yh = out["price"].astype(float).to_numpy(), out["prediction"].astype(float).to_numpy()
    m = rep["targets"]["price"]
    assert m["mse"] == pytest.approx(mean_squared_error(y, yh), rel=1e-5)
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, yh)), rel=1e-5)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, yh), rel=1e-5)
    assert m["r2"] == pytest.approx(r2_score(y, yh), rel=1e-5, abs=1e-9)
    # the eval loss: the quadratic cost 1/2 (y - y_hat)^2, mean over rows, in the original units
    assert rep["loss"] == pytest.approx(0.5 * mean_squared_error(y, yh), rel=1e-5)
    assert rep["loss_units"] == "original units"
    assert m["r2"] > 0.9, "target scaling lets plain sgd learn prices in the thousands"
    # the training loss (summary, metrics.csv) is on the standardized targets, and says so
    s = summary(run)
    assert s["loss_units"] == "standardized targets"
    assert s["metrics"]["loss"] < 1, "a z-scored loss is of order 1 at most"
    # eval's default data is the held-out test split; its R² matches the network's scaled-output R²
    r_test = nn("eval", run, "--json", *NO_PLOTS, cwd=wd)
    assert r_test.rc == 0, r_test.show()
    assert json.loads(r_test.text)["targets"]["price"]["r2"] > 0.9


def test_training_r2_is_unit_free(D):
    """The r2 column of metrics.csv (on scaled targets) is the R² of the original-unit predictions."""
    wd, run = D["dir"], D["runs"]["scaled"]
    df = _table(wd / "diamonds.csv")
    train_rows = np.load(run / "splits.npz")["train"]
    write_rows(wd / "train_rows.csv", DIAMOND_COLS, df.iloc[train_rows].to_dict("records"))
    r = nn("predict", run, "train_rows.csv", cwd=wd)
    assert r.rc == 0, r.show()
    out = read_text_csv(r.out)
    r2 = r2_score(out["price"].astype(float), out["prediction"].astype(float))
    assert summary(run)["metrics"]["r2"] == pytest.approx(r2, abs=1e-5)


def test_without_target_scaling_sgd_diverges_or_is_far_worse(D):
    """The issue's diamonds trial: price in the thousands with sgd. standardize_target: false
    diverges (exit 1, and the hint names data.standardize_target) or ends far worse."""
    wd, r = D["dir"], D["res"]["raw"]
    assert r.rc in (0, 1), r.show()
    raw_run = D["runs"]["raw"]
    s = summary(raw_run)
    assert s["loss_units"] == "original units"
    if r.rc == 1:  # with these settings: the loss became inf in epoch 1, as in the trial
        assert s["status"] == "diverged"
        assert "data.standardize_target: true" in r.err_lines[-1], r.show()
        assert "data.standardize: true" not in r.err_lines[-1], "the inputs are already standardised"
    else:
        e_raw = json.loads(nn("eval", raw_run, "--json", *NO_PLOTS, cwd=wd).text)
        e_scaled = json.loads(nn("eval", D["runs"]["scaled"], "--json", *NO_PLOTS, cwd=wd).text)
        assert e_raw["targets"]["price"]["r2"] < e_scaled["targets"]["price"]["r2"] - 0.3


def test_divergence_hint_names_only_settings_that_are_off(tmp_path):
    def cfg(loss="mse", output=None, **data):
        return config_from_dict(
            {"data": {"train": "x.csv", "target": "y", **data}, "model": {"layers": ["auto", "auto"],
             **({"output": output} if output else {})}, "loss": loss,
             "train": {"optimizer": "sgd", "lr": 0.1, "epochs": 1}}, "t.yaml")

    assert divergence_hint(cfg()) == "Try a lower learning rate (train.lr)"
    assert divergence_hint(cfg(standardize_target=False)) == (
        "Try a lower learning rate (train.lr) or standardised targets (data.standardize_target: true)")
    assert divergence_hint(cfg(standardize=False, standardize_target=False)) == (
        "Try a lower learning rate (train.lr) or standardised inputs (data.standardize: true) "
        "or standardised targets (data.standardize_target: true)")
    # not for a classifier, nor for an output whose range z-scores would not fit
    assert "standardize_target" not in divergence_hint(cfg("bce", standardize_target=False))
    assert "standardize_target" not in divergence_hint(cfg(output="sigmoid", standardize_target=False))


def test_a_diverging_scaled_run_does_not_suggest_scaling(tmp_path):
    write_rows(tmp_path / "d.csv", DIAMOND_COLS, diamonds_rows(80, 4))
    write_config(tmp_path / "c.yaml", train_csv="d.csv", target="price", loss="mse", lr=1e6, epochs=5)
    r = nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 1, r.show()
    assert "lower learning rate" in r.err_lines[-1] and "standardi" not in r.err_lines[-1], r.show()


# ---------------------------------------------------------------------- several targets


def test_multi_target_regression_scales_each_target(D):
    wd, run = D["dir"], D["runs"]["two"]
    df = _table(wd / "two.csv")
    train_rows = np.load(run / "splits.npz")["train"]
    Y = df[["y_big", "y_small"]].astype(float).to_numpy()
    sc = StandardScaler().fit(Y[train_rows])
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    for j, t in enumerate(["y_big", "y_small"]):
        assert meta["target_scaling"][t]["mean"] == pytest.approx(sc.mean_[j], rel=1e-12)
        assert meta["target_scaling"][t]["std"] == pytest.approx(sc.scale_[j], rel=1e-12)
    test_rows = np.load(run / "splits.npz")["test"]
    write_rows(wd / "two_test.csv", ["x1", "x2", "y_big", "y_small"], df.iloc[test_rows].to_dict("records"))
    r_pred = nn("predict", run, "two_test.csv", cwd=wd)
    r_eval = nn("eval", run, "--json", *NO_PLOTS, cwd=wd)
    assert r_pred.rc == 0 and r_eval.rc == 0, r_pred.show() + r_eval.show()
    out, rep = read_text_csv(r_pred.out), json.loads(r_eval.text)
    P = out[["prediction_y_big", "prediction_y_small"]].astype(float).to_numpy()
    ttr = TransformedTargetRegressor(regressor=SavedNetwork(str(run)), transformer=StandardScaler())
    ttr.fit(df.iloc[train_rows], Y[train_rows])
    np.testing.assert_allclose(P, ttr.predict(out), rtol=1e-6, atol=1e-9)
    for j, t in enumerate(["y_big", "y_small"]):
        y, yh = Y[test_rows, j], P[:, j]
        assert rep["targets"][t]["mse"] == pytest.approx(mean_squared_error(y, yh), rel=1e-5)
        assert rep["targets"][t]["mae"] == pytest.approx(mean_absolute_error(y, yh), rel=1e-5)
        assert rep["targets"][t]["r2"] == pytest.approx(r2_score(y, yh), rel=1e-5)
        # each target is learnt, the tiny one as well as the large one (it would be invisible unscaled)
        assert rep["targets"][t]["r2"] > 0.9, (t, rep["targets"][t])
    assert rep["loss"] == pytest.approx(0.5 * sum(mean_squared_error(Y[test_rows, j], P[:, j]) for j in range(2)), rel=1e-5)


# ---------------------------------------------------------------------- saving and loading


def test_preprocessor_round_trip_through_json_and_arrays(D):
    from nncli.runs import load_run

    prep = load_run(D["runs"]["two"]).prep
    meta = json.loads(json.dumps(prep.to_json()))
    arrays = {k: np.asarray(v) for k, v in prep.arrays().items()}
    back = Preprocessor.from_json(meta, arrays)
    np.testing.assert_array_equal(back.y_mean, prep.y_mean)
    np.testing.assert_array_equal(back.y_std, prep.y_std)
    # either file alone is enough; both must agree
    no_npz = {k: v for k, v in arrays.items() if k not in ("y_mean", "y_std")}
    np.testing.assert_array_equal(Preprocessor.from_json(meta, no_npz).y_std, prep.y_std)
    np.testing.assert_array_equal(Preprocessor.from_json({**meta, "target_scaling": None}, arrays).y_mean, prep.y_mean)
    with pytest.raises(ValueError, match="disagree"):
        Preprocessor.from_json(meta, {**arrays, "y_mean": arrays["y_mean"] + 1})
    with pytest.raises(ValueError):
        Preprocessor.from_json({**meta, "target_scaling": {"y_big": {"mean": 0, "std": 1}}}, no_npz)
    # no statistics anywhere: an unscaled run
    old = Preprocessor.from_json({k: v for k, v in meta.items() if k != "target_scaling"}, no_npz)
    assert old.y_mean is None and not old.scales_targets and old.loss_units == "original units"


def test_mismatched_saved_statistics_are_one_error(D, tmp_path):
    import shutil

    run = Path(shutil.copytree(D["runs"]["scaled"], tmp_path / "copy"))
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    meta["target_scaling"]["price"]["std"] *= 2
    (run / "preprocess.json").write_text(json.dumps(meta), encoding="utf-8")
    unseal(run)  # past the digest, to the check of the statistics
    r = nn("predict", run, D["dir"] / "new.csv", cwd=D["dir"])
    assert r.rc == 2 and len(r.err_lines) == 1 and "disagree" in r.err, r.show()


def _strip_new_fields(run: Path) -> None:
    """Make ``run`` look like one saved before target scaling existed."""
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    meta.pop("target_scaling", None)
    (run / "preprocess.json").write_text(json.dumps(meta), encoding="utf-8")
    if (run / "model.npz").exists():  # an interrupted run has none yet
        z = {k: v for k, v in npz_arrays(run / "model.npz").items() if k not in ("y_mean", "y_std")}
        np.savez(run / "model.npz", **z)
    cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    cfg["data"].pop("standardize_target", None)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    if (run / "summary.json").exists():
        unseal(run)  # runs of that time had no digests either


def test_an_old_run_without_target_scaling_predicts_as_before(tmp_path):
    """A run trained unscaled (as every run was before) and stripped of the new fields: predict
    and eval give the network's own outputs, exactly as before."""
    write_rows(tmp_path / "d.csv", DIAMOND_COLS, diamonds_rows(120, 5))
    write_rows(tmp_path / "new.csv", DIAMOND_COLS, diamonds_rows(30, 6))
    write_config(tmp_path / "c.yaml", train_csv="d.csv", target="price", loss="mse", optimizer="adam", lr=0.05,
                 epochs=20, data_extra={"standardize_target": False})
    run = one_run_dir(nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=tmp_path), tmp_path)
    before = [nn("predict", run, "new.csv", cwd=tmp_path), nn("eval", run, "--data", "new.csv", "--json", *NO_PLOTS, cwd=tmp_path)]
    _strip_new_fields(run)
    after = [nn("predict", run, "new.csv", cwd=tmp_path), nn("eval", run, "--data", "new.csv", "--json", *NO_PLOTS, cwd=tmp_path)]
    for r in before + after:
        assert r.rc == 0, r.show()
    assert after[0].out == before[0].out
    assert json.loads(after[1].text)["targets"] == json.loads(before[1].text)["targets"]
    assert json.loads(after[1].text)["loss"] == json.loads(before[1].text)["loss"]
    out = read_text_csv(after[0].out)
    np.testing.assert_allclose(out["prediction"].astype(float), my_forward(run, out)[:, 0], rtol=1e-6)


def test_gradcheck_and_plot_work_on_a_scaled_run(D):
    """gradcheck checks the training objective (on the scaled targets); plot labels the loss units."""
    wd, run = D["dir"], D["runs"]["scaled"]
    r = nn("gradcheck", run, cwd=wd)
    assert r.rc == 0, r.show()
    from nncli import plots
    from nncli.runs import load_run

    loaded = load_run(run)
    spec = plots.run_spec(run, "scaled", ([1, 2], [0.5, 0.4], None), loaded.model, loaded.prep)
    assert spec["loss"]["units"] == "standardized targets"


# ---------------------------------------------------------------------- where the key does not apply


def test_classification_ignores_standardize_target(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[f"{a:.3f}", f"{b:.3f}", "yes" if a + b > 0 else "no"] for a, b in rng.normal(size=(60, 2))]
    write_rows(tmp_path / "c.csv", ["a", "b", "label"], rows)
    runs = []
    for flag in (True, False):
        (tmp_path / str(flag)).mkdir()
        write_config(tmp_path / f"{flag}.yaml", train_csv="c.csv", target="label", loss="bce", epochs=5,
                     data_extra={"standardize_target": flag})
        r = nn("train", f"{flag}.yaml", "-q", *NO_PLOTS, "--runs-dir", str(flag), cwd=tmp_path)
        assert r.rc == 0, r.show()
        runs.append(one_run_dir(r, tmp_path))
    assert_same_arrays(npz_arrays(runs[0] / "model.npz"), npz_arrays(runs[1] / "model.npz"))
    for run in runs:
        assert "target_scaling" not in json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
        assert "loss_units" not in summary(run)
        assert "y_mean" not in npz_arrays(run / "model.npz")


def test_a_bounded_output_leaves_targets_unscaled(tmp_path):
    """mse with a sigmoid output: z-scores would not fit (0, 1), so the targets stay as they are."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, 50)
    write_rows(tmp_path / "s.csv", ["x", "y"], [[f"{a:.3f}", f"{1 / (1 + np.exp(-a)):.4f}"] for a in x])
    write_config(tmp_path / "c.yaml", train_csv="s.csv", target="y", loss="mse", output="sigmoid", epochs=3)
    run = one_run_dir(nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=tmp_path), tmp_path)
    assert json.loads((run / "preprocess.json").read_text(encoding="utf-8"))["target_scaling"] is None
    assert summary(run)["loss_units"] == "original units"
    r = nn("predict", run, "s.csv", cwd=tmp_path)
    out = read_text_csv(r.out)
    np.testing.assert_allclose(out["prediction"].astype(float), my_forward(run, out)[:, 0], rtol=1e-6)


def test_an_old_interrupted_run_resumes_on_unscaled_targets(tmp_path, monkeypatch):
    """A checkpoint saved before target scaling existed was trained on raw targets: --resume
    keeps training it on raw targets (the new default would change its objective mid-run)."""
    from nncli.config import load_config
    from nncli.job import TrainingJob

    write_rows(tmp_path / "d.csv", DIAMOND_COLS, diamonds_rows(60, 7))
    write_config(tmp_path / "c.yaml", train_csv="d.csv", target="price", loss="mse", optimizer="adam", lr=0.05, epochs=6,
                 data_extra={"standardize_target": False})
    monkeypatch.chdir(tmp_path)
    job = TrainingJob(load_config("c.yaml"), tmp_path / "runs")
    job.start()
    for rec in job.epochs():
        if rec.epoch == 2:
            break
    job.write_checkpoint()
    job.release()  # the job is abandoned here: its lock on the run would refuse the resume
    _strip_new_fields(job.run_dir)
    resumed = TrainingJob.resume(job.run_dir)
    assert not resumed.data.prep.scales_targets
    assert resumed.cfg.data.standardize_target is False
    # a new run's config.yaml names the key, so its resume keeps what it had
    job2 = TrainingJob(load_config("c.yaml", ["data.standardize_target=true"]), tmp_path / "runs")
    job2.start()
    job2.write_checkpoint()
    job2.release()
    assert TrainingJob.resume(job2.run_dir).data.prep.scales_targets


def test_statistics_come_from_the_training_rows_that_have_a_target(tmp_path):
    """Held-out rows and rows whose target is missing (dropped from training) do not enter y_mean/y_std."""
    rows = diamonds_rows(100, 8)
    for i in (3, 40, 77):
        rows[i]["price"] = ""
    write_rows(tmp_path / "d.csv", DIAMOND_COLS, rows)
    write_config(tmp_path / "c.yaml", train_csv="d.csv", target="price", loss="mse", epochs=1,
                 data_extra={"val_split": 0.2, "test_split": 0.2})
    r = nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = one_run_dir(r, tmp_path)
    train = np.load(run / "splits.npz")["train"]
    y = np.array([float(rows[i]["price"]) for i in train if rows[i]["price"] != ""])
    sc = StandardScaler().fit(y.reshape(-1, 1))
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["target_scaling"]["price"]["mean"] == pytest.approx(sc.mean_[0], rel=1e-12)
    assert meta["target_scaling"]["price"]["std"] == pytest.approx(sc.scale_[0], rel=1e-12)
