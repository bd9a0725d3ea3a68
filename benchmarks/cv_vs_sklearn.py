#!/usr/bin/env python3
"""`nncli cv` against scikit-learn's cross_val_score on the same folds and settings.

    python benchmarks/cv_vs_sklearn.py                         # configs/iris.yaml, 5 folds
    python benchmarks/cv_vs_sklearn.py configs/wine.yaml --folds 10
    python benchmarks/cv_vs_sklearn.py --seeds 5               # also seeds 0..4 (folds and init)

nncli's side is the real command, `nncli cv CONFIG --folds K --json`, in a subprocess. Its
folds (cv.yaml: each fold's rows of data.train) are checked to be exactly the folds of
scikit-learn's StratifiedKFold(K, shuffle=True, random_state=seed), and scikit-learn's side
is cross_val_score over those same (train, validation) rows of the same table, with
Pipeline(StandardScaler(), MLPClassifier(...)) and the config's settings: the hidden
layers and activation, solver (adam, or sgd without momentum), learning rate, batch size,
epochs (max_iter, with the convergence test off: tol=0, n_iter_no_change > epochs), L2
(alpha = l2 * batch_size: scikit-learn divides its penalty by the batch size), shuffling
and seed (random_state). Printed: each fold's validation accuracy on both sides, both
means and their difference. Needs scikit-learn (the test or bench extra).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SK_ACT = {"tanh": "tanh", "relu": "relu", "sigmoid": "logistic", "identity": "identity"}


def run_nncli(config: Path, folds: int, overrides=(), cwd: Path = ROOT) -> tuple[dict, list[np.ndarray]]:
    """(`nncli cv --json`'s object, each fold's validation rows of data.train from cv.yaml)."""
    import yaml

    with tempfile.TemporaryDirectory() as runs:
        argv = [sys.executable, "-m", "nncli", "cv", str(config), "--folds", str(folds), "--json", "--runs-dir", runs]
        for s in overrides:
            argv += ["--set", s]
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"nncli cv exited {p.returncode}: {p.stderr.strip()}")
        out = json.loads(p.stdout)
        doc = yaml.safe_load((Path(out["cv_dir"]) / "cv.yaml").read_text(encoding="utf-8"))
    return out, [np.array(f["val_rows"], dtype=np.int64) for f in doc["folds"]]


def sklearn_model(cfg, n_train: int):
    """Pipeline(StandardScaler, MLPClassifier) with the config's settings (see the module docstring)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t = cfg.train
    acts = set(cfg.model.hidden_activations)
    if len(acts) != 1 or next(iter(acts)) not in SK_ACT:
        raise SystemExit(f"{cfg.name}: scikit-learn needs one hidden activation of {list(SK_ACT)}")
    if t.optimizer not in ("adam", "sgd"):
        raise SystemExit(f"{cfg.name}: scikit-learn's MLP has the solvers adam and sgd, not {t.optimizer}")
    bs = n_train if t.batch_size == "full" else int(t.batch_size)
    kw = dict(hidden_layer_sizes=tuple(int(s) for s in cfg.model.layers[1:-1]), activation=SK_ACT[next(iter(acts))],
              solver=t.optimizer, learning_rate_init=t.lr, batch_size=bs, max_iter=t.epochs, alpha=t.l2 * bs,
              random_state=cfg.seed, shuffle=t.shuffle, tol=0.0, n_iter_no_change=t.epochs + 1, early_stopping=False)
    if t.optimizer == "sgd":
        kw.update(momentum=0.0, nesterovs_momentum=False, learning_rate="constant")
    else:
        kw.update(beta_1=t.beta1, beta_2=t.beta2, epsilon=t.eps)
    steps = [StandardScaler()] if cfg.data.standardize else []
    return make_pipeline(*steps, MLPClassifier(**kw))


def compare(config: Path | str = ROOT / "configs" / "iris.yaml", folds: int = 5, overrides=(), cwd: Path = ROOT) -> dict:
    """Both sides on the same folds: {"nncli": [...], "sklearn": [...], "nncli_mean", "sklearn_mean", "diff",
    "same_folds_as_StratifiedKFold"}."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from nncli.config import load_config
    from nncli.csvio import read_csv

    config = Path(config)
    cfg = load_config(cwd / config if not config.is_absolute() else config, list(overrides))
    out, val_rows = run_nncli(config, folds, overrides, cwd)
    if not out["stratified"]:
        raise SystemExit(f"{config}: a classifier config is needed (scikit-learn's cross_val_score of an MLPClassifier)")
    df = read_csv(cwd / cfg.data.train, "data.train", str_columns=cfg.data.targets, sep=cfg.data.sep)
    y = df[cfg.data.targets[0]].astype(str).to_numpy()
    features = cfg.data.features or [c for c in df.columns if c not in cfg.data.targets and c not in cfg.data.exclude]
    X = df[features].to_numpy(np.float64)
    n = len(y)
    splits = [(np.setdiff1d(np.arange(n), v), v) for v in val_rows]
    theirs = [test for _, test in StratifiedKFold(folds, shuffle=True, random_state=out["seed"]).split(X, y)]
    same = len(theirs) == len(val_rows) and all(np.array_equal(a, b) for a, b in zip(theirs, val_rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = cross_val_score(sklearn_model(cfg, len(splits[0][0])), X, y, cv=splits, scoring="accuracy")
    ours = [r["val_accuracy"] for r in out["runs"]]
    return {"nncli": ours, "sklearn": [float(s) for s in sk], "nncli_mean": float(np.mean(ours)),
            "sklearn_mean": float(np.mean(sk)), "diff": float(np.mean(ours) - np.mean(sk)),
            "same_folds_as_StratifiedKFold": same, "seed": out["seed"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="configs/iris.yaml")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=0, help="also compare with seed=0..N-1 (folds and initial weights)")
    args = ap.parse_args(argv)
    import sklearn

    print(f"numpy {np.__version__}, scikit-learn {sklearn.__version__}; {args.config}, {args.folds} folds")
    runs = [("the config's seed", [])] + [("--set seed=" + str(s), [f"seed={s}"]) for s in range(args.seeds)]
    diffs = []
    for label, overrides in runs:
        r = compare(args.config, args.folds, overrides, Path.cwd())
        diffs.append(r["diff"])
        print(f"{label} ({r['seed']}): folds identical to StratifiedKFold(shuffle=True): {r['same_folds_as_StratifiedKFold']}")
        print("  fold    " + " ".join(f"{i + 1:>7}" for i in range(args.folds)) + "      mean")
        print("  nncli   " + " ".join(f"{a:>7.4f}" for a in r["nncli"]) + f"   {r['nncli_mean']:.4f}")
        print("  sklearn " + " ".join(f"{a:>7.4f}" for a in r["sklearn"]) + f"   {r['sklearn_mean']:.4f}")
        print(f"  difference of the means (nncli - scikit-learn): {r['diff']:+.4f}", flush=True)
    if len(diffs) > 1:
        print(f"mean difference over {len(diffs)} comparisons: {np.mean(diffs):+.4f}; largest: {max(diffs, key=abs):+.4f}")


if __name__ == "__main__":
    main()
