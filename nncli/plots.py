"""Pictures of a run, drawn with matplotlib's Agg backend (imported only here, only when drawing).

- loss.png: training (and validation) loss per epoch, the learning rate on a second
  axis when a train.schedule changes it, and, under train.early_stopping, the epoch whose
  weights were kept (summary.json's best_epoch).
- decision_boundary.png: for a classifier with two numeric input features, the class
  regions over the input plane and, for binary tasks, the contour y_hat = 1/2 (the
  lecture's decision boundary), with the training points on top and the test rows hollow.
- fit.png: for regression, predicted against true per target (training rows, and test rows
  when the run has them), with the diagonal; for one numeric input, the fitted curve too.
- confusion.png: the confusion matrix of an evaluation, counts and row-normalised.
- roc.png: the ROC curve of a binary classifier's evaluation, with the diagonal and the AUC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GRID = 300  # points per axis of the decision-boundary grid
FLAT = 1e-3  # outputs varying less than this over the plane: no boundary to draw, only rounding noise


def _figure(figsize, layout=None):
    """A Figure on the Agg canvas, without pyplot (no global state, no GUI backend).
    ``layout="constrained"``: margins fitted to the labels, legends and colour bars as the
    figure is drawn (one drawing, unlike ``bbox_inches="tight"``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
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


def loss_plot(epochs, loss, val_loss, path: Path, title: str = "", units: str = "", lr=None, best=None) -> Path:
    """``lr``: the learning rate per epoch, drawn on a right-hand axis (None: not drawn).
    ``best``: {"epoch": e, "stopped_early": bool, "monitor": name} of train.early_stopping,
    marked by a vertical line at the epoch whose weights the run kept (None: not drawn)."""
    fig = _figure((6.4, 4.2))  # fixed margins (the labels' extents are known): one drawing, ~0.1 s less than a layout engine
    ax = fig.subplots()
    fig.subplots_adjust(left=0.13, right=0.97 if lr is None else 0.86, bottom=0.12, top=0.92)
    lines = ax.plot(epochs, loss, label="train loss", color="tab:blue")
    if val_loss is not None:
        lines += ax.plot(epochs, val_loss, label="validation loss", color="tab:orange")
    if best is not None:
        why = [f"best {best['monitor']}"] if best.get("monitor") else []
        why += ["stopped early"] if best.get("stopped_early") else []
        lines.append(ax.axvline(best["epoch"], color="tab:red", linestyle=":", linewidth=1.5,
                                label=f"weights kept: epoch {best['epoch']}" + (f" ({', '.join(why)})" if why else "")))
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
    if _title(ax, title or "loss per epoch") > 1:
        fig.subplots_adjust(top=0.87)
    ax.grid(alpha=0.3)
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8)
    return _save(fig, path, tight=False)


def _title(ax, title: str, size: float = 11) -> int:
    """A title that fits above its axes: long ones (a long config name or data source) wrap,
    into at most two lines (the rest shortened with …). Returns the number of lines."""
    import textwrap

    width = ax.get_figure().get_figwidth() * ax.get_position().width  # inches, roughly
    per_line = max(20, int(width * 72 / (0.6 * size)))
    lines = textwrap.wrap(title, per_line, max_lines=2, placeholder=" …") if len(title) > per_line else [title]
    ax.set_title("\n".join(lines), fontsize=size)
    return len(lines)


def can_draw_boundary(prep) -> bool:
    # two numeric inputs only (a missing indicator, data.missing_indicator, is a third)
    return prep.task.is_classifier and len(prep.features) == 2 and not prep.categories and prep.n_inputs == 2


def boundary_spec(model, prep, X_raw: np.ndarray, labels: np.ndarray, test=None) -> dict:
    """What decision_boundary.png shows, as plain arrays and strings (no matplotlib).

    X_raw: (n, 2) training inputs in the data's own units; labels: their class codes (n,).
    test: (X, labels) of the run's test rows alike, drawn hollow (None: none).
    The grid is predicted in the model's own dtype, as ``nncli predict`` computes it.
    """
    X_test = None if test is None else np.asarray(test[0], np.float64).reshape(-1, 2)
    both = X_raw if X_test is None or not len(X_test) else np.vstack([X_raw, X_test])
    lo, hi = both.min(axis=0), both.max(axis=0)
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
        "X_test": X_test, "labels_test": None if test is None else np.asarray(test[1], np.int64),
        "classes": [str(c) for c in prep.classes], "features": list(prep.features[:2]), "target": prep.targets[0],
    }


