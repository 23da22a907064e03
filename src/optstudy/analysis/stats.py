"""Statistics of saved results, as pure functions of numbers (the report feeds them from the records):

- paired t intervals over seeds, with a verdict in words (`paired_interval`, `verdict`, `pairwise`);
- tuning curves: the expected best result after k tuning trials (Dodge et al., 2019, "Show Your
  Work"; reference code: github.com/dodgejesse/show_your_work, expected_max_performance.py);
- performance profiles and the AlgoPerf benchmark score (Dahl et al., 2023, "Benchmarking Neural
  Network Training Algorithms"; reference code: github.com/mlcommons/algorithmic-efficiency,
  scoring/performance_profile.py and scoring/score_submissions.py);
- win rates over workloads and seeds.

Every degenerate input gives a stated result (a sentence, nan, or an explicit flag), never an
exception and never a number that looks meaningful.
"""
import math
from dataclasses import dataclass
from itertools import combinations
from typing import NamedTuple

import numpy as np
from scipy import integrate, stats

CONFIDENCE = 0.95
RTOL = 1e-12        # differences below RTOL x the largest |value| compared are rounding, not a difference


# ---------------------------------------------------------------- paired intervals and verdicts

class Interval(NamedTuple):
    """A paired comparison. kind: "t" (a paired t interval in low..high), "constant" (every seed
    has the same non-zero difference: no interval from zero variance; low, high nan), "identical"
    (every difference is zero up to RTOL; mean 0), "one seed" (no interval), "no seeds" (no pair
    with finite values on both sides). excluded: the seeds left out for a non-finite value."""
    mean: float
    low: float
    high: float
    n: int
    kind: str = "t"
    excluded: tuple = ()
    confidence: float = CONFIDENCE


def paired_interval(a, b, confidence=CONFIDENCE, seeds=None):
    """The paired t interval of the mean of d_i = a_i - b_i (the standard method for a few paired
    seeds; a bootstrap of 3-5 values is far too narrow); equals scipy.stats.ttest_rel(a, b)
    .confidence_interval(confidence). Pairs with a nan or inf on either side are left out and
    named in `excluded` (by `seeds` if given, else by position). See Interval for the kinds."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    seeds = list(range(len(a))) if seeds is None else list(seeds)
    ok = np.isfinite(a) & np.isfinite(b)
    excluded = tuple(s for s, good in zip(seeds, ok) if not good)
    a, b = a[ok], b[ok]
    d, n = a - b, int(ok.sum())
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "no seeds", excluded, confidence)
    tol = RTOL * float(max(np.max(np.abs(a)), np.max(np.abs(b))))
    identical = bool(np.all(np.abs(d) <= tol))
    mean = 0.0 if identical else float(np.mean(d))
    if n == 1 or identical:
        kind = "one seed" if n == 1 else "identical"
        return Interval(mean, math.nan, math.nan, n, kind, excluded, confidence)
    if float(np.max(d) - np.min(d)) <= tol:
        return Interval(mean, math.nan, math.nan, n, "constant", excluded, confidence)
    sem = float(np.std(d, ddof=1)) / math.sqrt(n)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return Interval(mean, float(low), float(high), n, "t", excluded, confidence)


def verdict(name_a, name_b, what, interval, higher_is_better, unit=""):
    """One plain sentence for an Interval: which is better and by how much, that the difference
    is within the noise, or why there is no verdict (no seeds, one seed, identical, constant)."""
    mean, low, high, n, kind, excluded, confidence = interval
    head = f"{name_a} vs {name_b}, {what}:"
    left_out = (f"; seed{'s' if len(excluded) > 1 else ''} {', '.join(map(str, excluded))} left out "
                "(no finite value on both sides)") if excluded else ""
    better, worse = (name_a, name_b) if (mean > 0) == higher_is_better else (name_b, name_a)
    if kind == "no seeds":
        return f"{head} no seed has a finite value for both{left_out}; no verdict."
    if kind == "one seed":
        return f"{head} one seed only ({mean:+.3g}{unit}){left_out}; no interval, no verdict."
    if kind == "identical":
        return f"{head} identical on every seed ({n} paired seeds){left_out}."
    if kind == "constant":
        return (f"{head} {better} is better by {abs(mean):.3g}{unit} on each of {n} paired seeds: the difference "
                f"is the same on every seed ({name_a} - {name_b} = {mean:+.3g}); no interval from zero "
                f"variance{left_out}.")
    ci = f"{confidence:.0%} CI {low:+.3g} to {high:+.3g}{unit}, {n} paired seeds{left_out}"
    if low <= 0 <= high:
        return f"{head} the difference ({mean:+.3g}{unit}; {ci}) is within the noise."
    return f"{better} beats {worse} on {what} by {abs(mean):.3g}{unit} ({name_a} - {name_b} = {mean:+.3g}; {ci})."


def pairwise(results, what, higher_is_better, unit="", exclude=None, confidence=CONFIDENCE):
    """results: {name: {seed: value}} -> [(a, b, Interval, sentence)] for every pair, on the seeds
    both have (the same seed: the same initialisation and data order), less the seeds in
    exclude[a] and exclude[b] (exclude: {name: seeds}, e.g. the seed that picked the setting must
    not judge it). A pair with no seed left gets a row of kind "no seeds". Count the intervals
    with `intervals_made(rows)` for `comparisons_note`."""
    exclude = exclude or {}
    rows = []
    for a, b in combinations(results, 2):
        dropped = set(exclude.get(a, ())) | set(exclude.get(b, ()))
        seeds = sorted(set(results[a]) & set(results[b]) - dropped)
        interval = paired_interval([results[a][s] for s in seeds], [results[b][s] for s in seeds],
                                   confidence, seeds)
        rows.append((a, b, interval, verdict(a, b, what, interval, higher_is_better, unit)))
    return rows


def intervals_made(rows):
    """How many of pairwise's rows are a real t interval (the comparisons a reader might count)."""
    return sum(interval.kind == "t" for _, _, interval, _ in rows)


