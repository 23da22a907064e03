"""Statistics checked against cases worked by hand and against the reference methods' formulas."""
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from optstudy.analysis import stats

nan, inf = math.nan, math.inf


# ---------------------------------------------------------------- paired intervals and verdicts

def test_the_paired_interval_is_the_t_interval_of_the_differences():
    # d = 1, 2, 3: mean 2, sd 1, sem 1/sqrt(3); t(0.975, 2 df) = 4.302653 -> 2 +- 2.484138
    mean, low, high, n, kind, excluded, _ = stats.paired_interval([1, 2, 3], [0, 0, 0])
    assert (mean, n, kind, excluded) == (2.0, 3, "t", ())
    assert low == pytest.approx(2 - 2.484138, abs=1e-5) and high == pytest.approx(2 + 2.484138, abs=1e-5)
    # d = 1, 2, 3, 4: mean 2.5, sem 0.645497; t(0.975, 3 df) = 3.182446 -> 2.5 +- 2.054260
    _, low, high, _, _, _, _ = stats.paired_interval([2, 3, 4, 5], [1, 1, 1, 1])
    assert (low, high) == (pytest.approx(0.445740, abs=1e-5), pytest.approx(4.554260, abs=1e-5))


def test_the_paired_interval_matches_scipy_ttest_rel():
    # d = 0.10, 0.03, 0.05: mean 0.06, sd 0.036056, sem 0.020817; t(0.975, 2) = 4.302653 -> 0.06 +- 0.089567
    a, b = [0.90, 0.85, 0.95], [0.80, 0.82, 0.90]
    interval = stats.paired_interval(a, b)
    reference = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (interval.low, interval.high) == (pytest.approx(reference.low, rel=1e-12), pytest.approx(reference.high, rel=1e-12))
    assert (interval.low, interval.high) == (pytest.approx(0.06 - 0.089567, abs=1e-5), pytest.approx(0.06 + 0.089567, abs=1e-5))
    ninety = stats.paired_interval(a, b, confidence=0.9)
    assert ninety.low == pytest.approx(scipy_stats.ttest_rel(a, b).confidence_interval(0.9).low, rel=1e-12)


def test_degenerate_intervals_are_named_not_computed():
    constant = stats.paired_interval([3.0, 3.0], [1.0, 1.0])          # the same +2 on both seeds: zero variance
    assert (constant.mean, constant.n, constant.kind) == (2.0, 2, "constant")
    assert math.isnan(constant.low) and math.isnan(constant.high)
    one = stats.paired_interval([3.0], [1.0])
    assert (one.mean, one.n, one.kind) == (2.0, 1, "one seed") and math.isnan(one.low)
    rounding = stats.paired_interval([1.0, 2.0, 3.0], [1.0 + 8.88e-16, 2.0, 3.0])     # d = -8.88e-16, 0, 0
    assert (rounding.mean, rounding.kind) == (0.0, "identical")
    same_rounding = stats.paired_interval([0.1 + 0.2, 0.1 + 0.2], [0.3, 0.3])        # d = 5.55e-17 on both
    assert same_rounding.kind == "identical"
    zeros = stats.paired_interval([0.0, 0.0], [0.0, 0.0])
    assert (zeros.mean, zeros.kind) == (0.0, "identical")


