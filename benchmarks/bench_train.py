#!/usr/bin/env python3
"""Training speed: nncli against scikit-learn and PyTorch, and against the GEMM floor.

    pip install -e '.[bench]'          # scikit-learn and torch==2.13.0 (CPU)
    python benchmarks/bench_train.py                 # every workload
    python benchmarks/bench_train.py --only W1 W2    # some of them
    python benchmarks/bench_train.py --repeats 5

Workloads (float32 everywhere):
  W1 xor     4 x 2, 2-4-1 tanh, bce, sgd lr 0.5, full batch, 5000 epochs
  W2 digits  1797 x 64 (scaled to [0, 1]), 64-128-10 relu, cross-entropy, adam lr 1e-3, batch 32, 30 epochs
  W3 wide    60000 x 784 synthetic, 784-256-128-10 relu, cross-entropy, batch 128, 2 epochs; sgd and adam

nncli runs its real training loop (nncli.trainer.Trainer, the code path of `nncli train`,
with per-epoch metric recording, without terminal rendering). scikit-learn runs
MLPClassifier with the same layers, solver, learning rate, batch size and epochs (its
convergence test disabled). PyTorch runs torch.nn.Sequential with the same optimizer,
batch size and epochs, reshuffling every epoch, with torch.set_num_threads(cores). The
three are interleaved and repeated; the table gives the median seconds per epoch.

The GEMM floor is the same sequence of matrix products one epoch needs (forward, dW, and
dX for every layer but the first), timed alone with numpy at the same dtype.

Also measured: W3's peak resident memory (a fresh process trains W3 with nncli and reports
ru_maxrss), loading a 60000 x 785 integer CSV through nncli's pipeline, and
`nncli train configs/xor.yaml` from process start to exit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nncli.data import Split  # noqa: E402
from nncli.losses import LOSSES  # noqa: E402
from nncli.model import MLP  # noqa: E402
from nncli.optim import OPTIMIZERS  # noqa: E402
from nncli.tasks import TASKS  # noqa: E402
from nncli.trainer import FitOptions, Trainer, evaluate  # noqa: E402

CORES = os.cpu_count() or 1


# ---------------------------------------------------------------------- workloads


def xor_data():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    return X, np.array([0, 1, 1, 0])


def digits_data():
    import pandas as pd

    df = pd.read_csv(ROOT / "datasets" / "digits.csv")
    y = df.pop("digit").to_numpy()
    return (df.to_numpy(np.float32) / 16.0), y


def wide_data(n=60000, d=784, k=10, seed=0):
    """Seeded synthetic classification data: a random linear teacher with noise, float32."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, k)).astype(np.float32)
    X = np.empty((n, d), np.float32)
    y = np.empty(n, np.int64)
    for s in range(0, n, 10000):  # in chunks: no full-size temporaries in the peak-memory figure
        X[s : s + 10000] = rng.random((min(10000, n - s), d), dtype=np.float32)
        logits = (X[s : s + 10000] - 0.5) @ W + rng.standard_normal((min(10000, n - s), k)).astype(np.float32)
        y[s : s + 10000] = logits.argmax(axis=1)
    return X, y


WORKLOADS = {
    "W1": dict(title="W1 xor", data=xor_data, layers=[2, 4, 1], act="tanh", loss="bce", opt="sgd", lr=0.5, batch="full", epochs=5000),
    "W2": dict(title="W2 digits", data=digits_data, layers=[64, 128, 10], act="relu", loss="cross_entropy", opt="adam", lr=1e-3, batch=32, epochs=30),
    "W3-sgd": dict(title="W3 wide sgd", data=wide_data, layers=[784, 256, 128, 10], act="relu", loss="cross_entropy", opt="sgd", lr=0.01, batch=128, epochs=2),
    "W3-adam": dict(title="W3 wide adam", data=wide_data, layers=[784, 256, 128, 10], act="relu", loss="cross_entropy", opt="adam", lr=1e-3, batch=128, epochs=2),
}


def one_hot(y, k):
    Y = np.zeros((len(y), k), np.float32)
    Y[np.arange(len(y)), y] = 1
    return Y


# ---------------------------------------------------------------------- runners


