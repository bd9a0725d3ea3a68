"""Issue 15: learning-rate schedules, gradient clipping and early stopping on any metric.

- every schedule's learning rate, epoch by epoch, equals torch.optim.lr_scheduler's (StepLR,
  ExponentialLR, CosineAnnealingLR, ReduceLROnPlateau driven with the same losses, LinearLR +
  SequentialLR for the warmup) exactly, and invscaling equals scikit-learn's SGDOptimizer;
- training under a schedule and with clipping (the Trainer's own loop) equals torch's loop
  (the same batches, clip_grad_norm_, the scheduler stepped per epoch) in float64;
- clip_grad_norm equals torch.nn.utils.clip_grad_norm_ on real MLP gradients;
- metrics.csv has an ``lr`` column exactly when the learning rate is not constant; a config
  without a schedule (or ``schedule: constant``) trains bit for bit as before;
- SIGINT + --resume (and stops inside an epoch) stay bit-identical with step, cosine + warmup
  (with clipping) and plateau; a checkpoint's schedule state is checked;
- early stopping on val_accuracy, loss (no validation) and val_r2 stops at the epoch and keeps
  the weights Keras' EarlyStopping(restore_best_weights=True) would, simulated by hand here;
- bad settings: one line naming the key, exit 2.
"""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest

from helpers import (NO_PLOTS, assert_usage_error, metrics_rows, nn, npz_arrays, one_run_dir,
                     summary, write_classes_csv, write_config, write_regression_csv, write_yaml, config_dict,
                     assert_same_arrays)
from nncli.data import Split
from nncli.losses import LOSSES
from nncli.model import MLP
from nncli.optim import OPTIMIZERS
from nncli.runs import CHECKPOINT
from nncli.schedules import SCHEDULES, make_schedule
from nncli.tasks import TASKS
from nncli.trainer import EarlyStopping, EpochRecord, FitOptions, Trainer, clip_grad_norm
from test_interrupts import LONG_EPOCHS, _train_library, stop_twice_and_resume
from test_new_optimizers import assert_identical_run, interrupted_beside_reference, resume_matches
from test_against_torch import _pair as torch_pair

try:
    import torch
    LRS = torch.optim.lr_scheduler
except ImportError:  # pragma: no cover (CI installs torch: tests/test_against_torch.py fails there without it)
    torch = LRS = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install -e .[bench])")

LR = 0.1
EPOCHS = 40


# ============================================================================= the learning rates, against torch


def torch_lrs(build, epochs=EPOCHS, losses=None, lr=LR):
    """The lr torch's scheduler ``build(optimizer)`` gives each epoch (read before the epoch, stepped after it)."""
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = build(opt)
        out = []
        for e in range(epochs):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step() if losses is None else sched.step(losses[e])
    return out


def our_lrs(spec, epochs=EPOCHS, losses=None, lr=LR):
    sched = make_schedule(lr, spec)
    out = []
    for e in range(epochs):
        out.append(sched.lr)
        sched.step(math.nan if losses is None else losses[e])
    return out


def warm(w, main):
    """torch's composition of a linear warmup of ``w`` epochs with the scheduler ``main(opt)``."""
    def build(opt):
        lin = LRS.LinearLR(opt, start_factor=1 / (w + 1), total_iters=w)
        return LRS.SequentialLR(opt, [lin, main(opt)], milestones=[w])
    return build


MAINS = {  # (our spec without warmup, torch's scheduler)
    "step": ({"name": "step", "step_size": 3, "gamma": 0.5}, lambda o: LRS.StepLR(o, step_size=3, gamma=0.5)),
    "step-default-gamma": ({"name": "step", "step_size": 7}, lambda o: LRS.StepLR(o, step_size=7)),
    "exponential": ({"name": "exponential", "gamma": 0.9}, lambda o: LRS.ExponentialLR(o, gamma=0.9)),
    # 40 epochs: past T_max = 12, where torch's recursion climbs back up (its special case every 2 T_max)
    "cosine": ({"name": "cosine", "T_max": 12, "eta_min": 0.003}, lambda o: LRS.CosineAnnealingLR(o, T_max=12, eta_min=0.003)),
    "cosine-to-zero": ({"name": "cosine", "T_max": 40}, lambda o: LRS.CosineAnnealingLR(o, T_max=40)),
    "constant": ({"name": "constant"}, lambda o: LRS.LambdaLR(o, lambda e: 1.0)),
}


