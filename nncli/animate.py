"""training.gif: the model recorded K times during training (train.snapshots: K, or
``nncli train --animate``), drawn frame by frame.

- 2-D classifiers (the runs that get decision_boundary.png): the class regions over the
  input plane and, for binary tasks, the contour y_hat = 1/2, evolving; the training points
  on top.
- 1-D regression (one numeric input, one target): the fitted curve evolving over the
  training points.
- Other tasks: no GIF (one warning says why).

:class:`Snapshots` keeps copies of the flat parameter array (``model.flat``) after evenly
spaced epochs, the first and the last included; nothing of training is touched. The frames
are predicted on a separate copy of the network and drawn with matplotlib's Agg backend;
Pillow writes the GIF (both imported only when drawing). Each frame's title names its epoch
and its training loss (the ``loss`` column of metrics.csv); the GIF's comment lists the
epochs of its frames, ``epochs: 1,26,...``.

Snapshots live in memory only: a resumed run's GIF starts at the epoch it was resumed from.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np

DEFAULT = 40  # snapshots of ``nncli train --animate``
GRID = 100  # points per axis of a frame's region grid (decision_boundary.png uses plots.GRID)
CURVE = 400  # points of a frame's fitted curve
FRAME_MS = 120  # each frame shown this long; the last one longer
LAST_MS = 1500
GIF = "training.gif"
FIGSIZE, DPI = (5.5, 4.6), 80  # 440 x 368 pixels a frame
MARGINS = dict(left=0.13, right=0.97, bottom=0.11, top=0.92)  # the axes' box, as fractions of the frame


def planned_epochs(k: int, epochs: int) -> list[int]:
    """The epochs recorded: k evenly spaced over 1..epochs, the first and the last included
    (every epoch when k >= epochs)."""
    if k >= epochs:
        return list(range(1, epochs + 1))
    return [int(e) for e in np.unique(np.round(np.linspace(1, epochs, k)).astype(np.int64))]


class Snapshots:
    """Copies of the parameters after the planned epochs: (epoch, loss, flat) each."""

    def __init__(self, k: int, epochs: int):
        self.k = k
        self.planned = set(planned_epochs(k, epochs))
        self.frames: list[tuple[int, float, np.ndarray]] = []
        self.resumed_at: Optional[int] = None
        self.last_note = ""  # said in the last frame's title: why its epoch is not the last one trained

    def take(self, epoch: int, loss: float, flat: np.ndarray, force: bool = False) -> None:
        if (force or epoch in self.planned) and not (self.frames and self.frames[-1][0] == epoch):
            self.frames.append((int(epoch), float(loss), flat.copy()))

    def start(self, epoch: int, history, flat: np.ndarray) -> None:
        """A resumed run: the weights of the checkpoint's epoch are its first frame."""
        if epoch > 0 and history:
            self.resumed_at = epoch
            self.take(epoch, history[-1].loss, flat, force=True)

    def close(self, result, history, flat: np.ndarray) -> None:
        """The network training ended with, as the last frame when it is not the last snapshot
        (stopped early, restored best weights, diverged, interrupted between snapshots)."""
        epoch = result.best_epoch if getattr(result, "best_epoch", None) else result.epochs_run
        if self.frames and np.array_equal(self.frames[-1][2], flat):
            return
        if getattr(result, "best_epoch", None):
            self.last_note = "the weights early stopping kept"
        elif result.status != "completed":
            self.last_note = result.status
        loss = next((r.loss for r in history if r.epoch == epoch), history[-1].loss if history else float("nan"))
        self.frames.append((int(epoch), float(loss), flat.copy()))


def kind(prep) -> tuple[Optional[str], str]:
    """('boundary' | 'curve', '') for a task with a GIF, else (None, why not)."""
    from .plots import can_draw_boundary

    if can_draw_boundary(prep):
        return "boundary", ""
    if (not prep.task.is_classifier and prep.n_inputs == 1 and prep.n_outputs == 1 and len(prep.features) == 1
            and not prep.categories):
        return "curve", ""
    what = "classifier" if prep.task.is_classifier else "regression"
    return None, (f"train.snapshots: no {GIF} for this {what} ({prep.n_inputs} network inputs, {prep.n_outputs} outputs): "
                  "it is drawn for classifiers of two numeric inputs and for regression of one numeric input on one target")


