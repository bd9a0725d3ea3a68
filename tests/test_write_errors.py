"""Issue 14, cause 1: files that cannot be written, and memory that runs out.

A full disk or a read-only file system, at any moment of a command: one line naming the
file and the cause, exit 2, and no partial run directory: a run is kept at its last
checkpoint (written atomically, so intact), or, with none, not at all. The checkpoint no
longer carries the history (metrics.csv does, appended), so its size does not grow with
the epochs, and a resume cuts metrics.csv back to the checkpoint's epochs.

Three ways to make writes fail: a fault injected into one RunDir write (in-process: exact
moment, any machine), a real small tmpfs (needs root to mount; skipped, with the reason,
where the machine cannot), and /dev/full as stdout.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import (NO_PLOTS, assert_same_run, assert_usage_error, cli, cli_env, nn, npz_arrays, one_run_dir,
                     only_run, runs_in, summary, tmp_leftovers, write_classes_csv, write_config)
from nncli.config import load_config
from nncli.job import TrainingJob
from nncli.runs import RunDir


def _full(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _fail_on(monkeypatch, method: str, after: int = 0):
    """Make RunDir.<method> raise ENOSPC from its (after+1)-th call on; returns the call count."""
    real = getattr(RunDir, method)
    calls = [0]

    def failing(self, *a, **kw):
        calls[0] += 1
        if calls[0] > after:
            raise _full(self.path / f"({method})")
        return real(self, *a, **kw)

    monkeypatch.setattr(RunDir, method, failing)
    return calls


@pytest.fixture
def wd(tmp_path) -> Path:
    write_classes_csv(tmp_path / "data.csv", n=40)
    write_config(tmp_path / "c.yaml", train_csv="data.csv", target="label", epochs=12, optimizer="adam", lr=0.05)
    write_config(tmp_path / "k.yaml", train_csv="data.csv", target="label", epochs=12, optimizer="adam", lr=0.05,
                 checkpoint_every=4)
    return tmp_path


def _reference(wd: Path, cfg: str = "c.yaml") -> Path:
    """The same config trained without trouble, in its own runs directory."""
    r = nn("train", cfg, "-q", *NO_PLOTS, "--runs-dir", "ref", cwd=wd)
    assert r.rc == 0, r.show()
    return wd / r.text.strip()


# ============================================================================= disk full, in-process


@pytest.mark.parametrize("method", ["write_config", "write_preprocess", "write_splits", "write_data_files", "start_metrics"])
def test_a_full_disk_at_the_start_leaves_no_run_directory(wd, monkeypatch, method):
    _fail_on(monkeypatch, method)
    r = nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, f"({method})", "No space left on device", "nothing could be saved")
    assert runs_in(wd) == [], "a run directory was left behind"


@pytest.mark.parametrize("method", ["write_model", "write_summary", "append_metrics"])
def test_a_full_disk_at_the_end_without_a_checkpoint_removes_the_run(wd, monkeypatch, method):
    _fail_on(monkeypatch, method)
    r = nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, f"({method})", "No space left on device", "was removed")
    assert runs_in(wd) == []


@pytest.mark.parametrize("method", ["write_model", "write_summary"])
def test_a_full_disk_at_the_end_keeps_the_last_checkpoint_and_the_resume_is_exact(wd, monkeypatch, method):
    ref = _reference(wd, "k.yaml")
    with monkeypatch.context() as m:
        _fail_on(m, method)
        r = nn("train", "k.yaml", "-q", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, "No space left on device", "kept at its checkpoint after epoch 8", "nncli train --resume")
    run = only_run(wd)
    assert not (run / "summary.json").exists() and (run / "checkpoint.npz").exists()
    assert tmp_leftovers(wd) == []
    r = nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=wd)  # room again
    assert r.rc == 0, r.show()
    assert_same_run(run, ref)
    assert not (run / "checkpoint.npz").exists()


def test_a_checkpoint_that_cannot_be_written_mid_training_keeps_the_previous_one(wd, monkeypatch):
    ref = _reference(wd, "k.yaml")
    with monkeypatch.context() as m:
        _fail_on(m, "write_checkpoint", after=1)  # epoch 4 saved, epoch 8 not
        r = nn("train", "k.yaml", "-q", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, "checkpoint", "No space left on device", "kept at its checkpoint after epoch 4")
    run = only_run(wd)
    assert len(summary_or_none(run) or {}) == 0
    assert nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=wd).rc == 0
    assert_same_run(run, ref)


def summary_or_none(run: Path):
    return summary(run) if (run / "summary.json").exists() else None


def test_an_interrupted_run_whose_checkpoint_cannot_be_written_keeps_the_previous_one(wd, monkeypatch):
    """Ctrl-C on a full disk: the new checkpoint cannot be written, the one of epoch 4 stays."""
    import nncli.job as job_mod

    ref = _reference(wd, "k.yaml")
    real_epochs = job_mod.TrainingJob.epochs

    def interrupted_after_6(self):
        for rec in real_epochs(self):
            if rec.epoch == 6:
                self.trainer.stop_requested = True
            yield rec

    with monkeypatch.context() as m:
        m.setattr(job_mod.TrainingJob, "epochs", interrupted_after_6)
        _fail_on(m, "write_checkpoint", after=1)
        r = nn("train", "k.yaml", "-q", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, "No space left on device", "kept at its checkpoint after epoch 4")
    run = only_run(wd)
    assert nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=wd).rc == 0
    assert_same_run(run, ref)


def test_a_resumed_run_that_cannot_be_saved_is_left_resumable(wd, monkeypatch):
    ref = _reference(wd, "k.yaml")
    with monkeypatch.context() as m:
        _fail_on(m, "write_model")
        nn("train", "k.yaml", *NO_PLOTS, cwd=wd)
    run = only_run(wd)
    with monkeypatch.context() as m:  # the resume fails to save too: the run stays as it was, resumable
        _fail_on(m, "write_model")
        r = nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, "No space left on device", "kept at its checkpoint after epoch 8")
    assert run.is_dir() and (run / "checkpoint.npz").exists()
    assert nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=wd).rc == 0
    assert_same_run(run, ref)


@pytest.mark.parametrize("at_call", [1, 20], ids=["rehearsal-before-the-run-directory", "mid-training"])
def test_out_of_memory_while_training_is_one_line_and_leaves_nothing(wd, monkeypatch, at_call):
    from nncli.model import MLP

    real = MLP.backward
    calls = [0]

    def backward(self, *a, **kw):
        calls[0] += 1
        if calls[0] == at_call:
            raise MemoryError
        return real(self, *a, **kw)

    monkeypatch.setattr(MLP, "backward", backward)
    r = nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, "out of memory", "model.layers", "train.batch_size")
    assert runs_in(wd) == []


def test_eval_shows_its_report_then_says_the_report_could_not_be_saved(wd, monkeypatch):
    run = one_run_dir(nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=wd), wd)
    _fail_on(monkeypatch, "write_report")
    r = nn("eval", run, "--json", *NO_PLOTS, cwd=wd)
    assert r.rc == 2, r.show()
    report = json.loads(r.text)  # the report computed is not lost
    assert report["saved"] == [] and "accuracy" in report
    assert len(r.err_lines) == 1 and "eval.json" in r.err and "cannot save the report" in r.err
    assert not (run / "eval.json").exists()


# ============================================================================= the checkpoint and metrics.csv


def test_the_checkpoint_does_not_grow_with_the_epochs_and_metrics_csv_is_only_appended(wd, monkeypatch):
    monkeypatch.chdir(wd)
    cfg = load_config("c.yaml", ["train.epochs=400"])
    job = TrainingJob(cfg, "runs")
    run = RunDir(job.start())
    sizes, logs = {}, []
    inode = (run / "metrics.csv").stat().st_ino
    for rec in job.epochs():
        if rec.epoch in (2, 50, 399):
            job.write_checkpoint()
            sizes[rec.epoch] = (run / "checkpoint.npz").stat().st_size
            logs.append((run / "metrics.csv").read_bytes())
            saved = npz_arrays(run / "checkpoint.npz")
            assert "history" not in json.loads(str(saved["meta"]))
            assert int(saved["metrics_bytes"]) == len(logs[-1])
    job.finish(plots=False)
    # the same arrays each time; only the digits of the bookkeeping (epoch, seconds, sums) vary, where the
    # history as JSON grew by ~100 bytes an epoch
    assert max(sizes.values()) - min(sizes.values()) < 64, f"checkpoint sizes {sizes}"
    final = (run / "metrics.csv").read_bytes()
    assert all(final.startswith(log) for log in logs) and len(logs[0]) < len(logs[1]) < len(logs[2]) < len(final)
    assert (run / "metrics.csv").stat().st_ino == inode, "metrics.csv was rewritten, not appended to"
    assert final.count(b"\n") == 401


def test_a_run_killed_after_its_checkpoint_resumes_exactly_and_drops_the_later_rows(wd, monkeypatch):
    """SIGKILL some epochs after a checkpoint: metrics.csv already holds rows the checkpoint
    does not know; the resume cuts them and trains those epochs again, bit for bit."""
    ref = _reference(wd, "k.yaml")
    monkeypatch.chdir(wd)
    job = TrainingJob(load_config("k.yaml"), "runs")
    run = job.start()
    for rec in job.epochs():
        if rec.epoch == 10:  # checkpoint after 8; rows 9 and 10 appended next
            job._log_metrics()
            break
    job.release()  # as the kernel drops the lock of a killed process
    assert (run / "metrics.csv").read_bytes().count(b"\n") == 11
    r = nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=wd)
    assert r.rc == 0, r.show()
    assert_same_run(run, ref)


def test_a_resume_from_the_checkpoint_of_the_epoch_early_stopping_stopped_at_trains_no_more(wd, monkeypatch):
    es = {"patience": 2, "min_delta": 0.0}
    write_config(wd / "e.yaml", train_csv="data.csv", target="label", epochs=300, optimizer="adam", lr=0.3,
                 early_stopping=es, data_extra={"val_split": 0.3})
    ref = _reference(wd, "e.yaml")
    stop = summary(ref)["epochs_run"]
    assert summary(ref)["stopped_early"] and stop < 300, "test setup: early stopping must stop the reference"
    monkeypatch.chdir(wd)
    job = TrainingJob(load_config("e.yaml"), "runs")
    run = job.start()
    for rec in job.epochs():
        if rec.epoch == stop:
            job.write_checkpoint()  # the process dies right after this checkpoint
    job.release()
    r = nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=wd)
    assert r.rc == 0, r.show()
    assert_same_run(run, ref)


def test_a_checkpoint_of_an_older_nncli_with_its_history_inside_still_resumes(wd, monkeypatch):
    """Checkpoints written before nncli 0.2 carried the history as JSON and no metrics_bytes."""
    ref = _reference(wd, "k.yaml")
    monkeypatch.chdir(wd)
    job = TrainingJob(load_config("k.yaml"), "runs")
    run = job.start()
    for rec in job.epochs():
        if rec.epoch == 5:
            break
    state = job.trainer.state()
    meta = json.loads(str(state["meta"]))
    meta["history"] = [[r.epoch, r.loss, r.metric, r.val_loss, r.val_metric, 0.0] for r in job.result.history]
    state["meta"] = np.array(json.dumps(meta))
    np.savez(run / "checkpoint.npz", **state)
    (run / "metrics.csv").write_text("epoch,loss,accuracy\n")  # as old versions left it: rewritten at each checkpoint
    job.release()
    r = nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=wd)
    assert r.rc == 0, r.show()
    assert_same_run(run, ref)


# ============================================================================= standard streams that cannot be written


def _to_dev_full(args, cwd) -> subprocess.CompletedProcess:
    with open("/dev/full", "w") as full:
        return subprocess.run([sys.executable, "-m", "nncli", *map(str, args)], cwd=cwd, env=cli_env(),
                              stdout=full, stderr=subprocess.PIPE, timeout=120)


needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")


@needs_dev_full
def test_train_quiet_to_a_full_stdout_completes_the_run_and_says_stdout_failed(wd):
    p = _to_dev_full(["train", "c.yaml", "-q", *NO_PLOTS], wd)
    err = p.stderr.decode()
    assert p.returncode == 2 and "Traceback" not in err
    assert err.strip().splitlines() == ["nncli: error: cannot write to stdout: No space left on device"]
    assert summary(only_run(wd))["status"] == "completed", "the run itself is complete"


@needs_dev_full
@pytest.mark.parametrize("command", ["predict", "eval", "eval-json", "runs", "runs-csv", "data"])
def test_a_full_stdout_is_one_line_in_every_command(wd, command):
    run = one_run_dir(nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=wd), wd)
    args = {"predict": ["predict", run, "data.csv"], "eval": ["eval", run, *NO_PLOTS],
            "eval-json": ["eval", run, "--json", *NO_PLOTS], "runs": ["runs"], "runs-csv": ["runs", "--format", "csv"],
            "data": ["data", "moons", "-o", "-"]}[command]
    p = _to_dev_full(args, wd)
    err = p.stderr.decode()
    assert p.returncode == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "stdout" in lines[0], lines


@needs_dev_full
def test_train_with_a_full_stderr_still_trains_and_prints_the_run(wd):
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "nncli", "train", "c.yaml", *NO_PLOTS], cwd=wd, env=cli_env(),
                           stdout=subprocess.PIPE, stderr=full, timeout=120)
    assert p.returncode == 0
    assert summary(wd / p.stdout.decode().strip())["status"] == "completed"


# ============================================================================= a real full disk: a small tmpfs


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs with data.csv and configs; unmounted afterwards."""
    mnt = tmp_path / "disk"
    if not _mount_tmpfs(mnt, "256k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount); the in-process tests above cover the same paths")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    free = shutil.disk_usage(disk).free
    if free > leave:
        with open(disk / "ballast", "wb") as fh:
            try:
                fh.write(b"\0" * (free - leave))
            except OSError:
                pass


