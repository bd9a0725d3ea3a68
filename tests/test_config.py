"""nncli.config: loading, defaults, --set overrides, the train keys the optimizers declare,
one-line validation messages, and every rejected config.

Rejected configs go through the CLI: exit code 2, exactly one line on stderr naming the key
(with a "did you mean" for names), no traceback, nothing written. Every case runs in this
process (``nn``); a few also run as a real ``python -m nncli`` subprocess (``cli``), started
together, and must give the same exit status and output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pydantic import ValidationError

from helpers import NO_PLOTS, XOR_YAML, Res, cli_many, nn, runs_in, setup_workdir, xor_yaml
from nncli.config import (Config, schema, apply_overrides, config_from_dict, dump_config, format_validation_error,
                          load_config, parse_override)
from nncli.errors import ConfigError

# ----------------------------------------------------------------------------- in-process loading


def test_load_xor_config_and_defaults(workdir):
    cfg = load_config(workdir / "configs" / "xor.yaml")
    assert isinstance(cfg, Config)
    assert cfg.name == "xor" and cfg.seed == 0
    assert cfg.data.train == "datasets/xor.csv" and cfg.data.target == "y"
    assert cfg.model.layers == [2, 4, 1]
    assert cfg.model.activation == "tanh" and cfg.output == "sigmoid"
    assert cfg.loss == "bce"
    t = cfg.train
    assert (t.optimizer, t.lr, t.epochs, t.batch_size) == ("sgd", 0.5, 2000, 4)
    # README defaults
    assert t.shuffle is True and t.l2 == 0 and t.dtype == "float32"
    assert t.momentum == 0.9 and t.beta1 == 0.9 and t.beta2 == 0.999 and t.eps == 1e-8
    assert cfg.model.init == "xavier" and cfg.data.standardize is True
    assert cfg.data.exclude == [] and cfg.data.categorical == []


def test_output_defaults_follow_the_loss(tmp_path):
    for loss, out in (("bce", "sigmoid"), ("cross_entropy", "softmax"), ("mse", "identity")):
        p = tmp_path / f"{loss}.yaml"
        p.write_text(xor_yaml(("loss: bce", f"loss: {loss}"), drop=("  output:",)))
        assert load_config(p).output == out


def test_name_defaults_to_file_stem(tmp_path):
    p = tmp_path / "my-experiment.yaml"
    p.write_text(xor_yaml(drop=("name:",)))
    assert load_config(p).name == "my-experiment"


def test_default_batch_size_and_activation(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(xor_yaml(drop=("  batch_size:", "  activation:")))
    cfg = load_config(p)
    assert cfg.train.batch_size == 32 and cfg.model.activation == "relu"  # scikit-learn's default (issue 15)


def test_lr_in_exponent_notation_is_a_float(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(xor_yaml(("lr: 0.5", "lr: 1e-3")))
    assert yaml.safe_load(p.read_text())["train"]["lr"] == "1e-3"  # YAML 1.1 reads a string
    cfg = load_config(p)
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 0.001
    assert yaml.safe_load(dump_config(cfg))["train"]["lr"] == 0.001


def test_overrides_are_read_as_yaml(tmp_path):
    cfg = load_config(XOR_YAML, ["train.lr=0.1", "model.layers=[2, 8, 8, 1]", "train.batch_size=full",
                                 "model.activation=[relu, sigmoid]", "train.epochs=7", "seed=5",
                                 "data.val_split=0.25", "train.optimizer=adam"])
    assert cfg.train.lr == 0.1
    assert cfg.model.layers == [2, 8, 8, 1]
    assert cfg.train.batch_size == "full"
    assert cfg.model.hidden_activations == ["relu", "sigmoid"]
    assert cfg.train.epochs == 7 and cfg.seed == 5
    assert cfg.data.val_split == 0.25 and cfg.train.optimizer == "adam"


def test_override_creates_missing_section():
    cfg = load_config(XOR_YAML, ["data.val_split=0.5", "train.early_stopping.patience=3"])
    assert cfg.train.early_stopping is not None and cfg.train.early_stopping.patience == 3
    assert cfg.train.early_stopping.min_delta == 0


def test_override_lr_exponent_string():
    assert load_config(XOR_YAML, ["train.lr=1e-3"]).train.lr == 0.001


def test_every_float_key_accepts_exponent_notation():
    cfg = load_config(XOR_YAML, ["train.l2=1e-4", "train.eps=1e-6", "train.momentum=9e-1",
                                 "train.beta2=9.99e-1", "data.val_split=2.5e-1"])
    assert (cfg.train.l2, cfg.train.eps, cfg.train.momentum, cfg.train.beta2, cfg.data.val_split) == (
        1e-4, 1e-6, 0.9, 0.999, 0.25)


def test_last_override_wins():
    assert load_config(XOR_YAML, ["train.lr=0.1", "train.lr=0.2"]).train.lr == 0.2


@pytest.mark.parametrize("text", ["train.lr", "=0.1", "train..lr=1", ".lr=1"])
def test_parse_override_rejects_malformed(text):
    with pytest.raises(ConfigError) as e:
        parse_override(text)
    assert "\n" not in str(e.value)


def test_parse_override_values():
    assert parse_override("train.lr=0.1") == (["train", "lr"], 0.1)
    assert parse_override("model.layers=[2, 3, 1]") == (["model", "layers"], [2, 3, 1])
    assert parse_override("train.shuffle=false") == (["train", "shuffle"], False)
    assert parse_override("name=a=b") == (["name"], "a=b")


def test_override_into_a_scalar_is_rejected():
    raw = yaml.safe_load(XOR_YAML.read_text())
    with pytest.raises(ConfigError):
        apply_overrides(raw, ["loss.x=1"])


def test_dump_config_round_trips():
    cfg = load_config(XOR_YAML, ["train.lr=1e-3", "model.activation=[sigmoid]"])
    text = dump_config(cfg)
    again = config_from_dict(yaml.safe_load(text), "dumped")
    assert again.to_dict() == cfg.to_dict()
    assert "layers: [2, 4, 1]" in text


def test_step_hidden_warns_in_config():
    cfg = load_config(XOR_YAML, ["model.activation=step"])
    ws = cfg.warnings()
    assert len(ws) == 1 and "step" in ws[0] and "derivative 0" in ws[0]
    assert load_config(XOR_YAML).warnings() == []


def test_every_config_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(xor_yaml(("  lr: 0.5", "  lrr: 0.5")))
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    msg = str(e.value)
    assert "\n" not in msg and "train.lrr" in msg and "bad.yaml" in msg


# ----------------------------------------------------------------------------- optimizer hyperparameters

# the train keys that are not an optimizer's hyperparameter
LOOP_KEYS = {"optimizer", "lr", "epochs", "batch_size", "shuffle", "l2", "dtype", "early_stopping", "checkpoint_every",
             "class_weight", "schedule", "clip_norm", "snapshots"}

# name: (default, accepted values, rejected values): the README's ranges, written out here
HYPER_EXPECTED = {
    "momentum": (0.9, [0.0, 0.5, 0.999], [1.0, 1.5, -0.1]),
    "beta1": (0.9, [0.0, 0.99], [1.0, -0.01]),
    "beta2": (0.999, [0.0, 0.9999], [1.0, -1.0]),
    "eps": (1e-8, [1e-12, 1.0, 10.0], [0.0, -1e-8]),
    # issue 15: rmsprop, adagrad, adamw (the field's default is the first declaration's; the
    # optimizer a config names fills in its own: tests/test_optim.py)
    "alpha": (0.99, [0.0, 0.5, 0.999], [1.0, -0.1]),
    "centered": (False, [True, False], [0.5, 2]),
    "lr_decay": (0.0, [0.0, 0.5, 10.0], [-0.1, -1.0]),
    "initial_accumulator_value": (0.0, [0.0, 0.1, 100.0], [-0.1]),
    "weight_decay": (0.01, [0.0, 0.5, 2.0], [-0.01]),
}


def test_train_config_offers_exactly_the_optimizers_declared_hyperparameters():
    from nncli.optim import OPTIMIZERS, hyperparameters

    declared = {}
    for cls in OPTIMIZERS.values():
        for name, h in cls.hyperparameters.items():
            declared.setdefault(name, h)
    assert hyperparameters() == declared
    assert set(schema().model_fields["train"].annotation.model_fields) - LOOP_KEYS == set(declared) == set(HYPER_EXPECTED)
    assert set(OPTIMIZERS["sgd"].hyperparameters) == set()
    assert set(OPTIMIZERS["momentum"].hyperparameters) == {"momentum"}
    assert set(OPTIMIZERS["adam"].hyperparameters) == {"beta1", "beta2", "eps"}
    for name, h in declared.items():
        assert schema().model_fields["train"].annotation.model_fields[name].default == h.default == HYPER_EXPECTED[name][0], name


@pytest.mark.parametrize("name", sorted(HYPER_EXPECTED))
def test_hyperparameter_defaults_and_bounds(name):
    """The config accepts and rejects exactly what the optimizer's constructor does."""
    import numpy as np

    from nncli.optim import OPTIMIZERS

    default, accepted, rejected = HYPER_EXPECTED[name]
    assert getattr(load_config(XOR_YAML).train, name) == default
    owner = next(cls for cls in OPTIMIZERS.values() if name in cls.hyperparameters)
    params = [np.zeros(3)]
    assert getattr(owner(params, 0.1), name) == default
    for v in accepted:
        assert getattr(load_config(XOR_YAML, [f"train.{name}={v!r}"]).train, name) == v
        assert getattr(owner(params, 0.1, **{name: v}), name) == v
    for v in rejected:
        with pytest.raises(ConfigError) as e:
            load_config(XOR_YAML, [f"train.{name}={v!r}"])
        msg = str(e.value)
        assert "\n" not in msg and f"train.{name}:" in msg and repr(v).rstrip("0").rstrip(".") in msg, msg
        with pytest.raises(ValueError):
            owner(params, 0.1, **{name: v})


