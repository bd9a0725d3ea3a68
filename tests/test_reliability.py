"""Reliability and security of nncli: hostile files, numerics, divergence, interruption,
resume, durability, and property-based fuzzing of configs and CSVs.

Most commands run in this process through Typer's CliRunner (a subprocess costs a second
or more of imports on a busy machine); only the tests about the process itself (SIGINT,
SIGKILL, exit status of a real interpreter) start ``python -m nncli``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import nncli.cli
import nncli.runs
from nncli.activations import ACTIVATIONS
from nncli.config import load_config
from nncli.job import CHECKPOINT, TrainingJob
from nncli.losses import LOSSES

from cli_helpers import _chdir as chdir

# ----------------------------------------------------------------------------- helpers

_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE", "PY_COLORS", "NO_COLOR")


@dataclass
class Res:
    rc: int
    out: str
    err: str
    tb: str  # the traceback of an exception that escaped the app ('' if none)

    @property
    def lines(self) -> list[str]:
        """Every non-empty line the command wrote, stdout and stderr together."""
        return [ln for ln in (self.out + self.err).splitlines() if ln.strip()]

    def show(self) -> str:
        return f"exit {self.rc}\nstdout: {self.out!r}\nstderr: {self.err!r}\n{self.tb}"


_HIDDEN_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def nn(*args, cwd) -> Res:
    """``nncli <args>`` in this process with ``cwd`` as the working directory.

    Warnings a real ``python -m nncli`` would print on stderr (pytest would otherwise
    swallow them) are appended to ``err`` as the interpreter formats them.
    """
    from typer.testing import CliRunner

    with chdir(cwd), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = CliRunner().invoke(nncli.cli.app, [str(a) for a in args], catch_exceptions=True)
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
                    for w in caught if not issubclass(w.category, _HIDDEN_BY_DEFAULT))
    tb = ""
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        tb = "".join(traceback.format_exception(type(r.exception), r.exception, r.exception.__traceback__))
    return Res(r.exit_code, r.stdout, r.stderr + shown, tb)


def assert_usage_error(r: Res, *needles: str) -> None:
    """Exit 2, exactly one line of output, no traceback, each needle in that line."""
    assert not r.tb, f"an exception escaped:\n{r.show()}"
    assert "Traceback" not in r.out + r.err, r.show()
    assert r.rc == 2, r.show()
    assert len(r.lines) == 1, f"expected one line of output:\n{r.show()}"
    for n in needles:
        assert n in r.lines[0], f"{n!r} not in {r.lines[0]!r}"


def cli_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _TERMINAL_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def runs_in(root: Path) -> list[Path]:
    d = Path(root) / "runs"
    return sorted(p for p in d.iterdir()) if d.is_dir() else []


def only_run(root: Path) -> Path:
    runs = runs_in(root)
    assert len(runs) == 1, f"expected one run directory, found {runs}"
    return runs[0]


def write_csv_rows(path: Path, header, rows) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def write_classes_csv(path: Path, n: int = 23, seed: int = 0, flip: float = 0.0) -> Path:
    """Two features, binary label 'a'/'b' (XOR of the signs); ``flip`` of the labels flipped."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = (X[:, 0] * X[:, 1] > 0)
    y ^= rng.random(n) < flip
    return write_csv_rows(path, ["x1", "x2", "label"],
                          [[repr(float(a)), repr(float(b)), "ab"[int(c)]] for (a, b), c in zip(X, y)])


def write_regression_csv(path: Path, n: int = 40, seed: int = 5) -> Path:
    """y = 3x + noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    y = 3 * x + rng.normal(0, 0.1, n)
    return write_csv_rows(path, ["x", "y"], [[repr(float(a)), repr(float(b))] for a, b in zip(x, y)])


def write_config(path: Path, *, train_csv: str, target: str, loss: str = "bce", name: str = "t", seed: int = 0,
                 layers=("auto", 4, "auto"), activation: str = "tanh", output=None, data_extra=None, **train) -> Path:
    model = {"layers": list(layers), "activation": activation}
    if output is not None:
        model["output"] = output
    tr = {"optimizer": "sgd", "lr": 0.1, "epochs": 3, "batch_size": 5}
    tr.update(train)
    cfg = {"name": name, "seed": seed, "data": {"train": train_csv, "target": target, **(data_extra or {})},
           "model": model, "loss": loss, "train": tr}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


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
    s, r = (json.loads((p / "summary.json").read_text(encoding="utf-8")) for p in (run, ref))
    for key in ("status", "epochs_run", "best_epoch", "stopped_early", "metrics", "val_metrics"):
        assert s.get(key) == r.get(key), key


def strict_json(text: str):
    def bad(c):
        raise AssertionError(f"non-strict JSON constant {c}")

    return json.loads(text, parse_constant=bad)


@contextlib.contextmanager
def strict_numerics():
    """Any numpy floating-point problem or any warning is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            yield


class _OpenOnUnpickle:
    """Unpickling this object calls open(path, 'w'): it creates a file, i.e. runs code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# ----------------------------------------------------------------------------- shared runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A directory with data.csv, cfg.yaml and one completed run in runs/ (trained in-process)."""
    base = tmp_path_factory.mktemp("trained")
    write_classes_csv(base / "data.csv")
    write_config(base / "cfg.yaml", train_csv="data.csv", target="label", epochs=3)
    r = nn("train", "cfg.yaml", "--no-plots", "-q", cwd=base)
    assert r.rc == 0, r.show()
    return base


def copy_trained(trained: Path, dest: Path) -> Path:
    """A private copy of the trained fixture; returns the run directory inside ``dest``."""
    shutil.copytree(trained, dest, dirs_exist_ok=True)
    return only_run(dest)


# ============================================================================= 1. YAML


