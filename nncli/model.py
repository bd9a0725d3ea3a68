"""The multilayer perceptron of LECTURE.md sections 2 and 5.

Layer l (l = 1..L) has weights W_l of shape (n_out, n_in), where W_l[i, j] connects
element j of its input to neuron i (the lecture's W_ij), and a bias b_l of shape (n_out,).
Samples are rows, so for a batch X of shape (n_samples, n_in) the lecture's column-vector
forms z_l = W_l a_{l-1} + b_l become Z_l = A_{l-1} W_l^T + b_l, with shape (n_samples, n_l).

Forward:   a_0 = x,  z_l = W_l a_{l-1} + b_l,  a_l = f_l(z_l),  y_hat = a_L.
Backward:  delta_L = dE/dy_hat ⊙ f_L'(z_L)   (= (y_hat - y) / n for the matching pairs)
           delta_l = (W_{l+1}^T delta_{l+1}) ⊙ f_l'(z_l)
           dE/dW_l = delta_l a_{l-1}^T,   dE/db_l = delta_l   (summed over the batch)

Dropout (model.dropout, a rate p_l per hidden layer; inverted dropout, training only): a
training forward pass draws a mask m_l (each unit kept, m = 1, with probability 1 - p_l)
and uses a_l = f_l(z_l) ⊙ m_l / (1 - p_l) as the next layer's input; backward then has
delta_l = (W_{l+1}^T delta_{l+1}) ⊙ m_l / (1 - p_l) ⊙ f_l'(z_l) and dE/dW_{l+1} takes the
masked a_l. Without a generator (eval, predict, the pictures, validation) no mask is drawn:
the full network.

Class weights live in the Loss (losses.Loss.weighted): the output delta of row i is scaled
by w_{y_i}, delta_L = w ⊙ (y_hat - y) / n.

All parameters live in one flat array (W_l and b_l are views into it), so an optimizer
updates them with one call per step. The buffers of a batch (z_l, a_l, delta_l, the
gradients) are the model's own, allocated once per batch size and reused.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from .activations import ACTIVATIONS, const
from .errors import ConfigError
from .losses import Loss


def flat_views(flat: np.ndarray, shapes) -> list[np.ndarray]:
    """Consecutive views of ``flat`` with the given shapes."""
    out, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        out.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return out


# ---------------------------------------------------------------------- initialisations


def xavier(n_in: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """U(-r, r) with r = sqrt(6 / (n_in + n_out)) (Glorot & Bengio)."""
    r = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-r, r, size=(n_out, n_in))


def he(n_in: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """N(0, 2 / n_in) (He et al., for ReLU)."""
    return rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)


def normal(n_in: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """N(0, 0.1^2)."""
    return rng.standard_normal((n_out, n_in)) * 0.1


# name -> init(n_in, n_out, rng) giving W of shape (n_out, n_in) in float64
INITS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {"xavier": xavier, "he": he, "normal": normal}


class _Buffers:
    """A batch's arrays: Z_l, A_l, delta_l, f'(z_l) scratch, the loss's scratch, and the
    gradients (one flat array laid out like the parameters: dW_l, db_l are views)."""

    def __init__(self, model: "MLP", n: int):
        dt, sizes = model.dtype, model.sizes
        self.n = n
        self.Z, self.A, self.D, self.S = ([np.empty((n, k), dt) for k in sizes[1:]] for _ in range(4))
        self.loss_scratch = (np.empty((n, sizes[-1]), dt), np.empty((n, sizes[-1]), dt))
        self.stats = (np.empty((n, 1), dt), np.empty((n, 1), dt))  # the output's row stats (softmax)
        self.grad_flat = np.empty_like(model.flat)
        views = flat_views(self.grad_flat, [x.shape for pair in zip(model.W, model.b) for x in pair])
        self.dW, self.db = views[0::2], views[1::2]
        self.W_tmp = [np.empty_like(W) for W in model.W]  # l2 W_l scratch
        # dropout (hidden layers with p_l > 0, else None): uniforms, the scaled masks m_l / (1 - p_l), masked a_l
        self.U, self.M, self.H = ([np.empty((n, k), d) if p > 0 else None for k, p in zip(sizes[1:-1], model.dropout)]
                                  for d in (np.float64, dt, dt))

    def first(self, n: int) -> "_Buffers":
        """The same buffers trimmed to the first ``n`` rows (a short last batch)."""
        if n == self.n:
            return self
        v = object.__new__(_Buffers)
        v.n = n
        v.Z, v.A, v.D, v.S = ([x[:n] for x in xs] for xs in (self.Z, self.A, self.D, self.S))
        v.loss_scratch = tuple(x[:n] for x in self.loss_scratch)
        v.stats = tuple(x[:n] for x in self.stats)
        v.grad_flat, v.dW, v.db, v.W_tmp = self.grad_flat, self.dW, self.db, self.W_tmp
        v.U, v.M, v.H = ([None if x is None else x[:n] for x in xs] for xs in (self.U, self.M, self.H))
        return v


def _dot(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a @ b. ndarray.dot with out= costs a third of np.matmul's call overhead on
    small batches, but needs matching dtypes."""
    if a.dtype == out.dtype == b.dtype:
        a.dot(b, out)
    else:
        np.matmul(a, b, out)


