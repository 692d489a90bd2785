"""The scaling law of learning curves: MAE(N) = A·N^-α + B, fitted and judged.

``A`` is a system-dependent prefactor, ``α`` the learning exponent (the
chapter: 0.3-0.5 for force errors), ``B`` the irreducible floor; N counts
training structures.

* ``fit_power_law``: weighted non-linear least squares with bounds
  ``A > 0, α > 0, B ≥ 0`` (weights from the seed spread), uncertainties from
  a bootstrap over seeds;
* ``PowerLawFit.n_for``: the N needed to reach a target MAE, or a plain
  statement that the target lies below the floor;
* ``alpha_verdict``: α against an expected range, or why the curve cannot pin it.

Pure numbers: nothing here trains (``course_lib.learning_curve`` runs the curves).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# metric -> (CurvePoint attribute, unit)
METRICS = {
    "force": ("force_mae_meV_per_A", "meV/Å"),
    "energy": ("energy_mae_meV_per_atom", "meV/atom"),
}
ALPHA_BOUNDS = (1e-3, 5.0)  # the range of α the fit searches
# The chapter's empirical range of the learning exponent α of force errors.
CHAPTER_ALPHA = (0.3, 0.5)

#: A published learning curve to set beside ours: MACE trained from scratch on rMD17,
#: force MAE (meV/Å) with 50 and with 950 training configurations (the table's "1000"
#: column: 950 for training, 50 for validation). Batatia, Kovács, Simm, Ortner and Csányi,
#: "MACE: Higher Order Equivariant Message Passing Neural Networks for Fast and Accurate Force
#: Fields", NeurIPS 2022, arXiv:2206.07697, Table 1 (MACE columns).
MACE_RMD17_FORCE_MAE_meV_per_A = {  # molecule: (N = 50, N = 950)
    "aspirin": (43.9, 6.6),
    "azobenzene": (17.7, 3.0),
    "benzene": (2.7, 0.3),
    "ethanol": (32.6, 2.1),
    "malonaldehyde": (43.3, 4.1),
    "naphthalene": (9.2, 1.6),
    "paracetamol": (31.5, 4.8),
    "salicylic acid": (28.4, 3.1),
    "toluene": (12.1, 1.5),
    "uracil": (25.9, 2.1),
}
MACE_RMD17_SIZES = (50, 950)
MACE_RMD17_SOURCE = (
    "Batatia et al., MACE, NeurIPS 2022 (arXiv:2206.07697), Table 1: MACE trained on 50 and on "
    "950 rMD17 configurations"
)


def two_point_alpha(mae_small: float, mae_large: float, n_small: float, n_large: float) -> float:
    """The slope of a learning curve through two points, ``ln(MAE₁/MAE₂) / ln(N₂/N₁)``.

    It equals α of ``A·N^-α`` when the floor B is negligible at both sizes (a lower
    bound of α otherwise: a floor flattens the curve).
    """
    return float(np.log(mae_small / mae_large) / np.log(n_large / n_small))


def rmd17_scratch_alphas() -> dict[str, float]:
    """Two-point α of MACE from scratch on each rMD17 molecule (``MACE_RMD17_FORCE_MAE_meV_per_A``)."""
    small, large = MACE_RMD17_SIZES
    return {
        molecule: two_point_alpha(f_small, f_large, small, large)
        for molecule, (f_small, f_large) in MACE_RMD17_FORCE_MAE_meV_per_A.items()
    }


# A three-parameter law fitted to three sizes passes through every point (R² = 1 whatever
# the data): at least one degree of freedom is required.
MIN_SIZES = 4
# An N-for-target estimate is given only within this factor of the measured sizes.
MAX_EXTRAPOLATION = 3.0


class LearningCurveInputError(ValueError):
    """Sizes and errors given to the fit are unusable; the message says which and why."""


def power_law(n, a: float, alpha: float, b: float):
    """``A · N^-α + B`` (same units as ``A`` and ``B``)."""
    return a * np.asarray(n, dtype=float) ** (-alpha) + b


def n_for_target(target: float, a: float, alpha: float, b: float) -> float:
    """N with ``power_law(N) = target``: ``(A / (target - B))^(1/α)``; ``inf`` if target ≤ B."""
    if target <= b:
        return float("inf")
    return float((a / (target - b)) ** (1.0 / alpha))


@dataclass(frozen=True)
class TargetEstimate:
    """The N needed to reach a target MAE, from the best fit and its bootstrap.

    ``n`` is ``inf`` when the target lies at or below the fitted floor B.
    ``n_low``/``n_high`` are the 16th and 84th percentiles over bootstrap fits
    (``inf`` where the target is below the floor in that many fits);
    ``reachable_fraction`` is the share of bootstrap fits whose floor lies
    below the target. ``measured`` is the (smallest, largest) N the fit saw:
    an ``n`` outside it is an extrapolation of the law, and the message says so.
    ``refused`` says why no estimate is given (α not pinned, or ``n`` beyond
    ``MAX_EXTRAPOLATION`` times the measured range); ``n`` is then NaN.
    """

    target: float
    unit: str
    n: float
    n_low: float
    n_high: float
    reachable_fraction: float
    floor: float
    measured: tuple[int, int] | None = None
    refused: str = ""

    @property
    def reachable(self) -> bool:
        return bool(np.isfinite(self.n))

    def message(self) -> str:
        if self.refused:
            return f"no estimate for a target of {self.target:g} {self.unit}: {self.refused}"
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

    def n_for(
        self, target: float, *, max_extrapolation: float = MAX_EXTRAPOLATION
    ) -> TargetEstimate:
        """Structures needed for ``target`` MAE (``unit``), with its bootstrap range.

        Refused (``TargetEstimate.refused``) when α is not pinned
        (``pinning_problems``) or when the answer lies more than
        ``max_extrapolation`` times beyond the measured sizes: the law is a
        description of the measured range, not a forecast.
        """
        if not (np.isfinite(target) and target > 0):
            raise LearningCurveInputError(f"target MAE must be positive and finite, got {target}")
        draws = np.array([n_for_target(target, *row) for row in self.bootstrap])
        reachable = np.isfinite(draws).mean() if len(draws) else float("nan")
        low, high = _percentiles(draws, (0.16, 0.84))
        smallest, largest = min(self.sizes), max(self.sizes)
        n = n_for_target(target, self.a, self.alpha, self.b)
        refused = ""
        problems = pinning_problems(self)
        if problems:
            refused = f"this curve cannot pin α ({'; '.join(problems)})"
        elif (
            np.isfinite(n) and not smallest / max_extrapolation <= n <= largest * max_extrapolation
        ):
            refused = (
                f"the answer lies more than {max_extrapolation:g}x outside the measured sizes "
                f"{smallest}-{largest}, where the law is not trusted; measure larger N"
            )
        return TargetEstimate(
            target=float(target),
            unit=self.unit,
            n=float("nan") if refused else n,
            n_low=float("nan") if refused else float(low),
            n_high=float("nan") if refused else float(high),
            reachable_fraction=float(reachable),
            floor=self.b,
            measured=(smallest, largest),
            refused=refused,
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


def pinning_problems(fit: PowerLawFit, *, min_span: float = 10.0) -> list[str]:
    """Why a fit does not pin α (empty when it does).

    The sizes span less than ``min_span`` (over a shorter range α and B
    trade off against each other); one seed per size (no bootstrap); a
    bootstrap standard deviation above half of α; or α at a bound of the fit.
    """
    problems = []
    span = max(fit.sizes) / min(fit.sizes)
    if span < min_span:
        problems.append(f"the sizes span a factor {span:.0f} only, less than {min_span:g}")
    if not np.isfinite(fit.alpha_std):
        problems.append("one seed per size gives no bootstrap uncertainty")
    elif fit.alpha_std > 0.5 * fit.alpha:
        problems.append(f"its bootstrap uncertainty {fit.alpha_std:.2f} exceeds half its value")
    if fit.alpha >= 0.99 * ALPHA_BOUNDS[1] or fit.alpha <= 1.01 * ALPHA_BOUNDS[0]:
        problems.append(f"the fit sits at the bound α = {fit.alpha:.3g}")
    return problems


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
    reasons = pinning_problems(fit, min_span=min_span)
    if not reasons and fit.alpha_std > expected[1] - expected[0]:
        reasons.append(
            f"its bootstrap uncertainty {fit.alpha_std:.2f} exceeds the width of the range "
            f"{expected[0]:g}-{expected[1]:g}"
        )
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
    if distinct < MIN_SIZES:
        raise LearningCurveInputError(
            f"A·N^-α + B has 3 parameters; need at least {MIN_SIZES} distinct sizes, got "
            f"{distinct} (with 3 sizes the curve passes through every mean, whatever the data: "
            "zero degrees of freedom)"
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


def metric_attribute(metric: str) -> str:
    """The ``CurvePoint`` attribute that holds ``metric``'s MAE."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    return METRICS[metric][0]


def _fmt_n(n: float) -> str:
    """Structures for a message: ∞, two significant digits below 10, else a whole number."""
    if not np.isfinite(n):
        return "∞"
    return f"{n:.2g}" if n < 10 else f"{n:,.0f}"
