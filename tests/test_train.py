"""nncli.train: the Trainer driven as a library (arrays, a model, registry objects and
FitOptions; no Config), evaluate(), early stopping, checkpoints inside an epoch, and the
one-BLAS-call finiteness check _all_finite (moved from test_fast_paths.py).

References: a step computed by hand from model.loss_and_grads, plain numpy forward passes
and textbook losses, and np.isfinite.
"""

from __future__ import annotations

import math
import warnings

import json

import numpy as np
import pytest

from helpers import NO_PLOTS, nn, setup_workdir, stop_after_steps
from nncli.data import Split
from nncli.losses import LOSSES
from nncli.model import MLP
from nncli.optim import OPTIMIZERS
from nncli.tasks import TASKS
from nncli.trainer import EarlyStopping, FitOptions, Trainer, _all_finite, evaluate

XOR_X = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def make_trainer(X, Y, loss_name, optimizer, lr, options, sizes, hidden=("tanh",), output=None, seed=0,
                 val=None, dtype="float64", **hyper):
    """Everything a Trainer needs, from the registries; the one generator as nncli uses it
    (initial weights first, then the shuffles)."""
    loss = LOSSES[loss_name]
    rng = np.random.default_rng(seed)
    model = MLP.initialise(sizes, list(hidden), output or loss.default_output, rng, "xavier", dtype)
    opt = OPTIMIZERS[optimizer]([model.flat], lr, **hyper)
    train = Split("train", X.astype(dtype), Y.astype(dtype))
    val = None if val is None else Split("val", val[0].astype(dtype), val[1].astype(dtype))
    return Trainer(model, loss, opt, TASKS[loss.task], train, val, rng, options)


def run(trainer) -> list:
    return list(trainer.epochs())


def blobs(n, seed, k=3, noise=1.0):
    """k Gaussian blobs in 2-d with one-hot labels (noisy enough that validation loss turns)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, size=n)
    centres = np.array([[np.cos(2 * np.pi * c / k), np.sin(2 * np.pi * c / k)] for c in range(k)]) * 1.5
    X = centres[codes] + rng.normal(scale=noise, size=(n, 2))
    return X, np.eye(k)[codes]


# ----------------------------------------------------------------------------- training without a Config


def test_trainer_without_config_learns_xor():
    tr = make_trainer(XOR_X, XOR_Y, "bce", "sgd", 0.5, FitOptions(epochs=2000, batch_size=4), [2, 4, 1])
    records = run(tr)
    assert tr.result.status == "completed" and tr.result.epochs_run == 2000
    assert [r.epoch for r in records] == list(range(1, 2001))
    assert records[-1].metric == 1.0
    loss, acc = evaluate(tr.model, tr.train, tr.loss, tr.task)
    assert acc == 1.0 and loss < 0.05 < records[0].loss
    np.testing.assert_array_equal(TASKS["binary"].predicted_codes(tr.model.predict(XOR_X)), [0, 1, 1, 0])


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_trainer_loss_decreases_with_every_optimizer(optimizer):
    X, Y = blobs(60, seed=1, noise=0.4)
    lr = {"sgd": 0.5, "momentum": 0.1, "adam": 0.02}[optimizer]
    tr = make_trainer(X, Y, "cross_entropy", optimizer, lr, FitOptions(epochs=30, batch_size=8), [2, 6, 3], seed=2)
    records = run(tr)
    assert records[-1].loss < 0.5 * records[0].loss
    assert records[-1].metric > 0.9


def test_trainer_plus_one_sgd_step_is_w_minus_lr_grad():
    """One full-batch epoch = one step: W(t+1) = W(t) - eta dE/dW(t), dE/dW from loss_and_grads."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(10, 3))
    Y = rng.normal(size=(10, 2))
    eta, l2 = 0.3, 0.05
    tr = make_trainer(X, Y, "mse", "sgd", eta, FitOptions(epochs=1, batch_size="full", l2=l2), [3, 4, 2], seed=4)
    ref = MLP([W.copy() for W in tr.model.W], [b.copy() for b in tr.model.b], tr.model.hidden, tr.model.output)
    E, grads = ref.loss_and_grads(X, Y, LOSSES["mse"], l2)
    want = [p - eta * g for (_, p), g in zip(ref.params(), grads)]
    (rec,) = run(tr)
    for (name, p), w in zip(tr.model.params(), want):
        np.testing.assert_allclose(p, w, rtol=1e-14, atol=1e-16, err_msg=name)
    # the epoch's loss is that of the batch before its update (without the l2 term)
    assert math.isclose(rec.loss, ref.objective(X, Y, LOSSES["mse"]), rel_tol=1e-14)
    assert math.isclose(rec.loss + 0.5 * l2 * sum(float(np.sum(W * W)) for W in ref.W), E, rel_tol=1e-14)


