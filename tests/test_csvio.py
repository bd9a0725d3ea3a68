"""nncli.csvio: reading CSV files (text kept as written, missing cells, headers) and the
errors about files, through the library and through `nncli train`; and the one atomic
writer, ``atomic_file``: failures injected at the file object and at os.fsync / os.replace
keep the old content and leave no temporary file, also for its users (``synth.write_csv``,
`nncli data -o`, ``nncli.inference.predict`` with an error in a late chunk).

Expected values come from the CSV contents these tests write, never from nncli's output.
"""

from __future__ import annotations

import errno
import io
import os
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nncli.csvio
import nncli.inference
from helpers import (GOOD_ROWS, NO_PLOTS, adam_yaml, assert_data_error_and_nothing_written, assert_usage_error, csv_bytes,
                     nn, npz_arrays, read_text_csv, run_error_cases, strict_json, write_rows)
from nncli.csvio import MISSING, atomic_file, atomic_write_bytes, cell, read_csv, write_json, write_npz
from nncli.errors import DataError

# ============================================================================= reading


def test_read_csv_keeps_text_columns_as_written_and_marks_missing_cells(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes("\ufeffid,x,c,label\n007,1.50,NA,yes\n010,,p,no\n011,2,none,N/A\n012,-3,n/a,yes\n".encode("utf-8"))
    df = read_csv(p, "data.train", str_columns=["id", "label"], required=["label"])
    assert list(df.columns) == ["id", "x", "c", "label"], "the BOM must not become part of the first name"
    assert df["id"].tolist() == ["007", "010", "011", "012"]
    assert df["x"].tolist()[0] == "1.50" and pd.isna(df["x"][1])  # a column with a blank cell stays text
    assert pd.isna(df["c"][0]) and df["c"][1] == "p" and df["c"][2] == "none" and pd.isna(df["c"][3])
    assert df["label"].tolist()[:2] == ["yes", "no"] and pd.isna(df["label"][2])


def test_read_csv_reads_clean_numeric_columns_as_numbers(tmp_path):
    p = write_rows(tmp_path / "n.csv", ["a", "b", "label"], [["1", "2.5", "1"], ["2", "-1e3", "0"]])
    df = read_csv(p, str_columns=["label"])
    assert df["a"].dtype.kind == "i" and df["b"].dtype.kind == "f"
    assert df["b"].tolist() == [2.5, -1000.0] and df["label"].tolist() == ["1", "0"]


@pytest.mark.parametrize("token", MISSING)
def test_every_missing_token_is_missing_and_nothing_else(tmp_path, token):
    p = write_rows(tmp_path / "m.csv", ["c", "d"], [[token, "-"], ["x", "None"]])
    df = read_csv(p)
    assert pd.isna(df["c"][0]) and df["c"][1] == "x"
    assert df["d"].tolist() == ["-", "None"]


def test_cell_names_row_line_and_column():
    assert cell("data.train x.csv", 0, "x") == "data.train x.csv: row 1 (line 2), column 'x'"
    assert cell("stdin", 41, "größe") == "stdin: row 42 (line 43), column 'größe'"


# name: (file bytes, or None for a directory, or "absent"; arguments; strings the message must contain)
READ_ERRORS = {
    "absent_relative": ("absent", {"key": "data.test"}, ["data.test f.csv", "file not found", "relative paths"]),
    "directory": (None, {"key": "--data"}, ["--data f.csv", "is a directory"]),
    "empty": (b"", {}, ["f.csv", "empty (0 bytes)"]),
    "header_only": (b"x,label\n", {}, ["f.csv", "no data rows"]),
    "no_header": (b",\n1,2\n", {}, ["f.csv", "no header line"]),
    "duplicate": (b"x,y,x\n1,2,3\n", {}, ["f.csv", "duplicate column name 'x'"]),
    "latin1": ("x,c\n1,café\n".encode("latin-1"), {}, ["f.csv", "not UTF-8"]),
    "semicolons": (b"x;y;label\n1;2;a\n", {"required": ["label"]}, ["f.csv", "';'-separated", "commas"]),
    "typo_in_header": (b"x,y,lable\n1,2,a\n", {"required": ["label"]},
                       ["f.csv", "missing column 'label'", "did you mean 'lable'", "(columns: x, y, lable)"]),
    "ragged": (b"x,label\n1,a\n2,b,extra\n", {}, ["f.csv", "malformed CSV"]),
}


@pytest.mark.parametrize("case", list(READ_ERRORS))
def test_read_csv_errors_are_one_line_naming_the_file(tmp_path, monkeypatch, case):
    content, kw, needles = READ_ERRORS[case]
    monkeypatch.chdir(tmp_path)
    if content is None:
        Path("f.csv").mkdir()
    elif content != "absent":
        Path("f.csv").write_bytes(content)
    with pytest.raises(DataError) as e:
        read_csv("f.csv", kw.get("key", ""), required=kw.get("required", ()))
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"


def test_absolute_missing_path_has_no_relative_hint(tmp_path):
    with pytest.raises(DataError) as e:
        read_csv(tmp_path / "nope.csv")
    assert str(e.value) == f"{tmp_path / 'nope.csv'}: file not found"


# ---------------------------------------------------------------------- file errors through `nncli train`

# name: (file bytes or None for no file, strings the one-line message must contain)
FILE_ERROR_CASES = {
    "missing_file": (None, ["data.csv", "not found"]),
    "empty_file": (b"", ["data.csv", "empty"]),
    "header_only": (b"x,c,label\n", ["data.csv", "no data rows"]),
    "duplicate_columns": (csv_bytes([("1", "p", "2", "yes"), ("2", "q", "3", "no")], ("x", "c", "x", "label")),
                          ["data.csv", "duplicate", "'x'"]),
    "missing_target": (csv_bytes(GOOD_ROWS, ("x", "c", "lbl")), ["data.csv", "'label'"]),
    "latin1": ("x,c,label\n0.5,café,yes\n-1.0,thé,no\n".encode("latin-1"), ["data.csv", "UTF-8"]),
    "ragged_long": (b"x,c,label\n0.5,p,yes\n-1.0,q,no,extra\n1.5,p,yes\n", ["data.csv", "line 3"]),
    # a short row's absent cells are missing cells (a missing target drops the row, issue 13): here a feature's
    "ragged_short": (b"label,x,c\nyes,0.5,p\nno,-1.0,q\nyes,1.5\nno,-2.0,q\n", ["data.csv", "row 3", "'c'"]),
}
# these go through real processes (exit status and stderr as a shell sees them); the others in-process
SUBPROCESS_CASES = ("missing_file", "latin1")


@pytest.fixture(scope="module")
def file_error_results(tmp_path_factory):
    cases = {name: (content, adam_yaml(name, "data.csv", epochs=3)) for name, (content, _) in FILE_ERROR_CASES.items()}
    return run_error_cases(tmp_path_factory.mktemp("train_file_errors"), cases, SUBPROCESS_CASES)


@pytest.mark.parametrize("case", list(FILE_ERROR_CASES))
def test_training_file_error(file_error_results, case):
    dirs, res = file_error_results
    assert_data_error_and_nothing_written(res[case], FILE_ERROR_CASES[case][1], dirs[case])


# ============================================================================= the atomic writer


class _OsProxy:
    """The os module with some functions replaced (installed as nncli.csvio.os only)."""

    def __init__(self, **overrides):
        self._over = overrides

    def __getattr__(self, name):
        return self._over.get(name) or getattr(os, name)


def _raise(*_a, **_k):
    raise OSError(errno.EIO, "Input/output error")


class _FullDisk(io.RawIOBase):
    """A new file that takes ``budget`` bytes, then fails every write with ENOSPC, as a full
    disk does; wrapped by :func:`_open_on_full_disk` in the buffering ``open`` would add."""

    def __init__(self, path, budget: int):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.name = str(path)
        self.left = budget

    def writable(self):
        return True

    def fileno(self):
        return self.fd

    def write(self, b):
        if self.left <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = os.write(self.fd, bytes(memoryview(b)[: min(len(b), self.left)]))
        self.left -= n
        return n

    def close(self):
        if not self.closed:
            os.close(self.fd)
        super().close()


def _open_on_full_disk(budget: int):
    """A stand-in for the builtin ``open`` (installed as nncli.csvio.open) on a disk with ``budget`` bytes free."""

    def fake_open(path, mode="r", **kw):
        assert "x" in mode, "the temporary file must be created exclusively"
        buf = io.BufferedWriter(_FullDisk(path, budget))
        return buf if "b" in mode else io.TextIOWrapper(buf, encoding=kw.get("encoding"), newline=kw.get("newline"))

    return fake_open


BIG = bytes(range(256)) * 400  # 100 kB: several writes, past any buffer
SMALL = b'{"status": "completed"}\n'  # fits in the write buffer: the disk sees it at flush time

FAILURES = {
    "write-midway": (lambda mp: mp.setattr(nncli.csvio, "open", _open_on_full_disk(50_000), raising=False), BIG),
    "flush-of-a-small-file": (lambda mp: mp.setattr(nncli.csvio, "open", _open_on_full_disk(0), raising=False), SMALL),
    "fsync": (lambda mp: mp.setattr(nncli.csvio, "os", _OsProxy(fsync=_raise)), BIG),
    "replace": (lambda mp: mp.setattr(nncli.csvio, "os", _OsProxy(replace=_raise)), BIG),
}
@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("existing", [True, False], ids=["old-file", "no-file"])
def test_atomic_write_failure_keeps_old_content_and_leaves_no_temp(tmp_path, monkeypatch, failure, existing):
    target = tmp_path / "model.npz"
    old = b"old content\n" * 100
    if existing:
        target.write_bytes(old)
    inject, new = FAILURES[failure]
    inject(monkeypatch)
    with pytest.raises(OSError):
        atomic_write_bytes(target, new)
    monkeypatch.undo()
    if existing:
        assert target.read_bytes() == old
        assert sorted(os.listdir(tmp_path)) == ["model.npz"], "a temporary file was left behind"
    else:
        assert os.listdir(tmp_path) == [], "a partial or temporary file was left behind"


def test_atomic_write_replaces_content(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    renames = []

    def replace(src, dst):
        # up to the rename, readers see the old file; the new bytes are complete in the temporary one
        assert target.read_bytes() == b"old" and Path(src).read_bytes() == b"new" * 10000
        renames.append((Path(src), Path(dst)))
        os.replace(src, dst)

    monkeypatch.setattr(nncli.csvio, "os", _OsProxy(replace=replace))
    atomic_write_bytes(target, b"new" * 10000)
    monkeypatch.undo()
    assert target.read_bytes() == b"new" * 10000
    assert os.listdir(tmp_path) == ["f.bin"]
    [(src, dst)] = renames
    assert dst == target and src.parent == tmp_path
    assert re.fullmatch(rf"\.f\.bin\.{os.getpid()}\.[0-9a-f]{{8}}\.tmp", src.name), src.name


def test_atomic_file_error_in_the_block_keeps_old_content(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(KeyError):
        with atomic_file(target, "w", encoding="utf-8", newline="") as fh:
            fh.write("a,b\n" * 5000)
            raise KeyError("late")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_json_and_npz_writers(tmp_path):
    write_json(tmp_path / "s.json", {"loss": float("nan"), "best": [1.0, float("inf")], "name": "größe",
                                     "n": np.int64(3), "a": np.arange(2)})
    text = (tmp_path / "s.json").read_text(encoding="utf-8")
    assert strict_json(text) == {"loss": None, "best": [1.0, None], "name": "größe", "n": 3, "a": [0, 1]}
    assert "größe" in text and text.endswith("}\n")
    arrays = {"W1": np.arange(6.0).reshape(2, 3), "classes": np.array(["a", "b"])}
    write_npz(tmp_path / "m.npz", arrays)
    got = npz_arrays(tmp_path / "m.npz")
    assert sorted(got) == ["W1", "classes"] and np.array_equal(got["W1"], arrays["W1"])
    assert got["classes"].dtype.kind == "U" and got["classes"].tolist() == ["a", "b"]
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "s.json"]


# ---------------------------------------------------------------------- its users


def _big_frame(n: int = 5000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "label": rng.integers(2, size=n)})


@pytest.mark.parametrize("failure", ["write-midway", "fsync", "replace"])
def test_synth_write_csv_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, failure):
    from nncli import synth

    target = tmp_path / "moons.csv"
    target.write_text("old\n", encoding="utf-8")
    assert len(synth.csv_text(_big_frame()).encode("utf-8")) > 100_000  # several buffers: the disk fills midway
    FAILURES[failure][0](monkeypatch)
    with pytest.raises(DataError) as e:
        synth.write_csv(_big_frame(), target)
    monkeypatch.undo()
    assert str(e.value).startswith(f"{target}: cannot write: ") and "\n" not in str(e.value)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["moons.csv"], "a temporary file was left behind"
    synth.write_csv(_big_frame(), target)  # and without a failure it writes
    assert target.read_bytes() == synth.csv_text(_big_frame()).encode("utf-8")
    assert os.listdir(tmp_path) == ["moons.csv"]


