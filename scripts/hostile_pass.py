#!/usr/bin/env python3
"""A hostile pass over the installed ``nncli``, as a new user would break it; prints counts.

    python scripts/hostile_pass.py [--seed S] [--quick] [--only disk,memory,signals,resumes,tamper]

Five families of cases, each run as real ``nncli`` processes in a scratch directory:

- disk:     a small tmpfs filled to leave 0 B .. 256 KiB free, then train (plain, with
            checkpoints, interrupted), eval, predict -o, data -o, init -o and sweep on it
            (needs root to mount a tmpfs; reported as not run otherwise);
- memory:   ``ulimit -v`` from 150 MiB to 2 GiB around train on small and oversized models,
            predict, and ``nncli data --n 10**9``;
- signals:  SIGTERM at a random moment of train (then resumed, again under random SIGTERMs,
            until it completes), eval, predict -o and sweep;
- resumes:  two ``--resume`` of one interrupted run started together;
- tamper:   one run file at a time flipped, truncated, emptied, deleted or replaced, then
            eval, predict, plot, runs and --resume.

Every case must end with no traceback, an exit code in {0, 1, 2, 130} (2 with exactly one
``nncli: error:`` line), no run directory that is neither complete nor resumable, no
temporary file left by a handled exit, and no silently wrong result: a resumed run equals an
uninterrupted one bit for bit, and an eval or predict that succeeds on a tampered run gives
exactly the untampered output. Exit status: 0 when every case passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NNCLI = shutil.which("nncli") or "nncli"
CODES = {0, 1, 2, 130}

BLOBS_CFG = """\
name: blobs
seed: 3
data:
  train: data.csv
  target: label
  val_split: 0.2
model:
  layers: [auto, 16, auto]
  activation: tanh
loss: cross_entropy
train:
  optimizer: adam
  lr: 0.01
  epochs: {epochs}
  batch_size: 8
  checkpoint_every: {every}
