"""Run the nncli CLI from tests: in a subprocess (``cli``, ``cli_many``) where the process
matters, or in this process through Typer's CliRunner (``nn``), which is much faster."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
import csv
import io
from pathlib import Path

import pandas as pd

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