def test_an_optimizer_refuses_a_hyperparameter_it_does_not_declare():
    import numpy as np

    from nncli.optim import OPTIMIZERS

    with pytest.raises(TypeError, match="momentum"):
        OPTIMIZERS["sgd"]([np.zeros(2)], 0.1, momentum=0.5)
    with pytest.raises(TypeError, match="beta1"):
        OPTIMIZERS["momentum"]([np.zeros(2)], 0.1, beta1=0.5)
    # but a config for sgd may still set them: they are used only by the optimizer that declares them
    cfg = load_config(XOR_YAML, ["train.momentum=0.5", "train.beta1=0.5"])
    assert cfg.train.optimizer == "sgd" and cfg.train.momentum == 0.5


# ----------------------------------------------------------------------------- messages of any schema


def _validation_error(schema, raw) -> ValidationError:
    with pytest.raises(ValidationError) as e:
        schema.model_validate(raw)
    return e.value


def test_format_validation_error_of_a_sweep_lists_the_sweep_keys():
    from nncli.sweep import SweepSpec

    err = _validation_error(SweepSpec, {"base": "configs/xor.yaml", "gird": {"train.lr": [0.1]}})
    assert format_validation_error(err, "s.yaml", SweepSpec) == (
        "s.yaml: gird: unknown key; did you mean 'grid'? (valid keys here: base, name, grid, random, metric, plots, search, params, prune)")
    err = _validation_error(SweepSpec, {"base": "b.yaml", "random": {"sample": 3, "params": {}}})
    assert format_validation_error(err, "s.yaml", SweepSpec) == (
        "s.yaml: random.sample: unknown key; did you mean 'samples'? (valid keys here: samples, seed, params)")
    err = _validation_error(SweepSpec, {"grid": {"train.lr": [0.1]}})
    assert format_validation_error(err, "s.yaml", SweepSpec) == "s.yaml: base: required key is missing"


