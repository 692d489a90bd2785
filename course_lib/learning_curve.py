"""How much data is enough? Learning curves and the law MAE(N) = A·N^-α + B.

The chapter's cost-accuracy curve: train one regime (few-shot, full, scratch;
energy-only or energy+forces) on N structures of a fixed training pool, for
growing N and several seeds, always scoring on the same held-out test set::

    MAE(N) ≈ A · N^-α + B        [meV/Å for forces, meV/atom for energies]

``A`` is a system-dependent prefactor, ``α`` the learning exponent (the
chapter: 0.3-0.5 for force errors), ``B`` the irreducible floor. Zero-shot is
the N = 0 reference line.

* ``run_learning_curve``: the runner. Each (N, seed) run is persisted as
  JSON under ``work_dir("learning-curves")`` keyed by model, regime, N,
  seed, energy-only flag, settings and a hash of the train/test frames, so a
  re-run reuses finished runs and an interrupted curve resumes.
* ``fit_power_law``: weighted non-linear least squares with bounds
  ``A > 0, α > 0, B ≥ 0`` (weights from the seed spread), uncertainties from
  a bootstrap over seeds, and the N needed to reach a target MAE
  (``PowerLawFit.n_for``), or a plain statement that the target lies below
  the floor.

Labels: a structure of n atoms gives 1 energy label, plus 3n force labels
when forces are in the loss (the chapter's "forces multiply the labels").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from course_lib import data as ds
from course_lib.finetune import LossWeights, run_regime
from course_lib.paths import work_dir

logger = logging.getLogger(__name__)

DEFAULT_SIZES = (10, 20, 50, 100, 200, 500)
METRICS = {
    "force": ("force_mae_meV_per_A", "meV/Å"),
    "energy": ("energy_mae_meV_per_atom", "meV/atom"),
}
# FineTuner settings that are not part of a run's key: set per run, keyed apart, or display only.
_UNKEYED_SETTINGS = ("model", "regime", "seed", "forces_weight", "progress", "device")

# The chapter's table "How much data is enough?": (structures, typical use-case).
DATA_SIZE_GUIDE = (
    (0, "zero-shot: screening, exploratory MD, rough relaxations"),
    (50, "equilibrium geometry of a specific compound"),
    (500, "reaction barriers, defect formation energies"),
    (5000, "phase diagrams, finite-temperature thermodynamics"),
    (50000, "approaching DFT quality on the target system"),
)
ALPHA_BOUNDS = (1e-3, 5.0)  # the range of α the fit searches
# The chapter's empirical range of the learning exponent α of force errors.
CHAPTER_ALPHA = (0.3, 0.5)


class LearningCurveInputError(ValueError):
    """Sizes and errors given to the fit are unusable; the message says which and why."""


# --------------------------------------------------------------------------- the law


def power_law(n, a: float, alpha: float, b: float):
    """``A · N^-α + B`` (same units as ``A`` and ``B``)."""
    return a * np.asarray(n, dtype=float) ** (-alpha) + b


def n_for_target(target: float, a: float, alpha: float, b: float) -> float:
    """N with ``power_law(N) = target``: ``(A / (target - B))^(1/α)``; ``inf`` if target ≤ B."""
    if target <= b:
        return float("inf")
    return float((a / (target - b)) ** (1.0 / alpha))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CurvePoint:
    """One training run of a learning curve: N structures, one seed, test errors.

    Errors are on the fixed held-out test set: energy MAE in meV/atom, force
    MAE in meV/Å. ``n_labels`` counts the scalar labels the run trained on.
    """

    n_train: int
    seed: int
    energy_mae_meV_per_atom: float
    force_mae_meV_per_A: float
    n_labels: int
    fit_time_s: float
    cached: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SizeSummary:
    """Seed statistics at one N: mean, sample standard deviation and count of the runs."""

    n_train: int
    mean: float
    std: float
    n_seeds: int
    n_labels: float


@dataclass(frozen=True)
class LearningCurve:
    """All runs of one regime, with the zero-shot (N = 0) errors when a model was given.

    ``model`` is what ``model_key`` says (registry name, file sha256, ...); ``zero_shot``
    maps ``"energy"``/``"force"`` to the starting model's test MAE (energies
    aligned per element, as in ``course_lib.zero_shot``); ``wall_time_s`` is
    the total training time of all runs, cached ones included.
    """

    model: str
    regime: str
    energy_only: bool
    points: tuple[CurvePoint, ...]
    n_test: int
    zero_shot: dict[str, float] | None = None

    @property
    def label(self) -> str:
        return f"{self.regime}, {'energy only' if self.energy_only else 'energy + forces'}"

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted({p.n_train for p in self.points}))

    @property
    def wall_time_s(self) -> float:
        return float(sum(p.fit_time_s for p in self.points))

    def values(self, metric: str = "force") -> tuple[np.ndarray, np.ndarray]:
        """Per-run N and MAE (meV/Å for ``"force"``, meV/atom for ``"energy"``)."""
        attribute = _metric_attribute(metric)
        return (
            np.array([p.n_train for p in self.points], dtype=float),
            np.array([getattr(p, attribute) for p in self.points], dtype=float),
        )

    def summary(self, metric: str = "force") -> tuple[SizeSummary, ...]:
        """Mean, standard deviation (ddof=1; 0 for one seed) and seed count per N."""
        attribute = _metric_attribute(metric)
        rows = []
        for n in self.sizes:
            runs = [p for p in self.points if p.n_train == n]
            values = np.array([getattr(p, attribute) for p in runs])
            rows.append(
                SizeSummary(
                    n_train=n,
                    mean=float(values.mean()),
                    std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    n_seeds=len(values),
                    n_labels=float(np.mean([p.n_labels for p in runs])),
                )
            )
        return tuple(rows)

    def fit(self, metric: str = "force", **options) -> PowerLawFit:
        """``fit_power_law`` on this curve's runs (options: ``n_bootstrap``, ``seed``)."""
        sizes, maes = self.values(metric)
        return fit_power_law(sizes, maes, metric=metric, **options)

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "regime": self.regime,
            "energy_only": self.energy_only,
            "n_test": self.n_test,
            "zero_shot": self.zero_shot,
            "wall_time_s": round(self.wall_time_s, 2),
            "points": [p.as_dict() for p in self.points],
        }

    @classmethod
    def from_dict(cls, record: Mapping) -> LearningCurve:
        """The curve ``as_dict`` (or ``course learning-curve --json``'s ``"curve"``) wrote."""
        return cls(
            model=record["model"],
            regime=record["regime"],
            energy_only=record["energy_only"],
            points=tuple(CurvePoint(**p) for p in record["points"]),
            n_test=record["n_test"],
            zero_shot=record.get("zero_shot"),
        )

    def table(self) -> str:
        lines = [
            f"{self.label} ({self.model}), test set of {self.n_test} structures",
            f"{'N':>6} {'seeds':>5} {'labels':>8} {'E MAE meV/at':>16} {'F MAE meV/Å':>16}",
        ]
        if self.zero_shot:
            lines.append(
                f"{0:>6} {'':>5} {0:>8} {self.zero_shot['energy']:>16.2f} "
                f"{self.zero_shot['force']:>16.1f}  (zero-shot)"
            )
        for e, f in zip(self.summary("energy"), self.summary("force")):
            lines.append(
                f"{e.n_train:>6} {e.n_seeds:>5} {e.n_labels:>8.0f} "
                f"{e.mean:>9.2f} ± {e.std:<5.2f} {f.mean:>9.1f} ± {f.std:<5.1f}"
            )
        lines.append(f"training time of all runs: {self.wall_time_s:.1f} s")
        return "\n".join(lines)

    __str__ = table


