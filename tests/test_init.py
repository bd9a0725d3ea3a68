"""`nncli init DATA --target COLUMN [-o CONFIG]` (issue 13): a commented starter config from a
table, which trains without edits.

Each table below is a kind of real table (binary text labels with ID, name and ticket
columns and gaps as in Titanic; numeric features with text species as in iris; a price in
the thousands as in diamonds; UCI's `?` for a gap; a 4-row truth table; odd column names):
init writes the config, the parsed YAML says what the rules say, each choice has its
comment, and `nncli train` of the written file exits 0.
"""

from __future__ import annotations

import os
import string

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import XOR_CSV, assert_usage_error, nn, one_run_dir, write_rows
from nncli.config import DataConfig, load_config
from nncli.starter import EPOCHS, LR, PATIENCE, _width, starter


def _init_and_train(tmp_path, target, *more, train_args=("--no-plots",)):
    """init -o cfg.yaml, then train it; (parsed config, config text, init result, train result)."""
    r = nn("init", "data.csv", "--target", target, *more, "-o", "cfg.yaml", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert r.out == b"" and len(r.err_lines) == 1 and r.err_lines[0].startswith("wrote cfg.yaml: "), r.show()
    text = (tmp_path / "cfg.yaml").read_text(encoding="utf-8")
    t = nn("train", "cfg.yaml", *train_args, cwd=tmp_path)
    assert t.rc == 0, t.show()
    assert "loss not given" not in t.err  # the config names the loss
    return yaml.safe_load(text), text, r, t


def titanic_like(path, n=240, seed=0):
    """PassengerId (a row counter), Survived 0/1, Pclass 1-3, Name (unique), Sex, Age (gaps),
    Fare, Ticket (near-unique), Embarked (text, two gaps)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        pclass, sex = int(rng.integers(1, 4)), str(rng.choice(["male", "female"]))
        age = "" if rng.random() < 0.2 else f"{rng.uniform(1, 70):.0f}"
        fare = f"{rng.gamma(2, 10 * (4 - pclass)):.4f}"
        survived = int(rng.random() < (0.75 if sex == "female" else 0.2) + 0.05 * (3 - pclass))
        rows.append([i + 1, survived, pclass, f"Passenger, Mr. No {i}", sex, age, fare,
                     f"T{rng.integers(0, 10 * n)}", "" if i in (5, 77) else str(rng.choice(["S", "C", "Q"]))])
    return write_rows(path, ["PassengerId", "Survived", "Pclass", "Name", "Sex", "Age", "Fare", "Ticket", "Embarked"], rows)


def test_binary_text_columns_ids_and_gaps(tmp_path):
    titanic_like(tmp_path / "data.csv")
    cfg, text, r, _ = _init_and_train(tmp_path, "Survived")
    d = cfg["data"]
    assert cfg["loss"] == "bce" and d["target"] == "Survived" and d["train"] == "data.csv"
    assert d["exclude"] == ["PassengerId", "Name", "Ticket"]
    assert d["missing"] == "impute" and d["unknown_category"] == "ignore"
    assert d["test_split"] == 0.2 and d["val_split"] == 0.2
    assert cfg["train"] == {"optimizer": "adam", "lr": LR, "batch_size": 32, "epochs": EPOCHS,
                            "early_stopping": {"patience": PATIENCE}}
    assert cfg["seed"] == 0 and "name" not in cfg  # the run is named after the config file
    # every choice has its comment
    for needle in ["# 2 distinct whole numbers ('0', '1') in column 'Survived'",
                   "#   'PassengerId': whole numbers 1..240, one per row (a row counter or an ID)",
                   "#   'Name': text unique per row",
                   "#   'Ticket': text with", "near-unique",
                   "missing cells in 2 feature columns ('Age'", "'Embarked' 2",
                   "median (numbers) or most frequent value (text)",
                   "encodes as all zeros", "stratified by class",
                   "the power of two nearest to 2/3 x inputs + outputs", "early stopping ends sooner"]:
        assert needle in text, needle
    assert "loss bce" in r.err and "excluded 'PassengerId', 'Name', 'Ticket'" in r.err


def test_multiclass_text_labels(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for species, centre in (("setosa", 0), ("versicolor", 3), ("virginica", 6)):
        rows += [[f"{v:.3f}" for v in rng.normal(centre, 1, 4)] + [species] for _ in range(50)]
    write_rows(tmp_path / "data.csv", ["a", "b", "c", "d", "species"], rows)
    cfg, text, _, t = _init_and_train(tmp_path, "species")
    assert cfg["loss"] == "cross_entropy"
    assert cfg["model"]["layers"] == ["auto", 8, "auto"]  # 2/3 * 4 + 3 = 5.7 -> 8
    assert {"exclude", "missing", "unknown_category", "na_values"}.isdisjoint(cfg["data"])
    assert "# 3 classes ('setosa', 'versicolor', 'virginica') in column 'species'" in text
    assert "4 inputs (after one-hot encoding) and 3 outputs" in text


def test_regression_with_a_target_in_the_thousands(tmp_path):
    rng = np.random.default_rng(2)
    carat = rng.uniform(0.2, 3, 400)
    cut = rng.choice(["Fair", "Good", "Ideal"], 400)
    price = np.round(326 + 6000 * carat ** 1.5 + np.where(cut == "Ideal", 900, 0) + rng.normal(0, 200, 400)).astype(int)
    write_rows(tmp_path / "data.csv", ["carat", "cut", "price"], [[f"{a:.2f}", b, int(p)] for a, b, p in zip(carat, cut, price)])
    cfg, text, _, t = _init_and_train(tmp_path, "price", train_args=("--no-plots", "--json"))
    assert cfg["loss"] == "mse" and "stratified" not in text
    assert "distinct whole numbers in column 'price' (more than 20: a quantity, not class labels)" in text
    import json

    summary = json.loads(t.text)
    assert summary["status"] == "completed" and summary["val_metrics"]["r2"] > 0.8


def test_uci_question_marks_become_missing_values(tmp_path):
    if "na_values" not in DataConfig.model_fields:
        pytest.skip("data.na_values is not in the schema yet")
    rng = np.random.default_rng(3)
    rows = [[("?" if i % 17 == 3 else f"{rng.normal():.3f}"), f"{rng.normal():.3f}", str(rng.choice(["x", "y"]))]
            for i in range(120)]
    write_rows(tmp_path / "data.csv", ["horsepower", "weight", "label"], rows)
    cfg, text, _, _ = _init_and_train(tmp_path, "label")
    assert cfg["data"]["na_values"] == ["?"] and cfg["data"]["missing"] == "impute"
    assert "'horsepower' 7" in text


def test_a_tiny_table_trains_on_every_row(tmp_path):
    (tmp_path / "data.csv").write_bytes(XOR_CSV.read_bytes())
    cfg, text, _, _ = _init_and_train(tmp_path, "y")
    assert cfg["loss"] == "bce"
    assert {"val_split", "test_split"}.isdisjoint(cfg["data"]) and "early_stopping" not in cfg["train"]
    assert "too few to hold any out" in text


def test_shuffled_ids_and_mixed_columns(tmp_path):
    rng = np.random.default_rng(4)
    n = 100
    ids = rng.permutation(np.arange(1000, 1000 + n))
    rows = [[int(ids[i]), f"{rng.normal():.3f}", str(rng.choice(["1", "2", "3", "4 or more"])), int(rng.integers(0, 2))]
            for i in range(n)]
    write_rows(tmp_path / "data.csv", ["id", "x", "rooms", "y"], rows)
    cfg, text, _, _ = _init_and_train(tmp_path, "y")
    assert cfg["data"]["exclude"] == ["id"] and cfg["data"]["categorical"] == ["rooms"]
    assert "whole numbers 1000..1099, one per row" in text


def test_an_empty_column_is_excluded(tmp_path):
    write_rows(tmp_path / "data.csv", ["x", "empty", "y"], [[f"{0.37 * i % 1:.3f}", "", "ab"[i % 2]] for i in range(30)])
    cfg, text, _, _ = _init_and_train(tmp_path, "y")
    assert cfg["data"]["exclude"] == ["empty"] and "'empty': every cell is missing" in text
    assert "missing" not in cfg["data"]  # the only gaps were in the excluded column


def test_odd_column_names_survive_the_yaml(tmp_path):
    names = ["a: b", "# not a comment", "yes", "null", "  spaced ", "Größe", "quote'\"", "1.5", "tab\there"]
    rng = np.random.default_rng(5)
    rows = [[f"{rng.normal():.3f}" for _ in names[:-1]] + [str(rng.choice(["p", "q"]))] for _ in range(60)]
    write_rows(tmp_path / "data.csv", names, rows)
    target = names[-1]
    r = nn("init", "data.csv", "--target", target, "-o", "cfg.yaml", cwd=tmp_path)
    assert r.rc == 0, r.show()
    cfg = yaml.safe_load((tmp_path / "cfg.yaml").read_text(encoding="utf-8"))
    assert cfg["data"]["target"] == target
    t = nn("train", "cfg.yaml", "--no-plots", "-q", cwd=tmp_path)
    assert t.rc == 0, t.show()
    import json

    prep = json.loads((one_run_dir(t, tmp_path) / "preprocess.json").read_text(encoding="utf-8"))
    assert prep["features"] == names[:-1]  # the run used every odd feature, by its exact name


# ---------------------------------------------------------------------- stdout, refusal, errors


def test_without_o_the_config_goes_to_stdout(tmp_path):
    titanic_like(tmp_path / "data.csv")
    r = nn("init", "data.csv", "--target", "Survived", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("nncli init: loss bce")
    nn("init", "data.csv", "--target", "Survived", "-o", "cfg.yaml", cwd=tmp_path)
    assert r.text == (tmp_path / "cfg.yaml").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml", "data.csv"]  # stdout wrote no file


def test_an_existing_file_is_never_overwritten(tmp_path):
    titanic_like(tmp_path / "data.csv")
    (tmp_path / "cfg.yaml").write_text("mine\n", encoding="utf-8")
    r = nn("init", "data.csv", "--target", "Survived", "-o", "cfg.yaml", cwd=tmp_path)
    assert_usage_error(r, "cfg.yaml: already exists", "never overwrites")
    assert (tmp_path / "cfg.yaml").read_text(encoding="utf-8") == "mine\n"


def test_a_bad_target_is_one_line_with_did_you_mean(tmp_path):
    titanic_like(tmp_path / "data.csv")
    r = nn("init", "data.csv", "--target", "survived", "-o", "cfg.yaml", cwd=tmp_path)
    assert_usage_error(r, "--target survived: no such column in data.csv", "did you mean 'Survived'?", "columns: PassengerId")
    assert not (tmp_path / "cfg.yaml").exists()


@pytest.mark.parametrize("args, needle", [
    (["init", "nope.csv", "--target", "y"], "nope.csv: file not found"),
    (["init", "data.csv"], "--target"),  # the option is required
    (["init", "data.csv", "--target", "y", "-o", "no/such/dir/cfg.yaml"], "cannot write the config"),
])
def test_usage_errors(tmp_path, args, needle):
    (tmp_path / "data.csv").write_text("x,y\n1,a\n5,b\n3,a\n", encoding="utf-8")
    r = nn(*args, cwd=tmp_path)
    assert r.rc == 2 and not r.tb, r.show()
    assert needle in r.err, r.show()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_another_separator(tmp_path):
    titanic_like(tmp_path / "t.csv")
    (tmp_path / "data.csv").write_text((tmp_path / "t.csv").read_text(encoding="utf-8").replace(",", ";"), encoding="utf-8")
    r = nn("init", "data.csv", "--target", "Survived", cwd=tmp_path)
    assert_usage_error(r, "data.csv: the header is the single column", "looks ';'-separated; give --sep ';'")
    if "sep" not in DataConfig.model_fields:
        return
    cfg, text, _, _ = _init_and_train(tmp_path, "Survived", "--sep", ";")
    assert cfg["data"]["sep"] == ";" and cfg["data"]["exclude"] == ["PassengerId", "Name", "Ticket"]


def test_a_target_with_one_value_is_one_line(tmp_path):
    write_rows(tmp_path / "data.csv", ["x", "y"], [[i, "a"] for i in range(30)])
    r = nn("init", "data.csv", "--target", "y", cwd=tmp_path)
    assert_usage_error(r, "data.csv: target column 'y' has a single value ('a')")


# ---------------------------------------------------------------------- the rules


@pytest.mark.parametrize("n_in, n_out, width", [(2, 1, 8), (4, 3, 8), (30, 1, 16), (64, 10, 64), (26, 1, 16),
                                                 (784, 10, 128), (1, 1, 8)])
def test_the_width_rule(n_in, n_out, width):
    assert _width(n_in, n_out) == width
    w = 2 / 3 * n_in + n_out
    assert width in (8, 128) or abs(np.log2(width) - np.log2(w)) <= 0.5


def test_several_targets(tmp_path):
    rng = np.random.default_rng(6)
    write_rows(tmp_path / "data.csv", ["x", "a", "b"], [[f"{v:.3f}", f"{2 * v:.3f}", f"{-v:.3f}"] for v in rng.normal(size=50)])
    r = nn("init", "data.csv", "--target", "a", "--target", "b", "-o", "cfg.yaml", cwd=tmp_path)
    assert r.rc == 0, r.show()
    cfg = load_config(tmp_path / "cfg.yaml")
    assert cfg.data.target == ["a", "b"] and cfg.loss == "mse"


_cells = st.sampled_from(["", "NA"])


@settings(max_examples=int(os.environ.get("NNCLI_INIT_EXAMPLES", "12")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(n=st.integers(4, 80), seed=st.integers(0, 10_000), kinds=st.lists(st.sampled_from(["num", "int", "text", "id", "name", "gappy"]),
                                                                        min_size=1, max_size=5),
       target=st.sampled_from(["bin", "multi", "reg"]))
def test_random_tables_init_then_train(tmp_path_factory, n, seed, kinds, target):
    """Whatever the columns, init writes a config that validates, excludes exactly the planted
    ID columns, and trains (a few epochs here, for time)."""
    tmp = tmp_path_factory.mktemp("rand")
    rng = np.random.default_rng(seed)
    cols, planted = {}, []
    for j, kind in enumerate(kinds):
        name = f"{kind}{j}"
        if kind == "num":
            cols[name] = [f"{v:.4f}" for v in rng.normal(size=n)]
        elif kind == "int":
            cols[name] = [str(v) for v in rng.integers(0, 3, n)]  # 3 values: never a row counter
        elif kind == "text":
            cols[name] = [str(v) for v in rng.choice(["red", "green", "blue"], n)]
        elif kind == "gappy":
            cols[name] = [f"{v:.3f}" if k % 5 else "" for k, v in enumerate(rng.normal(size=n))]
            cols[name][0] = "1.0"
        elif kind == "id":
            cols[name] = [str(v) for v in rng.permutation(n) + 7]
            planted.append(name)
        else:
            cols[name] = [f"{''.join(rng.choice(list(string.ascii_lowercase), 8))}{k}" for k in range(n)]
            planted.append(name)
    ys = {"bin": lambda: rng.choice(["no", "yes"], n), "multi": lambda: rng.choice(["a", "b", "c"], n),
          "reg": lambda: np.round(rng.normal(1000, 300, n), 1)}[target]()
    ys[:3] = {"bin": ["no", "yes", "no"], "multi": ["a", "b", "c"], "reg": [1.5, 2.5, 3.5]}[target]
    header = list(cols) + ["y"]
    write_rows(tmp / "data.csv", header, [[cols[c][i] for c in cols] + [str(ys[i])] for i in range(n)])
    if len(planted) == len(kinds):
        r = nn("init", "data.csv", "--target", "y", cwd=tmp)
        assert_usage_error(r, "looks like an identifier")
        return
    s = starter(str(tmp / "data.csv"), ["y"])
    assert s.config["data"].get("exclude", []) == planted
    r = nn("init", "data.csv", "--target", "y", "-o", "cfg.yaml", cwd=tmp)
    assert r.rc == 0, r.show()
    t = nn("train", "cfg.yaml", "--no-plots", "-q", "--set", "train.epochs=3", cwd=tmp)
    assert t.rc == 0, t.show()
