"""The experiment config: schema, YAML loading, ``--set`` overrides and validation.

Configs are loaded with ``yaml.safe_load`` only (no tag can run code), validated once at
the door by pydantic (unknown keys rejected, ``lr: 1e-3`` coerced to 0.001), and every
problem is reported as one line naming the file and the key path, e.g.
``configs/x.yaml: train.lrr: unknown key; did you mean 'lr'?``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, create_model, field_validator, model_validator

from .activations import ACTIVATIONS, hidden_activations
from .errors import ConfigError, did_you_mean
from .formats import SHORT, short, shown
from .losses import LOSSES
from .model import INITS
from .optim import OPTIMIZERS, Hyper, hyperparameters
from .schedules import SCHEDULES, settings_of
from .tasks import TASKS, Task
from .yamlfile import dump_yaml, read_yaml, safe_load  # noqa: F401 (read_yaml, safe_load: part of this module's API)
from .yamlfile import AliasExpansionError

MAX_LAYER_SIZE = 1_000_000
NAME_RE = re.compile(r"[\w][\w.\-]*\Z")  # used with .match: anchored at both ends, no trailing newline


def _choice(value: Any, choices, what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {what} {shown(value)}{did_you_mean(value, choices)} (valid: {', '.join(choices)})")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ImputeConfig(_Section):
    numeric: Literal["median", "mean", "zero"] = Field("median", description="fill value of numeric columns: the training median, mean, or 0")
    categorical: Literal["most_frequent", "missing"] = Field(
        "most_frequent", description="fill value of text columns: the most frequent training value, or the category 'missing'")


class DataConfig(_Section):
    train: str = Field(description="training CSV; relative paths resolve against the current directory")
    target: Union[str, list[str]] = Field(description="target column, or a list for several regression targets")
    features: Optional[list[str]] = Field(None, description="feature columns (default: every column but targets and exclude)")
    exclude: list[str] = Field(default_factory=list, description="columns never used as features (IDs, notes)")
    categorical: list[str] = Field(default_factory=list, description="columns to one-hot even if they look numeric")
    val: Optional[str] = Field(None, description="validation CSV")
    val_split: Optional[float] = Field(None, gt=0, lt=1, description="fraction of train held out for validation")
    test: Optional[str] = Field(None, description="test CSV (what `nncli eval` uses by default)")
    test_split: Optional[float] = Field(None, gt=0, lt=1, description="fraction of train held out as the test set")
    standardize: bool = Field(True, description="z-score numeric features with training statistics")
    sep: Optional[str] = Field(None, description="column separator of the data files: one character, or tab "
                               "(default: tab for .tsv/.tab files, a comma otherwise)")

    @field_validator("sep")
    @classmethod
    def _sep(cls, v):
        from .formats import check_sep

        return None if v is None else check_sep(v)

    missing: Literal["error", "drop", "impute"] = Field(
        "error", description="missing cells in used columns: one error listing them, drop their rows, or impute them")
    impute: ImputeConfig = Field(default_factory=ImputeConfig, description="fill values for data.missing: impute")
    missing_indicator: bool = Field(False, description="data.missing: impute: add a 0/1 input per numeric column with training gaps")
    na_values: list[str] = Field(default_factory=list, description="extra cell texts that mean missing, besides the defaults")
    unknown_category: Literal["error", "ignore"] = Field(
        "error", description="a category unseen in training at eval/predict time: an error, or all zeros")

    @field_validator("na_values", mode="before")
    @classmethod
    def _na_values(cls, v):
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            v = [v]  # one token
        if isinstance(v, list):
            return [x if isinstance(x, str) or isinstance(x, bool) or x is None else str(x) for x in v]
        return v

    @model_validator(mode="after")
    def _missing_indicator(self):
        if self.missing_indicator and self.missing != "impute":
            raise ValueError("data.missing_indicator marks imputed cells: it needs data.missing: impute")
        return self
    standardize_target: bool = Field(True, description="loss mse with the identity output: z-score each target with training statistics; outputs, metrics and predictions stay in the original units")

    @field_validator("target")
    @classmethod
    def _target(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("needs at least one column name")
        return v

    @model_validator(mode="after")
    def _splits(self):
        if self.val is not None and self.val_split is not None:
            raise ValueError("give either data.val or data.val_split, not both")
        if self.test is not None and self.test_split is not None:
            raise ValueError("give either data.test or data.test_split, not both")
        if (self.val_split or 0) + (self.test_split or 0) >= 1:
            raise ValueError("data.val_split + data.test_split must leave training rows (sum < 1)")
        return self

    @property
    def targets(self) -> list[str]:
        return [self.target] if isinstance(self.target, str) else list(self.target)


class ModelConfig(_Section):
    layers: list[Union[int, Literal["auto"]]] = Field(
        description="sizes n_0 (inputs), hidden..., n_L (outputs); 'auto' first/last takes them from the data"
    )
    activation: Union[str, list[str]] = Field("relu", description="hidden activation, or one per hidden layer (default relu, as scikit-learn's MLP)")
    output: Optional[str] = Field(None, description="output activation; default follows the loss")
    init: str = Field("xavier", description="a name in nncli.model.INITS (seeded), or an .npz file of initial weights")
    dropout: Union[float, list[float]] = Field(
        0.0, description="inverted dropout rate p in [0, 1) of the hidden units while training, or one per hidden layer")

    @field_validator("dropout", mode="before")
    @classmethod
    def _dropout_rates(cls, v):
        for i, p in enumerate(v if isinstance(v, list) else [v]):
            where = f"entry {i}: " if isinstance(v, list) else ""
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
                raise ValueError(f"{where}{shown(p)} is not a dropout rate: give a number p with 0 <= p < 1 "
                                 "(the probability of dropping a hidden unit; 0: no dropout)")
        return v

    @model_validator(mode="after")
    def _dropout_layers(self):
        n = len(self.layers) - 2
        if isinstance(self.dropout, list) and len(self.dropout) != n:
            raise ValueError(f"model.dropout lists {len(self.dropout)} rates but model.layers has {n} hidden layers; "
                             "give one rate per hidden layer, or one rate for all")
        if n == 0 and not isinstance(self.dropout, list) and self.dropout > 0:
            raise ValueError("model.dropout: the network has no hidden layers to drop units of; remove model.dropout")
        return self

    @property
    def dropout_rates(self) -> list[float]:
        """p_l for each hidden layer."""
        n = len(self.layers) - 2
        return [float(self.dropout)] * n if not isinstance(self.dropout, list) else [float(p) for p in self.dropout]

    @field_validator("layers", mode="before")
    @classmethod
    def _layers(cls, v):
        if not isinstance(v, list):
            raise ValueError("must be a list of sizes such as [2, 4, 1] or [auto, 16, auto]")
        if len(v) < 2:
            raise ValueError("needs at least an input and an output size, e.g. [auto, auto]")
        for i, s in enumerate(v):
            if s == "auto":
                if 0 < i < len(v) - 1:
                    raise ValueError(f"entry {i}: 'auto' is only allowed for the first or last size")
                continue
            if isinstance(s, bool) or not isinstance(s, (int, float, str)):
                raise ValueError(f"entry {i}: {shown(s)} is not a size")
            try:
                n = int(s) if not isinstance(s, float) or s.is_integer() else None
            except ValueError:
                n = None
            if n is None:
                raise ValueError(f"entry {i}: {shown(s)} is not a whole number")
            if n < 1:
                raise ValueError(f"entry {i}: sizes must be at least 1 (got {n})")
            if n > MAX_LAYER_SIZE:
                raise ValueError(f"entry {i}: {n} units is more than nncli's limit of {MAX_LAYER_SIZE:,} per layer")
        return v

    @field_validator("activation")
    @classmethod
    def _activation(cls, v):
        for a in [v] if isinstance(v, str) else v:
            if a in ACTIVATIONS and not ACTIVATIONS[a].elementwise:
                raise ValueError(f"{a} is an output activation only (model.output); hidden layers need one of "
                                 + ", ".join(hidden_activations()))
            _choice(a, hidden_activations(), "activation")
        return v

    @field_validator("output")
    @classmethod
    def _output(cls, v):
        return v if v is None else _choice(v, tuple(ACTIVATIONS), "output activation")

    @field_validator("init")
    @classmethod
    def _init(cls, v):
        if v in INITS or v.endswith(".npz"):
            return v
        raise ValueError(f"unknown init {shown(v)}{did_you_mean(v, INITS)} (valid: {', '.join(INITS)}, or a path ending in .npz)")

    @model_validator(mode="after")
    def _hidden(self):
        if isinstance(self.activation, list) and len(self.activation) != len(self.layers) - 2:
            raise ValueError(
                f"model.activation lists {len(self.activation)} names but model.layers has "
                f"{len(self.layers) - 2} hidden layers; give one name per hidden layer"
            )
        return self

    @property
    def hidden_activations(self) -> list[str]:
        n = len(self.layers) - 2
        return [self.activation] * n if isinstance(self.activation, str) else list(self.activation)


class EarlyStopping(_Section):
    monitor: str = Field("val_loss", description="the metric watched: val_loss, val_accuracy or val_r2, loss, accuracy or r2")
    patience: int = Field(10, ge=1, description="epochs without improvement of the monitored metric before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest improvement (a decrease of a loss, an increase of accuracy or r2) that counts")


class ScheduleConfig(_Section):
    """train.schedule: a name of nncli.schedules.SCHEDULES, warmup, and that schedule's own keys
    (checked and filled with their defaults here; cosine's T_max defaults to train.epochs - warmup)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)
    name: str = Field("constant", description="constant, step, exponential, cosine, plateau or invscaling")
    warmup: int = Field(0, ge=0, description="epochs of linear warmup before the schedule")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data):
        if isinstance(data, str):  # schedule: cosine
            return {"name": data}
        if not isinstance(data, dict):
            raise ValueError(f"train.schedule: give a schedule name ({', '.join(SCHEDULES)}) or a mapping with name: "
                             f"and its keys (got {shown(data)})")
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        return _choice(v, tuple(SCHEDULES), "schedule")

    @model_validator(mode="after")
    def _settings(self):
        keys = settings_of(self.name)
        extra = self.__pydantic_extra__
        for k in list(extra):
            if k not in keys:
                valid = ", ".join(["name", "warmup", *keys])
                raise ValueError(f"train.schedule.{k}: schedule '{self.name}' has no key {k!r}"
                                 f"{did_you_mean(k, list(keys))} (valid keys here: {valid})")
        for k, key in keys.items():
            if extra.get(k) is None and key.default is None and k != "T_max":
                raise ValueError(f"train.schedule.{k}: schedule '{self.name}' needs {k} ({key.doc.split(': ', 1)[-1]})")
            try:
                extra[k] = None if extra.get(k, key.default) is None else key.check(k, extra.get(k, key.default))
            except ValueError as e:
                raise ValueError(f"train.schedule.{e}") from None
        return self