@dataclass(frozen=True)
class TargetEstimate:
    """The N needed to reach a target MAE, from the best fit and its bootstrap.

    ``n`` is ``inf`` when the target lies at or below the fitted floor B.
    ``n_low``/``n_high`` are the 16th and 84th percentiles over bootstrap fits
    (``inf`` where the target is below the floor in that many fits);
    ``reachable_fraction`` is the share of bootstrap fits whose floor lies
    below the target. ``measured`` is the (smallest, largest) N the fit saw:
    an ``n`` outside it is an extrapolation of the law, and the message says so.
    """

    target: float
    unit: str
    n: float
    n_low: float
    n_high: float
    reachable_fraction: float
    floor: float
    measured: tuple[int, int] | None = None

    @property
    def reachable(self) -> bool:
        return bool(np.isfinite(self.n))

    def message(self) -> str:
        if not self.reachable:
            return (
                f"a target of {self.target:g} {self.unit} lies below the fitted floor "
                f"B = {self.floor:.3g} {self.unit}: more data of this kind will not reach it "
                "(a better model, or data of another kind, might)"
            )
        text = f"{self.target:g} {self.unit} needs N ≈ {_fmt_n(self.n)} structures"
        if np.isnan(self.reachable_fraction):
            text += " (no bootstrap: one seed per size)"
        else:
            text += (
                f" (68% bootstrap range {_fmt_n(self.n_low)}-{_fmt_n(self.n_high)}; "
                f"reachable in {100 * self.reachable_fraction:.0f}% of bootstrap fits)"
            )
        return text + self._extrapolation()

    def _extrapolation(self) -> str:
        if self.measured is None:
            return ""
        smallest, largest = self.measured
        if self.n < smallest:
            return f"; below the smallest measured N = {smallest}, an extrapolation"
        if self.n > largest:
            return f"; beyond the largest measured N = {largest}, an extrapolation"
        return ""

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "reachable": self.reachable}

    __str__ = message


