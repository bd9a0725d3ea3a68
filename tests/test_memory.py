"""Memory exhaustion after the config is accepted (issue 14, cause 2).

- YAML aliases that would expand a config, sweep file or --set value by more than
  MAX_ALIAS_EXPANSION values are refused on load, from the node graph, without expanding
  (a "billion laughs" file in model.layers: one line, at once).
- Validators quote a value from the file cut short (a 50,000-element list, a megabyte string).
- A sweep is counted before any point is made; one above sweep.MAX_POINTS is refused.
- .npz members are checked against their .npy headers before anything is allocated
  (model.npz, model.init, splits.npz, checkpoint.npz).
- ``nncli data --n`` is bounded by the memory available.
- What training allocates is estimated (within a factor 1.5 of the measured peak) and a run
  that cannot fit is refused, naming model.layers or train.batch_size, before its run
  directory exists (also under a real ``ulimit -v``).
"""

from __future__ import annotations

import io
import resource
import shutil
import string
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from helpers import NO_PLOTS, XOR_CSV, assert_usage_error, cli_env, nn, only_run, runs_in, write_classes_csv, write_config, xor_yaml

ROOT = Path(__file__).resolve().parents[1]


def _run_limited(args, cwd, limit_bytes=None, timeout=60):
    """``python -m nncli ARGS`` in a subprocess, under RLIMIT_AS = limit_bytes if given."""

    def pre():
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    env = cli_env({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    p = subprocess.run([sys.executable, "-m", "nncli", *map(str, args)], cwd=str(cwd), env=env, capture_output=True,
                       preexec_fn=pre, timeout=timeout)
    from helpers import Res

    return Res(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))


# ============================================================================= YAML aliases


def _laughs(depth: int = 9, indent: str = "    ") -> str:
    """a: &a [1 x 9], b: &b [*a x 9], ... ``depth`` levels: 9**depth values once expanded."""
    n = string.ascii_lowercase
    lines = [f"{indent}- &{n[0]} [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, depth):
        lines.append(f"{indent}- &{n[i]} [" + ", ".join([f"*{n[i - 1]}"] * 9) + "]")
    return "\n".join(lines)


def test_a_billion_laughs_in_model_layers_is_one_line_at_once(workdir):
    """9 levels of 9 aliases (387 million values) inside model.layers: refused on load, in
    a subprocess that would otherwise expand (and repr) them for minutes."""
    # entry 0 holds the anchors a..h (its repr alone: 48 million values), then *h eight times
    laughs = "  layers:\n    -\n" + _laughs(8, "      ") + "\n" + "\n".join(["    - *h"] * 8)
    text = xor_yaml(("  layers: [2, 4, 1]            # the lecture's sizes: inputs, hidden..., outputs", laughs))
    (workdir / "configs" / "laughs.yaml").write_text(text, encoding="utf-8")
    alias_line = 1 + text.splitlines().index("    - *h")
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "nncli", "train", "configs/laughs.yaml", *NO_PLOTS], cwd=workdir,
                         env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("the aliases were expanded: no answer within 30 s")
    from helpers import Res

    r = Res(p.returncode, out, err.decode())
    assert_usage_error(r, "configs/laughs.yaml", f"line {alias_line}:", "*h", "write the values out")
    assert time.perf_counter() - t0 < 10
    assert runs_in(workdir) == []


def test_the_alias_bound_is_checked_in_linear_time_without_expanding():
    """The check itself, in-process: well under a second for 9**9 values (and 9**30 too)."""
    from nncli.yamlfile import MAX_ALIAS_EXPANSION, AliasExpansionError, safe_load

    for depth in (9, 26):
        t0 = time.perf_counter()
        with pytest.raises(AliasExpansionError) as e:
            safe_load("x:\n" + _laughs(depth, "  "))
        assert time.perf_counter() - t0 < 0.5
        assert f"{MAX_ALIAS_EXPANSION:,}" in e.value.message
        assert e.value.line == depth + 1  # the first alias of the last level: the largest


def test_aliases_within_the_bound_still_work():
    """Anchors and aliases that add a few thousand values load as before (yaml.safe_load)."""
    from nncli.yamlfile import MAX_ALIAS_EXPANSION, safe_load

    text = "base: &b [1, 2, 3]\nuse: [*b, *b]\nm: &m {lr: 0.1, epochs: 3}\nn: [*m, *m]\n"
    assert safe_load(text) == yaml.safe_load(text)
    # exactly at the bound: 1 list of (MAX - 1) scalars = MAX values, repeated once by an alias
    big = "a: &a [" + ", ".join(["1"] * (MAX_ALIAS_EXPANSION - 1)) + "]\nb: *a\n"
    assert safe_load(big) == yaml.safe_load(big)
    # one more value is refused
    from nncli.yamlfile import AliasExpansionError

    with pytest.raises(AliasExpansionError):
        safe_load("a: &a [" + ", ".join(["1"] * MAX_ALIAS_EXPANSION) + "]\nb: *a\n")


def test_a_recursive_alias_is_refused(tmp_path):
    from nncli.config import load_config
    from nncli.errors import ConfigError

    (tmp_path / "c.yaml").write_text("model:\n  layers: &x [2, *x, 1]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml: line 2: the alias \*x refers to a value that contains it"):
        load_config(tmp_path / "c.yaml")


def test_a_billion_laughs_in_a_set_override_is_one_line(workdir):
    value = "{a: &a [1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], " \
            "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]}"
    r = nn("train", "configs/xor.yaml", "--set", f"model.layers={value}", *NO_PLOTS, cwd=workdir)
    assert_usage_error(r, "--set model.layers=", "write the values out")
    assert len(r.lines[0]) < 400


def test_every_gallery_config_and_example_still_loads():
    from nncli.config import load_config

    files = sorted((ROOT / "configs").glob("*.yaml"))
    assert files
    for f in files:
        load_config(f)


# ============================================================================= bounded messages


@pytest.mark.parametrize("layers", [
    [2] + [4] * 50_000 + ["x"],  # a bad entry at the end of a 50,000-element list
    [[1] * 1000 for _ in range(50)],  # nested lists (distinct: no YAML aliases): the repr was 3,000 characters
    [{"a": [1] * 1000} for _ in range(50)],
    [2, "x" * 1_000_000, 1],  # a megabyte string: the repr was a megabyte line
])
def test_a_huge_value_in_model_layers_is_one_short_line(workdir, layers):
    cfg = yaml.safe_load((workdir / "configs" / "xor.yaml").read_text(encoding="utf-8"))
    cfg["model"]["layers"] = layers
    (workdir / "configs" / "big.yaml").write_text(yaml.safe_dump(cfg, width=10**9), encoding="utf-8")
    t0 = time.perf_counter()
    r = nn("train", "configs/big.yaml", *NO_PLOTS, cwd=workdir)
    assert time.perf_counter() - t0 < 5
    assert_usage_error(r, "configs/big.yaml", "model.layers")
    assert len(r.lines[0]) < 300, r.lines[0][:1000]


@pytest.mark.parametrize("section,key,value", [
    ("model", "activation", "x" * 100_000), ("train", "lr", "q" * 100_000), ("train", "batch_size", "w" * 100_000),
    ("data", "sep", "s" * 100_000), ("data", "missing", "m" * 100_000), (None, "name", "n" * 100_000),
    (None, "seed", "9" * 5000), ("train", "k" * 100_000, 1), ("model", "init", "z" * 100_000),
])
def test_every_validator_quotes_a_huge_value_cut_short(section, key, value):
    from nncli.config import config_from_dict
    from nncli.errors import ConfigError

    cfg = yaml.safe_load(xor_yaml())
    (cfg[section] if section else cfg)[key] = value
    with pytest.raises(ConfigError) as e:
        config_from_dict(cfg, "big.yaml")
    assert len(str(e.value)) < 400 and "\n" not in str(e.value)


def test_shown_cuts_values_before_formatting_them():
    from nncli.formats import shown

    x = [1] * 10**7
    t0 = time.perf_counter()
    s = shown(x)
    assert time.perf_counter() - t0 < 0.05 and len(s) <= 60 and s.startswith("[1, 1")
    assert shown("abc") == "'abc'" and shown([1, 2]) == "[1, 2]" and shown((1,)) == "(1,)"
    loop: list = []
    loop.append(loop)
    assert len(shown(loop)) < 60  # no RecursionError


# ============================================================================= sweeps


def _big_sweep(path: Path, base: Path) -> Path:
    keys = ["train.lr", "train.l2", "train.epochs", "seed", "train.batch_size", "train.momentum", "train.shuffle",
            "model.activation", "train.dtype"]
    lines = [f"base: {base}", "grid:", f"  {keys[0]}: &v [1, 2, 3, 4, 5, 6, 7, 8, 9]"] + [f"  {k}: *v" for k in keys[1:]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_sweep_of_387_million_points_is_refused_up_front(workdir):
    from nncli.sweep import MAX_POINTS

    sw = _big_sweep(workdir / "big.yaml", workdir / "configs" / "xor.yaml")
    assert sw.stat().st_size < 1024
    t0 = time.perf_counter()
    r = nn("sweep", "big.yaml", cwd=workdir)
    assert time.perf_counter() - t0 < 5
    assert_usage_error(r, "big.yaml", f"{9 ** 9:,} points", f"limit of {MAX_POINTS:,}")
    assert runs_in(workdir) == []


def test_sweep_points_are_counted_from_the_grid_and_made_lazily(workdir):
    from nncli.sweep import MAX_POINTS, SweepSpec, count_points, iter_points, load_sweep, points

    spec = SweepSpec.model_validate({"base": "x.yaml", "grid": {f"k{i}": list(range(9)) for i in range(9)}})
    assert count_points(spec) == 9 ** 9
    t0 = time.perf_counter()
    it = iter_points(spec)
    assert next(it) == {f"k{i}": 0 for i in range(9)} and next(it)["k8"] == 1
    assert time.perf_counter() - t0 < 0.1
    # a small sweep: the count is grid lengths x samples, and the points are those of a hand-written loop
    (workdir / "s.yaml").write_text("base: configs/xor.yaml\ngrid:\n  train.lr: [0.1, 0.2, 0.3]\n  seed: [1, 2]\n"
                                    "random:\n  samples: 2\n  params:\n    train.l2: {uniform: [0.0, 1.0]}\n", encoding="utf-8")
    small = load_sweep(workdir / "s.yaml")
    pts = points(small)
    assert count_points(small) == len(pts) == 3 * 2 * 2
    rng = np.random.default_rng(0)
    want = [{"train.lr": lr, "seed": s, "train.l2": float(rng.uniform(0.0, 1.0))}
            for lr in (0.1, 0.2, 0.3) for s in (1, 2) for _ in range(2)]
    assert pts == want
    # samples alone can exceed the limit
    (workdir / "r.yaml").write_text(f"base: configs/xor.yaml\nrandom:\n  samples: {MAX_POINTS + 1}\n  params:\n"
                                    "    train.l2: {uniform: [0.0, 1.0]}\n", encoding="utf-8")
    r = nn("sweep", "r.yaml", cwd=workdir)
    assert_usage_error(r, "r.yaml", f"{MAX_POINTS + 1:,} points")


# ============================================================================= .npz headers


def _npy_bytes(shape, dtype="<f4", data: bytes = b"\0" * 64) -> bytes:
    """An .npy file whose header declares ``shape``, followed by ``data`` only."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue() + data


def _replace_member(npz: Path, name: str, payload: bytes, compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(npz) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members[name + ".npy"] = payload
    with zipfile.ZipFile(npz, "w", compression) as z:
        for k, v in members.items():
            z.writestr(k, v)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("memtrained")
    write_classes_csv(d / "data.csv")
    write_config(d / "cfg.yaml", train_csv="data.csv", target="label", epochs=3)
    r = nn("train", "cfg.yaml", "-q", *NO_PLOTS, cwd=d)
    assert r.rc == 0, r.show()
    return d


def _copy_run(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return only_run(dest)


def _reseal(run: Path, name: str) -> None:
    """Record the tampered file's SHA-256 in summary.json (where the run keeps digests), so the
    test reaches the file's contents: a hostile file can come with a matching summary."""
    import hashlib
    import json

    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    if name in (summary.get("files") or {}):
        summary["files"][name] = hashlib.sha256((run / name).read_bytes()).hexdigest()
        (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def test_a_model_npz_declaring_a_terabyte_w1_is_one_line_without_allocating(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path)
    _replace_member(run / "model.npz", "W1", _npy_bytes((10**6, 10**6)))
    _reseal(run, "model.npz")
    tracemalloc.start()
    r = nn("eval", run, "--no-plots", cwd=tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert_usage_error(r, "model.npz", "W1", "(1000000, 1000000)")
    assert "MemoryError" not in r.lines[0]
    assert peak < 200 * 2**20


def test_a_model_npz_declaring_a_terabyte_w1_under_ulimit(trained_run, tmp_path):
    """The same under a 2 GiB address-space limit, as a new user would meet it: one line, exit 2."""
    run = _copy_run(trained_run, tmp_path)
    _replace_member(run / "model.npz", "W1", _npy_bytes((10**6, 10**6)))
    _reseal(run, "model.npz")
    r = _run_limited(["eval", run, "--no-plots"], tmp_path, limit_bytes=int(_baseline_vm() + 2**30))
    assert_usage_error(r, "model.npz", "W1")


@pytest.mark.parametrize("member,shape", [("param/W1", (10**6, 10**6)), ("opt/v0", (10**12,)), ("meta", (10**9,))])
def test_a_checkpoint_member_declaring_more_than_the_file_holds_is_refused(trained_run, tmp_path, member, shape):
    run = _copy_run(trained_run, tmp_path)
    ck = run / "checkpoint.npz"  # what an interrupted run keeps: its members, small
    np.savez(ck, **{"param/W1": np.zeros((4, 2), np.float32), "opt/v0": np.zeros(10, np.float32), "meta": np.array("{}")})
    _replace_member(ck, member, _npy_bytes(shape, "<U10" if member == "meta" else "<f4"))
    from nncli.errors import RunError
    from nncli.runs import RunDir

    with pytest.raises(RunError, match="checkpoint.npz.*declares shape"):
        RunDir(run).read_checkpoint()


def test_a_splits_npz_member_declaring_a_huge_shape_is_refused(trained_run, tmp_path):
    from nncli.errors import RunError
    from nncli.runs import RunDir

    run = _copy_run(trained_run, tmp_path)
    _replace_member(run / "splits.npz", "train", _npy_bytes((10**12,), "<i8"))
    with pytest.raises(RunError, match=r"splits\.npz.*'train'.*declares shape \(1000000000000,\)"):
        RunDir(run).read_splits()


def test_model_init_with_a_huge_header_is_one_line(workdir, tmp_path):
    np.savez(workdir / "init.npz", W1=np.zeros((4, 2), np.float32), b1=np.zeros(4, np.float32),
             W2=np.zeros((1, 4), np.float32), b2=np.zeros(1, np.float32))
    _replace_member(workdir / "init.npz", "W2", _npy_bytes((10**6, 10**6)))
    r = nn("train", "configs/xor.yaml", "--set", "model.init=init.npz", *NO_PLOTS, cwd=workdir)
    assert_usage_error(r, "init.npz", "'W2' has shape (1000000, 1000000), expected (1, 4) (n_out, n_in)")
    assert runs_in(workdir) == []


def test_read_npz_reads_what_np_load_reads(tmp_path):
    """Independent reference: numpy's own loader, on every kind of member nncli writes."""
    from nncli.npzfile import read_npz

    arrays = {"a": np.arange(12.0).reshape(3, 4), "f": np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3)),
              "meta": np.array('{"x": 1}'), "n": np.int64(5), "empty": np.zeros((0, 3), np.float32),
              "b": np.array([True, False]), "c": np.array(["a", "bc"])}
    for saver in (np.savez, np.savez_compressed):
        saver(tmp_path / "t.npz", **arrays)
        with np.load(tmp_path / "t.npz", allow_pickle=False) as ref, read_npz(tmp_path / "t.npz") as z:
            assert sorted(z.files) == sorted(ref.files)
            for k in ref.files:
                got = z[k]
                assert got.dtype == ref[k].dtype and got.shape == ref[k].shape and np.array_equal(got, ref[k]), k


def test_read_npz_refuses_before_allocating(tmp_path):
    from nncli.npzfile import MAX_DEFLATE_RATIO, NpzMemberError, read_npz

    np.savez(tmp_path / "o.npz", o=np.array([{}], dtype=object))
    with pytest.raises(NpzMemberError, match="Python objects"):
        read_npz(tmp_path / "o.npz")["o"]
    np.savez(tmp_path / "w.npz", W1=np.zeros((3, 2)))
    with pytest.raises(NpzMemberError, match=r"has shape \(3, 2\), expected \(4, 2\)"):
        read_npz(tmp_path / "w.npz", {"W1": (4, 2)})["W1"]
    # a deflated member whose header declares more than deflate can expand to
    data = b"\0" * 4096
    with zipfile.ZipFile(tmp_path / "d.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", _npy_bytes((10**8,), "<f8", data))
    info = zipfile.ZipFile(tmp_path / "d.npz").getinfo("x.npy")
    assert 8 * 10**8 > info.compress_size * MAX_DEFLATE_RATIO
    tracemalloc.start()
    with pytest.raises(NpzMemberError, match="declares shape"):
        read_npz(tmp_path / "d.npz")["x"]
    assert tracemalloc.get_traced_memory()[1] < 10 * 2**20
    tracemalloc.stop()


# ============================================================================= nncli data --n


@pytest.mark.parametrize("n", ["1000000000000", str(10**15), "1e12"])
def test_data_with_a_trillion_rows_is_one_line(tmp_path, n):
    t0 = time.perf_counter()
    r = nn("data", "moons", "--n", n, "-o", "m.csv", cwd=tmp_path)
    assert time.perf_counter() - t0 < 5
    assert_usage_error(r, "--n", "rows fit")
    assert not (tmp_path / "m.csv").exists()


def test_synth_takes_n_written_as_a_float_and_bounds_it():
    from nncli import synth
    from nncli.errors import DataError

    assert len(synth.generate("moons", n="1e3")) == 1000 and len(synth.generate("moons", n=1e3)) == 1000
    for bad in ("1e12", 1e12, 10**12):
        with pytest.raises(DataError, match="--n: 1,000,000,000,000 rows need about"):
            synth.generate("moons", n=bad)
    with pytest.raises(DataError, match="whole number"):
        synth.generate("moons", n="1.5")


def test_synth_bytes_per_row_bounds_the_measured_peak():
    """BYTES_PER_ROW (what the --n bound assumes) is at least what generate + csv_text allocate."""
    from nncli import synth

    n = 50_000
    for name in synth.GENERATORS:
        tracemalloc.start()
        synth.csv_text(synth.generate(name, n=n))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= n * synth.BYTES_PER_ROW, (name, peak / n)


# ============================================================================= the training estimate


def test_available_bytes_sees_the_address_space_limit():
    code = ("from nncli.memory import available_bytes; import resource; print(available_bytes(), "
            "resource.getrlimit(resource.RLIMIT_AS)[0])")
    limit = int(_baseline_vm() + 2**30)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=cli_env(),
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    avail, lim = map(int, p.stdout.split())
    assert lim == limit and 0 < avail <= limit


def test_optimizer_slots_are_what_optim_allocates():
    """By hand from optim.py: every optimizer has one scratch array; momentum keeps v, adam m and v."""
    from nncli.memory import optimizer_slots

    assert optimizer_slots("sgd") == 1
    assert optimizer_slots("momentum") == 2
    assert optimizer_slots("adam") == 3


def _measure(tmp_path, layers, batch_size, optimizer, early_stopping, dtype="float32", epochs=2):
    """(estimate, tracemalloc peak) of training after the data and model exist: the optimizer,
    trainer, epochs with validation, and the checkpoint written."""
    from nncli import synth
    from nncli.config import config_from_dict
    from nncli.csvio import write_npz
    from nncli.job import build_optimizer, prepare
    from nncli.losses import LOSSES
    from nncli.memory import training_bytes
    from nncli.trainer import FitOptions, Trainer

    if not (tmp_path / "sp.csv").exists():
        synth.write_csv(synth.generate("spirals", n=20_000, seed=1), tmp_path / "sp.csv")
    raw = {"data": {"train": str(tmp_path / "sp.csv"), "target": "label", "val_split": 0.2},
           "model": {"layers": layers},
           "train": {"optimizer": optimizer, "lr": 0.01, "epochs": epochs, "batch_size": batch_size, "dtype": dtype,
                     **({"early_stopping": {"patience": 5}} if early_stopping else {})}}
    cfg = config_from_dict(raw, "t")
    data, model, rng, cfg = prepare(cfg)
    est = sum(training_bytes(cfg.model.layers, dtype, batch_size, data.train.n, data.val.n, optimizer, early_stopping).values())
    tracemalloc.start()
    try:
        tr = Trainer(model, LOSSES[cfg.loss], build_optimizer(cfg, model), cfg.task, data.train, data.val, rng,
                     FitOptions.from_config(cfg.train))
        for _ in tr.epochs():
            pass
        write_npz(tmp_path / "ck.npz", tr.state())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return est, peak


@pytest.mark.parametrize("layers,batch_size,optimizer,early_stopping,dtype", [
    (["auto", 512, 512, "auto"], 64, "adam", True, "float32"),
    (["auto", 512, 512, "auto"], 64, "sgd", False, "float32"),
    (["auto", 768, 768, "auto"], 32, "momentum", True, "float64"),
    (["auto", 256, "auto"], "full", "adam", False, "float32"),
    (["auto", 64, "auto"], 8192, "sgd", False, "float32"),
])
def test_the_training_estimate_is_within_a_factor_1_5_of_the_measured_peak(tmp_path, layers, batch_size, optimizer,
                                                                            early_stopping, dtype):
    est, peak = _measure(tmp_path, layers, batch_size, optimizer, early_stopping, dtype)
    assert peak / 1.5 <= est <= peak * 1.5, (est / 2**20, peak / 2**20)


def _cfg_and_data(layers, batch_size="full", optimizer="adam", n_train=1000, n_val=0):
    from nncli.config import config_from_dict

    raw = yaml.safe_load(xor_yaml())
    raw["model"]["layers"] = layers
    raw["train"].update(batch_size=batch_size, optimizer=optimizer)
    cfg = config_from_dict(raw, "t")
    data = SimpleNamespace(train=SimpleNamespace(n=n_train), val=SimpleNamespace(n=n_val) if n_val else None)
    return cfg, data


def test_the_check_names_model_layers_when_the_parameters_dominate(monkeypatch):
    from nncli import memory
    from nncli.errors import ConfigError

    monkeypatch.setattr(memory, "available_bytes", lambda: 100 * 2**20)
    cfg, data = _cfg_and_data([2, 4000, 4000, 1], batch_size=4, n_train=4)
    P = (2 * 4000 + 4000) + (4000 * 4000 + 4000) + (4000 * 1 + 1)  # by hand: W_l and b_l of each layer
    with pytest.raises(ConfigError, match=rf"^model\.layers: \[2, 4000, 4000, 1\] has {P:,} parameters; training them "
                                          r"with adam .*needs about [\d.]+ [MG]iB.* but 100\.0 MiB is available"):
        memory.check_training_memory(cfg, [2, 4000, 4000, 1], data, model=object())
    memory.check_training_memory(cfg, [2, 40, 40, 1], data, model=object())  # small: fine


def test_the_check_names_train_batch_size_when_the_workspace_dominates(monkeypatch):
    from nncli import memory
    from nncli.errors import ConfigError

    monkeypatch.setattr(memory, "available_bytes", lambda: 100 * 2**20)
    # full batches of 200,000 rows through 100 hidden units: Z, A, D, S alone are 4 x 200,000 x 101 x 4 bytes = 308 MiB
    cfg, data = _cfg_and_data([2, 100, 1], batch_size="full", n_train=200_000)
    with pytest.raises(ConfigError, match=r"^train\.batch_size: full \(200,000 rows a batch\) needs about .* of "
                                          r"workspace, .* in all, but 100\.0 MiB is available; use a smaller train\.batch_size"):
        memory.check_training_memory(cfg, [2, 100, 1], data, model=object())
    cfg, data = _cfg_and_data([2, 100, 1], batch_size=64, n_train=200_000)
    memory.check_training_memory(cfg, [2, 100, 1], data, model=object())  # small batches fit


def test_train_refuses_what_cannot_fit_before_the_run_directory_exists(workdir, monkeypatch):
    """The check is made by TrainingJob (CLI and library), before the run directory exists."""
    from nncli import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 50 * 2**20)
    r = nn("train", "configs/xor.yaml", "--set", "model.layers=[2, 3000, 3000, 1]", "--set", "train.optimizer=adam",
           *NO_PLOTS, cwd=workdir)
    assert_usage_error(r, "model.layers: [2, 3000, 3000, 1] has 9,015,001 parameters", "50.0 MiB is available")
    assert runs_in(workdir) == []


def test_a_layer_too_large_to_build_is_one_line_and_no_run(workdir):
    r = nn("train", "configs/xor.yaml", "--set", "model.layers=[2, 200000, 200000, 1]", *NO_PLOTS, cwd=workdir)
    assert_usage_error(r, "model.layers")
    assert runs_in(workdir) == []


def _baseline_vm() -> int:
    """VmSize (bytes) of an nncli process that has read a small CSV: what a limit must leave room for."""
    code = ("import numpy as np; from nncli.config import load_config; from nncli.data import load_dataset; "
            f"cfg = load_config({str(ROOT / 'configs' / 'xor.yaml')!r}); "
            f"cfg.data.train = {str(XOR_CSV)!r}; load_dataset(cfg, np.random.default_rng(0)); "
            "print(open('/proc/self/status').read().split('VmSize:')[1].split()[0])")
    env = cli_env({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert p.returncode == 0, p.stderr
    return int(p.stdout.split()[0]) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_under_ulimit_v_a_model_that_builds_but_cannot_train_is_refused(workdir):
    """A float64 [2, 6000, 6000, 1] (36 M parameters: 288 MB, built from a 288 MB draw) fits
    under baseline + 1.25 GiB, but adam's state, the gradients and the snapshots do not: the
    estimate refuses it with one line, exit 2, before the run directory exists."""
    limit = int(_baseline_vm() + 1.25 * 2**30)
    r = _run_limited(["train", "configs/xor.yaml", "--set", "model.layers=[2, 6000, 6000, 1]", "--set", "train.optimizer=adam",
                      "--set", "train.dtype=float64", "--set", "train.epochs=2", *NO_PLOTS], workdir, limit)
    assert_usage_error(r, "model.layers: [2, 6000, 6000, 1] has 36,030,001 parameters", "is available")
    assert runs_in(workdir) == []
