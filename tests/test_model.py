"""The MLP (LECTURE.md sections 2 and 5) and the optimizers.

- forward against the composite function written out per sample, with W_ij connecting
  input j to neuron i;
- backpropagation against central differences of the loss in float64, for every loss and
  every valid output activation;
- one SGD step against the lecture's hand derivation (dE/dW2 = (y_hat - y) a1^T, ...);
- momentum and Adam against their formulas.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nncli.activations import ACTIVATIONS
from nncli.losses import LOSSES
from nncli.model import MLP
from nncli.optim import OPTIMIZERS, SGD, Adam, Momentum

H = 1e-6


def s(z):
    return 1.0 / (1.0 + np.exp(-z))


def logits(model: MLP, X) -> np.ndarray:
    ws = model.workspace(X.shape[0])
    model.forward(X, ws)
    return ws.Z[-1].copy()


def targets_for(loss_name, output, n, k, rng):
    if loss_name == "bce":
        return rng.integers(0, 2, size=(n, 1)).astype(np.float64)
    if loss_name == "cross_entropy":
        return np.eye(k)[rng.integers(0, k, size=n)]
    if output in ("sigmoid", "softmax", "step"):
        return rng.uniform(0, 1, size=(n, k))
    return rng.normal(size=(n, k))


def numerical_grads(model: MLP, X, Y, loss, l2):
    """Central differences of model.loss with respect to every parameter, in place."""
    out = []
    for _, p in model.params():
        g = np.zeros_like(p)
        for idx in np.ndindex(*p.shape):
            old = p[idx]
            p[idx] = old + H
            e_plus = model.loss(X, Y, loss, l2)
            p[idx] = old - H
            e_minus = model.loss(X, Y, loss, l2)
            p[idx] = old
            g[idx] = (e_plus - e_minus) / (2 * H)
        out.append(g)
    return out


def rel_error(a, b) -> float:
    a = np.concatenate([x.ravel() for x in a])
    b = np.concatenate([x.ravel() for x in b])
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else 0.0


def make_model(sizes, hidden, output, seed, dtype="float64"):
    rng = np.random.default_rng(seed)
    model = MLP.initialise(sizes, hidden, output, rng, "xavier", dtype)
    for b in model.b:  # non-zero biases so that dE/db is exercised away from 0
        b[...] = rng.normal(scale=0.3, size=b.shape)
    return model, rng


# ----------------------------------------------------------------------------- shapes and forward


def test_initialise_shapes_follow_w_ij_convention():
    model = MLP.initialise([2, 4, 1], ["tanh"], "sigmoid", np.random.default_rng(0), "xavier", "float64")
    assert model.W[0].shape == (4, 2) and model.W[1].shape == (1, 4)
    assert model.b[0].shape == (4,) and model.b[1].shape == (1,)
    assert model.sizes == [2, 4, 1]
    names = [n for n, _ in model.params()]
    assert names == ["W1", "b1", "W2", "b2"]
    assert model.params()[0][1] is model.W[0]  # the arrays themselves, updated in place by optimizers
    assert np.all(model.b[0] == 0) and np.all(model.b[1] == 0)


def test_w_ij_connects_input_j_to_neuron_i():
    W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # 3 neurons, 2 inputs
    b = np.array([0.5, -0.5, 0.25])
    model = MLP([W], [b], [], "identity")
    # input e_j: neuron i receives exactly W[i, j]
    out = model.predict(np.eye(2))
    np.testing.assert_array_equal(out[0], W[:, 0] + b)
    np.testing.assert_array_equal(out[1], W[:, 1] + b)
    x = np.array([[2.0, -1.0]])
    np.testing.assert_array_equal(model.predict(x)[0], [2 - 2 + 0.5, 6 - 4 - 0.5, 10 - 6 + 0.25])


@pytest.mark.parametrize("scheme", ["xavier", "he", "normal"])
def test_initialise_is_seeded_and_float32_starts_like_float64(scheme):
    a = MLP.initialise([3, 5, 2], ["tanh"], "softmax", np.random.default_rng(42), scheme, "float64")
    b = MLP.initialise([3, 5, 2], ["tanh"], "softmax", np.random.default_rng(42), scheme, "float64")
    c = MLP.initialise([3, 5, 2], ["tanh"], "softmax", np.random.default_rng(42), scheme, "float32")
    for (_, x), (_, y), (_, z) in zip(a.params(), b.params(), c.params()):
        np.testing.assert_array_equal(x, y)
        assert z.dtype == np.float32
        np.testing.assert_array_equal(z, x.astype(np.float32))


def test_xavier_bound():
    model = MLP.initialise([30, 20, 10], ["tanh"], "identity", np.random.default_rng(1), "xavier", "float64")
    for W in model.W:
        n_out, n_in = W.shape
        r = math.sqrt(6.0 / (n_in + n_out))
        assert np.all(np.abs(W) <= r)
        assert np.max(np.abs(W)) > 0.8 * r  # actually uses the range


def test_forward_is_the_composite_function():
    rng = np.random.default_rng(3)
    model, _ = make_model([3, 4, 5, 3], ["tanh", "sigmoid"], "softmax", seed=4)
    X = rng.normal(size=(6, 3))
    W1, W2, W3 = model.W
    b1, b2, b3 = model.b
    expected = []
    for x in X:  # column-vector form of the lecture, one sample at a time
        h1 = np.tanh(W1 @ x + b1)
        h2 = s(W2 @ h1 + b2)
        z3 = W3 @ h2 + b3
        expected.append(np.exp(z3) / np.sum(np.exp(z3)))
    np.testing.assert_allclose(model.predict(X), np.array(expected), rtol=1e-12)
    # chunked prediction (short last chunk) gives the same numbers
    np.testing.assert_allclose(model.predict(X, chunk=4), np.array(expected), rtol=1e-12)


# ----------------------------------------------------------------------------- gradient checks

CASES = [(loss, out) for loss in sorted(LOSSES) for out in LOSSES[loss].valid_outputs if out != "step"]
HIDDEN = [["tanh"], ["sigmoid"], ["tanh", "sigmoid"], ["sigmoid", "tanh"]]


def test_every_loss_output_pair_is_covered():
    assert ("bce", "sigmoid") in CASES
    assert ("cross_entropy", "softmax") in CASES
    assert ("mse", "identity") in CASES
    assert len(CASES) == sum(len([o for o in L.valid_outputs if o != "step"]) for L in LOSSES.values())


@pytest.mark.parametrize("l2", [0.0, 0.1])
@pytest.mark.parametrize("hidden", HIDDEN, ids=lambda h: "-".join(h))
@pytest.mark.parametrize("loss_name,output", CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_backprop_matches_finite_differences(loss_name, output, hidden, l2):
    loss = LOSSES[loss_name]
    k = 1 if loss_name == "bce" else 3
    sizes = [3] + [4] * len(hidden) + [k]
    kinked = ACTIVATIONS[output].has_kink
    for seed in range(50):
        model, rng = make_model(sizes, hidden, output, seed)
        X = rng.normal(size=(5, 3))
        Y = targets_for(loss_name, output, 5, k, rng)
        # a kinked output must not have z_L within reach of the finite-difference step
        if not kinked or np.min(np.abs(logits(model, X))) > 1e-3:
            break
    else:  # pragma: no cover
        pytest.fail("test setup: no seed keeps the output away from the kink")
    E, grads = model.loss_and_grads(X, Y, loss, l2)
    assert math.isclose(E, model.loss(X, Y, loss, l2), rel_tol=1e-14)
    num = numerical_grads(model, X, Y, loss, l2)
    assert [g.shape for g in grads] == [p.shape for _, p in model.params()]
    err = rel_error(grads, num)
    assert err < 1e-6, f"relative error {err:.3e}"
    for (name, _), g, n in zip(model.params(), grads, num):
        assert np.linalg.norm(g - n) <= 1e-6 * (np.linalg.norm(g) + np.linalg.norm(n)) + 1e-9, name


@pytest.mark.parametrize("hidden", [["tanh"], ["sigmoid", "tanh"]])
def test_step_output_backprop_gives_exactly_zero(hidden):
    model, rng = make_model([3] + [4] * len(hidden) + [2], hidden, "step", seed=9)
    X = rng.normal(size=(5, 3))
    Y = rng.uniform(size=(5, 2))
    E, grads = model.loss_and_grads(X, Y, LOSSES["mse"], 0.0)
    assert E > 0
    for g in grads:
        assert np.all(g == 0)


def test_step_hidden_layer_blocks_the_gradient():
    model, rng = make_model([2, 3, 1], ["step"], "sigmoid", seed=2)
    X = rng.normal(size=(6, 2))
    Y = rng.integers(0, 2, size=(6, 1)).astype(float)
    _, (dW1, db1, dW2, db2) = model.loss_and_grads(X, Y, LOSSES["bce"], 0.0)
    assert np.all(dW1 == 0) and np.all(db1 == 0)  # layers before the step cannot learn
    assert np.any(dW2 != 0) and np.any(db2 != 0)


def test_l2_term_decays_weights_but_not_biases():
    model, rng = make_model([3, 4, 2], ["tanh"], "identity", seed=5)
    X = rng.normal(size=(4, 3))
    Y = rng.normal(size=(4, 2))
    mse = LOSSES["mse"]
    e0, g0 = model.loss_and_grads(X, Y, mse, 0.0)
    e1, g1 = model.loss_and_grads(X, Y, mse, 0.3)
    assert math.isclose(e1 - e0, 0.15 * sum(float(np.sum(W**2)) for W in model.W), rel_tol=1e-12)
    np.testing.assert_allclose(g1[0] - g0[0], 0.3 * model.W[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g1[2] - g0[2], 0.3 * model.W[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(g1[1], g0[1])
    np.testing.assert_array_equal(g1[3], g0[3])


def test_float32_gradients_agree_with_float64():
    m64, rng = make_model([3, 5, 3], ["tanh"], "softmax", seed=8)
    m32 = m64.astype("float32")
    X = rng.normal(size=(7, 3))
    Y = np.eye(3)[rng.integers(0, 3, size=7)]
    e64, g64 = m64.loss_and_grads(X, Y, LOSSES["cross_entropy"])
    e32, g32 = m32.loss_and_grads(X.astype(np.float32), Y.astype(np.float32), LOSSES["cross_entropy"])
    assert math.isclose(e32, e64, rel_tol=1e-5)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_trimmed_workspace_gives_the_same_gradients():
    """A short last batch reuses the first rows of a larger workspace (Workspace.view)."""
    model, rng = make_model([3, 4, 4, 2], ["tanh", "sigmoid"], "softmax", seed=12)
    X = rng.normal(size=(8, 3))
    Y = np.eye(2)[rng.integers(0, 2, size=8)]
    ce = LOSSES["cross_entropy"]
    ws = model.workspace(8)
    model.forward(X, ws)
    model.backward(X, Y, ws, ce)  # fill the buffers with a full batch first
    short = ws.view(5)
    A = model.forward(X[:5], short)
    model.backward(X[:5], Y[:5], short, ce)
    _, want = model.loss_and_grads(X[:5], Y[:5], ce)
    np.testing.assert_allclose(A, model.predict(X[:5]), rtol=1e-14)
    for g, w in zip(model.grads(short), want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-16)


# ----------------------------------------------------------------------------- one SGD step by hand


def _tiny_221():
    W1 = np.array([[0.15, -0.25], [0.35, 0.45]])
    b1 = np.array([0.1, -0.2])
    W2 = np.array([[0.6, -0.7]])
    b2 = np.array([0.05])
    return W1, b1, W2, b2


def _hand_grads_221(W1, b1, W2, b2, X, Y):
    """The lecture's derivation for sigmoid hidden + sigmoid output + bce, averaged over samples."""
    gW1, gb1, gW2, gb2 = (np.zeros_like(W1), np.zeros_like(b1), np.zeros_like(W2), np.zeros_like(b2))
    n = X.shape[0]
    for x, y in zip(X, Y):
        z1 = W1 @ x + b1
        a1 = s(z1)
        z2 = W2 @ a1 + b2
        y_hat = s(z2)
        d2 = y_hat - y  # sigmoid + cross-entropy: delta_2 = y_hat - y
        d1 = (W2.T @ d2) * (a1 * (1 - a1))  # (W2^T delta_2) ⊙ s'(z1)
        gW2 += np.outer(d2, a1) / n  # delta_2 a1^T
        gb2 += d2 / n
        gW1 += np.outer(d1, x) / n  # delta_1 x^T
        gb1 += d1 / n
    return gW1, gb1, gW2, gb2


