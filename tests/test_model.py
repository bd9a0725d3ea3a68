"""nncli.model: the MLP (LECTURE.md sections 2 and 5).

- forward against the composite function written out per sample, with W_ij connecting
  input j to neuron i, and against a naive float64 matmul for mixed dtypes and F-ordered
  input;
- backpropagation against central differences of the loss in float64, for every loss and
  every valid output activation;
- the model's own buffers: a short batch after a long one, the flat gradient's layout;
- one SGD step against the lecture's hand derivation (dE/dW2 = (y_hat - y) a1^T, ...).
The optimizers' formulas are in test_optim.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from helpers import naive_forward, random_mlp, sigmoid, targets_for
from nncli.activations import ACTIVATIONS
from nncli.losses import LOSSES
from nncli.model import INITS, MLP
from nncli.optim import OPTIMIZERS, SGD

H = 1e-6


def logits(model: MLP, X) -> np.ndarray:
    model.forward(X)
    return model.pre_activations()[-1].copy()


def numerical_grads(model: MLP, X, Y, loss, l2):
    """Central differences of model.objective with respect to every parameter, in place."""
    out = []
    for _, p in model.params():
        g = np.zeros_like(p)
        for idx in np.ndindex(*p.shape):
            old = p[idx]
            p[idx] = old + H
            e_plus = model.objective(X, Y, loss, l2)
            p[idx] = old - H
            e_minus = model.objective(X, Y, loss, l2)
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


def clone(model: MLP) -> MLP:
    return MLP([W.copy() for W in model.W], [b.copy() for b in model.b], model.hidden, model.output)


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
    assert list(model.arrays()) == names


def test_parameters_are_views_of_one_flat_array():
    model, _ = make_model([3, 4, 2], ["tanh"], "softmax", seed=1)
    want = np.concatenate([p.ravel() for _, p in model.params()])
    np.testing.assert_array_equal(model.flat, want)
    model.flat[:] = np.arange(model.flat.size)
    assert model.W[0][0, 0] == 0 and model.W[0][0, 1] == 1  # W1 first, row-major
    assert model.b[0][0] == 12  # then b1 (after the 4 x 3 entries of W1)
    assert model.W[1][0, 0] == 16 and model.b[1][-1] == model.flat.size - 1


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


def test_init_registry_names_the_schemes():
    assert set(INITS) >= {"xavier", "he", "normal"}
    rng = np.random.default_rng(0)
    for name, fn in INITS.items():
        W = fn(7, 3, rng)
        assert W.shape == (3, 7) and W.dtype == np.float64, name


@pytest.mark.parametrize("scheme", ["xavier", "he", "normal"])
def test_initialise_is_seeded_and_float32_starts_like_float64(scheme):
    a = MLP.initialise([3, 5, 2], ["tanh"], "softmax", np.random.default_rng(42), scheme, "float64")
    b = MLP.initialise([3, 5, 2], ["tanh"], "softmax", np.random.default_rng(42), scheme, "float64")
    c = MLP.initialise([3, 5, 2], ["tanh"], "softmax", np.random.default_rng(42), scheme, "float32")
    for (_, x), (_, y), (_, z) in zip(a.params(), b.params(), c.params()):
        np.testing.assert_array_equal(x, y)
        assert z.dtype == np.float32
        np.testing.assert_array_equal(z, x.astype(np.float32))
    # the weights are the scheme's draws, in layer order, from the one generator
    rng = np.random.default_rng(42)
    np.testing.assert_array_equal(a.W[0], INITS[scheme](3, 5, rng))
    np.testing.assert_array_equal(a.W[1], INITS[scheme](5, 2, rng))


def test_xavier_bound():
    model = MLP.initialise([30, 20, 10], ["tanh"], "identity", np.random.default_rng(1), "xavier", "float64")
    for W in model.W:
        n_out, n_in = W.shape
        r = math.sqrt(6.0 / (n_in + n_out))
        assert np.all(np.abs(W) <= r)
        assert np.max(np.abs(W)) > 0.8 * r  # actually uses the range


def test_he_and_normal_scales():
    rng = np.random.default_rng(5)
    W = INITS["he"](400, 300, rng)
    assert abs(W.std() - math.sqrt(2.0 / 400)) < 0.02 * math.sqrt(2.0 / 400)
    W = INITS["normal"](400, 300, rng)
    assert abs(W.std() - 0.1) < 0.002


def test_forward_is_the_composite_function():
    rng = np.random.default_rng(3)
    model, _ = make_model([3, 4, 5, 3], ["tanh", "sigmoid"], "softmax", seed=4)
    X = rng.normal(size=(6, 3))
    W1, W2, W3 = model.W
    b1, b2, b3 = model.b
    expected = []
    for x in X:  # column-vector form of the lecture, one sample at a time
        h1 = np.tanh(W1 @ x + b1)
        h2 = sigmoid(W2 @ h1 + b2)
        z3 = W3 @ h2 + b3
        expected.append(np.exp(z3) / np.sum(np.exp(z3)))
    np.testing.assert_allclose(model.predict(X), np.array(expected), rtol=1e-12)
    # chunked prediction (short last chunk) gives the same numbers
    np.testing.assert_allclose(model.predict(X, chunk=4), np.array(expected), rtol=1e-12)
    np.testing.assert_allclose(model.forward(X), np.array(expected), rtol=1e-12)


def test_forward_returns_the_models_buffer():
    """forward's result is overwritten by the next forward of the same batch size (documented)."""
    model, rng = make_model([2, 3, 1], ["tanh"], "sigmoid", seed=6)
    X1, X2 = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    A1 = model.forward(X1)
    kept = A1.copy()
    A2 = model.forward(X2)
    assert np.shares_memory(A1, A2)  # the same buffer, now holding X2's outputs
    np.testing.assert_array_equal(A1, clone(model).forward(X2))
    np.testing.assert_array_equal(kept, clone(model).forward(X1))
    assert not np.array_equal(kept, A1)


