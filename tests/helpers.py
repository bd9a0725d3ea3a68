"""What the test suite shares: the one way to run the CLI, the one test environment, data
writers, and independent maths. Fixtures live in conftest.py and build on these.

Running the CLI:
- :func:`nn` runs ``nncli ARGS`` in this process (Typer's CliRunner): fast, and what most
  tests use. An exception that escapes the app is kept in ``Res.tb``.
- :func:`cli` runs ``python -m nncli ARGS`` in a subprocess, for what only a real process
  shows: exit status of the interpreter, stdin, pipes, signals, files left behind.
  :func:`cli_many` starts several at once; :func:`start_cli` returns the Popen (signals).
Both return a :class:`Res`; both use :func:`cli_env`, so nothing looks like a terminal.

Then: work directories and runs, data files, configs, data errors through ``nncli train``,
hostile files, comparing runs, the library driven directly, and independent maths.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
XOR_CSV = REPO / "datasets" / "xor.csv"
XOR_YAML = REPO / "configs" / "xor.yaml"

# variables that could make rich believe it talks to a terminal, or change its colours
_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE", "PY_COLORS", "NO_COLOR")
_HIDDEN_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)

# Drawing pictures costs seconds of matplotlib per run; tests that do not look at them skip them.
NO_PLOTS = ["--no-plots"]


# ---------------------------------------------------------------------- running the CLI


@dataclass
class Res:
    rc: int
    out: bytes  # stdout as written
    err: str
    tb: str = ""  # the traceback of an exception that escaped the app (in-process runs)

    @property
    def text(self) -> str:
        return self.out.decode("utf-8")

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]

    @property
    def lines(self) -> list[str]:
        """Every non-empty line the command wrote, stdout and stderr together."""
        return [ln for ln in (self.text + self.err).splitlines() if ln.strip()]

    def show(self) -> str:
        return f"exit {self.rc}\nstdout: {self.text!r}\nstderr: {self.err!r}\n{self.tb}"


def cli_env(extra: dict | None = None) -> dict:
    """The environment of every CLI run in the tests: no terminal hints, no bytecode files."""
    env = {k: v for k, v in os.environ.items() if k not in _TERMINAL_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


@contextlib.contextmanager
def chdir(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def nn(*args, cwd) -> Res:
    """``nncli ARGS`` in this process with ``cwd`` as the working directory.

    Warnings a real ``python -m nncli`` would print on stderr (pytest would otherwise
    swallow them) are appended to ``err`` as the interpreter formats them.
    """
    from typer.testing import CliRunner

    from nncli.cli import app

    with chdir(cwd), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
                    for w in caught if not issubclass(w.category, _HIDDEN_BY_DEFAULT))
    tb = ""
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        tb = "".join(traceback.format_exception(type(r.exception), r.exception, r.exception.__traceback__))
    return Res(r.exit_code, r.stdout_bytes, r.stderr + shown, tb)


def start_cli(*args, cwd, env: dict | None = None, **popen_kw) -> subprocess.Popen:
    """``python -m nncli ARGS`` started in a subprocess (stdin closed unless given)."""
    popen_kw.setdefault("stdin", subprocess.DEVNULL)
    popen_kw.setdefault("stdout", subprocess.PIPE)
    popen_kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "nncli", *map(str, args)], cwd=str(cwd), env=cli_env(env), **popen_kw)


def signal_when(proc: subprocess.Popen, ready, what: str, timeout: float = 120, settle: float = 0.0,
                sig=signal.SIGINT, poll: float = 0.02) -> Res:
    """Wait until ``ready()`` (failing if ``proc`` ends first or ``timeout`` seconds pass:
    ``what`` did not happen), wait ``settle`` seconds more, send ``sig``, and collect the
    process's end; it is killed (by its PID) if it has not ended within two minutes."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, f"{what} did not happen"
            time.sleep(poll)
        time.sleep(settle)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return Res(proc.returncode, out, err.decode("utf-8", "replace"))