class _TrainCore(_Section):
    # the defaults are scikit-learn's MLPClassifier's (solver adam, learning_rate_init 1e-3, max_iter 200)
    optimizer: str = Field("adam", description="a name in nncli.optim.OPTIMIZERS")
    lr: float = Field(0.001, gt=0, description="learning rate eta")
    epochs: int = Field(200, ge=1)
    batch_size: Union[int, Literal["full"]] = Field(32, description="samples per gradient step, or 'full'")
    shuffle: bool = Field(True, description="reshuffle the training rows every epoch")

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, v):
        return _choice(v, tuple(OPTIMIZERS), "optimizer")

    @model_validator(mode="before")
    @classmethod
    def _optimizer_defaults(cls, data):
        """A hyperparameter left out takes the default of the optimizer the config names: a key
        shared by several optimizers (momentum, eps) has one field whose default is the first
        declaration's, but rmsprop's momentum is 0 and adagrad's eps 1e-10, as in torch.optim."""
        if isinstance(data, dict):
            chosen = OPTIMIZERS.get(data.get("optimizer", "adam")) if isinstance(data.get("optimizer", "adam"), str) else None
            if chosen is not None:
                data = {**{k: h.default for k, h in chosen.hyperparameters.items()}, **data}
        return data

    @model_validator(mode="after")
    def _schedule_defaults(self):
        _schedule_epochs(self)
        return self

    @model_validator(mode="after")
    def _optimizer_bounds(self):
        """The chosen optimizer's own bounds for a shared key (nesterov's momentum must be > 0)."""
        for k, h in OPTIMIZERS[self.optimizer].hyperparameters.items():
            v = getattr(self, k, None)
            if v is not None:
                try:
                    h.check(k, v)
                except ValueError:
                    raise ValueError(f"train.{k}: optimizer '{self.optimizer}' needs {k} in {h.interval()} (got {v})") from None
        return self

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch(cls, v):
        if isinstance(v, str) and v != "full":
            try:
                v = int(v)
            except ValueError:
                raise ValueError(f"must be a positive whole number or 'full' (got {shown(v)})") from None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 1:
            raise ValueError(f"must be at least 1 or 'full' (got {v})")
        return v


