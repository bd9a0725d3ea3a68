"""SIGINT and SIGTERM at every moment of every command, and closed standard streams (issue 14,
causes 4 and 11; nncli/cli.py main, _command; nncli/__main__.py; sweep.task_status).

Every test runs real processes (``python -m nncli``). A signal at a *chosen* moment is sent by
the process to itself, from a ``sitecustomize`` module these tests put on PYTHONPATH
(``NNCLI_TEST_SIGNAL=SIGNAME@WHEN``), so the moment is exact and the same on every machine:

- ``import:MODULE``: when MODULE starts loading (typer: nncli's start-up; nncli.view: inside the
  error wrapper, the second trap of the issue; pandas: a command's own imports);
- ``open:REGEX``: right after a file whose name matches is opened (the training CSV, predict's
  and eval's temporary files);
- ``atexit``: in the interpreter's shutdown, after the command returned; ``teardown``: later
  still, while modules are torn down, after Python put back the default action of the signals
  it handled (the first trap of the issue).

A signal at a *random* moment is sent after a random delay, once nncli's own code has taken over
the signals (Linux: /proc/PID/status shows them blocked, caught or ignored); before that, in the
first milliseconds of the interpreter's own start-up, the default actions apply (README).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import Res, cli_env, nn, only_run, runs_in, start_cli, summary, tmp_leftovers, write_classes_csv, write_config, write_rows
from nncli.runs import CHECKPOINT

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL") or sys.platform == "win32", reason="POSIX signals")

SIGNALS = [signal.SIGINT, signal.SIGTERM]
SIG_IDS = ["SIGINT", "SIGTERM"]
INTERRUPTED = "nncli: error: interrupted"
TIMEOUT = 60

SITECUSTOMIZE = r'''
"""Written by tests/test_signals.py: this process sends itself a signal at the moment
NNCLI_TEST_SIGNAL=SIGNAME@WHEN names; NNCLI_TEST_SLOW_EXIT=SECONDS makes its shutdown slow."""
import atexit
import builtins
import os
import re
import signal
import sys
import time

_spec = os.environ.pop("NNCLI_TEST_SIGNAL", "")  # popped: child processes do not fire
_slow = float(os.environ.pop("NNCLI_TEST_SLOW_EXIT", "0") or 0)
if _slow:
    atexit.register(time.sleep, _slow)

if _spec:
    _name, _, _when = _spec.partition("@")
    _kind, _, _arg = _when.partition(":")
    _sig = getattr(signal, _name)
    _fired = []

    def _fire(kill=os.kill, getpid=os.getpid, sig=_sig, fired=_fired):
        if not fired:
            fired.append(True)
            kill(getpid(), sig)

    if _kind == "import":
        class _Finder:
            @staticmethod
            def find_spec(name, path=None, target=None):
                if name == _arg:
                    _fire()
                return None

        sys.meta_path.insert(0, _Finder)
    elif _kind == "open":
        _real_open, _pattern = builtins.open, re.compile(_arg)

        def _open(file, *args, **kwargs):
            fh = _real_open(file, *args, **kwargs)
            if isinstance(file, (str, bytes, os.PathLike)) and _pattern.search(os.path.basename(os.fsdecode(file))):
                _fire()
            return fh

        builtins.open = _open
    elif _kind == "atexit":
        atexit.register(_fire)
    elif _kind == "teardown":
        class _AtTeardown:
            def __del__(self, fire=_fire, sleep=time.sleep):
                fire()
                sleep(0.3)

        _at_teardown = _AtTeardown()
    else:
        raise SystemExit(f"NNCLI_TEST_SIGNAL: unknown moment {_when!r}")
'''


def hook_env(base: Path, spec: str = "", slow_exit: float = 0.0) -> dict:
    """The environment that makes the process signal itself at ``spec`` (SIGNAME@WHEN)."""
    hook = base / "_sitecustomize"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    path = os.pathsep.join([str(hook)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    env = {"PYTHONPATH": path}
    if spec:
        env["NNCLI_TEST_SIGNAL"] = spec
    if slow_exit:
        env["NNCLI_TEST_SLOW_EXIT"] = str(slow_exit)
    return env


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> Res:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"nncli did not end within {timeout} s; stderr: {err[-2000:]!r}")
    return Res(proc.returncode, out, err.decode("utf-8", "replace"))


def run_with(spec: str, *args, cwd: Path, slow_exit: float = 0.0) -> Res:
    return finish(start_cli(*args, cwd=cwd, env=hook_env(cwd, spec, slow_exit)))


def assert_interrupted(r: Res, line: str = INTERRUPTED) -> None:
    """Exit 130, no traceback, nothing on stdout, exactly one line on stderr: ``line``."""
    assert r.rc == 130, r.show()
    assert "Traceback" not in r.err, r.show()
    assert r.err_lines == [line], r.show()
    assert r.out == b"", r.show()


def assert_consistent_runs(root: Path) -> None:
    """Every run directory below ``root`` is complete or checkpointed, and nothing temporary is left."""
    assert tmp_leftovers(root) == [], tmp_leftovers(root)
    for run in runs_in(root):
        s = summary(run)
        assert s["status"] in ("completed", "interrupted"), (run, s)
        assert (run / CHECKPOINT).exists() == (s["status"] == "interrupted"), (run, s)
        assert (run / "model.npz").exists()
        assert (run / "metrics.csv").read_text(encoding="utf-8").count("\n") == s["epochs_run"] + 1


def signal_proc_when_ready(proc: subprocess.Popen, sig: int, delay: float) -> None:
    """Send ``sig`` ``delay`` seconds after nncli's code took over SIGTERM (blocked while the
    modules load, then caught or ignored), unless the process ended before."""
    bit = 1 << (signal.SIGTERM - 1)
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            break
        masks = dict(re.findall(r"^(SigBlk|SigIgn|SigCgt):\s*([0-9a-f]+)$", status, re.M))
        if any(int(masks.get(k, "0"), 16) & bit for k in ("SigBlk", "SigIgn", "SigCgt")):
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(sig)
            return
        time.sleep(0.002)


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")


# ============================================================================= shared material


BIG_ROWS = 200_000


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Path:
    """data.csv and cfg.yaml (a short run), long.yaml (about a second of training), big.csv
    (200,000 rows, about 4 MB) and big.yaml (training on it), and one trained run in runs/."""
    base = tmp_path_factory.mktemp("signals")
    write_classes_csv(base / "data.csv", n=200, seed=7)
    write_config(base / "cfg.yaml", name="short", train_csv="data.csv", target="label", epochs=3)
    write_config(base / "long.yaml", name="long", train_csv="data.csv", target="label", seed=1,
                 layers=("auto", 8, "auto"), optimizer="momentum", lr=0.05, epochs=400, batch_size=8)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(BIG_ROWS, 2))
    write_rows(base / "big.csv", ["x1", "x2", "label"],
               [(f"{a:.5f}", f"{b:.5f}", "ab"[int(a * b > 0)]) for a, b in X])
    write_config(base / "big.yaml", name="big", train_csv="big.csv", target="label", epochs=1, batch_size=256)
    r = nn("train", "cfg.yaml", "--no-plots", "-q", cwd=base)
    assert r.rc == 0, r.show()
    return base


def workdir_of(case: Path, dest: Path) -> Path:
    """A private copy of ``case`` (the big CSV linked, not copied)."""
    for name in ("data.csv", "cfg.yaml", "long.yaml", "big.yaml"):
        shutil.copy(case / name, dest / name)
    os.link(case / "big.csv", dest / "big.csv") if _same_fs(case, dest) else shutil.copy(case / "big.csv", dest / "big.csv")
    shutil.copytree(case / "runs", dest / "runs")
    return dest


def _same_fs(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


# ============================================================================= chosen moments


# (moment, command): the start-up (typer loads while nncli.cli is imported), the error
# wrapper's own import of nncli.view, a command's imports (pandas), reading the training CSV
STARTUP_CASES = {
    "startup-train": ("import:typer", ["train", "cfg.yaml", "--no-plots"]),
    "startup-runs": ("import:typer", ["runs"]),
    "wrapper-import-train": ("import:nncli.view", ["train", "cfg.yaml", "--no-plots"]),
    "wrapper-import-predict": ("import:nncli.view", ["predict", "RUN", "data.csv"]),
    "imports-eval": ("import:pandas", ["eval", "RUN", "--no-plots"]),
    "reading-big-csv": ("open:^big\\.csv$", ["train", "big.yaml", "--no-plots"]),
}


@pytest.mark.parametrize("sig", SIG_IDS)
@pytest.mark.parametrize("name", list(STARTUP_CASES))
def test_signal_before_the_work_is_one_line_and_130(case, tmp_path, name, sig):
    """Before any result: exit 130, the one line, no run directory created, nothing left."""
    work = workdir_of(case, tmp_path)
    before = runs_in(work)
    moment, args = STARTUP_CASES[name]
    args = [str(before[0]) if a == "RUN" else a for a in args]
    r = run_with(f"{sig}@{moment}", *args, cwd=work)
    assert_interrupted(r)
    assert runs_in(work) == before
    assert_consistent_runs(work)


def test_console_script_start_up_is_one_line_and_130(case, tmp_path):
    """The installed ``nncli`` script imports nncli.cli itself (not through __main__.py)."""
    script = Path(sys.executable).parent / "nncli"
    if not script.exists():
        pytest.skip("no nncli console script beside this Python")
    work = workdir_of(case, tmp_path)
    proc = subprocess.Popen([str(script), "runs"], cwd=work, env=cli_env(hook_env(work, "SIGTERM@import:typer")),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert_interrupted(finish(proc))


@pytest.mark.parametrize("sig", SIG_IDS)
@pytest.mark.parametrize("existing", [False, True], ids=["new-output", "existing-output"])
def test_signal_while_predict_writes_its_output(case, tmp_path, sig, existing):
    """predict -o on 200,000 rows, interrupted as its temporary file is created: exit 130, one
    line, no temporary file left, an existing output untouched."""
    work = workdir_of(case, tmp_path)
    run = only_run(work)
    if existing:
        (work / "out.csv").write_text("old content\n", encoding="utf-8")
    r = run_with(f"{sig}@open:^\\.out\\.csv\\..*\\.tmp$", "predict", run, "big.csv", "-o", "out.csv", cwd=work)
    assert_interrupted(r)
    assert tmp_leftovers(work) == []
    if existing:
        assert (work / "out.csv").read_text(encoding="utf-8") == "old content\n"
    else:
        assert not (work / "out.csv").exists()


@pytest.mark.parametrize("sig", SIG_IDS)
def test_signal_while_eval_saves_its_report(case, tmp_path, sig):
    work = workdir_of(case, tmp_path)
    run = only_run(work)
    files = sorted(p.name for p in run.iterdir())
    r = run_with(f"{sig}@open:^\\.eval.*\\.tmp$", "eval", run, "--no-plots", cwd=work)
    assert_interrupted(r)
    assert sorted(p.name for p in run.iterdir()) == files
    assert_consistent_runs(work)


# the first trap: after the result is out, the interpreter's shutdown
@pytest.mark.parametrize("sig", SIG_IDS)
@pytest.mark.parametrize("moment", ["atexit", "teardown"])
def test_signal_after_a_completed_train_changes_nothing(case, tmp_path, moment, sig):
    work = workdir_of(case, tmp_path)
    before = runs_in(work)
    r = run_with(f"{sig}@{moment}", "train", "cfg.yaml", "--no-plots", "-q", cwd=work)
    assert r.rc == 0, r.show()
    assert r.err == "", r.show()
    [run] = [p for p in runs_in(work) if p not in before]
    assert r.text == f"{run.relative_to(work)}\n" or r.text == f"{run}\n", r.show()
    assert summary(run)["status"] == "completed"
    assert_consistent_runs(work)


@pytest.mark.parametrize("sig", SIG_IDS)
def test_signal_after_predict_printed_its_result_changes_nothing(case, tmp_path, sig):
    work = workdir_of(case, tmp_path)
    r = run_with(f"{sig}@teardown", "predict", only_run(work), "data.csv", cwd=work)
    assert r.rc == 0, r.show()
    assert r.err == "" and r.text.count("\n") == 201, r.show()


@pytest.mark.parametrize("sig", SIG_IDS)
def test_signal_right_after_the_result_of_train(case, tmp_path, sig):
    """The test reads the run directory on stdout, then signals at once; the shutdown is made
    slow so that the process is surely still there. The completed run reports exit 0."""
    work = workdir_of(case, tmp_path)
    proc = start_cli("train", "cfg.yaml", "--no-plots", "-q", cwd=work, env=hook_env(work, slow_exit=1.0))
    line = proc.stdout.readline()
    assert line.strip(), "no result line"
    proc.send_signal(getattr(signal, sig))
    r = finish(proc)
    assert r.rc == 0, r.show()
    assert r.err == "", r.show()
    run = work / line.decode().strip()
    assert summary(run)["status"] == "completed"
    assert_consistent_runs(work)


# ============================================================================= random moments


@needs_proc
@pytest.mark.parametrize("command", ["train", "train-big", "predict", "eval"])
def test_signals_at_random_moments(case, tmp_path, command):
    """A few runs of each command, each signalled at a random moment from its start-up to its
    end: exit 130 with one line, or, when the signal came after the result, the result and
    exit 0; never a traceback, no temporary file, every run directory complete or checkpointed."""
    rng = random.Random(f"{command}-{os.getpid()}")
    work = workdir_of(case, tmp_path)
    trained = only_run(work)
    span = {"train": 2.5, "train-big": 3.0, "predict": 3.0, "eval": 2.0}[command]
    for trial in range(3):
        sig = rng.choice(SIGNALS)
        delay = rng.uniform(0, span)
        out = work / f"out{trial}.csv"
        args = {"train": ["train", "long.yaml", "--no-plots"], "train-big": ["train", "big.yaml", "--no-plots", "-q"],
                "predict": ["predict", trained, "big.csv", "-o", out], "eval": ["eval", trained, "--data", "big.csv"]}[command]
        proc = start_cli(*args, cwd=work)
        signal_proc_when_ready(proc, sig, delay)
        r = finish(proc)
        what = f"trial {trial}: {signal.Signals(sig).name} after {delay:.2f} s\n{r.show()}"
        assert r.rc in (0, 130), what
        assert "Traceback" not in r.err, what
        errors = [ln for ln in r.err_lines if "error:" in ln]
        if r.rc == 130:
            assert len(errors) == 1 and errors == [r.err_lines[-1]], what
            assert "interrupted" in errors[0], what
            if command == "predict":
                assert not out.exists(), what
        else:
            assert errors == [], what
            if command == "predict":
                assert out.read_text(encoding="utf-8").count("\n") == BIG_ROWS + 1, what
        assert_consistent_runs(work)


# ============================================================================= sweep


def test_sweep_labels_workers_killed_by_sigint_or_sigterm_interrupted():
    from nncli.pointrun import Point
    from nncli.sweep import Executor, Sweep, Task, task_status

    codes = [0, 130, -signal.SIGINT, -signal.SIGTERM, 1, 3, -signal.SIGKILL]
    tasks = [Task(i, Point("c.yaml"), {"i": i}, returncode=None, stderr="") for i in range(len(codes))]

    class Finished(Executor):
        def run(self, tasks, done, report=None):
            for t, code in zip(tasks, codes):
                t.returncode = code
                done(t)

    statuses = {}
    sw = Sweep(None, "s", Path("."), tasks, [])
    sw.run(Finished(), lambda t, status: statuses.__setitem__(t.returncode, status))
    assert statuses == {0: "completed", 130: "interrupted", -2: "interrupted", -15: "interrupted", 1: "failed",
                        3: "failed (exit 3)", -9: "failed (exit -9)"}
    assert [t.returncode for t in sw.failed] == [1, 3, -9]
    assert task_status(Task(0, Point("c.yaml"), {}, returncode=-signal.SIGINT, stderr="")) == "interrupted"


@needs_proc
def test_ctrl_c_on_a_sweep_stops_every_worker_as_interrupted(case, tmp_path):
    """Ctrl-C reaches the whole process group: the sweep and its workers each get SIGINT, then
    the sweep sends the workers another. Exit 130, every run interrupted (checkpointed) or
    completed, none failed."""
    work = workdir_of(case, tmp_path)
    (work / "sweep.yaml").write_text("base: long.yaml\ngrid:\n  train.lr: [0.05, 0.1]\n", encoding="utf-8")
    proc = start_cli("sweep", "sweep.yaml", "-j", "2", "--runs-dir", "sweeps", cwd=work, start_new_session=True)
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:  # both workers have created their run
        if len(list((work / "sweeps").glob("*/*/config.yaml"))) == 2:
            break
        time.sleep(0.01)
    time.sleep(0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    r = finish(proc)
    assert "Traceback" not in r.err, r.show()
    assert "failed" not in r.err, r.show()
    assert r.rc in (0, 130), r.show()
    done = [ln for ln in r.err_lines if re.match(r"\[\d/2\]", ln)]
    assert len(done) == 2 and all(": completed" in ln or ": interrupted" in ln for ln in done), r.show()
    [sweep_dir] = list((work / "sweeps").iterdir())
    assert tmp_leftovers(work) == []
    for run in (p for p in sweep_dir.iterdir() if p.is_dir()):
        s = summary(run)
        assert (run / CHECKPOINT).exists() == (s["status"] == "interrupted"), s


# ============================================================================= closed standard streams


def run_closed(work: Path, redirections: str, *args) -> Res:
    """``python -m nncli ARGS`` with some standard descriptors closed by the shell (``>&-``:
    a descriptor that is not open at all, unlike /dev/null)."""
    cmd = " ".join([sys.executable, "-m", "nncli", *(f"'{a}'" for a in map(str, args))])
    proc = subprocess.Popen(["bash", "-c", f"exec {cmd} {redirections}"], cwd=work, env=cli_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return finish(proc)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_closed_stdout_and_stderr(case, tmp_path):
    work = workdir_of(case, tmp_path)
    run = only_run(work)
    # train -q with stdout closed: the run is complete, nothing can be printed: exit 0
    r = run_closed(work, ">&-", "train", "cfg.yaml", "--no-plots", "-q")
    assert r.rc == 0 and r.err == "", r.show()
    new = [p for p in runs_in(work) if p != run]
    assert len(new) == 1 and summary(new[0])["status"] == "completed"
    # and with both closed
    r = run_closed(work, ">&- 2>&-", "train", "cfg.yaml", "--no-plots")
    assert r.rc == 0, r.show()
    # predict to a closed stdout: the predictions go nowhere, no traceback
    r = run_closed(work, ">&-", "predict", run, "data.csv")
    assert r.rc == 0 and r.err == "", r.show()
    # an error with stderr closed: exit 2, and never on stdout
    r = run_closed(work, "2>&-", "predict", "no-such-run", "data.csv")
    assert r.rc == 2 and r.out == b"", r.show()
    r = run_closed(work, "2>&-", "train", "no-such.yaml")
    assert r.rc == 2 and r.out == b"", r.show()
    # predict from a closed stdin: one line, exit 2
    r = run_closed(work, "<&-", "predict", run, "-")
    assert r.rc == 2 and len(r.err_lines) == 1 and "Traceback" not in r.err, r.show()
    assert_consistent_runs(work)