def cli_many(jobs, timeout: float = 180) -> list[Res]:
    """Start every ``(args, cwd[, stdin_bytes])`` job at once; results in the same order."""
    procs = []
    for job in jobs:
        args, cwd = job[0], job[1]
        data = job[2] if len(job) > 2 else None
        procs.append((start_cli(*args, cwd=cwd, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL), data))
    out = []
    for p, data in procs:
        o, e = p.communicate(data, timeout=timeout)
        out.append(Res(p.returncode, o, e.decode("utf-8", "replace")))
    return out


def cli(*args, cwd, stdin: bytes | None = None) -> Res:
    """``python -m nncli ARGS`` in a subprocess with ``cwd``."""
    return cli_many([(list(args), cwd, stdin)])[0]


def assert_usage_error(r: Res, *needles: str) -> None:
    """Exit 2, exactly one line of output, no traceback, each needle in that line."""
    assert not r.tb, f"an exception escaped:\n{r.show()}"
    assert "Traceback" not in r.text + r.err, r.show()
    assert r.rc == 2, r.show()
    assert len(r.lines) == 1, f"expected one line of output:\n{r.show()}"
    for n in needles:
        assert n in r.lines[0], f"{n!r} not in {r.lines[0]!r}"


def one_run_dir(r: Res, cwd: Path) -> Path:
    """stdout of ``nncli train`` (without --json) is exactly one line: the run directory."""
    lines = r.text.splitlines()
    assert len(lines) == 1 and r.text.endswith("\n"), r.show()
    path = cwd / lines[0]
    assert path.is_dir(), r.show()
    return path


# ---------------------------------------------------------------------- work directories and runs


def setup_workdir(path: Path) -> Path:
    """``path`` with datasets/xor.csv and configs/xor.yaml copied from the repository."""
    (path / "datasets").mkdir(parents=True, exist_ok=True)
    (path / "configs").mkdir(parents=True, exist_ok=True)
    shutil.copy(XOR_CSV, path / "datasets" / "xor.csv")
    shutil.copy(XOR_YAML, path / "configs" / "xor.yaml")
    return path


def add_blobs(path: Path) -> Path:
    """A work directory ``path`` plus datasets/blobs.csv (write_blobs_csv) and configs/blobs.yaml (BLOBS_YAML)."""
    write_blobs_csv(path / "datasets" / "blobs.csv")
    (path / "configs" / "blobs.yaml").write_text(BLOBS_YAML, encoding="utf-8")
    return path


def runs_in(root: Path) -> list[Path]:
    """Every run directory under ``root/runs`` (empty if there is none)."""
    d = Path(root) / "runs"
    return sorted(p for p in d.iterdir()) if d.is_dir() else []


def only_run(root: Path) -> Path:
    runs = runs_in(root)
    assert len(runs) == 1, f"expected one run directory, found {runs}"
    return runs[0]


def copy_trained(trained: Path, dest: Path) -> Path:
    """A private copy of a module fixture's directory with one trained run in runs/ (such as
    conftest's ``trained``); returns the run directory inside ``dest``."""
    shutil.copytree(trained, dest, dirs_exist_ok=True)
    return only_run(dest)


def summary(run: Path) -> dict:
    """The run's summary.json."""
    return json.loads((run / "summary.json").read_text(encoding="utf-8"))


