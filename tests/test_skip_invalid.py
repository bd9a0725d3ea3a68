"""`nncli predict --skip-invalid` (issue 13): rows that cannot be predicted get empty
prediction cells and the reason in an ``error`` column, the count goes to stderr, exit 0;
every other row is predicted exactly as without the flag."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import NO_PLOTS, assert_usage_error, nn, read_text_csv, write_rows

ROWS = [[f"{(i % 7) * 0.5:.1f}", "pqr"[i % 3], "yes" if i % 7 > 3 else "no"] for i in range(42)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("skip")
    write_rows(wd / "train.csv", ["x", "c", "label"], ROWS)
    (wd / "cfg.yaml").write_text("data: {train: train.csv, target: label}\nmodel: {layers: [auto, 4, auto]}\n"
                                 "loss: bce\ntrain: {lr: 0.1, epochs: 20, batch_size: 8}\n", encoding="utf-8")
    r = nn("train", "cfg.yaml", "-q", *NO_PLOTS, cwd=wd)
    assert r.rc == 0, r.show()
    return wd, wd / r.text.strip()


BAD = {3: ("x", "", "missing"), 10: ("c", "zzz", "category 'zzz'"), 11: ("x", "abc", "'abc' is not a number"),
       25: ("c", "", "missing")}


def _new_rows():
    rows = [list(r[:2]) for r in ROWS[:30]]
    for i, (col, value, _) in BAD.items():
        rows[i][0 if col == "x" else 1] = value
    return rows


def test_bad_rows_get_empty_cells_and_a_reason_the_others_are_predicted_as_without_the_flag(run, tmp_path):
    wd, rd = run
    write_rows(wd / "new.csv", ["x", "c"], _new_rows())
    r = nn("predict", rd, "new.csv", "--skip-invalid", cwd=wd)
    assert r.rc == 0, r.show()
    assert r.err_lines == [f"nncli: warning: new.csv: {len(BAD)} of 30 rows could not be predicted; their reasons are in the error column"]
    out = read_text_csv(r.out)
    assert list(out.columns) == ["x", "c", "prediction", "proba_no", "proba_yes", "error"]
    for i in range(30):
        if i in BAD:
            col, _, reason = BAD[i]
            assert out.loc[i, ["prediction", "proba_no", "proba_yes"]].tolist() == ["", "", ""]
            assert f"row {i + 1} (line {i + 2})" in out.loc[i, "error"] and reason in out.loc[i, "error"], out.loc[i, "error"]
        else:
            assert out.loc[i, "error"] == "" and out.loc[i, "prediction"] in ("yes", "no")
    # the good rows alone, without the flag: the same predictions (the probabilities to the
    # last bits: the halving predicts them in smaller batches, and BLAS may round a product
    # of another batch size differently)
    good = [row for i, row in enumerate(_new_rows()) if i not in BAD]
    write_rows(wd / "good.csv", ["x", "c"], good)
    g = read_text_csv(nn("predict", rd, "good.csv", cwd=wd).out)
    kept = out[out["error"] == ""].reset_index(drop=True)
    assert kept["prediction"].tolist() == g["prediction"].tolist()
    for c in ("proba_no", "proba_yes"):
        np.testing.assert_allclose(kept[c].astype(float), g[c].astype(float), rtol=1e-13, atol=0)


def test_without_the_flag_the_first_bad_row_stops_the_file(run):
    wd, rd = run
    write_rows(wd / "new2.csv", ["x", "c"], _new_rows())
    r = nn("predict", rd, "new2.csv", cwd=wd)
    assert_usage_error(r, "row 4 (line 5)")


def test_many_bad_rows_in_small_chunks(run, tmp_path):
    """Every other row bad, chunks of 7: the halving search finds each one."""
    from nncli.inference import predict
    from nncli.runs import load_run

    wd, rd = run
    rows = [["1.0" if i % 2 else "nope", "p"] for i in range(50)]
    write_rows(tmp_path / "half.csv", ["x", "c"], rows)
    notes: list = []
    n = predict(load_run(rd), str(tmp_path / "half.csv"), str(tmp_path / "out.csv"), chunk_rows=7, notes=notes,
                skip_invalid=True)
    out = read_text_csv(tmp_path / "out.csv")
    assert n == 50 and (out["error"] != "").tolist() == [i % 2 == 0 for i in range(50)]
    assert notes == [f"{tmp_path / 'half.csv'}: 25 of 50 rows could not be predicted; their reasons are in the error column"]


def test_an_input_with_an_error_column_is_refused(run):
    wd, rd = run
    write_rows(wd / "err.csv", ["x", "c", "error"], [["1.0", "p", "?"]])
    assert_usage_error(nn("predict", rd, "err.csv", "--skip-invalid", cwd=wd), "already has a column 'error'")
