"""Run the nncli CLI from tests: in a subprocess (``cli``, ``cli_many``) where the process
matters, or in this process through Typer's CliRunner (``nn``), which is much faster."""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import subprocess
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE", "PY_COLORS")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _TERMINAL_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _supports_no_plots(command: str) -> bool:
    """Pictures are not what these tests are about; skip drawing them when the CLI allows it."""
    try:
        import nncli.cli as cli_mod

        return "no_plots" in inspect.signature(getattr(cli_mod, command)).parameters
    except Exception:
        return False


TRAIN_FLAGS = ["--no-plots"] if _supports_no_plots("train") else []
EVAL_FLAGS = ["--no-plots"] if _supports_no_plots("eval_") else []


@dataclass
class Res:
    rc: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8")

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def cli_many(jobs) -> list[Res]:
    """Start every ``(args, cwd[, stdin_bytes])`` job at once; results in the same order."""
    procs = []
    for job in jobs:
        args, cwd = job[0], job[1]
        data = job[2] if len(job) > 2 else None
        p = subprocess.Popen(
            [sys.executable, "-m", "nncli", *map(str, args)], cwd=str(cwd), env=_env(),
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        procs.append((p, data))
    out = []
    for p, data in procs:
        o, e = p.communicate(data, timeout=180)
        out.append(Res(p.returncode, o, e.decode("utf-8", "replace")))
    return out


def cli(*args, cwd, stdin: bytes | None = None) -> Res:
    """``python -m nncli ARGS`` in a subprocess with ``cwd``."""
    return cli_many([(list(args), cwd, stdin)])[0]


@contextmanager
def _chdir(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def nn(*args, cwd) -> Res:
    """The same command line run in this process (Typer's CliRunner) with ``cwd``.

    A subprocess costs over a second of imports on a loaded machine, so only the tests about
    process-level behaviour (exit status, stdin, pipes, files left behind) use ``cli``; the
    rest drive the identical Typer app here. An exception that escapes the app shows up in
    ``err`` as a traceback.
    """
    from typer.testing import CliRunner

    from nncli.cli import app

    with _chdir(cwd):
        r = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)
    err = r.stderr
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        err += "".join(traceback.format_exception(type(r.exception), r.exception, r.exception.__traceback__))
    return Res(r.exit_code, r.stdout_bytes, err)


def write_rows(path: Path, rows: list[dict], columns: list[str], bom: bool = False) -> Path:
    """A UTF-8 CSV of ``rows`` (dicts) with ``columns``, optionally with a BOM."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([r[c] for c in columns])
    path.write_text(("\ufeff" if bom else "") + buf.getvalue(), encoding="utf-8")
    return path


def read_text_csv(src) -> pd.DataFrame:
    """Every cell as the text it is written as."""
    if isinstance(src, (bytes, bytearray)):
        src = io.BytesIO(src)
    return pd.read_csv(src, dtype=str, keep_default_na=False, encoding="utf-8")


# ---------------------------------------------------------------------- independent maths

def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "identity":
        return z
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(f"test does not know activation {name}")


def my_forward(run_dir: Path, df: pd.DataFrame) -> np.ndarray:
    """The network's outputs for the text DataFrame ``df``, from the saved files alone."""
    meta = json.loads((run_dir / "preprocess.json").read_text(encoding="utf-8"))
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    with np.load(run_dir / "model.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    cols = []
    for f in meta["features"]:
        if f in meta["categories"]:
            for c in meta["categories"][f]:
                cols.append((df[f] == c).to_numpy(dtype=np.float64))
        else:
            cols.append(df[f].astype(np.float64).to_numpy())
    X = np.column_stack(cols)
    X = (X - arrays["x_mean"].astype(np.float64)) / arrays["x_std"].astype(np.float64)
    layers = cfg["model"]["layers"]
    L = len(layers) - 1
    hidden = cfg["model"]["activation"]
    hidden = [hidden] * (L - 1) if isinstance(hidden, str) else hidden
    acts = hidden + [cfg["model"]["output"]]
    a = X
    for l in range(1, L + 1):
        Wl, bl = arrays[f"W{l}"].astype(np.float64), arrays[f"b{l}"].astype(np.float64)
        assert Wl.shape == (layers[l], layers[l - 1])  # the lecture's W_ij: (n_out, n_in)
        a = _act(acts[l - 1], a @ Wl.T + bl)
    return a
