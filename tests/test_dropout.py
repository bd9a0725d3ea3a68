"""Dropout (model.dropout): inverted dropout on the hidden activations while training.

- forward and backward with a fixed mask equal the same masked network built by hand in
  PyTorch (a_l = f(z_l) ⊙ m_l / (1 - p), the mask tensor given), outputs, loss and every
  gradient to 1e-12 in float64 (torch.nn.functional.dropout cannot take a given mask);
- the masks a training forward draws come from the generator it is given, in a fixed order
  (one rng.random((n, n_l)) per dropped hidden layer), keep a unit with probability 1 - p
  over many draws, and scale kept units by 1 / (1 - p);
- rate 0 (and no key) never touches the generator: bit-identical runs;
- eval, predict, the validation numbers use the full network;
- SIGINT + --resume (and library stops inside an epoch) stay bit-identical;
- ``nncli gradcheck`` checks the gradient with one fixed mask and says so;
- bad rates: one line naming model.dropout, exit 2.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

try:  # the reference of the torch test below (the bench extra); the other tests need no torch
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install -e '.[bench]')")

from helpers import (NO_PLOTS, nn, only_run, random_mlp, strict_json, summary, write_classes_csv,
                     write_yaml, config_dict)
from nncli.config import load_config
from nncli.gradcheck import gradcheck
from nncli.job import TrainingJob
from nncli.losses import LOSSES
from nncli.runs import CHECKPOINT
from nncli.trainer import evaluate
from test_interrupts import _train_library, interrupt_training, stop_twice_and_resume
from test_new_optimizers import assert_identical_run

TORCH_ACT = {"tanh": lambda z: torch.tanh(z), "sigmoid": lambda z: torch.sigmoid(z), "relu": lambda z: torch.relu(z),
             "identity": lambda z: z, "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01)}


def _torch_masked(model, X, Y, loss_name, masks):
    """The masked network by hand in torch (float64): outputs, loss and gradients by autograd."""
    Ws = [torch.tensor(W, dtype=torch.float64, requires_grad=True) for W in model.W]
    bs = [torch.tensor(b, dtype=torch.float64, requires_grad=True) for b in model.b]
    a = torch.tensor(X)
    for l, (W, b) in enumerate(zip(Ws[:-1], bs[:-1])):
        a = TORCH_ACT[model.hidden[l]](a @ W.T + b)
        if masks[l] is not None:
            a = a * torch.tensor(masks[l])  # a_l = f(z_l) ⊙ m_l / (1 - p): the mask tensor is already scaled
    z = a @ Ws[-1].T + bs[-1]
    y = torch.tensor(Y)
    if loss_name == "bce":
        out, E = torch.sigmoid(z), torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    elif loss_name == "cross_entropy":
        out, E = torch.softmax(z, 1), torch.nn.functional.cross_entropy(z, y.argmax(1))
    else:
        out, E = z, 0.5 * ((z - y) ** 2).sum(1).mean()
    E.backward()
    grads = [g.grad.numpy() for pair in zip(Ws, bs) for g in pair]
    return out.detach().numpy(), float(E.detach()), grads


CASES = [  # loss, output, sizes, hidden activations, rates
    ("bce", "sigmoid", [3, 7, 5, 1], ["tanh", "sigmoid"], [0.3, 0.5]),
    ("cross_entropy", "softmax", [4, 6, 5, 3], ["relu", "tanh"], [0.5, 0.2]),
    ("mse", "identity", [2, 8, 2], ["sigmoid"], [0.4]),
    ("cross_entropy", "softmax", [4, 6, 5, 3], ["leaky_relu", "sigmoid"], [0.0, 0.6]),  # a layer without dropout
]


@needs_torch
@pytest.mark.parametrize("loss_name,output,sizes,hidden,rates", CASES)
def test_forward_and_backward_with_a_fixed_mask_match_torch(loss_name, output, sizes, hidden, rates):
    rng = np.random.default_rng(3)
    model = random_mlp(sizes, hidden, output, "float64", seed=5)
    model.set_dropout(rates)
    n = 11
    X = rng.normal(size=(n, sizes[0]))
    Y = (rng.integers(0, 2, (n, 1)).astype(float) if loss_name == "bce" else np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
         if loss_name == "cross_entropy" else rng.normal(size=(n, sizes[-1])))
    masks = model.draw_masks(n, rng)
    assert [m is None for m in masks] == [p == 0 for p in rates]
    for m, p in zip(masks, rates):
        if m is not None:  # 0 (dropped) or 1 / (1 - p) (kept, scaled), and both occur
            assert set(np.unique(m)) == {0.0, 1.0 / (1.0 - p)}
    E, grads = model.loss_and_grads(X, Y, LOSSES[loss_name], masks=masks)
    out = model.forward(X, masks=masks).copy()
    t_out, t_E, t_grads = _torch_masked(model, X, Y, loss_name, masks)
    np.testing.assert_allclose(out, t_out, rtol=1e-12, atol=1e-12)
    assert E == pytest.approx(t_E, rel=1e-12, abs=1e-12)
    for (name, _), g, tg in zip(model.params(), grads, t_grads):
        np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-12, err_msg=name)
    # and the mask matters: without it torch's full network gives other outputs and gradients
    full_out, _, full_grads = _torch_masked(model, X, Y, loss_name, [None] * len(rates))
    assert not np.allclose(full_out, t_out)
    assert not np.allclose(full_grads[0], t_grads[0])


def test_a_training_forward_draws_the_masks_from_the_given_generator_in_order():
    """forward(X, rng) uses exactly draw_masks(n, rng): per dropped layer one rng.random((n, n_l)),
    a unit kept where u >= p; the generator then stands where those draws leave it."""
    model = random_mlp([3, 6, 4, 2], ["tanh", "relu"], "softmax", "float64", seed=1)
    model.set_dropout([0.25, 0.5])
    X = np.random.default_rng(0).normal(size=(9, 3))
    rng, copy = np.random.default_rng(42), np.random.default_rng(42)
    model.forward(X, rng)
    drawn = [m.copy() for m in model._masks]
    u1, u2 = copy.random((9, 6)), copy.random((9, 4))
    np.testing.assert_array_equal(drawn[0], (u1 >= 0.25) / 0.75)
    np.testing.assert_array_equal(drawn[1], (u2 >= 0.5) / 0.5)
    assert rng.bit_generator.state == copy.bit_generator.state
    # a layer with rate 0 draws nothing: only the dropped layer's uniforms are taken
    model.set_dropout([0.0, 0.5])
    model.forward(X, rng)
    assert model._masks[0] is None
    np.testing.assert_array_equal(model._masks[1], (copy.random((9, 4)) >= 0.5) / 0.5)
    assert rng.bit_generator.state == copy.bit_generator.state
    # without a generator (eval, predict, validation): the full network, no mask
    out = model.forward(X).copy()
    assert model._masks is None
    from helpers import naive_forward

    np.testing.assert_allclose(out, naive_forward(model, X)[1], rtol=1e-13)


def test_units_are_kept_with_probability_one_minus_p_over_many_draws():
    model = random_mlp([2, 50, 40, 1], ["tanh", "tanh"], "sigmoid", "float32", seed=0)
    model.set_dropout([0.3, 0.75])
    rng = np.random.default_rng(7)
    n, draws = 500, 40
    kept = [0, 0]
    means = [0.0, 0.0]
    for _ in range(draws):
        masks = model.draw_masks(n, rng)
        for i, m in enumerate(masks):
            kept[i] += np.count_nonzero(m)
            means[i] += float(m.astype(np.float64).mean()) / draws
    for i, (p, k) in enumerate(zip([0.3, 0.75], [50, 40])):
        total = n * k * draws
        sd = np.sqrt(p * (1 - p) / total)
        assert abs(kept[i] / total - (1 - p)) < 5 * sd, (p, kept[i] / total)
        assert abs(means[i] - 1.0) < 5 * sd / (1 - p)  # inverted dropout: E[m / (1 - p)] = 1
        assert masks[i].dtype == np.float32


def test_rate_zero_never_touches_the_generator_and_changes_nothing():
    model = random_mlp([3, 5, 4, 1], ["tanh", "relu"], "sigmoid", "float32", seed=2)
    X = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    ref = model.forward(X).copy()
    for rates in ([0.0, 0.0], [0, 0]):
        model.set_dropout(rates)
        rng = np.random.default_rng(9)
        state = rng.bit_generator.state
        out = model.forward(X, rng)
        assert rng.bit_generator.state == state
        np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("bad,needle", [
    (1.0, "model.dropout: 1.0 is not a dropout rate"),
    (-0.1, "model.dropout: -0.1 is not a dropout rate"),
    ("half", "model.dropout: 'half' is not a dropout rate"),
    ([0.5, 0.2], "model.dropout lists 2 rates but model.layers has 1 hidden layers"),
    ([0.5, True], "entry 1: True is not a dropout rate"),
])
def test_bad_rates_are_one_line_naming_the_key(tmp_path, bad, needle):
    write_classes_csv(tmp_path / "data.csv")
    cfg = config_dict(train_csv="data.csv", target="label")
    cfg["model"]["dropout"] = bad
    write_yaml(tmp_path / "cfg.yaml", cfg)
    r = nn("train", "cfg.yaml", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 2, r.show()
    assert len(r.err_lines) == 1 and needle in r.err_lines[0], r.show()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ============================================================================= training


def _dropout_config(tmp_path, name="d", dropout=0.3, **kw):
    write_classes_csv(tmp_path / "data.csv", n=60, seed=3)
    cfg = config_dict(train_csv="data.csv", target="label", name=name, seed=4, layers=("auto", 8, 6, "auto"),
                      optimizer="adam", lr=0.02, epochs=kw.pop("epochs", 8), batch_size=kw.pop("batch_size", 7), **kw)
    cfg["data"]["val_split"] = 0.25
    cfg["data"]["test_split"] = 0.2
    if dropout is not None:
        cfg["model"]["dropout"] = dropout
    return write_yaml(tmp_path / f"{name}.yaml", cfg)


def test_dropout_zero_and_no_key_are_bit_identical(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, _ = _train_library(_dropout_config(tmp_path, "none", dropout=None), tmp_path / "a")
    b, _ = _train_library(_dropout_config(tmp_path, "zero", dropout=0), tmp_path / "b")
    c, _ = _train_library(_dropout_config(tmp_path, "zeros", dropout=[0.0, 0.0]), tmp_path / "c")
    d, _ = _train_library(_dropout_config(tmp_path, "some", dropout=[0.0, 0.5]), tmp_path / "d")
    for other in (b, c):
        assert_identical_run(other, a)
    assert (d / "metrics.csv").read_bytes() != (a / "metrics.csv").read_bytes()  # dropout does change training


def test_dropout_runs_are_reproducible_and_validation_uses_the_full_network(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg_path = _dropout_config(tmp_path, "rep", dropout=[0.4, 0.2])
    job = TrainingJob(load_config(cfg_path), tmp_path / "runs")
    job.start()
    records = list(job.epochs())
    s = job.finish(plots=False)
    assert s["status"] == "completed"
    from helpers import naive_forward

    # the last epoch's validation numbers: the full network (no mask) on the validation rows
    loss = LOSSES["bce"]
    _, A = naive_forward(job.model, job.data.val.X)
    expect = float(loss.value(job.data.val.Y.astype(np.float64), A))
    assert records[-1].val_loss == pytest.approx(expect, rel=1e-5)
    assert records[-1].val_loss == evaluate(job.model, job.data.val, loss, job.cfg.task)[0]
    # again, from scratch: bit for bit
    again, _ = _train_library(cfg_path, tmp_path / "again")
    assert_identical_run(again, job.run_dir)
    # eval and predict: the full network, the same numbers every time
    run = job.run_dir
    e1 = strict_json(nn("eval", run, "--json", *NO_PLOTS, cwd=tmp_path).text)
    e2 = strict_json(nn("eval", run, "--json", *NO_PLOTS, cwd=tmp_path).text)
    assert e1["loss"] == e2["loss"]
    _, A = naive_forward(job.model, job.data.test.X)
    assert e1["loss"] == pytest.approx(float(loss.value(job.data.test.Y.astype(np.float64), A)), rel=1e-5)
    r1 = nn("predict", run, "data.csv", "-o", "p1.csv", cwd=tmp_path)
    r2 = nn("predict", run, "data.csv", "-o", "p2.csv", cwd=tmp_path)
    assert r1.rc == 0 and r2.rc == 0, r1.show() + r2.show()
    assert (tmp_path / "p1.csv").read_bytes() == (tmp_path / "p2.csv").read_bytes()


# ============================================================================= resume


def test_a_stop_inside_an_epoch_resumed_twice_is_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_classes_csv(tmp_path / "data.csv", n=23)
    cfg = config_dict(train_csv="data.csv", target="label", seed=2, epochs=6, batch_size=5, shuffle=True,
                      layers=("auto", 6, 5, "auto"), optimizer="adam", lr=0.02)
    cfg["model"]["dropout"] = [0.5, 0.25]
    write_yaml(tmp_path / "cfg.yaml", cfg)
    run, ref = stop_twice_and_resume(tmp_path / "cfg.yaml", tmp_path)
    assert_identical_run(run, ref)


def test_sigint_then_resume_matches_the_uninterrupted_run(tmp_path):
    from test_interrupts import LONG_EPOCHS

    ref_dir, work = tmp_path / "ref", tmp_path / "work"
    ref_dir.mkdir()
    work.mkdir()
    write_classes_csv(ref_dir / "data.csv", n=200, seed=7)
    cfg = config_dict(name="long-dropout", train_csv="data.csv", target="label", seed=1, layers=("auto", 8, "auto"),
                      optimizer="momentum", lr=0.05, epochs=LONG_EPOCHS, batch_size=8)
    cfg["model"]["dropout"] = 0.3
    write_yaml(ref_dir / "long.yaml", cfg)
    r = nn("train", "long.yaml", *NO_PLOTS, "-q", cwd=ref_dir)
    assert r.rc == 0, r.show()
    ref = only_run(ref_dir)
    shutil.copy(ref_dir / "data.csv", work / "data.csv")
    shutil.copy(ref_dir / "long.yaml", work / "long.yaml")
    rc, err = interrupt_training(work, "long.yaml", tmp_path / "stderr.txt")
    assert rc == 130 and "Traceback" not in err, err
    run = only_run(work)
    assert (run / CHECKPOINT).exists() and summary(run)["status"] == "interrupted"
    assert (run / "metrics.csv").read_bytes() != (ref / "metrics.csv").read_bytes()
    r = nn("train", "--resume", run, *NO_PLOTS, "-q", cwd=work)
    assert r.rc == 0, r.show()
    assert_identical_run(run, ref)


# ============================================================================= gradcheck


def test_gradcheck_with_a_fixed_mask_passes_and_says_so(tmp_path):
    path = _dropout_config(tmp_path, "gc", dropout=[0.5, 0.3])
    r = nn("gradcheck", path.name, "--json", cwd=tmp_path)
    assert r.rc == 0, r.show()
    rep = strict_json(r.text)
    assert rep["passed"] is True and rep["dropout"] == [0.5, 0.3]
    assert any("fixed mask" in n for n in rep["notes"]), rep["notes"]
    r = nn("gradcheck", path.name, cwd=tmp_path)
    assert r.rc == 0 and "note: dropout (model.dropout [0.5, 0.3]): checked with one fixed mask" in r.text, r.show()
    # on a trained run too
    r = nn("train", path.name, *NO_PLOTS, "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    r = nn("gradcheck", only_run(tmp_path), "--json", cwd=tmp_path)
    assert r.rc == 0 and strict_json(r.text)["dropout"] == [0.5, 0.3], r.show()
    # without dropout: no such field, no such note
    r = nn("gradcheck", _dropout_config(tmp_path, "plain", dropout=0).name, "--json", cwd=tmp_path)
    rep = strict_json(r.text)
    assert r.rc == 0 and rep["dropout"] is None and not any("dropout" in n for n in rep["notes"])


def test_gradcheck_fails_a_backprop_that_ignores_the_mask(tmp_path):
    """The check can fail: gradients of the full network against E of the masked one."""
    model = random_mlp([3, 6, 5, 1], ["tanh", "tanh"], "sigmoid", "float64", seed=4)
    model.set_dropout([0.5, 0.5])
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 3)), rng.integers(0, 2, (6, 1)).astype(float)

    def unmasked(m, X, Y, loss, l2):
        return m.loss_and_grads(X, Y, loss, l2)[1]  # no masks: the full network

    assert gradcheck(model, X, Y, "bce").passed
    assert not gradcheck(model, X, Y, "bce", grad_fn=unmasked).passed
