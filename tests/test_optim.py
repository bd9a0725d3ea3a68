"""nncli.optim: the optimizers (LECTURE.md section 5) and their declared hyperparameters.

Each step against an update derived by hand on a tiny vector (the numbers written out in
the test) and against the formula evaluated in plain Python floats; the hyperparameter
declarations (TypeError for an undeclared name, ValueError out of range); the learning rate
read at every step (the schedule hook); state()/load_state(); and the bounded cache of
0-d constants (nncli.activations.const) under a changing learning rate.
PyTorch comparisons are in test_against_torch.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nncli.activations import const
from nncli.losses import LOSSES
from nncli.model import MLP
from nncli.optim import OPTIMIZERS, SGD, Adam, Hyper, Momentum, hyperparameters


def vec(*xs, dtype=np.float64):
    return np.array(xs, dtype=dtype)


# ----------------------------------------------------------------------------- the registry and declarations


def test_registry_names_optimizers():
    assert OPTIMIZERS["sgd"] is SGD and OPTIMIZERS["momentum"] is Momentum and OPTIMIZERS["adam"] is Adam
    for name, cls in OPTIMIZERS.items():
        assert cls.name == name


def test_declared_hyperparameters_and_defaults():
    assert SGD.hyperparameters == {}
    assert set(Momentum.hyperparameters) == {"momentum"}
    assert set(Adam.hyperparameters) == {"beta1", "beta2", "eps"}
    assert Momentum.hyperparameters["momentum"].default == 0.9
    assert (Adam.hyperparameters["beta1"].default, Adam.hyperparameters["beta2"].default,
            Adam.hyperparameters["eps"].default) == (0.9, 0.999, 1e-8)
    # the union over the registry: these are the train.<name> config keys
    assert set(hyperparameters()) == {"momentum", "beta1", "beta2", "eps",  # and issue 15's optimizers' keys:
                                      "alpha", "centered", "lr_decay", "initial_accumulator_value", "weight_decay"}
    opt = Adam([vec(1.0)], 0.1)
    assert (opt.beta1, opt.beta2, opt.eps, opt.lr) == (0.9, 0.999, 1e-8, 0.1)
    assert Momentum([vec(1.0)], 0.1).momentum == 0.9


def test_hyperparameters_union_is_read_at_call_time(monkeypatch):
    class Sign(SGD):
        name = "sign"
        hyperparameters = {"clip": Hyper(1.0, 0, low_open=True)}

    monkeypatch.setitem(OPTIMIZERS, "sign", Sign)
    assert "clip" in hyperparameters()
    monkeypatch.delitem(OPTIMIZERS, "sign")
    assert "clip" not in hyperparameters()


@pytest.mark.parametrize("name,bad", [("sgd", "momentum"), ("sgd", "beta1"), ("momentum", "beta1"),
                                      ("momentum", "eps"), ("adam", "momentum"), ("adam", "lr2")])
def test_undeclared_hyperparameter_is_a_type_error(name, bad):
    with pytest.raises(TypeError) as e:
        OPTIMIZERS[name]([vec(1.0, 2.0)], 0.1, **{bad: 0.5})
    assert repr(bad) in str(e.value) and repr(name) in str(e.value)


@pytest.mark.parametrize("name,key,value", [
    ("momentum", "momentum", 1.0), ("momentum", "momentum", -0.1), ("momentum", "momentum", 1.5),
    ("adam", "beta1", 1.0), ("adam", "beta1", -0.01), ("adam", "beta2", 1.0), ("adam", "beta2", -1.0),
    ("adam", "eps", 0.0), ("adam", "eps", -1e-8),
])
def test_out_of_range_hyperparameter_is_a_value_error(name, key, value):
    with pytest.raises(ValueError) as e:
        OPTIMIZERS[name]([vec(1.0, 2.0)], 0.1, **{key: value})
    assert key in str(e.value) and str(value) in str(e.value)


@pytest.mark.parametrize("name,key,value", [("momentum", "momentum", 0.0), ("momentum", "momentum", 0.999),
                                            ("adam", "beta1", 0.0), ("adam", "beta2", 0.0), ("adam", "eps", 1e-30)])
def test_in_range_edges_are_accepted(name, key, value):
    opt = OPTIMIZERS[name]([vec(1.0, 2.0)], 0.1, **{key: value})
    assert getattr(opt, key) == value


def test_hyper_interval_text():
    assert Hyper(0.9, 0, 1).interval() == "[0, 1)"
    assert Hyper(1e-8, 0, low_open=True).interval() == "(0, inf)"
    assert Hyper(1.0).interval() == "(-inf, inf)"
    assert Hyper(0.5, 0, 1, high_open=False).interval() == "[0, 1]"
    Hyper(0.5, 0, 1, high_open=False).check("x", 1.0)  # the closed end is allowed
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\) \(got 1.0\)"):
        Hyper(0.5, 0, 1).check("x", 1.0)


# ----------------------------------------------------------------------------- steps by hand


def test_sgd_step_by_hand():
    # W(t+1) = W(t) - eta dE/dW(t): [1, -2, 3] - 0.5 [0.5, -1, 0.25] = [0.75, -1.5, 2.875]
    p = vec(1.0, -2.0, 3.0)
    SGD([p], 0.5).step([vec(0.5, -1.0, 0.25)])
    np.testing.assert_array_equal(p, [0.75, -1.5, 2.875])


def test_momentum_three_steps_by_hand():
    # mu = 0.5, eta = 0.1, theta_0 = [1, -2]; g = [1, -2], [1, -2], [0, 0]
    # v1 = [1, -2]        theta_1 = [0.9, -1.8]
    # v2 = 0.5 v1 + g2 = [1.5, -3]    theta_2 = [0.75, -1.5]
    # v3 = 0.5 v2 + 0 = [0.75, -1.5]  theta_3 = [0.675, -1.35]  (it keeps moving without a gradient)
    p = vec(1.0, -2.0)
    opt = Momentum([p], 0.1, momentum=0.5)
    want = [[0.9, -1.8], [0.75, -1.5], [0.675, -1.35]]
    for g, w in zip([vec(1.0, -2.0), vec(1.0, -2.0), vec(0.0, 0.0)], want):
        opt.step([g])
        np.testing.assert_allclose(p, w, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(opt.v[0], [0.75, -1.5], rtol=1e-15)


def test_adam_three_steps_with_a_constant_gradient_by_hand():
    """With a constant g, m_t = (1 - b1^t) g and v_t = (1 - b2^t) g^2, so the bias-corrected
    m_hat = g and v_hat = g^2, and every step is eta g / (|g| + eps) = eta sign(g) (up to eps).
    Without the bias correction the first step would be eta (1 - b1) / sqrt(1 - b2) = 3.16 eta."""
    p = vec(1.0, -2.0, 3.0)
    g = vec(2.0, -0.5, 1e-3)
    eta, eps = 0.1, 1e-8
    opt = Adam([p], eta, eps=eps)
    for t in (1, 2, 3):
        opt.step([g])
        want = vec(1.0, -2.0, 3.0) - t * eta * g / (np.abs(g) + eps)
        np.testing.assert_allclose(p, want, rtol=1e-12)
        np.testing.assert_allclose(opt.m[0], (1 - 0.9**t) * g, rtol=1e-12)
        np.testing.assert_allclose(opt.v[0], (1 - 0.999**t) * g**2, rtol=1e-12)
    assert int(opt.t) == 3
    np.testing.assert_allclose(p, [0.7, -1.7, 2.7], rtol=0, atol=1e-5)  # eps / |g| = 1e-5 for the last one


def test_adam_three_steps_with_changing_gradients_in_python_floats():
    """One coordinate, g = 1, -1, 2, b1 = 0.5, b2 = 0.75, eps = 0.01, eta = 0.1, by hand:
    t=1: m = 0.5,   v = 0.25,    m_hat = 1,      v_hat = 1,       step = 0.1 * 1 / 1.01
    t=2: m = -0.25, v = 0.4375,  m_hat = -1/3,   v_hat = 1,       step = 0.1 * (-1/3) / 1.01
    t=3: m = 0.875, v = 1.328125 = 85/64, m_hat = 0.875 / 0.875 = 1,
         v_hat = (85/64) / (1 - 0.75^3 = 37/64) = 85/37,   step = 0.1 / (sqrt(85/37) + 0.01)
    """
    p = vec(0.0)
    opt = Adam([p], 0.1, beta1=0.5, beta2=0.75, eps=0.01)
    steps = [0.1 / 1.01, 0.1 * (-1 / 3) / 1.01, 0.1 / (math.sqrt(85 / 37) + 0.01)]
    ms = [0.5, -0.25, 0.875]
    vs = [0.25, 0.4375, 1.328125]
    theta = 0.0
    for g, step, m, v in zip([1.0, -1.0, 2.0], steps, ms, vs):
        opt.step([vec(g)])
        theta -= step
        assert math.isclose(float(p[0]), theta, rel_tol=1e-14)
        assert math.isclose(float(opt.m[0][0]), m, rel_tol=1e-15)
        assert math.isclose(float(opt.v[0][0]), v, rel_tol=1e-15)


def _grads_sequence():
    rng = np.random.default_rng(21)
    shapes = [(2, 3), (2,)]
    p0 = [rng.normal(size=sh) for sh in shapes]
    gs = [[rng.normal(scale=1e-3 * (t + 1), size=sh) for sh in shapes] for t in range(3)]
    return p0, gs


def test_momentum_steps_match_formula():
    p0, gs = _grads_sequence()
    lr, mu = 0.05, 0.8
    params = [p.copy() for p in p0]
    opt = Momentum(params, lr, momentum=mu)
    exp_p = [p.copy() for p in p0]
    v = [np.zeros_like(p) for p in p0]
    for g in gs:
        opt.step(g)
        for i in range(len(p0)):
            v[i] = mu * v[i] + g[i]  # v <- mu v + g
            exp_p[i] = exp_p[i] - lr * v[i]  # theta <- theta - eta v
        for got, e in zip(params, exp_p):
            np.testing.assert_allclose(got, e, rtol=1e-13, atol=1e-15)
    # first step of momentum is a plain gradient step
    params = [p.copy() for p in p0]
    Momentum(params, lr, momentum=mu).step(gs[0])
    for got, p, g in zip(params, p0, gs[0]):
        np.testing.assert_allclose(got, p - lr * g, rtol=1e-14)


@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_adam_steps_match_pytorch_formula(eps):
    p0, gs = _grads_sequence()
    lr, b1, b2 = 0.01, 0.85, 0.99
    params = [p.copy() for p in p0]
    opt = Adam(params, lr, beta1=b1, beta2=b2, eps=eps)
    exp_p = [p.copy() for p in p0]
    m = [np.zeros_like(p) for p in p0]
    v = [np.zeros_like(p) for p in p0]
    for t, g in enumerate(gs, start=1):
        opt.step(g)
        for i in range(len(p0)):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            exp_p[i] = exp_p[i] - lr * m_hat / (np.sqrt(v_hat) + eps)  # eps outside the sqrt
        for got, e in zip(params, exp_p):
            np.testing.assert_allclose(got, e, rtol=1e-12, atol=1e-15)


def test_adam_first_step_is_about_lr_times_sign():
    p = [vec(1.0, -2.0, 3.0)]
    g = [vec(0.5, -3.0, 1e-2)]
    Adam(p, 0.1).step(g)
    np.testing.assert_allclose(p[0], [0.9, -1.9, 2.9], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_parameters_stay_float32_and_follow_float64(name):
    p64 = vec(0.5, -1.5, 2.0)
    p32 = p64.astype(np.float32)
    o64, o32 = OPTIMIZERS[name]([p64], 0.05), OPTIMIZERS[name]([p32], 0.05)
    for t in range(5):
        g = vec(0.3, -0.2, 0.1) * (t + 1)
        o64.step([g])
        o32.step([g.astype(np.float32)])
    assert p32.dtype == np.float32
    np.testing.assert_allclose(p32, p64, rtol=1e-5)
    assert not np.array_equal(p64, vec(0.5, -1.5, 2.0))


# ----------------------------------------------------------------------------- the learning rate is read every step


def test_sgd_reads_lr_at_every_step():
    p = vec(1.0, -1.0)
    opt = SGD([p], 0.5)
    opt.step([vec(1.0, 1.0)])
    np.testing.assert_array_equal(p, [0.5, -1.5])
    opt.lr = 0.25  # a schedule changes it between steps
    opt.step([vec(1.0, 1.0)])
    np.testing.assert_array_equal(p, [0.25, -1.75])


def test_momentum_reads_lr_at_every_step():
    # v accumulates the gradients regardless of eta; theta moves by the current eta times v
    p = vec(1.0)
    opt = Momentum([p], 0.1, momentum=0.5)
    opt.step([vec(1.0)])  # v = 1, theta = 0.9
    opt.lr = 0.4
    opt.step([vec(1.0)])  # v = 1.5, theta = 0.9 - 0.6 = 0.3
    assert math.isclose(float(p[0]), 0.3, rel_tol=1e-15)
    opt.lr = 0.0
    opt.step([vec(1.0)])  # v = 1.75, theta unchanged
    assert math.isclose(float(p[0]), 0.3, rel_tol=1e-15)
    assert math.isclose(float(opt.v[0][0]), 1.75, rel_tol=1e-15)


def test_adam_reads_lr_at_every_step():
    lrs = [0.1, 0.02, 0.3, 0.3, 0.001]
    gs = [1.0, -0.5, 2.0, 0.25, -1.0]
    b1, b2, eps = 0.9, 0.999, 1e-8
    p = vec(0.0)
    opt = Adam([p], lrs[0])
    theta, m, v = 0.0, 0.0, 0.0
    for t, (lr, g) in enumerate(zip(lrs, gs), start=1):
        opt.lr = lr
        opt.step([vec(g)])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        assert math.isclose(float(p[0]), theta, rel_tol=1e-12), t


# ----------------------------------------------------------------------------- state and load_state


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_round_trip_continues_identically(name):
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=7)
    grads = [rng.normal(size=7) for _ in range(8)]
    a = p0.copy()
    opt_a = OPTIMIZERS[name]([a], 0.05)
    for g in grads[:3]:
        opt_a.step([g])
    saved = {k: np.array(v) for k, v in opt_a.state().items()}  # as a checkpoint stores it
    b = a.copy()
    opt_b = OPTIMIZERS[name]([b], 0.05)
    opt_b.load_state(saved)
    for k, v in opt_b.state().items():
        np.testing.assert_array_equal(v, saved[k])
    for g in grads[3:]:
        opt_a.step([g])
        opt_b.step([g])
        assert a.tobytes() == b.tobytes()
    if name == "sgd":
        assert saved == {}
    else:
        assert saved, "a stateful optimizer must save its state"
    if name == "adam":
        assert int(saved["t"]) == 3 and int(opt_b.t) == 8


def test_adam_state_without_load_differs():
    # guards the round trip: a fresh Adam (t = 0, m = v = 0) takes a different step
    rng = np.random.default_rng(4)
    grads = [rng.normal(size=3) for _ in range(4)]
    a = np.zeros(3)
    opt = Adam([a], 0.05)
    for g in grads[:3]:
        opt.step([g])
    b = a.copy()
    opt.step([grads[3]])
    Adam([b], 0.05).step([grads[3]])
    assert not np.array_equal(a, b)


# ----------------------------------------------------------------------------- the bounded constant cache


def test_const_is_a_read_only_0d_array_of_its_dtype():
    c = const(0.25, np.float32)
    assert c.shape == () and c.dtype == np.float32 and float(c) == 0.25
    assert not c.flags.writeable
    assert const(0.25, np.float32) is c  # cached


def test_const_cache_is_bounded():
    info = const.cache_info()
    assert info.maxsize is not None and info.maxsize <= 1024
    for i in range(10_000):
        const(1e-3 * (1 + i / 10_000), np.float64)
    assert const.cache_info().currsize <= info.maxsize


def test_a_long_adam_run_with_a_changing_lr_keeps_the_cache_small():
    """2,000 Adam steps with a new learning rate every step (a schedule): the learning rate
    must not be made into cached constants, so the cache only holds the run's fixed ones."""
    rng = np.random.default_rng(9)
    model = MLP.initialise([3, 5, 1], ["tanh"], "sigmoid", rng, "xavier", "float32")
    X = rng.normal(size=(16, 3)).astype(np.float32)
    Y = (X[:, :1] > 0).astype(np.float32)
    opt = Adam([model.flat], 0.01)
    bce = LOSSES["bce"]
    const.cache_clear()
    first = None
    for step in range(2000):
        opt.lr = 0.01 * (1 + math.cos(step / 300)) + 1e-4 * step / 7  # a new value every step
        model.forward(X)
        E = model.loss(Y, bce)
        first = E if first is None else first
        opt.step([model.backward(X, Y, bce)])
    assert const.cache_info().currsize <= 12, const.cache_info()
    assert E < first  # it trained


