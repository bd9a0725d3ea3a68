"""Tables that fit the terminal (view.dataframe_table, listing.drop_order, ``--wide``).

The listings are built from run directories written here (config.yaml and summary.json, as
``nncli runs`` reads them), with long names, several differing config keys and float
metrics whose digits run on. Each is rendered as a terminal of 80, 100, 120 and 200
columns would show it (rich Console(width=W, force_terminal=True, record=True)), and the
output is checked against the values written, not against nncli's own output:
- every number shown is whole: its text is the documented format of the value (4 decimals
  between 1e-3 and 1e5, else 3 after the point in e-notation) and reads back as the value to
  that precision; an ellipsis only ever ends a text value or starts the end of a run id;
- every table line fits W; the columns left out are named in the line below the table,
  and the id, status, losses and the ranking metric are never left out;
- ``--wide`` keeps every column; a pipe gets the whole table, with or without ``--wide``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console

from helpers import nn

from nncli import view
from nncli.listing import drop_order, list_runs

WIDTHS = (80, 100, 120, 200)
SORT = "val_accuracy"
NEVER_LEFT_OUT = ("id", "status", "loss", "val_loss", SORT)


def make_runs(root: Path, n: int, seed: int = 0) -> dict:
    """n run directories with chosen values; {run id: {column: value}} of what was written."""
    rng = np.random.default_rng(seed)
    truth = {}
    for i in range(n):
        name = f"moons-experiment-with-a-rather-long-name-{chr(97 + i % 26)}{i}"
        rid = f"20261129-2340{i % 60:02d}-{name}-{rng.integers(16**4):04x}"
        cfg = {"name": name, "seed": 0, "data": {"train": "datasets/moons.csv", "target": "label"},
               "model": {"layers": [2, int(rng.choice([8, 16, 32])), 1], "activation": str(rng.choice(["tanh", "relu", "leaky_relu"]))},
               "loss": "bce",
               "train": {"optimizer": "adam", "lr": float(10 ** rng.uniform(-4, 0)), "l2": float(10 ** rng.uniform(-7, -2)),
                         "batch_size": int(rng.choice([16, 32, 64])), "epochs": 300, "momentum": float(rng.uniform(0.5, 0.99))}}
        summ = {"status": "completed", "epochs_run": int(rng.integers(20, 300)), "epochs": 300,
                "train_seconds": float(rng.uniform(0.1, 4000.0)),
                "metrics": {"loss": float(10 ** rng.uniform(-6, 0.5)), "accuracy": float(rng.uniform(0.5, 1)), "rows": 160},
                "val_metrics": {"loss": float(10 ** rng.uniform(-3, 0.5)), "accuracy": float(rng.uniform(0.5, 1)), "rows": 40}}
        d = root / rid
        d.mkdir(parents=True)
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        (d / "summary.json").write_text(json.dumps(summ))
        truth[rid] = {"name": name, "model.layers": json.dumps(cfg["model"]["layers"]),
                      "model.activation": cfg["model"]["activation"], "train.lr": cfg["train"]["lr"],
                      "train.l2": cfg["train"]["l2"], "train.batch_size": cfg["train"]["batch_size"],
                      "train.momentum": cfg["train"]["momentum"], "epochs": summ["epochs_run"],
                      "seconds": summ["train_seconds"], "loss": summ["metrics"]["loss"],
                      "accuracy": summ["metrics"]["accuracy"], "val_loss": summ["val_metrics"]["loss"],
                      "val_accuracy": summ["val_metrics"]["accuracy"]}
    return truth


def documented(x) -> str:
    """README's number format: 4 decimals for 1e-3 <= |x| < 1e5 (and 0), else e-notation, 4 digits."""
    if isinstance(x, int):
        return str(x)
    return f"{x:.4f}" if 1e-3 <= abs(x) < 1e5 or x == 0 else f"{x:.3e}"


def render(df, width: int, wide: bool = False, sort: str = SORT) -> str:
    con = Console(width=width, force_terminal=True, record=True, color_system=None)
    view.dataframe_table(df, wide=wide, drop=drop_order(df, sort), hint="--wide or --format csv", console=con)
    return con.export_text(styles=False)


