"""scikit-learn estimators on nncli's core: :class:`NNClassifier` and :class:`NNRegressor`.

They are a window on the same pieces ``nncli train`` drives (nncli.job): a validated
:class:`~nncli.config.Config` built from the estimator's parameters, the inputs z-scored
by a :class:`~nncli.preprocess.Preprocessor` with the training rows' statistics, the seeded
:class:`~nncli.model.MLP`, the optimizer of nncli.optim and :class:`~nncli.trainer.Trainer`
with the loss of nncli.losses: bce with one sigmoid unit for two classes, softmax
cross-entropy for more, the quadratic cost (mse) for regression, as nncli's loss inference
chooses. The one generator ``np.random.default_rng(seed)`` is consumed in the same order
(validation rows, initial weights, shuffles), so an estimator fitted on the rows of a CSV
file learns the same W_l, b_l as ``nncli train`` with the same settings and seed.

Nothing is written, nothing is printed: a run directory is ``nncli train``'s business.

Parameters are nncli's config keys in scikit-learn style, each defaulting to nncli's default
(``train.lr`` is ``lr``, ``model.activation`` is ``activation``, ``data.standardize`` is
``standardize``, ``train.early_stopping.patience`` is ``patience``, ...). The hidden layers
are ``hidden_layer_sizes`` (scikit-learn's name); its default ``"auto"`` is the one hidden
layer ``nncli init`` writes: the power of two nearest to 2/3 x inputs + outputs, in 4..64.
An optimizer hyperparameter left at None takes the chosen optimizer's own default
(nncli.optim), as a config that omits it does.

Fitted attributes follow scikit-learn's MLP where they mean the same thing: ``coefs_[l-1]``
is W_l^T, of shape (n_{l-1}, n_l) like MLPClassifier's, nncli's W_l being (n_l, n_{l-1})
with W_l[i, j] connecting input j to neuron i (the lecture's W_ij); ``intercepts_[l-1]``
is b_l. They act on the standardised inputs (x - x_mean_) / x_std_ and, for a regressor
with ``standardize_target``, give z-scored targets (times y_std_ plus y_mean_ in the
targets' units). ``model_`` is the fitted network as an nncli MLP.

scikit-learn is an optional extra: ``import nncli`` never imports it; this module does.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import replace
from typing import Optional

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
except ImportError:  # (the tests import this module with scikit-learn hidden)
    raise ImportError("nncli.sklearn needs scikit-learn: pip install 'nncli[sklearn]'") from None
try:
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:  # validate_data and estimator tags came with scikit-learn 1.6
    import sklearn

    raise ImportError(f"nncli.sklearn needs scikit-learn 1.6 or newer (found {sklearn.__version__}): "
                      "pip install -U 'nncli[sklearn]'") from None

from .errors import NncliError

__all__ = ["NNClassifier", "NNRegressor"]

# the config key path of each parameter (messages of nncli's validation name the parameter)
_KEYS = {
    "model.layers": "hidden_layer_sizes", "model.activation": "activation", "model.init": "init",
    "model.dropout": "dropout", "data.standardize_target": "standardize_target", "data.standardize": "standardize",
    "data.val_split": "val_split", "train.early_stopping.monitor": "monitor",
    "train.early_stopping.patience": "patience", "train.early_stopping.min_delta": "min_delta",
    "train.early_stopping": "early_stopping", "model.output": "the output layer, which the loss sets",
}
_HYPERS = ("momentum", "beta1", "beta2", "eps", "alpha", "centered", "lr_decay", "initial_accumulator_value",
           "weight_decay")
_TRAIN = ("optimizer", "lr", "epochs", "batch_size", "shuffle", "l2", "dtype", "schedule", "clip_norm", "class_weight",
          *_HYPERS)


class _NNBase(BaseEstimator):
    """What both estimators share: the parameters, fit and the forward pass. Subclasses
    declare ``__init__`` (scikit-learn reads the parameters from its signature)."""

    _classifier = False

    # ------------------------------------------------------------------ the config
    def _config(self, n_inputs: int, n_outputs: int, loss: str, targets: list):
        """The nncli Config these parameters describe, for data of ``n_inputs`` columns and
        ``n_outputs`` output units; ValueError naming the parameter if one is invalid."""
        from .config import schema

        hidden = self._hidden_sizes(n_inputs, n_outputs)
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise ValueError(f"{type(self).__name__}: early_stopping must be True or False (got {self.early_stopping!r})")
        es = {"monitor": self.monitor, "patience": self.patience, "min_delta": self.min_delta} if self.early_stopping else None
        data = {"train": "<arrays given to fit>", "target": targets[0] if len(targets) == 1 else list(targets),
                "standardize": self.standardize}
        if self._uses_val():
            data["val_split"] = self.val_split
        if not self._classifier:
            data["standardize_target"] = self.standardize_target
        train = {k: getattr(self, k, None) for k in _TRAIN}
        train = {k: v for k, v in train.items() if v is not None or k in ("optimizer", "lr", "epochs", "batch_size")}
        if isinstance(train.get("class_weight"), dict):  # keys: labels as classes_ holds them, named as nncli's text labels
            train["class_weight"] = {_label_text(k, self.classes_): w for k, w in train["class_weight"].items()}
        train["early_stopping"] = es
        raw = {"name": "sklearn", "seed": self.seed, "data": data, "loss": loss,
               "model": {"layers": [n_inputs, *hidden, n_outputs], "activation": _plain(self.activation),
                         "init": self.init, "dropout": _plain(self.dropout)},
               "train": {k: _plain(v) for k, v in train.items()}}
        from pydantic import ValidationError

        try:
            model = schema()
            return model.model_validate(raw)
        except ValidationError as e:
            from .config import format_validation_error

            raise ValueError(self._param_message(format_validation_error(e, type(self).__name__, model))) from None
        except NncliError as e:
            raise ValueError(self._param_message(f"{type(self).__name__}: {e}")) from None

    def _param_message(self, msg: str) -> str:
        """A config-validation message with the key paths replaced by the parameter names."""
        for path in sorted(_KEYS, key=len, reverse=True):
            msg = msg.replace(path, _KEYS[path])
        for k in _TRAIN:
            msg = msg.replace(f"train.{k}", k)
        return msg.replace("; quote labels that YAML reads as numbers", "")

    def _hidden_sizes(self, n_inputs: int, n_outputs: int) -> list[int]:
        """hidden_layer_sizes as a list of widths ("auto": the one layer ``nncli init`` writes)."""
        h = self.hidden_layer_sizes
        if isinstance(h, str) and h == "auto":
            from .starter import _width

            return [_width(n_inputs, n_outputs)]
        sizes = [h] if isinstance(h, numbers.Integral) else h
        try:
            sizes = list(sizes)
        except TypeError:
            sizes = None
        if sizes is None or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(f"{type(self).__name__}: hidden_layer_sizes must be 'auto', a width, or a sequence of "
                             f"widths of at least 1 such as (16,) or (32, 32); () means no hidden layer "
                             f"(got {h!r})")
        return [int(s) for s in sizes]

    def _divergence_hint(self, cfg) -> str:
        """nncli.job.divergence_hint in parameter names: a lower lr, and the scalings that are off."""
        from .job import divergence_hint

        return divergence_hint(cfg, {"lr": "a lower learning rate (lr)", "standardize": "standardize=True",
                                     "standardize_target": "standardize_target=True"})

    def _uses_val(self) -> bool:
        """Whether training holds out val_split of the rows: early stopping on a val_ metric."""
        return bool(self.early_stopping) and isinstance(self.monitor, str) and self.monitor.startswith("val_")

    # ------------------------------------------------------------------ training
    def _fit(self, X: np.ndarray, Y_raw: np.ndarray, codes: Optional[np.ndarray], loss: str, n_outputs: int,
             targets: list, labels: Optional[list]):
        """Train on float64 inputs X (n, n_0); ``codes``: class codes (classifiers) for the
        stratified validation rows; ``Y_raw``: the targets as nncli encodes them below."""
        from .data import Split, split_indices
        from .job import build_model, build_optimizer
        from .losses import LOSSES, class_weights
        from .preprocess import Preprocessor, target_scaling_applies
        from .trainer import FitOptions, Trainer

        n = X.shape[0]
        cfg = self._config(X.shape[1], n_outputs, loss, targets)
        rng = np.random.default_rng(cfg.seed)
        # the one generator, consumed as nncli.job.prepare does: validation rows, initial weights, shuffles
        train_rows, val_rows = np.arange(n), None
        if cfg.data.val_split:
            if n < 2:
                raise ValueError(f"{type(self).__name__}: early stopping on {self.monitor} holds out validation "
                                 f"samples, and n_samples = {n}; give more samples or monitor='loss'")
            train_rows, val_rows = split_indices(n, cfg.data.val_split, rng, codes)
            if len(val_rows) == 0:  # too few samples for val_split of each class (nncli train stops there): one
                train_rows, val_rows = split_indices(n, 1 / n, rng)
        names = [str(f) for f in getattr(self, "feature_names_in_", [f"x{j}" for j in range(X.shape[1])])]
        task = cfg.task
        prep = Preprocessor(names, {}, targets, task, labels, np.zeros(0), np.ones(0), cfg.data.standardize)
        dtype = np.dtype(cfg.train.dtype)
        try:
            prep.fit_scaler(X, "X", train_rows)
            if target_scaling_applies(cfg):
                prep.fit_target_scaler(_frame(Y_raw, targets), "y", train_rows)

            def split(name, rows):
                if task.is_classifier:
                    Y = task.encode(codes[rows], len(labels), dtype)
                else:
                    Y = prep.transform_targets(_frame(Y_raw[rows], targets), "y", dtype=dtype, row_offset=rows)
                return Split(name, prep.scale(X, "X", dtype, rows=rows), Y)

            tr = split("train", train_rows)
            val = None if val_rows is None else split("val", val_rows)
            sizes = [int(s) for s in cfg.model.layers]
            model = build_model(cfg, sizes, rng)
            model.set_dropout(cfg.model.dropout_rates)
            cw = class_weights(getattr(cfg.train, "class_weight", None), labels, tr.Y)
        except NncliError as e:  # nncli's DataError / ConfigError: one line, as scikit-learn's ValueError
            raise ValueError(self._param_message(f"{type(self).__name__}: {e}")) from None
        trainer = Trainer(model, LOSSES[loss].weighted(cw), build_optimizer(cfg, model), task, tr, val, rng,
                          replace(FitOptions.from_config(cfg.train), divergence_hint=self._divergence_hint(cfg)))
        with warnings.catch_warnings():  # a validation R² of constant targets is NaN, which numpy's nanmean warns about
            warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
            history = list(trainer.epochs())
        res = trainer.result
        if res.status == "diverged":
            from sklearn.exceptions import ConvergenceWarning

            warnings.warn(f"{type(self).__name__}: {res.message}", ConvergenceWarning, stacklevel=3)

        self.layers_ = sizes
        self.coefs_ = [np.array(W.T) for W in model.W]  # W_l^T: (n_{l-1}, n_l), scikit-learn's layout
        self.intercepts_ = [np.array(b) for b in model.b]
        self.hidden_activations_ = list(model.hidden)
        self.out_activation_ = model.output
        self.x_mean_, self.x_std_ = prep.x_mean, prep.x_std
        self.n_layers_ = len(sizes)
        self.n_outputs_ = sizes[-1]
        self.loss_ = LOSSES[loss].name
        self.loss_curve_ = [r.loss for r in history]
        self.validation_scores_ = None if val is None else [r.val_metric for r in history]
        self.best_epoch_ = res.best_epoch
        self.n_iter_ = res.epochs_run
        self.status_ = res.status
        return prep

    # ------------------------------------------------------------------ the network
    @property
    def model_(self):
        """The fitted network as an nncli MLP: W_l (n_l, n_{l-1}) and b_l, the activations."""
        from .model import MLP

        check_is_fitted(self, "coefs_")
        return MLP([np.ascontiguousarray(c.T) for c in self.coefs_], self.intercepts_, self.hidden_activations_,
                   self.out_activation_)

    def _outputs(self, X) -> np.ndarray:
        """y_hat = a_L of the fitted network for X, after the training standardisation; in
        float64, as ``nncli predict`` computes it (a row gives the same bits in any batch)."""
        from .preprocess import Preprocessor

        check_is_fitted(self, "coefs_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        model = self.model_.astype(np.float64)
        # (x - x_mean_) / x_std_: without standardize, fit left x_mean_ 0 and x_std_ 1
        prep = Preprocessor([f"x{j}" for j in range(X.shape[1])], {}, [], None, None, self.x_mean_, self.x_std_)
        try:
            Xs = prep.scale(X, "X", np.float64)
        except NncliError as e:  # a value out of range
            raise ValueError(f"{type(self).__name__}: {e}") from None
        return model.predict(Xs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags


class NNClassifier(ClassifierMixin, _NNBase):
    """An nncli MLP classifier: bce with one sigmoid output unit for two classes, softmax
    cross-entropy with one unit per class for more (``classes_``: the sorted labels).

    Every parameter is the nncli config key of the same name (``hidden_layer_sizes``:
    model.layers between the input and output sizes; "auto" as ``nncli init``). Early
    stopping (``early_stopping=True``) watches ``monitor`` (val_loss, val_accuracy, loss or
    accuracy) and keeps the weights of the best epoch; a val_ metric is measured on
    ``val_split`` of the samples, held out stratified by class as data.val_split does (at
    least one sample, where nncli train would refuse a split that leaves none).
    """

    _classifier = True

    def __init__(self, hidden_layer_sizes="auto", *, activation="relu", optimizer="adam", lr=0.001, epochs=200,
                 batch_size=32, shuffle=True, l2=0.0, dropout=0.0, init="xavier", momentum=None, beta1=None,
                 beta2=None, eps=None, alpha=None, centered=None, lr_decay=None, initial_accumulator_value=None,
                 weight_decay=None, schedule=None, clip_norm=None, early_stopping=False, monitor="val_loss",
                 patience=10, min_delta=0.0, val_split=0.1, class_weight=None, standardize=True, dtype="float32",
                 seed=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.l2 = l2
        self.dropout = dropout
        self.init = init
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.alpha = alpha
        self.centered = centered
        self.lr_decay = lr_decay
        self.initial_accumulator_value = initial_accumulator_value
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.val_split = val_split
        self.class_weight = class_weight
        self.standardize = standardize
        self.dtype = dtype
        self.seed = seed

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and the labels y (n_samples,); returns self."""
        from sklearn.utils.multiclass import check_classification_targets

        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=False, multi_output=False)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y to learn from; got 1 class "
                             f"({self.classes_[0]!r})")
        labels = [str(c) for c in self.classes_]
        if len(set(labels)) < k:
            raise ValueError(f"{type(self).__name__}: the class labels {list(self.classes_)[:6]} are not distinct as text")
        loss = "bce" if k == 2 else "cross_entropy"
        self._fit(X, None, codes.reshape(-1), loss, 1 if k == 2 else k, ["y"], labels)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """P(class | x), (n_samples, n_classes) in the order of ``classes_``, float64."""
        from .tasks import TASKS

        A = self._outputs(X)  # (checks that the estimator is fitted first)
        return TASKS["binary" if len(self.classes_) == 2 else "multiclass"].probabilities(A)

    def predict(self, X) -> np.ndarray:
        """The class of each sample: y_hat >= 1/2 is classes_[1] (two classes), else the argmax."""
        from .tasks import TASKS

        A = self._outputs(X)
        return self.classes_[TASKS["binary" if len(self.classes_) == 2 else "multiclass"].predicted_codes(A)]