# ----------------------------------------------------------------------------- issue 15: nesterov, rmsprop, adagrad, adamw

NEW = ["nesterov", "rmsprop", "adagrad", "adamw"]


def test_new_optimizers_are_registered_with_their_declared_hyperparameters():
    from nncli.optim import Adagrad, AdamW, Nesterov, RMSprop

    assert [OPTIMIZERS[n] for n in NEW] == [Nesterov, RMSprop, Adagrad, AdamW]
    assert set(Nesterov.hyperparameters) == {"momentum"}
    assert set(RMSprop.hyperparameters) == {"alpha", "eps", "momentum", "centered"}
    assert set(Adagrad.hyperparameters) == {"lr_decay", "initial_accumulator_value", "eps"}
    assert set(AdamW.hyperparameters) == {"beta1", "beta2", "eps", "weight_decay"}
    for cls in (Nesterov, RMSprop, Adagrad, AdamW):
        for name, h in cls.hyperparameters.items():
            assert h.doc and "\n" not in h.doc, (cls.name, name)
    # a shared key keeps one meaning; adamw's moments are adam's (the same declarations)
    for k in ("beta1", "beta2", "eps"):
        assert AdamW.hyperparameters[k] is Adam.hyperparameters[k]
    assert RMSprop.hyperparameters["eps"] is Adam.hyperparameters["eps"]
    # torch's defaults where they differ from the shared key's first declaration
    assert RMSprop.hyperparameters["momentum"].default == 0 and Adagrad.hyperparameters["eps"].default == 1e-10
    assert RMSprop.hyperparameters["centered"].default is False
    assert set(hyperparameters()) == {"momentum", "beta1", "beta2", "eps", "alpha", "centered", "lr_decay",
                                      "initial_accumulator_value", "weight_decay"}


