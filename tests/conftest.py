"""Shared helpers for the nncli test suite.

- ``run_cli``: run ``python -m nncli ...`` in a subprocess (stderr is a pipe, never a terminal).
- ``workdir``: a temporary directory holding ``datasets/xor.csv`` and ``configs/xor.yaml``
  copied from the repository, the layout the README's commands assume.
- ``xor_yaml``: the repository's xor.yaml text with exact line substitutions (each one must
  apply, so a test can never pass because its edit silently did nothing).
- ``write_blobs_csv``: a small, separable two-class CSV for runs that need more than 4 rows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
XOR_CSV = REPO / "datasets" / "xor.csv"
XOR_YAML = REPO / "configs" / "xor.yaml"

# variables that could make rich believe it talks to a terminal or force colours
_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE", "PY_COLORS")


def _train_options() -> set:
    import inspect

    import nncli.cli

    return set(inspect.signature(nncli.cli.train).parameters)


# Drawing loss.png / decision_boundary.png costs seconds of matplotlib per run; runs that
# do not look at pictures skip them when the CLI offers --no-plots.
NO_PLOTS = ["--no-plots"] if "no_plots" in _train_options() else []


def cli_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _TERMINAL_ENV}
    env.pop("NO_COLOR", None)  # do not hide escape codes that would otherwise be written
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        env.update(extra)
    return env


def run_cli(*args, cwd, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m nncli <args>`` with ``cwd``; stdin closed, stdout/stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "nncli", *map(str, args)],
        cwd=str(cwd),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
    )


def run_cli_forked(*args, cwd, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the nncli CLI in a forked child of the test process, like ``python -m nncli``.

    Starting ``python -m nncli`` costs about a second of imports (numpy, pandas, pydantic,
    typer); the many rejected-config cases would make the suite slow. The child is a real
    process with its own cwd, stdin from /dev/null and stdout/stderr redirected at the file
    descriptor level to files (so nothing looks like a terminal); an uncaught exception
    prints its traceback on stderr and exits 1, as the interpreter would. ``nncli.view``
    (which creates the rich console) is imported afresh in the child.
    Falls back to :func:`run_cli` where fork is unavailable.
    """
    if not hasattr(os, "fork"):
        return run_cli(*args, cwd=cwd, timeout=timeout)
    import tempfile
    import time
    import traceback

    import nncli
    import nncli.cli
    import nncli.config  # noqa: F401  (pre-import the heavy modules once, in the parent)
    import nncli.job  # noqa: F401
    import pandas  # noqa: F401
    import rich.console  # noqa: F401
    import rich.live  # noqa: F401
    import rich.table  # noqa: F401

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # ---------------------------------------------------------- child
            code = 1
            try:
                os.chdir(str(cwd))
                fd = os.open(os.devnull, os.O_RDONLY)
                os.dup2(fd, 0)
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdin = open(0, closefd=False)
                sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
                sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)
                for k in _TERMINAL_ENV + ("NO_COLOR",):
                    os.environ.pop(k, None)
                sys.modules.pop("nncli.view", None)
                if hasattr(nncli, "view"):
                    delattr(nncli, "view")
                sys.argv = ["nncli", *map(str, args)]
                try:
                    nncli.cli.main()
                    code = 0
                except SystemExit as e:
                    if e.code is None:
                        code = 0
                    elif isinstance(e.code, int):
                        code = e.code
                    else:
                        print(e.code, file=sys.stderr)
                        code = 1
                except BaseException:
                    traceback.print_exc()
                    code = 1
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        # ------------------------------------------------------------------------- parent
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise subprocess.TimeoutExpired(["nncli", *map(str, args)], timeout)
            time.sleep(0.005)
        rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            ["nncli", *map(str, args)], rc, out.read().decode("utf-8"), err.read().decode("utf-8")
        )


def xor_yaml(*subs: tuple[str, str], drop: tuple[str, ...] = ()) -> str:
    """configs/xor.yaml with each (old, new) substitution applied exactly once, and the
    lines starting with each prefix in ``drop`` removed (each must match one line)."""
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


def setup_workdir(path: Path) -> Path:
    (path / "datasets").mkdir(parents=True, exist_ok=True)
    (path / "configs").mkdir(parents=True, exist_ok=True)
    shutil.copy(XOR_CSV, path / "datasets" / "xor.csv")
    shutil.copy(XOR_YAML, path / "configs" / "xor.yaml")
    return path


def run_dirs(path: Path) -> list[Path]:
    """Every run directory under ``path/runs`` (empty list if there is no runs dir)."""
    runs = Path(path) / "runs"
    if not runs.exists():
        return []
    return sorted(p for p in runs.iterdir())


def write_blobs_csv(path: Path, n_per_class: int = 20, seed: int = 1) -> Path:
    """Two well separated Gaussian blobs, columns x1,x2,label with labels a/b."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, centre in (("a", (-2.0, -2.0)), ("b", (2.0, 2.0))):
        pts = rng.normal(centre, 0.5, size=(n_per_class, 2))
        rows += [(f"{x:.6f}", f"{y:.6f}", label) for x, y in pts]
    order = rng.permutation(len(rows))
    lines = ["x1,x2,label"] + [",".join(rows[i]) for i in order]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


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


@pytest.fixture
def workdir(tmp_path) -> Path:
    """tmp_path with datasets/xor.csv and configs/xor.yaml copied in."""
    return setup_workdir(tmp_path)


@pytest.fixture
def blobs_workdir(workdir) -> Path:
    """workdir plus datasets/blobs.csv and configs/blobs.yaml."""
    write_blobs_csv(workdir / "datasets" / "blobs.csv")
    (workdir / "configs" / "blobs.yaml").write_text(BLOBS_YAML, encoding="utf-8")
    return workdir