def test_sweep_file_with_an_unknown_key_is_one_line_naming_the_sweep_keys(tmp_path):
    from nncli.sweep import load_sweep

    p = tmp_path / "s.yaml"
    p.write_text("base: configs/xor.yaml\nseed: 3\ngrid:\n  train.lr: [0.1]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_sweep(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{p}: seed: unknown key"), msg
    assert "(valid keys here: base, name, grid, random, metric, plots, search, params, prune)" in msg
    assert "data" not in msg and "model" not in msg, "the config's keys are not the sweep's"


def test_format_validation_error_of_a_config_is_unchanged():
    raw = yaml.safe_load(xor_yaml(("  lr: 0.5", "  lrr: 0.5")))
    err = _validation_error(schema(), raw)
    msg = format_validation_error(err, "c.yaml", schema())
    assert msg.startswith("c.yaml: train.lrr: unknown key; did you mean 'lr'? (valid keys here: optimizer, lr, epochs, ")
    assert "momentum, beta1, beta2, eps" in msg and "(and " not in msg, msg  # lr "missing" is the same problem


# ----------------------------------------------------------------------------- through the CLI

VALID_ACTIVATIONS = ["identity", "step", "sigmoid", "tanh", "relu", "leaky_relu"]

# id: (substitutions in xor.yaml, extra CLI args, regexes the one-line message must match)
REJECTED = {
    "misspelled_key": ([("  lr: 0.5", "  lrr: 0.5")], [], [r"c\.yaml", r"train\.lrr", r"did you mean 'lr'"]),
    "misspelled_top_key": ([("seed: 0", "sed: 0")], [], [r"\bsed\b", r"did you mean 'seed'"]),
    "misspelled_section_key": ([("  layers: [2, 4, 1]", "  layer: [2, 4, 1]")], [],
                               [r"model\.layer\b", r"did you mean 'layers'"]),
    "unknown_activation": ([("activation: tanh", "activation: tahn")], [],
                           [r"model\.activation", r"tahn", r"did you mean 'tanh'"] + [rf"\b{a}\b" for a in VALID_ACTIVATIONS]),
    "unknown_loss": ([("loss: bce", "loss: bcee")], [], [r"\bloss\b", r"bcee", r"did you mean 'bce'", r"cross_entropy", r"\bmse\b"]),
    "unknown_optimizer": ([("optimizer: sgd", "optimizer: adamm")], [],
                          [r"train\.optimizer", r"adamm", r"did you mean 'adam'", r"\bsgd\b", r"momentum"]),
    "unknown_output": ([("output: sigmoid", "output: sigmod")], [], [r"model\.output", r"did you mean 'sigmoid'"]),
    "wrong_type_epochs": ([("epochs: 2000", "epochs: many")], [], [r"train\.epochs", r"many"]),
    "negative_lr": ([("lr: 0.5", "lr: -0.1")], [], [r"train\.lr", r"-0\.1"]),
    "zero_epochs": ([("epochs: 2000", "epochs: 0")], [], [r"train\.epochs"]),
    "batch_size_zero": ([("batch_size: 4 ", "batch_size: 0 ")], [], [r"train\.batch_size"]),
    "val_split_too_big": ([("  target: y ", "  val_split: 1.5\n  target: y ")], [], [r"data\.val_split", r"1\.5"]),
    "layers_with_zero": ([("[2, 4, 1]", "[2, 0, 1]")], [], [r"model\.layers"]),
    "layers_empty": ([("[2, 4, 1]", "[]")], [], [r"model\.layers"]),
    "output_invalid_for_loss": ([("output: sigmoid", "output: relu")], [], [r"\brelu\b", r"\bbce\b", r"sigmoid"]),
    "activation_list_length": ([("activation: tanh", "activation: [tanh, tanh]")], [], [r"model\.activation", r"\b2\b", r"\b1\b"]),
    "missing_data_file": ([("datasets/xor.csv", "datasets/nope.csv")], [], [r"data\.train", r"datasets/nope\.csv", r"not found|no such|missing"]),
    "missing_target_column": ([("target: y ", "target: label ")], [], [r"'label'|\blabel\b", r"x1"]),
    "layers_disagree_with_data": ([("[2, 4, 1]", "[3, 4, 1]")], [], [r"model\.layers", r"data (gives|needs|has|provides) 2\b"]),
    "outputs_disagree_with_data": ([("[2, 4, 1]", "[2, 4, 2]")], [], [r"model\.layers", r"\b1\b"]),
    # loss is optional (issue 13); train.lr, epochs, optimizer and model.activation have defaults (issue 15)
    "missing_required_key": ([("  target: y ", "  targt: y ")], [], [r"data\.targt", r"did you mean 'target'"]),
    "missing_layers": ([("  layers: [2, 4, 1]", "  # no layers")], [], [r"model\.layers\b", r"missing|required"]),
    "yaml_syntax_error": ([("  lr: 0.5", "  lr: [0.5")], [], [r"c\.yaml", r"line \d+"]),
    "python_tag": ([("name: xor", 'name: !!python/object/apply:os.system ["touch PWNED"]')], [], [r"c\.yaml", r"python|tag|unsafe|refused"]),
    "run_name_escapes": ([], ["--name", "../x"], [r"\.\./x", r"name"]),
    "set_without_equals": ([], ["--set", "train.lr"], [r"train\.lr", r"="]),
    "set_unknown_key": ([], ["--set", "train.lrr=0.1"], [r"train\.lrr", r"did you mean 'lr'"]),
    "early_stopping_without_val": ([], ["--set", "train.early_stopping.patience=3"], [r"early_stopping", r"val"]),
}