@pytest.mark.parametrize("name,bad", [("nesterov", "beta1"), ("nesterov", "alpha"), ("rmsprop", "beta1"),
                                      ("rmsprop", "lr_decay"), ("adagrad", "momentum"), ("adagrad", "alpha"),
                                      ("adamw", "momentum"), ("adamw", "centered"), ("adam", "weight_decay"),
                                      ("momentum", "centered"), ("sgd", "weight_decay")])
def test_new_undeclared_hyperparameter_is_a_type_error(name, bad):
    with pytest.raises(TypeError) as e:
        OPTIMIZERS[name]([vec(1.0, 2.0)], 0.1, **{bad: 0.5})
    assert repr(bad) in str(e.value) and repr(name) in str(e.value)


NEW_OUT_OF_RANGE = [
    ("nesterov", "momentum", 0.0), ("nesterov", "momentum", 1.0), ("nesterov", "momentum", -0.5),
    ("rmsprop", "alpha", 1.0), ("rmsprop", "alpha", -0.1), ("rmsprop", "momentum", 1.0), ("rmsprop", "momentum", -0.1),
    ("rmsprop", "eps", 0.0), ("rmsprop", "centered", 0.5), ("rmsprop", "centered", 1),
    ("adagrad", "lr_decay", -0.1), ("adagrad", "initial_accumulator_value", -1.0), ("adagrad", "eps", 0.0),
    ("adamw", "weight_decay", -0.01), ("adamw", "beta1", 1.0), ("adamw", "eps", -1e-8),
]