def test_non_finite_values_are_left_out_and_named():
    # seed 1 has nan: d = 1, 3, 4 on seeds 0, 2, 3: mean 8/3, sd 1.527525, sem 0.881917; t(0.975, 2) -> +- 3.794583
    interval = stats.paired_interval([1, nan, 3, 4], [0, 0, 0, 0], seeds=[0, 1, 2, 3])
    assert (interval.n, interval.excluded, interval.kind) == (3, (1,), "t")
    assert interval.mean == pytest.approx(8 / 3) and interval.high == pytest.approx(8 / 3 + 3.794583, abs=1e-5)
    sentence = stats.verdict("adam", "sgd", "final training loss", interval, False)
    assert "seed 1 left out (no finite value on both sides)" in sentence and "nan" not in sentence
    nothing = stats.paired_interval([inf, inf], [1.0, 2.0], seeds=[3, 4])
    assert (nothing.n, nothing.kind, nothing.excluded) == (0, "no seeds", (3, 4))
    assert stats.verdict("adam", "sgd", "x", nothing, True) == (
        "adam vs sgd, x: no seed has a finite value for both; seeds 3, 4 left out (no finite value on both sides); "
        "no verdict.")
    left = stats.paired_interval([1.0, 2.0], [inf, 0.0])
    assert (left.mean, left.n, left.kind, left.excluded) == (2.0, 1, "one seed", (0,))


def test_the_verdict_says_who_wins_or_that_it_is_noise():
    noisy = stats.verdict("adam", "sgd", "final test accuracy", stats.paired_interval([1, 2, 3], [0, 0, 0]), True)
    assert noisy == ("adam vs sgd, final test accuracy: the difference (+2; 95% CI -0.484 to +4.48, 3 paired seeds) "
                     "is within the noise.")
    clear = stats.verdict("adam", "sgd", "final test accuracy", stats.paired_interval([2, 3, 4, 5], [1, 1, 1, 1]), True,
                          " points")
    assert clear == ("adam beats sgd on final test accuracy by 2.5 points (adam - sgd = +2.5; "
                     "95% CI +0.446 to +4.55 points, 4 paired seeds).")
    loss = stats.verdict("adam", "sgd", "final training loss", stats.paired_interval([2, 3, 4, 5], [1, 1, 1, 1]), False)
    assert loss.startswith("sgd beats adam on final training loss by 2.5 (adam - sgd = +2.5; 95% CI +0.446 to +4.55")


def test_degenerate_verdicts_are_sentences_without_a_false_interval():
    constant = stats.verdict("adam", "sgd", "final training loss", stats.paired_interval([3.0, 3.0], [1.0, 1.0]), False)
    assert constant == ("adam vs sgd, final training loss: sgd is better by 2 on each of 2 paired seeds: the difference "
                        "is the same on every seed (adam - sgd = +2); no interval from zero variance.")
    tiny = stats.verdict("adam", "sgd", "x", stats.paired_interval([0.3, 0.3], [0.1 + 0.2, 0.1 + 0.2]), True)
    assert tiny == "adam vs sgd, x: identical on every seed (2 paired seeds)."
    one = stats.verdict("adam", "sgd", "x", stats.paired_interval([3.0], [1.0]), True)
    assert one == "adam vs sgd, x: one seed only (+2); no interval, no verdict."


def test_pairs_use_only_the_seeds_both_have():
    rows = stats.pairwise({"a": {0: 2.0, 1: 3.0, 2: 9.0}, "b": {0: 1.0, 1: 1.0}}, "x", True)
    (a, b, interval, _), = rows
    assert (a, b, interval.mean, interval.n, interval.kind) == ("a", "b", 1.5, 2, "t")


def test_pairs_leave_out_the_seed_that_picked_the_setting():
    results = {"a": {0: 9.0, 1: 2.0, 2: 3.0, 3: 5.0}, "b": {0: 0.0, 1: 1.0, 2: 1.0, 3: 2.0}, "c": {0: 1.0}}
    rows = stats.pairwise(results, "x", True, exclude={"a": [0], "b": [0], "c": [0]})
    assert [(a, b, i.n, i.kind) for a, b, i, _ in rows] == [("a", "b", 3, "t"), ("a", "c", 0, "no seeds"),
                                                           ("b", "c", 0, "no seeds")]
    assert rows[0][2].mean == 2.0                 # d = 1, 2, 3 on seeds 1-3 (with seed 0 it would be 3.75)
    assert rows[1][3] == "a vs c, x: no seed has a finite value for both; no verdict."
    assert stats.intervals_made(rows) == 1
    assert stats.pairwise(results, "x", True)[0][2].mean == 3.75


