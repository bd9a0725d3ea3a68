"""Memory: what this process may still allocate, and what training will allocate.

:func:`available_bytes` is the least of what the kernel reports (``MemAvailable`` plus free
swap in /proc/meminfo), the headroom under the address-space limit (``ulimit -v``:
``RLIMIT_AS`` minus the current ``VmSize``) and the cgroup's limit (``memory.max`` minus
``memory.current``); None where none of them is known.

:func:`training_bytes` estimates, part by part, what training allocates once the data are
read: the weights and their gradient (one flat array each), the l2 scratch and the
divergence snapshot and finiteness probe (one parameter-sized array each), the
optimizer's state slots (counted by building the optimizer over a small probe array, so an
optimizer added later is counted right), the early-stopping copy of the best weights, the
per-batch workspace of :class:`nncli.model.MLP` (z, a, delta and f'(z) per layer, the
loss's scratch) for the larger of the batch and the 4096-row evaluation chunk, the
gathered batch, the epoch's row order, the evaluation outputs, the checkpoint written
into memory before it goes to disk, and the parameter copies train.snapshots keeps.
:func:`check_training_memory` refuses a run whose
estimate exceeds what is available, before the run directory exists, naming
``model.layers`` (when the parameters dominate) or ``train.batch_size`` (when the
workspace does) with both figures.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .errors import ConfigError

#: rows of train.evaluate's (and MLP.predict's) chunks: the workspace is sized for at least these
EVAL_CHUNK = 4096
GiB = 1 << 30


def _kib_fields(path: str, names) -> dict[str, int]:
    """{name: bytes} of the ``Name:   N kB`` lines of a /proc file; {} if unreadable."""
    out = {}
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in names:
                    parts = rest.split()
                    if parts and parts[0].isdigit():
                        out[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


def _cgroup_headroom() -> Optional[int]:
    """memory.max - memory.current of this process's cgroup (v2), or None without a limit."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as fh:
            rel = next((line.strip().split(":", 2)[2] for line in fh if line.startswith("0::")), None)
        if rel is None:
            return None
        base = os.path.join("/sys/fs/cgroup", rel.lstrip("/"))
        with open(os.path.join(base, "memory.max"), encoding="ascii") as fh:
            limit = fh.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(base, "memory.current"), encoding="ascii") as fh:
            current = int(fh.read().strip())
        return max(0, int(limit) - current)
    except (OSError, ValueError, IndexError):
        return None


def available_bytes() -> Optional[int]:
    """Bytes this process can still allocate: the least of the kernel's MemAvailable plus
    free swap, the room left under RLIMIT_AS (``ulimit -v``) and the cgroup's limit; None
    when none of them is known."""
    found = []
    mem = _kib_fields("/proc/meminfo", ("MemAvailable", "SwapFree"))
    if "MemAvailable" in mem:
        found.append(mem["MemAvailable"] + mem.get("SwapFree", 0))
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            vm = _kib_fields("/proc/self/status", ("VmSize",)).get("VmSize")
            if vm is not None:
                found.append(max(0, soft - vm))
    except (ImportError, OSError, ValueError):
        pass
    cg = _cgroup_headroom()
    if cg is not None:
        found.append(cg)
    return min(found) if found else None


def gib(n: float) -> str:
    """Bytes as '1.5 GiB' (or MiB below one GiB)."""
    return f"{n / GiB:,.1f} GiB" if n >= GiB else f"{n / (1 << 20):,.1f} MiB"


# ---------------------------------------------------------------------- the estimate


def n_parameters(sizes) -> int:
    """sum_l (n_{l-1} n_l + n_l): every W_l and b_l."""
    return sum(int(a) * int(b) + int(b) for a, b in zip(sizes[:-1], sizes[1:]))


