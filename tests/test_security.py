"""Security of nncli against hostile files: YAML configs with python tags (refused, nothing
runs), YAML syntax and nesting errors, absurd layer sizes, pickled / truncated /
shape-mismatched model.npz and model.init .npz files, and run names that would escape the
runs directory. Each is one line on stderr, exit 2, and writes nothing.

(config.py, runs.py, model.load_weights; commands run in this process through helpers.nn.)
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import (unseal, OpenOnUnpickle, assert_usage_error, copy_trained, nn, npz_arrays, runs_in, write_classes_csv,
                     write_config)

# ============================================================================= YAML


def _attack_docs(marker: Path) -> dict[str, str]:
    base = (
        "name: t\nseed: 0\ndata:\n  train: data.csv\n  target: label\nmodel:\n  layers: [auto, 3, auto]\n"
        "loss: bce\ntrain:\n  lr: 0.1\n  epochs: 2\n"
    )
    cmd = f'["touch {marker}"]'
    return {
        "apply-in-value": base.replace("name: t", f"name: !!python/object/apply:os.system {cmd}"),
        "apply-document": f"!!python/object/apply:os.system {cmd}\n",
        "name-tag": base.replace("seed: 0", "seed: !!python/name:os.system"),
        "new-tag": base.replace("name: t", f"name: !!python/object/new:os.system {cmd}"),
        "module-tag": base.replace("name: t", "name: !!python/module:os"),
    }


@pytest.mark.parametrize("kind", ["apply-in-value", "apply-document", "name-tag", "new-tag", "module-tag"])
def test_yaml_python_tags_are_refused_and_run_nothing(tmp_path, kind):
    marker = tmp_path / "PWNED"
    write_classes_csv(tmp_path / "data.csv")
    (tmp_path / "evil.yaml").write_text(_attack_docs(marker)[kind], encoding="utf-8")
    r = nn("train", "evil.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "evil.yaml")
    assert not marker.exists(), "a YAML tag ran a shell command"
    assert runs_in(tmp_path) == []


def test_yaml_attack_payload_is_live(tmp_path):
    """Control for the test above: the same document, loaded unsafely, does run the command."""
    marker = tmp_path / "CONTROL"
    yaml.unsafe_load(_attack_docs(marker)["apply-document"])
    assert marker.exists()


def test_yaml_python_tag_in_set_override_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    write_classes_csv(tmp_path / "data.csv")
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label")
    r = nn("train", "cfg.yaml", "--no-plots", "--set", f'name=!!python/object/apply:os.system ["touch {marker}"]', cwd=tmp_path)
    assert_usage_error(r, "--set")
    assert not marker.exists()
    assert runs_in(tmp_path) == []


@pytest.mark.parametrize(
    "text, line",
    [
        ("name: t\nseed: 0\ndata:\n  train: data.csv: oops\n  target: label\n", 4),
        ("name: t\nseed: 0\nmodel:\n  layers: [2, 3, 1]\n loss: bce\n", 5),
        ('name: t\nseed: 0\ndata: {train: data.csv, target: label}\nloss: "bce\n', 5),
    ],
    ids=["mapping-in-value", "bad-indent", "unclosed-quote"],
)
def test_yaml_syntax_error_names_the_line(tmp_path, text, line):
    (tmp_path / "broken.yaml").write_text(text, encoding="utf-8")
    r = nn("train", "broken.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "broken.yaml")
    found = re.search(r"\bline (\d+)", r.lines[0])
    assert found, f"no line number in {r.lines[0]!r}"
    assert int(found.group(1)) == line
    assert runs_in(tmp_path) == []


def test_deeply_nested_yaml_is_one_line_exit_2(tmp_path):
    """A hostile config nesting flow sequences thousands deep must not crash the loader."""
    write_classes_csv(tmp_path / "data.csv")
    (tmp_path / "deep.yaml").write_text("name: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    r = nn("train", "deep.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "deep.yaml")
    assert runs_in(tmp_path) == []


@pytest.mark.parametrize("layers", [["auto", 10 ** 20, "auto"], [10 ** 20, 3, "auto"], ["auto", 3, 10 ** 20]],
                         ids=["hidden", "inputs", "outputs"])
def test_absurd_layer_size_is_one_line_exit_2(tmp_path, layers):
    write_classes_csv(tmp_path / "data.csv")
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", layers=layers, epochs=2)
    r = nn("train", "cfg.yaml", "--no-plots", cwd=tmp_path)
    assert_usage_error(r, "model.layers")
    assert runs_in(tmp_path) == []


# ============================================================================= .npz files


def _run_command(cmd: str, run: Path) -> list:
    return {
        "eval": ["eval", run, "--no-plots"],
        "predict": ["predict", run, "data.csv", "-o", "pred.csv"],
        "gradcheck": ["gradcheck", run],
    }[cmd]


COMMANDS = ["eval", "predict", "gradcheck"]


@pytest.mark.parametrize("tensor", ["W1", "x_mean"])
@pytest.mark.parametrize("cmd", COMMANDS)
def test_model_npz_with_pickled_object_is_refused_without_running_code(trained, tmp_path, cmd, tensor):
    run = copy_trained(trained, tmp_path)
    marker = tmp_path / "PWNED2"
    arrays = npz_arrays(run / "model.npz")
    arrays[tensor] = np.array([OpenOnUnpickle(str(marker))], dtype=object)
    np.savez(run / "model.npz", **arrays)  # allow_pickle is on for writing
    before = sorted(p.name for p in run.iterdir())
    r = nn(*_run_command(cmd, run), cwd=tmp_path)
    assert_usage_error(r)
    assert tensor in r.lines[0] or "pickle" in r.lines[0].lower(), r.lines[0]
    assert not marker.exists(), "loading model.npz unpickled an object (ran code)"
    assert not (tmp_path / "pred.csv").exists()
    assert sorted(p.name for p in run.iterdir()) == before  # no eval report written
    # control: the payload is live, so the assertion above can fail
    with np.load(run / "model.npz", allow_pickle=True) as z:
        z[tensor]
    assert marker.exists()


@pytest.mark.parametrize("cmd", COMMANDS)
def test_truncated_model_npz_is_one_line_exit_2(trained, tmp_path, cmd):
    run = copy_trained(trained, tmp_path)
    data = (run / "model.npz").read_bytes()
    (run / "model.npz").write_bytes(data[: len(data) // 2])
    r = nn(*_run_command(cmd, run), cwd=tmp_path)
    assert_usage_error(r, "model.npz")
    assert not (tmp_path / "pred.csv").exists()


@pytest.mark.parametrize("cmd", COMMANDS)
def test_shape_mismatched_model_npz_names_the_tensor(trained, tmp_path, cmd):
    run = copy_trained(trained, tmp_path)
    arrays = npz_arrays(run / "model.npz")
    n_out, n_in = arrays["W1"].shape
    arrays["W1"] = np.zeros((n_out + 1, n_in), arrays["W1"].dtype)
    np.savez(run / "model.npz", **arrays)
    unseal(run)  # past the digest, to the shape check
    r = nn(*_run_command(cmd, run), cwd=tmp_path)
    assert_usage_error(r, "'W1'")
    assert not (tmp_path / "pred.csv").exists()


def test_init_npz_with_pickled_object_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "PWNED3"
    write_classes_csv(tmp_path / "data.csv")
    np.savez(tmp_path / "init.npz", W1=np.array([OpenOnUnpickle(str(marker))], dtype=object),
             b1=np.zeros(3), W2=np.zeros((1, 3)), b2=np.zeros(1))
    write_config(tmp_path / "cfg.yaml", train_csv="data.csv", target="label", layers=(2, 3, 1))
    r = nn("train", "cfg.yaml", "--no-plots", "--set", "model.init=init.npz", cwd=tmp_path)
    assert_usage_error(r, "init.npz")
    assert not marker.exists()
    assert runs_in(tmp_path) == []


# ============================================================================= run names


_OUTSIDE_RE = re.compile(r"(^x$)|(-x-[0-9a-f]{4}$)|(^b$)|(-b-[0-9a-f]{4}$)")


def _outside_entries(d: Path) -> set:
    try:
        return {n for n in os.listdir(d) if _OUTSIDE_RE.search(n)}
    except OSError:
        return set()


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", "ABS", "..", "x\n"],
                         ids=["dotdot", "tmp-abs", "slash", "abs-in-parent", "dotdot-only", "trailing-newline"])
def test_run_name_cannot_escape_the_runs_dir(trained, tmp_path, name):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(trained / "data.csv", work / "data.csv")
    shutil.copy(trained / "cfg.yaml", work / "cfg.yaml")
    (work / "runs").mkdir()
    if name == "ABS":
        name = str(tmp_path / "x")
    watched = [tmp_path, work, tmp_path.parent, Path("/tmp")]
    before = {d: _outside_entries(d) for d in watched}
    before_all = sorted(os.listdir(tmp_path))
    r = nn("train", "cfg.yaml", "--no-plots", "-q", "--name", name, cwd=work)
    assert_usage_error(r, "name")
    assert runs_in(work) == [], "a run directory was created for an invalid name"
    assert sorted(os.listdir(tmp_path)) == before_all
    for d in watched:
        assert _outside_entries(d) <= before[d], f"something named after the run appeared in {d}"