def test_the_multiple_comparisons_note():
    assert stats.comparisons_note(0) == "No interval was computed."
    assert stats.comparisons_note(1) == "One 95% interval; no multiple comparisons."
    assert stats.comparisons_note(3) == ("3 95% intervals, none corrected for multiple comparisons: with no real "
                                         "difference anywhere, about 0.15 of them would exclude zero by chance alone "
                                         "(a Bonferroni correction would use 98.333% intervals).")


# ---------------------------------------------------------------- tuning curves

def test_dodge_et_al_expected_best_worked_by_hand():
    # Dodge et al. (2019), github.com/dodgejesse/show_your_work expected_max_performance.py (samplemax,
    # _cdf_with_replacement): E[max of k] = sum_i v_(i) ((i/N)^k - ((i-1)/N)^k), v ascending, N = 5.
    # k = 1: weights 1/5 each: 442 / 5 = 88.4
    # k = 2: i^2 - (i-1)^2 = 1, 3, 5, 7, 9 (/25): 80 + 255 + 450 + 644 + 855 = 2284 / 25 = 91.36
    # k = 3: 1, 7, 19, 37, 61 (/125): 80 + 595 + 1710 + 3404 + 5795 = 11584 / 125 = 92.672
    # k = 4: 1, 15, 65, 175, 369 (/625): 80 + 1275 + 5850 + 16100 + 35055 = 58360 / 625 = 93.376
    # k = 5: 1, 31, 211, 781, 2101 (/3125): 80 + 2635 + 18990 + 71852 + 199595 = 293152 / 3125 = 93.80864
    # (the reference samplemax([80, 85, 90, 92, 95])["mean"] prints [88.4, 91.36, 92.672, 93.376, 93.80864])
    values = [95, 80, 92, 85, 90]
    curve = stats.tuning_curve(values)
    assert curve.ks == [1, 2, 3, 4, 5] and curve.replacement and (curve.n, curve.diverged) == (5, 0)
    assert curve.mean == pytest.approx([88.4, 91.36, 92.672, 93.376, 93.80864], abs=1e-9)
    assert [round(m, 2) for m in curve.mean[1:]] == [91.36, 92.67, 93.38, 93.81]
    assert curve.p_diverged == [0.0] * 5 and list(curve) == curve.mean
    # Without replacement (the expected maximum of k distinct trials): [C(i, k) - C(i-1, k)] / C(5, k)
    # k = 2: i - 1 = 0, 1, 2, 3, 4 (/10): 85 + 180 + 276 + 380 = 921 / 10 = 92.1
    # k = 3: C(i-1, 2) = 0, 0, 1, 3, 6 (/10): 90 + 276 + 570 = 936 / 10 = 93.6
    # k = 4: C(i-1, 3) = 0, 0, 0, 1, 4 (/5): 92 + 380 = 472 / 5 = 94.4;  k = 5: the best, 95
    distinct = stats.tuning_curve(values, replacement=False)
    assert distinct.mean == pytest.approx([88.4, 92.1, 93.6, 94.4, 95.0], abs=1e-9)
    assert stats.expected_best(values, 2) == pytest.approx(91.36)
    assert stats.expected_best(values, 2, replacement=False) == pytest.approx(92.1)


def test_the_curve_follows_the_reference_formula_beyond_n():
    # The reference's steps, restated: CDF of the max F(i) = (i/N)^n, pdf its differences, E = sum v_(i) pdf(i).
    values = np.random.default_rng(0).uniform(0, 1, 7)
    ks = [1, 3, 7, 12]                           # with replacement k may exceed N
    v, big_n = np.sort(values), len(values)
    reference = [float(np.sum(v * np.diff([(i / big_n) ** k for i in range(big_n + 1)]))) for k in ks]
    assert stats.tuning_curve(values, ks).mean == pytest.approx(reference, rel=1e-12)
    assert math.isnan(stats.tuning_curve(values, [12], replacement=False).mean[0])      # 12 distinct of 7: none


