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


def xor_yaml(*subs: tuple[str, str]) -> str:
    """configs/xor.yaml with each (old, new) substitution applied exactly once."""
    text = XOR_YAML.read_text(encoding="utf-8")
    for old, new in subs:
        assert text.count(old) == 1, f"test setup: {old!r} occurs {text.count(old)} times in xor.yaml"
        text = text.replace(old, new)
    return text


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
