"""nncli.activations: activations f, their derivatives f' and backward (LECTURE.md sections 3 and 5).

References are independent of nncli: the lecture's table and formulas written out with
plain numpy, the softmax Jacobian built by hand, and central finite differences in float64.
Tests over "every registered activation" read the registry when they are collected, so an
activation registered by a plugin is covered too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import no_fp_warnings
from nncli.activations import ACTIVATIONS, hidden_activations

NAMES = sorted(ACTIVATIONS)
ELEMENTWISE = [n for n in NAMES if ACTIVATIONS[n].elementwise]
KINKED = {"step", "relu", "leaky_relu"}  # the lecture's: derivative undefined at z = 0
H = 1e-6


def central_diff(f, z, h=H):
    """Elementwise central difference of an elementwise function, float64."""
    return (f(z + h) - f(z - h)) / (2 * h)


def sample_z(name, shape=(4, 6), seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(-4, 4, size=shape)
    if name in KINKED or ACTIVATIONS[name].has_kink:
        # keep every point well away from the kink at 0 so z +- h stays on one side
        z = np.where(np.abs(z) < 0.1, np.sign(z + 1e-12) * 0.5, z)
        assert np.min(np.abs(z)) >= 0.1
    return z


# ----------------------------------------------------------------------------- the registry


def test_registry_has_the_lecture_activations():
    for name in ("step", "sigmoid", "tanh", "relu", "softmax", "identity"):
        assert name in ACTIVATIONS
        assert ACTIVATIONS[name].name == name


def test_flags_follow_the_lecture():
    # kinks: the derivative is undefined at z = 0; zero gradient: f' = 0 wherever it exists
    assert {n for n in NAMES if ACTIVATIONS[n].has_kink} == KINKED
    assert {n for n in NAMES if ACTIVATIONS[n].zero_gradient} == {"step"}
    # softmax couples its outputs: no elementwise derivative, so it is an output only
    assert not ACTIVATIONS["softmax"].elementwise
    assert set(hidden_activations()) == set(NAMES) - {"softmax"}
    assert set(hidden_activations()) == set(ELEMENTWISE)


def test_hidden_activations_is_read_at_call_time(monkeypatch):
    act = ACTIVATIONS["tanh"]
    monkeypatch.setitem(ACTIVATIONS, "tanh_again", act)
    assert "tanh_again" in hidden_activations()
    monkeypatch.delitem(ACTIVATIONS, "tanh_again")
    assert "tanh_again" not in hidden_activations()


# ----------------------------------------------------------------------------- the lecture's table


def test_hadamard_product_in_elementwise_backward():
    # (1, 2) ⊙ (3, 4) = (3, 8): pick z so that tanh'(z) = 1 - tanh(z)^2 = (3, 4) / 10,
    # then backward(z, a, g = (1, 2)) = g ⊙ f'(z) must be (3, 8) / 10.
    fprime = np.array([0.3, 0.4])
    z = np.arctanh(np.sqrt(1 - fprime))
    act = ACTIVATIONS["tanh"]
    a = act(z)
    g = np.array([1.0, 2.0])
    np.testing.assert_allclose(act.backward(z, a, g), np.array([3.0, 8.0]) / 10, rtol=1e-12)
    # the same product with relu: derivative (0, 1) at z = (-1, 2) masks the first entry
    relu = ACTIVATIONS["relu"]
    z = np.array([-1.0, 2.0])
    np.testing.assert_array_equal(relu.backward(z, relu(z), np.array([3.0, 4.0])), [0.0, 4.0])
    # identity: f' = 1, so g passes unchanged
    ident = ACTIVATIONS["identity"]
    z = np.array([-5.0, 7.0])
    np.testing.assert_array_equal(ident.backward(z, ident(z), np.array([3.0, 8.0])), [3.0, 8.0])


def test_sigmoid_value_and_derivative_s_times_one_minus_s():
    act = ACTIVATIONS["sigmoid"]
    z = np.array([-6.0, -2.0, -0.5, 0.0, 0.5, 2.0, 6.0])
    s = 1.0 / (1.0 + np.exp(-z))  # the lecture's 1 / (1 + e^-z)
    np.testing.assert_allclose(act(z), s, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(act(z), np.exp(z) / (np.exp(z) + 1), rtol=1e-14)  # e^z / (e^z + 1)
    np.testing.assert_allclose(act.derivative(z, act(z)), s * (1 - s), rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(act.derivative(z), s * (1 - s), rtol=1e-12, atol=1e-16)  # a computed from z
    assert act(np.array([0.0]))[0] == 0.5
    assert act.derivative(np.array([0.0]), np.array([0.5]))[0] == 0.25


def test_tanh_value_and_derivative_one_minus_tanh_squared():
    act = ACTIVATIONS["tanh"]
    z = np.array([-3.0, -1.0, -0.2, 0.0, 0.2, 1.0, 3.0])
    t = (np.exp(z) - np.exp(-z)) / (np.exp(z) + np.exp(-z))
    np.testing.assert_allclose(act(z), t, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(act.derivative(z, act(z)), 1 - t**2, rtol=1e-12, atol=1e-16)
    assert act.derivative(np.array([0.0]))[0] == 1.0


def test_step_values_and_zero_derivative():
    act = ACTIVATIONS["step"]
    z = np.array([-1000.0, -3.0, -1e-9, 0.0, 1e-9, 2.0, 1000.0])
    np.testing.assert_array_equal(act(z), [0, 0, 0, 1, 1, 1, 1])  # 0 for z < 0, 1 for z >= 0
    zz = z[z != 0]
    d = act.derivative(zz)
    np.testing.assert_array_equal(d, np.zeros_like(zz))
    # nothing passes backwards through a step
    g = np.linspace(-3, 3, zz.size)
    np.testing.assert_array_equal(act.backward(zz, act(zz), g), np.zeros_like(zz))


def test_relu_values_and_derivative():
    act = ACTIVATIONS["relu"]
    z = np.array([-5.0, -0.5, -1e-9, 1e-9, 0.5, 5.0])
    np.testing.assert_array_equal(act(z), [0, 0, 0, 1e-9, 0.5, 5.0])
    np.testing.assert_array_equal(act.derivative(z), [0, 0, 0, 1, 1, 1])


def test_leaky_relu_values_and_derivative():
    act = ACTIVATIONS["leaky_relu"]
    z = np.array([-5.0, -0.5, 0.5, 5.0])
    np.testing.assert_allclose(act(z), [-0.05, -0.005, 0.5, 5.0], rtol=1e-15)
    np.testing.assert_allclose(act.derivative(z), [0.01, 0.01, 1, 1], rtol=1e-15)


def test_identity_value_and_derivative():
    act = ACTIVATIONS["identity"]
    z = np.array([[-2.5, 0.0, 3.25]])
    np.testing.assert_array_equal(act(z), z)
    np.testing.assert_array_equal(act.derivative(z), np.ones_like(z))


def test_softmax_definition_and_one_hot_limit():
    act = ACTIVATIONS["softmax"]
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.0, 5.0, 0.5]])
    e = np.exp(z)
    np.testing.assert_allclose(act(z), e / e.sum(axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(act(z)[1], [1 / 3] * 3, rtol=1e-15)
    # softmax of log-probabilities gives the probabilities back (lecture example y_hat)
    p = np.array([[0.1, 0.7, 0.2]])
    np.testing.assert_allclose(act(np.log(p)), p, rtol=1e-14)


# ----------------------------------------------------------------------------- finite differences


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_central_differences(name):
    act = ACTIVATIONS[name]
    z = sample_z(name)
    num = central_diff(act, z)
    np.testing.assert_allclose(act.derivative(z, act(z)), num, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(act.derivative(z), num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_backward_is_g_hadamard_numerical_derivative(name):
    act = ACTIVATIONS[name]
    z = sample_z(name, seed=1)
    g = np.random.default_rng(2).normal(size=z.shape)
    num = g * central_diff(act, z)
    np.testing.assert_allclose(act.backward(z, act(z), g), num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_backward_is_exactly_g_times_derivative(name):
    # the elementwise backward is the Hadamard product g ⊙ f'(z), to the bit
    act = ACTIVATIONS[name]
    z = sample_z(name, shape=(6, 5), seed=3)
    g = np.random.default_rng(4).normal(size=z.shape)
    a = act(z)
    np.testing.assert_array_equal(act.backward(z, a, g), g * act.derivative(z, a))


def _softmax_jacobian(a):
    """J[j, k] = d softmax_j / d z_k = a_j (delta_jk - a_k), built entry by entry."""
    K = a.shape[0]
    J = np.empty((K, K))
    for j in range(K):
        for k in range(K):
            J[j, k] = a[j] * ((1.0 if j == k else 0.0) - a[k])
    return J


@pytest.mark.parametrize("shape", [(1, 2), (4, 3), (5, 6)])
def test_softmax_backward_is_the_hand_built_jacobian_times_g(shape):
    act = ACTIVATIONS["softmax"]
    rng = np.random.default_rng(8)
    z = rng.normal(scale=2.0, size=shape)
    g = rng.normal(size=shape)
    a = act(z)
    want = np.stack([_softmax_jacobian(a_row).T @ g_row for a_row, g_row in zip(a, g)])  # dE/dz = J^T g
    np.testing.assert_allclose(act.backward(z, a, g), want, rtol=1e-13, atol=1e-15)
    # the Jacobian is symmetric, and its rows sum to 0 (softmax outputs always sum to 1)
    J = _softmax_jacobian(a[0])
    np.testing.assert_allclose(J, J.T, rtol=0, atol=1e-16)
    np.testing.assert_allclose(J.sum(axis=0), 0.0, atol=1e-15)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 6)])
def test_softmax_backward_is_jacobian_vector_product(shape):
    act = ACTIVATIONS["softmax"]
    rng = np.random.default_rng(7)
    z = rng.normal(scale=2.0, size=shape)
    g = rng.normal(size=shape)
    a = act(z)
    got = act.backward(z, a, g)
    # d/dz_j of sum(g * softmax(z)), one coordinate at a time
    num = np.zeros_like(z)
    for idx in np.ndindex(*shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += H
        zm[idx] -= H
        num[idx] = (np.sum(g * act(zp)) - np.sum(g * act(zm))) / (2 * H)
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=-30, max_value=30, allow_nan=False))
def test_sigmoid_symmetry_and_range(z):
    s = ACTIVATIONS["sigmoid"]
    x = np.array([z, -z])
    y = s(x)
    assert 0.0 <= y[0] <= 1.0 and 0.0 <= y[1] <= 1.0
    assert math.isclose(y[0] + y[1], 1.0, rel_tol=0, abs_tol=1e-15)  # s(-z) = 1 - s(z)


# ----------------------------------------------------------------------------- numerical stability


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_stable_at_large_inputs(name, dtype):
    act = ACTIVATIONS[name]
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, 999.0],
                  [-1.0, 1000.0, 2.0]], dtype=dtype)
    g = np.ones_like(z)
    with no_fp_warnings():
        a = act(z)
        back = act.backward(z, a, g)
        d = act.derivative(z, a) if act.elementwise else None
    assert a.dtype == dtype and back.dtype == dtype
    assert np.all(np.isfinite(a)), a
    assert np.all(np.isfinite(back)), back
    if d is not None:
        assert np.all(np.isfinite(d)), d
    if name == "sigmoid":
        assert np.all((a >= 0) & (a <= 1))
        assert a[0, 0] == 1.0 and a[0, 1] == 0.0
        assert a[0, 2] == 0.5
    if name == "tanh":
        assert a[0, 0] == 1.0 and a[0, 1] == -1.0
    if name == "softmax":
        assert np.all((a >= 0) & (a <= 1))
        np.testing.assert_allclose(a.sum(axis=-1), 1.0, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a[1], [1 / 3] * 3, rtol=1e-6)
        np.testing.assert_allclose(a[0], [1.0, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_limits_at_1000(dtype):
    s = ACTIVATIONS["sigmoid"]
    z = np.array([1000.0, -1000.0], dtype=dtype)
    with no_fp_warnings():
        a = s(z)
        d = s.derivative(z, a)
    np.testing.assert_array_equal(a, [1.0, 0.0])
    np.testing.assert_array_equal(d, [0.0, 0.0])


# moved from test_reliability.py (numerics): sigmoid and softmax at |z| = 1000 in both dtypes

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_sigmoid_at_extreme_logits(dtype):
    z = np.array([[1000.0], [-1000.0], [0.0]], dtype=dtype)
    act = ACTIVATIONS["sigmoid"]
    with no_fp_warnings():
        a = act(z)
        d = act.derivative(z, a)
    assert a.dtype == dtype and d.dtype == dtype
    assert np.all(np.isfinite(a)) and np.all((a >= 0) & (a <= 1))
    np.testing.assert_array_equal(a.ravel(), np.array([1.0, 0.0, 0.5], dtype=dtype))
    assert np.all(np.isfinite(d)) and np.all(d >= 0)
    np.testing.assert_array_equal(d.ravel(), np.array([0.0, 0.0, 0.25], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_softmax_at_extreme_logits(dtype):
    Z = np.array([[1000, -1000], [-1000, 1000], [1000, 1000], [-1000, -1000], [1000, 0]], dtype=dtype)
    act = ACTIVATIONS["softmax"]
    with no_fp_warnings():
        P = act(Z)
        back = act.backward(Z, P, np.ones_like(Z))
    assert P.dtype == dtype
    assert np.all(np.isfinite(P)) and np.all((P >= 0) & (P <= 1))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(P, [[1, 0], [0, 1], [0.5, 0.5], [0.5, 0.5], [1, 0]], atol=1e-6)
    assert np.all(np.isfinite(back))
    # g = 1 everywhere: dE/dz_j = a_j (1 - sum_k a_k) = 0, since the outputs sum to 1
    np.testing.assert_allclose(back, 0.0, atol=1e-6)


# ----------------------------------------------------------------------------- out= variants


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_call_and_body_with_out_give_identical_bits(name, dtype):
    """act(z) allocates and calls the one body f(z, out): the same bits as f into a buffer."""
    act = ACTIVATIONS[name]
    z = sample_z(name, shape=(5, 3), seed=11).astype(dtype)
    z[0, 0] = 0.0  # the kink itself, where every activation still has a defined value
    g = np.random.default_rng(12).normal(size=z.shape).astype(dtype)

    expected_a = act(z)
    assert expected_a.dtype == dtype and expected_a.shape == z.shape
    assert expected_a is not z
    buf = np.full_like(z, np.nan)
    ret = act.f(z, buf)
    assert ret is buf
    assert buf.tobytes() == expected_a.tobytes()
    buf = np.full_like(z, np.nan)
    ret = act(z, out=buf)
    assert ret is buf and buf.tobytes() == expected_a.tobytes()

    if act.elementwise:
        expected_d = act.derivative(z, expected_a)
        buf = np.full_like(z, np.nan)
        ret = act.df(z, expected_a, buf)
        assert ret is buf and buf.tobytes() == expected_d.tobytes()
        buf = np.full_like(z, np.nan)
        ret = act.derivative(z, expected_a, out=buf)
        assert ret is buf and buf.tobytes() == expected_d.tobytes()
        assert act.derivative(z).tobytes() == expected_d.tobytes()

    expected_b = act.backward(z, expected_a, g)
    buf = np.full_like(z, np.nan)
    ret = act.backward(z, expected_a, g, out=buf)
    assert ret is buf
    np.testing.assert_array_equal(buf, expected_b)

    # backward may write into g itself (the model reuses the delta buffer)
    g2 = g.copy()
    ret = act.backward(z, expected_a, g2, out=g2)
    np.testing.assert_allclose(g2, expected_b, rtol=1e-6 if dtype == np.float32 else 1e-15)
    np.testing.assert_allclose(ret, expected_b, rtol=1e-6 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_call_leaves_its_input_unchanged(name):
    act = ACTIVATIONS[name]
    z = sample_z(name, shape=(3, 4), seed=13)
    before = z.copy()
    a = act(z)
    act.backward(z, a, np.ones_like(z))
    if act.elementwise:
        act.derivative(z, a)
    np.testing.assert_array_equal(z, before)
