"""Batch experiments from the shell: exit codes, output without a terminal, concurrent
runs, ``nncli runs`` and ``nncli sweep``.

Every command runs as ``python -m nncli ...`` in a real subprocess whose stdout and
stderr are files or pipes (never a terminal), with a temporary directory as cwd that
holds ``xor.yaml`` and ``datasets/xor.csv`` copied from the repository. Each start of
``python -m nncli`` costs about a second, so commands that do not depend on each other
are started together and collected afterwards.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
XOR_CSV = REPO / "datasets" / "xor.csv"
XOR_YAML = REPO / "configs" / "xor.yaml"

TIMEOUT = 240  # seconds for one command; generous, the machine may be busy
ESC = "\x1b"
RUN_ID_RE = re.compile(r"\d{8}-\d{6}-[A-Za-z0-9._-]+-[0-9a-f]{4}")

# Variables that would let rich (or click) emit colour although the output is no terminal.
_FORCING_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE", "PY_COLORS", "NO_COLOR")


# ----------------------------------------------------------------------------- helpers


def cli_env(**extra: str) -> dict:
    """The test process's environment without anything that forces or suppresses colour,
    and with a colour-capable TERM, so only the missing terminal keeps escapes away."""
    env = {k: v for k, v in os.environ.items() if k not in _FORCING_ENV}
    env["TERM"] = "xterm-256color"
    env["COLORTERM"] = "truecolor"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


class Proc:
    """A started ``python -m nncli`` whose stdout/stderr go to temporary files."""

    def __init__(self, args, cwd: Path, env: dict | None = None):
        self.args = [str(a) for a in args]
        self.out = tempfile.TemporaryFile("w+b")
        self.err = tempfile.TemporaryFile("w+b")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "nncli", *self.args],
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=self.err,
            env=env if env is not None else cli_env(),
        )

    def result(self, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise
        texts = []
        for fh in (self.out, self.err):
            fh.seek(0)
            texts.append(fh.read().decode("utf-8"))
            fh.close()
        return subprocess.CompletedProcess(["nncli", *self.args], rc, texts[0], texts[1])


def nncli(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return Proc(args, cwd, env).result()


def nncli_many(commands, cwd: Path, env: dict | None = None) -> list[subprocess.CompletedProcess]:
    """Start every command (a list of args) at once, then collect them in order."""
    procs = [Proc(args, cwd, env) for args in commands]
    try:
        return [p.result() for p in procs]
    finally:
        for p in procs:
            if p.popen.poll() is None:
                p.popen.kill()
                p.popen.wait()


def show(r: subprocess.CompletedProcess) -> str:
    return f"nncli {' '.join(r.args[1:])}\nexit {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"


def setup_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "datasets").mkdir(exist_ok=True)
    shutil.copy(XOR_CSV, path / "datasets" / "xor.csv")
    shutil.copy(XOR_YAML, path / "xor.yaml")
    return path


def one_run_dir(r: subprocess.CompletedProcess, cwd: Path) -> Path:
    """stdout of ``nncli train`` (without --json) is exactly one line: the run directory."""
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and r.stdout.endswith("\n"), show(r)
    path = cwd / lines[0]
    assert path.is_dir(), show(r)
    return path


def read_csv(path_or_text, text: bool = False) -> list[dict]:
    fh = io.StringIO(path_or_text) if text else open(path_or_text, newline="", encoding="utf-8")
    with fh:
        return list(csv.DictReader(fh))


def metrics_rows(run: Path) -> tuple[list[str], list[list[str]]]:
    with open(run / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text(encoding="utf-8"))


def tmp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]


def xor_identity_yaml() -> str:
    """xor.yaml with linear hidden units: trains (badly) at lr 0.5, overflows at lr 1e37."""
    text = XOR_YAML.read_text(encoding="utf-8")
    old = "activation: tanh"
    assert text.count(old) == 1, "test setup: xor.yaml changed"
    return text.replace(old, "activation: identity")


# A regression problem whose linear network (identity hidden units, full batch) trains at
# lr 0.01 and overflows within a few epochs at lr 1: loss inf, never finite again.
LIN_YAML = """\
name: lin
seed: 0
data:
  train: datasets/lin.csv
  target: y
