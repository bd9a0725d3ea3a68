"""The gallery (configs/, datasets/, nncli.synth): every shipped config trains, the data command is
deterministic, pictures are PNGs, and the boundary picture shows the saved training rows."""

from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, assert_usage_error, nn
from nncli import synth
from nncli.config import load_config
from nncli.job import TrainingJob

CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_gallery_is_complete():
    for name in ["xor", "xor-linear", "xor_clusters", "circles", "moons", "spirals", "gauss", "iris", "wine",
                 "breast_cancer", "digits", "sine", "spirals_cosine", "digits_dropout"]:
        assert name in CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_config_validates_and_trains_a_few_epochs(name, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    cfg = load_config(f"configs/{name}.yaml", ["train.epochs=3"])
    job = TrainingJob(cfg, tmp_path)
    records = list(job.epochs())
    assert [r.epoch for r in records] == [1, 2, 3]
    assert all(np.isfinite(r.loss) for r in records)
    if name not in ("xor", "xor-linear"):
        assert job.data.test is not None and job.data.test.n > 0  # a held-out test split for nncli eval


def _png_ok(path: Path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000, path


def test_train_and_eval_write_valid_pictures(tmp_path):
    def run(*args):
        r = nn(*args, cwd=REPO)
        assert r.rc == 0, r.show()
        return r.text.strip()

    run_dir = Path(REPO / run("train", "configs/moons.yaml", "-q", "--runs-dir", str(tmp_path), "--set", "train.epochs=5"))
    _png_ok(run_dir / "loss.png")
    _png_ok(run_dir / "decision_boundary.png")
    run("eval", str(run_dir))
    _png_ok(run_dir / "confusion.png")
    (run_dir / "loss.png").unlink()
    (run_dir / "decision_boundary.png").unlink()
    assert run("plot", str(run_dir)).splitlines() == [str(run_dir / "loss.png"), str(run_dir / "decision_boundary.png")]
    _png_ok(run_dir / "loss.png")
    # no decision boundary for more than two features; --no-plots draws nothing
    other = Path(REPO / run("train", "configs/iris.yaml", "-q", "--runs-dir", str(tmp_path), "--set", "train.epochs=2"))
    assert (other / "loss.png").exists() and not (other / "decision_boundary.png").exists()
    bare = Path(REPO / run("train", "configs/moons.yaml", "-q", "--no-plots", "--runs-dir", str(tmp_path), "--set", "train.epochs=2"))
    assert not list(bare.glob("*.png"))


@pytest.mark.parametrize("name", sorted(synth.GENERATORS))
def test_data_generators_are_deterministic_and_shaped(name):
    a = synth.generate(name, seed=5)
    b = synth.generate(name, seed=5)
    c = synth.generate(name, seed=6)
    g = synth.GENERATORS[name]
    assert a.equals(b) and not a.equals(c)
    assert list(a.columns) == list(g.columns) and len(a) == g.n
    assert len(synth.generate(name, n=17, seed=0)) == 17


def test_committed_synthetic_csvs_are_what_the_command_writes(tmp_path):
    files = {"xor": "xor_clusters.csv", "circles": "circles.csv", "moons": "moons.csv", "spirals": "spirals.csv",
             "gauss": "gauss.csv", "sine": "sine.csv"}
    for name, file in files.items():
        out = tmp_path / file
        r = nn("data", name, "-o", out, "--seed", "0", cwd=REPO)
        assert r.rc == 0, r.show()
        assert out.read_bytes() == (REPO / "datasets" / file).read_bytes(), file


def test_data_command_rejects_bad_input():
    r = nn("data", "spiral", "-o", "-", cwd=REPO)
    assert_usage_error(r, "did you mean 'spirals'")
    assert r.out == b""


@pytest.mark.parametrize("name", ["moons", "xor_clusters", "spirals"])
def test_boundary_points_from_memory_are_the_training_rows_of_the_csv(name, monkeypatch, tmp_path):
    """train draws decision_boundary.png from the data in memory (un-standardised); `nncli
    plot` reads the CSV again with the run's saved training rows. Both must show the same
    training points with the same classes."""
    from nncli.data import read_train_csv
    from nncli.runs import RunDir

    monkeypatch.chdir(REPO)
    cfg = load_config(f"configs/{name}.yaml", ["train.epochs=1"])
    job = TrainingJob(cfg, tmp_path)
    run = job.start()
    prep, train = job.data.prep, job.data.train
    X_mem, codes_mem = prep.unscale(train.X), prep.task.true_codes(train.Y)  # what train's picture shows

    saved = RunDir(run).read_splits()
    assert saved is not None and set(saved) == set(job.data.rows) | {"n_rows"}
    for split, rows in job.data.rows.items():
        np.testing.assert_array_equal(saved[split], rows)
    df, source = read_train_csv(cfg, prep.str_columns())
    assert saved["n_rows"] == job.data.n_rows == len(df)
    # the held-out test rows (every config here has a test split) are not drawn as training points
    assert len(saved["test"]) > 0 and not set(saved["test"]) & set(saved["train"])
    assert len(saved["train"]) == train.n < len(df)

    df = df.iloc[saved["train"]]
    X_csv = np.column_stack([df[f].to_numpy(dtype=np.float64) for f in prep.features])
    np.testing.assert_allclose(X_mem, X_csv, rtol=1e-6, atol=1e-6 * np.abs(X_csv).max())
    labels = df[prep.targets[0]].astype(str).tolist()
    np.testing.assert_array_equal(codes_mem, [prep.classes.index(v) for v in labels])
    np.testing.assert_array_equal(codes_mem, prep.label_codes(df[prep.targets[0]], source))