def test_trainer_minibatches_without_shuffle_are_consecutive_sgd_steps():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(7, 2))
    Y = (rng.random((7, 1)) < 0.5).astype(float)
    tr = make_trainer(X, Y, "bce", "sgd", 0.2, FitOptions(epochs=2, batch_size=3, shuffle=False), [2, 3, 1], seed=6)
    ref = MLP([W.copy() for W in tr.model.W], [b.copy() for b in tr.model.b], tr.model.hidden, tr.model.output)
    run(tr)
    for _ in range(2):
        for s in (slice(0, 3), slice(3, 6), slice(6, 7)):  # the last batch is short
            _, grads = ref.loss_and_grads(X[s], Y[s], LOSSES["bce"])
            for (_, p), g in zip(ref.params(), grads):
                p -= 0.2 * g
    np.testing.assert_allclose(tr.model.flat, ref.flat, rtol=1e-13, atol=1e-15)


# ----------------------------------------------------------------------------- evaluate


def _plain_forward(model, X):
    a = X
    for W, b, name in zip(model.W, model.b, model.hidden + [model.output]):
        z = a @ W.T + b
        if name == "tanh":
            a = np.tanh(z)
        elif name == "sigmoid":
            a = 1 / (1 + np.exp(-z))
        elif name == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        else:
            assert name == "identity"
            a = z
    return a


@pytest.mark.parametrize("loss_name", ["bce", "cross_entropy", "mse"])
@pytest.mark.parametrize("chunk", [4096, 7])
def test_evaluate_equals_a_plain_computation(loss_name, chunk):
    rng = np.random.default_rng(7)
    n = 23
    X = rng.normal(size=(n, 3))
    k = {"bce": 1, "cross_entropy": 4, "mse": 2}[loss_name]
    if loss_name == "bce":
        Y = (rng.random((n, 1)) < 0.5).astype(float)
    elif loss_name == "cross_entropy":
        Y = np.eye(k)[rng.integers(0, k, size=n)]
    else:
        Y = rng.normal(size=(n, k))
    model = MLP.initialise([3, 5, k], ["tanh"], LOSSES[loss_name].default_output, rng, "xavier", "float64")
    A = _plain_forward(model, X)
    if loss_name == "bce":
        want_loss = float(np.mean(-Y * np.log(A) - (1 - Y) * np.log(1 - A)))
        want_metric = float(np.mean((A[:, 0] >= 0.5) == (Y[:, 0] == 1)))
    elif loss_name == "cross_entropy":
        want_loss = float(np.mean(-np.sum(Y * np.log(A), axis=1)))
        want_metric = float(np.mean(A.argmax(1) == Y.argmax(1)))
    else:
        want_loss = float(np.mean(0.5 * np.sum((A - Y) ** 2, axis=1)))
        r2 = 1 - np.sum((Y - A) ** 2, axis=0) / np.sum((Y - Y.mean(axis=0)) ** 2, axis=0)
        want_metric = float(np.mean(r2))
    loss, metric = evaluate(model, Split("x", X, Y), LOSSES[loss_name], TASKS[LOSSES[loss_name].task], chunk=chunk)
    assert math.isclose(loss, want_loss, rel_tol=1e-12)
    assert math.isclose(metric, want_metric, rel_tol=1e-12, abs_tol=1e-15)


