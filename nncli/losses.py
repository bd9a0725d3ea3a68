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
- ``rows`` / ``logits_rows``: the per-sample loss E_i (a vector of n), for the class-weighted
  mean (classification losses only).

Class weights (``train.class_weight``, :meth:`Loss.weighted`): with a weight w_c per class,
the loss is (1/n) sum_i w_{y_i} E_i, Keras' ``class_weight`` semantics (divided by n, not
by sum_i w_{y_i} as torch's ``CrossEntropyLoss(weight=...)``), and its gradient scales the
output delta of row i by w_{y_i}: delta_L = w ⊙ (y_hat - y) / n.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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


def bce_rows(Y, A):
    """E_i = -y_i log(y_hat_i) - (1 - y_i) log(1 - y_hat_i), one per sample."""
    eps = _TINY[A.dtype]
    P = np.clip(A, eps, 1 - eps)
    return -(Y * np.log(P) + (1 - Y) * np.log(1 - P)).sum(axis=1)


def bce_logits_rows(Y, Z, stats=None):
    """E_i = log(1 + e^{z_i}) - y_i z_i, one per sample (bce_logits before the mean)."""
    return (np.logaddexp(const(0.0, Z.dtype), Z) - Y * Z).sum(axis=1)


def cross_entropy_rows(Y, A):
    """E_i = -sum_j y_ij log(y_hat_ij), one per sample."""
    eps = _TINY[A.dtype]
    return -(Y * np.log(np.clip(A, eps, 1))).sum(axis=1)


def cross_entropy_logits_rows(Y, Z, stats=None):
    """E_i = log sum_k e^{z_ik} - sum_j y_ij z_ij, one per sample (cross_entropy_logits before the mean)."""
    if stats is None:
        m = Z.max(axis=1, keepdims=True)
        s = np.exp(Z - m).sum(axis=1, keepdims=True)
    else:
        m, s = stats
    return (np.log(s) + m)[:, 0] - (Y * Z).sum(axis=1)


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
    rows: Optional[Callable] = None  # rows(Y, A) -> (n,): the per-sample E_i (classification losses)
    logits_rows: Optional[Callable] = None  # logits_rows(Y, Z, stats=None) -> (n,), for logits_output
    # w_c per class in the task's encoding order (binary: (w for class 0, w for class 1)); None: unweighted
    class_weight: Optional[tuple[float, ...]] = None

    def valid_outputs(self) -> tuple[str, ...]:
        return self.outputs if self.outputs is not None else tuple(ACTIVATIONS)

    def weighted(self, class_weight) -> "Loss":
        """This loss with the weight w_c of each class (None: this loss itself): the mean over
        samples of w_{y_i} E_i, as Keras' ``class_weight``."""
        if class_weight is None:
            return self
        if self.rows is None:
            raise ValueError(f"loss '{self.name}' is not a classification loss: class weights do not apply")
        return replace(self, class_weight=tuple(float(w) for w in class_weight))

    @property
    def unweighted(self) -> "Loss":
        """The same loss without class weights (what validation, eval and the summary report, as Keras does)."""
        return self if self.class_weight is None else replace(self, class_weight=None)

    def row_weights(self, Y: np.ndarray) -> np.ndarray:
        """w_{y_i} of every row of the encoded targets Y (0/1 column, or one-hot rows), shape (n, 1)."""
        w = np.asarray(self.class_weight, dtype=Y.dtype)
        if Y.shape[1] == 1:  # binary: y in {0, 1}
            return np.where(Y >= 0.5, w[1], w[0])
        return Y.dot(w)[:, None]  # one-hot: exactly w of the row's class

    def output_grad(self, Y, A) -> np.ndarray:
        """dE/dy_hat (divided by n), each row scaled by w_{y_i} when the loss is class-weighted."""
        G = self.grad(Y, A)
        return G if self.class_weight is None else G * self.row_weights(Y)

    def mean(self, Y, A, Z, output: str, scratch=None, stats=None) -> float:
        """E over the batch: from the logits Z when ``output`` is the one the stable form is
        written for, else from A = y_hat with the plain formula. ``scratch`` and ``stats``
        (the output activation's row statistics) only save work. Class-weighted: (1/n) sum_i w_{y_i} E_i."""
        if self.class_weight is not None:
            E = (self.logits_rows(Y, Z, stats) if self.logits_rows is not None and output == self.logits_output
                 else self.rows(Y, A))
            return float(self.row_weights(Y)[:, 0].dot(E) / Y.shape[0])
        if self.logits is not None and output == self.logits_output:
            return self.logits(Y, Z, scratch, stats)
        return self.value(Y, A)


LOSSES: dict[str, Loss] = {
    "bce": Loss(
        "bce", bce, bce_grad, "binary", "sigmoid",
        "binary cross-entropy; one output unit, targets with two classes",
        outputs=("sigmoid",), logits=bce_logits, logits_output="sigmoid", shortcut_output="sigmoid",
        rows=bce_rows, logits_rows=bce_logits_rows,
    ),
    "cross_entropy": Loss(
        "cross_entropy", cross_entropy, cross_entropy_grad, "multiclass", "softmax",
        "softmax cross-entropy with one-hot targets; one output unit per class",
        outputs=("softmax",), logits=cross_entropy_logits, logits_output="softmax", shortcut_output="softmax",
        rows=cross_entropy_rows, logits_rows=cross_entropy_logits_rows,
    ),
    "mse": Loss(
        "mse", quadratic, quadratic_grad, "regression", "identity",
        "the quadratic cost 1/2 sum_j (y_j - y_hat_j)^2; numeric targets",
        shortcut_output="identity",
    ),
}


def class_weights(spec, classes, Y: np.ndarray) -> Optional[list[float]]:
    """train.class_weight resolved to one weight per class, in the order of ``classes`` (the
    task's encoding order), from the encoded training targets ``Y`` (a 0/1 column or one-hot
    rows). ``spec``: None (no weights), "balanced" (w_c = n / (k count_c), scikit-learn's
    compute_class_weight("balanced")), or a mapping label -> weight naming every class.
    ConfigError (one line naming the key) for a regression, an unknown or missing label."""
    from .errors import ConfigError

    if spec is None:
        return None
    if classes is None:
        raise ConfigError("train.class_weight: class weights apply to classification (loss bce or cross_entropy), "
                          "not to a regression; remove train.class_weight")
    k = len(classes)
    if spec == "balanced":
        codes = (Y[:, 0] >= 0.5).astype(np.int64) if Y.shape[1] == 1 else Y.argmax(axis=1)
        counts = np.bincount(codes, minlength=k)
        if (counts == 0).any():
            c = classes[int(np.flatnonzero(counts == 0)[0])]
            raise ConfigError(f"train.class_weight: balanced: class '{c}' has no training rows; "
                              "give the weights as a mapping label: weight")
        return [float(w) for w in len(codes) / (k * counts.astype(np.float64))]
    unknown = [str(label) for label in spec if str(label) not in classes]
    if unknown:
        raise ConfigError(f"train.class_weight.{unknown[0]}: no class '{unknown[0]}' in the training target "
                          f"(classes: {', '.join(classes)}); quote labels that YAML reads as numbers")
    missing = [c for c in classes if c not in spec]
    if missing:
        raise ConfigError(f"train.class_weight: no weight for class '{missing[0]}'; give one weight per class "
                          f"({', '.join(classes)}) or balanced")
    return [float(spec[c]) for c in classes]
