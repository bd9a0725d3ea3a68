"""Extending nncli in one place (issue 12, item 8): a new activation, loss, initialisation and
optimizer, each registered in its registry only (pytest's monkeypatch, undone after each
test; no file of nncli/ is edited), work through the config validation, ``nncli gradcheck``
and ``nncli train``.

- softsign: f(z) = z / (1 + |z|), f'(z) = 1 / (1 + |z|)^2 (hidden layers);
- huber: the Huber loss with delta = 1 for regression, default output identity and no
  shortcut, so the model takes the full chain rule with the loss's own grad: gradcheck
  proves that gradient right (and fails a wrong one);
- orthogonal: an orthogonal initialisation (QR of a Gaussian matrix);
- nesterov: Nesterov momentum, reusing the declared ``momentum`` hyperparameter (registered as
  ``nesterov_ext``: nncli has its own ``nesterov`` since issue 15).

An optimizer may also declare a hyperparameter no other optimizer has: the config schema
follows the registry (nncli.config.schema), so it becomes a ``train.<name>`` key at once
(test_new_optimizer_hyperparameter_key_is_accepted).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import yaml

from helpers import NO_PLOTS, assert_usage_error, nn, npz_arrays, read_text_csv, write_blobs_csv, write_rows, write_yaml
from nncli.activations import ACTIVATIONS, Activation, hidden_activations
from nncli.config import config_from_dict, load_config
from nncli.errors import ConfigError
from nncli.losses import LOSSES, Loss
from nncli.model import INITS
from nncli.optim import OPTIMIZERS, Hyper, Momentum, Optimizer

HUBER_DELTA = 1.0


# ----------------------------------------------------------------------------- the four extensions


def softsign(z, out):
    """z / (1 + |z|)."""
    np.abs(z, out)
    out += 1
    np.divide(z, out, out)
    return out


def d_softsign(z, a, out):
    """1 / (1 + |z|)^2."""
    np.abs(z, out)
    out += 1
    np.multiply(out, out, out)
    np.reciprocal(out, out)
    return out


def d_softsign_wrong(z, a, out):
    """A plausible mistake: 1 / (1 + |z|), the square forgotten."""
    np.abs(z, out)
    out += 1
    np.reciprocal(out, out)
    return out


def huber(Y, A):
    """sum_j h(y_hat_j - y_j), mean over samples; h(d) = d^2 / 2 for |d| <= delta, else delta (|d| - delta / 2)."""
    D = np.abs(A.astype(np.float64) - Y)
    per = np.where(D <= HUBER_DELTA, 0.5 * D * D, HUBER_DELTA * (D - 0.5 * HUBER_DELTA))
    return float(per.sum() / Y.shape[0])


def huber_grad(Y, A):
    """dE/dy_hat = clip(y_hat - y, -delta, delta) / n."""
    return np.clip(A - Y, -HUBER_DELTA, HUBER_DELTA) / Y.shape[0]


def huber_grad_wrong(Y, A):
    """What the lecture's shortcut (y_hat - y) / n would give: right only inside |d| <= delta."""
    return (A - Y) / Y.shape[0]


def orthogonal(n_in, n_out, rng):
    """W (n_out, n_in) with orthonormal rows or columns: Q of the QR of a Gaussian matrix, signs fixed."""
    A = rng.standard_normal((max(n_in, n_out), min(n_in, n_out)))
    Q, R = np.linalg.qr(A)
    Q *= np.sign(np.diag(R))
    return Q if n_out >= n_in else Q.T


class Nesterov(Optimizer):
    """PyTorch's SGD(nesterov=True): v <- mu v + g;  theta <- theta - eta (g + mu v)."""

    name = "nesterov_ext"
    hyperparameters = {"momentum": Momentum.hyperparameters["momentum"]}
    steps = 0  # counted across instances, to show the run used this class

    def __init__(self, params, lr, **hyper):
        super().__init__(params, lr, **hyper)
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        type(self).steps += 1
        for p, g, v in zip(self.params, grads, self.v):
            v *= self.momentum
            v += g
            p -= np.asarray(self.lr, p.dtype) * (g + np.asarray(self.momentum, p.dtype) * v)

    def state(self):
        return {f"v{i}": v for i, v in enumerate(self.v)}


