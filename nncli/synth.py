"""Seeded synthetic datasets: the 2-D toy problems of the gallery and a 1-D regression.

Each generator is ``fn(n, noise, rng) -> {column: array}``: ``n`` rows, ``noise`` in the
generator's own units (the Gaussian standard deviation of the jitter, or of the blobs for
``gauss``), every random draw taken from ``rng`` (never the global ``np.random``), so one
seed always gives the same rows. Classes are balanced (they differ by at most one row)
and the rows are shuffled so that classes are interleaved. Labels are integers 0, 1, ...

``GENERATORS`` records each dataset's name, description, default ``n`` and ``noise`` and
columns; :func:`generate` builds a ``pandas.DataFrame`` and :func:`write_csv` writes it
atomically. Nothing here prints.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from .errors import DataError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    import pandas

Columns = dict[str, np.ndarray]
GeneratorFn = Callable[[int, float, np.random.Generator], Columns]


@dataclass(frozen=True)
class Generator:
    """One synthetic dataset: how to make it and what it looks like."""

    name: str
    description: str  # one line
    n: int  # default number of rows
    noise: float  # default noise (see the generator's docstring for its meaning)
    columns: tuple[str, ...]  # in CSV order; the last one is the target
    fn: GeneratorFn
    task: str = "classification"  # or "regression"

    @property
    def target(self) -> str:
        return self.columns[-1]

    @property
    def features(self) -> tuple[str, ...]:
        return self.columns[:-1]


# --------------------------------------------------------------------------- helpers


def _class_sizes(n: int, k: int) -> list[int]:
    """n rows split over k classes as evenly as possible (the first classes get the rest)."""
    base, rest = divmod(n, k)
    return [base + (1 if i < rest else 0) for i in range(k)]


def _balanced_labels(n: int, k: int) -> np.ndarray:
    """Labels 0..k-1 in blocks, balanced to within one row (shuffled later)."""
    return np.repeat(np.arange(k, dtype=np.int64), _class_sizes(n, k))


def _shuffled(columns: Columns, rng: np.random.Generator) -> Columns:
    """The same rows in a random order drawn from rng."""
    n = len(next(iter(columns.values())))
    order = rng.permutation(n)
    return {name: np.ascontiguousarray(values[order]) for name, values in columns.items()}


def _xy_label(x: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> Columns:
    """Columns x1, x2, label (float64, float64, int64), shuffled."""
    x = np.asarray(x, dtype=np.float64)
    return _shuffled(
        {"x1": x[:, 0].copy(), "x2": x[:, 1].copy(), "label": label.astype(np.int64)}, rng
    )


# --------------------------------------------------------------------------- generators


def xor(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """Clusters around the corners (0,0), (0,1), (1,0), (1,1); label = x1 XOR x2 of the corner.

    ``noise`` is the standard deviation of the Gaussian jitter around each corner. The
    four corners get n/4 rows each (to within one row).
    """
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    corner = _balanced_labels(n, 4)
    x = corners[corner] + noise * rng.standard_normal((n, 2))
    label = (corners[corner, 0] != corners[corner, 1]).astype(np.int64)
    return _xy_label(x, label, rng)


def circles(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """Two concentric circles, radius 1.0 (label 0) and 0.5 (label 1, the inner one).

    Angles are uniform on [0, 2π); ``noise`` is the standard deviation of the Gaussian
    jitter added to both coordinates.
    """
    label = _balanced_labels(n, 2)
    radius = np.where(label == 1, 0.5, 1.0)
    angle = rng.uniform(0.0, 2.0 * math.pi, n)
    x = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    x += noise * rng.standard_normal((n, 2))
    return _xy_label(x, label, rng)


def moons(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """Two interleaving half circles of radius 1 (the shape of scikit-learn's make_moons).

    Label 0: the upper arc (cos t, sin t); label 1: the lower arc (1 - cos t, 0.5 - sin t),
    t uniform on [0, π]. ``noise`` is the standard deviation of the Gaussian jitter.
    """
    label = _balanced_labels(n, 2)
    t = rng.uniform(0.0, math.pi, n)
    upper = np.column_stack([np.cos(t), np.sin(t)])
    lower = np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)])
    x = np.where((label == 0)[:, None], upper, lower)
    x += noise * rng.standard_normal((n, 2))
    return _xy_label(x, label, rng)


SPIRAL_TURNS = 1.5
SPIRAL_R0 = 0.2  # radius where the arms start, to keep them apart at the centre


def spirals(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """Two interleaved Archimedean spiral arms of 1.5 turns each; label = arm (0 or 1).

    Arm k at position s in [0, 1]: radius r = 0.2 + 0.8 s, angle 3π s + kπ, so both arms
    end at radius 1 and arm 1 is arm 0 turned by half a turn. s = sqrt(u) with u uniform,
    which spreads the points evenly along the arms (rather than crowding the centre).
    ``noise`` is the standard deviation of the Gaussian jitter. Neighbouring arms are
    0.27 apart radially, so the default 0.04 leaves them cleanly separable (about 99.9 %
    for the best boundary); at 0.1 they blur into each other (under 89 % at best).
    """
    label = _balanced_labels(n, 2)
    s = np.sqrt(rng.uniform(0.0, 1.0, n))
    radius = SPIRAL_R0 + (1.0 - SPIRAL_R0) * s
    angle = 2.0 * math.pi * SPIRAL_TURNS * s + math.pi * label
    x = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    x += noise * rng.standard_normal((n, 2))
    return _xy_label(x, label, rng)


GAUSS_CENTRES = np.array([[-1.75, -1.75], [1.75, 1.75]])


def gauss(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """Two isotropic Gaussian blobs centred at (-1.75, -1.75) (label 0) and (1.75, 1.75).

    ``noise`` is the standard deviation of each blob. The centres are 4.95 apart, so
    with the default noise 1.0 the best (linear) boundary misclassifies about 0.7 %
    of the rows: the blobs overlap a little but are about 99 % separable.
    """
    label = _balanced_labels(n, 2)
    x = GAUSS_CENTRES[label] + noise * rng.standard_normal((n, 2))
    return _xy_label(x, label, rng)


def sine(n: int, noise: float, rng: np.random.Generator) -> Columns:
    """1-D regression: x uniform on [-3, 3], y = sin(x) + noise * N(0, 1).

    The best possible R² is var(sin x) / (var(sin x) + noise²) with var(sin x) ≈ 0.52
    on [-3, 3]: 0.995 for the default noise 0.05, but only 0.98 for noise 0.1.
    """
    x = rng.uniform(-3.0, 3.0, n)
    y = np.sin(x) + noise * rng.standard_normal(n)
    return _shuffled({"x": x, "y": y}, rng)


_XY = ("x1", "x2", "label")

GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in [
        Generator("xor", "noisy clusters at the four corners of the unit square, label = XOR",
                  400, 0.15, _XY, xor),
        Generator("circles", "two concentric circles (radius 0.5 and 1.0), label 1 = inner",
                  400, 0.08, _XY, circles),
        Generator("moons", "two interleaving half circles", 400, 0.15, _XY, moons),
        Generator("spirals", "two interleaved spiral arms of 1.5 turns, label = arm",
                  600, 0.04, _XY, spirals),
        Generator("gauss", "two overlapping Gaussian blobs, noise = blob std",
                  400, 1.0, _XY, gauss),
        Generator("sine", "1-D regression: y = sin(x) + noise, x uniform on [-3, 3]",
                  400, 0.05, ("x", "y"), sine, task="regression"),
    ]
}


# --------------------------------------------------------------------------- public API


def get(name: str) -> Generator:
    """The registry entry for name, or DataError with a did-you-mean."""
    try:
        return GENERATORS[name]
    except (KeyError, TypeError):
        valid = ", ".join(GENERATORS)
        raise DataError(
            f"unknown dataset {name!r}{did_you_mean(name, GENERATORS)} (valid: {valid})"
        ) from None


#: what one row costs at the peak of generate() and csv_text() (measured: at most 290 bytes, xor)
BYTES_PER_ROW = 400


def _check_n(n) -> int:
    """n as an int: a whole number, also written 1e6 or '1e6' (as --n takes it); DataError
    if it is not, is below 1, or needs more memory than this process has available."""
    from .formats import shown

    if isinstance(n, str):
        try:
            n = int(n.replace("_", "")) if n.strip().lstrip("+").replace("_", "").isdigit() else float(n)
        except ValueError:
            raise DataError(f"--n: must be a whole number of rows, got {shown(n)}") from None
    if isinstance(n, (float, np.floating)) and math.isfinite(n) and float(n).is_integer():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise DataError(f"--n: must be a whole number of rows, got {shown(n)}")
    if n < 1:
        raise DataError(f"--n: must be at least 1, got {shown(n)}")
    from .memory import available_bytes, gib

    avail = available_bytes()
    if avail is not None and int(n) * BYTES_PER_ROW > avail:
        raise DataError(f"--n: {int(n):,} rows need about {gib(int(n) * BYTES_PER_ROW)} of memory, {gib(avail)} is "
                        f"available; at most about {avail // BYTES_PER_ROW:,} rows fit: use a smaller --n")
    return int(n)


def _check_noise(noise) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.integer, np.floating)):
        raise DataError(f"noise: must be a number, got {noise!r}")
    noise = float(noise)
    if not math.isfinite(noise) or noise < 0:
        raise DataError(f"noise: must be a finite number >= 0, got {noise!r}")
    return noise


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed: must be a whole number >= 0, got {seed!r}")
    return int(seed)


def generate_columns(name: str, n: int | None = None, noise: float | None = None,
                     seed: int = 0) -> Columns:
    """The named dataset as {column: array} (no pandas needed); defaults from GENERATORS."""
    gen = get(name)
    n = gen.n if n is None else _check_n(n)
    noise = gen.noise if noise is None else _check_noise(noise)
    rng = np.random.default_rng(_check_seed(seed))
    columns = gen.fn(n, noise, rng)
    return {c: columns[c] for c in gen.columns}


def generate(name: str, n: int | None = None, noise: float | None = None,
             seed: int = 0) -> "pandas.DataFrame":
    """The named dataset as a DataFrame with the registry's columns, in order.

    ``n`` and ``noise`` default to the registry's values. Raises DataError for an unknown
    name (with a did-you-mean), n < 1, a negative or non-finite noise, or a bad seed.
    """
    import pandas as pd

    return pd.DataFrame(generate_columns(name, n, noise, seed))


def _format_float(value: float) -> str:
    """The shortest text that reads back as exactly the same float64."""
    return float.__repr__(float(value))


def csv_text(df: "pandas.DataFrame") -> str:
    """df as CSV text (header, no index, '\\n' line ends). Floats are written so that they
    read back bit for bit; integer columns (labels) stay integers."""
    return df.to_csv(index=False, lineterminator="\n", float_format=_format_float)


def write_csv(df: "pandas.DataFrame", path) -> None:
    """Write df to path as CSV, atomically (:func:`nncli.csvio.atomic_file`): readers see
    the old file or the new one, never half of one. Raises DataError if it cannot be written."""
    from .csvio import atomic_file

    try:
        with atomic_file(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(csv_text(df))
    except OSError as e:
        raise DataError(f"{os.fspath(path)}: cannot write: {e.strerror or e}") from e