def test_on_a_real_full_disk_training_is_one_line_and_leaves_no_run(small_disk, tmp_path):
    write_classes_csv(small_disk / "data.csv", n=40)
    # 2-300-300-1: model.npz is ~730 KB, more than the whole disk
    write_config(small_disk / "big.yaml", train_csv="data.csv", target="label", layers=("auto", 300, 300, "auto"),
                 epochs=2)
    r = cli("train", "big.yaml", "-q", *NO_PLOTS, cwd=small_disk)
    assert_usage_error(r, "model.npz", "No space left on device", "nothing could be saved")
    assert runs_in(small_disk) == [] and tmp_leftovers(small_disk) == []
    _fill(small_disk, 600)  # not even config.yaml fits now
    r = cli("train", "big.yaml", "-q", *NO_PLOTS, cwd=small_disk)
    assert not r.tb and "Traceback" not in r.err and r.rc == 2, r.show()
    assert len(r.lines) == 1 and "No space left on device" in r.lines[0]
    assert [p for p in (small_disk / "runs").iterdir()] == [] if (small_disk / "runs").exists() else True


def test_on_a_real_full_disk_an_interrupted_run_keeps_its_small_checkpoint(small_disk):
    """SIGINT after thousands of epochs on a nearly full disk: the checkpoint (its size
    independent of the epochs) fits and the run resumes."""
    write_classes_csv(small_disk / "data.csv", n=400)  # batches of 4: ~100 steps an epoch, metrics.csv grows slowly
    write_config(small_disk / "long.yaml", train_csv="data.csv", target="label", epochs=10**6, optimizer="adam",
                 lr=0.001, batch_size=4)
    p = subprocess.Popen([sys.executable, "-m", "nncli", "train", "long.yaml", *NO_PLOTS], cwd=small_disk,
                         env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = runs_in(small_disk)
            if runs and (runs[0] / "metrics.csv").exists() and (runs[0] / "metrics.csv").stat().st_size > 100_000:
                break  # ~1,500 epochs: their history as JSON would be ~130 KB, more than is left
            time.sleep(0.2)
        _fill(small_disk, 80_000)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    run = only_run(small_disk)
    assert p.returncode == 130, err.decode()
    assert (run / "checkpoint.npz").stat().st_size < 10_000  # weights, adam state, the row order (400 int64)
    (small_disk / "ballast").unlink()
    # the resume stands where the interruption left it (epochs as in metrics.csv)
    meta = json.loads(str(npz_arrays(run / "checkpoint.npz")["meta"]))
    rows = (run / "metrics.csv").read_bytes().count(b"\n") - 1
    assert meta["epoch"] == rows > 1000


def test_on_a_real_full_disk_predict_leaves_no_partial_output(small_disk, tmp_path):
    write_classes_csv(tmp_path / "data.csv", n=40)
    write_config(tmp_path / "c.yaml", train_csv="data.csv", target="label", epochs=2)
    run = one_run_dir(nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=tmp_path), tmp_path)
    big = tmp_path / "big.csv"
    rows = ["x1,x2"] + [f"{i * 0.001},{-i * 0.002}" for i in range(20_000)]
    big.write_text("\n".join(rows) + "\n")
    r = cli("predict", run, big, "-o", small_disk / "out.csv", cwd=tmp_path)
    assert_usage_error(r, "out.csv", "No space left on device")
    assert not (small_disk / "out.csv").exists() and tmp_leftovers(small_disk) == []


