"""nncli.losses: loss functions E(y, y_hat) (LECTURE.md section 4).

The worked example, the textbook formulas, stability at |z| = 1000, grad against central
differences of value, the stable logit forms against the plain forms, which form
``Loss.mean`` picks, the model's output delta against finite differences of E in z_L for
every (loss, output) pair, and the model's fused loss against a naive computation.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from helpers import naive_forward, no_fp_warnings, random_mlp, sigmoid, targets_for
from nncli.activations import ACTIVATIONS
from nncli.losses import LOSSES, bce, bce_grad, bce_logits, cross_entropy, cross_entropy_logits, quadratic
from nncli.model import MLP

H = 1e-6


LOGIT_LOSSES = [n for n in sorted(LOSSES) if LOSSES[n].logits is not None]


# ----------------------------------------------------------------------------- the worked example


def test_lecture_cross_entropy_example_from_probabilities():
    y = np.array([[0.0, 1.0, 0.0]])
    y_hat = np.array([[0.1, 0.7, 0.2]])
    E = LOSSES["cross_entropy"].value(y, y_hat)
    assert math.isclose(E, -math.log(0.7), rel_tol=1e-12)
    assert round(E, 4) == 0.3567
    assert cross_entropy(y, y_hat) == E


def test_lecture_cross_entropy_example_from_logits():
    y = np.array([[0.0, 1.0, 0.0]])
    y_hat = np.array([[0.1, 0.7, 0.2]])
    Z = np.log(y_hat)  # softmax(log p) = p because p sums to 1
    ce = LOSSES["cross_entropy"]
    E = ce.mean(y, y_hat, Z, "softmax")
    assert math.isclose(E, -math.log(0.7), rel_tol=1e-12)
    assert math.isclose(ce.logits(y, Z), -math.log(0.7), rel_tol=1e-12)
    # logits are only defined up to a constant shift: the loss must not change
    E2 = ce.mean(y, y_hat, Z + 123.0, "softmax")
    assert math.isclose(E2, -math.log(0.7), rel_tol=1e-10)


def test_cross_entropy_is_mean_over_samples():
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    A = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    want = (-math.log(0.7) - math.log(0.5)) / 2
    assert math.isclose(LOSSES["cross_entropy"].mean(Y, A, np.log(A), "softmax"), want, rel_tol=1e-12)
    assert math.isclose(LOSSES["cross_entropy"].value(Y, A), want, rel_tol=1e-12)


def test_default_and_valid_outputs_follow_the_lecture():
    assert LOSSES["bce"].default_output == "sigmoid"
    assert LOSSES["cross_entropy"].default_output == "softmax"
    assert LOSSES["mse"].default_output == "identity"
    assert LOSSES["bce"].valid_outputs() == ("sigmoid",)
    assert LOSSES["cross_entropy"].valid_outputs() == ("softmax",)
    for loss in LOSSES.values():
        assert loss.default_output in loss.valid_outputs()
    # the lecture's matching pairs, where delta_L = (y_hat - y) / n
    assert {n: LOSSES[n].shortcut_output for n in ("bce", "cross_entropy", "mse")} == {
        "bce": "sigmoid", "cross_entropy": "softmax", "mse": "identity"}
    assert {n: LOSSES[n].task for n in ("bce", "cross_entropy", "mse")} == {
        "bce": "binary", "cross_entropy": "multiclass", "mse": "regression"}


def test_valid_outputs_of_an_unrestricted_loss_are_read_at_call_time(monkeypatch):
    # mse takes any output activation; one registered later is valid too
    assert set(LOSSES["mse"].valid_outputs()) == set(ACTIVATIONS)
    monkeypatch.setitem(ACTIVATIONS, "tanh_again", ACTIVATIONS["tanh"])
    assert "tanh_again" in LOSSES["mse"].valid_outputs()
    assert "tanh_again" not in LOSSES["bce"].valid_outputs()


# ----------------------------------------------------------------------------- binary cross-entropy


def test_bce_from_logits_equals_textbook_formula():
    rng = np.random.default_rng(0)
    Z = rng.uniform(-8, 8, size=(50, 1))
    Y = rng.integers(0, 2, size=(50, 1)).astype(float)
    s = sigmoid(Z)
    expected = np.mean(-Y * np.log(s) - (1 - Y) * np.log(1 - s))
    assert math.isclose(LOSSES["bce"].mean(Y, s, Z, "sigmoid"), expected, rel_tol=1e-10)
    assert math.isclose(bce_logits(Y, Z), expected, rel_tol=1e-10)


def test_bce_from_probabilities_equals_textbook_formula():
    rng = np.random.default_rng(1)
    A = rng.uniform(0.02, 0.98, size=(30, 1))
    Y = rng.integers(0, 2, size=(30, 1)).astype(float)
    expected = np.mean(-Y * np.log(A) - (1 - Y) * np.log(1 - A))
    assert math.isclose(LOSSES["bce"].value(Y, A), expected, rel_tol=1e-12)
    assert math.isclose(bce(Y, A), expected, rel_tol=1e-12)


def test_bce_single_sample_numbers():
    # y = 1, y_hat = s(0) = 1/2: E = log 2; y = 0, z = log 3: y_hat = 3/4, E = -log(1/4) = log 4
    loss = LOSSES["bce"]
    assert math.isclose(loss.mean(np.array([[1.0]]), np.array([[0.5]]), np.array([[0.0]]), "sigmoid"), math.log(2),
                        rel_tol=1e-14)
    z = np.array([[math.log(3)]])
    assert math.isclose(loss.mean(np.array([[0.0]]), sigmoid(z), z, "sigmoid"), math.log(4), rel_tol=1e-12)
    assert math.isclose(loss.value(np.array([[0.0]]), np.array([[0.75]])), math.log(4), rel_tol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_finite_at_large_logits(dtype):
    loss = LOSSES["bce"]
    Z = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]], dtype=dtype)
    with no_fp_warnings():
        A = np.where(Z > 0, 1.0, 0.0).astype(dtype)  # what a sigmoid gives in floating point
        wrong = loss.mean(np.array([[0.0], [1.0]], dtype=dtype), A[:2], Z[:2], "sigmoid")
        right = loss.mean(np.array([[1.0], [0.0]], dtype=dtype), A[2:], Z[2:], "sigmoid")
    # confidently wrong by a logit of 1000: -log s(-1000) = 1000 per sample
    assert math.isfinite(wrong) and math.isclose(wrong, 1000.0, rel_tol=1e-6)
    # confidently right: -log s(1000) = log(1 + e^-1000) ~ 0
    assert math.isfinite(right) and 0.0 <= right < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_finite_at_large_logits(dtype):
    ce = LOSSES["cross_entropy"]
    Z = np.array([[1000.0, -1000.0, 0.0], [1000.0, -1000.0, 0.0]], dtype=dtype)
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
    with no_fp_warnings():
        A = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
        E = ce.mean(Y, A, Z, "softmax")
    # sample 1: -log softmax_2 = 1000 - (-1000) = 2000; sample 2: ~0
    assert math.isfinite(E) and math.isclose(E, 1000.0, rel_tol=1e-6)


# moved from test_reliability.py (numerics): BCE and cross-entropy at |z| = 1000 in both dtypes

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("z, y, expected", [(1000, 0, 1000.0), (-1000, 1, 1000.0), (1000, 1, 0.0), (-1000, 0, 0.0)])
def test_bce_at_extreme_logits(dtype, z, y, expected):
    Z = np.array([[z]], dtype=dtype)
    Y = np.array([[y]], dtype=dtype)
    loss = LOSSES["bce"]
    with no_fp_warnings():
        A = ACTIVATIONS["sigmoid"](Z)
        E = loss.mean(Y, A, Z, "sigmoid")
        g = loss.grad(Y, A)
    assert math.isfinite(E) and E >= 0
    assert E == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(
    "z, y, expected",
    [((1000, -1000), (0, 1), 2000.0), ((1000, -1000), (1, 0), 0.0), ((-1000, -1000), (1, 0), math.log(2)),
     ((1000, 1000), (0, 1), math.log(2))],
)
def test_cross_entropy_at_extreme_logits(dtype, z, y, expected):
    Z = np.array([z], dtype=dtype)
    Y = np.array([y], dtype=dtype)
    loss = LOSSES["cross_entropy"]
    with no_fp_warnings():
        A = ACTIVATIONS["softmax"](Z)
        E = loss.mean(Y, A, Z, "softmax")
        g = loss.grad(Y, A)
    assert np.all((A >= 0) & (A <= 1))
    assert math.isfinite(E) and E >= 0
    # E = logsumexp(z) - z_y: in float32 the difference of two numbers near 1000 keeps
    # about 1000 * 2^-23 ~ 1e-4 of absolute precision
    assert E == pytest.approx(expected, rel=1e-6, abs=1e-6 if dtype == np.float64 else 1e-3)
    assert np.all(np.isfinite(g))


# ----------------------------------------------------------------------------- quadratic cost


def test_mse_is_half_sum_of_squares_mean_over_samples():
    Y = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    A = np.array([[1.5, 0.0], [0.0, 1.0], [2.0, 3.0]])
    per_sample = 0.5 * np.array([0.25 + 4.0, 0.0 + 4.0, 1.0 + 0.0])
    got = LOSSES["mse"].value(Y, A)
    assert math.isclose(got, per_sample.mean(), rel_tol=1e-15)
    assert math.isclose(got, (2.125 + 2.0 + 0.5) / 3, rel_tol=1e-15)
    assert quadratic(Y, A) == got
    assert LOSSES["mse"].mean(Y, A, A, "identity") == got


def test_mse_single_value():
    # 1/2 (3 - 1)^2 = 2
    assert LOSSES["mse"].value(np.array([[3.0]]), np.array([[1.0]])) == 2.0


# ----------------------------------------------------------------------------- grad vs value


def _targets_and_outputs(name, rng, n=6, k=3):
    if name == "bce":
        Y = rng.integers(0, 2, size=(n, 1)).astype(float)
        A = rng.uniform(0.05, 0.95, size=(n, 1))
    elif name == "cross_entropy":
        Y = np.eye(k)[rng.integers(0, k, size=n)]
        A = rng.uniform(0.05, 0.95, size=(n, k))
    else:
        Y = rng.normal(size=(n, k))
        A = rng.normal(size=(n, k))
    return Y, A


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_grad_matches_central_differences_of_value(name):
    loss = LOSSES[name]
    rng = np.random.default_rng(5)
    Y, A = _targets_and_outputs(name, rng)
    g = loss.grad(Y, A)
    assert g.shape == A.shape
    num = np.zeros_like(A)
    for idx in np.ndindex(*A.shape):
        Ap, Am = A.copy(), A.copy()
        Ap[idx] += H
        Am[idx] -= H
        num[idx] = (loss.value(Y, Ap) - loss.value(Y, Am)) / (2 * H)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_value_is_a_python_scalar(name):
    loss = LOSSES[name]
    Y, A = _targets_and_outputs(name, np.random.default_rng(3))
    v = loss.value(Y, A)
    assert type(v) is float and math.isfinite(v)
    if loss.logits is not None:
        v = loss.logits(Y, np.log(A))
        assert type(v) is float and math.isfinite(v)


def test_bce_grad_is_the_textbook_derivative():
    # dE/dy_hat = (y_hat - y) / (y_hat (1 - y_hat)) / n
    Y = np.array([[1.0], [0.0]])
    A = np.array([[0.25], [0.8]])
    np.testing.assert_allclose(bce_grad(Y, A), [[(0.25 - 1) / (0.25 * 0.75) / 2], [0.8 / (0.8 * 0.2) / 2]], rtol=1e-14)


# ----------------------------------------------------------------------------- logit forms against plain forms


def _logits_and_targets(name, rng, n=40, k=4, scale=6.0):
    Z = rng.normal(scale=scale, size=(n, 1 if name == "bce" else k))
    if name == "bce":
        Y = rng.integers(0, 2, size=(n, 1)).astype(np.float64)
    else:
        Y = np.eye(k)[rng.integers(0, k, size=n)]
    return Y, Z


def test_every_logit_form_is_covered():
    assert set(LOGIT_LOSSES) >= {"bce", "cross_entropy"}
    assert LOSSES["bce"].logits is bce_logits and LOSSES["cross_entropy"].logits is cross_entropy_logits
    assert LOSSES["mse"].logits is None


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", LOGIT_LOSSES)
def test_logit_form_equals_plain_form_of_the_activation(name, seed):
    """loss.logits(Y, Z) == loss.value(Y, f(Z)) in float64 wherever the plain form is finite
    and accurate: no probability it takes the log of is clipped, and 1 - y_hat is not
    reduced to a few digits by cancellation (y_hat within [1e-6, 1 - 1e-6])."""
    loss = LOSSES[name]
    act = ACTIVATIONS[loss.logits_output]
    rng = np.random.default_rng(seed)
    Y, Z = _logits_and_targets(name, rng, scale=[1.0, 4.0, 10.0, 25.0][seed])
    A = act(Z)
    # keep the rows where the plain form is accurate: for bce both log(y_hat) and
    # log(1 - y_hat) count; for cross-entropy only log(y_hat) of the true class
    if name == "bce":
        ok = np.all((A > 1e-6) & (A < 1 - 1e-6), axis=1)
    else:
        ok = np.sum(Y * A, axis=1) > 1e-14
    assert ok.sum() >= 10, "test setup: too few rows where the plain form is accurate"
    Y, Z, A = Y[ok], Z[ok], A[ok]
    with no_fp_warnings():
        fast, plain = loss.logits(Y, Z), loss.value(Y, A)
    assert math.isfinite(plain) and plain > 0
    assert math.isclose(fast, plain, rel_tol=1e-9, abs_tol=1e-12), (fast, plain)
    # the scratch arrays give the same number
    scratch = (np.empty_like(Z), np.empty_like(Z))
    assert loss.logits(Y, Z, scratch) == fast


@pytest.mark.parametrize("name", LOGIT_LOSSES)
def test_logit_form_is_finite_where_the_plain_form_clips(name):
    loss = LOSSES[name]
    act = ACTIVATIONS[loss.logits_output]
    k = 1 if name == "bce" else 3
    Z = np.full((2, k), -60.0)
    Z[:, 0] = 60.0  # confidently class 1 (bce) or class 0 (cross-entropy)
    Y = np.zeros((2, k))
    if name == "bce":
        Y[1, 0] = 0.0  # wrong by a logit of 60: E = softplus(60) = 60 (+ tiny)
    else:
        Y[:, 1] = 1.0  # wrong: E = logsumexp(z) - z_1 = 60 + 60 = 120 (+ tiny)
    with no_fp_warnings():
        fast = loss.logits(Y, Z)
        plain = loss.value(Y, act(Z))
    want = 60.0 if name == "bce" else 120.0
    assert math.isclose(fast, want, rel_tol=1e-12)
    assert plain < want - 10  # the plain form clips y_hat at 1e-15: -log(1e-15) = 34.5


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_mean_uses_the_logit_form_exactly_for_its_output(name):
    """Loss.mean reads Z (the logit form) when output == logits_output, A (the plain form)
    for every other output. Z and A are chosen inconsistent so the two forms differ."""
    loss = LOSSES[name]
    rng = np.random.default_rng(17)
    k = 1 if name == "bce" else 3
    Y, A = _targets_and_outputs(name, rng, n=5, k=k)
    Z = rng.normal(scale=3.0, size=A.shape)  # not the logits of A
    plain = loss.value(Y, A)
    for output in ACTIVATIONS:
        got = loss.mean(Y, A, Z, output)
        if loss.logits is not None and output == loss.logits_output:
            assert got == loss.logits(Y, Z), output
            assert got != plain, "test setup: the two forms must differ"
        else:
            assert got == plain, output


# ----------------------------------------------------------------------------- the model's output delta


def _pair_cases():
    out = []
    for name in sorted(LOSSES):
        for output in LOSSES[name].valid_outputs():
            out.append((name, output))
    return out


PAIRS = _pair_cases()


def test_every_pair_is_covered():
    assert ("bce", "sigmoid") in PAIRS and ("cross_entropy", "softmax") in PAIRS
    assert {("mse", o) for o in ACTIVATIONS} <= set(PAIRS)


@pytest.mark.parametrize("name,output", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_model_output_delta_equals_finite_difference_dE_dz(name, output):
    """delta_L = dE/dz_L, whether the model takes the shortcut (y_hat - y) / n or the chain rule.

    A one-layer network with X = I (n inputs, n samples) and b = 0 has z_L = W^T (row s is
    column s of W), and dE/dW[k, s] = sum_r delta[r, k] X[r, s] = delta[s, k]: the gradient
    of W is delta_L transposed. The reference is a central difference of the plain loss
    E(Z) = value(Y, f(Z)) in each z_L element.
    """
    loss = LOSSES[name]
    act = ACTIVATIONS[output]
    rng = np.random.default_rng(zlib.crc32(f"{name}-{output}".encode()))
    n, k = 5, 1 if name == "bce" else 3
    Z = rng.uniform(-2.5, 2.5, size=(n, k))
    if act.has_kink:
        Z = np.where(np.abs(Z) < 0.1, 0.5, Z)
    Y = targets_for(name, output, n, k, rng)
    model = MLP([Z.T.copy()], [np.zeros(k)], [], output)
    X = np.eye(n)
    model.forward(X)
    np.testing.assert_array_equal(model.pre_activations()[-1], Z)  # test setup: z_L is Z
    delta = model.backward(X, Y, loss)[: n * k].reshape(k, n).T.copy()  # the W part of the flat gradient
    num = np.zeros_like(Z)
    for idx in np.ndindex(*Z.shape):
        Zp, Zm = Z.copy(), Z.copy()
        Zp[idx] += H
        Zm[idx] -= H
        num[idx] = (loss.value(Y, act(Zp)) - loss.value(Y, act(Zm))) / (2 * H)
    np.testing.assert_allclose(delta, num, rtol=1e-6, atol=1e-9)
    if act.zero_gradient:
        assert np.all(delta == 0)
    else:
        assert np.abs(num).max() > 1e-3, "test setup: a non-trivial gradient"
    if output == loss.shortcut_output:  # the lecture's shortcut: exactly (y_hat - y) / n
        np.testing.assert_allclose(delta, (act(Z) - Y) / n, rtol=1e-14, atol=1e-17)


# ----------------------------------------------------------------------------- the model's fused loss (moved from test_fast_paths.py)


def naive_loss(name, Y, A):
    Y, A = Y.astype(np.float64), A.astype(np.float64)
    if name == "bce":
        return float(-np.mean(Y * np.log(A) + (1 - Y) * np.log(1 - A)))
    return float(-np.mean(np.sum(Y * np.log(A), axis=1)))


LOSS_NETS = {
    "bce": ([4, 6, 1], ["tanh"], "sigmoid"),
    "cross_entropy": ([5, 7, 4], ["relu"], "softmax"),
}


def _targets(loss_name, n, K, dtype, rng):
    if loss_name == "bce":
        return (rng.random((n, 1)) < 0.4).astype(dtype)
    Y = np.zeros((n, K), dtype)
    Y[np.arange(n), rng.integers(K, size=n)] = 1
    return Y


RTOL = {np.float32: 1e-6, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_name", list(LOSS_NETS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_model_loss_fused_equals_loss_value(dtype, loss_name, seed):
    sizes, hidden, output = LOSS_NETS[loss_name]
    model = random_mlp(sizes, hidden, output, dtype, seed=80 + seed)
    loss = LOSSES[loss_name]
    rng = np.random.default_rng(90 + seed)
    n = 29
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    Y = _targets(loss_name, n, sizes[-1], dtype, rng)
    A = model.forward(X)
    got = model.loss(Y, loss)
    ref = loss.value(Y, A)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, ref, rtol=RTOL[dtype])
    np.testing.assert_allclose(got, loss.logits(Y, model.pre_activations()[-1]), rtol=RTOL[dtype])
    # and both are the textbook loss of the naive forward pass
    _, A_naive = naive_forward(model, X)
    np.testing.assert_allclose(got, naive_loss(loss_name, Y, A_naive), rtol=1e-5 if dtype == np.float32 else 1e-10)
    assert got > 0.05
    # objective() is the same number from X
    assert model.objective(X, Y, loss) == got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_name", list(LOSS_NETS))
def test_model_loss_fused_on_a_short_batch_after_a_full_one(dtype, loss_name):
    """The model's buffers trimmed to a short last batch: stale rows beyond it do not count."""
    sizes, hidden, output = LOSS_NETS[loss_name]
    model = random_mlp(sizes, hidden, output, dtype, seed=100)
    loss = LOSSES[loss_name]
    rng = np.random.default_rng(101)
    bs, m = 32, 13
    # a full batch first, so the rows beyond m hold stale numbers
    X_full = (rng.normal(size=(bs, sizes[0])) * 5).astype(dtype)
    Y_full = _targets(loss_name, bs, sizes[-1], dtype, rng)
    A_full = model.forward(X_full).copy()
    full = model.loss(Y_full, loss)
    np.testing.assert_allclose(full, loss.value(Y_full, A_full), rtol=RTOL[dtype])
    X = rng.normal(size=(m, sizes[0])).astype(dtype)
    Y = _targets(loss_name, m, sizes[-1], dtype, rng)
    A = model.forward(X)
    assert A.shape[0] == m and model.pre_activations()[-1].shape[0] == m
    got = model.loss(Y, loss)
    np.testing.assert_allclose(got, loss.value(Y, A), rtol=RTOL[dtype])
    # the same batch in a fresh model that never saw a larger batch
    fresh = MLP([W.copy() for W in model.W], [b.copy() for b in model.b], model.hidden, model.output)
    A2 = fresh.forward(X)
    assert fresh.loss(Y, loss) == got
    np.testing.assert_array_equal(A2, A)
    _, A_naive = naive_forward(model, X)
    np.testing.assert_allclose(got, naive_loss(loss_name, Y, A_naive), rtol=1e-5 if dtype == np.float32 else 1e-10)
    assert abs(got - full) > 1e-3  # the short batch is not the full batch's loss


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_name", list(LOSS_NETS))
def test_model_loss_fused_large_logits(dtype, loss_name):
    # |z| in the hundreds: the fused paths stay finite and still equal the logit formulas
    sizes, hidden, output = LOSS_NETS[loss_name]
    model = random_mlp(sizes, hidden, output, dtype, seed=110, bias_scale=50.0, weight_scale=60.0)
    loss = LOSSES[loss_name]
    rng = np.random.default_rng(111)
    n = 25
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    Y = _targets(loss_name, n, sizes[-1], dtype, rng)
    with np.errstate(over="raise", invalid="raise"):
        model.forward(X)
        got = model.loss(Y, loss)
    Zl = model.pre_activations()[-1]
    assert np.abs(Zl).max() > 100
    assert np.isfinite(got)
    np.testing.assert_allclose(got, loss.mean(Y, model.forward(X), Zl, output), rtol=RTOL[dtype])
    # reference from the float64 logits: softplus(z) - y z, or logsumexp(z) - sum y z
    Z = Zl.astype(np.float64)
    Y64 = Y.astype(np.float64)
    if loss_name == "bce":
        want = float(np.mean(np.logaddexp(0, Z) - Y64 * Z))
    else:
        mx = Z.max(1, keepdims=True)
        want = float(np.mean(mx[:, 0] + np.log(np.exp(Z - mx).sum(1)) - (Y64 * Z).sum(1)))
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