# ----------------------------------------------------------------------------- early stopping


def test_early_stopping_restores_the_best_weights():
    X, Y = blobs(80, seed=11, noise=1.2)
    Xv, Yv = blobs(40, seed=12, noise=1.2)
    patience = 3
    opts = FitOptions(epochs=300, batch_size=8, early_stopping=EarlyStopping(patience=patience, min_delta=0.0))
    tr = make_trainer(X, Y, "cross_entropy", "adam", 0.05, opts, [2, 32, 3], seed=13, val=(Xv, Yv))
    weights, val_losses = {}, {}
    for rec in tr.epochs():
        weights[rec.epoch] = tr.model.flat.copy()  # the weights the record describes
        val_losses[rec.epoch] = rec.val_loss
        want_val = evaluate(tr.model, tr.val, tr.loss, tr.task)
        assert rec.val_loss == want_val[0] and rec.val_metric == want_val[1]
    # the rule, replayed: a new best needs val_loss < best - min_delta
    best_epoch, best, wait, stopped = None, math.inf, 0, None
    for e in sorted(val_losses):
        if val_losses[e] < best:
            best, best_epoch, wait = val_losses[e], e, 0
        else:
            wait += 1
            if wait >= patience:
                stopped = e
                break
    assert stopped is not None, "test setup: early stopping must happen"
    assert tr.result.stopped_early is True
    assert tr.result.epochs_run == stopped == best_epoch + patience == max(weights)
    assert tr.result.best_epoch == best_epoch
    assert tr.result.status == "completed"
    np.testing.assert_array_equal(tr.model.flat, weights[best_epoch])
    assert not np.array_equal(tr.model.flat, weights[stopped])
    assert evaluate(tr.model, tr.val, tr.loss, tr.task)[0] == val_losses[best_epoch]


def test_early_stopping_min_delta_counts_small_gains_as_none():
    X, Y = blobs(80, seed=11, noise=1.2)
    Xv, Yv = blobs(40, seed=12, noise=1.2)
    runs = {}
    for min_delta in (0.0, 0.05):
        opts = FitOptions(epochs=300, batch_size=8, early_stopping=EarlyStopping(patience=3, min_delta=min_delta))
        tr = make_trainer(X, Y, "cross_entropy", "adam", 0.05, opts, [2, 32, 3], seed=13, val=(Xv, Yv))
        run(tr)
        runs[min_delta] = tr.result
    assert runs[0.05].epochs_run < runs[0.0].epochs_run
    assert runs[0.05].stopped_early


def test_without_early_stopping_the_last_weights_are_kept():
    X, Y = blobs(40, seed=14)
    tr = make_trainer(X, Y, "cross_entropy", "sgd", 0.1, FitOptions(epochs=5, batch_size=8), [2, 4, 3], seed=15,
                      val=blobs(20, seed=16))
    last = None
    for _ in tr.epochs():
        last = tr.model.flat.copy()
    np.testing.assert_array_equal(tr.model.flat, last)
    assert tr.result.best_epoch is None and not tr.result.stopped_early


def test_fit_options_from_a_config_section():
    from nncli.config import load_config
    from helpers import XOR_YAML

    cfg = load_config(XOR_YAML, ["train.l2=0.01", "train.shuffle=false", "data.val_split=0.25",
                                 "train.early_stopping={patience: 4, min_delta: 0.001}"])
    o = FitOptions.from_config(cfg.train)
    assert (o.epochs, o.batch_size, o.shuffle, o.l2) == (2000, 4, False, 0.01)
    assert o.early_stopping == EarlyStopping(4, 0.001)
    assert FitOptions.from_config(load_config(XOR_YAML).train).early_stopping is None


