"""training.gif (nncli.animate; train.snapshots / nncli train --animate).

References, none of them nncli.animate's own output:
- the recorded epochs: k evenly spaced epochs of 1..E, first and last included, worked out
  by hand below (E = 30, k = 7: step 29/6 = 4.83, so 1, 5.83, 10.67, 15.5, 20.33, 25.17, 30
  rounded: 1, 6, 11, 16, 20, 25, 30);
- the last frame's class regions: an independent numpy forward pass of the weights saved in
  model.npz (tanh hidden layer, sigmoid output, class 1 where y_hat >= 1/2), on the grid the
  frame spans, compared pixel by pixel with the colours decoded from the GIF;
- training results: the same config trained without snapshots (metrics.csv bytes and
  model.npz arrays identical).

How each can fail: planned_epochs dropping the last epoch, a snapshot that aliases
model.flat instead of copying it (every frame would show the final weights: the first and
last frames would be the same picture), regions drawn transposed or flipped (the pixel
comparison fails), a snapshot taken before the epoch's steps (the last frame would be one
epoch early, not model.npz's network).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import assert_same_run, assert_usage_error, nn, one_run_dir, write_regression_csv, write_rows, write_yaml

from nncli import animate
from nncli.config import load_config
from nncli.job import TrainingJob


def _cfg(train_csv: str, loss: str = "bce", **train) -> dict:
    return {"name": "anim", "seed": 3, "data": {"train": train_csv, "target": "label" if loss == "bce" else "y"},
            "model": {"layers": ["auto", 8, "auto"], "activation": "tanh"}, "loss": loss,
            "train": {"optimizer": "adam", "lr": 0.05, "epochs": 30, "batch_size": 8, **train}}


def _moons(path: Path, n: int = 60, seed: int = 2) -> Path:
    """Two noisy interleaved half circles (binary label 0/1), in data units far from [0, 1]."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    lab = rng.integers(0, 2, n)
    x = np.where(lab == 0, np.cos(t), 1 - np.cos(t)) * 10 + rng.normal(0, 1, n)
    y = np.where(lab == 0, np.sin(t), 0.5 - np.sin(t)) * 5 + 20 + rng.normal(0, 0.5, n)
    return write_rows(path, ["x1", "x2", "label"], [[repr(float(a)), repr(float(b)), int(c)] for a, b, c in zip(x, y, lab)])


def _gif(run: Path):
    im = Image.open(run / "training.gif")
    epochs = [int(e) for e in im.info["comment"].decode().removeprefix("epochs: ").split(",")]
    return im, epochs


def _frame(im, i: int) -> np.ndarray:
    im.seek(i)
    return np.asarray(im.convert("RGB"), np.float64) / 255


def test_planned_epochs_hand_worked():
    assert animate.planned_epochs(7, 30) == [1, 6, 11, 16, 20, 25, 30]
    assert animate.planned_epochs(2, 1000) == [1, 1000]
    assert animate.planned_epochs(50, 12) == list(range(1, 13))  # more frames than epochs: every epoch once


@pytest.fixture(scope="module")
def moons_runs(tmp_path_factory):
    """The same binary 2-D config trained with train.snapshots: 7 and without."""
    base = tmp_path_factory.mktemp("moons")
    _moons(base / "moons.csv")
    write_yaml(base / "anim.yaml", _cfg("moons.csv", snapshots=7))
    write_yaml(base / "plain.yaml", _cfg("moons.csv"))
    r = nn("train", "anim.yaml", "--runs-dir", "a", cwd=base)
    assert r.rc == 0, r.show()
    p = nn("train", "plain.yaml", "--runs-dir", "p", cwd=base)
    assert p.rc == 0, p.show()
    return base, one_run_dir(r, base), one_run_dir(p, base)


def test_results_unchanged(moons_runs):
    _, run, plain = moons_runs
    assert_same_run(run, plain)
    assert not (plain / "training.gif").exists()


def test_frames_and_epochs(moons_runs):
    _, run, _ = moons_runs
    im, epochs = _gif(run)
    assert im.n_frames == 7
    assert epochs == [1, 6, 11, 16, 20, 25, 30]
    top = int((1 - animate.MARGINS["top"]) * im.height) + 2  # below the title (which names the epoch)
    first, last = _frame(im, 0)[top:], _frame(im, 6)[top:]
    assert np.abs(first - last).max(axis=2).mean() > 0.01  # the regions moved: the snapshots are copies


def _independent_codes(run: Path, g0, g1) -> np.ndarray:
    z = np.load(run / "model.npz")
    G0, G1 = np.meshgrid(g0, g1)
    X = (np.column_stack([G0.ravel(), G1.ravel()]) - z["x_mean"]) / z["x_std"]
    a1 = np.tanh(X @ z["W1"].T.astype(np.float64) + z["b1"])
    yhat = 1 / (1 + np.exp(-(a1 @ z["W2"].T.astype(np.float64) + z["b2"])))
    return (yhat[:, 0] >= 0.5).astype(int).reshape(G0.shape)


