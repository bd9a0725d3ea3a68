"""The pictures (nncli/plots.py): what they show, checked against independent computations
from the run's own files (model.npz, splits.npz, summary.json, the CSV), and that each is a
valid PNG of a sensible size, drawn without matplotlib warnings and with no label cut off.

How each test can fail: fit points computed from another split or without unscaling the
targets; test points that are not the saved test rows (e.g. the validation rows); a best
epoch off by one; a confusion figure of fixed size (the old 1.2 + 0.6 k inches: 2 classes
gave ~240 px); a title or contour label drawn outside the figure or its axes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import nncli.plots as plots
from helpers import nn, read_text_csv, write_classes_csv, write_config, write_regression_csv, write_rows

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk (no imaging library needed)."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == PNG, path
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.fixture
def specs(monkeypatch):
    """Every run_spec render() draws, recorded."""
    seen = []
    real = plots.render
    monkeypatch.setattr(plots, "render", lambda spec: seen.append(spec) or real(spec))
    return seen


@pytest.fixture
def checked_figures(monkeypatch):
    """Each figure about to be saved: every visible text inside the figure, and every text
    drawn in data space (contour labels, notes) inside its axes; the names of those checked."""
    names, matrices = [], []
    real = plots._save

    def check(fig, path, tight=True):
        fig.canvas.draw()
        W, H = fig.bbox.width, fig.bbox.height

        def inside(e, what):
            assert e.x0 >= -1 and e.y0 >= -1 and e.x1 <= W + 1 and e.y1 <= H + 1, (path, what, e, W, H)

        if not tight:  # a tight bbox grows the picture to its texts
            renderer = fig.canvas.get_renderer()
            for ax in fig.axes:  # what each axes draws: tick labels, axis labels, title, legend
                if ax.get_visible():
                    inside(ax.get_tightbbox(renderer), ax.get_title() or ax.get_label())
            for t in fig.texts + ([fig._suptitle] if fig._suptitle is not None else []):
                inside(t.get_window_extent(renderer), t.get_text())
        for ax in fig.axes:
            inner = list(ax.texts)
            for c in ax.collections:
                inner += list(getattr(c, "labelTexts", []))
            for t in inner:
                e, b = t.get_window_extent(), ax.bbox
                assert e.x0 >= b.x0 - 1 and e.x1 <= b.x1 + 1 and e.y0 >= b.y0 - 1 and e.y1 <= b.y1 + 1, (path, t.get_text())
        names.append(Path(path).name)
        matrices.extend(ax.bbox.width for ax in fig.axes if ax.images)  # pixels of each matrix drawn (dpi 100)
        return real(fig, path, tight)

    monkeypatch.setattr(plots, "_save", check)
    check.matrices = matrices
    return names


def no_warnings(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kw)
    assert not [str(w.message) for w in caught]
    return out


def forward(npz: Path, X: np.ndarray, hidden=np.tanh) -> np.ndarray:
    """The network of model.npz on X (already standardised), in float64: tanh hidden layers,
    a linear output (regression), a = f(W a + b), written out here from the lecture."""
    with np.load(npz) as z:
        L = sum(1 for k in z.files if k.startswith("W"))
        a = np.asarray(X, np.float64)
        for l in range(1, L + 1):
            zl = a @ z[f"W{l}"].astype(np.float64).T + z[f"b{l}"].astype(np.float64)
            a = hidden(zl) if l < L else zl
        if "y_mean" in z.files:
            a = a * z["y_std"] + z["y_mean"]
        return a


# ---------------------------------------------------------------------- fit.png


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    base = tmp_path_factory.mktemp("reg")
    write_regression_csv(base / "data.csv", n=60)
    write_config(base / "cfg.yaml", train_csv="data.csv", target="y", loss="mse", name="line", layers=("auto", 5, "auto"),
                 data_extra={"test_split": 0.25, "val_split": 0.2}, optimizer="adam", lr=0.05, epochs=40, batch_size=8,
                 early_stopping={"patience": 5})
    return base


def test_fit_points_are_the_models_predictions_on_the_saved_rows(regression, tmp_path, specs, checked_figures):
    import shutil

    wd = tmp_path / "w"
    shutil.copytree(regression, wd)
    r = nn("train", "cfg.yaml", "-q", cwd=wd)
    assert r.rc == 0, r.show()
    run = wd / r.text.strip()
    assert png_size(run / "fit.png")[0] >= 400
    (spec,) = specs
    fit = spec["fit"]
    df = read_text_csv(wd / "data.csv")
    with np.load(run / "splits.npz") as z:
        rows = {k: z[k] for k in ("train", "test")}
    for split in ("train", "test"):
        part = df.iloc[rows[split]]
        x = part["x"].to_numpy(np.float64)
        with np.load(run / "model.npz") as z:
            x_in = (x[:, None] - z["x_mean"]) / z["x_std"]
        y_hat = forward(run / "model.npz", x_in)
        p = fit["points"][split]
        np.testing.assert_allclose(p["pred"], y_hat, rtol=1e-5, atol=1e-5)  # float32 network, float64 here
        np.testing.assert_allclose(p["true"][:, 0], part["y"].to_numpy(np.float64), rtol=1e-6)
        np.testing.assert_allclose(p["x"], x, rtol=1e-6, atol=1e-6)  # from the float32 inputs the network saw
    # the curve: a dense grid over the rows' range of x, in x's own units, and the network on it
    c = fit["curve"]
    xs = df.iloc[np.concatenate([rows["train"], rows["test"]])]["x"].to_numpy(np.float64)
    assert len(c["x"]) >= 100 and np.isclose(c["x"].min(), xs.min()) and np.isclose(c["x"].max(), xs.max())
    with np.load(run / "model.npz") as z:
        grid_in = (c["x"][:, None] - z["x_mean"]) / z["x_std"]
    np.testing.assert_allclose(c["y"], forward(run / "model.npz", grid_in), rtol=1e-5, atol=1e-5)
    assert "fit.png" in checked_figures and "loss.png" in checked_figures

    # `nncli plot` draws the same from the run's files
    specs.clear()
    (run / "fit.png").unlink()
    r = nn("plot", run, cwd=wd)
    assert r.rc == 0, r.show()
    assert sorted(Path(p).name for p in r.text.split()) == ["fit.png", "loss.png"]
    assert png_size(run / "fit.png")[0] >= 400
    (again,) = specs
    for split in ("train", "test"):
        np.testing.assert_allclose(again["fit"]["points"][split]["pred"], fit["points"][split]["pred"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(again["fit"]["points"][split]["true"], fit["points"][split]["true"], rtol=1e-6)


def test_loss_png_marks_the_epoch_early_stopping_kept(regression, tmp_path, specs):
    import shutil

    wd = tmp_path / "w"
    shutil.copytree(regression, wd)
    r = nn("train", "cfg.yaml", "-q", cwd=wd)
    assert r.rc == 0, r.show()
    run = wd / r.text.strip()
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["best_epoch"] is not None
    assert specs[0]["loss"]["best"]["epoch"] == summary["best_epoch"]
    assert specs[0]["loss"]["best"]["stopped_early"] == summary["stopped_early"]
    specs.clear()
    assert nn("plot", run, cwd=wd).rc == 0
    assert specs[0]["loss"]["best"]["epoch"] == summary["best_epoch"]


def test_the_marker_is_drawn_where_it_says(tmp_path):
    """The vertical line of the kept epoch sits at that epoch on the x axis (read back from the figure)."""
    drawn = {}
    real = plots._save

    def keep(fig, path, tight=True):
        (ax,) = [a for a in fig.axes if a.get_legend() is not None]
        for line in ax.get_lines():
            if line.get_label().startswith("weights kept"):
                drawn["x"] = set(np.asarray(line.get_xdata(), float).tolist())
                drawn["label"] = line.get_label()
        return real(fig, path, tight)

    plots._save = keep
    try:
        no_warnings(plots.loss_plot, [1, 2, 3, 4, 5], [0.5, 0.4, 0.3, 0.35, 0.36], [0.6, 0.45, 0.4, 0.41, 0.5], tmp_path / "l.png",
                    lr=[0.1, 0.1, 0.05, 0.05, 0.01], best={"epoch": 3, "stopped_early": True, "monitor": "val_loss"})
    finally:
        plots._save = real
    assert drawn["x"] == {3.0} and "epoch 3" in drawn["label"]


def test_multi_target_fit_has_a_panel_per_target(tmp_path, specs, checked_figures):
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, (50, 2))
    rows = [[f"{a:.4f}", f"{b:.4f}", f"{a + b:.4f}", f"{a - 2 * b:.4f}"] for a, b in X]
    write_rows(tmp_path / "m.csv", ["a", "b", "u", "v"], rows)
    write_config(tmp_path / "m.yaml", train_csv="m.csv", target=["u", "v"], loss="mse", name="two", epochs=5)
    r = nn("train", "m.yaml", "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    fit = specs[0]["fit"]
    assert fit["targets"] == ["u", "v"] and fit["curve"] is None  # two inputs: no curve
    assert fit["points"]["train"]["pred"].shape == (50, 2) and "test" not in fit["points"]
    run = tmp_path / r.text.strip()
    w, h = png_size(run / "fit.png")
    assert w >= 600 and h >= 300
    assert "fit.png" in checked_figures


def test_a_classifier_gets_no_fit_png(tmp_path, specs):
    write_classes_csv(tmp_path / "d.csv", n=30)
    write_config(tmp_path / "c.yaml", train_csv="d.csv", target="label")
    r = nn("train", "c.yaml", "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert specs[0]["fit"] is None and not (tmp_path / r.text.strip() / "fit.png").exists()


# ---------------------------------------------------------------------- decision_boundary.png


def test_boundary_draws_the_saved_test_rows_hollow(tmp_path, specs, checked_figures):
    write_classes_csv(tmp_path / "d.csv", n=80, seed=3)
    write_config(tmp_path / "c.yaml", train_csv="d.csv", target="label", data_extra={"test_split": 0.25, "val_split": 0.2},
                 epochs=20, layers=("auto", 6, "auto"))
    r = nn("train", "c.yaml", "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = tmp_path / r.text.strip()
    df = read_text_csv(tmp_path / "d.csv")
    with np.load(run / "splits.npz") as z:
        test_rows, train_rows = z["test"], z["train"]
    expect = df.iloc[test_rows]
    # training draws the rows it holds (float32 inputs, unscaled); `nncli plot` reads them from the CSV: exactly
    for spec, rtol in ((specs[0]["boundary"], 1e-6), (None, 0)):
        if spec is None:
            specs.clear()
            assert nn("plot", run, cwd=tmp_path).rc == 0
            spec = specs[0]["boundary"]
        np.testing.assert_allclose(spec["X_test"], expect[["x1", "x2"]].to_numpy(np.float64), rtol=rtol, atol=rtol)
        assert spec["labels_test"].tolist() == (expect["label"] == "b").astype(int).tolist()
        np.testing.assert_allclose(spec["X"], df.iloc[train_rows][["x1", "x2"]].to_numpy(np.float64), rtol=rtol, atol=rtol)
    assert png_size(run / "decision_boundary.png")[0] >= 500
    assert checked_figures.count("decision_boundary.png") == 2  # the contour label inside the axes, both times


def test_contour_label_spot_is_inside_for_a_boundary_along_the_edge():
    """A straight boundary that runs into the plot's corner: the label goes where the line is
    farthest from every edge (here the middle of the diagonal), not at an end."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    g = np.linspace(0, 1, 50)
    G0, G1 = np.meshgrid(g, g)
    cs = ax.contour(G0, G1, G0 - G1 + 0.5, levels=[0.5])
    x, y = plots._label_spot(cs, ax)
    assert abs(x - 0.5) < 0.03 and abs(y - 0.5) < 0.03