def boundary_figure(spec: dict, path: Path, title: str = "") -> Path:
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    k = len(spec["classes"])
    G0, G1 = np.meshgrid(spec["g0"], spec["g1"])
    X, labels = spec["X"], spec["labels"]
    X_test, labels_test = spec.get("X_test"), spec.get("labels_test")
    base = colormaps["tab10"]
    cmap = ListedColormap([base(i % 10) for i in range(k)])
    fig = _figure((7, 5), layout="constrained")
    ax = fig.subplots()
    ax.set_xlim(spec["g0"][0], spec["g0"][-1])
    ax.set_ylim(spec["g1"][0], spec["g1"][-1])
    if spec.get("codes") is not None:
        ax.contourf(G0, G1, spec["codes"], levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.25)
    if spec.get("flat"):
        ax.text(0.5, 0.5, spec["flat"], transform=ax.transAxes, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", facecolor="white", alpha=0.9))
    handles = []
    n_all = len(labels) + (0 if labels_test is None else len(labels_test))
    size = 40 if n_all < 50 else 14
    for c in range(k):
        m = labels == c
        handles.append(ax.scatter(X[m, 0], X[m, 1], s=size, color=cmap(c), edgecolors="k", linewidths=0.3,
                                  label=spec["classes"][c]))
    if X_test is not None and len(X_test):
        for c in range(k):
            m = labels_test == c
            ax.scatter(X_test[m, 0], X_test[m, 1], s=size * 1.3, facecolors="none", edgecolors=[cmap(c)], linewidths=1.3)
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="0.3",
                              markeredgewidth=1.3, label=f"hollow: test rows ({len(X_test)})"))
    if spec.get("p") is not None:
        cs = ax.contour(G0, G1, spec["p"], levels=[0.5], colors="k", linewidths=1.5)
        where = _label_spot(cs, ax)
        if where is not None:
            for text in ax.clabel(cs, fmt={0.5: "ŷ = 1/2"}, fontsize=8, manual=[where]):
                text.set_bbox(dict(facecolor="white", alpha=0.75, edgecolor="none", pad=1))
        handles.append(Line2D([], [], color="k", linewidth=1.5, label="ŷ = 1/2"))
    ax.set_xlabel(spec["features"][0])
    ax.set_ylabel(spec["features"][1])
    _title(ax, title or "decision regions")
    ax.legend(handles=handles, title=spec["target"], fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0)
    return _save(fig, path, tight=False)


