"""Missing values, statistics fitted on the training split only, unseen categories (issue 13):
data.missing (error / drop / impute), data.impute, data.missing_indicator, data.na_values,
data.unknown_category, rows without a target, and the loss hints.

Expected values come from scikit-learn (SimpleImputer, OneHotEncoder(handle_unknown="ignore"),
StandardScaler) fitted on the training rows, from the tables these tests write, and from
counting by hand; never from nncli's own output. Property-based tests (hypothesis) put any
missing token in any used column.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import NO_PLOTS, nn, one_run_dir, summary, write_rows
from nncli.config import DataConfig
from nncli.csvio import MISSING, read_csv
from nncli.data import load_dataset
from nncli.errors import DataError
from nncli.preprocess import Preprocessor
from nncli.tasks import TASKS

NA = ["?", "-"]  # the data.na_values of these tests


def _sklearn():
    """(SimpleImputer, OneHotEncoder, StandardScaler); the test is skipped without scikit-learn
    (pip install -e '.[bench]'), the independent reference."""
    impute = pytest.importorskip("sklearn.impute", reason="the independent checks need scikit-learn")
    pre = pytest.importorskip("sklearn.preprocessing")
    return impute.SimpleImputer, pre.OneHotEncoder, pre.StandardScaler

# a table with gaps in two numeric columns and a text column; rows 0-7 train, 8-11 held out
GAPPY = pd.DataFrame({
    "x": [1.0, np.nan, 4.0, 8.0, np.nan, 2.0, 3.0, 100.0, np.nan, 5.0, 6.0, 7.0],
    "z": [0.5, 0.5, np.nan, 1.5, 2.5, 0.5, 9.0, 1.0, 1.0, np.nan, 1.0, 1.0],
    "w": [1.0] * 12,  # no gap: no indicator
    "c": ["p", "q", None, "q", "r", "q", None, "p", None, "s", "p", "q"],  # 's' only in a held-out row
    "y": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2],
})
TRAIN = np.arange(8)


def _data(**kw) -> DataConfig:
    return DataConfig(train="f.csv", target="y", **kw)


def _fit(df=GAPPY, rows=TRAIN, task="regression", **kw):
    return Preprocessor.fit_encode(df, _data(**kw), TASKS[task], "f.csv", rows)


# ============================================================================= against scikit-learn


@pytest.mark.parametrize("how", ["median", "mean", "zero"])
@pytest.mark.parametrize("indicator", [False, True])
def test_numeric_imputation_is_simple_imputer_on_the_training_rows(how, indicator):
    SimpleImputer, OneHotEncoder, StandardScaler = _sklearn()
    num = ["x", "z", "w"]
    prep, _ = _fit(missing="impute", impute={"numeric": how}, missing_indicator=indicator, unknown_category="ignore",
                   standardize=False)
    strategy = {"median": "median", "mean": "mean", "zero": "constant"}[how]
    sk = SimpleImputer(strategy=strategy, fill_value=0.0, add_indicator=indicator).fit(GAPPY[num].iloc[TRAIN])
    expected = sk.transform(GAPPY[num])
    X = prep.encode(GAPPY, "f.csv")
    pos = prep.positions()
    got = X[:, [pos[f] for f in num]]
    if indicator:  # SimpleImputer appends one indicator per column with gaps in its fit rows, as nncli does
        assert prep.indicators == ["x", "z"]
        assert prep.input_names[-2:] == ["x (missing)", "z (missing)"]
        got = np.column_stack([got, X[:, -2:]])
    else:
        assert prep.indicators == [] and not any("missing" in n for n in prep.input_names)
    np.testing.assert_allclose(got, expected, rtol=0, atol=0)


def test_imputed_then_standardised_is_a_scikit_learn_pipeline():
    """SimpleImputer(median) then StandardScaler, both fitted on the training rows; indicators
    are 0/1 inputs that are not scaled (as one-hot entries)."""
    SimpleImputer, OneHotEncoder, StandardScaler = _sklearn()
    num = ["x", "z"]
    prep, _ = _fit(features=["x", "z"], missing="impute", missing_indicator=True)
    imp = SimpleImputer(strategy="median").fit(GAPPY[num].iloc[TRAIN])
    sc = StandardScaler().fit(imp.transform(GAPPY[num].iloc[TRAIN]))
    X = prep.transform(GAPPY, "f.csv")
    np.testing.assert_allclose(X[:, :2], sc.transform(imp.transform(GAPPY[num])), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(X[:, 2:], GAPPY[num].isna().to_numpy().astype(float))
    assert prep.x_mean[2:].tolist() == [0, 0] and prep.x_std[2:].tolist() == [1, 1]


@pytest.mark.parametrize("how", ["most_frequent", "missing"])
def test_text_imputation_and_one_hot_are_simple_imputer_and_one_hot_encoder(how):
    SimpleImputer, OneHotEncoder, StandardScaler = _sklearn()
    prep, _ = _fit(features=["c"], missing="impute", impute={"categorical": how}, unknown_category="ignore")
    col = GAPPY[["c"]].astype(object).where(GAPPY[["c"]].notna(), np.nan)
    imp = (SimpleImputer(strategy="most_frequent") if how == "most_frequent"
           else SimpleImputer(strategy="constant", fill_value="missing")).fit(col.iloc[TRAIN])
    enc = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(imp.transform(col.iloc[TRAIN]))
    expected = enc.transform(imp.transform(col))
    assert prep.categories["c"] == [str(c) for c in enc.categories_[0]]
    assert prep.impute_values["c"] == ("q" if how == "most_frequent" else "missing")  # q: 3 of the training rows
    counts: dict = {}
    np.testing.assert_array_equal(prep.encode(GAPPY, "f.csv", counts=counts), expected)
    assert counts == {"c": 1}  # row 9's 's' appears only in a held-out row: all zeros, counted


def test_most_frequent_ties_take_the_smallest_value_as_simple_imputer():
    SimpleImputer, OneHotEncoder, StandardScaler = _sklearn()
    df = pd.DataFrame({"c": ["b", "a", None, "b", "a", "c"], "y": np.arange(6.0)})
    prep, _ = _fit(df, rows=np.arange(6), missing="impute")
    sk = SimpleImputer(strategy="most_frequent").fit(df[["c"]].astype(object).where(df[["c"]].notna(), np.nan))
    assert prep.impute_values["c"] == sk.statistics_[0] == "a"


def test_unknown_category_ignore_is_one_hot_encoder_handle_unknown_ignore():
    SimpleImputer, OneHotEncoder, StandardScaler = _sklearn()
    train = pd.DataFrame({"c": ["p", "q", "r", "q"], "y": [1.0, 2.0, 3.0, 4.0]})
    new = pd.DataFrame({"c": ["q", "violet", "p", "violet", "ultra"]})
    prep, _ = _fit(train, rows=np.arange(4), unknown_category="ignore")
    enc = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(train[["c"]])
    counts: dict = {}
    np.testing.assert_array_equal(prep.transform(new, "new.csv", counts=counts), enc.transform(new[["c"]]))
    assert counts == {"c": 3}
    strict, _ = _fit(train, rows=np.arange(4))
    with pytest.raises(DataError, match=r"row 2 \(line 3\), column 'c': category 'violet' was not seen in training.*"
                                        r"data.unknown_category: ignore"):
        strict.transform(new, "new.csv")


# ============================================================================= training split only


def test_categories_come_from_the_training_rows_only():
    """A category of held-out rows only is unseen: an error naming it at training (default), or
    all zeros with data.unknown_category: ignore; the scaler's statistics are of training rows."""
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 50.0, 60.0], "c": ["p", "q", "p", "q", "held", "p"],
                       "y": [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]})
    rows = np.arange(4)
    with pytest.raises(DataError, match=r"row 5 \(line 6\), column 'c': category 'held' was not seen in training \(p, q\)"):
        _fit(df, rows=rows)
    counts: dict = {}
    prep, X = Preprocessor.fit_encode(df, _data(unknown_category="ignore"), TASKS["regression"], "f.csv", rows,
                                      counts=counts)
    assert prep.categories == {"c": ["p", "q"]} and counts == {"c": 1}
    assert X[4, 1:].tolist() == [0, 0]
    assert prep.x_mean[0] == pytest.approx(2.5) and prep.x_std[0] == pytest.approx(np.std([1, 2, 3, 4]))


