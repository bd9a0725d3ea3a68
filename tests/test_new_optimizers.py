"""Issue 15's optimizers end to end: nesterov, rmsprop, adagrad, adamw through ``nncli``.

- ``nncli train configs/xor.yaml --set train.optimizer=...`` completes and learns XOR, and
  the run's config.yaml records the optimizer's own defaults (rmsprop's momentum 0,
  adagrad's eps 1e-10) or the values given;
- ``nncli gradcheck`` on the trained run passes;
- training interrupted (a real SIGINT to ``python -m nncli train``, and a stop inside an
  epoch in the library) and resumed with ``--resume`` ends with metrics.csv and model.npz
  identical to an uninterrupted run's (every .npy member of model.npz byte for byte: the
  zip's entry timestamps are the only bytes allowed to differ).

The step-for-step comparison with torch.optim is in test_against_torch.py; declarations,
refusals and hand-derived steps in test_optim.py. The interrupt helpers are test_interrupts.py's.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from helpers import (NO_PLOTS, assert_same_run, nn, one_run_dir, only_run, setup_workdir, strict_json, summary,
                     write_classes_csv, write_config)
from nncli.runs import CHECKPOINT
from test_interrupts import LONG_EPOCHS, interrupt_training, stop_twice_and_resume

NEW = ["nesterov", "rmsprop", "adagrad", "adamw"]

# a learning rate each learns XOR with in xor.yaml's 2000 epochs
XOR_LR = {"nesterov": 0.5, "rmsprop": 0.01, "adagrad": 0.5, "adamw": 0.05}

# non-default hyperparameters, so that every buffer of the state is in play when resuming
HYPER = {
    "nesterov": {"momentum": 0.8},
    "rmsprop": {"centered": True, "momentum": 0.5, "alpha": 0.9},
    "adagrad": {"lr_decay": 0.01, "initial_accumulator_value": 0.1},
    "adamw": {"weight_decay": 0.1, "beta1": 0.85},
}
LONG_LR = {"nesterov": 0.05, "rmsprop": 0.002, "adagrad": 0.05, "adamw": 0.005}

# what config.yaml records when the key is left out (torch.optim's defaults)
DEFAULTS = {
    "nesterov": {"momentum": 0.9},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
    "adagrad": {"lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10},
    "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
}


def assert_same_npz_members(a: Path, b: Path) -> None:
    """Every member of two .npz files (the .npy header and data) byte for byte."""
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        assert sorted(za.namelist()) == sorted(zb.namelist())
        for name in za.namelist():
            assert za.read(name) == zb.read(name), f"{a.name}: {name} differs"


def assert_identical_run(run: Path, ref: Path) -> None:
    assert_same_run(run, ref)  # metrics.csv bytes, model.npz arrays, the summary's outcome
    assert (run / "metrics.csv").read_bytes() == (ref / "metrics.csv").read_bytes()
    assert_same_npz_members(run / "model.npz", ref / "model.npz")


# ============================================================================= train and gradcheck


@pytest.fixture(scope="module")
def xor_runs(tmp_path_factory) -> dict[str, Path]:
    """One trained xor run per new optimizer (defaults for its hyperparameters)."""
    wd = setup_workdir(tmp_path_factory.mktemp("xor"))
    runs = {}
    for name in NEW:
        r = nn("train", "configs/xor.yaml", *NO_PLOTS, "-q", "--set", f"train.optimizer={name}",
               "--set", f"train.lr={XOR_LR[name]}", "--set", f"name=xor-{name}", cwd=wd)
        assert r.rc == 0, r.show()
        runs[name] = one_run_dir(r, wd)
    return runs


@pytest.mark.parametrize("name", NEW)
def test_train_xor_completes_and_learns(xor_runs, name):
    run = xor_runs[name]
    s = summary(run)
    assert s["status"] == "completed" and s["epochs_run"] == 2000
    assert s["metrics"]["accuracy"] == 1.0, s["metrics"]
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["train"]
    assert saved["optimizer"] == name and saved["lr"] == XOR_LR[name]
    assert {k: saved[k] for k in DEFAULTS[name]} == DEFAULTS[name]
    # the loss fell from where it started
    lines = (run / "metrics.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split(",")[1] == "loss"
    assert float(lines[-1].split(",")[1]) < 0.05 * float(lines[1].split(",")[1])


@pytest.mark.parametrize("name", NEW)
def test_gradcheck_on_the_trained_run_passes(xor_runs, name):
    r = nn("gradcheck", xor_runs[name], "--json", cwd=xor_runs[name].parent.parent)
    assert r.rc == 0, r.show()
    report = strict_json(r.text)
    assert report["what"].startswith("run ") and "trained weights" in report["what"], report["what"]
    assert report["passed"] is True and report["tensors"], report
    assert [t["name"] for t in report["tensors"]] == ["W1", "b1", "W2", "b2"]
    assert all(t["passed"] and t["failures"] == 0 and t["checked"] > 0 for t in report["tensors"]), report


def test_given_hyperparameters_are_recorded_and_used(tmp_path):
    """The values given reach the optimizer: two runs differing only in adamw's weight_decay
    end with different weights, and config.yaml records each."""
    wd = setup_workdir(tmp_path)
    weights = {}
    for decay in ("0.0", "0.5"):
        r = nn("train", "configs/xor.yaml", *NO_PLOTS, "-q", "--set", "train.optimizer=adamw", "--set", "train.lr=0.05",
               "--set", "train.epochs=50", "--set", f"train.weight_decay={decay}", "--set", f"name=wd{decay}", cwd=wd)
        assert r.rc == 0, r.show()
        run = one_run_dir(r, wd)
        assert yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["train"]["weight_decay"] == float(decay)
        with zipfile.ZipFile(run / "model.npz") as z:
            weights[decay] = {n: z.read(n) for n in z.namelist()}
    assert weights["0.0"] != weights["0.5"]


# ============================================================================= interrupt and resume


def _long_config(base: Path, name: str) -> str:
    write_classes_csv(base / "data.csv", n=200, seed=7)
    write_config(base / "long.yaml", name=f"long-{name}", train_csv="data.csv", target="label", seed=1,
                 layers=("auto", 8, "auto"), optimizer=name, lr=LONG_LR[name], epochs=LONG_EPOCHS, batch_size=8,
                 **HYPER[name])
    return "long.yaml"


def interrupted_beside_reference(tmp_path: Path, make_config) -> tuple[Path, Path, Path]:
    """(the reference run of ``make_config(dir)``'s config, trained to the end; the same
    config's run in another directory, stopped by SIGINT after its first epoch; that
    directory). The stop is checked: exit 130, no traceback, a checkpoint, status
    interrupted after fewer epochs, other metrics than the reference's."""
    ref_dir, work = tmp_path / "ref", tmp_path / "work"
    ref_dir.mkdir()
    work.mkdir()
    cfg = make_config(ref_dir)
    r = nn("train", cfg, *NO_PLOTS, "-q", cwd=ref_dir)
    assert r.rc == 0, r.show()
    ref = only_run(ref_dir)
    assert summary(ref)["status"] == "completed"
    shutil.copy(ref_dir / "data.csv", work / "data.csv")
    shutil.copy(ref_dir / cfg, work / cfg)
    rc, err = interrupt_training(work, cfg, tmp_path / "stderr.txt")
    assert "Traceback" not in err, err
    assert rc == 130, err
    run = only_run(work)
    assert (run / CHECKPOINT).exists()
    s = summary(run)
    assert s["status"] == "interrupted" and 0 < s["epochs_run"] < LONG_EPOCHS
    assert (run / "metrics.csv").read_bytes() != (ref / "metrics.csv").read_bytes()  # it really stopped early
    return ref, run, work


