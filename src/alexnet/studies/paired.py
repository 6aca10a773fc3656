"""Paired statistics for a study whose arms share their seeds: same seed, same initial weights and data order.

Each seed gives one difference (arm minus baseline). Per comparison: the mean difference, a 95% bootstrap
confidence interval of it, the exact two-sided p of the paired permutation (sign-flip) test, the smallest
effect these seeds could have detected, and a verdict from them:

- "holds": the difference goes the way the paper says, p < ALPHA;
- "reversed": it goes the other way, p < ALPHA;
- "not shown at this scale": neither; the minimum detectable effect says what that rules out.

The sign-flip test asks how often a random choice of signs for the differences gives a mean at least as far
from 0 as the one measured (under "no effect" each difference is as likely negative as positive). With n
seeds its smallest p is 2 / 2^n: 0.25 at n = 3, 0.031 at n = 6, so under 6 seeds nothing can reach p < 0.05.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from alexnet.records import PairedComparison

ALPHA = 0.05
POWER = 0.8  # of the minimum detectable effect
BOOTSTRAP_RESAMPLES = 10_000
EXACT_UP_TO = 16  # seeds: 2^16 sign patterns enumerated; more are sampled
HOLDS, REVERSED, NOT_SHOWN = "holds", "reversed", "not shown at this scale"


def sign_flip_p(differences) -> float:
    """Two-sided p of the paired sign-flip test (scipy.stats.permutation_test with one sample flips its signs):
    exact over every sign pattern up to EXACT_UP_TO seeds, sampled (seeded) above."""
    d = np.asarray(differences, np.float64)
    resamples = np.inf if len(d) <= EXACT_UP_TO else 99_999
    result = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=resamples,
                                    alternative="two-sided", random_state=0)
    return float(result.pvalue)


def bootstrap_interval(differences, level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean difference (scipy.stats.bootstrap: seeds resampled with
    replacement, seeded)."""
    d = np.asarray(differences, np.float64)
    if np.all(d == d[0]):  # every resample has the same mean: scipy refuses a degenerate distribution
        return float(d[0]), float(d[0])
    result = stats.bootstrap((d,), np.mean, confidence_level=level, n_resamples=BOOTSTRAP_RESAMPLES,
                             method="percentile", random_state=0)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def minimum_detectable_effect(differences) -> float:
    """The smallest mean difference these seeds would detect at ALPHA with POWER, from the spread of the
    differences (paired t approximation: (t_{1-ALPHA/2} + t_{POWER}) * sd / sqrt(n), n - 1 degrees of
    freedom); infinite when the sign-flip test cannot reach ALPHA at all with this many seeds."""
    d = np.asarray(differences, np.float64)
    n = len(d)
    if n < 2 or 2 / 2**n >= ALPHA:
        return float("inf")
    quantiles = stats.t.ppf(1 - ALPHA / 2, n - 1) + stats.t.ppf(POWER, n - 1)
    return float(quantiles * d.std(ddof=1) / np.sqrt(n))


def paired_comparison(baseline, arm, sign: int) -> PairedComparison:
    """The statistics of the module doc for per-seed values of the baseline and the arm (the same seeds, in
    the same order); sign +1 when the paper predicts the arm's value to be higher, -1 lower."""
    if len(baseline) != len(arm) or not len(arm):
        raise ValueError(f"paired values need the same seeds: {len(baseline)} baseline, {len(arm)} arm values")
    differences = np.asarray(arm, np.float64) - np.asarray(baseline, np.float64)
    mean, p = float(differences.mean()), sign_flip_p(differences)
    verdict = NOT_SHOWN if p >= ALPHA or mean == 0 else (HOLDS if sign * mean > 0 else REVERSED)
    low, high = bootstrap_interval(differences)
    return PairedComparison(differences.tolist(), mean, (low, high), p, minimum_detectable_effect(differences),
                            verdict)