@needs_torch
@pytest.mark.parametrize("name", [n for n in MAINS if n != "constant"])
def test_each_schedule_equals_torch_epoch_by_epoch(name):
    spec, build = MAINS[name]
    ours, theirs = our_lrs(spec), torch_lrs(build)
    assert ours == theirs  # the same floats, not merely close
    assert len(set(theirs)) > 3  # the schedule really moves


@needs_torch
@pytest.mark.parametrize("w", [1, 5])
@pytest.mark.parametrize("name", list(MAINS))
def test_a_warmup_equals_linearlr_then_the_schedule_in_sequentiallr(name, w):
    spec, build = MAINS[name]
    ours, theirs = our_lrs({**spec, "warmup": w}), torch_lrs(warm(w, build))
    assert ours == theirs
    # the ramp: eta (k + 1) / (W + 1) in epoch k, eta itself in epoch W
    assert ours[:w + 1] == pytest.approx([LR * (k + 1) / (w + 1) for k in range(w + 1)], rel=1e-14)


def _plateau_losses():
    """Improvements, improvements smaller than the threshold, plateaus long and short, a NaN-free random tail."""
    rng = np.random.default_rng(3)
    head = [1.0, 0.9, 0.8995, 0.9, 0.91, 0.92, 0.85, 0.85, 0.86, 0.87, 0.88, 0.7, 0.7, 0.7, 0.7, 0.7, 0.69999]
    return head + list(0.6 + 0.05 * rng.standard_normal(EPOCHS + 20 - len(head)))


PLATEAU = {"factor": 0.5, "patience": 2, "threshold": 0.001, "cooldown": 1, "min_lr": 0.01}


@needs_torch
@pytest.mark.parametrize("settings", [PLATEAU, {}, {"patience": 0, "factor": 0.3, "min_lr": 0.002}],
                         ids=["tuned", "defaults", "patience0"])
def test_plateau_equals_reducelronplateau_driven_with_the_same_losses(settings):
    losses = _plateau_losses()
    n = len(losses)
    theirs = torch_lrs(lambda o: LRS.ReduceLROnPlateau(o, **settings), n, losses)
    assert our_lrs({"name": "plateau", **settings}, n, losses) == theirs
    if settings is not PLATEAU:
        return
    assert len(set(theirs)) >= 4 and min(theirs) == 0.01  # reductions, and the floor min_lr reached


@needs_torch
def test_plateau_after_a_warmup_watches_only_the_epochs_after_it():
    """ReduceLROnPlateau cannot sit in a SequentialLR: the warmup is LinearLR's, then
    ReduceLROnPlateau starts at eta and is stepped with the losses of the later epochs only."""
    w, losses = 4, _plateau_losses()
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=LR)
    theirs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lin = LRS.LinearLR(opt, start_factor=1 / (w + 1), total_iters=w)
        for e in range(w):
            theirs.append(opt.param_groups[0]["lr"])
            opt.step()
            lin.step()
        opt.param_groups[0]["lr"] = LR
        plateau = LRS.ReduceLROnPlateau(opt, **PLATEAU)
        for e in range(w, len(losses)):
            theirs.append(opt.param_groups[0]["lr"])
            opt.step()
            plateau.step(losses[e])
    assert our_lrs({"name": "plateau", "warmup": w, **PLATEAU}, len(losses), losses) == theirs


@needs_torch
@pytest.mark.parametrize("power_t", [0.5, 0.25, 1.0])
def test_invscaling_equals_scikit_learns_per_epoch(power_t):
    """scikit-learn's SGDOptimizer(lr_schedule='invscaling') sets eta0 / (t + 1)^power_t at
    iteration_ends(t); nncli counts t in epochs."""
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

    sk = SGDOptimizer([np.zeros(1)], learning_rate_init=LR, lr_schedule="invscaling", power_t=power_t)
    theirs = []
    for e in range(EPOCHS):
        theirs.append(sk.learning_rate)
        sk.iteration_ends(e + 1)
    assert our_lrs({"name": "invscaling", "power_t": power_t}) == theirs
    # with a warmup: LinearLR's ramp (as SequentialLR gives it), then scikit-learn's sequence from its start
    w = 3
    ours = our_lrs({"name": "invscaling", "power_t": power_t, "warmup": w})
    ramp = torch_lrs(warm(w, lambda o: LRS.LambdaLR(o, lambda k: (k + 1) ** -power_t)))
    assert ours[:w] == ramp[:w]
    assert ours[w:] == theirs[:EPOCHS - w]
    assert ours == pytest.approx(ramp, rel=1e-15)  # LambdaLR multiplies eta by (k+1)^-p instead of dividing


