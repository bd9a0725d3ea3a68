"""Gradient-descent optimizers (LECTURE.md section 5), updating parameters in place.

- sgd:      theta <- theta - eta dE/dtheta  (the lecture's W(t+1) = W(t) - eta dE/dW(t))
- momentum: v <- mu v + g;  theta <- theta - eta v  (PyTorch's form of heavy-ball momentum)
- adam:     m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
            theta <- theta - (eta / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
            (bias-corrected; the same arithmetic as torch.optim.Adam)
- nesterov: v <- mu v + g;  theta <- theta - eta (g + mu v)
            (torch.optim.SGD(nesterov=True): the step looks ahead along the new velocity)
- rmsprop:  s <- alpha s + (1 - alpha) g^2;  centered: gbar <- alpha gbar + (1 - alpha) g,
            d = sqrt(s - gbar^2) + eps, otherwise d = sqrt(s) + eps;
            momentum mu > 0: b <- mu b + g / d, theta <- theta - eta b;  mu = 0: theta <- theta - eta g / d
            (torch.optim.RMSprop; gbar is updated as torch's lerp: gbar + (1 - alpha) (g - gbar))
- adagrad:  eta_t = eta / (1 + (t - 1) lr_decay);  s <- s + g^2  (s starts at initial_accumulator_value);
            theta <- theta - eta_t g / (sqrt(s) + eps)  (torch.optim.Adagrad)
- adamw:    theta <- theta (1 - eta weight_decay), then adam's step above with dE/dtheta
            (torch.optim.AdamW: the decay is decoupled, it never enters m or v)

Here g = dE/dtheta, t counts the steps from 1, and every square and sqrt is elementwise.

Each optimizer declares its hyperparameters (:class:`Hyper`: default, bounds, meaning);
the config schema offers them as ``train.<name>`` keys, and the constructor refuses a
name it does not declare. The learning rate ``lr`` is a plain attribute read at every
step, so the training loop may change it between steps. L2 weight decay is part of the
gradient (``MLP.backward`` adds l2 W to dE/dW), so every optimizer sees the same
objective; adamw's ``weight_decay`` is a separate, decoupled shrinkage on top of it.
The state is a dict of named arrays, so a checkpoint saves and restores it exactly.

Optimizers share a key when they mean the same thing (``momentum``, ``beta1``, ``beta2``,
``eps``); each declares its own default and bounds for it (rmsprop's momentum is 0, adagrad's
eps 1e-10, nesterov's momentum must be > 0), and the config fills and checks the key with the
declaration of the optimizer it names (nncli.config).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .activations import const


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: its default and the interval [low, high) or [low, high] it lives in;
    a bool default makes it a switch (true or false, no bounds)."""

    default: float | bool
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False  # low itself excluded
    high_open: bool = True  # high itself excluded
    doc: str = ""

    def check(self, name: str, value: float) -> None:
        if isinstance(self.default, bool):  # a switch (rmsprop's centered): true or false, nothing else
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be true or false (got {value!r})")
            return
        lo_bad = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        hi_bad = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if lo_bad or hi_bad:
            raise ValueError(f"{name} must be in {self.interval()} (got {value})")

    def interval(self) -> str:
        if isinstance(self.default, bool):
            return "true or false"
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


class Nesterov(Optimizer):
    name = "nesterov"
    hyperparameters = {"momentum": Hyper(0.9, 0, 1, low_open=True, doc="mu: the fraction of the last step kept (> 0)")}

    def __init__(self, params, lr, **hyper):
        super().__init__(params, lr, **hyper)
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        for p, g, v, tmp in zip(self.params, grads, self.v, self._tmp):
            mu = const(self.momentum, v.dtype)
            np.multiply(v, mu, v)
            np.add(v, g, v)  # v <- mu v + g
            np.multiply(v, mu, tmp)
            np.add(g, tmp, tmp)  # g + mu v
            np.multiply(tmp, np.asarray(self.lr, p.dtype), tmp)
            np.subtract(p, tmp, p)  # theta <- theta - eta (g + mu v)

    def state(self):
        return {f"v{i}": v for i, v in enumerate(self.v)}


