"""``nncli explain``: one step of training, every quantity of LECTURE.md section 5.

For a config: the first step ``nncli train`` takes (its seeded initial weights, or the
``model.init`` weights). For a run directory: the step training would take on the same rows
from the run's trained weights, with a fresh optimizer (a completed run keeps no optimizer
state) and the schedule's first learning rate.

"The same rows": training draws, from the run's one generator, the data splits, then the
initial weights, then epoch 1's row order (a permutation of the training rows, unless
``train.shuffle`` is false or the batch is the whole split), then (with dropout) the masks of
the first batch. The first step trains on positions 1..batch_size of that order. This module
builds the very objects ``nncli train`` builds (:class:`~nncli.job.TrainingJob`: data,
model, loss, optimizer, schedule, generator), draws the epoch's order from the generator as
the trainer does, and runs the trainer's step on the chosen positions with the model's own
forward/backward and the optimizer's own step, copying every intermediate array on the way.
``row`` (1-based) and ``rows`` choose other positions of epoch 1's order: the step is then
the one training would take if those rows were a batch (with the mean loss over them).

Nothing here prints (nncli.explain_view renders); the job writes no run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ConfigError, RunError
from .model import flat_views

OPTIMIZER_RULES = {
    "sgd": ["W ← W − η ∂E/∂W"],
    "momentum": ["v ← μ v + ∂E/∂W", "W ← W − η v"],
    "nesterov": ["v ← μ v + ∂E/∂W", "W ← W − η (∂E/∂W + μ v)"],
    "adam": ["m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²   (g = ∂E/∂W, elementwise)",
             "m̂ = m / (1 − β1^t),   v̂ = v / (1 − β2^t)",
             "W ← W − η m̂ / (√v̂ + ε)   (computed as W − (η / (1 − β1^t)) m / (√v / √(1 − β2^t) + ε))"],
    "adamw": ["W ← W (1 − η λ)   (decoupled weight decay λ = weight_decay, first)",
              "m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²",
              "W ← W − (η / (1 − β1^t)) m / (√v / √(1 − β2^t) + ε)"],
    "rmsprop": ["s ← α s + (1 − α) g²", "W ← W − η g / (√s + ε)   (centered: √(s − ḡ²); momentum μ: b ← μ b + g / d, W ← W − η b)"],
    "adagrad": ["s ← s + g²", "W ← W − η_t g / (√s + ε),   η_t = η / (1 + (t − 1) lr_decay)"],
}

LOSS_FORMULAS = {
    "bce": "E = (1/n) Σ_i [ −y log ŷ − (1 − y) log(1 − ŷ) ]",
    "cross_entropy": "E = (1/n) Σ_i [ −Σ_j y_j log ŷ_j ]",
    "mse": "E = (1/n) Σ_i ½ Σ_j (y_j − ŷ_j)²",
}

DERIVATIVES = {"identity": "1", "sigmoid": "a (1 − a)", "tanh": "1 − a²", "relu": "1 if z > 0 else 0",
               "leaky_relu": "1 if z > 0 else 0.01", "step": "0"}


@dataclass
class Layer:
    l: int  # 1..L
    activation: str
    W: np.ndarray  # (n_out, n_in), before the step
    b: np.ndarray
    a_prev: np.ndarray  # a_{l-1} as the layer saw it (n, n_in): masked under dropout
    z: np.ndarray  # (n, n_out), one row per sample
    a: np.ndarray  # f(z), before any dropout mask
    mask: Optional[np.ndarray]  # the scaled dropout mask m / (1 - p) of this (hidden) layer, or None
    delta: np.ndarray  # dE/dz_l of the batch-mean loss (n, n_out)
    back: Optional[np.ndarray]  # W_{l+1}^T delta_{l+1} (hidden layers), one row per sample
    fprime: Optional[np.ndarray]  # f'(z_l) (elementwise activations)
    dW: np.ndarray  # dE/dW_l = sum_i delta_i a_{l-1,i}^T (+ l2 W_l)
    db: np.ndarray
    W_next: np.ndarray
    b_next: np.ndarray
    state: dict = field(default_factory=dict)  # the optimizer's per-layer state after the step (m_W, v_b, ...)


@dataclass
class Explanation:
    what: str  # what was explained (config or run, weights)
    exact: bool  # whether the rows are exactly training's first batch
    rows_note: str
    notes: list[str]
    positions: np.ndarray  # 1-based positions in epoch 1's order
    train_rows: np.ndarray  # 0-based indices into the training split
    csv_rows: Optional[np.ndarray]  # 1-based rows of the training CSV (None: unknown)
    X: np.ndarray  # a_0 as the network sees it (standardised if data.standardize)
    Y: np.ndarray  # encoded targets (0/1, one-hot, or values, z-scored if the targets are)
    layers: list[Layer]
    output: str
    loss_name: str
    loss_formula: str
    delta_rule: str
    dE_dyhat: Optional[np.ndarray]  # the general chain rule's dE/dŷ (None: the shortcut applies)
    loss: float
    loss_after: float
    optimizer: str
    lr: float
    hyper: dict
    rule: list[str]
    t: Optional[int]  # the optimizer's step count after the step (adam, adagrad)
    l2: float
    clip: Optional[dict]  # {"max_norm", "norm", "factor"} when train.clip_norm is set
    class_weight: Optional[list]
    dtype: str

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def to_dict(self) -> dict:
        """Every quantity as plain JSON values (floats exactly as the dtype holds them)."""
        def arr(x):
            return None if x is None else np.asarray(x, np.float64).tolist()

        layers = []
        for L in self.layers:
            d = {"l": L.l, "activation": L.activation, "W": arr(L.W), "b": arr(L.b), "z": arr(L.z), "a": arr(L.a),
                 "delta": arr(L.delta), "dW": arr(L.dW), "db": arr(L.db), "W_next": arr(L.W_next), "b_next": arr(L.b_next)}
            if L.mask is not None:
                d["dropout_mask"] = arr(L.mask)
            if L.back is not None:
                d["WT_delta_next"] = arr(L.back)
            if L.fprime is not None:
                d["fprime_z"] = arr(L.fprime)
            if L.state:
                d["optimizer_state"] = {k: arr(v) for k, v in L.state.items()}
            layers.append(d)
        return {"what": self.what, "exact_first_step": self.exact, "rows": self.rows_note, "notes": self.notes,
                "positions": self.positions.tolist(), "train_rows": self.train_rows.tolist(),
                "csv_rows": None if self.csv_rows is None else self.csv_rows.tolist(),
                "dtype": self.dtype, "x": arr(self.X), "y": arr(self.Y), "yhat": arr(self.layers[-1].a),
                "output": self.output, "loss_name": self.loss_name, "loss_formula": self.loss_formula,
                "delta_L_rule": self.delta_rule, "dE_dyhat": arr(self.dE_dyhat),
                "optimizer": {"name": self.optimizer, "lr": self.lr, **self.hyper, "rule": self.rule, "t": self.t},
                "l2": self.l2, "clip": self.clip, "class_weight": self.class_weight,
                "layers": layers, "loss": self.loss, "loss_after": self.loss_after}


def _job_for(target, overrides):
    """(TrainingJob, what, notes, run weights or None) for a config file or a run directory."""
    from .config import load_config
    from .job import TrainingJob, _as_trained

    target = Path(target)
    if target.is_dir():
        from .runs import load_run

        if overrides:
            raise ConfigError("--set applies to a config file, not to a run directory")
        if not (target / "config.yaml").exists():
            raise RunError(f"{target}: not a run directory (no config.yaml); give a config file or a run directory "
                           "from nncli runs")
        run = load_run(target)
        job = TrainingJob(_as_trained(run.config, run.dir), runs_dir=target.parent)
        changed = run.dir.data_changes(job.data_files)
        if changed:
            raise RunError(f"cannot explain {target}: {changed[0]}; put the original file back")
        what = f"run {target}: its trained weights; the step training would take next on these rows, " \
               "with a fresh optimizer state"
        return job, what, run.model
    if not target.exists():
        raise ConfigError(f"{target}: no such config file or run directory")
    cfg = load_config(target, overrides)
    job = TrainingJob(cfg)
    init = cfg.model.init
    weights = f"model.init weights {init}" if init.endswith(".npz") else f"seeded initial weights (seed {cfg.seed}, {init})"
    return job, f"config {target}: {weights}; the first step of nncli train", None


def explain(target, row: Optional[int] = None, rows: Optional[int] = None, overrides=()) -> Explanation:
    """One step of training on rows of epoch 1's order (default: its first batch), every quantity kept."""
    from .trainer import clip_grad_norm

    job, what, trained = _job_for(target, list(overrides or []))
    cfg, tr = job.cfg, job.trainer
    model, opt, loss, batches = tr.model, tr.optimizer, tr.loss, tr.batches
    if trained is not None:
        np.copyto(model.flat, trained.flat)
    n_train = batches.n
    start = 0 if row is None else row - 1
    if row is not None and not 1 <= row <= n_train:
        raise ConfigError(f"--row {row}: the training split has {n_train} rows; use --row 1 to {n_train}")
    k = rows if rows is not None else (batches.size if row is None else 1)
    if k < 1 or start + k > n_train:
        raise ConfigError(f"--rows {k}: the training split has {n_train} rows"
                          f"{f' and --row {row} leaves {n_train - start}' if row is not None else ''}; "
                          f"use --rows 1 to {n_train - start}")
    order = batches.order(tr.rng, tr.options.shuffle)  # epoch 1's order, from the generator, as Trainer._begin_epoch
    exact = start == 0 and k == batches.size
    if exact:
        idx, xb, yb = batches.at(0, order)  # the trainer's very batch
        idx = np.arange(n_train) if isinstance(idx, slice) else np.asarray(idx)
    else:
        idx = (np.arange(n_train) if order is None else order)[start : start + k]
        xb, yb = np.ascontiguousarray(batches.X[idx]), np.ascontiguousarray(batches.Y[idx])
    idx = np.asarray(idx)[:k]
    W0, b0 = [W.copy() for W in model.W], [b.copy() for b in model.b]
    L = model.n_layers
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        model.forward(xb, tr.rng)  # as Trainer._step: dropout masks drawn from the run's generator
        buf = model._cur
        masks = None if model._masks is None else [None if m is None else m.copy() for m in model._masks]
        Z, A = [z.copy() for z in buf.Z], [a.copy() for a in buf.A]
        a_prev = [np.array(model._layer_input(xb, l)) for l in range(L)]
        E = model.loss(yb, loss)
        yhat = A[-1]
        dE_dyhat = None if loss.shortcut_output == model.output else loss.output_grad(yb, yhat)
        grads = model.backward(xb, yb, loss, tr.options.l2)
        D = [d.copy() for d in buf.D]
        dW, db = [g.copy() for g in buf.dW], [g.copy() for g in buf.db]
        clip = None
        if tr.options.clip_norm is not None:
            norm = clip_grad_norm(grads, tr.options.clip_norm)
            factor = tr.options.clip_norm / (norm + 1e-6)
            clip = {"max_norm": tr.options.clip_norm, "norm": norm, "factor": min(1.0, factor), "clipped": factor < 1.0}
        lr = float(opt.lr)
        opt.step([grads])  # the optimizer's own step (its state starts fresh, as in training's first step)
        W1, b1 = [W.copy() for W in model.W], [b.copy() for b in model.b]
        model.forward(xb, masks=masks)  # the same rows (and dropout masks) after the step
        E_after = model.loss(yb, loss)
    state = _layer_state(model, opt)
    layers = []
    for l in range(L):
        act = model.acts[l]
        back = fprime = None
        if l < L - 1:
            back = np.empty_like(D[l])
            D[l + 1].dot(W0[l + 1], back)  # W_{l+1}^T delta_{l+1}, one row per sample
        if act.elementwise and (l < L - 1 or dE_dyhat is not None):
            fprime = act.df(Z[l], A[l], np.empty_like(Z[l]))
        layers.append(Layer(l + 1, model.hidden[l] if l < L - 1 else model.output, W0[l], b0[l], a_prev[l], Z[l], A[l],
                            None if masks is None or l >= L - 1 else masks[l], D[l], back, fprime, dW[l], db[l],
                            W1[l], b1[l], state[l]))
    return Explanation(
        what=what, exact=exact, rows_note=_rows_note(exact, start, k, order, batches, cfg, trained is not None),
        notes=_notes(job, cfg, model, loss, trained is not None), positions=np.arange(start + 1, start + k + 1),
        train_rows=idx, csv_rows=_csv_rows(job, idx), X=np.array(xb), Y=np.array(yb), layers=layers,
        output=model.output, loss_name=cfg.loss, loss_formula=LOSS_FORMULAS.get(cfg.loss, f"E = {cfg.loss}"),
        delta_rule=_delta_rule(loss, model.output), dE_dyhat=dE_dyhat, loss=float(E), loss_after=float(E_after),
        optimizer=cfg.train.optimizer, lr=lr, hyper={h: getattr(opt, h) for h in opt.hyperparameters},
        rule=OPTIMIZER_RULES.get(cfg.train.optimizer, []), t=int(opt.t) if hasattr(opt, "t") else None,
        l2=float(tr.options.l2), clip=clip,
        class_weight=None if loss.class_weight is None else list(loss.class_weight), dtype=str(model.dtype))