model:
  layers: [auto, 4, auto]
  activation: identity
loss: mse
train:
  optimizer: sgd
  lr: 0.01
  epochs: 50
  batch_size: full
"""


def write_lin(path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, 40)
    lines = ["x,y"] + [f"{a:.5f},{3 * a + 1:.5f}" for a in x]
    (path / "datasets" / "lin.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (path / "lin.yaml").write_text(LIN_YAML, encoding="utf-8")


# ----------------------------------------------------------------------------- exit code 1


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """(cwd, result, run_dir) of a regression run that diverges at --set train.lr=1.0."""
    wd = setup_dir(tmp_path_factory.mktemp("diverge"))
    write_lin(wd)
    r = nncli("train", "lin.yaml", "--no-plots", "--set", "train.lr=1.0", "--set", "loss=mse", cwd=wd)
    return wd, r, (wd / r.stdout.strip()) if r.stdout.strip() else None


def test_diverged_run_exits_1_and_keeps_what_it_trained(diverged):
    wd, r, run = diverged
    assert r.returncode == 1, show(r)
    run = one_run_dir(r, wd)
    s = summary(run)
    assert s["status"] == "diverged", s
    # the epochs before divergence are kept, one metrics row each
    assert s["epochs_run"] >= 1, s
    header, rows = metrics_rows(run)
    assert header[:3] == ["epoch", "loss", "r2"], header
    assert len(rows) == s["epochs_run"], (len(rows), s)
    assert [int(row[0]) for row in rows] == list(range(1, s["epochs_run"] + 1))
    assert all(math.isfinite(float(row[1])) for row in rows), rows
    # the last finite weights are saved
    with np.load(run / "model.npz", allow_pickle=False) as z:
        for k in z.files:
            if z[k].dtype.kind == "f":
                assert np.isfinite(z[k]).all(), k
        assert {"W1", "W2", "b1", "b2"} <= set(z.files)
    assert (run / "config.yaml").is_file()
    # the error says what to do
    assert "lower learning rate" in r.stderr.lower(), show(r)
    assert r.stderr.rstrip().splitlines()[-1].startswith("nncli: error:"), show(r)
    assert ESC not in r.stdout + r.stderr


# ----------------------------------------------------------------------------- exit code 2


def test_usage_config_and_data_errors_exit_2_and_write_nothing(tmp_path):
    wd = setup_dir(tmp_path)
    cases = [
        ["train", "xor.yaml", "--bogus-option"],
        ["train", "xor.yaml", "--set", "train.lr"],  # no '='
        ["train", "xor.yaml", "--set", "train.lrr=0.1"],  # unknown key
        ["train", "missing.yaml"],  # no such config file
        ["train", "xor.yaml", "--set", "data.train=datasets/missing.csv"],  # no such data file
    ]
    results = nncli_many(cases, wd)
    for r in results:
        assert r.returncode == 2, show(r)
        assert r.stdout == "", show(r)
        assert "Traceback" not in r.stderr, show(r)
        assert ESC not in r.stderr, show(r)
    bogus, no_eq, lrr, no_cfg, no_csv = results
    assert "--bogus-option" in bogus.stderr, show(bogus)
    # config and data errors: one line naming the key or file
    for r in (no_eq, lrr, no_cfg, no_csv):
        assert len(r.stderr.strip().splitlines()) == 1, show(r)
    assert "train.lr" in no_eq.stderr
    assert "train.lrr" in lrr.stderr and "did you mean 'lr'" in lrr.stderr, show(lrr)
    assert "missing.yaml" in no_cfg.stderr, show(no_cfg)
    assert "missing.csv" in no_csv.stderr, show(no_csv)
    # nothing is written
    assert not (wd / "runs").exists() or not any((wd / "runs").iterdir()), list((wd / "runs").iterdir())


# ----------------------------------------------------------------------------- exit code 130


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_stops_training_with_checkpoint_and_exit_130(tmp_path, signame):
    wd = setup_dir(tmp_path)
    total = 10_000_000
    out = tempfile.TemporaryFile("w+b")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nncli", "train", "xor.yaml", "--no-plots", "--set", f"train.epochs={total}"],
        cwd=str(wd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, env=cli_env(),
        text=True, encoding="utf-8",
    )
    lines: list[str] = []
    progress = threading.Event()

    def pump():
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("epoch"):
                progress.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert progress.wait(90), f"no progress line on stderr: {''.join(lines)}"
        time.sleep(0.3)
        assert proc.poll() is None, "training ended before the signal"
        proc.send_signal(getattr(signal, signame))
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    err = "".join(lines)
    out.seek(0)
    stdout = out.read().decode("utf-8")
    out.close()
    r = subprocess.CompletedProcess(["nncli", "train"], rc, stdout, err)
    assert rc == 130, show(r)
    run = one_run_dir(r, wd)
    s = summary(run)
    assert s["status"] == "interrupted", s
    assert 1 <= s["epochs_run"] < total, s
    assert (run / "checkpoint.npz").is_file(), sorted(p.name for p in run.iterdir())
    with np.load(run / "checkpoint.npz", allow_pickle=False) as z:
        assert len(z.files) > 0
    assert (run / "model.npz").is_file()
    _, rows = metrics_rows(run)
    assert len(rows) == s["epochs_run"], (len(rows), s)
    assert "--resume" in err, show(r)
    assert "Traceback" not in err, show(r)
    assert ESC not in stdout + err


# ----------------------------------------------------------------------------- no terminal


@pytest.mark.parametrize("variant", ["plain", "no_color"])
def test_no_escape_codes_without_a_terminal(tmp_path, variant):
    """Pipes are not terminals: train, eval, runs and gradcheck write no escape codes, with
    FORCE_COLOR unset (and TERM claiming colour support), and with NO_COLOR=1."""
    wd = setup_dir(tmp_path)
    env = cli_env(NO_COLOR="1") if variant == "no_color" else cli_env()
    assert "FORCE_COLOR" not in env
    as_json = variant == "no_color"
    train = nncli("train", "xor.yaml", "--no-plots", "--set", "train.epochs=30", *(["--json"] if as_json else []),
                  cwd=wd, env=env)
    assert train.returncode == 0, show(train)
    if as_json:
        lines = train.stdout.splitlines()
        assert len(lines) == 1, show(train)
        obj = json.loads(lines[0])
        assert isinstance(obj, dict)
        assert obj["status"] == "completed" and obj["epochs_run"] == 30, obj
        run = wd / obj["run_dir"]
        assert run.is_dir() and (run / "summary.json").is_file()
    else:
        run = one_run_dir(train, wd)
    # progress lines go to stderr only
    progress = [ln for ln in train.stderr.splitlines() if re.match(r"^epoch\s+\d+/30\b", ln)]
    assert len(progress) >= 2, show(train)
    assert re.match(r"^epoch\s+30/30\b", progress[-1]), progress

    rel = run.relative_to(wd)
    others = nncli_many([["eval", rel, "--no-plots"], ["runs", "runs"], ["gradcheck", rel]], wd, env)
    for r in [train, *others]:
        assert r.returncode == 0, show(r)
        assert ESC not in r.stdout, show(r)
        assert ESC not in r.stderr, show(r)
    ev, listing, gc = others
    assert "accuracy" in ev.stdout, show(ev)
    assert run.name in listing.stdout, show(listing)
    assert "W1" in gc.stdout, show(gc)


# ----------------------------------------------------------------------------- concurrency


def test_sixteen_concurrent_runs_with_the_same_name(tmp_path):
    wd = setup_dir(tmp_path)
    n, epochs = 16, 200
    args = ["train", "xor.yaml", "--name", "same", "--quiet", "--no-plots", "--set", f"train.epochs={epochs}"]
    results = nncli_many([args] * n, wd)
    for r in results:
        assert r.returncode == 0, show(r)
    runs = [one_run_dir(r, wd) for r in results]
    assert len({str(p) for p in runs}) == n, [r.stdout for r in results]
    dirs = sorted(p for p in (wd / "runs").iterdir() if p.is_dir())
    assert len(dirs) == n, dirs
    assert {p.resolve() for p in dirs} == {p.resolve() for p in runs}
    metrics = set()
    for run in dirs:
        assert "-same-" in run.name, run.name
        for f in ("config.yaml", "metrics.csv", "model.npz", "summary.json", "preprocess.json"):
            assert (run / f).is_file(), (run, f)
        s = summary(run)
        assert s["status"] == "completed" and s["epochs_run"] == epochs, s
        header, rows = metrics_rows(run)
        assert len(rows) == epochs, (run, len(rows))
        metrics.add((run / "metrics.csv").read_bytes())
        assert yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["name"] == "same"
    # the same seed gives bit-identical training, whatever else runs at the same time
    assert len(metrics) == 1, f"{len(metrics)} different metrics.csv contents"
    ref = np.load(dirs[0] / "model.npz", allow_pickle=False)
    for run in dirs[1:]:
        with np.load(run / "model.npz", allow_pickle=False) as z:
            assert sorted(z.files) == sorted(ref.files)
            for k in z.files:
                assert np.array_equal(z[k], ref[k]), (run, k)
    ref.close()
    assert tmp_leftovers(wd) == []
    assert not [p for p in (wd / "runs").iterdir() if not p.is_dir()]


# ----------------------------------------------------------------------------- nncli runs


@pytest.fixture(scope="module")
def listing(tmp_path_factory):
    """A runs directory with two completed runs (lr 0.1, 0.5), a diverged one, an
    incomplete one and two corrupt ones, and the output of several ``nncli runs``."""
    wd = setup_dir(tmp_path_factory.mktemp("listing"))
    (wd / "xor_id.yaml").write_text(xor_identity_yaml(), encoding="utf-8")
    base = ["--no-plots", "--quiet", "--runs-dir", "R", "--set", "train.epochs=50"]
    a, b, c = nncli_many(
        [["train", "xor.yaml", *base, "--set", "train.lr=0.1"],
         ["train", "xor.yaml", *base, "--set", "train.lr=0.5"],
         ["train", "xor_id.yaml", *base, "--set", "train.lr=1.0e+37"]],
        wd,
    )
    assert a.returncode == 0, show(a)
    assert b.returncode == 0, show(b)
    assert c.returncode == 1, show(c)
    runs = {"lr01": one_run_dir(a, wd), "lr05": one_run_dir(b, wd), "diverged": one_run_dir(c, wd)}
    assert summary(runs["diverged"])["status"] == "diverged"
    R = wd / "R"
    runs["incomplete"] = R / "20990101-000000-xor-0001"
    shutil.copytree(runs["lr05"], runs["incomplete"])
    (runs["incomplete"] / "summary.json").unlink()
    runs["bad_summary"] = R / "20990101-000000-xor-0002"
    shutil.copytree(runs["lr01"], runs["bad_summary"])
    (runs["bad_summary"] / "summary.json").write_text("{not json", encoding="utf-8")
    runs["bad_config"] = R / "20990101-000000-xor-0003"
    shutil.copytree(runs["lr01"], runs["bad_config"])
    (runs["bad_config"] / "config.yaml").write_text("name: xor\ntrain: [lr: 0.1\n  epochs: {\n", encoding="utf-8")

    calls = {
        "table": ["runs", "R"],
        "json_loss": ["runs", "R", "--format", "json", "--sort", "loss"],
        "json_accuracy": ["runs", "R", "--format", "json", "--sort", "accuracy"],
        "json_where": ["runs", "R", "--format", "json", "--where", "train.lr=0.1"],
        "json_where_exp": ["runs", "R", "--format", "json", "--where", "train.lr=1e-1", "--where", "status=completed"],
        "csv_loss": ["runs", "R", "--format", "csv", "--sort", "loss"],
        "bad_sort": ["runs", "R", "--sort", "acuracy"],
    }
    out = dict(zip(calls, nncli_many(list(calls.values()), wd)))
    return wd, runs, out


def _records(r) -> list[dict]:
    assert r.returncode == 0, show(r)
    data = json.loads(r.stdout)
    assert isinstance(data, list), data
    return data


def test_runs_skips_corrupt_directories_with_a_warning(listing):
    wd, runs, out = listing
    for key in ("table", "json_loss", "csv_loss"):
        r = out[key]
        assert r.returncode == 0, show(r)
        assert "Traceback" not in r.stderr
        for bad in ("bad_summary", "bad_config"):
            hits = [ln for ln in r.stderr.splitlines() if runs[bad].name in ln]
            assert len(hits) == 1 and "warning" in hits[0], show(r)
        assert runs["bad_summary"].name not in r.stdout and runs["bad_config"].name not in r.stdout, show(r)
    table = out["table"]
    for key in ("lr01", "lr05", "diverged", "incomplete"):
        assert runs[key].name in table.stdout, show(table)
    assert ESC not in table.stdout + table.stderr


def test_runs_json_lists_statuses_and_varying_keys(listing):
    wd, runs, out = listing
    recs = _records(out["json_loss"])
    by_id = {r["id"]: r for r in recs}
    expected = {runs["lr01"].name: "completed", runs["lr05"].name: "completed",
                runs["diverged"].name: "diverged", runs["incomplete"].name: "incomplete"}
    assert {i: r["status"] for i, r in by_id.items()} == expected
    assert by_id[runs["lr01"].name]["train.lr"] == pytest.approx(0.1)
    assert by_id[runs["lr05"].name]["train.lr"] == pytest.approx(0.5)
    assert by_id[runs["incomplete"].name]["train.lr"] == pytest.approx(0.5)
    for rec in recs:
        assert "train.epochs" not in rec, rec  # 50 everywhere: not a differing key
        assert "seed" not in rec and "data.train" not in rec, rec
    s = summary(runs["lr01"])
    assert by_id[runs["lr01"].name]["loss"] == pytest.approx(s["metrics"]["loss"])
    assert by_id[runs["lr01"].name]["accuracy"] == pytest.approx(s["metrics"]["accuracy"])
    assert by_id[runs["lr01"].name]["epochs"] == 50


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _check_order(recs, key, descending):
    values = [r.get(key) for r in recs]
    present = [v for v in values if not _is_missing(v)]
    # missing values come last
    assert all(not _is_missing(v) for v in values[: len(present)]), values
    want = sorted(present, reverse=descending)
    assert present == want, (key, values)
    return present


def test_runs_sort_loss_ascending_and_accuracy_descending(listing):
    wd, runs, out = listing
    by_loss = _records(out["json_loss"])
    present = _check_order(by_loss, "loss", descending=False)
    assert len(present) >= 2
    completed = [r["id"] for r in by_loss if r["status"] == "completed"]
    l01, l05 = (summary(runs[k])["metrics"]["loss"] for k in ("lr01", "lr05"))
    assert completed == sorted([runs["lr01"].name, runs["lr05"].name], key=lambda i: l01 if i == runs["lr01"].name else l05)
    assert by_loss[-1]["id"] == runs["incomplete"].name  # no loss: last
    by_acc = _records(out["json_accuracy"])
    _check_order(by_acc, "accuracy", descending=True)
    assert by_acc[-1]["id"] == runs["incomplete"].name
    assert {r["id"] for r in by_acc} == {r["id"] for r in by_loss}


def test_runs_where_filters(listing):
    wd, runs, out = listing
    recs = _records(out["json_where"])
    assert [r["id"] for r in recs] == [runs["lr01"].name], recs


def test_runs_where_reads_numbers_as_train_set_does(listing):
    """--set train.lr=1e-1 trains with 0.1 (README: nncli reads 1e-3 as 0.001), so
    --where train.lr=1e-1 must find that run, like --where train.lr=0.1."""
    wd, runs, out = listing
    recs = _records(out["json_where_exp"])
    assert [r["id"] for r in recs] == [runs["lr01"].name], recs


def test_runs_csv_has_the_same_rows_as_json(listing):
    wd, runs, out = listing
    r = out["csv_loss"]
    assert r.returncode == 0, show(r)
    rows = read_csv(r.stdout, text=True)
    recs = _records(out["json_loss"])
    assert [row["id"] for row in rows] == [rec["id"] for rec in recs]
    assert list(rows[0].keys()) == list(recs[0].keys())
    for row, rec in zip(rows, recs):
        assert row["status"] == rec["status"]
        for k, v in rec.items():
            if isinstance(v, float) and not math.isnan(v):
                assert float(row[k]) == pytest.approx(v), (k, row[k], v)
            elif _is_missing(v):
                assert row[k] == "", (k, row[k])


def test_runs_unknown_sort_column_exits_2_with_did_you_mean(listing):
    wd, runs, out = listing
    r = out["bad_sort"]
    assert r.returncode == 2, show(r)
    assert "did you mean 'accuracy'" in r.stderr, show(r)
    assert r.stdout == "", show(r)
    assert "Traceback" not in r.stderr


def test_runs_with_bce_and_mse_runs_together(listing, diverged, tmp_path):
    """A regression run (loss: mse) listed next to classifiers (loss: bce): the config key
    ``loss`` differs between them, and the listing must still work in every format."""
    wd, runs, _ = listing
    _, dr, reg_run = diverged
    assert reg_run is not None and reg_run.is_dir(), show(dr)
    R = tmp_path / "mixed"
    R.mkdir()
    shutil.copytree(runs["lr01"], R / runs["lr01"].name)
    shutil.copytree(runs["lr05"], R / runs["lr05"].name)
    shutil.copytree(reg_run, R / reg_run.name)
    js, cs, tb = nncli_many([["runs", R, "--format", "json"], ["runs", R, "--format", "csv"], ["runs", R]], tmp_path)
    problems = []  # every format is checked, so one failure shows the whole picture
    for r in (js, cs, tb):
        if r.returncode != 0 or "Traceback" in r.stderr:
            problems.append(f"exit {r.returncode}: {' '.join(r.args[1:])}: {(r.stderr.strip().splitlines() or [''])[-1]}")
    if js.returncode == 0:
        recs = json.loads(js.stdout)
        statuses = {r["id"]: r["status"] for r in recs}
        want = {runs["lr01"].name: "completed", runs["lr05"].name: "completed", reg_run.name: "diverged"}
        if statuses != want:
            problems.append(f"json statuses {statuses} != {want}")
        lr01 = next((r for r in recs if r["id"] == runs["lr01"].name), {})
        if lr01.get("loss") != pytest.approx(summary(runs["lr01"])["metrics"]["loss"]):
            problems.append(f"json 'loss' of {runs['lr01'].name} is {lr01.get('loss')!r}, not the final training loss")
    if cs.returncode == 0:
        header = next(csv.reader(io.StringIO(cs.stdout)))
        if len(header) != len(set(header)):
            problems.append(f"duplicate CSV columns: {header}")
    if tb.returncode == 0 and reg_run.name not in tb.stdout:
        problems.append("table does not list the regression run")
    assert not problems, "\n".join(problems)


def test_runs_lists_300_runs(listing, tmp_path):
    wd, runs, _ = listing
    R = tmp_path / "many"
    R.mkdir()
    src = runs["lr01"]
    for i in range(300):
        shutil.copytree(src, R / f"20990101-000000-xor-{i:04x}")
    r = nncli("runs", R, "--format", "csv", cwd=tmp_path)
    assert r.returncode == 0, show(r)
    rows = read_csv(r.stdout, text=True)
    assert len(rows) == 300
    assert {row["status"] for row in rows} == {"completed"}
    assert len({row["id"] for row in rows}) == 300


# ----------------------------------------------------------------------------- nncli sweep


SWEEP_YAML = """\
base: xor.yaml
grid:
  train.lr: [0.1, 0.5, 1.0]
  model.layers: [[auto, 4, auto], [auto, 8, auto]]
  train.epochs: [30]