# ----------------------------------------------------------------------------- forward/backward fast paths (moved from test_fast_paths.py)


NETS = [
    ([5, 8, 6, 3], ["tanh", "relu"], "softmax"),
    ([4, 7, 1], ["sigmoid"], "sigmoid"),
    ([6, 9, 5, 2], ["leaky_relu", "identity"], "identity"),
]
NET_LOSS = ["cross_entropy", "bce", "mse"]
DTYPE_PAIRS = [(np.float64, np.float32), (np.float32, np.float32), (np.float32, np.float64), (np.float64, np.float64)]


@pytest.mark.parametrize("x_dtype,m_dtype", DTYPE_PAIRS)
@pytest.mark.parametrize("net", range(len(NETS)))
@pytest.mark.parametrize("layout", ["C", "F"])
def test_forward_equals_naive_matmul(x_dtype, m_dtype, net, layout):
    sizes, hidden, output = NETS[net]
    model = random_mlp(sizes, hidden, output, m_dtype, seed=50 + net)
    rng = np.random.default_rng(60 + net)
    X = (rng.normal(size=(23, sizes[0])) * 2).astype(x_dtype)
    if layout == "F":
        X = np.asfortranarray(X)
        assert not X.flags.c_contiguous
    A = model.forward(X)
    zs, want = naive_forward(model, X)
    assert A.dtype == m_dtype and A.shape == want.shape
    # a float64 model computes in float64 (a float32 input is exact in float64); a float32
    # model rounds every layer to float32
    tol = {"rtol": 2e-5, "atol": 2e-6} if m_dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}
    np.testing.assert_allclose(A, want, **tol)
    for z_model, z in zip(model.pre_activations(), zs):
        assert z_model.dtype == m_dtype
        np.testing.assert_allclose(z_model, z, **tol)
    # the network is not trivial: outputs vary across rows
    assert np.ptp(want, axis=0).max() > 1e-2