def test_imputation_values_come_from_the_training_rows_only():
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, 1000.0, np.nan], "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    prep, X = _fit(df, rows=np.array([0, 1, 2]), missing="impute", impute={"numeric": "mean"}, standardize=False)
    assert prep.impute_values == {"x": 1.5}  # not 334.33 (the held-out 1000 left out)
    assert X[:, 0].tolist() == [1.0, 2.0, 1.5, 1000.0, 1.5]


def test_near_unique_warning_counts_training_rows_and_lands_in_summary(tmp_path):
    n = 60
    rows = [{"id": f"id{i:03d}", "x": i % 7, "y": i % 3} for i in range(n)]
    write_rows(tmp_path / "d.csv", ["id", "x", "y"], rows)
    (tmp_path / "c.yaml").write_text(_yaml("d.csv", "y", "cross_entropy", "  test_split: 0.5\n  unknown_category: ignore\n"),
                                     encoding="utf-8")
    r = nn("train", "c.yaml", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = one_run_dir(r, tmp_path)
    warnings = summary(run)["warnings"]
    near = [w for w in warnings if "column 'id'" in w and "distinct values" in w]
    assert len(near) == 1 and "30 distinct values in 30 training rows" in near[0], warnings
    assert any("held-out rows" in w and "column 'id'" in w for w in warnings), warnings
    assert near[0] in r.err


# ============================================================================= property-based: missing tokens

TOKENS = MISSING + NA
COLUMNS = ["a", "b", "c"]  # a, b numeric; c text


def _write_gappy(path: Path, gaps: dict, n: int) -> Path:
    """n rows; gaps: {(row, column): token}."""
    rows = []
    for i in range(n):
        cells = {"a": f"{i * 0.5:.1f}", "b": str(10 - i), "c": "pqr"[i % 3], "y": f"{i * 1.5:.2f}"}
        for (r, c), tok in gaps.items():
            if r == i:
                cells[c] = tok
        rows.append(cells)
    return write_rows(path, ["a", "b", "c", "y"], rows)


def _cfg(path: Path, missing: str, **more):
    from nncli.config import config_from_dict

    data = {"train": str(path), "target": "y", "na_values": NA, "missing": missing, **more}
    return config_from_dict({"data": data, "model": {"layers": ["auto", 3, "auto"]}, "loss": "mse",
                             "train": {"lr": 0.1, "epochs": 1}}, "t.yaml")


gap_sets = st.dictionaries(st.tuples(st.integers(0, 11), st.sampled_from(COLUMNS)), st.sampled_from(TOKENS), max_size=14)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gaps=gap_sets)
def test_any_missing_token_in_any_column_under_each_strategy(gaps):
    n = 12
    by_col = {c: sorted(r for (r, cc) in gaps if cc == c) for c in COLUMNS}
    bad_rows = sorted({r for (r, _) in gaps})
    with tempfile.TemporaryDirectory() as d:
        path = _write_gappy(Path(d) / "t.csv", gaps, n)
        df = read_csv(path, "data.train", na_values=NA)
        for c in COLUMNS:  # every token, and only the tokens, read as missing
            assert df[c].isna().to_numpy().nonzero()[0].tolist() == by_col[c]

        # error: one message naming exactly the columns with gaps, with their counts and first rows
        if gaps:
            with pytest.raises(DataError) as e:
                load_dataset(_cfg(path, "error"), np.random.default_rng(0))
            msg = str(e.value)
            named = re.findall(r"'(\w)' (\d+) cells?: rows? ([\d, .]+) \(", msg)
            assert {c: int(k) for c, k, _ in named} == {c: len(v) for c, v in by_col.items() if v}, msg
            for c, _, first in named:
                shown = [int(x) for x in re.findall(r"\d+", first)]
                assert shown == [r + 1 for r in by_col[c][:5]], msg
            assert "data.missing: drop" in msg and "data.missing: impute" in msg
        else:
            assert load_dataset(_cfg(path, "error"), np.random.default_rng(0)).train.n == n

        # drop: exactly the rows with a gap are dropped, and counted
        if len(bad_rows) <= n - 2:
            data = load_dataset(_cfg(path, "drop"), np.random.default_rng(0))
            assert data.rows["train"].tolist() == [i for i in range(n) if i not in bad_rows]
            assert data.dropped_rows == ({"train": len(bad_rows)} if bad_rows else {})
            assert data.train.n == n - len(bad_rows)

        # impute: finite inputs everywhere (a column with no value at all cannot be imputed: an error naming it)
        empty = [c for c in COLUMNS if len(by_col[c]) == n and c != "c"]
        if empty:
            with pytest.raises(DataError, match=f"column '{empty[0]}' has no values in the training rows"):
                load_dataset(_cfg(path, "impute"), np.random.default_rng(0))
        else:
            data = load_dataset(_cfg(path, "impute", missing_indicator=True), np.random.default_rng(0))
            assert data.train.n == n and np.isfinite(data.train.X).all()
            assert data.prep.indicators == [c for c in ("a", "b") if by_col[c]]


