"""``nncli init DATA --target COLUMN``: a commented starter config from a table.

:func:`starter` reads the table once and writes every choice as a comment above its key.
The rules:

- **loss**: :func:`nncli.infer.infer_loss`, the rule an omitted ``loss`` is inferred by.
- **data.exclude**: ID-like columns: text unique per row, or near-unique text (more than
  half the rows distinct and more than 20 values: one-hot encoding it would give held-out
  rows inputs never trained), text with more than ``MAX_CATEGORIES`` values (training
  refuses those), whole numbers that are a permutation of a row counter (a..a+n-1, one per
  row), unnamed columns (a saved row index), and columns with no value at all.
- **data.na_values**: short tokens without letters or digits (``?``, ``-``, ``--``, ``.``)
  that are the only non-numbers of a column whose other cells are numbers, as UCI files
  mark gaps.
- **data.categorical**: a column mixing numbers and text ('3', '4', '5 or more'), one-hot encoded.
- **data.missing: impute** when a used feature column has a missing cell;
  **data.unknown_category: ignore** when there is a text feature (a rare category can fall
  only into held-out rows).
- **splits**: 20% test and 20% validation (stratified for classifiers) when the table has at
  least :data:`MIN_ROWS_FOR_SPLITS` rows with a target and every split gets rows; then early
  stopping on the validation loss. A smaller table trains on every row.
- **model.layers**: ``[auto, width, auto]``, width the power of two nearest to 2/3 x inputs
  + outputs (inputs counted after one-hot encoding), within 8..128.
- **train**: adam, lr 0.01, batch size 32, 200 epochs (early stopping patience 20), seed 0.

The keys of other parts of the schema (``data.missing``, ``data.na_values``,
``data.unknown_category``) are written only when the schema has them.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ConfigError, DataError, did_you_mean

SPLIT = 0.2  # test and validation fractions
MIN_ROWS_FOR_SPLITS = 20
WIDTH_MIN, WIDTH_MAX = 8, 128
OPTIMIZER, LR, BATCH_SIZE, EPOCHS, PATIENCE, SEED = "adam", 0.01, 32, 200, 20, 0
NEAR_UNIQUE_FRACTION, NEAR_UNIQUE_MIN = 0.5, 20  # as the near-unique warning of nncli.data
NA_TOKEN = re.compile(r"[^\w\s]{1,3}\Z")  # ?, -, --, ., *: no letters or digits, at most 3 characters
MAX_NA_TOKENS = 3


@dataclass
class Starter:
    text: str  # the config, YAML with comments
    config: dict  # the same, parsed
    summary: str  # one line for stderr: what was chosen
    excluded: dict = field(default_factory=dict)  # column -> why


# ---------------------------------------------------------------------- YAML text

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_.\-/]*\Z")


def _quote(s: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes, plus every control or line-separator character)."""
    out = []
    for ch in json.dumps(s, ensure_ascii=False):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or ch == "\x85":
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def _scalar(v) -> str:
    from .yamlfile import safe_load

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    return s if _PLAIN.match(s) and safe_load(s) == s else _quote(s)


def _flow(values) -> str:
    return "[" + ", ".join(_scalar(v) for v in values) + "]"


def _name(s) -> str:
    """A column name inside a comment: quoted, every special character escaped."""
    return "'" + _quote(str(s))[1:-1] + "'"