@pytest.mark.parametrize("n", [1, 3])
def test_one_sgd_step_matches_hand_derivation(n):
    W1, b1, W2, b2 = _tiny_221()
    X = np.array([[0.5, -1.2], [1.0, 0.3], [-0.4, 0.8]])[:n]
    Y = np.array([[1.0], [0.0], [1.0]])[:n]
    eta = 0.7
    gW1, gb1, gW2, gb2 = _hand_grads_221(W1, b1, W2, b2, X, Y)
    expected = [W1 - eta * gW1, b1 - eta * gb1, W2 - eta * gW2, b2 - eta * gb2]

    model = MLP([W1.copy(), W2.copy()], [b1.copy(), b2.copy()], ["sigmoid"], "sigmoid")
    ws = model.workspace(n)
    model.forward(X, ws)
    model.backward(X, Y, ws, LOSSES["bce"])
    for g, h in zip(model.grads(ws), [gW1, gb1, gW2, gb2]):
        np.testing.assert_allclose(g, h, rtol=0, atol=1e-12)
    opt = SGD([p for _, p in model.params()], lr=eta)
    opt.step(model.grads(ws))
    for (name, p), e in zip(model.params(), expected):
        np.testing.assert_allclose(p, e, rtol=0, atol=1e-12, err_msg=name)
    # the step moved the weights downhill
    assert model.loss(X, Y, LOSSES["bce"]) < MLP([W1, W2], [b1, b2], ["sigmoid"], "sigmoid").loss(X, Y, LOSSES["bce"])