def test_constant_without_warmup_is_no_schedule_and_every_name_is_registered():
    assert make_schedule(LR, None) is None and make_schedule(LR, {"name": "constant", "warmup": 0}) is None
    assert make_schedule(LR, {"name": "constant", "warmup": 2}) is not None
    assert set(SCHEDULES) == {"constant", "step", "exponential", "cosine", "plateau", "invscaling"}


# ============================================================================= the training loop, against torch


def _problem(seed=0, n=12, n_val=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_val, 3))
    y = rng.integers(0, 3, n + n_val)
    model, net = torch_pair(rng)  # the MLP and its torch twin, as tests/test_against_torch.py builds them
    return X, y, model, net


T_OPTS = {"sgd": lambda p, lr: torch.optim.SGD(p, lr=lr), "momentum": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
          "adam": lambda p, lr: torch.optim.Adam(p, lr=lr)}

LOOP_CASES = {  # optimizer, lr, our schedule, torch's (None: plateau), clip_norm, validation rows
    "adam-cosine-warmup-clipped": ("adam", 0.05, {"name": "cosine", "T_max": 6, "eta_min": 0.001, "warmup": 2},
                                   warm(2, lambda o: LRS.CosineAnnealingLR(o, T_max=6, eta_min=0.001)), 0.3, 0),
    "momentum-step": ("momentum", 0.2, {"name": "step", "step_size": 2, "gamma": 0.5},
                      lambda o: LRS.StepLR(o, step_size=2, gamma=0.5), None, 0),
    "sgd-exponential-clipped": ("sgd", 0.5, {"name": "exponential", "gamma": 0.8},
                                lambda o: LRS.ExponentialLR(o, gamma=0.8), 0.05, 0),
    "sgd-plateau-on-val-loss": ("sgd", 0.5, {"name": "plateau", "patience": 0, "factor": 0.5, "threshold": 0.15},
                                None, None, 6),
    "sgd-plateau-on-train-loss": ("sgd", 0.5, {"name": "plateau", "patience": 0, "factor": 0.5, "threshold": 0.15},
                                  None, None, 0),
}


