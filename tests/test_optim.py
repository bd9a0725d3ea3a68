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
    assert set(hyperparameters()) == {"momentum", "beta1", "beta2", "eps"}
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
