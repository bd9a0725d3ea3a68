"""Interruption, resume and divergence of training (nncli/job.py, nncli/trainer.py checkpoints,
``nncli train --resume``).

- the library: a stop requested after exactly k optimizer steps (or after an epoch),
  checkpointed and resumed (once or twice), ends bit for bit where an uninterrupted run
  ends, for every optimizer, with validation and early stopping too;
- the process: real SIGINT / SIGTERM checkpoint and exit 130, and resuming matches the
  uninterrupted run; train.checkpoint_every survives SIGKILL;
- refusals: resuming a completed run, a run without checkpoint, with a config argument,
  or from a damaged checkpoint (one line, exit 2, nothing changed);
- divergence: exit 1 with a consistent run directory (the last finite weights).
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import (OpenOnUnpickle, assert_same_run, assert_usage_error, chdir, copy_trained, nn, npz_arrays, only_run,
                     runs_in, start_cli, stop_after_steps, strict_json, write_classes_csv, write_config,
                     write_regression_csv)
from nncli.config import load_config
from nncli.job import TrainingJob
from nncli.runs import CHECKPOINT

# ============================================================================= divergence


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


# ============================================================================= library: interrupt and resume


def _train_library(cfg_path: Path, runs_dir: Path, stop_at_step=None, stop_after_epoch=None) -> tuple[Path, dict]:
    """Train with the library; optionally request a stop after the k-th optimizer step
    (counted in this job) or after the k-th epoch record it yields."""
    job = TrainingJob(load_config(cfg_path), runs_dir)
    run = job.start()
    count = stop_after_steps(job.trainer, stop_at_step) if stop_at_step is not None else None
    for i, _rec in enumerate(job.epochs(), 1):
        if stop_after_epoch is not None and i == stop_after_epoch:
            job.trainer.stop_requested = True
    if count is not None:
        assert count[0] == stop_at_step, f"stopped after {count[0]} optimizer steps, asked for {stop_at_step}"
    return run, job.finish(plots=False)


def _resume_library(run: Path, stop_at_step=None) -> dict:
    job = TrainingJob.resume(run)
    assert job.start() == run
    assert not (run / "summary.json").exists(), "a resumed run must be incomplete until it finishes"
    count = stop_after_steps(job.trainer, stop_at_step) if stop_at_step is not None else None
    for _ in job.epochs():
        pass
    if count is not None:
        assert count[0] == stop_at_step, f"stopped after {count[0]} optimizer steps, asked for {stop_at_step}"
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


# ============================================================================= the process: SIGINT / SIGTERM / SIGKILL

# ~1 ms an epoch in-process: 1000 epochs leave the test most of a second to deliver its
# signal after the first progress line, even on a busy machine (200 left ~0.15 s)
LONG_EPOCHS = 1000


@pytest.fixture(scope="module")
def long_case(tmp_path_factory) -> Path:
    """A config long enough to interrupt (about a second), and its uninterrupted reference run."""
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
    """``python -m nncli train CONFIG`` in a subprocess, its stderr going to ``err_path``."""
    with open(err_path, "w", encoding="utf-8") as err:  # the child keeps its own copy of the descriptor
        return start_cli("train", config, "--no-plots", cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)


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


def interrupt_training(cwd: Path, config: str, err_path: Path, sig=signal.SIGINT) -> tuple[int, str]:
    """``nncli train CONFIG`` in ``cwd``, sent ``sig`` once its first epoch is reported; (exit
    status, stderr). The process is killed if it has not ended within a minute."""
    proc = _start_training(cwd, config, err_path)
    try:
        # the first progress line: the handler is installed and training is under way
        _wait_for(lambda: re.search(r"epoch\s+1/", err_path.read_text(encoding="utf-8")), proc, 60, "the first epoch")
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, err_path.read_text(encoding="utf-8")


def stop_twice_and_resume(cfg_path: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(the run stopped after its 11th step, then 7 steps after resuming, then resumed to the
    end; the uninterrupted reference run), both through the library; the caller compares them."""
    ref, ref_summary = _train_library(cfg_path, tmp_path / "ref")
    assert ref_summary["status"] == "completed"
    run, s = _train_library(cfg_path, tmp_path / "runs", stop_at_step=11)
    _assert_interrupted(run, s, mid_epoch=True)
    s = _resume_library(run, stop_at_step=7)
    _assert_interrupted(run, s, mid_epoch=True)
    assert _resume_library(run)["status"] == "completed"
    return run, ref


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_and_resume_matches_uninterrupted(long_case, tmp_path, sig):
    shutil.copy(long_case / "data.csv", tmp_path / "data.csv")
    shutil.copy(long_case / "long.yaml", tmp_path / "long.yaml")
    rc, err = interrupt_training(tmp_path, "long.yaml", tmp_path / "stderr.txt", sig)
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
    (tmp_path / "long.yaml").write_text(text.replace("  batch_size: 8\n", "  batch_size: 8\n  checkpoint_every: 50\n"),
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
    assert meta["epoch"] % 50 == 0 and 0 < meta["epoch"] < LONG_EPOCHS

    r = nn("train", "--resume", run, "--no-plots", "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert not (run / CHECKPOINT).exists()
    assert_same_run(run, long_case / "ref")


# ============================================================================= --resume refusals


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
            arrays["param/W1"] = np.array([OpenOnUnpickle(str(marker))], dtype=object)
        else:
            arrays["param/W1"] = np.zeros((7, 7), arrays["param/W1"].dtype)
        np.savez(ckpt, **arrays)
    r = nn("train", "--resume", run, "--no-plots", cwd=tmp_path)
    assert_usage_error(r, CHECKPOINT)
    assert not marker.exists()
    assert (run / "summary.json").exists(), "a refused resume must not make the run incomplete"