def _layer_state(model, opt) -> list[dict]:
    """The optimizer's state after the step, split per layer: {"m_W": ..., "m_b": ...}."""
    out = [dict() for _ in range(model.n_layers)]
    shapes = [x.shape for pair in zip(model.W, model.b) for x in pair]
    for key, v in opt.state().items():
        if np.ndim(v) != 1 or v.size != model.flat.size:
            continue
        name = key.rstrip("0123456789")
        name = {"b": "buffer"}.get(name, name)  # rmsprop's momentum buffer b, not a bias
        for i, view in enumerate(flat_views(v, shapes)):
            out[i // 2][f"{name}_{'Wb'[i % 2]}"] = view.copy()
    return out


def _delta_rule(loss, output: str) -> str:
    w = " ⊙ w_class" if loss.class_weight is not None else ""
    if loss.shortcut_output == output:
        pair = {"sigmoid": "sigmoid + BCE", "softmax": "softmax + cross-entropy", "identity": "identity + quadratic cost"}
        return f"δ_L = (ŷ − y){w} / n   ({pair.get(output, output)}: dE/dŷ ⊙ f′(z_L) simplifies)"
    if output == "softmax":
        return f"δ_L = ŷ ⊙ (g − Σ_k g_k ŷ_k), g = dE/dŷ{w}   (softmax's Jacobian, general chain rule)"
    return f"δ_L = dE/dŷ ⊙ f′(z_L){w}   (general chain rule; {output}′(z) = {DERIVATIVES.get(output, '?')})"


def _rows_note(exact, start, k, order, batches, cfg, trained) -> str:
    how = ("in file order, train.shuffle: false" if not cfg.train.shuffle and not batches.full else
           "the whole training split in file order: the batch covers it, so nothing is shuffled" if batches.full else
           "in epoch 1's shuffled order, drawn from the seed's generator after the splits and the initial weights")
    pos = f"position {start + 1}" if k == 1 else f"positions {start + 1}-{start + k}"
    if exact:
        head = (f"the first batch of epoch 1 ({k} of {batches.n} training rows, {how})"
                + (": exactly the step nncli train takes first" if not trained else ""))
    else:
        head = (f"{pos} of epoch 1's row order ({how}), taken as one batch of {k} "
                f"(training's first batch is positions 1-{batches.size}; with dropout the masks differ from training's)")
    return head


def _csv_rows(job, idx) -> Optional[np.ndarray]:
    rows = job.data.rows.get("train")
    return None if rows is None or len(rows) != job.data.train.n else rows[idx] + 1


def _notes(job, cfg, model, loss, trained) -> list[str]:
    from .preprocess import target_scaling_applies

    notes = []
    if cfg.data.standardize:
        notes.append("inputs x = a_0 are standardised (data.standardize: true): z-scored with the training split's "
                     "mean and standard deviation, as the network sees them")
    else:
        notes.append("inputs x = a_0 are as in the file (data.standardize: false)")
    if target_scaling_applies(cfg):
        notes.append("targets y are z-scored with the training split's statistics (data.standardize_target)")
    if model.has_dropout:
        notes.append(f"dropout {model.dropout}: a_l shown is f(z_l); the next layer takes a_l ⊙ m_l / (1 − p) "
                     "(masks drawn from the run's generator, as training does; δ_l is multiplied by the mask too)")
    if cfg.train.l2:
        notes.append(f"l2 {cfg.train.l2}: ∂E/∂W_l includes + l2 W_l (the gradient of (l2/2) Σ‖W_l‖²); "
                     "E and the loss after exclude the penalty, as training's reported loss")
    if loss.class_weight is not None:
        notes.append(f"class weights {list(loss.class_weight)}: E = (1/n) Σ_i w_(y_i) E_i and δ_L rows scaled by w_(y_i)")
    if getattr(cfg.train, "schedule", None) is not None:
        notes.append(f"train.schedule: η is the schedule's first learning rate ({job.trainer.optimizer.lr:g})")
    if cfg.train.clip_norm is not None:
        notes.append(f"train.clip_norm {cfg.train.clip_norm}: the whole gradient is rescaled before the step when its "
                     "L2 norm exceeds it (∂E/∂W shown is before clipping)")
    if trained:
        notes.append("from trained weights: the rows are epoch 1's first batch, the optimizer state is fresh "
                     "(a completed run keeps none) and η is the schedule's first")
    return notes