def _snapshots(v):
    """train.snapshots: 0 (off) or K >= 2 frames of training.gif (the first and the last epoch at least)."""
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or (v != 0 and v < 2):
        raise ValueError(f"must be 0 (off) or a whole number of frames of at least 2, e.g. 40 (got {shown(v)})")
    return v


def _class_weight(v):
    """train.class_weight: balanced, or label -> weight with labels as text (YAML's 1: 2.0 names label '1')."""
    import math

    if v is None or v == "balanced":
        return v
    if not isinstance(v, dict) or not v:
        raise ValueError(f"{shown(v)} is neither balanced nor a mapping label: weight")
    out = {}
    for label, w in v.items():
        key = str(label).lower() if isinstance(label, bool) else str(label)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise ValueError(f"train.class_weight.{key}: {shown(w)} is not a weight: give a positive number")
        if key in out:
            raise ValueError(f"train.class_weight.{key}: the label is given twice")
        out[key] = float(w)
    return out


MONITORS = {"loss": "min", "val_loss": "min", "accuracy": "max", "val_accuracy": "max", "r2": "max", "val_r2": "max"}


def _check_monitor(es: Optional[EarlyStopping], metric: Optional[str], has_val: bool) -> None:
    """train.early_stopping.monitor: a metric the run reports (``metric``: the task's, None while
    the loss is not known yet), and validation data for a val_ one."""
    if es is None:
        return
    m = es.monitor
    if m not in MONITORS:
        raise ValueError(f"train.early_stopping.monitor: unknown metric {shown(m)}{did_you_mean(m, list(MONITORS))} "
                         f"(valid: {', '.join(MONITORS)})")
    if m.startswith("val_") and not has_val:
        raise ValueError(f"train.early_stopping watches the validation {'loss' if m == 'val_loss' else m[4:]}: "
                         f"add data.val or data.val_split{'' if m == 'val_loss' else ', or monitor ' + m[4:]}")
    if metric is not None and m.removeprefix("val_") not in ("loss", metric):
        raise ValueError(f"train.early_stopping.monitor: this task reports {metric}, not {m.removeprefix('val_')}; "
                         f"monitor {'val_' if m.startswith('val_') else ''}{metric} or {'val_' if m.startswith('val_') else ''}loss")