def optimizer_slots(name: str, dtype="float32", hyper: Optional[dict] = None) -> int:
    """How many parameter-sized arrays the optimizer ``name`` allocates (its scratch and its
    state) with hyperparameters ``hyper`` (rmsprop's ``centered`` keeps one more), counted on a
    probe: the optimizer built over a 1024-element array."""
    from .optim import OPTIMIZERS

    probe = np.zeros(1024, dtype)
    try:
        opt = OPTIMIZERS[name]([probe], 0.1, **(hyper or {}))
    except Exception:  # an optimizer that cannot be probed: assume adam's scratch + 2 moments
        return 3
    seen, count, todo = {id(probe)}, 0, [vars(opt)]
    while todo:
        x = todo.pop()
        if isinstance(x, dict):
            todo.extend(x.values())
        elif isinstance(x, (list, tuple)):
            todo.extend(x)
        elif isinstance(x, np.ndarray) and id(x) not in seen:
            seen.add(id(x))
            if x.base is None:  # a view allocates nothing
                count += -(-x.nbytes // probe.nbytes) if x.nbytes >= probe.nbytes else 0
    return count


def training_bytes(sizes, dtype: str = "float32", batch_size="full", n_train: int = 1, n_val: int = 0,
                   optimizer: str = "sgd", early_stopping: bool = False, model_built: bool = True,
                   hyper: Optional[dict] = None, dropout_widths=(), snapshots: int = 0) -> dict[str, int]:
    """What training allocates, part by part, in bytes (the data themselves excluded: they
    are read already). ``model_built``: the weights exist already (else they are counted,
    with the float64 draw of the largest layer they are initialised from). ``dropout_widths``:
    the widths of the hidden layers with dropout (a float64 draw and two masks a batch each)."""
    s = np.dtype(dtype).itemsize
    sizes = [int(k) for k in sizes]
    P = n_parameters(sizes)
    n_in, n_out, H = sizes[0], sizes[-1], sum(sizes[1:])
    B = max(1, n_train if batch_size == "full" else min(int(batch_size), n_train))
    R = max(B, min(EVAL_CHUNK, max(n_train, n_val)))  # rows of the largest forward: a batch or an evaluation chunk
    per_row = (4 * H + 2 * n_out + 2) * s  # Z, A, D, S per layer; the loss's scratch; the softmax row stats
    slots = optimizer_slots(optimizer, dtype, hyper)
    sets = 2 if R > B else 1  # MLP._buffers: the evaluation's larger set is made while the batch's is alive
    parts = {
        "weights": 0 if model_built else P * s + max(a * b for a, b in zip(sizes[:-1], sizes[1:])) * 8,
        "gradient and l2 scratch": 2 * P * s * sets,
        "snapshot and finiteness probe": 2 * P * s,
        f"optimizer state ({optimizer}: {slots} arrays)": slots * P * s,
        "best weights (early stopping)": P * s if early_stopping else 0,
        "checkpoint written in memory": 2 * (1 + max(0, slots - 1) + (1 if early_stopping else 0)) * P * s,
        "workspace": (R + (B if R > B else 0)) * per_row + (0 if B == n_train else B * (n_in + n_out) * s),
        "epoch order and scores": n_train * 16 + max(n_train, n_val) * (n_out * s + 3 * 8 * n_out + 24),
        "dropout masks": sum(B * int(w) * (8 + 2 * s) for w in dropout_widths),
        "snapshots (train.snapshots, for training.gif)": snapshots * P * s,  # one parameter copy each
    }
    return parts


PARAMETER_PARTS = ("weights", "gradient", "snapshot", "optimizer", "best", "checkpoint")


def check_training_memory(cfg, sizes, data, model=None) -> None:
    """ConfigError if what training will allocate (:func:`training_bytes`) exceeds
    :func:`available_bytes`: naming model.layers when the parameters dominate, else
    train.batch_size, with both figures and what to do. Nothing is checked where the
    available memory is unknown. ``model``: the network, when it is built already."""
    avail = available_bytes()
    if avail is None:
        return
    t = cfg.train
    n_train = data.train.n
    n_val = data.val.n if getattr(data, "val", None) is not None else 0
    from .optim import OPTIMIZERS

    hyper = {k: getattr(t, k) for k in OPTIMIZERS[t.optimizer].hyperparameters if hasattr(t, k)}
    rates = getattr(cfg.model, "dropout_rates", None) or []
    widths = [w for w, r in zip(sizes[1:-1], rates) if r > 0]
    parts = training_bytes(sizes, t.dtype, t.batch_size, n_train, n_val, t.optimizer,
                           t.early_stopping is not None, model_built=model is not None, hyper=hyper,
                           dropout_widths=widths, snapshots=getattr(t, "snapshots", 0) or 0)
    need = sum(parts.values())
    if need <= avail:
        return
    params = sum(v for k, v in parts.items() if k.startswith(PARAMETER_PARTS))
    P = n_parameters(sizes)
    if params >= need - params:
        raise ConfigError(
            f"model.layers: {list(sizes)} has {P:,} parameters; training them with {t.optimizer} ({t.dtype}) needs "
            f"about {gib(need)} (weights, gradients, optimizer state, checkpoint) but {gib(avail)} is available; "
            "use fewer or smaller hidden layers" + (" (or train.dtype: float32)" if t.dtype == "float64" else ""))
    rows = n_train if t.batch_size == "full" else min(int(t.batch_size), n_train)
    raise ConfigError(
        f"train.batch_size: {t.batch_size} ({rows:,} rows a batch) needs about {gib(parts['workspace'])} of workspace, "
        f"{gib(need)} in all, but {gib(avail)} is available; use a smaller train.batch_size")
