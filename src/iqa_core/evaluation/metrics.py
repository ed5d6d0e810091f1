"""Agreement between predicted scores and MOS: SRCC, PLCC, KRCC, RMSE, and the Table-1 bound.

PLCC and RMSE are reported both raw and after the usual 4-parameter logistic
mapping of predictions onto the MOS scale (VQEG practice): predictions and MOS
live on different scales, and the mapping removes a monotonic non-linearity
that SRCC ignores anyway.

Every function drops pairs where either value is NaN or infinite (an image
that could not be scored) and raises :class:`MetricError` when fewer than 3
pairs remain or one side is constant, where the coefficients are undefined.
scipy is imported inside the functions: the CLI imports this module, and
``iqa --help`` should not pay for scipy.stats.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ..errors import IQAError

MIN_PAIRS = 3


class MetricError(IQAError):
    """Metrics are undefined for these scores (too few pairs, constant values)."""


def finite_pairs(pred: ArrayLike, mos: ArrayLike) -> tuple[np.ndarray, np.ndarray, int]:
    """(pred, mos, n_dropped): the pairs where both values are finite, as float arrays."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    m = np.asarray(mos, dtype=np.float64).ravel()
    if p.shape != m.shape:
        raise MetricError(f"{p.size} predictions but {m.size} MOS values")
    keep = np.isfinite(p) & np.isfinite(m)
    p, m = p[keep], m[keep]
    if p.size < MIN_PAIRS:
        raise MetricError(f"need at least {MIN_PAIRS} scored images with MOS, got {p.size}")
    for values, what in ((p, "predicted scores"), (m, "MOS values")):
        if np.ptp(values) == 0:
            raise MetricError(f"all {what} are equal ({values[0]:g}): correlation is undefined")
    return p, m, int(keep.size - keep.sum())


def srcc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Spearman rank-order correlation (monotonicity)."""
    from scipy import stats

    p, m, _ = finite_pairs(pred, mos)
    return float(stats.spearmanr(p, m).statistic)


def plcc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Pearson linear correlation of the raw predictions (no mapping)."""
    from scipy import stats

    p, m, _ = finite_pairs(pred, mos)
    return float(stats.pearsonr(p, m).statistic)


def krcc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Kendall rank correlation (tau-b, handles ties)."""
    from scipy import stats

    p, m, _ = finite_pairs(pred, mos)
    return float(stats.kendalltau(p, m).statistic)


def rmse(pred: ArrayLike, mos: ArrayLike) -> float:
    """Root mean squared error; only meaningful when pred is on the MOS scale (see rmse_fitted)."""
    p, m, _ = finite_pairs(pred, mos)
    return float(np.sqrt(np.mean((p - m) ** 2)))


def logistic4(x: ArrayLike, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2: b2..b1 are the asymptotes."""
    z = np.clip(-(np.asarray(x, dtype=np.float64) - b3) / abs(b4), -700.0, 700.0)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


@dataclass(frozen=True)
class Fit:
    """A fitted mapping from predictions to the MOS scale.

    ``kind`` is "logistic4" (``params`` = b1..b4 of :func:`logistic4`) or
    "linear" (``params`` = slope, intercept), the fallback when the logistic
    fit does not converge; a linear map leaves PLCC equal to the raw PLCC.
    """

    kind: Literal["logistic4", "linear"]
    params: tuple[float, ...]

    def __call__(self, x: ArrayLike) -> np.ndarray:
        if self.kind == "logistic4":
            return logistic4(x, *self.params)
        slope, intercept = self.params
        return slope * np.asarray(x, dtype=np.float64) + intercept

    @property
    def direction(self) -> float:
        """+1 if the fitted curve rises with the prediction, -1 if it falls (0 if flat)."""
        rise = self.params[0] - self.params[1] if self.kind == "logistic4" else self.params[0]
        return float(np.sign(rise))


