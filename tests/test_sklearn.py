"""nncli.sklearn: NNClassifier and NNRegressor as scikit-learn estimators.

scikit-learn's own estimator checks (every one of them, on four configurations), the
estimators inside Pipeline, GridSearchCV, cross_val_score and clone, what they learn next to
scikit-learn's MLPClassifier, and that they are a window on ``nncli train``'s core: the same
CSV, settings and seed give the same W_l, b_l, losses and predictions as a run.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
import yaml

pytest.importorskip("sklearn", minversion="1.8")  # parametrize_with_checks(xfail_strict=...) came with 1.8

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris, make_moons  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from helpers import REPO, cli_env, nn, npz_arrays, one_run_dir, summary, write_rows, write_yaml  # noqa: E402
from nncli.sklearn import NNClassifier, NNRegressor  # noqa: E402

# Checks of scikit-learn's suite that these estimators are known to fail, with the reason
# (the README lists them). Every check runs; one listed here must fail (xfail_strict), so the
# list cannot go stale.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}

CHECKED = [
    NNClassifier(),  # nncli's defaults: one hidden layer ("auto"), relu, adam, lr 0.001, 200 epochs
    NNRegressor(),
    # other paths of the core: two hidden layers, dropout, momentum, float64, class weights,
    # early stopping (on the training loss; the regressor: on a held-out val_split), l2, a schedule, clipping
    NNClassifier((8, 8), activation="tanh", optimizer="momentum", lr=0.05, epochs=20, dropout=0.1,
                 early_stopping=True, monitor="loss", patience=3, batch_size=8, class_weight="balanced",
                 dtype="float64", seed=3),
    NNRegressor((8,), activation="tanh", optimizer="rmsprop", lr=0.01, epochs=20, early_stopping=True, l2=1e-3,
                schedule="cosine", clip_norm=5.0, seed=2),
]


@parametrize_with_checks(CHECKED, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS, xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # check_array_api_input (NumPy namespace) runs only with SciPy's array API switch set; without
    # it scikit-learn skips that check, and every check must run here
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


# ---------------------------------------------------------------------- the same core as `nncli train`


def _table(path, n=90, seed=0, classes=None):
    """A CSV of three features x1..x3 (four decimals) and y: a nonlinear value, or (``classes``)
    labels by thirds of it; returns the path."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 3))
    v = np.sin(X[:, 0]) * 3 + X[:, 1] ** 2 - X[:, 2] + rng.normal(0, 0.1, n)
    if classes is None:
        y = [f"{x:.4f}" for x in v]
    else:
        cut = np.quantile(v, [1 / 3, 2 / 3])
        y = [classes[int(np.searchsorted(cut, x))] for x in v]
    rows = [[f"{a:.4f}", f"{b:.4f}", f"{c:.4f}", t] for (a, b, c), t in zip(X, y)]
    return write_rows(path, ["x1", "x2", "x3", "y"], rows)


