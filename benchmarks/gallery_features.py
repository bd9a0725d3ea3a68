#!/usr/bin/env python3
"""What a schedule and dropout change in the gallery: each pair of configs, seeds 0..N-1.

    python benchmarks/gallery_features.py [--seeds 5]

Trains spirals vs spirals_cosine and digits vs digits_dropout with ``nncli train`` (each
seed draws its own split and initial weights), evaluates each on its held-out test split,
and prints test accuracy and test loss, per seed and their means.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [("spirals", "spirals_cosine"), ("digits", "digits_dropout")]


def score(config: str, seed: int, runs: Path) -> tuple[float, float]:
    run = subprocess.run([sys.executable, "-m", "nncli", "train", f"configs/{config}.yaml", "-q", "--no-plots",
                          "--runs-dir", str(runs), "--set", f"seed={seed}"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    rep = json.loads(subprocess.run([sys.executable, "-m", "nncli", "eval", run, "--json", "--no-plots"], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout)
    return rep["accuracy"], rep["loss"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    print(f"{'config':<16}{'test accuracy (mean)':>22}{'test loss (mean)':>18}   per seed (accuracy / loss)")
    with tempfile.TemporaryDirectory() as tmp:
        for pair in PAIRS:
            for config in pair:
                res = [score(config, s, Path(tmp)) for s in range(args.seeds)]
                acc = sum(a for a, _ in res) / len(res)
                loss = sum(l for _, l in res) / len(res)
                seeds = "  ".join(f"{a:.4f}/{l:.4f}" for a, l in res)
                print(f"{config:<16}{acc:>22.4f}{loss:>18.4f}   {seeds}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