def register(monkeypatch, kind: str, wrong: bool = False) -> None:
    """Register one extension (or all); ``wrong``: with a mistake in its gradient."""
    if kind in ("softsign", "all"):
        act = Activation("softsign", softsign, d_softsign_wrong if wrong else d_softsign)
        monkeypatch.setitem(ACTIVATIONS, "softsign", act)
    if kind in ("huber", "all"):
        loss = Loss("huber", huber, huber_grad_wrong if wrong else huber_grad, "regression", "identity",
                    "the Huber loss with delta 1; numeric targets", outputs=None, shortcut_output=None)
        monkeypatch.setitem(LOSSES, "huber", loss)
    if kind in ("orthogonal", "all"):
        monkeypatch.setitem(INITS, "orthogonal", orthogonal)
    if kind in ("nesterov", "all"):
        monkeypatch.setitem(OPTIMIZERS, "nesterov_ext", Nesterov)


# ----------------------------------------------------------------------------- data and configs


def write_sine_regression_csv(path, n=40, seed=7):
    """y = 3 sin(x1) + x2 + noise: targets up to ~5, so a fresh network's residuals are both
    inside and outside the Huber loss's |d| <= 1."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 2))
    y = 3 * np.sin(x[:, 0]) + x[:, 1] + rng.normal(scale=0.1, size=n)
    return write_rows(path, ["x1", "x2", "y"], [[f"{a:.6f}", f"{b:.6f}", f"{c:.6f}"] for (a, b), c in zip(x, y)])


def config_for(kind: str) -> dict:
    """A config that uses the extension ``kind`` (the rest nncli's own), or all four."""
    uses = {kind} if kind != "all" else {"softsign", "huber", "orthogonal", "nesterov"}
    regression = "huber" in uses
    return {
        "name": f"ext-{kind}",
        "seed": 3,
        "data": {"train": "reg.csv" if regression else "blobs.csv", "target": "y" if regression else "label"},
        "model": {"layers": ["auto", 8, "auto"], "activation": "softsign" if "softsign" in uses else "tanh",
                  "init": "orthogonal" if "orthogonal" in uses else "xavier"},
        "loss": "huber" if regression else "bce",
        "train": {"optimizer": "nesterov_ext" if "nesterov" in uses else "sgd", "lr": 0.05 if regression else 0.2,
                  "epochs": 15, "batch_size": 8,
                  **({"momentum": 0.8} if "nesterov" in uses else {})},
    }


@pytest.fixture
def work(tmp_path):
    write_sine_regression_csv(tmp_path / "reg.csv")
    write_blobs_csv(tmp_path / "blobs.csv")
    return tmp_path


KINDS = ["softsign", "huber", "orthogonal", "nesterov", "all"]
N_ROWS = 40  # both CSVs: gradcheck checks every row


# ----------------------------------------------------------------------------- the config accepts what is registered


BAD_NAME = {  # kind: (config edit, the words of the error)
    "softsign": (lambda c: c["model"].update(activation="softsign"), "model.activation: unknown activation 'softsign'"),
    "huber": (lambda c: c.update(loss="huber"), "loss: unknown loss 'huber'"),
    "orthogonal": (lambda c: c["model"].update(init="orthogonal"), "model.init: unknown init 'orthogonal'"),
    "nesterov": (lambda c: c["train"].update(optimizer="nesterov_ext"),
                 "train.optimizer: unknown optimizer 'nesterov_ext'"),
}


@pytest.mark.parametrize("kind", list(BAD_NAME))
def test_config_validation_reads_the_registries_at_call_time(kind, monkeypatch):
    cfg = config_for(kind)
    with pytest.raises(ConfigError) as e:  # not registered (yet): refused by the schema
        config_from_dict(json.loads(json.dumps(cfg)), "ext.yaml")
    assert BAD_NAME[kind][1] in str(e.value)
    with monkeypatch.context() as m:
        register(m, kind)
        ok = config_from_dict(json.loads(json.dumps(cfg)), "ext.yaml")
        assert ok.model.activation == cfg["model"]["activation"] and ok.loss == cfg["loss"]
        assert ok.model.init == cfg["model"]["init"] and ok.train.optimizer == cfg["train"]["optimizer"]
        if kind == "softsign":
            assert "softsign" in hidden_activations()
            # valid names are listed in messages from the registry too
            bad = json.loads(json.dumps(cfg))
            bad["model"]["activation"] = "softsine"
            with pytest.raises(ConfigError, match="did you mean 'softsign'"):
                config_from_dict(bad, "ext.yaml")
        if kind == "huber":
            assert ok.task.name == "regression" and ok.output == "identity"
    with pytest.raises(ConfigError):  # and refused again once the registration is undone
        config_from_dict(json.loads(json.dumps(cfg)), "ext.yaml")


def test_a_new_loss_takes_any_output_and_the_shortcut_is_never_assumed(monkeypatch):
    register(monkeypatch, "huber")
    cfg = config_for("huber")
    cfg["model"]["output"] = "tanh"
    assert config_from_dict(cfg, "ext.yaml").output == "tanh"
    assert LOSSES["huber"].shortcut_output is None and LOSSES["huber"].logits is None


# ----------------------------------------------------------------------------- nncli gradcheck


def _gradcheck(work, kind):
    write_yaml(work / "ext.yaml", config_for(kind))
    return nn("gradcheck", "ext.yaml", "--json", "--samples", N_ROWS, cwd=work)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_passes_with_each_extension(work, kind, monkeypatch):
    register(monkeypatch, kind)
    r = _gradcheck(work, kind)
    assert r.rc == 0, r.show()
    rep = json.loads(r.text)
    assert rep["passed"] is True and rep["samples"] == N_ROWS
    assert [t["name"] for t in rep["tensors"]] == ["W1", "b1", "W2", "b2"]
    for t in rep["tensors"]:
        assert t["passed"] and t["checked"] == math.prod(t["shape"]) and t["kinks"] == 0, t
        assert t["max_rel_error"] < 1e-6
    if kind in ("softsign", "all"):
        assert rep["activations"] == ["softsign", "identity" if kind == "all" else "sigmoid"]
    if kind in ("huber", "all"):
        assert rep["loss"] == "huber"


def test_huber_rows_lie_on_both_sides_of_delta(work, monkeypatch):
    """Test setup of the gradchecks: the fresh network's residuals are inside and outside
    |d| <= 1, so both pieces of the Huber gradient are checked, and the shortcut
    (y_hat - y) / n (right only inside) would fail."""
    from nncli.job import prepare

    register(monkeypatch, "huber")
    write_yaml(work / "ext.yaml", config_for("huber"))
    with monkeypatch.context() as m:
        m.chdir(work)
        data, model, _, _ = prepare(load_config(work / "ext.yaml"))
    D = np.abs(model.predict(data.train.X) - data.train.Y)
    assert (D < HUBER_DELTA).sum() >= 5 and (D > HUBER_DELTA).sum() >= 5


@pytest.mark.parametrize("kind", ["softsign", "huber"])
def test_gradcheck_fails_a_wrong_gradient_of_an_extension(work, kind, monkeypatch):
    """The checks above can fail: the same extension with a mistake in its derivative (softsign
    without the square; Huber without the clip) exits 1 naming a tensor."""
    register(monkeypatch, kind, wrong=True)
    r = _gradcheck(work, kind)
    assert r.rc == 1, r.show()
    rep = json.loads(r.text)
    assert rep["passed"] is False
    failing = [t["name"] for t in rep["tensors"] if not t["passed"]]
    if kind == "softsign":  # only the layer before the softsign sees its derivative
        assert failing == ["W1", "b1"]
    else:  # the output delta is wrong, so every tensor is
        assert failing == ["W1", "b1", "W2", "b2"]
    assert "gradcheck failed: " in r.err


# ----------------------------------------------------------------------------- nncli train


def forward_from_files(run_dir, X) -> np.ndarray:
    """The saved network's outputs for raw numeric features X, from the run's files alone
    (helpers.my_forward, for the activations of this file: it does not know softsign)."""
    meta = json.loads((run_dir / "preprocess.json").read_text(encoding="utf-8"))
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    arrays = npz_arrays(run_dir / "model.npz")
    assert meta["features"] == ["x1", "x2"] and not meta["categories"]
    a = (X - arrays["x_mean"].astype(np.float64)) / arrays["x_std"].astype(np.float64)
    L = len(cfg["model"]["layers"]) - 1
    f = {"softsign": lambda z: z / (1 + np.abs(z)), "tanh": np.tanh, "identity": lambda z: z}
    names = [cfg["model"]["activation"]] * (L - 1) + [cfg["model"]["output"]]
    for l, name in enumerate(names, start=1):
        a = f[name](a @ arrays[f"W{l}"].astype(np.float64).T + arrays[f"b{l}"].astype(np.float64))
    return a


def _losses(run_dir) -> list[float]:
    df = read_text_csv((run_dir / "metrics.csv").read_bytes())
    return [float(x) for x in df["loss"]]


@pytest.mark.parametrize("kind", KINDS)
def test_short_training_with_each_extension(work, kind, monkeypatch):
    register(monkeypatch, kind)
    write_yaml(work / "ext.yaml", config_for(kind))
    Nesterov.steps = 0
    init_calls = []
    if kind in ("orthogonal", "all"):
        monkeypatch.setitem(INITS, "orthogonal", lambda n_in, n_out, rng: init_calls.append((n_in, n_out))
                            or orthogonal(n_in, n_out, rng))
    r = nn("train", "ext.yaml", "-q", *NO_PLOTS, "--runs-dir", "runs", cwd=work)
    assert r.rc == 0, r.show()
    run_dir = work / r.text.strip()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed" and summary["epochs_run"] == 15
    losses = _losses(run_dir)
    assert len(losses) == 15 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.7 * losses[0], losses
    saved = (run_dir / "config.yaml").read_text(encoding="utf-8")
    # the extension was used, not a default in its place
    if kind in ("softsign", "all"):
        assert "activation: softsign" in saved
    if kind in ("orthogonal", "all"):
        assert init_calls == [(2, 8), (8, 1)]
        assert "init: orthogonal" in saved
    if kind in ("nesterov", "all"):
        assert Nesterov.steps == 15 * math.ceil(N_ROWS / 8)
        assert "optimizer: nesterov_ext" in saved and "momentum: 0.8" in saved
    if kind in ("huber", "all"):
        assert summary["task"] == "regression" and "loss: huber" in saved
        # the reported loss is the Huber loss of the saved network's outputs
        df = read_text_csv((work / "reg.csv").read_bytes())
        A = forward_from_files(run_dir, df[["x1", "x2"]].astype(np.float64).to_numpy())
        Y = df[["y"]].astype(np.float64).to_numpy()
        assert math.isclose(summary["metrics"]["loss"], huber(Y, A), rel_tol=1e-5)
        assert summary["metrics"]["loss"] < 0.8 * huber(Y, np.zeros_like(Y))
    else:
        assert summary["metrics"]["accuracy"] >= 0.9


def test_gradcheck_of_a_run_trained_with_all_four(work, monkeypatch):
    register(monkeypatch, "all")
    write_yaml(work / "ext.yaml", config_for("all"))
    r = nn("train", "ext.yaml", "-q", *NO_PLOTS, "--runs-dir", "runs", cwd=work)
    assert r.rc == 0, r.show()
    run_dir = r.text.strip()
    r = nn("gradcheck", run_dir, "--json", "--samples", N_ROWS, cwd=work)
    assert r.rc == 0, r.show()
    rep = json.loads(r.text)
    assert rep["passed"] and "trained weights" in rep["what"]
    assert rep["activations"] == ["softsign", "identity"] and rep["loss"] == "huber"


def test_interrupted_run_with_the_new_optimizer_resumes(work, monkeypatch):
    """The new optimizer's state() goes into the checkpoint and comes back on --resume."""
    from nncli.job import TrainingJob

    register(monkeypatch, "all")
    cfg = config_for("all")
    write_yaml(work / "ext.yaml", cfg)
    monkeypatch.chdir(work)
    ref = TrainingJob(load_config(work / "ext.yaml"), work / "ref")
    ref.start()
    list(ref.epochs())
    ref.finish(plots=False)
    job = TrainingJob(load_config(work / "ext.yaml"), work / "runs")
    run = job.start()
    for rec in job.epochs():
        if rec.epoch == 4:
            job.trainer.stop_requested = True
    assert job.finish(plots=False)["status"] == "interrupted"
    r = nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=work)
    assert r.rc == 0, r.show()
    a = np.load(run / "model.npz")
    b = np.load(ref.run_dir / "model.npz")
    for k in ("W1", "b1", "W2", "b2"):
        assert np.array_equal(a[k], b[k]), k
    assert (run / "metrics.csv").read_bytes() == (ref.run_dir / "metrics.csv").read_bytes()