@needs_torch
@pytest.mark.parametrize("case", list(LOOP_CASES))
def test_training_with_a_schedule_and_clipping_equals_torch(case):
    """The Trainer's loop (3 batches of 4 rows in order, 8 epochs, float64) against torch's:
    zero_grad, cross_entropy, backward, clip_grad_norm_, step per batch; the scheduler per epoch
    (plateau: with the validation loss, or the epoch's training loss, as nncli measures it)."""
    opt_name, lr, spec, t_sched, clip, n_val = LOOP_CASES[case]
    X, y, model, net = _problem(1, 12, n_val)
    Y = np.eye(3)[y]
    train = Split("train", X[:12], Y[:12])
    val = Split("val", X[12:], Y[12:]) if n_val else None
    epochs = 8
    tr = Trainer(model, LOSSES["cross_entropy"], OPTIMIZERS[opt_name]([model.flat], lr), TASKS["multiclass"], train, val,
                 np.random.default_rng(0), FitOptions(epochs, batch_size=4, shuffle=False, schedule=spec, clip_norm=clip))
    records = list(tr.epochs())
    assert tr.result.status == "completed" and len(records) == epochs

    t_opt = T_OPTS[opt_name](net.parameters(), lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = t_sched(t_opt) if t_sched is not None else LRS.ReduceLROnPlateau(
            t_opt, **{k: v for k, v in spec.items() if k != "name"})
    Xt, yt = torch.tensor(X), torch.tensor(y)
    lrs, clipped = [], 0
    for e in range(epochs):
        lrs.append(t_opt.param_groups[0]["lr"])
        loss_sum = 0.0
        for s in range(0, 12, 4):
            t_opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(Xt[s:s + 4]), yt[s:s + 4])
            loss_sum += float(loss.detach()) * 4
            loss.backward()
            if clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
                clipped += float(norm) > clip
            t_opt.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if t_sched is not None:
                sched.step()
            elif n_val:
                with torch.no_grad():
                    sched.step(float(torch.nn.functional.cross_entropy(net(Xt[12:]), yt[12:])))
            else:
                sched.step(loss_sum / 12)
    assert [r.lr for r in records] == pytest.approx(lrs, rel=1e-12)
    assert len(set(lrs)) > 1, "the schedule never changed the learning rate"
    if clip is not None:
        assert clipped >= 3, "clipping was (almost) never active: the test would not see it"
    for layer, W, b in zip((net[0], net[2]), model.W, model.b):
        np.testing.assert_allclose(W, layer.weight.detach().numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(b, layer.bias.detach().numpy(), rtol=0, atol=1e-12)


# ============================================================================= clipping against clip_grad_norm_


def _flat_slices(model):
    """(name, slice of the flat parameter array) of each parameter tensor."""
    base = model.flat.__array_interface__["data"][0]
    out = []
    for name, p in model.params():
        start = (p.__array_interface__["data"][0] - base) // p.itemsize
        out.append((name, p.shape, slice(start, start + p.size)))
    return out


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("scale", [0.05, 0.5, 2.0, 50.0])
def test_clip_grad_norm_equals_torch_on_real_mlp_gradients(dtype, scale):
    """The gradient of a 4-6-5-3 network (relu, softmax, cross-entropy, l2), clipped at a
    fraction or a multiple of its norm, against clip_grad_norm_ over the four tensors."""
    rng = np.random.default_rng(11)
    model = MLP.initialise([4, 6, 5, 3], ["relu", "tanh"], "softmax", rng, "he", dtype)
    X = rng.standard_normal((16, 4)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 16)]
    model.forward(X)
    g = model.backward(X, Y, LOSSES["cross_entropy"], 0.01).copy()
    norm = float(np.linalg.norm(g.astype(np.float64)))
    max_norm = scale * norm
    tensors = []
    for _, shape, sl in _flat_slices(model):
        t = torch.zeros(shape, dtype=getattr(torch, dtype), requires_grad=True)
        t.grad = torch.tensor(g[sl].reshape(shape))
        tensors.append(t)
    total = float(torch.nn.utils.clip_grad_norm_(tensors, max_norm))
    before = g.copy()
    ours = clip_grad_norm(g, max_norm)
    tol = 1e-14 if dtype == "float64" else 1e-6
    assert ours == pytest.approx(total, rel=tol)
    theirs = np.concatenate([t.grad.numpy().ravel() for t in tensors])
    mine = np.concatenate([g[sl] for _, _, sl in _flat_slices(model)])
    np.testing.assert_allclose(mine, theirs, rtol=tol, atol=0)
    if scale < 1:
        # the norm becomes max_norm ||g|| / (||g|| + 1e-6): torch's 1e-6 guards against a zero norm
        assert np.linalg.norm(g.astype(np.float64)) == pytest.approx(max_norm * norm / (norm + 1e-6), rel=10 * tol)
    else:
        assert np.array_equal(g, before)  # within the bound: untouched


# ============================================================================= metrics.csv, bit-identity, plots


def _cfg(base, name="t", epochs=7, **train):
    write_classes_csv(base / "data.csv", n=40, seed=3)
    return write_config(base / f"{name}.yaml", name=name, train_csv="data.csv", target="label", seed=2,
                        epochs=epochs, batch_size=8, data_extra={"val_split": 0.25}, **train)


@needs_torch
def test_metrics_csv_has_the_lr_column_only_when_the_rate_changes(tmp_path):
    _cfg(tmp_path, "none")
    _cfg(tmp_path, "const", schedule="constant")
    _cfg(tmp_path, "step", schedule={"name": "step", "step_size": 2, "gamma": 0.5})
    _cfg(tmp_path, "warm", schedule={"name": "constant", "warmup": 3})
    runs = {}
    for name in ("none", "const", "step", "warm"):
        r = nn("train", f"{name}.yaml", *NO_PLOTS, "-q", "--runs-dir", name, cwd=tmp_path)
        assert r.rc == 0, r.show()
        runs[name] = one_run_dir(r, tmp_path)
    header, rows = metrics_rows(runs["none"])
    assert "lr" not in header
    # schedule: constant is no schedule at all: the same bytes and weights
    assert (runs["const"] / "metrics.csv").read_bytes() == (runs["none"] / "metrics.csv").read_bytes()
    assert_same_arrays(npz_arrays(runs["const"] / "model.npz"), npz_arrays(runs["none"] / "model.npz"))
    header, rows = metrics_rows(runs["step"])
    assert header == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert [float(r[-1]) for r in rows] == torch_lrs(lambda o: LRS.StepLR(o, step_size=2, gamma=0.5), 7, lr=0.1)
    header, rows = metrics_rows(runs["warm"])
    assert [float(r[-1]) for r in rows] == torch_lrs(warm(3, MAINS["constant"][1]), 7, lr=0.1)
    # the learning rate changed the training: other numbers than the constant run's from epoch 1 on
    assert metrics_rows(runs["warm"])[1][0][1] != metrics_rows(runs["none"])[1][0][1]


