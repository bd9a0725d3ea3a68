"""nncli.tasks: the binary, multi-class and regression tasks, and the running scores of an epoch.

Each task's encode / predicted_codes / true_codes / probabilities / score against examples
worked by hand; Hits (the epoch's correctly classified rows, moved from test_fast_paths.py,
where it was train._HitCounter) against a naive per-row count on random data, with index
arrays and slices; Residuals (the epoch's R²) against metrics.r2_score.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nncli import metrics as M
from nncli.tasks import TASKS, Binary, Hits, Multiclass, Regression, Residuals

BINARY, MULTI, REG = TASKS["binary"], TASKS["multiclass"], TASKS["regression"]


# ----------------------------------------------------------------------------- the registry


def test_registry_and_attributes():
    assert set(TASKS) == {"binary", "multiclass", "regression"}
    assert isinstance(BINARY, Binary) and isinstance(MULTI, Multiclass) and isinstance(REG, Regression)
    for name, task in TASKS.items():
        assert task.name == name
    assert (BINARY.metric, MULTI.metric, REG.metric) == ("accuracy", "accuracy", "r2")
    assert BINARY.is_classifier and MULTI.is_classifier and not REG.is_classifier
    assert BINARY.max_classes == 2 and MULTI.max_classes is None
    assert repr(BINARY) == "<task binary>"


def test_n_outputs():
    assert BINARY.n_outputs(["no", "yes"], ["label"]) == 1
    assert MULTI.n_outputs(["a", "b", "c", "d"], ["label"]) == 4
    assert REG.n_outputs(None, ["y1", "y2", "y3"]) == 3


# ----------------------------------------------------------------------------- encode and decode by hand


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_encode_decode(dtype):
    Y = BINARY.encode(np.array([0, 1, 1, 0]), 2, dtype)
    assert Y.dtype == dtype and Y.shape == (4, 1)
    np.testing.assert_array_equal(Y, [[0], [1], [1], [0]])
    np.testing.assert_array_equal(BINARY.true_codes(Y), [0, 1, 1, 0])
    # the decision boundary y_hat = 1/2 belongs to class 1
    A = np.array([[0.2], [0.5], [0.7], [0.49999]], dtype=dtype)
    np.testing.assert_array_equal(BINARY.predicted_codes(A), [0, 1, 1, 0])
    P = BINARY.probabilities(np.array([[0.25], [1.0]], dtype=dtype))
    assert P.dtype == np.float64
    np.testing.assert_array_equal(P, [[0.75, 0.25], [0.0, 1.0]])
    assert BINARY.score(Y, A) == 1.0  # predictions [0, 1, 1, 0], all right
    assert BINARY.score(1 - Y, A) == 0.0


def test_binary_score_by_hand():
    Y = np.array([[1.0], [0.0], [1.0], [0.0], [1.0]])
    A = np.array([[0.9], [0.6], [0.4], [0.1], [0.5]])  # predictions 1, 1, 0, 0, 1
    assert BINARY.score(Y, A) == 3 / 5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multiclass_encode_decode(dtype):
    Y = MULTI.encode(np.array([2, 0, 1, 2]), 3, dtype)
    assert Y.dtype == dtype
    np.testing.assert_array_equal(Y, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(MULTI.true_codes(Y), [2, 0, 1, 2])
    # a class that no row has still gets its column
    np.testing.assert_array_equal(MULTI.encode(np.array([0, 0]), 3, dtype), [[1, 0, 0], [1, 0, 0]])
    A = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.4, 0.4, 0.2]], dtype=dtype)
    np.testing.assert_array_equal(MULTI.predicted_codes(A), [2, 0, 2, 0])  # a tie goes to the first class
    assert MULTI.score(Y, A) == 2 / 4  # rows 1 and 2 right
    P = MULTI.probabilities(A)
    assert P.dtype == np.float64
    np.testing.assert_array_equal(P, A.astype(np.float64))


def test_regression_encode_and_score_by_hand():
    Y = REG.encode(np.array([[1.0], [2.0], [3.0]]), 0, np.float32)
    assert Y.dtype == np.float32 and Y.shape == (3, 1)
    # R² = 1 - ss_res / ss_tot = 1 - (0 + 0 + 1) / (1 + 0 + 1) = 0.5
    assert REG.score(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [2.0], [4.0]])) == 0.5
    # two targets: R² 0.5 and 1.0 -> their mean 0.75; a constant target (R² undefined) is left out
    Y2 = np.array([[1.0, 0.0, 5.0], [2.0, 1.0, 5.0], [3.0, 2.0, 5.0]])
    A2 = np.array([[1.0, 0.0, 4.0], [2.0, 1.0, 6.0], [4.0, 2.0, 5.0]])
    assert REG.score(Y2, A2) == 0.75
    assert math.isnan(REG.score(np.array([[1.0]]), np.array([[1.0]])))  # one row: no R²


# ----------------------------------------------------------------------------- running scores


def test_running_score_kinds():
    Yb = np.array([[0.0], [1.0]])
    h = BINARY.running_score(Yb, 2)
    assert isinstance(h, Hits) and h.binary
    h = MULTI.running_score(np.eye(3), 2)
    assert isinstance(h, Hits) and not h.binary
    assert isinstance(REG.running_score(np.zeros((3, 2)), 2), Residuals)


def _naive_hits(A, Y, binary):
    hits = 0
    for a, y in zip(A, Y):
        if binary:
            hits += int((a[0] >= 0.5) == (y[0] >= 0.5))
        else:
            hits += int(int(np.argmax(a)) == int(np.argmax(y)))
    return hits


def _add(h: Hits, A, rows) -> int:
    """The hits of one batch (the counter keeps the sum)."""
    before = h.hits
    h.add(A, rows)
    return h.hits - before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("binary", [True, False])
def test_hits_against_naive_count(dtype, binary):
    rng = np.random.default_rng(30)
    n, bs, K = 103, 16, 4
    if binary:
        Y = (rng.random((n, 1)) < 0.5).astype(dtype)
    else:
        Y = np.zeros((n, K), dtype)
        Y[np.arange(n), rng.integers(K, size=n)] = 1
    h = Hits(Y, bs, binary)
    h_slices = Hits(Y, bs, binary)
    order = rng.permutation(n)
    naive_perm = naive_slice = 0
    seen_hits = set()
    for s in range(0, n, bs):  # the last batch is short: 103 = 6 * 16 + 7
        m = min(bs, n - s)
        A = rng.random((m, Y.shape[1])).astype(dtype)
        if binary:
            A[::5, 0] = 0.5  # the threshold itself counts as class 1
            A[1::7, 0] = np.nan  # NaN is never >= 1/2
        rows = order[s : s + m]
        got = _add(h, A, rows)
        want = _naive_hits(A, Y[rows], binary)
        assert got == want, (s, got, want)
        seen_hits.add(got)
        naive_perm += want
        sl = slice(s, s + m)
        got = _add(h_slices, A, sl)
        want = _naive_hits(A, Y[sl], binary)
        assert got == want, (s, got, want)
        naive_slice += want
        # the task's own score says the same about the batch
        task = BINARY if binary else MULTI
        if not np.isnan(A).any():
            assert task.score(Y[sl], A) == want / m
    assert m == 7
    assert h.hits == naive_perm and h_slices.hits == naive_slice
    assert h.value(n) == naive_perm / n
    assert len(seen_hits) > 1  # the data is not degenerate


def test_hits_short_batch_after_full_batch_ignores_stale_rows():
    # a full batch fills every buffer row; the short batch after it must count its m rows only
    Y = np.zeros((10, 3))
    Y[np.arange(10), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]] = 1
    h = Hits(Y, 8, binary=False)
    A_full = Y[:8].copy()
    assert _add(h, A_full, np.arange(8)) == 8
    A_short = np.roll(Y[8:10], 1, axis=1)  # both wrong
    assert _add(h, A_short, np.array([8, 9])) == _naive_hits(A_short, Y[8:10], False) == 0
    assert _add(h, A_short, slice(8, 10)) == 0
    assert h.hits == 8


def test_hits_batch_truth_gathers_the_rows():
    Y = np.eye(4)[[3, 1, 0, 2, 1]]
    h = Hits(Y, 3, binary=False)
    np.testing.assert_array_equal(h.batch_truth(np.array([4, 0, 3])), [1, 3, 2])
    np.testing.assert_array_equal(h.batch_truth(slice(1, 3)), [1, 0])
    hb = Hits(np.array([[1.0], [0.0], [1.0]]), 2, binary=True)
    np.testing.assert_array_equal(hb.batch_truth(np.array([2, 1])), [[True], [False]])


def test_hits_reset_state_and_load_state():
    Y = np.array([[1.0], [0.0], [1.0], [1.0]])
    h = Hits(Y, 4, binary=True)
    h.add(np.array([[0.9], [0.1], [0.2], [0.6]]), slice(0, 4))
    assert h.hits == 3 and h.state() == 3 and h.value(4) == 0.75
    h2 = Hits(Y, 4, binary=True)
    h2.load_state(h.state())
    assert h2.hits == 3
    h.reset()
    assert h.hits == 0


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("shuffled", [True, False])
def test_residuals_r2_against_metrics_r2_score(k, shuffled):
    rng = np.random.default_rng(40 + k)
    n, bs = 37, 8
    Y = rng.normal(size=(n, k)).astype(np.float32)
    A_all = (Y + rng.normal(scale=0.5, size=(n, k))).astype(np.float32)
    r = Residuals(Y)
    order = rng.permutation(n) if shuffled else None
    for s in range(0, n, bs):
        rows = order[s : s + bs] if shuffled else slice(s, s + bs)
        r.add(A_all[rows], rows)
    want = float(np.nanmean(M.r2_score(Y, A_all)))
    assert math.isclose(r.value(n), want, rel_tol=1e-9)
    assert math.isclose(REG.score(Y, A_all), want, rel_tol=1e-12)
    assert 0.0 < want < 1.0
    # the state round-trips (a checkpoint inside an epoch)
    r2 = Residuals(Y)
    r2.load_state(r.state())
    assert r2.value(n) == r.value(n)
    r.reset()
    assert np.all(r.ss_res == 0)


def test_residuals_constant_target_is_left_out():
    Y = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    A = np.array([[1.0, 4.0], [2.0, 6.0], [4.0, 5.0]])
    r = Residuals(Y)
    r.add(A, slice(0, 3))
    assert r.value(3) == 0.5 == float(np.nanmean(M.r2_score(Y, A)))
    r = Residuals(Y[:, 1:])
    r.add(A[:, 1:], slice(0, 3))
    assert math.isnan(r.value(3))


def test_residuals_load_state_of_an_old_checkpoint_scalar():
    # checkpoints of nncli before 0.2 stored one float: the same sum for every target
    r = Residuals(np.array([[1.0], [2.0], [3.0]]))
    r.load_state(1.0)
    assert r.value(3) == 0.5  # 1 - 1 / 2
