"""Loss functions E(y, y_hat) (LECTURE.md section 4) and the output activations they pair with.

Every loss is a scalar: the mean over the batch of the per-sample loss. Shapes:
``Y``, ``A``, ``Z``: (n_samples, K) for the targets, the output activations y_hat and the
output pre-activations z_L.

Each entry offers
- ``value(Y, A, Z, output)``: the mean loss. For the matching output activation it is
  computed from the logits Z (log-sum-exp / softplus), so it stays finite at |z| = 1000.
- ``grad(Y, A)``: dE/dy_hat for one batch (already divided by n), used with any other output
  activation through the full chain rule.
- the output activations that are valid with it, and the one it defaults to. For the
  matching pair the output delta is fused into the lecture's delta_L = (y_hat - y) / n.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# Probabilities are clipped to [EPS, 1 - EPS] only where a loss must take log(y_hat) of an
# activation other than its matching one.
_TINY = {np.dtype(np.float32): 1e-7, np.dtype(np.float64): 1e-15}


def bce_value(Y, A, Z, output):
    """E = -y log(y_hat) - (1 - y) log(1 - y_hat), mean over samples.

    With a sigmoid output, y_hat = s(z) and E = softplus(z) - y z exactly, which never
    takes the log of 0.
    """
    n = Y.shape[0]
    if output == "sigmoid":
        # -y log s(z) - (1 - y) log(1 - s(z)) = log(1 + e^z) - y z, with log(1 + e^z) = logaddexp(0, z)
        return float((np.logaddexp(0, Z) - Y * Z).sum() / n)
    eps = _TINY[A.dtype]
    P = np.clip(A, eps, 1 - eps)
    return float(-np.sum(Y * np.log(P) + (1 - Y) * np.log(1 - P)) / n)


def bce_grad(Y, A):
    eps = _TINY[A.dtype]
    P = np.clip(A, eps, 1 - eps)
    return (P - Y) / (P * (1 - P)) / Y.shape[0]


def ce_value(Y, A, Z, output):
    """E = -sum_j y_j log(y_hat_j), mean over samples.

    With a softmax output, log y_hat_j = z_j - logsumexp(z), computed with the max shift.
    """
    n = Y.shape[0]
    if output == "softmax":
        m = Z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(Z - m).sum(axis=1))  # log sum_k e^{z_k}, shifted by max z
        return float(lse.sum() / n - (Y * Z).sum() / n)
    eps = _TINY[A.dtype]
    return float(-np.sum(Y * np.log(np.clip(A, eps, 1))) / n)


def ce_grad(Y, A):
    eps = _TINY[A.dtype]
    return -Y / np.clip(A, eps, 1) / Y.shape[0]


def mse_value(Y, A, Z, output):
    """The quadratic cost E = 1/2 sum_j (y_j - y_hat_j)^2, mean over samples."""
    D = A - Y
    return float(0.5 * (D * D).sum() / Y.shape[0])


def mse_grad(Y, A):
    return (A - Y) / Y.shape[0]


@dataclass(frozen=True)
class Loss:
    name: str
    value: Callable
    grad: Callable
    default_output: str  # the matching output activation: delta_L = (y_hat - y) / n
    valid_outputs: tuple[str, ...]
    task: str  # "binary", "multiclass" or "regression"
    description: str


LOSSES: dict[str, Loss] = {
    "bce": Loss(
        "bce", bce_value, bce_grad, "sigmoid", ("sigmoid",), "binary",
        "binary cross-entropy; one output unit, targets with two classes",
    ),
    "cross_entropy": Loss(
        "cross_entropy", ce_value, ce_grad, "softmax", ("softmax",), "multiclass",
        "softmax cross-entropy with one-hot targets; one output unit per class",
    ),
    "mse": Loss(
        "mse", mse_value, mse_grad, "identity",
        ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "step"),
        "regression",
        "the quadratic cost 1/2 sum_j (y_j - y_hat_j)^2; numeric targets",
    ),
}