def test_loss_png_draws_the_learning_rate_when_it_changes(tmp_path, monkeypatch):
    from nncli import plots

    seen = []
    real = plots.loss_plot
    monkeypatch.setattr(plots, "loss_plot", lambda *a, **k: seen.append(a[6] if len(a) > 6 else k.get("lr")) or real(*a, **k))
    _cfg(tmp_path, "step", epochs=5, schedule={"name": "step", "step_size": 2})
    _cfg(tmp_path, "none", epochs=5)
    _cfg(tmp_path, "flat", epochs=5, schedule={"name": "plateau", "patience": 50})  # never reduces: nothing to draw
    runs = {}
    for name in ("step", "none", "flat"):
        r = nn("train", f"{name}.yaml", "-q", "--runs-dir", name, cwd=tmp_path)
        assert r.rc == 0, r.show()
        runs[name] = one_run_dir(r, tmp_path)
        assert (runs[name] / "loss.png").stat().st_size > 1000
    assert seen[0] is not None and list(seen[0]) == [0.1, 0.1, 0.010000000000000002, 0.010000000000000002, 0.0010000000000000002]
    assert seen[1] is None and seen[2] is None
    # nncli plot redraws it from metrics.csv the same way
    seen.clear()
    r = nn("plot", runs["step"], cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert seen and list(seen[0]) == [0.1, 0.1, 0.010000000000000002, 0.010000000000000002, 0.0010000000000000002]


def test_a_resumed_run_reads_the_lr_column_back_and_draws_every_epoch(tmp_path, monkeypatch):
    """The epochs before an interruption come back from metrics.csv with their learning rates."""
    from nncli import plots

    seen = []
    real = plots.loss_plot
    monkeypatch.setattr(plots, "loss_plot", lambda *a, **k: seen.append(list(a[6])) or real(*a, **k))
    monkeypatch.chdir(tmp_path)
    write_classes_csv(tmp_path / "data.csv", n=23)
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", seed=2, epochs=6, batch_size=5,
                 schedule={"name": "exponential", "gamma": 0.5})
    run, s = _train_library(tmp_path / "cfg.yaml", tmp_path / "runs", stop_at_step=11)
    assert s["status"] == "interrupted"
    r = nn("train", "--resume", run, "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert seen == [[0.1 * 0.5 ** e for e in range(6)]]


def test_a_damaged_lr_cell_is_named(tmp_path):
    _cfg(tmp_path, "step", epochs=3, schedule={"name": "step", "step_size": 1})
    r = nn("train", "step.yaml", *NO_PLOTS, "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = one_run_dir(r, tmp_path)
    text = (run / "metrics.csv").read_text(encoding="utf-8").splitlines()
    text[2] = text[2].rsplit(",", 1)[0] + ",-0.01"
    (run / "metrics.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    assert_usage_error(nn("plot", run, cwd=tmp_path), "line 3, column 'lr'", "not a learning rate")


# ============================================================================= resume


RESUME = {
    "step": {"schedule": {"name": "step", "step_size": 30, "gamma": 0.7}},
    "cosine-warmup-clip": {"schedule": {"name": "cosine", "T_max": 200, "eta_min": 0.001, "warmup": 20}, "clip_norm": 0.5},
    "plateau": {"schedule": {"name": "plateau", "patience": 3, "factor": 0.5, "cooldown": 2, "threshold": 0.01}},
}


def _long(base, name):
    write_classes_csv(base / "data.csv", n=200, seed=7)
    write_config(base / "long.yaml", name=f"long-{name}", train_csv="data.csv", target="label", seed=1,
                 layers=("auto", 8, "auto"), optimizer="momentum", lr=0.05, epochs=LONG_EPOCHS, batch_size=8,
                 data_extra={"val_split": 0.2} if name == "plateau" else None, **RESUME[name])
    return "long.yaml"


@pytest.mark.parametrize("name", list(RESUME))
def test_sigint_then_resume_with_a_schedule_matches_the_uninterrupted_run(tmp_path, name):
    ref, run, work = interrupted_beside_reference(tmp_path, lambda d: _long(d, name))
    header, rows = metrics_rows(ref)
    assert header[-1] == "lr" and len({row[-1] for row in rows}) > 2  # the schedule did change eta
    with np.load(run / CHECKPOINT, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    assert meta["schedule"]["name"] == RESUME[name]["schedule"]["name"] and meta["schedule"]["epoch"] == meta["epoch"]
    resume_matches(run, ref, work)


RESUME_SHORT = {  # the same schedules, moving within 6 epochs
    "step": {"schedule": {"name": "step", "step_size": 2, "gamma": 0.7}},
    "cosine-warmup-clip": {"schedule": {"name": "cosine", "T_max": 3, "eta_min": 0.001, "warmup": 2}, "clip_norm": 0.5},
    "plateau": {"schedule": {"name": "plateau", "patience": 0, "factor": 0.5, "threshold": 0.01}},
}


@pytest.mark.parametrize("name", list(RESUME_SHORT))
def test_a_stop_inside_an_epoch_resumed_twice_is_bit_for_bit(tmp_path, monkeypatch, name):
    """The library: stopped after the 11th optimizer step (inside epoch 3: 23 rows in batches
    of 5), resumed and stopped again 7 steps later (inside epoch 4), resumed to the end."""
    monkeypatch.chdir(tmp_path)
    write_classes_csv(tmp_path / "data.csv", n=23)
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", seed=2, epochs=6, batch_size=5,
                 shuffle=True, optimizer="momentum", lr=0.3, **RESUME_SHORT[name])
    run, ref = stop_twice_and_resume(tmp_path / "cfg.yaml", tmp_path)
    assert len({row[-1] for row in metrics_rows(ref)[1]}) > 1  # the schedule did change eta
    assert_identical_run(run, ref)


def _tamper(run, change):
    path = run / CHECKPOINT
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, needle", [
    (lambda m: m.pop("schedule"), "'meta.schedule' is missing"),
    (lambda m: m["schedule"].update(epoch=m["schedule"]["epoch"] + 1), "'meta.schedule.epoch'"),
    (lambda m: m["schedule"].update(lr=-1.0), "not a finite learning rate"),
    (lambda m: m["schedule"].update(bad="x"), "'bad'"),
    (lambda m: m["schedule"].pop("best"), "has no 'best'"),
    (lambda m: m["schedule"].update(name="cosine"), "plateau"),
])
def test_a_damaged_schedule_state_is_refused_in_one_line(tmp_path, monkeypatch, change, needle):
    monkeypatch.chdir(tmp_path)
    write_classes_csv(tmp_path / "data.csv", n=23)
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", seed=2, epochs=6, batch_size=5,
                 schedule={"name": "plateau", "patience": 0})
    run, s = _train_library(tmp_path / "cfg.yaml", tmp_path / "runs", stop_at_step=11)
    _tamper(run, change)
    r = nn("train", "--resume", run, *NO_PLOTS, "-q", cwd=tmp_path)
    assert_usage_error(r, "checkpoint", needle)