def _schedule_epochs(train) -> None:
    """cosine's T_max, when not given: the epochs after the warmup (the rest of the run is one half cosine)."""
    s = getattr(train, "schedule", None)
    if s is not None and s.name == "cosine" and s.__pydantic_extra__.get("T_max") is None:
        s.__pydantic_extra__["T_max"] = max(1, train.epochs - s.warmup)


def _hyper_field(h: Hyper):
    """A config field for an optimizer's hyperparameter, with the bounds it declares."""
    if isinstance(h.default, bool):  # a switch: true or false
        return (bool, Field(h.default, description=h.doc))
    bounds = {}
    if h.low is not None:
        bounds["gt" if h.low_open else "ge"] = h.low
    if h.high is not None:
        bounds["lt" if h.high_open else "le"] = h.high
    return (float, Field(h.default, description=h.doc, **bounds))


class MlflowTrack(_Section):
    uri: Optional[str] = Field(None, description="MLflow tracking URI, e.g. sqlite:///mlflow.db or http://host:5000 (default: "
                               "MLFLOW_TRACKING_URI, else MLflow's own default sqlite:///mlflow.db in the current directory)")
    experiment: Optional[str] = Field(None, description="MLflow experiment (default: the config's name; a sweep's: the sweep's name)")


class TrackConfig(_Section):
    """track: where finished runs are also logged (nncli.tracking); not part of what a run computes."""

    mlflow: Optional[MlflowTrack] = Field(None, description="log each finished run to MLflow (the nncli[mlflow] extra)")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data):
        if data == "mlflow":  # track: mlflow
            return {"mlflow": {}}
        if isinstance(data, dict) and "mlflow" in data and data["mlflow"] is None:  # track: {mlflow: }
            return {**data, "mlflow": {}}
        return data


