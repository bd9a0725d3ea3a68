"""Gradient-descent optimizers (LECTURE.md section 5), updating parameters in place.

- sgd:      theta <- theta - eta dE/dtheta  (the lecture's W(t+1) = W(t) - eta dE/dW(t))
- momentum: v <- mu v + g;  theta <- theta - eta v  (PyTorch's form of heavy-ball momentum)
- adam:     m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
            theta <- theta - (eta / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
            (bias-corrected; the same arithmetic as torch.optim.Adam)

L2 weight decay is part of the gradient (model.backward adds l2 W to dE/dW), so every
optimizer sees the same objective. Each optimizer exposes its state as named arrays so a
checkpoint can save and restore it exactly.
"""

from __future__ import annotations

import numpy as np

from .activations import const


class Optimizer:
    name = ""

    def __init__(self, params: list[np.ndarray], lr: float, **kw):
        self.params = params
        self.lr = lr
        self._tmp = [np.empty_like(p) for p in params]  # scratch: no temporaries per step

    def step(self, grads: list[np.ndarray]) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for k, v in self.state().items():
            np.copyto(v, state[k])


class SGD(Optimizer):
    name = "sgd"

    def step(self, grads):
        for p, g, tmp in zip(self.params, grads, self._tmp):
            np.multiply(g, const(self.lr, p.dtype), tmp)
            np.subtract(p, tmp, p)  # W(t+1) = W(t) - eta dE/dW(t)


class Momentum(Optimizer):
    name = "momentum"

    def __init__(self, params, lr, momentum=0.9, **kw):
        super().__init__(params, lr)
        self.mu = momentum
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        for p, g, v, tmp in zip(self.params, grads, self.v, self._tmp):
            np.multiply(v, const(self.mu, v.dtype), v)
            np.add(v, g, v)
            np.multiply(v, const(self.lr, p.dtype), tmp)
            np.subtract(p, tmp, p)

    def state(self):
        return {f"v{i}": v for i, v in enumerate(self.v)}


class Adam(Optimizer):
    name = "adam"

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8, **kw):
        super().__init__(params, lr)
        self.b1, self.b2, self.eps = beta1, beta2, eps
        self.t = np.zeros((), np.int64)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        t = int(self.t)
        bc1 = 1 - self.b1**t
        bc2_sqrt = np.sqrt(1 - self.b2**t)
        step_size = self.lr / bc1
        multiply, add = np.multiply, np.add
        for p, g, m, v, tmp in zip(self.params, grads, self.m, self.v, self._tmp):
            dt = p.dtype
            multiply(m, const(self.b1, dt), m)
            multiply(g, const(1 - self.b1, dt), tmp)
            add(m, tmp, m)  # m <- b1 m + (1 - b1) g
            multiply(v, const(self.b2, dt), v)
            multiply(g, g, tmp)
            multiply(tmp, const(1 - self.b2, dt), tmp)
            add(v, tmp, v)  # v <- b2 v + (1 - b2) g^2
            np.sqrt(v, tmp)
            np.divide(tmp, const(bc2_sqrt, dt), tmp)
            add(tmp, const(self.eps, dt), tmp)  # denom = sqrt(v) / sqrt(1 - b2^t) + eps
            np.divide(m, tmp, tmp)
            multiply(tmp, const(step_size, dt), tmp)
            np.subtract(p, tmp, p)

    def state(self):
        s = {"t": self.t}
        s.update({f"m{i}": m for i, m in enumerate(self.m)})
        s.update({f"v{i}": v for i, v in enumerate(self.v)})
        return s


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