def test_a_schedule_state_in_a_run_without_schedule_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_classes_csv(tmp_path / "data.csv", n=23)
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", seed=2, epochs=6, batch_size=5)
    run, s = _train_library(tmp_path / "cfg.yaml", tmp_path / "runs", stop_at_step=11)
    _tamper(run, lambda m: m.update(schedule={"name": "step", "lr": 0.1, "epoch": m["epoch"]}))
    assert_usage_error(nn("train", "--resume", run, *NO_PLOTS, "-q", cwd=tmp_path), "learning rate is constant")


# ============================================================================= early stopping on any metric


def keras_early_stopping(values, patience, min_delta, mode):
    """Keras' EarlyStopping(restore_best_weights=True).on_epoch_end over a sequence of monitored
    values (epochs 0-based there): (the 1-based epoch training stops after, the 1-based epoch whose weights are kept)."""
    best = math.inf if mode == "min" else -math.inf
    delta = -min_delta if mode == "min" else min_delta
    op = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    wait, best_weights = 0, None  # best_weights: the epoch whose weights are kept
    for epoch, current in enumerate(values):
        if best_weights is None:
            best_weights = epoch
        wait += 1
        if op(current - delta, best):
            best, best_weights, wait = current, epoch, 0
            continue
        if wait >= patience and epoch > 0:
            return epoch + 1, best_weights + 1
    return len(values), best_weights + 1