# ---------------------------------------------------------------------- what each frame shows (numpy only)


def boundary_grid(X_raw: np.ndarray, n: int = GRID):
    """The grid axes (g0, g1) over the training points, padded as decision_boundary.png's."""
    lo, hi = X_raw.min(axis=0), X_raw.max(axis=0)
    pad = 0.08 * np.maximum(hi - lo, 1e-9)
    return np.linspace(lo[0] - pad[0], hi[0] + pad[0], n), np.linspace(lo[1] - pad[1], hi[1] + pad[1], n)


def boundary_frame(model, prep, g0, g1) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(class codes (len(g1), len(g0)), y_hat = P(class 1) on the grid or None) of ``model``:
    the whole grid predicted in one vectorised pass."""
    G0, G1 = np.meshgrid(g0, g1)
    A = model.predict((np.column_stack([G0.ravel(), G1.ravel()]) - prep.x_mean) / prep.x_std)
    codes = prep.task.predicted_codes(A).reshape(G0.shape)
    p = A[:, 0].astype(np.float64).reshape(G0.shape) if prep.n_outputs == 1 else None
    return codes, p


def curve_frame(model, prep, xs: np.ndarray) -> np.ndarray:
    """The fitted values at ``xs`` (data units in and out)."""
    A = model.predict((xs[:, None] - prep.x_mean) / prep.x_std)
    return prep.unscale_targets(A)[:, 0]


def frames_of(snaps: Snapshots, model, prep, X_raw: np.ndarray, y: np.ndarray, what: str):
    """What every frame shows: (epoch, loss, arrays) for each snapshot, predicted on a copy
    of ``model`` (``model`` itself is not touched)."""
    net = model.astype(model.dtype)  # a copy with its own flat array
    if what == "boundary":
        axes = boundary_grid(X_raw)
    else:
        lo, hi = float(X_raw[:, 0].min()), float(X_raw[:, 0].max())
        pad = 0.04 * max(hi - lo, 1e-9)
        axes = (np.linspace(lo - pad, hi + pad, CURVE),)
    out = []
    for epoch, loss, flat in snaps.frames:
        np.copyto(net.flat, flat)
        out.append((epoch, loss, boundary_frame(net, prep, *axes) if what == "boundary" else curve_frame(net, prep, axes[0])))
    return axes, out


# ---------------------------------------------------------------------- drawing


def _region_image(codes: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """RGB of the class regions: the class colour at alpha 0.25 over white, as contourf draws them."""
    return 1.0 - 0.25 * (1.0 - colours[codes])


def render_gif(path: Path, name: str, prep, X_raw, y, what: str, axes, frames, last_note: str = "") -> Path:
    """Draw the frames with Agg and write them as one GIF (atomically); ``last_note`` is added
    to the last frame's title."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from PIL import Image

    from .csvio import atomic_file

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    ax = fig.subplots()
    dynamic = []
    if what == "boundary":
        k = len(prep.classes)
        base = colormaps["tab10"]
        cmap = ListedColormap([base(i % 10) for i in range(k)])
        colours = np.array([cmap(i)[:3] for i in range(k)])
        g0, g1 = axes
        extent = (g0[0], g0[-1], g1[0], g1[-1])
        img = ax.imshow(_region_image(frames[0][2][0], colours), origin="lower", extent=extent, aspect="auto",
                        interpolation="nearest", zorder=0)
        X, labels = np.asarray(X_raw, np.float64), np.asarray(y, np.int64)
        for c in range(k):
            m = labels == c
            ax.scatter(X[m, 0], X[m, 1], s=30 if len(labels) < 50 else 9, color=cmap(c), edgecolors="k", linewidths=0.3,
                       label=str(prep.classes[c]), zorder=3)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xlabel(prep.features[0])
        ax.set_ylabel(prep.features[1])
        ax.legend(title=prep.targets[0], fontsize=7, loc="best")
    else:
        xs = axes[0]
        ax.scatter(X_raw[:, 0], y, s=9, color="tab:blue", alpha=0.6, label="training rows", zorder=2)
        (line,) = ax.plot(xs, frames[0][2], color="tab:red", linewidth=2, label="fitted ŷ(x)", zorder=3)
        fitted = np.concatenate([f[2] for f in frames])
        fitted = fitted[np.isfinite(fitted)]
        lo, hi = float(np.min(y)), float(np.max(y))
        span = max(hi - lo, 1e-9)
        if len(fitted):  # follow the curve a little beyond the data, not to a wild first guess
            lo, hi = max(lo - 0.5 * span, min(lo, fitted.min())), min(hi + 0.5 * span, max(hi, fitted.max()))
        ax.set_ylim(lo - 0.05 * span, hi + 0.05 * span)
        ax.set_xlim(xs[0], xs[-1])
        ax.set_xlabel(prep.features[0])
        ax.set_ylabel(prep.targets[0])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    title = ax.set_title("", fontsize=10)
    fig.subplots_adjust(**MARGINS)
    # blitting: the axes, ticks and labels are drawn once; each frame redraws only what sits
    # above the changing part (regions or curve, contour, points, legend, title), in order
    moving = sorted([a for a in ax.get_children() if a in (ax.images + ax.collections + ax.lines)]
                    + [ax.get_legend(), title], key=lambda a: a.get_zorder())
    for a in moving:
        a.set_animated(True)
    canvas.draw()
    legend = ax.get_legend()  # placed where it hides least of the first frame, then kept there (not searched per frame)
    legend.set_loc(tuple(ax.transAxes.inverted().transform(legend.get_window_extent().p0)))
    legend.get_frame().set_alpha(1.0)  # opaque: its pixels are the same on every frame, so drawn once and pasted
    moving.remove(legend)
    background = canvas.copy_from_bbox(fig.bbox)
    canvas.restore_region(background)
    ax.draw_artist(legend)
    legend_pixels = canvas.copy_from_bbox(legend.get_window_extent().expanded(1.02, 1.05))
    images = []
    for i, (epoch, loss, arrays) in enumerate(frames):
        for artist in dynamic[:1]:
            artist.remove()  # a ContourSet; its labels go with it
        dynamic = []
        if what == "boundary":
            codes, p = arrays
            img.set_data(_region_image(codes, colours))
            if p is not None and np.nanmax(p) > 0.5 > np.nanmin(p):
                cs = ax.contour(g0, g1, p, levels=[0.5], colors="k", linewidths=1.5, zorder=2)
                dynamic = [cs, *ax.clabel(cs, fmt={0.5: "ŷ = 1/2"}, fontsize=8)]  # the labels: removed with cs
        else:
            line.set_ydata(arrays)
        title.set_text(f"{name}: epoch {epoch}, loss {loss:.4g}" + (f" ({last_note})" if last_note and i == len(frames) - 1 else ""))
        canvas.restore_region(background)
        for a in sorted(moving + dynamic, key=lambda a: a.get_zorder()):
            ax.draw_artist(a)
        canvas.restore_region(legend_pixels)
        images.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    # one palette for every frame (no flicker, and fast): from the first, middle and last frames
    sample = np.concatenate([images[0], images[len(images) // 2], images[-1]], axis=0)
    palette = Image.fromarray(sample).quantize(colors=96, dither=Image.Dither.NONE)
    images = [Image.fromarray(a).quantize(palette=palette, dither=Image.Dither.NONE) for a in images]
    buf = io.BytesIO()
    durations = [FRAME_MS] * (len(images) - 1) + [LAST_MS]
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                   comment=("epochs: " + ",".join(str(f[0]) for f in frames)).encode("ascii"))
    with atomic_file(path) as fh:
        fh.write(buf.getvalue())
    return path


def write_gif(run_dir: Path, name: str, snaps: Snapshots, model, prep, X_raw, y) -> list[str]:
    """training.gif of a run; the warnings to show (why there is none, or where it starts)."""
    what, why = kind(prep)
    if what is None:
        return [why]
    if not snaps.frames:
        return []
    axes, frames = frames_of(snaps, model, prep, X_raw, y, what)
    render_gif(Path(run_dir) / GIF, name, prep, X_raw, y, what, axes, frames, snaps.last_note)
    if snaps.resumed_at is not None:
        return [f"{GIF} starts at epoch {snaps.resumed_at}, where this run was resumed: snapshots taken before an "
                "interruption are kept in memory only, not in the checkpoint"]
    return []