def _nncli_run(tmp_path, cfg: dict):
    write_yaml(tmp_path / "cfg.yaml", cfg)
    r = nn("train", "cfg.yaml", "--no-plots", "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    return one_run_dir(r, tmp_path)


def _metrics(run) -> dict:
    import pandas as pd

    return pd.read_csv(run / "metrics.csv")


def test_regressor_learns_what_nncli_train_learns(tmp_path):
    import pandas as pd

    _table(tmp_path / "data.csv")
    run = _nncli_run(tmp_path, {
        "name": "reg", "seed": 7, "data": {"train": "data.csv", "target": "y"},
        "model": {"layers": ["auto", 8, "auto"], "activation": "tanh"}, "loss": "mse",
        "train": {"optimizer": "adam", "lr": 0.01, "epochs": 15, "batch_size": 16}})
    df = pd.read_csv(tmp_path / "data.csv")  # read by pandas, not by nncli
    X, y = df[["x1", "x2", "x3"]], df["y"]
    est = NNRegressor((8,), activation="tanh", lr=0.01, epochs=15, batch_size=16, seed=7).fit(X, y)

    saved = npz_arrays(run / "model.npz")
    assert est.layers_ == [3, 8, 1]
    for l in (1, 2):  # coefs_ is scikit-learn's layout (n_{l-1}, n_l): W_l transposed
        np.testing.assert_array_equal(est.coefs_[l - 1].T, saved[f"W{l}"])
        np.testing.assert_array_equal(est.intercepts_[l - 1], saved[f"b{l}"])
    np.testing.assert_array_equal(est.x_mean_, saved["x_mean"])
    np.testing.assert_array_equal(est.y_std_, saved["y_std"])
    np.testing.assert_allclose(est.loss_curve_, _metrics(run)["loss"], rtol=1e-12)
    assert est.n_iter_ == summary(run)["epochs_run"] == 15

    r = nn("predict", run, "data.csv", "-o", "pred.csv", cwd=tmp_path)
    assert r.rc == 0, r.show()
    np.testing.assert_allclose(est.predict(X), pd.read_csv(tmp_path / "pred.csv")["prediction"], rtol=1e-12)
    assert est.score(X, y) == pytest.approx(summary(run)["metrics"]["r2"], rel=1e-6)


def test_classifier_with_early_stopping_learns_what_nncli_train_learns(tmp_path):
    """Three classes (softmax cross-entropy), a stratified validation split drawn from the seed,
    early stopping that keeps the best epoch: the same rows, epochs and weights as the run."""
    import pandas as pd

    _table(tmp_path / "data.csv", n=120, seed=1, classes="abc")
    run = _nncli_run(tmp_path, {
        "name": "cls", "seed": 5, "data": {"train": "data.csv", "target": "y", "val_split": 0.2},
        "model": {"layers": ["auto", 6, "auto"], "activation": "relu"}, "loss": "cross_entropy",
        "train": {"optimizer": "sgd", "lr": 0.3, "epochs": 60, "batch_size": 8,
                  "early_stopping": {"patience": 4}}})
    df = pd.read_csv(tmp_path / "data.csv")
    X, y = df[["x1", "x2", "x3"]], df["y"]
    est = NNClassifier((6,), optimizer="sgd", lr=0.3, epochs=60, batch_size=8, early_stopping=True, patience=4,
                       val_split=0.2, seed=5).fit(X, y)

    s, m = summary(run), _metrics(run)
    assert s["stopped_early"] and est.n_iter_ == s["epochs_run"] < 60  # the test is about early stopping
    assert est.best_epoch_ == s["best_epoch"]
    np.testing.assert_allclose(est.validation_scores_, m["val_accuracy"], rtol=1e-12)
    saved = npz_arrays(run / "model.npz")
    for l in (1, 2):
        np.testing.assert_array_equal(est.coefs_[l - 1].T, saved[f"W{l}"])
        np.testing.assert_array_equal(est.intercepts_[l - 1], saved[f"b{l}"])
    assert list(est.classes_) == list(saved["classes"]) == ["a", "b", "c"]

    r = nn("predict", run, "data.csv", "-o", "pred.csv", cwd=tmp_path)
    assert r.rc == 0, r.show()
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert list(est.predict(X)) == list(pred["prediction"])
    np.testing.assert_allclose(est.predict_proba(X), pred[["proba_a", "proba_b", "proba_c"]], rtol=1e-12, atol=1e-15)


def test_auto_hidden_layer_is_nncli_inits(tmp_path):
    """hidden_layer_sizes='auto' is the one hidden layer `nncli init` writes for the table."""
    import pandas as pd

    df = pd.read_csv(REPO / "datasets" / "wine.csv")
    target = "class" if "class" in df.columns else df.columns[-1]
    r = nn("init", REPO / "datasets" / "wine.csv", "-t", target, cwd=tmp_path)
    assert r.rc == 0, r.show()
    layers = yaml.safe_load(r.text)["model"]["layers"]
    est = NNClassifier(epochs=1).fit(df.drop(columns=[target]), df[target])
    assert len(layers) == 3 and est.layers_[1] == layers[1]
    assert est.layers_ == [df.shape[1] - 1, layers[1], len(set(df[target]))]


# ---------------------------------------------------------------------- scikit-learn's tools


def test_learns_as_well_as_sklearns_mlp():
    """The same architecture and optimizer settings as MLPClassifier (on standardised inputs,
    which nncli makes itself): test accuracy at least MLPClassifier's less 0.05, and 0.9."""
    for X, y in (load_iris(return_X_y=True), make_moons(300, noise=0.2, random_state=0)):
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
        ours = NNClassifier((16,), activation="tanh", lr=0.01, epochs=150, batch_size=16).fit(Xtr, ytr)
        theirs = make_pipeline(StandardScaler(), MLPClassifier((16,), activation="tanh", learning_rate_init=0.01,
                                                               max_iter=150, batch_size=16, random_state=0))
        with _no_warning_check():
            theirs.fit(Xtr, ytr)
        acc, ref = ours.score(Xte, yte), theirs.score(Xte, yte)
        assert acc >= 0.9 and acc >= ref - 0.05, (acc, ref)


@contextlib.contextmanager
def _no_warning_check():
    """MLPClassifier may warn that it did not converge in max_iter epochs: not what is tested."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_grid_search_over_a_pipeline_agrees_with_cross_val_score():
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()), ("nn", NNClassifier(epochs=25, batch_size=16))])
    grid = {"nn__lr": [0.001, 0.03], "nn__hidden_layer_sizes": [(4,), (16,)]}
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, grid, cv=cv).fit(X, y)

    means = search.cv_results_["mean_test_score"]
    for params, mean in zip(search.cv_results_["params"], means):  # each point recomputed independently
        assert cross_val_score(clone(pipe).set_params(**params), X, y, cv=cv).mean() == pytest.approx(mean, abs=1e-12)
    assert len(set(np.round(means, 12))) > 1  # the parameters reach the estimator
    best = search.best_estimator_
    assert best.named_steps["nn"].lr == search.best_params_["nn__lr"]
    refit = clone(pipe).set_params(**search.best_params_).fit(X, y)
    for a, b in zip(best.named_steps["nn"].coefs_, refit.named_steps["nn"].coefs_):
        np.testing.assert_array_equal(a, b)
    assert search.best_score_ >= 0.85


def test_cross_val_score_of_a_regressor():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(150, 2))
    y = np.sin(X[:, 0]) * 10 + X[:, 1] * 5 + 100  # not standardised: NNRegressor scales y itself
    scores = cross_val_score(NNRegressor((16,), activation="tanh", lr=0.01, epochs=100), X, y, cv=3)
    assert scores.min() > 0.9, scores


def test_clone_keeps_parameters_not_the_fit():
    X, y = load_iris(return_X_y=True)
    est = NNClassifier((5, 3), activation="tanh", lr=0.02, epochs=5, seed=4).fit(X, y)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "coefs_") and not hasattr(twin, "classes_")
    with pytest.raises(NotFittedError):
        twin.predict(X)
    twin.fit(X, y)  # the same seed: the same network
    for a, b in zip(twin.coefs_ + twin.intercepts_, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(a, b)
    other = clone(est).set_params(seed=5).fit(X, y)
    assert not np.array_equal(other.coefs_[0], est.coefs_[0])


# ---------------------------------------------------------------------- the estimator's own behaviour


def test_coefs_are_sklearn_layout_and_give_predict_proba():
    """coefs_[l-1] = W_l^T with MLPClassifier's shapes; a forward pass written here from the
    fitted attributes alone gives predict_proba."""
    X, y = load_iris(return_X_y=True)
    est = NNClassifier((7, 5), activation="tanh", lr=0.01, epochs=10).fit(X, y)
    ref = MLPClassifier((7, 5), max_iter=1)
    with _no_warning_check():
        ref.fit(X, y)
    assert [c.shape for c in est.coefs_] == [c.shape for c in ref.coefs_] == [(4, 7), (7, 5), (5, 3)]
    assert [b.shape for b in est.intercepts_] == [b.shape for b in ref.intercepts_]
    np.testing.assert_array_equal(est.model_.W[0], est.coefs_[0].T)  # nncli's W_l: (n_l, n_{l-1})
    a = (X - est.x_mean_) / est.x_std_
    for W, b in zip(est.coefs_[:-1], est.intercepts_[:-1]):
        a = np.tanh(a @ W.astype(np.float64) + b)
    z = a @ est.coefs_[-1].astype(np.float64) + est.intercepts_[-1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(est.predict_proba(X), p / p.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)
    assert est.out_activation_ == "softmax" and est.loss_ == "cross_entropy"


def test_two_classes_are_one_sigmoid_unit_with_text_labels_and_dataframes():
    import pandas as pd

    X, y = make_moons(120, noise=0.1, random_state=1)
    df = pd.DataFrame(X, columns=["left", "right"])
    labels = np.where(y == 1, "yes", "no")
    est = NNClassifier((8,), lr=0.02, epochs=80).fit(df, labels)
    assert list(est.feature_names_in_) == ["left", "right"]
    assert list(est.classes_) == ["no", "yes"] and est.loss_ == "bce" and est.layers_[-1] == 1
    p = est.predict_proba(df)
    np.testing.assert_array_equal(est.predict(df), np.where(p[:, 1] >= 0.5, "yes", "no"))
    assert est.score(df, labels) > 0.85


def test_multi_output_regression():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 3))
    Y = np.column_stack([X[:, 0] * 2 + X[:, 1], np.tanh(X[:, 2]) * 50 - 20])
    est = NNRegressor((16,), activation="tanh", lr=0.01, epochs=80).fit(X, Y)
    assert est.predict(X).shape == (120, 2) and est.layers_[-1] == 2
    assert est.y_mean_ == pytest.approx(Y.mean(axis=0)) and est.y_std_ == pytest.approx(Y.std(axis=0))
    assert est.score(X, Y) > 0.9


def test_fit_and_predict_write_and_print_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    X, y = load_iris(return_X_y=True)
    NNClassifier(epochs=3).fit(X, y).predict_proba(X)
    NNRegressor(epochs=3, early_stopping=True).fit(X[:, :3], X[:, 3]).predict(X[:, :3])
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("params, needles", [
    ({"lr": 0}, ["NNClassifier: lr:", "greater than 0"]),
    ({"optimizer": "adm"}, ["optimizer", "did you mean 'adam'"]),
    ({"activation": "softmax"}, ["activation", "output activation only"]),
    ({"hidden_layer_sizes": (4, 0)}, ["hidden_layer_sizes", "at least 1"]),
    ({"dropout": 1.5}, ["dropout:", "not a dropout rate"]),
    ({"batch_size": 0}, ["batch_size:", "at least 1"]),
    ({"early_stopping": True, "monitor": "val_r2"}, ["monitor:", "reports accuracy"]),
    ({"class_weight": {"setosa": 2.0}}, ["class_weight", "no class 'setosa'"]),
    ({"momentum": 1.5, "optimizer": "momentum"}, ["momentum"]),
])
def test_bad_parameters_are_one_value_error_naming_the_parameter(params, needles):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError) as e:
        NNClassifier(epochs=1, **params).fit(X, y)
    msg = str(e.value)
    assert "\n" not in msg and "train." not in msg and "model." not in msg, msg
    for n in needles:
        assert n in msg, msg


def test_predictions_depend_on_the_fit_not_on_parameters_set_after_it():
    X, y = load_iris(return_X_y=True)
    est = NNClassifier((4,), epochs=5).fit(X * 100, y)
    p = est.predict_proba(X * 100)
    est.set_params(standardize=False, hidden_layer_sizes=(9,), activation="tanh")
    np.testing.assert_array_equal(est.predict_proba(X * 100), p)


def test_class_weight_keys_are_the_labels_of_y():
    """class_weight={label: w} names the labels as y holds them: 1 and 1.0 are the same class;
    the weights change the fit, and "balanced" is nncli's (scikit-learn's) n / (k count_c)."""
    X, y = load_iris(return_X_y=True)
    X, y = X[20:], y[20:]  # unbalanced: 30, 50, 50 rows
    kw = dict(hidden_layer_sizes=(4,), epochs=3)
    ints = NNClassifier(class_weight={0: 2.0, 1: 1.0, 2: 0.5}, **kw).fit(X, y)
    floats = NNClassifier(class_weight={0.0: 2.0, 1.0: 1.0, 2.0: 0.5}, **kw).fit(X, y.astype(float))
    np.testing.assert_array_equal(ints.coefs_[0], floats.coefs_[0])
    assert not np.array_equal(ints.coefs_[0], NNClassifier(**kw).fit(X, y).coefs_[0])
    balanced = NNClassifier(class_weight="balanced", **kw).fit(X, y)
    w = len(y) / (3 * np.bincount(y))
    explicit = NNClassifier(class_weight=dict(enumerate(w)), **kw).fit(X, y)
    np.testing.assert_array_equal(balanced.coefs_[0], explicit.coefs_[0])


def test_divergence_keeps_the_last_finite_weights_and_warns():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2)) * 1e3
    y = X[:, 0] * 1e3
    with pytest.warns(ConvergenceWarning, match="training diverged"):
        est = NNRegressor((4,), optimizer="sgd", lr=1e3, epochs=20, standardize=False, standardize_target=False).fit(X, y)
    assert est.status_ == "diverged" and est.n_iter_ < 20
    assert all(np.isfinite(c).all() for c in est.coefs_)


def test_import_nncli_does_not_import_sklearn_and_a_missing_sklearn_is_one_clear_error():
    code = ("import sys, nncli; assert 'sklearn' not in sys.modules, 'import nncli imported sklearn'\n"
            "sys.modules['sklearn'] = None\n"  # as if scikit-learn were not installed
            "try:\n    import nncli.sklearn\nexcept ImportError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "nncli.sklearn needs scikit-learn: pip install 'nncli[sklearn]'"
