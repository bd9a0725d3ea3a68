"""The multilayer perceptron of LECTURE.md sections 2 and 5.

Layer l (l = 1..L) has weights W_l of shape (n_out, n_in), where W_l[i, j] connects
element j of its input to neuron i (the lecture's W_ij), and a bias b_l of shape (n_out,).
Samples are rows, so for a batch X of shape (n_samples, n_in) the lecture's column-vector
forms z_l = W_l a_{l-1} + b_l become Z_l = A_{l-1} W_l^T + b_l, with shape (n_samples, n_l).

Forward:   a_0 = x,  z_l = W_l a_{l-1} + b_l,  a_l = f_l(z_l),  y_hat = a_L.
Backward:  delta_L = dE/dy_hat ⊙ f_L'(z_L)   (= (y_hat - y) / n for the matching pairs)
           delta_l = (W_{l+1}^T delta_{l+1}) ⊙ f_l'(z_l)
           dE/dW_l = delta_l a_{l-1}^T,   dE/db_l = delta_l   (summed over the batch)

All buffers of one batch size live in a :class:`Workspace`, allocated once and reused, so
the training loop does not allocate per batch.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .activations import ACTIVATIONS, const
from .errors import ConfigError
from .losses import LOSSES, Loss

INIT_SCHEMES = ("xavier", "he", "normal")


def flat_views(flat: np.ndarray, shapes) -> list[np.ndarray]:
    """Consecutive views of ``flat`` with the given shapes."""
    out, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        out.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return out


class Workspace:
    """Preallocated buffers for a batch of ``n`` samples: Z_l, A_l, delta_l, f'(z_l), dW_l, db_l."""

    def __init__(self, model: "MLP", n: int):
        dt = model.dtype
        sizes = model.sizes
        self.n = n
        self.Z = [np.empty((n, k), dt) for k in sizes[1:]]
        self.A = [np.empty((n, k), dt) for k in sizes[1:]]
        self.D = [np.empty((n, k), dt) for k in sizes[1:]]
        self.S = [np.empty((n, k), dt) for k in sizes[1:]]  # f'(z_l) scratch
        # gradients in one flat array laid out like model.flat: dW_l, db_l are views
        self.grad_flat = np.empty_like(model.flat)
        views = flat_views(self.grad_flat, [x.shape for pair in zip(model.W, model.b) for x in pair])
        self.dW, self.db = views[0::2], views[1::2]
        self.W_tmp = [np.empty_like(W) for W in model.W]  # l2 W_l scratch
        # a softmax output keeps its row max and row sum of e^(z - max): cross-entropy reuses them
        self.rowmax = np.empty((n, 1), dt)
        self.rowsum = np.empty((n, 1), dt)
        # scratch for the batch loss: per-element terms T, U (n, n_L) and per-row terms (n, 1)
        self.T = np.empty((n, sizes[-1]), dt)
        self.U = np.empty((n, sizes[-1]), dt)
        self.col = np.empty((n, 1), dt)

    def view(self, n: int) -> "Workspace":
        """The same buffers, trimmed to the first ``n`` rows (for a short last batch)."""
        if n == self.n:
            return self
        v = object.__new__(Workspace)
        v.n = n
        v.Z, v.A, v.D, v.S = ([x[:n] for x in xs] for xs in (self.Z, self.A, self.D, self.S))
        v.rowmax, v.rowsum, v.T, v.U, v.col = (x[:n] for x in (self.rowmax, self.rowsum, self.T, self.U, self.col))
        v.dW, v.db, v.W_tmp, v.grad_flat = self.dW, self.db, self.W_tmp, self.grad_flat
        return v