def unseal(run: Path) -> Path:
    """Drop summary.json's 'files' digests, as in a run saved before nncli sealed its files.

    For tests that edit model.npz, preprocess.json or splits.npz on purpose to see one
    particular check (or to make an old run): a sealed run refuses any edit of them at once
    (tests/test_run_files.py: test_an_edited_run_file_is_refused_by_its_digest)."""
    s = summary(run)
    s.pop("files", None)
    s.pop("model_config", None)
    (run / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    return run


def metrics_rows(run: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the run's metrics.csv, every cell as written."""
    df = read_text_csv(run / "metrics.csv")
    return list(df.columns), df.values.tolist()


def tmp_leftovers(root: Path) -> list[Path]:
    """Temporary files of the atomic writer (``.NAME.tmp``) anywhere below ``root``."""
    return [p for p in root.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]


# ---------------------------------------------------------------------- data files


def write_rows(path: Path, header, rows, bom: bool = False) -> Path:
    """A UTF-8 CSV with ``header`` and ``rows`` (lists of cells, or dicts keyed by column)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([[r[c] for c in header] if isinstance(r, dict) else r for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + buf.getvalue(), encoding="utf-8")
    return path


def write_blobs_csv(path: Path, n_per_class: int = 20, seed: int = 1) -> Path:
    """Two well separated Gaussian blobs, columns x1,x2,label with labels a/b."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, centre in (("a", (-2.0, -2.0)), ("b", (2.0, 2.0))):
        pts = rng.normal(centre, 0.5, size=(n_per_class, 2))
        rows += [(f"{x:.6f}", f"{y:.6f}", label) for x, y in pts]
    order = rng.permutation(len(rows))
    return write_rows(path, ["x1", "x2", "label"], [rows[i] for i in order])


def write_classes_csv(path: Path, n: int = 23, seed: int = 0, flip: float = 0.0) -> Path:
    """Two features, binary label 'a'/'b' (XOR of the signs: an xor-like problem); ``flip``
    of the labels flipped."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = X[:, 0] * X[:, 1] > 0
    y ^= rng.random(n) < flip
    return write_rows(path, ["x1", "x2", "label"], [[repr(float(a)), repr(float(b)), "ab"[int(c)]] for (a, b), c in zip(X, y)])


def write_regression_csv(path: Path, n: int = 40, seed: int = 5) -> Path:
    """Columns x,y with y = 3x + noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    y = 3 * x + rng.normal(0, 0.1, n)
    return write_rows(path, ["x", "y"], [[repr(float(a)), repr(float(b))] for a, b in zip(x, y)])


def std_rows(n: int, seed: int) -> list[dict]:
    """Rows of x (0..10), w (around 100), a category c in p/q/r, label yes iff x > 4, and y = 2x + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        x, w = rng.uniform(0, 10), rng.normal(100, 20)
        c = "pqr"[int(rng.integers(3))]
        rows.append({"x": f"{x:.4f}", "w": f"{w:.4f}", "c": c, "label": "yes" if x > 4 else "no",
                     "y": f"{2 * x + rng.normal(0, 0.1):.4f}"})
    return rows


# six valid rows for csv_bytes' default header x,c,label
GOOD_ROWS = [("0.5", "p", "yes"), ("-1.0", "q", "no"), ("1.5", "p", "yes"), ("-0.3", "q", "no"),
             ("2.0", "q", "yes"), ("-2.0", "p", "no")]


def csv_bytes(rows, header=("x", "c", "label")) -> bytes:
    """The bytes of a CSV file: cells joined by commas as given (no quoting), UTF-8, a final newline."""
    return ("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n").encode("utf-8")


def read_text_csv(src):
    """Every cell as the text it is written as."""
    import pandas as pd

    if isinstance(src, (bytes, bytearray)):
        src = io.BytesIO(src)
    return pd.read_csv(src, dtype=str, keep_default_na=False, encoding="utf-8")


# ---------------------------------------------------------------------- configs


def xor_yaml(*subs: tuple[str, str], drop: tuple[str, ...] = ()) -> str:
    """configs/xor.yaml with each (old, new) substitution applied exactly once, and the
    lines starting with each prefix in ``drop`` removed (each must match one line), so a
    test can never pass because its edit silently did nothing."""
    text = XOR_YAML.read_text(encoding="utf-8")
    for old, new in subs:
        assert text.count(old) == 1, f"test setup: {old!r} occurs {text.count(old)} times in xor.yaml"
        text = text.replace(old, new)
    lines = text.splitlines(keepends=True)
    for prefix in drop:
        hits = [ln for ln in lines if ln.startswith(prefix)]
        assert len(hits) == 1, f"test setup: {prefix!r} starts {len(hits)} lines of xor.yaml"
        lines.remove(hits[0])
    return "".join(lines)


# a small two-class config over write_blobs_csv's file (datasets/blobs.csv)
BLOBS_YAML = """\
name: blobs
seed: 3
data:
  train: datasets/blobs.csv
  target: label
model:
  layers: [2, 3, 1]
  activation: tanh
loss: bce
train:
  optimizer: sgd
  lr: 0.1
  epochs: 5
  batch_size: 8
"""


def write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def config_dict(*, train_csv: str, target: str, loss: str = "bce", name: str = "t", seed: int = 0,
                layers=("auto", 4, "auto"), output=None, data_extra=None, **train) -> dict:
    """A config: tanh hidden units, sgd (lr 0.1, 3 epochs, batches of 5) unless ``train`` says
    otherwise; ``data_extra`` are more data.* keys; model.output only when given."""
    model = {"layers": list(layers), "activation": "tanh"}
    if output is not None:
        model["output"] = output
    tr = {"optimizer": "sgd", "lr": 0.1, "epochs": 3, "batch_size": 5, **train}
    return {"name": name, "seed": seed, "data": {"train": train_csv, "target": target, **(data_extra or {})},
            "model": model, "loss": loss, "train": tr}


def write_config(path: Path, **kw) -> Path:
    """:func:`config_dict` (same keywords) written to ``path`` as YAML."""
    return write_yaml(path, config_dict(**kw))


def adam_yaml(name: str, train: str, loss: str = "bce", extra_data: str = "", epochs: int = 60,
              target: str = "label") -> str:
    """Config text over ``train``: seed 4, 6 tanh hidden units, adam (lr 0.05, batches of 16);
    ``extra_data`` is more lines of the data: mapping (indented, each ending in a newline)."""
    return f"""\
name: {name}
seed: 4
data:
  train: {train}
  target: {target}
{extra_data}model:
  layers: [auto, 6, auto]
  activation: tanh
loss: {loss}
train:
  optimizer: adam
  lr: 0.05
  epochs: {epochs}
  batch_size: 16
"""


# ---------------------------------------------------------------------- data errors through `nncli train`


def run_error_cases(base: Path, cases: dict, subprocess_cases=()) -> tuple[dict, dict]:
    """``nncli train cfg.yaml --no-plots`` in ``base/NAME`` for each case ``NAME: (data.csv
    bytes, or None for no file; cfg.yaml text)``: the cases named in ``subprocess_cases`` in
    real processes started together, the others in this process. Returns (directories,
    results), both keyed by case name."""
    dirs = {}
    for name, (content, cfg_text) in cases.items():
        d = base / name
        d.mkdir()
        if content is not None:
            (d / "data.csv").write_bytes(content)
        (d / "cfg.yaml").write_text(cfg_text, encoding="utf-8")
        dirs[name] = d
    args = ["train", "cfg.yaml", *NO_PLOTS]
    res = dict(zip(subprocess_cases, cli_many([(args, dirs[n]) for n in subprocess_cases])))
    for name in cases:
        if name not in res:
            res[name] = nn(*args, cwd=dirs[name])
    return dirs, res


def assert_data_error_and_nothing_written(r: Res, needles, workdir: Path) -> None:
    """Exit 2, no traceback, exactly one line on stderr containing every needle, nothing on
    stdout, and no run directory in ``workdir/runs``."""
    assert r.rc == 2, f"exit {r.rc}; stderr: {r.err}"
    assert "Traceback" not in r.err and not r.tb
    assert len(r.err_lines) == 1, f"expected one line on stderr: {r.err!r}"
    msg = r.err_lines[0]
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    assert r.out == b""
    runs = workdir / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "nothing may be written on a data error"


# ---------------------------------------------------------------------- hostile files


class OpenOnUnpickle:
    """Unpickling this object calls open(path, 'w'): it creates a file, i.e. runs code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# ---------------------------------------------------------------------- comparing runs


def npz_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def assert_same_arrays(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), f"{k} differs"


def assert_same_run(run: Path, ref: Path) -> None:
    """Bit-for-bit the same training: metrics.csv bytes and every model.npz array."""
    assert (run / "metrics.csv").read_bytes() == (ref / "metrics.csv").read_bytes()
    assert_same_arrays(npz_arrays(run / "model.npz"), npz_arrays(ref / "model.npz"))
    s, r = (summary(p) for p in (run, ref))
    for key in ("status", "epochs_run", "best_epoch", "stopped_early", "metrics", "val_metrics"):
        assert s.get(key) == r.get(key), key


def strict_json(text: str):
    def bad(c):
        raise AssertionError(f"non-strict JSON constant {c}")

    return json.loads(text, parse_constant=bad)


# ---------------------------------------------------------------------- the library, driven directly


def random_mlp(sizes, hidden, output, dtype, seed, bias_scale=0.3, weight_scale=1.0):
    """An MLP with xavier weights times ``weight_scale`` and normal biases (scale ``bias_scale``)."""
    from nncli.model import MLP

    rng = np.random.default_rng(seed)
    model = MLP.initialise(sizes, hidden, output, rng, "xavier", dtype)
    for W in model.W:
        W *= weight_scale
    for b in model.b:
        b[...] = rng.normal(scale=bias_scale, size=b.shape)
    return model


def naive_forward(model, X):
    """[z_1, ..., z_L], y_hat in float64: z = a @ W.T + b, a = f(z)."""
    from nncli.activations import ACTIVATIONS

    a = np.asarray(X, dtype=np.float64)
    zs = []
    for W, b, name in zip(model.W, model.b, model.hidden + [model.output]):
        z = a @ W.astype(np.float64).T + b.astype(np.float64)
        zs.append(z)
        a = ACTIVATIONS[name](z)
    return zs, a


def targets_for(loss_name, output, n, k, rng):
    """n random targets that fit the loss (and, for mse, the output's range)."""
    if loss_name == "bce":
        return rng.integers(0, 2, size=(n, 1)).astype(np.float64)
    if loss_name == "cross_entropy":
        return np.eye(k)[rng.integers(0, k, size=n)]
    if output in ("sigmoid", "softmax", "step"):
        return rng.uniform(0, 1, size=(n, k))
    return rng.normal(size=(n, k))


def stop_after_steps(trainer, k: int) -> list[int]:
    """Ask the trainer to stop (as the SIGINT handler does) right after its k-th optimizer step.

    The optimizer instance's ``step`` is wrapped to count its calls (the Trainer looks it up
    on every call). Returns the counter (a one-element list), so the caller can check the
    stop point was reached.
    """
    real_step, count = trainer.optimizer.step, [0]

    def step(grads):
        real_step(grads)
        count[0] += 1
        if count[0] == k:
            trainer.stop_requested = True

    trainer.optimizer.step = step
    return count


class no_fp_warnings:
    """No warning (each is an error) and no overflow / division by zero / invalid operation inside."""

    def __enter__(self):
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("error")
        self._e = np.errstate(over="raise", divide="raise", invalid="raise")
        self._e.__enter__()
        return self

    def __exit__(self, *exc):
        self._e.__exit__(*exc)
        return self._w.__exit__(*exc)


# ---------------------------------------------------------------------- independent maths


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return sigmoid(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "identity":
        return z
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(f"test does not know activation {name}")


def my_forward(run_dir: Path, df) -> np.ndarray:
    """The network's outputs for the text DataFrame ``df``, from the saved files alone."""
    meta = json.loads((run_dir / "preprocess.json").read_text(encoding="utf-8"))
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    arrays = npz_arrays(run_dir / "model.npz")
    cols = []
    for f in meta["features"]:
        if f in meta["categories"]:
            cols += [(df[f] == c).to_numpy(dtype=np.float64) for c in meta["categories"][f]]
        else:
            cols.append(df[f].astype(np.float64).to_numpy())
    X = (np.column_stack(cols) - arrays["x_mean"].astype(np.float64)) / arrays["x_std"].astype(np.float64)
    layers = cfg["model"]["layers"]
    L = len(layers) - 1
    hidden = cfg["model"]["activation"]
    acts = ([hidden] * (L - 1) if isinstance(hidden, str) else hidden) + [cfg["model"]["output"]]
    a = X
    for l in range(1, L + 1):
        Wl, bl = arrays[f"W{l}"].astype(np.float64), arrays[f"b{l}"].astype(np.float64)
        assert Wl.shape == (layers[l], layers[l - 1])  # the lecture's W_ij: (n_out, n_in)
        a = _act(acts[l - 1], a @ Wl.T + bl)
    return a
