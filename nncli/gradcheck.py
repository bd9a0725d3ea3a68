"""Backpropagation checked against central finite differences, tensor by tensor.

For every element theta_i of every parameter tensor (W1, b1, ..., WL, bL):

    numeric_i = (E(theta + eps e_i) - E(theta - eps e_i)) / (2 eps)

in float64, where E is the batch-mean loss plus (l2 / 2) sum_l ||W_l||^2, compared with the
backprop gradient a_i by the relative error |a - n| / max(|a|, |n|, tiny).

Why the defaults (eps = 1e-6, tol = 1e-6, tiny = 1e-3 max(1, |E|)): in float64 the central
difference has a truncation error of about eps^2 |E'''| / 6 ~ 1e-12 and a rounding error of
a few ulp(E) / eps, about 1e-10 to 1e-9 for |E| ~ 1 (and proportionally more for a larger
loss). A correct smooth gradient therefore agrees to ~1e-9 max(1, |E|) absolute: a relative
error below 1e-6 for every element larger than tiny. Smaller elements are measured against
tiny instead of their own size, so rounding noise on near-zero gradients cannot fail the
check, while a wrong formula (a factor, a missing term) on any element larger than about
1e-9 max(1, |E|) still shows a relative error far above 1e-6.

Kinks: relu and leaky_relu are not differentiable at z = 0 and step jumps there. An element
whose finite-difference step moves any pre-activation of such a layer across 0 (the sign
pattern at theta + eps differs from that at theta - eps) is counted as a kink, not a
failure. The step activation's derivative is zero wherever it exists, so the gradients of
the layers before it are exactly zero: the check passes, and the report says so.

Dropout (model.dropout): E is random in training, so the check draws one mask per hidden
layer (from the check's seeded generator) and keeps it fixed for backprop and for every
finite difference: it checks a_l = f(z_l) ⊙ m_l / (1 - p) and its delta, and says so.
Class weights (train.class_weight, the run's saved ones): E = (1/n) sum_i w_{y_i} E_i.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from .losses import LOSSES
from .model import MLP

DEFAULT_EPS = 1e-6
DEFAULT_TOL = 1e-6
TINY = 1e-3  # times max(1, |E|)


@dataclass
class TensorCheck:
    name: str
    shape: tuple
    checked: int
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple
    worst_backprop: float
    worst_numeric: float
    kinks: int
    kink_elements: list = field(default_factory=list)  # the first few indices
    failures: int = 0
    passed: bool = True


@dataclass
class GradcheckReport:
    tensors: list[TensorCheck]
    samples: int
    eps: float
    tol: float
    tiny: float
    loss: str
    activations: list[str]
    l2: float
    promoted_from: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    dropout: Optional[list[float]] = None  # p_l per hidden layer when checked with fixed masks (None: no dropout)
    class_weight: Optional[list[float]] = None  # w_c per class in E (None: unweighted)

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    def first_failure(self) -> Optional[TensorCheck]:
        return next((t for t in self.tensors if not t.passed), None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        for t in d["tensors"]:
            t["shape"] = list(t["shape"])
            t["worst_index"] = list(t["worst_index"])
            t["kink_elements"] = [list(k) for k in t["kink_elements"]]
        return d


def _kink_pattern(model: MLP, Z: list[np.ndarray]) -> list[np.ndarray]:
    """The sign (-1, 0, 1) of every pre-activation of a layer whose activation has a kink at 0."""
    return [np.sign(z) for z, act in zip(Z, model.acts) if act.has_kink]


def gradcheck(
    model: MLP,
    X: np.ndarray,
    Y: np.ndarray,
    loss_name: str,
    l2: float = 0.0,
    eps: float = DEFAULT_EPS,
    tol: float = DEFAULT_TOL,
    tiny: float = TINY,
    max_elements: Optional[int] = None,
    rng: Optional[np.random.Generator] = None,
    grad_fn: Optional[Callable] = None,
    class_weight: Optional[list[float]] = None,
    masks: Optional[list] = None,
) -> GradcheckReport:
    """Compare backprop with central differences for every parameter tensor of ``model``.

    ``model`` is not modified: the check runs on a float64 copy. ``grad_fn(model, X, Y, loss,
    l2) -> list of gradients`` replaces backprop (to test the checker itself).
    ``max_elements`` checks a seeded random subset of that many elements per tensor.
    With dropout rates in ``model.dropout``, one mask per hidden layer is drawn from ``rng``
    (or ``masks`` given) and used for every evaluation of E; ``class_weight`` (w_c per class)
    weights E as training does.
    """
    loss = LOSSES[loss_name].weighted(class_weight)
    promoted = None if model.dtype == np.float64 else str(model.dtype)
    m = model.astype(np.float64)
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    rng = rng if rng is not None else np.random.default_rng(0)
    if masks is None and m.has_dropout:  # the one fixed mask the whole check uses
        masks = m.draw_masks(X.shape[0], rng)
    if grad_fn is None:
        _, grads = m.loss_and_grads(X, Y, loss, l2, masks)
    else:
        grads = grad_fn(m, X, Y, loss, l2)
    kinked = any(a.has_kink for a in m.acts)
    floor = tiny * max(1.0, abs(m.objective(X, Y, loss, l2, masks)))

    def E_at() -> tuple[float, list]:
        m.forward(X, masks=masks)
        E = m.loss(Y, loss)
        if l2:
            E += 0.5 * l2 * sum(float(np.sum(W * W)) for W in m.W)
        return E, (_kink_pattern(m, m.pre_activations()) if kinked else [])

    checks = []
    for (name, P), G in zip(m.params(), grads):
        idx = np.arange(P.size)
        if max_elements is not None and P.size > max_elements:
            idx = np.sort(rng.choice(P.size, size=max_elements, replace=False))
        checks.append(_check_tensor(name, P, np.asarray(G, np.float64), idx, E_at, kinked, eps, tol, floor))
    notes = _notes(m, promoted, any(t.kinks for t in checks))
    dropout = None
    if masks is not None:
        dropout = list(m.dropout)
        kept = ", ".join(f"{float(np.count_nonzero(x)) / x.size:.2f}" for x in masks if x is not None)
        notes.append(f"dropout (model.dropout {dropout}): checked with one fixed mask per hidden layer, the same for "
                     f"backprop and every finite difference (a_l = f(z_l) ⊙ m_l / (1 - p); kept fractions {kept}); "
                     "eval and predict use the full network")
    if loss.class_weight is not None:
        notes.append(f"class weights {list(loss.class_weight)}: E = (1/n) sum_i w_(y_i) E_i, as in training")
    acts = [a.name for a in m.acts]
    return GradcheckReport(checks, int(X.shape[0]), eps, tol, floor, loss_name, acts, l2, promoted, notes,
                           dropout, None if loss.class_weight is None else list(loss.class_weight))


def _check_tensor(name, P, G, idx, E_at, kinked, eps, tol, floor) -> TensorCheck:
    """Central differences for the elements ``idx`` of the parameter tensor P (changed in
    place and restored), against its backprop gradient G."""
    flat, gflat = P.reshape(-1), G.reshape(-1)
    worst = (-1.0, 0, 0.0, 0.0)  # (rel, i, a, n)
    max_abs, kinks, failures = 0.0, [], 0
    for i in idx:
        old = flat[i]
        flat[i] = old + eps
        e_plus, pat_plus = E_at()
        flat[i] = old - eps
        e_minus, pat_minus = E_at()
        flat[i] = old
        if kinked and any((p != q).any() for p, q in zip(pat_plus, pat_minus)):
            kinks.append(int(i))
            continue
        num = (e_plus - e_minus) / (2 * eps)
        a = float(gflat[i])
        abs_err = abs(a - num)
        rel = abs_err / max(abs(a), abs(num), floor)
        max_abs = max(max_abs, abs_err)
        failures += rel > tol
        if rel > worst[0]:
            worst = (rel, int(i), a, num)
    rel, wi, wa, wn = worst
    return TensorCheck(
        name=name, shape=tuple(P.shape), checked=int(len(idx)),
        max_abs_error=float(max_abs), max_rel_error=float(max(rel, 0.0)),
        worst_index=tuple(int(k) for k in np.unravel_index(wi, P.shape)),
        worst_backprop=float(wa), worst_numeric=float(wn), kinks=len(kinks),
        kink_elements=[tuple(int(k) for k in np.unravel_index(i, P.shape)) for i in kinks[:5]],
        failures=int(failures), passed=failures == 0,
    )


def _notes(m: MLP, promoted: Optional[str], any_kinks: bool) -> list[str]:
    notes = []
    if promoted:
        notes.append(f"the {promoted} model was promoted to float64 for the check")
    for a in dict.fromkeys(a for a in m.acts if a.zero_gradient):
        notes.append(
            f"{a.name}: its derivative is zero wherever it exists, so no gradient flows through it "
            f"and every layer before a {a.name} layer gets a zero gradient (LECTURE.md section 3)"
        )
    if any_kinks:
        kinked = "/".join(dict.fromkeys(a.name for a in m.acts if a.has_kink))
        notes.append(
            f"kinks: elements whose finite-difference step moved a {kinked} "
            "pre-activation across 0 are not differentiable there and are listed as kinks, not failures"
        )
    return notes


def failure_message(report: GradcheckReport) -> str:
    t = report.first_failure()
    if t is None:
        return ""
    idx = ", ".join(map(str, t.worst_index))
    others = [x.name for x in report.tensors if not x.passed and x is not t]
    more = f" (also failing: {', '.join(others)})" if others else ""
    return (
        f"gradcheck failed: {t.name}[{idx}]: backprop {t.worst_backprop:.10g} vs numeric {t.worst_numeric:.10g} "
        f"(relative error {t.max_rel_error:.3g} > {report.tol:g}; {t.failures} of {t.checked} elements fail){more}"
    )


def check_target(
    target,
    samples: int = 8,
    eps: float = DEFAULT_EPS,
    tol: float = DEFAULT_TOL,
    seed: int = 0,
    overrides=None,
    max_elements: Optional[int] = None,
) -> tuple[GradcheckReport, str]:
    """Gradcheck a config file (fresh seeded weights) or a run directory (trained weights).

    Returns the report and a description of what was checked. Uses ``samples`` rows of the
    training data after preprocessing, drawn with ``seed``.
    """
    from pathlib import Path

    from .errors import ConfigError

    if samples < 1:
        raise ConfigError("--samples must be at least 1")
    if not (math.isfinite(eps) and eps > 0):
        raise ConfigError(f"--eps {eps}: must be a positive finite number, e.g. --eps 1e-6")
    if not (math.isfinite(tol) and tol > 0):
        raise ConfigError(f"--tol {tol}: must be a positive finite number, e.g. --tol 1e-6")
    if max_elements is not None and max_elements < 1:
        raise ConfigError("--max-elements must be at least 1")
    target = Path(target)
    if target.is_dir():
        if overrides:
            raise ConfigError("--set applies to a config file, not to a run directory")
        cfg, model, X, Y, note, class_weight = _trained(target)
        what = f"run {target} (trained weights)"
    else:
        from .config import load_config
        from .job import prepare

        data, model, _, cfg = prepare(load_config(target, overrides))
        X, Y, note, class_weight = data.train.X, data.train.Y, None, data.prep.class_weight
        what = f"config {target} (fresh weights, seed {cfg.seed})"
    rng = np.random.default_rng(seed)
    n = min(samples, X.shape[0])
    rows = np.sort(rng.choice(X.shape[0], size=n, replace=False))
    model.set_dropout(cfg.model.dropout_rates)  # a fixed mask, drawn with seed after the rows
    report = gradcheck(model, X[rows], Y[rows], cfg.loss, cfg.train.l2, eps, tol, max_elements=max_elements, rng=rng,
                       class_weight=class_weight)
    report.notes += [note] if note else []
    return report, what


def _trained(run_dir):
    """(config, trained model, X, Y of its saved training rows, a note or None, the saved class weights) of a run directory."""
    from .data import read_labelled_csv
    from .runs import load_run

    run = load_run(run_dir, require_complete=False)
    cfg, prep = run.config, run.prep
    df, src = read_labelled_csv(cfg.data.train, "data.train", prep, cfg.data.sep)
    df, note = run.rows_of(df, "train", src)
    return cfg, run.model, prep.transform(df, src), prep.transform_targets(df, src), note, prep.class_weight
