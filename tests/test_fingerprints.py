"""A run records the fingerprint (size and SHA-256) of each data file it read (issue 13):
evaluating or reproducing it on a changed file warns, resuming it refuses."""

from __future__ import annotations

import hashlib
import json

from helpers import (NO_PLOTS, assert_usage_error, nn, only_run, stop_after_steps, write_classes_csv,
                     write_config)


def _case(tmp_path, **train):
    write_classes_csv(tmp_path / "data.csv", n=40)
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", data_extra={"test_split": 0.25}, **train)
    return tmp_path


def _edit_a_value(path):
    """The same rows, one feature value changed: a different file with the same row count."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    cells = lines[1].split(",")
    cells[0] = repr(float(cells[0]) + 0.5)
    lines[1] = ",".join(cells)
    path.write_text("".join(lines), encoding="utf-8")


def test_a_run_saves_the_fingerprint_of_its_data(tmp_path):
    wd = _case(tmp_path)
    r = nn("train", "cfg.yaml", "-q", *NO_PLOTS, cwd=wd)
    assert r.rc == 0, r.show()
    saved = json.loads((only_run(wd) / "data_files.json").read_text(encoding="utf-8"))
    raw = (wd / "data.csv").read_bytes()
    assert saved == {"data.train": {"path": "data.csv", "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}}


def test_eval_on_a_changed_file_warns_and_an_unchanged_one_does_not(tmp_path):
    wd = _case(tmp_path)
    run = wd / nn("train", "cfg.yaml", "-q", *NO_PLOTS, cwd=wd).text.strip()
    r = nn("eval", run, "--json", "--no-plots", cwd=wd)
    assert r.rc == 0 and not any("warning" in ln for ln in r.err_lines), r.show()
    assert "notes" not in json.loads(r.text)
    _edit_a_value(wd / "data.csv")
    r = nn("eval", run, "--json", "--no-plots", cwd=wd)
    assert r.rc == 0, r.show()
    warnings = [ln for ln in r.err_lines if "warning" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("nncli: warning: data.train data.csv is not the file"), r.show()
    assert any("SHA-256 differs" in n for n in json.loads(r.text)["notes"])


def test_reproducing_a_run_on_a_changed_file_warns(tmp_path):
    wd = _case(tmp_path)
    run = wd / nn("train", "cfg.yaml", "-q", *NO_PLOTS, cwd=wd).text.strip()
    r = nn("train", run / "config.yaml", "-q", *NO_PLOTS, "--runs-dir", "again", cwd=wd)
    assert r.rc == 0 and not r.err_lines, r.show()  # quiet, and nothing changed: no warning
    r = nn("train", run / "config.yaml", *NO_PLOTS, "--runs-dir", "again", cwd=wd)
    assert r.rc == 0 and not any("not the file" in ln for ln in r.err_lines), r.show()
    _edit_a_value(wd / "data.csv")
    r = nn("train", run / "config.yaml", *NO_PLOTS, "--runs-dir", "again", cwd=wd)
    assert r.rc == 0, r.show()
    assert any("data.train data.csv is not the file run" in ln and "will not reproduce" in ln for ln in r.err_lines), r.show()


def test_resuming_on_a_changed_file_is_refused(tmp_path, monkeypatch):
    from nncli.config import load_config
    from nncli.job import TrainingJob

    wd = _case(tmp_path, epochs=6)
    monkeypatch.chdir(wd)
    job = TrainingJob(load_config("cfg.yaml"), "runs")
    stop_after_steps(job.trainer, 3)
    job.start()
    for _ in job.epochs():
        pass
    job.finish(plots=False)
    assert job.result.status == "interrupted"
    _edit_a_value(wd / "data.csv")
    before = sorted(p.name for p in job.run_dir.iterdir())
    r = nn("train", "--resume", job.run_dir, *NO_PLOTS, cwd=wd)
    assert_usage_error(r, "cannot resume", "data.train data.csv is not the file", "put the original file back")
    assert sorted(p.name for p in job.run_dir.iterdir()) == before


def test_a_run_without_fingerprints_evaluates_without_a_warning(tmp_path):
    wd = _case(tmp_path)
    run = wd / nn("train", "cfg.yaml", "-q", *NO_PLOTS, cwd=wd).text.strip()
    (run / "data_files.json").unlink()
    _edit_a_value(wd / "data.csv")
    r = nn("eval", run, "--no-plots", cwd=wd)
    assert r.rc == 0 and not any("warning" in ln for ln in r.err_lines), r.show()
