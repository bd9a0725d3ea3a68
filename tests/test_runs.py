"""The run directory (nncli/runs.py) and what is read back from it.

- durability: summary.json is the last file a training writes (every file of the run
  through the one atomic writer); a failure writing it leaves an incomplete run;
- RunDir: every write method and its read method round-trip (config, preprocess + model,
  splits, metrics, checkpoint, summary, reports);
- splits.npz: ``nncli train`` saves disjoint train / val / test row sets covering every row
  of data.train once; ``eval``, ``plot`` and ``gradcheck`` read those rows back instead of
  drawing the split again (proved with the split functions made to raise, and by editing
  the file); a run saved without splits.npz (older nncli) still evaluates, with a note;
  a training CSV whose row count changed since training is refused for held-out rows.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import nncli.csvio
import nncli.data
import nncli.plots
from helpers import (unseal, assert_same_arrays, assert_usage_error, config_dict, copy_trained, my_forward, nn, npz_arrays,
                     only_run, read_text_csv, strict_json, write_classes_csv, write_yaml)
from nncli.config import load_config
from nncli.errors import RunError
from nncli.job import TrainingJob, build_optimizer, prepare
from nncli.losses import LOSSES
from nncli.runs import CHECKPOINT, LOCK, SPLITS, SUMMARY, RunDir, load_run
from nncli.trainer import EpochRecord, FitOptions, Trainer

# ----------------------------------------------------------------------------- data and configs


def classes_config(train_csv: str = "data.csv", data_extra=None, **train) -> dict:
    """helpers.config_dict for write_classes_csv's file, 2 epochs unless ``train`` says otherwise."""
    return config_dict(train_csv=train_csv, target="label", data_extra=data_extra, **{"epochs": 2, **train})


N_ROWS = 60
SPLIT_CFG = classes_config(data_extra={"test_split": 0.2, "val_split": 0.25},
                           optimizer="adam", lr=0.05, epochs=30, batch_size=8, dtype="float64")


@pytest.fixture(scope="module")
def split_case(tmp_path_factory) -> Path:
    """data.csv (60 rows), cfg.yaml with data.test_split and data.val_split, and its trained run."""
    base = tmp_path_factory.mktemp("splits")
    write_classes_csv(base / "data.csv", n=N_ROWS, seed=4)
    write_yaml(base / "cfg.yaml", SPLIT_CFG)
    r = nn("train", "cfg.yaml", "--no-plots", "-q", cwd=base)
    assert r.rc == 0, r.show()
    return base


def saved_splits(run: Path) -> dict:
    return npz_arrays(run / SPLITS)


@contextlib.contextmanager
def no_split_replay(monkeypatch):
    """nncli.data.split_rows and split_indices (and any module's name bound to them) raise."""

    def boom(*_a, **_k):
        raise AssertionError("the split generator was replayed")

    real = {nncli.data.split_rows, nncli.data.split_indices}
    with monkeypatch.context() as m:
        for name, mod in list(sys.modules.items()):
            if name == "nncli" or name.startswith("nncli."):
                for attr in ("split_rows", "split_indices"):
                    if getattr(mod, attr, None) in real:
                        m.setattr(mod, attr, boom)
        yield


def _eval_without_replay(run: Path, cwd: Path, monkeypatch) -> dict:
    """The report of ``nncli eval RUN --json`` (which must succeed) with the split generator made to raise."""
    with no_split_replay(monkeypatch):
        r = nn("eval", run, "--json", "--no-plots", cwd=cwd)
    assert r.rc == 0, r.show()
    return strict_json(r.text)


def independent_scores(run: Path, df) -> dict:
    """bce loss, accuracy and class supports of the run on the text DataFrame ``df``, from
    the saved files alone (helpers.my_forward), in float64."""
    classes = json.loads((run / "preprocess.json").read_text(encoding="utf-8"))["classes"]
    p = my_forward(run, df)[:, 0]
    y = (df["label"] == classes[1]).to_numpy(dtype=np.float64)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    accuracy = float(np.mean((p >= 0.5) == (y == 1)))
    return {"loss": loss, "accuracy": accuracy, "support": {c: int((df["label"] == c).sum()) for c in classes}}


def assert_scores(report: dict, expected: dict) -> None:
    assert report["loss"] == pytest.approx(expected["loss"], rel=1e-9, abs=1e-12)
    assert report["accuracy"] == expected["accuracy"]
    assert {c: v["support"] for c, v in report["per_class"].items()} == expected["support"]