def run_nncli(w, X, y, seed=0):
    """nncli's training loop driven from arrays, as a library user would (no config, no CSV)."""
    loss = LOSSES[w["loss"]]
    task = TASKS[loss.task]
    k = w["layers"][-1]
    Y = y.reshape(-1, 1).astype(np.float32) if task.name == "binary" else one_hot(y, k)
    rng = np.random.default_rng(seed)
    model = MLP.initialise(w["layers"], [w["act"]] * (len(w["layers"]) - 2), loss.default_output, rng, "xavier", "float32")
    optimizer = OPTIMIZERS[w["opt"]]([model.flat], w["lr"])
    train = Split("train", X, Y)
    trainer = Trainer(model, loss, optimizer, task, train, None, rng, FitOptions(w["epochs"], w["batch"]))
    t = time.perf_counter()
    for _ in trainer.epochs():
        pass
    secs = time.perf_counter() - t
    return secs / w["epochs"], evaluate(model, train, loss, task)[1]


def run_sklearn(w, X, y, seed=0):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    bs = len(X) if w["batch"] == "full" else w["batch"]
    kw = dict(hidden_layer_sizes=tuple(w["layers"][1:-1]), activation=w["act"], solver=w["opt"],
              learning_rate_init=w["lr"], batch_size=bs, max_iter=w["epochs"], tol=0.0,
              n_iter_no_change=w["epochs"] + 1, random_state=seed, shuffle=True, alpha=0.0)
    if w["opt"] == "sgd":
        kw.update(momentum=0.0, nesterovs_momentum=False)
    clf = MLPClassifier(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        clf.fit(X, y)
        secs = time.perf_counter() - t
    return secs / w["epochs"], float(clf.score(X, y))


def run_torch(w, X, y, seed=0):
    import torch

    torch.set_num_threads(CORES)
    torch.manual_seed(seed)
    layers = []
    sizes = w["layers"]
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[w["act"]]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    net = torch.nn.Sequential(*layers)
    opt = (torch.optim.SGD if w["opt"] == "sgd" else torch.optim.Adam)(net.parameters(), lr=w["lr"])
    Xt = torch.from_numpy(X)
    if w["loss"] == "bce":
        yt = torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        yt = torch.from_numpy(y.astype(np.int64))
        loss_fn = torch.nn.CrossEntropyLoss()
    n = len(X)
    bs = n if w["batch"] == "full" else w["batch"]
    t = time.perf_counter()
    for _ in range(w["epochs"]):
        perm = torch.randperm(n)
        total = 0.0
        for s in range(0, n, bs):
            idx = perm[s : s + bs]
            opt.zero_grad(set_to_none=True)
            out = net(Xt[idx])
            loss = loss_fn(out, yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)  # per-epoch loss, as the others record
    secs = time.perf_counter() - t
    with torch.no_grad():
        out = net(Xt)
        pred = (out[:, 0] > 0).long() if w["loss"] == "bce" else out.argmax(1)
        acc = float((pred == torch.from_numpy(y.astype(np.int64))).float().mean())
    return secs / w["epochs"], acc


def gemm_floor(w, X, repeats=3):
    """Seconds for one epoch's matrix products alone: forward, dW, and dX for layers 2..L."""
    sizes = w["layers"]
    n = len(X)
    bs = n if w["batch"] == "full" else w["batch"]
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((o, i)).astype(np.float32) for i, o in zip(sizes[:-1], sizes[1:])]
    batches = [(s, min(bs, n - s)) for s in range(0, n, bs)]
    A = [rng.random((bs, k), dtype=np.float32) for k in sizes]
    D = [rng.random((bs, k), dtype=np.float32) * 1e-3 for k in sizes]
    dW = [np.empty_like(W) for W in Ws]
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        for s, m in batches:
            A[0][:m] = X[s : s + m]  # the minibatch gather, which every trainer also does
            # ndarray.dot with out=: the cheapest call for a product (np.matmul costs a few
            # microseconds more per call on small batches); nncli uses the same
            for l, W in enumerate(Ws):
                A[l][:m].dot(W.T, A[l + 1][:m])
            for l in range(len(Ws) - 1, -1, -1):
                D[l + 1][:m].T.dot(A[l][:m], dW[l])
                if l > 0:
                    D[l + 1][:m].dot(Ws[l], D[l][:m])
        best.append(time.perf_counter() - t)
    return statistics.median(best)


# ---------------------------------------------------------------------- extras


def peak_memory_w3():
    """Peak resident memory of a fresh process that builds W3's data and trains it with nncli (sgd)."""
    code = (
        "import sys, resource; sys.path.insert(0, %r); import benchmarks.bench_train as b; "
        "w = b.WORKLOADS['W3-sgd']; X, y = w['data'](); b.run_nncli(w, X, y); "
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])" % str(ROOT)
    )  # VmHWM, the peak of this process's own memory: Python, numpy, the data and training
    # (ru_maxrss would not do: Linux carries it over from the forking parent across exec)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return int(out.stdout.strip().splitlines()[-1]) * 1024


