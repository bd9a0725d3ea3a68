"""nncli.data: the train / validation / test splits (stratification, sizes, seeds,
disjointness), load_dataset (the Dataset's splits, rows and n_rows), and the split rows a
run saves in splits.npz.

Expected sizes, class counts and standardised inputs are computed here from the CSV
contents these tests write, never taken from nncli's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import npz_arrays, std_rows, write_rows
from nncli.config import load_config
from nncli.data import Dataset, load_dataset, read_train_csv, split_indices, split_rows
from nncli.errors import DataError


ROWS = std_rows(100, 4)
COLUMNS = ["x", "w", "c", "label", "y"]


def config_text(train: Path, loss: str = "bce", target: str = "label", extra_data: str = "", seed: int = 4) -> str:
    return f"""\
name: d
seed: {seed}
data:
  train: {train}
  target: {target}
{extra_data}model:
  layers: [auto, 6, auto]
  activation: tanh
loss: {loss}
train:
  optimizer: sgd
  lr: 0.1
  epochs: 1
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    write_rows(d / "std.csv", COLUMNS, ROWS)
    return d


def cfg_of(data_dir: Path, name: str, **kw):
    p = data_dir / f"{name}.yaml"
    p.write_text(config_text(data_dir / "std.csv", **kw), encoding="utf-8")
    return load_config(p)


VAL = dict(extra_data="  exclude: [y]\n  val_split: 0.2\n")  # a classifier, stratified validation rows
TV = dict(loss="mse", target="y", extra_data="  exclude: [label]\n  val_split: 0.2\n  test_split: 0.2\n")  # regression


def class_counts(idx) -> dict:
    labels = [ROWS[i]["label"] for i in idx]
    return {c: labels.count(c) for c in ("yes", "no")}


# ---------------------------------------------------------------------- split_indices


def test_split_indices_sizes_sorted_and_disjoint():
    for n, frac in ((10, 0.3), (100, 0.2), (7, 0.5), (1000, 0.01)):
        kept, held = split_indices(n, frac, np.random.default_rng(0))
        assert len(held) == int(round(frac * n))
        assert list(kept) == sorted(kept) and list(held) == sorted(held)
        assert not set(kept) & set(held) and sorted(set(kept) | set(held)) == list(range(n))


def test_split_indices_stratified_takes_round_frac_of_each_class_but_never_all():
    strata = np.array([0] * 7 + [1] * 1 + [2] * 2 + [3] * 30)
    kept, held = split_indices(len(strata), 0.9, np.random.default_rng(1), strata)
    got = {c: int(np.sum(strata[held] == c)) for c in range(4)}
    assert got == {0: 6, 1: 0, 2: 1, 3: 27}  # round(0.9 n_c), at most n_c - 1
    assert sorted(set(kept) | set(held)) == list(range(len(strata))) and not set(kept) & set(held)
    kept, held = split_indices(len(strata), 0.1, np.random.default_rng(1), strata)
    assert {c: int(np.sum(strata[held] == c)) for c in range(4)} == {0: 1, 1: 0, 2: 0, 3: 3}


def test_split_indices_same_seed_same_rows_other_seed_other_rows():
    a = split_indices(200, 0.25, np.random.default_rng(7))[1]
    b = split_indices(200, 0.25, np.random.default_rng(7))[1]
    c = split_indices(200, 0.25, np.random.default_rng(8))[1]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# ---------------------------------------------------------------------- split_rows


def test_split_rows_stratified_validation_rows_for_a_classifier(data_dir):
    cfg = cfg_of(data_dir, "val", **VAL)
    df, source = read_train_csv(cfg)
    rows = split_rows(cfg, df, np.random.default_rng(cfg.seed), source)
    assert sorted(rows) == ["train", "val"], "no test rows unless asked for"
    val = [int(i) for i in rows["val"]]
    # stratified: round(0.2 * n_c) rows of each class (no .5 cases in this data)
    for lab, n_c in class_counts(range(len(ROWS))).items():
        assert (0.2 * n_c) % 1 != 0.5
        assert class_counts(val)[lab] == round(0.2 * n_c)
    kept = [i for i in range(len(ROWS)) if i not in set(val)]
    assert [int(i) for i in rows["train"]] == kept


def test_split_rows_test_and_validation_rows_for_regression(data_dir):
    cfg = cfg_of(data_dir, "tv", **TV)
    df, source = read_train_csv(cfg)
    rows = split_rows(cfg, df, np.random.default_rng(cfg.seed), source)
    assert sorted(rows) == ["test", "train", "val"]
    test, val, train = (set(map(int, rows[k])) for k in ("test", "val", "train"))
    assert len(rows["test"]) == 20 and len(rows["val"]) == 20 and len(rows["train"]) == 60  # 0.2 of 100 each
    assert not test & val and not test & train and not val & train
    assert sorted(test | val | train) == list(range(100))


def test_split_rows_depend_on_the_seed_only(data_dir):
    a, b, c = (cfg_of(data_dir, f"s{s}", seed=s, **TV) for s in (4, 4, 5))
    df, source = read_train_csv(a)
    ra, rb, rc = (split_rows(cfg, df, np.random.default_rng(cfg.seed), source) for cfg in (a, b, c))
    for k in ("train", "val", "test"):
        assert np.array_equal(ra[k], rb[k]), k
    assert not np.array_equal(ra["test"], rc["test"])