@pytest.mark.parametrize("name,key,value", NEW_OUT_OF_RANGE)
def test_new_out_of_range_hyperparameter_is_a_value_error(name, key, value):
    with pytest.raises(ValueError) as e:
        OPTIMIZERS[name]([vec(1.0, 2.0)], 0.1, **{key: value})
    assert key in str(e.value) and str(value) in str(e.value)


@pytest.mark.parametrize("name,key,value", [("nesterov", "momentum", 1e-9), ("rmsprop", "alpha", 0.0),
                                            ("rmsprop", "momentum", 0.0), ("rmsprop", "centered", True),
                                            ("adagrad", "lr_decay", 0.0), ("adagrad", "initial_accumulator_value", 0.0),
                                            ("adamw", "weight_decay", 0.0), ("adamw", "weight_decay", 2.5)])
def test_new_in_range_edges_are_accepted(name, key, value):
    assert getattr(OPTIMIZERS[name]([vec(1.0, 2.0)], 0.1, **{key: value}), key) == value


def test_a_switch_hyperparameter_is_true_or_false():
    h = Hyper(False, doc="a switch")
    assert h.interval() == "true or false"
    h.check("centered", True)
    h.check("centered", np.bool_(False))
    for bad in (0, 1, 0.0, "yes", None):
        with pytest.raises(ValueError, match="centered must be true or false"):
            h.check("centered", bad)


