"""nncli's optimizers and backprop against PyTorch's, step for step.

torch comes with the bench extra, which CI installs (.ci/run). Without torch these tests
are skipped (a user's ``pip install -e .[test] && pytest -q`` still passes), except in CI
(CI=true), where test_torch_is_installed_here fails instead of letting the skip go unseen.
"""

import os

import numpy as np
import pytest

from nncli.losses import LOSSES
from nncli.model import MLP
from nncli.optim import OPTIMIZERS

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install -e .[bench])")

# torch's defaults, which nncli's defaults equal; momentum's 0.9 is given to both explicitly
HYPER = {"sgd": {}, "momentum": {"momentum": 0.9}, "adam": {}}


def test_torch_is_installed_here():
    """In CI the comparisons below must run, not skip."""
    if torch is None and os.environ.get("CI", "").lower() not in ("1", "true"):
        pytest.skip("torch is not installed (pip install -e .[bench]); outside CI the comparisons are skipped")
    assert torch is not None, "CI=true but torch is not importable: the PyTorch comparisons would be skipped"
    assert torch.__version__


def _pair(rng):
    model = MLP.initialise([3, 5, 3], ["tanh"], "softmax", rng, "xavier", "float64")
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    with torch.no_grad():
        for layer, W, b in zip((net[0], net[2]), model.W, model.b):
            layer.weight.copy_(torch.tensor(W))
            layer.bias.copy_(torch.tensor(b))
    return model, net


def _problem(seed):
    """(X, y, model, net): 10 samples of 3 features and 3 classes, and _pair's networks."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((10, 3))
    y = rng.integers(0, 3, 10)
    model, net = _pair(rng)
    return X, y, model, net


def _optimizers(name, model, net, lr):
    """nncli's optimizer ``name`` (as the trainer builds it: one flat array) and torch's."""
    t_opt = {"sgd": lambda p: torch.optim.SGD(p, lr=lr), "momentum": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
             "adam": lambda p: torch.optim.Adam(p, lr=lr)}[name](net.parameters())
    return OPTIMIZERS[name]([model.flat], lr, **HYPER[name]), t_opt


def _step_both(model, opt, net, t_opt, X, y):
    """One cross-entropy step of each on the batch (X, y)."""
    model.forward(X)
    opt.step([model.backward(X, np.eye(3)[y], LOSSES["cross_entropy"])])
    t_opt.zero_grad()
    torch.nn.functional.cross_entropy(net(torch.tensor(X)), torch.tensor(y)).backward()
    t_opt.step()


def _assert_same_weights(model, net):
    for layer, W, b in zip((net[0], net[2]), model.W, model.b):
        np.testing.assert_allclose(W, layer.weight.detach().numpy(), rtol=0, atol=1e-14)
        np.testing.assert_allclose(b, layer.bias.detach().numpy(), rtol=0, atol=1e-14)


@needs_torch
@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_five_steps_equal_torch(name):
    X, y, model, net = _problem(0)
    opt, t_opt = _optimizers(name, model, net, 0.1)
    for _ in range(5):
        _step_both(model, opt, net, t_opt, X, y)
    _assert_same_weights(model, net)
    # the weights moved: the comparison is not of two untouched copies
    assert not np.allclose(model.W[0], _pair(np.random.default_rng(0))[0].W[0])


@needs_torch
@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_a_learning_rate_schedule_equals_torch(name):
    """opt.lr changed between steps, as torch's param_groups[0]["lr"]."""
    X, y, model, net = _problem(1)
    opt, t_opt = _optimizers(name, model, net, 0.1)
    for lr in (0.1, 0.05, 0.2, 0.01, 0.07):
        opt.lr = lr
        t_opt.param_groups[0]["lr"] = lr
        _step_both(model, opt, net, t_opt, X, y)
    _assert_same_weights(model, net)


@needs_torch
@pytest.mark.parametrize("loss_name,output,hidden", [("bce", "sigmoid", "sigmoid"), ("mse", "identity", "relu"),
                                                     ("mse", "tanh", "leaky_relu"), ("cross_entropy", "softmax", "tanh")])
def test_gradients_equal_torch_autograd(loss_name, output, hidden):
    rng = np.random.default_rng(2)
    k = 1 if loss_name == "bce" else 3
    model = MLP.initialise([4, 6, k], [hidden], output, rng, "xavier", "float64")
    X = rng.standard_normal((9, 4))
    if loss_name == "bce":
        Y = rng.integers(0, 2, (9, 1)).astype(float)
    elif loss_name == "cross_entropy":
        Y = np.eye(k)[rng.integers(0, k, 9)]
    else:
        Y = rng.standard_normal((9, k))
    l2 = 0.03
    _, grads = model.loss_and_grads(X, Y, LOSSES[loss_name], l2)
    params = [torch.tensor(p, requires_grad=True) for _, p in model.params()]
    acts = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh, "identity": lambda z: z,
            "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01)}
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    z1 = Xt @ params[0].T + params[1]
    z2 = acts[hidden](z1) @ params[2].T + params[3]
    if loss_name == "bce":
        E = torch.nn.functional.binary_cross_entropy_with_logits(z2, Yt)
    elif loss_name == "cross_entropy":
        E = torch.nn.functional.cross_entropy(z2, Yt.argmax(1))
    else:
        E = 0.5 * ((acts[output](z2) - Yt) ** 2).sum(1).mean()
    E = E + 0.5 * l2 * (params[0].pow(2).sum() + params[2].pow(2).sum())
    E.backward()
    for (name, _), g, p in zip(model.params(), grads, params):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12, atol=1e-14, err_msg=name)