def _names(names, n: int = 6) -> str:
    names = list(names)
    return ", ".join(_name(x) for x in names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


# ---------------------------------------------------------------------- reading the table


@dataclass
class _Column:
    name: str
    numeric: bool  # the training reads it as numbers (after na tokens)
    missing: int  # missing cells
    distinct: int  # distinct filled values
    why_excluded: Optional[str] = None
    categorical: bool = False  # mixes numbers and text: declared categorical


def _analyse(df, c: str, n: int, na_tokens: list) -> _Column:
    import pandas as pd

    s = df[c]
    if na_tokens and not pd.api.types.is_numeric_dtype(s):
        s = s.where(~s.isin(na_tokens))
    filled = s.dropna()
    col = _Column(str(c), False, int(n - len(filled)), int(filled.nunique()))
    if str(c).startswith("Unnamed: "):
        col.why_excluded = "an unnamed column (a saved row index); training leaves it out anyway"
        return col
    if len(filled) == 0:
        col.why_excluded = "every cell is missing"
        return col
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        col.numeric = True
    else:
        nums = pd.to_numeric(filled, errors="coerce")
        col.numeric = len(filled) > 0 and bool(nums.notna().all())
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64) if col.numeric else None
        if not col.numeric and len(filled) and nums.notna().mean() >= 0.5:  # numbers and text: the training would refuse
            col.categorical = True
    if col.numeric:
        if (n >= 3 and col.missing == 0 and col.distinct == n and np.isfinite(v).all() and (v == np.round(v)).all()
                and v.max() - v.min() == n - 1):
            col.why_excluded = f"whole numbers {int(v.min())}..{int(v.max())}, one per row (a row counter or an ID)"
        return col
    from .columns import MAX_CATEGORIES

    if n >= 2 and col.missing == 0 and col.distinct == n:
        col.why_excluded = "text unique per row (an ID or a name)"
    elif col.distinct > MAX_CATEGORIES:
        col.why_excluded = f"text with {col.distinct} distinct values (more than the {MAX_CATEGORIES} categories nncli one-hot encodes)"
    elif col.distinct > NEAR_UNIQUE_FRACTION * n and col.distinct > NEAR_UNIQUE_MIN:
        col.why_excluded = (f"text with {col.distinct} distinct values in {n} rows (near-unique: one-hot encoding it "
                            "memorises rows, and held-out rows bring values never trained)")
    return col