# the config: each key checked with the declaration of the optimizer the config names, one line


@pytest.mark.parametrize("name,key,value", [case for case in NEW_OUT_OF_RANGE if not isinstance(case[2], int)])
def test_new_out_of_range_hyperparameter_is_a_one_line_config_error(name, key, value):
    from nncli.config import load_config
    from nncli.errors import ConfigError

    from helpers import XOR_YAML

    with pytest.raises(ConfigError) as e:
        load_config(XOR_YAML, [f"train.optimizer={name}", f"train.{key}={value!r}"])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{XOR_YAML}: train.{key}:") and repr(value) in msg, msg


def test_nesterov_momentum_0_is_refused_by_the_config_though_momentum_allows_it(tmp_path):
    """The shared key momentum: [0, 1) for momentum and rmsprop, (0, 1) for nesterov (torch refuses
    nesterov without momentum); exit 2, one line, no run directory."""
    from helpers import assert_usage_error, nn, runs_in, setup_workdir

    wd = setup_workdir(tmp_path)
    r = nn("train", "configs/xor.yaml", "--no-plots", "--set", "train.optimizer=nesterov", "--set", "train.momentum=0",
           cwd=wd)
    assert_usage_error(r, "configs/xor.yaml", "train.momentum", "nesterov", "(0, 1)")
    assert runs_in(wd) == []
    for ok in ("momentum", "rmsprop"):
        from nncli.config import load_config

        assert load_config(wd / "configs" / "xor.yaml", [f"train.optimizer={ok}", "train.momentum=0"]).train.momentum == 0


