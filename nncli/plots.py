"""Pictures of a run, drawn with matplotlib's Agg backend (imported only here, only when drawing).

- loss.png: training (and validation) loss per epoch, and the learning rate on a second
  axis when a train.schedule changes it.
- decision_boundary.png: for a classifier with two numeric input features, the class
  regions over the input plane and, for binary tasks, the contour y_hat = 1/2 (the
  lecture's decision boundary), with the training points on top.
- confusion.png: the confusion matrix of an evaluation.
- roc.png: the ROC curve of a binary classifier's evaluation, with the diagonal and the AUC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GRID = 300  # points per axis of the decision-boundary grid
FLAT = 1e-3  # outputs varying less than this over the plane: no boundary to draw, only rounding noise


def _figure(figsize):
    """A Figure on the Agg canvas, without pyplot (no global state, no GUI backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path, tight: bool = True) -> Path:
    """Write fig as PNG atomically. ``tight`` fits the margins to the labels, at the price of
    drawing the figure twice; the per-run pictures use fixed margins instead (their labels
    have known extents), which saves about 0.1 s of every ``nncli train``."""
    import io

    from .csvio import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight" if tight else None)
    atomic_write_bytes(path, buf.getvalue())
    return path


def loss_plot(epochs, loss, val_loss, path: Path, title: str = "", units: str = "", lr=None) -> Path:
    """``lr``: the learning rate per epoch, drawn on a right-hand axis (None: not drawn)."""
    fig = _figure((6, 4))
    ax = fig.subplots()
    lines = ax.plot(epochs, loss, label="train loss", color="tab:blue")
    if val_loss is not None:
        lines += ax.plot(epochs, val_loss, label="validation loss", color="tab:orange")
    if lr is not None:
        ax2 = ax.twinx()
        lines += ax2.plot(epochs, lr, label="learning rate", color="tab:green", linestyle="--", linewidth=1)
        ax2.set_ylabel("learning rate η")
        ax2.set_ylim(bottom=0)
    vals = np.asarray([v for v in list(loss) + list(val_loss if val_loss is not None else []) if np.isfinite(v)])
    if len(vals) and vals.min() > 0 and vals.max() / vals.min() > 100:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"loss E ({units})" if units else "loss E")  # regression: on standardized targets, or not
    ax.set_title(title or "loss per epoch")
    ax.grid(alpha=0.3)
    ax.legend(lines, [ln.get_label() for ln in lines])
    fig.subplots_adjust(left=0.13, right=0.97 if lr is None else 0.86, bottom=0.12, top=0.92)
    return _save(fig, path, tight=False)


def can_draw_boundary(prep) -> bool:
    # two numeric inputs only (a missing indicator, data.missing_indicator, is a third)
    return prep.task.is_classifier and len(prep.features) == 2 and not prep.categories and prep.n_inputs == 2


def boundary_spec(model, prep, X_raw: np.ndarray, labels: np.ndarray) -> dict:
    """What decision_boundary.png shows, as plain arrays and strings (no matplotlib).

    X_raw: (n, 2) training inputs in the data's own units; labels: their class codes (n,).
    The grid is predicted in the model's own dtype, as ``nncli predict`` computes it.
    """
    lo, hi = X_raw.min(axis=0), X_raw.max(axis=0)
    pad = 0.08 * np.maximum(hi - lo, 1e-9)
    g0 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], GRID)
    g1 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], GRID)
    G0, G1 = np.meshgrid(g0, g1)
    A = model.predict((np.column_stack([G0.ravel(), G1.ravel()]) - prep.x_mean) / prep.x_std)
    codes = prep.task.predicted_codes(A)
    spread = float(np.ptp(A, axis=0).max())
    flat = None
    if spread < FLAT:  # a model that predicts about the same everywhere: regions would be rounding noise
        means = [f"{v:.2f}" for v in A.mean(axis=0, dtype=np.float64)]
        shown = means[0] if len(means) == 1 else f"({', '.join(means)})"
        flat = (f"ŷ ≈ {shown} everywhere on this plane (it varies by {spread:.1g}):\n"
                "the model cannot decide anywhere, so there is no decision boundary")
    return {
        "g0": g0, "g1": g1, "codes": None if flat else codes.reshape(G0.shape), "flat": flat,
        # y_hat = P(class 1), for the y_hat = 1/2 contour (one output unit: the binary task)
        "p": A[:, 0].reshape(G0.shape) if prep.n_outputs == 1 and not flat else None,
        "X": np.asarray(X_raw, np.float64), "labels": np.asarray(labels, np.int64),
        "classes": [str(c) for c in prep.classes], "features": list(prep.features[:2]), "target": prep.targets[0],
    }