def resume_matches(run: Path, ref: Path, work: Path) -> None:
    """``nncli train --resume RUN`` completes it, bit for bit the reference run."""
    r = nn("train", "--resume", run, *NO_PLOTS, "-q", cwd=work)
    assert r.rc == 0, r.show()
    assert not (run / CHECKPOINT).exists()
    assert_identical_run(run, ref)


@pytest.mark.parametrize("name", NEW)
def test_sigint_then_resume_matches_the_uninterrupted_run(tmp_path, name):
    ref, run, work = interrupted_beside_reference(tmp_path, lambda d: _long_config(d, name))
    resume_matches(run, ref, work)


@pytest.mark.parametrize("name", NEW)
def test_a_stop_inside_an_epoch_resumed_twice_is_bit_for_bit(tmp_path, monkeypatch, name):
    """The library: stopped after the 11th optimizer step (mid-epoch: 23 rows in batches of 5),
    resumed and stopped again after 7 more (step 18: inside epoch 4), resumed to the end."""
    monkeypatch.chdir(tmp_path)
    write_classes_csv(tmp_path / "data.csv", n=23)
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", seed=2, epochs=6, batch_size=5,
                 shuffle=True, optimizer=name, lr=LONG_LR[name] * 2, **HYPER[name])
    run, ref = stop_twice_and_resume(tmp_path / "cfg.yaml", tmp_path)
    assert_identical_run(run, ref)
