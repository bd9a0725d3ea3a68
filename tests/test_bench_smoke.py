"""The benchmark script keeps working as nncli's internals change.

benchmarks/bench_train.py drives nncli's training loop through its Python API and needs
scikit-learn and PyTorch (the bench extra) only for the peers, so its nncli side and the
GEMM floor run here on small versions of the workloads. Timings are not checked: a test
cannot time anything reliably on a shared machine; this only keeps the script honest
(the same code path as `nncli train`, correct shapes, sensible accuracy).
"""

import numpy as np
import pytest

from benchmarks import bench_train as bench


def small(key, **changes):
    w = dict(bench.WORKLOADS[key])
    w.update(changes)
    return w


def test_nncli_side_of_w1_learns_xor():
    w = small("W1", epochs=2000)
    X, y = w["data"]()
    secs, acc = bench.run_nncli(w, X, y)
    assert secs > 0
    assert acc == 1.0  # 2-4-1 tanh with sgd lr 0.5 separates xor well within 2000 epochs


@pytest.mark.parametrize("key, epochs, better_than", [("W2", 2, 0.6), ("W3-adam", 10, 0.3), ("W3-sgd", 2, 0.0)])
def test_nncli_side_runs_minibatch_workloads(key, epochs, better_than):
    """W2 and a 2000-row W3 learn well above chance (0.1); here they reach about 0.91 and 0.58."""
    if key.startswith("W3"):
        X, y = bench.wide_data(n=2000)
    else:
        X, y = bench.WORKLOADS[key]["data"]()
    w = small(key, epochs=epochs)
    secs, acc = bench.run_nncli(w, X, y)
    assert secs > 0 and 0.0 <= acc <= 1.0
    assert acc > better_than


def test_gemm_floor_runs_on_a_small_network():
    X, _ = bench.wide_data(n=1000, d=20, k=3)
    w = small("W3-sgd", layers=[20, 16, 8, 3])
    assert bench.gemm_floor(w, X, repeats=1) > 0


def test_wide_data_is_seeded_float32():
    a, ya = bench.wide_data(n=500, d=10, k=3, seed=1)
    b, yb = bench.wide_data(n=500, d=10, k=3, seed=1)
    assert a.dtype == np.float32 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert set(np.unique(ya)) <= {0, 1, 2}


def test_quality_script_compares_both_on_the_same_split():
    """benchmarks/quality.py (the README's quality table) still drives nncli and scikit-learn."""
    pytest.importorskip("sklearn")
    from benchmarks import quality
    from nncli.config import load_config

    cfg = load_config(quality.ROOT / "configs" / "iris.yaml", ["train.epochs=30"])
    ours, _, data = quality.run_nncli(cfg)
    theirs, _ = quality.run_sklearn(cfg, data)
    assert data.test.n == 36  # the config's test split, the same rows for both
    assert 0.6 < ours <= 1.0 and 0.6 < theirs <= 1.0  # both learn iris well above chance (1/3)