def test_tuning_curves_small_cases_both_directions():
    # 1, 2, 3: with replacement k = 2: (1 + 3*2 + 5*3) / 9 = 22/9; k = 3: (1 + 7*2 + 19*3) / 27 = 8/3.
    # Lower is better (3 worst): k = 2: (3 + 3*2 + 5*1) / 9 = 14/9; k = 3: (3 + 7*2 + 19*1) / 27 = 4/3.
    assert stats.tuning_curve([3, 1, 2]).mean == pytest.approx([2, 22 / 9, 8 / 3])
    assert stats.tuning_curve([3, 1, 2], higher_is_better=False).mean == pytest.approx([2, 14 / 9, 4 / 3])
    # Without replacement: maxima 2, 3, 3 over the three pairs (8/3), minima 1, 1, 2 (4/3); all three give the best.
    assert stats.tuning_curve([3, 1, 2], replacement=False).mean == pytest.approx([2, 8 / 3, 3])
    assert stats.tuning_curve([3, 1, 2], higher_is_better=False, replacement=False).mean == pytest.approx([2, 4 / 3, 1])


def test_a_diverged_trial_is_the_worst_and_its_ks_are_flagged():
    # Accuracies 80, 90 and one diverged (nan), N = 3, d = 1: P(best of k is the diverged one) = (1/3)^k.
    curve = stats.tuning_curve([nan, 80.0, 90.0])
    assert curve.ks == [1, 2, 3] and (curve.n, curve.diverged) == (3, 1)     # the curve starts at k = 1
    assert curve.p_diverged == pytest.approx([1 / 3, 1 / 9, 1 / 27])
    assert curve.mean == [-inf, -inf, -inf]               # a diverged value counts: no finite expectation
    # Counted as 0% accuracy: k = 1: 170/3; k = 2: (0 + 3*80 + 5*90) / 9 = 690/9; k = 3: (0 + 7*80 + 19*90) / 27 = 2270/27
    floor = stats.tuning_curve([nan, 80.0, 90.0], diverged_value=0.0)
    assert floor.mean == pytest.approx([170 / 3, 690 / 9, 2270 / 27]) and floor.p_diverged == curve.p_diverged
    # Distinct trials: two of three always include a finite one: k = 2: (80 + 2*90) / 3; P(diverged best) = 0.
    distinct = stats.tuning_curve([nan, 80.0, 90.0], replacement=False)
    assert distinct.p_diverged == pytest.approx([1 / 3, 0, 0]) and distinct.mean[1:] == pytest.approx([260 / 3, 90])
    # Lower is better, a diverged loss is inf: the worst, flagged, never skipped.
    assert stats.expected_best([1, inf, 2], 3, higher_is_better=False, replacement=False) == 1
    assert stats.expected_best([1, inf, 2], 1, higher_is_better=False) == inf
    assert stats.expected_best([1, inf, 2], 3, higher_is_better=False, diverged_value=10) == pytest.approx(43 / 27)
    everything = stats.tuning_curve([nan, inf])
    assert everything.mean == [-inf, -inf] and everything.p_diverged == [1.0, 1.0]


def test_degenerate_tuning_curves():
    empty = stats.tuning_curve([])
    assert (empty.ks, empty.mean, empty.p_diverged, empty.n) == ([], [], [], 0)
    assert all(math.isnan(m) for m in stats.tuning_curve([], [1, 2]).mean)
    assert math.isnan(stats.expected_best([1.0, 2.0], 0))
    assert stats.tuning_curve([5.0], [1, 4]).mean == [5.0, 5.0]


# ---------------------------------------------------------------- performance profiles