@dataclass(frozen=True)
class PowerLawFit:
    """``MAE(N) = A·N^-α + B`` fitted by weighted least squares, with bootstrap errors.

    ``a``, ``b`` and their ``*_std`` are in ``unit`` (meV/Å or meV/atom);
    ``alpha`` is dimensionless. Standard deviations come from refitting
    ``n_bootstrap`` resamplings of the seeds within each N (``bootstrap``
    holds those fits, rows ``(A, α, B)``); NaN when there was only one seed
    per size. ``reduced_chi2`` is χ²/(sizes - 3) with σ the standard error of
    each size's mean (NaN with no degrees of freedom); ``r2`` is the plain
    coefficient of determination of the size means. ``sigma_from_seeds`` is
    False when no size had two seeds and σ was taken as 10% of each mean.
    """

    metric: str
    unit: str
    a: float
    alpha: float
    b: float
    a_std: float
    alpha_std: float
    b_std: float
    reduced_chi2: float
    r2: float
    sizes: tuple[int, ...]
    means: tuple[float, ...]
    sigmas: tuple[float, ...]
    sigma_from_seeds: bool
    bootstrap: np.ndarray = field(repr=False)

    def predict(self, n) -> np.ndarray:
        """The fitted MAE at ``n`` structures (``unit``)."""
        return power_law(n, self.a, self.alpha, self.b)

    def n_for(self, target: float) -> TargetEstimate:
        """Structures needed for ``target`` MAE (``unit``), with its bootstrap range."""
        if not (np.isfinite(target) and target > 0):
            raise LearningCurveInputError(f"target MAE must be positive and finite, got {target}")
        draws = np.array([n_for_target(target, *row) for row in self.bootstrap])
        reachable = np.isfinite(draws).mean() if len(draws) else float("nan")
        low, high = _percentiles(draws, (0.16, 0.84))
        return TargetEstimate(
            target=float(target),
            unit=self.unit,
            n=n_for_target(target, self.a, self.alpha, self.b),
            n_low=float(low),
            n_high=float(high),
            reachable_fraction=float(reachable),
            floor=self.b,
            measured=(min(self.sizes), max(self.sizes)),
        )

    def as_dict(self) -> dict:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "bootstrap"}
        out["n_bootstrap"] = len(self.bootstrap)
        return out

    def table(self) -> str:
        rows = [
            ("A", f"{self.a:.4g} ± {self.a_std:.2g} {self.unit}"),
            ("α", f"{self.alpha:.3f} ± {self.alpha_std:.3f}"),
            ("B (floor)", f"{self.b:.4g} ± {self.b_std:.2g} {self.unit}"),
            ("reduced χ²", f"{self.reduced_chi2:.2f}"),
            ("R²", f"{self.r2:.4f}"),
            ("sizes", ", ".join(str(n) for n in self.sizes)),
            ("bootstrap fits", str(len(self.bootstrap))),
        ]
        width = max(len(name) for name, _ in rows)
        head = f"{self.metric} MAE(N) = A·N^-α + B"
        return "\n".join([head, *(f"{name:<{width}}  {value}" for name, value in rows)])

    __str__ = table


@dataclass(frozen=True)
class AlphaVerdict:
    """A measured α against an expected range, or the reasons this curve cannot pin it.

    ``relation`` is ``"inside"`` (α within ``expected``), ``"consistent"``
    (outside, but within 2σ of it), ``"steeper"`` or ``"shallower"`` (more
    than 2σ above or below), or ``"not pinned"`` with ``reasons`` saying why.
    """

    alpha: float
    alpha_std: float
    expected: tuple[float, float]
    relation: str
    reasons: tuple[str, ...] = ()

    @property
    def pinned(self) -> bool:
        return not self.reasons

    def message(self) -> str:
        low, high = self.expected
        measured = f"α = {self.alpha:.2f} ± {self.alpha_std:.2f}"
        if not self.pinned:
            return (
                f"{measured}, but this curve cannot pin α: {'; '.join(self.reasons)}. "
                f"It neither confirms nor refutes the chapter's {low:g}-{high:g}."
            )
        return {
            "inside": f"{measured} lies inside the chapter's {low:g}-{high:g}",
            "consistent": f"{measured} is consistent with the chapter's {low:g}-{high:g} within 2σ",
            "steeper": f"{measured} is steeper than the chapter's {low:g}-{high:g} (by more than 2σ)",
            "shallower": (
                f"{measured} is shallower than the chapter's {low:g}-{high:g} (by more than 2σ)"
            ),
        }[self.relation]

    __str__ = message


def alpha_verdict(
    fit: PowerLawFit, expected: tuple[float, float] = CHAPTER_ALPHA, *, min_span: float = 10.0
) -> AlphaVerdict:
    """Compare the fitted α with ``expected``, unless the curve is too short or noisy to pin it.

    α is not pinned when the sizes span less than ``min_span`` (a decade by
    default: over a shorter range α and B trade off against each other), when
    there is no bootstrap (one seed per size), when α sits at a bound of the
    fit, or when its bootstrap standard deviation exceeds half its value or
    the width of ``expected`` (then the comparison cannot discriminate).
    """
    reasons = []
    span = max(fit.sizes) / min(fit.sizes)
    if span < min_span:
        reasons.append(f"the sizes span a factor {span:.0f} only, less than {min_span:g}")
    if not np.isfinite(fit.alpha_std):
        reasons.append("one seed per size gives no bootstrap uncertainty")
    elif fit.alpha_std > 0.5 * fit.alpha:
        reasons.append(f"its bootstrap uncertainty {fit.alpha_std:.2f} exceeds half its value")
    elif fit.alpha_std > expected[1] - expected[0]:
        reasons.append(
            f"its bootstrap uncertainty {fit.alpha_std:.2f} exceeds the width of the range "
            f"{expected[0]:g}-{expected[1]:g}"
        )
    if fit.alpha >= 0.99 * ALPHA_BOUNDS[1] or fit.alpha <= 1.01 * ALPHA_BOUNDS[0]:
        reasons.append(f"the fit sits at the bound α = {fit.alpha:.3g}")
    low, high = expected
    sigma = fit.alpha_std if np.isfinite(fit.alpha_std) else 0.0
    if reasons:
        relation = "not pinned"
    elif low <= fit.alpha <= high:
        relation = "inside"
    elif low - 2 * sigma <= fit.alpha <= high + 2 * sigma:
        relation = "consistent"
    else:
        relation = "steeper" if fit.alpha > high else "shallower"
    return AlphaVerdict(
        alpha=fit.alpha,
        alpha_std=fit.alpha_std,
        expected=(float(low), float(high)),
        relation=relation,
        reasons=tuple(reasons),
    )