def csv_load_seconds(repeats=3):
    """nncli's CSV pipeline (read + encode) on a 60000 x 785 integer CSV, like MNIST-as-CSV."""
    from nncli.config import config_from_dict
    from nncli.data import load_dataset

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mnist_like.csv"
        labels = rng.integers(0, 10, 60000)
        pixels = rng.integers(0, 256, (60000, 784))
        pixels[rng.random((60000, 784)) < 0.8] = 0  # mostly zero, as in MNIST
        header = "label," + ",".join(f"p{i}" for i in range(784))
        np.savetxt(path, np.column_stack([labels, pixels]), fmt="%d", delimiter=",", header=header, comments="")
        size = path.stat().st_size
        cfg = config_from_dict({"data": {"train": str(path), "target": "label"}, "model": {"layers": ["auto", 10, "auto"]},
                                "loss": "cross_entropy", "train": {"lr": 0.1, "epochs": 1}}, "bench")
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            load_dataset(cfg, np.random.default_rng(0))
            times.append(time.perf_counter() - t)
    return statistics.median(times), size


def xor_end_to_end(repeats=3, plots=True):
    """Seconds from process start to exit of `nncli train configs/xor.yaml`, median.

    Measured as a user's machine runs it: with Python's bytecode cache on (some sandboxes
    set PYTHONDONTWRITEBYTECODE, which recompiles nncli's modules on every start) and after
    one warm-up run that fills the cache and the OS file cache.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [sys.executable, "-m", "nncli", "train", "configs/xor.yaml", "-q"] + ([] if plots else ["--no-plots"])
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats + 1):
            t = time.perf_counter()
            subprocess.run(cmd + ["--runs-dir", tmp], cwd=ROOT, check=True, capture_output=True, env=env)
            if i:
                times.append(time.perf_counter() - t)
    return statistics.median(times)


# ---------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=list(WORKLOADS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-extras", action="store_true")
    args = ap.parse_args(argv)

    import sklearn
    import threadpoolctl
    import torch

    # numpy's own BLAS (scipy, imported by scikit-learn, brings another one)
    blas = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads, {i.get('architecture')})"
            for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]][:1]
    print(f"cores {CORES}; numpy {np.__version__} ({', '.join(blas)}); scikit-learn {sklearn.__version__}; "
          f"torch {torch.__version__}; python {sys.version.split()[0]}")
    print(f"{'workload':<13} {'nncli s/ep':>11} {'sklearn':>10} {'torch':>10} {'floor':>10} "
          f"{'skl/nncli':>9} {'torch/nncli':>11} {'nncli/floor':>11}   accuracy nncli / sklearn / torch")
    for key in args.only:
        w = WORKLOADS[key]
        X, y = w["data"]()
        res = {"nncli": [], "sklearn": [], "torch": []}
        acc = {}
        for r in range(args.repeats):  # interleaved
            for name, fn in (("nncli", run_nncli), ("sklearn", run_sklearn), ("torch", run_torch)):
                secs, a = fn(w, X, y)
                res[name].append(secs)
                acc[name] = a
        med = {k: statistics.median(v) for k, v in res.items()}
        floor = gemm_floor(w, X, args.repeats)
        print(f"{w['title']:<13} {med['nncli']:>11.3e} {med['sklearn']:>10.3e} {med['torch']:>10.3e} {floor:>10.3e} "
              f"{med['sklearn'] / med['nncli']:>9.2f} {med['torch'] / med['nncli']:>11.2f} {med['nncli'] / floor:>11.2f}"
              f"   {acc['nncli']:.4f} / {acc['sklearn']:.4f} / {acc['torch']:.4f}", flush=True)
    if args.skip_extras:
        return
    X, _ = wide_data()
    rss = peak_memory_w3()
    print(f"W3 peak RSS {rss / 2**20:.0f} MiB; dataset {X.nbytes / 2**20:.0f} MiB float32; "
          f"budget {X.nbytes / 2**20 + 150:.0f} MiB", flush=True)
    secs, size = csv_load_seconds()
    print(f"CSV load 60000 x 785 integers ({size / 1e6:.0f} MB): {secs:.2f} s (median of 3)", flush=True)
    print(f"nncli train configs/xor.yaml end to end: {xor_end_to_end():.2f} s with the pictures, "
          f"{xor_end_to_end(plots=False):.2f} s with --no-plots (medians of 3)", flush=True)


if __name__ == "__main__":
    main()
