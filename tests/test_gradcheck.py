"""nncli.gradcheck and ``nncli gradcheck``: the checker passes correct gradients and fails wrong ones."""

import json
import zlib

import numpy as np
import pytest

from helpers import REPO, nn, setup_workdir
from nncli.activations import hidden_activations
from nncli.gradcheck import failure_message, gradcheck
from nncli.losses import LOSSES
from nncli.model import MLP

PAIRS = [(loss, out) for loss, spec in LOSSES.items() for out in spec.valid_outputs()]


def _data(loss, k, rng, n=8, n_in=4):
    X = rng.standard_normal((n, n_in))
    if loss == "bce":
        Y = rng.integers(0, 2, (n, 1)).astype(float)
    elif loss == "cross_entropy":
        Y = np.eye(k)[rng.integers(0, k, n)]
    else:
        Y = rng.standard_normal((n, k))
    return X, Y


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("loss,output", PAIRS)
@pytest.mark.parametrize("hidden", hidden_activations())
def test_every_activation_loss_output_and_depth_passes(hidden, loss, output, depth):
    rng = np.random.default_rng(zlib.crc32(f"{hidden}-{loss}-{output}-{depth}".encode()))
    k = 1 if loss == "bce" else 3
    model = MLP.initialise([4] + [5] * depth + [k], [hidden] * depth, output, rng, "xavier", "float64")
    X, Y = _data(loss, k, rng)
    report = gradcheck(model, X, Y, loss, l2=0.05)
    assert report.passed, failure_message(report)
    assert [t.name for t in report.tensors] == [f"{p}{l}" for l in range(1, depth + 2) for p in "Wb"]
    # every element of every tensor was checked (or listed as a kink)
    assert all(t.checked == int(np.prod(t.shape)) for t in report.tensors)
    if hidden == "step":
        assert any("zero wherever it exists" in n for n in report.notes)
        # the layers before a step layer get exactly zero gradient
        _, grads = model.loss_and_grads(X, Y, LOSSES[loss], 0.0)
        assert np.all(grads[0] == 0) and np.all(grads[1] == 0)


@pytest.mark.parametrize("factor", [1.01, 1.0001, 0.0, -1.0])
def test_wrong_bias_gradient_is_caught_and_named(factor):
    rng = np.random.default_rng(1)
    model = MLP.initialise([3, 6, 2], ["tanh"], "softmax", rng, "xavier", "float64")
    X, Y = _data("cross_entropy", 2, rng, n_in=3)

    def wrong(m, X, Y, loss, l2):
        _, g = m.loss_and_grads(X, Y, loss, l2)
        g[1] = g[1] * factor  # db1 off by a factor
        return g

    report = gradcheck(model, X, Y, "cross_entropy", grad_fn=wrong)
    assert not report.passed
    failing = [t.name for t in report.tensors if not t.passed]
    assert failing == ["b1"]
    assert failure_message(report).startswith("gradcheck failed: b1[")


def test_missing_l2_term_is_caught():
    rng = np.random.default_rng(2)
    model = MLP.initialise([3, 4, 1], ["sigmoid"], "sigmoid", rng, "xavier", "float64")
    X, Y = _data("bce", 1, rng, n_in=3)

    def no_l2(m, X, Y, loss, l2):
        return m.loss_and_grads(X, Y, loss, 0.0)[1]

    report = gradcheck(model, X, Y, "bce", l2=0.1, grad_fn=no_l2)
    assert {t.name for t in report.tensors if not t.passed} == {"W1", "W2"}


def test_relu_kinks_are_listed_not_failed():
    # a pre-activation exactly at 0 for one sample: the W1 step crosses the kink
    model = MLP([np.array([[1.0, -1.0]]), np.array([[2.0]])], [np.zeros(1), np.zeros(1)], ["relu"], "identity")
    X = np.array([[1.0, 1.0]])  # z1 = 0
    Y = np.array([[1.0]])
    report = gradcheck(model, X, Y, "mse")
    assert report.passed
    w1 = report.tensors[0]
    assert w1.kinks == 2 and w1.checked == 2
    assert any("kinks" in n for n in report.notes)


