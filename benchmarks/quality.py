#!/usr/bin/env python3
"""Gallery quality: nncli against scikit-learn's MLP on the same splits and settings.

    python benchmarks/quality.py               # every gallery config, its committed seed
    python benchmarks/quality.py --seeds 10    # also the mean over seeds 0..9 (split and init)
    python benchmarks/quality.py iris wine     # some configs

For each configs/<name>.yaml, nncli's own pipeline makes the splits and the standardised
inputs; nncli trains through the same code path as `nncli train`, and scikit-learn's
MLPClassifier / MLPRegressor trains on exactly the same arrays with the closest settings:
the same hidden layers and activation, solver (sgd without momentum, or adam), learning
rate, batch size, epochs (max_iter, with its convergence test disabled), L2 (alpha =
l2 * batch_size, since scikit-learn divides its penalty by the batch size) and seed.
Metric: test accuracy (classification) or test R² (regression). Needs the bench extra:
pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nncli.config import load_config  # noqa: E402
from nncli.job import TrainingJob  # noqa: E402
from nncli.trainer import evaluate  # noqa: E402

GALLERY = ["xor_clusters", "circles", "moons", "spirals", "gauss", "iris", "wine", "breast_cancer", "digits", "sine"]
SK_ACT = {"tanh": "tanh", "relu": "relu", "sigmoid": "logistic", "identity": "identity"}


def run_nncli(cfg):
    job = TrainingJob(cfg, "/nonexistent-never-written")
    t = time.perf_counter()
    for _ in job.epochs():
        pass
    secs = time.perf_counter() - t
    _, metric = evaluate(job.model, job.data.test, job.loss, cfg.task)
    return metric, secs, job.data


def run_sklearn(cfg, data):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    t = cfg.train
    hidden = tuple(cfg.model.layers[1:-1])
    acts = set(cfg.model.hidden_activations)
    if len(acts) != 1 or next(iter(acts)) not in SK_ACT:
        raise SystemExit(f"{cfg.name}: scikit-learn needs one hidden activation of {list(SK_ACT)}")
    bs = data.train.n if t.batch_size == "full" else int(t.batch_size)
    kw = dict(
        hidden_layer_sizes=hidden, activation=SK_ACT[next(iter(acts))], solver=t.optimizer if t.optimizer != "momentum" else "sgd",
        learning_rate_init=t.lr, batch_size=bs, max_iter=t.epochs, alpha=t.l2 * bs, random_state=cfg.seed,
        shuffle=t.shuffle, tol=0.0, n_iter_no_change=t.epochs + 1, early_stopping=False,
    )
    if kw["solver"] == "sgd":
        kw.update(momentum=t.momentum if t.optimizer == "momentum" else 0.0, nesterovs_momentum=False, learning_rate="constant")
    else:
        kw.update(beta_1=t.beta1, beta_2=t.beta2, epsilon=t.eps)
    X, Xt = data.train.X.astype(np.float64), data.test.X.astype(np.float64)
    if not cfg.task.is_classifier:
        model = MLPRegressor(**kw)
        y, yt = data.train.Y, data.test.Y
        if y.shape[1] == 1:
            y, yt = y[:, 0], yt[:, 0]
    else:
        model = MLPClassifier(**kw)
        y, yt = cfg.task.true_codes(data.train.Y), cfg.task.true_codes(data.test.Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        model.fit(X, y)
        secs = time.perf_counter() - t0
    return float(model.score(Xt, yt)), secs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=GALLERY)
    ap.add_argument("--seeds", type=int, default=0, help="also report the mean over seeds 0..N-1")
    args = ap.parse_args(argv)
    import sklearn

    print(f"numpy {np.__version__}, scikit-learn {sklearn.__version__}")
    head = f"{'dataset':<14} {'metric':<9} {'nncli':>7} {'sklearn':>8} {'diff':>7} {'nncli s':>8} {'sklearn s':>9}"
    if args.seeds:
        head += f"   {'mean nncli':>10} {'mean sklearn':>12} (seeds 0-{args.seeds - 1})"
    print(head)
    print("-" * len(head))
    worst = 0.0
    for name in args.names:
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        a, ta, data = run_nncli(cfg)
        b, tb = run_sklearn(cfg, data)
        worst = min(worst, a - b)
        metric = "R²" if not cfg.task.is_classifier else "accuracy"
        line = f"{name:<14} {metric:<9} {a:>7.4f} {b:>8.4f} {a - b:>+7.4f} {ta:>8.2f} {tb:>9.2f}"
        if args.seeds:
            ms = []
            for seed in range(args.seeds):
                c = load_config(ROOT / "configs" / f"{name}.yaml", [f"seed={seed}"])
                m, _, d = run_nncli(c)
                ms.append((m, run_sklearn(c, d)[0]))
            ms = np.array(ms)
            line += f"   {ms[:, 0].mean():>10.4f} {ms[:, 1].mean():>12.4f}"
        print(line, flush=True)
    print(f"largest shortfall of nncli against scikit-learn: {-worst:.4f} (target: at most 0.01)")


if __name__ == "__main__":
    main()