def test_data_command_failure_keeps_old_output(tmp_path, monkeypatch):
    (tmp_path / "out.csv").write_text("old\n", encoding="utf-8")
    monkeypatch.setattr(nncli.csvio, "os", _OsProxy(replace=_raise))
    r = nn("data", "moons", "-o", "out.csv", "--seed", "0", cwd=tmp_path)
    monkeypatch.undo()
    assert_usage_error(r, "out.csv", "cannot write", "Input/output error")
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["out.csv"]


@pytest.fixture(scope="module")
def cat_run(tmp_path_factory):
    """A small trained classifier on x1, x2 and a category c in {p, q}."""
    wd = tmp_path_factory.mktemp("cat_run")
    rng = np.random.default_rng(5)
    rows = [[f"{a:.3f}", f"{b:.3f}", "pq"[i % 2], "yes" if a + b > 0 else "no"]
            for i, (a, b) in enumerate(rng.normal(size=(40, 2)))]
    write_rows(wd / "train.csv", ["x1", "x2", "c", "label"], rows)
    (wd / "cfg.yaml").write_text(adam_yaml("cat", "train.csv", extra_data="  categorical: [c]\n", epochs=3), encoding="utf-8")
    r = nn("train", "cfg.yaml", "-q", "--runs-dir", "runs", *NO_PLOTS, cwd=wd)
    assert r.rc == 0, r.show()
    return wd, wd / r.text.strip()


