#!/usr/bin/env python3
"""Write the synthetic datasets of datasets/ from nncli.synth (development tool).

    python scripts/make_synthetic.py            # writes into datasets/ next to this script
    python scripts/make_synthetic.py --out DIR  # somewhere else
    python scripts/make_synthetic.py --check    # only verify the committed files match

Every file uses its generator's default n and noise and the seed recorded in FILES, so
each one is also reproduced by the command printed for it (and shown in
datasets/README.md): ``nncli data NAME -o datasets/FILE --n N --noise X --seed S``.
datasets/xor.csv, the classic 4-row truth table, is not generated and is never touched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nncli import synth  # noqa: E402

# file in datasets/ -> (generator name, seed); n and noise are the registry defaults.
FILES: dict[str, tuple[str, int]] = {
    "xor_clusters.csv": ("xor", 0),
    "circles.csv": ("circles", 0),
    "moons.csv": ("moons", 0),
    "spirals.csv": ("spirals", 0),
    "gauss.csv": ("gauss", 0),
    "sine.csv": ("sine", 0),
}


def command(file: str, name: str, seed: int) -> str:
    g = synth.GENERATORS[name]
    return f"nncli data {name} -o datasets/{file} --n {g.n} --noise {float(g.noise)!r} --seed {seed}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "datasets")
    parser.add_argument("--check", action="store_true",
                        help="compare the existing files with freshly generated ones; write nothing")
    args = parser.parse_args(argv)

    stale = []
    for file, (name, seed) in FILES.items():
        g = synth.GENERATORS[name]
        df = synth.generate(name, n=g.n, noise=g.noise, seed=seed)
        path = args.out / file
        if args.check:
            tmp = args.out / f".{file}.check"
            synth.write_csv(df, tmp)
            same = path.exists() and path.read_bytes() == tmp.read_bytes()
            tmp.unlink()
            print(f"{'ok   ' if same else 'STALE'} {path}")
            if not same:
                stale.append(file)
        else:
            synth.write_csv(df, path)
            print(f"{path}: {len(df)} rows  ({command(file, name, seed)})")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
