"""The loss a training target asks for, when the config does not name one.

One rule, used by training (a config without ``loss``, resolved in
:func:`nncli.data.read_train_csv`) and by ``nncli init``. Missing cells are ignored.

- Several target columns: ``mse`` (only regression takes several targets).
- Text labels (some cell is not a number): two distinct values ``bce``, more ``cross_entropy``.
- Numbers: ``mse`` when some value is not a whole number. Whole numbers are class labels when
  they take exactly two distinct values (``bce``), or at most :data:`MAX_CLASSES` distinct
  values with at least :data:`MIN_ROWS_PER_CLASS` rows per value on average
  (``cross_entropy``): codes such as 0-9 or 1-5 on a table of a few hundred rows. More
  distinct values than that (counts, prices, years) are a quantity: ``mse``.
- A column with no value, or a single distinct value, is an error; so is a column most of
  whose cells are numbers of a quantity (some not whole, or more than :data:`MAX_CLASSES`
  distinct) but with a few cells that are not numbers (a typo, or a missing-value token such
  as ``?``: declare it in ``data.na_values``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .csvio import cell
from .errors import ConfigError, DataError

MAX_CLASSES = 20  # at most this many distinct whole numbers are read as class labels...
MIN_ROWS_PER_CLASS = 5  # ...and only with at least this many rows per distinct value on average


@dataclass(frozen=True)
class Inference:
    loss: str  # bce, cross_entropy or mse
    reason: str  # e.g. "2 classes ('no', 'yes') in column 'y'"
    n_classes: int = 0  # classes of a classifier (0 for mse)

    def message(self) -> str:
        return f"loss not given: inferred {self.loss} from {self.reason}; name the loss in the config to choose another"


def _shown(labels: list[str], n: int = 4) -> str:
    from .columns import sort_labels

    labels = sort_labels(labels)
    return ", ".join(repr(x) for x in labels[:n]) + (", ..." if len(labels) > n else "")


def infer_loss(df, targets: list[str], source: str) -> Inference:
    """The loss for the target column(s) ``targets`` of ``df`` (text or numbers), by the rule above.

    ``source`` names the file in errors (one line naming the column, and the row where there is one).
    """
    if len(targets) > 1:
        return Inference("mse", f"{len(targets)} target columns ({', '.join(map(repr, targets))}): several targets are regression")
    t = targets[0]
    s = df[t]
    filled = s.dropna()
    if len(filled) == 0:
        raise DataError(f"{source}: target column '{t}' has no values (every cell is missing)")
    import pandas as pd

    texts = filled.astype(str) if not pd.api.types.is_bool_dtype(filled) else filled.map({True: "True", False: "False"})
    numeric = pd.api.types.is_numeric_dtype(filled) and not pd.api.types.is_bool_dtype(filled)
    nums = filled.astype(np.float64) if numeric else pd.to_numeric(texts, errors="coerce")
    is_num = nums.notna().to_numpy()
    labels = list(dict.fromkeys(texts.tolist()))
    if len(labels) == 1:
        raise DataError(f"{source}: target column '{t}' has a single value ({labels[0]!r}); there is nothing to learn")
    where = f"column '{t}'"
    if is_num.all():
        quantity = _quantity(nums.to_numpy(dtype=np.float64), texts, len(labels), len(filled), where)
        if quantity:
            return Inference("mse", quantity)
        kind = "distinct whole numbers"
        if len(labels) == 2:
            return Inference("bce", f"2 {kind} ({_shown(labels)}) in {where}", 2)
        return Inference("cross_entropy", f"{len(labels)} {kind} ({_shown(labels)}) in {where} of {len(filled)} rows "
                         f"({MAX_CLASSES} or fewer values, {MIN_ROWS_PER_CLASS} or more rows per value: class labels)",
                         len(labels))
    if is_num.mean() > 0.5:  # mostly numbers: a quantity with a few stray cells is not a set of labels
        v = nums.to_numpy(dtype=np.float64)[is_num]
        if not (np.isfinite(v) & (v == np.round(v))).all() or len(np.unique(v)) > MAX_CLASSES:
            i = int(np.flatnonzero(~is_num)[0])
            row = int(np.flatnonzero(s.notna().to_numpy())[i])
            raise DataError(f"{cell(source, row, t)}: {texts.iloc[i]!r} is not a number, but the rest of the target column "
                            "is numbers of a quantity: fix the cell, declare it missing (data.na_values), or name the loss")
    if len(labels) == 2:
        return Inference("bce", f"2 classes ({_shown(labels)}) in {where}", 2)
    return Inference("cross_entropy", f"{len(labels)} classes ({_shown(labels)}) in {where}", len(labels))


def _quantity(v: np.ndarray, texts, k: int, n: int, where: str):
    """Why numbers ``v`` (texts ``texts``, ``k`` distinct in ``n`` rows) are a quantity, or None for class codes."""
    whole = np.isfinite(v) & (v == np.round(v))
    if not whole.all():
        return f"numbers that are not whole (such as {texts.iloc[int(np.argmin(whole))]!r}) in {where}"
    if k == 2:
        return None
    if k > MAX_CLASSES:
        return f"{k} distinct whole numbers in {where} (more than {MAX_CLASSES}: a quantity, not class labels)"
    if n < MIN_ROWS_PER_CLASS * k:
        return (f"{k} distinct whole numbers in {where} of {n} rows (fewer than {MIN_ROWS_PER_CLASS} rows per value: "
                "a quantity, not class labels)")
    return None


def resolve_loss(cfg, df, source: str) -> Inference:
    """Set ``cfg.loss`` (omitted in the config) from the target column(s) of ``df``, the training
    table read with its targets as text; the line to print is kept for ``cfg.warnings()``.

    The config is validated again with the loss (model.output must suit it): a mismatch is a
    ConfigError naming both.
    """
    from pydantic import ValidationError

    inf = infer_loss(df, cfg.data.targets, source)
    try:
        cfg.loss = inf.loss
    except ValidationError as e:
        msg = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"loss: not given, and {inf.loss} (inferred from {inf.reason}) does not suit the config: "
                          f"{msg}; name the loss") from None
    cfg._loss_note = inf.message()
    return inf