def logistic4_fit(pred: ArrayLike, mos: ArrayLike) -> Fit:
    """Fit :func:`logistic4` from predictions to MOS by least squares (scipy curve_fit).

    Predictions are standardised before fitting so the same initial guess
    (asymptotes at the MOS extremes, centre at the mean, slope one standard
    deviation, oriented by the sign of the correlation) works for any score
    scale; the parameters are returned in the original units.
    """
    from scipy import optimize

    p, m, _ = finite_pairs(pred, mos)
    mu, sd = p.mean(), p.std()
    z = (p - mu) / sd
    hi, lo = (m.max(), m.min()) if np.corrcoef(z, m)[0, 1] >= 0 else (m.min(), m.max())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            (b1, b2, b3, b4), _ = optimize.curve_fit(logistic4, z, m, p0=[hi, lo, 0.0, 1.0], maxfev=20000)
    except (RuntimeError, ValueError):
        b1 = b2 = b3 = b4 = np.nan
    fit = Fit("logistic4", (float(b1), float(b2), float(mu + sd * b3), float(sd * abs(b4))))
    # Not converged, or converged to a flat curve that maps every image to one value.
    if not np.all(np.isfinite(fit.params)) or b4 == 0 or np.ptp(fit(p)) == 0:
        slope, intercept = np.polyfit(p, m, 1)
        return Fit("linear", (float(slope), float(intercept)))
    return fit


def plcc_fitted(pred: ArrayLike, mos: ArrayLike) -> float:
    """PLCC between MOS and the logistic-mapped predictions (the number IQA papers report).

    The fitted curve would absorb the direction (an inverted predictor maps onto the MOS as
    well as a right one), so the result carries the sign of the curve's slope: a predictor
    with SRCC -0.8 reports a negative ``plcc_fitted``, as its SRCC and raw PLCC do.
    """
    p, m, _ = finite_pairs(pred, mos)
    fit = logistic4_fit(p, m)
    return fit.direction * plcc(fit(p), m)


def rmse_fitted(pred: ArrayLike, mos: ArrayLike) -> float:
    """RMSE between MOS and the logistic-mapped predictions, in MOS units."""
    p, m, _ = finite_pairs(pred, mos)
    return float(np.sqrt(np.mean((logistic4_fit(p, m)(p) - m) ** 2)))


def correlations(pred: ArrayLike, mos: ArrayLike) -> dict[str, float | int | str]:
    """All metrics at once: n, n_dropped, srcc, plcc, plcc_fitted, krcc, rmse_fitted, fit.

    ``n_dropped`` counts pairs left out for a NaN/inf value; ``fit`` says
    which mapping produced the *_fitted values ("logistic4" or "linear").
    """
    p, m, dropped = finite_pairs(pred, mos)
    fit = logistic4_fit(p, m)
    mapped = fit(p)
    return {
        "n": int(p.size),
        "n_dropped": dropped,
        "srcc": srcc(p, m),
        "plcc": plcc(p, m),
        "plcc_fitted": fit.direction * plcc(mapped, m),
        "krcc": krcc(p, m),
        "rmse_fitted": float(np.sqrt(np.mean((mapped - m) ** 2))),
        "fit": fit.kind,
    }


def discretize(mos: ArrayLike, k: int, rounding: Literal["half_even", "half_up"] = "half_even") -> np.ndarray:
    """Eq. (1): ŝ = Round(K·(s − min)/(max − min)), integers in 0..K.

    As printed this yields K+1 levels (0..K), not the K the text describes;
    DESIGN.md §3 reports that this form reproduces Table 1. ``rounding`` only matters for
    values landing exactly on .5: "half_even" is numpy's (and Python's)
    ``round``, "half_up" the schoolbook/MATLAB rule.
    """
    if k < 1:
        raise MetricError(f"K must be a positive integer, got {k}")
    if rounding not in ("half_even", "half_up"):
        raise MetricError(f"rounding must be 'half_even' or 'half_up', got {rounding!r}")
    s = np.asarray(mos, dtype=np.float64)
    lo, hi = s.min(), s.max()
    if hi == lo:
        raise MetricError(f"all MOS values are equal ({lo:g}): nothing to discretize")
    x = k * (s - lo) / (hi - lo)
    return np.rint(x) if rounding == "half_even" else np.floor(x + 0.5)


def discretization_bound(mos: ArrayLike, k: int, rounding: Literal["half_even", "half_up"] = "half_even") -> float:
    """Table 1: (SRCC + PLCC)/2 between the MOS and its K-level discretization (eq. 1).

    The best a scorer restricted to K integer levels could reach on this MOS
    distribution. Non-finite MOS values are ignored.
    """
    s = np.asarray(mos, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if s.size < MIN_PAIRS:
        raise MetricError(f"need at least {MIN_PAIRS} MOS values, got {s.size}")
    levels = discretize(s, k, rounding)
    return (srcc(levels, s) + plcc(levels, s)) / 2