class MLP:
    """Weights, forward and backward propagation; one activation per hidden layer."""

    def __init__(self, W: Sequence[np.ndarray], b: Sequence[np.ndarray], hidden: Sequence[str], output: str):
        if len(W) != len(b) or len(hidden) != len(W) - 1:
            raise ValueError("need one W and one b per layer and one activation per hidden layer")
        dtype = np.result_type(*W, *b)
        self.flat = np.empty(sum(x.size for x in (*W, *b)), dtype)
        views = flat_views(self.flat, [x.shape for pair in zip(W, b) for x in pair])
        for dst, src in zip(views, [x for pair in zip(W, b) for x in pair]):
            dst[...] = src
        self.W, self.b = views[0::2], views[1::2]
        self.WT = [W.T for W in self.W]  # W_l^T views, made once (forward uses them every batch)
        self.hidden, self.output = list(hidden), output
        self.acts = [ACTIVATIONS[h] for h in hidden] + [ACTIVATIONS[output]]
        self._buf: Optional[_Buffers] = None  # for the largest batch seen
        self._views: dict[int, _Buffers] = {}  # _buf trimmed to each batch size in use
        self._cur: Optional[_Buffers] = None  # those of the last forward
        self.dropout: list[float] = [0.0] * len(hidden)  # p_l per hidden layer (set_dropout)
        self._masks: Optional[list] = None  # the scaled masks m_l / (1 - p_l) of the last forward (None: none)

    @classmethod
    def initialise(cls, sizes, hidden, output, rng: np.random.Generator, scheme="xavier", dtype="float32"):
        """Seeded initial weights from INITS[scheme]; biases start at 0. Drawn in float64 and
        rounded to ``dtype``, so float32 and float64 runs start alike."""
        init = INITS[scheme]
        W = [np.ascontiguousarray(init(n_in, n_out, rng), dtype=dtype) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        return cls(W, [np.zeros(n, dtype=dtype) for n in sizes[1:]], hidden, output)

    @property
    def sizes(self) -> list[int]:
        return [self.W[0].shape[1]] + [W.shape[0] for W in self.W]

    @property
    def dtype(self):
        return self.flat.dtype

    @property
    def n_layers(self) -> int:
        return len(self.W)

    def params(self) -> list[tuple[str, np.ndarray]]:
        """[("W1", W_1), ("b1", b_1), ..., ("WL", W_L), ("bL", b_L)]: the arrays themselves."""
        return [(f"{k}{l}", x) for l, (W, b) in enumerate(zip(self.W, self.b), start=1) for k, x in (("W", W), ("b", b))]

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.params())

    def astype(self, dtype) -> "MLP":
        m = MLP([W.astype(dtype) for W in self.W], [b.astype(dtype) for b in self.b], self.hidden, self.output)
        m.set_dropout(self.dropout)
        return m

    def set_dropout(self, rates: Sequence[float]) -> None:
        """p_l for each hidden layer, each in [0, 1) (0: no dropout there)."""
        rates = [float(p) for p in rates]
        if len(rates) != len(self.hidden) or not all(0.0 <= p < 1.0 for p in rates):
            raise ValueError(f"need one dropout rate in [0, 1) per hidden layer ({len(self.hidden)}), got {rates}")
        if rates != self.dropout:
            self.dropout = rates
            self._buf, self._views, self._cur = None, {}, None  # the dropout buffers follow the rates

    @property
    def has_dropout(self) -> bool:
        return any(p > 0 for p in self.dropout)

    def draw_masks(self, n: int, rng: np.random.Generator, out=None) -> list:
        """One scaled mask m_l / (1 - p_l) of shape (n, n_l) per hidden layer (None where p_l = 0):
        for each such layer in order, rng.random((n, n_l)) uniforms u, and m = 1 (kept) where
        u >= p_l, so P(kept) = 1 - p_l. ``out``: (uniform, mask) buffers to fill."""
        masks = []
        for l, (k, p) in enumerate(zip(self.sizes[1:-1], self.dropout)):
            if p <= 0:
                masks.append(None)
                continue
            U, M = out if out is not None else (None, None)
            u = rng.random((n, k)) if U is None else rng.random(out=U[l])
            m = np.empty((n, k), self.dtype) if M is None else M[l]
            np.greater_equal(u, p, out=m, casting="unsafe")  # 1 kept, 0 dropped
            np.multiply(m, const(1.0 / (1.0 - p), m.dtype), m)  # inverted dropout: kept units scaled by 1/(1 - p)
            masks.append(m)
        return masks

    def _buffers(self, n: int) -> _Buffers:
        buf = self._views.get(n)
        if buf is None:
            if self._buf is None or self._buf.n < n or len(self._views) >= 8:
                self._buf, self._views = _Buffers(self, max(n, self._buf.n if self._buf else 0)), {}
            buf = self._views[n] = self._buf.first(n)
        self._cur = buf
        return buf

    # ----------------------------------------------------------------- propagation
    def forward(self, X: np.ndarray, rng: Optional[np.random.Generator] = None, masks=None) -> np.ndarray:
        """y_hat (n, n_L) for X (n, n_0); keeps every z_l and a_l for :meth:`backward`.

        Training: with the run's generator ``rng`` and dropout rates > 0, fresh dropout masks
        are drawn from it (:meth:`draw_masks`); ``masks`` gives fixed ones instead (gradcheck).
        Neither (or every rate 0): the full network, and ``rng`` is not used.
        The result is the model's own buffer, overwritten by the next call: copy it to keep it.
        """
        buf = self._buffers(X.shape[0])
        if masks is None and rng is not None and self.has_dropout:
            masks = self.draw_masks(X.shape[0], rng, (buf.U, buf.M))
        self._masks = masks
        a = X
        for l, (z, a_out, WT, b, act) in enumerate(zip(buf.Z, buf.A, self.WT, self.b, self.acts)):
            _dot(a, WT, z)
            np.add(z, b, z)  # z_l = W_l a_{l-1} + b_l, one row per sample
            a = act.f(z, a_out, buf.stats) if act.row_stats else act.f(z, a_out)  # a_l = f_l(z_l)
            if masks is not None and l < len(masks) and masks[l] is not None:
                a = np.multiply(a, masks[l], self._masked(buf, l))  # a_l = f_l(z_l) ⊙ m_l / (1 - p_l)
        return a

    def _masked(self, buf: _Buffers, l: int) -> np.ndarray:
        """The buffer of hidden layer l's masked activations (allocated if fixed masks were given
        for a layer the rates leave undropped)."""
        if buf.H[l] is None:
            buf.H[l] = np.empty_like(buf.A[l])
        return buf.H[l]

    def _layer_input(self, X: np.ndarray, l: int) -> np.ndarray:
        """a_{l-1} as layer l (0-based) saw it in the last forward: X, or a hidden activation, masked if dropped."""
        if l == 0:
            return X
        m = self._masks
        return self._cur.H[l - 1] if m is not None and m[l - 1] is not None else self._cur.A[l - 1]

    def loss(self, Y: np.ndarray, loss: Loss) -> float:
        """E of the batch of the last :meth:`forward` (without L2), from the logits where the
        loss has a stable form for this output."""
        buf = self._cur
        stats = buf.stats if self.acts[-1].row_stats else None
        return loss.mean(Y, buf.A[-1], buf.Z[-1], self.output, buf.loss_scratch, stats)

    def pre_activations(self) -> list[np.ndarray]:
        """z_1, ..., z_L of the last :meth:`forward` (the model's buffers)."""
        return self._cur.Z

    def backward(self, X: np.ndarray, Y: np.ndarray, loss: Loss, l2: float = 0.0) -> np.ndarray:
        """Backpropagation after :meth:`forward` on the same X. Returns the gradient of the
        batch-mean loss plus (l2 / 2) sum_l ||W_l||^2, one flat array laid out like the
        parameters (overwritten by the next call)."""
        buf, n, masks = self._cur, X.shape[0], self._masks
        D = buf.D[-1]
        if loss.shortcut_output == self.output:
            np.subtract(buf.A[-1], Y, D)  # delta_L = (y_hat - y) / n
            np.multiply(D, const(1.0 / n, D.dtype), D)
            if loss.class_weight is not None:  # delta_L = w ⊙ (y_hat - y) / n, w_{y_i} per row
                np.multiply(D, loss.row_weights(Y), D)
        else:  # delta_L = dE/dy_hat ⊙ f_L'(z_L) (a Jacobian product for softmax)
            self.acts[-1].backward(buf.Z[-1], buf.A[-1], loss.output_grad(Y, buf.A[-1]), D)
        for l in range(self.n_layers - 1, -1, -1):
            a_prev, D = self._layer_input(X, l), buf.D[l]
            _dot(D.T, a_prev, buf.dW[l])  # dE/dW_l = delta_l a_{l-1}^T
            np.add.reduce(D, 0, None, buf.db[l])  # dE/db_l = delta_l, summed over the batch
            if l2:  # + l2 W_l, the gradient of (l2 / 2) ||W_l||^2
                np.multiply(self.W[l], const(l2, D.dtype), buf.W_tmp[l])
                np.add(buf.dW[l], buf.W_tmp[l], buf.dW[l])
            if l > 0:  # delta_{l-1} = (W_l^T delta_l) ⊙ f'(z_{l-1})
                D_prev = buf.D[l - 1]
                D.dot(self.W[l], D_prev)
                np.multiply(D_prev, self.acts[l - 1].df(buf.Z[l - 1], buf.A[l - 1], buf.S[l - 1]), D_prev)
                if masks is not None and masks[l - 1] is not None:  # ⊙ m_{l-1} / (1 - p): dropped units pass nothing back
                    np.multiply(D_prev, masks[l - 1], D_prev)
        return buf.grad_flat

    # ----------------------------------------------------------------- whole datasets
    def predict(self, X: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """y_hat for X (n, n_0), in chunks of ``chunk`` rows so memory does not grow with n."""
        X = np.asarray(X, dtype=self.dtype)
        out = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        for s in range(0, X.shape[0], chunk):
            out[s : s + chunk] = self.forward(X[s : s + chunk])
        return out

    def objective(self, X, Y, loss: Loss, l2: float = 0.0, masks=None) -> float:
        """E(W) on (X, Y): the mean loss plus (l2 / 2) sum_l ||W_l||^2 (with fixed dropout ``masks``, if given)."""
        self.forward(X, masks=masks)
        E = self.loss(Y, loss)
        if l2:
            E += 0.5 * l2 * float(sum(np.sum(W.astype(np.float64) ** 2) for W in self.W))
        return E

    def loss_and_grads(self, X, Y, loss: Loss, l2: float = 0.0, masks=None):
        """(E, [dE/dW1, dE/db1, ...]) on (X, Y), the gradients as new arrays (fixed dropout ``masks``: see forward)."""
        E = self.objective(X, Y, loss, l2, masks)
        self.backward(X, Y, loss, l2)
        return E, [np.array(g) for pair in zip(self._cur.dW, self._cur.db) for g in pair]


def load_weights(path, sizes: Optional[Sequence[int]] = None, what: str = "weights") -> tuple[list, list]:
    """W1..WL and b1..bL from an .npz file (never unpickles), checked against ``sizes``.

    Raises ConfigError naming the file and the tensor on any problem.
    """
    import zipfile

    from .npzfile import read_npz

    expect = {} if sizes is None else {
        k: shape for l in range(1, len(sizes)) for k, shape in ((f"W{l}", (sizes[l], sizes[l - 1])), (f"b{l}", (sizes[l],)))}
    try:
        with read_npz(path, expect) as z:  # each tensor's header checked before it is allocated
            return _read_layers(path, z, sizes, what)
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
        from .runs import without_pickle_advice

        raise ConfigError(without_pickle_advice(f"{path}: not a readable .npz {what} file ({e})")) from None


def _read_layers(path, z, sizes, what):
    from .npzfile import NpzMemberError

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
        except NpzMemberError as e:  # a shape other than the config's, a pickle, more than memory holds
            raise ConfigError(f"{path}: {e}{' (n_out, n_in)' if e.name[0] == 'W' and e.expected else ''}") from None
        except ValueError as e:  # object arrays need pickle: refused
            raise ConfigError(f"{path}: tensor 'W{l}' or 'b{l}' holds pickled objects; refused ({e})") from None
        if sizes is not None:
            for name, t, want in ((f"W{l}", Wl, (sizes[l], sizes[l - 1])), (f"b{l}", bl, (sizes[l],))):
                if t.shape != want:
                    layout = " (n_out, n_in)" if name[0] == "W" else ""
                    raise ConfigError(f"{path}: tensor '{name}' has shape {t.shape}, expected {want}{layout}")
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