# ----------------------------------------------------------------------------- the extensions themselves


def test_softsign_derivative_matches_central_differences():
    act = Activation("softsign", softsign, d_softsign)
    z = np.linspace(-5, 5, 40)  # not 0, where f'' jumps and the central difference is off by h
    h = 1e-6
    np.testing.assert_allclose(act.derivative(z), (act(z + h) - act(z - h)) / (2 * h), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(act(z), z / (1 + np.abs(z)), rtol=1e-15)


def test_huber_grad_matches_central_differences():
    rng = np.random.default_rng(0)
    Y = rng.normal(scale=3, size=(6, 2))
    A = rng.normal(size=(6, 2))
    num = np.zeros_like(A)
    for idx in np.ndindex(*A.shape):
        Ap, Am = A.copy(), A.copy()
        Ap[idx] += 1e-6
        Am[idx] -= 1e-6
        num[idx] = (huber(Y, Ap) - huber(Y, Am)) / 2e-6
    np.testing.assert_allclose(huber_grad(Y, A), num, rtol=1e-6, atol=1e-10)
    assert np.any(np.abs(A - Y) > 1) and np.any(np.abs(A - Y) < 1)


def test_orthogonal_init_is_orthonormal_and_seeded(work, monkeypatch):
    from nncli.job import prepare

    for n_in, n_out in ((5, 3), (3, 5), (4, 4)):
        W = orthogonal(n_in, n_out, np.random.default_rng(0))
        assert W.shape == (n_out, n_in)
        G = W @ W.T if n_out <= n_in else W.T @ W
        np.testing.assert_allclose(G, np.eye(min(n_in, n_out)), atol=1e-12)
    register(monkeypatch, "orthogonal")
    write_yaml(work / "ext.yaml", config_for("orthogonal"))
    monkeypatch.chdir(work)
    _, m1, _, _ = prepare(load_config(work / "ext.yaml"))
    _, m2, _, _ = prepare(load_config(work / "ext.yaml"))
    np.testing.assert_array_equal(m1.flat, m2.flat)
    np.testing.assert_allclose(m1.W[0].T.astype(np.float64) @ m1.W[0], np.eye(2), atol=1e-6)  # W1 is 8 x 2


def test_nesterov_steps_by_hand():
    # mu = 0.5, eta = 0.1, g = 1, 1: v1 = 1, theta1 = 0 - 0.1 (1 + 0.5) = -0.15;
    # v2 = 1.5, theta2 = -0.15 - 0.1 (1 + 0.75) = -0.325
    p = np.zeros(1)
    opt = Nesterov([p], 0.1, momentum=0.5)
    opt.step([np.ones(1)])
    assert math.isclose(p[0], -0.15, rel_tol=1e-15)
    opt.step([np.ones(1)])
    assert math.isclose(p[0], -0.325, rel_tol=1e-15)
    with pytest.raises(TypeError):
        Nesterov([p], 0.1, beta1=0.9)
    with pytest.raises(ValueError):
        Nesterov([p], 0.1, momentum=1.0)


def test_nesterov_equals_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    p = rng.normal(size=5)
    t = torch.tensor(p.copy(), requires_grad=True)
    opt = Nesterov([p], 0.05, momentum=0.9)
    t_opt = torch.optim.SGD([t], lr=0.05, momentum=0.9, nesterov=True)
    for _ in range(6):
        g = rng.normal(size=5)
        opt.step([g])
        t.grad = torch.tensor(g)
        t_opt.step()
    np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-13, atol=1e-15)