def test_performance_profiles_worked_by_hand():
    times = {"w1": {"a": 2.0, "b": 4.0}, "w2": {"a": inf, "b": 3.0}, "w3": {"a": inf, "b": inf}}
    ratios = stats.performance_ratios(times)
    assert ratios["w1"] == {"a": 1.0, "b": 2.0} and ratios["w2"] == {"a": inf, "b": 1.0}
    assert ratios["w3"] == {"a": inf, "b": inf}          # nobody solved it: it counts for nobody
    taus = [1.0, 1.5, 2.0, 4.0]
    assert stats.performance_profile(ratios, "a", taus) == [1 / 3, 1 / 3, 1 / 3, 1 / 3]
    assert stats.performance_profile(ratios, "b", taus) == [1 / 3, 1 / 3, 2 / 3, 2 / 3]
    assert stats.performance_profile(ratios, "c", taus) == [0, 0, 0, 0]         # absent: never reaches it
    # b: 1/3 on [1, 2), 2/3 on [2, 4]: the trapezoid over these four points is (0.5*1/3 + 0.5*1/2 + 2*2/3) / 3
    assert stats.profile_score(stats.performance_profile(ratios, "b", taus), taus) == pytest.approx(
        (0.5 * 1 / 3 + 0.5 * (1 / 3 + 2 / 3) / 2 + 2 * 2 / 3) / 3)
    # the exact area: (4 - 2) / 3 for w1, (4 - 1) / 3 for w2, 0 for w3, averaged over 3 workloads
    assert stats.exact_profile_area(ratios, "b") == pytest.approx((2 / 3 + 1) / 3)


def test_the_algoperf_score_worked_by_hand():
    # AlgoPerf (scoring/performance_profile.py compute_performance_profiles; score_submissions.py
    # compute_leaderboard_score, normalize=True): r = t / min t; rho(tau) = #(r <= tau) / n workloads on
    # tau_i = 1 + 3i/99, i = 0..99; score = trapezoid(rho, tau) / (4 - 1).
    # r: w1 a 1, b 21/10 = 2.1; w2 a 32/10 = 3.2, b 1; w3 nobody (inf; b's nan time means not reached).
    # One workload whose r first fits at grid index j adds h (99 - j + 1/2) (h = 3/99; j = 0 adds 99h = 3).
    # a: j = 0 (r 1) and j = 73 (tau_72 = 3.1818 < 3.2 <= tau_73 = 3.2121): (3 + 26.5 * 3/99) / 3 workloads / 3
    # b: j = 37 (tau_36 = 2.0909 < 2.1 <= tau_37 = 2.1212) and j = 0: (62.5 * 3/99 + 3) / 9
    # Exact areas: a (3 + (4 - 3.2)) / 9 = 3.8/9; b ((4 - 2.1) + 3) / 9 = 4.9/9.
    times = {"w1": {"a": 10.0, "b": 21.0}, "w2": {"a": 32.0, "b": 10.0}, "w3": {"a": inf, "b": nan}}
    ratios = stats.performance_ratios(times)
    assert ratios == {"w1": {"a": 1.0, "b": 2.1}, "w2": {"a": 3.2, "b": 1.0}, "w3": {"a": inf, "b": inf}}
    assert len(stats.ALGOPERF_TAUS) == 100 and stats.ALGOPERF_TAUS[-1] == 4.0
    assert stats.algoperf_score(ratios, "a") == pytest.approx((3 + 26.5 * 3 / 99) / 9, rel=1e-12)     # 0.422559
    assert stats.algoperf_score(ratios, "b") == pytest.approx((62.5 * 3 / 99 + 3) / 9, rel=1e-12)     # 0.543771
    assert stats.exact_profile_area(ratios, "a") == pytest.approx(3.8 / 9)                           # 0.422222
    assert stats.exact_profile_area(ratios, "b") == pytest.approx(4.9 / 9)                           # 0.544444