def test_predict_error_in_a_late_chunk_keeps_old_output_and_leaves_no_temp(cat_run, tmp_path, monkeypatch):
    from nncli.runs import load_run

    wd, run_dir = cat_run
    rng = np.random.default_rng(6)
    rows = [[f"{a:.3f}", f"{b:.3f}", "pq"[i % 2]] for i, (a, b) in enumerate(rng.normal(size=(50, 2)))]
    rows[45][2] = "r"  # a category training never saw, in the 7th chunk of 7 rows
    src = write_rows(tmp_path / "in" / "new.csv", ["x1", "x2", "c"], rows)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "pred.csv"
    out.write_text("id,prediction\n1,keep me\n", encoding="utf-8")

    real, seen = nncli.csvio.atomic_file, {}  # predict -o writes through it (nncli.formats.table_writer)

    @contextmanager
    def watching(path, mode="wb", **kw):  # notes how much reached the temporary file before the error
        with real(path, mode, **kw) as fh:
            try:
                yield fh
            except BaseException:
                fh.flush()
                seen["tmp"], seen["size"] = Path(fh.name), os.path.getsize(fh.name)
                raise

    monkeypatch.setattr(nncli.csvio, "atomic_file", watching)
    with pytest.raises(DataError) as e:
        nncli.inference.predict(load_run(run_dir), str(src), str(out), chunk_rows=7)
    msg = str(e.value)
    assert "row 46 (line 47), column 'c'" in msg and "'r'" in msg, msg
    assert seen["tmp"].parent == out_dir and seen["tmp"].name.startswith(".pred.csv.")
    assert seen["size"] > len("x1,x2,c,prediction,proba_no,proba_yes\n") + 6 * 7 * 10, \
        "the first six chunks should have been written before the error"
    assert not seen["tmp"].exists()
    assert out.read_text(encoding="utf-8") == "id,prediction\n1,keep me\n"
    assert os.listdir(out_dir) == ["pred.csv"], "a temporary file was left behind"

    # the same file with the category fixed: every chunk written, the old output replaced
    rows[45][2] = "q"
    write_rows(src, ["x1", "x2", "c"], rows)
    assert nncli.inference.predict(load_run(run_dir), str(src), str(out), chunk_rows=7) == 50
    got = read_text_csv(out.read_bytes())
    assert list(got.columns) == ["x1", "x2", "c", "prediction", "proba_no", "proba_yes"]
    assert got["c"].tolist() == [r[2] for r in rows] and len(got) == 50
    assert os.listdir(out_dir) == ["pred.csv"]
