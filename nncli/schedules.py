"""Learning-rate schedules (``train.schedule``): the learning rate eta of each epoch.

A registry keyed by the name used in configs, like the optimizers'. A schedule is stepped
once per epoch: :attr:`Schedule.lr` is the learning rate of the coming epoch (the trainer
sets the optimizer's ``lr`` to it before the epoch's first step), and :meth:`Schedule.step`,
called after an epoch with that epoch's monitored loss, moves it to the next epoch's.
Each follows ``torch.optim.lr_scheduler`` arithmetic for arithmetic (its recursive forms,
in Python floats), so the learning rates are the same numbers, epoch by epoch:

- constant:    eta_e = eta (the default; no schedule at all, unless a warmup is given)
- step:        eta multiplied by gamma every step_size epochs (StepLR)
- exponential: eta multiplied by gamma every epoch (ExponentialLR)
- cosine:      eta_e = eta_min + (eta - eta_min) (1 + cos(pi e / T_max)) / 2, e counted from 0
               (CosineAnnealingLR; T_max defaults to train.epochs - warmup)
- plateau:     eta multiplied by factor (not below min_lr) when the monitored loss has not
               improved by more than threshold (relative: below best (1 - threshold)) for
               more than patience epochs, then cooldown epochs of rest (ReduceLROnPlateau,
               mode min, threshold_mode rel, eps 1e-8). It watches the validation loss, or
               the training loss when there is no validation data.
- invscaling:  eta_e = eta / e^power_t, e = 1, 2, ... counted in EPOCHS (scikit-learn's
               MLP counts the samples seen instead: eta / (t + 1)^power_t after t samples)

``warmup: W`` (epochs) puts a linear warmup before any of them: epoch k = 0 .. W-1 gets
eta (k + 1) / (W + 1), and the schedule proper starts at epoch W with eta, counting its own
epochs from 0. That is torch's ``SequentialLR([LinearLR(start_factor=1/(W+1), total_iters=W),
main], milestones=[W])``; plateau cannot be put in a SequentialLR, so its warmup is the same
LinearLR, after which ReduceLROnPlateau starts at eta and watches only the epochs after the
warmup.

The state (the current eta, the epochs stepped, plateau's best loss and counters) is a
small JSON-able dict, so a checkpoint continues the schedule exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

EPS = 1e-8  # ReduceLROnPlateau's eps: a reduction smaller than this is not made


@dataclass(frozen=True)
class Key:
    """One setting of a schedule: its default (None: required), whole number or not, and
    the interval it lives in."""

    default: Optional[float]
    integer: bool = False
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    doc: str = ""

    def check(self, name: str, value) -> float:
        """``value`` as the key's type; ValueError naming the key and the interval."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}: must be {'a whole number' if self.integer else 'a number'} (got {value!r})")
        if self.integer:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{name}: must be a whole number (got {value!r})")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{name}: must be a finite number (got {value!r})")
        lo_bad = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        hi_bad = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if lo_bad or hi_bad:
            raise ValueError(f"{name}: must be in {self.interval()} (got {value!r})")
        return value

    def interval(self) -> str:
        lo = "(-inf" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        return f"{lo}, {hi}"


WARMUP = Key(0, integer=True, low=0, doc="epochs of linear warmup before the schedule: eta (k + 1) / (W + 1) in epoch k")


class Schedule:
    """The learning rate per epoch. Subclasses give :meth:`restart` (the first epoch's eta of
    the schedule proper after a warmup) and :meth:`next` (eta of its epoch k >= 1 from the last one)."""

    name = ""
    keys: dict[str, Key] = {}
    uses_loss = False  # plateau: step() needs the epoch's loss

    def __init__(self, lr: float, warmup: int = 0, **settings):
        unknown = sorted(set(settings) - set(self.keys))
        if unknown:
            raise TypeError(f"schedule {self.name!r} has no setting {unknown[0]!r} (it has: {', '.join(self.keys) or 'none'})")
        self.base = float(lr)
        self.warmup = WARMUP.check("warmup", warmup)
        for name, key in self.keys.items():
            value = settings.get(name, key.default)
            if value is None:
                raise TypeError(f"schedule {self.name!r} needs {name}")
            setattr(self, name, key.check(name, value))
        self.epoch = 0  # epochs stepped (torch's last_epoch)
        self.start_factor = 1.0 / (self.warmup + 1)
        # epoch 0: LinearLR's base * start_factor, or the schedule's own first eta (torch: unchanged)
        self.lr = self.base * self.start_factor if self.warmup else self.base

    @property
    def varies(self) -> bool:
        """Whether eta can change at all (constant without a warmup: it cannot)."""
        return True

    def step(self, loss: float = math.nan) -> None:
        """After an epoch (``loss``: its monitored loss, read by plateau): the next epoch's eta."""
        self.epoch += 1
        w = self.warmup
        if self.epoch < w:  # LinearLR.get_lr (end_factor 1) at last_epoch = epoch
            s = self.start_factor
            self.lr = self.lr * (1.0 + (1.0 - s) / (w * s + (self.epoch - 1) * (1.0 - s)))
        elif self.epoch == w:  # SequentialLR's milestone: the schedule proper, at its epoch 0
            self.lr = self.restart()
        else:
            self.lr = self.next(self.lr, self.epoch - w, loss)

    def restart(self) -> float:
        """eta of the schedule's epoch 0 after a warmup (torch's closed form at last_epoch 0)."""
        return self.base

    def next(self, lr: float, k: int, loss: float) -> float:
        return lr

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {"lr": self.lr, "epoch": self.epoch}

    def load_state(self, state: dict) -> None:
        self.check_state(state)
        self.lr, self.epoch = float(state["lr"]), int(state["epoch"])

    def check_state(self, state) -> None:
        """ValueError naming what is wrong with a :meth:`state` read back from a checkpoint."""
        if not isinstance(state, dict) or state.get("name") not in (None, self.name):
            raise ValueError(f"is not the state of a {self.name!r} schedule")
        missing = [k for k in self.state() if k not in state]
        if missing:
            raise ValueError(f"has no {missing[0]!r}")
        lr, epoch = state["lr"], state["epoch"]
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"'lr' is {lr!r}, not a finite learning rate")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"'epoch' is {epoch!r}, not a whole number of epochs")


