"""Fixtures of the test suite; the shared helpers they build on are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.register_assert_rewrite("helpers")  # the checks shared in helpers.py report like the tests' own

from helpers import add_blobs, nn, setup_workdir, write_classes_csv, write_config  # noqa: E402
from ray_cluster import ray_cluster  # noqa: E402,F401 (the one Ray cluster of the test run, started when a test asks for it)



@pytest.fixture
def workdir(tmp_path) -> Path:
    """tmp_path with datasets/xor.csv and configs/xor.yaml copied in."""
    return setup_workdir(tmp_path)


@pytest.fixture
def blobs_workdir(workdir) -> Path:
    """workdir plus datasets/blobs.csv and configs/blobs.yaml."""
    return add_blobs(workdir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A directory with data.csv, cfg.yaml and one completed run in runs/ (trained in-process),
    once per test module that uses it; tests change a copy (helpers.copy_trained)."""
    base = tmp_path_factory.mktemp("trained")
    write_classes_csv(base / "data.csv")
    write_config(base / "cfg.yaml", train_csv="data.csv", target="label", epochs=3)
    r = nn("train", "cfg.yaml", "--no-plots", "-q", cwd=base)
    assert r.rc == 0, r.show()
    return base