@pytest.mark.parametrize("key", ["dampening", "amsgrad", "betas", "nesterov", "rmsprop_momentum"])
def test_a_key_no_optimizer_declares_is_an_unknown_key(tmp_path, key):
    from helpers import assert_usage_error, nn, setup_workdir

    wd = setup_workdir(tmp_path)
    r = nn("train", "configs/xor.yaml", "--no-plots", "--set", "train.optimizer=adamw", "--set", f"train.{key}=0.5",
           cwd=wd)
    assert_usage_error(r, f"train.{key}: unknown key", "weight_decay")


@pytest.mark.parametrize("name,want", [
    ("sgd", {"momentum": 0.9, "eps": 1e-8}), ("momentum", {"momentum": 0.9}), ("nesterov", {"momentum": 0.9}),
    ("rmsprop", {"momentum": 0.0, "eps": 1e-8, "alpha": 0.99, "centered": False}),
    ("adagrad", {"eps": 1e-10, "lr_decay": 0.0, "initial_accumulator_value": 0.0}),
    ("adam", {"eps": 1e-8}), ("adamw", {"eps": 1e-8, "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999}),
])
def test_a_left_out_shared_key_takes_the_named_optimizers_default(name, want):
    """torch's defaults: rmsprop's momentum is 0 and adagrad's eps 1e-10, though the keys'
    fields (shared with momentum and adam) default to 0.9 and 1e-8; a value given is kept."""
    from nncli.config import load_config

    from helpers import XOR_YAML

    t = load_config(XOR_YAML, [f"train.optimizer={name}"]).train
    assert {k: getattr(t, k) for k in want} == want
    for k, v in want.items():
        if isinstance(v, float):
            assert type(getattr(t, k)) is float
    assert load_config(XOR_YAML, [f"train.optimizer={name}", "train.eps=1e-3", "train.momentum=0.25"]).train.eps == 1e-3
    assert load_config(XOR_YAML, [f"train.optimizer={name}", "train.momentum=0.25"]).train.momentum == 0.25


# steps by hand


def test_nesterov_three_steps_by_hand():
    # mu = 0.5, eta = 0.1, theta_0 = [1, -2]; g = [1, -2], [1, -2], [0, 0]
    # v1 = [1, -2],      g + mu v1 = [1.5, -3],    theta_1 = [0.85, -1.7]
    # v2 = [1.5, -3],    g + mu v2 = [1.75, -3.5], theta_2 = [0.675, -1.35]
    # v3 = [0.75, -1.5], 0 + mu v3 = [0.375, -0.75], theta_3 = [0.6375, -1.275]
    p = vec(1.0, -2.0)
    opt = OPTIMIZERS["nesterov"]([p], 0.1, momentum=0.5)
    want = [[0.85, -1.7], [0.675, -1.35], [0.6375, -1.275]]
    for g, w in zip([vec(1.0, -2.0), vec(1.0, -2.0), vec(0.0, 0.0)], want):
        opt.step([g])
        np.testing.assert_allclose(p, w, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(opt.v[0], [0.75, -1.5], rtol=1e-15)


@pytest.mark.parametrize("centered,mu", [(False, 0.0), (True, 0.0), (True, 0.5), (False, 0.5)])
def test_rmsprop_two_steps_by_hand(centered, mu):
    """alpha = 1/2, eta = 1, g = 2 then 4, eps 1e-12 (negligible):
    s1 = 2, s2 = 1 + 8 = 9;  centered: gbar1 = 1, gbar2 = 2.5, so d1 = sqrt(2 - 1) = 1,
    d2 = sqrt(9 - 6.25) = sqrt(2.75); plain: d1 = sqrt(2), d2 = 3.
    mu = 0: theta -= g / d;  mu = 1/2: b1 = 2 / d1, b2 = b1 / 2 + 4 / d2, theta -= b."""
    d1, d2 = (1.0, math.sqrt(2.75)) if centered else (math.sqrt(2.0), 3.0)
    if mu:
        b1 = 2 / d1
        steps = [b1, 0.5 * b1 + 4 / d2]
    else:
        steps = [2 / d1, 4 / d2]
    p = vec(0.0)
    opt = OPTIMIZERS["rmsprop"]([p], 1.0, alpha=0.5, eps=1e-12, centered=centered, momentum=mu)
    theta = 0.0
    for g, step in zip([2.0, 4.0], steps):
        opt.step([vec(g)])
        theta -= step
        assert math.isclose(float(p[0]), theta, rel_tol=1e-11), (float(p[0]), theta)
    assert float(opt.s[0][0]) == 9.0
    assert sorted(opt.state()) == sorted(["s0"] + (["gbar0"] if centered else []) + (["b0"] if mu else []))


def test_adagrad_two_steps_by_hand():
    """eta = 1, lr_decay = 1, s starts at 16, g = 3 then 12, eps 1e-12:
    t=1: s = 25, eta_1 = 1,   step = 3 / 5 = 0.6
    t=2: s = 169, eta_2 = 1/2, step = 0.5 * 12 / 13 = 6/13"""
    p = vec(0.0)
    opt = OPTIMIZERS["adagrad"]([p], 1.0, lr_decay=1.0, initial_accumulator_value=16.0, eps=1e-12)
    np.testing.assert_array_equal(opt.s[0], [16.0])
    opt.step([vec(3.0)])
    assert math.isclose(float(p[0]), -0.6, rel_tol=1e-12)
    opt.step([vec(12.0)])
    assert math.isclose(float(p[0]), -0.6 - 6 / 13, rel_tol=1e-12)
    assert float(opt.s[0][0]) == 169.0 and int(opt.t) == 2


def test_adamw_decays_before_the_adam_step_in_python_floats():
    """theta <- theta (1 - eta wd), then adam's step: with wd = 0 it is adam; the decay does not
    enter m or v (decoupled), unlike train.l2, which is part of dE/dtheta."""
    lrs, gs = [0.1, 0.05, 0.2], [1.0, -0.5, 2.0]
    b1, b2, eps, wd = 0.9, 0.999, 1e-8, 0.3
    p = vec(2.0)
    opt = OPTIMIZERS["adamw"]([p], lrs[0], weight_decay=wd)
    theta, m, v = 2.0, 0.0, 0.0
    for t, (lr, g) in enumerate(zip(lrs, gs), start=1):
        opt.lr = lr
        opt.step([vec(g)])
        theta *= 1 - lr * wd
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        assert math.isclose(float(p[0]), theta, rel_tol=1e-13), t
        assert math.isclose(float(opt.m[0][0]), m, rel_tol=1e-14) and math.isclose(float(opt.v[0][0]), v, rel_tol=1e-14)
    # wd = 0: exactly adam
    a, b = vec(1.0, -2.0), vec(1.0, -2.0)
    oa, ob = OPTIMIZERS["adamw"]([a], 0.1, weight_decay=0.0), Adam([b], 0.1)
    for g in ([0.3, -1.0], [2.0, 0.5]):
        oa.step([vec(*g)])
        ob.step([vec(*g)])
    assert a.tobytes() == b.tobytes()


# state round trip with non-default hyperparameters (every buffer in play)


@pytest.mark.parametrize("name,hyper", [
    ("nesterov", {"momentum": 0.6}), ("rmsprop", {"centered": True, "momentum": 0.7}),
    ("rmsprop", {"centered": True}), ("rmsprop", {"momentum": 0.5}),
    ("adagrad", {"lr_decay": 0.2, "initial_accumulator_value": 0.3}), ("adamw", {"weight_decay": 0.4}),
])
def test_new_state_round_trip_continues_identically(name, hyper):
    rng = np.random.default_rng(13)
    p0 = rng.normal(size=7)
    grads = [rng.normal(size=7) for _ in range(8)]
    a = p0.copy()
    opt_a = OPTIMIZERS[name]([a], 0.05, **hyper)
    for g in grads[:3]:
        opt_a.step([g])
    saved = {k: np.array(v) for k, v in opt_a.state().items()}  # as a checkpoint stores it
    assert all(isinstance(v, np.ndarray) for v in saved.values())
    b = a.copy()
    opt_b = OPTIMIZERS[name]([b], 0.05, **hyper)
    fresh = b.copy()
    opt_fresh = OPTIMIZERS[name]([fresh], 0.05, **hyper)
    opt_b.load_state(saved)
    for k, v in opt_b.state().items():
        np.testing.assert_array_equal(v, saved[k])
    for g in grads[3:]:
        opt_a.step([g])
        opt_b.step([g])
        opt_fresh.step([g])
        assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, fresh), "without the state the steps differ: the state matters"
    want_keys = {"nesterov": {"v0"}, "adagrad": {"t", "s0"}, "adamw": {"t", "m0", "v0"},
                 "rmsprop": {"s0"} | ({"gbar0"} if hyper.get("centered") else set()) | ({"b0"} if hyper.get("momentum") else set())}
    assert set(saved) == want_keys[name]