class Constant(Schedule):
    name = "constant"

    @property
    def varies(self) -> bool:
        return self.warmup > 0


class Step(Schedule):
    name = "step"
    keys = {"step_size": Key(None, integer=True, low=1, doc="step: epochs between two multiplications by gamma"),
            "gamma": Key(0.1, low=0, low_open=True, doc="step, exponential: the factor eta is multiplied by")}

    def restart(self):
        return self.base * self.gamma ** 0  # StepLR's closed form at 0

    def next(self, lr, k, loss):
        return lr if k % self.step_size != 0 else lr * self.gamma


class Exponential(Schedule):
    name = "exponential"
    keys = {"gamma": Key(None, low=0, low_open=True, doc=Step.keys["gamma"].doc)}

    def restart(self):
        return self.base * self.gamma ** 0

    def next(self, lr, k, loss):
        return lr * self.gamma


class Cosine(Schedule):
    name = "cosine"
    keys = {"T_max": Key(None, integer=True, low=1, doc="cosine: epochs of the half cosine from eta to eta_min (default train.epochs - warmup)"),
            "eta_min": Key(0.0, low=0, doc="cosine: the learning rate at epoch T_max")}

    def restart(self):
        return self.eta_min + (self.base - self.eta_min) * (1 + math.cos(math.pi * 0 / self.T_max)) / 2

    def next(self, lr, k, loss):
        T, lo = self.T_max, self.eta_min
        if (k - 1 - T) % (2 * T) == 0:
            return lr + (self.base - lo) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * k / T)) / (1 + math.cos(math.pi * (k - 1) / T)) * (lr - lo) + lo


class Plateau(Schedule):
    name = "plateau"
    uses_loss = True
    keys = {"factor": Key(0.1, low=0, high=1, low_open=True, high_open=True, doc="plateau: eta is multiplied by it on a plateau"),
            "patience": Key(10, integer=True, low=0, doc="plateau: epochs without improvement tolerated before reducing eta"),
            "threshold": Key(1e-4, low=0, doc="plateau: relative improvement that counts (loss < best (1 - threshold))"),
            "cooldown": Key(0, integer=True, low=0, doc="plateau: epochs after a reduction during which nothing is counted"),
            "min_lr": Key(0.0, low=0, doc="plateau: eta never goes below it")}

    def __init__(self, lr, warmup=0, **settings):
        super().__init__(lr, warmup, **settings)
        self.best = math.inf  # the best loss so far (torch's mode_worse to start)
        self.bad = 0  # num_bad_epochs
        self.cool = 0  # cooldown_counter

    def next(self, lr, k, loss):
        current = float(loss)
        if current < self.best * (1.0 - self.threshold):
            self.best, self.bad = current, 0
        else:
            self.bad += 1
        if self.cool > 0:
            self.cool -= 1
            self.bad = 0  # bad epochs in the cooldown are not counted
        if self.bad > self.patience:
            new = max(lr * self.factor, self.min_lr)
            if lr - new > EPS:
                lr = new
            self.cool, self.bad = self.cooldown, 0
        return lr

    def state(self):
        # the best loss is +inf until the first epoch after the warmup: JSON null then
        return {**super().state(), "best": None if math.isinf(self.best) else self.best, "bad": self.bad, "cool": self.cool}

    def load_state(self, state):
        super().load_state(state)
        self.best = math.inf if state["best"] is None else float(state["best"])
        self.bad, self.cool = int(state["bad"]), int(state["cool"])

    def check_state(self, state):
        super().check_state(state)
        best = state["best"]
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float)) or not math.isfinite(best)):
            raise ValueError(f"'best' is {best!r}, not null or a finite loss")
        for k in ("bad", "cool"):
            v = state[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{k!r} is {v!r}, not a whole number of epochs")


class InvScaling(Schedule):
    name = "invscaling"
    keys = {"power_t": Key(0.5, low=0, doc="invscaling: eta_e = eta / e^power_t in epoch e = 1, 2, ...")}

    def restart(self):
        return self.base / 1 ** self.power_t

    def next(self, lr, k, loss):
        return self.base / (k + 1) ** self.power_t  # scikit-learn's float(eta) / (t + 1) ** power_t, t in epochs


SCHEDULES: dict[str, type[Schedule]] = {"constant": Constant, "step": Step, "exponential": Exponential,
                                        "cosine": Cosine, "plateau": Plateau, "invscaling": InvScaling}


def settings_of(name: str) -> dict[str, Key]:
    """The keys a schedule takes besides ``name`` and ``warmup``."""
    return SCHEDULES[name].keys


def make_schedule(lr: float, spec: Optional[dict]) -> Optional[Schedule]:
    """The schedule a config's ``train.schedule`` mapping (name, warmup, the settings) describes,
    or None when eta is constant (no schedule, or constant without a warmup: the loop is then
    exactly what it was before schedules existed)."""
    if not spec:
        return None
    spec = dict(spec)
    cls = SCHEDULES[spec.pop("name", "constant")]
    sched = cls(lr, **spec)
    return sched if sched.varies else None
