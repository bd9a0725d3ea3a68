"""The internal fast paths give exactly what the plain, obvious computation gives.

Each fast path is checked against a naive reference computed here:
- data._read_parallel (a CSV cut into parts parsed on threads) against one whole-file
  pd.read_csv; data._map against a list comprehension; data._c_order_float64 against
  np.asarray(A, float64) and np.isfinite;
- train._HitCounter against a per-row count; train._all_finite against np.isfinite(x).all();
- MLP.forward (ndarray.dot with out= or np.matmul) against z = a @ W.T + b in float64, and
  the fused MLP.batch_loss paths against loss.value.

Every expected value is computed in the test from the data it writes; none was copied from
nncli's output.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nncli.data as data
from nncli.activations import ACTIVATIONS
from nncli.errors import DataError
from nncli.losses import LOSSES
from nncli.model import MLP, Workspace
from nncli.train import _HitCounter, _all_finite

WORKERS = [2, 3, 4]


# ---------------------------------------------------------------------- helpers


def whole_read(p: Path, dtype=None) -> pd.DataFrame:
    """The reference: one pandas reader over the whole file."""
    return pd.read_csv(p, encoding="utf-8-sig", dtype=dtype, na_filter=False, low_memory=False)


def write(tmp_path: Path, name: str, lines: list[str], *, newline: str = "\n", bom: bool = False,
          trailing: str = "\n") -> Path:
    p = tmp_path / name
    text = newline.join(lines) + trailing
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return p


def set_workers(monkeypatch, k: int) -> None:
    """Pretend the process may use ``k`` cores: data._workers, and the thread pool's own
    count when it lives in nncli.parallel (data._map is then nncli.parallel.pmap)."""
    monkeypatch.setattr(data, "_workers", lambda: k)
    try:
        import nncli.parallel as par
    except ImportError:
        return
    monkeypatch.setattr(par, "workers", lambda: k)


@pytest.fixture
def parallel(monkeypatch, request):
    """Force the parallel path with ``request.param`` workers; records the parts parsed."""
    k = request.param
    monkeypatch.setattr(data, "PARALLEL_MIN_BYTES", 0)
    set_workers(monkeypatch, k)
    calls = []
    real_map = data._map

    def spy(fn, items):
        items = list(items)
        calls.append(len(items))
        return real_map(fn, items)

    monkeypatch.setattr(data, "_map", spy)
    return k, calls


def mnist_lines(n=300, seed=0):
    rng = np.random.default_rng(seed)
    lines = ["label," + ",".join(f"p{j}" for j in range(20))]
    for _ in range(n):
        lines.append(",".join(str(v) for v in [rng.integers(10)] + list(rng.integers(0, 256, 20))))
    return lines


def float_lines(n=300, seed=1):
    rng = np.random.default_rng(seed)
    lines = ["x,y,z,w"]
    for _ in range(n):
        x, y = (float(v) for v in rng.normal(size=2))
        z = float(rng.normal() * 10.0 ** rng.integers(-12, 12))
        lines.append(f"{x!r},{y:.3f},{z:.6e},{rng.integers(-5, 5)}.5")
    return lines


CITIES = ["café", "北京", "Zürich", "naïve", "Москва", "São Paulo"]


def unicode_lines(n=300, seed=2):
    rng = np.random.default_rng(seed)
    lines = ["city,v,note"]
    for i in range(n):
        lines.append(f"{CITIES[rng.integers(len(CITIES))]},{rng.normal():.5f},n°{i} ✓")
    return lines


def bool_lines(n=300, seed=3):
    rng = np.random.default_rng(seed)
    return ["flag,x"] + [f"{'True' if rng.random() < 0.5 else 'False'},{rng.integers(100)}" for _ in range(n)]


def missing_lines(n=300, seed=4):
    # every part of the file gets empty cells and NA tokens (a cycle of 5 rows)
    rng = np.random.default_rng(seed)
    tokens = ["", "NA", None, "N/A", None]
    lines = ["a,v,b"]
    for i in range(n):
        t = tokens[i % 5]
        v = f"{rng.normal():.4f}" if t is None else t
        lines.append(f"{rng.integers(50)},{v},{rng.integers(3)}")
    return lines


CASES = {
    "mnist_int": lambda tmp: write(tmp, "mnist.csv", mnist_lines()),
    "floats": lambda tmp: write(tmp, "floats.csv", float_lines()),
    "bom": lambda tmp: write(tmp, "bom.csv", mnist_lines(120, seed=5), bom=True),
    "bom_crlf_floats": lambda tmp: write(tmp, "bomcrlf.csv", float_lines(150, seed=6), bom=True, newline="\r\n",
                                         trailing="\r\n"),
    "crlf": lambda tmp: write(tmp, "crlf.csv", mnist_lines(200, seed=7), newline="\r\n", trailing="\r\n"),
    "unicode_text": lambda tmp: write(tmp, "unicode.csv", unicode_lines()),
    "bool": lambda tmp: write(tmp, "bool.csv", bool_lines()),
    "empty_and_na": lambda tmp: write(tmp, "missing.csv", missing_lines()),
    "trailing_blank_line": lambda tmp: write(tmp, "blank.csv", mnist_lines(150, seed=8), trailing="\n\n"),
    "no_trailing_newline": lambda tmp: write(tmp, "nonl.csv", float_lines(150, seed=9), trailing=""),
}


# ---------------------------------------------------------------------- _read_parallel: exact frames


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
@pytest.mark.parametrize("case", list(CASES))
def test_read_parallel_equals_whole_file_read(tmp_path, parallel, case):
    k, calls = parallel
    p = CASES[case](tmp_path)
    got = data._read_parallel(p, {})
    want = whole_read(p)
    assert got is not None, f"{case}: the parallel path declined a file it can read exactly"
    assert calls == [k], "the file was not parsed in one part per worker"
    assert len(want) >= 100
    pd.testing.assert_frame_equal(got, want, check_dtype=True, check_exact=True)


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
def test_read_parallel_reference_has_the_expected_types(tmp_path, parallel):
    # guards the cases above: each file really has the column types it is meant to cover
    want = {
        "mnist_int": {"label": "i"}, "floats": {"x": "f", "z": "f", "w": "f"}, "bool": {"flag": "b"},
        "bom": {"label": "i"}, "bom_crlf_floats": {"x": "f"},
    }
    for case, kinds in want.items():
        df = data._read_parallel(CASES[case](tmp_path), {})
        assert df.columns[0] == next(iter(kinds)), f"{case}: the BOM or CRLF leaked into the header"
        for c, kind in kinds.items():
            assert df[c].dtype.kind == kind, (case, c, df[c].dtype)
    df = data._read_parallel(CASES["unicode_text"](tmp_path), {})
    assert set(df["city"]) <= set(CITIES) and "北京" in set(df["city"])
    df = data._read_parallel(CASES["empty_and_na"](tmp_path), {})
    assert {"", "NA", "N/A"} <= set(df["v"])


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
@pytest.mark.parametrize("n_rows", [1, 2])
@pytest.mark.parametrize("trailing", ["\n", ""])
def test_read_parallel_more_workers_than_rows(tmp_path, parallel, n_rows, trailing):
    lines = ["a,b,c"] + [f"{i},{i * 1.5},t{i}" for i in range(n_rows)]
    p = write(tmp_path, "tiny.csv", lines, trailing=trailing)
    got = data._read_parallel(p, {})
    assert got is not None
    pd.testing.assert_frame_equal(got, whole_read(p), check_dtype=True, check_exact=True)
    assert len(got) == n_rows


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
def test_read_parallel_dtype_str_keeps_text(tmp_path, parallel):
    rng = np.random.default_rng(10)
    lines = ["code,x,label"] + [f"{rng.integers(0, 1000):03d},{rng.normal():.4f},{rng.integers(0, 3):02d}"
                                for _ in range(300)]
    p = write(tmp_path, "codes.csv", lines)
    dtype = {"code": str, "label": str}
    got = data._read_parallel(p, dtype)
    want = whole_read(p, dtype)
    assert got is not None
    pd.testing.assert_frame_equal(got, want, check_dtype=True, check_exact=True)
    # the codes are the text as written (leading zeros kept), not numbers
    assert list(got["code"]) == [line.split(",")[0] for line in lines[1:]]
    assert got["x"].dtype == np.float64


# ---------------------------------------------------------------------- _read_parallel: declines


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
@pytest.mark.parametrize("where", ["quoted_cell", "stray_quote_end"])
def test_read_parallel_declines_a_double_quote(tmp_path, parallel, where):
    lines = mnist_lines(200, seed=11)
    if where == "quoted_cell":
        lines[3] = '"7",' + lines[3].split(",", 1)[1]
    else:
        lines[-1] = lines[-1] + '0"'  # the quote is the last byte but one
    p = write(tmp_path, "quote.csv", lines)
    assert b'"' in p.read_bytes()
    assert data._read_parallel(p, {}) is None


def _int_then_text_file(tmp_path, n_int=140, n_text=60):
    # rows of equal length: with n_int=140 the text starts at 70% of the bytes, after the
    # first part ends (for any number of parts), and the last part holds text
    lines = ["a,b"] + [f"{i:03d},{3 * i:06d}" for i in range(n_int)]
    lines += [f"{i:03d},x{i:05d}" for i in range(n_int, n_int + n_text)]
    lines[n_int + n_text // 2 + 1] = f"{n_int + n_text // 2:03d},NA"  # a missing token in the text part
    return write(tmp_path, "mixed.csv", lines), lines


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
def test_read_parallel_declines_differing_part_types(tmp_path, parallel, monkeypatch):
    p, lines = _int_then_text_file(tmp_path)
    assert data._read_parallel(p, {}) is None
    # read_csv falls back to the whole-file read: same frame as with the parallel path off
    fast = data.read_csv(p, "data.train")
    monkeypatch.setattr(data, "PARALLEL_MIN_BYTES", 2**62)
    slow = data.read_csv(p, "data.train")
    pd.testing.assert_frame_equal(fast, slow, check_dtype=True, check_exact=True)
    # and that frame is the whole-file read, the b column as text with the missing token as NaN
    want = whole_read(p)
    assert want["b"].dtype.kind not in "iuf"
    assert fast["b"].isna().tolist() == (want["b"] == "NA").tolist()
    assert fast["b"].isna().sum() == 1
    assert fast["b"].iloc[:140].tolist() == [line.split(",")[1] for line in lines[1:141]]
    assert fast["a"].tolist() == list(range(200))


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
def test_read_parallel_text_in_every_part_is_exact(tmp_path, parallel):
    # the same mix with the text starting at 20% of the bytes: every part is text, so the
    # parts agree and the stacked frame must be the whole-file frame
    p, _ = _int_then_text_file(tmp_path, n_int=40, n_text=160)
    got = data._read_parallel(p, {})
    assert got is not None
    pd.testing.assert_frame_equal(got, whole_read(p), check_dtype=True, check_exact=True)
    assert got["b"].iloc[0] == "000000"  # text as written, also in the integer-looking rows


RAGGED_ROW = 157  # 0-based data row, in the second half of a 200-row file


def _ragged_file(tmp_path, row=RAGGED_ROW, n=200):
    lines = ["a,b,c"] + [f"{i},{i * 2},{i % 7}" for i in range(n)]
    lines[row + 1] += ",99"
    return write(tmp_path, "ragged.csv", lines)


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
def test_ragged_row_declines_and_read_csv_names_the_true_line(tmp_path, parallel, monkeypatch):
    p = _ragged_file(tmp_path)
    assert data._read_parallel(p, {}) is None
    with pytest.raises(DataError) as fast:
        data.read_csv(p, "data.train")
    monkeypatch.setattr(data, "PARALLEL_MIN_BYTES", 2**62)
    with pytest.raises(DataError) as slow:
        data.read_csv(p, "data.train")
    assert str(fast.value) == str(slow.value)
    # header is line 1, data row r (0-based) is line r + 2
    assert f"line {RAGGED_ROW + 2}," in str(fast.value), str(fast.value)


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
def test_ragged_numeric_row_anywhere_in_second_half_declines(tmp_path, parallel):
    # every position, so some ragged rows are the first row of a part
    n = 40
    for r in range(n // 2, n):
        p = _ragged_file(tmp_path, row=r, n=n)
        with pytest.raises(pd.errors.ParserError):
            whole_read(p)
        assert data._read_parallel(p, {}) is None, f"ragged row {r}"


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
def test_ragged_text_row_at_any_position_declines(tmp_path, parallel, monkeypatch):
    n = 40
    accepted = []
    for r in range(1, n):
        lines = ["name,city"] + [f"n{i},c{i}" for i in range(n)]
        lines[r + 1] += ",extra"
        p = write(tmp_path, "ragged_text.csv", lines)
        with pytest.raises(pd.errors.ParserError):
            whole_read(p)
        if data._read_parallel(p, {}) is not None:
            accepted.append(r)
    assert accepted == []


@pytest.mark.parametrize("parallel", WORKERS, indirect=True)
def test_ragged_numeric_tail_declines(tmp_path, parallel, monkeypatch):
    n = 40
    accepted = []
    for r in range(1, n):
        lines = ["a,b"] + [f"{i},{i * 7}" + (f",{i}" if i >= r else "") for i in range(n)]
        p = write(tmp_path, "ragged_tail.csv", lines)
        with pytest.raises(pd.errors.ParserError):
            whole_read(p)
        if data._read_parallel(p, {}) is not None:
            accepted.append(r)
    assert accepted == []


# ---------------------------------------------------------------------- _map and _c_order_float64


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_map_keeps_order(monkeypatch, workers):
    set_workers(monkeypatch, workers)

    def fn(x):
        time.sleep(0.002 * (x % 4 == 0))  # early items finish last
        return x * x - 3 * x

    items = list(range(37))
    assert data._map(fn, items) == [fn(x) for x in items]
    assert data._map(fn, (x for x in range(5, 0, -1))) == [fn(x) for x in range(5, 0, -1)]
    assert data._map(fn, []) == []
    assert data._map(str, [7]) == ["7"]


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("bad", [0, 5, 11])
def test_map_raises_an_error_from_any_item(monkeypatch, workers, bad):
    set_workers(monkeypatch, workers)
    done = []

    def fn(x):
        if x == bad:
            raise KeyError(x)
        done.append(x)
        return x

    with pytest.raises(KeyError):
        data._map(fn, range(12))
    # and the pool still works afterwards
    assert data._map(lambda x: -x, range(9)) == [-x for x in range(9)]


def _check_c_order(A, out, flag):
    want = np.asarray(A, dtype=np.float64)
    assert out.dtype == np.float64
    assert out.flags.c_contiguous
    assert out.shape == A.shape
    np.testing.assert_array_equal(out, want)  # NaN positions must match too
    assert flag == bool(np.isfinite(want).all())


@pytest.mark.parametrize("workers", [1, 2])
def test_c_order_float64_int_f_ordered(monkeypatch, workers):
    set_workers(monkeypatch, workers)
    rng = np.random.default_rng(20)
    A = np.asfortranarray(rng.integers(-2**40, 2**40, size=(50, 7), dtype=np.int64))
    assert not A.flags.c_contiguous
    out, flag = data._c_order_float64(A)
    _check_c_order(A, out, flag)
    assert flag is True
    assert out is not A


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("rows", [50, 2 * data.CHUNK + 5])  # one chunk, and three (NaN in the last)
def test_c_order_float64_float32_with_nan(monkeypatch, workers, rows):
    set_workers(monkeypatch, workers)
    rng = np.random.default_rng(21)
    A = np.asfortranarray(rng.normal(size=(rows, 3)).astype(np.float32))
    out, flag = data._c_order_float64(A)
    _check_c_order(A, out, flag)
    assert flag is True
    A[rows - 2, 1] = np.nan
    out, flag = data._c_order_float64(A)
    _check_c_order(A, out, flag)
    assert flag is False
    A[rows - 2, 1] = -np.inf
    out, flag = data._c_order_float64(A)
    assert flag is False


def test_c_order_float64_c_float64_returned_as_is():
    rng = np.random.default_rng(22)
    A = rng.normal(size=(40, 5))
    before = A.copy()
    out, flag = data._c_order_float64(A)
    assert out is A
    assert flag is True
    np.testing.assert_array_equal(A, before)
    A[7, 3] = np.inf
    out, flag = data._c_order_float64(A)
    assert out is A and flag is False
    # an F-ordered float64 array is copied into C order
    F = np.asfortranarray(before)
    out, flag = data._c_order_float64(F)
    assert out is not F
    _check_c_order(F, out, flag)
    assert flag is True


# ---------------------------------------------------------------------- _HitCounter


def _naive_hits(A, Y, binary):
    hits = 0
    for a, y in zip(A, Y):
        if binary:
            hits += int((a[0] >= 0.5) == (y[0] >= 0.5))
        else:
            hits += int(int(np.argmax(a)) == int(np.argmax(y)))
    return hits


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("binary", [True, False])
def test_hit_counter_against_naive_count(dtype, binary):
    rng = np.random.default_rng(30)
    n, bs, K = 103, 16, 4
    if binary:
        Y = (rng.random((n, 1)) < 0.5).astype(dtype)
    else:
        Y = np.zeros((n, K), dtype)
        Y[np.arange(n), rng.integers(K, size=n)] = 1
    h = _HitCounter(Y, bs, binary)
    order = rng.permutation(n)
    total_perm = total_slice = 0
    naive_perm = naive_slice = 0
    seen_hits = set()
    for s in range(0, n, bs):  # the last batch is short: 103 = 6 * 16 + 7
        m = min(bs, n - s)
        A = rng.random((m, Y.shape[1])).astype(dtype)
        if binary:
            A[::5, 0] = 0.5  # the threshold itself counts as class 1
            A[1::7, 0] = np.nan  # NaN is never >= 1/2
        rows = order[s : s + m]
        got = h(A, h.batch_truth(rows))
        want = _naive_hits(A, Y[rows], binary)
        assert got == want, (s, got, want)
        seen_hits.add(got)
        total_perm += got
        naive_perm += want
        sl = slice(s, s + m)
        got = h(A, h.batch_truth(sl))
        want = _naive_hits(A, Y[sl], binary)
        assert got == want, (s, got, want)
        total_slice += got
        naive_slice += want
    assert m == 7
    assert total_perm == naive_perm and total_slice == naive_slice
    assert len(seen_hits) > 1  # the data is not degenerate


def test_hit_counter_short_batch_after_full_batch_ignores_stale_rows():
    # a full batch fills every buffer row; the short batch after it must count its m rows only
    Y = np.zeros((10, 3))
    Y[np.arange(10), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]] = 1
    h = _HitCounter(Y, 8, binary=False)
    A_full = Y[:8].copy()
    assert h(A_full, h.batch_truth(np.arange(8))) == 8
    A_short = np.roll(Y[8:10], 1, axis=1)  # both wrong
    assert h(A_short, h.batch_truth(np.array([8, 9]))) == _naive_hits(A_short, Y[8:10], False) == 0
    assert h(A_short, h.batch_truth(slice(8, 10))) == 0


# ---------------------------------------------------------------------- _all_finite


def _special_cases(dtype):
    big = np.finfo(dtype).max
    rng = np.random.default_rng(40)
    base = rng.normal(size=37).astype(dtype)
    cases = {"plain": base}
    for name, v in (("+inf", np.inf), ("-inf", -np.inf), ("nan", np.nan)):
        x = base.copy()
        x[11] = v
        cases[name] = x
    x = base.copy()
    x[::3] = 3e38 if dtype == np.float32 else 1e308
    x[1::3] = -big
    cases["huge_finite"] = x
    cases["all_max"] = np.full(100, big, dtype)
    cases["tiny_subnormal"] = np.full(9, np.finfo(dtype).smallest_subnormal, dtype)
    cases["empty"] = np.zeros(0, dtype)
    cases["one_nan"] = np.array([np.nan], dtype)
    cases["inf_and_-inf"] = np.array([1, np.inf, 2, -np.inf], dtype)
    return cases


NO_DOT_WARNING = pytest.mark.filterwarnings("ignore:invalid value encountered in dot:RuntimeWarning")


@NO_DOT_WARNING
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["plain", "+inf", "-inf", "nan", "huge_finite", "all_max", "tiny_subnormal",
                                  "empty", "one_nan", "inf_and_-inf"])
def test_all_finite_equals_isfinite(dtype, case):
    x = _special_cases(dtype)[case]
    want = bool(np.isfinite(x).all())
    assert want is (case in ("plain", "huge_finite", "all_max", "tiny_subnormal", "empty"))
    assert _all_finite(x, np.zeros_like(x)) is want


@NO_DOT_WARNING
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_every_position_and_length(dtype):
    # BLAS kernels unroll by 4..32 elements: a bad value in the tail or body must both count
    rng = np.random.default_rng(41)
    for n in list(range(1, 70)) + [1000, 20011]:
        x = rng.normal(size=n).astype(dtype)
        zeros = np.zeros_like(x)
        assert _all_finite(x, zeros) is True
        positions = range(n) if n < 70 else [0, n // 2, n - 1]
        for i in positions:
            for v in (np.inf, -np.inf, np.nan):
                old = x[i]
                x[i] = v
                assert _all_finite(x, zeros) is False, (n, i, v)
                x[i] = old


def test_all_finite_warns_like_any_inf_times_zero_so_callers_use_errstate():
    """_all_finite's inf * 0 raises numpy's invalid flag; under errstate it is silent."""
    x = np.array([1.0, np.inf, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(invalid="ignore"):
            assert _all_finite(x, np.zeros_like(x)) is False


def test_divergence_to_inf_weights_prints_no_numpy_warning(tmp_path):
    """A run whose weights overflow stops with status diverged and one clean message."""
    from cli_helpers import cli

    root = Path(__file__).resolve().parent.parent
    r = cli("train", str(root / "configs" / "xor.yaml"), "--set", "train.lr=1e39", "--set", "train.batch_size=full",
            "--no-plots", "-q", "--runs-dir", str(tmp_path), cwd=root)
    assert r.rc == 1, r.err
    assert "diverged" in r.err
    assert "RuntimeWarning" not in r.err and "Traceback" not in r.err, r.err


# ---------------------------------------------------------------------- MLP.forward and batch_loss


def random_mlp(sizes, hidden, output, dtype, seed, bias_scale=0.3, weight_scale=1.0):
    rng = np.random.default_rng(seed)
    model = MLP.initialise(sizes, hidden, output, rng, "xavier", dtype)
    for W in model.W:
        W *= weight_scale
    for b in model.b:
        b[...] = rng.normal(scale=bias_scale, size=b.shape)
    return model


def naive_forward(model, X):
    """[z_1, ..., z_L], y_hat in float64: z = a @ W.T + b, a = f(z)."""
    a = np.asarray(X, dtype=np.float64)
    names = model.hidden + [model.output]
    zs = []
    for W, b, name in zip(model.W, model.b, names):
        z = a @ W.astype(np.float64).T + b.astype(np.float64)
        zs.append(z)
        a = ACTIVATIONS[name].f(z)
    return zs, a


NETS = [
    ([5, 8, 6, 3], ["tanh", "relu"], "softmax"),
    ([4, 7, 1], ["sigmoid"], "sigmoid"),
    ([6, 9, 5, 2], ["leaky_relu", "identity"], "identity"),
]


@pytest.mark.parametrize("x_dtype,m_dtype", [(np.float64, np.float32), (np.float32, np.float32),
                                             (np.float32, np.float64), (np.float64, np.float64)])
@pytest.mark.parametrize("net", range(len(NETS)))
@pytest.mark.parametrize("layout", ["C", "F"])
def test_forward_equals_naive_matmul(x_dtype, m_dtype, net, layout):
    sizes, hidden, output = NETS[net]
    model = random_mlp(sizes, hidden, output, m_dtype, seed=50 + net)
    rng = np.random.default_rng(60 + net)
    X = (rng.normal(size=(23, sizes[0])) * 2).astype(x_dtype)
    if layout == "F":
        X = np.asfortranarray(X)
    ws = model.workspace(23)
    A = model.forward(X, ws)
    zs, want = naive_forward(model, X)
    assert A.dtype == m_dtype and A.shape == want.shape
    # a float64 model computes in float64 (a float32 input is exact in float64); a float32
    # model rounds every layer to float32
    tol = {"rtol": 2e-5, "atol": 2e-6} if m_dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}
    np.testing.assert_allclose(A, want, **tol)
    for z_ws, z in zip(ws.Z, zs):
        np.testing.assert_allclose(z_ws, z, **tol)
    # the network is not trivial: outputs vary across rows
    assert np.ptp(want, axis=0).max() > 1e-2


def test_forward_float64_input_float32_model_matches_float32_input_closely():
    # two paths (np.matmul on float64 input, ndarray.dot on float32 input) agree to float32 rounding
    sizes, hidden, output = NETS[0]
    model = random_mlp(sizes, hidden, output, np.float32, seed=70)
    X64 = np.random.default_rng(71).normal(size=(30, sizes[0]))
    A64 = model.forward(X64, model.workspace(30)).copy()
    A32 = model.forward(X64.astype(np.float32), model.workspace(30)).copy()
    np.testing.assert_allclose(A64, A32, rtol=1e-5, atol=1e-6)


def naive_loss(name, Y, A):
    Y, A = Y.astype(np.float64), A.astype(np.float64)
    if name == "bce":
        return float(-np.mean(Y * np.log(A) + (1 - Y) * np.log(1 - A)))
    return float(-np.mean(np.sum(Y * np.log(A), axis=1)))


LOSS_NETS = {
    "bce": ([4, 6, 1], ["tanh"], "sigmoid"),
    "cross_entropy": ([5, 7, 4], ["relu"], "softmax"),
}


def _targets(loss_name, n, K, dtype, rng):
    if loss_name == "bce":
        return (rng.random((n, 1)) < 0.4).astype(dtype)
    Y = np.zeros((n, K), dtype)
    Y[np.arange(n), rng.integers(K, size=n)] = 1
    return Y


RTOL = {np.float32: 1e-6, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_name", list(LOSS_NETS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_loss_fused_equals_loss_value(dtype, loss_name, seed):
    sizes, hidden, output = LOSS_NETS[loss_name]
    model = random_mlp(sizes, hidden, output, dtype, seed=80 + seed)
    loss = LOSSES[loss_name]
    rng = np.random.default_rng(90 + seed)
    n = 29
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    Y = _targets(loss_name, n, sizes[-1], dtype, rng)
    ws = model.workspace(n)
    A = model.forward(X, ws)
    got = model.batch_loss(Y, ws, loss)
    ref = loss.value(Y, A, ws.Z[-1], output)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, ref, rtol=RTOL[dtype])
    # and both are the textbook loss of the naive forward pass
    _, A_naive = naive_forward(model, X)
    np.testing.assert_allclose(got, naive_loss(loss_name, Y, A_naive), rtol=1e-5 if dtype == np.float32 else 1e-10)
    assert got > 0.05


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_name", list(LOSS_NETS))
def test_batch_loss_fused_on_workspace_view(dtype, loss_name):
    sizes, hidden, output = LOSS_NETS[loss_name]
    model = random_mlp(sizes, hidden, output, dtype, seed=100)
    loss = LOSSES[loss_name]
    rng = np.random.default_rng(101)
    bs, m = 32, 13
    ws = model.workspace(bs)
    # a full batch first, so the rows beyond m hold stale numbers
    X_full = (rng.normal(size=(bs, sizes[0])) * 5).astype(dtype)
    Y_full = _targets(loss_name, bs, sizes[-1], dtype, rng)
    model.forward(X_full, ws)
    full = model.batch_loss(Y_full, ws, loss)
    np.testing.assert_allclose(full, loss.value(Y_full, ws.A[-1], ws.Z[-1], output), rtol=RTOL[dtype])
    X = rng.normal(size=(m, sizes[0])).astype(dtype)
    Y = _targets(loss_name, m, sizes[-1], dtype, rng)
    w = ws.view(m)
    assert w.Z[-1].shape[0] == m
    A = model.forward(X, w)
    got = model.batch_loss(Y, w, loss)
    np.testing.assert_allclose(got, loss.value(Y, A, w.Z[-1], output), rtol=RTOL[dtype])
    # the same batch in a fresh workspace of exactly m rows
    fresh = Workspace(model, m)
    A2 = model.forward(X, fresh)
    np.testing.assert_allclose(got, loss.value(Y, A2, fresh.Z[-1], output), rtol=RTOL[dtype])
    np.testing.assert_allclose(got, model.loss(X, Y, loss), rtol=RTOL[dtype])
    _, A_naive = naive_forward(model, X)
    np.testing.assert_allclose(got, naive_loss(loss_name, Y, A_naive), rtol=1e-5 if dtype == np.float32 else 1e-10)
    assert abs(got - full) > 1e-3  # the short batch is not the full batch's loss


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_name", list(LOSS_NETS))
def test_batch_loss_fused_large_logits(dtype, loss_name):
    # |z| in the hundreds: the fused paths stay finite and still equal loss.value
    sizes, hidden, output = LOSS_NETS[loss_name]
    model = random_mlp(sizes, hidden, output, dtype, seed=110, bias_scale=50.0, weight_scale=60.0)
    loss = LOSSES[loss_name]
    rng = np.random.default_rng(111)
    n = 25
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    Y = _targets(loss_name, n, sizes[-1], dtype, rng)
    ws = model.workspace(n)
    with np.errstate(over="raise", invalid="raise"):
        A = model.forward(X, ws)
        got = model.batch_loss(Y, ws, loss)
    assert np.abs(ws.Z[-1]).max() > 100
    ref = loss.value(Y, A, ws.Z[-1], output)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, ref, rtol=RTOL[dtype])
    # reference from the float64 logits: softplus(z) - y z, or logsumexp(z) - sum y z
    Z = ws.Z[-1].astype(np.float64)
    Y64 = Y.astype(np.float64)
    if loss_name == "bce":
        want = float(np.mean(np.logaddexp(0, Z) - Y64 * Z))
    else:
        mx = Z.max(1, keepdims=True)
        want = float(np.mean(mx[:, 0] + np.log(np.exp(Z - mx).sum(1)) - (Y64 * Z).sum(1)))
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_workers_follow_affinity_and_omp_num_threads(monkeypatch):
    from nncli import parallel

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert parallel.workers() == max(1, min(cores, parallel.MAX_WORKERS))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert parallel.workers() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert parallel.workers() == max(1, min(cores, parallel.MAX_WORKERS))