class RMSprop(Optimizer):
    name = "rmsprop"
    hyperparameters = {
        "alpha": Hyper(0.99, 0, 1, doc="rmsprop: decay of the mean square s of the gradient"),
        "eps": Adam.hyperparameters["eps"],
        "momentum": Hyper(0.0, 0, 1, doc="rmsprop: mu of the momentum buffer b (0: none)"),
        "centered": Hyper(False, doc="rmsprop: divide by the gradient's variance estimate s - gbar^2 instead of s"),
    }

    def __init__(self, params, lr, **hyper):
        super().__init__(params, lr, **hyper)
        self.s = [np.zeros_like(p) for p in params]
        self.gbar = [np.zeros_like(p) for p in params] if self.centered else None
        self.b = [np.zeros_like(p) for p in params] if self.momentum > 0 else None

    def step(self, grads):
        a = self.alpha
        for i, (p, g, s, d) in enumerate(zip(self.params, grads, self.s, self._tmp)):
            dt = p.dtype
            np.multiply(s, const(a, dt), s)
            np.multiply(g, g, d)
            np.multiply(d, const(1 - a, dt), d)
            np.add(s, d, s)  # s <- alpha s + (1 - alpha) g^2
            if self.gbar is not None:
                gbar = self.gbar[i]
                np.subtract(g, gbar, d)
                np.multiply(d, const(1 - a, dt), d)
                np.add(gbar, d, gbar)  # gbar <- gbar + (1 - alpha) (g - gbar)  (torch's lerp)
                np.multiply(gbar, gbar, d)
                np.subtract(s, d, d)
                np.sqrt(d, d)  # sqrt(s - gbar^2)
            else:
                np.sqrt(s, d)
            np.add(d, const(self.eps, dt), d)  # d = ... + eps
            np.divide(g, d, d)  # g / d
            if self.b is not None:
                b = self.b[i]
                np.multiply(b, const(self.momentum, dt), b)
                np.add(b, d, b)  # b <- mu b + g / d
                np.multiply(b, np.asarray(self.lr, dt), d)  # eta b
            else:
                np.multiply(d, np.asarray(self.lr, dt), d)  # eta g / d
            np.subtract(p, d, p)  # theta <- theta - eta b  (or eta g / d)

    def state(self):
        out = {f"s{i}": s for i, s in enumerate(self.s)}
        if self.gbar is not None:
            out.update({f"gbar{i}": x for i, x in enumerate(self.gbar)})
        if self.b is not None:
            out.update({f"b{i}": x for i, x in enumerate(self.b)})
        return out


class Adagrad(Optimizer):
    name = "adagrad"
    hyperparameters = {
        "lr_decay": Hyper(0.0, 0, doc="adagrad: eta_t = eta / (1 + (t - 1) lr_decay)"),
        "initial_accumulator_value": Hyper(0.0, 0, doc="adagrad: the sum of squares s starts here"),
        "eps": Hyper(1e-10, 0, low_open=True, doc="added to sqrt(s) for stability"),
    }

    def __init__(self, params, lr, **hyper):
        super().__init__(params, lr, **hyper)
        self.t = np.zeros((), np.int64)
        self.s = [np.full_like(p, self.initial_accumulator_value) for p in params]

    def step(self, grads):
        self.t += 1
        clr = self.lr / (1 + (int(self.t) - 1) * self.lr_decay)  # eta_t, in Python floats as torch
        for p, g, s, tmp in zip(self.params, grads, self.s, self._tmp):
            dt = p.dtype
            np.multiply(g, g, tmp)
            np.add(s, tmp, s)  # s <- s + g^2
            np.sqrt(s, tmp)
            np.add(tmp, const(self.eps, dt), tmp)  # sqrt(s) + eps
            np.divide(g, tmp, tmp)
            np.multiply(tmp, np.asarray(clr, dt), tmp)
            np.subtract(p, tmp, p)  # theta <- theta - eta_t g / (sqrt(s) + eps)

    def state(self):
        return {"t": self.t, **{f"s{i}": s for i, s in enumerate(self.s)}}


class AdamW(Adam):
    name = "adamw"
    hyperparameters = {
        **Adam.hyperparameters,
        "weight_decay": Hyper(0.01, 0, doc="adamw: decoupled decay, theta <- theta (1 - eta weight_decay) each step"),
    }

    def step(self, grads):
        for p in self.params:  # torch's order: the decay first, with the current eta
            np.multiply(p, np.asarray(1 - self.lr * self.weight_decay, p.dtype), p)
        super().step(grads)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam, "nesterov": Nesterov,
                                          "rmsprop": RMSprop, "adagrad": Adagrad, "adamw": AdamW}


def hyperparameters() -> dict[str, Hyper]:
    """Every registered optimizer's hyperparameters by name (the ``train.<name>`` config keys);
    optimizers that share a name share its declaration."""
    out: dict[str, Hyper] = {}
    for cls in OPTIMIZERS.values():
        for name, h in cls.hyperparameters.items():
            out.setdefault(name, h)
    return out
