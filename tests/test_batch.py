"""Batch experiments from the shell: what a script sees of ``python -m nncli``.

Exit codes of the interpreter (0, 1, 2, 130 on a signal), stdout carrying only results
(the run directory or one JSON object) while progress goes to stderr, no escape codes on
pipes, concurrent runs each getting their own directory, and the README's shell loop
examples/batch.sh. These are about the real process, so every command here runs in a
subprocess (helpers.cli / cli_many / start_cli); commands that do not depend on each
other are started together. ``nncli runs`` is covered in test_listing.py, ``nncli sweep``
in test_sweep.py.
"""

from __future__ import annotations

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

from helpers import REPO, Res, cli, cli_env, cli_many, metrics_rows, npz_arrays, one_run_dir, start_cli, summary, tmp_leftovers

TIMEOUT = 240  # seconds for one command; generous, the machine may be busy
ESC = "\x1b"
XOR = "configs/xor.yaml"

# With no terminal but a colour-capable TERM, only the missing terminal keeps escapes away.
COLOUR_TERM = {"TERM": "xterm-256color", "COLORTERM": "truecolor"}


# ----------------------------------------------------------------------------- helpers


def finish(p: subprocess.Popen, timeout: float = TIMEOUT) -> Res:
    """The Res of a command started with helpers.start_cli (stdout/stderr pipes)."""
    try:
        o, e = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise
    return Res(p.returncode, o, e.decode("utf-8", "replace"))


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


def test_diverged_run_exits_1_and_keeps_what_it_trained(workdir):
    write_lin(workdir)
    r = cli("train", "lin.yaml", "--no-plots", "--set", "train.lr=1.0", "--set", "loss=mse", cwd=workdir)
    assert r.rc == 1, r.show()
    run = one_run_dir(r, workdir)
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
    arrays = npz_arrays(run / "model.npz")
    assert {"W1", "W2", "b1", "b2"} <= set(arrays)
    for k, a in arrays.items():
        if a.dtype.kind == "f":
            assert np.isfinite(a).all(), k
    assert (run / "config.yaml").is_file()
    # the error says what to do
    assert "lower learning rate" in r.err.lower(), r.show()
    assert r.err_lines[-1].startswith("nncli: error:"), r.show()
    assert ESC not in r.text + r.err


# ----------------------------------------------------------------------------- exit code 2


def test_usage_config_and_data_errors_exit_2_and_write_nothing(workdir):
    cases = [
        ["train", XOR, "--bogus-option"],
        ["train", XOR, "--set", "train.lr"],  # no '='
        ["train", XOR, "--set", "train.lrr=0.1"],  # unknown key
        ["train", "missing.yaml"],  # no such config file
        ["train", XOR, "--set", "data.train=datasets/missing.csv"],  # no such data file
    ]
    results = cli_many([(args, workdir) for args in cases])
    for r in results:
        assert r.rc == 2, r.show()
        assert r.text == "", r.show()
        assert "Traceback" not in r.err, r.show()
        assert ESC not in r.err, r.show()
    bogus, no_eq, lrr, no_cfg, no_csv = results
    assert "--bogus-option" in bogus.err, bogus.show()
    # config and data errors: one line naming the key or file
    for r in (no_eq, lrr, no_cfg, no_csv):
        assert len(r.err_lines) == 1, r.show()
    assert "train.lr" in no_eq.err
    assert "train.lrr" in lrr.err and "did you mean 'lr'" in lrr.err, lrr.show()
    assert "missing.yaml" in no_cfg.err, no_cfg.show()
    assert "missing.csv" in no_csv.err, no_csv.show()
    # nothing is written
    runs = workdir / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())


# ----------------------------------------------------------------------------- exit code 130


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_stops_training_with_checkpoint_and_exit_130(workdir, signame):
    total = 10_000_000
    out = tempfile.TemporaryFile("w+b")
    proc = start_cli("train", XOR, "--no-plots", "--set", f"train.epochs={total}", cwd=workdir, env=COLOUR_TERM,
                     stdout=out, text=True, encoding="utf-8")
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
    out.seek(0)
    r = Res(rc, out.read(), "".join(lines))
    out.close()
    assert rc == 130, r.show()
    run = one_run_dir(r, workdir)
    s = summary(run)
    assert s["status"] == "interrupted", s
    assert 1 <= s["epochs_run"] < total, s
    assert (run / "checkpoint.npz").is_file(), sorted(p.name for p in run.iterdir())
    assert len(npz_arrays(run / "checkpoint.npz")) > 0
    assert (run / "model.npz").is_file()
    _, rows = metrics_rows(run)
    assert len(rows) == s["epochs_run"], (len(rows), s)
    assert "--resume" in r.err, r.show()
    assert "Traceback" not in r.err, r.show()
    assert ESC not in r.text + r.err


# ----------------------------------------------------------------------------- no terminal