def test_degenerate_performance_inputs():
    # a nan time is "did not reach" for that optimizer only (a bare min() would make the best nan for all)
    assert stats.performance_ratios({"w": {"a": nan, "b": 5.0}}) == {"w": {"a": inf, "b": 1.0}}
    assert stats.performance_ratios({"w": {"b": 5.0, "a": nan}}) == {"w": {"b": 1.0, "a": inf}}
    # the target met at time 0: every optimizer at 0 has r = 1, every later one inf; no ZeroDivisionError
    assert stats.performance_ratios({"w": {"a": 0.0, "b": 0.0, "c": 3.0, "d": inf}}) == {
        "w": {"a": 1.0, "b": 1.0, "c": inf, "d": inf}}
    assert stats.performance_ratios({"w": {"a": -1.0, "b": 2.0}}) == {"w": {"a": inf, "b": 1.0}}
    # no workload solved by anyone: rho 0 everywhere, score 0 (a real zero: the workloads count for nobody)
    nobody = stats.performance_ratios({"w1": {"a": inf, "b": nan}, "w2": {"a": inf}})
    assert stats.performance_profile(nobody, "a", [1.0, 4.0]) == [0.0, 0.0]
    assert stats.algoperf_score(nobody, "a") == 0.0 and stats.exact_profile_area(nobody, "b") == 0.0
    # an empty study: no profile, no score (nan), no division by zero
    assert stats.performance_ratios({}) == {}
    assert all(math.isnan(p) for p in stats.performance_profile({}, "a", [1.0, 2.0]))
    assert math.isnan(stats.algoperf_score({}, "a")) and math.isnan(stats.exact_profile_area({}, "a"))
    assert math.isnan(stats.profile_score([1.0], [1.0]))


def test_the_time_unit_is_named():
    assert stats.unit_words("seconds") == "training time to target in seconds (AlgoPerf's definition)"
    assert stats.unit_words("epochs") == "epochs to target (a variant: AlgoPerf's profiles use training time in seconds)"


# ---------------------------------------------------------------- win rates

def test_win_rates_per_pair_and_per_workload_by_hand():
    # Lower is better. w1 (3 seeds): a wins seeds 0 and 2, loses seed 1; w2 (1 seed): a loses.
    workloads = [{"a": {0: 1.0, 1: 3.0, 2: 1.0}, "b": {0: 2.0, 1: 2.0, 2: 2.0}}, {"a": {0: 0.7}, "b": {0: 0.5}}]
    # per pair: a wins 2 of 4 pairs = 0.5; per workload: (2/3 + 0) / 2 = 1/3, b (1/3 + 1) / 2 = 2/3
    pooled = stats.win_rates(workloads, ["a", "b"])
    assert pooled == {("a", "b"): (0.5, 4), ("b", "a"): (0.5, 4)}
    by_workload = stats.win_rates(workloads, ["a", "b"], weighting="workload")
    assert by_workload[("a", "b")] == (pytest.approx(1 / 3), 4) and by_workload[("b", "a")] == (pytest.approx(2 / 3), 4)
    with pytest.raises(ValueError):
        stats.win_rates(workloads, ["a", "b"], weighting="seed")


def test_win_rates_leave_out_nan_and_count_a_divergence_as_a_loss():
    workloads = [{"a": {0: nan, 1: inf, 2: 1.0}, "b": {0: 1.0, 1: 2.0, 2: inf}, "c": {0: inf, 1: inf, 2: nan}}]
    wins = stats.win_rates(workloads, ["a", "b", "c"])
    assert wins[("a", "b")] == (0.5, 2)      # seed 0 left out (nan); a diverged on 1 (loses), b on 2 (a wins)
    assert wins[("a", "c")] == (0.5, 1)      # only seed 1: both diverged, a tie
    assert wins[("b", "c")] == (1.0, 2) and wins[("c", "b")] == (0.0, 2)
    assert stats.win_rates([], ["a", "b"]) == {} and stats.win_rates([{"a": {0: nan}, "b": {0: 1.0}}], ["a", "b"]) == {}
