"""Fixtures of the test suite; the shared helpers they build on are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import BLOBS_YAML, setup_workdir, write_blobs_csv



@pytest.fixture
def workdir(tmp_path) -> Path:
    """tmp_path with datasets/xor.csv and configs/xor.yaml copied in."""
    return setup_workdir(tmp_path)


@pytest.fixture
def blobs_workdir(workdir) -> Path:
    """workdir plus datasets/blobs.csv and configs/blobs.yaml."""
    write_blobs_csv(workdir / "datasets" / "blobs.csv")
    (workdir / "configs" / "blobs.yaml").write_text(BLOBS_YAML, encoding="utf-8")
    return workdir