# ----------------------------------------------------------------------------- interrupt and continue


RESUME = {
    # name: (loss, optimizer, lr, extra options, stop after these steps)
    "sgd": ("cross_entropy", "sgd", 0.3, {}, 7),
    "momentum": ("cross_entropy", "momentum", 0.1, {}, 13),
    "adam": ("cross_entropy", "adam", 0.05, {}, 11),
    "adam-l2-val-early-stopping": ("cross_entropy", "adam", 0.05, {"l2": 0.01, "early_stopping": EarlyStopping(2)}, 12),
    "momentum-regression": ("mse", "momentum", 0.02, {}, 12),
    "bce-float32": ("bce", "adam", 0.05, {}, 9),
}


@pytest.mark.parametrize("case", list(RESUME))
def test_interrupt_inside_an_epoch_and_continue_in_a_fresh_trainer_is_bit_for_bit(case, tmp_path):
    loss_name, optimizer, lr, extra, stop_at = RESUME[case]
    X, Y = blobs(23, seed=20)  # 23 rows in batches of 5: the last batch has 3
    if loss_name == "mse":
        Y = X @ np.array([[1.0], [-2.0]]) + 0.1
    elif loss_name == "bce":
        Y = Y[:, :1]
    val = blobs(10, seed=21) if "early_stopping" in extra else None
    if val is not None and loss_name == "bce":
        val = (val[0], val[1][:, :1])
    dtype = "float32" if "float32" in case else "float64"
    k = Y.shape[1]
    opts = FitOptions(epochs=6, batch_size=5, shuffle=True, **extra)

    def fresh(seed=2):
        return make_trainer(X, Y, loss_name, optimizer, lr, opts, [2, 6, k], seed=seed, val=val, dtype=dtype)

    ref = fresh()
    ref_records = run(ref)
    assert ref.result.status == "completed"

    first = fresh()
    stop_after_steps(first, stop_at)
    run(first)
    assert first.result.status == "interrupted"
    assert "nncli train --resume" in first.result.message
    state = first.state()
    meta = state["meta"]
    assert first._pos > 0, "test setup: the stop must fall inside an epoch"
    np.savez(tmp_path / "checkpoint.npz", **state)  # as a checkpoint file stores it
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as z:
        loaded = {key: z[key] for key in z.files}
    assert str(loaded["meta"]) == str(meta)

    second = fresh(seed=999)  # other initial weights and generator: load_state must replace both
    assert "history" not in json.loads(meta.item()), "the history is metrics.csv's, not the checkpoint's"
    second.load_state(loaded, history=list(first.result.history))
    rest = run(second)
    assert second.result.status == "completed"
    records = second.result.history
    assert [r.epoch for r in records] == [r.epoch for r in ref_records]
    assert len(rest) == len(ref_records) - len(first.result.history)
    for a, b in zip(records, ref.result.history):
        assert (a.loss, a.metric, a.val_loss, a.val_metric) == (b.loss, b.metric, b.val_loss, b.val_metric)
    assert second.model.flat.tobytes() == ref.model.flat.tobytes()
    assert second.result.best_epoch == ref.result.best_epoch
    for key, v in ref.optimizer.state().items():
        assert np.array_equal(second.optimizer.state()[key], v), key


def test_stop_requested_at_an_epoch_end_interrupts_between_epochs():
    X, Y = blobs(20, seed=22)
    tr = make_trainer(X, Y, "cross_entropy", "sgd", 0.1, FitOptions(epochs=5, batch_size=20), [2, 4, 3], seed=23)
    for rec in tr.epochs():
        if rec.epoch == 2:
            tr.stop_requested = True
    assert tr.result.status == "interrupted" and tr.result.epochs_run == 2
    assert tr._pos == 0


