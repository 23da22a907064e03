"""Statistics checked against cases worked by hand."""
import math

import pytest

import stats


def test_the_paired_interval_is_the_t_interval_of_the_differences():
    # d = 1, 2, 3: mean 2, sd 1, sem 1/sqrt(3); t(0.975, 2 df) = 4.302653 -> 2 +- 2.484138
    mean, low, high, n = stats.paired_interval([1, 2, 3], [0, 0, 0])
    assert (mean, n) == (2.0, 3)
    assert low == pytest.approx(2 - 2.484138, abs=1e-5) and high == pytest.approx(2 + 2.484138, abs=1e-5)
    # d = 1, 2, 3, 4: mean 2.5, sem 0.645497; t(0.975, 3 df) = 3.182446 -> 2.5 +- 2.054260
    _, low, high, _ = stats.paired_interval([2, 3, 4, 5], [1, 1, 1, 1])
    assert (low, high) == (pytest.approx(0.445740, abs=1e-5), pytest.approx(4.554260, abs=1e-5))


def test_degenerate_intervals():
    assert stats.paired_interval([3.0, 3.0], [1.0, 1.0]) == (2.0, 2.0, 2.0, 2)
    mean, low, high, n = stats.paired_interval([3.0], [1.0])
    assert mean == 2.0 and math.isnan(low) and n == 1


def test_the_verdict_says_who_wins_or_that_it_is_noise():
    noisy = stats.verdict("adam", "sgd", "final test accuracy", stats.paired_interval([1, 2, 3], [0, 0, 0]), True)
    assert "within the noise" in noisy and "3 paired seeds" in noisy
    clear = stats.verdict("adam", "sgd", "final test accuracy", stats.paired_interval([2, 3, 4, 5], [1, 1, 1, 1]), True)
    assert clear.startswith("adam beats sgd on final test accuracy by 2.5")
    loss = stats.verdict("adam", "sgd", "final training loss", stats.paired_interval([2, 3, 4, 5], [1, 1, 1, 1]), False)
    assert loss.startswith("sgd beats adam on final training loss by 2.5")


def test_pairs_use_only_the_seeds_both_have():
    rows = stats.pairwise({"a": {0: 2.0, 1: 3.0, 2: 9.0}, "b": {0: 1.0, 1: 1.0}}, "x", True)
    (a, b, (mean, _, _, n), _), = rows
    assert (a, b, mean, n) == ("a", "b", 1.5, 2)


def test_expected_best_after_k_trials_by_hand():
    # three trials 1, 2, 3: one draw averages them (2); two draws without replacement have maxima
    # 2, 3, 3 over the three pairs (8/3) and minima 1, 1, 2 (4/3); all three give the best.
    assert stats.tuning_curve([3, 1, 2]) == pytest.approx([2, 8 / 3, 3])
    assert stats.tuning_curve([3, 1, 2], higher_is_better=False) == pytest.approx([2, 4 / 3, 1])
    assert stats.expected_best([1, math.inf, 2], 3, higher_is_better=False) == 1     # a diverged trial never wins
    assert stats.expected_best([1, math.inf, 2], 1, higher_is_better=False) == math.inf