def comparisons_note(n, confidence=CONFIDENCE):
    """One sentence on multiple comparisons for n intervals, none corrected (Bonferroni named)."""
    if n == 0:
        return "No interval was computed."
    if n == 1:
        return f"One {confidence:.0%} interval; no multiple comparisons."
    alpha = 1 - confidence
    return (f"{n} {confidence:.0%} intervals, none corrected for multiple comparisons: with no real difference "
            f"anywhere, about {n * alpha:.2g} of them would exclude zero by chance alone (a Bonferroni "
            f"correction would use {1 - alpha / n:.3%} intervals).")


# ---------------------------------------------------------------- tuning curves (Dodge et al., 2019)

@dataclass(frozen=True)
class TuningCurve:
    """The expected best result after k trials, per k in ks. p_diverged[k]: the probability that
    the best of the k trials is a diverged one (then `mean` includes a diverged value: +-inf
    unless a `diverged_value` was given); a figure should mark every k with p_diverged > 0.
    Iterating gives the means (what the old list-returning tuning_curve gave)."""
    ks: list
    mean: list
    p_diverged: list
    replacement: bool
    n: int
    diverged: int

    def __iter__(self):
        return iter(self.mean)

    def __len__(self):
        return len(self.mean)


def rank_weights(n, k, replacement=True):
    """P(the best of k draws is the i-th worst of n results), i = 1..n. With replacement (Dodge et
    al.'s estimator, from the empirical CDF: `_cdf_with_replacement` in expected_max_performance.py):
    (i/n)^k - ((i-1)/n)^k. Without replacement (the expected maximum of k distinct trials):
    [C(i, k) - C(i-1, k)] / C(n, k). None where undefined (k < 1, or k > n without replacement)."""
    if k < 1 or n < 1 or (not replacement and k > n):
        return None
    if replacement:
        return [(i / n) ** k - ((i - 1) / n) ** k for i in range(1, n + 1)]
    return [(math.comb(i, k) - math.comb(i - 1, k)) / math.comb(n, k) for i in range(1, n + 1)]