def test_registry_names_optimizers():
    assert OPTIMIZERS["sgd"] is SGD and OPTIMIZERS["momentum"] is Momentum and OPTIMIZERS["adam"] is Adam


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
    p = [np.array([1.0, -2.0, 3.0])]
    g = [np.array([0.5, -3.0, 1e-2])]
    Adam(p, 0.1).step(g)
    np.testing.assert_allclose(p[0], [0.9, -1.9, 2.9], rtol=1e-6)


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_optimizers_update_model_in_place(name):
    W1, b1, W2, b2 = _tiny_221()
    model = MLP([W1.copy(), W2.copy()], [b1.copy(), b2.copy()], ["sigmoid"], "sigmoid")
    X = np.array([[0.5, -1.2]])
    Y = np.array([[1.0]])
    opt = OPTIMIZERS[name]([p for _, p in model.params()], 0.1)
    before = model.loss(X, Y, LOSSES["bce"])
    hand = _hand_grads_221(W1, b1, W2, b2, X, Y)
    ws = model.workspace(1)
    model.forward(X, ws)
    model.backward(X, Y, ws, LOSSES["bce"])
    opt.step(model.grads(ws))
    if name == "momentum":
        expected = [p - 0.1 * g for p, g in zip([W1, b1, W2, b2], hand)]
    else:
        expected = [p - 0.1 * g / (np.abs(g) + 1e-8) for p, g in zip([W1, b1, W2, b2], hand)]
    for (_, p), e in zip(model.params(), expected):
        np.testing.assert_allclose(p, e, rtol=1e-10, atol=1e-12)
    assert model.loss(X, Y, LOSSES["bce"]) < before


def test_sgd_descends_loss_on_every_pair():
    rng = np.random.default_rng(0)
    for loss_name, output in itertools.product(sorted(LOSSES), ["sigmoid", "softmax", "identity"]):
        if output not in LOSSES[loss_name].valid_outputs:
            continue
        k = 1 if loss_name == "bce" else 3
        model, _ = make_model([2, 3, k], ["tanh"], output, seed=1)
        X = rng.normal(size=(8, 2))
        Y = targets_for(loss_name, output, 8, k, rng)
        e0, g = model.loss_and_grads(X, Y, LOSSES[loss_name])
        SGD([p for _, p in model.params()], 1e-3).step(g)
        assert model.loss(X, Y, LOSSES[loss_name]) < e0, (loss_name, output)