@pytest.mark.parametrize("x_dtype,m_dtype", DTYPE_PAIRS)
@pytest.mark.parametrize("net", range(len(NETS)))
@pytest.mark.parametrize("layout", ["C", "F"])
def test_backward_with_mixed_dtypes_and_f_order_equals_float64(x_dtype, m_dtype, net, layout):
    """The gradient for any input dtype / memory layout equals the float64 C-ordered one
    (to float32 rounding for a float32 model), and has the model's dtype."""
    sizes, hidden, output = NETS[net]
    loss = LOSSES[NET_LOSS[net]]
    model = random_mlp(sizes, hidden, output, m_dtype, seed=150 + net)
    rng = np.random.default_rng(160 + net)
    n = 23
    X64 = rng.normal(size=(n, sizes[0])) * 2
    Y64 = targets_for(loss.name, output, n, sizes[-1], rng)
    X = X64.astype(x_dtype)
    if layout == "F":
        X = np.asfortranarray(X)
    ref = model.astype(np.float64)
    _, want = ref.loss_and_grads(X.astype(np.float64), Y64, loss, 0.01)
    model.forward(X)
    flat = model.backward(X, Y64.astype(m_dtype), loss, 0.01)
    assert flat.dtype == m_dtype and flat.shape == model.flat.shape
    got = np.concatenate([g.ravel() for g in want])
    tol = {"rtol": 1e-4, "atol": 1e-5} if m_dtype == np.float32 else {"rtol": 1e-11, "atol": 1e-13}
    np.testing.assert_allclose(flat, got, **tol)
    assert np.abs(got).max() > 1e-3