# --------------------------------------------------------------------------- the fit


def fit_power_law(
    sizes: Sequence[float],
    maes: Sequence[float],
    *,
    metric: str = "force",
    n_bootstrap: int = 200,
    seed: int = 0,
) -> PowerLawFit:
    """Fit ``A·N^-α + B`` to per-run errors (one entry per run: N and its MAE).

    Runs at the same N are averaged; each mean is weighted by its standard
    error ``std / sqrt(n_seeds)`` (sizes with one seed, or zero spread, get
    the median relative error of the others). Bounds: ``A > 0``,
    ``0 < α ≤ 5``, ``B ≥ 0``. The bootstrap resamples the runs within each N
    with replacement and refits (``seed`` seeds it).
    """
    n, y = _checked_runs(sizes, maes)
    unit = METRICS[metric][1] if metric in METRICS else ""
    groups = [y[n == size] for size in np.unique(n)]
    x = np.unique(n)
    means, sigmas, from_seeds = _means_and_sigmas(groups)
    params = _weighted_fit(x, means, sigmas)
    residual = (power_law(x, *params) - means) / sigmas
    dof = len(x) - 3
    reduced_chi2 = float(residual @ residual / dof) if dof > 0 else float("nan")
    total = ((means - means.mean()) ** 2).sum()
    r2 = float(1 - ((power_law(x, *params) - means) ** 2).sum() / total) if total > 0 else 1.0

    rng = np.random.default_rng(seed)
    resampled = []
    if any(len(g) > 1 for g in groups):
        for _ in range(n_bootstrap):
            draw = [rng.choice(g, size=len(g), replace=True) for g in groups]
            m, s, _ = _means_and_sigmas(draw, fallback=sigmas / means)
            resampled.append(_weighted_fit(x, m, s))
    bootstrap = np.array(resampled).reshape(-1, 3)
    stds = bootstrap.std(axis=0, ddof=1) if len(bootstrap) > 1 else np.full(3, np.nan)
    return PowerLawFit(
        metric=metric,
        unit=unit,
        a=float(params[0]),
        alpha=float(params[1]),
        b=float(params[2]),
        a_std=float(stds[0]),
        alpha_std=float(stds[1]),
        b_std=float(stds[2]),
        reduced_chi2=reduced_chi2,
        r2=r2,
        sizes=tuple(int(v) for v in x),
        means=tuple(float(v) for v in means),
        sigmas=tuple(float(v) for v in sigmas),
        sigma_from_seeds=from_seeds,
        bootstrap=bootstrap,
    )


def _checked_runs(sizes, maes) -> tuple[np.ndarray, np.ndarray]:
    """Validated per-run sizes and MAEs as float arrays."""
    n = np.asarray(sizes, dtype=float).ravel()
    y = np.asarray(maes, dtype=float).ravel()
    if len(n) != len(y):
        raise LearningCurveInputError(
            f"sizes and maes must have one entry per run; got {len(n)} sizes and {len(y)} maes"
        )
    if not (np.isfinite(n).all() and np.isfinite(y).all()):
        raise LearningCurveInputError("sizes and maes must be finite; found NaN or inf")
    if (n <= 0).any():
        raise LearningCurveInputError(
            f"sizes must be positive numbers of structures, got {sorted(set(n[n <= 0].tolist()))}; "
            "zero-shot (N = 0) is a reference line, not a point of the fit"
        )
    if (y <= 0).any():
        raise LearningCurveInputError(
            f"maes must be positive, got {sorted(set(y[y <= 0].tolist()))}; "
            "a mean absolute error is never negative, and zero would mean test data leaked "
            "into training"
        )
    distinct = len(np.unique(n))
    if distinct < 3:
        raise LearningCurveInputError(
            f"A·N^-α + B has 3 parameters; need at least 3 distinct sizes, got {distinct}"
        )
    return n, y


_ROUNDING = 1e-6  # relative spread of identical training runs that rounding alone produces