# ============================================================================= not a regular file


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this system")
def test_a_character_device_as_data_is_named_as_such(wd):
    r = nn("train", "c.yaml", "--set", "data.train=/dev/zero", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, "/dev/zero", "character device", "not a regular file")
    run = one_run_dir(nn("train", "c.yaml", "-q", *NO_PLOTS, cwd=wd), wd)
    r = nn("predict", run, "/dev/zero", cwd=wd)
    assert_usage_error(r, "character device", "give - to read CSV on stdin")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_named_pipe_as_data_is_named_as_such(wd):
    os.mkfifo(wd / "pipe.csv")
    r = nn("train", "c.yaml", "--set", "data.train=pipe.csv", *NO_PLOTS, cwd=wd)
    assert_usage_error(r, "pipe.csv", "named pipe")


def test_a_sweep_that_cannot_write_its_sweep_file_leaves_no_directory(wd, monkeypatch):
    import nncli.sweep as sweep_mod

    def full(path, text):
        raise _full(path)

    monkeypatch.setattr(sweep_mod, "atomic_write_text", full)
    (wd / "sw.yaml").write_text("base: c.yaml\ngrid:\n  train.lr: [0.01, 0.02]\n")
    r = nn("sweep", "sw.yaml", cwd=wd)
    assert_usage_error(r, "sweep.yaml", "No space left on device", "nothing was run")
    assert runs_in(wd) == []