@pytest.mark.parametrize("variant", ["plain", "no_color"])
def test_no_escape_codes_without_a_terminal(workdir, variant):
    """Pipes are not terminals: train, eval, runs and gradcheck write no escape codes, with
    FORCE_COLOR unset (and TERM claiming colour support), and with NO_COLOR=1."""
    env = {**COLOUR_TERM, **({"NO_COLOR": "1"} if variant == "no_color" else {})}
    assert "FORCE_COLOR" not in cli_env(env)
    as_json = variant == "no_color"
    train = finish(start_cli("train", XOR, "--no-plots", "--set", "train.epochs=30", *(["--json"] if as_json else []),
                             cwd=workdir, env=env))
    assert train.rc == 0, train.show()
    if as_json:
        lines = train.text.splitlines()
        assert len(lines) == 1, train.show()
        obj = json.loads(lines[0])
        assert isinstance(obj, dict)
        assert obj["status"] == "completed" and obj["epochs_run"] == 30, obj
        run = workdir / obj["run_dir"]
        assert run.is_dir() and (run / "summary.json").is_file()
    else:
        run = one_run_dir(train, workdir)
    # progress lines go to stderr only
    progress = [ln for ln in train.err.splitlines() if re.match(r"^epoch\s+\d+/30\b", ln)]
    assert len(progress) >= 2, train.show()
    assert re.match(r"^epoch\s+30/30\b", progress[-1]), progress
    assert not re.search(r"^epoch\s", train.text, re.M), train.show()

    rel = run.relative_to(workdir)
    started = [start_cli(*args, cwd=workdir, env=env)
               for args in (["eval", rel, "--no-plots"], ["runs", "runs"], ["gradcheck", rel])]
    others = [finish(p) for p in started]
    for r in [train, *others]:
        assert r.rc == 0, r.show()
        assert ESC not in r.text, r.show()
        assert ESC not in r.err, r.show()
    ev, listing, gc = others
    assert "accuracy" in ev.text, ev.show()
    assert run.name in listing.text, listing.show()
    assert "W1" in gc.text, gc.show()


# ----------------------------------------------------------------------------- concurrency


def test_sixteen_concurrent_runs_with_the_same_name(workdir):
    n, epochs = 16, 200
    args = ["train", XOR, "--name", "same", "--quiet", "--no-plots", "--set", f"train.epochs={epochs}"]
    results = cli_many([(args, workdir)] * n, timeout=TIMEOUT)
    for r in results:
        assert r.rc == 0, r.show()
        assert r.err == "", r.show()  # --quiet: nothing but the result
    runs = [one_run_dir(r, workdir) for r in results]
    assert len({str(p) for p in runs}) == n, [r.text for r in results]
    dirs = sorted(p for p in (workdir / "runs").iterdir() if p.is_dir())
    assert len(dirs) == n, dirs
    assert {p.resolve() for p in dirs} == {p.resolve() for p in runs}
    metrics = set()
    for run in dirs:
        assert "-same-" in run.name, run.name
        for f in ("config.yaml", "metrics.csv", "model.npz", "summary.json", "preprocess.json"):
            assert (run / f).is_file(), (run, f)
        s = summary(run)
        assert s["status"] == "completed" and s["epochs_run"] == epochs, s
        _, rows = metrics_rows(run)
        assert len(rows) == epochs, (run, len(rows))
        metrics.add((run / "metrics.csv").read_bytes())
        assert yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["name"] == "same"
    # the same seed gives bit-identical training, whatever else runs at the same time
    assert len(metrics) == 1, f"{len(metrics)} different metrics.csv contents"
    ref = npz_arrays(dirs[0] / "model.npz")
    for run in dirs[1:]:
        arrays = npz_arrays(run / "model.npz")
        assert sorted(arrays) == sorted(ref)
        for k in arrays:
            assert np.array_equal(arrays[k], ref[k]), (run, k)
    assert tmp_leftovers(workdir) == []
    assert not [p for p in (workdir / "runs").iterdir() if not p.is_dir()]


# ----------------------------------------------------------------------------- examples/batch.sh


def test_examples_batch_sh_runs_one_run_per_lr_and_ranks_them(tmp_path):
    """The README's shell loop, as written: one ``nncli train -q`` per learning rate (stdout
    is the run directory), then ``nncli runs DIR --sort val_accuracy``."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    for sub in ("examples", "configs", "datasets"):
        (tmp_path / sub).mkdir()
    shutil.copy(REPO / "examples" / "batch.sh", tmp_path / "examples" / "batch.sh")
    shutil.copy(REPO / "configs" / "moons.yaml", tmp_path / "configs" / "moons.yaml")
    shutil.copy(REPO / "datasets" / "moons.csv", tmp_path / "datasets" / "moons.csv")
    # `nncli` is the console script of the interpreter running the tests
    env = cli_env({**COLOUR_TERM, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")})
    p = subprocess.run([bash, "examples/batch.sh"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=TIMEOUT)
    r = Res(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))
    assert r.rc == 0, r.show()
    assert r.err == "", r.show()  # no run failed; -q trains silently
    lines = r.text.splitlines()
    lrs = ["0.01", "0.1", "0.3", "1.0"]
    loop = lines[:4]
    runs = []
    for lr, line in zip(lrs, loop):
        m = re.fullmatch(rf"lr={re.escape(lr)} -> (runs/batch-\d{{8}}-\d{{6}}/\S+)", line)
        assert m, (lr, line, r.show())
        run = tmp_path / m.group(1)
        assert run.is_dir(), line
        assert re.fullmatch(rf"\d{{8}}-\d{{6}}-moons-lr{re.escape(lr)}-[0-9a-f]{{4}}", run.name), run.name
        s = summary(run)
        assert s["status"] == "completed" and s["epochs_run"] == 100, s
        cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        assert cfg["train"]["lr"] == pytest.approx(float(lr)) and cfg["name"] == f"moons-lr{lr}"
        runs.append(run)
    batch_dir = runs[0].parent
    assert {p.parent for p in runs} == {batch_dir}
    assert sorted(batch_dir.iterdir()) == sorted(runs)  # a fresh directory: this batch only
    # the ranked listing: every run once, best validation accuracy first
    table = "\n".join(lines[4:])
    positions = [table.find(run.name) for run in runs]
    assert all(pos >= 0 for pos in positions), table
    by_pos = [run for _, run in sorted(zip(positions, runs))]
    val_acc = [summary(run)["val_metrics"]["accuracy"] for run in by_pos]
    assert val_acc == sorted(val_acc, reverse=True), (val_acc, table)
    assert ESC not in r.text