# ---------------------------------------------------------------------- confusion.png


def test_confusion_spec_normalises_each_row_by_hand():
    s = plots.confusion_spec([[3, 1], [0, 0]], ["a", "b"])
    assert s["normalized"][0].tolist() == [0.75, 0.25] and np.isnan(s["normalized"][1]).all()
    s = plots.confusion_spec([[2, 0, 0], [1, 1, 2], [0, 5, 5]], ["x", "y", "z"])
    np.testing.assert_array_equal(s["normalized"], [[1, 0, 0], [0.25, 0.25, 0.5], [0, 0.5, 0.5]])
    assert plots.confusion_spec([[1]], ["x" * 40])["labels"][0].endswith("…")


@pytest.mark.parametrize("k", [2, 3, 10, 20])
def test_confusion_png_is_readable_at_k_classes(k, tmp_path, checked_figures):
    rng = np.random.default_rng(k)
    C = rng.integers(0, 9, (k, k)) + np.diag(rng.integers(50, 500, k))
    labels = [f"class {i}" for i in range(k)] if k != 3 else ["Iris-setosa", "Iris-versicolor", "a" * 30]
    path = no_warnings(plots.confusion_plot, C, labels, tmp_path / "c.png", "a title for this picture")
    w, h = png_size(path)
    assert w >= 400 and h >= 250, (w, h)
    assert checked_figures == ["c.png"]
    # two matrices (counts, row-normalised), each at least 2.5 inches and 0.35 inch a cell
    widths = plots._save.matrices
    assert len(widths) == 2 and min(widths) >= 100 * max(2.5, 0.35 * k), widths