def boundary_figure(spec: dict, path: Path, title: str = "") -> Path:
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    k = len(spec["classes"])
    G0, G1 = np.meshgrid(spec["g0"], spec["g1"])
    X, labels = spec["X"], spec["labels"]
    base = colormaps["tab10"]
    cmap = ListedColormap([base(i % 10) for i in range(k)])
    fig = _figure((6, 5))
    ax = fig.subplots()
    if spec.get("codes") is not None:
        ax.contourf(G0, G1, spec["codes"], levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.25)
    if spec.get("flat"):
        ax.text(0.5, 0.5, spec["flat"], transform=ax.transAxes, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", facecolor="white", alpha=0.9))
    if spec.get("p") is not None:
        cs = ax.contour(G0, G1, spec["p"], levels=[0.5], colors="k", linewidths=1.5)
        ax.clabel(cs, fmt={0.5: "ŷ = 1/2"}, fontsize=8)
    for c in range(k):
        m = labels == c
        ax.scatter(X[m, 0], X[m, 1], s=40 if len(labels) < 50 else 12, color=cmap(c), edgecolors="k", linewidths=0.3, label=spec["classes"][c])
    ax.set_xlabel(spec["features"][0])
    ax.set_ylabel(spec["features"][1])
    ax.set_title(title or "decision regions")
    ax.legend(title=spec["target"], fontsize=8, loc="best")
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.1, top=0.93)
    return _save(fig, path, tight=False)


def confusion_plot(matrix, labels, path: Path, title: str = "") -> Path:
    C = np.asarray(matrix)
    k = len(labels)
    fig = _figure((1.2 + 0.6 * k, 1.0 + 0.6 * k))
    ax = fig.subplots()
    ax.imshow(C, cmap="Blues")
    ax.set_xticks(range(k), labels=[str(x) for x in labels], rotation=45, ha="right")
    ax.set_yticks(range(k), labels=[str(x) for x in labels])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    top = C.max() if C.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(C[i, j]), ha="center", va="center", color="white" if C[i, j] > top / 2 else "black", fontsize=8)
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)


def roc_plot(fpr, tpr, auc: float, positive: str, path: Path, title: str = "") -> Path:
    """The ROC curve (true against false positive rate, one point per distinct threshold of
    P(class ``positive``), tied scores joined by a straight segment), the diagonal of a
    classifier that guesses, and the AUC in the legend."""
    fig = _figure((5, 5))
    ax = fig.subplots()
    ax.plot(fpr, tpr, color="tab:blue", linewidth=1.8, label=f"ROC curve (AUC {auc:.4f})", zorder=3)
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance (AUC 0.5)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "ROC curve", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(title=f"positive class: {positive}", loc="lower right", fontsize=8, title_fontsize=8)
    return _save(fig, path)


def run_spec(run_dir: Path, name: str, history, model, prep, X_raw=None, labels=None) -> dict:
    """Everything the pictures of a run show, as plain arrays and strings: the input of
    :func:`render`, computed without matplotlib.

    history: (epochs, train losses, validation losses or None[, learning rates or None]); the
    learning rate is drawn only when it changes. X_raw, labels: the training inputs in their
    own units and their class codes, for decision_boundary.png.
    """
    epochs, loss, val, *more = history
    lr = np.asarray(more[0], np.float64) if more and more[0] is not None else None
    spec = {"run_dir": str(run_dir), "name": name,
            "loss": {"epochs": np.asarray(epochs, np.int64), "loss": np.asarray(loss, np.float64),
                     "val": None if val is None else np.asarray(val, np.float64),
                     "lr": lr if lr is not None and len(lr) and np.ptp(lr) > 0 else None,
                     "units": getattr(prep, "loss_units", None) or ""} if len(epochs) else None,
            "boundary": None}
    if X_raw is not None and can_draw_boundary(prep):
        spec["boundary"] = boundary_spec(model, prep, X_raw, labels)
    return spec


def render(spec: dict) -> list[Path]:
    """Draw the pictures a :func:`run_spec` describes into its run directory; the files written."""
    run_dir, name, out = Path(spec["run_dir"]), spec["name"], []
    if spec["loss"] is not None:
        L = spec["loss"]
        out.append(loss_plot(L["epochs"], L["loss"], L["val"], run_dir / "loss.png", f"{name}: loss per epoch", L.get("units", ""),
                             L.get("lr")))
    if spec["boundary"] is not None:
        out.append(boundary_figure(spec["boundary"], run_dir / "decision_boundary.png", f"{name}: decision regions"))
    return out


def draw_run(run_dir: Path) -> tuple[list[Path], list[str]]:
    """(Re)draw loss.png and, where it applies, decision_boundary.png of a run directory,
    from its files: metrics.csv, the model, and the training rows saved in splits.npz.
    Returns the files written and notes for the user."""
    from .data import read_train_csv
    from .runs import load_run

    run = load_run(run_dir, require_complete=False)
    rows = run.dir.read_metrics()
    history = ([int(r["epoch"]) for r in rows], [float(r["loss"]) for r in rows],
               [float(r["val_loss"]) for r in rows] if rows and "val_loss" in rows[0] else None,
               [float(r["lr"]) for r in rows] if rows and "lr" in rows[0] else None)
    prep, X_raw, codes, notes = run.prep, None, None, []
    if can_draw_boundary(prep):
        df, source = read_train_csv(run.config, prep.str_columns())
        df, note = run.rows_of(df, "train", source)
        notes += [note] if note else []
        X_raw = prep.encode(df, source)  # the two numeric columns, gaps imputed as in training (data.missing: impute)
        codes = prep.label_codes(df[prep.targets[0]], source)
    return render(run_spec(run.path, run.config.name, history, run.model, prep, X_raw, codes)), notes