# ----------------------------------------------------------------------------- issue 15: nesterov, rmsprop, adagrad, adamw

# case: (nncli optimizer, its hyperparameters (none: nncli's defaults), torch's optimizer with the same settings)
# torch's defaults are left to torch, so a case without hyperparameters also checks that nncli's equal them;
# nesterov has no torch default momentum (0 is refused with nesterov=True): nncli's 0.9 is given to torch
NEW_CASES = {
    "nesterov": ("nesterov", {}, lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True)),
    "nesterov-mu0.5": ("nesterov", {"momentum": 0.5},
                       lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.5, nesterov=True)),
    "rmsprop": ("rmsprop", {}, lambda p, lr: torch.optim.RMSprop(p, lr=lr)),
    "rmsprop-centered": ("rmsprop", {"centered": True, "alpha": 0.9},
                         lambda p, lr: torch.optim.RMSprop(p, lr=lr, centered=True, alpha=0.9)),
    "rmsprop-momentum": ("rmsprop", {"momentum": 0.7, "eps": 1e-4},
                         lambda p, lr: torch.optim.RMSprop(p, lr=lr, momentum=0.7, eps=1e-4)),
    "rmsprop-centered-momentum": ("rmsprop", {"centered": True, "momentum": 0.8, "alpha": 0.95, "eps": 1e-6},
                                  lambda p, lr: torch.optim.RMSprop(p, lr=lr, centered=True, momentum=0.8,
                                                                    alpha=0.95, eps=1e-6)),
    "adagrad": ("adagrad", {}, lambda p, lr: torch.optim.Adagrad(p, lr=lr)),
    "adagrad-lr_decay": ("adagrad", {"lr_decay": 0.3, "initial_accumulator_value": 0.2, "eps": 1e-6},
                         lambda p, lr: torch.optim.Adagrad(p, lr=lr, lr_decay=0.3, initial_accumulator_value=0.2,
                                                           eps=1e-6)),
    "adamw": ("adamw", {}, lambda p, lr: torch.optim.AdamW(p, lr=lr)),
    "adamw-weight_decay": ("adamw", {"weight_decay": 0.5, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6},
                           lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.5, betas=(0.8, 0.99), eps=1e-6)),
}


def _new_optimizers(case, model, net, lr):
    name, hyper, make = NEW_CASES[case]
    return OPTIMIZERS[name]([model.flat], lr, **hyper), make(net.parameters(), lr)


def _assert_close_weights(model, net):
    """Equal to 1e-10 relative (float64: a different order of rounding, not of operations)."""
    for layer, W, b in zip((net[0], net[2]), model.W, model.b):
        np.testing.assert_allclose(W, layer.weight.detach().numpy(), rtol=1e-10, atol=0)
        np.testing.assert_allclose(b, layer.bias.detach().numpy(), rtol=1e-10, atol=0)


def _batches(X, y, steps, seed):
    """``steps`` different mini-batches of 6 of the 10 rows: every step sees another gradient."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        rows = rng.choice(len(X), 6, replace=False)
        yield X[rows], y[rows]


@needs_torch
@pytest.mark.parametrize("case", list(NEW_CASES))
def test_new_optimizers_eight_steps_equal_torch(case):
    X, y, model, net = _problem(0)
    start = [w.copy() for w in model.W]
    opt, t_opt = _new_optimizers(case, model, net, 0.1)
    for Xb, yb in _batches(X, y, 8, 5):
        _step_both(model, opt, net, t_opt, Xb, yb)
    _assert_close_weights(model, net)
    # the weights moved far beyond the tolerance: the comparison is not of two untouched copies
    assert min(np.abs(w - w0).max() for w, w0 in zip(model.W, start)) > 1e-2


@needs_torch
@pytest.mark.parametrize("case", list(NEW_CASES))
def test_new_optimizers_under_a_learning_rate_schedule_equal_torch(case):
    """opt.lr changed between steps, as torch's param_groups[0]["lr"] (adagrad's lr_decay and
    adamw's decay use the current one)."""
    X, y, model, net = _problem(1)
    opt, t_opt = _new_optimizers(case, model, net, 0.1)
    for lr, (Xb, yb) in zip((0.1, 0.05, 0.2, 0.01, 0.07, 0.3), _batches(X, y, 6, 6)):
        opt.lr = lr
        t_opt.param_groups[0]["lr"] = lr
        _step_both(model, opt, net, t_opt, Xb, yb)
    _assert_close_weights(model, net)


@needs_torch
@pytest.mark.parametrize("name", ["nesterov", "rmsprop", "adagrad", "adamw"])
def test_new_optimizers_defaults_are_torchs(name):
    """Each declared default is the default of torch's constructor (nesterov's momentum excepted:
    torch has none that works with nesterov=True)."""
    import inspect

    torch_cls = {"nesterov": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
                 "adamw": torch.optim.AdamW}[name]
    theirs = {k: p.default for k, p in inspect.signature(torch_cls.__init__).parameters.items()}
    theirs.update({"beta1": theirs.get("betas", (None, None))[0], "beta2": theirs.get("betas", (None, None))[1]})
    for k, h in OPTIMIZERS[name].hyperparameters.items():
        if name == "nesterov" and k == "momentum":
            assert h.default == 0.9 and h.low == 0 and h.low_open  # torch: "Nesterov momentum requires a momentum"
            continue
        assert h.default == theirs[k], (name, k)
        assert isinstance(h.default, bool) == isinstance(theirs[k], bool), (name, k)  # a switch is a switch