class NNRegressor(RegressorMixin, _NNBase):
    """An nncli MLP regressor: the quadratic cost (mse) with identity outputs, one per target
    column of y (n_samples,) or (n_samples, n_targets), trained on z-scored targets when
    ``standardize_target`` (nncli's default; the predictions are in y's own units)."""

    def __init__(self, hidden_layer_sizes="auto", *, activation="relu", optimizer="adam", lr=0.001, epochs=200,
                 batch_size=32, shuffle=True, l2=0.0, dropout=0.0, init="xavier", momentum=None, beta1=None,
                 beta2=None, eps=None, alpha=None, centered=None, lr_decay=None, initial_accumulator_value=None,
                 weight_decay=None, schedule=None, clip_norm=None, early_stopping=False, monitor="val_loss",
                 patience=10, min_delta=0.0, val_split=0.1, standardize=True, standardize_target=True,
                 dtype="float32", seed=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.l2 = l2
        self.dropout = dropout
        self.init = init
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.alpha = alpha
        self.centered = centered
        self.lr_decay = lr_decay
        self.initial_accumulator_value = initial_accumulator_value
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.val_split = val_split
        self.standardize = standardize
        self.standardize_target = standardize_target
        self.dtype = dtype
        self.seed = seed

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_targets); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, multi_output=True)
        Y = np.asarray(y, dtype=np.float64)
        Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
        targets = ["y"] if Y.shape[1] == 1 else [f"y{k}" for k in range(Y.shape[1])]
        prep = self._fit(X, Y, None, "mse", Y.shape[1], targets, None)
        self.y_mean_, self.y_std_ = (prep.y_mean, prep.y_std) if prep.scales_targets else (None, None)
        return self

    def predict(self, X) -> np.ndarray:
        """y_hat in y's units: (n_samples,) for one target, (n_samples, n_targets) for several."""
        A = np.asarray(self._outputs(X), dtype=np.float64)
        if self.y_mean_ is not None:
            A = A * self.y_std_ + self.y_mean_  # Preprocessor.unscale_targets
        return A.ravel() if A.shape[1] == 1 else A

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _plain(v):
    """Parameters as the YAML a config holds: tuples and numpy scalars as lists and numbers."""
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def _label_text(label, classes) -> str:
    """The text of the class in ``classes`` equal to ``label`` (class_weight={1: 2.0} names the
    class 1.0 of float labels), else the label's own text."""
    for c in classes:
        try:
            if c == label:
                return str(c)
        except (TypeError, ValueError):
            continue
    return str(label)


def _frame(Y: np.ndarray, targets: list):
    """Regression targets as the table the Preprocessor reads them from."""
    import pandas as pd

    return pd.DataFrame(np.asarray(Y, dtype=np.float64).reshape(len(Y), -1), columns=targets)
