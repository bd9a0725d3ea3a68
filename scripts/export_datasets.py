#!/usr/bin/env python3
"""Export scikit-learn's bundled datasets to CSV in datasets/ (development tool, run once).

    pip install scikit-learn        # development only: never a dependency of nncli
    python scripts/export_datasets.py            # writes into datasets/ next to this script
    python scripts/export_datasets.py --out DIR

Writes iris.csv, wine.csv, breast_cancer.csv and digits.csv with readable snake_case
column names and the values exactly as scikit-learn ships them (nothing is scaled). The
bundled files need no network. Floats are written so they read back bit for bit, and the
target is the last column.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nncli.synth import write_csv  # noqa: E402  (atomic write, round-trip floats)


def snake(name: str) -> str:
    """'mean concave points' -> 'mean_concave_points', 'od280/od315_of_diluted_wines' ->
    'od280_od315_of_diluted_wines', 'sepal length (cm)' -> 'sepal_length'."""
    name = re.sub(r"\(.*?\)", "", name)  # drop units
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def frame(bunch, target_name: str, labels):
    import pandas as pd

    columns = [snake(c) for c in bunch.feature_names]
    assert len(set(columns)) == len(columns), columns
    df = pd.DataFrame(bunch.data, columns=columns)
    df[target_name] = [labels[int(t)] for t in bunch.target]
    return df


def iris():
    from sklearn.datasets import load_iris

    b = load_iris()
    return frame(b, "species", [f"Iris-{name}" for name in b.target_names])


def wine():
    from sklearn.datasets import load_wine

    b = load_wine()
    return frame(b, "cultivar", list(b.target_names))  # class_0, class_1, class_2


def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    b = load_breast_cancer()
    return frame(b, "diagnosis", list(b.target_names))  # malignant (0), benign (1)


def digits():
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits

    b = load_digits()
    pixels = b.data.astype(np.int64)
    assert (pixels == b.data).all() and pixels.min() >= 0 and pixels.max() <= 16
    df = pd.DataFrame(pixels, columns=[f"p{i}" for i in range(pixels.shape[1])])
    df["digit"] = b.target.astype(np.int64)
    return df


EXPORTS = {
    "iris.csv": iris,
    "wine.csv": wine,
    "breast_cancer.csv": breast_cancer,
    "digits.csv": digits,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "datasets")
    args = parser.parse_args(argv)
    try:
        import sklearn
    except ImportError:
        print("this tool needs scikit-learn: pip install scikit-learn", file=sys.stderr)
        return 2
    for file, make in EXPORTS.items():
        df = make()
        path = args.out / file
        write_csv(df, path)
        print(f"{path}: {len(df)} rows x {df.shape[1]} columns (scikit-learn {sklearn.__version__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
