"""Loss functions E(y, y_hat) (LECTURE.md section 4) and the output activations they pair with.

Every loss is a scalar: the mean over the batch of the per-sample loss. Shapes: ``Y``,
``A``, ``Z``: (n_samples, K) for the targets, the output activations y_hat = a_L and the
output pre-activations z_L.

Each entry of the registry states
- ``value(Y, A)``: the plain formula, as the lecture writes it;
- ``grad(Y, A)``: dE/dy_hat for the batch (already divided by n), which backpropagation
  combines with any output activation through the chain rule;
- ``logits``: optionally, the same loss written in terms of z_L for one output activation
  (``logits_output``): log-sum-exp or softplus, finite at |z| = 1000 where the plain
  formula would take log(0). It is used exactly when the network's output is that one;
- ``shortcut_output``: the output activation for which the output delta simplifies to
  the lecture's delta_L = (y_hat - y) / n (sigmoid + BCE, softmax + cross-entropy,
  identity + quadratic cost). Any other output goes through the full chain rule.
- ``outputs``: the output activations it may be used with (None: any), and the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .activations import ACTIVATIONS, const

# Probabilities are clipped to [EPS, 1 - EPS] only where the plain formula takes log(y_hat).
_TINY = {np.dtype(np.float32): 1e-7, np.dtype(np.float64): 1e-15}


def bce(Y, A):
    """E = -y log(y_hat) - (1 - y) log(1 - y_hat), mean over samples."""
    eps = _TINY[A.dtype]
    P = np.clip(A, eps, 1 - eps)
    return float(-np.sum(Y * np.log(P) + (1 - Y) * np.log(1 - P)) / Y.shape[0])


def bce_logits(Y, Z, scratch=None, stats=None):
    """BCE with y_hat = sigmoid(z): -y log s(z) - (1 - y) log(1 - s(z)) = log(1 + e^z) - y z,
    with log(1 + e^z) = logaddexp(0, z), which never takes the log of 0.

    ``scratch``: two arrays shaped like Z for the per-element terms (else allocated).
    (``stats`` is for the interface of logit forms: unused here.)
    """
    T, U = scratch if scratch is not None else (np.empty_like(Z), np.empty_like(Z))
    np.logaddexp(const(0.0, Z.dtype), Z, T)
    np.subtract(T, np.multiply(Y, Z, U), T)
    return float(np.add.reduce(T, None) / Y.shape[0])


def bce_grad(Y, A):
    eps = _TINY[A.dtype]
    P = np.clip(A, eps, 1 - eps)
    return (P - Y) / (P * (1 - P)) / Y.shape[0]


def cross_entropy(Y, A):
    """E = -sum_j y_j log(y_hat_j), mean over samples."""
    eps = _TINY[A.dtype]
    return float(-np.sum(Y * np.log(np.clip(A, eps, 1))) / Y.shape[0])


def cross_entropy_logits(Y, Z, scratch=None, stats=None):
    """Cross-entropy with y_hat = softmax(z): log y_hat_j = z_j - log sum_k e^{z_k}, where the
    log-sum-exp is m + log sum_k e^{z_k - m} with m = max_k z_k, so that exp never overflows.

    ``stats``: (m, s = sum_k e^{z_k - m}) as the forward pass's softmax computed them
    (activations.softmax), else they are computed here from Z.
    """
    n = Y.shape[0]
    if stats is None:
        m = Z.max(axis=1, keepdims=True)
        s = np.exp(Z - m).sum(axis=1, keepdims=True)
    else:
        m, s = stats
    lse = np.log(s)
    lse += m  # log sum_k e^{z_k}, one per row
    T = scratch[0] if scratch is not None else np.empty_like(Z)
    return float(np.add.reduce(lse, None) / n - np.add.reduce(np.multiply(Y, Z, T), None) / n)


def cross_entropy_grad(Y, A):
    eps = _TINY[A.dtype]
    return -Y / np.clip(A, eps, 1) / Y.shape[0]


def quadratic(Y, A):
    """The quadratic cost E = 1/2 sum_j (y_j - y_hat_j)^2, mean over samples."""
    D = A - Y
    return float(0.5 * (D * D).sum() / Y.shape[0])


def quadratic_grad(Y, A):
    return (A - Y) / Y.shape[0]


@dataclass(frozen=True)
class Loss:
    name: str
    value: Callable  # value(Y, A): the plain formula
    grad: Callable  # grad(Y, A): dE/dy_hat, divided by n
    task: str  # a key of nncli.tasks.TASKS
    default_output: str
    description: str
    outputs: Optional[tuple[str, ...]] = None  # valid output activations; None: any
    logits: Optional[Callable] = None  # logits(Y, Z, scratch=None, stats=None): the stable form for logits_output
    logits_output: Optional[str] = None
    shortcut_output: Optional[str] = None  # delta_L = (y_hat - y) / n holds for this output

    def valid_outputs(self) -> tuple[str, ...]:
        return self.outputs if self.outputs is not None else tuple(ACTIVATIONS)

    def mean(self, Y, A, Z, output: str, scratch=None, stats=None) -> float:
        """E over the batch: from the logits Z when ``output`` is the one the stable form is
        written for, else from A = y_hat with the plain formula. ``scratch`` and ``stats``
        (the output activation's row statistics) only save work."""
        if self.logits is not None and output == self.logits_output:
            return self.logits(Y, Z, scratch, stats)
        return self.value(Y, A)


LOSSES: dict[str, Loss] = {
    "bce": Loss(
        "bce", bce, bce_grad, "binary", "sigmoid",
        "binary cross-entropy; one output unit, targets with two classes",
        outputs=("sigmoid",), logits=bce_logits, logits_output="sigmoid", shortcut_output="sigmoid",
    ),
    "cross_entropy": Loss(
        "cross_entropy", cross_entropy, cross_entropy_grad, "multiclass", "softmax",
        "softmax cross-entropy with one-hot targets; one output unit per class",
        outputs=("softmax",), logits=cross_entropy_logits, logits_output="softmax", shortcut_output="softmax",
    ),
    "mse": Loss(
        "mse", quadratic, quadratic_grad, "regression", "identity",
        "the quadratic cost 1/2 sum_j (y_j - y_hat_j)^2; numeric targets",
        shortcut_output="identity",
    ),
}