def test_eval_of_a_classifier_writes_the_new_confusion_png(tmp_path):
    write_classes_csv(tmp_path / "d.csv", n=40)
    write_config(tmp_path / "c.yaml", train_csv="d.csv", target="label", data_extra={"test_split": 0.3})
    r = nn("train", "c.yaml", "-q", "--no-plots", cwd=tmp_path)
    run = tmp_path / r.text.strip()
    ev = nn("eval", run, cwd=tmp_path)
    assert ev.rc == 0, ev.show()
    assert png_size(run / "confusion.png")[0] >= 400


# ---------------------------------------------------------------------- every picture of a run, no warnings


def test_render_draws_every_picture_without_warnings(tmp_path, checked_figures):
    rng = np.random.default_rng(0)

    boundary = {"g0": np.linspace(-1, 1, 40), "g1": np.linspace(-1, 1, 40), "flat": None,
                "codes": None, "p": None, "X": rng.normal(size=(30, 2)), "labels": rng.integers(0, 2, 30),
                "X_test": rng.normal(size=(10, 2)), "labels_test": rng.integers(0, 2, 10),
                "classes": ["a", "b"], "features": ["x1", "x2"], "target": "label"}
    G0, G1 = np.meshgrid(boundary["g0"], boundary["g1"])
    boundary["p"] = 1 / (1 + np.exp(-4 * (G0 + G1)))
    boundary["codes"] = (boundary["p"] >= 0.5).astype(int)
    x = np.linspace(0, 1, 20)
    fit = {"targets": ["y"], "points": {"train": {"true": x[:, None], "pred": x[:, None] + 0.01, "x": x}},
           "curve": {"x": x, "y": x[:, None], "feature": "x"}}
    spec = {"run_dir": str(tmp_path), "name": "a rather long configuration name for a title " * 2,
            "loss": {"epochs": np.arange(1, 6), "loss": np.linspace(1, 0.5, 5), "val": None, "lr": None, "units": "",
                     "best": {"epoch": 4, "stopped_early": False, "monitor": "loss"}},
            "boundary": boundary, "fit": fit}
    out = no_warnings(plots.render, spec)
    assert sorted(p.name for p in out) == ["decision_boundary.png", "fit.png", "loss.png"]
    for p in out:
        assert png_size(p)[0] >= 400
    assert sorted(checked_figures) == ["decision_boundary.png", "fit.png", "loss.png"]  # the long title wrapped, not cut