def test_float32_model_is_promoted_and_left_unchanged():
    rng = np.random.default_rng(3)
    model = MLP.initialise([2, 3, 1], ["tanh"], "sigmoid", rng, "xavier", "float32")
    before = [p.copy() for _, p in model.params()]
    X, Y = _data("bce", 1, rng, n_in=2)
    report = gradcheck(model, X, Y, "bce")
    assert report.passed and report.promoted_from == "float32"
    assert all(np.array_equal(a, p) for a, (_, p) in zip(before, model.params()))


def test_max_elements_checks_a_subset_of_every_tensor():
    rng = np.random.default_rng(4)
    model = MLP.initialise([10, 20, 3], ["tanh"], "softmax", rng, "xavier", "float64")
    X, Y = _data("cross_entropy", 3, rng, n_in=10)
    report = gradcheck(model, X, Y, "cross_entropy", max_elements=5)
    assert [t.checked for t in report.tensors] == [5, 5, 5, 3]
    assert report.passed


# ---------------------------------------------------------------------- CLI


def test_cli_config_target_prints_the_table_and_exits_0():
    r = nn("gradcheck", "configs/xor.yaml", cwd=REPO)
    assert r.rc == 0, r.show()
    for name in ("W1", "b1", "W2", "b2"):
        assert f"  {name} " in r.text
    assert "all gradients agree" in r.text
    assert "promoted to float64" in r.text


def test_cli_json_report():
    r = nn("gradcheck", "configs/xor.yaml", "--json", "--samples", "3", cwd=REPO)
    assert r.rc == 0, r.show()
    rep = json.loads(r.text)
    assert rep["passed"] is True and rep["samples"] == 3
    assert [t["name"] for t in rep["tensors"]] == ["W1", "b1", "W2", "b2"]
    assert rep["tensors"][0]["shape"] == [4, 2]


def test_cli_run_directory_target(tmp_path):
    work = setup_workdir(tmp_path)
    r = nn("train", "configs/xor.yaml", "--quiet", "--no-plots", "--runs-dir", "runs", "--set", "train.epochs=50", cwd=work)
    assert r.rc == 0, r.show()
    run_dir = r.text.strip()
    r = nn("gradcheck", run_dir, "--json", cwd=work)
    assert r.rc == 0, r.show()
    rep = json.loads(r.text)
    assert rep["passed"] and "trained weights" in rep["what"]
    # the run's training rows (splits.npz): all 4 rows of xor
    assert rep["samples"] == 4


def test_cli_injected_bug_exits_1_naming_the_tensor(monkeypatch):
    import nncli.model as model_mod

    original = model_mod.MLP.backward

    def buggy_backward(self, X, Y, loss, l2=0.0):
        g = original(self, X, Y, loss, l2)
        off = self.W[0].size
        g[off : off + self.b[0].size] *= 1.5  # the bias gradient of layer 1 is off by a factor
        return g

    monkeypatch.setattr(model_mod.MLP, "backward", buggy_backward)
    r = nn("gradcheck", "configs/xor.yaml", cwd=REPO)
    assert r.rc == 1, r.show()
    assert "gradcheck failed: b1[" in r.err
    assert "Traceback" not in r.err and not r.tb


def test_cli_bad_usage_exits_2():
    assert nn("gradcheck", "configs/xor.yaml", "--samples", "0", cwd=REPO).rc == 2
    assert nn("gradcheck", "configs/does-not-exist.yaml", cwd=REPO).rc == 2
    r = nn("gradcheck", "configs/xor.yaml", "--set", "train.lrr=1", cwd=REPO)
    assert r.rc == 2 and "did you mean 'lr'" in r.err, r.show()


SHIPPED = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))


def test_shipped_configs_are_found():
    assert "xor.yaml" in SHIPPED and len(SHIPPED) >= 5


@pytest.mark.parametrize("cfg", SHIPPED)
def test_every_shipped_config_passes_gradcheck(cfg):
    r = nn("gradcheck", f"configs/{cfg}", "--max-elements", "64", "--json", cwd=REPO)
    assert r.rc == 0, f"{cfg}: {r.show()[-800:]}"
    assert json.loads(r.text)["passed"] is True