"""


def _progress(stderr: str, total: int) -> list[str]:
    return [ln for ln in stderr.splitlines() if re.match(rf"^\[\d+/{total}\] ", ln)]


def _sweep_dir(r, wd: Path) -> Path:
    lines = r.stdout.rstrip("\n").splitlines()
    assert lines, show(r)
    path = wd / lines[-1]
    assert path.is_dir(), show(r)
    assert path.parent.resolve() == (wd / "runs").resolve(), path
    return path


def test_sweep_grid_runs_every_point_and_ranks_them(tmp_path):
    wd = setup_dir(tmp_path)
    (wd / "lr_layers.yaml").write_text(SWEEP_YAML, encoding="utf-8")
    r = nncli("sweep", "lr_layers.yaml", "--jobs", "2", cwd=wd)
    assert r.returncode == 0, show(r)
    sd = _sweep_dir(r, wd)
    assert "lr_layers" in sd.name
    entries = sorted(sd.iterdir())
    run_dirs = [p for p in entries if p.is_dir()]
    assert len(run_dirs) == 6, entries
    assert sorted(p.name for p in entries if not p.is_dir()) == ["results.csv", "sweep.yaml"], entries
    for run in run_dirs:
        s = summary(run)
        assert s["status"] == "completed" and s["epochs_run"] == 30, (run, s)
        assert (run / "model.npz").is_file() and (run / "metrics.csv").is_file()
    # one progress line per point, all completed
    progress = _progress(r.stderr, 6)
    assert len(progress) == 6, show(r)
    assert sorted(int(ln[1:ln.index("/")]) for ln in progress) == [1, 2, 3, 4, 5, 6]
    assert all("completed" in ln for ln in progress), progress
    # results.csv: one row per point, the grid exactly
    rows = read_csv(sd / "results.csv")
    assert len(rows) == 6, rows
    assert {row["id"] for row in rows} == {p.name for p in run_dirs}
    combos = {(float(row["train.lr"]), tuple(json.loads(row["model.layers"]))) for row in rows}
    assert combos == {(lr, (2, h, 1)) for lr, h in itertools.product((0.1, 0.5, 1.0), (4, 8))}
    for row in rows:
        cfg = yaml.safe_load((sd / row["id"] / "config.yaml").read_text(encoding="utf-8"))
        assert cfg["train"]["lr"] == pytest.approx(float(row["train.lr"]))
        assert cfg["model"]["layers"] == json.loads(row["model.layers"])
    # ranked: best accuracy first, in results.csv and in the table on stdout
    acc = [float(row["accuracy"]) for row in rows]
    assert acc == sorted(acc, reverse=True), acc
    table_ids = RUN_ID_RE.findall("\n".join(r.stdout.splitlines()[:-1]))
    assert table_ids == [row["id"] for row in rows], (table_ids, [row["id"] for row in rows])
    assert ESC not in r.stdout + r.stderr
    assert tmp_leftovers(wd) == []


def test_sweep_with_a_failing_point_exits_1_and_keeps_the_others(tmp_path):
    wd = setup_dir(tmp_path)
    (wd / "xor_id.yaml").write_text(xor_identity_yaml(), encoding="utf-8")
    (wd / "fails.yaml").write_text(
        "base: xor_id.yaml\ngrid:\n  train.lr: [0.5, 1.0e+37]\n  train.epochs: [40]\n", encoding="utf-8")
    r = nncli("sweep", "fails.yaml", "--jobs", "2", cwd=wd)
    assert r.returncode == 1, show(r)
    sd = _sweep_dir(r, wd)
    run_dirs = [p for p in sd.iterdir() if p.is_dir()]
    assert len(run_dirs) == 2
    rows = read_csv(sd / "results.csv")
    assert sorted(row["status"] for row in rows) == ["completed", "diverged"], rows
    progress = _progress(r.stderr, 2)
    assert len(progress) == 2, show(r)
    assert sum("completed" in ln for ln in progress) == 1 and sum("failed" in ln for ln in progress) == 1, progress
    assert r.stderr.rstrip().splitlines()[-1].startswith("nncli: error:"), show(r)


def test_sweep_rejects_an_unknown_grid_key_before_any_run(tmp_path):
    wd = setup_dir(tmp_path)
    (wd / "typo.yaml").write_text("base: xor.yaml\ngrid:\n  train.lrr: [0.1, 0.5]\n", encoding="utf-8")
    r = nncli("sweep", "typo.yaml", "--jobs", "2", cwd=wd)
    assert r.returncode == 2, show(r)
    assert "train.lrr" in r.stderr and "did you mean 'lr'" in r.stderr, show(r)
    assert len(r.stderr.strip().splitlines()) == 1, show(r)
    assert r.stdout == ""
    assert not (wd / "runs").exists(), list((wd / "runs").rglob("*"))