@settings(max_examples=25, deadline=None)
@given(missing_targets=st.sets(st.integers(0, 11), max_size=8), strategy=st.sampled_from(["error", "drop", "impute"]))
def test_rows_without_a_target_are_dropped_whatever_the_strategy(missing_targets, strategy):
    n = 12
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.csv"
        rows = [{"a": str(i), "y": "" if i in missing_targets else str(i * 2.0)} for i in range(n)]
        write_rows(path, ["a", "y"], rows)
        data = load_dataset(_cfg(path, strategy), np.random.default_rng(0))
        assert data.rows["train"].tolist() == [i for i in range(n) if i not in missing_targets]
        assert data.dropped_rows == ({"train": len(missing_targets)} if missing_targets else {})
        if missing_targets:
            assert any(f"{len(missing_targets)} with a missing target" in note for note in data.notes), data.notes


def test_dropped_rows_are_counted_per_split(tmp_path):
    rows = [{"a": "" if i % 5 == 0 else str(i), "y": str(i % 2)} for i in range(40)]
    write_rows(tmp_path / "t.csv", ["a", "y"], rows)
    from nncli.config import config_from_dict

    cfg = config_from_dict({"data": {"train": str(tmp_path / "t.csv"), "target": "y", "missing": "drop", "test_split": 0.25,
                                     "val_split": 0.25},
                            "model": {"layers": ["auto", "auto"]}, "loss": "bce", "train": {"lr": 0.1, "epochs": 1}}, "t")
    data = load_dataset(cfg, np.random.default_rng(0))
    every = sorted(np.concatenate([data.rows[k] for k in ("train", "val", "test")]).tolist())
    assert every == [i for i in range(40) if i % 5]
    assert sum(data.dropped_rows.values()) == 8 and set(data.dropped_rows) <= {"train", "val", "test"}
    ref = np.random.default_rng(0)  # the same split as without any gap: dropping happens after splitting
    from nncli.data import split_rows

    df = read_csv(tmp_path / "t.csv", "data.train", str_columns=["y"])
    full = split_rows(cfg, df, ref, "t")
    for k in ("train", "val", "test"):
        assert data.rows[k].tolist() == [i for i in full[k] if i % 5]
        assert data.dropped_rows.get(k, 0) == sum(1 for i in full[k] if i % 5 == 0)


