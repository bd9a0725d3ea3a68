#!/usr/bin/env python3
"""`nncli sweep --executor local` (long-lived workers) against `--executor process` (a new
`python -m nncli train` per point), end to end, side by side in one run.

    python benchmarks/sweep_workers.py                  # 48 xor points, --jobs 2, 3 rounds
    python benchmarks/sweep_workers.py --repeats 5 --seeds 8 --jobs 2

The sweep: configs/xor.yaml (as shipped: 2000 epochs of 4 rows, batch 4), grid train.lr (3)
x model.layers (2) x seed (--seeds, 8: 48 points), written into a temporary directory with
the config and its data. Each round times both `nncli sweep` commands from outside
(subprocess, wall clock, start to exit), alternating which goes first; each sweep must
exit 0 with every point completed. Printed: each round, the medians and their ratio.

Also measured, in this process (nncli.workers.LocalWorkerExecutor): the cost of the
per-epoch report (the driver sees each epoch and answers; pruning needs it) as µs per epoch:
one worker trains the same many-epoch point with and without a report, alternately; and
the resident memory (VmRSS) of one worker over --rss-points points.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LRS = [0.1, 0.5, 1.0]
LAYERS = [["auto", 4, "auto"], ["auto", 8, "auto"]]


def workdir(dest: Path, seeds: int, epochs: int | None = None) -> Path:
    """``dest`` with configs/xor.yaml, datasets/xor.csv and sweep.yaml (3 x 2 x seeds points)."""
    import yaml

    (dest / "configs").mkdir(parents=True, exist_ok=True)
    (dest / "datasets").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "configs" / "xor.yaml", dest / "configs" / "xor.yaml")
    shutil.copy(ROOT / "datasets" / "xor.csv", dest / "datasets" / "xor.csv")
    grid = {"train.lr": LRS, "model.layers": LAYERS, "seed": list(range(seeds))}
    if epochs is not None:
        grid["train.epochs"] = [epochs]
    (dest / "sweep.yaml").write_text(yaml.safe_dump({"base": "configs/xor.yaml", "name": "bench", "grid": grid},
                                                    sort_keys=False), encoding="utf-8")
    return dest


def time_sweep(wd: Path, executor: str, jobs: int, points: int, runs_dir: str) -> float:
    """Seconds of one ``nncli sweep sweep.yaml --jobs J --executor E`` (subprocess, start to exit)."""
    argv = [sys.executable, "-m", "nncli", "sweep", "sweep.yaml", "--jobs", str(jobs), "--executor", executor,
            "--runs-dir", runs_dir]
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=wd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"nncli sweep --executor {executor} exited {p.returncode}: {p.stderr.strip()[-500:]}")
    [sweep_dir] = list((wd / runs_dir).iterdir())
    done = sum(1 for r in sweep_dir.glob("*/summary.json") if '"status": "completed"' in r.read_text())
    if done != points:
        raise SystemExit(f"--executor {executor}: {done} of {points} points completed")
    shutil.rmtree(wd / runs_dir)
    return secs


def side_by_side(seeds: int = 8, jobs: int = 2, repeats: int = 3, epochs: int | None = None, out=print) -> dict:
    """{executor: [seconds per round]}, the rounds alternating which executor goes first."""
    points = len(LRS) * len(LAYERS) * seeds
    times: dict[str, list[float]] = {"process": [], "local": []}
    with tempfile.TemporaryDirectory(prefix="nncli-bench-") as tmp:
        wd = workdir(Path(tmp), seeds, epochs)
        for r in range(repeats):
            order = ("process", "local") if r % 2 == 0 else ("local", "process")
            for kind in order:
                times[kind].append(time_sweep(wd, kind, jobs, points, f"runs-{kind}-{r}"))
            out(f"round {r + 1}: process {times['process'][-1]:.2f} s, local {times['local'][-1]:.2f} s")
    return times


def report_cost(epochs: int = 20000, repeats: int = 5, out=print) -> tuple[float, float, float]:
    """(median seconds without a report, with one, µs per epoch of the difference): a worker
    trains xor with a full batch for ``epochs`` epochs, with and without a report (which
    answers None: never prunes) alternately. The time is the run's own train_seconds (wall
    clock from its first epoch to its last, the reports' round trips included; the worker's
    start-up excluded); the first point warms up and is not counted."""
    import json

    from nncli.executors import Task
    from nncli.pointrun import Point
    from nncli.workers import LocalWorkerExecutor

    plain, reported = [], []
    with tempfile.TemporaryDirectory(prefix="nncli-bench-") as tmp:
        wd = workdir(Path(tmp), 1)
        old = os.getcwd()
        os.chdir(wd)
        try:
            ex = LocalWorkerExecutor(1)
            point = Point("configs/xor.yaml", [f"train.epochs={epochs}", 'train.batch_size="full"'], "runs")
            for i in range(2 * repeats + 1):
                with_report = i % 2 == 1
                got = {}
                t = Task(i, point, {})
                ex.run([t], lambda t: got.setdefault("s", json.loads(t.stdout)["train_seconds"]),
                       report=(lambda t, rec: None) if with_report else None)
                if t.returncode != 0:
                    raise SystemExit(f"report benchmark failed: {t.stderr}")
                if i > 0:
                    (reported if with_report else plain).append(got["s"])
        finally:
            os.chdir(old)
    a, b = statistics.median(plain), statistics.median(reported)
    us = (b - a) / epochs * 1e6
    out(f"report round trip: {epochs} epochs in {a:.3f} s without a report, {b:.3f} s with one "
        f"(medians of {repeats}): {us:.1f} µs per epoch")
    return a, b, us


def worker_rss(points: int = 100, epochs: int = 200, out=print) -> list[int]:
    """VmRSS (KiB) of one worker at the last epoch of each of ``points`` xor points."""
    from nncli.sweep import Sweep
    from nncli.workers import LocalWorkerExecutor
    import yaml

    rss: list[int] = []
    with tempfile.TemporaryDirectory(prefix="nncli-bench-") as tmp:
        wd = workdir(Path(tmp), 1)
        (wd / "rss.yaml").write_text(yaml.safe_dump({"base": "configs/xor.yaml", "name": "rss", "grid": {
            "seed": list(range(points)), "train.epochs": [epochs]}}), encoding="utf-8")
        old = os.getcwd()
        os.chdir(wd)
        try:
            sw = Sweep.create("rss.yaml", "runs")
            ex = LocalWorkerExecutor(1)

            def report(t, rec):
                if rec.epoch == epochs:
                    (pid,) = ex.pids().values()
                    rss.append(_rss_kib(pid))
                return None

            ex.run(sw.tasks, lambda t: None, report=report)
        finally:
            os.chdir(old)
    first = rss[min(9, len(rss) - 1)]
    out(f"worker RSS over {len(rss)} points: {rss[0] / 1024:.1f} MiB after point 1, {first / 1024:.1f} MiB after "
        f"point {min(10, len(rss))}, {rss[-1] / 1024:.1f} MiB after point {len(rss)} "
        f"(max {max(rss) / 1024:.1f} MiB; growth from point 10 on: {(max(rss[9:] or rss) - first) / 1024:+.1f} MiB)")
    return rss


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=8, help="seeds per (lr, layers): 6 x seeds points (default 8: 48)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="rounds of the two sweeps, side by side")
    ap.add_argument("--epochs", type=int, default=None, help="train.epochs of every point (default: the config's 2000)")
    ap.add_argument("--report-epochs", type=int, default=20000)
    ap.add_argument("--rss-points", type=int, default=100)
    a = ap.parse_args()
    try:
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass
    points = 6 * a.seeds
    print(f"{points}-point sweep of configs/xor.yaml, --jobs {a.jobs}, {a.repeats} rounds alternating:")
    times = side_by_side(a.seeds, a.jobs, a.repeats, a.epochs)
    mp, ml = statistics.median(times["process"]), statistics.median(times["local"])
    print(f"median: process {mp:.2f} s ({mp / points * a.jobs:.2f} s per point per job), local {ml:.2f} s; "
          f"local is {mp / ml:.2f}x faster")
    report_cost(a.report_epochs, 5)
    worker_rss(a.rss_points)


if __name__ == "__main__":
    main()