class MLP:
    """Weights, forward and backward propagation. Hidden activations one per hidden layer."""

    def __init__(self, W: Sequence[np.ndarray], b: Sequence[np.ndarray], hidden: Sequence[str], output: str):
        if len(W) != len(b) or len(hidden) != len(W) - 1:
            raise ValueError("need one W and one b per layer and one activation per hidden layer")
        # All parameters live in one flat array, in the order W1, b1, W2, b2, ...; W_l and b_l
        # are views into it, so an optimizer updates every tensor with one ufunc call.
        dtype = np.result_type(*W, *b)
        self.flat = np.empty(sum(x.size for x in (*W, *b)), dtype)
        views = flat_views(self.flat, [x.shape for pair in zip(W, b) for x in pair])
        self.W, self.b = views[0::2], views[1::2]
        for dst, src in zip(views, [x for pair in zip(W, b) for x in pair]):
            dst[...] = src
        self.hidden = list(hidden)
        self.output = output
        self.acts = [ACTIVATIONS[h] for h in hidden] + [ACTIVATIONS[output]]
        self.WT = [W.T for W in self.W]  # W_l^T views, made once (forward uses them every batch)
        self._hidden_f = [a.f for a in self.acts[:-1]]
        self._hidden_df = [a.df for a in self.acts[:-1]]

    # ----------------------------------------------------------------- construction
    @classmethod
    def initialise(cls, sizes, hidden, output, rng: np.random.Generator, scheme="xavier", dtype="float32"):
        """Seeded initial weights; biases start at 0.

        xavier: U(-r, r) with r = sqrt(6 / (n_in + n_out)) (Glorot & Bengio);
        he: N(0, 2 / n_in) (He et al., for ReLU); normal: N(0, 0.1^2).
        Drawn in float64 and rounded to ``dtype``, so float32 and float64 runs start alike.
        """
        W, b = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            if scheme == "xavier":
                r = np.sqrt(6.0 / (n_in + n_out))
                w = rng.uniform(-r, r, size=(n_out, n_in))
            elif scheme == "he":
                w = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
            elif scheme == "normal":
                w = rng.standard_normal((n_out, n_in)) * 0.1
            else:
                raise ValueError(f"unknown init scheme {scheme!r}")
            W.append(np.ascontiguousarray(w, dtype=dtype))
            b.append(np.zeros(n_out, dtype=dtype))
        return cls(W, b, hidden, output)

    # ----------------------------------------------------------------- properties
    @property
    def sizes(self) -> list[int]:
        return [self.W[0].shape[1]] + [W.shape[0] for W in self.W]

    @property
    def dtype(self):
        return self.W[0].dtype

    @property
    def n_layers(self) -> int:
        return len(self.W)

    def params(self) -> list[tuple[str, np.ndarray]]:
        """[("W1", W_1), ("b1", b_1), ..., ("WL", W_L), ("bL", b_L)]: the arrays themselves."""
        out = []
        for l, (W, b) in enumerate(zip(self.W, self.b), start=1):
            out += [(f"W{l}", W), (f"b{l}", b)]
        return out

    def grads(self, ws: Workspace) -> list[np.ndarray]:
        """The gradients in ``ws`` in the order of :meth:`params`."""
        out = []
        for dW, db in zip(ws.dW, ws.db):
            out += [dW, db]
        return out

    def astype(self, dtype) -> "MLP":
        return MLP([W.astype(dtype) for W in self.W], [b.astype(dtype) for b in self.b], self.hidden, self.output)

    def copy(self) -> "MLP":
        return self.astype(self.dtype)

    def workspace(self, n: int) -> Workspace:
        return Workspace(self, n)

    # ----------------------------------------------------------------- propagation
    def forward(self, X: np.ndarray, ws: Workspace) -> np.ndarray:
        """Forward propagation of X (n, n_0); keeps z_l and a_l in ``ws``; returns y_hat (n, n_L).

        Hot path: ``out`` is passed positionally and constants as 0-d arrays (see
        activations.const); both save a large share of the time of a small batch.
        """
        a = X
        add = np.add
        for l, (z, a_out, WT, b) in enumerate(zip(ws.Z, ws.A, self.WT, self.b)):
            # z_l = W_l a_{l-1} + b_l, one row per sample. ndarray.dot with out= costs a third
            # of np.matmul's call overhead on small batches; it needs matching dtypes.
            if a.dtype == z.dtype:
                a.dot(WT, z)
            else:
                np.matmul(a, WT, z)
            add(z, b, z)
            if l < len(self._hidden_f):
                a = self._hidden_f[l](z, a_out)
        a = ws.A[-1]
        if self.output == "softmax":
            # softmax as in activations.softmax, keeping max_k z_k and sum_k e^(z_k - max)
            np.maximum.reduce(z, 1, None, ws.rowmax, True)  # max_k z_k, keepdims
            np.subtract(z, ws.rowmax, a)
            np.exp(a, a)
            np.add.reduce(a, 1, None, ws.rowsum, True)  # sum_k, keepdims
            np.divide(a, ws.rowsum, a)
            return a
        return self.acts[-1].f(z, a)

    def batch_loss(self, Y: np.ndarray, ws: Workspace, loss: Loss) -> float:
        """The mean loss of the batch just propagated with :meth:`forward` (without L2).

        softmax + cross-entropy reuses the forward pass's row max m and row sum s:
        log sum_k e^{z_k} = m + log s, the same numbers ce_value computes from Z.
        """
        n = Y.shape[0]
        reduce, Z, T = np.add.reduce, ws.Z[-1], ws.T
        if loss.name == "cross_entropy" and self.output == "softmax":
            lse = ws.col
            np.log(ws.rowsum, lse)
            np.add(ws.rowmax, lse, lse)  # log sum_k e^{z_k} per row
            np.multiply(Y, Z, T)
            return float(reduce(lse, None) / n - reduce(T, None) / n)
        if loss.name == "bce" and self.output == "sigmoid":
            # as losses.bce_value: softplus(z) - y z, with softplus(z) = logaddexp(0, z)
            np.logaddexp(const(0.0, Z.dtype), Z, T)
            np.subtract(T, np.multiply(Y, Z, ws.U), T)
            return float(reduce(T, None) / n)
        return loss.value(Y, ws.A[-1], Z, self.output)

    def backward(self, X: np.ndarray, Y: np.ndarray, ws: Workspace, loss: Loss, l2: float = 0.0) -> None:
        """Backpropagation after :meth:`forward` on the same X; fills ws.dW and ws.db.

        The gradients are of the batch-mean loss plus (l2 / 2) sum_l ||W_l||^2.
        """
        L = self.n_layers
        n = X.shape[0]
        matmul, multiply, reduce = np.matmul, np.multiply, np.add.reduce
        D = ws.D[L - 1]
        if self.output == loss.default_output:
            # fused output delta for the matching pairs: delta_L = (y_hat - y) / n
            np.subtract(ws.A[L - 1], Y, D)
            multiply(D, const(1.0 / n, D.dtype), D)
        else:
            # full chain rule: delta_L = dE/dy_hat ⊙ f_L'(z_L) (a Jacobian product for softmax)
            self.acts[-1].backward(ws.Z[L - 1], ws.A[L - 1], loss.grad(Y, ws.A[L - 1]), D)
        for l in range(L - 1, -1, -1):
            a_prev = X if l == 0 else ws.A[l - 1]
            D = ws.D[l]
            if a_prev.dtype == D.dtype:
                D.T.dot(a_prev, ws.dW[l])  # dE/dW_l = delta_l a_{l-1}^T
            else:
                matmul(D.T, a_prev, ws.dW[l])
            reduce(D, 0, None, ws.db[l])  # dE/db_l = delta_l, summed over the batch
            if l2:
                multiply(self.W[l], const(l2, D.dtype), ws.W_tmp[l])
                np.add(ws.dW[l], ws.W_tmp[l], ws.dW[l])  # + l2 W_l, the gradient of (l2 / 2) ||W_l||^2
            if l > 0:
                # delta_{l-1} = (W_l^T delta_l) ⊙ f'(z_{l-1})  (hidden activations are elementwise)
                D_prev = ws.D[l - 1]
                D.dot(self.W[l], D_prev)
                multiply(D_prev, self._hidden_df[l - 1](ws.Z[l - 1], ws.A[l - 1], ws.S[l - 1]), D_prev)

    # ----------------------------------------------------------------- conveniences
    def predict(self, X: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """y_hat for X (n, n_0), in chunks of ``chunk`` rows so memory does not grow with n."""
        X = np.asarray(X, dtype=self.dtype)
        out = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        ws = None
        for s in range(0, X.shape[0], chunk):
            xb = X[s : s + chunk]
            if ws is None or ws.n < xb.shape[0]:
                ws = Workspace(self, xb.shape[0])
            out[s : s + xb.shape[0]] = self.forward(xb, ws.view(xb.shape[0]))
        return out

    def loss(self, X, Y, loss: Loss, l2: float = 0.0) -> float:
        """E(W) on (X, Y): the mean loss plus (l2 / 2) sum_l ||W_l||^2."""
        ws = Workspace(self, X.shape[0])
        A = self.forward(X, ws)
        E = loss.value(Y, A, ws.Z[-1], self.output)
        if l2:
            E += 0.5 * l2 * float(sum(np.sum(W.astype(np.float64) ** 2) for W in self.W))
        return E

    def loss_and_grads(self, X, Y, loss: Loss, l2: float = 0.0):
        """(E, [dE/dW1, dE/db1, ...]) on (X, Y), with freshly allocated gradient arrays."""
        ws = Workspace(self, X.shape[0])
        A = self.forward(X, ws)
        E = loss.value(Y, A, ws.Z[-1], self.output)
        if l2:
            E += 0.5 * l2 * float(sum(np.sum(W.astype(np.float64) ** 2) for W in self.W))
        self.backward(X, Y, ws, loss, l2)
        return E, [g.copy() for g in self.grads(ws)]

    # ----------------------------------------------------------------- persistence
    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.params())