"""


class Tally:
    def __init__(self):
        self.cases = defaultdict(int)
        self.failures = defaultdict(list)
        self.exits = defaultdict(lambda: defaultdict(int))
        self.startup_kills = 0  # SIGTERMs that fell in the interpreter's start-up, before nncli code (documented)

    def record(self, family: str, name: str, problems: list[str]) -> None:
        self.cases[family] += 1
        m = re.search(r"exits? \[?(-?\d+)", name)
        if m:
            self.exits[family][int(m.group(1))] += 1
        if problems:
            self.failures[family].append(f"{name}: {'; '.join(problems)}")
            print(f"FAILED {family}: {self.failures[family][-1]}", flush=True)


def run(args, cwd, env=None, timeout=300, stdin=None, limit_kib=None, stdout_path=None) -> subprocess.CompletedProcess:
    cmd = [NNCLI, *map(str, args)]
    if limit_kib is not None:
        cmd = ["bash", "-c", f'ulimit -v {limit_kib}; exec "$@"', "bash", *cmd]
    out = open(stdout_path, "wb") if stdout_path else subprocess.PIPE
    try:
        return subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.PIPE,
                              timeout=timeout, stdin=subprocess.DEVNULL if stdin is None else stdin)
    finally:
        if stdout_path:
            out.close()


def exit_problems(rc: int, out: bytes, err: bytes) -> list[str]:
    text = (out or b"").decode("utf-8", "replace") + err.decode("utf-8", "replace")
    problems = []
    if "Traceback" in text:
        problems.append("traceback: " + text[text.index("Traceback"):][-300:].replace("\n", " | "))
    if rc not in CODES:
        problems.append(f"exit {rc}")
    errors = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.startswith("nncli: error:")]
    if rc == 2 and len(errors) != 1:
        problems.append(f"exit 2 with {len(errors)} error lines: {err.decode('utf-8', 'replace')[-200:]!r}")
    return problems


def run_dir_problems(root: Path) -> list[str]:
    """Every run directory under root must be complete, or resumable (a checkpoint)."""
    problems = []
    for summary in list(root.rglob("config.yaml")):
        d = summary.parent
        if d.name.startswith("ref") or not (d / "preprocess.json").exists() and not (d / "splits.npz").exists():
            continue
        if (d / "summary.json").exists() or (d / "checkpoint.npz").exists():
            continue
        problems.append(f"{d.name} is neither complete nor resumable ({sorted(p.name for p in d.iterdir())})")
    for d in root.rglob("runs"):
        for sub in d.iterdir() if d.is_dir() else []:
            if sub.is_dir() and not any(sub.iterdir()):
                problems.append(f"empty run directory {sub.name}")
    return problems


def temp_leftovers(root: Path) -> list[str]:
    return [f"temp file left: {p.relative_to(root)}" for p in root.rglob(".*.tmp")]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def npz_content(path: Path) -> str:
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        return hashlib.sha256(b"".join(k.encode() + z[k].tobytes() for k in sorted(z.files))).hexdigest()


def same_run(run: Path, ref: Path) -> list[str]:
    out = []
    if not (run / "summary.json").exists():
        return ["no summary.json after the final resume"]
    if json.loads((run / "summary.json").read_text())["status"] != "completed":
        out.append("not completed")
    if (run / "metrics.csv").read_bytes() != (ref / "metrics.csv").read_bytes():
        out.append("metrics.csv differs from the uninterrupted run")
    if npz_content(run / "model.npz") != npz_content(ref / "model.npz"):
        out.append("model.npz differs from the uninterrupted run")
    return out


def make_workdir(root: Path, epochs: int = 300, every: int = 0, rows: int = 300) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    r = run(["data", "gauss", "-o", root / "data.csv", "--n", rows, "--seed", 1], cwd=root)
    assert r.returncode == 0, r.stderr
    text = (root / "data.csv").read_text().replace(",y\n", ",label\n", 1)
    (root / "data.csv").write_text(text)
    (root / "c.yaml").write_text(BLOBS_CFG.format(epochs=epochs, every=every).replace("  checkpoint_every: 0\n", ""))
    return root


def train_ref(wd: Path, cfg: str = "c.yaml") -> Path:
    r = run(["train", cfg, "-q", "--no-plots", "--runs-dir", "refruns"], cwd=wd)
    assert r.returncode == 0, r.stderr
    return wd / r.stdout.decode().strip()


# ============================================================================= families


def family_disk(t: Tally, scratch: Path, rng: random.Random, quick: bool) -> str:
    mnt = scratch / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        return "not run: cannot mount a tmpfs (needs root)"
    try:
        src = make_workdir(scratch / "disk-src", epochs=200)
        trained = train_ref(src)
        frees = [0, 512, 4096, 8192, 16384, 32768, 65536, 131072, 262144]
        commands = ["train", "train-checkpoints", "train-sigint", "eval", "predict", "data", "init", "sweep"]
        for free in frees[::3] if quick else frees:
            for command in commands:
                for p in list(mnt.iterdir()):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                for name in ("data.csv", "c.yaml"):
                    shutil.copy(src / name, mnt / name)
                (mnt / "k.yaml").write_text((mnt / "c.yaml").read_text() + "  checkpoint_every: 20\n")
                (mnt / "sw.yaml").write_text("base: c.yaml\ngrid:\n  train.lr: [0.01, 0.02]\n")
                run_copy = mnt / "runs" / trained.name
                if command == "eval":
                    shutil.copytree(trained, run_copy)
                fill(mnt, free)
                args = {"train": ["train", "c.yaml", "-q"], "train-checkpoints": ["train", "k.yaml", "-q"],
                        "train-sigint": ["train", "k.yaml", "-q", "--set", "train.epochs=100000"],
                        "eval": ["eval", run_copy], "predict": ["predict", trained, "data.csv", "-o", mnt / "p.csv"],
                        "data": ["data", "spirals", "--n", "20000", "-o", mnt / "s.csv"],
                        "init": ["init", "data.csv", "--target", "label", "-o", mnt / "i.yaml"],
                        "sweep": ["sweep", "sw.yaml"]}[command]
                if command == "train-sigint":
                    p = subprocess.Popen([NNCLI, *map(str, args)], cwd=mnt, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    time.sleep(rng.uniform(1.0, 2.5))
                    p.send_signal(signal.SIGINT)
                    out, err = p.communicate(timeout=120)
                    rc = p.returncode
                else:
                    r = run(args, cwd=mnt)
                    rc, out, err = r.returncode, r.stdout, r.stderr
                problems = exit_problems(rc, out, err) + run_dir_problems(mnt) + temp_leftovers(mnt)
                if command == "predict" and rc == 0 and not (mnt / "p.csv").exists():
                    problems.append("exit 0 without the output")
                if command == "predict" and rc != 0 and (mnt / "p.csv").exists():
                    problems.append("a failed predict left an output")
                t.record("disk", f"{command} with {free} B free (exit {rc})", problems)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    return ""


def fill(mnt: Path, free: int) -> None:
    left = shutil.disk_usage(mnt).free - free
    if left > 0:
        with open(mnt / "ballast", "wb") as fh:
            try:
                fh.write(b"\0" * left)
            except OSError:
                pass


def family_memory(t: Tally, scratch: Path, rng: random.Random, quick: bool) -> str:
    wd = make_workdir(scratch / "mem", epochs=30)
    trained = train_ref(wd)
    limits_mib = [150, 300, 400, 450, 600, 1000, 2000]
    cases = {"small": ["train", "c.yaml", "-q", "--no-plots"],
             "wide": ["train", "c.yaml", "-q", "--no-plots", "--set", "model.layers=[auto, 4000, 4000, auto]"],
             "huge": ["train", "c.yaml", "-q", "--no-plots", "--set", "model.layers=[auto, 100000, 100000, auto]"],
             "full-batch": ["train", "c.yaml", "-q", "--no-plots", "--set", "train.batch_size=full"],
             "predict": ["predict", trained, "data.csv", "-o", "p.csv"],
             "data": ["data", "moons", "--n", str(10**9), "-o", "m.csv"]}
    for limit in limits_mib[::2] if quick else limits_mib:
        for name, args in cases.items():
            for p in (wd / "runs").glob("*") if (wd / "runs").exists() else []:
                shutil.rmtree(p)
            r = run(args, cwd=wd, limit_kib=limit * 1024, timeout=600)
            problems = exit_problems(r.returncode, r.stdout, r.stderr) + run_dir_problems(wd) + temp_leftovers(wd)
            t.record("memory", f"{name} under ulimit -v {limit} MiB (exit {r.returncode})", problems)
    return ""


def family_signals(t: Tally, scratch: Path, rng: random.Random, quick: bool) -> str:
    wd = make_workdir(scratch / "sig", epochs=400, every=0, rows=600)
    (wd / "k.yaml").write_text((wd / "c.yaml").read_text() + "  checkpoint_every: 25\n")
    refs = {cfg: train_ref(wd, cfg) for cfg in ("c.yaml", "k.yaml")}
    trials = 8 if quick else 30
    for i in range(trials):
        cfg = rng.choice(["c.yaml", "k.yaml"])
        problems, rc = [], None
        p = subprocess.Popen([NNCLI, "train", cfg, "-q", "--no-plots", "--runs-dir", f"runs{i}"], cwd=wd,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.0, 3.0))
        started = terminate(p, t)
        out, err = p.communicate(timeout=300)
        if not started and p.returncode == -signal.SIGTERM:
            continue  # the documented start-up window: counted, not a case
        problems += exit_problems(p.returncode, out, err)
        runs = sorted((wd / f"runs{i}").glob("*")) if (wd / f"runs{i}").exists() else []
        rounds = 0
        if p.returncode == 130 and runs:
            run_dir = runs[0]
            while rounds < 10:
                rounds += 1
                q = subprocess.Popen([NNCLI, "train", "--resume", run_dir, "-q", "--no-plots"], cwd=wd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                started = True
                if rng.random() < 0.5:
                    time.sleep(rng.uniform(0.0, 2.0))
                    started = terminate(q, t)
                o2, e2 = q.communicate(timeout=300)
                if not started and q.returncode == -signal.SIGTERM:
                    continue  # the documented start-up window: resume again
                problems += exit_problems(q.returncode, o2, e2)
                if q.returncode != 130:
                    break
            problems += same_run(run_dir, refs[cfg])
        elif p.returncode == 0 and runs:
            problems += same_run(runs[0], refs[cfg])
        elif p.returncode == 130 and not runs:
            pass  # stopped before the run directory existed
        problems += run_dir_problems(wd / f"runs{i}") if (wd / f"runs{i}").exists() else []
        t.record("signals", f"train {cfg} SIGTERM then {rounds} resume(s) (first exit {p.returncode})", problems)
    big = wd / "big.csv"
    big.write_text("x1,x2\n" + "".join(f"{i * 1e-4},{-i * 2e-4}\n" for i in range(400_000)))
    (wd / "sw.yaml").write_text("base: c.yaml\ngrid:\n  train.lr: [0.01, 0.02, 0.03, 0.04]\n")
    old = b"old output\n"
    for i in range(trials):
        command = rng.choice(["eval", "predict", "sweep", "runs"])
        (wd / "p.csv").write_bytes(old)
        args = {"eval": ["eval", refs["c.yaml"], "--no-plots"], "predict": ["predict", refs["c.yaml"], big, "-o", "p.csv"],
                "sweep": ["sweep", "sw.yaml", "--runs-dir", f"sweeps{i}"], "runs": ["runs", "refruns"]}[command]
        p = subprocess.Popen([NNCLI, *map(str, args)], cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.0, 2.5))
        started = terminate(p, t)
        out, err = p.communicate(timeout=300)
        if not started and p.returncode == -signal.SIGTERM:
            continue  # the documented start-up window: counted, not a case
        problems = exit_problems(p.returncode, out, err) + temp_leftovers(wd)
        if p.returncode not in (0, 130):
            problems.append(f"exit {p.returncode} after SIGTERM")
        if command == "predict":
            now = (wd / "p.csv").read_bytes()
            if p.returncode == 130 and now != old:
                problems.append("an interrupted predict replaced the old output")
            if p.returncode == 0 and now.count(b"\n") != 400_001:
                problems.append("a completed predict wrote a partial output")
        t.record("signals", f"{command} SIGTERM (exit {p.returncode})", problems)
    return ""


def family_resumes(t: Tally, scratch: Path, rng: random.Random, quick: bool) -> str:
    wd = make_workdir(scratch / "res", epochs=600, rows=600)
    ref = train_ref(wd)
    for i in range(3 if quick else 6):
        p = subprocess.Popen([NNCLI, "train", "c.yaml", "-q", "--no-plots", "--runs-dir", f"runs{i}"], cwd=wd,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for_training(wd / f"runs{i}")
        time.sleep(rng.uniform(0.0, 0.5))
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=120)
        run_dir = next((wd / f"runs{i}").glob("*"))
        qs = [subprocess.Popen([NNCLI, "train", "--resume", run_dir, "-q", "--no-plots"], cwd=wd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        results = [q.communicate(timeout=300) + (q.returncode,) for q in qs]
        problems = [x for o, e, rc in results for x in exit_problems(rc, o, e)]
        codes = sorted(rc for _, _, rc in results)
        if codes != [0, 2]:
            problems.append(f"exit codes {codes}, expected one 0 and one 2")
        problems += same_run(run_dir, ref)
        t.record("resumes", f"two resumes together (exits {codes})", problems)
    return ""


def nncli_code_runs(pid: int) -> bool:
    """Whether the process handles or holds SIGTERM yet (/proc/PID/status): before that it is
    still in the Python interpreter's own start-up, where the default action (143) is documented."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    masks = {k: int(v, 16) for k, v in (ln.split(":\t") for ln in status.splitlines() if ln[:6] in ("SigBlk", "SigCgt", "SigIgn"))}
    bit = 1 << (signal.SIGTERM - 1)
    return any(m & bit for m in masks.values())


