"""Activation functions f and their derivatives f' (LECTURE.md section 3).

A registry keyed by the name used in configs. Every function works on arrays of any
shape, elementwise (softmax: along the last axis), and is numerically stable: finite
results and no overflow warnings at |z| = 1000.

Each entry offers
- ``f(z, out=None)``: the activation a = f(z);
- ``df(z, a, out=None)``: the elementwise derivative f'(z), given z and a = f(z) (many
  derivatives are cheapest in terms of a: sigmoid' = a(1 - a), tanh' = 1 - a^2);
- ``backward(z, a, g, out=None)``: dE/dz from g = dE/da. For elementwise activations this
  is the lecture's Hadamard product g ⊙ f'(z); softmax couples its outputs, so its
  backward is the Jacobian-vector product a ⊙ (g - sum_k g_k a_k).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import functools

import numpy as np

LEAKY_SLOPE = 0.01


@functools.lru_cache(maxsize=None)
def const(value: float, dtype) -> np.ndarray:
    """``value`` as a read-only 0-d array of ``dtype``.

    Hot loops pass constants this way, and ``out`` positionally: numpy converts a Python
    float on every ufunc call, which costs about as much as the arithmetic on a small batch.
    The result is bit-identical (a Python float is cast to the array's dtype either way).
    """
    c = np.array(value, dtype=dtype)
    c.flags.writeable = False
    return c


def identity(z, out=None):
    if out is None:
        return np.array(z, copy=True)
    np.copyto(out, z)
    return out


def d_identity(z, a, out=None):
    if out is None:
        return np.ones_like(z)
    out.fill(1)
    return out


def step(z, out=None):
    """Binary step: 0 for z < 0, 1 for z >= 0."""
    if out is None:
        return (z >= 0).astype(np.result_type(z, np.float32))
    np.greater_equal(z, 0, out=out, casting="unsafe")
    return out


def d_step(z, a, out=None):
    """0 wherever it exists (undefined at z = 0): gradient descent cannot learn through it."""
    if out is None:
        return np.zeros_like(z)
    out.fill(0)
    return out


def sigmoid(z, out=None):
    """1 / (1 + e^-z), evaluated as e^min(z,0) / (1 + e^-|z|) so that exp never overflows."""
    if out is None:
        out = np.empty_like(z)
    one = const(1.0, out.dtype)
    e = np.abs(z)
    np.negative(e, e)
    np.exp(e, e)  # e = e^-|z|, in (0, 1]
    np.add(e, one, out)  # 1 + e^-|z|
    np.copyto(e, one, where=z >= 0)  # numerator: 1 for z >= 0, e^z for z < 0
    np.divide(e, out, out)
    return out


def d_sigmoid(z, a, out=None):
    """sigmoid'(z) = s(1 - s) with s = sigmoid(z)."""
    if out is None:
        return a * (1 - a)
    np.subtract(const(1.0, out.dtype), a, out)
    np.multiply(out, a, out)
    return out


def tanh(z, out=None):
    return np.tanh(z, out)


def d_tanh(z, a, out=None):
    """tanh'(z) = 1 - tanh(z)^2."""
    if out is None:
        return 1 - a * a
    np.multiply(a, a, out)
    np.subtract(const(1.0, out.dtype), out, out)
    return out


def relu(z, out=None):
    """0 for z < 0, z for z >= 0."""
    return np.maximum(z, const(0.0, z.dtype), out=out)  # (maximum takes out only by keyword)


def d_relu(z, a, out=None):
    """0 for z < 0, 1 for z > 0 (the value at 0, where it is undefined, is taken as 0)."""
    if out is None:
        return (z > 0).astype(z.dtype)
    np.greater(z, const(0.0, z.dtype), out, casting="unsafe")
    return out


def leaky_relu(z, out=None):
    """z for z >= 0, 0.01 z for z < 0."""
    res = np.where(z >= 0, z, LEAKY_SLOPE * z)
    if out is None:
        return res.astype(z.dtype, copy=False)
    np.copyto(out, res, casting="unsafe")
    return out


def d_leaky_relu(z, a, out=None):
    res = np.where(z > 0, 1.0, LEAKY_SLOPE)
    if out is None:
        return res.astype(z.dtype, copy=False)
    np.copyto(out, res, casting="unsafe")
    return out


def softmax(z, out=None):
    """e^{z_j} / sum_k e^{z_k} along the last axis, shifted by max_k z_k for stability."""
    if out is None:
        out = np.empty_like(z)
    np.subtract(z, z.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


def _elementwise_backward(df):
    def backward(z, a, g, out=None):
        """dE/dz = dE/da ⊙ f'(z) (the lecture's Hadamard product); ``out`` may be ``g``."""
        return np.multiply(g, df(z, a), out)

    return backward


def softmax_backward(z, a, g, out=None):
    """dE/dz_j = a_j (g_j - sum_k g_k a_k): the softmax Jacobian applied to g = dE/da."""
    s = np.sum(g * a, axis=-1, keepdims=True)
    if out is None:
        return a * (g - s)
    np.subtract(g, s, out=out)
    out *= a
    return out


@dataclass(frozen=True)
class Activation:
    name: str
    f: Callable
    df: Optional[Callable]  # elementwise derivative; None for softmax (not elementwise)
    backward: Callable
    has_kink: bool = False  # derivative undefined at z = 0 (finite differences may cross it)
    zero_gradient: bool = False  # f' = 0 wherever it exists
    hidden_ok: bool = True  # usable in hidden layers


def _make(name, f, df, **kw):
    return Activation(name, f, df, _elementwise_backward(df), **kw)


ACTIVATIONS: dict[str, Activation] = {
    "identity": _make("identity", identity, d_identity),
    "step": _make("step", step, d_step, has_kink=True, zero_gradient=True),
    "sigmoid": _make("sigmoid", sigmoid, d_sigmoid),
    "tanh": _make("tanh", tanh, d_tanh),
    "relu": _make("relu", relu, d_relu, has_kink=True),
    "leaky_relu": _make("leaky_relu", leaky_relu, d_leaky_relu, has_kink=True),
    "softmax": Activation("softmax", softmax, None, softmax_backward, hidden_ok=False),
}

HIDDEN_ACTIVATIONS = tuple(k for k, v in ACTIVATIONS.items() if v.hidden_ok)