# ============================================================================= preprocess.json


def test_preprocess_json_round_trip_of_everything_fitted(tmp_path):
    prep, _ = _fit(missing="impute", impute={"numeric": "mean", "categorical": "missing"}, missing_indicator=True,
                   unknown_category="ignore", na_values=["?", "-999"])
    meta = json.loads(json.dumps(prep.to_json()))
    assert meta["missing"] == "impute" and meta["missing_indicators"] == ["x", "z"]
    assert meta["impute_values"] == {"x": float(np.mean(GAPPY.x.iloc[TRAIN].dropna())),
                                     "z": float(np.mean(GAPPY.z.iloc[TRAIN].dropna())), "w": 1.0, "c": "missing"}
    assert meta["unknown_category"] == "ignore" and meta["na_values"] == ["?", "-999"]
    again = Preprocessor.from_json(meta, prep.arrays())
    assert again.to_json() == prep.to_json()
    np.testing.assert_array_equal(again.transform(GAPPY, "f.csv"), prep.transform(GAPPY, "f.csv"))


def test_preprocess_json_of_an_older_run_loads_with_todays_behaviour():
    prep, _ = _fit(GAPPY.fillna({"x": 1.0, "z": 1.0, "c": "p"}).assign(c=lambda d: d.c.replace("s", "p")))
    meta = prep.to_json()
    for k in ("missing", "impute_values", "missing_indicators", "unknown_category", "na_values"):
        meta.pop(k)
    old = Preprocessor.from_json(meta, prep.arrays())
    assert (old.missing, old.impute_values, old.indicators, old.unknown_category, old.na_values) == ("error", {}, [], "error", [])
    with pytest.raises(DataError, match="missing values in 1 used column: 'x'"):
        old.transform(pd.DataFrame({"x": [np.nan], "z": [1.0], "w": [1.0], "c": ["p"]}), "new.csv")