def terminate(p: subprocess.Popen, t: Tally) -> bool:
    """SIGTERM to ``p``; False (and counted) if it fell in the interpreter's start-up."""
    started = nncli_code_runs(p.pid)
    p.send_signal(signal.SIGTERM)
    if not started:
        t.startup_kills += 1
    return started


def wait_for_training(runs: Path, timeout: float = 60) -> None:
    """Until a run directory under ``runs`` has its metrics.csv (training has begun)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runs.is_dir() and any((d / "metrics.csv").exists() for d in runs.iterdir()):
            return
        time.sleep(0.05)


MUTATIONS = ("flip", "flip3", "truncate", "empty", "delete", "garbage")


def mutate(path: Path, how: str, rng: random.Random) -> None:
    if how == "delete":
        path.unlink()
        return
    data = bytearray(path.read_bytes())
    if how.startswith("flip") and data:
        for _ in range(3 if how == "flip3" else 1):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        data = data[: len(data) // 2]
    elif how == "empty":
        data = bytearray()
    elif how == "garbage":
        data = bytearray(rng.choice([b"[1, 2, 3]", b"null", b"PK\x03\x04garbage", b"{\"a\": NaN}", b"epoch,loss\n1,x\n"]))
    path.write_bytes(bytes(data))


def family_tamper(t: Tally, scratch: Path, rng: random.Random, quick: bool) -> str:
    wd = make_workdir(scratch / "tam", epochs=60)
    (wd / "k.yaml").write_text((wd / "c.yaml").read_text().replace("epochs: 60", "epochs: 100000"))
    done = train_ref(wd)
    p = subprocess.Popen([NNCLI, "train", "k.yaml", "-q", "--no-plots", "--runs-dir", "cut"], cwd=wd,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_training(wd / "cut")
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=120)
    cut = next((wd / "cut").glob("*"))
    clean = {"eval": run(["eval", done, "--json", "--no-plots"], cwd=wd).stdout,
             "predict": run(["predict", done, "data.csv"], cwd=wd).stdout}
    clean["eval"] = json.dumps({k: v for k, v in json.loads(clean["eval"]).items() if k not in ("saved", "run", "notes")}, sort_keys=True).encode()
    names = sorted(p.name for p in done.iterdir() if p.is_file() and not p.name.startswith("."))
    cut_names = sorted(p.name for p in cut.iterdir() if p.is_file() and not p.name.startswith("."))
    for target, files in (("done", names), ("cut", cut_names)):
        for name in files:
            for how in MUTATIONS[:3] if quick else MUTATIONS:
                base = done if target == "done" else cut
                work = scratch / "tam-case"
                shutil.rmtree(work, ignore_errors=True)
                shutil.copytree(base, work)
                mutate(work / name, how, rng)
                commands = (["eval", "predict", "plot", "runs"] if target == "done" else ["resume", "runs"])
                for command in commands:
                    args = {"eval": ["eval", work, "--json", "--no-plots"], "predict": ["predict", work, "data.csv"],
                            "plot": ["plot", work], "runs": ["runs", work.parent, "--format", "csv"],
                            "resume": ["train", "--resume", work, "-q", "--no-plots",]}[command]
                    if command == "resume":  # only to its next checkpoint: stop it soon
                        q = subprocess.Popen([NNCLI, *map(str, args)], cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                        time.sleep(1.0)
                        if q.poll() is None:
                            q.send_signal(signal.SIGINT)
                        o, e = q.communicate(timeout=120)
                        rc = q.returncode
                    else:
                        r = run(args, cwd=wd)
                        o, e, rc = r.stdout, r.stderr, r.returncode
                    problems = exit_problems(rc, o, e)
                    if rc == 0 and command == "eval":
                        got = json.dumps({k: v for k, v in json.loads(o).items() if k not in ("saved", "run", "notes")}, sort_keys=True).encode()
                        if got != clean["eval"]:
                            problems.append("eval succeeded with a different report (silently wrong)")
                    if rc == 0 and command == "predict" and o != clean["predict"]:
                        problems.append("predict succeeded with different predictions (silently wrong)")
                    t.record("tamper", f"{target}/{name} {how} -> {command} (exit {rc})", problems)
    return ""


FAMILIES = {"disk": family_disk, "memory": family_memory, "signals": family_signals, "resumes": family_resumes,
            "tamper": family_tamper}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="fewer cases per family")
    ap.add_argument("--only", default=",".join(FAMILIES))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t = Tally()
    notes = {}
    with tempfile.TemporaryDirectory(prefix="nncli-hostile-") as tmp:
        for name in args.only.split(","):
            start = time.monotonic()
            notes[name] = FAMILIES[name](t, Path(tmp), rng, args.quick) or f"{time.monotonic() - start:.0f} s"
            print(f"{name}: {t.cases[name]} cases, {len(t.failures[name])} failed ({notes[name]})", flush=True)
    total = sum(t.cases.values())
    failed = sum(len(v) for v in t.failures.values())
    print(f"\n{'family':<10}{'cases':>7}{'failed':>8}  exit codes (first command of each case)  note")
    for name in args.only.split(","):
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(t.exits[name].items()))
        print(f"{name:<10}{t.cases[name]:>7}{len(t.failures[name]):>8}  {codes:<40} {notes[name]}")
    print(f"{'total':<10}{total:>7}{failed:>8}")
    if t.startup_kills:
        print(f"({t.startup_kills} SIGTERM(s) fell in the Python interpreter's own start-up, before any nncli code "
              "ran: status 143 there is the documented limit; not counted as cases)")
    for name, fails in t.failures.items():
        for f in fails:
            print(f"FAILED {name}: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