# ============================================================================= a small address space (ulimit -v)


def _limited(mib: int):
    def set_limit():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (mib << 20, mib << 20))
    return set_limit


needs_rlimit_as = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux",
                                     reason="RLIMIT_AS is enforced as tested here on Linux only")


@needs_rlimit_as
def test_under_a_tiny_address_space_nncli_refuses_to_start_with_one_line(wd):
    p = subprocess.run([sys.executable, "-m", "nncli", "train", "c.yaml", *NO_PLOTS], cwd=wd, env=cli_env(),
                       capture_output=True, preexec_fn=_limited(300), timeout=120)
    err = p.stderr.decode()
    assert p.returncode == 2 and "Traceback" not in err
    assert err.splitlines() == [
        "nncli: error: nncli needs at least 400 MiB of address space to load numpy and pandas, and ulimit -v "
        "allows 300 MiB; raise the limit (ulimit -v 409600)"]
    assert runs_in(wd) == []


@needs_rlimit_as
def test_under_a_small_address_space_libraries_reserve_less_and_training_works(wd):
    code = ("import os, nncli.cli; print(os.environ.get('OPENBLAS_NUM_THREADS'), "
            "os.environ.get('ARROW_DEFAULT_MEMORY_POOL'))")
    env = {k: v for k, v in cli_env().items() if k not in ("OPENBLAS_NUM_THREADS", "ARROW_DEFAULT_MEMORY_POOL",
                                                           "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, preexec_fn=_limited(1000), timeout=60)
    assert p.stdout.decode().split() == ["1", "system"], p.stderr.decode()
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)  # no limit: untouched
    assert p.stdout.decode().split() == ["None", "None"]
    p = subprocess.run([sys.executable, "-m", "nncli", "train", "c.yaml", "-q", *NO_PLOTS], cwd=wd, env=env,
                       capture_output=True, preexec_fn=_limited(450), timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    assert summary(wd / p.stdout.decode().strip())["status"] == "completed"