@pytest.mark.parametrize("damage, match", [
    (lambda m: m.update(missing="sometimes"), "unknown data.missing"),
    (lambda m: m.update(missing_indicators=["c"]), "not features"),
    (lambda m: m["impute_values"].update(x="median"), "not a finite number"),
])
def test_preprocess_json_with_bad_missing_fields_is_refused(damage, match):
    prep, _ = _fit(missing="impute", missing_indicator=True, unknown_category="ignore")
    meta = json.loads(json.dumps(prep.to_json()))
    damage(meta)
    with pytest.raises(ValueError, match=match):
        Preprocessor.from_json(meta, prep.arrays())


# ============================================================================= loss hints


@pytest.mark.parametrize("loss, target, hint", [
    ("bce", [0.1, 0.7, 2.5, 3.3, 0.2, 1.1], "use loss: mse"),  # many continuous values: straight to mse
    ("cross_entropy", [0.1, 0.7, 2.5, 3.3, 0.2, 1.1], "use loss: mse"),
    ("bce", ["a", "b", "c", "a", "b", "c"], "use loss: cross_entropy"),
    ("mse", ["yes", "no", "yes", "no", "no", "yes"], "use loss: bce"),
    ("mse", ["a", "b", "c", "a", "b", "c"], "use loss: cross_entropy"),
])
def test_loss_hints_name_the_loss_that_fits(loss, target, hint):
    from nncli.losses import LOSSES

    df = pd.DataFrame({"x": np.arange(6.0), "y": target})
    if LOSSES[loss].task != "regression" or isinstance(target[0], str):
        df["y"] = df["y"].astype(str)
    with pytest.raises(DataError) as e:
        Preprocessor.fit(df, _data(), TASKS[LOSSES[loss].task], "f.csv")
    assert str(e.value).endswith(hint), str(e.value)


# ============================================================================= config


def test_config_keys_and_their_validation():
    d = _data()
    assert (d.missing, d.impute.numeric, d.impute.categorical, d.missing_indicator, d.na_values, d.unknown_category) == \
        ("error", "median", "most_frequent", False, [], "error")
    assert _data(na_values=["?", -999]).na_values == ["?", "-999"]
    from pydantic import ValidationError

    for bad in ({"missing": "fill"}, {"impute": {"numeric": "mode"}}, {"unknown_category": "zeros"},
                {"missing_indicator": True}):  # an indicator marks imputed cells: needs missing: impute
        with pytest.raises(ValidationError):
            _data(**bad)


# ============================================================================= end to end through the CLI


def _yaml(train: str, target: str, loss: str, extra: str = "") -> str:
    return f"""\
name: gaps
seed: 1
data:
  train: {train}
  target: {target}
{extra}model:
  layers: [auto, 6, auto]
loss: {loss}
train:
  optimizer: adam
  lr: 0.05
  epochs: 40
  batch_size: 16
"""