@needs_torch
def test_keras_semantics_on_a_scripted_sequence():
    """The trainer's rule, fed a scripted sequence (ties, improvements smaller than min_delta,
    a NaN first value), stops where the hand simulation of Keras does and keeps that epoch's weights."""
    X, y, model, _ = _problem(2)
    split = Split("train", X, np.eye(3)[y])
    cases = [("val_accuracy", [0.5, 0.6, 0.6, 0.65, 0.64, 0.66, 0.66, 0.66, 0.66, 0.7], 3, 0.01),
             ("val_loss", [1.0, 0.9, 0.95, 0.899, 0.85, 0.86, 0.87, 0.88, 0.5], 3, 0.02),
             ("val_r2", [math.nan, 0.1, 0.1, 0.2, 0.19, 0.18, 0.3], 2, 0.0),
             ("loss", [2.0, 1.5, 1.5, 1.5, 1.5], 3, 0.0)]
    for monitor, values, patience, min_delta in cases:
        task = TASKS["regression" if "r2" in monitor else "multiclass"]
        es = EarlyStopping(patience, min_delta, monitor)
        tr = Trainer(model, LOSSES["cross_entropy"], OPTIMIZERS["sgd"]([model.flat], 0.1), task, split, split,
                     np.random.default_rng(0), FitOptions(len(values), early_stopping=es))
        stop = len(values)
        for e, v in enumerate(values, 1):
            model.flat[:] = e  # the weights of epoch e
            tr.epoch = e
            field = {"loss": "loss", "val_loss": "val_loss"}.get(monitor, "val_metric" if monitor.startswith("val_") else "metric")
            rec = EpochRecord(e, 0.0, 0.0, 0.0, 0.0)
            setattr(rec, field, v)
            if tr._early_stop(rec):
                stop = e
                break
        mode = "min" if monitor.removeprefix("val_") == "loss" else "max"
        assert (stop, tr._best[1]) == keras_early_stopping(values, patience, min_delta, mode), monitor
        assert np.all(tr._best[2][0] == tr._best[1])  # the kept weights are that epoch's


ES_CASES = {  # monitor, patience, min_delta, data: classes with validation, classes without, regression
    "val_accuracy": ("val_accuracy", 4, 0.0, "val"),
    "loss-no-validation": ("loss", 3, 0.002, "noval"),
    "val_r2": ("val_r2", 3, 0.001, "regression"),
    "val_loss-default": ("val_loss", 3, 0.0, "val"),
}


