"""Training, eval, the listing and the pictures tell the same story (issue 13): the same
metric on the same rows in the run's own dtype, and no decision boundary drawn out of
rounding noise."""

from __future__ import annotations

import json

import numpy as np

import nncli.plots
from helpers import NO_PLOTS, REPO, nn, setup_workdir


def test_xor_linear_reports_one_accuracy_everywhere(tmp_path, monkeypatch):
    """The lecture's single neuron on XOR ends at y_hat = 1/2 +- 1e-7 everywhere: in float32
    and float64 the decisions y_hat >= 1/2 differ, so every report must use the same dtype."""
    wd = setup_workdir(tmp_path)
    (wd / "configs" / "xor-linear.yaml").write_bytes((REPO / "configs" / "xor-linear.yaml").read_bytes())
    specs = []
    real = nncli.plots.render
    monkeypatch.setattr(nncli.plots, "render", lambda spec: specs.append(spec) or real(spec))
    r = nn("train", "configs/xor-linear.yaml", "-q", cwd=wd)
    assert r.rc == 0, r.show()
    run = wd / r.text.strip()
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    last = (run / "metrics.csv").read_text(encoding="utf-8").splitlines()[-1].split(",")
    ev = nn("eval", run, "--json", "--no-plots", cwd=wd)
    assert ev.rc == 0, ev.show()
    listed = nn("runs", "runs", "--format", "json", cwd=wd)
    acc = {summary["metrics"]["accuracy"], float(last[2]), json.loads(ev.text)["accuracy"],
           json.loads(listed.text)[0]["accuracy"]}
    assert len(acc) == 1, acc
    # and the picture does not draw rounding noise as regions or a boundary
    (spec,) = specs
    b = spec["boundary"]
    assert b["codes"] is None and b["p"] is None and "no decision boundary" in b["flat"]


def test_a_model_that_decides_gets_its_regions(tmp_path, monkeypatch):
    wd = setup_workdir(tmp_path)
    specs = []
    real = nncli.plots.render
    monkeypatch.setattr(nncli.plots, "render", lambda spec: specs.append(spec) or real(spec))
    r = nn("train", "configs/xor.yaml", "-q", cwd=wd)
    assert r.rc == 0, r.show()
    b = specs[0]["boundary"]
    assert b["flat"] is None and set(np.unique(b["codes"])) == {0, 1} and b["p"] is not None


def test_predict_labels_agree_with_eval_on_the_same_rows(tmp_path):
    wd = setup_workdir(tmp_path)
    r = nn("train", "configs/xor.yaml", "-q", *NO_PLOTS, cwd=wd)
    run = wd / r.text.strip()
    ev = json.loads(nn("eval", run, "--json", "--no-plots", cwd=wd).text)
    p = nn("predict", run, "datasets/xor.csv", cwd=wd)
    rows = [ln.split(",") for ln in p.text.splitlines()[1:]]
    hits = sum(row[2] == row[3] for row in rows)  # columns x1, x2, y, prediction, ...
    assert hits / len(rows) == ev["accuracy"]