class Config(_Section):
    name: Optional[str] = Field(None, description="run name (letters, digits, . _ -); default: the config file's stem")
    seed: int = Field(0, ge=0, description="seeds the one random generator: init, splits, shuffling")
    data: DataConfig
    model: ModelConfig
    loss: Optional[str] = Field(None, description="bce, cross_entropy or mse; default: inferred from the training target (nncli.infer)")
    train: _TrainCore  # validated as schema()'s train section: these keys plus every optimizer's hyperparameters
    track: Optional[TrackConfig] = Field(None, description="also log each finished run to a tracker: track: {mlflow: {uri: ..., experiment: ...}}")
    _loss_note: Optional[str] = PrivateAttr(None)  # how an omitted loss was inferred (nncli.infer.resolve_loss)

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if v is not None and (not NAME_RE.match(v) or len(v) > 100):
            raise ValueError(f"{shown(v)} is not a valid run name: use letters, digits, '.', '_' and '-', not starting with '.' or '-'")
        return v

    @field_validator("loss")
    @classmethod
    def _loss(cls, v):
        return v if v is None else _choice(v, tuple(LOSSES), "loss")

    @model_validator(mode="after")
    def _pairing(self):
        # an omitted loss is inferred from the data (nncli.infer.resolve_loss); assigning it checks the pairing then
        loss = LOSSES[self.loss] if self.loss is not None else None
        out = self.model.output or (loss.default_output if loss else None)
        if loss and out not in loss.valid_outputs():
            raise ValueError(
                f"model.output '{out}' cannot be used with loss '{self.loss}' "
                f"(valid: {', '.join(loss.valid_outputs())})"
            )
        _check_monitor(self.train.early_stopping, TASKS[loss.task].metric if loss else None,
                       self.data.val is not None or self.data.val_split is not None)
        if loss and TASKS[loss.task].is_classifier and len(self.data.targets) > 1:
            raise ValueError(f"loss '{self.loss}' takes one target column; several targets need loss 'mse'")
        return self

    @model_validator(mode="after")
    def _class_weight_task(self):
        if getattr(self.train, "class_weight", None) is not None and self.loss is not None and not TASKS[LOSSES[self.loss].task].is_classifier:
            raise ValueError(f"train.class_weight: class weights apply to classification (loss bce or cross_entropy), "
                             f"not to loss '{self.loss}'; remove train.class_weight")
        return self

    # ------------------------------------------------------------------ derived
    @property
    def output(self) -> str:
        return self.model.output or LOSSES[self._named_loss()].default_output

    @property
    def task(self) -> Task:
        return TASKS[LOSSES[self._named_loss()].task]

    def _named_loss(self) -> str:
        if self.loss is None:  # a programming error: the data resolve an omitted loss before anything asks
            raise RuntimeError("the loss is not known yet: nncli.data.read_train_csv infers it from the training target")
        return self.loss

    def warnings(self) -> list[str]:
        """Things that are valid but probably not what the user wants (and a loss chosen for the user)."""
        out = [self._loss_note] if self._loss_note else []
        for where, names in (("model.activation", self.model.hidden_activations), ("model.output", [self.output])):
            flat = [a for a in dict.fromkeys(names) if ACTIVATIONS[a].zero_gradient]
            if flat:
                out.append(
                    f"{where}: '{flat[0]}' has derivative 0 wherever it exists, so no gradient passes "
                    "through it and the layers before it cannot learn (LECTURE.md section 3)"
                    + ("; use sigmoid, its soft version" if flat[0] == "step" else "")
                )
                break
        return out

    def to_dict(self) -> dict:
        d = self.model_dump(mode="json")
        if d.get("track") is None:  # no track section: config.yaml stays as it was before there was one
            d.pop("track", None)
        return d


def _train_section(hypers: dict[str, Hyper]) -> type[_TrainCore]:
    """The train section: the loop's keys, every registered optimizer's hyperparameters (as
    nncli.optim declares them), then the rest."""
    return create_model(
        "TrainConfig",
        __base__=_TrainCore,
        **{name: _hyper_field(h) for name, h in hypers.items()},
        l2=(float, Field(0.0, ge=0, description="weight decay: adds (l2/2) sum ||W_l||^2 to the loss")),
        dtype=(Literal["float32", "float64"], "float32"),
        early_stopping=(Optional[EarlyStopping], None),
        schedule=(Optional[ScheduleConfig], Field(None, description="learning-rate schedule per epoch (nncli.schedules); none: constant")),
        clip_norm=(Optional[float], Field(None, gt=0, description="rescale the gradient to this global L2 norm when it is larger")),
        checkpoint_every=(Optional[int], Field(None, ge=1, description="write a resumable checkpoint every K epochs")),
        snapshots=(Annotated[int, BeforeValidator(_snapshots)], Field(0, description="record the model K times and draw training.gif (nncli.animate); 0: off")),
        class_weight=(Annotated[Optional[Union[Literal["balanced"], dict[str, float]]], BeforeValidator(_class_weight)], Field(
            None, description="balanced (n / (k count_c), as scikit-learn) or a mapping label: weight; "
                              "the training loss becomes (1/n) sum_i w_{y_i} E_i (Keras' class_weight)")),
    )