def tuning_curve(values, ks=None, higher_is_better=True, replacement=True, diverged_value=None):
    """Expected best result after k random tuning trials, k in ks (default 1..N), from N results.
    Default: Dodge et al.'s (2019) expected validation performance, draws WITH replacement from the
    empirical distribution (`samplemax` in github.com/dodgejesse/show_your_work,
    expected_max_performance.py): E = sum_i v_(i) [(i/N)^k - ((i-1)/N)^k], v sorted worst to best;
    k may exceed N. replacement=False: the expected maximum of k distinct trials (nan for k > N).
    A non-finite value (nan or inf) is a diverged trial: the worst result, ranked below every
    finite one and counted as diverged_value (default -inf, or +inf if lower is better)."""
    values = list(values)
    finite = sorted((float(v) for v in values if math.isfinite(v)), reverse=not higher_is_better)
    n, d = len(values), len(values) - len(finite)
    worst = diverged_value if diverged_value is not None else (-math.inf if higher_is_better else math.inf)
    ordered = [worst] * d + finite
    ks = list(range(1, n + 1)) if ks is None else list(ks)
    means, p_diverged = [], []
    for k in ks:
        w = rank_weights(n, k, replacement)
        if w is None:
            means.append(math.nan)
            p_diverged.append(math.nan)
            continue
        p_diverged.append(float(sum(w[:d])))
        means.append(float(sum(wi * x for wi, x in zip(w, ordered) if wi)))   # 0 x inf is no term
    return TuningCurve(ks, means, p_diverged, replacement, n, d)


def expected_best(values, k, higher_is_better=True, replacement=True, diverged_value=None):
    """tuning_curve at one k: Dodge et al.'s expected best of k trials (with replacement by
    default; replacement=False: the expected maximum of k distinct trials)."""
    return tuning_curve(values, [k], higher_is_better, replacement, diverged_value).mean[0]


# ---------------------------------------------------------------- performance profiles (AlgoPerf)

ALGOPERF_TAU_MAX = 4.0
ALGOPERF_TAUS = np.linspace(1.0, ALGOPERF_TAU_MAX, 100)   # score_submissions.py: min_tau 1, max_tau 4, 100 points


def unit_words(unit):
    """What a profile's times are: AlgoPerf's profiles are over training time in seconds; epochs or
    steps make a variant, and the figure and table must say so."""
    if unit in ("s", "seconds"):
        return "training time to target in seconds (AlgoPerf's definition)"
    return f"{unit} to target (a variant: AlgoPerf's profiles use training time in seconds)"


def performance_ratios(times):
    """times: {workload: {optimizer: time to reach the target, in any one unit (say which:
    `unit_words`)}} -> {workload: {optimizer: r = t / the workload's best t}} (AlgoPerf's r,
    compute_performance_profiles in scoring/performance_profile.py). A time that is nan, inf or
    negative means "did not reach", for that optimizer only: its r is inf and the best is taken
    over the others. A workload nobody reached gives inf for all. A best time of 0 (target met
    before training): every optimizer at 0 gets r = 1, every other inf (the limit of t / eps;
    AlgoPerf's pandas code would give 0/0 = nan, counting the workload for nobody; its times,
    measured after training steps, are never 0)."""
    ratios = {}
    for workload, row in times.items():
        valid = {opt: float(t) for opt, t in row.items() if math.isfinite(t) and t >= 0}
        best = min(valid.values(), default=math.inf)
        ratios[workload] = {opt: (math.inf if opt not in valid else 1.0 if valid[opt] == best
                                  else math.inf if best == 0 else valid[opt] / best) for opt in row}
    return ratios