# ----------------------------------------------------------------------------- what cannot be registered in one place


class SignSGD(Optimizer):
    """sign-SGD with a hyperparameter of its own: theta <- theta - eta clip(sign(g) * scale)."""

    name = "signsgd"
    hyperparameters = {"sign_scale": Hyper(1.0, 0, low_open=True, doc="size of a step in units of eta")}

    def step(self, grads):
        for p, g in zip(self.params, grads):
            p -= np.asarray(self.lr * self.sign_scale, p.dtype) * np.sign(g)


def test_an_optimizer_without_new_hyperparameters_needs_no_other_change(work, monkeypatch):
    class PlainSign(Optimizer):
        name = "plainsign"
        hyperparameters = {}

        def step(self, grads):
            for p, g in zip(self.params, grads):
                p -= np.asarray(self.lr, p.dtype) * np.sign(g)

    monkeypatch.setitem(OPTIMIZERS, "plainsign", PlainSign)
    cfg = config_for("softsign")
    cfg["model"]["activation"] = "tanh"
    cfg["train"].update(optimizer="plainsign", lr=0.01)
    write_yaml(work / "ext.yaml", cfg)
    r = nn("train", "ext.yaml", "-q", *NO_PLOTS, "--runs-dir", "runs", cwd=work)
    assert r.rc == 0, r.show()
    losses = _losses(work / r.text.strip())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("give_key", [True, False], ids=["key-given", "key-left-out"])