def _gappy_csv(path: Path, n: int = 80, seed: int = 3) -> Path:
    """Numeric x, v and text c with gaps (tokens '', NA, ?), a binary label; two rows without a label."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x, v, c = rng.normal(), rng.normal(), "pqr"[rng.integers(3)]
        label = "yes" if x + (c == "p") > 0.2 else "no"
        row = {"x": f"{x:.4f}", "v": f"{v:.4f}", "c": c, "label": label}
        if i % 9 == 4:
            row["x"] = ["", "NA", "?"][i % 3]
        if i % 13 == 6:
            row["c"] = "?"
        if i % 17 == 8:
            row["v"] = ""
        if i in (10, 50):
            row["label"] = ""
        rows.append(row)
    return write_rows(path, ["x", "v", "c", "label"], rows)


GAP_ROWS = sorted({i for i in range(80) if i % 9 == 4 or i % 13 == 6 or i % 17 == 8} - {10, 50})


@pytest.fixture(scope="module")
def gap_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("gaps")
    _gappy_csv(base / "g.csv")
    write_rows(base / "new.csv", ["x", "v", "c"], [["0.5", "?", "p"], ["", "1.0", "q"], ["-1.0", "0.2", ""],
                                                   ["0.1", "0.1", "violet"]])
    out = {}
    for strategy in ("error", "drop", "impute"):
        extra = f"  test_split: 0.25\n  na_values: ['?']\n  missing: {strategy}\n"
        if strategy == "impute":
            extra += "  missing_indicator: true\n  unknown_category: ignore\n"
        (base / f"{strategy}.yaml").write_text(_yaml("g.csv", "label", "bce", extra), encoding="utf-8")
        out[strategy] = nn("train", f"{strategy}.yaml", *NO_PLOTS, cwd=base)
    return base, out


def test_e2e_error_lists_every_column_and_writes_nothing(gap_runs):
    base, out = gap_runs
    r = out["error"]
    assert r.rc == 2 and not r.tb, r.show()
    assert len(r.err_lines) == 1, r.err
    msg = r.err_lines[0]
    x_rows = [i for i in range(80) if i % 9 == 4 and i not in (10, 50)]
    assert f"'x' {len(x_rows)} cells: rows {', '.join(str(i + 1) for i in x_rows[:5])}, ..." in msg, msg
    assert "'v' " in msg and "'c' " in msg and "'label'" not in msg, msg
    assert "data.missing: drop" in msg and "data.missing: impute" in msg
    assert len(list((base / "runs").iterdir())) == 2  # the drop and impute runs only: the failed one wrote nothing


def test_e2e_drop_trains_evaluates_and_predict_refuses_gaps(gap_runs):
    base, out = gap_runs
    r = out["drop"]
    assert r.rc == 0, r.show()
    run = one_run_dir(r, base)
    s = summary(run)
    assert sum(s["dropped_rows"].values()) == len(GAP_ROWS) + 2, s
    assert any(f"dropped {len(GAP_ROWS) + 2} rows" in w for w in s["warnings"]) and "dropped" in r.err
    splits = np.load(run / "splits.npz")
    kept = set(splits["train"].tolist()) | set(splits["test"].tolist())
    assert kept == set(range(80)) - set(GAP_ROWS) - {10, 50}
    ev = nn("eval", run, "--json", "--no-plots", cwd=base)
    assert ev.rc == 0, ev.show()
    rep = json.loads(ev.text)
    assert rep["rows"] == len(splits["test"]) and "dropped_rows" not in rep  # the saved rows are clean
    p = nn("predict", run, "new.csv", cwd=base)
    assert p.rc == 2 and "missing values in 3 used columns" in p.err and "data.missing: impute" in p.err, p.show()


def test_e2e_impute_trains_evaluates_and_predicts_every_row(gap_runs):
    base, out = gap_runs
    r = out["impute"]
    assert r.rc == 0, r.show()
    run = one_run_dir(r, base)
    s = summary(run)
    assert sum(s["dropped_rows"].values()) == 2  # only the rows without a label
    meta = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["missing"] == "impute" and set(meta["missing_indicators"]) == {"x", "v"}
    assert meta["input_names"][-2:] == ["x (missing)", "v (missing)"]
    ev = nn("eval", run, "--json", "--no-plots", cwd=base)
    assert ev.rc == 0, ev.show()
    rep = json.loads(ev.text)
    assert rep["rows"] == len(np.load(run / "splits.npz")["test"]) and rep["unknown_categories"] == {}
    # --data on the whole file: the two rows without a label are dropped and counted
    ev2 = nn("eval", run, "--data", "g.csv", "--json", "--no-plots", cwd=base)
    rep2 = json.loads(ev2.text)
    assert ev2.rc == 0 and rep2["rows"] == 78 and rep2["dropped_rows"] == 2, ev2.show()
    assert any("2 with a missing target" in n for n in rep2["notes"]) and "2 with a missing target" in ev2.err
    # an unseen category at eval (data.unknown_category: ignore): counted in the report and warned about
    write_rows(base / "labelled.csv", ["x", "v", "c", "label"], [["0.5", "1", "violet", "yes"], ["-1", "?", "p", "no"],
                                                                 ["1", "0", "ultra", "yes"], ["1", "0", "violet", ""]])
    ev3 = nn("eval", run, "--data", "labelled.csv", "--json", "--no-plots", cwd=base)
    rep3 = json.loads(ev3.text)
    assert ev3.rc == 0 and rep3["rows"] == 3 and rep3["dropped_rows"] == 1, ev3.show()
    assert rep3["unknown_categories"] == {"c": 2}
    assert "column 'c': 2 rows of --data labelled.csv have a category not seen in training" in ev3.err, ev3.err
    p = nn("predict", run, "new.csv", cwd=base)
    assert p.rc == 0, p.show()
    pred = pd.read_csv(pd.io.common.StringIO(p.text), dtype=str, keep_default_na=False)
    assert len(pred) == 4 and set(pred["prediction"]) <= {"yes", "no"}
    assert pred["v"].tolist()[0] == "?" and pred["c"].tolist()[3] == "violet"  # input cells pass through as written
    assert "column 'c': 1 row of new.csv has a category not seen in training" in p.err, p.err


def test_e2e_impute_without_indicator_matches_the_filled_in_values(tmp_path):
    _gappy_csv(tmp_path / "g.csv")
    (tmp_path / "c.yaml").write_text(_yaml("g.csv", "label", "bce", "  na_values: ['?']\n  missing: impute\n"),
                                     encoding="utf-8")
    r = nn("train", "c.yaml", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = one_run_dir(r, tmp_path)
    fill = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))["impute_values"]
    write_rows(tmp_path / "gaps.csv", ["x", "v", "c"], [["0.5", "", "p"], ["?", "1.0", "q"], ["-1.0", "0.2", "NA"]])
    write_rows(tmp_path / "filled.csv", ["x", "v", "c"], [["0.5", repr(fill["v"]), "p"], [repr(fill["x"]), "1.0", "q"],
                                                          ["-1.0", "0.2", fill["c"]]])
    a, b = (nn("predict", run, f, cwd=tmp_path) for f in ("gaps.csv", "filled.csv"))
    assert a.rc == 0 and b.rc == 0, a.show() + b.show()
    pa, pb = (pd.read_csv(pd.io.common.StringIO(x.text), dtype=str, keep_default_na=False) for x in (a, b))
    assert pa["prediction"].tolist() == pb["prediction"].tolist()
    assert pa["proba_yes"].tolist() == pb["proba_yes"].tolist()


def test_e2e_config_errors(tmp_path):
    _gappy_csv(tmp_path / "g.csv")
    (tmp_path / "c.yaml").write_text(_yaml("g.csv", "label", "bce", "  missing_indicator: true\n"), encoding="utf-8")
    r = nn("train", "c.yaml", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 2 and "data.missing_indicator" in r.err and "data.missing: impute" in r.err, r.show()
    assert not (tmp_path / "runs").exists()
    r = nn("train", "c.yaml", "--set", "data.missing_indicator=false", "--set", "data.missing=fill", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 2 and "data.missing" in r.err and "'drop'" in r.err, r.show()


# ============================================================================= tokens at predict time


def test_a_numeric_na_value_matches_numbers_and_text_alike(tmp_path):
    write_rows(tmp_path / "t.csv", ["a", "b", "y"], [["1", "-999", "1"], ["-999", "x", "2"], ["3", "-999.0", "3"]])
    df = read_csv(tmp_path / "t.csv", "data.train", na_values=["-999"])
    assert df["a"].isna().tolist() == [False, True, False]  # a numeric column: -999 as a number
    assert df["b"].isna().tolist() == [True, False, False]  # a text column: the token as written ('-999.0' is text)
    # a column of numbers that pandas reads as text only for a blank cell: numbers, as a numeric column's
    write_rows(tmp_path / "b.csv", ["a", "y"], [["", "1"], ["-999.0", "2"], ["-999", "3"], ["4", "4"]])
    assert read_csv(tmp_path / "b.csv", "data.train", na_values=["-999"])["a"].isna().tolist() == [True, True, True, False]


@pytest.fixture(scope="module")
def impute_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("impute")
    _gappy_csv(base / "g.csv")
    (base / "c.yaml").write_text(_yaml("g.csv", "label", "bce", "  na_values: ['?', '-']\n  missing: impute\n"),
                                 encoding="utf-8")
    r = nn("train", "c.yaml", *NO_PLOTS, "-q", cwd=base)
    assert r.rc == 0, r.show()
    return base, one_run_dir(r, base)


PREDICT_ROWS = [["0.5", "0.1", "p"], ["-0.3", "1.2", "q"], ["1.1", "-0.7", "r"], ["0.0", "0.0", "p"]]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gaps=st.dictionaries(st.tuples(st.integers(0, 3), st.integers(0, 2)), st.sampled_from(MISSING + ["?", "-"]),
                            max_size=8))
def test_predict_fills_any_missing_token_with_the_training_values(impute_run, gaps):
    """A row with missing tokens predicts exactly as the row with the run's fill values written in."""
    from nncli.inference import predict
    from nncli.runs import load_run

    base, run_dir = impute_run
    run = load_run(run_dir)
    fill = run.prep.impute_values
    cols = ["x", "v", "c"]
    gappy = [[gaps.get((i, j), cell) for j, cell in enumerate(row)] for i, row in enumerate(PREDICT_ROWS)]
    filled = [[(repr(fill[cols[j]]) if cols[j] != "c" else fill["c"]) if (i, j) in gaps else cell
               for j, cell in enumerate(row)] for i, row in enumerate(PREDICT_ROWS)]
    with tempfile.TemporaryDirectory() as d:
        out = {}
        for name, rows in (("gappy", gappy), ("filled", filled)):
            write_rows(Path(d) / f"{name}.csv", cols, rows)
            predict(run, str(Path(d) / f"{name}.csv"), str(Path(d) / f"{name}.out.csv"))
            out[name] = pd.read_csv(Path(d) / f"{name}.out.csv", dtype=str, keep_default_na=False)
    assert out["gappy"][cols].values.tolist() == gappy  # the input cells pass through as written
    assert out["gappy"]["proba_yes"].tolist() == out["filled"]["proba_yes"].tolist()