def test_forward_float64_input_float32_model_matches_float32_input_closely():
    # two paths (np.matmul on float64 input, ndarray.dot on float32 input) agree to float32 rounding
    sizes, hidden, output = NETS[0]
    model = random_mlp(sizes, hidden, output, np.float32, seed=70)
    X64 = np.random.default_rng(71).normal(size=(30, sizes[0]))
    A64 = model.forward(X64).copy()
    A32 = model.forward(X64.astype(np.float32)).copy()
    np.testing.assert_allclose(A64, A32, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- gradient checks

CASES = [(loss, out) for loss in sorted(LOSSES) for out in LOSSES[loss].valid_outputs() if out != "step"]
HIDDEN = [["tanh"], ["sigmoid"], ["tanh", "sigmoid"], ["sigmoid", "tanh"]]


def test_every_loss_output_pair_is_covered():
    assert ("bce", "sigmoid") in CASES
    assert ("cross_entropy", "softmax") in CASES
    assert ("mse", "identity") in CASES
    assert len(CASES) == sum(len([o for o in L.valid_outputs() if o != "step"]) for L in LOSSES.values())


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
    assert math.isclose(E, model.objective(X, Y, loss, l2), rel_tol=1e-14)
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


def test_short_batch_after_a_full_one_gives_the_same_gradients():
    """A short last batch reuses the first rows of the model's larger buffers."""
    model, rng = make_model([3, 4, 4, 2], ["tanh", "sigmoid"], "softmax", seed=12)
    X = rng.normal(size=(8, 3))
    Y = np.eye(2)[rng.integers(0, 2, size=8)]
    ce = LOSSES["cross_entropy"]
    model.forward(X)
    model.backward(X, Y, ce)  # fill the buffers with a full batch first
    A = model.forward(X[:5]).copy()
    flat = model.backward(X[:5], Y[:5], ce).copy()
    fresh = clone(model)
    _, want = fresh.loss_and_grads(X[:5], Y[:5], ce)
    np.testing.assert_array_equal(A, fresh.predict(X[:5]))
    np.testing.assert_array_equal(flat, np.concatenate([w.ravel() for w in want]))
    # and back to the full batch: the same as the first time
    model.forward(X)
    full = model.backward(X, Y, ce).copy()
    _, want_full = clone(model).loss_and_grads(X, Y, ce)
    np.testing.assert_array_equal(full, np.concatenate([w.ravel() for w in want_full]))


def test_backward_flat_gradient_is_laid_out_like_the_parameters():
    model, rng = make_model([3, 4, 2], ["tanh"], "identity", seed=13)
    X = rng.normal(size=(6, 3))
    Y = rng.normal(size=(6, 2))
    E, grads = clone(model).loss_and_grads(X, Y, LOSSES["mse"], 0.2)
    model.forward(X)
    assert model.loss(Y, LOSSES["mse"]) == clone(model).objective(X, Y, LOSSES["mse"])
    flat = model.backward(X, Y, LOSSES["mse"], 0.2)
    offset = 0
    for (name, p), g in zip(model.params(), grads):
        np.testing.assert_array_equal(flat[offset : offset + p.size].reshape(p.shape), g, err_msg=name)
        offset += p.size
    assert offset == flat.size == model.flat.size


def test_loss_and_grads_returns_new_arrays():
    model, rng = make_model([2, 3, 1], ["tanh"], "sigmoid", seed=14)
    X = rng.normal(size=(4, 2))
    Y = rng.integers(0, 2, size=(4, 1)).astype(float)
    _, g1 = model.loss_and_grads(X, Y, LOSSES["bce"])
    kept = [g.copy() for g in g1]
    model.loss_and_grads(X[:2] * 3, Y[:2], LOSSES["bce"])
    for a, b in zip(g1, kept):
        np.testing.assert_array_equal(a, b)


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
        a1 = sigmoid(z1)
        z2 = W2 @ a1 + b2
        y_hat = sigmoid(z2)
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
    hand = _hand_grads_221(W1, b1, W2, b2, X, Y)
    expected = [p - eta * g for p, g in zip([W1, b1, W2, b2], hand)]

    # the per-tensor form: one optimizer over the parameter arrays
    model = MLP([W1.copy(), W2.copy()], [b1.copy(), b2.copy()], ["sigmoid"], "sigmoid")
    _, grads = model.loss_and_grads(X, Y, LOSSES["bce"])
    for g, h in zip(grads, hand):
        np.testing.assert_allclose(g, h, rtol=0, atol=1e-12)
    SGD([p for _, p in model.params()], lr=eta).step(grads)
    for (name, p), e in zip(model.params(), expected):
        np.testing.assert_allclose(p, e, rtol=0, atol=1e-12, err_msg=name)
    # the step moved the weights downhill
    before = MLP([W1, W2], [b1, b2], ["sigmoid"], "sigmoid").objective(X, Y, LOSSES["bce"])
    assert model.objective(X, Y, LOSSES["bce"]) < before

    # the trainer's form: one optimizer over the flat array, with the flat gradient
    flat_model = MLP([W1.copy(), W2.copy()], [b1.copy(), b2.copy()], ["sigmoid"], "sigmoid")
    flat_model.forward(X)
    SGD([flat_model.flat], lr=eta).step([flat_model.backward(X, Y, LOSSES["bce"])])
    for (name, p), e in zip(flat_model.params(), expected):
        np.testing.assert_allclose(p, e, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_optimizers_update_model_in_place(name):
    W1, b1, W2, b2 = _tiny_221()
    model = MLP([W1.copy(), W2.copy()], [b1.copy(), b2.copy()], ["sigmoid"], "sigmoid")
    X = np.array([[0.5, -1.2]])
    Y = np.array([[1.0]])
    opt = OPTIMIZERS[name]([model.flat], 0.1)
    before = model.objective(X, Y, LOSSES["bce"])
    hand = _hand_grads_221(W1, b1, W2, b2, X, Y)
    model.forward(X)
    opt.step([model.backward(X, Y, LOSSES["bce"])])
    if name == "momentum":  # first step: v = g
        expected = [p - 0.1 * g for p, g in zip([W1, b1, W2, b2], hand)]
    else:  # first step: m_hat = g, v_hat = g^2
        expected = [p - 0.1 * g / (np.abs(g) + 1e-8) for p, g in zip([W1, b1, W2, b2], hand)]
    for (_, p), e in zip(model.params(), expected):
        np.testing.assert_allclose(p, e, rtol=1e-10, atol=1e-12)
    assert model.objective(X, Y, LOSSES["bce"]) < before


def test_sgd_descends_loss_on_every_pair():
    rng = np.random.default_rng(0)
    checked = 0
    for loss_name, output in itertools.product(sorted(LOSSES), ["sigmoid", "softmax", "identity"]):
        if output not in LOSSES[loss_name].valid_outputs():
            continue
        k = 1 if loss_name == "bce" else 3
        model, _ = make_model([2, 3, k], ["tanh"], output, seed=1)
        X = rng.normal(size=(8, 2))
        Y = targets_for(loss_name, output, 8, k, rng)
        e0, g = model.loss_and_grads(X, Y, LOSSES[loss_name])
        SGD([p for _, p in model.params()], 1e-3).step(g)
        assert model.objective(X, Y, LOSSES[loss_name]) < e0, (loss_name, output)
        checked += 1
    assert checked == 5