def parts(text: str):
    """(header line, data lines, the lines after the table) of a rendered table."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    end = next((i for i in range(rule + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[rule - 1], lines[rule + 1:end], [line for line in lines[end:] if line.strip()]


@pytest.fixture(scope="module", params=[1, 19, 50], ids=lambda n: f"{n}runs")
def listing(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"tables{request.param}")
    truth = make_runs(root, request.param, seed=request.param)
    df, warnings = list_runs(root, sort=SORT)
    assert not warnings
    return root, truth, df


def _check_numbers(text: str, truth: dict, order: list, all_columns: list) -> list:
    """Every number of every row whole; returns the columns shown."""
    header, rows, _ = parts(text)
    shown = header.split()
    long_to_short = {c: c.rsplit(".", 1)[-1] for c in all_columns}
    shown_cols = [c for c in all_columns if c in shown or long_to_short[c] in shown]
    assert len(rows) == len(order), text
    ids = list(truth)
    for line, rid in zip(rows, order):
        tokens = line.split()
        for col in shown_cols:
            v = truth[rid].get(col)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                s = documented(v)
                assert s in tokens, (col, s, line)
                assert abs(float(s) - v) <= max(0.5e-4, abs(v) * 5e-4) * 1.0001  # reads back as the value
        for tok in (t for t in tokens if "…" in t):  # the end of a run id, or the start of a text
            if tok.startswith("…"):
                assert rid.endswith("-" + tok[1:]) and sum(i.endswith("-" + tok[1:]) for i in ids) == 1, (tok, line)
            else:
                assert tok.endswith("…") and any(str(x).startswith(tok[:-1]) and not isinstance(x, (int, float))
                                                for x in truth[rid].values()), (tok, line)
        assert not re.search(r"\d…|…\d+(\.\d+)?\s*$", line.replace(tokens[0], "")), line
    return shown_cols


@pytest.mark.parametrize("width", WIDTHS)
def test_every_number_whole_and_the_table_fits(listing, width):
    _, truth, df = listing
    order = sorted(truth, key=lambda r: -truth[r]["val_accuracy"])  # --sort val_accuracy: best first
    text = render(df, width)
    all_columns = [str(c) for c in df.columns]
    shown = _check_numbers(text, truth, order, all_columns)
    header, rows, after = parts(text)
    assert all(len(line.rstrip()) <= width for line in [header, *rows]), text
    for col in NEVER_LEFT_OUT:
        assert col in shown, (col, text)
    left_out = [c for c in all_columns if c not in shown]
    if left_out:
        assert len(after) == 1 and after[0].startswith("left out: "), text
        assert len(after[0]) <= width, after  # one line
        named = after[0][len("left out: "):].split(" (all columns:")[0]
        named, _, more = named.partition(" and ")
        named = named.split(", ")
        more = int(more.split()[0]) if more else 0
        assert set(named) <= set(left_out) and len(named) + more == len(left_out), (named, more, left_out)
        assert named == [c for c in drop_order(df, SORT) if c in left_out][:len(named)]  # least useful first
        assert "--wide" in after[0] and "--format csv" in after[0]
    if width == 80 and len(truth) > 1:
        assert left_out, text  # this listing is about 200 columns wide
    if width == 200:
        assert not left_out, text


@pytest.mark.parametrize("width", WIDTHS)
def test_wide_keeps_every_column(listing, width):
    _, truth, df = listing
    order = sorted(truth, key=lambda r: -truth[r]["val_accuracy"])
    text = render(df, width, wide=True)
    all_columns = [str(c) for c in df.columns]
    header, rows, after = parts(text)
    assert header.split() == all_columns, header  # whole headers, all of them
    assert _check_numbers(text, truth, order, all_columns) == all_columns
    assert [line.split()[0] for line in rows] == order  # whole ids
    assert not after, after


def test_what_goes_first_is_the_documented_priority(listing):
    _, truth, df = listing
    order = drop_order(df, SORT)
    config = [c for c in df.columns if "." in c]
    if len(truth) == 1:
        assert config == []
    # README: seconds, epochs, train metrics other than the loss, the name, the config keys
    # (rightmost first), the other metrics; never id, status, loss, val_loss, the ranking metric
    assert order == ["seconds", "epochs", "accuracy", "name", *config[::-1]]
    assert not set(order) & set(NEVER_LEFT_OUT)


def test_the_ranking_metric_is_kept_first():
    df = pd.DataFrame({"id": ["a-1"], "name": ["x"], "status": ["completed"], "epochs": [3], "loss": [0.1],
                       "accuracy": [0.5], "val_loss": [0.2], "val_accuracy": [0.4], "seconds": [1.0]})
    assert "accuracy" not in drop_order(df, "accuracy") and "val_accuracy" in drop_order(df, "accuracy")
    assert drop_order(df) == ["seconds", "epochs", "accuracy", "name"]  # the default ranking: val_accuracy
    df["train.lr"] = [0.1]
    assert "train.lr" not in drop_order(df, "train.lr") and "train.lr" in drop_order(df)  # --sort train.lr


def test_sweep_names_go_before_config_keys():
    df = pd.DataFrame({"id": ["t-sw-001-ab", "t-sw-002-cd"], "name": ["sw-001", "sw-002"], "status": ["completed"] * 2,
                       "epochs": [3, 3], "train.lr": [0.1, 0.2], "loss": [0.1, 0.2], "seconds": [1.0, 2.0]})
    df.attrs["config_columns"] = ["train.lr"]
    assert drop_order(df) == ["seconds", "epochs", "name", "train.lr"]


def test_unique_suffixes_by_hand():
    ids = ["20261129-234008-sw-019-4a59", "20261129-234008-sw-020-4a59", "20261129-234005-sw-015-b0e1"]
    assert view.unique_suffixes(ids) == ["019-4a59", "020-4a59", "b0e1"]
    assert view.unique_suffixes(["a-b", "a-b", "c"]) == ["a-b", "a-b", "c"]  # duplicates stay whole
    assert view.unique_suffixes(["x-1", "1"]) == ["x-1", "1"]  # "1" is x-1's end too: kept whole
    assert view.unique_suffixes(["only"]) == ["only"]


@pytest.mark.parametrize("width", (60, 80, 100))
def test_cv_table_mean_and_std_never_cut(width):
    """The cv table's cells are text ('0.9533 ± 0.0267'): numbers in text are never ellipsised."""
    rng = np.random.default_rng(3)
    vals = rng.uniform(0.5, 1, size=(5, 4))
    rows = [{"fold": str(k + 1), "id": f"20261129-2340{k:02d}-iris-with-a-long-name-fold{k + 1}-{k:04x}", "status": "completed",
             "epochs": "300", "val_rows": "30", "val_loss": documented(vals[k, 0]), "val_accuracy": documented(vals[k, 1]),
             "val_precision_macro_long_name": documented(vals[k, 2]), "val_recall_macro_long_name": documented(vals[k, 3])}
            for k in range(5)]
    means, stds = vals.mean(0), vals.std(0, ddof=1)
    rows.append({"fold": "mean ± std", "id": "5 of 5 folds", "status": "", "epochs": "", "val_rows": "",
                 **{c: f"{documented(m)} ± {documented(s)}" for c, m, s in
                    zip(["val_loss", "val_accuracy", "val_precision_macro_long_name", "val_recall_macro_long_name"], means, stds)}})
    df = pd.DataFrame(rows)
    text = render(df, width)
    header, lines, after = parts(text)
    if width >= 80:  # 60: even the narrowest table is wider, so it is printed whole (the terminal wraps)
        assert all(len(line.rstrip()) <= width for line in [header, *lines]), text
    shown = header.split()
    for c in ("val_loss", "val_accuracy"):
        assert c in shown
    for row, line in zip(rows, lines):
        for c in shown:
            if c.startswith("val_") and c != "val_rows" and row[c]:
                assert row[c] in line, (c, row[c], line)
    assert not re.search(r"\d…", text), text


def test_cli_pipes_are_whole_with_or_without_wide(tmp_path):
    truth = make_runs(tmp_path / "r", 19, seed=7)
    plain = nn("runs", tmp_path / "r", "--sort", SORT, cwd=tmp_path)
    wide = nn("runs", tmp_path / "r", "--sort", SORT, "--wide", cwd=tmp_path)
    assert plain.rc == 0 and wide.rc == 0, plain.show()
    assert plain.out == wide.out
    text = plain.text
    assert "…" not in text and "left out" not in text
    header, rows, after = parts(text)
    assert [line.split()[0] for line in rows] == sorted(truth, key=lambda r: -truth[r]["val_accuracy"])
    for rid, line in zip(sorted(truth, key=lambda r: -truth[r]["val_accuracy"]), rows):
        for col in ("loss", "val_loss", "val_accuracy", "train.lr", "train.l2", "seconds"):
            assert documented(truth[rid][col]) in line.split(), (col, line)


def test_wide_is_refused_nowhere_and_documented():
    r = nn("runs", "--help", cwd=Path.cwd())
    assert "--wide" in r.text
    for cmd in ("sweep", "cv"):
        assert "--wide" in nn(cmd, "--help", cwd=Path.cwd()).text