def test_predict_reads_a_numeric_na_value_as_training_does(tmp_path):
    """data.na_values: ["-1"]: training (and eval) read a numeric column as numbers, so -1,
    -1.0 and -1e0 are all missing there; predict reads cells as text and must decide the
    same (it used to take "-1.0" for the number -1.0). Each spelling predicts as the empty
    cell does (imputed), and a number near it (-1.5) does not."""
    rng = np.random.default_rng(0)
    rows = [[f"{x:.3f}", "-1" if i % 7 == 0 else f"{v:.3f}", "yes" if x + v > 0 else "no"]
            for i, (x, v) in enumerate(rng.normal(size=(60, 2)))]
    write_rows(tmp_path / "t.csv", ["x", "v", "label"], rows)
    (tmp_path / "c.yaml").write_text(
        "data: {train: t.csv, target: label, missing: impute, na_values: ['-1']}\n"
        "model: {layers: [auto, 4, auto], activation: tanh}\ntrain: {epochs: 5}\n", encoding="utf-8")
    r = nn("train", "c.yaml", *NO_PLOTS, cwd=tmp_path)
    run = one_run_dir(r, tmp_path)
    write_rows(tmp_path / "new.csv", ["x", "v"], [["0.3", s] for s in ("", "-1", "-1.0", "-1e0", "-1.5")])
    p = nn("predict", run, "new.csv", cwd=tmp_path)
    assert p.rc == 0, p.show()
    out = pd.read_csv(__import__("io").StringIO(p.text), dtype=str)
    probs = out["proba_yes"].astype(float).tolist()
    assert probs[1] == probs[2] == probs[3] == probs[0], probs  # all missing: imputed alike
    assert probs[4] != probs[0]
    # eval reads the same cells with training's reader: its log-loss on them is predict's probability's
    write_rows(tmp_path / "lab.csv", ["x", "v", "label"], [["0.3", s, "yes"] for s in ("", "-1.0")])
    ev = nn("eval", run, "--data", "lab.csv", "--json", "--no-plots", cwd=tmp_path)
    assert ev.rc == 0, ev.show()
    assert json.loads(ev.text)["log_loss"] == pytest.approx(-np.log(probs[2]), rel=1e-5)