# ============================================================================= durability


def _small_job(tmp_path: Path) -> TrainingJob:
    write_classes_csv(tmp_path / "data.csv")
    write_yaml(tmp_path / "cfg.yaml", classes_config())
    return TrainingJob(load_config(tmp_path / "cfg.yaml"), tmp_path / "runs")


def test_summary_json_is_the_last_file_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = _small_job(tmp_path)
    order = []
    real = nncli.csvio.atomic_file

    @contextlib.contextmanager
    def recording(path, mode="wb", **open_kw):
        with real(path, mode, **open_kw) as fh:
            yield fh
        order.append(Path(path).name)  # in place: the rename has happened

    monkeypatch.setattr(nncli.csvio, "atomic_file", recording)
    run = job.start()
    for _ in job.epochs():
        pass
    job.finish(plots=False)
    assert order[-1] == SUMMARY
    assert order.count(SUMMARY) == 1
    for name in ("config.yaml", "preprocess.json", SPLITS, "model.npz", "metrics.csv"):
        assert name in order[:-1], f"{name} was not written before summary.json"
    # every file of the run went through the atomic writer (but the lock file, never rewritten)
    assert sorted(p.name for p in run.iterdir() if p.name != LOCK) == sorted(set(order))


def test_failure_writing_summary_leaves_an_incomplete_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = _small_job(tmp_path)

    def broken(self, summary):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunDir, "write_summary", broken)
    run = job.start()
    for _ in job.epochs():
        pass
    with pytest.raises(OSError):
        job.finish(plots=False)
    for name in ("config.yaml", "preprocess.json", SPLITS, "model.npz", "metrics.csv"):
        assert (run / name).exists(), name
    assert not (run / SUMMARY).exists()
    monkeypatch.undo()
    with pytest.raises(RunError, match="incomplete"):
        load_run(run)
    r = nn("eval", run, "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "incomplete")


# ============================================================================= RunDir round trips


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    """(resolved config, Dataset, model, rng) of a config with val and test splits, and an empty RunDir."""
    monkeypatch.chdir(tmp_path)
    write_classes_csv(tmp_path / "data.csv", n=40, seed=2)
    write_yaml(tmp_path / "cfg.yaml", classes_config(data_extra={"test_split": 0.2, "val_split": 0.2}))
    data, model, rng, cfg = prepare(load_config(tmp_path / "cfg.yaml"))
    return cfg, data, model, rng, RunDir.create(tmp_path / "runs", cfg.name)


def test_rundir_config_round_trips(prepared):
    cfg, _, _, _, rd = prepared
    rd.write_config(cfg)
    back = rd.read_config()
    assert back.model_dump() == cfg.model_dump()
    assert back.model.layers == cfg.model.layers and "auto" not in back.model.layers
    assert rd.read_config_raw() == yaml.safe_load((rd / "config.yaml").read_text(encoding="utf-8"))
    assert rd.read_config_raw() == cfg.to_dict()


def test_rundir_config_missing_or_not_a_mapping_is_refused(tmp_path):
    rd = RunDir(tmp_path)
    with pytest.raises(ValueError, match="no config.yaml"):
        rd.read_config_raw()
    with pytest.raises(RunError):
        rd.read_config()
    (tmp_path / "config.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a mapping"):
        rd.read_config_raw()


def test_rundir_preprocess_and_model_round_trip_through_read_model(prepared):
    cfg, data, model, _, rd = prepared
    rd.write_config(cfg)
    rd.write_preprocess(data.prep)
    rd.write_model(model, data.prep)
    prep, back = rd.read_model(rd.read_config())
    assert prep.to_json() == data.prep.to_json()
    assert prep.task is data.prep.task
    assert_same_arrays({k: np.asarray(v, np.float64) for k, v in prep.arrays().items() if k != "classes"},
                       {k: np.asarray(v, np.float64) for k, v in data.prep.arrays().items() if k != "classes"})
    assert list(prep.classes) == list(data.prep.classes)
    assert back.dtype == np.dtype(cfg.train.dtype)
    assert back.hidden == model.hidden and back.output == model.output
    assert_same_arrays(dict(back.params()), dict(model.params()))
    # the read-back preprocessor transforms the training rows exactly as the fitted one
    df = nncli.data.read_train_csv(cfg)[0]
    X = prep.transform(df.iloc[data.rows["train"]], "t", dtype=np.dtype(cfg.train.dtype))
    assert np.array_equal(X, data.train.X)


def test_rundir_splits_round_trip(prepared):
    _, data, _, _, rd = prepared
    assert rd.read_splits() is None  # a run saved before splits.npz existed
    rd.write_splits(data.rows, data.n_rows)
    back = rd.read_splits()
    assert sorted(back) == sorted([*data.rows, "n_rows"])
    assert back["n_rows"] == data.n_rows == 40 and isinstance(back["n_rows"], int)
    for k, v in data.rows.items():
        assert back[k].dtype == np.int64 and np.array_equal(back[k], v), k


@pytest.mark.parametrize("damage", ["row-past-the-end", "negative-row", "float-rows", "truncated"])
def test_rundir_damaged_splits_are_refused(prepared, damage):
    _, data, _, _, rd = prepared
    rd.write_splits(data.rows, data.n_rows)
    arrays = npz_arrays(rd / SPLITS)
    if damage == "truncated":
        raw = (rd / SPLITS).read_bytes()
        (rd / SPLITS).write_bytes(raw[: len(raw) // 2])
    else:
        arrays["test"] = {"row-past-the-end": np.array([0, 40]), "negative-row": np.array([-1, 3]),
                          "float-rows": np.array([1.0, 2.0])}[damage]
        np.savez(rd / SPLITS, **arrays)
    with pytest.raises(RunError, match="splits.npz"):
        rd.read_splits()


@pytest.mark.parametrize("has_val", [True, False], ids=["with-val", "train-only"])
def test_rundir_metrics_round_trip_exactly(tmp_path, has_val):
    rd = RunDir(tmp_path)
    history = [EpochRecord(1, 0.1 + 0.2, 0.5, 1 / 3 if has_val else None, 0.25 if has_val else None),
               EpochRecord(2, 1e-300, 2 / 3, math.pi if has_val else None, 1.0 if has_val else None),
               EpochRecord(3, 123456.789, 1.0, 5e-324 if has_val else None, 0.0 if has_val else None)]
    size = rd.start_metrics("accuracy", has_val, history[:1])  # the header and epoch 1
    assert rd.append_metrics([], "accuracy", has_val) == size  # nothing new: nothing written
    mid = rd.append_metrics(history[1:2], "accuracy", has_val, sync=True)
    end = rd.append_metrics(history[2:], "accuracy", has_val)
    assert size < mid < end == (tmp_path / "metrics.csv").stat().st_size
    back = rd.read_history(mid, 2, has_val)  # what a checkpoint after epoch 2 reads back
    assert [(r.epoch, r.loss, r.metric, r.val_loss, r.val_metric) for r in back] == \
        [(r.epoch, r.loss, r.metric, r.val_loss, r.val_metric) for r in history[:2]]
    rows = rd.read_metrics()
    header = ["epoch", "loss", "accuracy"] + (["val_loss", "val_accuracy"] if has_val else [])
    assert [list(r) for r in rows] == [header] * 3
    for r, rec in zip(rows, history):
        assert int(r["epoch"]) == rec.epoch
        assert float(r["loss"]) == rec.loss and float(r["accuracy"]) == rec.metric  # repr: exact
        if has_val:
            assert float(r["val_loss"]) == rec.val_loss and float(r["val_accuracy"]) == rec.val_metric


def test_rundir_cut_metrics_drops_the_epochs_after_a_checkpoint(tmp_path):
    rd = RunDir(tmp_path)
    history = [EpochRecord(e, 1.0 / e, 0.5) for e in range(1, 6)]
    rd.start_metrics("accuracy", False)
    at_3 = rd.append_metrics(history[:3], "accuracy", False, sync=True)
    rd.append_metrics(history[3:], "accuracy", False)
    rd.cut_metrics(at_3)
    assert [int(r["epoch"]) for r in rd.read_metrics()] == [1, 2, 3]
    with pytest.raises(RunError, match="epochs 1 to 4"):
        rd.read_history(at_3, 4, False)


def test_rundir_missing_metrics_is_a_run_error(tmp_path):
    with pytest.raises(RunError, match="metrics.csv"):
        RunDir(tmp_path).read_metrics()


def test_rundir_checkpoint_round_trips_and_restores_the_trainer(prepared):
    cfg, data, model, rng, rd = prepared
    trainer = Trainer(model, LOSSES[cfg.loss], build_optimizer(cfg, model), cfg.task, data.train,
                      data.val, rng, FitOptions.from_config(cfg.train))
    for _ in trainer.epochs():
        pass
    state = trainer.state()
    rd.write_checkpoint(state)
    back = rd.read_checkpoint()
    assert_same_arrays(back, state)
    # a fresh trainer restored from the file has exactly the same state
    data2, model2, rng2, _ = prepare(load_config("cfg.yaml"))
    other = Trainer(model2, LOSSES[cfg.loss], build_optimizer(cfg, model2), cfg.task, data2.train,
                    data2.val, rng2, FitOptions.from_config(cfg.train))
    other.load_state(back, history=trainer.result.history)
    assert_same_arrays(other.state(), state)
    rd.remove_checkpoint()
    assert not rd.exists(CHECKPOINT)
    rd.remove_checkpoint()  # removing twice is fine
    with pytest.raises(RunError, match="no checkpoint.npz"):
        rd.read_checkpoint()


def test_rundir_summary_round_trips_and_clears(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.read_summary() is None  # incomplete
    summary = {"status": "completed", "epochs_run": 3, "metrics": {"loss": 0.25, "accuracy": float("nan")},
               "name": "ü", "val": np.float32(0.5), "rows": np.int64(7)}
    rd.write_summary(summary)
    back = strict_json((tmp_path / SUMMARY).read_text(encoding="utf-8"))  # NaN is written as null
    assert rd.read_summary() == back == {"status": "completed", "epochs_run": 3,
                                         "metrics": {"loss": 0.25, "accuracy": None}, "name": "ü", "val": 0.5,
                                         "rows": 7}
    rd.clear_summary()
    assert rd.read_summary() is None
    rd.clear_summary()
    (tmp_path / SUMMARY).write_text("{not json", encoding="utf-8")
    with pytest.raises(RunError, match="corrupt JSON"):
        rd.read_summary()


def test_rundir_report_round_trips(tmp_path):
    rd = RunDir(tmp_path)
    report = {"rows": 3, "loss": 0.125, "per_class": {"a": {"f1": 1.0}}, "inf": float("inf"), "list": [1, 2.5]}
    path = rd.write_report("eval_x.json", report)
    assert path == tmp_path / "eval_x.json"
    assert strict_json(path.read_text(encoding="utf-8")) == {**report, "inf": None}


def test_load_run_gives_back_every_file(split_case, tmp_path):
    run = copy_trained(split_case, tmp_path)
    loaded = load_run(run)
    assert loaded.path == run
    assert loaded.summary == json.loads((run / SUMMARY).read_text(encoding="utf-8"))
    assert loaded.config.to_dict() == yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert loaded.prep.to_json() == json.loads((run / "preprocess.json").read_text(encoding="utf-8"))
    saved = npz_arrays(run / "model.npz")
    assert_same_arrays(dict(loaded.model.params()), {k: v for k, v in saved.items() if k[0] in "Wb"})
    splits = saved_splits(run)
    assert sorted(loaded.splits) == sorted(splits)
    for k in ("train", "val", "test"):
        assert np.array_equal(loaded.splits[k], splits[k])


# ============================================================================= splits.npz written by train


def test_train_saves_disjoint_splits_covering_every_row(split_case):
    run = only_run(split_case)
    splits = saved_splits(run)
    assert sorted(splits) == ["n_rows", "test", "train", "val"]
    assert int(splits["n_rows"]) == N_ROWS == len(read_text_csv(split_case / "data.csv"))
    sets = {k: set(splits[k].tolist()) for k in ("train", "val", "test")}
    for k in sets:
        assert splits[k].dtype == np.int64 and splits[k].ndim == 1
        assert len(sets[k]) == len(splits[k]), f"{k} repeats a row"
        assert len(splits[k]) > 0, k
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"] and not sets["val"] & sets["test"]
    allrows = np.sort(np.concatenate([splits["train"], splits["val"], splits["test"]]))
    assert np.array_equal(allrows, np.arange(N_ROWS)), "every row of data.train exactly once"
    # the fractions asked for (stratified: per class round(frac * n_c))
    assert len(splits["test"]) == pytest.approx(0.2 * N_ROWS, abs=2)
    assert len(splits["val"]) == pytest.approx(0.25 * N_ROWS, abs=2)


def test_saved_splits_are_the_rows_the_run_trained_and_validated_on(split_case):
    """summary.json's train / validation numbers, recomputed from the saved rows alone."""
    run = only_run(split_case)
    splits = saved_splits(run)
    summary = json.loads((run / SUMMARY).read_text(encoding="utf-8"))
    df = read_text_csv(split_case / "data.csv")
    for key, name in (("metrics", "train"), ("val_metrics", "val")):
        expected = independent_scores(run, df.iloc[splits[name]])
        assert summary[key]["rows"] == len(splits[name])
        assert summary[key]["loss"] == pytest.approx(expected["loss"], rel=1e-9)
        assert summary[key]["accuracy"] == expected["accuracy"]


def test_same_config_and_seed_save_the_same_splits(split_case, tmp_path):
    shutil.copy(split_case / "data.csv", tmp_path / "data.csv")
    write_yaml(tmp_path / "cfg.yaml", {**SPLIT_CFG, "train": {**SPLIT_CFG["train"], "epochs": 1}})
    r = nn("train", "cfg.yaml", "--no-plots", "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert_same_arrays(saved_splits(only_run(tmp_path)), saved_splits(only_run(split_case)))


# ============================================================================= eval, plot, gradcheck read the saved rows


def test_split_replay_guard_is_live(split_case, tmp_path, monkeypatch):
    """Control for the tests below: with the split functions made to raise, training (which
    draws the split) fails, so a command that passes under the guard did not draw it."""
    shutil.copy(split_case / "data.csv", tmp_path / "data.csv")
    shutil.copy(split_case / "cfg.yaml", tmp_path / "cfg.yaml")
    with no_split_replay(monkeypatch):
        r = nn("train", "cfg.yaml", "--no-plots", "-q", cwd=tmp_path)
    assert r.rc != 0 and "the split generator was replayed" in r.tb, r.show()


def test_eval_scores_exactly_the_saved_test_rows_without_replaying_the_split(split_case, tmp_path, monkeypatch):
    run = copy_trained(split_case, tmp_path)
    splits = saved_splits(run)
    report = _eval_without_replay(run, tmp_path, monkeypatch)
    assert report["rows"] == len(splits["test"])
    assert report["source"] == f"data.test_split: {len(splits['test'])} held-out test rows of data.csv"
    assert "notes" not in report
    df = read_text_csv(tmp_path / "data.csv")
    assert_scores(report, independent_scores(run, df.iloc[splits["test"]]))
    assert strict_json((run / "eval.json").read_text(encoding="utf-8")) == {k: v for k, v in report.items() if k != "saved"}


def test_eval_follows_an_edited_splits_file(split_case, tmp_path, monkeypatch):
    """The held-out rows really come from splits.npz: other rows there, other rows scored."""
    run = copy_trained(split_case, tmp_path)
    splits = saved_splits(run)
    other = splits["train"][: len(splits["test"]) + 5]  # training rows, and more of them than the test rows
    RunDir(run).write_splits({"train": splits["train"], "val": splits["val"], "test": other}, int(splits["n_rows"]))
    unseal(run)  # an edited splits.npz: a sealed run would refuse it (its digest)
    report = _eval_without_replay(run, tmp_path, monkeypatch)
    assert report["rows"] == len(other) != len(splits["test"])
    df = read_text_csv(tmp_path / "data.csv")
    expected = independent_scores(run, df.iloc[other])
    assert expected != independent_scores(run, df.iloc[splits["test"]])  # test setup: the two row sets score apart
    assert_scores(report, expected)


def test_eval_of_a_val_split_run_scores_the_saved_validation_rows(tmp_path, monkeypatch):
    write_classes_csv(tmp_path / "data.csv", n=40, seed=6)
    write_yaml(tmp_path / "cfg.yaml", classes_config(data_extra={"val_split": 0.3}, dtype="float64"))
    r = nn("train", "cfg.yaml", "--no-plots", "-q", cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = only_run(tmp_path)
    splits = saved_splits(run)
    assert sorted(splits) == ["n_rows", "train", "val"]
    report = _eval_without_replay(run, tmp_path, monkeypatch)
    assert report["rows"] == len(splits["val"])
    assert report["source"] == f"data.val_split: {len(splits['val'])} held-out validation rows of data.csv"
    assert_scores(report, independent_scores(run, read_text_csv(tmp_path / "data.csv").iloc[splits["val"]]))


def test_eval_of_an_old_run_without_splits_uses_every_row_with_a_note(split_case, tmp_path):
    run = copy_trained(split_case, tmp_path)
    (run / SPLITS).unlink()
    unseal(run)  # an old run: no splits.npz, and no digests either
    r = nn("eval", run, "--json", "--no-plots", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert len(r.err_lines) == 1, r.show()
    assert r.err_lines[0].startswith("nncli: warning:") and "split rows" in r.err_lines[0], r.err_lines[0]
    report = strict_json(r.text)
    assert len(report["notes"]) == 1
    assert "test rows are unknown" in report["notes"][0] and "every row" in report["notes"][0], report["notes"]
    assert report["notes"][0] in r.err_lines[0]
    assert report["rows"] == N_ROWS
    assert report["source"].startswith("data.train data.csv"), report["source"]
    assert_scores(report, independent_scores(run, read_text_csv(tmp_path / "data.csv")))
    assert strict_json((run / "eval.json").read_text(encoding="utf-8"))["notes"] == report["notes"]


@pytest.mark.parametrize("change", ["row-added", "row-removed"])
@pytest.mark.parametrize("cmd", ["eval", "plot", "gradcheck"])
def test_training_csv_with_another_row_count_is_refused_for_saved_splits(split_case, tmp_path, change, cmd):
    run = copy_trained(split_case, tmp_path)
    lines = (tmp_path / "data.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    lines = lines + ["0.5,0.5,b\n"] if change == "row-added" else lines[:-1]
    (tmp_path / "data.csv").write_text("".join(lines), encoding="utf-8")
    now = N_ROWS + (1 if change == "row-added" else -1)
    before = sorted(p.name for p in run.iterdir())
    args = {"eval": ["eval", run, "--no-plots"], "plot": ["plot", run], "gradcheck": ["gradcheck", run]}[cmd]
    r = nn(*args, cwd=tmp_path)
    assert_usage_error(r, "data.csv", f"has {now} rows", f"trained on {N_ROWS}")
    assert sorted(p.name for p in run.iterdir()) == before  # no report, no pictures


def test_plot_draws_the_saved_training_rows(split_case, tmp_path, monkeypatch):
    run = copy_trained(split_case, tmp_path)
    splits = saved_splits(run)
    specs = []
    real_render = nncli.plots.render

    def recording(spec):
        specs.append(spec)
        return real_render(spec)

    monkeypatch.setattr(nncli.plots, "render", recording)
    with no_split_replay(monkeypatch):
        r = nn("plot", run, cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert sorted(Path(p).name for p in r.text.split()) == ["decision_boundary.png", "loss.png"]
    for name in ("decision_boundary.png", "loss.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    (spec,) = specs
    df = read_text_csv(tmp_path / "data.csv").iloc[splits["train"]]
    X = df[["x1", "x2"]].to_numpy(dtype=np.float64)
    assert np.array_equal(spec["boundary"]["X"], X)
    assert spec["boundary"]["labels"].tolist() == (df["label"] == "b").astype(int).tolist()


def test_plot_and_gradcheck_of_an_old_run_use_every_row_and_say_so(split_case, tmp_path):
    run = copy_trained(split_case, tmp_path)
    (run / "splits.npz").unlink()
    unseal(run)  # an old run: no splits.npz, and no digests either
    r = nn("plot", run, cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("nncli: warning:"), r.show()
    assert "train rows are unknown" in r.err_lines[0] and "every row" in r.err_lines[0]
    r = nn("gradcheck", run, "--samples", 1000, "--json", cwd=tmp_path)
    assert r.rc == 0, r.show()
    report = strict_json(r.text)
    assert report["samples"] == N_ROWS  # every row of the file, as the note says
    assert any("train rows are unknown" in n for n in report["notes"]), report["notes"]


def test_gradcheck_of_a_run_dir_uses_the_saved_training_rows(split_case, tmp_path, monkeypatch):
    run = copy_trained(split_case, tmp_path)
    splits = saved_splits(run)
    with no_split_replay(monkeypatch):
        r = nn("gradcheck", run, "--samples", 1000, "--json", cwd=tmp_path)
        assert r.rc == 0, r.show()
        report = strict_json(r.text)
        assert report["passed"] is True
        assert report["samples"] == len(splits["train"]) < N_ROWS  # every training row, and only those
        # the rows come from the file: fewer training rows there, fewer checked
        RunDir(run).write_splits({**{k: splits[k] for k in ("val", "test")}, "train": splits["train"][:11]}, N_ROWS)
        unseal(run)  # an edited splits.npz: a sealed run would refuse it (its digest)
        r = nn("gradcheck", run, "--samples", 1000, "--json", cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert strict_json(r.text)["samples"] == 11
