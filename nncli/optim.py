"""Gradient-descent optimizers (LECTURE.md section 5), updating parameters in place.

- sgd:      theta <- theta - eta dE/dtheta  (the lecture's W(t+1) = W(t) - eta dE/dW(t))
- momentum: v <- mu v + g;  theta <- theta - eta v  (PyTorch's form of heavy-ball momentum)
- adam:     m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
            theta <- theta - (eta / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
            (bias-corrected; the same arithmetic as torch.optim.Adam)

Each optimizer declares its hyperparameters (:class:`Hyper`: default, bounds, meaning);
the config schema offers them as ``train.<name>`` keys, and the constructor refuses a
name it does not declare. The learning rate ``lr`` is a plain attribute read at every
step, so the training loop may change it between steps. L2 weight decay is part of the
gradient (``MLP.backward`` adds l2 W to dE/dW), so every optimizer sees the same
objective. The state is a dict of named arrays, so a checkpoint saves and restores it
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .activations import const


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: its default and the interval [low, high) or [low, high] it lives in."""

    default: float
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False  # low itself excluded
    high_open: bool = True  # high itself excluded
    doc: str = ""

    def check(self, name: str, value: float) -> None:
        lo_bad = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        hi_bad = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if lo_bad or hi_bad:
            raise ValueError(f"{name} must be in {self.interval()} (got {value})")

    def interval(self) -> str:
        lo = "(-inf" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        return f"{lo}, {hi}"


class Optimizer:
    name = ""
    hyperparameters: dict[str, Hyper] = {}

    def __init__(self, params: list[np.ndarray], lr: float, **hyper: float):
        unknown = sorted(set(hyper) - set(self.hyperparameters))
        if unknown:
            valid = ", ".join(self.hyperparameters) or "none"
            raise TypeError(f"optimizer {self.name!r} has no hyperparameter {unknown[0]!r} (it has: {valid})")
        self.params = params
        self.lr = lr
        for name, h in self.hyperparameters.items():
            value = hyper.get(name, h.default)
            h.check(name, value)
            setattr(self, name, value)
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
            np.multiply(g, np.asarray(self.lr, p.dtype), tmp)
            np.subtract(p, tmp, p)  # W(t+1) = W(t) - eta dE/dW(t)


class Momentum(Optimizer):
    name = "momentum"
    hyperparameters = {"momentum": Hyper(0.9, 0, 1, doc="mu: the fraction of the last step kept")}

    def __init__(self, params, lr, **hyper):
        super().__init__(params, lr, **hyper)
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        for p, g, v, tmp in zip(self.params, grads, self.v, self._tmp):
            np.multiply(v, const(self.momentum, v.dtype), v)
            np.add(v, g, v)  # v <- mu v + g
            np.multiply(v, np.asarray(self.lr, p.dtype), tmp)
            np.subtract(p, tmp, p)  # theta <- theta - eta v

    def state(self):
        return {f"v{i}": v for i, v in enumerate(self.v)}


class Adam(Optimizer):
    name = "adam"
    hyperparameters = {
        "beta1": Hyper(0.9, 0, 1, doc="decay of the first moment m"),
        "beta2": Hyper(0.999, 0, 1, doc="decay of the second moment v"),
        "eps": Hyper(1e-8, 0, low_open=True, doc="added to sqrt(v) for stability"),
    }

    def __init__(self, params, lr, **hyper):
        super().__init__(params, lr, **hyper)
        self.t = np.zeros((), np.int64)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        t = int(self.t)
        b1, b2 = self.beta1, self.beta2
        bc2_sqrt = np.sqrt(1 - b2**t)
        step_size = self.lr / (1 - b1**t)
        multiply, add = np.multiply, np.add
        for p, g, m, v, tmp in zip(self.params, grads, self.m, self.v, self._tmp):
            dt = p.dtype
            multiply(m, const(b1, dt), m)
            multiply(g, const(1 - b1, dt), tmp)
            add(m, tmp, m)  # m <- b1 m + (1 - b1) g
            multiply(v, const(b2, dt), v)
            multiply(g, g, tmp)
            multiply(tmp, const(1 - b2, dt), tmp)
            add(v, tmp, v)  # v <- b2 v + (1 - b2) g^2
            np.sqrt(v, tmp)
            np.divide(tmp, np.asarray(bc2_sqrt, dt), tmp)
            add(tmp, const(self.eps, dt), tmp)  # denom = sqrt(v) / sqrt(1 - b2^t) + eps
            np.divide(m, tmp, tmp)
            multiply(tmp, np.asarray(step_size, dt), tmp)
            np.subtract(p, tmp, p)

    def state(self):
        return {"t": self.t, **{f"m{i}": m for i, m in enumerate(self.m)}, **{f"v{i}": v for i, v in enumerate(self.v)}}


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def hyperparameters() -> dict[str, Hyper]:
    """Every registered optimizer's hyperparameters by name (the ``train.<name>`` config keys);
    optimizers that share a name share its declaration."""
    out: dict[str, Hyper] = {}
    for cls in OPTIMIZERS.values():
        for name, h in cls.hyperparameters.items():
            out.setdefault(name, h)
    return out