def performance_profile(ratios, optimizer, taus):
    """AlgoPerf's rho(tau) (`rho` in compute_performance_profiles, scoring/performance_profile.py):
    the fraction of ALL workloads on which the optimizer's r <= tau; an optimizer absent from a
    workload, or with r nan, never does; a workload nobody solved counts for nobody. No
    workloads: nan at every tau (no profile)."""
    r = [row.get(optimizer, math.inf) for row in ratios.values()]
    if not r:
        return [math.nan] * len(taus)
    return [sum(x <= tau for x in r) / len(r) for tau in taus]


def profile_score(profile, taus):
    """AlgoPerf's score on a given tau grid (`compute_leaderboard_score(df, normalize=True)` in
    scoring/score_submissions.py): the trapezoid rule over the grid's points, divided by
    (taus[-1] - taus[0]). nan for fewer than two points or a nan profile (no workloads)."""
    if len(taus) < 2 or not all(math.isfinite(p) for p in profile):
        return math.nan
    return float(integrate.trapezoid(profile, taus) / (taus[-1] - taus[0]))


def algoperf_score(ratios, optimizer):
    """The AlgoPerf benchmark score exactly as AlgoPerf computes it: rho on its grid
    np.linspace(1, 4, 100), the trapezoid rule, divided by 4 - 1 (score_submissions.py; its
    cut of times over 4x the best changes nothing on this grid). nan with no workloads."""
    return profile_score(performance_profile(ratios, optimizer, ALGOPERF_TAUS), ALGOPERF_TAUS)


def exact_profile_area(ratios, optimizer, tau_max=ALGOPERF_TAU_MAX):
    """The exact area under the step function rho(tau) over [1, tau_max], divided by tau_max - 1
    (the integral of DOCUMENTATION.md's B_s, which AlgoPerf's code approximates on a 100-point
    grid): the mean over workloads of (tau_max - r) / (tau_max - 1) for r <= tau_max, else 0.
    nan with no workloads, or tau_max <= 1."""
    r = [row.get(optimizer, math.inf) for row in ratios.values()]
    if not r or not tau_max > 1:
        return math.nan
    return sum((tau_max - max(x, 1.0)) / (tau_max - 1) for x in r if x <= tau_max) / len(r)


# ---------------------------------------------------------------- win rates

def win_rates(workloads, names, weighting="pair"):
    """{(a, b): (share of comparisons a wins, pairs)} over workloads: [{optimizer: {seed: FINAL
    lower-is-better score}}] (final values of the selection metric, not the best over epochs).
    Each (workload, seed) both have is a pair; a tie counts half; a nan score (no result) is
    left out; inf (a diverged run) loses to any finite score and ties with inf.
    weighting="pair" (default): every pair weighs the same (a workload with more seeds weighs
    more); "workload": each workload's share first, then their mean (each workload weighs the same).
    An unknown weighting raises ValueError (a wrong call, not a degenerate input)."""
    if weighting not in ("pair", "workload"):
        raise ValueError(f"weighting {weighting!r}: 'pair' or 'workload'")
    out = {}
    for a, b in ((a, b) for a in names for b in names if a != b):
        shares = [outcomes(w[a], w[b]) for w in workloads if a in w and b in w]
        shares = [s for s in shares if s]
        pairs = sum(len(s) for s in shares)
        if pairs:
            pooled = [x for s in shares for x in s]
            rate = np.mean([np.mean(s) for s in shares]) if weighting == "workload" else np.mean(pooled)
            out[(a, b)] = (float(rate), pairs)
    return out


def outcomes(a, b):
    """[1 win, 0.5 tie, 0 loss] of a against b (lower is better) on each seed both have a non-nan score."""
    seeds = [s for s in set(a) & set(b) if not (math.isnan(a[s]) or math.isnan(b[s]))]
    return [1.0 if a[s] < b[s] else 0.5 if a[s] == b[s] else 0.0 for s in sorted(seeds)]
