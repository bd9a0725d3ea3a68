"""nncli.infer: the loss inferred from a training target (issue 13), and a config without
`loss` through `nncli train`: the printed line, the saved resolved config, and the run
reproduced bit for bit from that saved config.

The rule is checked on hand-made tables, and with hypothesis against scikit-learn's
`type_of_target` (an independent reading of "binary / multiclass / continuous"): nncli agrees
with it on text labels and on non-whole numbers, and differs only where its documented extra
rule makes many distinct whole numbers a quantity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import (XOR_YAML, assert_data_error_and_nothing_written, assert_usage_error, nn, one_run_dir, summary,
                     write_rows)
from nncli.config import load_config
from nncli.errors import ConfigError, DataError
from nncli.infer import MAX_CLASSES, MIN_ROWS_PER_CLASS, infer_loss

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def loss_of(values, **more) -> str:
    df = pd.DataFrame({"y": pd.Series(values, dtype=object), **more})
    return infer_loss(df, ["y", *more], "t.csv").loss


# ---------------------------------------------------------------------- the rule, by hand


@pytest.mark.parametrize("values, loss", [
    (["no", "yes", "yes", "no"], "bce"),  # text labels, two classes
    (["a", "b", "c", "a"], "cross_entropy"),  # text labels, three classes
    (["1", "2", "x"] * 3, "cross_entropy"),  # a text label among numbers: labels
    (["True", "False", "True"], "bce"),  # boolean words are text labels
    (["0", "1", "1", "0"], "bce"),  # two whole numbers: two classes, whatever the row count
    (["-1", "1"], "bce"),
    (["2.0", "1.0"] * 3, "bce"),  # whole numbers written with a decimal point
    (["0", "1", "2"] * 5, "cross_entropy"),  # 3 values, 15 rows: 5 rows per value
    (["0", "1", "2"] * 4 + ["0", "1"], "mse"),  # 3 values, 14 rows: fewer than 5 per value
    ([str(i % 20) for i in range(100)], "cross_entropy"),  # 20 values, 5 rows each
    ([str(i % 21) for i in range(1000)], "mse"),  # 21 distinct whole numbers: a quantity
    (["326", "18823", "500", "326"] * 20, "cross_entropy"),  # 3 values, 80 rows: codes, however large
    ([str(326 + 7 * i) for i in range(300)], "mse"),  # prices
    (["0.5", "1", "1", "0"], "mse"),  # one number that is not whole
    (["0.25", "0.75"] * 10, "mse"),  # two distinct values, not whole: a quantity (bce would refuse them)
    (["1e3", "2e3", "2.5e3"], "mse"),
    (["1", "inf", "2"], "mse"),  # not finite: not a whole number (training then names the cell)
])
def test_the_rule_on_small_tables(values, loss):
    assert loss_of(values) == loss


def test_several_target_columns_are_regression():
    df = pd.DataFrame({"a": ["0", "1"] * 5, "b": ["x", "y"] * 5})
    inf = infer_loss(df, ["a", "b"], "t.csv")
    assert inf.loss == "mse" and "2 target columns ('a', 'b')" in inf.reason


def test_missing_cells_are_ignored():
    assert loss_of(["a", None, "b", np.nan]) == "bce"
    assert loss_of(["0", "1", "2", None] * 5) == "cross_entropy"  # 15 filled rows of 3 values


def test_reason_names_the_column_and_classes():
    inf = infer_loss(pd.DataFrame({"y": ["no", "yes", "no"]}), ["y"], "t.csv")
    assert inf.reason == "2 classes ('no', 'yes') in column 'y'"
    assert inf.message().startswith("loss not given: inferred bce from 2 classes ('no', 'yes') in column 'y'")
    inf = infer_loss(pd.DataFrame({"p": [str(10 * i) for i in range(50)]}), ["p"], "t.csv")
    assert inf.loss == "mse" and "50 distinct whole numbers in column 'p'" in inf.reason
    assert infer_loss(pd.DataFrame({"y": list("abcdefg")}), ["y"], "t.csv").n_classes == 7


@pytest.mark.parametrize("values, needles", [
    ([None, None], ["t.csv", "'y'", "no values"]),
    (["a", "a", None], ["'y'", "single value ('a')"]),
    (["1.5", "2.5", "?", "3.25"], ["row 3 (line 4), column 'y'", "'?' is not a number", "data.na_values"]),
])
def test_what_cannot_be_inferred_is_one_line(values, needles):
    with pytest.raises(DataError) as e:
        loss_of(values)
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg


def test_numeric_columns_of_a_frame_read_as_numbers():
    """infer_loss also takes a column pandas parsed as numbers (the same answers)."""
    assert infer_loss(pd.DataFrame({"y": [0, 1, 1]}), ["y"], "t").loss == "bce"
    assert infer_loss(pd.DataFrame({"y": [0.5, 1.0, 2.0]}), ["y"], "t").loss == "mse"
    assert infer_loss(pd.DataFrame({"y": [0, 1, 2] * 5}), ["y"], "t").loss == "cross_entropy"


# ---------------------------------------------------------------------- properties


def _expected_for_whole_numbers(values) -> str:
    k, n = len(set(values)), len(values)
    if k == 2:
        return "bce"
    return "cross_entropy" if k <= MAX_CLASSES and n >= MIN_ROWS_PER_CLASS * k else "mse"


def type_of_target(values):
    """scikit-learn's reading of a target (binary, multiclass, continuous, ...); the tests that
    compare with it skip without scikit-learn (pip install -e '.[bench]')."""
    return pytest.importorskip("sklearn.utils.multiclass").type_of_target(values)


labels_text = st.lists(st.sampled_from(["a", "b", "cat", "dog", "x y", "Ünï", "1", "2"]), min_size=2, max_size=40)


@SETTINGS
@given(labels_text)
def test_text_labels_agree_with_scikit_learn(values):
    if len(set(values)) < 2 or all(v.isdigit() for v in values):
        return  # a single value is an error (tested above); digits only are numbers (next tests)
    sk = type_of_target(np.array(values, dtype=object))
    assert loss_of(values) == {"binary": "bce", "multiclass": "cross_entropy"}[sk]


@SETTINGS
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=40), st.randoms(use_true_random=False))
def test_non_whole_numbers_agree_with_scikit_learn(values, rnd):
    values = values + [0.5]  # at least one non-whole number
    rnd.shuffle(values)
    assert loss_of([repr(v) for v in values]) == "mse"
    assert type_of_target(np.array(values)) == "continuous"


@SETTINGS
@given(st.lists(st.integers(-50, 10_000), min_size=2, max_size=300).filter(lambda v: len(set(v)) >= 2))
def test_whole_numbers_follow_the_documented_rule(values):
    got = loss_of([str(v) for v in values])
    assert got == _expected_for_whole_numbers(values)


@SETTINGS
@given(st.lists(st.integers(-50, 10_000), min_size=2, max_size=300).filter(lambda v: len(set(v)) >= 2))
def test_whole_numbers_nncli_reads_as_classes_scikit_learn_does_too(values):
    got = loss_of([str(v) for v in values])
    sk = type_of_target(np.array(values))
    if got == "bce":
        assert sk == "binary"
    elif got == "cross_entropy":
        assert sk == "multiclass"  # nncli's classes are scikit-learn's classes; the reverse needs few values


@SETTINGS
@given(st.lists(st.sampled_from(["0", "1", "2", "3", "a", "b", "1.5", "7"]), min_size=2, max_size=60),
       st.randoms(use_true_random=False), st.integers(0, 10))
def test_row_order_and_missing_cells_do_not_change_the_loss(values, rnd, n_missing):
    try:
        before = loss_of(values)
    except DataError:
        return
    shuffled = values + [None] * n_missing
    rnd.shuffle(shuffled)
    assert loss_of(shuffled) == before


# ---------------------------------------------------------------------- the config


def test_a_config_without_loss_is_valid_until_the_data_decide(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(XOR_YAML.read_text().replace("loss: bce\n", ""), encoding="utf-8")
    cfg = load_config(p)
    assert cfg.loss is None
    with pytest.raises(RuntimeError):
        cfg.task  # asked before the data: a programming error, not a user's
    p.write_text(XOR_YAML.read_text().replace("loss: bce\n", "") + "  early_stopping: {patience: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="early_stopping"):
        load_config(p)  # the checks that do not need the loss still run


def test_an_unknown_loss_is_still_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(XOR_YAML.read_text().replace("loss: bce", "loss: bcee"), encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean 'bce'"):
        load_config(p)


# ---------------------------------------------------------------------- through nncli train


def _table(kind: str, n: int = 60, seed: int = 0) -> tuple[list[str], list[list]]:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    if kind == "binary":
        y = np.where(x1 + x2 > 0, "yes", "no")
    elif kind == "multi":
        y = (x1 > 0).astype(int) + (x2 > 0).astype(int)
    else:
        y = np.round(5000 + 3000 * x1 - 800 * x2, 2)
    return ["x1", "x2", "y"], [[f"{a:.6f}", f"{b:.6f}", str(c)] for a, b, c in zip(x1, x2, y)]


CFG = """\
data: {{train: data.csv, target: y, val_split: 0.25}}
model: {{layers: [auto, 5, auto]{output}}}
train: {{optimizer: adam, lr: 0.02, epochs: 15, batch_size: 8}}
"""


@pytest.mark.parametrize("kind, loss, line", [
    ("binary", "bce", "loss not given: inferred bce from 2 classes ('no', 'yes') in column 'y'"),
    ("multi", "cross_entropy", "loss not given: inferred cross_entropy from 3 distinct whole numbers ('0', '1', '2') in column 'y'"),
    ("regression", "mse", "loss not given: inferred mse from numbers that are not whole"),
])
def test_train_infers_prints_saves_and_reproduces_bit_for_bit(tmp_path, kind, loss, line):
    header, rows = _table(kind)
    write_rows(tmp_path / "data.csv", header, rows)
    (tmp_path / "cfg.yaml").write_text(CFG.format(output=""), encoding="utf-8")
    r = nn("train", "cfg.yaml", "--no-plots", cwd=tmp_path)
    assert r.rc == 0, r.show()
    notes = [ln for ln in r.err_lines if "loss not given" in ln]
    assert len(notes) == 1 and line in notes[0], r.err
    run = one_run_dir(r, tmp_path)
    assert any(line in w for w in summary(run).get("warnings", [line]))  # scripts see it too
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert saved["loss"] == loss
    assert saved["model"]["output"] == {"bce": "sigmoid", "cross_entropy": "softmax", "mse": "identity"}[loss]

    # the saved config names the loss: training it again prints no inference and gives the same bits
    r2 = nn("train", str(run / "config.yaml"), "--no-plots", "--runs-dir", "again", cwd=tmp_path)
    assert r2.rc == 0, r2.show()
    assert "loss not given" not in r2.err
    run2 = tmp_path / r2.text.strip()
    a, b = np.load(run / "model.npz"), np.load(run2 / "model.npz")
    assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    assert (run / "metrics.csv").read_bytes() == (run2 / "metrics.csv").read_bytes()
    assert (run / "preprocess.json").read_bytes() == (run2 / "preprocess.json").read_bytes()
    assert (run / "splits.npz").read_bytes() == (run2 / "splits.npz").read_bytes()

    # and the same as naming the inferred loss in the first place
    (tmp_path / "named.yaml").write_text(CFG.format(output="") + f"loss: {loss}\n", encoding="utf-8")
    r3 = nn("train", "named.yaml", "--no-plots", "--runs-dir", "named", cwd=tmp_path)
    run3 = tmp_path / r3.text.strip()
    c = np.load(run3 / "model.npz")
    assert all(np.array_equal(a[k], c[k]) for k in a.files)


def test_quiet_training_prints_nothing_but_the_run(tmp_path):
    header, rows = _table("binary")
    write_rows(tmp_path / "data.csv", header, rows)
    (tmp_path / "cfg.yaml").write_text(CFG.format(output=""), encoding="utf-8")
    r = nn("train", "cfg.yaml", "--no-plots", "-q", cwd=tmp_path)
    assert r.rc == 0 and r.err == "", r.show()


def test_an_output_that_does_not_suit_the_inferred_loss_is_one_line(tmp_path):
    header, rows = _table("binary")
    write_rows(tmp_path / "data.csv", header, rows)
    (tmp_path / "cfg.yaml").write_text(CFG.format(output=", output: identity"), encoding="utf-8")
    r = nn("train", "cfg.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "loss: not given", "bce (inferred from 2 classes", "model.output 'identity'", "name the loss")
    assert not (tmp_path / "runs").exists()


def test_a_target_with_one_value_is_one_line_and_writes_nothing(tmp_path):
    write_rows(tmp_path / "data.csv", ["x1", "x2", "y"], [[i, i * 2, "same"] for i in range(10)])
    (tmp_path / "cfg.yaml").write_text(CFG.format(output=""), encoding="utf-8")
    r = nn("train", "cfg.yaml", "--no-plots", cwd=tmp_path)
    assert_data_error_and_nothing_written(r, ["data.train data.csv", "'y'", "single value"], tmp_path)


def test_gradcheck_of_a_config_without_loss(tmp_path):
    header, rows = _table("multi")
    write_rows(tmp_path / "data.csv", header, rows)
    (tmp_path / "cfg.yaml").write_text(CFG.format(output=""), encoding="utf-8")
    r = nn("gradcheck", "cfg.yaml", "--json", cwd=tmp_path)
    assert r.rc == 0, r.show()