def _label_spot(cs, ax):
    """The point of the contour ``cs`` farthest inside the plot (in fractions of each axis),
    where its label cannot be cut by the edge; None for an empty contour."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    best, spot = -1.0, None
    for seg in cs.allsegs[0]:
        if len(seg) == 0:
            continue
        u, v = (seg[:, 0] - x0) / (x1 - x0), (seg[:, 1] - y0) / (y1 - y0)
        inside = np.minimum(np.minimum(u, 1 - u), np.minimum(v, 1 - v))
        i = int(np.argmax(inside))
        if inside[i] > best:
            best, spot = float(inside[i]), (float(seg[i, 0]), float(seg[i, 1]))
    return spot


LABEL_CHARS = 24  # class labels longer than this are shortened (with …) on confusion.png


def confusion_spec(matrix, labels) -> dict:
    """What confusion.png shows: the counts (rows: true class, columns: predicted class), and
    each row divided by its total (the fraction of a true class predicted as each class: the
    diagonal is each class's recall); a class without rows has NaN there, drawn blank."""
    C = np.asarray(matrix, np.int64).reshape(len(labels), len(labels))
    totals = C.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        N = np.where(totals > 0, C / np.where(totals > 0, totals, 1), np.nan)
    short = [str(x) if len(str(x)) <= LABEL_CHARS else str(x)[: LABEL_CHARS - 1] + "…" for x in labels]
    return {"counts": C, "normalized": N, "labels": short}


def _fraction(v: float) -> str:
    """A row-normalised cell: 0 and 1 exactly as such (no .00 noise over a large matrix), else two decimals."""
    return "0" if v == 0 else "1" if v == 1 else f"{v:.2f}"


def confusion_plot(matrix, labels, path: Path, title: str = "") -> Path:
    """Counts and row-normalised fractions side by side, each with a colour bar; the figure
    grows with the number of classes (cells of at least about 0.4 inch, panels of at least
    3 inches), and the numbers shrink a little from about 12 classes on."""
    spec = confusion_spec(matrix, labels)
    C, N, names = spec["counts"], spec["normalized"], spec["labels"]
    k = len(names)
    cell = 0.55 if k <= 8 else 0.42
    side = max(3.0, cell * k)
    longest = max((len(x) for x in names), default=1)
    rotate = longest > 3
    label_w = 0.085 * longest  # inches of the longest tick label, roughly (10 px a character at 8 pt)
    below = 0.3 + (0.7 * label_w if rotate else 0.2)  # rotated x tick labels by 45 degrees
    panel_w = side + label_w + 0.45 + 1.1  # y tick labels, y label, colour bar and its label
    fig = _figure((2 * panel_w, side + below + 1.2), layout="constrained")
    axes = fig.subplots(1, 2)
    digits = len(str(int(C.max()))) if C.size else 1
    size = float(np.clip(cell * 72 / (0.62 * max(digits, 4)), 6, 10))
    for ax, M, what, fmt, vmax, cbar in (
            (axes[0], C, "counts", lambda v: f"{int(v)}", max(int(C.max()) if C.size else 1, 1), "rows"),
            (axes[1], N, "row-normalised (recall on the diagonal)", _fraction, 1.0, "fraction of the true class")):
        im = ax.imshow(np.ma.masked_invalid(M.astype(np.float64)), cmap="Blues", vmin=0, vmax=vmax)
        ax.set_xticks(range(k), labels=names, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                      rotation_mode="anchor" if rotate else "default")
        ax.set_yticks(range(k), labels=names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(what, fontsize=10)
        for i in range(k):
            for j in range(k):
                if np.isfinite(M[i, j]):
                    ax.text(j, i, fmt(M[i, j]), ha="center", va="center", fontsize=size,
                            color="white" if M[i, j] > vmax / 2 else "black")
        fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03, label=cbar)
    fig.suptitle(title or "confusion matrix", fontsize=11, wrap=True)
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


CURVE = 400  # points of fit.png's fitted curve


def can_draw_curve(prep) -> bool:
    """One numeric input (no categories, no missing indicator): the fit is a curve over it."""
    return len(prep.features) == 1 and not prep.categories and prep.n_inputs == 1


def fit_spec(model, prep, splits: dict) -> dict:
    """What fit.png shows (regression), as plain arrays and strings (no matplotlib).

    splits: {"train": (X, Y), "test": (X, Y) or absent}: X the network's inputs (as
    Preprocessor.transform gives them), Y the true targets in their own units (n, n_targets).
    Predictions are the model's, in its own dtype, as ``nncli eval`` computes them, back in
    the targets' own units. For one numeric input, ``curve`` is the prediction over CURVE
    points spanning the rows' range of that input, in its own units.
    """
    def predicted(X):
        return np.asarray(prep.inverse_transform(model.predict(X))[0], np.float64).reshape(len(X), -1)

    points = {}
    for name, XY in splits.items():
        if XY is None or not len(XY[0]):
            continue
        X, Y = XY
        points[name] = {"true": np.asarray(Y, np.float64).reshape(len(X), -1), "pred": predicted(X),
                        "x": prep.unscale(np.asarray(X))[:, 0] if can_draw_curve(prep) else None}
    curve = None
    if can_draw_curve(prep) and points:
        xs = np.concatenate([p["x"] for p in points.values()])
        grid = np.linspace(xs.min(), xs.max(), CURVE)
        curve = {"x": grid, "y": predicted((grid[:, None] - prep.x_mean) / prep.x_std), "feature": prep.features[0]}
    return {"targets": list(prep.targets), "points": points, "curve": curve}


MAX_POINTS = 20_000  # rows of a split drawn on fit.png (evenly spaced over the split beyond that)

SPLIT_STYLE = {"train": dict(color="tab:blue", marker="o", label="training rows"),
               "test": dict(color="tab:orange", marker="^", label="test rows")}


def fit_figure(spec: dict, path: Path, title: str = "") -> Path:
    """Per target: predicted against true with the diagonal (perfect predictions); for one
    input, the fitted curve over the data beside it."""
    targets, points, curve = spec["targets"], spec["points"], spec["curve"]
    n = len(targets)
    cols = 2 if curve is not None else min(n, 3)
    rows = n if curve is not None else -(-n // cols)
    fig = _figure((4.2 * cols + 0.6, 3.8 * rows + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    n_pts = sum(len(p["true"]) for p in points.values())
    size = 24 if n_pts < 100 else 10 if n_pts < 5000 else 3
    drawn = {name: np.unique(np.linspace(0, len(p["true"]) - 1, min(len(p["true"]), MAX_POINTS)).astype(np.int64))
             for name, p in points.items()}

    def counted(name, p):
        n, k = len(p["true"]), len(drawn[name])
        return f"{n:,}" if k == n else f"{k:,} of {n:,} drawn"
    for t, target in enumerate(targets):
        ax = axes[t, 0] if curve is not None else axes.flat[t]
        seen = [p["true"][:, t] for p in points.values()] + [p["pred"][:, t] for p in points.values()]
        vals = np.concatenate(seen) if seen else np.zeros(1)
        lo, hi = float(vals.min()), float(vals.max())
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", linestyle="--", linewidth=1,
                label="predicted = true")
        for name, p in points.items():
            st = SPLIT_STYLE.get(name, dict(color="tab:gray", marker="s", label=name))
            d = drawn[name]
            ax.scatter(p["true"][d, t], p["pred"][d, t], s=size, alpha=0.7, edgecolors="none", color=st["color"],
                       marker=st["marker"], label=f"{st['label']} ({counted(name, p)})")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"true {target}")
        ax.set_ylabel(f"predicted {target}")
        ax.set_title(f"{target}: predicted against true", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", markerscale=max(1.0, 24 / size))
        if curve is not None:
            ax = axes[t, 1]
            for name, p in points.items():
                st = SPLIT_STYLE.get(name, dict(color="tab:gray", marker="s", label=name))
                d = drawn[name]
                ax.scatter(p["x"][d], p["true"][d, t], s=size, alpha=0.7, edgecolors="none", color=st["color"],
                           marker=st["marker"], label=st["label"])
            ax.plot(curve["x"], curve["y"][:, t], color="k", linewidth=1.8, label="the network's fit")
            ax.set_xlabel(curve["feature"])
            ax.set_ylabel(target)
            ax.set_title(f"{target} over {curve['feature']}: the fitted curve", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="best", markerscale=max(1.0, 24 / size))
    for ax in list(axes.flat)[n * (2 if curve is not None else 1):]:
        ax.set_visible(False)
    fig.suptitle(title or "fit", fontsize=11)
    return _save(fig, path, tight=False)


def run_spec(run_dir: Path, name: str, history, model, prep, X_raw=None, labels=None, *, test=None, best=None,
             fit=None) -> dict:
    """Everything the pictures of a run show, as plain arrays and strings: the input of
    :func:`render`, computed without matplotlib.

    history: (epochs, train losses, validation losses or None[, learning rates or None]); the
    learning rate is drawn only when it changes. X_raw, labels: the training inputs in their
    own units and their class codes, for decision_boundary.png; test: (X_raw, labels) of the
    test rows alike. best: {"epoch", "stopped_early", "monitor"} of early stopping (None:
    none). fit: the splits of :func:`fit_spec`, for a regression run's fit.png.
    """
    epochs, loss, val, *more = history
    lr = np.asarray(more[0], np.float64) if more and more[0] is not None else None
    spec = {"run_dir": str(run_dir), "name": name,
            "loss": {"epochs": np.asarray(epochs, np.int64), "loss": np.asarray(loss, np.float64),
                     "val": None if val is None else np.asarray(val, np.float64),
                     "lr": lr if lr is not None and len(lr) and np.ptp(lr) > 0 else None,
                     "units": getattr(prep, "loss_units", None) or "",
                     "best": dict(best) if best is not None and best.get("epoch") is not None else None}
            if len(epochs) else None,
            "boundary": None, "fit": None}
    if X_raw is not None and can_draw_boundary(prep):
        spec["boundary"] = boundary_spec(model, prep, X_raw, labels, test)
    if fit is not None and not prep.task.is_classifier:
        spec["fit"] = fit_spec(model, prep, fit)
    return spec


def render(spec: dict) -> list[Path]:
    """Draw the pictures a :func:`run_spec` describes into its run directory; the files written."""
    run_dir, name, out = Path(spec["run_dir"]), spec["name"], []
    if spec["loss"] is not None:
        L = spec["loss"]
        out.append(loss_plot(L["epochs"], L["loss"], L["val"], run_dir / "loss.png", f"{name}: loss per epoch", L.get("units", ""),
                             L.get("lr"), L.get("best")))
    if spec["boundary"] is not None:
        out.append(boundary_figure(spec["boundary"], run_dir / "decision_boundary.png", f"{name}: decision regions"))
    if spec.get("fit") is not None and spec["fit"]["points"]:
        out.append(fit_figure(spec["fit"], run_dir / "fit.png", f"{name}: the fit"))
    return out


def best_of(summary: dict):
    """The early-stopping marker of loss.png from a summary (None without early stopping)."""
    if summary.get("best_epoch") is None:
        return None
    return {"epoch": int(summary["best_epoch"]), "stopped_early": bool(summary.get("stopped_early")),
            "monitor": summary.get("monitor")}


def draw_run(run_dir: Path) -> tuple[list[Path], list[str]]:
    """(Re)draw loss.png and, where they apply, decision_boundary.png and fit.png of a run
    directory, from its files: metrics.csv, summary.json, the model, the training (and test)
    rows saved in splits.npz, or data.test. Returns the files written and notes for the user."""
    from .data import read_labelled_csv, read_train_csv
    from .runs import load_run

    run = load_run(run_dir, require_complete=False)
    rows = run.dir.read_metrics()
    history = ([int(r["epoch"]) for r in rows], [float(r["loss"]) for r in rows],
               [float(r["val_loss"]) for r in rows] if rows and "val_loss" in rows[0] else None,
               [float(r["lr"]) for r in rows] if rows and "lr" in rows[0] else None)
    prep, cfg, notes = run.prep, run.config, []
    boundary, fit, test = can_draw_boundary(prep), not prep.task.is_classifier, None
    frames = {}
    if boundary or fit:
        df, source = read_train_csv(cfg, prep.str_columns())
        train, note = run.rows_of(df, "train", source)
        notes += [note] if note else []
        frames["train"] = (train, source)
        if cfg.data.test is not None:
            tdf, tsource = read_labelled_csv(cfg.data.test, "data.test", prep, cfg.data.sep)
            frames["test"] = (tdf, tsource)
        elif cfg.data.test_split and note is None and "test" in run.splits:
            frames["test"] = (run.rows_of(df, "test", source)[0], source)
    frames = {k: _usable(prep, run.model.dtype, *v) for k, v in frames.items()}
    X_raw = codes = None
    if boundary:
        X_raw, codes = frames["train"][0], frames["train"][1]
        test = frames.get("test")
    spec = run_spec(run.path, cfg.name, history, run.model, prep, X_raw, codes, test=test, best=best_of(run.summary),
                    fit=frames if fit else None)
    return render(spec), notes


def _usable(prep, dtype, df, source):
    """(inputs, targets) of the rows of ``df`` that training would use (a target present; under
    data.missing: drop, every feature present): for a classifier the encoded inputs in their own
    units and the class codes (decision_boundary.png), for regression the network's inputs and
    the true targets in their own units (fit.png)."""
    from .data import usable_rows

    df, at, _, _ = usable_rows(df, prep, source)
    if prep.task.is_classifier:
        # the two numeric columns, gaps imputed as in training (data.missing: impute)
        return prep.encode(df, source, row_offset=at), prep.label_codes(df[prep.targets[0]], source, at)
    return prep.transform(df, source, dtype=dtype, row_offset=at), prep.target_values(df, source, at)
