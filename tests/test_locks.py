"""One process per run directory, and no stale temporary files (issue 14, causes 3 and 5).

- the lock (nncli/runs.py RunDir.acquire/release/is_locked): a second process is refused
  with the holder's PID, the lock is dropped on release and on any exit (SIGKILL too), a
  listing's momentary probe never makes a trainer fail;
- the CLI: a second ``nncli train --resume RUN`` while the first trains is one line naming
  the first one's PID, exit 2, nothing in the run directory changed; ``nncli runs`` lists a
  run being trained or resumed as ``running`` and the other runs as before; a run whose
  resume was SIGKILLed resumes again;
- stale temp files (nncli/csvio.py atomic_file): ``.NAME.<pid>.<hex>.tmp`` left by a process
  killed in the middle of a write is removed by the next write of NAME; a temp file of a
  live process, or of another name, is never touched; one inside a run directory goes with
  the resume's next write of that file.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from helpers import (assert_usage_error, cli, cli_env, nn, start_cli, stop_after_steps, summary, tmp_leftovers,
                     write_classes_csv, write_config)
from nncli.csvio import atomic_write_text, remove_stale_temps
from nncli.errors import RunError
from nncli.runs import LOCK, RunDir

EPOCH_LINE = re.compile(r"epoch\s+\d+/")


# ============================================================================= helpers


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """data.csv, long.yaml (epochs enough to train for minutes) and one interrupted run in runs/
    (checkpointed after 30 optimizer steps, trained in-process, its lock released)."""
    from nncli.config import load_config
    from nncli.job import TrainingJob

    base = tmp_path_factory.mktemp("interrupted")
    write_classes_csv(base / "data.csv", n=200, seed=7)
    write_config(base / "long.yaml", name="long", train_csv="data.csv", target="label", seed=1,
                 layers=("auto", 8, "auto"), optimizer="momentum", lr=0.05, epochs=500_000, batch_size=8)
    cwd = os.getcwd()
    os.chdir(base)
    try:
        job = TrainingJob(load_config("long.yaml"), "runs")
        job.start()
        stop_after_steps(job.trainer, 30)
        for _ in job.epochs():
            pass
        assert job.finish(plots=False)["status"] == "interrupted"
    finally:
        os.chdir(cwd)
    return base


def _copy_case(src: Path, dest: Path) -> Path:
    """A private copy of the interrupted case (data, config, runs/<the run>); the run's path."""
    import shutil

    shutil.copytree(src, dest)
    (run,) = [p for p in (dest / "runs").iterdir() if p.is_dir()]
    return run


def _snapshot(run: Path) -> dict:
    """name -> (size, sha256, mtime_ns) of every file in the run directory."""
    out = {}
    for p in sorted(run.iterdir()):
        st = p.stat()
        out[p.name] = (st.st_size, hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns)
    return out


def _start(args, cwd: Path, err_path: Path) -> subprocess.Popen:
    with open(err_path, "w", encoding="utf-8") as err:  # the child keeps its own descriptor
        return start_cli(*args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)