def _means_and_sigmas(groups, *, fallback=None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Mean of each group and the standard error of that mean, with a fallback where unknown.

    ``fallback``: relative errors to use where a group cannot give one
    (bootstrap draws of identical runs); else the median relative error of
    the groups that have one, else 10%. A spread below ``_ROUNDING`` of the
    mean is rounding noise, not a seed spread (every seed drew the same
    structures, as when N is the whole pool), and counts as unknown.
    """
    means = np.array([g.mean() for g in groups])
    sigmas = np.array([g.std(ddof=1) / np.sqrt(len(g)) if len(g) > 1 else 0.0 for g in groups])
    known = sigmas > _ROUNDING * means
    if fallback is not None:
        relative = np.asarray(fallback)
    elif known.any():
        relative = np.full(len(means), np.median(sigmas[known] / means[known]))
    else:
        relative = np.full(len(means), 0.1)
    sigmas = np.where(known, sigmas, relative * means)
    return means, sigmas, bool(known.any())


def _weighted_fit(x, y, sigma) -> np.ndarray:
    """Bounded weighted least squares of ``power_law(x) - y``, as ``(A, α, B)``.

    For a fixed α the model is linear in A and B, so the bounded 2-parameter
    problem is solved exactly (``_linear_part``) and only α is searched: on a
    log grid over (0, 5], then refined by a bounded scalar minimisation
    around the best grid point. This finds the global minimum in α, which a
    local solver started from one guess may miss.
    """
    from scipy.optimize import minimize_scalar

    w2 = 1.0 / np.asarray(sigma, dtype=float) ** 2
    grid = np.geomspace(*ALPHA_BOUNDS, 241)
    costs = _linear_part(grid, x, y, w2)[0]
    i = int(np.argmin(costs))
    best = minimize_scalar(
        lambda alpha: _linear_part(np.array([alpha]), x, y, w2)[0][0],
        bounds=(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]),
        method="bounded",
        options={"xatol": 1e-7},
    )
    alpha = np.array([best.x if best.fun <= costs[i] else grid[i]])
    _, a, b = _linear_part(alpha, x, y, w2)
    return np.array([max(a[0], 1e-12), alpha[0], b[0]])


def _linear_part(alphas, x, y, w2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted χ², A and B minimising χ² at each fixed α, with A ≥ 0 and B ≥ 0.

    Candidates: the unconstrained 2x2 normal-equation solution, B = 0 (A
    alone), A = 0 (B alone, a flat line); the best feasible one per α.
    """
    basis = x[None, :] ** (-alphas[:, None])  # (alphas, sizes)
    sbb, sb1, s11 = (w2 * basis * basis).sum(1), (w2 * basis).sum(1), w2.sum()
    sby, s1y = (w2 * basis * y).sum(1), (w2 * y).sum()
    det = sbb * s11 - sb1 * sb1
    with np.errstate(divide="ignore", invalid="ignore"):
        free = ((sby * s11 - s1y * sb1) / det, (sbb * s1y - sb1 * sby) / det)
    candidates = [
        free,
        (np.maximum(sby / sbb, 0.0), np.zeros_like(sbb)),
        (np.zeros_like(sbb), np.full_like(sbb, max(s1y / s11, 0.0))),
    ]
    best = np.full(len(alphas), np.inf), np.zeros(len(alphas)), np.zeros(len(alphas))
    for a, b in candidates:
        residual = a[:, None] * basis + b[:, None] - y
        cost = (w2 * residual * residual).sum(1)
        cost = np.where((a >= 0) & (b >= 0) & np.isfinite(cost), cost, np.inf)
        better = cost < best[0]
        best = tuple(np.where(better, new, old) for new, old in zip((cost, a, b), best))
    return best


def _percentiles(values: np.ndarray, quantiles) -> tuple[float, ...]:
    """Nearest-rank quantiles (they may be ``inf``); NaN for no values."""
    ordered = np.sort(values)
    if not len(ordered):
        return tuple(float("nan") for _ in quantiles)
    return tuple(float(ordered[round(q * (len(ordered) - 1))]) for q in quantiles)


def _metric_attribute(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    return METRICS[metric][0]


def _fmt_n(n: float) -> str:
    """Structures for a message: ∞, two significant digits below 10, else a whole number."""
    if not np.isfinite(n):
        return "∞"
    return f"{n:.2g}" if n < 10 else f"{n:,.0f}"


# --------------------------------------------------------------------------- cache keys


def model_key(model) -> str:
    """What identifies a starting model: registry name, file sha256, or parameter hash.

    ``None`` (scratch with the default architecture) is ``"none"``.
    """
    if model is None:
        return "none"
    if isinstance(model, (str, os.PathLike)):
        from course_lib.models import REGISTRY, resolve_model_name

        name = resolve_model_name(model)
        if name in REGISTRY:
            return name
        return "sha256:" + ds.sha256_of(name)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "params-sha256:" + digest.hexdigest()


def frames_hash(frames: Sequence[Atoms]) -> str:
    """sha256 over the geometry and labels of ``frames``, in order."""
    digest = hashlib.sha256()
    for atoms in frames:
        for array in (
            atoms.numbers,
            atoms.positions,
            np.asarray(atoms.cell),
            atoms.pbc,
            np.atleast_1d(float(atoms.info[ds.ENERGY_KEY])),
            atoms.arrays[ds.FORCES_KEY],
        ):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def run_key(
    *, model: str, regime: str, n_train: int, seed: int, energy_only: bool, settings, train, test
) -> dict:
    """The JSON-able identity of one run: same key, same numbers."""
    return {
        "model": model,
        "regime": regime,
        "n_train": int(n_train),
        "seed": int(seed),
        "energy_only": bool(energy_only),
        "settings": _jsonable(settings),
        "train_sha256": frames_hash(train),
        "test_sha256": frames_hash(test),
    }


def keyed_settings(regime: str, settings: Mapping) -> dict:
    """Every ``FineTuner`` setting of a run, defaults filled in, minus those keyed apart.

    An explicit default and an omitted one give the same key, and a changed
    default in ``FineTuner`` gives a new one. Unknown names fail here.
    """
    from course_lib.finetune import FineTuner

    try:
        params = FineTuner(regime=regime, **settings).get_params()
    except TypeError as err:
        raise ValueError(f"not a FineTuner setting: {err}") from None
    return {k: v for k, v in params.items() if k not in _UNKEYED_SETTINGS}


def run_path(key: dict, folder: Path) -> Path:
    """``folder/<regime>-n<N>-s<seed>-<E|EF>-<digest>.json`` for a run key."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    kind = "E" if key["energy_only"] else "EF"
    return folder / f"{key['regime']}-n{key['n_train']}-s{key['seed']}-{kind}-{digest}.json"


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **_jsonable(dataclasses.asdict(value))}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(
        f"setting value {value!r} ({type(value).__name__}) cannot be part of a cache key; "
        "pass plain numbers, strings, dicts or a MaceArchitecture"
    )


def _read_record(path: Path, key: dict) -> dict | None:
    """The stored record at ``path`` if it exists, is readable and has exactly this key."""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("key") == key else None


def _read_run(path: Path, key: dict) -> CurvePoint | None:
    record = _read_record(path, key)
    return CurvePoint(**record["point"], cached=True) if record else None


def _write_run(path: Path, key: dict, point: CurvePoint, test_metrics: dict) -> None:
    point_fields = {k: v for k, v in point.as_dict().items() if k != "cached"}
    record = {"key": key, "point": point_fields, "test": test_metrics, "written": time.time()}
    ds.atomic_write_text(path, json.dumps(record, indent=2, default=float) + "\n")


# --------------------------------------------------------------------------- the runner


def curve_sizes(sizes: Sequence[int], pool_size: int) -> tuple[int, ...]:
    """Sizes that fit the pool; those above it are replaced (once) by the whole pool."""
    sizes = sorted({int(n) for n in sizes})
    if not sizes or sizes[0] < 1:
        raise LearningCurveInputError(f"sizes must be positive integers, got {sizes}")
    kept = [n for n in sizes if n <= pool_size]
    if len(kept) < len(sizes):
        logger.info(
            "training pool has %d structures: sizes %s capped",
            pool_size,
            [n for n in sizes if n > pool_size],
        )
        kept.append(pool_size)
    return tuple(sorted(set(kept)))


def run_learning_curve(
    model,
    train_pool: Sequence[Atoms],
    test_frames: Sequence[Atoms],
    *,
    regime: str,
    sizes: Sequence[int] = DEFAULT_SIZES,
    seeds: int | Sequence[int] = 3,
    energy_only: bool = False,
    zero_shot: bool = True,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    **settings,
) -> LearningCurve:
    """Train ``regime`` on ``subset(train_pool, N, seed)`` for each N and seed; test on ``test_frames``.

    ``model`` is a registered name, a MACE file, a loaded module, or None
    (scratch only). ``settings`` are ``FineTuner`` keywords (``max_epochs``,
    ``solver``, ``architecture``, ...); ``energy_only=True`` sets
    ``forces_weight=0``. ``seeds`` is a count (0, 1, ...) or explicit seeds;
    one seed draws nested subsets as N grows. N counts every structure given
    to training, the validation share (``valid_fraction``) included. Each run is stored under
    ``cache_dir`` (default ``work_dir("learning-curves")``) as soon as it
    finishes; with ``cache=True`` stored runs with the same key are read
    instead of retrained. ``zero_shot`` adds the starting model's test errors
    (few-shot and full only).
    """
    from tqdm.auto import tqdm

    reserved = sorted(set(settings) & {"seed", "forces_weight", "progress", "model", "out"})
    if reserved:
        raise ValueError(
            f"{reserved} are set by the runner: use seeds=..., energy_only=True (forces_weight=0), "
            "progress=..., and the model as the first argument"
        )
    train_pool, test_frames = list(train_pool), list(test_frames)
    ds.validate_frames(train_pool, source="train_pool", require_pbc=False)
    ds.validate_frames(test_frames, source="test_frames", require_pbc=False)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("need at least one seed")
    plan = [(n, s) for n in curve_sizes(sizes, len(train_pool)) for s in seed_list]
    folder = Path(cache_dir) if cache_dir is not None else work_dir("learning-curves")
    key_of_model = model_key(model)
    settings_key = keyed_settings(regime, settings)
    run_settings = {**settings, "forces_weight": 0.0 if energy_only else LossWeights().forces}
    loaded = _LazyModel(model, dtype=settings.get("dtype", "float64"))

    runs = []
    for n, seed in plan:
        train = ds.subset(train_pool, n, seed=seed)
        key = run_key(
            model=key_of_model,
            regime=regime,
            n_train=n,
            seed=seed,
            energy_only=energy_only,
            settings=settings_key,
            train=train,
            test=test_frames,
        )
        path = run_path(key, folder)
        runs.append((n, seed, train, key, path, _read_run(path, key) if cache else None))
    todo = [run for run in runs if run[-1] is None]
    if todo and _shares_one_design(regime, settings):
        shared = SharedClosedForm(
            loaded.get(), [run[2] for run in todo], test_frames, **run_settings
        )
        train_one = shared.fit
    else:

        def train_one(train, seed):
            result = run_regime(
                loaded.get(), train, test_frames, regime=regime, seed=seed, progress=False,
                **run_settings,
            )  # fmt: skip
            return result.test, result.n_labels, result.fit_time_s

    points = []
    bar = tqdm(runs, desc=f"{regime} learning curve", disable=not progress)
    for n, seed, train, key, path, point in bar:
        if point is None:
            test_metrics, n_labels, fit_time_s = train_one(train, seed)
            point = CurvePoint(
                n_train=n,
                seed=seed,
                energy_mae_meV_per_atom=test_metrics.energy_mae_meV_per_atom,
                force_mae_meV_per_A=test_metrics.force_mae_meV_per_A,
                n_labels=n_labels,
                fit_time_s=fit_time_s,
            )
            _write_run(path, key, point, test_metrics.as_dict())
        points.append(point)
        bar.set_postfix(N=n, seed=seed, F=f"{point.force_mae_meV_per_A:.0f} meV/Å")
    bar.close()
    reference = None
    if zero_shot and model is not None and regime != "scratch":
        reference = _cached_zero_shot(loaded, key_of_model, test_frames, folder, cache=cache)
    return LearningCurve(
        model=key_of_model,
        regime=regime,
        energy_only=energy_only,
        points=tuple(points),
        n_test=len(test_frames),
        zero_shot=reference,
    )


# --------------------------------------------------------------------------- closed form, shared


def _shares_one_design(regime: str, settings: Mapping) -> bool:
    """Whether the runs can share ``SharedClosedForm``'s design pass (same numbers as ``run_regime``)."""
    from course_lib.finetune import FineTuner

    params = FineTuner(regime=regime, **settings).get_params()
    return (
        regime == "few-shot"
        and params["solver"] == "closed-form"
        and params["trainable"] == "readouts"
        and params["e0s"] == "refit"
    )


@dataclass(frozen=True)
class ReadoutDesign:
    """What the closed-form readout fit needs of each structure, computed once for many fits.

    For structure i with n_i atoms: ``energy_rows[i]`` is dE_i/d(readout
    weights, then E0 per model element) in eV per unit parameter,
    ``force_rows[i]`` (3n_i x weights) is dF_i/d(readout weights) in eV/Å,
    ``energies[i]`` (eV) and ``forces[i]`` (n_i x 3, eV/Å) the frozen
    model's predictions. The model is linear in these parameters, so a fit's
    predictions are these plus rows · Δ, exactly. ``force_rows`` is None when
    computed without forces.
    """

    energy_rows: np.ndarray
    force_rows: list[np.ndarray] | None
    energies: np.ndarray
    forces: list[np.ndarray] | None
    n_weights: int

    def predict(self, delta: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Energies (eV) and forces (eV/Å) after adding ``delta`` to the parameters."""
        weights = delta[: self.n_weights]
        forces = [
            f + (rows @ weights).reshape(-1, 3) for f, rows in zip(self.forces, self.force_rows)
        ]
        return self.energies + self.energy_rows @ delta, forces


def readout_design(
    model, frames: Sequence[Atoms], *, with_forces: bool = True, batch_size: int = 16
) -> ReadoutDesign:
    """``ReadoutDesign`` of ``frames`` for a frozen MACE ``model`` (the closed form's columns).

    With forces this costs one backward pass per readout weight and batch:
    the price of one closed-form fit on ``frames``, paid once for every subset.
    """
    from course_lib.finetune import readout_design_rows, readout_linears
    from course_lib.graphs import graph_loader
    from course_lib.mace_models import model_elements
    from course_lib.zero_shot import composition_matrix

    layers = readout_linears(model)
    device = next(model.parameters()).device
    parts = {"energy_rows": [], "energies": [], "force_rows": [], "forces": []}
    for batch in graph_loader(frames, model, batch_size=batch_size):
        energy_rows, force_rows, energies, forces = (
            None if t is None else t.double().cpu().numpy()
            for t in readout_design_rows(model, batch.to(device), layers, with_forces=with_forces)
        )
        parts["energy_rows"].append(energy_rows)
        parts["energies"].append(energies)
        if with_forces:
            ptr = batch.ptr.cpu().numpy()
            for low, high in zip(ptr[:-1], ptr[1:]):
                parts["force_rows"].append(force_rows[3 * low : 3 * high])
                parts["forces"].append(forces[low:high])
    composition = composition_matrix(frames, model_elements(model))
    return ReadoutDesign(
        energy_rows=np.hstack([np.concatenate(parts["energy_rows"]), composition]),
        force_rows=parts["force_rows"] if with_forces else None,
        energies=np.concatenate(parts["energies"]),
        forces=parts["forces"] if with_forces else None,
        n_weights=sum(layer.weight.numel() for layer in layers.values()),
    )


def solve_readouts(
    design: ReadoutDesign,
    frames: Sequence[Atoms],
    *,
    energy_weight: float,
    forces_weight: float,
    ridge: float,
) -> np.ndarray:
    """Δ(readout weights, E0s) of ``finetune.fit_readouts_closed_form`` on ``frames``.

    The same weighted least squares: energies per atom with weight
    ``energy_weight / n_structures``, force components with ``forces_weight /
    n_components``, and the ridge ``ridge * mean(diag A'WA)`` on the weights only.
    """
    n_atoms = ds.n_atoms(frames)[:, None]
    rows = design.energy_rows / n_atoms
    target = (ds.energies(frames) - design.energies) / n_atoms[:, 0]
    normal = energy_weight / len(frames) * rows.T @ rows
    rhs = energy_weight / len(frames) * rows.T @ target
    if forces_weight > 0:
        rows = np.vstack(design.force_rows)
        target = np.concatenate([(f - p).ravel() for f, p in zip(ds.forces(frames), design.forces)])
        weight = forces_weight / len(target)
        normal[: design.n_weights, : design.n_weights] += weight * rows.T @ rows
        rhs[: design.n_weights] += weight * rows.T @ target
    penalty = np.zeros(len(rhs))
    penalty[: design.n_weights] = ridge * np.mean(np.diag(normal)[: design.n_weights])
    return np.linalg.lstsq(normal + np.diag(penalty), rhs, rcond=None)[0]


class SharedClosedForm:
    """Few-shot closed-form fits of many training subsets, sharing one design pass.

    ``run_regime(model, train, test, regime="few-shot", solver="closed-form")``
    computes the readout design of its N structures and then predicts the
    test set. For a learning curve, the design of every structure of any
    subset (and of the test set) is computed once, here, and each fit is one
    small linear solve: the same numbers as ``run_regime`` (up to rounding),
    for the cost of one pass over the frames instead of one per run.
    ``fit_time_s`` of a fit charges it its structures' share of the design
    pass plus its solve.
    """

    def __init__(self, model, train_sets: Sequence[Sequence[Atoms]], test_frames, **settings):
        import copy

        import torch

        from course_lib.finetune import FineTuner, check_elements
        from course_lib.mace_models import DTYPES, warn_if_compositions_collinear
        from course_lib.models import resolve_device

        params = FineTuner(regime="few-shot", **settings).get_params()
        self.energy_weight = params["energy_weight"]
        self.forces_weight = params["forces_weight"]
        self.ridge = params["ridge"]
        frames = list({id(atoms): atoms for train in train_sets for atoms in train}.values())
        check_elements(model, [*frames, *test_frames], regime="few-shot")
        warn_if_compositions_collinear(frames)
        frozen = copy.deepcopy(model).to(DTYPES[params["dtype"]])
        frozen = frozen.to(torch.device(resolve_device(params["device"]))).eval()
        frozen.requires_grad_(False)
        began = time.perf_counter()
        designs = readout_design(frozen, frames, with_forces=self.forces_weight > 0)
        self.seconds_per_structure = (time.perf_counter() - began) / len(frames)
        self.row = {id(atoms): i for i, atoms in enumerate(frames)}
        self.designs = designs
        self.test_frames = list(test_frames)
        self.test = readout_design(frozen, self.test_frames, with_forces=True)

    def _select(self, train: Sequence[Atoms]) -> ReadoutDesign:
        index = [self.row[id(atoms)] for atoms in train]
        d = self.designs
        return ReadoutDesign(
            energy_rows=d.energy_rows[index],
            force_rows=None if d.force_rows is None else [d.force_rows[i] for i in index],
            energies=d.energies[index],
            forces=None if d.forces is None else [d.forces[i] for i in index],
            n_weights=d.n_weights,
        )

    def fit(self, train: Sequence[Atoms], seed: int = 0):
        """Test metrics (``ErrorMetrics``), labels trained on, and seconds for one subset.

        ``seed`` is unused: the closed form has no randomness (kept for the runner's signature).
        """
        from course_lib.zero_shot import Predictions, error_metrics

        began = time.perf_counter()
        delta = solve_readouts(
            self._select(train),
            train,
            energy_weight=self.energy_weight,
            forces_weight=self.forces_weight,
            ridge=self.ridge,
        )
        energies, forces = self.test.predict(delta)
        metrics = error_metrics(
            self.test_frames, Predictions(model="closed form", energies=energies, forces=forces)
        )
        seconds = time.perf_counter() - began + len(train) * self.seconds_per_structure
        return metrics, ds.n_labels(train, with_forces=self.forces_weight > 0), seconds


def zero_shot_errors(model, test_frames: Sequence[Atoms]) -> dict[str, float]:
    """The N = 0 line: the starting model's test MAE, energies aligned per element.

    Returns ``{"energy": meV/atom, "force": meV/Å}``.
    """
    from course_lib.zero_shot import evaluate

    aligned = evaluate(model, test_frames, dataset="test_frames").aligned
    return {"energy": aligned.energy_mae_meV_per_atom, "force": aligned.force_mae_meV_per_A}


def _cached_zero_shot(loaded, key_of_model, test_frames, folder: Path, *, cache: bool) -> dict:
    """``zero_shot_errors``, stored and reused like a run (keyed by model and test frames)."""
    key = {"model": key_of_model, "regime": "zero-shot", "test_sha256": frames_hash(test_frames)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = folder / f"zero-shot-{digest}.json"
    record = _read_record(path, key) if cache else None
    if record is None:
        record = {"key": key, "errors": zero_shot_errors(loaded.get(), test_frames)}
        ds.atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record["errors"]


class _LazyModel:
    """Loads the starting model on first use only, so a fully cached curve loads nothing."""

    def __init__(self, model, *, dtype: str):
        self.model = model
        self.dtype = dtype

    def get(self):
        if self.model is None or not isinstance(self.model, (str, os.PathLike)):
            return self.model
        if not hasattr(self, "module_"):
            from course_lib.finetune import load_model

            self.module_ = load_model(self.model, dtype=self.dtype)
        return self.module_