_SCHEMA: tuple = (None, None)  # (the hyperparameters it was built for, the schema): one entry


def schema() -> type[Config]:
    """The Config schema configs are validated with: :class:`Config` whose train section offers
    the hyperparameters of the optimizers registered now (rebuilt when that set changes, so
    an optimizer registered at run time brings its ``train.<name>`` keys)."""
    global _SCHEMA
    hypers = hyperparameters()
    key = tuple(hypers.items())
    if _SCHEMA[0] != key:
        train = _train_section(hypers)
        _SCHEMA = (key, create_model("Config", __base__=Config, train=(train, Field(default_factory=train))))
    return _SCHEMA[1]


# ---------------------------------------------------------------------- loading


def format_validation_error(err: ValidationError, source: str, schema: type[BaseModel]) -> str:
    """One line for a pydantic error of any config schema: the source, the key path, the
    problem; an unknown key gets a "did you mean" and the valid keys of its section."""
    # an unknown key first: a misspelled key also makes its correct spelling "missing"
    errs = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    e = errs[0]
    loc = [short(p, 60) for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p in ("str", "int", "float", "list", "bool", "literal['auto']", "literal['full']")))]
    path = ".".join(loc)
    typ = e["type"]
    if typ == "extra_forbidden":
        parent = _section_for(schema, loc[:-1])
        valid = list(parent.model_fields) if parent else []
        msg = f"unknown key{did_you_mean(loc[-1], valid)}"
        # the correctly spelled key is then "missing" too: that is the same problem, not another
        import difflib

        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
        if close:
            twin = tuple(e["loc"][:-1]) + (close[0],)
            errs = [x for x in errs if not (x["type"] == "missing" and tuple(x["loc"]) == twin)]
        if valid:
            msg += f" (valid keys here: {', '.join(valid)})"
    elif typ == "missing":
        msg = "required key is missing"
    else:
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if path and msg.startswith(path + "."):  # the message names a more precise key itself
            path = ""
        if typ not in ("value_error",) and "input" in e and not isinstance(e["input"], (dict, list)):
            msg += f" (got {shown(e['input'])})"
    more = f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})" if len(errs) > 1 else ""
    # a validator's message quoting a whole value from the file stays one short line all the same
    return f"{source}: {path + ': ' if path else ''}{short(msg, 4 * SHORT)}{more}"


def _section_for(schema: type[BaseModel], loc: list[str]):
    model: Any = schema
    for part in loc:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        ann = field.annotation
        model = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.lr=0.1' -> (['train', 'lr'], 0.1); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {short(text)}: expected KEY=VALUE, e.g. --set train.lr=0.1")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {short(text)}: expected KEY=VALUE with a dotted key such as train.lr")
    try:
        value = safe_load(raw) if raw.strip() else None
    except RecursionError:
        raise ConfigError(f"--set {short(text)}: the value is nested too deeply") from None
    except AliasExpansionError as e:
        raise ConfigError(f"--set {short(text)}: {e.message}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {short(text)}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
    return key.split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        set_key(raw, path, value, f"--set {short(text)}")
    return raw


def set_key(raw: dict, path: list[str], value: Any, where: str) -> None:
    """raw[path[0]][path[1]]... = value, creating missing sections; ``where`` names the
    override in the error for a key below a value that is not a section (nncli.api takes
    overrides as a dict, {"train.lr": 0.1}, too)."""
    node = raw
    for i, part in enumerate(path[:-1]):
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            section = ".".join(path[: i + 1])
            raise ConfigError(f"{where}: '{section}' is not a section")
    node[path[-1]] = value


def config_from_dict(raw: Any, source: str, overrides: Optional[list[str]] = None) -> Config:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys (name, seed, data, model, loss, train), got {type(raw).__name__}")
    raw = apply_overrides(raw, list(overrides or []))
    try:
        model = schema()
        return model.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, model)) from None


def load_config(path: Path | str, overrides: Optional[list[str]] = None) -> Config:
    """Read, override and validate a config file; the name defaults to the file's stem."""
    raw = read_yaml(path)
    cfg = config_from_dict(raw, str(path), overrides)
    if cfg.name is None:
        stem = Path(path).stem
        cfg.name = stem if NAME_RE.match(stem) else "run"
    return cfg


def dump_config(cfg: Config) -> str:
    return dump_yaml(cfg.to_dict())