def _attack_docs(marker: Path) -> dict[str, str]:
    base = (
        "name: t\nseed: 0\ndata:\n  train: data.csv\n  target: label\nmodel:\n  layers: [auto, 3, auto]\n"
        "loss: bce\ntrain:\n  lr: 0.1\n  epochs: 2\n"
    )
    cmd = f'["touch {marker}"]'
    return {
        "apply-in-value": base.replace("name: t", f"name: !!python/object/apply:os.system {cmd}"),
        "apply-document": f"!!python/object/apply:os.system {cmd}\n",
        "name-tag": base.replace("seed: 0", "seed: !!python/name:os.system"),
        "new-tag": base.replace("name: t", f"name: !!python/object/new:os.system {cmd}"),
        "module-tag": base.replace("name: t", "name: !!python/module:os"),
    }


@pytest.mark.parametrize("kind", ["apply-in-value", "apply-document", "name-tag", "new-tag", "module-tag"])
def test_yaml_python_tags_are_refused_and_run_nothing(tmp_path, kind):
    marker = tmp_path / "PWNED"
    write_classes_csv(tmp_path / "data.csv")
    (tmp_path / "evil.yaml").write_text(_attack_docs(marker)[kind], encoding="utf-8")
    r = nn("train", "evil.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "evil.yaml")
    assert not marker.exists(), "a YAML tag ran a shell command"
    assert not (tmp_path / "PWNED").exists()
    assert runs_in(tmp_path) == []


def test_yaml_attack_payload_is_live(tmp_path):
    """Control for the test above: the same document, loaded unsafely, does run the command."""
    marker = tmp_path / "CONTROL"
    yaml.unsafe_load(_attack_docs(marker)["apply-document"])
    assert marker.exists()


def test_yaml_python_tag_in_set_override_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    write_classes_csv(tmp_path / "data.csv")
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label")
    r = nn("train", "cfg.yaml", "--no-plots", "--set", f'name=!!python/object/apply:os.system ["touch {marker}"]', cwd=tmp_path)
    assert_usage_error(r, "--set")
    assert not marker.exists()
    assert runs_in(tmp_path) == []


@pytest.mark.parametrize(
    "text, line",
    [
        ("name: t\nseed: 0\ndata:\n  train: data.csv: oops\n  target: label\n", 4),
        ("name: t\nseed: 0\nmodel:\n  layers: [2, 3, 1]\n loss: bce\n", 5),
        ('name: t\nseed: 0\ndata: {train: data.csv, target: label}\nloss: "bce\n', 5),
    ],
    ids=["mapping-in-value", "bad-indent", "unclosed-quote"],
)
def test_yaml_syntax_error_names_the_line(tmp_path, text, line):
    (tmp_path / "broken.yaml").write_text(text, encoding="utf-8")
    r = nn("train", "broken.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "broken.yaml")
    found = re.search(r"\bline (\d+)", r.lines[0])
    assert found, f"no line number in {r.lines[0]!r}"
    assert int(found.group(1)) == line
    assert runs_in(tmp_path) == []


def test_deeply_nested_yaml_is_one_line_exit_2(tmp_path):
    """A hostile config nesting flow sequences thousands deep must not crash the loader."""
    write_classes_csv(tmp_path / "data.csv")
    (tmp_path / "deep.yaml").write_text("name: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    r = nn("train", "deep.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "deep.yaml")
    assert runs_in(tmp_path) == []


@pytest.mark.parametrize("layers", [["auto", 10 ** 20, "auto"], [10 ** 20, 3, "auto"], ["auto", 3, 10 ** 20]],
                         ids=["hidden", "inputs", "outputs"])
def test_absurd_layer_size_is_one_line_exit_2(tmp_path, layers):
    write_classes_csv(tmp_path / "data.csv")
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", layers=layers, epochs=2)
    r = nn("train", "cfg.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "model.layers")
    assert runs_in(tmp_path) == []


# ============================================================================= 2. run directories


def _run_command(cmd: str, run: Path) -> list:
    return {
        "eval": ["eval", run, "--no-plots"],
        "predict": ["predict", run, "data.csv", "-o", "pred.csv"],
        "gradcheck": ["gradcheck", run],
    }[cmd]


COMMANDS = ["eval", "predict", "gradcheck"]


@pytest.mark.parametrize("tensor", ["W1", "x_mean"])
@pytest.mark.parametrize("cmd", COMMANDS)
def test_model_npz_with_pickled_object_is_refused_without_running_code(trained, tmp_path, cmd, tensor):
    run = copy_trained(trained, tmp_path)
    marker = tmp_path / "PWNED2"
    arrays = npz_arrays(run / "model.npz")
    arrays[tensor] = np.array([_OpenOnUnpickle(str(marker))], dtype=object)
    np.savez(run / "model.npz", **arrays)  # allow_pickle is on for writing
    before = sorted(p.name for p in run.iterdir())
    r = nn(*_run_command(cmd, run), cwd=tmp_path)
    assert_usage_error(r)
    assert tensor in r.lines[0] or "pickle" in r.lines[0].lower(), r.lines[0]
    assert not marker.exists(), "loading model.npz unpickled an object (ran code)"
    assert not (tmp_path / "pred.csv").exists()
    assert sorted(p.name for p in run.iterdir()) == before  # no eval report written
    # control: the payload is live, so the assertion above can fail
    with np.load(run / "model.npz", allow_pickle=True) as z:
        z[tensor]
    assert marker.exists()


@pytest.mark.parametrize("cmd", COMMANDS)
def test_truncated_model_npz_is_one_line_exit_2(trained, tmp_path, cmd):
    run = copy_trained(trained, tmp_path)
    data = (run / "model.npz").read_bytes()
    (run / "model.npz").write_bytes(data[: len(data) // 2])
    r = nn(*_run_command(cmd, run), cwd=tmp_path)
    assert_usage_error(r, "model.npz")
    assert not (tmp_path / "pred.csv").exists()


@pytest.mark.parametrize("cmd", COMMANDS)
def test_shape_mismatched_model_npz_names_the_tensor(trained, tmp_path, cmd):
    run = copy_trained(trained, tmp_path)
    arrays = npz_arrays(run / "model.npz")
    n_out, n_in = arrays["W1"].shape
    arrays["W1"] = np.zeros((n_out + 1, n_in), arrays["W1"].dtype)
    np.savez(run / "model.npz", **arrays)
    r = nn(*_run_command(cmd, run), cwd=tmp_path)
    assert_usage_error(r, "'W1'")
    assert not (tmp_path / "pred.csv").exists()


def test_init_npz_with_pickled_object_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "PWNED3"
    write_classes_csv(tmp_path / "data.csv")
    np.savez(tmp_path / "init.npz", W1=np.array([_OpenOnUnpickle(str(marker))], dtype=object),
             b1=np.zeros(3), W2=np.zeros((1, 3)), b2=np.zeros(1))
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", layers=(2, 3, 1))
    r = nn("train", "cfg.yaml", "--no-plots", "--set", "model.init=init.npz", cwd=tmp_path)
    assert_usage_error(r, "init.npz")
    assert not marker.exists()
    assert runs_in(tmp_path) == []


_OUTSIDE_RE = re.compile(r"(^x$)|(-x-[0-9a-f]{4}$)|(^b$)|(-b-[0-9a-f]{4}$)")


def _outside_entries(d: Path) -> set:
    try:
        return {n for n in os.listdir(d) if _OUTSIDE_RE.search(n)}
    except OSError:
        return set()


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", "ABS", "..", "x\n"],
                         ids=["dotdot", "tmp-abs", "slash", "abs-in-parent", "dotdot-only", "trailing-newline"])
def test_run_name_cannot_escape_the_runs_dir(trained, tmp_path, name):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(trained / "data.csv", work / "data.csv")
    shutil.copy(trained / "cfg.yaml", work / "cfg.yaml")
    (work / "runs").mkdir()
    if name == "ABS":
        name = str(tmp_path / "x")
    watched = [tmp_path, work, tmp_path.parent, Path("/tmp")]
    before = {d: _outside_entries(d) for d in watched}
    before_all = sorted(os.listdir(tmp_path))
    r = nn("train", "cfg.yaml", "--no-plots", "-q", "--name", name, cwd=work)
    assert_usage_error(r, "name")
    assert runs_in(work) == [], "a run directory was created for an invalid name"
    assert sorted(os.listdir(tmp_path)) == before_all
    for d in watched:
        assert _outside_entries(d) <= before[d], f"something named after the run appeared in {d}"


# ============================================================================= 3. numerics

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_sigmoid_at_extreme_logits(dtype):
    z = np.array([[1000.0], [-1000.0], [0.0]], dtype=dtype)
    act = ACTIVATIONS["sigmoid"]
    with strict_numerics():
        a = act.f(z)
        d = act.df(z, a)
    assert a.dtype == dtype
    assert np.all(np.isfinite(a)) and np.all((a >= 0) & (a <= 1))
    np.testing.assert_array_equal(a.ravel(), np.array([1.0, 0.0, 0.5], dtype=dtype))
    assert np.all(np.isfinite(d)) and np.all(d >= 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_softmax_at_extreme_logits(dtype):
    Z = np.array([[1000, -1000], [-1000, 1000], [1000, 1000], [-1000, -1000], [1000, 0]], dtype=dtype)
    act = ACTIVATIONS["softmax"]
    with strict_numerics():
        P = act.f(Z)
        back = act.backward(Z, P, np.ones_like(Z))
    assert P.dtype == dtype
    assert np.all(np.isfinite(P)) and np.all((P >= 0) & (P <= 1))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(P, [[1, 0], [0, 1], [0.5, 0.5], [0.5, 0.5], [1, 0]], atol=1e-6)
    assert np.all(np.isfinite(back))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("z, y, expected", [(1000, 0, 1000.0), (-1000, 1, 1000.0), (1000, 1, 0.0), (-1000, 0, 0.0)])
def test_bce_at_extreme_logits(dtype, z, y, expected):
    Z = np.array([[z]], dtype=dtype)
    Y = np.array([[y]], dtype=dtype)
    loss = LOSSES["bce"]
    with strict_numerics():
        A = ACTIVATIONS["sigmoid"].f(Z)
        E = loss.value(Y, A, Z, "sigmoid")
        g = loss.grad(Y, A)
    assert math.isfinite(E) and E >= 0
    assert E == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(
    "z, y, expected",
    [((1000, -1000), (0, 1), 2000.0), ((1000, -1000), (1, 0), 0.0), ((-1000, -1000), (1, 0), math.log(2)),
     ((1000, 1000), (0, 1), math.log(2))],
)
def test_cross_entropy_at_extreme_logits(dtype, z, y, expected):
    Z = np.array([z], dtype=dtype)
    Y = np.array([y], dtype=dtype)
    loss = LOSSES["cross_entropy"]
    with strict_numerics():
        A = ACTIVATIONS["softmax"].f(Z)
        E = loss.value(Y, A, Z, "softmax")
        g = loss.grad(Y, A)
    assert np.all((A >= 0) & (A <= 1))
    assert math.isfinite(E) and E >= 0
    # E = logsumexp(z) - z_y: in float32 the difference of two numbers near 1000 keeps
    # about 1000 * 2^-23 ~ 1e-4 of absolute precision
    assert E == pytest.approx(expected, rel=1e-6, abs=1e-6 if dtype == np.float64 else 1e-3)
    assert np.all(np.isfinite(g))


# ============================================================================= 4. divergence


@pytest.mark.parametrize("dtype, lr", [("float32", "1e6"), ("float64", "1e6"), ("float32", "10")])
def test_divergence_is_exit_1_with_a_consistent_run(tmp_path, dtype, lr):
    write_regression_csv(tmp_path / "reg.csv")
    write_config(tmp_path / "reg.yaml", train_csv="reg.csv", target="y", loss="mse", output="identity",
                 optimizer="sgd", lr=0.01, epochs=20, batch_size=8, dtype=dtype)
    r = nn("train", "reg.yaml", "--no-plots", "--set", f"train.lr={lr}", cwd=tmp_path)
    assert not r.tb, r.show()
    assert r.rc == 1, r.show()
    run = only_run(tmp_path)
    summary = strict_json((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "diverged"
    assert summary["epochs_run"] < 20
    with open(run / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:2] == ["epoch", "loss"]
    assert len(rows) - 1 == summary["epochs_run"]
    assert [int(row[0]) for row in rows[1:]] == list(range(1, summary["epochs_run"] + 1))
    weights = npz_arrays(run / "model.npz")
    assert any(k.startswith("W") for k in weights)
    for k, v in weights.items():
        assert np.all(np.isfinite(v)), f"{k} is not finite"
    errors = [ln for ln in r.err.splitlines() if "error" in ln]
    assert len(errors) == 1, r.show()
    assert "lower learning rate" in errors[0].lower(), errors[0]
    assert not (run / CHECKPOINT).exists()


# ============================================================================= 5. interruption and resume


def _stop_after_steps(job: TrainingJob, k: int) -> None:
    """Request a stop (as the SIGINT handler does) right after the job's k-th optimizer step."""
    opt = job.trainer.optimizer
    real_step = opt.step
    count = [0]

    def step(grads):
        real_step(grads)
        count[0] += 1
        if count[0] == k:
            job.trainer.stop_requested = True

    opt.step = step


def _train_library(cfg_path: Path, runs_dir: Path, stop_at_step=None, stop_after_epoch=None) -> tuple[Path, dict]:
    """Train with the library; optionally request a stop after the k-th optimizer step
    (counted in this job) or after the k-th epoch record it yields."""
    job = TrainingJob(load_config(cfg_path), runs_dir)
    run = job.start()
    if stop_at_step is not None:
        _stop_after_steps(job, stop_at_step)
    for i, _rec in enumerate(job.epochs(), 1):
        if stop_after_epoch is not None and i == stop_after_epoch:
            job.trainer.stop_requested = True
    return run, job.finish(plots=False)


def _resume_library(run: Path, stop_at_step=None) -> dict:
    job = TrainingJob.resume(run)
    assert job.start() == run
    assert not (run / "summary.json").exists(), "a resumed run must be incomplete until it finishes"
    if stop_at_step is not None:
        _stop_after_steps(job, stop_at_step)
    for _ in job.epochs():
        pass
    return job.finish(plots=False)


def _checkpoint_meta(run: Path) -> dict:
    with np.load(run / CHECKPOINT, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def _assert_interrupted(run: Path, summary: dict, mid_epoch: bool) -> None:
    assert summary["status"] == "interrupted", summary
    assert (run / CHECKPOINT).exists()
    meta = _checkpoint_meta(run)
    if mid_epoch:
        assert meta["pos"] > 0, "the stop did not happen inside an epoch"
    else:
        assert meta["pos"] == 0


RESUME_CASES = {
    # name: (csv kind, config overrides, interruptions [(step or None, epoch or None), ...])
    "sgd-mid-epoch": ("classes", dict(optimizer="sgd", lr=0.3), [(7, None)]),
    "sgd-boundary": ("classes", dict(optimizer="sgd", lr=0.3), [(None, 2)]),
    "momentum-mid-epoch": ("classes", dict(optimizer="momentum", lr=0.1), [(13, None)]),
    "momentum-boundary": ("classes", dict(optimizer="momentum", lr=0.1), [(None, 3)]),
    "adam-mid-epoch": ("classes", dict(optimizer="adam", lr=0.05), [(11, None)]),
    "adam-boundary": ("classes", dict(optimizer="adam", lr=0.05), [(None, 1)]),
    "adam-twice": ("classes", dict(optimizer="adam", lr=0.05), [(6, None), (10, None)]),
    "adam-float64-l2": ("classes", dict(optimizer="adam", lr=0.05, dtype="float64", l2=0.01), [(8, None)]),
    "momentum-regression": ("regression", dict(optimizer="momentum", lr=0.02), [(12, None)]),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_library_interrupt_and_resume_is_bit_for_bit(tmp_path, monkeypatch, case):
    kind, train, stops = RESUME_CASES[case]
    monkeypatch.chdir(tmp_path)
    if kind == "classes":
        write_classes_csv(tmp_path / "data.csv", n=23)  # 23 rows, batches of 5: last batch 3
        write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", seed=2,
                     epochs=6, batch_size=5, shuffle=True, **train)
    else:
        write_regression_csv(tmp_path / "data.csv", n=23)
        write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="y", loss="mse", seed=2,
                     epochs=6, batch_size=5, shuffle=True, **train)
    ref, ref_summary = _train_library(tmp_path / "cfg.yaml", tmp_path / "ref")
    assert ref_summary["status"] == "completed"

    step, epoch = stops[0]
    run, summary = _train_library(tmp_path / "cfg.yaml", tmp_path / "runs", stop_at_step=step, stop_after_epoch=epoch)
    _assert_interrupted(run, summary, mid_epoch=step is not None)
    for step, _ in stops[1:]:  # interrupted again after resuming
        summary = _resume_library(run, stop_at_step=step)
        _assert_interrupted(run, summary, mid_epoch=True)
    summary = _resume_library(run)
    assert summary["status"] == "completed"
    assert not (run / CHECKPOINT).exists()
    assert_same_run(run, ref)


def test_library_resume_with_val_split_and_early_stopping(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_classes_csv(tmp_path / "data.csv", n=40, seed=3, flip=0.3)
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", seed=1, layers=("auto", 16, "auto"),
                 optimizer="adam", lr=0.05, epochs=60, batch_size=7, shuffle=True,
                 early_stopping={"patience": 3}, data_extra={"val_split": 0.25})
    ref, ref_summary = _train_library(tmp_path / "cfg.yaml", tmp_path / "ref")
    # test setup: early stopping must really happen for this test to mean anything
    assert ref_summary["stopped_early"] is True, ref_summary
    best, stopped = ref_summary["best_epoch"], ref_summary["epochs_run"]
    assert 1 < best < stopped <= 60
    n_train = ref_summary["metrics"]["rows"]
    steps_per_epoch = math.ceil(n_train / 7)
    assert n_train % 7 != 0
    points = [(None, 1), (None, best), (None, best + 1), (steps_per_epoch * best + 2, None),
              (steps_per_epoch * (stopped - 1) + 1, None)]
    for i, (step, epoch) in enumerate(points):
        run, summary = _train_library(tmp_path / "cfg.yaml", tmp_path / f"runs{i}", stop_at_step=step, stop_after_epoch=epoch)
        _assert_interrupted(run, summary, mid_epoch=step is not None)
        summary = _resume_library(run)
        assert summary["status"] == "completed"
        assert summary["best_epoch"] == best
        assert_same_run(run, ref)


# ------------------------------------------------------------------ CLI: SIGINT / SIGKILL

LONG_EPOCHS = 200


@pytest.fixture(scope="module")
def long_case(tmp_path_factory) -> Path:
    """A config long enough to interrupt (a few seconds), and its uninterrupted reference run."""
    base = tmp_path_factory.mktemp("long")
    write_classes_csv(base / "data.csv", n=200, seed=7)
    write_config(base / "long.yaml", name="long", train_csv="data.csv", target="label", seed=1,
                 layers=("auto", 8, "auto"), optimizer="momentum", lr=0.05, epochs=LONG_EPOCHS, batch_size=8)
    r = nn("train", "long.yaml", "--no-plots", "-q", cwd=base)
    assert r.rc == 0, r.show()
    ref = only_run(base)
    shutil.move(str(ref), str(base / "ref"))
    return base


def _start_training(cwd: Path, config: str, err_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nncli", "train", config, "--no-plots"],
        cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(err_path, "w", encoding="utf-8"), env=cli_env(),
    )


def _wait_for(cond, proc: subprocess.Popen, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        if proc.poll() is not None:
            raise AssertionError(f"nncli exited ({proc.returncode}) before {what}")
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_and_resume_matches_uninterrupted(long_case, tmp_path, sig):
    shutil.copy(long_case / "data.csv", tmp_path / "data.csv")
    shutil.copy(long_case / "long.yaml", tmp_path / "long.yaml")
    err_path = tmp_path / "stderr.txt"
    proc = _start_training(tmp_path, "long.yaml", err_path)
    try:
        # the first progress line: the handler is installed and training is under way
        _wait_for(lambda: re.search(r"epoch\s+1/", err_path.read_text(encoding="utf-8")), proc, 60, "the first epoch")
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err_path.read_text(encoding="utf-8")
    assert "Traceback" not in err, err
    assert rc == 130, err
    run = only_run(tmp_path)
    assert (run / CHECKPOINT).exists()
    summary = strict_json((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "interrupted"
    assert 0 < summary["epochs_run"] < LONG_EPOCHS
    assert "--resume" in err.strip().splitlines()[-1]

    r = nn("train", "--resume", run, "--no-plots", "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert runs_in(tmp_path) == [run]
    assert not (run / CHECKPOINT).exists()
    assert_same_run(run, long_case / "ref")


def test_checkpoint_every_survives_sigkill(long_case, tmp_path):
    shutil.copy(long_case / "data.csv", tmp_path / "data.csv")
    text = (long_case / "long.yaml").read_text(encoding="utf-8")
    assert text.count("  batch_size: 8\n") == 1
    (tmp_path / "long.yaml").write_text(text.replace("  batch_size: 8\n", "  batch_size: 8\n  checkpoint_every: 5\n"),
                                        encoding="utf-8")
    err_path = tmp_path / "stderr.txt"
    proc = _start_training(tmp_path, "long.yaml", err_path)
    try:
        ckpt = _wait_for(lambda: next((p / CHECKPOINT for p in runs_in(tmp_path) if (p / CHECKPOINT).exists()), None),
                         proc, 60, "checkpoint.npz")
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == -signal.SIGKILL
    run = ckpt.parent
    assert ckpt.exists()
    assert not (run / "summary.json").exists()
    meta = _checkpoint_meta(run)
    assert meta["epoch"] % 5 == 0 and 0 < meta["epoch"] < LONG_EPOCHS

    r = nn("train", "--resume", run, "--no-plots", "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert not (run / CHECKPOINT).exists()
    assert_same_run(run, long_case / "ref")


# ------------------------------------------------------------------ --resume refusals


def test_resume_of_completed_run_is_refused_and_leaves_it_untouched(trained, tmp_path):
    run = copy_trained(trained, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    r = nn("train", "--resume", run, "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "completed")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize("kind", ["incomplete-run", "empty-dir", "missing-dir", "file"])
def test_resume_without_checkpoint_is_refused(trained, tmp_path, kind):
    run = copy_trained(trained, tmp_path)
    if kind == "incomplete-run":
        (run / "summary.json").unlink()
        target = run
    elif kind == "empty-dir":
        target = tmp_path / "empty"
        target.mkdir()
    elif kind == "missing-dir":
        target = tmp_path / "nope"
    else:
        target = tmp_path / "data.csv"
    before = sorted(p.name for p in run.iterdir())
    r = nn("train", "--resume", target, "--no-plots", cwd=tmp_path)
    assert_usage_error(r)
    assert sorted(p.name for p in run.iterdir()) == before
    assert runs_in(tmp_path) == [run]


def test_resume_with_a_config_argument_is_refused(trained, tmp_path):
    run = copy_trained(trained, tmp_path)
    r = nn("train", "cfg.yaml", "--resume", run, "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "--resume")
    assert runs_in(tmp_path) == [run]


def _interrupted_run(tmp_path: Path) -> Path:
    write_classes_csv(tmp_path / "data.csv")
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", epochs=4)
    with chdir(tmp_path):
        run, summary = _train_library(tmp_path / "cfg.yaml", tmp_path / "runs", stop_after_epoch=1)
    assert summary["status"] == "interrupted"
    assert (run / CHECKPOINT).exists()
    return run


@pytest.mark.parametrize("damage", ["truncated", "pickled-object", "wrong-shape", "not-npz"])
def test_resume_with_a_damaged_checkpoint_is_one_line_exit_2(tmp_path, damage):
    run = _interrupted_run(tmp_path)
    ckpt = run / CHECKPOINT
    marker = tmp_path / "PWNED4"
    if damage == "truncated":
        data = ckpt.read_bytes()
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "not-npz":
        ckpt.write_bytes(b"this is not a checkpoint\n")
    else:
        arrays = npz_arrays(ckpt)
        if damage == "pickled-object":
            arrays["param/W1"] = np.array([_OpenOnUnpickle(str(marker))], dtype=object)
        else:
            arrays["param/W1"] = np.zeros((7, 7), arrays["param/W1"].dtype)
        np.savez(ckpt, **arrays)
    r = nn("train", "--resume", run, "--no-plots", cwd=tmp_path)
    assert_usage_error(r, CHECKPOINT)
    assert not marker.exists()
    assert (run / "summary.json").exists(), "a refused resume must not make the run incomplete"


# ============================================================================= 6. durability


class _OsProxy:
    """The os module with some functions replaced (installed as nncli.runs.os only)."""

    def __init__(self, **overrides):
        self._over = overrides

    def __getattr__(self, name):
        return self._over.get(name) or getattr(os, name)


def _failing_write(after_bytes: int):
    written = [0]

    def write(fd, data):
        if written[0] >= after_bytes:
            raise OSError(28, "No space left on device")
        n = os.write(fd, bytes(data[: max(1, min(len(data), after_bytes - written[0], 4096))]))
        written[0] += n
        return n

    return write


def _raise(*_a, **_k):
    raise OSError(5, "Input/output error")


@pytest.mark.parametrize("failure", ["write-midway", "fsync", "replace"])
@pytest.mark.parametrize("existing", [True, False], ids=["old-file", "no-file"])
def test_atomic_write_failure_keeps_old_content_and_leaves_no_temp(tmp_path, monkeypatch, failure, existing):
    target = tmp_path / "model.npz"
    old = b"old content\n" * 100
    if existing:
        target.write_bytes(old)
    new = bytes(range(256)) * 400  # 100 kB, several write calls
    over = {"write-midway": {"write": _failing_write(50_000)}, "fsync": {"fsync": _raise},
            "replace": {"replace": _raise}}[failure]
    monkeypatch.setattr(nncli.runs, "os", _OsProxy(**over))
    with pytest.raises(OSError):
        nncli.runs.atomic_write_bytes(target, new)
    monkeypatch.undo()
    if existing:
        assert target.read_bytes() == old
        assert sorted(os.listdir(tmp_path)) == ["model.npz"], "a temporary file was left behind"
    else:
        assert os.listdir(tmp_path) == [], "a partial or temporary file was left behind"


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    nncli.runs.atomic_write_bytes(target, b"new" * 10000)
    assert target.read_bytes() == b"new" * 10000
    assert os.listdir(tmp_path) == ["f.bin"]


def _small_job(tmp_path: Path) -> TrainingJob:
    write_classes_csv(tmp_path / "data.csv")
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", epochs=2)
    return TrainingJob(load_config(tmp_path / "cfg.yaml"), tmp_path / "runs")


def test_summary_json_is_the_last_file_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = _small_job(tmp_path)
    order = []
    real = nncli.runs.atomic_write_bytes

    def recording(path, data):
        real(path, data)
        order.append(Path(path).name)

    monkeypatch.setattr(nncli.runs, "atomic_write_bytes", recording)
    run = job.start()
    for _ in job.epochs():
        pass
    job.finish(plots=False)
    assert order[-1] == "summary.json"
    assert order.count("summary.json") == 1
    for name in ("config.yaml", "preprocess.json", "model.npz", "metrics.csv"):
        assert name in order[:-1], f"{name} was not written before summary.json"
    assert sorted(p.name for p in run.iterdir()) == sorted(set(order))


def test_failure_writing_summary_leaves_an_incomplete_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = _small_job(tmp_path)

    def broken(run_dir, summary):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nncli.runs, "write_summary", broken)
    run = job.start()
    for _ in job.epochs():
        pass
    with pytest.raises(OSError):
        job.finish(plots=False)
    for name in ("config.yaml", "preprocess.json", "model.npz", "metrics.csv"):
        assert (run / name).exists(), name
    assert not (run / "summary.json").exists()
    monkeypatch.undo()
    with pytest.raises(nncli.runs.RunError, match="incomplete"):
        nncli.runs.load_run(run)
    r = nn("eval", run, "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "incomplete")


# ============================================================================= 7. property-based

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _assert_clean_outcome(r: Res, root: Path) -> None:
    """0 with a complete run, 1 with a complete diverged run, or 2 in one line with no run."""
    event(f"exit {r.rc}")
    assert not r.tb, f"an exception escaped:\n{r.show()}"
    assert "Traceback" not in r.out + r.err, r.show()
    assert r.rc in (0, 1, 2), r.show()
    runs = runs_in(root)
    if r.rc == 2:
        assert len(r.lines) == 1, f"exit 2 must print one line:\n{r.show()}"
        assert runs == [], f"exit 2 left run directories {runs}:\n{r.show()}"
        return
    assert len(runs) == 1, f"exit {r.rc} but run directories {runs}:\n{r.show()}"
    summary_path = runs[0] / "summary.json"
    assert summary_path.exists(), f"run without summary.json:\n{r.show()}"
    summary = strict_json(summary_path.read_text(encoding="utf-8"))
    assert summary["status"] == {0: "completed", 1: "diverged"}[r.rc], (summary, r.show())
    for name in ("config.yaml", "metrics.csv", "model.npz", "preprocess.json"):
        assert (runs[0] / name).exists(), name
    assert not (runs[0] / CHECKPOINT).exists()


# ------------------------------------------------------------------ (a) configs

FUZZ_CSV = "x1,x2,y,label,ü\n" + "".join(
    f"{a},{b},{int(a * b > 0)},{'abc'[i % 3]},{'pq'[i % 2]}\n"
    for i, (a, b) in enumerate(np.round(np.random.default_rng(0).normal(size=(12, 2)), 3).tolist())
)

_ACTS = ["identity", "step", "sigmoid", "tanh", "relu", "leaky_relu"]
_BAD_NAMES = ["", "Tanh", "relu6", "softmax", "sigmoid ", 3, None, True]


def _name_of(valid):
    return st.one_of(st.sampled_from(valid), st.sampled_from(_BAD_NAMES))


_size = st.one_of(st.integers(-2, 5), st.just("auto"), st.sampled_from(["x", "3", 2.5, 2.0, None, True, [2], 10 ** 20]))

# key path -> values mixing valid and invalid ones
_CONFIG_VALUES = {
    ("name",): st.sampled_from(["fz", "a.b", "ü", "../x", "x y", 3, "", None, "x" * 101]),
    ("seed",): st.one_of(st.integers(-2, 5), st.sampled_from(["a", 1.5, "3", 2 ** 70])),
    ("data", "train"): st.sampled_from(["data.csv", "missing.csv", ".", 5, None, "fz.yaml"]),
    ("data", "target"): st.sampled_from(["y", "label", "x1", "ü", "nope", ["x1", "x2"], [], ["y", "y"], 3, None]),
    ("data", "features"): st.sampled_from([["x1"], ["x1", "x2"], ["y"], ["nope"], [], "x1"]),
    ("data", "val_split"): st.sampled_from([0.25, 0.5, 0.2, 0, 1, 1.5, "a", 0.99]),
    ("data", "test_split"): st.sampled_from([0.25, 0.5, 0.1, 0.9]),
    ("data", "val"): st.sampled_from(["data.csv", "missing.csv"]),
    ("data", "categorical"): st.sampled_from([["label"], ["x1"], ["nope"], "label", ["y"]]),
    ("data", "exclude"): st.sampled_from([["x2"], ["x1", "x2", "label", "ü"], ["y"], ["nope"]]),
    ("data", "standardize"): st.sampled_from([True, False, "no", 2]),
    ("model", "layers"): st.one_of(st.lists(_size, min_size=0, max_size=4), st.sampled_from(["2,4,1", 3, None])),
    ("model", "activation"): st.one_of(_name_of(_ACTS), st.lists(st.sampled_from(["tanh", "relu", "bogus"]), max_size=3)),
    ("model", "output"): _name_of(_ACTS + ["softmax"]),
    ("model", "init"): st.sampled_from(["xavier", "he", "normal", "orthogonal", "w.npz", "data.csv.npz", 3]),
    ("loss",): _name_of(["bce", "cross_entropy", "mse"]),
    ("train", "optimizer"): _name_of(["sgd", "momentum", "adam"]),
    ("train", "lr"): st.one_of(st.floats(-1, 10, allow_nan=False),
                               st.sampled_from(["1e-3", "0.1", "fast", 0, -0.1, 1e6, 1e300, float("inf"), float("nan"), True])),
    ("train", "epochs"): st.one_of(st.integers(-1, 3), st.sampled_from(["2", 2.5, None])),
    ("train", "batch_size"): st.one_of(st.integers(-1, 13), st.sampled_from(["full", "half", "3", 2.5, 0, None, 10 ** 20])),
    ("train", "shuffle"): st.sampled_from([True, False, "maybe", 1]),
    ("train", "dtype"): st.sampled_from(["float32", "float64", "float16", 64]),
    ("train", "l2"): st.sampled_from([0, 0.01, -1, "x", 1e6]),
    ("train", "momentum"): st.sampled_from([0.5, 1.0, -0.1, 0.0]),
    ("train", "beta2"): st.sampled_from([0.5, 1.0, 0.0]),
    ("train", "eps"): st.sampled_from([1e-8, 0, -1]),
    ("train", "early_stopping"): st.sampled_from([{"patience": 1}, {"patience": 0}, {"min_delta": -1}, "yes", None,
                                                  {"patince": 2}, {}]),
    ("train", "checkpoint_every"): st.sampled_from([1, 0, "x", 5]),
    # unknown keys
    ("train", "lrr"): st.just(0.1),
    ("model", "dropout"): st.just(0.5),
    ("foo",): st.just(1),
    ("data", "traim"): st.just("data.csv"),
}


@st.composite
def fuzz_configs(draw):
    shape = draw(st.sampled_from(["mapping"] * 16 + ["list", "scalar", "empty", "section-not-mapping"]))
    if shape == "list":
        return [1, 2, 3]
    if shape == "scalar":
        return "train"
    if shape == "empty":
        return None
    cfg = {"name": "fz", "seed": 0,
           "data": {"train": "data.csv", "target": "y"},
           "model": {"layers": ["auto", 3, "auto"], "activation": "tanh"},
           "loss": "bce",
           "train": {"optimizer": "sgd", "lr": 0.1, "epochs": 2, "batch_size": 4}}
    keys = draw(st.lists(st.sampled_from(sorted(_CONFIG_VALUES)), max_size=4, unique=True))
    for key in keys:
        node = cfg
        for part in key[:-1]:
            node = node[part]
        node[key[-1]] = draw(_CONFIG_VALUES[key])
    if shape == "section-not-mapping":
        cfg[draw(st.sampled_from(["data", "model", "train"]))] = draw(st.sampled_from([["lr", 0.1], "x", None, 3]))
    return cfg


@FUZZ
@given(raw=fuzz_configs())
def test_fuzzed_configs_either_train_or_fail_in_one_line(tmp_path, raw):
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    (root / "data.csv").write_text(FUZZ_CSV, encoding="utf-8")
    (root / "fz.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    r = nn("train", "fz.yaml", "--set", "train.epochs=2", "--no-plots", cwd=root)
    _assert_clean_outcome(r, root)


# ------------------------------------------------------------------ (b) CSVs

_WEIRD = st.one_of(
    st.sampled_from(["1e308", "-1e308", "1e309", "inf", "-inf", "Infinity", "nan", "NA", "", "null", "#N/A",
                     "abc", "é", "日本語", "True", "false", "1,5", '"q"', " 7 ", "0x10", "1_000", "١٢", "\ufeff1",
                     "-", "+", ".", "1e", "--1", "a\nb", "\r", "\x00"]),
    st.integers(-(10 ** 30), 10 ** 30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=4),
)
_CELLS = {
    "num": st.floats(-100, 100, allow_nan=False).map(lambda x: repr(round(x, 3))),
    "bin": st.sampled_from(["0", "1"]),
    "text": st.sampled_from(["a", "b", "c", "ü"]),
    "weird": _WEIRD,
}


@st.composite
def fuzz_csvs(draw):
    ncols = draw(st.integers(1, 4))
    if draw(st.integers(0, 5)) == 0:  # odd names, sometimes duplicated
        header = draw(st.lists(st.sampled_from(["a", "b", "y", "ü", "x y", "", " ", "Unnamed: 0", "a"]),
                               min_size=ncols, max_size=ncols))
    else:
        header = ["a", "ü", "c", "y"][-ncols:]
    kinds = draw(st.lists(st.sampled_from(["num"] * 3 + ["bin"] * 2 + ["text", "weird"]), min_size=ncols, max_size=ncols))
    rows = []
    for _ in range(draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 4, 5, 6]))):
        row = []
        for kind in kinds:
            spoiled = kind != "weird" and draw(st.integers(0, 39)) == 0
            row.append(draw(_WEIRD if spoiled else _CELLS[kind]))
        if draw(st.integers(0, 11)) == 0:  # a ragged row
            row = row + ["1"] if draw(st.booleans()) else row[:-1]
        rows.append(row)
    return {
        "header": header,
        "rows": rows,
        "target": draw(st.sampled_from([header[-1]] * 3 + header + ["y", "nope"])),
        "loss": draw(st.sampled_from(["bce", "cross_entropy", "mse"])),
        "encoding": draw(st.sampled_from(["utf-8"] * 16 + ["utf-8-sig"] * 3 + ["latin-1"])),
        "val_split": draw(st.sampled_from([None, None, None, 0.3])),
    }


def _write_fuzz_csv(path: Path, case: dict) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(case["header"])
    w.writerows(case["rows"])
    path.write_bytes(buf.getvalue().encode(case["encoding"], errors="replace"))


@FUZZ
@given(case=fuzz_csvs())
def test_fuzzed_csvs_either_train_or_fail_in_one_line(tmp_path, case):
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    _write_fuzz_csv(root / "data.csv", case)
    extra = {"val_split": case["val_split"]} if case["val_split"] else None
    write_config(root / "fz.yaml", name="fz", train_csv="data.csv", target=case["target"], loss=case["loss"],
                 layers=("auto", 3, "auto"), epochs=2, batch_size=2, data_extra=extra)
    r = nn("train", "fz.yaml", "--no-plots", cwd=root)
    _assert_clean_outcome(r, root)


# ------------------------------------------------------------------ cases the fuzzers found, pinned


@pytest.mark.parametrize("split", ["val_split", "test_split", None])
def test_target_naming_an_empty_header_column_is_one_line_exit_2(tmp_path, split):
    """A column with an empty header is read as 'Unnamed: N'; targeting '' must still be a clean error."""
    (tmp_path / "data.csv").write_text("a,\n1,0\n2,1\n3,0\n4,1\n", encoding="utf-8")
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="", epochs=2,
                 data_extra={split: 0.5} if split else None)
    r = nn("train", "cfg.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "data.csv")
    assert runs_in(tmp_path) == []


def _run_process(cwd: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nncli", *map(str, args)], cwd=str(cwd), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120, env=cli_env())


@pytest.mark.parametrize("column", ["c", "y"], ids=["feature", "regression-target"])
def test_value_too_large_for_float32_is_one_line_exit_2(tmp_path, column):
    """1e308 is a finite number in the CSV but overflows float32 (the default dtype): a data
    error naming the row and column, on one line of stderr (no numpy warnings), no run."""
    rows = [["1", "2"], ["3", "4"], ["5", "7"]]
    rows[1][0 if column == "c" else 1] = "1e308"
    write_csv_rows(tmp_path / "data.csv", ["c", "y"], rows)
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="y", loss="mse", epochs=2,
                 data_extra={"standardize": False})
    p = _run_process(tmp_path, "train", "cfg.yaml", "--no-plots")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, p.stderr
    assert len(lines) == 1, p.stderr
    assert f"'{column}'" in lines[0] and "row 2" in lines[0], lines[0]
    assert p.stdout == ""
    assert runs_in(tmp_path) == []