def test_last_frame_shows_the_saved_models_regions(moons_runs):
    base, run, _ = moons_runs
    im, _ = _gif(run)
    rgb = _frame(im, im.n_frames - 1)
    rows = np.load(run / "splits.npz")["train"]
    data = np.loadtxt(base / "moons.csv", delimiter=",", skiprows=1)
    X = data[rows, :2]
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.08 * (hi - lo)  # the frame spans the training points, padded by 8 % (as decision_boundary.png)
    n = 60
    g0, g1 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n), np.linspace(lo[1] - pad[1], hi[1] + pad[1], n)
    codes = _independent_codes(run, g0, g1)
    assert 0 < codes.mean() < 1, "both classes must show for this test to mean anything"
    # pixel of each grid point: the axes box is MARGINS of the FIGSIZE x DPI frame, y up
    H, W = rgb.shape[:2]
    m = animate.MARGINS
    px = (m["left"] + (np.arange(n) / (n - 1)) * (m["right"] - m["left"])) * W
    py = (1 - (m["bottom"] + (np.arange(n) / (n - 1)) * (m["top"] - m["bottom"]))) * H
    tab10 = [(0.12156862745098039, 0.4666666666666667, 0.7058823529411765), (1.0, 0.4980392156862745, 0.054901960784313725)]
    region = np.array([[1 - 0.25 * (1 - c) for c in col] for col in tab10])  # tab10 at alpha 0.25 over white
    pts = np.column_stack([np.interp(X[:, 0], [g0[0], g0[-1]], [px[0], px[-1]]),
                           np.interp(X[:, 1], [g1[0], g1[-1]], [py[0], py[-1]])])
    agree = total = 0
    for j in range(2, n - 2):
        for i in range(2, n - 2):
            if (codes[j - 2:j + 3, i - 2:i + 3] != codes[j, i]).any():
                continue  # near the boundary (its line and label)
            if i > 0.6 * n and j > 0.6 * n:
                continue  # the legend's corner
            if (np.hypot(*(pts - (px[i], py[j])).T) < 8).any():
                continue  # under a training point
            colour = rgb[int(round(py[j])), int(round(px[i]))]
            total += 1
            agree += int(np.argmin(((region - colour) ** 2).sum(axis=1)) == codes[j, i]
                         and np.abs(region[codes[j, i]] - colour).max() < 0.06)
    assert total > 500
    assert agree / total > 0.97, (agree, total)


def test_regression_curve_gif(tmp_path):
    write_regression_csv(tmp_path / "lin.csv")
    write_yaml(tmp_path / "c.yaml", _cfg("lin.csv", loss="mse", epochs=12))
    r = nn("train", "c.yaml", "--animate", cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = one_run_dir(r, tmp_path)
    im, epochs = _gif(run)
    assert epochs == list(range(1, 13)) and im.n_frames == 12  # --animate: 40 frames, at most one an epoch
    assert "snapshots: 40" in (run / "config.yaml").read_text()


def test_three_features_no_gif_one_warning(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    write_rows(tmp_path / "d.csv", ["a", "b", "c", "label"],
               [[*map(repr, map(float, x)), int(x.sum() > 0)] for x in X])
    write_yaml(tmp_path / "c.yaml", _cfg("d.csv", epochs=5))
    r = nn("train", "c.yaml", "--animate", cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = one_run_dir(r, tmp_path)
    assert not (run / "training.gif").exists()
    said = [w for w in json.loads((run / "summary.json").read_text())["warnings"] if "training.gif" in w]
    assert len(said) == 1 and "3 network inputs" in said[0], said
    assert sum("training.gif" in line for line in r.err.splitlines()) == 1, r.err


def test_no_plots_skips_the_gif(tmp_path):
    _moons(tmp_path / "m.csv")
    write_yaml(tmp_path / "c.yaml", _cfg("m.csv", epochs=4))
    r = nn("train", "c.yaml", "--animate", "--no-plots", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert not (one_run_dir(r, tmp_path) / "training.gif").exists()


@pytest.mark.parametrize("value", ["1", "-2", "2.5", "true", "many"])
def test_bad_snapshots_one_line(tmp_path, value):
    _moons(tmp_path / "m.csv")
    write_yaml(tmp_path / "c.yaml", _cfg("m.csv", epochs=4))
    r = nn("train", "c.yaml", "--set", f"train.snapshots={value}", cwd=tmp_path)
    assert_usage_error(r, "train.snapshots", "at least 2")
    assert not (tmp_path / "runs").exists()


def test_resumed_run_gif_starts_at_the_resume(tmp_path, monkeypatch):
    _moons(tmp_path / "m.csv")
    write_yaml(tmp_path / "c.yaml", _cfg("m.csv", snapshots=7))
    cfg = load_config(tmp_path / "c.yaml", [])
    monkeypatch.chdir(tmp_path)  # the config's data path is relative
    job = TrainingJob(cfg, tmp_path / "runs")
    job.start()
    for rec in job.epochs():
        if rec.epoch == 13:
            job.trainer.stop_requested = True
    assert job.finish()["status"] == "interrupted"
    again = TrainingJob.resume(job.run_dir)
    again.start()
    for _ in again.epochs():
        pass
    assert again.finish()["status"] == "completed"
    _, epochs = _gif(again.run_dir)
    assert epochs == [13, 16, 20, 25, 30]
    assert any("starts at epoch 13" in w for w in again.warnings)