def _wait_training(proc: subprocess.Popen, err_path: Path, timeout: float = 60) -> None:
    """Until the process shows an epoch line (its run directory is locked and set up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if EPOCH_LINE.search(err_path.read_text(encoding="utf-8")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"nncli exited ({proc.returncode}) before training: {err_path.read_text()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the first epoch line")


def _stop(proc: subprocess.Popen, sig=signal.SIGKILL) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _statuses(cwd: Path) -> dict:
    """id -> status, from ``nncli runs`` (its table printed without truncation)."""
    from nncli.listing import list_runs

    df, warnings = list_runs(cwd / "runs")
    assert not warnings, warnings
    return dict(zip(df["id"], df["status"]))


def _killed_mid_write(target: Path) -> Path:
    """Start a process that opens an atomic write of ``target``, writes half of it, and is
    SIGKILLed there (as by the kernel's OOM killer or kill -9); its temporary file."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from nncli.csvio import atomic_file
        ctx = atomic_file({str(target)!r}, "wb")
        fh = ctx.__enter__()
        fh.write(b"half of a file" * 1000)
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    p = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, p
    left = sorted(target.parent.glob(f".{target.name}.*.tmp"))
    assert len(left) == 1, left
    return left[0]


# ============================================================================= the lock, in the library


def test_a_held_lock_refuses_a_second_holder_naming_the_pid(tmp_path):
    first, second = RunDir(tmp_path), RunDir(tmp_path)
    first.acquire()
    try:
        assert (tmp_path / LOCK).read_text() == f"{os.getpid()}\n"
        assert RunDir(tmp_path).is_locked()
        with pytest.raises(RunError, match=rf"process {os.getpid()} is training this run"):
            second.acquire()
        assert (tmp_path / LOCK).read_text() == f"{os.getpid()}\n", "the refused one changed the lock file"
    finally:
        first.release()
    assert not RunDir(tmp_path).is_locked()
    assert (tmp_path / LOCK).read_text() == "", "a released lock names no process"
    with second.lock():
        assert RunDir(tmp_path).is_locked()
    assert not RunDir(tmp_path).is_locked()


def test_a_run_without_a_lock_file_is_not_locked_and_the_probe_writes_nothing(tmp_path):
    assert not RunDir(tmp_path).is_locked()
    assert list(tmp_path.iterdir()) == []


def test_a_listing_probe_does_not_make_a_trainer_fail(tmp_path):
    """The probe takes a shared lock for an instant; a trainer arriving then waits it out."""
    import fcntl

    (tmp_path / LOCK).touch()
    fd = os.open(tmp_path / LOCK, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe, held far longer than a real one
    threading.Timer(0.1, os.close, [fd]).start()
    rd = RunDir(tmp_path)
    rd.acquire()
    rd.release()


def test_a_lock_of_a_process_killed_by_sigkill_is_free(tmp_path):
    script = ("import sys, time; from nncli.runs import RunDir; rd = RunDir(sys.argv[1]); rd.acquire(); "
              "print('locked', flush=True); time.sleep(600)")
    p = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, env=cli_env())
    try:
        assert p.stdout.readline() == b"locked\n"
        assert RunDir(tmp_path).is_locked()
        with pytest.raises(RunError, match=rf"process {p.pid} is training this run.*kill -INT {p.pid}"):
            RunDir(tmp_path).acquire()
    finally:
        _stop(p)
        p.stdout.close()
    assert not RunDir(tmp_path).is_locked()
    with RunDir(tmp_path).lock():
        pass


def test_a_new_run_is_locked_until_finish(tmp_path, monkeypatch):
    from nncli.config import load_config
    from nncli.job import TrainingJob

    write_classes_csv(tmp_path / "data.csv")
    write_config(tmp_path / "c.yaml", train_csv="data.csv", target="label", epochs=2)
    monkeypatch.chdir(tmp_path)
    job = TrainingJob(load_config("c.yaml"), "runs")
    run = job.start()
    assert RunDir(run).is_locked()
    for _ in job.epochs():
        assert RunDir(run).is_locked()
    job.finish(plots=False)
    assert not RunDir(run).is_locked()


def test_a_refused_resume_releases_its_lock(tmp_path, interrupted):
    """A resume that fails after taking the lock (here: a damaged checkpoint) lets it go."""
    run = _copy_case(interrupted, tmp_path / "c")
    (run / "checkpoint.npz").write_bytes(b"not a zip file")
    r = nn("train", "--resume", run, "--no-plots", cwd=tmp_path / "c")
    assert_usage_error(r, "checkpoint")
    assert not RunDir(run).is_locked()


# ============================================================================= the lock, through the CLI


def test_a_second_resume_is_refused_naming_the_first_and_changes_nothing(tmp_path, interrupted):
    wd = tmp_path / "c"
    run = _copy_case(interrupted, wd)
    first = _start(["train", "--resume", run, "--no-plots"], wd, tmp_path / "first.err")
    try:
        _wait_training(first, tmp_path / "first.err")
        before, log = _snapshot(run), (run / "metrics.csv").read_bytes()
        r = cli("train", "--resume", run, "--no-plots", cwd=wd)
        assert_usage_error(r, str(run), f"process {first.pid} is training this run")
        after = _snapshot(run)
        # metrics.csv is the first resume's, which appends its epochs as it trains: only ever longer
        assert (run / "metrics.csv").read_bytes().startswith(log)
        after.pop("metrics.csv"), before.pop("metrics.csv")
        assert after == before, "the refused resume changed the run directory"
        assert first.poll() is None, "the first resume must go on"
        assert _statuses(wd) == {run.name: "running"}
    finally:
        rc = _stop(first, signal.SIGINT)
    assert rc == 130, (tmp_path / "first.err").read_text()
    assert summary(run)["status"] == "interrupted"
    assert _statuses(wd) == {run.name: "interrupted"}


def test_runs_lists_a_training_run_as_running_and_the_others_as_before(tmp_path, interrupted):
    wd = tmp_path / "c"
    old = _copy_case(interrupted, wd)
    done = nn("train", "long.yaml", "--set", "train.epochs=2", "--set", "name=done", "-q", "--no-plots", cwd=wd)
    assert done.rc == 0, done.show()
    new = _start(["train", "long.yaml", "--set", "name=busy", "--set", "train.checkpoint_every=1", "--no-plots"],
                 wd, tmp_path / "new.err")
    try:
        _wait_training(new, tmp_path / "new.err")
        statuses = _statuses(wd)
        busy = [k for k in statuses if "-busy-" in k]
        assert len(busy) == 1 and len(statuses) == 3, statuses
        assert statuses[busy[0]] == "running"
        assert statuses[old.name] == "interrupted"
        assert [v for k, v in statuses.items() if "-done-" in k] == ["completed"]
        r = nn("runs", cwd=wd)
        assert r.rc == 0 and "running" in r.text and "completed" in r.text and "interrupted" in r.text, r.show()
        # a new run holds its directory too: with a checkpoint written, it still cannot be resumed
        assert (wd / "runs" / busy[0] / "checkpoint.npz").exists()
        r = cli("train", "--resume", wd / "runs" / busy[0], "--no-plots", cwd=wd)
        assert_usage_error(r, f"process {new.pid} is training this run")
    finally:
        _stop(new, signal.SIGINT)
    assert _statuses(wd)[busy[0]] == "interrupted"


def test_a_resume_killed_by_sigkill_does_not_block_the_next(tmp_path, interrupted):
    wd = tmp_path / "c"
    run = _copy_case(interrupted, wd)
    first = _start(["train", "--resume", run, "--no-plots"], wd, tmp_path / "first.err")
    try:
        _wait_training(first, tmp_path / "first.err")
        assert _statuses(wd) == {run.name: "running"}
    finally:
        assert _stop(first, signal.SIGKILL) == -signal.SIGKILL
    assert str(first.pid) in (run / LOCK).read_text(), "the killed process's PID stays in the file..."
    assert _statuses(wd) == {run.name: "interrupted"}, "...but its lock does not"
    again = _start(["train", "--resume", run, "--no-plots"], wd, tmp_path / "again.err")
    try:
        _wait_training(again, tmp_path / "again.err")
        assert _statuses(wd) == {run.name: "running"}
    finally:
        rc = _stop(again, signal.SIGINT)
    assert rc == 130, (tmp_path / "again.err").read_text()
    assert summary(run)["status"] == "interrupted"


# ============================================================================= stale temporary files


def test_a_temp_file_of_a_killed_writer_goes_with_the_next_write(tmp_path):
    target = tmp_path / "out.csv"
    stale = _killed_mid_write(target)
    assert stale.stat().st_size > 0
    atomic_write_text(target, "a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n"
    assert not stale.exists(), "the dead writer's temporary file is still there"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_temp_files_of_live_processes_and_other_names_are_kept(tmp_path):
    target = tmp_path / "out.csv"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        dead_other = _killed_mid_write(tmp_path / "other.csv")  # a dead process, another target
        dead_pid = int(dead_other.name.split(".")[3])
        keep = [tmp_path / f".out.csv.{sleeper.pid}.0123abcd.tmp",  # another live writer
                tmp_path / f".out.csv.{os.getpid()}.89abcdef.tmp",  # this process (another thread's write)
                dead_other,
                tmp_path / f".out.csv.{dead_pid}.notahex0.tmp",  # not a name nncli writes
                tmp_path / f".out.csv.x.{dead_pid}.0123abcd.tmp",
                tmp_path / f".out.csv.{dead_pid}.0123abcd.tmp.bak"]
        for p in keep[:2] + keep[3:]:
            p.write_bytes(b"in progress")
        gone = tmp_path / f".out.csv.{dead_pid}.0123abcd.tmp"
        gone.write_bytes(b"stale")
        atomic_write_text(target, "x\n")
        assert not gone.exists()
        for p in keep:
            assert p.exists(), f"{p.name} was removed"
    finally:
        _stop(sleeper)


def test_a_pid_that_cannot_be_signalled_counts_as_alive(tmp_path, monkeypatch):
    import nncli.csvio as csvio

    stale = _killed_mid_write(tmp_path / "out.csv")

    def kill(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(csvio.os, "kill", kill)
    assert remove_stale_temps(tmp_path / "out.csv") == []
    assert stale.exists()
    monkeypatch.undo()
    assert remove_stale_temps(tmp_path / "out.csv") == [stale]


def test_a_stale_temp_file_in_a_run_directory_goes_with_the_resume(tmp_path, interrupted):
    """SIGKILL while a run saved its model left .model.npz.<pid>.<hex>.tmp; the resume's
    writes of model.npz (and of the checkpoint) remove what the killed process left."""
    wd = tmp_path / "c"
    run = _copy_case(interrupted, wd)
    stale = [_killed_mid_write(run / "model.npz"), _killed_mid_write(run / "checkpoint.npz")]
    first = _start(["train", "--resume", run, "--no-plots"], wd, tmp_path / "first.err")
    try:
        _wait_training(first, tmp_path / "first.err")
    finally:
        rc = _stop(first, signal.SIGINT)  # checkpoint.npz and model.npz written again
    assert rc == 130, (tmp_path / "first.err").read_text()
    assert not any(p.exists() for p in stale), [p.name for p in stale if p.exists()]
    assert tmp_leftovers(wd) == []


def test_a_failed_finish_still_releases_the_lock(tmp_path, monkeypatch):
    """finish() releases the run even when one of its writes fails (a library caller's
    process goes on, and must be able to resume the run)."""
    from nncli.config import load_config
    from nncli.job import TrainingJob
    from nncli.runs import RunDir
    from helpers import write_classes_csv, write_config

    write_classes_csv(tmp_path / "data.csv")
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", epochs=2)
    monkeypatch.chdir(tmp_path)
    job = TrainingJob(load_config("cfg.yaml"), "runs")
    job.start()
    for _ in job.epochs():
        pass
    assert RunDir(job.run_dir).is_locked()

    def broken(summary):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(job.run, "write_summary", broken)
    with pytest.raises(OSError):
        job.finish(plots=False)
    assert not RunDir(job.run_dir).is_locked()
