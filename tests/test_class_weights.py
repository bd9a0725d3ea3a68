"""Class weights (train.class_weight): the training loss is (1/n) sum_i w_{y_i} E_i.

- ``balanced`` equals scikit-learn's compute_class_weight("balanced") on the training split's
  labels; a mapping is taken label by label (labels as in the data);
- the weighted loss and every gradient equal torch's autograd of sum_i w_{y_i} E_i / n (E_i
  from torch's unreduced BCE-with-logits / cross-entropy) to 1e-12 in float64; and the
  relation to torch's own weighted losses: CrossEntropyLoss(weight=w) is the weighted MEAN
  sum_i w_{y_i} E_i / sum_i w_{y_i} (ours times n / sum_i w_{y_i}); BCEWithLogitsLoss(weight=
  per-row w) is ours exactly;
- as Keras: the training loss (metrics.csv ``loss``) is weighted, the validation loss, eval
  and the summary are not;
- the weights are saved in preprocess.json; ``nncli gradcheck`` (config and trained run)
  weights E with them and passes, and fails a backprop that leaves them out;
- SIGINT-free library stops inside an epoch resume bit for bit;
- bad settings: one line naming the key, exit 2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

try:  # the reference of the torch test below (the bench extra); the other tests need no torch
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install -e '.[bench]')")
from sklearn.utils.class_weight import compute_class_weight

from helpers import NO_PLOTS, config_dict, nn, random_mlp, strict_json, write_regression_csv, write_rows, write_yaml
from nncli.config import load_config
from nncli.errors import ConfigError
from nncli.gradcheck import gradcheck
from nncli.job import TrainingJob, prepare
from nncli.losses import LOSSES, class_weights
from nncli.trainer import evaluate
from test_interrupts import stop_twice_and_resume
from test_new_optimizers import assert_identical_run


# ============================================================================= the weights


@pytest.mark.parametrize("k,seed", [(2, 0), (3, 1), (5, 2), (2, 3)])
def test_balanced_equals_scikit_learn(k, seed):
    rng = np.random.default_rng(seed)
    codes = rng.choice(k, size=97, p=np.arange(1, k + 1) / np.arange(1, k + 1).sum())
    Y = codes.reshape(-1, 1).astype(np.float32) if k == 2 else np.eye(k)[codes]
    ours = class_weights("balanced", [f"c{i}" for i in range(k)], Y)
    expect = compute_class_weight("balanced", classes=np.arange(k), y=codes)
    np.testing.assert_array_equal(ours, expect)


def test_a_mapping_is_taken_label_by_label():
    Y = np.eye(3)[[0, 1, 2, 2]]
    assert class_weights({"b": 2.0, "a": 1.0, "c": 0.5}, ["a", "b", "c"], Y) == [1.0, 2.0, 0.5]
    assert class_weights(None, ["a", "b"], Y[:, :1]) is None
    with pytest.raises(ConfigError, match=r"^train.class_weight.x: no class 'x'"):
        class_weights({"a": 1.0, "b": 1.0, "x": 1.0}, ["a", "b"], Y[:, :1])
    with pytest.raises(ConfigError, match=r"^train.class_weight: no weight for class 'b'"):
        class_weights({"a": 1.0}, ["a", "b"], Y[:, :1])
    with pytest.raises(ConfigError, match=r"^train.class_weight: balanced: class 'c' has no training rows"):
        class_weights("balanced", ["a", "b", "c"], np.eye(3)[[0, 1, 1]])
    with pytest.raises(ConfigError, match=r"^train.class_weight: class weights apply to classification"):
        class_weights("balanced", None, np.zeros((3, 1)))


# ============================================================================= loss and gradients against torch


def _data(loss_name, n, k, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, max(k, 2), n)
    Y = codes.reshape(-1, 1).astype(float) if loss_name == "bce" else np.eye(k)[codes]
    return rng.normal(size=(n, 4)), Y, codes


def _torch_weighted(model, X, codes, loss_name, w):
    """sum_i w_{y_i} E_i / n by autograd, E_i from torch's unreduced losses; and torch's own weighted forms."""
    Ws = [torch.tensor(W, requires_grad=True) for W in model.W]
    bs = [torch.tensor(b, requires_grad=True) for b in model.b]
    a = torch.tensor(X)
    for W, b in zip(Ws[:-1], bs[:-1]):
        a = torch.tanh(a @ W.T + b)
    z = a @ Ws[-1].T + bs[-1]
    t = torch.tensor(codes)
    wt = torch.tensor(w)
    if loss_name == "bce":
        Ei = torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], t.double(), reduction="none")
        torch_own = torch.nn.BCEWithLogitsLoss(weight=wt[t])(z[:, 0], t.double())
    else:
        Ei = torch.nn.functional.cross_entropy(z, t, reduction="none")
        torch_own = torch.nn.CrossEntropyLoss(weight=wt)(z, t)
    E = (wt[t] * Ei).sum() / len(codes)
    E.backward()
    return float(E.detach()), [g.grad.numpy() for pair in zip(Ws, bs) for g in pair], float(torch_own.detach()), float(wt[t].sum())


@needs_torch
@pytest.mark.parametrize("loss_name,output,k,w", [
    ("bce", "sigmoid", 1, [0.3, 2.5]),
    ("cross_entropy", "softmax", 3, [1.0, 4.0, 0.25]),
    ("cross_entropy", "softmax", 4, [2.0, 0.5, 1.5, 3.0]),
])
def test_weighted_loss_and_gradients_equal_torch(loss_name, output, k, w):
    model = random_mlp([4, 6, 5, k], ["tanh", "tanh"], output, "float64", seed=2)
    X, Y, codes = _data(loss_name, 13, k, seed=3)
    loss = LOSSES[loss_name].weighted(w)
    E, grads = model.loss_and_grads(X, Y, loss, 0.0)
    t_E, t_grads, torch_own, w_sum = _torch_weighted(model, X, codes, loss_name, np.asarray(w))
    assert E == pytest.approx(t_E, rel=1e-12)
    for (name, _), g, tg in zip(model.params(), grads, t_grads):
        np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-14, err_msg=name)
    n = len(codes)
    if loss_name == "cross_entropy":  # torch's weighted MEAN: divided by sum_i w_{y_i}, not by n
        assert torch_own == pytest.approx(E * n / w_sum, rel=1e-12)
        assert abs(torch_own - E) > 1e-3
    else:  # BCEWithLogitsLoss(weight=per-row w): a mean over n, as ours
        assert torch_own == pytest.approx(E, rel=1e-12)
    # the plain formula from y_hat (the form without logits) agrees with the logit form
    A = model.forward(X).copy()
    assert float(loss.row_weights(Y)[:, 0] @ loss.rows(Y, A)) / n == pytest.approx(E, rel=1e-10)
    # unit weights: the unweighted loss and gradients
    E1, g1 = model.loss_and_grads(X, Y, LOSSES[loss_name].weighted([1.0] * max(k, 2)), 0.0)
    E0, g0 = model.loss_and_grads(X, Y, LOSSES[loss_name], 0.0)
    assert E1 == pytest.approx(E0, rel=1e-13)
    for a, b in zip(g1, g0):
        np.testing.assert_array_equal(a, b)


def test_unweighted_strips_the_weights():
    loss = LOSSES["bce"].weighted([1.0, 3.0])
    assert loss.class_weight == (1.0, 3.0) and loss.unweighted == LOSSES["bce"] and LOSSES["bce"].unweighted is LOSSES["bce"]
    assert LOSSES["bce"].weighted(None) is LOSSES["bce"]
    with pytest.raises(ValueError):
        LOSSES["mse"].weighted([1.0, 2.0])


# ============================================================================= training runs


def _imbalanced_csv(path, n=80, seed=0, labels=("no", "yes", "maybe")):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    codes = np.where(X[:, 0] > 0.9, 1, 0)
    if len(labels) == 3:
        codes = np.where(X[:, 1] > 1.2, 2, codes)
    return write_rows(path, ["x1", "x2", "label"], [[repr(float(a)), repr(float(b)), labels[c]] for (a, b), c in zip(X, codes)])


def _cw_config(tmp_path, cw, name="cw", loss="cross_entropy", labels=("no", "yes", "maybe"), **kw):
    _imbalanced_csv(tmp_path / "data.csv", labels=labels)
    train = {"optimizer": "adam", "lr": 0.05, "epochs": 5, "batch_size": 9, **kw}
    cfg = config_dict(train_csv="data.csv", target="label", loss=loss, name=name, seed=3,
                      layers=("auto", 6, "auto"), **train)
    cfg["data"]["val_split"] = 0.25
    if cw is not None:
        cfg["train"]["class_weight"] = cw
    return write_yaml(tmp_path / f"{name}.yaml", cfg)


def test_balanced_run_saves_scikit_learns_weights_of_the_training_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(_cw_config(tmp_path, "balanced"))
    job = TrainingJob(cfg, tmp_path / "runs")
    import pandas as pd

    labels = pd.read_csv(tmp_path / "data.csv", dtype=str)["label"].to_numpy()[job.data.rows["train"]]
    classes = job.data.prep.classes
    expect = compute_class_weight("balanced", classes=np.array(classes), y=labels)
    np.testing.assert_array_equal(job.data.prep.class_weight, expect)
    assert job.trainer.loss.class_weight == tuple(expect)
    job.start()
    for _ in job.epochs():
        pass
    job.finish(plots=False)
    saved = json.loads((job.run_dir / "preprocess.json").read_text(encoding="utf-8"))["class_weight"]
    assert saved == dict(zip(classes, expect))
    # gradcheck on the run uses the saved weights, and passes
    r = nn("gradcheck", job.run_dir, "--json", cwd=tmp_path)
    rep = strict_json(r.text)
    assert r.rc == 0 and rep["passed"] and rep["class_weight"] == list(expect), r.show()


def test_the_training_loss_is_weighted_and_the_validation_loss_is_not(tmp_path, monkeypatch):
    """Full-batch sgd, one epoch: metrics.csv's loss is the weighted E at the initial weights, the
    validation loss the unweighted E at the final ones (Keras: class_weight is for training only)."""
    monkeypatch.chdir(tmp_path)
    path = _cw_config(tmp_path, {"no": 0.5, "yes": 3.0, "maybe": 7.0}, optimizer="sgd", lr=0.5, epochs=1,
                      batch_size="full")
    data, model, _, cfg = prepare(load_config(path))
    X, Y = data.train.X.astype(np.float64), data.train.Y.astype(np.float64)
    m64 = model.astype(np.float64)
    A = m64.forward(X).copy()
    w = np.array([{"no": 0.5, "yes": 3.0, "maybe": 7.0}[c] for c in data.prep.classes])
    E_i = -(Y * np.log(A)).sum(1)
    weighted0 = float((Y @ w) @ E_i / len(Y))
    job = TrainingJob(load_config(path), tmp_path / "runs")
    job.start()
    (rec,) = list(job.epochs())
    s = job.finish(plots=False)
    assert rec.loss == pytest.approx(weighted0, rel=1e-6)
    assert abs(rec.loss - float(E_i.mean())) > 1e-2  # not the unweighted one
    val = evaluate(job.model, job.data.val, LOSSES["cross_entropy"], job.cfg.task)[0]
    assert rec.val_loss == val
    assert s["val_metrics"]["loss"] == val
    assert s["metrics"]["loss"] == evaluate(job.model, job.data.train, LOSSES["cross_entropy"], job.cfg.task)[0]


def test_weights_change_training_and_gradcheck_passes_on_the_config(tmp_path):
    plain = _cw_config(tmp_path, None, name="plain")
    weighted = _cw_config(tmp_path, {"no": 1.0, "yes": 5.0, "maybe": 2.0}, name="weighted")
    for p in (plain, weighted):
        r = nn("train", p.name, *NO_PLOTS, "-q", cwd=tmp_path)
        assert r.rc == 0, r.show()
    a, b = (next(r for r in (tmp_path / "runs").iterdir() if f"-{n}-" in r.name) for n in ("plain", "weighted"))
    assert (a / "model.npz").read_bytes() != (b / "model.npz").read_bytes()
    assert "class_weight" not in json.loads((a / "preprocess.json").read_text(encoding="utf-8"))
    r = nn("gradcheck", weighted.name, "--json", cwd=tmp_path)
    rep = strict_json(r.text)
    assert r.rc == 0 and rep["passed"] and rep["class_weight"] == [2.0, 1.0, 5.0], r.show()  # classes: maybe, no, yes
    assert any("class weights" in n for n in rep["notes"])
    r = nn("gradcheck", "plain.yaml", "--json", cwd=tmp_path)
    assert strict_json(r.text)["class_weight"] is None


def test_gradcheck_fails_a_backprop_without_the_weights():
    model = random_mlp([4, 5, 3], ["tanh"], "softmax", "float64", seed=1)
    X, Y, _ = _data("cross_entropy", 8, 3, seed=2)

    def unweighted(m, X, Y, loss, l2):
        return m.loss_and_grads(X, Y, loss.unweighted, l2)[1]

    assert gradcheck(model, X, Y, "cross_entropy", class_weight=[1.0, 4.0, 0.5]).passed
    assert not gradcheck(model, X, Y, "cross_entropy", class_weight=[1.0, 4.0, 0.5], grad_fn=unweighted).passed


def test_a_stop_inside_an_epoch_resumed_twice_is_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _cw_config(tmp_path, "balanced", loss="bce", labels=("no", "yes"), epochs=6, batch_size=5)
    run, ref = stop_twice_and_resume(path, tmp_path)
    assert_identical_run(run, ref)


# ============================================================================= refusals


@pytest.mark.parametrize("cw,needle", [
    ({"no": 1.0, "yes": 2.0, "perhaps": 1.0, "maybe": 1.0}, "train.class_weight.perhaps: no class 'perhaps' in the training target"),
    ({"no": 1.0, "yes": 2.0}, "train.class_weight: no weight for class 'maybe'"),
    ({"no": 0, "yes": 2.0, "maybe": 1.0}, "train.class_weight.no: 0 is not a weight: give a positive number"),
    ({"no": -1.5, "yes": 2.0, "maybe": 1.0}, "train.class_weight.no: -1.5 is not a weight"),
    ("balance", "train.class_weight: 'balance' is neither balanced nor a mapping"),
    ([1, 2, 3], "train.class_weight: [1, 2, 3] is neither balanced nor a mapping"),
])
def test_bad_class_weights_are_one_line_naming_the_key(tmp_path, cw, needle):
    path = _cw_config(tmp_path, cw)
    r = nn("train", path.name, *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 2 and len(r.err_lines) == 1 and needle in r.err_lines[0], r.show()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("loss", ["mse", None])  # named, or inferred from the numeric target
def test_class_weights_are_refused_for_a_regression(tmp_path, loss):
    write_regression_csv(tmp_path / "reg.csv")
    cfg = config_dict(train_csv="reg.csv", target="y", loss=loss or "mse", layers=("auto", 4, "auto"))
    if loss is None:
        del cfg["loss"]
    cfg["train"]["class_weight"] = "balanced"
    write_yaml(tmp_path / "cfg.yaml", cfg)
    r = nn("train", "cfg.yaml", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 2 and len(r.err_lines) == 1, r.show()
    assert "train.class_weight: class weights apply to classification" in r.err_lines[0], r.show()