@pytest.mark.parametrize("case", list(ES_CASES))
def test_early_stopping_stops_and_keeps_the_weights_keras_would(tmp_path, case):
    monitor, patience, min_delta, data = ES_CASES[case]
    if data == "regression":
        write_regression_csv(tmp_path / "data.csv", n=60, seed=4)
        kw = dict(target="y", loss="mse", optimizer="adam", lr=0.3)
    else:
        write_classes_csv(tmp_path / "data.csv", n=60, seed=5, flip=0.1)
        kw = dict(target="label", optimizer="adam", lr=0.2)
    extra = {"val_split": 0.3} if data != "noval" else None
    es = {"patience": patience, "min_delta": min_delta} | ({} if case.endswith("default") else {"monitor": monitor})
    epochs = 300
    write_config(tmp_path / "es.yaml", name="es", train_csv="data.csv", seed=3, epochs=epochs, batch_size=8,
                 layers=("auto", 6, "auto"), data_extra=extra, early_stopping=es, **kw)
    r = nn("train", "es.yaml", *NO_PLOTS, "-q", "--runs-dir", "es", cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = one_run_dir(r, tmp_path)
    header, rows = metrics_rows(run)
    col = header.index(monitor)
    values = [float(row[col]) for row in rows]
    mode = "min" if monitor.removeprefix("val_") == "loss" else "max"
    stop, best = keras_early_stopping(values, patience, min_delta, mode)
    s = summary(run)
    assert s["stopped_early"] is True and s["epochs_run"] == stop < epochs, (s, values)
    assert s["best_epoch"] == best and s["monitor"] == monitor
    assert best < stop
    # the weights kept are those of epoch `best`: a run of exactly that many epochs ends with them
    cfg = config_dict(name="upto", train_csv="data.csv", seed=3, epochs=best, batch_size=8, layers=("auto", 6, "auto"),
                      data_extra=extra, **kw)
    write_yaml(tmp_path / "upto.yaml", cfg)
    r = nn("train", "upto.yaml", *NO_PLOTS, "-q", "--runs-dir", "upto", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert_same_arrays(npz_arrays(run / "model.npz"), npz_arrays(one_run_dir(r, tmp_path) / "model.npz"))


def test_the_closing_summary_names_the_monitored_metric(tmp_path):
    write_classes_csv(tmp_path / "data.csv", n=60, seed=5, flip=0.1)
    write_config(tmp_path / "es.yaml", name="es", train_csv="data.csv", target="label", seed=3, epochs=300, batch_size=8,
                 optimizer="adam", lr=0.2, data_extra={"val_split": 0.3},
                 early_stopping={"monitor": "val_accuracy", "patience": 3})
    r = nn("train", "es.yaml", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert re.search(r"early stopping kept the weights of epoch \d+ \(best val_accuracy\)", r.err), r.err


# ============================================================================= bad settings


BAD = [
    ({"schedule": "cosin"}, "train.schedule.name", "did you mean 'cosine'"),
    ({"schedule": {"name": "step"}}, "train.schedule.step_size", "needs step_size"),
    ({"schedule": {"name": "step", "step_size": 2.5}}, "train.schedule.step_size", "whole number"),
    ({"schedule": {"name": "step", "step_size": 3, "gama": 0.5}}, "train.schedule.gama", "did you mean 'gamma'"),
    ({"schedule": {"name": "exponential"}}, "train.schedule.gamma", "needs gamma"),
    ({"schedule": {"name": "plateau", "factor": 1}}, "train.schedule.factor", "(0, 1)"),
    ({"schedule": {"name": "cosine", "T_max": 0}}, "train.schedule.T_max", "[1, inf)"),
    ({"schedule": {"name": "cosine", "warmup": -2}}, "train.schedule.warmup", "greater than or equal to 0"),
    ({"schedule": 3}, "train.schedule", "schedule name"),
    ({"clip_norm": 0}, "train.clip_norm", "greater than 0"),
    ({"clip_norm": -1.0}, "train.clip_norm", "greater than 0"),
    ({"early_stopping": {"monitor": "val_acc"}}, "train.early_stopping.monitor", "did you mean 'val_accuracy'"),
    ({"early_stopping": {"monitor": "val_r2"}}, "train.early_stopping.monitor", "reports accuracy, not r2"),
    ({"early_stopping": {"monitor": "val_accuracy"}, "_noval": True}, "train.early_stopping", "add data.val or data.val_split, or monitor accuracy"),
    ({"early_stopping": {}, "_noval": True}, "train.early_stopping watches the validation loss", "add data.val"),
]


@pytest.mark.parametrize("train, key, needle", BAD, ids=[f"{i}" for i in range(len(BAD))])
def test_bad_settings_are_one_line_naming_the_key(tmp_path, train, key, needle):
    write_classes_csv(tmp_path / "data.csv", n=30)
    train = dict(train)
    noval = train.pop("_noval", False)
    write_config(tmp_path / "bad.yaml", train_csv="data.csv", target="label",
                 data_extra=None if noval else {"val_split": 0.2}, **train)
    r = nn("train", "bad.yaml", *NO_PLOTS, "-q", cwd=tmp_path)
    assert_usage_error(r, key, needle)
    assert not (tmp_path / "runs").exists()


def test_monitor_of_the_wrong_task_is_found_once_the_loss_is_inferred(tmp_path):
    write_regression_csv(tmp_path / "data.csv", n=30)
    cfg = config_dict(train_csv="data.csv", target="y", data_extra={"val_split": 0.2},
                      early_stopping={"monitor": "val_accuracy"})
    del cfg["loss"]
    write_yaml(tmp_path / "bad.yaml", cfg)
    assert_usage_error(nn("train", "bad.yaml", *NO_PLOTS, "-q", cwd=tmp_path), "reports r2, not accuracy")


def test_loss_monitor_needs_no_validation(tmp_path):
    write_classes_csv(tmp_path / "data.csv", n=30)
    write_config(tmp_path / "ok.yaml", train_csv="data.csv", target="label", epochs=4,
                 early_stopping={"monitor": "accuracy", "patience": 2})
    r = nn("train", "ok.yaml", *NO_PLOTS, "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