def _na_tokens(df, columns) -> list[str]:
    """Missing-value tokens: the only non-numbers of a column whose other cells are numbers."""
    import pandas as pd

    found: dict = {}
    for c in columns:
        s = df[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        filled = s.dropna().astype(str)
        bad = filled[pd.to_numeric(filled, errors="coerce").isna()]
        if len(filled) == 0 or len(bad) == len(filled):
            continue
        tokens = set(bad.tolist())
        if len(tokens) <= MAX_NA_TOKENS and all(NA_TOKEN.match(t) for t in tokens):
            found.update(dict.fromkeys(sorted(tokens)))
    return list(found)


def _split_sizes(labels: Optional[np.ndarray], n: int) -> tuple[int, int]:
    """(test rows, validation rows) that data.test_split and data.val_split of SPLIT would hold
    out (the sizes do not depend on the generator), stratified by ``labels`` when given."""
    from .data import split_indices

    rng = np.random.default_rng(0)
    strata = None if labels is None else np.unique(labels, return_inverse=True)[1]
    rows, test = split_indices(n, SPLIT, rng, strata)
    _, val = split_indices(len(rows), SPLIT / (1 - SPLIT), rng, None if strata is None else strata[rows])
    return len(test), len(val)


def _width(n_inputs: int, n_outputs: int) -> int:
    raw = 2 / 3 * n_inputs + n_outputs
    return int(min(WIDTH_MAX, max(WIDTH_MIN, 2 ** round(math.log2(max(raw, 1))))))


# ---------------------------------------------------------------------- the starter config


@dataclass
class _Plan:
    """What `nncli init` found in the table and chose, before it is written out."""

    path: str
    sep: Optional[str]
    targets: list[str]
    n: int
    n_columns: int
    n_labelled: int
    inf: object  # nncli.infer's inference of the loss
    excluded: dict
    categorical: list
    na_tokens: list
    gaps: list
    text: bool
    n_inputs: int
    n_outputs: int
    width: int
    splits: bool
    classifier: bool


def starter(path: str, targets: list[str], sep: Optional[str] = None) -> Starter:
    """The commented starter config for the table at ``path`` with target column(s) ``targets``;
    ``sep``: its column separator (None: by the file's name, as data.sep), written as data.sep."""
    plan = _plan(path, targets, sep)
    text_out = "\n".join(_header(plan) + _data_lines(plan) + _model_lines(plan) + _train_lines(plan)) + "\n"
    config = _check(text_out)
    parts = [f"loss {plan.inf.loss} ({plan.inf.reason})", f"layers [auto, {plan.width}, auto]"]
    if plan.excluded:
        parts.append(f"excluded {_names(plan.excluded)}")
    if plan.gaps:
        parts.append("missing: impute")
    return Starter(text_out, config, "; ".join(parts), plan.excluded)


def _read(path: str, targets: list[str], sep: Optional[str], source: str):
    """The table, read as training reads it; one line for a missing --target or a wrong separator."""
    from .csvio import read_csv

    if not targets:
        raise ConfigError("--target: name the column to predict, e.g. --target y")
    df = read_csv(path, "", str_columns=targets, **({"sep": sep} if sep is not None else {}))
    columns = [str(c) for c in df.columns]
    if len(columns) == 1 and not all(t in columns for t in targets):
        for alt, word in ((";", "';'"), ("\t", "tab"), ("|", "'|'"), (",", "','")):
            if alt in columns[0]:
                raise DataError(f"{source}: the header is the single column {columns[0][:60]!r}: the file looks "
                                f"{word}-separated; give --sep {word}")
    for t in targets:
        if t not in columns:
            shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
            raise ConfigError(f"--target {t}: no such column in {path}{did_you_mean(t, columns)} (columns: {shown})")
    return df, columns


def _plan(path: str, targets: list[str], sep: Optional[str]) -> _Plan:
    from .infer import infer_loss
    from .losses import LOSSES
    from .tasks import TASKS

    targets, source = list(dict.fromkeys(targets)), str(path)
    df, columns = _read(path, targets, sep, source)
    n = len(df)
    features = [c for c in columns if c not in targets]
    na_tokens = _na_tokens(df, columns)
    if na_tokens:  # as data.na_values reads them: missing, in every column
        df = df.where(~df.isin(na_tokens))
    labelled = df[targets].notna().all(axis=1).to_numpy()
    inf = infer_loss(df, targets, source)
    task = TASKS[LOSSES[inf.loss].task]
    cols = {c: _analyse(df, c, n, na_tokens) for c in features}
    excluded = {c: col.why_excluded for c, col in cols.items() if col.why_excluded}
    used = [cols[c] for c in features if c not in excluded]
    if not used:
        raise DataError(f"{source}: every column but the target looks like an identifier ({_names(excluded)}); "
                        "there is nothing to learn from")
    n_inputs = sum(1 if col.numeric else col.distinct for col in used)
    n_outputs = inf.n_classes if inf.n_classes > 2 else (1 if task.is_classifier else len(targets))
    n_labelled = int(labelled.sum())
    labels = df[targets[0]][labelled].astype(str).to_numpy() if task.is_classifier else None
    return _Plan(
        path, sep, targets, n, len(columns), n_labelled, inf, excluded,
        categorical=[col.name for col in used if col.categorical], na_tokens=na_tokens,
        gaps=[col for col in used if col.missing], text=any(not col.numeric for col in used),
        n_inputs=n_inputs, n_outputs=n_outputs, width=_width(n_inputs, n_outputs),
        splits=n_labelled >= MIN_ROWS_FOR_SPLITS and min(_split_sizes(labels, n_labelled)) >= 1,
        classifier=task.is_classifier,
    )


def _header(p: _Plan) -> list[str]:
    return [
        f"# nncli starter config, written by `nncli init` from {_name(p.path)} ({p.n} rows, {p.n_columns} columns).",
        "# Each choice is explained in the comment above it; edit freely, then train with",
        "#   nncli train THIS_FILE",
        "# The run's name defaults to this file's name; add `name: ...` to choose another.",
        "",
        "# seeds the one random generator: the splits, the initial weights, the shuffling",
        f"seed: {SEED}",
    ]


def _data_lines(p: _Plan) -> list[str]:
    L = ["data:", "  # relative paths resolve against the directory nncli runs in", f"  train: {_scalar(p.path)}"]
    if p.sep is not None:
        L += ["  # the column separator (given with --sep)", f"  sep: {'tab' if p.sep == chr(9) else _scalar(p.sep)}"]
    L += [f"  # {p.inf.reason}", f"  target: {_scalar(p.targets[0]) if len(p.targets) == 1 else _flow(p.targets)}"]
    if p.n_labelled < p.n:
        L.append(f"  # {p.n - p.n_labelled} rows have no target value: training and evaluation leave them out")
    if p.excluded:
        L.append("  # never used as features (ID-like, near-unique or empty columns):")
        L += [f"  #   {_name(c)}: {why}" for c, why in p.excluded.items()]
        L.append(f"  exclude: {_flow(p.excluded)}")
    if p.categorical:
        L.append(f"  # numbers mixed with text ({_names(p.categorical)}): one-hot encoded as categories")
        L.append(f"  categorical: {_flow(p.categorical)}")
    if p.na_tokens:
        L.append("  # cells that mean 'missing' here: the only non-numbers of otherwise numeric columns")
        L.append(f"  na_values: {_flow(p.na_tokens)}")
    if p.gaps:
        cells = sum(col.missing for col in p.gaps)
        shown = ", ".join(f"{_name(col.name)} {col.missing}" for col in p.gaps[:6]) + (", ..." if len(p.gaps) > 6 else "")
        L.append(f"  # {cells} missing cell{'s' * (cells > 1)} in {len(p.gaps)} feature column{'s' * (len(p.gaps) > 1)} ({shown}):")
        L.append("  # filled with the training rows' median (numbers) or most frequent value (text)")
        L.append("  missing: impute")
    if p.text:
        L.append("  # a category the training rows lack (a rare value that fell into held-out rows, or a new")
        L.append("  # one at predict time) encodes as all zeros instead of stopping")
        L.append("  unknown_category: ignore")
    if p.splits:
        strat = ", stratified by class" if p.classifier else ""
        L.append(f"  # {SPLIT:.0%} of the rows held out as the test set (`nncli eval` scores it), "
                 f"{SPLIT:.0%} for validation (early stopping){strat}")
        L += [f"  test_split: {SPLIT}", f"  val_split: {SPLIT}"]
    else:
        L.append(f"  # {p.n_labelled} rows with a target: too few to hold any out (splits from {MIN_ROWS_FOR_SPLITS} rows)")
    return L


def _model_lines(p: _Plan) -> list[str]:
    from .losses import LOSSES

    L = [
        "model:",
        f"  # auto: {p.n_inputs} input{'s' * (p.n_inputs > 1)} (after one-hot encoding) and {p.n_outputs} "
        f"output{'s' * (p.n_outputs > 1)} come from the data; one hidden layer",
        f"  # of {p.width}: the power of two nearest to 2/3 x inputs + outputs, within {WIDTH_MIN}..{WIDTH_MAX}",
        f"  layers: [auto, {p.width}, auto]",
        "  # tanh, nncli's default: smooth and zero-centred, suits standardised inputs",
        "  activation: tanh",
        "# inferred from the target (two classes: bce; more, or text labels: cross_entropy; quantities: mse);",
        f"# the output activation follows it ({LOSSES[p.inf.loss].default_output})",
    ]
    if not p.classifier:
        L.append("# mse trains on z-scored targets (data.standardize_target); metrics and predictions stay in their units")
    return L + [f"loss: {p.inf.loss}"]


def _train_lines(p: _Plan) -> list[str]:
    L = [
        "train:",
        "  # Adam: steps of about lr whatever the scale of the gradients; try 0.001 if the loss is noisy",
        f"  optimizer: {OPTIMIZER}",
        f"  lr: {LR}",
        "  # rows per gradient step (nncli's default)",
        f"  batch_size: {BATCH_SIZE}",
    ]
    if not p.splits:
        return L + ["  # passes over the training rows", f"  epochs: {EPOCHS}"]
    return L + [f"  # at most {EPOCHS} passes over the training rows; early stopping ends sooner when the validation",
                f"  # loss has not improved for {PATIENCE} epochs, and keeps the best weights",
                f"  epochs: {EPOCHS}",
                f"  early_stopping: {{patience: {PATIENCE}}}"]


def _check(text: str) -> dict:
    """The config parsed back and validated: what init writes always loads."""
    from .config import config_from_dict
    from .yamlfile import safe_load

    raw = safe_load(text)
    config_from_dict(json.loads(json.dumps(raw)), "nncli init")
    return raw


def write_starter(path: str, targets: list[str], output: str = "-", sep: Optional[str] = None) -> Starter:
    """:func:`starter`, written to ``output`` (a new file: an existing one is never replaced);
    ``-`` leaves the writing to the caller (stdout)."""
    if output != "-" and Path(output).exists():
        raise ConfigError(f"{output}: already exists; nncli init never overwrites a file: choose another -o or remove it")
    s = starter(path, targets, sep)
    if output != "-":
        try:
            fh = open(output, "x", encoding="utf-8")  # "x": created here, or an error; never replaced
        except FileExistsError:
            raise ConfigError(f"{output}: already exists; nncli init never overwrites a file: choose another -o or remove it") from None
        except OSError as e:
            raise ConfigError(f"{output}: cannot write the config ({e.strerror or e})") from None
        try:
            with fh:
                fh.write(s.text)
        except BaseException as e:  # no half-written config is left behind
            Path(output).unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise ConfigError(f"{output}: cannot write the config ({e.strerror or e})") from None
            raise
    return s