def load_weights(path, sizes: Optional[Sequence[int]] = None, what: str = "weights") -> tuple[list, list]:
    """W1..WL and b1..bL from an .npz file (never unpickles), checked against ``sizes``.

    Raises ConfigError naming the file and the tensor on any problem.
    """
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            L = len(sizes) - 1 if sizes is not None else sum(1 for k in keys if k.startswith("W") and k[1:].isdigit())
            if L < 1:
                raise ConfigError(f"{path}: no weights W1..WL in this {what} file")
            W, b = [], []
            for l in range(1, L + 1):
                for name in (f"W{l}", f"b{l}"):
                    if name not in keys:
                        raise ConfigError(f"{path}: tensor '{name}' is missing (expected W1..W{L} and b1..b{L})")
                try:
                    Wl, bl = z[f"W{l}"], z[f"b{l}"]
                except ValueError as e:  # object arrays need pickle: refused
                    raise ConfigError(f"{path}: tensor 'W{l}' or 'b{l}' holds pickled objects; refused ({e})") from None
                if sizes is not None:
                    want_W, want_b = (sizes[l], sizes[l - 1]), (sizes[l],)
                    if Wl.shape != want_W:
                        raise ConfigError(f"{path}: tensor 'W{l}' has shape {Wl.shape}, expected {want_W} (n_out, n_in)")
                    if bl.shape != want_b:
                        raise ConfigError(f"{path}: tensor 'b{l}' has shape {bl.shape}, expected {want_b}")
                for name, t in ((f"W{l}", Wl), (f"b{l}", bl)):
                    if t.dtype.kind not in "fiu":
                        raise ConfigError(f"{path}: tensor '{name}' has dtype {t.dtype}, expected numbers")
                    if not np.all(np.isfinite(t)):
                        raise ConfigError(f"{path}: tensor '{name}' holds NaN or infinite values")
                W.append(Wl)
                b.append(bl)
            if sizes is not None and f"W{L + 1}" in keys:
                raise ConfigError(f"{path}: holds more layers than the {L} the config describes")
            return W, b
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
        raise ConfigError(f"{path}: not a readable .npz {what} file ({e})") from None


def check_output_pairing(loss_name: str, output: str) -> None:
    loss = LOSSES[loss_name]
    if output not in loss.valid_outputs:
        raise ConfigError(
            f"model.output: '{output}' cannot be used with loss '{loss_name}'; "
            f"valid: {', '.join(loss.valid_outputs)}"
        )