ACCEPTED = {
    "lr_exponent_in_file": ([("lr: 0.5", "lr: 1e-3")], ["--set", "train.epochs=3", *NO_PLOTS]),
    "lr_exponent_in_set": ([], ["--set", "train.lr=1e-3", "--set", "train.epochs=3", *NO_PLOTS]),
    "step_hidden": ([("activation: tanh", "activation: step")], ["--set", "train.epochs=3", *NO_PLOTS]),
}


# these also go through a real `python -m nncli` subprocess: the in-process runs must agree with it
SUBPROCESS_CASES = ["python_tag", "yaml_syntax_error", "missing_data_file"]


def _case_dir(base: Path, case: str, subs) -> Path:
    d = setup_workdir(base / case)
    (d / "configs" / "c.yaml").write_text(xor_yaml(*subs), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory) -> dict[str, tuple[Path, Res]]:
    """Every case of REJECTED and ACCEPTED, each in its own work directory, run in this process."""
    base = tmp_path_factory.mktemp("cli_cases")
    cases = {k: v[:2] for k, v in REJECTED.items()}
    cases.update(ACCEPTED)
    out = {}
    for k, (subs, args) in cases.items():
        d = _case_dir(base, k, subs)
        out[k] = d, nn("train", "configs/c.yaml", *args, cwd=d)
    return out


