"""nncli's optimizers against PyTorch's, step for step (runs where torch is installed: the bench extra)."""

import numpy as np
import pytest

from nncli.losses import LOSSES
from nncli.model import MLP
from nncli.optim import OPTIMIZERS

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_five_steps_equal_torch(name):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 3))
    y = rng.integers(0, 3, 10)
    model = MLP.initialise([3, 5, 3], ["tanh"], "softmax", rng, "xavier", "float64")
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    with torch.no_grad():
        for layer, W, b in zip((net[0], net[2]), model.W, model.b):
            layer.weight.copy_(torch.tensor(W))
            layer.bias.copy_(torch.tensor(b))
    lr = 0.1
    make = {"sgd": lambda p: torch.optim.SGD(p, lr=lr), "momentum": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
            "adam": lambda p: torch.optim.Adam(p, lr=lr)}[name]
    t_opt = make(net.parameters())
    opt = OPTIMIZERS[name]([p for _, p in model.params()], lr, momentum=0.9)
    ws = model.workspace(10)
    for _ in range(5):
        model.forward(X, ws)
        model.backward(X, np.eye(3)[y], ws, LOSSES["cross_entropy"])
        opt.step(model.grads(ws))
        t_opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.tensor(X)), torch.tensor(y)).backward()
        t_opt.step()
    for layer, W, b in zip((net[0], net[2]), model.W, model.b):
        np.testing.assert_allclose(W, layer.weight.detach().numpy(), rtol=0, atol=1e-14)
        np.testing.assert_allclose(b, layer.bias.detach().numpy(), rtol=0, atol=1e-14)