def test_new_optimizer_hyperparameter_key_is_accepted(work, monkeypatch, give_key):
    monkeypatch.setitem(OPTIMIZERS, "signsgd", SignSGD)
    cfg = config_for("softsign")
    cfg["model"]["activation"] = "tanh"
    cfg["train"].update(optimizer="signsgd", lr=0.01, **({"sign_scale": 0.5} if give_key else {}))
    write_yaml(work / "ext.yaml", cfg)
    r = nn("train", "ext.yaml", "-q", *NO_PLOTS, "--runs-dir", "runs", cwd=work)
    assert r.rc == 0, r.show()
    saved = yaml.safe_load((work / r.text.strip() / "config.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["sign_scale"] == (0.5 if give_key else 1.0)  # the value given, or the declared default
    # the bounds the optimizer declares are enforced by the config, as for the built-in keys
    cfg["train"]["sign_scale"] = 0
    write_yaml(work / "bad.yaml", cfg)
    r = nn("train", "bad.yaml", "-q", *NO_PLOTS, "--runs-dir", "runs", cwd=work)
    assert_usage_error(r, "train.sign_scale", "greater than 0")


def test_a_hyperparameter_key_goes_when_its_optimizer_does(work, monkeypatch):
    """The schema follows the registry both ways: without SignSGD, sign_scale is an unknown key."""
    cfg = config_for("softsign")
    cfg["model"]["activation"] = "tanh"
    cfg["train"].update(sign_scale=0.5)
    write_yaml(work / "ext.yaml", cfg)
    r = nn("train", "ext.yaml", "-q", *NO_PLOTS, "--runs-dir", "runs", cwd=work)
    assert_usage_error(r, "train.sign_scale: unknown key")
