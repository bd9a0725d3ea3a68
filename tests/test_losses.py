"""Loss functions E(y, y_hat) (LECTURE.md section 4): the worked example, the textbook
formulas, stability at |z| = 1000, and grad against central differences of value."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from nncli.losses import LOSSES

H = 1e-6


def _quiet():
    """Context: every warning is an error and overflow / log(0) / NaN raise."""
    class _Ctx:
        def __enter__(self):
            self.w = warnings.catch_warnings()
            self.w.__enter__()
            warnings.simplefilter("error")
            self.e = np.errstate(over="raise", divide="raise", invalid="raise")
            self.e.__enter__()

        def __exit__(self, *exc):
            self.e.__exit__(*exc)
            return self.w.__exit__(*exc)

    return _Ctx()


def textbook_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ----------------------------------------------------------------------------- the worked example


def test_lecture_cross_entropy_example_from_probabilities():
    y = np.array([[0.0, 1.0, 0.0]])
    y_hat = np.array([[0.1, 0.7, 0.2]])
    E = LOSSES["cross_entropy"].value(y, y_hat, y_hat, "identity")
    assert math.isclose(E, -math.log(0.7), rel_tol=1e-12)
    assert round(E, 4) == 0.3567


def test_lecture_cross_entropy_example_from_logits():
    y = np.array([[0.0, 1.0, 0.0]])
    y_hat = np.array([[0.1, 0.7, 0.2]])
    Z = np.log(y_hat)  # softmax(log p) = p because p sums to 1
    E = LOSSES["cross_entropy"].value(y, y_hat, Z, "softmax")
    assert math.isclose(E, -math.log(0.7), rel_tol=1e-12)
    # logits are only defined up to a constant shift: the loss must not change
    E2 = LOSSES["cross_entropy"].value(y, y_hat, Z + 123.0, "softmax")
    assert math.isclose(E2, -math.log(0.7), rel_tol=1e-10)


def test_cross_entropy_is_mean_over_samples():
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    A = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    E = LOSSES["cross_entropy"].value(Y, A, np.log(A), "softmax")
    assert math.isclose(E, (-math.log(0.7) - math.log(0.5)) / 2, rel_tol=1e-12)
    E = LOSSES["cross_entropy"].value(Y, A, A, "identity")
    assert math.isclose(E, (-math.log(0.7) - math.log(0.5)) / 2, rel_tol=1e-12)


def test_default_and_valid_outputs_follow_the_lecture():
    assert LOSSES["bce"].default_output == "sigmoid"
    assert LOSSES["cross_entropy"].default_output == "softmax"
    assert LOSSES["mse"].default_output == "identity"
    for loss in LOSSES.values():
        assert loss.default_output in loss.valid_outputs


# ----------------------------------------------------------------------------- binary cross-entropy


def test_bce_from_logits_equals_textbook_formula():
    rng = np.random.default_rng(0)
    Z = rng.uniform(-8, 8, size=(50, 1))
    Y = rng.integers(0, 2, size=(50, 1)).astype(float)
    s = textbook_sigmoid(Z)
    expected = np.mean(-Y * np.log(s) - (1 - Y) * np.log(1 - s))
    got = LOSSES["bce"].value(Y, s, Z, "sigmoid")
    assert math.isclose(got, expected, rel_tol=1e-10)


def test_bce_from_probabilities_equals_textbook_formula():
    rng = np.random.default_rng(1)
    A = rng.uniform(0.02, 0.98, size=(30, 1))
    Y = rng.integers(0, 2, size=(30, 1)).astype(float)
    expected = np.mean(-Y * np.log(A) - (1 - Y) * np.log(1 - A))
    got = LOSSES["bce"].value(Y, A, A, "identity")
    assert math.isclose(got, expected, rel_tol=1e-12)


def test_bce_single_sample_numbers():
    # y = 1, y_hat = s(0) = 1/2: E = log 2; y = 0, z = log 3: y_hat = 3/4, E = -log(1/4) = log 4
    bce = LOSSES["bce"]
    assert math.isclose(bce.value(np.array([[1.0]]), np.array([[0.5]]), np.array([[0.0]]), "sigmoid"), math.log(2), rel_tol=1e-14)
    z = np.array([[math.log(3)]])
    assert math.isclose(bce.value(np.array([[0.0]]), textbook_sigmoid(z), z, "sigmoid"), math.log(4), rel_tol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_finite_at_large_logits(dtype):
    bce = LOSSES["bce"]
    Z = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]], dtype=dtype)
    with _quiet():
        A = np.where(Z > 0, 1.0, 0.0).astype(dtype)  # what a sigmoid gives in floating point
        wrong = bce.value(np.array([[0.0], [1.0]], dtype=dtype), A[:2], Z[:2], "sigmoid")
        right = bce.value(np.array([[1.0], [0.0]], dtype=dtype), A[2:], Z[2:], "sigmoid")
    # confidently wrong by a logit of 1000: -log s(-1000) = 1000 per sample
    assert math.isfinite(wrong) and math.isclose(wrong, 1000.0, rel_tol=1e-6)
    # confidently right: -log s(1000) = log(1 + e^-1000) ~ 0
    assert math.isfinite(right) and 0.0 <= right < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_finite_at_large_logits(dtype):
    ce = LOSSES["cross_entropy"]
    Z = np.array([[1000.0, -1000.0, 0.0], [1000.0, -1000.0, 0.0]], dtype=dtype)
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
    with _quiet():
        A = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
        E = ce.value(Y, A, Z, "softmax")
    # sample 1: -log softmax_2 = 1000 - (-1000) = 2000; sample 2: ~0
    assert math.isfinite(E) and math.isclose(E, 1000.0, rel_tol=1e-6)


# ----------------------------------------------------------------------------- quadratic cost


def test_mse_is_half_sum_of_squares_mean_over_samples():
    Y = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    A = np.array([[1.5, 0.0], [0.0, 1.0], [2.0, 3.0]])
    per_sample = 0.5 * np.array([0.25 + 4.0, 0.0 + 4.0, 1.0 + 0.0])
    got = LOSSES["mse"].value(Y, A, A, "identity")
    assert math.isclose(got, per_sample.mean(), rel_tol=1e-15)
    assert math.isclose(got, (2.125 + 2.0 + 0.5) / 3, rel_tol=1e-15)


def test_mse_single_value():
    # 1/2 (3 - 1)^2 = 2
    assert LOSSES["mse"].value(np.array([[3.0]]), np.array([[1.0]]), np.array([[1.0]]), "identity") == 2.0


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
        num[idx] = (loss.value(Y, Ap, Ap, "identity") - loss.value(Y, Am, Am, "identity")) / (2 * H)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_value_is_a_python_scalar(name):
    loss = LOSSES[name]
    Y, A = _targets_and_outputs(name, np.random.default_rng(3))
    v = loss.value(Y, A, A, "identity")
    assert np.ndim(v) == 0 and math.isfinite(float(v))