@pytest.fixture(scope="module")
def subprocess_results(tmp_path_factory) -> dict[str, tuple[Path, Res]]:
    """SUBPROCESS_CASES through real ``python -m nncli`` processes, started together."""
    base = tmp_path_factory.mktemp("cli_subprocess_cases")
    dirs = {k: _case_dir(base, k, REJECTED[k][0]) for k in SUBPROCESS_CASES}
    res = cli_many([(["train", "configs/c.yaml", *REJECTED[k][1]], dirs[k]) for k in SUBPROCESS_CASES])
    return {k: (dirs[k], r) for k, r in zip(SUBPROCESS_CASES, res)}


def check_rejected(case, d, r: Res):
    patterns = REJECTED[case][2]
    assert not r.tb, r.show()
    assert "Traceback" not in r.err, r.err
    assert r.rc == 2, r.show()
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert r.out == b""
    msg = lines[0]
    for pat in patterns:
        assert re.search(pat, msg, flags=re.IGNORECASE), f"{pat!r} not in {msg!r}"
    assert runs_in(d) == [], "a rejected config must not create a run directory"
    assert not (d / "PWNED").exists()


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_rejected_config(cli_results, case):
    check_rejected(case, *cli_results[case])


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_rejected_config_subprocess(subprocess_results, case):
    check_rejected(case, *subprocess_results[case])


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_in_process_run_agrees_with_subprocess(cli_results, subprocess_results, case):
    (_, a), (_, b) = cli_results[case], subprocess_results[case]
    assert (a.rc, a.out, a.err) == (b.rc, b.out, b.err)


@pytest.mark.parametrize("results", ["cli_results", "subprocess_results"])
def test_python_tag_runs_no_code(request, results):
    d, r = request.getfixturevalue(results)["python_tag"]
    assert r.rc == 2
    assert not (d / "PWNED").exists()
    assert not (d / "configs" / "PWNED").exists()


def test_unknown_activation_suggests_one_name(cli_results):
    # the message for an unknown activation lists the choices as well as the suggestion
    msg = cli_results["unknown_activation"][1].err
    assert msg.count("did you mean") == 1


@pytest.mark.parametrize("case", ["lr_exponent_in_file", "lr_exponent_in_set"])
def test_lr_exponent_is_accepted_and_saved_as_float(cli_results, case):
    d, r = cli_results[case]
    assert r.rc == 0, r.show()
    run = Path(d, r.text.strip())
    assert run.is_dir() and runs_in(d) == [run]
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(saved["train"]["lr"], float) and saved["train"]["lr"] == 0.001
    assert saved["train"]["epochs"] == 3


def test_step_hidden_trains_with_a_warning(cli_results):
    d, r = cli_results["step_hidden"]
    assert r.rc == 0, r.show()
    assert "Traceback" not in r.err
    warn = [line for line in r.err.splitlines() if "warning" in line.lower()]
    assert len(warn) == 1, r.err
    assert "step" in warn[0]
    assert re.search(r"derivative (is )?(0|zero)|zero (derivative|gradient)", warn[0], re.IGNORECASE), warn[0]
    summary = json.loads((Path(d, r.text.strip()) / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 3



def test_omitted_training_keys_take_scikit_learns_mlp_defaults(tmp_path):
    """train.optimizer adam, train.lr 0.001, train.epochs 200, model.activation relu, as
    scikit-learn's MLPClassifier(solver='adam', learning_rate_init=0.001, max_iter=200,
    activation='relu'); the whole train section may be left out."""
    sklearn = pytest.importorskip("sklearn.neural_network")
    ref = sklearn.MLPClassifier()
    (tmp_path / "c.yaml").write_text("data:\n  train: d.csv\n  target: y\nmodel:\n  layers: [auto, 8, auto]\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.epochs, cfg.model.activation) == \
        (ref.solver, ref.learning_rate_init, ref.max_iter, ref.activation)
    assert (cfg.train.beta1, cfg.train.beta2, cfg.train.eps) == (ref.beta_1, ref.beta_2, ref.epsilon)