def test_split_rows_too_small_a_fraction_is_an_error(data_dir):
    cfg = cfg_of(data_dir, "tiny", extra_data="  test_split: 0.001\n")
    df, source = read_train_csv(cfg)
    with pytest.raises(DataError, match=r"data\.test_split: 0\.001 of 100 rows leaves no test rows"):
        split_rows(cfg, df, np.random.default_rng(0), source)


# ---------------------------------------------------------------------- load_dataset


def _standardised(cols: list[str], train_rows, rows) -> np.ndarray:
    """The numeric columns of ROWS[rows], z-scored with the mean and (1/n) std of ROWS[train_rows]."""
    V = np.array([[float(ROWS[i][c]) for c in cols] for i in range(len(ROWS))])
    m, s = V[train_rows].mean(axis=0), V[train_rows].std(axis=0)
    return (V[rows] - m) / s


def test_load_dataset_splits_rows_and_n_rows(data_dir):
    cfg = cfg_of(data_dir, "tv_load", **TV)
    rng = np.random.default_rng(cfg.seed)
    data = load_dataset(cfg, rng)
    assert isinstance(data, Dataset) and data.n_rows == len(ROWS)
    df, source = read_train_csv(cfg)
    expected = split_rows(cfg, df, np.random.default_rng(cfg.seed), source)
    assert sorted(data.rows) == ["test", "train", "val"]
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(data.rows[k], expected[k])
    assert data.val.name == f"val (20 rows of {cfg.data.train})" and data.test.name == f"test (20 rows of {cfg.data.train})"
    train = data.rows["train"]
    for split, k in ((data.train, "train"), (data.val, "val"), (data.test, "test")):
        idx = data.rows[k]
        assert split.n == len(idx) and split.X.dtype == np.float32 and split.Y.dtype == np.float32
        np.testing.assert_allclose(split.X[:, :2], _standardised(["x", "w"], train, idx), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(split.X[:, 2:], [[ROWS[i]["c"] == c for c in "pqr"] for i in idx])
        # regression targets are z-scored with the training rows' statistics too (data.standardize_target)
        np.testing.assert_allclose(split.Y[:, 0], _standardised(["y"], train, idx)[:, 0], rtol=1e-5, atol=1e-5)


def test_load_dataset_with_a_validation_file_keeps_every_training_row(data_dir):
    write_rows(data_dir / "val.csv", COLUMNS, std_rows(15, 9))
    cfg = cfg_of(data_dir, "valfile", extra_data=f"  exclude: [y]\n  val: {data_dir / 'val.csv'}\n")
    rng = np.random.default_rng(cfg.seed)
    data = load_dataset(cfg, rng)
    assert sorted(data.rows) == ["train"] and data.n_rows == len(ROWS)
    np.testing.assert_array_equal(data.rows["train"], np.arange(len(ROWS)))
    assert data.val.n == 15 and data.val.name == str(data_dir / "val.csv") and data.test is None
    # no held-out rows drawn: the generator is untouched, so the initial weights come next
    assert rng.random() == np.random.default_rng(cfg.seed).random()


def test_load_dataset_fits_standardisation_on_training_rows_only(data_dir):
    cfg = cfg_of(data_dir, "val_load", **VAL)
    data = load_dataset(cfg, np.random.default_rng(cfg.seed))
    train = data.rows["train"]
    V = np.array([[float(r["x"]), float(r["w"])] for r in ROWS])
    np.testing.assert_allclose(data.prep.x_mean[:2], V[train].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(data.prep.x_std[:2], V[train].std(axis=0), rtol=1e-12)
    assert not np.allclose(data.prep.x_mean[:2], V.mean(axis=0), rtol=1e-9)
    assert data.train.n + data.val.n == len(ROWS) and data.test is None
    labels = [ROWS[i]["label"] for i in data.rows["val"]]
    np.testing.assert_array_equal(data.val.Y[:, 0], [lab == "yes" for lab in labels])  # classes no, yes


# ---------------------------------------------------------------------- splits.npz


@pytest.mark.parametrize("kind", ["val", "tv"])
def test_a_run_saves_the_rows_of_its_splits(data_dir, tmp_path, kind):
    from nncli.job import TrainingJob
    from nncli.runs import RunDir

    cfg = cfg_of(data_dir, f"saved_{kind}", **(VAL if kind == "val" else TV))
    job = TrainingJob(cfg, tmp_path / "runs")
    run = job.start()
    arrays = npz_arrays(run / "splits.npz")  # numpy alone, no pickles
    assert sorted(arrays) == sorted([*job.data.rows, "n_rows"])
    assert int(arrays["n_rows"]) == job.data.n_rows == len(ROWS)
    for k, idx in job.data.rows.items():
        assert arrays[k].dtype == np.int64 and np.array_equal(arrays[k], idx), k
    saved = RunDir(run).read_splits()
    assert saved["n_rows"] == len(ROWS) and sorted(saved) == sorted(arrays)
    for k in job.data.rows:
        assert np.array_equal(saved[k], job.data.rows[k]), k
    assert job.data.train.n == len(arrays["train"])


def test_a_run_without_splits_npz_reads_none(data_dir, tmp_path):
    from nncli.job import TrainingJob
    from nncli.runs import RunDir

    run = TrainingJob(cfg_of(data_dir, "old", **VAL), tmp_path / "runs").start()
    (run / "splits.npz").unlink()
    assert RunDir(run).read_splits() is None