# ----------------------------------------------------------------------------- divergence


def test_a_non_finite_loss_stops_with_the_last_finite_weights():
    X = np.array([[1.0, 2.0], [3.0, -1.0], [-2.0, 0.5], [0.5, 0.5]]) * 100
    Y = np.array([[1.0], [-1.0], [2.0], [0.0]]) * 1e3
    tr = make_trainer(X, Y, "mse", "sgd", 1e3, FitOptions(epochs=50, batch_size="full"), [2, 8, 1], seed=24,
                      hidden=("identity",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning escapes the trainer
        run(tr)
    assert tr.result.status == "diverged"
    assert "training diverged" in tr.result.message
    assert np.isfinite(tr.model.flat).all()


def test_divergence_to_inf_weights_prints_no_numpy_warning(tmp_path):
    """A run whose weights overflow stops with status diverged and one clean message."""
    work = setup_workdir(tmp_path)
    r = nn("train", "configs/xor.yaml", "--set", "train.lr=1e39", "--set", "train.batch_size=full",
           *NO_PLOTS, "-q", "--runs-dir", "runs", cwd=work)
    assert r.rc == 1, r.show()
    assert "diverged" in r.err
    assert "RuntimeWarning" not in r.err and "Traceback" not in r.err, r.err
    assert not r.tb


# ----------------------------------------------------------------------------- _all_finite


def _special_cases(dtype):
    big = np.finfo(dtype).max
    rng = np.random.default_rng(40)
    base = rng.normal(size=37).astype(dtype)
    cases = {"plain": base}
    for name, v in (("+inf", np.inf), ("-inf", -np.inf), ("nan", np.nan)):
        x = base.copy()
        x[11] = v
        cases[name] = x
    x = base.copy()
    x[::3] = 3e38 if dtype == np.float32 else 1e308
    x[1::3] = -big
    cases["huge_finite"] = x
    cases["all_max"] = np.full(100, big, dtype)
    cases["tiny_subnormal"] = np.full(9, np.finfo(dtype).smallest_subnormal, dtype)
    cases["empty"] = np.zeros(0, dtype)
    cases["one_nan"] = np.array([np.nan], dtype)
    cases["inf_and_-inf"] = np.array([1, np.inf, 2, -np.inf], dtype)
    return cases


NO_DOT_WARNING = pytest.mark.filterwarnings("ignore:invalid value encountered in dot:RuntimeWarning")


@NO_DOT_WARNING
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["plain", "+inf", "-inf", "nan", "huge_finite", "all_max", "tiny_subnormal",
                                  "empty", "one_nan", "inf_and_-inf"])
def test_all_finite_equals_isfinite(dtype, case):
    x = _special_cases(dtype)[case]
    want = bool(np.isfinite(x).all())
    assert want is (case in ("plain", "huge_finite", "all_max", "tiny_subnormal", "empty"))
    assert _all_finite(x, np.zeros_like(x)) is want


@NO_DOT_WARNING
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_every_position_and_length(dtype):
    # BLAS kernels unroll by 4..32 elements: a bad value in the tail or body must both count
    rng = np.random.default_rng(41)
    for n in list(range(1, 70)) + [1000, 20011]:
        x = rng.normal(size=n).astype(dtype)
        zeros = np.zeros_like(x)
        assert _all_finite(x, zeros) is True
        positions = range(n) if n < 70 else [0, n // 2, n - 1]
        for i in positions:
            for v in (np.inf, -np.inf, np.nan):
                old = x[i]
                x[i] = v
                assert _all_finite(x, zeros) is False, (n, i, v)
                x[i] = old


def test_all_finite_warns_like_any_inf_times_zero_so_callers_use_errstate():
    """_all_finite's inf * 0 raises numpy's invalid flag; under errstate it is silent."""
    x = np.array([1.0, np.inf, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(invalid="ignore"):
            assert _all_finite(x, np.zeros_like(x)) is False

