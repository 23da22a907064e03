"""Statistics of saved results: paired confidence intervals with a verdict in words, and the
expected best result after k tuning trials (Dodge et al., 2019). Pure functions of numbers; the
report feeds them from the records.
"""
import math
from itertools import combinations

import numpy as np
from scipy import integrate, stats

CONFIDENCE = 0.95


def paired_interval(a, b, confidence=CONFIDENCE):
    """(mean, low, high, n) of the per-seed differences a_i - b_i: the paired t interval, the
    standard method for a few paired seeds (a bootstrap of 3-5 values is far too narrow).
    One seed gives no interval (nan, nan)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n, mean = len(d), float(np.mean(d))
    if n < 2:
        return mean, math.nan, math.nan, n
    sem = float(np.std(d, ddof=1)) / math.sqrt(n)
    if sem == 0:
        return mean, mean, mean, n
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return mean, float(low), float(high), n


def verdict(name_a, name_b, what, interval, higher_is_better, unit=""):
    """One plain sentence: which is better and by how much, or that the difference is noise."""
    mean, low, high, n = interval
    ci = f"{CONFIDENCE:.0%} CI {low:+.3g} to {high:+.3g}{unit}, {n} paired seeds"
    if n < 2:
        return f"{name_a} vs {name_b}, {what}: one seed only ({mean:+.3g}{unit}); no interval, no verdict."
    if low <= 0 <= high:
        return f"{name_a} vs {name_b}, {what}: the difference ({mean:+.3g}{unit}; {ci}) is within the noise."
    a_better = (mean > 0) == higher_is_better
    better, worse = (name_a, name_b) if a_better else (name_b, name_a)
    return f"{better} beats {worse} on {what} by {abs(mean):.3g}{unit} ({name_a} - {name_b} = {mean:+.3g}; {ci})."


def pairwise(results, what, higher_is_better, unit=""):
    """results: {name: {seed: value}} -> [(a, b, interval, sentence)] over every pair, on the seeds
    both have (the same seed: the same initialisation and data order)."""
    rows = []
    for a, b in combinations(results, 2):
        seeds = sorted(set(results[a]) & set(results[b]))
        if not seeds:
            continue
        interval = paired_interval([results[a][s] for s in seeds], [results[b][s] for s in seeds])
        rows.append((a, b, interval, verdict(a, b, what, interval, higher_is_better, unit)))
    return rows


def expected_best(values, k, higher_is_better=True):
    """Expected best of k trials drawn without replacement from these N results (Dodge et al., 2019,
    eq. 1): sum_i v_(i) [C(i, k) - C(i-1, k)] / C(N, k), v sorted from worst to best."""
    v = sorted(values, reverse=not higher_is_better)
    n = len(v)
    if not 1 <= k <= n:
        raise ValueError(f"k={k} trials from {n} results")
    weights = [(math.comb(i, k) - math.comb(i - 1, k)) / math.comb(n, k) for i in range(1, n + 1)]
    return float(sum(w * x for w, x in zip(weights, v) if w))     # 0 x inf (a diverged trial) is no term


def tuning_curve(values, higher_is_better=True):
    """[expected best after k trials for k = 1..N]."""
    return [expected_best(values, k, higher_is_better) for k in range(1, len(values) + 1)]


def performance_ratios(times):
    """times: {workload: {optimizer: epochs to reach the target, inf if never}} -> the same with each
    time divided by the workload's best (AlgoPerf's r). A workload no optimizer solved gives inf."""
    ratios = {}
    for workload, row in times.items():
        best = min(row.values())
        ratios[workload] = {opt: t / best if math.isfinite(t) else math.inf for opt, t in row.items()}
    return ratios


def performance_profile(ratios, optimizer, taus):
    """AlgoPerf's rho(tau): the fraction of workloads on which the optimizer reaches the target
    within tau times the best optimizer's epochs; an optimizer absent from a workload never does."""
    r = [row.get(optimizer, math.inf) for row in ratios.values()]
    return [sum(x <= tau for x in r) / len(r) for tau in taus]


def profile_score(profile, taus):
    """The area under rho over [1, tau_max], normalised to [0, 1] (AlgoPerf's benchmark score)."""
    return float(integrate.trapezoid(profile, taus) / (taus[-1] - taus[0]))


def win_rates(workloads, names):
    """{(a, b): (share of the (workload, seed) pairs where a ends better than b, pairs)}; workloads:
    [{optimizer: {seed: lower-is-better final score}}]. A tie counts half."""
    out = {}
    for a in names:
        for b in names:
            pairs = [(w[a][s], w[b][s]) for w in workloads if a in w and b in w for s in set(w[a]) & set(w[b])]
            if a != b and pairs:
                out[(a, b)] = (sum(1.0 if x < y else 0.5 if x == y else 0.0 for x, y in pairs) / len(pairs), len(pairs))
    return out
