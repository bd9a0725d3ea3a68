#!/usr/bin/env python3
"""A TPE study with median pruning against a grid of the same budget, on configs/moons.yaml.

    python benchmarks/tpe_vs_grid.py                  # budget 16, TPE seed 0, 2 jobs
    python benchmarks/tpe_vs_grid.py --seeds 0 1 2    # one TPE study per seed (the grid runs once)

Both sides are the real command, ``nncli sweep SWEEP.yaml --executor local --jobs J``, in
a subprocess, on the moons config as it is (300 epochs, adam, 15% of the rows held out for
validation, which ranks the runs):

- grid: a plain sweep (no Optuna) of train.lr in {1e-4, 1e-3, 1e-2, 1e-1} times the hidden
  width in {2, 4, 16, 64}: 16 runs, each trained for every epoch;
- TPE: ``search: {method: tpe, trials: 16, seed: S}`` over the same space (train.lr
  log-uniform on [1e-4, 1e-1], the width a choice of the same four), with
  ``prune: {method: median, warmup_epochs: 30}`` (Optuna's MedianPruner: 5 completed trials
  before it prunes, then a run whose best val_accuracy so far is below the median of the
  completed runs at the same epoch stops).

Printed for each: the best validation accuracy (results.csv, the sweep's ranked table: ties
broken by the lower val_loss), that run's val_loss, how many runs reached that accuracy, the
point, the runs completed and pruned, and the epochs trained (the sum of
epochs_run over the runs: the work done), and the wall time. With --jobs 2 a study's trial
order depends on timing (TPE sees the results finished when it asks), so a rerun can
differ slightly; --jobs 1 is deterministic.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LRS = [1.0e-4, 1.0e-3, 1.0e-2, 1.0e-1]
WIDTHS = [2, 4, 16, 64]


def grid_sweep(name: str) -> str:
    layers = ", ".join(f"[auto, {w}, auto]" for w in WIDTHS)
    return (f"base: configs/moons.yaml\nname: {name}\nmetric: val_accuracy\n"
            f"grid:\n  train.lr: [{', '.join(map(str, LRS))}]\n  model.layers: [{layers}]\n")


def tpe_sweep(name: str, trials: int, seed: int, warmup: int) -> str:
    layers = ", ".join(f"[auto, {w}, auto]" for w in WIDTHS)
    return (f"base: configs/moons.yaml\nname: {name}\nmetric: val_accuracy\n"
            f"search: {{method: tpe, trials: {trials}, seed: {seed}}}\n"
            f"grid:\n  model.layers: [{layers}]\n"
            f"params:\n  train.lr: {{log_uniform: [{LRS[0]}, {LRS[-1]}]}}\n"
            f"prune: {{method: median, warmup_epochs: {warmup}}}\n")


def run_sweep(text: str, name: str, tmp: Path, jobs: int) -> dict:
    """Run ``nncli sweep`` on the sweep text (cwd: the repository, so configs/ and datasets/
    resolve); the figures of its results.csv."""
    f = tmp / f"{name}.yaml"
    f.write_text(text, encoding="utf-8")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "nncli", "sweep", str(f), "--runs-dir", str(tmp / "runs"),
                        "--executor", "local", "--jobs", str(jobs)], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{name}: nncli sweep exited {p.returncode}:\n{p.stderr}")
    sweep_dir = Path(p.stdout.strip().splitlines()[-1])
    sweep_dir = sweep_dir if sweep_dir.is_absolute() else ROOT / sweep_dir
    with open(sweep_dir / "results.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    best = rows[0]  # the ranked table's first: the best val_accuracy, ties by the lower val_loss
    return {
        "name": name, "runs": len(rows), "completed": sum(r["status"] == "completed" for r in rows),
        "pruned": sum(r["status"] == "pruned" for r in rows), "epochs": sum(int(r["epochs"]) for r in rows),
        "best": float(best["val_accuracy"]), "best_loss": float(best["val_loss"]),
        "at_best": sum(r["val_accuracy"] != "" and float(r["val_accuracy"]) == float(best["val_accuracy"]) for r in rows),
        "lr": best.get("train.lr", ""), "layers": best.get("model.layers", ""),
        "wall": wall,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="TPE seeds, one study each (default: 0)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time on each side (default 2)")
    ap.add_argument("--warmup", type=int, default=30, help="prune.warmup_epochs (default 30: a tenth of the 300 epochs)")
    args = ap.parse_args(argv)
    budget = len(LRS) * len(WIDTHS)
    with tempfile.TemporaryDirectory(prefix="nncli-tpe-vs-grid-") as d:
        tmp = Path(d)
        results = [run_sweep(grid_sweep("grid"), "grid", tmp, args.jobs)]
        for seed in args.seeds:
            results.append(run_sweep(tpe_sweep(f"tpe-s{seed}", budget, seed, args.warmup), f"tpe-s{seed}", tmp, args.jobs))
    print(f"configs/moons.yaml, budget {budget} runs, --jobs {args.jobs}, ranked by val_accuracy "
          f"({300} epochs per run at most)")
    print(f"{'sweep':<10} {'best val_acc':>12} {'its val_loss':>12} {'runs at best':>12} {'completed':>9} {'pruned':>6} "
          f"{'epochs trained':>14} {'wall s':>7}  best point")
    for r in results:
        print(f"{r['name']:<10} {r['best']:>12.4f} {r['best_loss']:>12.4f} {r['at_best']:>12} {r['completed']:>9} {r['pruned']:>6} "
              f"{r['epochs']:>14} {r['wall']:>7.1f}  lr={r['lr']} layers={r['layers']}")
    grid = results[0]
    for r in results[1:]:
        verdict = "holds" if r["best"] >= grid["best"] and r["epochs"] < grid["epochs"] else "does NOT hold"
        print(f"{r['name']}: accuracy {r['best']:.4f} vs grid {grid['best']:.4f}, epochs {r['epochs']} vs {grid['epochs']} "
              f"({r['epochs'] / grid['epochs']:.0%}): TPE >= grid with fewer epochs {verdict}")


if __name__ == "__main__":
    main()
