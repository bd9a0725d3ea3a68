"""Distrust of run files and hostile input files (issue 14, causes 6-10, 12, 13).

- Malformed run files (preprocess.json, summary.json, metrics.csv, model.npz, checkpoint.npz)
  are one-line RunErrors naming the file and the field, in eval, predict, plot, runs and
  --resume; ``nncli runs`` skips an unreadable directory with a warning.
- Inconsistent run files (task vs loss, features vs input_names, NaN checkpoint weights, a
  row order that is not a permutation, positions beyond the data or train.epochs) are
  refused before anything is written.
- predict refuses rows with more fields than the header (never drops an input column);
  training names the line with the extra field; invalid UTF-8 is one line.
- --name outside the BMP, gradcheck --eps/--tol inf/nan, numpy's pickle advice.

Each case is built from a real small run (tampered copies) or a hostile CSV.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import (NO_PLOTS, assert_usage_error, chdir, cli, nn, npz_arrays, only_run, stop_after_steps,
                     write_classes_csv, write_config)

# ============================================================================= fixtures: one complete run, one interrupted


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """data.csv, cfg.yaml (6 epochs, batches of 5 over 23 rows), runs/done (completed) and
    runs/cut (interrupted inside epoch 2, with its shuffled row order in the checkpoint)."""
    from nncli.config import load_config
    from nncli.job import TrainingJob

    d = tmp_path_factory.mktemp("runfiles")
    write_classes_csv(d / "data.csv")
    write_config(d / "cfg.yaml", train_csv="data.csv", target="label", epochs=6)
    r = nn("train", "cfg.yaml", "-q", *NO_PLOTS, cwd=d)
    assert r.rc == 0, r.show()
    (d / r.text.strip()).rename(d / "runs" / "done")
    with chdir(d):
        job = TrainingJob(load_config("cfg.yaml"), "runs")
        job.start()
        stop_after_steps(job.trainer, 7)  # 5 steps per epoch: inside epoch 2
        for _ in job.epochs():
            pass
        job.finish(plots=False)
    assert job.result.status == "interrupted"
    (d / job.run_dir).rename(d / "runs" / "cut")
    assert "order" in npz_arrays(d / "runs" / "cut" / "checkpoint.npz")
    return d


def _copy(base: Path, tmp_path: Path, which: str = "done", sealed: bool = False) -> Path:
    """A private copy of the base directory; returns the run ``which`` inside it.

    Unless ``sealed``, the copy's summary.json loses its 'files' digests, as a run saved before
    they were kept: the tests below edit model.npz and preprocess.json on purpose, to see each
    field checked (a sealed run refuses any edit at once: test_an_edited_run_file_is_refused...)."""
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    run = tmp_path / "runs" / which
    if not sealed and (run / "summary.json").exists():
        _edit_json(run / "summary.json", lambda d: {k: v for k, v in d.items() if k not in ("files", "model_config")}
                   if isinstance(d, dict) else d)
    return run


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def _edit_json(path: Path, fn) -> None:
    path.write_text(json.dumps(fn(json.loads(path.read_text(encoding="utf-8")))), encoding="utf-8")


def _set(key, value):
    def fn(d):
        d[key] = value
        return d
    return fn


def _commands(run: Path):
    """Every command that loads the run: eval, predict, plot."""
    return {"eval": ("eval", run, "--no-plots"), "predict": ("predict", run, "data.csv"), "plot": ("plot", run)}


# ============================================================================= cause 6: malformed preprocess.json

PREPROCESS_DAMAGE = {
    "list-not-mapping": (lambda d: [d], "must be a JSON object"),
    "categories-a-list": (_set("categories", []), "'categories'"),
    "classes-null": (_set("classes", None), "'classes'"),
    "classes-number": (_set("classes", 3), "'classes'"),
    "task-banana": (_set("task", "banana"), "'task'"),
    "task-a-list": (_set("task", ["binary"]), "'task'"),
    "features-a-text": (_set("features", "x1"), "'features'"),
    "targets-missing": (lambda d: {k: v for k, v in d.items() if k != "targets"}, "'targets' is missing"),
    "impute-values-a-list": (_set("impute_values", [1, 2]), "'impute_values'"),
    "null": (lambda d: None, "must be a JSON object"),
}


@pytest.mark.parametrize("damage", sorted(PREPROCESS_DAMAGE))
@pytest.mark.parametrize("command", ["eval", "predict", "plot"])
def test_a_malformed_preprocess_json_is_one_line_naming_the_field(base, tmp_path, damage, command):
    run = _copy(base, tmp_path)
    fn, needle = PREPROCESS_DAMAGE[damage]
    _edit_json(run / "preprocess.json", fn)
    before = _files(run)
    r = nn(*_commands(run)[command], cwd=tmp_path)
    assert_usage_error(r, "preprocess.json", needle)
    assert _files(run) == before


# ============================================================================= cause 6: summary.json, metrics.csv, model.npz


@pytest.mark.parametrize("content", ["null", "[]", '"done"', '{"status": 3}', '{"status": "completed", "metrics": [1]}'])
def test_a_malformed_summary_is_one_line_in_eval(base, tmp_path, content):
    run = _copy(base, tmp_path)
    (run / "summary.json").write_text(content, encoding="utf-8")
    r = nn("eval", run, "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "summary.json")
    assert "incomplete" not in r.lines[0], r.show()  # there is a summary.json: it is malformed


@pytest.mark.parametrize("content", ["null", "[]", '{"status": "completed", "metrics": [1]}',
                                     '{"status": "completed", "metrics": {"loss": 1}, "val_metrics": "x"}'])
def test_runs_skips_a_directory_with_a_malformed_summary_with_a_warning(base, tmp_path, content):
    run = _copy(base, tmp_path)
    (run / "summary.json").write_text(content, encoding="utf-8")
    r = nn("runs", tmp_path / "runs", cwd=tmp_path)
    assert r.rc == 0 and not r.tb, r.show()
    assert "Traceback" not in r.err
    assert any("skipped" in ln and "done" in ln and "summary.json" in ln for ln in r.err_lines), r.show()
    assert "cut" in r.text and "done" not in r.text


@pytest.mark.parametrize("damage", ["missing", "bad-epoch", "bad-loss", "short-row", "no-loss-column"])
def test_a_missing_or_malformed_metrics_csv_is_one_line_in_plot(base, tmp_path, damage):
    run = _copy(base, tmp_path)
    m = run / "metrics.csv"
    lines = m.read_text(encoding="utf-8").splitlines()
    if damage == "missing":
        m.unlink()
    elif damage == "bad-epoch":
        m.write_text("\n".join(lines[:2] + ["x" + lines[2]] + lines[3:]) + "\n", encoding="utf-8")
    elif damage == "bad-loss":
        m.write_text("\n".join(lines[:2] + [lines[2].replace(",", ",banana", 1)] + lines[3:]) + "\n", encoding="utf-8")
    elif damage == "short-row":
        m.write_text("\n".join(lines[:2] + ["3"] + lines[3:]) + "\n", encoding="utf-8")
    else:
        m.write_text("\n".join([lines[0].replace("loss", "lost", 1)] + lines[1:]) + "\n", encoding="utf-8")
    r = nn("plot", run, cwd=tmp_path)
    assert_usage_error(r, "metrics.csv")
    if damage in ("bad-epoch", "bad-loss", "short-row"):
        assert "line 3" in r.lines[0], r.show()


@pytest.mark.parametrize("value", [np.nan, np.inf, 0.0, -1.0])
@pytest.mark.parametrize("command", ["eval", "predict"])
def test_a_corrupt_x_std_is_blamed_on_model_npz_not_the_csv(base, tmp_path, value, command):
    run = _copy(base, tmp_path)
    arrays = npz_arrays(run / "model.npz")
    arrays["x_std"] = arrays["x_std"].copy()
    arrays["x_std"][0] = value
    np.savez(run / "model.npz", **arrays)
    r = nn(*_commands(run)[command], cwd=tmp_path)
    assert_usage_error(r, "model.npz", "x_std")
    assert "data.csv" not in r.lines[0]


def test_a_pickled_model_npz_message_gives_no_advice_to_unpickle(base, tmp_path):
    import pickle

    run = _copy(base, tmp_path)
    (run / "model.npz").write_bytes(pickle.dumps({"W1": 1}))
    r = nn("eval", run, "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "model.npz")
    assert "trust" not in r.lines[0].lower() and "allow_pickle" not in r.lines[0] and "pickle.load" not in r.lines[0]


def test_a_pickled_checkpoint_message_gives_no_advice_to_unpickle(base, tmp_path):
    import pickle

    run = _copy(base, tmp_path, "cut")
    (run / "checkpoint.npz").write_bytes(pickle.dumps({"meta": 1}))
    r = nn("train", "--resume", run, *NO_PLOTS, cwd=tmp_path)
    assert_usage_error(r, "checkpoint.npz")
    assert "trust" not in r.lines[0].lower() and "allow_pickle" not in r.lines[0]


# ============================================================================= cause 7: inconsistent run files


def test_preprocess_task_disagreeing_with_the_loss_is_refused(base, tmp_path):
    run = _copy(base, tmp_path)
    _edit_json(run / "preprocess.json", lambda d: {**d, "task": "regression", "classes": None})
    for command in ("eval", "predict"):
        r = nn(*_commands(run)[command], cwd=tmp_path)
        assert_usage_error(r, "preprocess.json", "'task'", "regression")


def test_input_names_disagreeing_with_features_is_refused(base, tmp_path):
    run = _copy(base, tmp_path)
    _edit_json(run / "preprocess.json", lambda d: {**d, "input_names": list(reversed(d["input_names"]))})
    r = nn("predict", run, "data.csv", cwd=tmp_path)
    assert_usage_error(r, "preprocess.json", "'input_names'")


def test_features_renamed_is_refused(base, tmp_path):
    run = _copy(base, tmp_path)
    _edit_json(run / "preprocess.json", lambda d: {**d, "features": ["x2", "x1"]})
    r = nn("predict", run, "data.csv", cwd=tmp_path)
    assert_usage_error(r, "preprocess.json", "'input_names'")


# ============================================================================= causes 6 and 7: checkpoints


def _edit_checkpoint(run: Path, fn) -> None:
    arrays = npz_arrays(run / "checkpoint.npz")
    fn(arrays)
    np.savez(run / "checkpoint.npz", **arrays)


def _meta(fn):
    def edit(arrays):
        meta = json.loads(str(arrays["meta"]))
        fn(meta)
        arrays["meta"] = np.array(json.dumps(meta))
    return edit


def _param_nan(a):
    k = next(k for k in a if k.startswith("param/"))
    a[k] = a[k].copy()
    a[k].flat[0] = np.nan


def _opt_inf(a):
    k = next((k for k in a if k.startswith("opt/") and a[k].ndim), None)
    if k is None:  # sgd has no state: damage a weight instead
        return _param_nan(a)
    a[k] = a[k].copy()
    a[k].flat[0] = np.inf


def _param_shape(a):
    k = next(k for k in a if k.startswith("param/"))
    a[k] = a[k][:1]


CHECKPOINT_DAMAGE = {
    "weights-nan": (_param_nan, "param/"),
    "optimizer-inf": (_opt_inf, "/"),
    "weights-wrong-shape": (_param_shape, "param/"),
    "order-beyond-rows": (lambda a: a.__setitem__("order", a["order"] + 100), "'order'"),
    "order-repeats-a-row": (lambda a: a.__setitem__("order", np.zeros_like(a["order"])), "'order'"),
    "order-too-short": (lambda a: a.__setitem__("order", a["order"][:-1]), "'order'"),
    "order-missing": (lambda a: a.pop("order"), "'order'"),
    "epoch-beyond-epochs": (_meta(lambda m: m.__setitem__("epoch", 40)), "meta.epoch"),
    "epoch-negative": (_meta(lambda m: m.__setitem__("epoch", -1)), "meta.epoch"),
    "epoch-a-text": (_meta(lambda m: m.__setitem__("epoch", "one")), "meta.epoch"),
    "pos-beyond-rows": (_meta(lambda m: m.__setitem__("pos", 999)), "meta.pos"),
    # a checkpoint of nncli < 0.2 carried the history itself; it is still checked
    "history-too-long": (_meta(lambda m: m.__setitem__("history", [[1, 0.5, 0.5, None, None, 0.0]] * 99)), "meta.history"),
    "metrics-bytes-negative": (lambda a: a.__setitem__("metrics_bytes", np.int64(-1)), "metrics_bytes"),
    "metrics-bytes-a-list": (lambda a: a.__setitem__("metrics_bytes", np.arange(3)), "metrics_bytes"),
    "history-a-dict": (_meta(lambda m: m.__setitem__("history", {})), "meta.history"),
    "rng-null": (_meta(lambda m: m.__setitem__("rng", None)), "meta.rng"),
    "seconds-nan": (_meta(lambda m: m.__setitem__("seconds", float("nan"))), "meta.seconds"),
    "best-a-text": (_meta(lambda m: m.__setitem__("best", "x")), "meta.best"),
    "meta-a-list": (lambda a: a.__setitem__("meta", np.array("[1, 2]")), "'meta'"),
    "meta-not-json": (lambda a: a.__setitem__("meta", np.array("{oops")), "'meta'"),
    "meta-missing": (lambda a: a.pop("meta"), "'meta'"),
}


@pytest.mark.parametrize("damage", sorted(CHECKPOINT_DAMAGE))
def test_a_bad_checkpoint_is_refused_before_anything_is_written(base, tmp_path, damage):
    run = _copy(base, tmp_path, "cut")
    fn, needle = CHECKPOINT_DAMAGE[damage]
    _edit_checkpoint(run, fn)
    before = _files(run)
    r = nn("train", "--resume", run, *NO_PLOTS, cwd=tmp_path)
    assert_usage_error(r, "checkpoint.npz", needle)
    assert _files(run) == before


@pytest.mark.parametrize("damage", ["cut-short", "epochs-renumbered", "bytes-end-mid-line"])
def test_a_metrics_csv_that_does_not_hold_the_checkpoints_history_is_refused(base, tmp_path, damage):
    """The checkpoint records how many bytes of metrics.csv are its history (not the history
    itself): a file cut shorter, or whose rows are not the epochs 1..epoch, cannot be resumed."""
    run = _copy(base, tmp_path, "cut")
    size = int(npz_arrays(run / "checkpoint.npz")["metrics_bytes"])
    text = (run / "metrics.csv").read_bytes()
    assert len(text) == size, "the checkpoint's history is the whole file here"
    if damage == "cut-short":
        (run / "metrics.csv").write_bytes(text[:size - 3])
    elif damage == "epochs-renumbered":
        lines = text.decode().splitlines(keepends=True)
        lines[1] = "7" + lines[1][1:]
        (run / "metrics.csv").write_text("".join(lines))
    else:
        _edit_checkpoint(run, lambda a: a.__setitem__("metrics_bytes", np.int64(size - 5)))
    before = _files(run)
    r = nn("train", "--resume", run, *NO_PLOTS, cwd=tmp_path)
    assert_usage_error(r, "metrics.csv")
    assert _files(run) == before


def test_the_untampered_checkpoint_resumes(base, tmp_path):
    run = _copy(base, tmp_path, "cut")
    _edit_checkpoint(run, lambda a: None)  # rewritten by np.savez, unchanged
    r = nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 0, r.show()
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("content", ["null", "[]"])
def test_resume_with_a_malformed_summary_does_not_crash(base, tmp_path, content):
    run = _copy(base, tmp_path, "cut")
    (run / "summary.json").write_text(content, encoding="utf-8")
    r = nn("train", "--resume", run, "-q", *NO_PLOTS, cwd=tmp_path)
    assert not r.tb and r.rc in (0, 2), r.show()


# ============================================================================= cause 12: --name outside the BMP


@pytest.mark.parametrize("name", ["run-\U00020000", "\U00010348x", "\U0001D400-b"])
def test_a_name_outside_the_bmp_is_kept(base, tmp_path, name):
    shutil.copy(base / "data.csv", tmp_path / "data.csv")
    shutil.copy(base / "cfg.yaml", tmp_path / "cfg.yaml")
    r = nn("train", "cfg.yaml", "--name", name, "-q", *NO_PLOTS, "--set", "train.epochs=1", cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = only_run(tmp_path)
    assert name in run.name
    assert json.loads((run / "summary.json").read_text(encoding="utf-8"))["name"] == name


# ============================================================================= cause 13: gradcheck options


@pytest.mark.parametrize("option", ["--eps", "--tol"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_gradcheck_refuses_a_non_finite_eps_or_tol(base, tmp_path, option, value):
    shutil.copy(base / "data.csv", tmp_path / "data.csv")
    shutil.copy(base / "cfg.yaml", tmp_path / "cfg.yaml")
    r = nn("gradcheck", "cfg.yaml", option, value, cwd=tmp_path)
    assert_usage_error(r, option)


# ============================================================================= cause 8: predict and rows with more fields than the header


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_predict_refuses_rows_with_one_field_more_than_the_header(base, tmp_path, how):
    """id,x1,x2,color / ROW1,0.5,0.1,... : pandas would make the first field an index, and
    the output would lose a column."""
    run = _copy(base, tmp_path)
    data = b"id,x1,x2,color\nROW1,001,0.5,0.1,red\nROW2,002,0.6,0.2,blue\n"
    (tmp_path / "in.csv").write_bytes(data)
    if how == "file":
        r = nn("predict", run, "in.csv", cwd=tmp_path)
        assert_usage_error(r, "in.csv", "line 2 has 5 fields, the header has 4")
    else:
        r = cli("predict", run, "-", cwd=tmp_path, stdin=data)
        assert r.rc == 2 and r.out == b"" and len(r.err_lines) == 1 and "Traceback" not in r.err, r.show()
        assert "stdin" in r.err and "5 fields, the header has 4" in r.err, r.show()


def test_predict_refuses_a_trailing_separator_on_every_row(base, tmp_path):
    run = _copy(base, tmp_path)
    lines = (base / "data.csv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "in.csv").write_text("\n".join([lines[0]] + [ln + "," for ln in lines[1:]]) + "\n", encoding="utf-8")
    (tmp_path / "out.csv").write_text("keep me\n", encoding="utf-8")
    r = nn("predict", run, "in.csv", "-o", "out.csv", cwd=tmp_path)
    assert_usage_error(r, "in.csv", "line 2 has 4 fields, the header has 3", "at the end of every line")
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == "keep me\n"


def test_predict_keeps_every_input_column_of_a_well_formed_file(base, tmp_path):
    run = _copy(base, tmp_path)
    (tmp_path / "in.csv").write_bytes(b"id,x1,x2,color\nROW1,0.5,0.1,red\nROW2,0.6,0.2,blue\n")
    r = nn("predict", run, "in.csv", cwd=tmp_path)
    assert r.rc == 0, r.show()
    lines = r.text.splitlines()
    assert lines[0].startswith("id,x1,x2,color,prediction") and lines[1].startswith("ROW1,0.5,0.1,red,"), r.show()


def test_predict_names_a_later_line_with_an_extra_field(base, tmp_path):
    run = _copy(base, tmp_path)
    (tmp_path / "in.csv").write_bytes(b"x1,x2\n0.5,0.1\n0.6,0.2\n0.7,0.3,9\n")
    r = nn("predict", run, "in.csv", cwd=tmp_path)
    assert_usage_error(r, "in.csv", "line 4")


# ============================================================================= cause 9: training names the actual bad line


def _train_on(base: Path, tmp_path: Path, lines: list[str]):
    shutil.copy(base / "cfg.yaml", tmp_path / "cfg.yaml")
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return nn("train", "cfg.yaml", "-q", *NO_PLOTS, cwd=tmp_path)


def test_training_names_a_first_row_with_an_extra_field(base, tmp_path):
    lines = (base / "data.csv").read_text(encoding="utf-8").splitlines()
    r = _train_on(base, tmp_path, [lines[0], lines[1] + ",7"] + lines[2:])
    assert_usage_error(r, "data.csv", "line 2 has 4 fields, the header has 3")
    assert "missing" not in r.lines[0]
    assert not (tmp_path / "runs").exists()


def test_training_names_a_trailing_separator_on_every_row(base, tmp_path):
    lines = (base / "data.csv").read_text(encoding="utf-8").splitlines()
    r = _train_on(base, tmp_path, [lines[0]] + [ln + "," for ln in lines[1:]])
    assert_usage_error(r, "data.csv", "line 2 has 4 fields, the header has 3", "at the end of every line")
    assert "missing" not in r.lines[0]


def test_training_names_the_line_after_blank_lines(base, tmp_path):
    lines = (base / "data.csv").read_text(encoding="utf-8").splitlines()
    r = _train_on(base, tmp_path, [lines[0], "", lines[1] + ",7"] + lines[2:])
    assert_usage_error(r, "data.csv", "line 3 has 4 fields")


# ============================================================================= cause 10: predict and invalid UTF-8


def _rows_bytes(n: int) -> bytes:
    return ("x1,x2\n" + "".join(f"{i * 0.001:.6f},{-i * 0.002:.6f}\n" for i in range(n))).encode()


@pytest.mark.parametrize("at", [8000, 8192, 8300, 70_000, 300_000])
def test_predict_invalid_utf8_after_the_first_8kb_is_one_line(base, tmp_path, at):
    run = _copy(base, tmp_path)
    data = _rows_bytes(25_000)
    p = data.rfind(b"\n", 0, at) + 1
    (tmp_path / "in.csv").write_bytes(data[:p] + b"0.5,caf\xe9\n" + data[p:])
    r = nn("predict", run, "in.csv", "-o", "out.csv", cwd=tmp_path)
    assert_usage_error(r, "in.csv", "not UTF-8")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("data", [b"x1,x2\n0.1,0.2\n0.3,\xe9\n", b"x1,x2\n\xff\xfe\n", b"x1,x2\n0.1,0.2\n0.3,0.4\xc3"])
def test_predict_invalid_utf8_in_a_small_stdin_is_one_line(base, tmp_path, data):
    run = _copy(base, tmp_path)
    r = cli("predict", run, "-", cwd=tmp_path, stdin=data)
    assert r.rc == 2 and len(r.err_lines) == 1 and "Traceback" not in r.err, r.show()
    assert "stdin" in r.err and "not UTF-8" in r.err, r.show()


@pytest.mark.parametrize("content", ["[]", "null", '{"data.train": 3}'])
def test_a_malformed_data_files_json_is_one_line_in_eval_and_resume(base, tmp_path, content):
    done = _copy(base, tmp_path)
    cut = tmp_path / "runs" / "cut"
    for run in (done, cut):
        (run / "data_files.json").write_text(content, encoding="utf-8")
    assert_usage_error(nn("eval", done, "--no-plots", cwd=tmp_path), "data_files.json")
    before = _files(cut)
    assert_usage_error(nn("train", "--resume", cut, *NO_PLOTS, cwd=tmp_path), "data_files.json")
    assert _files(cut) == before


# ============================================================================= a completed run's files are sealed


@pytest.mark.parametrize("name", ["model.npz", "preprocess.json", "splits.npz"])
@pytest.mark.parametrize("command", ["eval", "predict"])
def test_an_edited_run_file_is_refused_by_its_digest(base, tmp_path, name, command):
    """summary.json records the SHA-256 of model.npz, preprocess.json and splits.npz: one changed
    byte (which could keep the file valid and change every prediction) is one line, exit 2."""
    run = _copy(base, tmp_path, sealed=True)
    assert set(json.loads((run / "summary.json").read_text())["files"]) == {"model.npz", "preprocess.json", "splits.npz"}
    data = bytearray((run / name).read_bytes())
    i = len(data) // 2
    data[i] = (data[i] + 1) % 256
    (run / name).write_bytes(bytes(data))
    r = nn(command, run, *(["data.csv"] if command == "predict" else NO_PLOTS), cwd=tmp_path)
    assert_usage_error(r, name, "changed since the run was saved")


def test_a_sealed_run_loads_unchanged(base, tmp_path):
    run = _copy(base, tmp_path, sealed=True)
    assert nn("predict", run, "data.csv", cwd=tmp_path).rc == 0


@pytest.mark.parametrize("edit", [("activation: tanh", "activation: relu"), ("loss: bce", "loss: mse"),
                                  ("dtype: float32", "dtype: float64")])
def test_a_changed_model_setting_in_config_yaml_is_refused(base, tmp_path, edit):
    """config.yaml is not sealed as a whole, but the settings the network computes with are:
    another activation would give other predictions without a word."""
    run = _copy(base, tmp_path, sealed=True)
    text = (run / "config.yaml").read_text()
    assert edit[0] in text, "test setup"
    (run / "config.yaml").write_text(text.replace(edit[0], edit[1]))
    r = nn("predict", run, "data.csv", cwd=tmp_path)
    assert r.rc == 2 and not r.tb and len(r.lines) == 1, r.show()
    assert "config.yaml" in r.lines[0]


def test_an_edited_data_path_in_config_yaml_is_fine(base, tmp_path):
    run = _copy(base, tmp_path, sealed=True)
    (tmp_path / "moved.csv").write_bytes((tmp_path / "data.csv").read_bytes())
    text = (run / "config.yaml").read_text()
    assert "train: data.csv" in text, "test setup"
    (run / "config.yaml").write_text(text.replace("train: data.csv", "train: moved.csv"))
    (tmp_path / "data.csv").unlink()  # only the moved file is left
    r = nn("eval", run, "--json", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 0, r.show()


def test_a_run_config_without_its_loss_is_one_line(base, tmp_path):
    run = _copy(base, tmp_path)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("loss:")) + "\n")
    for args in (["eval", run, *NO_PLOTS], ["predict", run, "data.csv"], ["plot", run]):
        assert_usage_error(nn(*args, cwd=tmp_path), "config.yaml", "no 'loss'")
